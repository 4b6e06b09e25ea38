"""Config -> one resolved ``ServedModelArgs`` per model: its versions' engine flags and sizes, where
their weights come from (a bucket, the stack's mirror of Hugging Face, or a volume) and with which
cloud identity, readiness budgets, autoscaling on queue depth, and its route."""

from __future__ import annotations

import hashlib

import pulumi
import pulumi_aws as aws

from components import labels
from components.cluster.base import Cluster, system_node_selector
from components.cluster.eks import EksCluster
from components.cluster.gke import GkeCluster
from components.gateway.gateway import NAMESPACE as GATEWAY_NAMESPACE
from components.monitoring import metrics
from components.monitoring.stack import NAMESPACE as MONITORING_NAMESPACE
from components.serving import architectures
from components.serving.catalog import NAMESPACE, ModelCatalog, ModelCatalogArgs
from components.serving.model_server import (
    Autoscaling,
    Engine,
    EngineSettings,
    ModelServerArgs,
    ReadinessBudgets,
    service_account_name,
)
from components.serving.served_model import Mirror, ReaderArgs, Route, ServedModelArgs, Version
from components.serving.weights_access import GcsWeightsReaderArgs, S3WeightsReaderArgs
from components.serving.weights_mirror import PURPOSE, MirrorBucket, MirrorBucketArgs, mirror_prefix
from components.versions import KEDA
from infra import charts
from infra.config import EksCloud, GkeCloud, ModelSpec, StackConfig, Variant
from infra.config import replica_size as config_replica_size
from infra.readiness import budgets, mirror_budget, mirrored
from infra.secrets import StackSecrets


def build_catalog(
    config: StackConfig,
    cluster: Cluster,
    cloud_provider: pulumi.ProviderResource | None,
    secrets: StackSecrets,
    prometheus_url: pulumi.Input[str] | None,
    crds: pulumi.Resource | None,
    gateway: pulumi.Resource | None,
    opts: pulumi.ResourceOptions,
) -> ModelCatalog:
    bucket = mirror_bucket(config, cluster, cloud_provider)
    return ModelCatalog(
        "models",
        ModelCatalogArgs(models=tuple(served_model(config, cluster, cloud_provider, model, prometheus_url, gateway,
                                                   bucket.uri if bucket else None)
                                      for model in config.models),
                         system_node_selector=system_node_selector(cluster),
                         keda_chart=charts.source(KEDA),
                         hf_token=secrets.hf_token, crds=crds,
                         mirror_writer=bucket.writer_annotations if bucket else None, mirror_bucket=bucket),
        opts=opts,
    )


def mirror_bucket(config: StackConfig, cluster: Cluster,
                  provider: pulumi.ProviderResource | None) -> MirrorBucket | None:
    """The stack's weights bucket, when a model is mirrored. Its name is fixed, so models know their
    weights URI before it exists: GCS names are global, so it starts with the (globally unique)
    project; S3 names too, so it carries the account and region."""
    sources = [(m, v.source or m.source) for m in config.models for v in (m.canary, m.shadow) if v]
    if not any(mirrored(config, m, source) for m, source in [*((m, m.source) for m in config.models), *sources]):
        return None
    cloud = config.cloud
    opts = pulumi.ResourceOptions(providers=[provider] if provider else None)
    account = "weights-mirror"
    if isinstance(cloud, EksCloud):
        assert isinstance(cluster, EksCluster)
        account_id = aws.get_caller_identity(opts=pulumi.InvokeOptions(provider=provider)).account_id
        name = f"neurodock-{config.environment}-weights-{account_id}-{cloud.region}"[:63].rstrip("-")
        writer: ReaderArgs = S3WeightsReaderArgs(
            source=f"s3://{name}", oidc_provider_arn=cluster.oidc_provider_arn, oidc_issuer_url=cluster.oidc_issuer_url,
            namespace=NAMESPACE, service_account=account, write=True)
        labels_ = {"neurodock:purpose": PURPOSE}
        project = None
    else:
        assert isinstance(cloud, GkeCloud) and isinstance(cluster, GkeCluster)
        name = f"{cloud.project}-neurodock-{config.environment}-weights"[:63].rstrip("-")
        suffix = hashlib.sha256(f"{config.environment}/{account}".encode()).hexdigest()[:6]
        writer = GcsWeightsReaderArgs(source=f"gs://{name}", project=cloud.project, workload_pool=cluster.workload_pool,
                                      namespace=NAMESPACE, service_account=account, account_id=f"{account}-{suffix}",
                                      write=True)
        labels_ = {"neurodock-purpose": PURPOSE}
        project = cloud.project
    return MirrorBucket("weights-mirror", MirrorBucketArgs(
        cloud=cloud.provider, name=name, location=cloud.region, project=project, labels=labels_, writer=writer),
        opts=opts)


def autoscaled(model: ModelSpec, *, monitoring: bool) -> bool:
    """KEDA scales the model: it has room between its bounds, and Prometheus to read the queue from."""
    return model.max_replicas > model.min_replicas and monitoring


def served_model(config: StackConfig, cluster: Cluster, cloud_provider: pulumi.ProviderResource | None,
                 model: ModelSpec, prometheus_url: pulumi.Input[str] | None,
                 gateway: pulumi.Resource | None, bucket: str | None) -> ServedModelArgs:
    """Everything one model is served with, resolved once: its versions' servers and weights identities,
    and its route."""
    readiness = budgets(config, model)

    def version(key: str) -> Version | None:
        variant = None if key == "stable" else getattr(model, key)
        if key != "stable" and variant is None:
            return None
        name = model.name if variant is None else model.variant_name(key)
        source = (variant.source if variant else None) or model.source
        revision = (variant.revision if variant else None) or model.revision
        mirror = None
        if mirrored(config, model, source):
            repo, revision = source.removeprefix("hf://"), str(revision)  # validated: a commit
            mirror = Mirror(repo=repo, revision=revision, target=mirror_prefix(f"{bucket}", repo, revision),
                            volume_gib=replica_size(config, model).volume_gib, storage_class=cluster.storage_class,
                            node_selector=system_node_selector(cluster), deadline_s=mirror_budget(config, model))
            source = mirror.target
        server = server_args(config, model, key, name=name, source=source, revision=revision,
                             storage_class=cluster.storage_class,
                             readiness=readiness, prometheus_url=prometheus_url)
        return Version(name=name, server=server, reader=_reader_args(config, cluster, name, source),
                       shared_storage_class=model.cache.shared_storage_class, mirror=mirror)

    route = None
    if gateway is not None:
        route = Route(gateway=gateway, request_timeout_s=model.request_timeout_seconds,
                      canary_weight=model.canary.weight if model.canary else 0,
                      shadow_percent=model.shadow.percent if model.shadow else 100)
    return ServedModelArgs(name=model.name, stable=version("stable"), canary=version("canary"),
                           shadow=version("shadow"), route=route, cloud_provider=cloud_provider)


def server_args(
    config: StackConfig,
    model: ModelSpec,
    key: str,
    *,
    name: str,
    source: str,
    revision: str | None,
    storage_class: str,
    readiness: ReadinessBudgets,
    prometheus_url: pulumi.Input[str] | None,
) -> ModelServerArgs:
    """The server of the model's ``stable`` version, or of its ``canary`` or ``shadow``: the stable
    version's settings with the variant's image, weights, flags and a fixed replica count (the
    autoscaler follows the stable version only)."""
    variant: Variant | None = None if key == "stable" else getattr(model, key)
    pool = config.pool(model.pool)
    assert pool is not None  # validated
    engine = Engine(model.engine)
    e = model.engine_args
    size = replica_size(config, model)
    scaling = None
    if variant is None and autoscaled(model, monitoring=prometheus_url is not None):
        scaling = Autoscaling(
            min_replicas=model.min_replicas,
            max_replicas=model.max_replicas,
            prometheus_url=prometheus_url,
            query=queue_query(model),
            # Scale out at half the queue that the SLO alert fires on.
            target_per_replica=max(1, model.slo.queue_depth // 2),
        )
    extra_args = e.extra_args if variant is None or variant.extra_args is None else variant.extra_args
    if variant is not None:
        replicas = variant.replicas
    else:
        replicas = max(model.min_replicas, 1) if scaling is None else model.min_replicas
    return ModelServerArgs(
        namespace=NAMESPACE,
        served_name=model.model_name,
        source=source,
        revision=revision if source.startswith("hf://") else None,
        aws_region=config.cloud.region if source.startswith("s3://") else None,
        engine=engine,
        settings=EngineSettings(
            max_model_len=e.max_model_len, gpu_memory_utilization=e.gpu_memory_utilization, dtype=e.dtype,
            quantization=e.quantization, kv_cache_dtype=e.kv_cache_dtype, max_num_seqs=e.max_num_seqs,
            extra_args=tuple(extra_args), gguf_file=model.file,
        ),
        gpus=model.gpus_per_replica,
        cpu=str(size.cpu),
        memory_gib=size.memory_gib,
        shm_gib=size.shm_gib,
        replicas=replicas,
        node_selector={labels.POOL_LABEL: pool.name},
        tolerate_gpu_taint=pool.role == "gpu",
        storage_class=storage_class,
        cache_gib=model.cache.size_gib or size.volume_gib,
        readiness=readiness,
        drain_s=model.drain,
        max_surge=model.rollout.max_surge,
        max_unavailable=model.rollout.max_unavailable,
        allowed_namespaces=(GATEWAY_NAMESPACE, MONITORING_NAMESPACE),
        autoscaling=scaling,
        gpu_memory_need_gib=size.memory.per_gpu_gib if size.memory else None,
        variant=key,
        image=variant.image if variant else None,
    )


def replica_size(config: StackConfig, model: ModelSpec) -> architectures.ReplicaSize:
    """What one replica of ``model`` needs: the numbers the config's capacity check used."""
    pool = config.pool(model.pool)
    size = config_replica_size(model, pool) if pool else None
    assert size is not None  # validated
    return size


def queue_query(model: ModelSpec) -> str:
    """PromQL for the model's waiting requests: the signal KEDA scales on."""
    if model.engine == "vllm":
        # The stable version's pods only: a canary or shadow serves the same model name, and a
        # shadow's mirrored queue must not scale the stable version out.
        return (f'sum({metrics.VLLM_WAITING.name}{{model_name="{model.model_name}", namespace="{NAMESPACE}", '
                f'pod=~"{model.name}-server-.*"}})')
    return f'sum({metrics.LLAMACPP_DEFERRED.name}{{namespace="{NAMESPACE}", pod=~"{model.name}-server-.*"}})'


def _reader_args(config: StackConfig, cluster: Cluster, name: str, source: str) -> ReaderArgs | None:
    """The cloud identity that lets version ``name``'s ServiceAccount read a bucket source."""
    account = service_account_name(name)
    if source.startswith("s3://"):
        assert isinstance(cluster, EksCluster)  # validated
        return S3WeightsReaderArgs(source=source, oidc_provider_arn=cluster.oidc_provider_arn,
                                   oidc_issuer_url=cluster.oidc_issuer_url, namespace=NAMESPACE,
                                   service_account=account)
    if source.startswith("gs://"):
        assert isinstance(cluster, GkeCluster)  # validated
        suffix = hashlib.sha256(f"{config.environment}/{name}".encode()).hexdigest()[:6]
        return GcsWeightsReaderArgs(source=source, project=config.cloud.project, workload_pool=cluster.workload_pool,
                                    namespace=NAMESPACE, service_account=account, account_id=f"{name[:21]}-{suffix}")
    return None
