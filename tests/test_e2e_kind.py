"""End to end: the real `pulumi` CLI previews the dev stack with the policy pack enforced, brings it up on
kind, edits it (adds a pool), destroys it and re-creates it from its config, then destroys it.

It needs the Pulumi CLI, kind and a running Docker engine: the workflow .github/workflows/e2e-kind.yaml
runs it on GitHub's runners. This workplace's CI has none of them: there it is skipped, saying which is
missing. Run it on a workstation with `pytest -m e2e -n 0`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
import yaml

from infra.plan.stackfile import REPO_ROOT

pytestmark = pytest.mark.e2e


def _missing() -> list[str]:
    missing = [tool for tool in ("pulumi", "kind", "docker") if shutil.which(tool) is None]
    if "docker" not in missing:
        probe = subprocess.run(["docker", "info"], capture_output=True, check=False)
        if probe.returncode != 0:
            missing.append("a running Docker engine")
    return missing


@pytest.fixture(scope="module")
def dev_stack(tmp_path_factory):
    missing = _missing()
    if missing:
        pytest.skip(f"end-to-end test needs {', '.join(missing)} on this machine")
    state = tmp_path_factory.mktemp("state")
    env = {**os.environ, "PULUMI_BACKEND_URL": f"file://{state}", "PULUMI_CONFIG_PASSPHRASE": "e2e"}
    stack = "e2e-dev"

    def pulumi(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["pulumi", *args, "--stack", stack, "--non-interactive"], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, check=False, timeout=1800)

    # A throwaway stack with dev's config, as a user makes one: dev's stack file copied (`--copy-config-from` reads
    # the stack from the backend, which has no dev here), under a kind cluster name of its own, so a dev cluster
    # already up on the machine is left alone. Its stack file is removed with it.
    document = yaml.safe_load((REPO_ROOT / "stacks" / "Pulumi.dev.yaml").read_text())
    document["config"]["neurodock:cloud"]["clusterName"] = "neurodock-e2e"
    (REPO_ROOT / "stacks" / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    subprocess.run(["pulumi", "stack", "init", stack, "--non-interactive"], cwd=REPO_ROOT, env=env, check=True)
    try:
        yield pulumi
    finally:
        pulumi("destroy", "--yes", "--skip-preview")
        pulumi("stack", "rm", "--yes", "--force")
        (REPO_ROOT / "stacks" / f"Pulumi.{stack}.yaml").unlink(missing_ok=True)


def test_a_first_preview_with_the_policy_pack_passes(dev_stack):
    # What `neurodock check dev` calls the first-preview view: nothing exists yet, the kubeconfig is unknown.
    preview = dev_stack("preview", "--policy-pack", "policies/neurodock")
    # A mandatory violation fails the preview (exit code 255 from the CLI).
    assert preview.returncode == 0, preview.stdout + preview.stderr


def test_dev_stack_comes_up_on_kind_and_serves_its_model(dev_stack):
    up = dev_stack("up", "--yes", "--skip-preview", "--policy-pack", "policies/neurodock")
    assert up.returncode == 0, up.stdout + up.stderr
    outputs = json.loads(dev_stack("stack", "output", "--json").stdout)
    assert outputs["cloud"] == "kind"
    assert set(outputs["models"]) == {"qwen2.5-0.5b-instruct"}


def test_an_edit_adds_a_pool_without_breaking_the_stack(dev_stack):
    # Runs after the first test brought the stack up (pytest keeps file order).
    for key, value in (("name", "extra"), ("role", "cpu"), ("minNodes", "1"), ("maxNodes", "1")):
        result = dev_stack("config", "set", "--path", f"neurodock:nodePools[3].{key}", value)
        assert result.returncode == 0, result.stderr
    up = dev_stack("up", "--yes", "--skip-preview")
    assert up.returncode == 0, up.stdout + up.stderr
    outputs = json.loads(dev_stack("stack", "output", "--json").stdout)
    assert set(outputs["models"]) == {"qwen2.5-0.5b-instruct"}


def test_destroy_then_recreate_from_config(dev_stack):
    destroy = dev_stack("destroy", "--yes", "--skip-preview")
    assert destroy.returncode == 0, destroy.stdout + destroy.stderr
    resources = json.loads(dev_stack("stack", "export").stdout)["deployment"].get("resources") or []
    assert [r for r in resources if r["type"] != "pulumi:pulumi:Stack"] == []
    up = dev_stack("up", "--yes", "--skip-preview")
    assert up.returncode == 0, up.stdout + up.stderr
    outputs = json.loads(dev_stack("stack", "output", "--json").stdout)
    assert set(outputs["models"]) == {"qwen2.5-0.5b-instruct"}
