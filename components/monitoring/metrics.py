"""The registry of every metric NeuroDock's dashboards and alerts use, as the exporters really name
them. Dashboards and rules take names from here only, and tests check every PromQL expression
against it, so an upstream rename breaks a test instead of silently emptying a panel.

Sources (checked against the exporters' code):
- vLLM V1 engine, ``vllm/v1/metrics/loggers.py`` (label ``model_name``; ``vllm:kv_cache_usage_perc``
  replaced ``vllm:gpu_cache_usage_perc``, ``vllm:inter_token_latency_seconds`` replaced
  ``vllm:time_per_output_token_seconds``);
- llama.cpp server with ``--metrics``, ``tools/server/server-context.cpp`` (no labels; no KV-cache metric);
- NVIDIA dcgm-exporter ``etc/default-counters.csv`` (labels ``gpu``, ``UUID``, ``Hostname``,
  ``modelName``, and ``pod``/``namespace``/``container`` with Kubernetes mapping on);
- kube-state-metrics ``docs/metrics/workload``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Metric:
    name: str
    kind: Literal["counter", "gauge", "histogram"]
    source: Literal["vllm", "llamacpp", "dcgm", "kube-state-metrics", "prometheus"]
    help: str

    def series(self) -> set[str]:
        """The series names Prometheus stores for the metric."""
        if self.kind == "histogram":
            return {f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count"}
        return {self.name}


# vLLM
VLLM_RUNNING = Metric("vllm:num_requests_running", "gauge", "vllm", "Requests being processed")
VLLM_WAITING = Metric("vllm:num_requests_waiting", "gauge", "vllm", "Requests waiting in the queue")
VLLM_KV_CACHE = Metric("vllm:kv_cache_usage_perc", "gauge", "vllm", "KV-cache usage, 0 to 1")
VLLM_TTFT = Metric("vllm:time_to_first_token_seconds", "histogram", "vllm", "Time to first token")
VLLM_ITL = Metric("vllm:inter_token_latency_seconds", "histogram", "vllm", "Time between output tokens")
VLLM_E2E = Metric("vllm:e2e_request_latency_seconds", "histogram", "vllm", "End-to-end request latency")
VLLM_PROMPT_TOKENS = Metric("vllm:prompt_tokens_total", "counter", "vllm", "Prefill tokens processed")
VLLM_GENERATION_TOKENS = Metric("vllm:generation_tokens_total", "counter", "vllm", "Tokens generated")
VLLM_REQUEST_SUCCESS = Metric("vllm:request_success_total", "counter", "vllm",
                              "Finished requests, by finished_reason (stop, length, abort, ...)")

# llama.cpp
LLAMACPP_PROCESSING = Metric("llamacpp:requests_processing", "gauge", "llamacpp", "Requests being processed")
LLAMACPP_DEFERRED = Metric("llamacpp:requests_deferred", "gauge", "llamacpp", "Requests waiting")
LLAMACPP_PREDICTED = Metric("llamacpp:tokens_predicted_total", "counter", "llamacpp", "Tokens generated")

# DCGM exporter
DCGM_GPU_UTIL = Metric("DCGM_FI_DEV_GPU_UTIL", "gauge", "dcgm", "GPU utilisation, percent")
DCGM_FB_USED = Metric("DCGM_FI_DEV_FB_USED", "gauge", "dcgm", "Framebuffer memory used, MiB")
DCGM_FB_FREE = Metric("DCGM_FI_DEV_FB_FREE", "gauge", "dcgm", "Framebuffer memory free, MiB")
DCGM_POWER = Metric("DCGM_FI_DEV_POWER_USAGE", "gauge", "dcgm", "Power draw, W")
DCGM_TEMP = Metric("DCGM_FI_DEV_GPU_TEMP", "gauge", "dcgm", "GPU temperature, C")
DCGM_XID = Metric("DCGM_FI_DEV_XID_ERRORS", "gauge", "dcgm", "Value of the last XID error")

# kube-state-metrics
KSM_DEPLOYMENT_SPEC_REPLICAS = Metric("kube_deployment_spec_replicas", "gauge", "kube-state-metrics",
                                      "Desired replicas of a Deployment")
KSM_DEPLOYMENT_AVAILABLE = Metric("kube_deployment_status_replicas_available", "gauge", "kube-state-metrics",
                                  "Available replicas of a Deployment")
KSM_DAEMONSET_DESIRED = Metric("kube_daemonset_status_desired_number_scheduled", "gauge", "kube-state-metrics",
                               "Nodes that should run the DaemonSet's pod")
KSM_DAEMONSET_READY = Metric("kube_daemonset_status_number_ready", "gauge", "kube-state-metrics",
                             "Nodes running a ready pod of the DaemonSet")

REGISTRY: dict[str, Metric] = {
    m.name: m for m in globals().values() if isinstance(m, Metric)
}

KNOWN_SERIES: frozenset[str] = frozenset(s for m in REGISTRY.values() for s in m.series())
