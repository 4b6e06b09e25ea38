"""Where GPU node agents run: nodes of GPU pools that really have GPUs."""

from __future__ import annotations

import pulumi_kubernetes as k8s

from components import labels


def gpu_node_affinity(pools: tuple[str, ...] = ()) -> k8s.core.v1.AffinityArgs:
    """Nodes carrying a GPU type label, not marked as GPU-less stand-ins, and (when ``pools`` is
    given) in one of those pools."""
    expressions = [
        k8s.core.v1.NodeSelectorRequirementArgs(key=labels.GPU_TYPE_LABEL, operator="Exists"),
        k8s.core.v1.NodeSelectorRequirementArgs(key=labels.GPU_BACKED_LABEL, operator="NotIn", values=["false"]),
    ]
    if pools:
        expressions.append(k8s.core.v1.NodeSelectorRequirementArgs(
            key=labels.POOL_LABEL, operator="In", values=list(pools)))
    return k8s.core.v1.AffinityArgs(node_affinity=k8s.core.v1.NodeAffinityArgs(
        required_during_scheduling_ignored_during_execution=k8s.core.v1.NodeSelectorArgs(
            node_selector_terms=[k8s.core.v1.NodeSelectorTermArgs(match_expressions=expressions)],
        ),
    ))


def gpu_tolerations() -> list[k8s.core.v1.TolerationArgs]:
    return [
        k8s.core.v1.TolerationArgs(key=labels.GPU_TAINT_KEY, operator="Exists", effect=labels.GPU_TAINT_EFFECT),
        k8s.core.v1.TolerationArgs(key="CriticalAddonsOnly", operator="Exists"),
    ]
