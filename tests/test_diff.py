"""`neurodock diff` and region independence: the DR stack equals prod but for its location, moving
any cloud stack to another region changes nothing but location-derived values, other edits are
reported as such, and what holds data survives a stack's destruction."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from neurodock_policies.prod_stateful_resources_retained import STATEFUL

from infra.diff import diff_plans
from infra.plan.engine import run_plan
from infra.plan.stackfile import load_stack_file
from tests.conftest import SHIPPED_STACKS, stack_document


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
    "staging": ("us-east-1", ["us-east-1a", "us-east-1b", "us-east-1c"]),
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
    document["config"]["neurodock:nodePools"][1]["maxNodes"] = 9
    document["config"]["neurodock:models"].append({
        "name": "qwen-7b", "source": "hf://Qwen/Qwen2.5-7B-Instruct", "engine": "vllm", "pool": "gpu-l4",
        "gpusPerReplica": 1, "minReplicas": 1, "maxReplicas": 2})
    path = write_stack(document, name="prod-dr")
    diff = diff_plans(shipped_plans["prod"], run_plan(load_stack_file("prod-dr", path)))
    other = {r.key: r for r in diff.other}
    pool = other["neurodock:cluster:GkeCluster$gcp:container/nodePool:NodePool::cluster-gpu-l4"]
    assert [(c.path, c.old, c.new) for c in pool.changes if not c.location] == [
        ("inputs.autoscaling.totalMaxNodeCount", 8, 9)]
    added = [r.key for r in diff.resources if r.status == "added"]
    assert any(key.endswith("::qwen-7b-server") for key in added)
    result = subprocess.run([sys.executable, "-m", "infra.cli", "diff", "prod", "prod-dr", "--stack-file",
                             f"prod-dr={path}", "--location-only"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    assert "inputs.autoscaling.totalMaxNodeCount: 8 -> 9  [OTHER]" in result.stdout
    clean = subprocess.run([sys.executable, "-m", "infra.cli", "diff", "prod", "prod-dr", "--location-only",
                            "--json"], capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stderr
    assert all(r["locationOnly"] for r in json.loads(clean.stdout)["resources"])


def test_diff_refuses_a_stack_file_for_neither_stack():
    result = subprocess.run([sys.executable, "-m", "infra.cli", "diff", "prod", "prod-dr", "--stack-file",
                             "staging=/tmp/x.yaml"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "write it as STACK=PATH with STACK one of 'prod', 'prod-dr'" in result.stderr


@pytest.mark.parametrize("stack", [s for s in SHIPPED_STACKS if s != "dev"])
def test_what_holds_data_or_keys_outlives_the_stack(shipped_plans, stack):
    stateful = [r for r in shipped_plans[stack].resources if r.type in STATEFUL]
    assert stateful, f"{stack} has no stateful resource to check"
    for r in stateful:
        assert r.options.get("retainOnDelete") or r.options.get("protect"), r.urn
