"""The serving namespace, its shared pieces (PriorityClass, Hugging Face token, KEDA), and one
:class:`ServedModel` per model of the stack's catalog."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pulumi
import pulumi_kubernetes as k8s

from components import labels
from components.charts import ChartSource
from components.k8s import PART_OF_VALUE, namespace
from components.serving.keda import Keda, KedaArgs
from components.serving.served_model import ServedModel, ServedModelArgs, Version
from components.serving.weights_mirror import MIRROR_ACCOUNT

SERVING_NAMESPACE = "neurodock-serving"
PRIORITY = 100000
"""Serving pods' priority: above ordinary workloads, far below system-cluster-critical (2e9)."""


@dataclass(frozen=True, kw_only=True)
class ModelCatalogArgs:
    models: tuple[ServedModelArgs, ...]
    """Models to serve; their servers' namespace, token, priority class, CRDs and KEDA are filled in here."""
    system_node_selector: dict[str, str]
    """Where KEDA runs."""
    keda_chart: ChartSource
    """Where KEDA's release reads its chart (``versions.KEDA``)."""
    hf_token: pulumi.Input[str] | None = None
    """Hugging Face token, stored in a Secret for gated models (default none)."""
    crds: pulumi.Resource | None = None
    """The monitoring release (ServiceMonitor CRD); no ServiceMonitors without it (default none)."""
    mirror_writer: dict[str, pulumi.Input[str]] | None = None
    """Annotations binding the mirror Jobs' ServiceAccount to the identity that writes the stack's
    weights bucket; None when no model is mirrored (default none)."""
    mirror_bucket: pulumi.Resource | None = None
    """The bucket and its writer's grants, which the mirror Jobs wait for (default none)."""


class ModelCatalog(pulumi.ComponentResource):
    """Everything that serves the catalog."""

    urls: dict[str, pulumi.Output[str]]
    """In-cluster OpenAI base URL per served model name."""
    deployments: dict[str, pulumi.Output[str]]
    """The stable version's Deployment name per served model name."""
    routes: list[pulumi.Resource]
    """The models' gateway routes."""

    def __init__(self, name: str, args: ModelCatalogArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("neurodock:serving:ModelCatalog", name, None, opts)
        ns = namespace(f"{name}-ns", SERVING_NAMESPACE, parent=self, component="serving")
        token_secret = None
        if args.hf_token is not None:
            token_secret = k8s.core.v1.Secret(
                f"{name}-hf-token",
                metadata=k8s.meta.v1.ObjectMetaArgs(namespace=ns.metadata.name),
                type="Opaque",
                string_data={"token": args.hf_token},
                opts=pulumi.ResourceOptions(parent=self),
            ).metadata.name
        priority = k8s.scheduling.v1.PriorityClass(
            f"{name}-priority",
            metadata=k8s.meta.v1.ObjectMetaArgs(labels={labels.PART_OF: PART_OF_VALUE}),
            value=PRIORITY,
            global_default=False,
            preemption_policy="PreemptLowerPriority",
            description="NeuroDock model servers",
            # The API server refuses any change of either (kubernetes pkg/apis/scheduling/validation
            # ValidatePriorityClassUpdate), and the provider would send it as an update: a new class instead (its name
            # is generated, so it comes before the old one goes), and the servers roll onto it.
            opts=pulumi.ResourceOptions(parent=self, replace_on_changes=["value", "preemptionPolicy"]),
        )
        mirror_account = None
        if args.mirror_writer is not None:
            mirror_account = k8s.core.v1.ServiceAccount(
                f"{name}-weights-mirror",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=MIRROR_ACCOUNT, namespace=ns.metadata.name,
                                                    annotations=args.mirror_writer),
                automount_service_account_token=False,
                opts=pulumi.ResourceOptions(parent=self,
                                            depends_on=[args.mirror_bucket] if args.mirror_bucket else None),
            )
        keda = None
        versions = [v for m in args.models for v in (m.stable, m.canary, m.shadow) if v is not None]
        if any(v.server.autoscaling for v in versions):
            keda = Keda(f"{name}-keda", KedaArgs(chart=args.keda_chart, node_selector=args.system_node_selector),
                        opts=pulumi.ResourceOptions(parent=self)).release

        def complete(version: Version | None) -> Version | None:
            if version is None:
                return None
            return replace(version, server=replace(
                version.server, namespace=ns.metadata.name, hf_token_secret=token_secret,
                priority_class=priority.metadata.name, crds=args.crds, keda=keda),
                mirror=replace(version.mirror, account=mirror_account) if version.mirror else None)

        self.urls = {}
        self.deployments = {}
        self.routes: list[pulumi.Resource] = []
        for model in args.models:
            model = replace(model, stable=complete(model.stable), canary=complete(model.canary),
                            shadow=complete(model.shadow))
            served = ServedModel(model.name, model, opts=pulumi.ResourceOptions(parent=self))
            self.urls[model.stable.server.served_name] = served.url
            self.deployments[model.stable.server.served_name] = served.deployment_name
            if served.route is not None:
                self.routes.append(served.route)
        self.register_outputs({"urls": self.urls})
