"""NVIDIA DCGM exporter: GPU utilisation, memory, power, temperature and XID errors per GPU, with the
pod and namespace of the workload using each GPU (read from the kubelet's pod-resources API).

Pod Security: the exporter reads the kubelet's pod-resources socket (a hostPath) as root, so its
namespace is labelled ``privileged``. On GKE the NVIDIA driver lives under /home/kubernetes/bin/nvidia
on the host and the exporter needs the GPU device files, so there it runs privileged; elsewhere the
NVIDIA container runtime hands it the GPUs and it drops every capability. Without ``SYS_ADMIN`` DCGM's
profiling fields (``DCGM_FI_PROF_*``) are unavailable, so the counters file NeuroDock ships has none.

Labels (exporter 4.8.4, docs/upstream.md): ``gpu``, ``UUID``, ``pci_bus_id``, ``device``, ``modelName``,
(``GPU_I_PROFILE``, ``GPU_I_ID`` on a MIG instance), ``hostname`` (the node name, from ``NODE_NAME``), and
``pod``/``namespace``/``container`` only on series of a GPU a pod holds. The scrape drops the exporter's own
``pod``/``namespace``/``container`` target labels, so an idle GPU's series carry no pod at all rather than the
exporter's.

Shared GPUs: with ``KUBERNETES_VIRTUAL_GPUS`` every pod sharing a GPU gets series of its own (label ``vgpu``,
the time-slicing replica), where otherwise the GPU's series carry one of its pods and the others none
(dcgm-exporter d5e5f51 ``internal/pkg/transformation/kubernetes.go:331-410,662-707,712-912``). Utilisation and
framebuffer use are then each pod's own (NVML's per-process accounting, with ``pod_uid``), beside the GPU's
sample without pod labels; every other field, power and energy included, is the whole GPU's, copied onto each
pod (``metrics.DCGM_PER_PROCESS``). Processes are matched to pods by ``/proc/<pid>/cgroup``
(``pidmapper.go:45-46``), which needs the host's PID namespace: without it every pod would read 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pulumi
import pulumi_kubernetes as k8s

from components import labels
from components.gpu.affinity import gpu_node_affinity, gpu_tolerations
from components.k8s import PART_OF_VALUE, critical_pods_quota, namespace
from components.monitoring.resources import service_monitor
from components.versions import DCGM_EXPORTER_IMAGE

DCGM_NAMESPACE = "nvidia-dcgm-exporter"
PORT = 9400
COUNTERS_DIR = "/etc/neurodock-dcgm"

COUNTERS: tuple[tuple[str, str, str], ...] = (
    # field, Prometheus type, help (the exporter's own, etc/default-counters.csv)
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %)."),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB)."),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB)."),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W)."),
    # mJ since the driver was loaded at this exporter (DCGM 4.6.1); 4.9.0 renames it and moves it to J
    # (metrics.DCGM_ENERGY).
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "Total energy consumption since boot (in mJ)."),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C)."),
    # A true counter per (GPU, XID) since the exporter started (4.8.3+): what increase() alerts need.
    ("DCGM_EXP_XID_ERRORS_TOTAL", "counter", "Total XID errors observed since exporter start."),
)
"""The fields the exporter collects: what the registry (components/monitoring/metrics.py) uses, and no
``DCGM_FI_PROF_*`` (profiling needs SYS_ADMIN)."""


def counters_csv() -> str:
    """The counters file, in the exporter's CSV format (field, type, help)."""
    return "".join(f"{field}, {kind}, {help_}\n" for field, kind, help_ in COUNTERS)


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
        ns = namespace(f"{name}-ns", DCGM_NAMESPACE, parent=self, pod_security="privileged", component="gpu")
        match = {labels.NAME: "dcgm-exporter"}
        object_labels = {**match, labels.PART_OF: PART_OF_VALUE, labels.COMPONENT: "gpu"}
        counters = k8s.core.v1.ConfigMap(
            f"{name}-counters",
            metadata=k8s.meta.v1.ObjectMetaArgs(namespace=ns.metadata.name, labels=object_labels),
            data={"counters.csv": counters_csv()},
            opts=pulumi.ResourceOptions(parent=self),
        )
        admitted = []
        if args.driver_layout is DriverLayout.GKE:
            # GKE refuses system-node-critical pods outside kube-system without this quota.
            admitted.append(critical_pods_quota(f"{name}-critical-pods", ns.metadata.name, parent=self))
        daemon_set = k8s.apps.v1.DaemonSet(
            f"{name}-ds",
            metadata=k8s.meta.v1.ObjectMetaArgs(namespace=ns.metadata.name, labels=object_labels),
            spec=k8s.apps.v1.DaemonSetSpecArgs(
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=match),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=match),
                    spec=_pod_spec(args, counters.metadata.name),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=admitted),
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
                            parent=self, crds=args.crds, relabelings=SCRAPE_RELABELINGS)
        self.daemon_set_name = daemon_set.metadata.name
        self.register_outputs({"daemonSetName": self.daemon_set_name})


SCRAPE_RELABELINGS = [
    # The exporter's own pod, namespace and container are target labels; they would stand in for the
    # missing pod labels of idle GPUs, or push a GPU's real ones aside to exported_*. Drop them, and
    # keep the node (also in the exporter's `hostname` label) and the exporter pod under other names.
    {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"},
    {"sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "exporter_pod"},
    {"action": "labeldrop", "regex": "pod|namespace|container"},
]


def _pod_spec(args: DcgmExporterArgs, counters: pulumi.Input[str]) -> k8s.core.v1.PodSpecArgs:
    gke = args.driver_layout is DriverLayout.GKE
    env = [
        k8s.core.v1.EnvVarArgs(name="DCGM_EXPORTER_LISTEN", value=f":{PORT}"),
        k8s.core.v1.EnvVarArgs(name="DCGM_EXPORTER_COLLECTORS", value=f"{COUNTERS_DIR}/counters.csv"),
        # Attribute each GPU's metrics to the pod and namespace using it.
        k8s.core.v1.EnvVarArgs(name="DCGM_EXPORTER_KUBERNETES", value="true"),
        # ...to every pod of a time-shared GPU, not only one of them (the module's docstring).
        k8s.core.v1.EnvVarArgs(name="KUBERNETES_VIRTUAL_GPUS", value="true"),
        # The `hostname` label: the node's name, not the pod's.
        k8s.core.v1.EnvVarArgs(name="NODE_NAME", value_from=k8s.core.v1.EnvVarSourceArgs(
            field_ref=k8s.core.v1.ObjectFieldSelectorArgs(field_path="spec.nodeName"))),
    ]
    mounts = [k8s.core.v1.VolumeMountArgs(name="pod-resources", mount_path="/var/lib/kubelet/pod-resources",
                                          read_only=True),
              k8s.core.v1.VolumeMountArgs(name="counters", mount_path=COUNTERS_DIR, read_only=True)]
    volumes = [k8s.core.v1.VolumeArgs(name="pod-resources", host_path=k8s.core.v1.HostPathVolumeSourceArgs(
        path="/var/lib/kubelet/pod-resources", type="Directory")),
               k8s.core.v1.VolumeArgs(name="counters", config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(name=counters))]
    if gke:
        env += [
            k8s.core.v1.EnvVarArgs(name="LD_LIBRARY_PATH", value="/usr/local/nvidia/lib64"),
            # GKE's device plugin hands pods GPUs by device name (nvidia0...), not UUID: without this
            # no GPU is ever matched to the pod holding it.
            k8s.core.v1.EnvVarArgs(name="DCGM_EXPORTER_KUBERNETES_GPU_ID_TYPE", value="device-name"),
        ]
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
        # Per-pod attribution on shared GPUs reads each GPU process's /proc/<pid>/cgroup (world-readable):
        # the host's PID namespace, in a namespace already privileged for the exporter; no capability is added.
        host_pid=True,
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
