"""``neurodock:budget``: what a stack may cost a month, which the pack's ``stack-within-budget`` policy enforces
on every preview and ``neurodock check`` (the estimate: ``infra.cost``, ``components.cost``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from infra.config.base import Model


class Budget(Model):
    """The stack's monthly budget in whole US dollars, judged against the plan's cost estimate."""

    monthly_usd: int = Field(gt=0, le=100_000_000)
    """List-price USD a month (730 hours) the stack may cost, fixed costs included."""
    scale: Literal["minimum", "maximum"] = "maximum"
    """Which end of the autoscalers' range is judged: ``maximum`` (default), every pool at its ``maxNodes`` and
    Spot nodes at on-demand, what the stack can cost; or ``minimum``, what it costs idle."""


__all__ = ["Budget"]
