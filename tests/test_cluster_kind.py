"""kind: the rendered cluster config gives each pool the labels and taints it has on the clouds."""

from __future__ import annotations

import pytest
import yaml

from components.cluster.base import PoolRole
from components.cluster.kind import KindClusterArgs, render_kind_config
from components.versions import KIND_NODE_IMAGES
from tests.pools import pool_args


def render(**kwargs) -> dict:
    pools = (
        pool_args(name="system", role=PoolRole.SYSTEM),
        pool_args(name="gpu-l4", role=PoolRole.GPU, gpu_type="nvidia-l4", gpu_count=1, min_nodes=2),
    )
    args = {"cluster_name": "c", "kubernetes_version": "1.33", "node_pools": pools, **kwargs}
    return yaml.safe_load(render_kind_config(KindClusterArgs(**args)))


def test_each_pool_becomes_labelled_workers():
    config = render()
    workers = [n for n in config["nodes"] if n["role"] == "worker"]
    assert len(workers) == 3  # system: 1, gpu-l4: min_nodes 2
    assert [w["labels"]["neurodock.io/pool"] for w in workers] == ["system", "gpu-l4", "gpu-l4"]
    assert workers[1]["labels"]["neurodock.io/gpu-type"] == "nvidia-l4"


def test_gpu_pool_workers_carry_the_gpu_taint_and_others_do_not():
    workers = [n for n in render()["nodes"] if n["role"] == "worker"]
    assert "kubeadmConfigPatches" not in workers[0]
    patch = yaml.safe_load(workers[1]["kubeadmConfigPatches"][0])
    assert patch["kind"] == "JoinConfiguration"
    taint = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    assert patch["nodeRegistration"]["taints"] == [taint]


def test_nodes_use_the_pinned_image_by_digest():
    images = {n["image"] for n in render()["nodes"]}
    assert images == {KIND_NODE_IMAGES["1.33"]}
    assert "@sha256:" in KIND_NODE_IMAGES["1.33"]


def test_a_version_without_a_pinned_image_is_rejected():
    with pytest.raises(KeyError):
        render(kubernetes_version="1.20")


def test_a_pool_edit_replaces_the_kind_cluster_deleting_the_old_one_first(shipped_plans, write_stack):
    """kind refuses to create a cluster whose name is taken, so the Command that creates it is replaced
    delete-first; a pool edit changes its trigger, which is what replaces it."""
    from tests.conftest import plan_with

    [command] = [r for r in shipped_plans["dev"].resources if r.type == "command:local:Command"]
    assert command.options["deleteBeforeReplace"] is True
    assert command.inputs["delete"].startswith("kind delete cluster --name ")
    edited = plan_with(write_stack, "dev", lambda c: c["neurodock:nodePools"].append(
        {"name": "extra", "role": "cpu", "minNodes": 1, "maxNodes": 1}))
    [after] = [r for r in edited.resources if r.type == "command:local:Command"]
    assert after.name == command.name and after.options["deleteBeforeReplace"] is True
    assert after.inputs["triggers"] != command.inputs["triggers"]
