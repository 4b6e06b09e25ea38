"""``neurodock rollout``: judge a model's canary on the stack's own Prometheus, and move it through
``canary.steps`` by editing the stack file (docs/rollouts.md).

``analyze`` compares each SLI of the canary with the stable version's over ``canary.analysis.windowMinutes``,
with the PromQL of the SLO alerts themselves (``components.monitoring.alerts.version_slis``: one home), and
answers ``advance``, ``hold`` or ``rollback``. ``step``, ``promote`` and ``rollback`` edit the stack file
(``infra.rollout_edit``) so every change is a reviewed commit that the normal pipeline deploys.

Exit codes of ``analyze``: 0 advance; 3 hold (too little traffic, or nothing to judge yet); 4 rollback;
2 bad usage, invalid configuration or Prometheus unreachable or refusing the query (nothing is edited);
1 anything else. ``step``, ``promote``, ``rollback``: 0 edited; 2 nothing to do or invalid configuration.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from components.monitoring.alerts import ModelTarget
    from infra.config import ModelSpec, StackConfig

EXIT_OK = EXIT_ADVANCE = 0
EXIT_USAGE = 2
EXIT_HOLD = 3
EXIT_ROLLBACK = 4
VERDICT_EXIT = {"advance": EXIT_ADVANCE, "hold": EXIT_HOLD, "rollback": EXIT_ROLLBACK}
SEVERITY = {"advance": 0, "hold": 1, "rollback": 2}
"""The worst verdict of a model's SLIs (and of a stack's models) is the answer."""
QUERY_TIMEOUT_S = 10


class RolloutError(Exception):
    """Something the user can fix: an unreachable Prometheus, a model without a canary (exit 2)."""


# Analysis


@dataclass(frozen=True)
class VersionReading:
    requests: float
    """Requests the SLI counted over the window."""
    error_ratio: float | None
    """Share of them that were bad; None without requests."""


@dataclass(frozen=True)
class SliVerdict:
    slo: str
    budget: float
    """The share of requests the SLO lets be bad."""
    canary: VersionReading
    stable: VersionReading
    verdict: str
    reason: str


@dataclass(frozen=True)
class ModelVerdict:
    model: str
    weight: int
    next_weight: int | None
    """The weight ``rollout step`` would set on advance (None: the last step, promote next, or no steps)."""
    verdict: str
    slis: list[SliVerdict] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def model_target(config: StackConfig, model: ModelSpec, *, deployment: Any = None, **extra: Any) -> ModelTarget:
    """The model as the SLO alerts see it: the one builder, for ``AlertRules`` (``infra/program.py``, which adds the
    stable Deployment's name and the alerts' other facts in ``extra``) and for ``analyze``, whose SLIs read only
    the fields set here. The gateway's route (``infra/gateway.py`` names it after the model) counts its errors."""
    from components.monitoring.alerts import ModelTarget
    from components.serving.catalog import SERVING_NAMESPACE

    return ModelTarget(served_name=model.model_name, engine=model.engine, namespace=SERVING_NAMESPACE,
                       deployment=model.name if deployment is None else deployment, min_replicas=model.min_replicas,
                       ttft_seconds=model.slo.ttft_p95_seconds, availability=model.slo.availability,
                       queue_depth=model.slo.queue_depth, kv_cache_usage=model.slo.kv_cache_usage,
                       route=model.name if config.gateway.enabled else None, **extra)


def query(url: str, expr: str, at: str | None) -> float:
    """One instant query (``GET /api/v1/query``, prometheus.io/docs/prometheus/latest/querying/api): the sum of
    the returned vector's samples, 0 for an empty one (no series yet: nothing counted)."""
    params = {"query": expr, **({"time": at} if at else {})}
    target = f"{url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(target, timeout=QUERY_TIMEOUT_S) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        # 400 bad parameters, 422 an expression that cannot run, 503 a timeout: the body says why.
        try:
            detail = json.load(exc).get("error", exc.reason)
        except (ValueError, AttributeError):
            detail = exc.reason
        raise RolloutError(f"Prometheus at {url} refused the query ({exc.code}: {detail})") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RolloutError(f"Prometheus at {url} cannot be reached or did not answer with JSON ({reason}); pass "
                           "--prometheus with its URL (in-cluster, or `kubectl port-forward` to the monitoring "
                           "namespace's Prometheus service)") from None
    if body.get("status") != "success":
        raise RolloutError(f"Prometheus at {url} answered {body.get('errorType')}: {body.get('error')}")
    data = body["data"]
    if data["resultType"] == "scalar":
        return float(data["result"][1])
    total = sum(float(sample["value"][1]) for sample in data["result"])
    return 0.0 if math.isnan(total) else total


def _reading(url: str, sli: Any, window: str, seconds: int, at: str | None) -> VersionReading:
    total = query(url, sli.total(window), at)
    if total <= 0:
        return VersionReading(requests=0.0, error_ratio=None)
    bad = max(0.0, query(url, sli.bad(window), at))
    return VersionReading(requests=round(total * seconds, 3), error_ratio=min(1.0, bad / total))


def judge(slo: str, budget: float, canary: VersionReading, stable: VersionReading, min_requests: int) -> SliVerdict:
    """The canary fails an SLI when its bad share over the window is above both the SLO's budget (it burns the
    budget faster than the month allows) and the stable version's share (it is worse than what it replaces,
    not merely caught in the same incident). Fewer than ``min_requests`` of its requests: no verdict."""
    def verdict(v: str, reason: str) -> SliVerdict:
        return SliVerdict(slo=slo, budget=budget, canary=canary, stable=stable, verdict=v, reason=reason)

    if canary.requests < min_requests or canary.error_ratio is None:
        return verdict("hold", f"{slo}: the canary served {canary.requests:g} requests in the window, fewer than "
                       f"canary.analysis.minRequests ({min_requests})")
    stable_ratio = stable.error_ratio if stable.error_ratio is not None else 0.0
    if canary.error_ratio > budget and canary.error_ratio > stable_ratio:
        return verdict("rollback", f"{slo}: the canary's bad share {canary.error_ratio:.4f} is over the budget "
                       f"{budget:.4f} and above the stable version's {stable_ratio:.4f}")
    return verdict("advance", f"{slo}: the canary's bad share {canary.error_ratio:.4f} (budget {budget:.4f}, "
                   f"stable {stable_ratio:.4f})")


def next_weight(model: ModelSpec) -> int | None:
    canary = model.canary
    if canary is None or not canary.steps:
        return None
    return next((s for s in canary.steps if s > canary.weight), None)


def analyze_model(config: StackConfig, model: ModelSpec, url: str, at: str | None) -> ModelVerdict:
    from components.monitoring.alerts import version_slis

    assert model.canary is not None
    analysis = model.canary.analysis
    window, seconds = f"{analysis.window_minutes}m", analysis.window_minutes * 60
    target = model_target(config, model)
    out = ModelVerdict(model=model.name, weight=model.canary.weight, next_weight=next_weight(model), verdict="hold")
    if model.canary.weight == 0:
        out.reasons.append("the canary takes no traffic (weight 0): nothing to judge; `neurodock rollout step` "
                           "gives it the first step")
        return out
    stable_slis = version_slis(target, "stable")
    for canary_sli, stable_sli in zip(version_slis(target, "canary"), stable_slis, strict=True):
        slo = canary_sli.sli.labels["slo"]
        out.slis.append(judge(slo, canary_sli.budget, _reading(url, canary_sli.sli, window, seconds, at),
                              _reading(url, stable_sli.sli, window, seconds, at), analysis.min_requests))
    if not out.slis:
        out.reasons.append("the model has no SLI to judge its canary on (no gateway route and not vLLM)")
        return out
    # An SLI neither version had a request for (a TTFT SLI counts streamed requests only, and clients may stream
    # none) says nothing of the canary: judged by the others, unless it is the only one.
    judged = [s for s in out.slis if s.canary.requests > 0 or s.stable.requests > 0] or out.slis
    out.slis[:] = [s if s in judged else replace(s, reason=f"{s.slo}: not judged: neither version had a request it "
                                                 "counts in the window") for s in out.slis]
    worst = max((s.verdict for s in judged), key=SEVERITY.__getitem__)
    out.reasons.extend(s.reason for s in out.slis)
    if worst == "advance" and not _deployed(model, judged):
        worst = "hold"
        share = _canary_share(judged)
        out.reasons.append(f"the canary served {share:.1%} of the requests in the window, nearer the step before "
                           f"than its weight of {model.canary.weight}%: that weight is not deployed yet (or for less "
                           "than half the window); wait for its `pulumi up` and a window at it")
    if worst == "advance" and target.route is not None and _canary_fell_back(url, target, window, at):
        # Its picker sent its share to the stable replicas for part of the window: the canary's SLIs are partly
        # the stable version's, too kind to judge it by.
        worst = "hold"
        out.reasons.append(f"the canary had no ready replica for part of the last {window}, when the stable version "
                           "served its share (its picker's fallback): wait for a window it served in full")
    if worst == "advance":
        step = out.next_weight
        out.reasons.append(f"next: `neurodock rollout step` to {step}%" if step is not None
                           else "next: `neurodock rollout promote` (the last step passed)")
    elif worst == "rollback":
        out.reasons.append("next: `neurodock rollout rollback` (canary weight 0)")
    return replace(out, verdict=worst)


def _canary_share(slis: list[SliVerdict]) -> float:
    """The canary's share of the requests, by the SLI that counted the most."""
    busiest = max(slis, key=lambda s: s.canary.requests + s.stable.requests)
    total = busiest.canary.requests + busiest.stable.requests
    return busiest.canary.requests / total if total > 0 else 0.0


def _deployed(model: ModelSpec, slis: list[SliVerdict]) -> bool:
    """The canary took about its configured share in the window: nearer its weight than the step before it. The
    analysis reads the stack file, and a step merged but not yet deployed (a deploy awaiting its reviewer, or failed)
    would otherwise be judged on the previous weight's traffic, and stepped past."""
    canary = model.canary
    below = max((step for step in canary.steps or () if step < canary.weight), default=0)
    return _canary_share(slis) * 100 >= (below + canary.weight) / 2


def _canary_fell_back(url: str, target: ModelTarget, window: str, at: str | None) -> bool:
    """The canary had no ready replica at some point of the window (sampled each minute)."""
    from components.monitoring.alerts import canary_ready

    return query(url, f"min_over_time({canary_ready(target)}[{window}:1m])", at) < 1


def canary_models(config: StackConfig, name: str | None) -> list[ModelSpec]:
    """The models with a canary (or the one named), else a usage error naming the key to set."""
    models = [m for m in config.models if name in (None, m.name)]
    if name is not None and not models:
        raise RolloutError(f"--model {name}: no such model; models: {', '.join(m.name for m in config.models)}")
    with_canary = [m for m in models if m.canary is not None]
    if not with_canary:
        which = f"model {name}" if name else "no model"
        raise RolloutError(f"{which} has a canary: add neurodock:models[i].canary (with a weight) to start a rollout")
    return with_canary


def analyze(config: StackConfig, url: str, model: str | None = None, at: str | None = None) -> list[ModelVerdict]:
    return [analyze_model(config, m, url, at) for m in canary_models(config, model)]


# The command


def _prometheus_url(value: str) -> str:
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"must be Prometheus's http:// or https:// URL, e.g. http://localhost:9090 "
                                         f"(got {value!r})")
    return value


def register(commands: Any) -> None:
    """Add ``rollout`` and its actions to the ``neurodock`` parser's subcommands."""
    rollout = commands.add_parser(
        "rollout", help="judge a canary on Prometheus and move it through canary.steps (docs/rollouts.md)",
        description="Progressive delivery of a model's canary: `analyze` reads the stack's Prometheus, the others "
        "edit the stack file for review. Exit codes (analyze): 0 advance, 3 hold, 4 rollback, 2 usage, "
        "configuration or Prometheus errors, 1 anything else.")
    actions = rollout.add_subparsers(dest="action", metavar="ACTION", required=True)
    analyze_ = actions.add_parser("analyze", help="advance, hold or rollback, with reasons")
    analyze_.add_argument("stack", metavar="STACK", help="stack name: reads stacks/Pulumi.STACK.yaml")
    analyze_.add_argument("--stack-file", type=Path, metavar="PATH", help="read this stack file instead")
    analyze_.add_argument("--prometheus", required=True, type=_prometheus_url, metavar="URL",
                          help="the stack's Prometheus (in-cluster, or port-forwarded: http://localhost:9090)")
    analyze_.add_argument("--model", metavar="NAME", help="only this model (default: every model with a canary)")
    analyze_.add_argument("--at", metavar="TIME", help="judge the window ending at TIME (RFC 3339 or Unix seconds; "
                          "default now)")
    analyze_.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    analyze_.set_defaults(run=_analyze)
    for action, text in (("step", "move each canary to its next canary.steps weight"),
                         ("promote", "make the canary the stable version (its settings move to the model)"),
                         ("rollback", "send the canary no traffic (weight 0)")):
        edit = actions.add_parser(action, help=text)
        edit.add_argument("stack", metavar="STACK", help="stack name: edits stacks/Pulumi.STACK.yaml")
        edit.add_argument("--stack-file", type=Path, metavar="PATH", help="edit this stack file instead")
        edit.add_argument("--model", metavar="NAME", help="only this model (default: every model with a canary)")
        edit.set_defaults(run=_edit, action=action)


def _config(args: argparse.Namespace) -> tuple[Any, StackConfig] | int:
    from infra.cli import _load_stack, _print_config_error
    from infra.config import ConfigError
    from infra.plan.engine import validate

    stack = _load_stack(args)
    if isinstance(stack, int):
        return stack
    try:
        return stack, validate(stack)
    except ConfigError as exc:
        _print_config_error(stack.path, exc)
        return EXIT_USAGE


def _analyze(args: argparse.Namespace) -> int:
    loaded = _config(args)
    if isinstance(loaded, int):
        return loaded
    stack, config = loaded
    try:
        verdicts = analyze(config, args.prometheus, args.model, args.at)
    except RolloutError as exc:
        print(f"neurodock: rollout analyze {stack.stack}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    overall = max((v.verdict for v in verdicts), key=SEVERITY.__getitem__)
    if args.json:
        print(json.dumps({"stack": stack.stack, "verdict": overall, "models": [asdict(v) for v in verdicts]},
                         indent=2))
    else:
        for v in verdicts:
            print(f"{v.model}: {v.verdict} (canary at {v.weight}%)")
            for reason in v.reasons:
                print(f"  {reason}")
    return VERDICT_EXIT[overall]


def _edit(args: argparse.Namespace) -> int:
    from infra import rollout_edit

    loaded = _config(args)
    if isinstance(loaded, int):
        return loaded
    stack, config = loaded
    try:
        models = canary_models(config, args.model)
        changes = rollout_edit.apply(stack.path, models, args.action)
    except (RolloutError, rollout_edit.EditError) as exc:
        print(f"neurodock: rollout {args.action} {stack.stack}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for change in changes:
        print(f"{stack.path}: {change}")
    return EXIT_OK
