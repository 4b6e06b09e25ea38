"""Alert rules for GPUs and model servers, built from the metric registry and per-model SLOs, with the
recording rules they read (each SLI per window, GPU energy: :mod:`components.monitoring.recording`).

``rule_groups`` is pure (names in, rule groups out), so the rules can be written to a file and
checked with ``promtool check rules`` and ``promtool test rules``; ``AlertRules`` installs them as a
PrometheusRule once the names of the objects they watch are known.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pulumi

from components.gateway.picker import picker_name
from components.gateway.routes import cluster_name
from components.monitoring import metrics as m
from components.monitoring.cost import NodePrice, cost_groups
from components.monitoring.queries import (
    CLIENT_LISTENERS,
    EPP_CLIENT_ERRORS,
    EPP_SERVER_ERRORS,
    GPU_PRESENCE,
    any_of,
    per_gpu,
    xid_errors,
)
from components.monitoring.recording import Sli, burn_expr, energy_rules, sli_rules
from components.monitoring.resources import prometheus_rule

RUNBOOK_BASE = "https://github.com/neurodock/neurodock/blob/main/docs/runbooks.md"
"""Where docs/runbooks.md of this repository is published; each alert links to its section."""


HARDWARE_XIDS = ("48", "61", "62", "63", "64", "74", "79", "92", "94", "95", "119", "120", "140", "154")
"""XIDs that need the GPU reset or the node replaced: double-bit ECC (48), micro-controller breakpoint
and halt (61, 62), row remapping (63, 64), NVLink (74), fallen off the bus (79), high single-bit ECC
rate (92), contained and uncontained ECC (94, 95), GSP timeout and error (119, 120), unrecovered ECC
(140), GPU reset required (154) (NVIDIA's XID catalogue, "Resolution Bucket"). The others come from
applications (13, 31, 43, 45: a faulting or killed CUDA process) and end with it."""


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
    """TTFT objective: 95% of streamed requests get their first token within this, as the gateway's picker
    measures it (a bound of ``metrics.EPP_TTFT_BUCKETS``); without a route, as vLLM does (of
    ``metrics.VLLM_TTFT_BUCKETS``)."""
    availability: float
    """Availability objective: the share of requests clients get an answer for, neither a 5xx nor a 429 of
    the picker."""
    queue_depth: int
    kv_cache_usage: float
    route: str | None = None
    """The model's HTTPRoute name, whose gateway statistics give its error rate, and the name of its
    stable version's InferencePool (None: no gateway)."""
    canary: bool = False
    """The model has a canary: its SLIs are recorded and judged too, and a fast burn asks for its rollback
    (``canary_rules``)."""
    start_s: int = 0
    """How long a replica may take to become ready, from a new node to a loaded model: a model woken from zero,
    or a canary, without a ready replica for longer is not merely starting."""
    mig: bool = False
    """The model's GPU pool is partitioned with MIG, where the exporter cannot read utilisation: no idle-GPU
    alert (``DCGM_FI_DEV_GPU_UTIL`` reads 0 on MIG instances and NVIDIA has no plan to support it there,
    dcgm-exporter issues #216 and #430; the profiling field it points to, ``DCGM_FI_PROF_GR_ENGINE_ACTIVE``,
    needs a privileged exporter and a DCGM profiling module NeuroDock does not collect)."""


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


def _rule(alert: str, expr: str, for_: str | None, severity: str, summary: str, description: str, runbook: str,
          extra_labels: dict[str, str] | None = None) -> dict:
    """An alerting rule; ``for_`` None fires at the first evaluation that finds it true."""
    rule = {
        "alert": alert,
        "expr": expr,
        "labels": {"severity": severity, **(extra_labels or {})},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"{RUNBOOK_BASE}#{runbook}",
        },
    }
    if for_ is not None:
        rule["for"] = for_
    return rule


def le_matcher(bound: float) -> str:
    """A matcher of a histogram bucket's ``le``, however the bound is written: ``2.5``, or ``10`` and
    ``10.0`` (Prometheus 3 writes whole bounds with ``.0`` on ingestion; older ones keep the exporter's)."""
    text = repr(float(bound))
    if text.endswith(".0"):
        return f'le=~"{text[:-2]}|{text[:-2]}[.]0"'
    return f'le="{text}"'


def _burn_rules(alert: str, sli: Sli, budget: float, min_requests: int, summary: str, description: str,
                runbook: str) -> list[dict]:
    """One rule per severity: the budget burns at a page's (or a ticket's) rate over both windows of a pair,
    with traffic enough to judge. No ``for``: the short window already waits for the burn to be real."""
    return [_rule(alert, burn_expr(sli, severity, budget, min_requests), None, severity, summary, description,
                  runbook, sli.labels)
            for severity in ("critical", "warning")]


def _gpu_rules(gpu: GpuThresholds, agents: list[Agent], pools: list[GpuPool],
               gpu_exporter_namespace: str | None) -> list[dict]:
    hardware_xid = f'xid=~"{"|".join(HARDWARE_XIDS)}"'
    application_xid = f'xid!~"{"|".join(HARDWARE_XIDS)}"'
    used, free = per_gpu(m.DCGM_FB_USED), per_gpu(m.DCGM_FB_FREE)
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
              # The GPU's own values: its used memory is also split per sharing pod, its free memory copied.
              f"{used} / ({used} + {free}) > {gpu.memory_usage}",
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
    if gpu_exporter_namespace is not None:
        exporter = f'namespace="{gpu_exporter_namespace}"'
        ready = (f"max by (node) ({m.KSM_POD_INFO.name}{{{exporter}}} * on (namespace, pod) group_left () "
                 f'{m.KSM_POD_READY.name}{{{exporter}, condition="true"}}) == 1')
        rules.append(_rule(
            "NeuroDockGpuMetricsMissing",
            # The exporter's series carry the node of the exporter pod that served them (components/gpu/dcgm.py).
            f"{ready} unless on (node) count by (node) ({GPU_PRESENCE.name})",
            "10m", "critical",
            "The GPU exporter on {{ $labels.node }} is ready but Prometheus has no GPU metrics from it",
            "The DCGM exporter pod on this node passes its readiness probe, yet no GPU series of the node reach "
            "Prometheus: DCGM sees no GPU, its counters file is broken, or the scrape fails. The node's GPU "
            "alerts (XIDs, memory, idle GPUs) and its energy are blind.", "gpu-metrics-missing"))
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


VARIANT_RULES = {"stable": 0, "canary": 1}
"""A version's rule of the model's route (``routes.cluster_name``) and, but for the stable one, the suffix of its
InferencePool and picker (``<model>-canary``, ``infra/routing.py``)."""


def _pool(t: ModelTarget, variant: str) -> str:
    return t.route if variant == "stable" else f"{t.route}-{variant}"


def _availability_sli(t: ModelTarget, variant: str = "stable") -> Sli:
    """A version's requests as clients get them: the answers of its route rule's Envoy cluster (its
    replicas', and the router's 503s and 504s), plus the requests its picker refused before the router ran,
    which no cluster counts. Bad: a 5xx of the cluster, a 429, 503 or 500 of the picker."""
    cluster = f'envoy_cluster_name="{cluster_name(t.namespace, t.route, VARIANT_RULES[variant])}"'
    answered = f"{m.ENVOY_UPSTREAM_RQ_XX.name}{{{cluster}}}"
    errors = f'{m.ENVOY_UPSTREAM_RQ_XX.name}{{{cluster}, envoy_response_code_class="5"}}'
    picker = f'namespace="{t.namespace}", job="{picker_name(_pool(t, variant))}"'
    refused = f'{m.EPP_REQUEST_ERRORS.name}{{{picker}, error_code=~"{any_of(EPP_SERVER_ERRORS + EPP_CLIENT_ERRORS)}"}}'
    failed = f'{m.EPP_REQUEST_ERRORS.name}{{{picker}, error_code=~"{any_of(EPP_SERVER_ERRORS)}"}}'

    def rate(selector: str, window: str) -> str:
        # Either side may have no series yet (no refusal so far): it counts as none.
        return f"(sum(rate({selector}[{window}])) or vector(0))"

    return Sli(labels={"model": t.served_name, "slo": "availability", "variant": variant},
               bad=lambda w: f"{rate(errors, w)} + {rate(failed, w)}",
               total=lambda w: f"{rate(answered, w)} + {rate(refused, w)}")


def _ttft_sli(t: ModelTarget, variant: str = "stable") -> Sli:
    """A version's streamed requests slower than the objective to their first token, timed at the
    gateway's picker (a hold for a waking replica included); without a gateway, at vLLM."""
    if t.route is not None:
        histogram = m.EPP_TTFT.name
        sel = f'namespace="{t.namespace}", job="{picker_name(_pool(t, variant))}", streaming="true"'
    else:
        histogram = m.VLLM_TTFT.name
        sel = f'model_name="{t.served_name}", variant="{variant}"'
    total = f"{histogram}_count{{{sel}}}"
    fast = f"{histogram}_bucket{{{sel}, {le_matcher(t.ttft_seconds)}}}"
    return Sli(labels={"model": t.served_name, "slo": "ttft", "variant": variant},
               bad=lambda w: f"sum(rate({total}[{w}])) - sum(rate({fast}[{w}]))",
               total=lambda w: f"sum(rate({total}[{w}]))")


@dataclass(frozen=True, kw_only=True)
class SliBudget:
    """An SLI of a model's version with the share of its events that may be bad (its error budget)."""

    sli: Sli
    budget: float


def version_slis(t: ModelTarget, variant: str = "stable") -> list[SliBudget]:
    """The SLIs the burn-rate alerts judge a model's ``variant`` (stable, canary) on, each with its budget: the
    one home of their PromQL, which ``neurodock rollout analyze`` reads too."""
    out = []
    if t.route is not None:
        out.append(SliBudget(sli=_availability_sli(t, variant), budget=1 - t.availability))
    if t.engine == "vllm":
        out.append(SliBudget(sli=_ttft_sli(t, variant), budget=1 - TTFT_OBJECTIVE))
    return out


ROLLBACK_LABEL = ("rollback", "canary")
"""The label of an alert that asks for the model's canary to be rolled back: Alertmanager routes it to the
rollback receiver (``alertmanager.alertmanager_config``'s ``canary_rollback``), whatever its severity."""
CANARY_ALERT = "NeuroDockCanaryBudgetBurn"
STACK_MODEL_LABEL = "neurodock_model"
"""The model's name in the stack file (``models[i].name``, its route's name), which ``neurodock rollout rollback
--model`` takes; the ``model`` label is its served name."""


CANARY_FALLBACK_ALERT = "NeuroDockCanaryFallingBack"


def canary_ready(t: ModelTarget) -> str:
    """PromQL for the canary's ready replicas, 0 when it has none. With none, its picker sends the canary's
    share of requests to the stable replicas (``infra/routing.py``): clients see no error, and the canary's
    SLIs count the stable version's answers, so neither they nor its burn-rate alert can judge the canary.

    A pod being deleted counts as not ready, as the picker drops it at once (llm-d-router v0.10.0
    pkg/epp/util/pod/pod.go:23-26) while its Ready condition holds until its container stops. The pods are the
    canary Deployment's: ``<model>-canary-server-<name suffix>-<ReplicaSet hash>-<pod suffix>`` exactly, so a model
    named ``<model>-canary-server-x`` is not counted."""
    pods = f'namespace="{t.namespace}", pod=~"{t.route}-canary-server-[a-z0-9]+-[a-z0-9]+-[a-z0-9]+"'
    ready = f'{m.KSM_POD_READY.name}{{{pods}, condition="true"}}'
    deleting = f"{m.KSM_POD_DELETION.name}{{{pods}}}"
    return f"(sum({ready} unless on(namespace, pod) {deleting}) or vector(0))"


def canary_rules(models: list[ModelTarget], min_requests: int) -> list[dict]:
    """Per model with a canary, the canary's SLIs (``version_slis``, the ones ``rollout analyze`` reads) recorded
    with ``variant="canary"``, and an alert when its budget burns at a page's rate (the 1h/5m and 6h/30m pairs) on
    any of them. It carries ``ROLLBACK_LABEL``: the canary is taken off traffic without a person (docs/rollouts.md);
    ``warning``, as the automation acts and people follow up."""
    records: list[dict] = []
    alerts: list[dict] = []
    for t in models:
        # Without a route nothing splits traffic, so there is no weight to roll back.
        if not t.canary or t.route is None:
            continue
        for sli_budget in version_slis(t, "canary"):
            sli = sli_budget.sli
            records += sli_rules(sli)
            alerts.append(_rule(
                CANARY_ALERT, burn_expr(sli, "critical", sli_budget.budget, min_requests), None, "warning",
                f"Model {t.served_name}: its canary burns the {sli.labels['slo']} budget; rolling it back",
                "The canary's own requests (its route rule and picker) break the model's objective fast enough to "
                "page for a stable version. The rollback workflow sets its weight to 0 (`neurodock rollout "
                "rollback`) and deploys it; check that it ran, then fix or remove the canary.",
                "canary-budget-burn", {ROLLBACK_LABEL[0]: ROLLBACK_LABEL[1], STACK_MODEL_LABEL: t.route,
                                       "slo": sli.labels["slo"]}))
        alerts.append(_rule(
            CANARY_FALLBACK_ALERT, f"{canary_ready(t)} == 0", f"{max(15, -(-t.start_s // 60))}m", "warning",
            f"Model {t.served_name}: its canary has no ready replica; the stable version serves its share",
            "The canary's replicas are all down or not ready for longer than a start takes (crashing, evicted, "
            "unschedulable). Clients see no error: the canary's endpoint picker falls back to the stable "
            "replicas. But nothing judges the canary meanwhile, and `neurodock rollout analyze` holds. Find why "
            "it is not ready, or roll it back.", "canary-falling-back", {STACK_MODEL_LABEL: t.route}))
    return records + alerts


GATEWAY_SLI = Sli(
    labels={"slo": "availability", "scope": "gateway"},
    bad=lambda w: f'sum(rate({m.ENVOY_DOWNSTREAM_RQ_XX.name}{{{CLIENT_LISTENERS}, envoy_response_code_class="5"}}'
                  f"[{w}]))",
    total=lambda w: f"sum(rate({m.ENVOY_DOWNSTREAM_RQ_XX.name}{{{CLIENT_LISTENERS}}}[{w}]))",
)
"""Every request through the gateway, as its clients got it: Envoy's downstream responses on the Gateway's
listeners, whatever answered them (a replica, the router, the picker, or the ext_proc filter failing closed when
the picker is down or too slow). Envoy counts them per listener, not per route, so this SLI cannot tell models
or versions apart; the per-model SLIs can, but miss the fail-closed 500s this one sees."""


def _stable_burn_alert(t: ModelTarget, slo: str) -> tuple[str, str, str, str]:
    """The burn-rate alert of the stable version's ``slo`` (``version_slis``): name, summary, description, runbook."""
    if slo == "availability":
        return ("NeuroDockErrorBudgetBurn", f"Model {t.served_name}: errors burn its {t.availability:.2%} availability "
                "budget",
                "Too many of this model's requests get an error where the client sees it: a 5xx from its replicas "
                "or the gateway (no healthy replica, a timeout), or the picker's 429 and 503 (held requests dropped, "
                "a model waking from zero without a replica, a full queue). At this rate the month's error budget "
                "runs out early.", "error-budget-burn")
    return ("NeuroDockTtftBudgetBurn",
            f"Model {t.served_name}: too many requests wait over {t.ttft_seconds:g}s for the first token",
            f"More than {1 - TTFT_OBJECTIVE:.0%} of streamed requests should not wait over {t.ttft_seconds:g}s "
            "for their first token, timed from the gateway (a hold for a replica waking up counts); at this rate "
            "the month's budget runs out early. The model is overloaded (see queue depth and held requests), "
            "replicas wake too slowly, or prompts got longer.", "ttft-budget-burn")


def _slo_rules(models: list[ModelTarget], min_requests: int) -> list[dict]:
    """Per model, its stable version's SLIs (availability behind the gateway, TTFT for vLLM); and the gateway's,
    judged against the strictest availability objective among its models. Recording rules come first, so the
    alerts read this evaluation's values."""
    records: list[dict] = []
    alerts: list[dict] = []
    routed = [t for t in models if t.route is not None]
    for t in models:
        for sli_budget in version_slis(t):
            sli = sli_budget.sli
            alert, summary, description, runbook = _stable_burn_alert(t, sli.labels["slo"])
            records += sli_rules(sli)
            alerts += _burn_rules(alert, sli, sli_budget.budget, min_requests, summary, description, runbook)
    if routed:
        objective = max(t.availability for t in routed)
        records += sli_rules(GATEWAY_SLI)
        alerts += _burn_rules(
            "NeuroDockGatewayErrorBudgetBurn", GATEWAY_SLI, 1 - objective, min_requests,
            f"The gateway's 5xx burn the {objective:.2%} availability budget",
            "Clients get too many 5xx from the gateway, whichever model they ask for: replicas failing, or the "
            "gateway failing closed because an endpoint picker is down or too slow (a 500 or 504 no model's "
            "error budget counts). At this rate the month's error budget runs out early.",
            "gateway-error-budget-burn")
    return records + alerts


def _model_rules(t: ModelTarget, gpu: GpuThresholds) -> list[dict]:
    who = {"model": t.served_name}
    dep = f'namespace="{t.namespace}", deployment="{t.deployment}"'
    rules = [_rule(
        "NeuroDockModelServerDown",
        f"{m.KSM_DEPLOYMENT_AVAILABLE.name}{{{dep}}} == 0 and {m.KSM_DEPLOYMENT_SPEC_REPLICAS.name}{{{dep}}} > 0",
        # A model woken from zero has no available replica until it is ready: not an outage.
        f"{max(5, -(-t.start_s // 60)) if t.min_replicas == 0 else 5}m", "critical",
        f"Model {t.served_name} has no available replica",
        "Every replica of the model server is down or not ready: requests for this model fail.",
        "model-server-down", who)]
    if t.route is not None:
        rules += _picker_rules(t, who)
    if t.engine != "vllm":
        rules.append(_rule(
            "NeuroDockQueueDepthHigh",
            f'sum({m.LLAMACPP_DEFERRED.name}{{namespace="{t.namespace}", pod=~"{t.deployment}-.*"}}) '
            f"> {t.queue_depth}", "5m", "warning",
            f"Model {t.served_name}: more than {t.queue_depth} requests waiting",
            "Requests queue faster than replicas serve them.", "queue-depth-high", who))
        return rules
    sel = f'model_name="{t.served_name}", variant="stable"'
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
    ]
    if not t.mig:
        # Each pod's own utilisation: on a time-shared GPU the exporter gives every pod its processes' share
        # (metrics.DCGM_PER_PROCESS), beside the GPU's sample, which has no pod.
        rules.append(_rule(
            "NeuroDockGpusIdleAboveMinReplicas",
            f'avg(avg_over_time({m.DCGM_GPU_UTIL.name}{{namespace="{t.namespace}", '
            f'pod=~"{t.deployment}-.*"}}[{gpu.idle_minutes}m])) < {gpu.idle_utilisation_percent} '
            f"and on() {m.KSM_DEPLOYMENT_SPEC_REPLICAS.name}{{{dep}}} > {t.min_replicas}",
            "15m", "warning",
            f"Model {t.served_name}: GPUs idle while above its minimum of {t.min_replicas} replicas",
            f"The model's GPUs averaged under {gpu.idle_utilisation_percent}% for "
            f"{gpu.idle_minutes} minutes with more replicas than its minimum: capacity is paid for "
            "and unused.", "gpus-idle", who))
    return rules


def _picker_rules(t: ModelTarget, who: dict[str, str]) -> list[dict]:
    """The stable version's endpoint picker: without it the model's requests fail; saturated, it holds
    them; holding them past their time, it drops them."""
    picker = f'namespace="{t.namespace}", deployment="{picker_name(t.route)}"'
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


def rule_groups(models: list[ModelTarget], gpu: GpuThresholds, agents: list[Agent], pools: list[GpuPool] = (),
                *, slo_min_requests: int, gpu_exporter_namespace: str | None = None) -> list[dict]:
    """Prometheus rule groups; every ``deployment`` and ``daemon_set`` must be a plain string. Recording rules
    precede, in their group, the alerts that read them."""
    groups = [{"name": "neurodock-gpu", "rules": _gpu_rules(gpu, agents, list(pools), gpu_exporter_namespace)},
              {"name": "neurodock-energy", "rules": energy_rules()}]
    slo_rules = _slo_rules(models, slo_min_requests) + canary_rules(models, slo_min_requests)
    if slo_rules:
        groups.append({"name": "neurodock-slo", "rules": slo_rules})
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
    slo_min_requests: int
    """Requests a burn-rate alert's long window must hold before it may fire (``monitoring.alerts.sloMinRequests``)."""
    gpu_exporter_namespace: str | None = None
    """Namespace of the DCGM exporter, whose ready pods must deliver GPU series (default none: no GPU nodes)."""
    node_prices: tuple[NodePrice, ...] | None = None
    """Each pool's machine types at their list price (``components.monitoring.cost``), for the cost recording
    rules, in a PrometheusRule of their own (``<name>-cost``: what they hold follows the region's prices, so a DR
    stack's differ from its primary's by location alone); default None, no such rule (kind). Empty where the
    catalogue prices nothing of the stack: the rule exists, with no group."""


class AlertRules(pulumi.ComponentResource):
    """One PrometheusRule with the GPU, energy, SLO and model rules."""

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
            slo_min_requests=args.slo_min_requests,
            gpu_exporter_namespace=args.gpu_exporter_namespace,
        ))
        prometheus_rule(f"{name}-rules", namespace=args.namespace, groups=groups, parent=self, crds=args.crds)
        if args.node_prices is not None:
            prometheus_rule(f"{name}-cost", namespace=args.namespace, groups=cost_groups(args.node_prices),
                            parent=self, crds=args.crds)
        self.register_outputs({})
