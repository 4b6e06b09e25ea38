"""The serving namespace and one :class:`ModelServer` per model of the stack's catalog."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import labels
from components.cluster.base import PoolFacts
from components.k8s import namespace
from components.serving.model_server import Engine, ModelServer, ModelServerArgs, ReadinessBudgets

NAMESPACE = "neurodock-serving"


@dataclass(frozen=True, kw_only=True)
class CatalogEntry:
    name: str
    """Kubernetes-safe id; prefix of the entry's resource names."""
    served_name: str
    """OpenAI ``model`` value."""
    source: str
    """Weights URI."""
    engine: Engine
    """Serving engine."""
    pool: str
    """Node pool name (must be one of ``ModelCatalogArgs.pools``)."""
    gpus: int
    """GPUs per replica."""
    min_replicas: int
    """Replicas at creation."""
    readiness: ReadinessBudgets
    """How long becoming ready may take."""


@dataclass(frozen=True, kw_only=True)
class ModelCatalogArgs:
    entries: tuple[CatalogEntry, ...]
    """Models to serve."""
    pools: tuple[PoolFacts, ...]
    """The cluster's pools, for placement."""
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

    def __init__(self, name: str, args: ModelCatalogArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("neurodock:serving:ModelCatalog", name, None, opts)
        pools = {p.name: p for p in args.pools}
        missing = sorted({e.pool for e in args.entries} - set(pools))
        if missing:
            raise ValueError(f"ModelCatalogArgs.entries name unknown pools: {', '.join(missing)}")
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
        self.urls = {}
        self.deployments = {}
        for entry in args.entries:
            pool = pools[entry.pool]
            server = ModelServer(
                entry.name,
                ModelServerArgs(
                    namespace=ns.metadata.name,
                    served_name=entry.served_name,
                    source=entry.source,
                    engine=entry.engine,
                    gpus=entry.gpus,
                    replicas=entry.min_replicas,
                    node_selector={labels.POOL_LABEL: pool.name},
                    tolerate_gpu_taint=any(t.key == labels.GPU_TAINT_KEY for t in pool.taints),
                    hf_token_secret=token_secret,
                    readiness=entry.readiness,
                    crds=args.crds,
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.urls[entry.served_name] = server.url
            self.deployments[entry.served_name] = server.deployment_name
        self.register_outputs({"urls": self.urls})
