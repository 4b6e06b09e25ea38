"""Recording rules: every SLI's error ratio and request rate over every burn-rate window, and GPU power and
energy per GPU, pool, pod and model.

The burn-rate alerts (:mod:`components.monitoring.alerts`) and the dashboards read these series instead of
raw 1-day and 3-day rates. Like the exporters' metrics (``metrics.REGISTRY``), every recorded series is
declared here with the labels it carries (``RECORDED``), so the tests check each query that reads one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from components.monitoring import metrics as m

BURN_RATES = (
    # severity, long window, short window, burn rate over a 30-day budget. The Site Reliability Workbook,
    # "Alerting on SLOs", iteration 6 (multiwindow, multi-burn-rate): table 5-8's pages (2% of the budget in 1
    # hour, 5% in 6 hours) and ticket (10% in 3 days), with the 1-day/2-hour pair of its example ticket rule.
    # The short window is 1/12 of the long one, and no rule waits a duration (`for:`): the workbook advises
    # against one, as it delays detection and resets whenever the rate dips.
    ("critical", "1h", "5m", 14.4),
    ("critical", "6h", "30m", 6.0),
    ("warning", "1d", "2h", 3.0),
    ("warning", "3d", "6h", 1.0),
)
"""Multi-window, multi-burn-rate alerting: an alert fires while the error budget burns this fast over
both windows; the short window makes it resolve soon after the burn stops."""

_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400}


def seconds(window: str) -> int:
    """A window such as ``5m``, ``6h`` or ``3d`` in seconds."""
    found = re.fullmatch(r"([1-9][0-9]*)([mhd])", window)
    assert found is not None, window
    return int(found.group(1)) * _UNIT_SECONDS[found.group(2)]


SLO_WINDOWS = tuple(sorted({w for _, long_, short, _ in BURN_RATES for w in (long_, short)}, key=seconds))
"""Every window a burn-rate alert reads."""
ENERGY_WINDOWS = ("5m", "1h")
"""Windows of the energy records: the dashboards' (5m) and an hour's average, steadier, for reports."""

SLI_LABELS = frozenset({"model", "slo", "variant", "scope"})
"""The labels an SLI's records carry: ``slo`` (availability, ttft) and either ``model`` and ``variant``
(a model's stable version) or ``scope`` (``gateway``: every request through the gateway)."""


@dataclass(frozen=True)
class Recorded:
    """A series NeuroDock's recording rules write."""

    name: str
    labels: frozenset[str]
    help: str


def slo_errors(window: str) -> Recorded:
    return Recorded(f"neurodock:slo_errors:ratio_rate{window}", SLI_LABELS,
                    f"The share of an SLI's requests that were bad over {window}")


def slo_requests(window: str) -> Recorded:
    return Recorded(f"neurodock:slo_requests:rate{window}", SLI_LABELS,
                    f"An SLI's requests per second over {window}: the traffic guard's count")


GPU_KEY = "node, hostname, gpu, modelName"
"""A GPU, and the node label kube_node_labels joins on (``node`` is the exporter pod's node, the same name as
``hostname``: components/gpu/dcgm.py)."""
POOL = "label_neurodock_io_pool"
"""The node's pool, as kube-state-metrics exports the allow-listed ``neurodock.io/pool`` label."""


def gpu_watts(window: str) -> Recorded:
    return Recorded(f"neurodock:gpu_power_watts:rate{window}", frozenset(GPU_KEY.split(", ")),
                    f"Each GPU's mean power over {window}, in W, from its energy counter, once per GPU")


def pool_watts(window: str) -> Recorded:
    return Recorded(f"neurodock:pool_gpu_power_watts:rate{window}", frozenset({POOL}),
                    f"A GPU pool's mean GPU power over {window}, in W")


def pool_idle_watts(window: str) -> Recorded:
    return Recorded(f"neurodock:pool_idle_gpu_power_watts:rate{window}", frozenset({POOL}),
                    f"A GPU pool's mean power over {window}, in W, of GPUs that serve no model (no model server "
                    "holds them)")


def pod_watts(window: str) -> Recorded:
    return Recorded(f"neurodock:pod_gpu_power_watts:rate{window}", frozenset({"namespace", "pod"}),
                    f"A pod's share of its GPUs' mean power over {window}, in W: a GPU's power split evenly between "
                    "the pods sharing it")


def model_watts(window: str) -> Recorded:
    return Recorded(f"neurodock:model_gpu_power_watts:rate{window}", frozenset({"model_name", "variant"}),
                    f"A model version's GPU power over {window}, in W")


def joules_per_token(window: str) -> Recorded:
    return Recorded(f"neurodock:model_joules_per_token:ratio_rate{window}", frozenset({"model_name", "variant"}),
                    f"GPU energy per generated token over {window}, in J")


INSTANCE_TYPE = "label_node_kubernetes_io_instance_type"
"""A node's machine type, as kube-state-metrics exports the allow-listed ``node.kubernetes.io/instance-type``."""
COST_WINDOWS = ("1h",)
"""The window of the measured $/Mtok (``components.monitoring.cost``): an hour, so a quiet minute does not swing
it."""
NODE_PRICE = Recorded("neurodock:node_price_usd_per_hour", frozenset({"node", POOL, INSTANCE_TYPE}),
                      "A node's on-demand list price per hour, boot disk included, from the plan's catalogue")
DEVICE_PRICE = Recorded("neurodock:node_device_price_usd_per_hour", frozenset({"node", POOL, INSTANCE_TYPE}),
                        "A GPU node's price per hour of one schedulable GPU device")
POOL_PRICE = Recorded("neurodock:pool_price_usd_per_hour", frozenset({POOL}),
                      "A pool's running nodes' list price per hour")
MODEL_PRICE = Recorded("neurodock:model_price_usd_per_hour", frozenset({"model_name", "variant"}),
                       "A model version's GPU devices at their nodes' price per device, per hour")


def usd_per_mtok(window: str) -> Recorded:
    return Recorded(f"neurodock:model_usd_per_million_tokens:ratio_rate{window}", frozenset({"model_name", "variant"}),
                    f"A model version's cost per million generated tokens over {window}, measured")




RECORDED: dict[str, Recorded] = {
    r.name: r for r in (
        *(f(w) for w in SLO_WINDOWS for f in (slo_errors, slo_requests)),
        *(f(w) for w in ENERGY_WINDOWS
          for f in (gpu_watts, pool_watts, pool_idle_watts, pod_watts, model_watts, joules_per_token)),
        NODE_PRICE, DEVICE_PRICE, POOL_PRICE, MODEL_PRICE, *(usd_per_mtok(w) for w in COST_WINDOWS),
    )
}
"""Every series a NeuroDock recording rule writes, by name."""


@dataclass(frozen=True, kw_only=True)
class Sli:
    """An SLI: its bad and total events per second over a window, as label-less PromQL."""

    labels: dict[str, str]
    """What tells its records apart (``SLI_LABELS``)."""
    bad: Callable[[str], str]
    total: Callable[[str], str]

    def selector(self) -> str:
        return "{" + ", ".join(f'{k}="{v}"' for k, v in self.labels.items()) + "}"


def sli_rules(sli: Sli) -> list[dict]:
    """The SLI's request rate and error ratio over every window the burn-rate alerts read."""
    rules = []
    for window in SLO_WINDOWS:
        rules.append({"record": slo_requests(window).name, "expr": sli.total(window), "labels": dict(sli.labels)})
        rules.append({"record": slo_errors(window).name, "expr": f"({sli.bad(window)}) / ({sli.total(window)})",
                      "labels": dict(sli.labels)})
    return rules


def burn_expr(sli: Sli, severity: str, budget: float, min_requests: int) -> str:
    """The budget burns at ``severity``'s rates over both windows of a pair, and the long window saw at least
    ``min_requests`` requests: a handful of requests, one of them failed, cannot page."""
    sel = sli.selector()
    pairs = []
    for sev, long_, short, rate in BURN_RATES:
        if sev != severity:
            continue
        threshold = f"{rate * budget:g}"
        pairs.append(f"({slo_errors(long_).name}{sel} > {threshold} and {slo_errors(short).name}{sel} > {threshold} "
                     f"and {slo_requests(long_).name}{sel} * {seconds(long_)} >= {min_requests})")
    return " or ".join(pairs)


def energy_rules() -> list[dict]:
    """Power from the energy counter, per GPU, pool, pod and model version, and energy per generated token.

    The counter is in mJ at the pinned exporter (``metrics.DCGM_ENERGY``): rate() / 1000 is watts, and its
    increase over a window / 1000 the joules, whatever the scrape interval; a driver reload resets it, which
    rate() handles. A GPU's value is copied onto every pod sharing it (``metrics.DCGM_PER_PROCESS``) and every
    MIG instance of it (the exporter reports the whole GPU's power for each, dcgm-exporter issues #257, #317),
    so each GPU is taken once, and a pod's share is the GPU's power divided by the pods holding it. A model's
    GPUs are its model servers' pods (vLLM's series carry their pod). Energy per token counts generated
    tokens only (``vllm:generation_tokens_total``); prompt tokens are free in this measure."""
    energy = m.DCGM_ENERGY.name
    nodes = f"max by (node, {POOL}) ({m.KSM_NODE_LABELS.name})"
    # A model server's pod, with its model and version: vLLM's series carry both (model_name, variant).
    servers = f"group by (namespace, pod, model_name, variant) ({m.VLLM_RUNNING.name})"
    rules = []
    for w in ENERGY_WINDOWS:
        held = f'{energy}{{pod!=""}}'
        rules += [
            {"record": gpu_watts(w).name,
             "expr": f"max by ({GPU_KEY}) (rate({energy}[{w}])) / {m.MJ_PER_J}"},
            {"record": pool_watts(w).name,
             "expr": f"sum by ({POOL}) ({gpu_watts(w).name} * on (node) group_left ({POOL}) {nodes})"},
            {"record": pool_idle_watts(w).name,
             "expr": f"sum by ({POOL}) (({gpu_watts(w).name} unless on (hostname, gpu) "
                     f"({held} * on (namespace, pod) group_left () {servers})) "
                     f"* on (node) group_left ({POOL}) {nodes})"},
            {"record": pod_watts(w).name,
             "expr": f"sum by (namespace, pod) (rate({held}[{w}]) / on (hostname, gpu) group_left () "
                     f"count by (hostname, gpu) ({held})) / {m.MJ_PER_J}"},
            {"record": model_watts(w).name,
             "expr": f"sum by (model_name, variant) ({pod_watts(w).name} "
                     f"* on (namespace, pod) group_left (model_name, variant) {servers})"},
            # A version that generated nothing has no J/token (not +Inf): its power is in model_watts.
            {"record": joules_per_token(w).name,
             "expr": f"{model_watts(w).name} / on (model_name, variant) "
                     f"(sum by (model_name, variant) (rate({m.VLLM_GENERATION_TOKENS.name}[{w}])) > 0)"},
        ]
    return rules

