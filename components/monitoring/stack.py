"""kube-prometheus-stack: Prometheus Operator, Prometheus, Alertmanager, Grafana, kube-state-metrics."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.k8s import namespace
from components.versions import (
    KUBE_PROMETHEUS_STACK_CHART,
    KUBE_PROMETHEUS_STACK_VERSION,
    PROMETHEUS_COMMUNITY_REPO,
)

NAMESPACE = "monitoring"
RELEASE = "kps"


@dataclass(frozen=True, kw_only=True)
class MonitoringStackArgs:
    storage_class: str
    """Storage class of Prometheus' volume."""
    retention: str = "15d"
    """Prometheus retention (default 15d)."""
    storage_gib: int = 50
    """Prometheus volume size in GiB (default 50)."""
    grafana: bool = True
    """Install Grafana (default true); its Service is ClusterIP only."""
    timeout_s: int = 900
    """How long `pulumi up` waits for the release to become ready, in seconds (default 900)."""


class MonitoringStack(pulumi.ComponentResource):
    """The monitoring namespace and the kube-prometheus-stack release."""

    namespace: pulumi.Output[str]
    grafana_url: pulumi.Output[str] | None
    prometheus_url: pulumi.Output[str]

    def __init__(self, name: str, args: MonitoringStackArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("neurodock:monitoring:MonitoringStack", name, None, opts)
        if args.storage_gib < 1:
            raise ValueError("MonitoringStackArgs.storage_gib must be at least 1")
        # Node exporter needs host access (hostPID, hostNetwork, hostPath), so this namespace is
        # labelled privileged; the workloads themselves stay as locked down as the chart allows.
        ns = namespace(f"{name}-ns", NAMESPACE, parent=self, pod_security="privileged", component="monitoring")
        release = k8s.helm.v3.Release(
            f"{name}-kps",
            name=RELEASE,
            chart=KUBE_PROMETHEUS_STACK_CHART,
            version=KUBE_PROMETHEUS_STACK_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=PROMETHEUS_COMMUNITY_REPO),
            namespace=ns.metadata.name,
            values=_values(args),
            timeout=args.timeout_s,
            # Roll back a failed upgrade instead of leaving a half-applied release.
            atomic=True,
            cleanup_on_fail=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.namespace = release.status.namespace
        self.prometheus_url = pulumi.Output.concat(
            "http://", RELEASE, "-kube-prometheus-stack-prometheus.", NAMESPACE, ".svc.cluster.local:9090")
        self.grafana_url = (
            pulumi.Output.concat("http://", RELEASE, "-grafana.", NAMESPACE, ".svc.cluster.local")
            if args.grafana else None
        )
        self.register_outputs({"namespace": self.namespace, "prometheusUrl": self.prometheus_url,
                               "grafanaUrl": self.grafana_url})


def _values(args: MonitoringStackArgs) -> dict:
    return {
        "prometheus": {
            "prometheusSpec": {
                "retention": args.retention,
                # Select every ServiceMonitor and PrometheusRule, not only the chart's own.
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "podMonitorSelectorNilUsesHelmValues": False,
                "ruleSelectorNilUsesHelmValues": False,
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
            "sidecar": {"dashboards": {"enabled": True, "searchNamespace": "ALL"}},
        },
    }
