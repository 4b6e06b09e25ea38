"""Grafana dashboards as code: GPUs, and LLM serving. Every query takes its metric names from the
registry in :mod:`components.monitoring.metrics`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components.monitoring import metrics as m

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


def gpu_dashboard() -> dict[str, Any]:
    node = 'Hostname=~"$node"'
    used = f"{m.DCGM_FB_USED.name}{{{node}}}"
    free = f"{m.DCGM_FB_FREE.name}{{{node}}}"
    return _dashboard("neurodock-gpu", "NeuroDock / GPUs", [
        ("GPU utilisation by node", [Query(f"avg by (Hostname) ({m.DCGM_GPU_UTIL.name}{{{node}}})", "{{Hostname}}")],
         "percent", "Average utilisation of the node's GPUs."),
        ("GPU utilisation by pod", [Query(
            f'avg by (namespace, pod) ({m.DCGM_GPU_UTIL.name}{{{node}, pod!=""}})', "{{namespace}}/{{pod}}")],
         "percent", "Attributed through the kubelet's pod-resources API."),
        ("GPU memory used", [Query(f"{used} / ({used} + {free})", "{{Hostname}} gpu {{gpu}}")],
         "percentunit", "Framebuffer in use; vLLM reserves most of it up front."),
        ("GPU memory by pod", [Query(
            f'sum by (namespace, pod) ({m.DCGM_FB_USED.name}{{{node}, pod!=""}})', "{{namespace}}/{{pod}}")],
         "decmbytes", ""),
        ("Power", [Query(f"sum by (Hostname) ({m.DCGM_POWER.name}{{{node}}})", "{{Hostname}}")], "watt", ""),
        ("Temperature", [Query(f"max by (Hostname, gpu) ({m.DCGM_TEMP.name}{{{node}}})",
                               "{{Hostname}} gpu {{gpu}}")], "celsius", ""),
        ("XID errors (last value)", [Query(f"max by (Hostname, gpu) ({m.DCGM_XID.name}{{{node}}})",
                                           "{{Hostname}} gpu {{gpu}}")], "none",
         "Non-zero means the driver reported an XID error; see the runbook."),
    ], [_variable("node", "Node", f"label_values({m.DCGM_GPU_UTIL.name}, Hostname)")])


def llm_dashboard() -> dict[str, Any]:
    sel = 'model_name=~"$model"'
    return _dashboard("neurodock-llm", "NeuroDock / LLM serving", [
        ("Request rate", [Query(f"sum by (model_name) (rate({m.VLLM_REQUEST_SUCCESS.name}{{{sel}}}[5m]))",
                                "{{model_name}}")], "reqps", "Finished requests per second."),
        ("Errors (aborted requests)", [Query(
            f'sum by (model_name) (rate({m.VLLM_REQUEST_SUCCESS.name}{{{sel}, finished_reason="abort"}}[5m]))',
            "{{model_name}}")], "reqps", "Requests that ended aborted."),
        ("Time to first token", _quantiles(m.VLLM_TTFT, sel, "model_name"), "s", ""),
        ("Inter-token latency", _quantiles(m.VLLM_ITL, sel, "model_name"), "s", ""),
        ("End-to-end latency", _quantiles(m.VLLM_E2E, sel, "model_name"), "s", ""),
        ("Queue depth", [
            Query(f"sum by (model_name) ({m.VLLM_WAITING.name}{{{sel}}})", "waiting {{model_name}}"),
            Query(f"sum by (model_name) ({m.VLLM_RUNNING.name}{{{sel}}})", "running {{model_name}}"),
        ], "short", "Waiting requests drive the autoscaler."),
        ("KV-cache usage", [Query(f"max by (model_name) ({m.VLLM_KV_CACHE.name}{{{sel}}})", "{{model_name}}")],
         "percentunit", "Above 90% vLLM starts preempting requests."),
        ("Tokens per second", [
            Query(f"sum by (model_name) (rate({m.VLLM_GENERATION_TOKENS.name}{{{sel}}}[5m]))",
                  "generated {{model_name}}"),
            Query(f"sum by (model_name) (rate({m.VLLM_PROMPT_TOKENS.name}{{{sel}}}[5m]))", "prompt {{model_name}}"),
        ], "short", ""),
        ("CPU engine (llama.cpp) requests", [
            Query(f"sum by (pod) ({m.LLAMACPP_PROCESSING.name})", "processing {{pod}}"),
            Query(f"sum by (pod) ({m.LLAMACPP_DEFERRED.name})", "waiting {{pod}}"),
        ], "short", "llama.cpp exposes no model label; one series per pod."),
        ("CPU engine (llama.cpp) tokens per second", [
            Query(f"sum by (pod) (rate({m.LLAMACPP_PREDICTED.name}[5m]))", "{{pod}}")], "short", ""),
    ], [_variable("model", "Model", f"label_values({m.VLLM_RUNNING.name}, model_name)")])


DASHBOARDS = {"neurodock-gpu.json": gpu_dashboard, "neurodock-llm.json": llm_dashboard}
"""File name in the ConfigMap -> dashboard builder."""


def panel_queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a dashboard: panel targets and variable queries' metrics."""
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
