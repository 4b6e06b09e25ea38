"""The registry of every metric NeuroDock's dashboards and alerts use, as the exporters really name
them. Dashboards and rules take names from here only, and tests check every PromQL expression
against it, so an upstream rename breaks a test instead of silently emptying a panel.

Names and labels are those of the golden scrape fixtures in ``tests/fixtures/metrics/`` (one per
exporter, written from its source at the pinned version, cited in each file's header); the tests check
every metric here, and every label a rule or panel selects, against them. Scrape-time labels added by
NeuroDock's monitors: ``variant`` on model servers, ``node`` on the DCGM exporter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Metric:
    name: str
    kind: Literal["counter", "gauge", "histogram"]
    source: Literal["vllm", "llamacpp", "dcgm", "kube-state-metrics", "envoy", "epp"]
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

VLLM_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                     20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
"""Bucket bounds of ``vllm:time_to_first_token_seconds`` (vLLM v0.28.0 ``vllm/v1/metrics/loggers.py``): a
TTFT objective must be one of them, for the share of requests meeting it to be counted exactly."""

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
DCGM_XID_TOTAL = Metric("DCGM_EXP_XID_ERRORS_TOTAL", "counter", "dcgm", "XID errors since the exporter started, by xid")

# kube-state-metrics
KSM_DEPLOYMENT_SPEC_REPLICAS = Metric("kube_deployment_spec_replicas", "gauge", "kube-state-metrics",
                                      "Desired replicas of a Deployment")
KSM_DEPLOYMENT_AVAILABLE = Metric("kube_deployment_status_replicas_available", "gauge", "kube-state-metrics",
                                  "Available replicas of a Deployment")
KSM_DAEMONSET_DESIRED = Metric("kube_daemonset_status_desired_number_scheduled", "gauge", "kube-state-metrics",
                               "Nodes that should run the DaemonSet's pod")
KSM_DAEMONSET_READY = Metric("kube_daemonset_status_number_ready", "gauge", "kube-state-metrics",
                             "Nodes running a ready pod of the DaemonSet")
KSM_DEPLOYMENT_READY = Metric("kube_deployment_status_replicas_ready", "gauge", "kube-state-metrics",
                              "Ready replicas of a Deployment")
KSM_NODE_LABELS = Metric("kube_node_labels", "gauge", "kube-state-metrics",
                         "A node's allow-listed labels, as label_<name>")
KSM_NODE_ALLOCATABLE = Metric("kube_node_status_allocatable", "gauge", "kube-state-metrics",
                              "A node's allocatable resources (nvidia.com/gpu as nvidia_com_gpu)")
KSM_POD_REQUESTS = Metric("kube_pod_container_resource_requests", "gauge", "kube-state-metrics",
                          "Resources a container requests")

# Envoy (the gateway's proxies), per Envoy cluster: one per route backend (components/gateway/routes.py)
ENVOY_UPSTREAM_RQ_XX = Metric("envoy_cluster_upstream_rq_xx", "counter", "envoy",
                              "Responses by class (envoy_response_code_class 2, 4, 5...), local replies included")

# llm-d's endpoint picker, one per InferencePool (components/gateway/picker.py): pool gauges carry the
# pool's name in `name`, flow-control series in `inference_pool` (llm-d-router v0.10.0
# pkg/epp/metrics/llm_d_router_metrics.go).
EPP_HELD = Metric("llm_d_epp_flow_control_queue_size", "gauge", "epp",
                  "Requests the picker holds in its flow-control queue (pool saturated or without a ready replica)")
EPP_FLOW_OUTCOMES = Metric("llm_d_epp_flow_control_requests_total", "counter", "epp",
                           "Requests through flow control, by outcome (Dispatched, EvictedTTL, RejectedNoEndpoints...)")
EPP_SATURATION = Metric("llm_d_epp_flow_control_pool_saturation", "gauge", "epp",
                        "The pool's saturation: 1 and above, requests are held; an empty pool reads 1")
EPP_QUEUE_WAIT = Metric("llm_d_epp_flow_control_request_queue_duration_seconds", "histogram", "epp",
                        "Time a request spent in the flow-control queue")
EPP_READY = Metric("llm_d_epp_ready_endpoints", "gauge", "epp", "Ready replicas in the pool")
EPP_AVG_QUEUE = Metric("llm_d_epp_average_queue_size", "gauge", "epp", "Mean waiting requests per replica of the pool")
EPP_AVG_KV = Metric("llm_d_epp_average_kv_cache_utilization", "gauge", "epp",
                    "Mean KV-cache utilisation of the pool's replicas, 0 to 1")
EPP_SCHEDULED = Metric("llm_d_epp_scheduler_attempts_total", "counter", "epp",
                       "Routing decisions, by status and chosen replica (endpoint_name)")
EPP_SCHEDULE_LATENCY = Metric("llm_d_epp_scheduler_e2e_duration_seconds", "histogram", "epp",
                              "Time to pick a replica")
EPP_PREFIX_HIT = Metric("llm_d_epp_prefix_indexer_hit_ratio", "histogram", "epp",
                        "Share of a prompt's prefix found cached on the chosen replica, 0 to 1")

REGISTRY: dict[str, Metric] = {
    m.name: m for m in globals().values() if isinstance(m, Metric)
}

KNOWN_SERIES: frozenset[str] = frozenset(s for m in REGISTRY.values() for s in m.series())
