"""Prometheus Operator custom resources (ServiceMonitor, PrometheusRule).

Their CRDs come with kube-prometheus-stack, so every such resource depends on that release.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components import labels
from components.k8s import PART_OF_VALUE
from components.monitoring.stack import SELECTED

API_VERSION = "monitoring.coreos.com/v1"


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
    honor_labels: bool = False,
) -> k8s.apiextensions.CustomResource:
    """Scrape the Services matching ``match_labels`` in ``namespace`` on the named ``port``.

    ``honor_labels`` keeps labels the target sets itself (DCGM's ``pod``/``namespace`` of the pod
    using the GPU) instead of overwriting them with the exporter's own.
    """
    return k8s.apiextensions.CustomResource(
        resource_name,
        api_version=API_VERSION,
        kind="ServiceMonitor",
        metadata=k8s.meta.v1.ObjectMetaArgs(namespace=namespace, labels={labels.PART_OF: PART_OF_VALUE, **SELECTED}),
        spec={
            "selector": {"matchLabels": match_labels},
            "namespaceSelector": {"matchNames": [namespace]},
            "endpoints": [{"port": port, "path": path, "interval": interval, "honorLabels": honor_labels}],
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
