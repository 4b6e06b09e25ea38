"""`neurodock diff` and region independence: the DR stack equals prod but for its location, moving
any cloud stack to another region changes nothing but location-derived values, other edits are
reported as such, and what holds data survives a stack's destruction."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys

import pytest
from neurodock_policies.prod_stateful_resources_retained import STATEFUL, is_cache

from infra import cli
from infra.cli import main
from infra.diff import Change, PlanDiff, ResourceDiff, diff_plans, render, saved_plan
from infra.plan.engine import run_plan
from infra.plan.render import as_json
from infra.plan.stackfile import REPO_ROOT, load_stack_file
from tests.conftest import SHIPPED_STACKS, run_cli, stack_document


def test_the_dr_stack_differs_from_prod_only_by_location(shipped_plans):
    diff = diff_plans(shipped_plans["prod"], shipped_plans["prod-dr"])
    assert diff.other == []
    assert diff.location_pairs[:4] == [("neurodock-prod-4821", "neurodock-prod-dr-4821"),
                                       ("europe-west4-a", "europe-west1-b"), ("europe-west4-b", "europe-west1-c"),
                                       ("europe-west4-c", "europe-west1-d")]
    changed = {r.key: r for r in diff.resources}
    cluster = changed["neurodock:cluster:GkeCluster$gcp:container/cluster:Cluster::cluster-gke"]
    assert {(c.path, c.old, c.new) for c in cluster.changes} >= {("inputs.location", "europe-west4", "europe-west1")}
    # Every resource and every object the Helm releases install is compared.
    prod = shipped_plans["prod"]
    assert diff.compared == len(prod.resources) + len(prod.chart_objects) and len(prod.chart_objects) > 100


def relocated(document: dict, region: str, zones: list[str], project: str | None = None) -> dict:
    cloud = document["config"]["neurodock:cloud"]
    cloud.update(region=region, zones=zones)
    if project:
        cloud["project"] = project
    return document


MOVES = {
    "staging": ("us-west-2", ["us-west-2a", "us-west-2b", "us-west-2c"]),
    "prod": ("us-central1", ["us-central1-a", "us-central1-b", "us-central1-c"]),
}


@pytest.mark.parametrize("stack", sorted(MOVES))
def test_changing_region_and_zones_changes_nothing_else(shipped_plans, write_stack, stack):
    region, zones = MOVES[stack]
    moved = run_plan(load_stack_file(stack, write_stack(relocated(stack_document(stack), region, zones))))
    diff = diff_plans(shipped_plans[stack], moved)
    assert [r.key for r in diff.other] == []
    assert diff.resources, "moving a cloud stack must change something"
    # Every changed value carried the old location, or the id of a resource that moved with it.
    cloud = shipped_plans[stack].config.cloud
    marks = [cloud.region, *cloud.zones, *[r.id for r in shipped_plans[stack].resources
                                           if isinstance(r.id, str) and len(r.id) >= 8]]
    for r in diff.resources:
        for c in r.changes:
            assert any(mark in json.dumps(c.old) for mark in marks), (r.key, c)


def test_any_other_edit_is_reported_and_fails_location_only(shipped_plans, write_stack):
    document = relocated(stack_document("prod"), "europe-west1", ["europe-west1-b", "europe-west1-c",
                                                                  "europe-west1-d"], "neurodock-prod-dr-4821")
    document["config"]["neurodock:nodePools"][1]["maxNodes"] = 12
    document["config"]["neurodock:models"].append({
        "name": "qwen-7b", "source": "hf://Qwen/Qwen2.5-7B-Instruct", "engine": "vllm", "pool": "gpu-l4",
        "revision": "a09a35458c702b33eeacc393d103063234e8bc28", "concurrency": 4,
        "gpusPerReplica": 1, "minReplicas": 1, "maxReplicas": 2})
    path = write_stack(document, name="prod-dr")
    diff = diff_plans(shipped_plans["prod"], run_plan(load_stack_file("prod-dr", path)))
    other = {r.key: r for r in diff.other}
    pool = other["neurodock:cluster:GkeCluster$gcp:container/nodePool:NodePool::cluster-gpu-l4"]
    assert [(c.path, c.old, c.new) for c in pool.changes if not c.location] == [
        ("inputs.autoscaling.totalMaxNodeCount", 9, 12)]
    added = [r.key for r in diff.resources if r.status == "added"]
    assert any(key.endswith("::qwen-7b-server") for key in added)
    result = run_cli("diff", "prod", "prod-dr", "--stack-file", f"prod-dr={path}", "--location-only")
    assert result.returncode == 1, result.stderr
    assert "inputs.autoscaling.totalMaxNodeCount: 9 -> 12  [OTHER]" in result.stdout
    clean = run_cli("diff", "prod", "prod-dr", "--location-only", "--json")
    assert clean.returncode == 0, clean.stderr
    assert all(r["locationOnly"] for r in json.loads(clean.stdout)["resources"])


def test_diff_refuses_a_stack_file_for_neither_stack():
    result = subprocess.run([sys.executable, "-m", "infra.cli", "diff", "prod", "prod-dr", "--stack-file",
                             "staging=/tmp/x.yaml"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "write it as STACK=PATH with STACK one of 'prod', 'prod-dr'" in result.stderr


@pytest.mark.parametrize("stack", [s for s in SHIPPED_STACKS if s != "dev"])
def test_what_holds_data_or_keys_outlives_the_stack(shipped_plans, stack):
    stateful = [r for r in shipped_plans[stack].resources if r.type in STATEFUL and not is_cache(r.inputs)]
    assert stateful, f"{stack} has no stateful resource to check"
    for r in stateful:
        assert r.options.get("retainOnDelete") or r.options.get("protect"), r.urn


def test_a_saved_plan_reads_back_and_an_aliased_resource_is_moved_not_replaced(shipped_plans):
    plan = shipped_plans["staging"]
    document = json.loads(json.dumps(as_json(plan)))
    assert diff_plans(saved_plan(document, plan), plan).resources == []
    # Side A had the route at the stack's root, where B's alias says it was.
    [route] = [r for r in document["resources"] if r["type"].endswith(":HTTPRoute") and "llama" in r["name"]]
    new_urn = route["urn"]
    route["urn"] = route.pop("aliases")[0]
    result = diff_plans(saved_plan(document, plan), plan)
    [moved] = result.resources
    prefix = "urn:pulumi:staging::neurodock::"
    assert (moved.status, moved.key, moved.moved_from, moved.changes) == (
        "moved", new_urn.removeprefix(prefix), route["urn"].removeprefix(prefix), [])
    assert "0 removed, 1 moved, 0 replaced" in render(result)
    # Control: without the alias it is a removal and an addition.
    bare = dataclasses.replace(plan, resources=[dataclasses.replace(r, aliases=[]) for r in plan.resources])
    assert sorted(r.status for r in diff_plans(saved_plan(document, plan), bare).resources) == ["added", "removed"]


def test_the_served_model_refactor_keeps_every_resource_of_a_running_prod(shipped_plans):
    before = (REPO_ROOT / "tests/fixtures/plans/prod-urns-before-served-model.txt").read_text().split()
    before = [u for u in before if u.startswith("urn:")]
    plan = shipped_plans["prod"]
    kept = {r.urn for r in plan.resources} | {a for r in plan.resources for a in r.aliases}
    assert len(before) > 100 and not [u for u in before if u not in kept]
    moved = [u for u in before if u not in {r.urn for r in plan.resources}]
    assert any(u.endswith("HTTPRoute::llama-3-1-8b-route") for u in moved)  # re-parented, under an alias
    # Control: a resource without its alias would not be kept.
    assert "urn:pulumi:prod::neurodock::kubernetes:gateway.networking.k8s.io/v1:HTTPRoute::llama-3-1-8b-route" \
        not in {r.urn for r in plan.resources}


def test_diff_files_compares_two_stack_files_and_cuts_long_values(write_stack, capsys):
    document = stack_document("dev")
    document["config"]["neurodock:models"][0]["engineArgs"]["extraArgs"] = ["--threads", "4"]
    edited = write_stack(document, name="dev")
    assert main(["diff", "--files", str(REPO_ROOT / "stacks/Pulumi.dev.yaml"), str(edited)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("neurodock diff dev dev\n")  # stack names from the file names
    [command] = [line for line in text.splitlines() if ".containers[0].command: " in line]
    assert re.search(r'\.\.\. \(\+\d+ characters: --full shows them\)  \[OTHER\]$', command), command
    assert "0 added, 0 removed, 0 moved" in text


def test_render_full_shows_whole_values_and_marks_cut_ones():
    change = Change("inputs.script", "a" * 150, "b", location=False)
    diff = PlanDiff("a", "b", 1, [], [ResourceDiff("t::r", "changed", [change])])
    assert f'    inputs.script: "{"a" * 150}" -> "b"  [OTHER]\n' in render(diff, full=True)
    cut = f'    inputs.script: "{"a" * 99}... (+52 characters: --full shows them) -> "b"  [OTHER]\n'
    assert cut in render(diff)


@pytest.mark.parametrize("argv, message", [
    (["diff", "prod", "--files", "a.yaml", "b.yaml"], "pass either stacks A B (with --stack-file) or --files"),
    (["diff", "--files", "a.yaml", "b.yaml", "--stack-file", "prod=c.yaml"], "not both"),
    (["diff", "--files", "stacks/Pulumi.dev.yaml", "missing.yaml"], "--files missing.yaml: no such file"),
    (["diff", "prod"], "diff compares two stacks: pass A B, or --files A.yaml B.yaml"),
    (["diff", "prod", "prod", "--stack-file", "prod=a.yaml", "--stack-file", "prod=b.yaml"],
     "--stack-file 'prod=b.yaml': stack 'prod' already reads a.yaml; pass one --stack-file per stack"),
])
def test_diff_refuses_ambiguous_sides_before_planning(monkeypatch, capsys, argv, message):
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setattr(cli, "_load_and_plan", lambda *a, **k: pytest.fail("planned despite a bad argument"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_dr_runbooks_rto_table_is_the_plans_own_estimate(shipped_plans):
    """docs/disaster-recovery.md quotes each model's recovery time from the plan; a change to a model or to
    readiness.throughput that moves the estimate must move the runbook too."""
    import re

    from infra.plan.render import time_to_ready
    from infra.plan.stackfile import REPO_ROOT

    text = (REPO_ROOT / "docs" / "disaster-recovery.md").read_text()
    table = text.split("<!-- rto-table", 1)[1].split("<!-- /rto-table -->", 1)[0]
    quoted = {m[0]: (m[1], int(m[2]), int(m[3])) for m in re.findall(
        r"^\| (\S+) \| ([\d.]+) GB \| (\d+) s \(\d+ min\) \| (\d+) s \(\d+ min\) \|$", table, re.M)}
    rows = time_to_ready(shipped_plans["prod-dr"])
    assert quoted == {r["model"]: (str(r["weightsGb"]), r["recoveryReplica"]["totalS"], r["firstReplica"]["totalS"])
                      for r in rows}
    # The recovery reads the weights bucket: no Hugging Face download in it.
    assert all(r["recoveryReplica"]["weights_s"] == 0 for r in rows)
    assert shipped_plans["prod-dr"].config.weights_bucket == shipped_plans["prod"].config.weights_bucket


def test_a_shared_weights_bucket_is_used_not_created(shipped_plans):
    plan = shipped_plans["prod-dr"]
    bucket = plan.config.weights_bucket.split("://", 1)[1]
    assert not [r for r in plan.resources if r.type == "gcp:storage/bucket:Bucket"]
    mirrors = [r for r in plan.manifests if r.manifest["kind"] == "Job" and "mirror" in r.name]
    assert mirrors and all(f"gs://{bucket}/hf/" in " ".join(r.manifest["spec"]["template"]["spec"]["containers"][0]
                                                          .get("args") or r.manifest["spec"]["template"]["spec"]
                                                          ["containers"][0].get("command")) for r in mirrors)
