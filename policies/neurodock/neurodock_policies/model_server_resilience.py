"""model-server-resilience: every model server is covered by a PodDisruptionBudget, and is never
autoscaled by an HPA on CPU or memory alone: LLM servers saturate on queue and KV cache long before
CPU moves. KEDA ScaledObjects on LLM signals, or HPAs on custom metrics, are the ways to scale."""

from __future__ import annotations

from neurodock_policies.support import (
    all_known,
    describe,
    dig,
    fields,
    is_model_server,
    known,
    pod_labels,
    stack_policy,
)

NAME = "model-server-resilience"


def _selects(selector, labels) -> bool:
    """Whether a budget's selector takes these pods; one not known yet does (judged once known)."""
    if not all_known(selector) or not all_known(labels):
        return True
    match = fields(dig(selector, "matchLabels"))
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def check(resources, config) -> list[tuple[str, str]]:
    out = []
    pdbs = [r for r in resources if r.resource_type == "kubernetes:policy/v1:PodDisruptionBudget"]
    hpas = [r for r in resources if r.resource_type.startswith("kubernetes:autoscaling/")
            and r.resource_type.endswith(":HorizontalPodAutoscaler")]
    for r in resources:
        if not is_model_server(r.resource_type, r.props):
            continue
        namespace, name = dig(r.props, "metadata", "namespace"), dig(r.props, "metadata", "name")
        what = describe(r.resource_type, r.props, r.name)
        labels = pod_labels(r.resource_type, r.props)
        if not any(dig(p.props, "metadata", "namespace") == namespace and _selects(dig(p.props, "spec", "selector"),
                                                                                    labels) for p in pdbs):
            out.append((r.urn, f"{what} is a model server without a PodDisruptionBudget; add one selecting its "
                               "pods (maxUnavailable: 1) so node drains take replicas one at a time."))
        for h in hpas:
            target = dig(h.props, "spec", "scaleTargetRef", "name")
            if not known(target) or target != name or dig(h.props, "metadata", "namespace") != namespace:
                continue
            metrics = dig(h.props, "spec", "metrics") or []
            if not metrics or all(m.get("type") == "Resource" for m in metrics):
                out.append((h.urn, f"{describe(h.resource_type, h.props, h.name)} scales model server {what} on "
                                   "CPU or memory only; scale on LLM signals (queue depth, KV-cache use) with a KEDA "
                                   "ScaledObject or an HPA on custom metrics."))
    return out


POLICY = stack_policy(
    NAME,
    "Model servers have a PodDisruptionBudget and no CPU-only HPA.",
    check,
)
