"""KEDA, which scales model servers on LLM signals (waiting requests, from Prometheus).

Chosen over an HPA on custom metrics because it scales to and from zero, and reads Prometheus
directly, with no prometheus-adapter to run and keep in sync.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.charts import ChartSource
from components.k8s import RESTRICTED_CONTAINER_SECURITY, RESTRICTED_POD_SECURITY, namespace

KEDA_NAMESPACE = "keda"
METRICS_SERVER_PORT = 6443
"""The metrics server's HTTPS port in its pod (chart value ``service.portHttpsTarget``), which the API
server calls for ``external.metrics.k8s.io``."""
WEBHOOK_PORT = 9443
"""The admission webhooks' port in their pod (chart value ``webhooks.port``)."""
CONTROL_PLANE_PORTS = (METRICS_SERVER_PORT, WEBHOOK_PORT)
"""Pod ports the API server calls: a private GKE cluster needs them opened to its control plane."""


@dataclass(frozen=True, kw_only=True)
class KedaArgs:
    chart: ChartSource
    """Where the release reads the KEDA chart (``versions.KEDA``)."""
    node_selector: dict[str, str]
    """Where KEDA runs: the system pool."""
    timeout_s: int = 600
    """How long `pulumi up` waits for the release (default 600)."""


class Keda(pulumi.ComponentResource):
    """The KEDA operator and metrics server, in their own restricted namespace."""

    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: KedaArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("neurodock:serving:Keda", name, None, opts)
        ns = namespace(f"{name}-ns", KEDA_NAMESPACE, parent=self, component="autoscaling")
        restricted = {
            "podSecurityContext": {part: RESTRICTED_POD_SECURITY for part in ("operator", "metricServer", "webhooks")},
            "securityContext": {part: RESTRICTED_CONTAINER_SECURITY
                                for part in ("operator", "metricServer", "webhooks")},
        }
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name="keda",
            **args.chart.release_args(),
            namespace=ns.metadata.name,
            # The ports are set, not left to the chart's defaults: the control plane's firewall opens them.
            values={"nodeSelector": args.node_selector, **restricted,
                    "service": {"portHttpsTarget": METRICS_SERVER_PORT}, "webhooks": {"port": WEBHOOK_PORT}},
            atomic=True,
            timeout=args.timeout_s,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})

