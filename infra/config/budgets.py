"""A model-load budget set by hand against the plan's own estimate of loading the weights: the budget is the
startup probe's window, so one shorter than the estimate has the kubelet restart every replica mid-load, for ever.

The other budgets (a node's scale-up, the image pull) only add up into the deploy's deadlines with the model load,
so one below its estimate shortens a wait but stops nothing by itself: they are left as set."""

from __future__ import annotations

from typing import TYPE_CHECKING

from infra.config.base import Problem, key_path
from infra.config.capacity import label

if TYPE_CHECKING:
    from infra.config.stack import StackConfig

BUDGETS = (("modelLoadSeconds", "model_load_seconds", "fetch and load the weights until the engine answers"),)
"""Each budget checked: its key, its field, and the step it covers."""


def budget_problems(config: StackConfig) -> list[Problem]:
    """Every model-load budget set, in a model's ``readiness`` or the stack's (for the models without their own), is
    at least the estimate for that model (``neurodock plan`` prints the estimates)."""
    # The estimate has one home, infra.readiness (STYLE #19); it imports this package, so it is imported here.
    from infra.readiness import time_to_ready

    out: list[Problem] = []
    for i, model in enumerate(config.models):
        if config.pool(model.pool) is None:
            continue  # reported on models[].pool
        estimate = time_to_ready(config, model)
        first = estimate.first
        steps = {"model_load_seconds": first.weights_s - estimate.mirror_s + first.load_s}
        for key, field, what in BUDGETS:
            own = model.readiness is not None and getattr(model.readiness, field) is not None
            budget = getattr(model.readiness if own else config.readiness, field)
            if budget is None or budget >= steps[field]:
                continue
            where = ("models", i, "readiness", key) if own else ("readiness", key)
            whose = "" if own else f" for model {label(model)}"
            out.append(Problem(key_path(where), (
                f"{budget} s is shorter than the {steps[field]} s the plan estimates{whose} to {what} "
                f"({estimate.path}; `neurodock plan` shows the estimate), and it is the startup probe's window: the "
                f"kubelet would restart every replica before it could be ready; set at least {steps[field]}, or "
                "remove it for the estimate times readiness.throughput.margin")))
    return out


__all__ = ["BUDGETS", "budget_problems"]
