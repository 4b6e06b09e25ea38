"""Prometheus Operator custom resources (ServiceMonitor, PrometheusRule).

Their CRDs come with kube-prometheus-stack, so every such resource depends on that release.
"""

from __future__ import annotations

import re

import pulumi
import pulumi_kubernetes as k8s

from components import labels
from components.k8s import PART_OF_VALUE
from components.monitoring.stack import SELECTED

API_VERSION = "monitoring.coreos.com/v1"


def pod_label(name: str) -> str:
    """The discovery label under which Prometheus' Kubernetes service discovery offers a pod label
    (``__meta_kubernetes_pod_label_<name>``, every character outside [a-zA-Z0-9_] replaced by ``_``)."""
    return "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", name)


def service_monitor(
    resource_name: str,
    *,
    namespace: pulumi.Input[str],
    match_labels: dict[str, str],
    port: str,
    parent: pulumi.Resource,
    crds: pulumi.Resource,
    path: str = "/metrics",
    interval: str = "15s",
    relabelings: list[dict] | None = None,
    keep_metrics: str | None = None,
    kind: str = "ServiceMonitor",
) -> k8s.apiextensions.CustomResource:
    """Scrape the Services (or, with ``kind="PodMonitor"``, the pods) matching ``match_labels`` in
    ``namespace`` on the named ``port``. ``relabelings`` run on the target's labels before the scrape,
    after the operator's own (``namespace``, ``pod``, ``container``, ``service``...). ``keep_metrics``,
    a regular expression, keeps only the metric names it matches."""
    endpoint: dict = {"port": port, "path": path, "interval": interval, "honorLabels": False}
    if relabelings:
        endpoint["relabelings"] = relabelings
    if keep_metrics:
        endpoint["metricRelabelings"] = [{"sourceLabels": ["__name__"], "regex": keep_metrics, "action": "keep"}]
    return k8s.apiextensions.CustomResource(
        resource_name,
        api_version=API_VERSION,
        kind=kind,
        metadata=k8s.meta.v1.ObjectMetaArgs(namespace=namespace, labels={labels.PART_OF: PART_OF_VALUE, **SELECTED}),
        spec={
            "selector": {"matchLabels": match_labels},
            "namespaceSelector": {"matchNames": [namespace]},
            "podMetricsEndpoints" if kind == "PodMonitor" else "endpoints": [endpoint],
        },
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[crds]),
    )


def prometheus_rule(
    resource_name: str,
    *,
    namespace: pulumi.Input[str],
    groups: pulumi.Input[list],
    parent: pulumi.Resource,
    crds: pulumi.Resource,
) -> k8s.apiextensions.CustomResource:
    return k8s.apiextensions.CustomResource(
        resource_name,
        api_version=API_VERSION,
        kind="PrometheusRule",
        metadata=k8s.meta.v1.ObjectMetaArgs(namespace=namespace, labels={labels.PART_OF: PART_OF_VALUE, **SELECTED}),
        spec={"groups": groups},
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[crds]),
    )
