"""How long a model takes to become ready, estimated from its size, where its weights come from, and
the throughput the stack's ``readiness.throughput`` assumes; the readiness budgets default from it.

Two replicas matter: the first, which may fetch the weights from the internet, and one added by a
scale-out or a rollout, which must not (``infra.config.mirrored``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from components.serving.architectures import GIB
from components.serving.model_server import ReadinessBudgets
from components.versions import LLAMACPP_IMAGE_GB, VLLM_IMAGE_GB
from infra.config import ModelSpec, StackConfig, Throughput, mirrored, replica_size

LLAMACPP_START_S = 10
"""llama.cpp maps the GGUF file and answers: no profiling or compilation step."""


@dataclass(frozen=True, kw_only=True)
class Phases:
    """Seconds of each step of one replica becoming ready."""

    node_s: int
    """A new node (when the pool has no room)."""
    image_s: int
    weights_s: int
    """Fetching the weights to where the engine reads them (none when it streams them)."""
    load_s: int
    """Reading the weights into memory, then the engine's own start."""

    @property
    def total_s(self) -> int:
        return self.node_s + self.image_s + self.weights_s + self.load_s


@dataclass(frozen=True, kw_only=True)
class TimeToReady:
    path: str
    """Where the weights come from, in words."""
    weights_gb: float
    first: Phases
    scale_out: Phases
    mirror_s: int = 0
    """Of the first replica's ``weights_s``: mirroring them into the stack's bucket, a Job of its own."""

    @property
    def recovery(self) -> Phases:
        """The first replica when the weights bucket already holds the weights (a stack re-created, or its
        DR copy, reading ``neurodock:weightsBucket``): its mirror Job finds the completion marker and ends."""
        return Phases(node_s=self.first.node_s, image_s=self.first.image_s,
                      weights_s=self.first.weights_s - self.mirror_s, load_s=self.first.load_s)


def throughput(config: StackConfig, model: ModelSpec) -> Throughput:
    return (model.readiness or config.readiness).throughput


def time_to_ready(config: StackConfig, model: ModelSpec) -> TimeToReady:
    t = throughput(config, model)
    pool = config.pool(model.pool)
    size = replica_size(model, pool) if pool else None
    weights_gb = (size.weights_gib if size else 0) * GIB / 1e9
    vllm = model.engine == "vllm"
    image_s = _seconds((VLLM_IMAGE_GB if vllm else LLAMACPP_IMAGE_GB) / t.image_pull_mb_per_second * 1000)
    start_s = t.engine_start_seconds if vllm else LLAMACPP_START_S
    hub = _seconds(weights_gb * 1000 / t.hugging_face_mb_per_second)
    bucket = _seconds(weights_gb * 1000 / t.bucket_mb_per_second)
    volume = _seconds(weights_gb * 1000 / t.volume_mb_per_second)
    from_hub = model.source.startswith("hf://")

    def phases(weights_s: int, load_s: int) -> Phases:
        return Phases(node_s=t.node_start_seconds, image_s=image_s, weights_s=weights_s, load_s=load_s + start_s)

    if mirrored(config.cloud.provider, model, model.source):
        # Downloaded once to the Job's volume and uploaded from it, then streamed by every replica.
        into = "the weights bucket" if config.weights_bucket else "the stack's bucket"
        return TimeToReady(path=f"Hugging Face, mirrored once into {into}, streamed to the GPUs",
                           weights_gb=weights_gb, first=phases(hub + volume, bucket), scale_out=phases(0, bucket),
                           mirror_s=hub + volume)
    if vllm and not from_hub:
        return TimeToReady(path="streamed from the bucket to the GPUs", weights_gb=weights_gb,
                           first=phases(0, bucket), scale_out=phases(0, bucket))
    fetch = hub if from_hub else bucket
    origin = "Hugging Face" if from_hub else "the bucket"
    if model.cache.shared_storage_class:
        return TimeToReady(path=f"{origin}, downloaded once to a shared volume", weights_gb=weights_gb,
                           first=phases(fetch, volume), scale_out=phases(0, volume))
    return TimeToReady(path=f"{origin}, downloaded by every replica to its own volume", weights_gb=weights_gb,
                       first=phases(fetch, volume), scale_out=phases(fetch, volume))


MIN_BUDGET_S = 120
"""No budget is shorter: a small model on a laptop still waits on a slow network now and then."""


def budgets(config: StackConfig, model: ModelSpec) -> ReadinessBudgets:
    """The readiness budgets of the model's servers: set in the model's or the stack's ``readiness``,
    else the first replica's estimate times the margin (its mirror Job has a budget of its own)."""
    estimate = time_to_ready(config, model)
    first = estimate.first

    def pick(key: str, estimated_s: int) -> int:
        for readiness in (model.readiness, config.readiness):
            if readiness is not None and getattr(readiness, key) is not None:
                return getattr(readiness, key)
        return _budget(config, model, estimated_s)

    return ReadinessBudgets(node_scale_up_s=pick("node_scale_up_seconds", first.node_s),
                            image_pull_s=pick("image_pull_seconds", first.image_s),
                            model_load_s=pick("model_load_seconds", first.weights_s - estimate.mirror_s + first.load_s))


def mirror_budget(config: StackConfig, model: ModelSpec) -> int:
    """How long mirroring the model's weights may take."""
    return _budget(config, model, time_to_ready(config, model).mirror_s)


def _budget(config: StackConfig, model: ModelSpec, estimated_s: int) -> int:
    return max(MIN_BUDGET_S, math.ceil(estimated_s * throughput(config, model).margin))


def _seconds(value: float) -> int:
    return max(1, math.ceil(value))
