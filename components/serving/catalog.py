"""The serving namespace, its shared pieces (PriorityClass, Hugging Face token, KEDA), and one
:class:`ModelServer` per model of the stack's catalog."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pulumi
import pulumi_kubernetes as k8s

from components import labels
from components.charts import ChartSource
from components.k8s import PART_OF_VALUE, namespace
from components.serving.keda import Keda, KedaArgs
from components.serving.model_server import ModelServer, ModelServerArgs

NAMESPACE = "neurodock-serving"
PRIORITY = 100000
"""Serving pods' priority: above ordinary workloads, far below system-cluster-critical (2e9)."""


@dataclass(frozen=True, kw_only=True)
class CatalogEntry:
    name: str
    """Kubernetes-safe id; prefix of the entry's resource names."""
    server: ModelServerArgs
    """The model server; namespace, token, priority class, CRDs and KEDA are filled in here."""
    shared_storage_class: str | None = None
    """A ReadWriteMany class: one weights volume shared by all replicas (default: one per replica)."""


@dataclass(frozen=True, kw_only=True)
class ModelCatalogArgs:
    entries: tuple[CatalogEntry, ...]
    """Models to serve."""
    system_node_selector: dict[str, str]
    """Where KEDA runs."""
    keda_chart: ChartSource
    """Where KEDA's release reads its chart (``versions.KEDA``)."""
    hf_token: pulumi.Input[str] | None = None
    """Hugging Face token, stored in a Secret for gated models (default none)."""
    crds: pulumi.Resource | None = None
    """The monitoring release (ServiceMonitor CRD); no ServiceMonitors without it (default none)."""


class ModelCatalog(pulumi.ComponentResource):
    """Everything that serves the catalog."""

    urls: dict[str, pulumi.Output[str]]
    """In-cluster OpenAI base URL per served model name."""
    deployments: dict[str, pulumi.Output[str]]
    """Deployment name per served model name."""
    services: dict[str, pulumi.Output[str]]
    """Service name per entry name, variants included."""

    def __init__(self, name: str, args: ModelCatalogArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("neurodock:serving:ModelCatalog", name, None, opts)
        ns = namespace(f"{name}-ns", NAMESPACE, parent=self, component="serving")
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
            opts=pulumi.ResourceOptions(parent=self),
        )
        keda = None
        if any(e.server.autoscaling for e in args.entries):
            keda = Keda(f"{name}-keda", KedaArgs(chart=args.keda_chart, node_selector=args.system_node_selector),
                        opts=pulumi.ResourceOptions(parent=self)).release
        self.urls = {}
        self.deployments = {}
        self.services = {}
        for entry in args.entries:
            shared = None
            if entry.shared_storage_class:
                shared = k8s.core.v1.PersistentVolumeClaim(
                    f"{entry.name}-weights",
                    metadata=k8s.meta.v1.ObjectMetaArgs(namespace=ns.metadata.name),
                    spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                        access_modes=["ReadWriteMany"],
                        storage_class_name=entry.shared_storage_class,
                        resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                            requests={"storage": f"{entry.server.cache_gib}Gi"}),
                    ),
                    # Weights are re-downloadable, but a shared cache spares every replica the download.
                    opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
                ).metadata.name
            server = ModelServer(
                entry.name,
                replace(entry.server, namespace=ns.metadata.name, hf_token_secret=token_secret,
                        priority_class=priority.metadata.name, crds=args.crds, keda=keda,
                        shared_cache_claim=shared),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.services[entry.name] = server.service_name
            if entry.server.variant == "stable":
                self.urls[entry.server.served_name] = server.url
                self.deployments[entry.server.served_name] = server.deployment_name
        self.register_outputs({"urls": self.urls})
