"""Alert rules for GPUs and model servers, built from the metric registry and per-model SLOs.

``rule_groups`` is pure (names in, rule groups out), so the rules can be written to a file and
checked with ``promtool check rules`` and ``promtool test rules``; ``AlertRules`` installs them as a
PrometheusRule once the names of the objects they watch are known.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pulumi

from components.gateway.routes import cluster_name
from components.monitoring import metrics as m
from components.monitoring.queries import GPU_LABELS, xid_errors
from components.monitoring.resources import prometheus_rule

RUNBOOK_BASE = "https://github.com/neurodock/neurodock/blob/main/docs/runbooks.md"
"""Where docs/runbooks.md of this repository is published; each alert links to its section."""


HARDWARE_XIDS = ("48", "61", "62", "63", "64", "74", "79", "92", "94", "95", "119", "120", "140", "154")
"""XIDs that need the GPU reset or the node replaced: double-bit ECC (48), micro-controller breakpoint
and halt (61, 62), row remapping (63, 64), NVLink (74), fallen off the bus (79), high single-bit ECC
rate (92), contained and uncontained ECC (94, 95), GSP timeout and error (119, 120), unrecovered ECC
(140), GPU reset required (154) (NVIDIA's XID catalogue, "Resolution Bucket"). The others come from
applications (13, 31, 43, 45: a faulting or killed CUDA process) and end with it."""

BURN_RATES = (
    # severity, long window, short window, burn rate: 2% of a 30-day budget in 1 hour, 5% in 6 hours
    # (page); 10% in 3 days... (ticket). The Site Reliability Workbook, "Alerting on SLOs", table 5-8.
    ("critical", "1h", "5m", 14.4),
    ("critical", "6h", "30m", 6.0),
    ("warning", "1d", "2h", 3.0),
    ("warning", "3d", "6h", 1.0),
)
"""Multi-window, multi-burn-rate alerting: an alert fires while the error budget burns this fast over
both windows; the short window makes it resolve soon after the burn stops."""


@dataclass(frozen=True, kw_only=True)
class ModelTarget:
    served_name: str
    """The model's OpenAI name: the ``model_name`` label of vLLM's metrics."""
    engine: str
    """``vllm`` or ``llamacpp``."""
    namespace: str
    deployment: pulumi.Input[str]
    """The stable model server's Deployment name."""
    min_replicas: int
    ttft_seconds: float
    """TTFT objective: 95% of requests get their first token within this (a bound of vLLM's histogram)."""
    availability: float
    """Availability objective: the share of requests the gateway answers without a 5xx."""
    queue_depth: int
    kv_cache_usage: float
    route: str | None = None
    """The model's HTTPRoute name, whose gateway statistics give its error rate, and the name of its
    stable version's InferencePool (None: no gateway)."""
    wake_s: int = 0
    """At ``min_replicas`` 0: how long a replica may take to become ready from zero, when no replica
    is expected to be available."""


TTFT_OBJECTIVE = 0.95
"""Share of requests that must meet ``ttft_seconds`` (the objective is a 95th percentile)."""


@dataclass(frozen=True, kw_only=True)
class GpuPool:
    """A GPU pool whose nodes must advertise ``expected`` ``nvidia.com/gpu`` each."""

    name: str
    expected: int


@dataclass(frozen=True, kw_only=True)
class GpuThresholds:
    """The cluster-wide GPU alerts' thresholds (``monitoring.alerts`` holds their defaults)."""

    memory_usage: float
    idle_utilisation_percent: float
    idle_minutes: int


@dataclass(frozen=True, kw_only=True)
class Agent:
    """A node agent DaemonSet to watch."""

    title: str
    namespace: str
    daemon_set: pulumi.Input[str]


def _rule(alert: str, expr: str, for_: str, severity: str, summary: str, description: str, runbook: str,
          extra_labels: dict[str, str] | None = None) -> dict:
    return {
        "alert": alert,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity, **(extra_labels or {})},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"{RUNBOOK_BASE}#{runbook}",
        },
    }


def le_matcher(bound: float) -> str:
    """A matcher of a histogram bucket's ``le``, however the bound is written: ``2.5``, or ``10`` and
    ``10.0`` (Prometheus 3 writes whole bounds with ``.0`` on ingestion; older ones keep the exporter's)."""
    text = repr(float(bound))
    if text.endswith(".0"):
        return f'le=~"{text[:-2]}|{text[:-2]}[.]0"'
    return f'le="{text}"'


def _ratio(part: str, whole: str, *, complement: bool = False):
    """``window -> PromQL`` of the share of ``whole``'s rate that ``part``'s rate is (or the rest of it,
    with ``complement``): the bad-event ratio of an SLI, per window."""
    def ratio(window: str) -> str:
        share = f"sum(rate({part}[{window}])) / sum(rate({whole}[{window}]))"
        return f"(1 - {share})" if complement else f"({share})"
    return ratio


def _burn_rules(alert: str, bad_ratio, budget: float, summary: str, description: str, runbook: str,
                labels: dict[str, str]) -> list[dict]:
    """One rule per severity: the budget burns at a page's (or a ticket's) rate over both windows."""
    out = []
    for severity in ("critical", "warning"):
        windows = [(long_, short, rate) for sev, long_, short, rate in BURN_RATES if sev == severity]
        expr = " or ".join(f"({bad_ratio(long_)} > {rate * budget:g} and {bad_ratio(short)} > {rate * budget:g})"
                           for long_, short, rate in windows)
        out.append(_rule(alert, expr, "2m" if severity == "critical" else "15m", severity, summary,
                         description, runbook, labels))
    return out


def _gpu_rules(gpu: GpuThresholds, agents: list[Agent], pools: list[GpuPool]) -> list[dict]:
    hardware_xid = f'xid=~"{"|".join(HARDWARE_XIDS)}"'
    application_xid = f'xid!~"{"|".join(HARDWARE_XIDS)}"'
    rules = [
        _rule("NeuroDockGpuXidError",
              xid_errors(hardware_xid),
              "0m", "critical",
              "GPU {{ $labels.gpu }} on {{ $labels.hostname }} reported hardware XID {{ $labels.xid }}",
              "The GPU reported a hardware fault (ECC, NVLink, fallen off the bus): pods on it may hang or "
              "return garbage until the node is replaced.", "gpu-xid-error"),
        _rule("NeuroDockGpuXidApplicationError",
              xid_errors(application_xid),
              "0m", "warning",
              "GPU {{ $labels.gpu }} on {{ $labels.hostname }} reported XID {{ $labels.xid }}",
              "A CUDA process on this GPU faulted or was killed; the GPU itself is fine. Repeats point at "
              "the application.", "gpu-xid-application-error"),
        _rule("NeuroDockGpuMemoryNearFull",
              f"max by ({GPU_LABELS}) ({m.DCGM_FB_USED.name} / ({m.DCGM_FB_USED.name} + {m.DCGM_FB_FREE.name})) "
              f"> {gpu.memory_usage}",
              "10m", "warning",
              "GPU {{ $labels.gpu }} on {{ $labels.hostname }} memory above "
              f"{gpu.memory_usage:.0%}",
              "The framebuffer is nearly full; new requests or a second process on this GPU can fail with "
              "out-of-memory errors.", "gpu-memory-near-full"),
    ]
    for agent in agents:
        slug = agent.title.lower().replace(" ", "-")
        rules.append(_rule(
            f"NeuroDock{agent.title.replace(' ', '')}Down",
            f'{m.KSM_DAEMONSET_READY.name}{{namespace="{agent.namespace}", daemonset="{agent.daemon_set}"}} '
            f'< {m.KSM_DAEMONSET_DESIRED.name}{{namespace="{agent.namespace}", daemonset="{agent.daemon_set}"}}',
            "10m", "critical",
            f"{agent.title} is not ready on every GPU node",
            f"Some GPU nodes have no ready {agent.title} pod: their GPUs are not advertised or not "
            "monitored, so model servers cannot start there or run unobserved.", f"{slug}-down"))
    for pool in pools:
        node = f'max by (node) ({m.KSM_NODE_LABELS.name}{{label_neurodock_io_pool="{pool.name}"}})'
        allocatable = f'sum by (node) ({m.KSM_NODE_ALLOCATABLE.name}{{resource="nvidia_com_gpu"}})'
        rules.append(_rule(
            "NeuroDockGpusNotAdvertised",
            # A node advertising none has no allocatable series at all: it counts as 0.
            f"({allocatable} or on (node) {node} * 0) < on (node) {node} * {pool.expected}",
            "15m", "critical",
            "Node {{ $labels.node }} advertises {{ $value }} of its " f"{pool.expected} GPUs",
            f"Nodes of pool {pool.name} should advertise {pool.expected} nvidia.com/gpu; this one has fewer, so "
            "GPU pods cannot use them: the device plugin failed or a GPU fell off the bus.",
            "gpus-not-advertised", {"pool": pool.name}))
    return rules


def _model_rules(t: ModelTarget, gpu: GpuThresholds) -> list[dict]:
    who = {"model": t.served_name}
    dep = f'namespace="{t.namespace}", deployment="{t.deployment}"'
    rules = [_rule(
        "NeuroDockModelServerDown",
        f"{m.KSM_DEPLOYMENT_AVAILABLE.name}{{{dep}}} == 0 and {m.KSM_DEPLOYMENT_SPEC_REPLICAS.name}{{{dep}}} > 0",
        # A model woken from zero has no available replica until it is ready: not an outage.
        f"{max(5, -(-t.wake_s // 60))}m", "critical", f"Model {t.served_name} has no available replica",
        "Every replica of the model server is down or not ready: requests for this model fail.",
        "model-server-down", who)]
    if t.route is not None:
        rules += _picker_rules(t, who)
        # The stable version's rule's cluster (docs/upstream.md).
        clusters = f'envoy_cluster_name="{cluster_name(t.namespace, t.route)}"'
        codes = m.ENVOY_UPSTREAM_RQ_XX.name
        errors = _ratio(f'{codes}{{{clusters}, envoy_response_code_class="5"}}', f"{codes}{{{clusters}}}")
        rules += _burn_rules(
            "NeuroDockErrorBudgetBurn", errors, 1 - t.availability,
            f"Model {t.served_name}: errors burn its {t.availability:.2%} availability budget",
            "The gateway answers too many of this model's requests with a 5xx (its replicas fail, time out or "
            "are all unready): at this rate the month's error budget runs out early.",
            "error-budget-burn", {**who, "slo": "availability", "variant": "stable"})
    if t.engine != "vllm":
        rules.append(_rule(
            "NeuroDockQueueDepthHigh",
            f'sum({m.LLAMACPP_DEFERRED.name}{{namespace="{t.namespace}", pod=~"{t.deployment}-.*"}}) '
            f"> {t.queue_depth}", "5m", "warning",
            f"Model {t.served_name}: more than {t.queue_depth} requests waiting",
            "Requests queue faster than replicas serve them.", "queue-depth-high", who))
        return rules
    sel = f'model_name="{t.served_name}", variant="stable"'

    ttft = m.VLLM_TTFT.name
    slow = _ratio(f"{ttft}_bucket{{{sel}, {le_matcher(t.ttft_seconds)}}}", f"{ttft}_count{{{sel}}}", complement=True)
    rules += _burn_rules(
        "NeuroDockTtftBudgetBurn", slow, 1 - TTFT_OBJECTIVE,
        f"Model {t.served_name}: too many requests wait over {t.ttft_seconds:g}s for the first token",
        f"More than {1 - TTFT_OBJECTIVE:.0%} of requests should not wait over {t.ttft_seconds:g}s for their first "
        "token; at this rate the month's budget runs out early. The model is overloaded (see queue depth) or "
        "prompts got longer.", "ttft-budget-burn", {**who, "slo": "ttft", "variant": "stable"})
    rules += [
        _rule("NeuroDockQueueDepthHigh",
              f"sum({m.VLLM_WAITING.name}{{{sel}}}) > {t.queue_depth}", "5m", "warning",
              f"Model {t.served_name}: more than {t.queue_depth} requests waiting",
              "Requests queue faster than replicas serve them; the autoscaler should add replicas "
              "unless the pool is at its maximum.", "queue-depth-high", who),
        _rule("NeuroDockKvCacheNearFull",
              f"max({m.VLLM_KV_CACHE.name}{{{sel}}}) > {t.kv_cache_usage}", "10m", "warning",
              f"Model {t.served_name}: KV cache above {t.kv_cache_usage:.0%}",
              "A full KV cache makes vLLM preempt and recompute requests, raising latency.",
              "kv-cache-near-full", who),
        _rule("NeuroDockGpusIdleAboveMinReplicas",
              f'avg(avg_over_time({m.DCGM_GPU_UTIL.name}{{namespace="{t.namespace}", '
              f'pod=~"{t.deployment}-.*"}}[{gpu.idle_minutes}m])) < {gpu.idle_utilisation_percent} '
              f"and on() {m.KSM_DEPLOYMENT_SPEC_REPLICAS.name}{{{dep}}} > {t.min_replicas}",
              "15m", "warning",
              f"Model {t.served_name}: GPUs idle while above its minimum of {t.min_replicas} replicas",
              f"The model's GPUs averaged under {gpu.idle_utilisation_percent}% for "
              f"{gpu.idle_minutes} minutes with more replicas than its minimum: capacity is paid for "
              "and unused.", "gpus-idle", who),
    ]
    return rules


def _picker_rules(t: ModelTarget, who: dict[str, str]) -> list[dict]:
    """The stable version's endpoint picker: without it the model's requests fail; saturated, it holds
    them; holding them past their time, it drops them."""
    picker = f'namespace="{t.namespace}", deployment="{t.route}-epp"'
    pool = f'namespace="{t.namespace}", inference_pool="{t.route}"'
    return [
        _rule("NeuroDockEndpointPickerDown",
              f"{m.KSM_DEPLOYMENT_AVAILABLE.name}{{{picker}}} == 0", "2m", "critical",
              f"Model {t.served_name}: its endpoint picker is down",
              "The gateway asks the pool's endpoint picker which replica serves each request, and fails closed: "
              "without a picker every request for the model gets a 500.", "endpoint-picker-down", who),
        _rule("NeuroDockEndpointPickerSaturated",
              f"max({m.EPP_SATURATION.name}{{{pool}}}) >= 1 and on() "
              f'{m.EPP_READY.name}{{namespace="{t.namespace}", name="{t.route}"}} > 0', "10m", "warning",
              f"Model {t.served_name}: every replica is saturated, requests are held",
              "The picker holds new requests because every replica's queue or KV cache is past its threshold; "
              "the autoscaler should add replicas unless the model is at maxReplicas or its pool has no room.",
              "endpoint-picker-saturated", who),
        _rule("NeuroDockRequestsDropped",
              f'sum(rate({m.EPP_FLOW_OUTCOMES.name}{{{pool}, outcome=~"Evicted.+|Rejected.+"}}[5m])) > 0',
              "5m", "warning", f"Model {t.served_name}: the picker drops held requests",
              "Requests were held until their time ran out (a replica did not become ready in time, or the pool "
              "stayed saturated) or were refused for a full queue; clients got 429 or 503.",
              "requests-dropped", who),
    ]


def rule_groups(models: list[ModelTarget], gpu: GpuThresholds, agents: list[Agent],
                pools: list[GpuPool] = ()) -> list[dict]:
    """Prometheus rule groups; every ``deployment`` and ``daemon_set`` must be a plain string."""
    groups = [{"name": "neurodock-gpu", "rules": _gpu_rules(gpu, agents, list(pools))}]
    model_rules = [rule for t in models for rule in _model_rules(t, gpu)]
    if model_rules:
        groups.append({"name": "neurodock-models", "rules": model_rules})
    return groups


@dataclass(frozen=True, kw_only=True)
class AlertRulesArgs:
    namespace: pulumi.Input[str]
    """Namespace of the PrometheusRule (the monitoring namespace)."""
    crds: pulumi.Resource
    """The monitoring release that provides the PrometheusRule CRD."""
    models: tuple[ModelTarget, ...] = ()
    """Model servers to alert on."""
    agents: tuple[Agent, ...] = ()
    """GPU node agents to alert on."""
    gpu: GpuThresholds
    """GPU thresholds."""
    pools: tuple[GpuPool, ...] = ()
    """GPU pools whose nodes must advertise their GPUs."""


class AlertRules(pulumi.ComponentResource):
    """One PrometheusRule with the GPU and model alerts."""

    def __init__(self, name: str, args: AlertRulesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("neurodock:monitoring:AlertRules", name, None, opts)
        names = pulumi.Output.all(
            [t.deployment for t in args.models], [a.daemon_set for a in args.agents]
        )
        groups = names.apply(lambda n: rule_groups(
            [replace(t, deployment=d) for t, d in zip(args.models, n[0], strict=True)],
            args.gpu,
            [replace(a, daemon_set=d) for a, d in zip(args.agents, n[1], strict=True)],
            list(args.pools),
        ))
        prometheus_rule(f"{name}-rules", namespace=args.namespace, groups=groups, parent=self, crds=args.crds)
        self.register_outputs({})
