"""A canary's rollout: its steps (``canary.steps``, which ``neurodock rollout step`` walks) and its eval gate
(``canary.evalSuite``, run by the program as a Job before the canary gets traffic)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from components.serving.eval_runner import SuiteError, load_suite
from infra.config.base import Problem, key_path

if TYPE_CHECKING:
    from infra.config.serving import ModelSpec


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


REPO_ROOT = Path(__file__).resolve().parents[2]
"""What ``canary.evalSuite`` paths are relative to: the repository holding the stack files."""


def eval_suite_path(suite: str) -> Path:
    """The file a ``canary.evalSuite`` names."""
    return REPO_ROOT / suite


def eval_suite_problems(i: int, model: ModelSpec) -> list[Problem]:
    """A canary's ``evalSuite`` is a file inside the repository that the runner accepts, so `pulumi up` never
    starts a gate that can only fail on its own suite."""
    canary = model.canary
    if canary is None or canary.eval_suite is None:
        return []
    where = ("models", i, "canary")
    suite = canary.eval_suite
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


__all__ = ["canary_problems", "eval_suite_path", "eval_suite_problems"]
