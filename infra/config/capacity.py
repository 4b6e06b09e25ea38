"""Whether the models fit: each replica in its GPUs' memory, and every model's peak in its pool."""

from __future__ import annotations

from typing import TYPE_CHECKING

from components.serving.architectures import Architecture, ReplicaSize, lookup
from components.serving.architectures import replica_size as architectures_replica_size
from infra.config.base import VARIANTS, Problem, count_noun, key_path
from infra.config.pools import NodePool, device_memory_gib, gpu_devices_per_node

if TYPE_CHECKING:
    from infra.config.serving import ModelSpec
    from infra.config.stack import StackConfig


def capacity(config: StackConfig) -> tuple[list[Problem], list[Problem]]:
    """Every model's replicas at their most, with its canary and shadow, fit its pool's GPUs, and so do all the
    models of a pool together: a replica the pool cannot hold stays Pending. Then the warnings: where, at that
    peak, a rollout's surge replica has no room (with ``maxUnavailable`` 0 it waits until a replica goes)."""
    problems: list[Problem] = []
    warnings: list[Problem] = []
    for i, pool in enumerate(config.node_pools):
        per_node = gpu_devices_per_node(pool)
        if per_node is None:
            continue
        capacity = pool.max_nodes * per_node
        held = (f"pool {pool.name!r} holds at most {count_noun(capacity, 'GPU')} "
                f"({count_noun(pool.max_nodes, 'node')} x {per_node})")
        peaks: list[tuple[int, ModelSpec, int]] = []
        for j, model in enumerate(config.models):
            gpus = model.gpus_per_replica
            if model.pool != pool.name or model.engine != "vllm" or not 0 < gpus <= per_node:
                continue  # another pool's, or reported on gpusPerReplica
            replicas = model.max_replicas + sum(v.replicas for v in (model.canary, model.shadow) if v)
            peaks.append((j, model, replicas * gpus))
            # A replica cannot span nodes: what is left of a node when its replicas are placed stays idle.
            room = min(capacity // gpus, pool.max_nodes * (per_node // gpus))
            parts = [f"maxReplicas {model.max_replicas}"]
            parts += [f"{key} {v.replicas}" for key in VARIANTS if (v := getattr(model, key))]
            where = key_path(("models", j, "maxReplicas"))
            if replicas > room:
                problems.append(Problem(where, (
                    f"model {label(model)} needs up to {replicas} replicas of {count_noun(gpus, 'GPU')} each "
                    f"({', '.join(parts)}); {held}, room for {room} such replicas; lower maxReplicas or the canary's "
                    "or shadow's replicas, or raise the pool's maxNodes")))
            elif replicas + _surge(model) > room:
                warnings.append(Problem(where, (
                    f"at its peak of {replicas} replicas, model {label(model)} leaves pool {pool.name!r} no room for "
                    f"a rollout's surge replica, so a rollout then waits until a replica is scaled away; raise the "
                    "pool's maxNodes, or set rollout.maxUnavailable to 1")))
        steady = sum(need for *_, need in peaks)
        surge = max((_surge(m) * m.gpus_per_replica for _, m, _ in peaks), default=0)
        reported = {p.path for p in problems}
        if len(peaks) < 2 or any(key_path(("models", j, "maxReplicas")) in reported for j, *_ in peaks):
            continue
        each = ", ".join(f"{label(m)} {need}" for _, m, need in peaks)
        if steady > capacity:
            problems.append(Problem(key_path(("nodePools", i, "maxNodes")), (
                f"the models on pool {pool.name!r} need up to {steady} GPUs together at their maxReplicas with "
                f"canaries and shadows ({each}); {held}; raise maxNodes to {-(-steady // per_node)} or lower the "
                "models' maxReplicas")))
        elif steady + surge > capacity:
            warnings.append(Problem(key_path(("nodePools", i, "maxNodes")), (
                f"at their peak the models on pool {pool.name!r} take {steady} of its {capacity} GPUs ({each}), "
                f"leaving no room for a rollout's surge replica; raise maxNodes to "
                f"{-(-(steady + surge) // per_node)}, or set the models' rollout.maxUnavailable to 1")))
    return problems, warnings


def _surge(model: ModelSpec) -> int:
    """Replicas a rollout adds before it removes any: none once it may take one down first."""
    return model.rollout.max_surge if model.rollout.max_unavailable == 0 else 0


def label(model: ModelSpec) -> str:
    """A model as messages name it: its config ``name`` and its source."""
    return f"{model.name!r} ({model.source})"


def replica_size(model: ModelSpec, pool: NodePool) -> ReplicaSize | None:
    """What one replica of ``model`` on ``pool`` needs: the capacity check's numbers and the servers'
    resources (None for a vLLM model of unknown size, refused above)."""
    arch = model_architecture(model)
    if model.gpus_per_replica and arch is None:
        return None
    e = model.engine_args
    return architectures_replica_size(arch, gpus=model.gpus_per_replica, max_model_len=e.max_model_len,
                                      sequences=model.sequences, gpu_memory_gib=device_memory_gib(pool) or 0,
                                      dtype=e.dtype, quantization=e.quantization, kv_cache_dtype=e.kv_cache_dtype)


def model_architecture(model: ModelSpec) -> Architecture | None:
    """The model's size: stated in config, or from the built-in catalogue."""
    if model.architecture is not None:
        a = model.architecture
        return Architecture(parameters_b=a.parameters_billions, layers=a.layers, attention_heads=a.attention_heads,
                            kv_heads=a.kv_heads, head_dim=a.head_dim, max_context=a.max_context)
    return lookup(model.source)


__all__ = [
    "capacity", "label", "model_architecture", "replica_size"
]
