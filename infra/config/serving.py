"""The models a stack serves: weights, engine, versions (stable, canary, shadow), rollout, SLOs and
readiness, and what the engine and the GPUs would refuse."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from components.gpu.catalog import GPU_MODELS
from components.labels import MODEL_LABEL, model_label_value
from components.monitoring.metrics import EPP_TTFT_BUCKETS, VLLM_TTFT_BUCKETS
from components.serving.architectures import CUDA_CONTEXT_GIB
from infra.config.base import VARIANTS, Fraction, Model, Name, Problem, Token, WeightsUri, key_path, pattern
from infra.config.capacity import label, model_architecture, replica_size
from infra.config.engine import architecture_refused
from infra.config.monitoring import GPU_MEMORY_ALERT_HEADROOM, Monitoring
from infra.config.pools import NodePool, device_memory_gib
from infra.config.rollout import EvalGate, canary_problems, eval_suite_problems

if TYPE_CHECKING:
    from infra.config.stack import StackConfig



class Slo(Model):
    """A model's service-level objectives over 30 days; each one becomes multi-window burn-rate alerts."""

    ttft_p95_seconds: float = Field(default=5, gt=0, le=600)
    """95% of streamed requests get their first token within this many seconds, timed at the gateway's picker
    (vLLM's own time without a gateway): a bucket bound of that histogram (default 5, a bound of both)."""
    availability: float = Field(default=0.99, ge=0.95, le=0.9999)
    """Share of requests the gateway answers without a 5xx (default 0.99)."""
    queue_depth: int = Field(default=10, gt=0, le=100000)
    """Requests waiting per model above which it is overloaded (default 10)."""
    kv_cache_usage: Fraction = 0.9
    """KV-cache usage fraction above which requests start to be preempted (default 0.9)."""


class Throughput(Model):
    """What the time-to-ready estimate assumes; each default's source is in docs/upstream.md."""

    node_start_seconds: int = Field(default=300, gt=0, le=7200)
    """A new GPU node joins and advertises its GPUs (default 300: 4-6 minutes reported on EKS)."""
    image_pull_mb_per_second: float = Field(default=50, gt=0, le=100000)
    """Image pull and unpack on a node (default 50: 15-20 GB images take 4-6 minutes, AWS)."""
    hugging_face_mb_per_second: float = Field(default=100, gt=0, le=100000)
    """Download from the Hugging Face Hub (default 100: about 40 per file, 300+ across files)."""
    bucket_mb_per_second: float = Field(default=1000, gt=0, le=100000)
    """Reads from a bucket in the cluster's region, streamed or copied (default 1000: the Run:ai streamer
    read 15 GB from S3 in 4.9-8.5 s in its benchmark)."""
    volume_mb_per_second: float = Field(default=125, gt=0, le=100000)
    """Reads from a weights volume (default 125: an EBS gp3 volume's baseline)."""
    engine_start_seconds: int = Field(default=120, gt=0, le=7200)
    """vLLM's work after loading: profiling, compilation and CUDA graphs (default 120)."""
    margin: float = Field(default=2.0, ge=1, le=10)
    """Budgets are the estimate times this (default 2)."""


class Readiness(Model):
    """Time budgets of a model becoming ready; they set await timeouts, startup probes and rollout
    deadlines. Each defaults to the time-to-ready estimate (``neurodock plan`` shows it) times
    ``throughput.margin``."""

    node_scale_up_seconds: int | None = Field(default=None, gt=0, le=7200)
    """A GPU node joining and its GPUs being advertised."""
    image_pull_seconds: int | None = Field(default=None, gt=0, le=7200)
    """Pulling the engine image."""
    model_load_seconds: int | None = Field(default=None, gt=0, le=14400)
    """Fetching and loading the weights until the engine answers health checks (the first replica's)."""
    throughput: Throughput = Throughput()
    """What the estimate assumes."""


class ModelArchitecture(Model):
    """The size of a model that is not in the built-in catalogue (see its config.json)."""

    parameters_billions: float = Field(gt=0, le=10000)
    layers: int = Field(gt=0, le=1000)
    attention_heads: int = Field(gt=0, le=1024)
    kv_heads: int = Field(gt=0, le=1024)
    head_dim: int = Field(gt=0, le=1024)
    max_context: int = Field(default=131072, gt=0, le=10485760)
    """Context length in tokens (config.json max_position_embeddings), at most 10,485,760: Llama 4 Scout's, the
    longest of the open models (its config.json, as vLLM's Llama 4 test configs copy it; read 2026-12-06)."""


class EngineArgs(Model):
    """Engine settings; NeuroDock turns them into the engine's flags."""

    max_model_len: int = Field(default=8192, ge=256, le=1048576)
    """Context length in tokens (default 8192)."""
    gpu_memory_utilization: float = Field(default=0.9, gt=0.1, le=0.98)
    """vLLM: fraction of each GPU's memory it may use (default 0.9)."""
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    """vLLM: weights dtype (default auto: the checkpoint's, bf16 for current models)."""
    quantization: Literal["fp8", "awq", "gptq"] | None = None
    """vLLM: quantisation of the checkpoint or on the fly (fp8) (default none)."""
    kv_cache_dtype: Literal["auto", "fp8"] = "auto"
    """vLLM: KV-cache dtype (default auto)."""
    max_num_seqs: int = Field(default=64, ge=1, le=4096)
    """Sequences batched at once (vLLM --max-num-seqs; llama.cpp --parallel) (default 64)."""
    extra_args: list[Token] = []
    """More engine flags, one token per item (default none); flags NeuroDock manages are refused
    (``infra.config.engine``)."""


class Rollout(Model):
    """How a new version replaces the old under GPU scarcity."""

    max_surge: int = Field(default=1, ge=0, le=100)
    """Extra replicas during a rollout; each needs free GPUs (default 1)."""
    max_unavailable: int = Field(default=0, ge=0, le=100)
    """Replicas that may be down during a rollout (default 0: never lose capacity)."""


class WeightsCache(Model):
    """The volume model weights are downloaded to before the engine starts."""

    size_gib: int | None = Field(default=None, ge=1, le=65536)
    """Volume size (default: 1.2 x the weights plus 10 GiB)."""
    shared_storage_class: str | None = None
    """A ReadWriteMany storage class (EFS, Filestore): one volume filled once and shared by every
    replica (default: a volume per replica, filled when the replica starts)."""


Revision = pattern(r"^[A-Za-z0-9][-A-Za-z0-9_.]{0,99}$", "a Hugging Face commit, branch or tag",
                   "0e9e39f249a16976918f6564b8830bc894c89659")


class Variant(Model):
    """Another version of a model served beside the stable one: a different image, weights
    revision or engine flags. Promotion and rollback are config changes: no image is rebuilt."""

    image: str | None = None
    """Engine image (default: the stable version's)."""
    source: WeightsUri | None = None
    """Weights (default: the stable version's)."""
    revision: Revision | None = None
    """Hugging Face commit of the weights (default: the stable version's)."""
    extra_args: list[Token] | None = None
    """Engine flags beyond the managed ones (default: the stable version's)."""
    replicas: int = Field(default=1, ge=1, le=100)
    """Replicas of the variant (default 1)."""


class CanaryAnalysis(Model):
    """How ``neurodock rollout analyze`` judges a canary's step (docs/rollouts.md)."""

    window_minutes: int = Field(default=10, ge=1, le=1440)
    """Minutes of traffic each SLI is compared over, the canary's against the stable version's (default 10)."""
    min_requests: int = Field(default=100, ge=1, le=10_000_000)
    """Requests the canary must have served in the window before any verdict but ``hold`` (default 100)."""


class Canary(EvalGate, Variant):
    """A canary: takes ``weight`` percent of the model's requests."""

    weight: int = Field(ge=0, le=100)
    """Percent of the model's traffic sent to the canary (0-100)."""
    steps: list[int] | None = None
    """Weights ``neurodock rollout step`` moves the canary through, rising, each 1-99; after the last,
    ``rollout promote`` (default none: the weight is edited by hand)."""
    analysis: CanaryAnalysis = CanaryAnalysis()
    """How each step is judged (defaults: a 10-minute window, 100 requests)."""


class Shadow(EvalGate, Variant):
    """A shadow: receives a copy of the model's requests; its answers are discarded."""

    percent: int = Field(default=100, ge=1, le=100)
    """Percent of requests mirrored to the shadow (default 100)."""


MAX_DEFAULT_DRAIN_S = 575
"""The Cluster Autoscaler gives an evicted pod at most 600 s (``--max-graceful-termination-sec``), less
the 10 s pre-stop wait and 15 s margin of a model server's grace period."""


ServedName = pattern(r"^[A-Za-z0-9][-A-Za-z0-9_./:]{0,127}$", "a model name of at most 128 letters, digits and -_./:",
                     "meta-llama/Llama-3.1-8B-Instruct")


GgufFile = pattern(r"^[^/\s][^\s]*\.gguf$", "a .gguf file's path within the source, without spaces",
                   "qwen2.5-0.5b-instruct-q4_k_m.gguf")


class ModelSpec(Model):
    """One entry of the model catalog: a model served behind the stack's endpoint."""

    name: Name
    """Id of the deployment (Kubernetes-safe)."""
    served_name: ServedName | None = None
    """Value of the OpenAI ``model`` field that selects this model (default: ``name``)."""
    source: WeightsUri
    """Where the weights come from."""
    revision: Revision | None = None
    """Hugging Face sources: the commit every replica serves; required where the weights are mirrored
    (``mirrored``), else the main branch when a replica downloads (default none)."""
    engine: Literal["vllm", "llamacpp"] = "vllm"
    """``vllm`` on GPU pools; ``llamacpp`` serves small GGUF models on CPU (default vllm)."""
    pool: Name
    """Node pool the replicas run on."""
    gpus_per_replica: int = Field(default=1, ge=0, le=16)
    """GPUs per replica, the tensor-parallel size for vLLM; 0 for CPU engines (default 1)."""
    min_replicas: int = Field(default=1, ge=0, le=1000)
    """Fewest replicas (default 1); at least 1 until a request can wake a model at zero."""
    max_replicas: int = Field(default=1, ge=1, le=1000)
    """Most replicas (default 1)."""
    file: GgufFile | None = None
    """llamacpp: the GGUF file to serve, within ``source`` (required for llamacpp)."""
    architecture: ModelArchitecture | None = None
    """The model's size, for the capacity check; required for models not in the built-in catalogue."""
    engine_args: EngineArgs = EngineArgs()
    """Engine settings."""
    concurrency: int | None = Field(default=None, ge=1, le=4096)
    """Full-length sequences (``maxModelLen`` tokens each) the KV cache must hold at once, for the
    capacity check (default: ``engineArgs.maxNumSeqs``, every sequence vLLM batches at its longest)."""
    rollout: Rollout = Rollout()
    """Rollout surge and unavailability (defaults: surge 1, unavailable 0)."""
    request_timeout_seconds: int = Field(default=600, ge=10, le=3600)
    """Longest request the gateway lets run, streaming included (default 600)."""
    drain_seconds: int | None = Field(default=None, ge=0, le=3600)
    """Time in-flight requests get to finish when a replica stops (default: requestTimeoutSeconds, so
    no generation the gateway allows is cut, at most 575 s: with the pre-stop wait and margin, the
    10 minutes the Cluster Autoscaler waits for a pod it evicts)."""
    cache: WeightsCache = WeightsCache()
    """Where the weights are cached (default: a volume per replica on the cluster's storage class)."""
    slo: Slo = Slo()
    """Service-level objectives, alerted on (defaults: TTFT p95 2 s, queue 10, KV cache 0.9)."""
    canary: Canary | None = None
    """A canary version taking a share of the traffic (default none)."""
    shadow: Shadow | None = None
    """A shadow version receiving mirrored traffic (default none)."""
    readiness: Readiness | None = None
    """Readiness budgets for this model (default: the stack's ``readiness``)."""

    @property
    def sequences(self) -> int:
        """Full-length sequences the KV cache must hold."""
        return self.engine_args.max_num_seqs if self.concurrency is None else self.concurrency

    @property
    def drain(self) -> int:
        """Seconds a stopping replica gives in-flight requests."""
        return min(self.request_timeout_seconds, MAX_DEFAULT_DRAIN_S) if self.drain_seconds is None \
            else self.drain_seconds

    @property
    def model_name(self) -> str:
        """The OpenAI ``model`` value clients send."""
        return self.served_name or self.name

    def variant_name(self, key: str) -> str:
        """Resource-name prefix of the model's ``canary`` or ``shadow``."""
        return f"{self.name}-{key}"

    def versions(self) -> list[ModelVersion]:
        """The stable version, then the canary and shadow that are configured, with the weights each
        serves (a variant's own, else the model's)."""
        out = [ModelVersion(key="stable", name=self.name, variant=None, source=self.source, revision=self.revision)]
        for key in VARIANTS:
            if (variant := getattr(self, key)) is not None:
                out.append(ModelVersion(key=key, name=self.variant_name(key), variant=variant,
                                        source=variant.source or self.source,
                                        revision=variant.revision or self.revision))
        return out


@dataclass(frozen=True, kw_only=True)
class ModelVersion:
    """One version of a model: ``stable``, ``canary`` or ``shadow``."""

    key: str
    name: str
    """Resource-name prefix."""
    variant: Variant | None
    """The canary's or shadow's config; None for the stable version."""
    source: str
    revision: str | None


def mirrored(provider: str, model: ModelSpec, source: str) -> bool:
    """Hugging Face weights of a vLLM model on a cloud are mirrored once into the stack's bucket and
    streamed from there by every replica; a shared volume, where configured, is filled instead."""
    return (source.startswith("hf://") and model.engine == "vllm" and provider in ("eks", "gke")
            and model.cache.shared_storage_class is None)


def model_problems(config: StackConfig) -> list[Problem]:
    problems: list[Problem] = []

    def add(loc: tuple[str | int, ...], message: str) -> None:
        problems.append(Problem(key_path(loc), message))

    provider = config.cloud.provider
    # Models.
    names: dict[str, int] = {}
    served: dict[str, int] = {}
    label_values: dict[str, int] = {}
    for i, model in enumerate(config.models):
        if model.name in names:
            add(("models", i, "name"), f"model name {model.name!r} is already used by models[{names[model.name]}]")
        names.setdefault(model.name, i)
        for key in VARIANTS:
            if getattr(model, key) is None:
                continue
            if not config.gateway.enabled:
                add(("models", i, key), f"a {key} is reached through the gateway; set gateway.enabled to true or "
                    f"remove the {key}")
            variant_name = model.variant_name(key)
            if variant_name in names:
                add(("models", i, key), f"its resources would be named {variant_name!r}, the name of "
                    f"models[{names[variant_name]}]; rename one of the models")
            names.setdefault(variant_name, i)
        label = model_label_value(model.model_name)
        if model.model_name in served:
            add(("models", i, "servedName"),
                f"served name {model.model_name!r} is already used by models[{served[model.model_name]}]")
        elif label in label_values:
            # The label tells one model's pods from another's (kubectl -l, dashboards): it must be unique.
            other = label_values[label]
            add(("models", i, "servedName"),
                f"served name {model.model_name!r} and models[{other}]'s {config.models[other].model_name!r} make "
                f"the same pod label {MODEL_LABEL}={label} ('/' and characters a label cannot hold become '_', "
                "long names are cut): change one of the served names")
        served.setdefault(model.model_name, i)
        label_values.setdefault(label, i)
        # Scale from zero needs the gateway's endpoint picker to hold the first request (and Prometheus,
        # for KEDA to see it held: checked with every autoscaled model).
        if model.min_replicas == 0 and not config.gateway.enabled:
            add(("models", i, "minReplicas"), (
                "0 needs the gateway: its endpoint picker holds a request while the model wakes, and the held "
                "request is what wakes it; without the gateway nothing could, so set gateway.enabled to true or "
                "minReplicas to 1 or more"))
        if model.min_replicas > model.max_replicas:
            add(("models", i, "minReplicas"),
                f"must be <= maxReplicas ({model.min_replicas} > {model.max_replicas})")
        pool = config.pool(model.pool)
        if pool is None:
            add(("models", i, "pool"),
                f"no node pool named {model.pool!r}; pools: {', '.join(p.name for p in config.node_pools)}")
            continue
        if model.engine == "vllm":
            if pool.gpu is None:
                add(("models", i, "pool"), f"engine 'vllm' needs a GPU pool; {pool.name!r} has no GPUs "
                    "(use engine 'llamacpp' for CPU serving)")
            elif model.gpus_per_replica < 1:
                add(("models", i, "gpusPerReplica"), "engine 'vllm' needs at least 1 GPU per replica")
            elif model.gpus_per_replica > pool.gpu.count:
                add(("models", i, "gpusPerReplica"),
                    f"{model.gpus_per_replica} GPUs per replica do not fit pool {pool.name!r}, whose nodes have "
                    f"{pool.gpu.count}; a replica cannot span nodes")
        elif model.gpus_per_replica != 0:
            add(("models", i, "gpusPerReplica"), f"engine {model.engine!r} runs on CPU; set it to 0")
        problems.extend(_model_problems(i, model, pool, provider, config.monitoring, config.gateway.enabled))
        problems.extend(_cache_problems(i, model, pool, provider))
    return problems


def model_warnings(config: StackConfig) -> list[Problem]:
    out = []
    cloud = config.cloud
    for i, model in enumerate(config.models):
        if model.cache.size_gib is not None and not any(
                on_volume(cloud.provider, model, v.source) for v in model.versions()):
            out.append(Problem(key_path(("models", i, "cache", "sizeGib")), f"is unused: model {label(model)} "
                               "streams its weights from a bucket into GPU memory, with no volume"))
        if cloud.provider in ("eks", "gke") and model.drain > MAX_DEFAULT_DRAIN_S:
            out.append(Problem(key_path(("models", i, "drainSeconds")), (
                f"{model.drain} s is longer than the Cluster Autoscaler lets a pod it evicts take (600 s, less the "
                "model server's 10 s pre-stop wait and 15 s margin): scaling a node down cuts requests still "
                f"draining after {MAX_DEFAULT_DRAIN_S} s (rollouts and upgrades wait the whole drain)")))
    return out


def _model_problems(i: int, model: ModelSpec, pool: NodePool, provider: str,
                    monitoring: Monitoring, gateway: bool) -> list[Problem]:
    """Engine flags, rollout, and capacity: the model fits its pool's GPUs before anything exists."""
    out: list[Problem] = []

    def add(loc: tuple[str | int, ...], message: str) -> None:
        out.append(Problem(key_path(("models", i, *loc)), message))

    cloud_for = {"s3": "eks", "gs": "gke"}.get(model.source.split("://", 1)[0])
    if cloud_for and cloud_for != provider:
        add(("source",), f"{model.source.split('://', 1)[0]}:// weights are read with {cloud_for} workload identity; "
            f"this stack runs on {provider}: use hf:// or a {provider} bucket")
    # The TTFT SLI reads the gateway picker's histogram (vLLM's without a gateway): the share of requests meeting
    # the objective is exact only at one of its bucket bounds.
    buckets, timer = (EPP_TTFT_BUCKETS, "the gateway picker's") if gateway else (VLLM_TTFT_BUCKETS, "vLLM's")
    if model.engine == "vllm" and model.slo.ttft_p95_seconds not in buckets:
        near = min(buckets, key=lambda b: abs(b - model.slo.ttft_p95_seconds))
        add(("slo", "ttftP95Seconds"), (
            f"{model.slo.ttft_p95_seconds} is not a bucket bound of {timer} time-to-first-token histogram, so "
            f"the share of requests meeting it cannot be counted; use {near:g} or another bound: "
            f"{', '.join(f'{b:g}' for b in buckets)}"))
    threshold = monitoring.alerts.gpu_memory_usage
    if (monitoring.enabled and model.engine == "vllm"
            and model.engine_args.gpu_memory_utilization > round(threshold - GPU_MEMORY_ALERT_HEADROOM, 4)):
        add(("engineArgs", "gpuMemoryUtilization"), (
            f"vLLM holds {model.engine_args.gpu_memory_utilization} of each GPU's memory while it runs, so the alert "
            f"on GPU memory above monitoring.alerts.gpuMemoryUsage ({threshold}) would fire for as long as it does; "
            f"set it to at most {threshold - GPU_MEMORY_ALERT_HEADROOM:.2f} or raise gpuMemoryUsage"))
    if model.max_replicas > model.min_replicas and not monitoring.enabled:
        add(("maxReplicas",), "autoscaling between minReplicas and maxReplicas reads the queue from Prometheus; "
            "enable monitoring or set maxReplicas equal to minReplicas")
    if model.rollout.max_surge == 0 and model.rollout.max_unavailable == 0:
        add(("rollout",), "maxSurge and maxUnavailable cannot both be 0: the rollout could never progress")
    out.extend(canary_problems(i, model))
    out.extend(eval_suite_problems(i, model))
    for key in VARIANTS:
        variant = getattr(model, key)
        if variant is not None and variant.source is not None:
            scheme, stable_scheme = variant.source.split("://", 1)[0], model.source.split("://", 1)[0]
            if scheme != stable_scheme:
                add((key, "source"), f"must come from the same kind of store as the model's source ({stable_scheme}://"
                    f"), whose identity the {key} reuses (got {scheme}://)")
    for version in model.versions():
        where = (version.key, "revision") if version.variant else ("revision",)
        own = version.variant.revision if version.variant else model.revision
        if own is not None and not version.source.startswith("hf://"):
            add(where, "applies to hf:// sources; a bucket prefix is its own version: point source at it")
        # A variant that takes the model's weights as they are shares its problem: reported once, on the model.
        inherits = version.variant is not None and not (version.variant.source or version.variant.revision)
        if not inherits and mirrored(provider, model, version.source) and not re.fullmatch(
                r"[0-9a-f]{40}", version.revision or ""):
            add(where, (
                f"Hugging Face weights are mirrored once into the stack's bucket and served from there, so "
                f"they need a commit: set revision to the 40-character commit of {version.source} to serve (the "
                "repository's \"Files and versions\" page lists them), e.g. "
                "revision: 0e9e39f249a16976918f6564b8830bc894c89659"))
    if model.engine == "llamacpp":
        if model.revision is not None:
            add(("revision",), "llama.cpp downloads the GGUF file from the repository's main branch itself; "
                "remove revision, or serve a bucket copy of the file")
        if model.file is None:
            add(("file",), "engine 'llamacpp' needs the GGUF file to serve, e.g. qwen2.5-0.5b-instruct-q4_k_m.gguf")
        return out
    if model.file is not None:
        add(("file",), "applies to engine 'llamacpp' only; vLLM serves the whole repository")
    if pool.gpu is None or model.gpus_per_replica < 1 or model.gpus_per_replica > pool.gpu.count:
        return out  # reported above
    arch = model_architecture(model)
    if arch is None:
        add(("architecture",), f"model {label(model)} is not in the built-in catalogue "
            "(components/serving/architectures.py); state its size: parametersBillions, layers, attentionHeads, "
            "kvHeads, headDim")
        return out
    if architecture_refused(model):
        return out  # reported on architecture: no fit advice from sizes that contradict themselves or the catalogue
    tp = model.gpus_per_replica
    if arch.attention_heads % tp:
        add(("gpusPerReplica",), f"tensor-parallel size {tp} does not divide the {arch.attention_heads} attention "
            f"heads of model {label(model)}; use a divisor of {arch.attention_heads}")
        return out
    engine = model.engine_args
    if engine.max_model_len > arch.max_context:
        add(("engineArgs", "maxModelLen"), f"{engine.max_model_len} exceeds the {arch.max_context}-token context "
            f"of model {label(model)}")
    gpu = GPU_MODELS.get(pool.gpu.type)
    memory_gib = device_memory_gib(pool)
    if gpu is None or memory_gib is None:
        return out
    sharing = pool.gpu.sharing
    if sharing is not None and tp > 1:
        add(("gpusPerReplica",), (
            f"pool {pool.name!r} shares its GPUs ({sharing.strategy}), so a replica cannot span several: a "
            f"process sees one MIG slice, and time-shared ranks may land on one GPU; use 1, or a pool of whole GPUs"))
        return out
    if sharing is not None and sharing.strategy == "timeSharing":
        # Each of the clients takes its fraction of the whole GPU at start, and its own CUDA context beside it.
        most = (gpu.memory_gib / sharing.max_shared_clients - CUDA_CONTEXT_GIB) / gpu.memory_gib
        if engine.gpu_memory_utilization > most:
            add(("engineArgs", "gpuMemoryUtilization"), (
                f"{engine.gpu_memory_utilization} of each {pool.gpu.type} for each of the "
                f"{sharing.max_shared_clients} replicas pool {pool.name!r} puts on one GPU does not fit it: the "
                f"second would find too little free memory and refuse to start; set at most {max(most, 0):.2f}"))
            return out
    size = replica_size(model, pool)
    assert size is not None and size.memory is not None
    need = size.memory
    have = memory_gib * engine.gpu_memory_utilization
    if need.per_gpu_gib > have:
        add(("concurrency",) if model.concurrency is None else ("gpusPerReplica",), (
            f"model {label(model)} does not fit pool {pool.name!r}: each of its {tp} {pool.gpu.type} GPUs "
            f"needs {need.per_gpu_gib:.1f} GiB (weights {need.weights_gib:.1f} GiB / {tp}, KV cache "
            f"{need.kv_cache_gib:.1f} GiB for {model.sequences} x {engine.max_model_len} tokens, runtime "
            f"{need.overhead_gib:.1f} GiB) but may use {have:.1f} GiB ({memory_gib:g} GiB x "
            f"{engine.gpu_memory_utilization}); set concurrency to the full-length sequences it must hold (it "
            f"defaults to engineArgs.maxNumSeqs), or use more GPUs per replica, a larger GPU, quantization or a "
            "shorter maxModelLen"))
    if sharing is None and gpu.memory_gib * (1 - engine.gpu_memory_utilization) < CUDA_CONTEXT_GIB:
        add(("engineArgs", "gpuMemoryUtilization"), (
            f"{engine.gpu_memory_utilization} of a {gpu.memory_gib} GiB {pool.gpu.type} leaves "
            f"{gpu.memory_gib * (1 - engine.gpu_memory_utilization):.1f} GiB for the CUDA context, which vLLM "
            f"allocates outside that budget (about {CUDA_CONTEXT_GIB:.0f} GiB): it would refuse to start; lower it"))
    return out


def on_volume(provider: str, model: ModelSpec, source: str) -> bool:
    """The weights of ``source`` are copied to a volume before the engine starts; vLLM streams a bucket's,
    mirrored ones included, straight into GPU memory."""
    return not (model.engine == "vllm" and (source.startswith(("s3://", "gs://")) or mirrored(provider, model, source)))


def _cache_problems(i: int, model: ModelSpec, pool: NodePool, provider: str) -> list[Problem]:
    """``cache.sizeGib`` holds the weights, and sizes a volume that exists."""
    size_gib = model.cache.size_gib
    if size_gib is None or not any(on_volume(provider, model, v.source) for v in model.versions()):
        return []  # no volume: config_warnings says the key is unused
    if model_architecture(model) is None or (model.gpus_per_replica and pool.gpu is None):
        return []  # a size unknown (a GGUF file; a vLLM model is refused), or reported on the pool
    size = replica_size(model, pool)
    assert size is not None
    if size_gib >= size.weights_gib:
        return []
    return [Problem(key_path(("models", i, "cache", "sizeGib")), (
        f"{size_gib} GiB cannot hold the {size.weights_gib:.1f} GiB of weights of model {label(model)}; remove it "
        f"for the default ({size.volume_gib} GiB: the weights, a fifth more and 10 GiB for the engine's files) or set "
        f"at least {math.ceil(size.weights_gib)}"))]


__all__ = [
    "MAX_DEFAULT_DRAIN_S", "Canary", "CanaryAnalysis", "EngineArgs", "GgufFile", "ModelArchitecture",
    "ModelSpec", "ModelVersion", "Readiness", "Revision", "Rollout", "ServedName", "Shadow", "Slo", "Throughput",
    "Variant", "WeightsCache", "mirrored", "model_problems", "model_warnings", "on_volume"
]
