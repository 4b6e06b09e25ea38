"""A canary's rollout: its steps (``canary.steps``, which ``neurodock rollout step`` walks) and the eval gate of a
canary or shadow (``evalSuite``, run by the program as a Job before the version gets traffic, optionally compared
with the stable version's answers: ``evalCompareStable``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from components.serving.eval_runner import SuiteError, load_suite
from infra.config.base import REPO_ROOT, VARIANTS, Fraction, Model, Problem, key_path

if TYPE_CHECKING:
    from infra.config.serving import ModelSpec


class EvalGate(Model):
    """The eval gate of a canary or shadow (docs/rollouts.md, the eval gate)."""

    eval_suite: str | None = None
    """A promptfoo-style test file (repository-relative path) the version must pass before any traffic: a canary
    its weight, a shadow its mirrored copies (default none: traffic at once, as without a gate)."""
    eval_pass_rate: Fraction = 1.0
    """Share of the suite's cases that must pass (default 1.0: all)."""
    eval_compare_stable: bool = False
    """Also ask the stable version's own Service the same suite, and fail when this version passes more than
    ``evalMaxRegression`` cases fewer (default false: the pass rate alone judges)."""
    eval_max_regression: int = Field(default=0, ge=0, le=10_000)
    """With ``evalCompareStable``: cases this version may pass fewer than the stable version (default 0)."""


def canary_problems(i: int, model: ModelSpec) -> list[Problem]:
    """``canary.steps`` rise, each a share 1-99 (100 is ``rollout promote``), and a canary with steps sits at
    0 (before its first step, or rolled back) or on one of them, so ``rollout step`` knows the next."""
    canary = model.canary
    if canary is None or canary.steps is None:
        return []
    out: list[Problem] = []
    where = ("models", i, "canary")
    steps = canary.steps
    if not steps:
        out.append(Problem(key_path((*where, "steps")), "must list at least one weight, e.g. [5, 25, 50]; or remove "
                           "it to edit the weight by hand"))
    for j, step in enumerate(steps):
        if not 1 <= step <= 99:
            out.append(Problem(key_path((*where, "steps", j)), f"must be 1-99 percent (got {step}); 100 is the "
                               "promotion, `neurodock rollout promote`"))
        elif j and step <= steps[j - 1]:
            out.append(Problem(key_path((*where, "steps", j)), f"must be above the step before it ({steps[j - 1]}); "
                               "steps rise, e.g. [5, 25, 50]"))
    if not out and canary.weight not in (0, *steps):
        out.append(Problem(key_path((*where, "weight")), f"{canary.weight} is not one of canary.steps "
                           f"({', '.join(map(str, steps))}) nor 0: set it to one of them, or to 0 to start over"))
    return out


def eval_suite_path(suite: str) -> Path:
    """The file a ``canary.evalSuite`` names."""
    return REPO_ROOT / suite


def eval_suite_problems(i: int, model: ModelSpec) -> list[Problem]:
    """A canary's or shadow's ``evalSuite`` is a file inside the repository that the runner accepts, so
    `pulumi up` never starts a gate that can only fail on its own suite; the comparison keys need a suite."""
    out: list[Problem] = []
    for key in VARIANTS:
        variant = getattr(model, key)
        if variant is not None:
            out.extend(_gate_problems(("models", i, key), variant))
    return out


def _gate_problems(where: tuple[str | int, ...], gate: EvalGate) -> list[Problem]:
    if gate.eval_suite is None:
        return [Problem(key_path((*where, field)), f"only applies with {key_path((*where, 'evalSuite'))}: name a "
                        "suite there, or remove this key")
                for field, name in (("evalCompareStable", "eval_compare_stable"),
                                    ("evalMaxRegression", "eval_max_regression"), ("evalPassRate", "eval_pass_rate"))
                if name in gate.model_fields_set]
    if "eval_max_regression" in gate.model_fields_set and not gate.eval_compare_stable:
        return [Problem(key_path((*where, "evalMaxRegression")), "only applies with evalCompareStable: true; set "
                        "that to compare with the stable version, or remove this key")]
    suite = gate.eval_suite
    path = eval_suite_path(suite)
    if Path(suite).is_absolute() or not path.resolve().is_relative_to(REPO_ROOT):
        return [Problem(key_path((*where, "evalSuite")), f"{suite!r} must be a path inside the repository, relative "
                        "to its root, e.g. evals/llama.json")]
    try:
        load_suite(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return [Problem(key_path((*where, "evalSuite")), f"cannot read {suite!r} ({exc.strerror}); give the suite's "
                        "path relative to the repository root")]
    except SuiteError as exc:
        return [Problem(key_path((*where, "evalSuite")), f"{suite}: {exc} (docs/rollouts.md, the eval gate)")]
    return []


__all__ = ["EvalGate", "canary_problems", "eval_suite_path", "eval_suite_problems"]
