"""NVIDIA DCGM exporter: GPU utilisation, memory, power, temperature and XID errors per GPU, with the
pod and namespace of the workload using each GPU (read from the kubelet's pod-resources API).

Pod Security: the exporter reads the kubelet's pod-resources socket (a hostPath) as root, so its
namespace is labelled ``privileged``. On GKE the NVIDIA driver lives under /home/kubernetes/bin/nvidia
on the host and the exporter needs the GPU device files, so there it runs privileged; elsewhere the
NVIDIA container runtime hands it the GPUs and it drops every capability.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pulumi
import pulumi_kubernetes as k8s

from components import labels
from components.gpu.affinity import gpu_node_affinity, gpu_tolerations
from components.k8s import PART_OF_VALUE, namespace
from components.monitoring.resources import service_monitor
from components.versions import DCGM_EXPORTER_IMAGE

NAMESPACE = "nvidia-dcgm-exporter"
PORT = 9400


class DriverLayout(StrEnum):
    CONTAINER_RUNTIME = "containerRuntime"
    """The NVIDIA container runtime injects driver and devices (EKS AL2023 NVIDIA AMI, kind)."""
    GKE = "gke"
    """GKE-managed drivers on the host, under /home/kubernetes/bin/nvidia."""


@dataclass(frozen=True, kw_only=True)
class DcgmExporterArgs:
    driver_layout: DriverLayout = DriverLayout.CONTAINER_RUNTIME
    """How the exporter reaches the driver (default: through the container runtime)."""
    crds: pulumi.Resource | None = None
    """The monitoring release providing the ServiceMonitor CRD; no ServiceMonitor without it."""
    image: str = DCGM_EXPORTER_IMAGE
    """Exporter image (default: the pin in versions.py)."""


class DcgmExporter(pulumi.ComponentResource):
    """Namespace, DaemonSet, Service and ServiceMonitor of the DCGM exporter."""

    daemon_set_name: pulumi.Output[str]

    def __init__(self, name: str, args: DcgmExporterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("neurodock:gpu:DcgmExporter", name, None, opts)
        ns = namespace(f"{name}-ns", NAMESPACE, parent=self, pod_security="privileged", component="gpu")
        match = {labels.NAME: "dcgm-exporter"}
        object_labels = {**match, labels.PART_OF: PART_OF_VALUE, labels.COMPONENT: "gpu"}
        daemon_set = k8s.apps.v1.DaemonSet(
            f"{name}-ds",
            metadata=k8s.meta.v1.ObjectMetaArgs(namespace=ns.metadata.name, labels=object_labels),
            spec=k8s.apps.v1.DaemonSetSpecArgs(
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=match),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=match),
                    spec=_pod_spec(args),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        k8s.core.v1.Service(
            f"{name}-svc",
            metadata=k8s.meta.v1.ObjectMetaArgs(namespace=ns.metadata.name, labels=object_labels),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector=match,
                ports=[k8s.core.v1.ServicePortArgs(name="metrics", port=PORT, target_port="metrics")],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        if args.crds is not None:
            service_monitor(f"{name}-monitor", namespace=ns.metadata.name, match_labels=match, port="metrics",
                            parent=self, crds=args.crds, honor_labels=True)
        self.daemon_set_name = daemon_set.metadata.name
        self.register_outputs({"daemonSetName": self.daemon_set_name})


def _pod_spec(args: DcgmExporterArgs) -> k8s.core.v1.PodSpecArgs:
    gke = args.driver_layout is DriverLayout.GKE
    env = [
        k8s.core.v1.EnvVarArgs(name="DCGM_EXPORTER_LISTEN", value=f":{PORT}"),
        # Attribute each GPU's metrics to the pod and namespace using it.
        k8s.core.v1.EnvVarArgs(name="DCGM_EXPORTER_KUBERNETES", value="true"),
        k8s.core.v1.EnvVarArgs(name="NODE_NAME", value_from=k8s.core.v1.EnvVarSourceArgs(
            field_ref=k8s.core.v1.ObjectFieldSelectorArgs(field_path="spec.nodeName"))),
    ]
    mounts = [k8s.core.v1.VolumeMountArgs(name="pod-resources", mount_path="/var/lib/kubelet/pod-resources",
                                          read_only=True)]
    volumes = [k8s.core.v1.VolumeArgs(name="pod-resources", host_path=k8s.core.v1.HostPathVolumeSourceArgs(
        path="/var/lib/kubelet/pod-resources", type="Directory"))]
    if gke:
        env.append(k8s.core.v1.EnvVarArgs(name="LD_LIBRARY_PATH", value="/usr/local/nvidia/lib64"))
        mounts.append(k8s.core.v1.VolumeMountArgs(name="nvidia", mount_path="/usr/local/nvidia", read_only=True))
        volumes.append(k8s.core.v1.VolumeArgs(name="nvidia", host_path=k8s.core.v1.HostPathVolumeSourceArgs(
            path="/home/kubernetes/bin/nvidia", type="Directory")))
        security = k8s.core.v1.SecurityContextArgs(privileged=True, run_as_user=0)
    else:
        security = k8s.core.v1.SecurityContextArgs(
            run_as_user=0,
            allow_privilege_escalation=False,
            capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
        )
    probe = k8s.core.v1.HTTPGetActionArgs(path="/health", port="metrics")
    return k8s.core.v1.PodSpecArgs(
        priority_class_name="system-node-critical",
        affinity=gpu_node_affinity(),
        tolerations=gpu_tolerations(),
        automount_service_account_token=False,
        security_context=k8s.core.v1.PodSecurityContextArgs(
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault")),
        containers=[k8s.core.v1.ContainerArgs(
            name="exporter",
            image=args.image,
            env=env,
            ports=[k8s.core.v1.ContainerPortArgs(name="metrics", container_port=PORT)],
            security_context=security,
            resources=k8s.core.v1.ResourceRequirementsArgs(
                requests={"cpu": "100m", "memory": "128Mi"}, limits={"memory": "512Mi"}),
            readiness_probe=k8s.core.v1.ProbeArgs(http_get=probe, initial_delay_seconds=15, period_seconds=10),
            liveness_probe=k8s.core.v1.ProbeArgs(http_get=probe, initial_delay_seconds=45, period_seconds=20),
            volume_mounts=mounts,
        )],
        volumes=volumes,
    )
