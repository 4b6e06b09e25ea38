"""Config -> one resolved ``ServedModelArgs`` per model: its versions' engine flags and sizes, where
their weights come from (a bucket, the stack's mirror of Hugging Face, or a volume) and with which
cloud identity, readiness budgets, autoscaling on queue depth, and its route."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pulumi
import pulumi_aws as aws

from components import labels
from components.cluster.base import Cluster, system_node_selector
from components.cluster.eks import EksCluster
from components.cluster.gke import GkeCluster
from components.gateway.gateway import GATEWAY_NAMESPACE, ModelGateway
from components.gateway.picker import picker_pod_labels
from components.monitoring import metrics
from components.monitoring.stack import MONITORING_NAMESPACE
from components.serving import architectures
from components.serving.catalog import SERVING_NAMESPACE, ModelCatalog, ModelCatalogArgs
from components.serving.eval_job import EvalGateArgs
from components.serving.eval_runner import load_suite
from components.serving.model_server import (
    Autoscaling,
    Engine,
    EngineSettings,
    ModelServerArgs,
    ReadinessBudgets,
    service_account_name,
)
from components.serving.served_model import Mirror, ReaderArgs, ServedModelArgs, ServedModelRoute, Version
from components.serving.weights_access import GcsWeightsReaderArgs, S3WeightsReaderArgs
from components.serving.weights_mirror import MIRROR_ACCOUNT, PURPOSE, MirrorBucket, MirrorBucketArgs, mirror_prefix
from components.versions import KEDA
from infra import charts
from infra.config import EksCloud, GkeCloud, ModelSpec, ModelVersion, StackConfig, mirrored, replica_size
from infra.config.rollout import eval_suite_path
from infra.readiness import budgets, mirror_budget
from infra.routing import picker_args
from infra.secrets import StackSecrets


def build_catalog(
    config: StackConfig,
    cluster: Cluster,
    cloud_provider: pulumi.ProviderResource | None,
    secrets: StackSecrets,
    prometheus_url: pulumi.Input[str] | None,
    crds: pulumi.Resource | None,
    gateway: ModelGateway | None,
    opts: pulumi.ResourceOptions,
) -> ModelCatalog:
    bucket = mirror_bucket(config, cluster, cloud_provider)
    return ModelCatalog(
        "models",
        ModelCatalogArgs(models=tuple(served_model(config, cluster, cloud_provider, model, prometheus_url, gateway,
                                                   bucket.uri if bucket else None, crds)
                                      for model in config.models),
                         system_node_selector=system_node_selector(cluster),
                         keda_chart=charts.source(KEDA, config.chart_mirror),
                         hf_token=secrets.hf_token, crds=crds,
                         mirror_writer=bucket.writer_annotations if bucket else None, mirror_bucket=bucket),
        opts=opts,
    )


def mirror_bucket(config: StackConfig, cluster: Cluster,
                  provider: pulumi.ProviderResource | None) -> MirrorBucket | None:
    """The stack's weights bucket, when a model is mirrored. Its name is fixed, so models know their
    weights URI before it exists: GCS names are global, so it starts with the (globally unique)
    project; S3 names too, so it carries the account and region."""
    cloud = config.cloud
    if not any(mirrored(cloud.provider, m, v.source) for m in config.models for v in m.versions()):
        return None
    # After the cluster, which waits for the project's APIs (GKE: iam, storage among them) before anything
    # uses them: a bucket or service account created first fails while its API is still off.
    opts = pulumi.ResourceOptions(providers=[provider] if provider else None, depends_on=[cluster])
    existing = config.weights_bucket.split("://", 1)[1] if config.weights_bucket else None
    if isinstance(cloud, EksCloud):
        assert isinstance(cluster, EksCluster)
        account_id = aws.get_caller_identity(opts=pulumi.InvokeOptions(provider=provider)).account_id
        name = existing or _bucket_name(f"neurodock-{config.environment}-weights-{account_id}-{cloud.region}",
                                        f"nd-{_digest(config.environment)}-weights-{account_id}-{cloud.region}")
        writer: ReaderArgs = S3WeightsReaderArgs(
            source=f"s3://{name}", oidc_provider_arn=cluster.oidc_provider_arn, oidc_issuer_url=cluster.oidc_issuer_url,
            namespace=SERVING_NAMESPACE, service_account=MIRROR_ACCOUNT, write=True)
        labels_ = {"neurodock:purpose": PURPOSE}
        project = None
    else:
        assert isinstance(cloud, GkeCloud) and isinstance(cluster, GkeCluster)
        name = existing or _bucket_name(f"{cloud.project}-neurodock-{config.environment}-weights",
                                        f"{cloud.project}-nd-{_digest(config.environment)}-weights")
        writer = GcsWeightsReaderArgs(source=f"gs://{name}", project=cloud.project, workload_pool=cluster.workload_pool,
                                      namespace=SERVING_NAMESPACE, service_account=MIRROR_ACCOUNT,
                                      account_id=_google_account_id(config, MIRROR_ACCOUNT), write=True)
        labels_ = {"neurodock-purpose": PURPOSE}
        project = cloud.project
    return MirrorBucket("weights-mirror", MirrorBucketArgs(
        cloud=cloud.provider, name=name, location=cloud.region, project=project, labels=labels_, writer=writer,
        existing=existing is not None),
        opts=opts)


def autoscaled(model: ModelSpec, *, monitoring: bool) -> bool:
    """KEDA scales the model: it has room between its bounds, and Prometheus to read the queue from."""
    return model.max_replicas > model.min_replicas and monitoring


def served_model(config: StackConfig, cluster: Cluster, cloud_provider: pulumi.ProviderResource | None,
                 model: ModelSpec, prometheus_url: pulumi.Input[str] | None,
                 gateway: ModelGateway | None, bucket: str | None,
                 crds: pulumi.Resource | None = None) -> ServedModelArgs:
    """Everything one model is served with, resolved once: its versions' servers and weights identities,
    the InferencePools and pickers the gateway sends to, and its route."""
    readiness = budgets(config, model)
    pool = config.pool(model.pool)
    size = replica_size(model, pool) if pool else None
    assert size is not None  # validated: the pool exists, a vLLM model's size is known

    def version(v: ModelVersion) -> Version:
        source, mirror = v.source, None
        if mirrored(config.cloud.provider, model, v.source):
            repo, revision = v.source.removeprefix("hf://"), str(v.revision)  # validated: a commit
            mirror = Mirror(repo=repo, revision=revision, target=mirror_prefix(f"{bucket}", repo, revision),
                            volume_gib=size.volume_gib, storage_class=cluster.storage_class,
                            node_selector=system_node_selector(cluster), deadline_s=mirror_budget(config, model))
            source = mirror.target
        server = server_args(config, model, v, size, source=source, storage_class=cluster.storage_class,
                             readiness=readiness, prometheus_url=prometheus_url)
        picker = None
        if gateway is not None and v.key != "shadow":
            picker = replace(picker_args(model, v.name, readiness, monitoring=prometheus_url is not None,
                                         system_node_selector=system_node_selector(cluster), variant=v.key),
                             pool_crd=gateway.pool_crd, monitoring_crds=crds)
            if not picker.objects:
                return _listed(v, server)
            # The picker reads the replicas' /metrics.
            server = replace(server, allowed_pods=(picker_pod_labels(v.name),))
        if gateway is not None and model.canary is not None and v.key == "stable":
            # The canary's pool holds the stable replicas too, which its picker reads and may fall back to
            # (infra/routing.py pool_match_labels).
            server = replace(server, allowed_pods=(*server.allowed_pods,
                                                   picker_pod_labels(model.variant_name("canary"))))
        return Version(name=v.name, server=server, reader=_reader_args(config, cluster, v.name, source),
                       shared_storage_class=model.cache.shared_storage_class, mirror=mirror, picker=picker)

    versions = {v.key: version(v) for v in model.versions()}
    route = None
    if gateway is not None and all(v.picker for k, v in versions.items() if k != "shadow"):
        route = ServedModelRoute(gateway=gateway, request_timeout_s=model.request_timeout_seconds,
                      canary_weight=model.canary.weight if model.canary else 0,
                      shadow_percent=model.shadow.percent if model.shadow else 100)
    return ServedModelArgs(name=model.name, stable=versions["stable"], canary=versions.get("canary"),
                           shadow=versions.get("shadow"), route=route, cloud_provider=cloud_provider,
                           canary_eval=version_eval(model, "canary", system_node_selector(cluster)),
                           shadow_eval=version_eval(model, "shadow", system_node_selector(cluster)))


def version_eval(model: ModelSpec, key: str, node_selector: dict[str, str]) -> EvalGateArgs | None:
    """The eval gate of the model's ``canary`` or ``shadow``, when it names a suite (validated by the config)."""
    variant = getattr(model, key)
    if variant is None or variant.eval_suite is None:
        return None
    suite = eval_suite_path(variant.eval_suite).read_text(encoding="utf-8")
    # What the version answers with (weights, engine, flags; the model's where it inherits them), and the suite
    # and bar it must pass (the stable version's answers among them when compared): a change to any runs the
    # gate again; a weight step or a mirrored share does not.
    answers = {key: variant.model_dump(mode="json", exclude={"weight", "steps", "analysis", "percent"}),
               "model": model.model_dump(mode="json", include={"name", "served_name", "source", "revision",
                                                               "engine", "engine_args", "file"}),
               "suite": suite}
    return EvalGateArgs(suite=suite, cases=len(load_suite(suite)), pass_rate=variant.eval_pass_rate,
                        max_regression=variant.eval_max_regression if variant.eval_compare_stable else None,
                        request_timeout_s=model.request_timeout_seconds,
                        revision=hashlib.sha256(json.dumps(answers, sort_keys=True).encode()).hexdigest(),
                        node_selector=node_selector)


def _listed(version: ModelVersion, server: ModelServerArgs) -> Version:
    """A version planned only to list the charts a stack needs (``charts.listing``), the picker's chart
    not cached: no picker, and so no route."""
    return Version(name=version.name, server=server, reader=None, shared_storage_class=None, mirror=None)


def server_args(
    config: StackConfig,
    model: ModelSpec,
    version: ModelVersion,
    size: architectures.ReplicaSize,
    *,
    source: str,
    storage_class: str,
    readiness: ReadinessBudgets,
    prometheus_url: pulumi.Input[str] | None,
) -> ModelServerArgs:
    """The server of the model's stable version, or of its canary or shadow: the stable version's
    settings with the variant's image, weights (``source``: the version's, or their mirror), flags
    and a fixed replica count (the autoscaler follows the stable version; a shadow of a model at zero
    goes to zero and wakes with it)."""
    variant = version.variant
    pool = config.pool(model.pool)
    assert pool is not None  # validated
    engine = Engine(model.engine)
    e = model.engine_args
    scaling = None
    if variant is None and autoscaled(model, monitoring=prometheus_url is not None):
        scaling = Autoscaling(
            min_replicas=model.min_replicas,
            max_replicas=model.max_replicas,
            prometheus_url=prometheus_url,
            query=queue_query(model, held=config.gateway.enabled),
            busy_query=busy_query(model) if model.min_replicas == 0 else None,
            # Scale out at half the queue that the SLO alert fires on.
            target_per_replica=max(1, model.slo.queue_depth // 2),
        )
    elif version.key == "shadow" and model.min_replicas == 0 and autoscaled(
            model, monitoring=prometheus_url is not None):
        # A shadow follows its model to zero, and wakes with it: on the stable version's own signals (a
        # second ScaledObject on the same triggers is allowed, keda v2.17.2 scaledobject_webhook.go:285-330),
        # never above its replica count. Its mirrored copies are dropped while it has no endpoint.
        scaling = Autoscaling(
            min_replicas=0, max_replicas=variant.replicas, prometheus_url=prometheus_url,
            query=queue_query(model, held=config.gateway.enabled), busy_query=busy_query(model),
            target_per_replica=10**6)
    extra_args = e.extra_args if variant is None or variant.extra_args is None else variant.extra_args
    if variant is not None:
        replicas = variant.replicas if scaling is None else 0
    else:
        replicas = max(model.min_replicas, 1) if scaling is None else model.min_replicas
    return ModelServerArgs(
        namespace=SERVING_NAMESPACE,
        served_name=model.model_name,
        source=source,
        revision=version.revision if source.startswith("hf://") else None,
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
        variant=version.key,
        route=model.name if version.key != "shadow" else None,
        image=variant.image if variant else None,
    )


def _bucket_name(name: str, short: str) -> str:
    """``name`` where it fits a bucket name's 63 characters, else ``short``, which names the environment by a
    digest: cutting the name could drop what tells two stacks' buckets apart."""
    return name if len(name) <= 63 else short


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def queue_query(model: ModelSpec, *, held: bool) -> str:
    """PromQL for the model's waiting requests, the signal KEDA scales on: those queued in its stable
    version's servers, plus, with the gateway (``held``), those its endpoint picker holds. The picker
    holds requests once the pool is saturated (from a queue of 5 or 80% KV cache per replica, its
    defaults) or has no ready replica, so past that point the servers' queues stop growing and the
    held ones are the backlog; at zero replicas they are the only signal."""
    pods = f'namespace="{SERVING_NAMESPACE}", pod=~"{model.name}-server-.*"'
    if model.engine == "vllm":
        # The stable version's pods only: a canary or shadow serves the same model name, and a
        # shadow's mirrored queue must not scale the stable version out.
        servers = f'sum({metrics.VLLM_WAITING.name}{{model_name="{model.model_name}", {pods}}})'
    else:
        servers = f"sum({metrics.LLAMACPP_DEFERRED.name}{{{pods}}})"
    if not held:
        return servers
    # An empty sum is no value at all: `or vector(0)` keeps either side from blanking the other.
    picker = f'sum({metrics.EPP_HELD.name}{{namespace="{SERVING_NAMESPACE}", inference_pool="{model.name}"}})'
    return f"({servers} or vector(0)) + ({picker} or vector(0))"


def busy_query(model: ModelSpec) -> str:
    """PromQL for every request the model has: running, queued or held (its stable version's)."""
    running = metrics.VLLM_RUNNING if model.engine == "vllm" else metrics.LLAMACPP_PROCESSING
    pods = f'namespace="{SERVING_NAMESPACE}", pod=~"{model.name}-server-.*"'
    return f"({queue_query(model, held=True)}) + (sum({running.name}{{{pods}}}) or vector(0))"


def _reader_args(config: StackConfig, cluster: Cluster, name: str, source: str) -> ReaderArgs | None:
    """The cloud identity that lets version ``name``'s ServiceAccount read a bucket source."""
    account = service_account_name(name)
    if source.startswith("s3://"):
        assert isinstance(cluster, EksCluster)  # validated
        return S3WeightsReaderArgs(source=source, oidc_provider_arn=cluster.oidc_provider_arn,
                                   oidc_issuer_url=cluster.oidc_issuer_url, namespace=SERVING_NAMESPACE,
                                   service_account=account)
    if source.startswith("gs://"):
        assert isinstance(cluster, GkeCluster)  # validated
        return GcsWeightsReaderArgs(source=source, project=config.cloud.project, workload_pool=cluster.workload_pool,
                                    namespace=SERVING_NAMESPACE, service_account=account,
                                    account_id=_google_account_id(config, name))
    return None


def _google_account_id(config: StackConfig, name: str) -> str:
    """A Google service account id (6-30 characters) for ``name``, unique per environment."""
    suffix = hashlib.sha256(f"{config.environment}/{name}".encode()).hexdigest()[:6]
    return f"{name[:21]}-{suffix}"
