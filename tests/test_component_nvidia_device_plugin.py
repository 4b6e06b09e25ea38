"""NvidiaDevicePlugin built alone: its namespace, configuration and one DaemonSet per sharing variant of
the GPU pools, and the InputPropertiesError of a cluster with no GPU pool."""

from __future__ import annotations

from components.cluster.base import PoolRole, pool_facts
from components.gpu.device_plugin import NvidiaDevicePlugin, NvidiaDevicePluginArgs
from tests.pools import pool_args
from tests.test_component_harness import build, input_errors

SYSTEM = pool_facts(pool_args(name="system", role=PoolRole.SYSTEM), real_gpus=True)
GPU = pool_facts(pool_args(name="gpu-l4", role=PoolRole.GPU, gpu_type="nvidia-l4", gpu_count=1), real_gpus=True)


def test_minimal_args_build_the_plugin_for_the_gpu_pool():
    built = build(lambda: NvidiaDevicePlugin("gpu-device-plugin", NvidiaDevicePluginArgs(pools=(SYSTEM, GPU))))
    assert built.resources[0].type == "neurodock:gpu:NvidiaDevicePlugin"
    assert built.types == {"kubernetes:core/v1:Namespace", "kubernetes:core/v1:ConfigMap",
                           "kubernetes:apps/v1:DaemonSet"}
    assert len(built.of_type("kubernetes:apps/v1:DaemonSet")) == 1


def test_a_cluster_without_a_gpu_pool_is_refused():
    assert input_errors(lambda: NvidiaDevicePlugin("gpu-device-plugin", NvidiaDevicePluginArgs(pools=(SYSTEM,)))) == [
        ("pools", "NvidiaDevicePluginArgs.pools has no GPU pool; do not install the plugin")]
