"""The NVIDIA device plugin: advertises each node's GPUs to the kubelet as ``nvidia.com/gpu``.

Typed resources rather than the Helm chart, so plans, policies and reviews see every field.
One DaemonSet per distinct sharing setup: exclusive GPUs, and one per time-sliced pool, each
reading its own config, so no config-manager sidecar has to watch node labels.

Pod Security: the plugin registers a socket in the kubelet's ``/var/lib/kubelet/device-plugins``
host directory, which needs a hostPath volume and root. Its namespace is therefore labelled
``privileged``; the container still drops every capability and cannot escalate.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components import labels
from components.cluster.base import PoolFacts, SharingStrategy
from components.errors import InputProblems
from components.gpu.affinity import gpu_node_affinity, gpu_tolerations
from components.k8s import PART_OF_VALUE, namespace
from components.versions import NVIDIA_DEVICE_PLUGIN_IMAGE

DEVICE_PLUGIN_NAMESPACE = "nvidia-device-plugin"
CONFIG_PATH = "/etc/nvidia-device-plugin"


@dataclass(frozen=True, kw_only=True)
class NvidiaDevicePluginArgs:
    pools: tuple[PoolFacts, ...]
    """The cluster's pools; the plugin runs on the GPU ones."""
    image: str = NVIDIA_DEVICE_PLUGIN_IMAGE
    """Plugin image (default: the pin in versions.py)."""


class NvidiaDevicePlugin(pulumi.ComponentResource):
    """Namespace, config and the plugin DaemonSets."""

    daemon_sets: list[k8s.apps.v1.DaemonSet]

    def __init__(self, name: str, args: NvidiaDevicePluginArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("neurodock:gpu:NvidiaDevicePlugin", name, None, opts)
        gpu_pools = [p for p in args.pools if p.gpu_type]
        problems = InputProblems()
        if not gpu_pools:
            problems.add("pools", "NvidiaDevicePluginArgs.pools has no GPU pool; do not install the plugin")
        problems.raise_any()
        ns = namespace(f"{name}-ns", DEVICE_PLUGIN_NAMESPACE, parent=self, pod_security="privileged", component="gpu")
        variants = plugin_configs(gpu_pools)
        config = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata=k8s.meta.v1.ObjectMetaArgs(namespace=ns.metadata.name, labels={labels.PART_OF: PART_OF_VALUE}),
            data={f"{variant}.yaml": yaml.safe_dump(document) for variant, (document, _) in variants.items()},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.daemon_sets = [
            self._daemon_set(f"{name}-{variant}", ns, config, variant, pools, args.image)
            for variant, (_, pools) in variants.items()
        ]
        self.register_outputs({})

    def _daemon_set(self, resource_name: str, ns: k8s.core.v1.Namespace, config: k8s.core.v1.ConfigMap,
                    variant: str, pools: tuple[str, ...], image: str) -> k8s.apps.v1.DaemonSet:
        match = {labels.NAME: "nvidia-device-plugin", labels.INSTANCE: variant}
        return k8s.apps.v1.DaemonSet(
            resource_name,
            metadata=k8s.meta.v1.ObjectMetaArgs(namespace=ns.metadata.name,
                                                labels={**match, labels.PART_OF: PART_OF_VALUE}),
            spec=k8s.apps.v1.DaemonSetSpecArgs(
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=match),
                update_strategy=k8s.apps.v1.DaemonSetUpdateStrategyArgs(type="RollingUpdate"),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=match),
                    spec=k8s.core.v1.PodSpecArgs(
                        priority_class_name="system-node-critical",
                        affinity=gpu_node_affinity(pools),
                        tolerations=gpu_tolerations(),
                        automount_service_account_token=False,
                        security_context=k8s.core.v1.PodSecurityContextArgs(
                            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault")),
                        containers=[k8s.core.v1.ContainerArgs(
                            name="plugin",
                            image=image,
                            env=[
                                k8s.core.v1.EnvVarArgs(name="CONFIG_FILE", value=f"{CONFIG_PATH}/{variant}.yaml"),
                                # A plugin that cannot reach the driver exits and restarts (with back-off)
                                # instead of running Ready with no GPU advertised: its DaemonSet's
                                # readiness is then what NeuroDockNVIDIAdevicepluginDown watches.
                                k8s.core.v1.EnvVarArgs(name="FAIL_ON_INIT_ERROR", value="true"),
                            ],
                            security_context=k8s.core.v1.SecurityContextArgs(
                                allow_privilege_escalation=False,
                                capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
                            ),
                            resources=k8s.core.v1.ResourceRequirementsArgs(
                                requests={"cpu": "50m", "memory": "64Mi"}, limits={"memory": "256Mi"}),
                            volume_mounts=[
                                k8s.core.v1.VolumeMountArgs(name="device-plugins",
                                                            mount_path="/var/lib/kubelet/device-plugins"),
                                k8s.core.v1.VolumeMountArgs(name="config", mount_path=CONFIG_PATH, read_only=True),
                            ],
                        )],
                        volumes=[
                            k8s.core.v1.VolumeArgs(
                                name="device-plugins",
                                host_path=k8s.core.v1.HostPathVolumeSourceArgs(
                                    path="/var/lib/kubelet/device-plugins", type="Directory"),
                            ),
                            k8s.core.v1.VolumeArgs(name="config", config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                                name=config.metadata.name)),
                        ],
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )


def plugin_configs(gpu_pools: list[PoolFacts]) -> dict[str, tuple[dict, tuple[str, ...]]]:
    """Config variant name -> (plugin config document, pools using it). Pure, for tests."""
    base_flags = {"migStrategy": "none", "failOnInitError": True}
    exclusive = tuple(p.name for p in gpu_pools
                      if not p.gpu_sharing or p.gpu_sharing.strategy is not SharingStrategy.TIME_SHARING)
    variants: dict[str, tuple[dict, tuple[str, ...]]] = {}
    if exclusive:
        variants["exclusive"] = ({"version": "v1", "flags": base_flags}, exclusive)
    for pool in gpu_pools:
        sharing = pool.gpu_sharing
        if sharing and sharing.strategy is SharingStrategy.TIME_SHARING:
            variants[f"shared-{pool.name}"] = ({
                "version": "v1",
                "flags": base_flags,
                "sharing": {"timeSlicing": {"resources": [
                    {"name": "nvidia.com/gpu", "replicas": sharing.max_shared_clients}]}},
            }, (pool.name,))
    return variants
