"""How a stack's budget (``neurodock:budget``) reaches the policy pack: CrossGuard sees resources, not stack
config, so the program puts it on the cluster resource, as tags on EKS and labels on GKE, where the pack's
``stack-within-budget`` reads it. Changing a budget updates those tags or labels in place."""

from __future__ import annotations

BUDGET_TAG = "neurodock:budget-monthly-usd"
"""The EKS cluster tag carrying the monthly budget, whole USD."""
BUDGET_SCALE_TAG = "neurodock:budget-scale"
BUDGET_LABEL = "neurodock-budget-monthly-usd"
"""The GKE cluster label carrying it (label keys take no ``:``; values only digits and ``[a-z_-]``)."""
BUDGET_SCALE_LABEL = "neurodock-budget-scale"


def budget_tags(monthly_usd: int | None, scale: str, *, labels: bool) -> dict[str, str]:
    """The tags (``labels=False``, EKS) or labels (GKE) that carry a budget on the cluster resource."""
    if monthly_usd is None:
        return {}
    if labels:
        return {BUDGET_LABEL: str(monthly_usd), BUDGET_SCALE_LABEL: scale}
    return {BUDGET_TAG: str(monthly_usd), BUDGET_SCALE_TAG: scale}


__all__ = ["BUDGET_LABEL", "BUDGET_SCALE_LABEL", "BUDGET_SCALE_TAG", "BUDGET_TAG", "budget_tags"]
