"""stack-within-budget: a stack with a budget (``neurodock:budget``, carried on its cluster resource as tags on
EKS and labels on GKE) costs no more a month than the budget at the scale it names, by the estimate
``neurodock plan`` prints (``components.cost.estimate`` over the node pools, clusters, NAT gateways and keys, with
the price catalogue). A stack whose parts cannot be priced cannot be judged, and fails: a budget that silently
skips a pool is no budget. The message names the pools that cost most and the models they run."""

from __future__ import annotations

from components.cost.budget import BUDGET_LABEL, BUDGET_SCALE_LABEL, BUDGET_SCALE_TAG, BUDGET_TAG
from components.cost.catalogue import load
from components.cost.estimate import CostResource, stack_cost, within_budget
from components.labels import POOL_LABEL
from neurodock_policies.support import (
    NotApplicable,
    all_known,
    describe,
    dig,
    is_model_server,
    known,
    plain,
    pod_spec,
    stack_policy,
)

NAME = "stack-within-budget"
PRICED = ("aws:eks/nodeGroup:NodeGroup", "aws:ec2/launchTemplate:LaunchTemplate", "gcp:container/nodePool:NodePool",
          "aws:eks/cluster:Cluster", "gcp:container/cluster:Cluster")
"""What the estimate prices a pool from (``components.cost.estimate``)."""
CLUSTERS = {"aws:eks/cluster:Cluster": ("tags", BUDGET_TAG, BUDGET_SCALE_TAG),
            "gcp:container/cluster:Cluster": ("resourceLabels", BUDGET_LABEL, BUDGET_SCALE_LABEL)}


def _budget(resources) -> tuple[object, int, str] | None:
    for r in resources:
        if r.resource_type not in CLUSTERS:
            continue
        field, amount_key, scale_key = CLUSTERS[r.resource_type]
        tags = r.props.get(field) or {}
        amount = tags.get(amount_key) if isinstance(tags, dict) else None
        if known(amount) and str(amount).isdigit():
            scale = tags.get(scale_key)
            return r, int(amount), scale if scale in ("minimum", "maximum") else "maximum"
    return None


def check(resources, config) -> list[tuple[str, str]]:
    budget = _budget(resources)
    if budget is None:
        return []
    cluster, amount, scale = budget
    cost = stack_cost((CostResource(type=r.resource_type, name=r.name, props=r.props,
                                    provider=plain(r.provider.props) if r.provider is not None else {})
                       for r in resources), load())
    if cost is not None and cost.unpriced and not all(
            all_known(r.props) and (r.provider is None or all_known(plain(r.provider.props)))
            for r in resources if r.resource_type in PRICED):
        # What a part costs is not known yet (a first preview): judged once known, at the update's end.
        raise NotApplicable("the stack's node pools are not all known yet, so their cost is judged once they are")
    verdict = within_budget(cost, amount, scale) if cost is not None else None
    if verdict is None:
        return []
    models: dict[str, list[str]] = {}
    for r in resources:
        if is_model_server(r.resource_type, r.props):
            pool = dig(pod_spec(r.resource_type, r.props) or {}, "nodeSelector", POOL_LABEL)
            if known(pool):
                models.setdefault(pool, []).append(describe(r.resource_type, r.props, r.name))
    ranked = sorted(cost.pools, key=lambda p: p.hourly(scale), reverse=True)[:3]
    running = "; ".join(f"pool {p.name!r} runs {', '.join(models[p.name])}" for p in ranked if models.get(p.name))
    fix = ("lower the pools' maxNodes or the models' maxReplicas, move models to cheaper GPUs, or raise "
           "neurodock:budget.monthlyUsd" + (" (or judge scale: minimum)" if scale == "maximum" else ""))
    return [(cluster.urn, f"{verdict}" + (f"; {running}" if running else "") + f"; {fix}.")]


POLICY = stack_policy(
    NAME,
    "A stack costs no more than its neurodock:budget, by the plan's cost estimate.",
    check,
)
