"""The ``neurodock`` command: outputs, formats and exit codes."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from neurodock_policies import POLICIES

from infra import cli
from infra.charts import load_documents
from infra.cli import main
from infra.plan import render
from infra.plan.stackfile import REPO_ROOT as ROOT
from tests.conftest import stack_document


def test_plan_dev_writes_all_four_outputs(tmp_path, capsys):
    out = tmp_path / "plan"
    assert main(["plan", "dev", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Resources by type" in text and "Outputs" in text and "Component tree" not in text
    assert "KindCluster cluster" in text  # the summary names each top-level component

    resources = json.loads((out / "resources.json").read_text())
    assert {"urn", "type", "name", "parent", "custom", "provider", "inputs", "options"} <= set(resources[0])
    assert {"protect", "retainOnDelete", "dependsOn", "deleteBeforeReplace", "ignoreChanges", "replaceOnChanges",
            "customTimeouts", "import"} == set(resources[0]["options"])
    outputs = json.loads((out / "outputs.json").read_text())
    assert outputs["kubeconfig"] == "[secret]"
    manifests = sorted((out / "manifests").glob("*.yaml"))
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in manifests}
    assert {"Namespace", "Deployment", "Service"} <= kinds
    releases = yaml.safe_load((out / "helm-releases.yaml").read_text())
    assert ("kube-prometheus-stack", "monitoring") in [(r["rendered"]["chart"], r["namespace"]) for r in releases]
    # Each release names its chart as the provider fetches it; the plan rendered that very version.
    assert all(r["rendered"]["package"].endswith(f"/{r['chart'].rsplit('/', 1)[-1]}-{r['version']}.tgz")
               and (r["repository"] or r["chart"].startswith("oci://")) for r in releases)
    # The objects each release installs, in a folder per release, and listed with their release.
    kps = sorted((out / "manifests" / "kps").glob("*.yaml"))
    assert {"Prometheus", "Alertmanager", "DaemonSet", "CustomResourceDefinition"} <= {
        load_documents(p.read_text())[0]["kind"] for p in kps}
    from_chart = [r for r in resources if r.get("release") == "kps"]
    assert len(from_chart) == len(kps) and all(r["parent"].endswith("::monitoring-kps") for r in from_chart)
    assert "kps: kube-prometheus-stack 82.6.0 in namespace monitoring" in text


def test_plan_out_replaces_an_earlier_output_as_a_whole(tmp_path):
    out = tmp_path / "plan"
    (out / "manifests").mkdir(parents=True)
    (out / "resources.json").write_text("[]\n")
    (out / "manifests" / "stale.yaml").write_text("kind: Old\n")
    (out / "notes.txt").write_text("of an earlier plan\n")
    assert main(["plan", "dev", "--out", str(out)]) == 0
    assert not (out / "manifests" / "stale.yaml").exists() and not (out / "notes.txt").exists()
    assert json.loads((out / "resources.json").read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan"]  # no temporary directory left beside it


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for directories)."""
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


def refused_before_planning(monkeypatch, capsys, argv: list[str]) -> str:
    """Run ``neurodock`` expecting exit 2 before anything is planned; its stderr."""
    monkeypatch.setattr(cli, "_load_and_plan", lambda *a, **k: pytest.fail("planned despite a bad argument"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


def test_plan_out_that_is_a_file_is_refused_before_planning(tmp_path, monkeypatch, capsys):
    (tmp_path / "plan").write_text("mine\n")
    before = tree(tmp_path)
    err = refused_before_planning(monkeypatch, capsys, ["plan", "dev", "--out", str(tmp_path / "plan")])
    assert err.startswith(f"neurodock: --out {tmp_path / 'plan'}: it is a file, not a directory; pass a directory")
    assert tree(tmp_path) == before


def test_plan_out_under_a_file_is_refused_before_planning(tmp_path, monkeypatch, capsys):
    (tmp_path / "somefile").write_text("mine\n")
    before = tree(tmp_path)
    out = tmp_path / "somefile" / "sub" / "plan"
    err = refused_before_planning(monkeypatch, capsys, ["plan", "dev", "--out", str(out)])
    assert err.startswith(f"neurodock: --out {out}: {tmp_path / 'somefile'} is a file, so it cannot hold a directory;")
    assert tree(tmp_path) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere, whatever the permissions")
@pytest.mark.parametrize("out", ["locked/plan", "locked"])
def test_plan_out_where_it_cannot_write_is_refused_before_planning(tmp_path, monkeypatch, capsys, out):
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "resources.json").write_text("[]\n")  # an earlier plan's output: only the permissions are wrong
    locked.chmod(0o555)
    try:
        before = tree(tmp_path)
        err = refused_before_planning(monkeypatch, capsys, ["plan", "dev", "--out", str(tmp_path / out)])
        assert f"--out {tmp_path / out}: " in err and "is not writable; pass a directory you may write" in err
        assert tree(tmp_path) == before
    finally:
        locked.chmod(0o755)


def test_plan_out_in_a_directory_it_may_not_write_is_refused(tmp_path, monkeypatch, capsys):
    """As the test above, for root too: the permission check itself, with os.access saying no."""
    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked)
    err = refused_before_planning(monkeypatch, capsys, ["plan", "dev", "--out", str(locked / "a" / "plan")])
    assert err == f"neurodock: --out {locked / 'a' / 'plan'}: {locked} is not writable; pass a directory you may " \
        "write, or fix its permissions\n"
    assert tree(tmp_path) == {"locked": None}


def test_plan_out_never_replaces_a_directory_that_is_not_a_plan_output(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    (home / "src").mkdir(parents=True)
    (home / "src" / "thesis.tex").write_text("years of work\n")
    before = tree(tmp_path)
    err = refused_before_planning(monkeypatch, capsys, ["plan", "dev", "--out", str(home)])
    assert f"--out {home}: it holds files and no resources.json, so it is not an earlier plan's output" in err
    assert "pass a new or empty directory, or an earlier plan's --out" in err
    assert tree(tmp_path) == before


def test_a_failure_while_writing_leaves_the_earlier_output_as_it_was(tmp_path, monkeypatch, capsys):
    out = tmp_path / "plan"
    (out / "manifests").mkdir(parents=True)
    (out / "resources.json").write_text("[]\n")
    (out / "manifests" / "cluster.namespace.old.yaml").write_text("kind: Namespace\n")
    before = tree(tmp_path)

    def disk_full(plan):
        raise OSError(errno.ENOSPC, "No space left on device")

    # helm-releases.yaml is written last: everything else is already written by then.
    monkeypatch.setattr(render, "helm_releases", disk_full)
    assert main(["plan", "dev", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"neurodock: --out {out}: writing the plan failed, so nothing was written and {out} is as it was" in err
    assert "No space left on device" in err and "Traceback" not in err
    assert tree(tmp_path) == before  # byte for byte, and no temporary directory beside it


def test_a_mount_point_is_replaced_entry_by_entry_all_or_nothing(tmp_path, monkeypatch, capsys):
    # A CI volume cannot be renamed aside: its entries are swapped, and put back if the swap fails.
    out = tmp_path / "plan"
    (out / "manifests").mkdir(parents=True)
    (out / "resources.json").write_text("[]\n")
    monkeypatch.setattr(render.os.path, "ismount", lambda path: Path(path) == out)
    before = tree(tmp_path)
    real_rename = Path.rename

    def fail_on_the_new_manifests(self, target):
        # The new manifests/ moving in from the staging directory: old entries are already aside.
        if self.name == "manifests" and self.parent.name.startswith(".plan.") and ".old" not in self.parent.name:
            raise OSError(errno.EIO, "Input/output error")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", fail_on_the_new_manifests)
    assert main(["plan", "dev", "--out", str(out)]) == 1
    assert tree(tmp_path) == before
    monkeypatch.setattr(Path, "rename", real_rename)
    assert main(["plan", "dev", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["helm-releases.yaml", "manifests", "outputs.json",
                                                      "resources.json"]
    assert json.loads((out / "resources.json").read_text())


def test_plan_json(capsys):
    assert main(["plan", "staging", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["stack"] == "staging" and document["cloud"] == "eks"
    assert document["countsByType"]["aws:eks/nodeGroup:NodeGroup"] == 2
    assert document["resourceCount"] == sum(document["countsByType"].values())


def test_misspelt_key_exits_2_naming_the_key(write_stack, capsys):
    document = stack_document("dev")
    document["config"]["neurodock:nodePools"][0]["maxNode"] = 2
    assert main(["plan", "dev", "--stack-file", str(write_stack(document))]) == 2
    err = capsys.readouterr().err
    assert "neurodock:nodePools[0].maxNode: unknown key; did you mean 'maxNodes'?" in err


def test_negative_gpu_count_exits_2_naming_the_key(write_stack, capsys):
    document = stack_document("staging")
    document["config"]["neurodock:nodePools"][1]["gpu"]["count"] = -2
    assert main(["plan", "staging", "--stack-file", str(write_stack(document))]) == 2
    err = capsys.readouterr().err
    assert "neurodock:nodePools[1].gpu.count: must be greater than or equal to 1 (got -2)" in err



def test_what_the_running_cloud_refuses_exits_2_naming_the_key(write_stack, capsys, monkeypatch):
    """A check against the running cluster (here: a zone added under a running EKS cluster) is a configuration error
    like any other, not a failed program."""
    from tests.live import running_eks

    document = stack_document("staging")
    running_eks(monkeypatch, document, "1.34")
    document["config"]["neurodock:cloud"]["zones"].append("us-east-1d")
    assert main(["plan", "staging", "--stack-file", str(write_stack(document)), "--json"]) == 2
    err = capsys.readouterr().err
    assert "neurodock:cloud.zones: the running cluster neurodock-staging was created with the zones" in err
    assert "Traceback" not in err

def test_unknown_stack_is_a_usage_error(capsys):
    assert main(["plan", "nosuchstack"]) == 2
    assert "stacks here:" in capsys.readouterr().err


def test_bad_config_from_the_shell_has_no_traceback(write_stack):
    document = stack_document("dev")
    document["config"]["neurodock:cloud"]["provider"] = "aks"
    result = subprocess.run(
        [sys.executable, "-m", "infra.cli", "plan", "dev", "--stack-file", str(write_stack(document))],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 2
    assert "neurodock:cloud.provider: must be one of 'kind', 'eks', 'gke' (got 'aks')" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def _as_a_shell_has_it() -> dict[str, str]:
    """This environment with buffered standard streams, as a user's shell has them (the suite's is unbuffered)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}


def test_the_command_ends_with_all_it_wrote_and_its_own_exit_code():
    """The console script skips the interpreter's teardown (``infra.cli.run`` ends with ``os._exit``): what
    a command wrote to a pipe must still arrive whole, and the process's code be the command's."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"neurodock": "infra.cli:run"}
    buffered = _as_a_shell_has_it()
    result = subprocess.run([sys.executable, "-m", "infra.cli", "plan", "--bootstrap", "aws", "--json"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT, check=False, env=buffered)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["resourceCount"] > 0
    assert result.stdout.endswith("}\n")  # the last line's end sits in the stream's buffer until the flush
    failed = subprocess.run([sys.executable, "-m", "infra.cli", "check", "nosuchstack"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT, check=False, env=buffered)
    assert failed.returncode == 2 and "stacks here:" in failed.stderr


def test_a_reader_that_leaves_early_is_no_error_of_the_command():
    """`neurodock plan dev --json | head`: the command stops quietly, exit 1 (as Python's own recipe for
    SIGPIPE has it), without an error message or a traceback."""
    process = subprocess.Popen([sys.executable, "-m", "infra.cli", "plan", "--bootstrap", "aws", "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                               env=_as_a_shell_has_it())
    process.stdout.close()  # no reader: the first write fails with EPIPE
    err = process.stderr.read()
    assert process.wait(timeout=120) == 1
    assert err == "", err


def test_the_console_script_runs_the_command_without_the_collector_and_exits_with_its_code(monkeypatch):
    import gc

    seen = []

    def command(argv):
        seen.append((argv, gc.isenabled()))
        return 3

    def exit_now(code):
        raise SystemExit(code)

    exit_handlers = []
    monkeypatch.setattr(cli, "main", command)
    monkeypatch.setattr(cli.os, "_exit", exit_now)
    monkeypatch.setattr(cli.atexit, "_run_exitfuncs", lambda: exit_handlers.append(True))
    profiler, tracer = sys.getprofile(), sys.gettrace()
    sys.setprofile(None)
    sys.settrace(None)
    try:
        with pytest.raises(SystemExit) as ended:
            cli.run(["plan", "dev"])
        with pytest.raises(SystemExit) as ended_none:
            cli.end(None)
    finally:
        sys.setprofile(profiler)
        sys.settrace(tracer)
        gc.enable()
    assert ended.value.code == 3 and seen == [(["plan", "dev"], False)]
    assert ended_none.value.code == 0 and exit_handlers == [True, True]  # what must run at exit does


def test_the_console_script_exits_the_usual_way_under_a_profiler(monkeypatch):
    """A profiler (``python -m cProfile -m infra.cli``), tracer or coverage tool writes its results after the
    program returns: ``os._exit`` would lose them."""
    def fail(code):
        raise AssertionError("os._exit under a profiler")

    monkeypatch.setattr(cli.os, "_exit", fail)
    profiler = sys.getprofile()
    sys.setprofile(lambda *args: None)
    try:
        with pytest.raises(SystemExit) as ended:
            cli.end(2)
    finally:
        sys.setprofile(profiler)
    assert ended.value.code == 2


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    try:
        main(["plan"])
    except SystemExit as exc:
        assert exc.code == 2
    else:
        raise AssertionError("argparse should exit on a missing STACK")


def test_check_names_the_config_key_of_each_finding_and_level_mandatory_hides_advisories(write_stack, capsys):
    document = stack_document("prod")
    document["config"]["neurodock:nodePools"][2]["capacity"] = "spot"  # gpu-h100
    # (A canary image tagged latest is refused by the configuration check itself now, before any policy.)
    path = str(write_stack(document, name="prod"))

    assert main(["check", "prod", "--stack-file", path, "--level", "mandatory"]) == 1
    text = capsys.readouterr().out
    findings = {(policy, urn.rsplit("::", 1)[1]): (level, key) for level, policy, urn, key in re.findall(
        r"^(\w+) +(\S+): \d+ violations?\n  (\S+)\n    .*\n(?:    config: (.*)\n)?", text, re.MULTILINE)}
    assert findings == {
        ("prod-gpu-pools-not-spot-only", "cluster-gpu-h100"): ("mandatory", "neurodock:nodePools[2] (gpu-h100)"),
    }
    advisory = int(text.split(" mandatory and ")[1].split()[0])
    assert advisory > 0 and f"prod: {len(POLICIES)} policies, 1 mandatory and" in text

    assert main(["check", "prod", "--stack-file", path, "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["level"] == "advisory" and document["counts"] == {"mandatory": 1, "advisory": advisory}
    keys = {(v["policy"], v["urn"].rsplit("::", 1)[1]): v["configKey"] for v in document["violations"]}
    assert keys[("prod-gpu-pools-not-spot-only", "cluster-gpu-h100")] == "neurodock:nodePools[2]"
    assert keys[("images-pinned-by-digest", "llama-3-1-8b-canary-server")] == "neurodock:models[0].canary"
    assert keys[("images-pinned-by-digest", "llama-3-3-70b-server")] == "neurodock:models[1]"
    # KEDA serves every model alike: no one key made it.
    assert keys[("images-pinned-by-digest", "keda:keda/keda-operator")] is None
