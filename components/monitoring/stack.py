"""kube-prometheus-stack: Prometheus Operator, Prometheus, Alertmanager, Grafana, kube-state-metrics."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import labels
from components.charts import ChartSource
from components.errors import InputProblems
from components.k8s import PART_OF_VALUE, RESTRICTED_CONTAINER_SECURITY, namespace
from components.monitoring.alertmanager import (
    ROLLBACK_RECEIVER,
    SECRET_NAME,
    AlertRoute,
    CanaryRollback,
    Heartbeat,
    Receiver,
    alertmanager_config,
)
from components.monitoring.dashboards import DASHBOARDS
from components.monitoring.rollback_relay_deploy import RollbackRelay, RollbackRelayArgs, relay_url
from components.versions import KPS_CRD_UPGRADE_BUSYBOX_TAG

MONITORING_NAMESPACE = "monitoring"
RELEASE = "kps"
SELECTED = {"release": RELEASE}
"""The label Prometheus selects ServiceMonitors, PodMonitors and PrometheusRules on: the chart's own
carry it (its ``release`` label), and so must every monitoring resource NeuroDock creates."""


ALERTMANAGER_POD_LABELS = {"app.kubernetes.io/name": "alertmanager",
                           "alertmanager": f"{RELEASE}-kube-prometheus-stack-alertmanager"}
"""Labels of Alertmanager's pods: those the chart's Alertmanager Service selects them by (kube-prometheus-stack
82.6.0 ``templates/alertmanager/service.yaml:56-58``: ``app.kubernetes.io/name: alertmanager`` and ``alertmanager:``
the Alertmanager resource's name, ``<fullname>-alertmanager`` in ``_helpers.tpl:47-53``, the fullname being
``<release>-kube-prometheus-stack``). tests/test_rollout_rollback.py checks them against the rendered Service."""


@dataclass(frozen=True, kw_only=True)
class AlertingCanaryRollback:
    """The rollback relay (``components.monitoring.rollback_relay_deploy``) and Alertmanager's route to it."""

    repository: str
    """The GitHub repository (owner/name) whose rollback workflow the relay starts."""
    stack: str
    """The stack's name, sent to the workflow."""
    token_key: str
    """The GitHub token's key in the receivers' Secret (``Alerting.credentials``)."""
    label: tuple[str, str]
    """The alert label and value asking for a rollback (``alerts.ROLLBACK_LABEL``)."""


@dataclass(frozen=True, kw_only=True)
class Alerting:
    """Alertmanager's receivers and routes (see :mod:`components.monitoring.alertmanager`)."""

    receivers: tuple[Receiver, ...] = ()
    routes: tuple[AlertRoute, ...] = ()
    default_receiver: str | None = None
    """Receiver of what no route takes (default: the first receiver; ``null`` with none)."""
    repeat_interval: str
    """How often Alertmanager sends a still-firing alert again (its ``repeat_interval``, e.g. ``4h``)."""
    credentials: pulumi.Input[str] | None = None
    """Secret JSON object of receiver name to credential (a receiver with one cannot deliver without it); the
    heartbeat's is its URL."""
    heartbeat: Heartbeat | None = None
    """The dead man's switch that hears the Watchdog (default none: the Watchdog notifies nobody)."""
    canary_rollback: AlertingCanaryRollback | None = None
    """Where rollback requests go (default none: a canary's burn-rate alert reaches people only)."""


INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
"""The well-known label the kubelet sets to the node's machine type from its cloud provider (Kubernetes docs,
"Well-Known Labels, Annotations and Taints": node.kubernetes.io/instance-type)."""
NODE_LABELS_EXPORTED = (labels.POOL_LABEL, labels.ROLE_LABEL, labels.GPU_TYPE_LABEL, INSTANCE_TYPE_LABEL)
"""Node labels kube-state-metrics exports on ``kube_node_labels``: the cost rules price a node by its
``node.kubernetes.io/instance-type`` (``components.monitoring.cost``)."""


class Platform(StrEnum):
    """Where the cluster runs, which decides what of the control plane can be scraped."""

    EKS = "eks"
    GKE = "gke"
    KIND = "kind"


@dataclass(frozen=True, kw_only=True)
class MonitoringStackArgs:
    chart: ChartSource
    """Where the release reads kube-prometheus-stack (``versions.KUBE_PROMETHEUS_STACK``)."""
    platform: Platform
    """The cluster's platform: what of its control plane Prometheus can reach."""
    storage_class: str
    """Storage class of Prometheus' volume."""
    retention: str
    """Prometheus retention, e.g. ``15d``."""
    storage_gib: int
    """Prometheus volume size in GiB (at least 1)."""
    grafana: bool
    """Install Grafana; its Service is ClusterIP only."""
    timeout_s: int = 900
    """How long `pulumi up` waits for the release to become ready, in seconds (default 900)."""
    grafana_admin_password: pulumi.Input[str] | None = None
    """Grafana's admin password (default: a generated one, kept in the stack's state as a secret)."""
    alerting: Alerting
    """Who hears about alerts (no receivers: nobody, the chart's ``null`` receiver)."""


class MonitoringStack(pulumi.ComponentResource):
    """The monitoring namespace and the kube-prometheus-stack release."""

    namespace: pulumi.Output[str]
    grafana_url: pulumi.Output[str] | None
    grafana_admin_password: pulumi.Output[str] | None
    """Secret."""
    prometheus_url: pulumi.Output[str]
    release: k8s.helm.v3.Release
    """The release; custom resources of its CRDs (ServiceMonitor, PrometheusRule) depend on it."""

    def __init__(self, name: str, args: MonitoringStackArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("neurodock:monitoring:MonitoringStack", name, None, opts)
        self.grafana_admin_password = None
        problems = InputProblems()
        if args.storage_gib < 1:
            problems.add("storage_gib", "MonitoringStackArgs.storage_gib must be at least 1")
        problems.raise_any()
        # Node exporter needs host access (hostPID, hostNetwork, hostPath), so this namespace is
        # labelled privileged; the workloads themselves stay as locked down as the chart allows.
        ns = namespace(f"{name}-ns", MONITORING_NAMESPACE, parent=self, pod_security="privileged",
                       component="monitoring")
        admin_secret = self._grafana_admin(name, ns, args) if args.grafana else None
        receiver_secret = self._receiver_credentials(name, ns, args.alerting)
        release = k8s.helm.v3.Release(
            f"{name}-kps",
            name=RELEASE,
            **args.chart.release_args(),
            namespace=ns.metadata.name,
            values=_values(args, admin_secret, receiver_secret),
            timeout=args.timeout_s,
            # Roll back a failed upgrade instead of leaving a half-applied release.
            atomic=True,
            cleanup_on_fail=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.release = release
        rollback = args.alerting.canary_rollback
        if rollback is not None:
            RollbackRelay(f"{name}-rollback", RollbackRelayArgs(
                namespace=ns.metadata.name, repository=rollback.repository, stack=rollback.stack,
                # Offline (no credentials given), the Secret is the one `pulumi up` creates, by its fixed name.
                token_secret=receiver_secret if receiver_secret is not None else SECRET_NAME,
                token_key=rollback.token_key, caller_key=ROLLBACK_RECEIVER,
                alertmanager_pod_labels=dict(ALERTMANAGER_POD_LABELS),
            ), opts=pulumi.ResourceOptions(parent=self))
        self._dashboards(name, ns)
        self.namespace = release.status.namespace
        self.prometheus_url = pulumi.Output.concat(
            "http://", RELEASE, "-kube-prometheus-stack-prometheus.", MONITORING_NAMESPACE, ".svc.cluster.local:9090")
        self.grafana_url = (
            pulumi.Output.concat("http://", RELEASE, "-grafana.", MONITORING_NAMESPACE, ".svc.cluster.local")
            if args.grafana else None
        )
        self.register_outputs({"namespace": self.namespace, "prometheusUrl": self.prometheus_url,
                               "grafanaUrl": self.grafana_url})

    def _grafana_admin(self, name: str, ns: k8s.core.v1.Namespace, args: MonitoringStackArgs) -> pulumi.Output[str]:
        password = args.grafana_admin_password
        if password is None:
            password = random.RandomPassword(
                f"{name}-grafana-admin", length=32, special=False,
                opts=pulumi.ResourceOptions(parent=self),
            ).result
        self.grafana_admin_password = pulumi.Output.secret(password)
        secret = k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata=k8s.meta.v1.ObjectMetaArgs(namespace=ns.metadata.name),
            type="Opaque",
            string_data={"admin-user": "admin", "admin-password": self.grafana_admin_password},
            opts=pulumi.ResourceOptions(parent=self),
        )
        return secret.metadata.name

    def _receiver_credentials(self, name: str, ns: k8s.core.v1.Namespace,
                              alerting: Alerting) -> pulumi.Output[str] | None:
        """The Secret Alertmanager reads each receiver's credential from, one key per receiver."""
        if alerting.credentials is None or not (any(r.has_secret for r in alerting.receivers)
                                                or alerting.heartbeat is not None
                                                or alerting.canary_rollback is not None):
            return None
        data = pulumi.Output.secret(alerting.credentials).apply(json.loads)
        if alerting.canary_rollback is not None:
            # What Alertmanager authenticates to the rollback relay with, under the relay's receiver name (which no
            # receiver and no tokenKey may take): generated, never typed, kept in the same Secret Alertmanager mounts.
            caller = random.RandomPassword(f"{name}-rollback-caller", length=40, special=False,
                                           opts=pulumi.ResourceOptions(parent=self)).result
            data = pulumi.Output.all(data, caller).apply(lambda a: {**a[0], ROLLBACK_RECEIVER: a[1]})
        secret = k8s.core.v1.Secret(
            f"{name}-alert-receivers",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=SECRET_NAME, namespace=ns.metadata.name,
                                                labels={labels.PART_OF: PART_OF_VALUE}),
            type="Opaque",
            string_data=pulumi.Output.secret(data),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return secret.metadata.name

    def _dashboards(self, name: str, ns: k8s.core.v1.Namespace) -> None:
        """One ConfigMap per dashboard; Grafana's sidecar loads every ConfigMap with the label."""
        for file_name, build in DASHBOARDS.items():
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard-{file_name.removesuffix('.json')}",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    namespace=ns.metadata.name,
                    labels={labels.GRAFANA_DASHBOARD_LABEL: "1", labels.PART_OF: PART_OF_VALUE},
                ),
                data={file_name: json.dumps(build(), indent=1)},
                opts=pulumi.ResourceOptions(parent=self),
            )


RETENTION_SIZE_FRACTION = 0.8
"""Share of Prometheus' volume its blocks may fill (Prometheus docs/storage.md: at most 80-85%)."""


def retention_size(storage_gib: int) -> str:
    """Size retention for a volume of ``storage_gib`` GiB, in the operator's ByteSize (base 2)."""
    return f"{max(1, int(storage_gib * RETENTION_SIZE_FRACTION * 1024))}MiB"


def _resources(cpu: str, memory: str, memory_limit: str | None = None) -> dict:
    """Requests, and a memory limit (no CPU limit: throttling a collector loses samples)."""
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory_limit or memory}}


def _values(args: MonitoringStackArgs, admin_secret: pulumi.Input[str] | None,
            receiver_secret: pulumi.Input[str] | None) -> dict:
    selected = {"matchLabels": dict(SELECTED)}
    alerting = args.alerting
    rollback = alerting.canary_rollback
    config = alertmanager_config(
        alerting.receivers, alerting.routes, alerting.default_receiver, alerting.repeat_interval, alerting.heartbeat,
        canary_rollback=None if rollback is None else CanaryRollback(
            receiver=ROLLBACK_RECEIVER, url=relay_url(MONITORING_NAMESPACE), label=rollback.label))
    return {
        **_control_plane(args.platform),
        "alertmanager": {
            # Merged over the chart's default config: its global settings and templates stay; the
            # inhibition rules, routing tree and receivers are NeuroDock's.
            "config": config,
            "alertmanagerSpec": {
                "resources": _resources("10m", "64Mi", "256Mi"),
                # Mounted at /etc/alertmanager/secrets/<name>/, where the receivers' *_file settings point.
                "secrets": [receiver_secret] if receiver_secret is not None else [],
            },
        },
        # Helm installs a chart's CRDs on the first install only, never on an upgrade (the chart's README, "Upgrading
        # Chart"), so a chart bump would run the new operator against the old CRDs. The chart's own upgrade Job, a
        # pre-install/pre-upgrade hook, applies the CRDs it ships server-side, taking over the fields Helm set at the
        # first install (--force-conflicts). Its pod is restricted as the chart sets it (uid 65534, no privilege
        # escalation, every capability dropped, RuntimeDefault seccomp); kubectl is the cluster's own version.
        "crds": {"upgradeJob": {
            "enabled": True,
            "forceConflicts": True,
            "image": {"busybox": {"registry": "docker.io", "repository": "library/busybox",
                                  "tag": KPS_CRD_UPGRADE_BUSYBOX_TAG}},
            # kubectl holds the 4 MB of CRDs it applies, parsed.
            "resources": _resources("50m", "128Mi", "512Mi"),
        }},
        "prometheusOperator": {
            "resources": _resources("100m", "128Mi", "256Mi"),
            "admissionWebhooks": {"patch": {"resources": _resources("10m", "32Mi", "64Mi")}},
        },
        # kube-state-metrics grows with the number of objects; the node exporter with the node's
        # devices (kube-prometheus's own manifests give it 180Mi).
        "kube-state-metrics": {
            "resources": _resources("50m", "128Mi", "512Mi"),
            # kube_node_labels carries only allow-listed labels (as label_neurodock_io_pool...): the
            # GPU alerts and capacity panels join nodes to their pool with it.
            "metricLabelsAllowlist": [f"nodes=[{','.join(NODE_LABELS_EXPORTED)}]"],
        },
        "prometheus-node-exporter": {
            "resources": _resources("50m", "64Mi", "180Mi"),
            # Host access (hostNetwork, hostPID, /proc, /sys, /) is what a node exporter is for: the
            # monitoring namespace is privileged for it alone (see the pod-security-restricted
            # policy's nodeAgentNamespaces). Everything else is as locked down as restricted asks.
            "containerSecurityContext": RESTRICTED_CONTAINER_SECURITY,
        },
        "prometheus": {
            "prometheusSpec": {
                "retention": args.retention,
                # Whichever of time and size triggers first: a full volume drops the oldest blocks
                # instead of stopping ingestion. WAL and head chunks count and are never dropped, hence
                # Prometheus' advice of at most 80-85% of the disk (docs/storage.md).
                "retentionSize": retention_size(args.storage_gib),
                # Explicit, so the Prometheus object shows what it scrapes: the chart's monitors and
                # NeuroDock's, both labelled `release: kps` (resources.py), in every namespace.
                "serviceMonitorSelector": selected,
                "podMonitorSelector": selected,
                "ruleSelector": selected,
                # Memory follows the active series: a few GPU nodes and models stay well inside.
                "resources": _resources("250m", "1Gi", "4Gi"),
                # The claim goes with the StatefulSet (Kubernetes 1.27+), so `pulumi destroy` leaves no
                # orphaned disk; scaling down keeps it. Metrics history is not precious here: it is
                # rebuilt, and long-term metrics belong in a remote store (docs/disaster-recovery.md).
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Retain"},
                "storageSpec": {"volumeClaimTemplate": {"spec": {
                    "storageClassName": args.storage_class,
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": f"{args.storage_gib}Gi"}},
                }}},
            },
        },
        "grafana": {
            "enabled": args.grafana,
            "service": {"type": "ClusterIP"},
            "admin": {"existingSecret": admin_secret, "userKey": "admin-user", "passwordKey": "admin-password"},
            "resources": _resources("100m", "256Mi", "512Mi"),
            "sidecar": {"dashboards": {"enabled": True, "searchNamespace": "ALL"},
                        "resources": _resources("10m", "64Mi", "128Mi")},
        },
    }


def _control_plane(platform: Platform) -> dict:
    """Scrape only the control-plane parts a pod on this platform can reach (docs/upstream.md).

    etcd, the scheduler and the controller manager are out of reach everywhere: EKS and GKE manage
    them, and kind's kubeadm binds them to 127.0.0.1. kube-proxy does not run under GKE Dataplane V2
    and listens on 127.0.0.1 on kind. GKE's DNS is kube-dns, not CoreDNS. Each scrape left on where
    nothing answers would page forever (TargetDown, KubeSchedulerDown...), so the component and its
    rules go together: the chart gates each rule group on both.
    """
    unreachable = {"kubeEtcd": ["etcd"], "kubeScheduler": ["kubeSchedulerAlerting", "kubeSchedulerRecording"],
                   "kubeControllerManager": ["kubeControllerManager"]}
    if platform in (Platform.GKE, Platform.KIND):
        unreachable["kubeProxy"] = ["kubeProxy"]
    values: dict = {component: {"enabled": False} for component in unreachable}
    values["defaultRules"] = {"rules": {rule: False for rules in unreachable.values() for rule in rules}}
    if platform is Platform.GKE:
        values |= {"coreDns": {"enabled": False}, "kubeDns": {"enabled": True}}
    return values
