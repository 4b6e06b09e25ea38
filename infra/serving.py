"""Config -> model-serving Args: engine flags, sizing from the model's architecture, weights cache,
cloud identity for bucket sources, and autoscaling on queue depth."""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace

import pulumi

from components import labels
from components.cluster.base import Cluster, system_node_selector
from components.cluster.eks import EksCluster
from components.cluster.gke import GkeCluster
from components.gateway.gateway import NAMESPACE as GATEWAY_NAMESPACE
from components.monitoring import metrics
from components.monitoring.stack import NAMESPACE as MONITORING_NAMESPACE
from components.serving import architectures
from components.serving.catalog import NAMESPACE, CatalogEntry, ModelCatalog, ModelCatalogArgs
from components.serving.model_server import (
    Autoscaling,
    Engine,
    EngineSettings,
    ModelServerArgs,
    ReadinessBudgets,
    service_account_name,
)
from components.serving.weights_access import (
    GcsWeightsReader,
    GcsWeightsReaderArgs,
    S3WeightsReader,
    S3WeightsReaderArgs,
)
from components.versions import KEDA
from infra import charts
from infra.config import VARIANTS, ModelSpec, StackConfig, model_architecture
from infra.secrets import StackSecrets


def build_catalog(
    config: StackConfig,
    cluster: Cluster,
    cloud_provider: pulumi.ProviderResource | None,
    secrets: StackSecrets,
    prometheus_url: pulumi.Input[str] | None,
    crds: pulumi.Resource | None,
    opts: pulumi.ResourceOptions,
) -> ModelCatalog:
    entries = []
    for model in config.models:
        for name, variant in (("stable", model), *((key, variant_spec(model, key)) for key in VARIANTS)):
            if variant is None:
                continue
            server = server_args(config, variant, cluster.storage_class, prometheus_url,
                                 _weights_identity(config, cluster, cloud_provider, variant))
            if name != "stable":
                image = getattr(model, name).image
                server = replace(server, variant=name, image=image)
            entries.append(CatalogEntry(name=variant.name, server=server,
                                        shared_storage_class=variant.cache.shared_storage_class))
    return ModelCatalog(
        "models",
        ModelCatalogArgs(entries=tuple(entries), system_node_selector=system_node_selector(cluster),
                         keda_chart=charts.source(KEDA),
                         hf_token=secrets.hf_token, crds=crds),
        opts=opts,
    )


def autoscaled(model: ModelSpec, *, monitoring: bool) -> bool:
    """KEDA scales the model: it has room between its bounds, and Prometheus to read the queue from."""
    return model.max_replicas > model.min_replicas and monitoring


def variant_spec(model: ModelSpec, key: str) -> ModelSpec | None:
    """The model entry a canary or shadow is served from: the stable one with the variant's
    weights, flags and replica count, a fixed size (the autoscaler follows the stable version only),
    and resource names of its own."""
    variant = getattr(model, key)
    if variant is None:
        return None
    engine_args = model.engine_args
    if variant.extra_args is not None:
        engine_args = engine_args.model_copy(update={"extra_args": variant.extra_args})
    return model.model_copy(update={
        "name": model.variant_name(key),
        "served_name": model.model_name,
        "source": variant.source or model.source,
        "engine_args": engine_args,
        "min_replicas": variant.replicas,
        "max_replicas": variant.replicas,
        "canary": None,
        "shadow": None,
    })


def server_args(
    config: StackConfig,
    model: ModelSpec,
    storage_class: str,
    prometheus_url: pulumi.Input[str] | None,
    service_account_annotations: dict[str, pulumi.Input[str]],
) -> ModelServerArgs:
    """The ModelServer of one catalog entry (pure but for Outputs passed in)."""
    pool = config.pool(model.pool)
    assert pool is not None  # validated
    engine = Engine(model.engine)
    e = model.engine_args
    arch = model_architecture(model)
    gpus = model.gpus_per_replica
    if engine is Engine.VLLM:
        assert arch is not None  # validated: vLLM models have a known size
        need = architectures.estimate(arch, tensor_parallel=gpus, max_model_len=e.max_model_len,
                                      sequences=model.concurrency, dtype=e.dtype, quantization=e.quantization,
                                      kv_cache_dtype=e.kv_cache_dtype)
        weights_gib = need.weights_gib
        gpu_need = need.per_gpu_gib
        shm_gib = 2 if gpus == 1 else 16
        memory_gib = architectures.host_memory_gib(weights_gib, gpus) + shm_gib
        cpu = str(4 * gpus)
    else:
        # GGUF files are 4-bit quantised, about 0.56 bytes a parameter; unknown models get 4 GiB.
        weights_gib = arch.parameters_b * 1e9 * 0.5625 / architectures.GIB if arch else 2.0
        shm_gib = 1
        memory_gib = math.ceil(weights_gib * 1.5) + 2 + shm_gib
        cpu = "2"
        gpu_need = None
    budgets = model.readiness or config.readiness
    scaling = None
    if autoscaled(model, monitoring=prometheus_url is not None):
        scaling = Autoscaling(
            min_replicas=model.min_replicas,
            max_replicas=model.max_replicas,
            prometheus_url=prometheus_url,
            query=queue_query(model),
            # Scale out at half the queue that the SLO alert fires on.
            target_per_replica=max(1, model.slo.queue_depth // 2),
        )
    return ModelServerArgs(
        namespace=NAMESPACE,
        served_name=model.model_name,
        source=model.source,
        engine=engine,
        settings=EngineSettings(
            max_model_len=e.max_model_len, gpu_memory_utilization=e.gpu_memory_utilization, dtype=e.dtype,
            quantization=e.quantization, kv_cache_dtype=e.kv_cache_dtype, max_num_seqs=e.max_num_seqs,
            extra_args=tuple(e.extra_args), gguf_file=model.file,
        ),
        gpus=gpus,
        cpu=cpu,
        memory_gib=memory_gib,
        shm_gib=shm_gib,
        replicas=max(model.min_replicas, 1) if scaling is None else model.min_replicas,
        node_selector={labels.POOL_LABEL: pool.name},
        tolerate_gpu_taint=pool.role == "gpu",
        service_account_annotations=service_account_annotations,
        storage_class=storage_class,
        cache_gib=model.cache.size_gib or math.ceil(weights_gib * 1.2) + 10,
        readiness=ReadinessBudgets(node_scale_up_s=budgets.node_scale_up_seconds,
                                   image_pull_s=budgets.image_pull_seconds,
                                   model_load_s=budgets.model_load_seconds),
        drain_s=model.drain_seconds,
        max_surge=model.rollout.max_surge,
        max_unavailable=model.rollout.max_unavailable,
        allowed_namespaces=(GATEWAY_NAMESPACE, MONITORING_NAMESPACE),
        autoscaling=scaling,
        gpu_memory_need_gib=gpu_need,
    )


def queue_query(model: ModelSpec) -> str:
    """PromQL for the model's waiting requests: the signal KEDA scales on."""
    if model.engine == "vllm":
        # The stable version's pods only: a canary or shadow serves the same model name, and a
        # shadow's mirrored queue must not scale the stable version out.
        return (f'sum({metrics.VLLM_WAITING.name}{{model_name="{model.model_name}", namespace="{NAMESPACE}", '
                f'pod=~"{model.name}-server-.*"}})')
    return f'sum({metrics.LLAMACPP_DEFERRED.name}{{namespace="{NAMESPACE}", pod=~"{model.name}-server-.*"}})'


def _weights_identity(config: StackConfig, cluster: Cluster, provider: pulumi.ProviderResource | None,
                      model: ModelSpec) -> dict[str, pulumi.Input[str]]:
    """Annotations binding the model's ServiceAccount to a cloud identity that can read its bucket."""
    opts = pulumi.ResourceOptions(providers=[provider] if provider else None)
    account = service_account_name(model.name)
    if model.source.startswith("s3://"):
        assert isinstance(cluster, EksCluster)  # validated
        return S3WeightsReader(f"{model.name}-weights-reader", S3WeightsReaderArgs(
            source=model.source, oidc_provider_arn=cluster.oidc_provider_arn,
            oidc_issuer_url=cluster.oidc_issuer_url, namespace=NAMESPACE, service_account=account,
        ), opts=opts).annotations
    if model.source.startswith("gs://"):
        assert isinstance(cluster, GkeCluster)  # validated
        suffix = hashlib.sha256(f"{config.environment}/{model.name}".encode()).hexdigest()[:6]
        return GcsWeightsReader(f"{model.name}-weights-reader", GcsWeightsReaderArgs(
            source=model.source, project=config.cloud.project, workload_pool=cluster.workload_pool,
            namespace=NAMESPACE, service_account=account, account_id=f"{model.name[:21]}-{suffix}",
        ), opts=opts).annotations
    return {}
