"""What a plan comes to, first: the stack, its resources by component, its models, its cost and its
warnings (grouped), and how to reach its gateway once it is up. ``neurodock plan`` prints this before
anything else; the full tree is behind ``--tree``.

Every figure here is read from the plan (``render.as_json``'s numbers), never computed a second way.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from infra.plan.engine import Plan

STACK_TYPE = "pulumi:pulumi:Stack"
ERROR_PREFIX = "error: "
"""How the plan's logger marks an error among the warnings (``infra.plan.engine._CollectingLogger``)."""

# ---------------------------------------------------------------------------------------------
# Warnings, grouped
# ---------------------------------------------------------------------------------------------

_KEY = re.compile(r"^(?P<key>[A-Za-z][\w.:-]*(\[\d+\])*(\.[\w-]+(\[\d+\])*)*): ")
"""A warning that starts with the config key it is about (``models[3]: ...``, ``nodePools[1].gpu: ...``)."""
_QUOTED = re.compile(r"'[^']*'")
_VARIABLE_WORD = re.compile(r"\S*[/\d]\S*")
"""Words that name one thing (a model source ``org/model``, a number): they differ between otherwise
identical warnings."""


@dataclass(frozen=True)
class WarningGroup:
    """Warnings that say the same thing about different keys."""

    example: str
    """The first of them, in full."""
    keys: tuple[str, ...]
    """The key (or the quoted name) each one is about, in order; empty when none could be told."""
    count: int


def _template(warning: str) -> tuple[str, str | None]:
    """The warning with what names one thing blanked out, and the key it is about."""
    key = None
    body = warning
    if match := _KEY.match(warning):
        key, body = match["key"], warning[match.end():]
    quoted = _QUOTED.findall(body)
    if key is None and quoted:
        key = quoted[0].strip("'")
    body = _QUOTED.sub("'…'", body)
    body = _VARIABLE_WORD.sub("…", body)
    return body, key


def group_warnings(warnings: list[str]) -> list[WarningGroup]:
    """Identical warnings (but for the key they are about) as one group each, in first-seen order."""
    groups: dict[str, list[tuple[str, str | None]]] = {}
    for warning in warnings:
        template, key = _template(warning)
        groups.setdefault(template, []).append((warning, key))
    return [WarningGroup(example=items[0][0], keys=tuple(k for _, k in items if k), count=len(items))
            for items in groups.values()]


def grouped_text(warnings: list[str], *, indent: str = "  ") -> list[str]:
    """Each group as one warning: alone as written; several as the first, then their count and keys."""
    lines = []
    for group in group_warnings(warnings):
        lines.append(f"{indent}{group.example}")
        if group.count > 1:
            keys = ", ".join(group.keys[:12]) + (f", … ({len(group.keys) - 12} more)" if len(group.keys) > 12 else "")
            lines.append(f"{indent}  (x{group.count}, the same for: {keys or 'each of them'})")
    return lines


# ---------------------------------------------------------------------------------------------
# The summary's figures
# ---------------------------------------------------------------------------------------------

def counts_by_component(plan: Plan) -> dict[str, int]:
    """Custom resources per top-level component (``type name``): each resource counts under the
    component right below the stack that it descends from; the stack's own children (providers) count
    under ``(stack)``. Objects a Helm release installs are not resources of the program: not counted."""
    by_urn = {r.urn: r for r in plan.resources}

    def top_of(node) -> str:
        while node.parent in by_urn and by_urn[node.parent].type != STACK_TYPE:
            node = by_urn[node.parent]
        return "(stack)" if node.custom else f"{node.type.rsplit(':', 1)[-1]} {node.name}"

    counts = Counter(top_of(r) for r in plan.resources if r.custom)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def summary_json(plan: Plan, plan_json: dict[str, Any]) -> dict[str, Any]:
    """The summary's figures; ``plan_json`` is ``render.as_json(plan)``, whose numbers they repeat."""
    from infra.config import StackConfig

    config = plan.config
    models = []
    if isinstance(config, StackConfig):
        pools = {p.name: p for p in config.node_pools}
        ready = {row["model"]: row for row in plan_json.get("timeToReady") or []}
        for model in config.models:
            pool = pools.get(model.pool)
            gpu = pool.gpu.type if pool is not None and pool.gpu is not None else None
            row = ready.get(model.name)
            models.append({"name": model.name, "servedName": model.model_name, "pool": model.pool,
                           "gpusPerReplica": model.gpus_per_replica if gpu else 0, "gpu": gpu,
                           "replicas": [model.min_replicas, model.max_replicas],
                           "firstReplicaS": row["firstReplica"]["totalS"] if row else None})
    cost = plan_json.get("cost")
    warnings = plan_json.get("warnings") or []
    errors = [w for w in warnings if w.startswith(ERROR_PREFIX)]
    return {
        "stack": plan_json["stack"],
        "cloud": plan_json["cloud"],
        "region": getattr(getattr(config, "cloud", None), "region", None),
        "environment": getattr(config, "environment", None),
        "resourceCount": plan_json["resourceCount"],
        "chartObjectCount": plan_json["chartObjectCount"],
        "countsByComponent": counts_by_component(plan),
        "models": models,
        "cost": None if cost is None else {"total": cost["total"], "budget": cost.get("budget")},
        "warningCount": len(warnings) - len(errors),
        "errorCount": len(errors),
    }


def usd(value: float | None) -> str:
    """Dollars as the plan shows them: cents under $100, whole dollars above; ``?`` for no price."""
    return "?" if value is None else f"${value:,.2f}" if value < 100 else f"${value:,.0f}"


def summary_text(plan: Plan, plan_json: dict[str, Any]) -> list[str]:
    s = summary_json(plan, plan_json)
    where = s["region"] or ("this machine" if s["cloud"] == "kind" else "-")
    lines = [f"Stack '{s['stack']}': {s['cloud']} in {where}" + (f", environment {s['environment']}"
                                                                  if s["environment"] else ""),
             f"  resources   {s['resourceCount']} (and {s['chartObjectCount']} objects from Helm charts)"]
    components = s["countsByComponent"]
    width = max((len(str(n)) for n in components.values()), default=1)
    lines += [f"    {n:>{width}}  {what}" for what, n in components.items()]
    if s["models"]:
        lines.append(f"  models      {len(s['models'])}")
    for m in s["models"]:
        gpus = f"{m['gpusPerReplica']} x {m['gpu']}" if m["gpu"] else "no GPU"
        ready = "" if m["firstReplicaS"] is None else f", first replica ready in ~{_minutes(m['firstReplicaS'])}"
        lines.append(f"    {m['name']}: {m['replicas'][0]}-{m['replicas'][1]} replicas, {gpus} each, pool "
                     f"{m['pool']}{ready}")
    if s["cost"] is not None:
        total = s["cost"]["total"]
        lines.append(f"  cost        {usd(total['minimum']['hourly'])}..{usd(total['maximum']['hourly'])}/h, "
                     f"{usd(total['minimum']['monthly'])}..{usd(total['maximum']['monthly'])}/month "
                     "(minimum..maximum scale, list prices)")
        budget = s["cost"].get("budget")
        if budget:
            lines.append(f"    budget ${budget['monthlyUsd']:,}/month at {budget['scale']} scale: "
                         + ("within it" if budget["verdict"] is None else f"BROKEN: {budget['verdict']}"))
    elif s["cloud"] == "kind":
        lines.append("  cost        none: kind runs on this machine")
    groups = len(group_warnings(plan_json.get("warnings") or []))
    lines.append(f"  warnings    {s['warningCount']}" + (f" ({groups} distinct)" if s["warningCount"] else "")
                 + f", errors {s['errorCount']}")
    return lines


def _minutes(seconds: int | float) -> str:
    return f"{round(seconds)} s" if seconds < 120 else f"{round(seconds / 60)} min"


# ---------------------------------------------------------------------------------------------
# Reaching the gateway
# ---------------------------------------------------------------------------------------------

LOCAL_PORT = 8080
"""The local port of the port-forward recipe (any free port works)."""


def endpoint_json(plan: Plan) -> dict[str, Any] | None:
    """How to reach the stack's gateway once it is up, or None when the stack has no gateway. The
    Service's name, namespace and port are the gateway component's own (components/gateway/gateway.py)."""
    from components.gateway.gateway import GATEWAY_NAMESPACE, SERVICE_NAME
    from infra.config import StackConfig

    config = plan.config
    if not isinstance(config, StackConfig) or not config.gateway.enabled:
        return None
    gateway = config.gateway
    scheme, port = ("https", 443) if gateway.tls else ("http", 80)
    model = config.models[0].model_name if config.models else "MODEL"
    service = f"service/{SERVICE_NAME}"
    steps: list[str] = []
    existing = getattr(config.cloud, "existing_context", None)
    if existing:
        steps.append(f"kubectl config use-context {existing}")
    else:
        # The stack's kubeconfig is an output (kind's too: the stack leaves the user's kubeconfig alone,
        # components/cluster/kind.py).
        steps.append(f"pulumi stack output kubeconfig --show-secrets -s {plan.stack.stack} > kubeconfig && "
                     "export KUBECONFIG=$PWD/kubeconfig")
    if gateway.public:
        # EKS publishes a load balancer's DNS name, GKE its IP address.
        field = "hostname" if config.cloud.provider == "eks" else "ip"
        steps.append(f"GATEWAY=$(kubectl -n {GATEWAY_NAMESPACE} get {service} "
                     f"-o jsonpath='{{.status.loadBalancer.ingress[0].{field}}}')")
        base = f"{scheme}://$GATEWAY/v1" if not gateway.tls else "https://GATEWAY_HOST/v1"
        note = (f"a public load balancer that admits only gateway.allowedCidrs ({', '.join(gateway.allowed_cidrs)})"
                + ("; with TLS, point a DNS name the certificate covers at $GATEWAY and call it" if gateway.tls
                   else ""))
    else:
        steps.append(f"kubectl -n {GATEWAY_NAMESPACE} port-forward {service} {LOCAL_PORT}:{port} &")
        base = f"{scheme}://localhost:{LOCAL_PORT}/v1"
        note = ("in-cluster only (a ClusterIP Service): reach it through a port-forward, or from a pod at "
                f"{plan.outputs.get('gatewayUrl')}")
        if gateway.tls:
            note += "; with TLS, curl needs --insecure or --resolve for the certificate's host name over localhost"
    curl = (f"curl {base}/chat/completions -H 'Content-Type: application/json' "
            "-H \"Authorization: Bearer $NEURODOCK_API_KEY\" "
            f"-d '{{\"model\": \"{model}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}]}}'")
    return {"service": SERVICE_NAME, "namespace": GATEWAY_NAMESPACE, "port": port, "scheme": scheme,
            "inCluster": plan.outputs.get("gatewayUrl"), "public": gateway.public, "note": note,
            "steps": steps, "curl": curl}


def endpoint_text(plan: Plan) -> list[str]:
    endpoint = endpoint_json(plan)
    if endpoint is None:
        return []
    return ["", "Reaching the API after `pulumi up`", f"  {endpoint['note']}:",
            *(f"  {step}" for step in endpoint["steps"]),
            f"  {endpoint['curl']}",
            "  (the Authorization header only when the secret gatewayApiKeys is set: its value is one of the keys; "
            "the first request waits until the model's first replica is ready)"]
