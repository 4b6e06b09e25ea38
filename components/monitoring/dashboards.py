"""Grafana dashboards as code: GPUs, and LLM serving. Every query takes its metric names from the
registry in :mod:`components.monitoring.metrics`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components.monitoring import metrics as m
from components.monitoring import recording as rec
from components.monitoring.cost import cost_dashboard_panels
from components.monitoring.queries import CLIENT_LISTENERS, EPP_SERVER_ERRORS, any_of, per_gpu, xid_errors

_DS = {"type": "prometheus", "uid": "${datasource}"}
_QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


def _panel(panel_id: int, title: str, queries: list[Query], unit: str, x: int, y: int,
           description: str = "") -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": _DS,
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": _DS, "expr": q.expr, "legendFormat": q.legend}
            for i, q in enumerate(queries)
        ],
    }


def _dashboard(uid: str, title: str, panels: list[tuple[str, list[Query], str, str]],
               variables: list[dict[str, Any]]) -> dict[str, Any]:
    laid_out = [_panel(i + 1, title_, queries, unit, (i % 2) * 12, (i // 2) * 8, description)
                for i, (title_, queries, unit, description) in enumerate(panels)]
    return {
        "uid": uid,
        "title": title,
        "tags": ["neurodock"],
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "hide": 0},
            *variables,
        ]},
        "panels": laid_out,
    }


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {"name": name, "label": label, "type": "query", "datasource": _DS, "query": query,
            "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*"}


def _quantiles(metric: m.Metric, sel: str, by: str) -> list[Query]:
    return [Query(f"histogram_quantile({q}, sum by (le, {by}) (rate({metric.name}_bucket{{{sel}}}[5m])))",
                  f"{name} {{{{{by}}}}}") for name, q in _QUANTILES]


MIG_LEFT_OUT = ("MIG instances are left out (GPU_I_ID set): the exporter cannot read utilisation there and "
                "reports 0 (dcgm-exporter issues #216, #430), so they would read idle however busy.")
"""Why the utilisation panels skip MIG instances, as the idle-GPU alert skips models on MIG pools."""


def gpu_dashboard() -> dict[str, Any]:
    node = 'hostname=~"$node"'
    used, free = per_gpu(m.DCGM_FB_USED, node), per_gpu(m.DCGM_FB_FREE, node)
    not_mig = f'{node}, GPU_I_ID=""'
    return _dashboard("neurodock-gpu", "NeuroDock / GPUs", [
        ("GPU utilisation by node", [Query(
            f"avg by (hostname) ({per_gpu(m.DCGM_GPU_UTIL, not_mig)})", "{{hostname}}")],
         "percent", f"Average utilisation of the node's GPUs, each GPU's own. {MIG_LEFT_OUT}"),
        ("GPU utilisation by pod", [Query(
            f'avg by (namespace, pod) ({m.DCGM_GPU_UTIL.name}{{{not_mig}, pod!=""}})', "{{namespace}}/{{pod}}")],
         "percent", "Attributed through the kubelet's pod-resources API; idle GPUs have no pod. On a time-shared "
         f"GPU each pod's own share, from NVML's per-process accounting. {MIG_LEFT_OUT}"),
        ("GPU memory used", [Query(f"{used} / ({used} + {free})", "{{hostname}} gpu {{gpu}}")],
         "percentunit", "Framebuffer in use; vLLM reserves most of it up front."),
        ("GPU memory by pod", [Query(
            f'sum by (namespace, pod) ({m.DCGM_FB_USED.name}{{{node}, pod!=""}})', "{{namespace}}/{{pod}}")],
         "decmbytes", "On a time-shared GPU each pod's own processes' memory."),
        ("Power", [Query(f"sum by (hostname) ({per_gpu(m.DCGM_POWER, node)})", "{{hostname}}")], "watt",
         "The node's GPUs' power draw, each GPU once (the exporter repeats it for every pod sharing a GPU and every "
         "MIG instance of it)."),
        ("Energy per node, last hour", [Query(
            f'sum by (hostname) ({rec.gpu_watts("1h").name}{{{node}}})', "{{hostname}}")],
         "watth", "The node's GPUs' energy over the hour before each point, in Wh (their mean power over the hour, "
         "from the energy counters DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION, mJ at exporter 4.8.4)."),
        ("Temperature", [Query(f"max by (hostname, gpu) ({m.DCGM_TEMP.name}{{{node}}})",
                               "{{hostname}} gpu {{gpu}}")], "celsius", ""),
        ("XID errors", [Query(xid_errors(node), "{{hostname}} gpu {{gpu}} xid {{xid}}")], "none",
         "XID errors in the last 10 minutes, by XID; see the runbook for hardware and application XIDs."),
    ], [_variable("node", "Node", f"label_values({m.DCGM_GPU_UTIL.name}, hostname)")])


GATEWAY_CLUSTERS = 'envoy_cluster_name=~"httproute/neurodock-serving/.+"'
"""Envoy clusters of the models' routes: ``.../rule/0`` stable, ``/rule/1`` canary, ``-mirror-1`` shadow
(components/gateway/routes.py ``cluster_name``)."""
POOLS = 'namespace="neurodock-serving"'
"""The endpoint pickers' series: one picker per InferencePool, the pool named in ``inference_pool`` or
``name`` (a model version: ``<model>``, ``<model>-canary``)."""


def llm_dashboard() -> dict[str, Any]:
    sel = 'model_name=~"$model", variant=~"$variant"'
    by = "model_name, variant"
    legend = "{{model_name}} {{variant}}"
    codes = m.ENVOY_UPSTREAM_RQ_XX.name
    downstream = m.ENVOY_DOWNSTREAM_RQ_XX.name
    slo = 'model=~"$model"'
    return _dashboard("neurodock-llm", "NeuroDock / LLM serving", [
        ("Request rate", [Query(f"sum by ({by}) (rate({m.VLLM_REQUEST_SUCCESS.name}{{{sel}}}[5m]))", legend)],
         "reqps", "Finished requests per second, by version (stable, canary, shadow)."),
        ("SLO: bad requests as users feel them (1h)", [
            Query(f'{rec.slo_errors("1h").name}{{{slo}, slo="availability"}}', "errors {{model}}"),
            Query(f'{rec.slo_errors("1h").name}{{{slo}, slo="ttft"}}', "slow first token {{model}}"),
            Query(f'{rec.slo_errors("1h").name}{{scope="gateway"}}', "5xx at the gateway, all models"),
        ], "percentunit", "The SLIs the burn-rate alerts judge, stable versions: the share of requests that got an "
           "error (a 5xx, or the picker's 429 or 503) and the share of streamed requests whose first token came later "
           "than the objective, timed at the gateway (a hold while a replica wakes counts); and the gateway's 5xx "
           "across every model, fail-closed picker errors included. The budget is 1 - objective."),
        ("Clients' responses at the gateway", [Query(
            f"sum by (envoy_response_code_class) (rate({downstream}{{{CLIENT_LISTENERS}}}[5m]))",
            "{{envoy_response_code_class}}xx")],
         "reqps", "Every response the gateway's clients got, by class, whoever answered (a replica, the router, the "
         "picker, or the gateway failing closed without its picker); Envoy counts them per listener, not per model."),
        ("Picker: requests refused", [Query(
            f'sum by (job, error_code) (rate({m.EPP_REQUEST_ERRORS.name}{{{POOLS}, '
            f'error_code=~"{any_of(EPP_SERVER_ERRORS)}"}}[5m]))', "{{error_code}} {{job}}")],
         "reqps", "What each pool's picker answered itself: ResourceExhausted (429: queue full, held past its time "
         "with replicas up), ServiceUnavailable (503: no replica, e.g. waking from zero), Internal and Unknown (500)."),
        ("Time to first token at the gateway", [
            Query(f"histogram_quantile({q}, sum by (le, job) (rate({m.EPP_TTFT.name}_bucket"
                  f'{{{POOLS}, streaming="true"}}[5m])))', f"{name} {{{{job}}}}") for name, q in _QUANTILES],
         "s", "Streamed requests, from the picker receiving them to their first byte, held time included: what "
         "users wait. vLLM's own panel below starts later, after the gateway."),
        ("Gateway error ratio (5xx)", [Query(
            f'sum by (envoy_cluster_name) (rate({codes}{{{GATEWAY_CLUSTERS}, envoy_response_code_class="5"}}[5m])) '
            f"/ sum by (envoy_cluster_name) (rate({codes}{{{GATEWAY_CLUSTERS}}}[5m]))", "{{envoy_cluster_name}}")],
         "percentunit", "Share of each model's requests the gateway answered with a 5xx, local replies (no "
         "healthy replica, timeout) included: route/rule/0 is the stable version, rule/1 the canary, -mirror-1 the "
         "shadow. The picker's own refusals (500 with the picker down, 503 or 429 for dropped held requests) come "
         "before the rule's cluster and are not counted here: see the picker's panels."),
        ("Picker: routing decisions", [Query(
            f"sum by (job, status) (rate({m.EPP_SCHEDULED.name}{{{POOLS}}}[5m]))", "{{job}} {{status}}")],
         "reqps", "Replicas the endpoint pickers chose per second, by pool (job: <pool>-epp) and outcome."),
        ("Picker: prefix-cache hit ratio", [Query(
            f"sum by (job) (rate({m.EPP_PREFIX_HIT.name}_sum{{{POOLS}}}[5m])) "
            f"/ sum by (job) (rate({m.EPP_PREFIX_HIT.name}_count{{{POOLS}}}[5m]))", "{{job}}")],
         "percentunit", "Mean share of each prompt's prefix already cached on the replica the picker chose: "
         "what prefix-aware routing saves in prefill."),
        ("Picker: held requests", [
            Query(f"sum by (inference_pool) ({m.EPP_HELD.name}{{{POOLS}}})", "held {{inference_pool}}"),
            Query(f"sum by (inference_pool, outcome) (rate({m.EPP_FLOW_OUTCOMES.name}"
                  f'{{{POOLS}, outcome!="Dispatched"}}[5m]))', "{{outcome}} {{inference_pool}}"),
        ], "short", "Requests held at the gateway because the pool is saturated or has no ready replica (a "
           "model waking from zero), and those dropped (held past the time to ready, or refused)."),
        ("Picker: pool saturation and queue", [
            Query(f"max by (inference_pool) ({m.EPP_SATURATION.name}{{{POOLS}}})", "saturation {{inference_pool}}"),
            Query(f"max by (name) ({m.EPP_AVG_QUEUE.name}{{{POOLS}}})", "mean queue {{name}}"),
            Query(f"max by (name) ({m.EPP_AVG_KV.name}{{{POOLS}}})", "mean KV cache {{name}}"),
            Query(f"max by (name) ({m.EPP_READY.name}{{{POOLS}}})", "ready replicas {{name}}"),
        ], "short", "At saturation 1 the picker holds new requests; an empty pool reads 1. A canary's pool holds the "
           "stable replicas too (its fallback): its figures are stable's and canary's together."),
        ("Time to first token", _quantiles(m.VLLM_TTFT, sel, by), "s",
         "As vLLM times it, from parsing the request: a diagnostic of the engine (queue and prefill); the gateway's "
         "panel adds the picker's holds and scheduling."),
        ("Inter-token latency", _quantiles(m.VLLM_ITL, sel, by), "s", ""),
        ("End-to-end latency", _quantiles(m.VLLM_E2E, sel, by), "s", ""),
        ("Queue depth", [
            Query(f"sum by ({by}) ({m.VLLM_WAITING.name}{{{sel}}})", f"waiting {legend}"),
            Query(f"sum by ({by}) ({m.VLLM_RUNNING.name}{{{sel}}})", f"running {legend}"),
        ], "short", "Waiting requests drive the autoscaler."),
        ("KV-cache usage", [Query(f"max by ({by}) ({m.VLLM_KV_CACHE.name}{{{sel}}})", legend)],
         "percentunit", "Above 90% vLLM starts preempting requests."),
        ("Tokens per second", [
            Query(f"sum by ({by}) (rate({m.VLLM_GENERATION_TOKENS.name}{{{sel}}}[5m]))", f"generated {legend}"),
            Query(f"sum by ({by}) (rate({m.VLLM_PROMPT_TOKENS.name}{{{sel}}}[5m]))", f"prompt {legend}"),
        ], "short", ""),
        ("Energy per generated token", [Query(f"{rec.joules_per_token('5m').name}{{{sel}}}", legend)], "joule",
         "GPU energy per generated token, in J: the GPUs' energy counters (DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION, mJ at "
         "exporter 4.8.4, joules from 4.9) over the model's generated tokens. A GPU shared by pods is split evenly "
         "between them; prompt tokens are not counted."),
        ("Generated tokens per joule", [Query(f"1 / {rec.joules_per_token('5m').name}{{{sel}}}", legend)], "short",
         "The inverse: tokens the GPUs generate per joule."),
        ("GPU power per model", [Query(f"{rec.model_watts('5m').name}{{{sel}}}", legend)], "watt",
         "The mean power of the model's GPUs, in W (a shared GPU's split evenly between the pods sharing it)."),
        ("GPU power that serves no model", [
            Query(f"{rec.pool_idle_watts('5m').name}", "idle {{label_neurodock_io_pool}}"),
            Query(f"{rec.pool_watts('5m').name}", "all {{label_neurodock_io_pool}}"),
        ], "watt", "Per GPU pool: the power of GPUs no model server holds (warm spares, nodes waiting to scale "
           "down), beside the pool's whole GPU power, in W."),
        ("Running requests per pod", [Query(f"sum by (pod, variant) ({m.VLLM_RUNNING.name}{{{sel}}})",
                                             "{{pod}} {{variant}}")],
         "short", "Uneven load across replicas of one version points at a slow or sick pod."),
        ("Time to first token p95 per pod", [Query(
            f"histogram_quantile(0.95, sum by (le, pod, variant) (rate({m.VLLM_TTFT.name}_bucket{{{sel}}}[5m])))",
            "{{pod}} {{variant}}")], "s", ""),
        ("KV-cache usage per pod", [Query(f"max by (pod, variant) ({m.VLLM_KV_CACHE.name}{{{sel}}})",
                                          "{{pod}} {{variant}}")], "percentunit", ""),
        ("CPU engine (llama.cpp) requests", [
            Query(f"sum by (pod) ({m.LLAMACPP_PROCESSING.name})", "processing {{pod}}"),
            Query(f"sum by (pod) ({m.LLAMACPP_DEFERRED.name})", "waiting {{pod}}"),
        ], "short", "llama.cpp exposes no model label; one series per pod."),
        ("CPU engine (llama.cpp) tokens per second", [
            Query(f"sum by (pod) (rate({m.LLAMACPP_PREDICTED.name}[5m]))", "{{pod}}")], "short", ""),
    ], [_variable("model", "Model", f"label_values({m.VLLM_RUNNING.name}, model_name)"),
        _variable("variant", "Version", f"label_values({m.VLLM_RUNNING.name}, variant)")])


def capacity_dashboard() -> dict[str, Any]:
    serving = 'namespace="neurodock-serving"'
    gpus = 'resource="nvidia_com_gpu"'
    pool = "label_neurodock_io_pool"
    to_pool = f"* on (node) group_left ({pool}) {m.KSM_NODE_LABELS.name}"
    return _dashboard("neurodock-capacity", "NeuroDock / Serving capacity", [
        ("Model server replicas: ready vs desired", [
            Query(f"sum by (deployment) ({m.KSM_DEPLOYMENT_READY.name}{{{serving}}})", "ready {{deployment}}"),
            Query(f"sum by (deployment) ({m.KSM_DEPLOYMENT_SPEC_REPLICAS.name}{{{serving}}})",
                  "desired {{deployment}}"),
        ], "short", "Desired replicas are what the autoscaler asks for; the gap is replicas still starting or "
           "waiting for a GPU node."),
        ("GPUs per pool: allocatable vs requested", [
            Query(f"sum by ({pool}) ({m.KSM_NODE_ALLOCATABLE.name}{{{gpus}}} {to_pool})",
                  f"allocatable {{{{{pool}}}}}"),
            Query(f"sum by ({pool}) ({m.KSM_POD_REQUESTS.name}{{{gpus}}} {to_pool})", f"requested {{{{{pool}}}}}"),
        ], "short", "nvidia.com/gpu the pool's nodes advertise, and what scheduled pods request of it."),
        ("GPUs requested by pods waiting for a node", [
            Query(f'sum({m.KSM_POD_REQUESTS.name}{{{gpus}, node=""}})', "pending")], "short",
         "Requests of pods no node took yet: the autoscaler should be adding GPU nodes."),
    ], [])


def cost_dashboard() -> dict[str, Any]:
    """What the running stack costs, from the cost recording rules (``components.monitoring.cost``)."""
    return _dashboard("neurodock-cost", "NeuroDock / Cost", [
        (title, [Query(expr, legend) for expr, legend in queries], unit, description)
        for title, queries, unit, description in cost_dashboard_panels()
    ], [])


DASHBOARDS = {"neurodock-gpu.json": gpu_dashboard, "neurodock-llm.json": llm_dashboard,
              "neurodock-capacity.json": capacity_dashboard, "neurodock-cost.json": cost_dashboard}
"""File name in the ConfigMap -> dashboard builder."""


def panel_queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a dashboard: panel targets and variable queries' metrics."""
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
