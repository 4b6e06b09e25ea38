"""The review pipeline in .github/workflows: it cannot run here, so these tests hold it to what
the README promises: the offline gate on every pull request, a policy-enforced preview per cloud
stack, `pulumi up` of staging on merge, every action pinned by commit, and one Pulumi CLI version
matching the SDK."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"


def workflow(name: str) -> dict:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    document["on"] = document.pop(True)
    return document


def steps(job: dict) -> list[dict]:
    return job["steps"]


def uses(job: dict, action: str) -> dict:
    [step] = [s for s in steps(job) if s.get("uses", "").startswith(action + "@")]
    return step


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit_with_its_version(path):
    lines = [line.strip() for line in path.read_text().splitlines() if re.match(r"\s*(- )?uses:", line.strip())]
    assert lines
    for line in lines:
        assert re.fullmatch(r"(- )?uses: [\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+", line), line


def test_pull_requests_run_the_offline_gate_and_a_policy_enforced_preview_per_cloud_stack():
    pr = workflow("pull-request.yaml")
    assert pr["on"] == {"pull_request": {"branches": ["main"]}}
    assert pr["permissions"] == {"contents": "read"}
    test = pr["jobs"]["test"]
    assert any(s.get("run") == "bash .ci/run" for s in steps(test))
    preview = pr["jobs"]["preview"]
    assert preview["needs"] == ["test", "gate"]
    assert preview["strategy"]["matrix"]["include"] == "${{ fromJSON(needs.test.outputs.stacks) }}"
    pulumi = uses(preview, "pulumi/actions")["with"]
    assert pulumi["command"] == "preview" and pulumi["policyPacks"] == "policies/neurodock"
    assert pulumi["stack-name"] == "${{ matrix.stack }}"
    # Every credentialed step waits for the check that this cloud's credentials exist.
    for step in steps(preview)[1:]:
        assert step["if"].startswith("steps.credentials.outputs.configured == 'true'"), step


def test_merges_deploy_staging_only_after_the_gate_with_the_pack_enforced():
    deploy = workflow("deploy-staging.yaml")
    assert deploy["on"]["push"] == {"branches": ["main"]}
    assert deploy["concurrency"] == {"group": "deploy-staging", "cancel-in-progress": False}
    # A deploy's and a rollout's `pulumi up` of one stack wait for each other: one job-level group per stack.
    assert deploy["jobs"]["up"]["concurrency"] == {"group": "pulumi-staging", "cancel-in-progress": False}
    assert workflow("rollout-analyze.yaml")["jobs"]["up"]["concurrency"]["group"] == "pulumi-${{ inputs.deploy }}"
    up = deploy["jobs"]["up"]
    assert up["needs"] == "test" and up["environment"] == "staging"
    pulumi = uses(up, "pulumi/actions")["with"]
    assert (pulumi["command"], pulumi["stack-name"], pulumi["policyPacks"]) == ("up", "staging", "policies/neurodock")


def test_the_pulumi_cli_in_ci_matches_the_sdk_pinned_in_requirements():
    cli = (ROOT / ".pulumi.version").read_text().strip()
    [sdk] = re.findall(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    assert cli == sdk


def test_neurodock_stacks_lists_each_stack_with_its_cloud_and_region():
    result = subprocess.run([sys.executable, "-m", "infra.cli", "stacks", "--json"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    rows = {row["stack"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {p.name[len("Pulumi."):-len(".yaml")] for p in (ROOT / "stacks").glob("Pulumi.*.yaml")}
    assert rows["staging"]["provider"] == "eks" and rows["staging"]["region"] == "us-east-1"
    assert rows["dev"]["provider"] == "kind" and rows["dev"]["region"] is None


def test_the_end_to_end_workflow_previews_with_the_pack_then_runs_the_kind_test_with_the_pinned_cli():
    e2e = workflow("e2e-kind.yaml")
    assert e2e["permissions"] == {"contents": "read"}
    [job] = e2e["jobs"].values()
    assert job["runs-on"] == "ubuntu-24.04"  # GitHub-hosted: Docker is there
    assert uses(job, "pulumi/actions")["with"] == {"pulumi-version-file": ".pulumi.version"}
    run = "\n".join(s.get("run", "") for s in steps(job))
    assert "sha256sum --check" in run and "neurodock charts pull dev" in run
    assert "pytest -m e2e -n 0 tests/test_e2e_kind.py" in run
    source = (ROOT / "tests" / "test_e2e_kind.py").read_text()
    assert '"preview", "--policy-pack", "policies/neurodock"' in source
