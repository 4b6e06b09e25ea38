"""The ``neurodock`` command: outputs, formats and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from infra.cli import main
from infra.plan.helm import load_documents
from tests.conftest import stack_document


def test_plan_dev_writes_all_four_outputs(tmp_path, capsys):
    out = tmp_path / "plan"
    assert main(["plan", "dev", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Component tree" in text and "Resources by type" in text and "Outputs" in text
    assert "neurodock:cluster:KindCluster" in text

    resources = json.loads((out / "resources.json").read_text())
    assert {"urn", "type", "name", "parent", "custom", "provider", "inputs", "options"} <= set(resources[0])
    assert {"protect", "retainOnDelete", "dependsOn", "deleteBeforeReplace", "ignoreChanges",
            "customTimeouts", "import"} == set(resources[0]["options"])
    outputs = json.loads((out / "outputs.json").read_text())
    assert outputs["kubeconfig"] == "[secret]"
    manifests = sorted((out / "manifests").glob("*.yaml"))
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in manifests}
    assert {"Namespace", "Deployment", "Service"} <= kinds
    releases = yaml.safe_load((out / "helm-releases.yaml").read_text())
    assert ("kube-prometheus-stack", "monitoring") in [(r["rendered"]["chart"], r["namespace"]) for r in releases]
    # With the chart cached, each release installs the cached package it was rendered from.
    assert all(r["chart"] == r["rendered"]["package"] and r["chart"].endswith(f"-{r['version']}.tgz")
               for r in releases)
    # The objects each release installs, in a folder per release, and listed with their release.
    kps = sorted((out / "manifests" / "kps").glob("*.yaml"))
    assert {"Prometheus", "Alertmanager", "DaemonSet", "CustomResourceDefinition"} <= {
        load_documents(p.read_text())[0]["kind"] for p in kps}
    from_chart = [r for r in resources if r.get("release") == "kps"]
    assert len(from_chart) == len(kps) and all(r["parent"].endswith("::monitoring-kps") for r in from_chart)
    assert "kps: kube-prometheus-stack 82.6.0 in namespace monitoring" in text


def test_plan_out_replaces_stale_manifests(tmp_path):
    out = tmp_path / "plan"
    (out / "manifests").mkdir(parents=True)
    (out / "manifests" / "stale.yaml").write_text("kind: Old\n")
    assert main(["plan", "dev", "--out", str(out)]) == 0
    assert not (out / "manifests" / "stale.yaml").exists()


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


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    try:
        main(["plan"])
    except SystemExit as exc:
        assert exc.code == 2
    else:
        raise AssertionError("argparse should exit on a missing STACK")
