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
    buckets: tuple[float, ...] = ()
    """A histogram's bucket bounds (its ``le`` values but ``+Inf``), where an objective must be one of them."""

    def series(self) -> set[str]:
        """The series names Prometheus stores for the metric."""
        if self.kind == "histogram":
            return {f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count"}
        return {self.name}


# vLLM
VLLM_RUNNING = Metric("vllm:num_requests_running", "gauge", "vllm", "Requests being processed")
VLLM_WAITING = Metric("vllm:num_requests_waiting", "gauge", "vllm", "Requests waiting in the queue")
VLLM_KV_CACHE = Metric("vllm:kv_cache_usage_perc", "gauge", "vllm", "KV-cache usage, 0 to 1")
VLLM_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                     20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
"""Bucket bounds of ``vllm:time_to_first_token_seconds`` (vLLM v0.28.0 ``vllm/v1/metrics/loggers.py:796-827``)."""
VLLM_TTFT = Metric("vllm:time_to_first_token_seconds", "histogram", "vllm",
                   "Time to first token as the engine sees it: from the API server parsing the request (after the "
                   "gateway, its picker and any hold there) to the first token's engine step; a diagnostic, the TTFT "
                   "objective is judged on the picker's EPP_TTFT", VLLM_TTFT_BUCKETS)
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
DCGM_XID_TOTAL = Metric("DCGM_EXP_XID_ERRORS_TOTAL", "counter", "dcgm", "XID errors since the exporter started, by xid")
DCGM_ENERGY = Metric("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "dcgm",
                     "GPU energy in millijoules since the driver was last loaded (a reload resets it)")
"""DCGM field 156, "Total energy consumption for the GPU in mJ since the driver was last reloaded" (NVIDIA/go-dcgm
v1.4611.0 ``pkg/dcgm/dcgm_fields.h:652-656``); the exporter's help says "since boot (in mJ)"
(``etc/default-counters.csv:15``). dcgm-exporter 4.9.0 renames it ``DCGM_FI_DEV_GPU_ENERGY_JOULES_TOTAL`` (field
1611) and moves it to joules (4.9.0 release notes; ``dcgm_fields.h:3596-3599``): the ``/ 1000`` of every energy rule
and this name change together on that bump, which the fixture check then catches."""
MJ_PER_J = 1000
"""``DCGM_ENERGY`` is in millijoules at the pinned exporter (4.8.4): J = mJ / 1000."""

DCGM_PER_PROCESS = frozenset({"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED"})
"""With ``KUBERNETES_VIRTUAL_GPUS`` (components/gpu/dcgm.py) the exporter gives each pod on a GPU its own value of
these two, from NVML's per-process accounting, beside the GPU's own sample (no pod labels); every other field is
copied once per pod with the whole GPU's value (dcgm-exporter d5e5f51 ``internal/pkg/transformation/
process_metrics.go:30-32``, ``kubernetes.go:331-410``). So a sum of any other DCGM field over pods counts a
time-shared GPU once per pod: take one value per GPU (``max by (hostname, gpu)``) first."""

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
KSM_POD_DELETION = Metric("kube_pod_deletion_timestamp", "gauge", "kube-state-metrics",
                          "When a pod was marked for deletion (Unix seconds); no series for a pod not being deleted")
KSM_POD_INFO = Metric("kube_pod_info", "gauge", "kube-state-metrics", "A pod, with the node it runs on (node)")
KSM_POD_READY = Metric("kube_pod_status_ready", "gauge", "kube-state-metrics",
                       "Whether a pod is Ready: one series per condition (true, false, unknown), 1 for the pod's")

# Envoy (the gateway's proxies), per Envoy cluster: one per route backend (components/gateway/routes.py)
ENVOY_UPSTREAM_RQ_XX = Metric("envoy_cluster_upstream_rq_xx", "counter", "envoy",
                              "Responses by class (envoy_response_code_class 2, 4, 5...), the router's local replies "
                              "included; never the replies filters send before the router (the picker's)")
ENVOY_DOWNSTREAM_RQ_XX = Metric("envoy_http_downstream_rq_xx", "counter", "envoy",
                                "Responses clients got, by class, per HTTP connection manager "
                                "(envoy_http_conn_manager_prefix): every local reply included, the picker's and "
                                "its fail-closed 500s too")
"""Charged when the response headers are encoded, local replies included (Envoy 1.37.0-dev 4d06d2f
``source/common/http/conn_manager_impl.cc:1073-1111,2012``; ext_proc immediate responses and ``status_on_error``
are local replies, ``source/extensions/filters/http/ext_proc/ext_proc.cc:1920-1945,2016-2047``). One series set
per HTTP connection manager, not per route: the gateway's listeners and Envoy Gateway's own stats and
readiness listeners (``queries.CLIENT_LISTENERS``)."""

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
EPP_REQUEST_ERRORS = Metric("llm_d_epp_request_error_total", "counter", "epp",
                            "Requests that ended in an error, once each, by error_code: the picker's own refusals "
                            "(ResourceExhausted 429, ServiceUnavailable 503, Internal 500...) and ModelServerError "
                            "(the replica answered a status other than 200)")
"""llm-d-router v0.10.0 ``pkg/epp/metrics/llm_d_router_metrics.go:49-56``, recorded once per stream
(``pkg/epp/handlers/server.go:352-358``); codes and their HTTP statuses ``pkg/common/error/error.go:58-141``."""
EPP_TTFT_BUCKETS = (0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0,
                    15.0, 20.0, 30.0, 45.0, 60.0, 120.0)
"""Bucket bounds of ``llm_d_epp_request_ttft_seconds`` (llm-d-router v0.10.0
``pkg/epp/metrics/llm_d_router_metrics.go:143-154``)."""
EPP_TTFT = Metric("llm_d_epp_request_ttft_seconds", "histogram", "epp",
                  "Time from the picker receiving a request's headers to its first response byte, held time "
                  "included; for streaming=\"false\" the whole answer", EPP_TTFT_BUCKETS)
"""Started when the picker receives the request's headers (``pkg/epp/handlers/request.go:39``), so a hold in
the flow-control queue (a model waking from zero) counts; ended at the first response-body chunk
(``handlers/response.go:55-57``); observed at the end of the stream (``response.go:88-92``), so a request the
picker refused, or a stream cut before its end, is not in it (availability counts those)."""

REGISTRY: dict[str, Metric] = {
    m.name: m for m in globals().values() if isinstance(m, Metric)
}

KNOWN_SERIES: frozenset[str] = frozenset(s for m in REGISTRY.values() for s in m.series())


def kept(source: str) -> str:
    """A regular expression matching exactly the series of ``source``'s registered metrics: what a monitor
    that drops the rest of an exporter's families must keep (Prometheus anchors it)."""
    return "|".join(sorted(s for m in REGISTRY.values() if m.source == source for s in m.series()))
