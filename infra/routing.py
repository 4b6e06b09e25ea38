"""Config -> each model version's InferencePool and endpoint picker: the llm-d router chart's values,
and the picker's configuration (what it scores, how long it holds a request)."""

from __future__ import annotations

import functools

import yaml

from components import labels
from components.gateway.gateway import GATEWAY_NAMESPACE, PREFER_HEADER
from components.gateway.picker import EndpointPickerArgs
from components.monitoring.stack import MONITORING_NAMESPACE, SELECTED
from components.serving.catalog import SERVING_NAMESPACE
from components.serving.model_server import MODEL_SERVER, PORT, ReadinessBudgets, pod_match_labels
from components.versions import ENDPOINT_PICKER_IMAGE, LLM_D_ROUTER
from infra import charts
from infra.config import ModelSpec

CONFIG_FILE = "neurodock.yaml"
"""The picker's configuration file, added to the chart's ConfigMap and selected by ``--config-file``."""
SCORERS = (("queue-scorer", 2), ("kv-cache-utilization-scorer", 2), ("prefix-cache-scorer", 3))
"""What the picker scores a replica on, and the weights: the chart's default profile (routerlib
templates/_config.yaml): fewer waiting requests, more free KV cache, the longest cached prefix of the
prompt (an index the picker keeps of what it sent where)."""
LLAMACPP_ENGINE = {
    # llama.cpp's server has no KV-cache gauge (ggml-org/llama.cpp PR #13660 removed it): an empty
    # spec leaves the KV scorer neutral, the queue and prefix scores decide (llm-d-router v0.10.0
    # pkg/epp/framework/plugins/datalayer/extractor/metrics: spec.go, factories.go).
    "name": "llamacpp",
    "queuedRequestsSpec": "llamacpp:requests_deferred",
    "runningRequestsSpec": "llamacpp:requests_processing",
    "kvUsageSpec": "",
}


CANARY_FILTER = "stable-or-canary"
CANARY_SCORER = "prefer-canary"
CANARY_PREFERENCE_WEIGHT = 100
"""The weight of the canary picker's preference for the canary's replicas: above the other scorers' weights
together (``SCORERS``, each score is 0-1, llm-d-router v0.10.0 pkg/epp/scheduling/scheduler_profile.go:204-213
sums them weighted), so a ready canary replica always wins and a stable one is chosen only when no canary
replica is left: a draining, evicted or crashed canary's share falls back to the stable version."""


WAKE_MARGIN_S = 60
"""KEDA's part of a wake: Prometheus' scrape of the picker (10 s), KEDA's poll (15 s), the scale-up."""
DEFAULT_HOLD_S = 60
"""The picker's own flow-control TTL (``defaultRequestTTL``, 60 s: llm-d-router v0.10.0
apix/config/v1alpha1/endpointpickerconfig_types.go:379-387, pkg/epp/flowcontrol/controller/config.go:33):
how long it holds a request while a pool that is not at zero is saturated."""
PICKER_MEMORY_LIMIT_MI = 1024
PICKER_QUEUE_MAX_BYTES_MI = 256
"""The picker's flow-control queue, in request bytes, across all priority bands: held requests keep their
whole body in memory, raw and parsed (pkg/epp/handlers/server.go:448-468), and the queue has no global
bound by default, 1 GB per band (pkg/epp/flowcontrol/registry/config.go:44,71-75): a quarter of the
container's memory limit leaves room for the parsed copies and the picker itself (the docs: "set a
global maxBytes under the container memory limit", docs/operations.md:22-30)."""
PICKER_QUEUE_MAX_REQUESTS = 2000
"""Held requests at most, across bands (default: no global bound, 5000 per band)."""
PICKER_REPLICAS = 2
"""Active-passive: the chart turns on leader election with more than one replica and only the leader is
ready (routerlib templates/_deployment.yaml:110-112; pkg/epp/server/options.go:165-166,
cmd/epp/runner/health.go:77-101), so a node drain or a crash fails over to the standby in about the lease's
retry period (2 s, controller-runtime v0.23.3 pkg/manager/internal.go:54-56) plus one readiness period
(2 s) instead of the time a new pod takes to start."""


ENVOY_GRACE_BEYOND_DRAIN_S = 300
"""Envoy Gateway gives a proxy pod its drain timeout plus 300 s to terminate (``terminationGracePeriodSeconds``,
v1.8.3 internal/infrastructure/kubernetes/proxy/resource_provider.go:614-624)."""


def proxy_grace_seconds(drain_s: int) -> int:
    """A gateway proxy pod's grace period for a drain of ``drain_s`` seconds (what Envoy Gateway renders)."""
    return drain_s + ENVOY_GRACE_BEYOND_DRAIN_S


def drain_seconds(models: list[ModelSpec], holds: dict[str, int]) -> int:
    """How long a stopping gateway proxy keeps serving: the longest a request may be held by its picker
    (``holds``, by model name: a model at zero waits for a replica) and then run (the route's timeout)."""
    return max((holds.get(m.name, DEFAULT_HOLD_S) + m.request_timeout_seconds for m in models),
               default=DEFAULT_HOLD_S)


def hold_seconds(readiness: ReadinessBudgets) -> int:
    """How long the picker of a model at zero holds a request while its pool has no ready replica (the
    flow-control queue's TTL): the time a replica is given to become ready, from a new node to a
    loaded model, and KEDA's time to ask for it."""
    return readiness.total_s + WAKE_MARGIN_S


def picker_config(model: ModelSpec, readiness: ReadinessBudgets, variant: str = "stable") -> str:
    """The picker's EndpointPickerConfig (llm-d.ai/v1alpha1, decoded strictly by the picker). A canary's
    picker sees the stable replicas too (``pool_match_labels``) and prefers its own: it falls back to stable."""
    return _picker_config(model.engine, variant, hold_seconds(readiness) if model.min_replicas == 0 else None)


@functools.cache
def _picker_config(engine: str, variant: str, hold_s: int | None) -> str:
    """The config's YAML from all it depends on: models that share these share the text (emitting it was
    a few milliseconds per picker)."""
    extractor: dict = {"type": "core-metrics-extractor"}
    if engine == "llamacpp":
        extractor["parameters"] = {"defaultEngine": "llamacpp", "engineConfigs": [LLAMACPP_ENGINE]}
    plugins: list[dict] = [*({"type": name} for name, _ in SCORERS),
                           {"type": "metrics-data-source", "parameters": {"scheme": "http", "path": "/metrics"}},
                           extractor]
    profile: list[dict] = [{"pluginRef": name, "weight": weight} for name, weight in SCORERS]
    if variant == "canary":
        plugins += [
            # Only stable and canary replicas, whatever the pool's selector finds: a safeguard, as a shadow's pods
            # lack the route label (label-selector-filter, pkg/epp/framework/plugins/scheduling/filter/bylabel/
            # selector.go).
            {"type": "label-selector-filter", "name": CANARY_FILTER, "parameters": {"matchExpressions": [
                {"key": labels.VARIANT_LABEL, "operator": "In", "values": ["stable", "canary"]}]}},
            # A replica whose variant label equals the request's PREFER_HEADER (always "canary", set by the
            # gateway) scores 1, others 0 and stay eligible (header-label-affinity-scorer,
            # pkg/epp/framework/plugins/scheduling/scorer/headerlabelaffinity/plugin.go:82-97).
            {"type": "header-label-affinity-scorer", "name": CANARY_SCORER,
             "parameters": {"headerName": PREFER_HEADER, "labelKey": labels.VARIANT_LABEL}},
        ]
        profile = [{"pluginRef": CANARY_FILTER}, *profile,
                   {"pluginRef": CANARY_SCORER, "weight": CANARY_PREFERENCE_WEIGHT}]
    document = {
        "apiVersion": "llm-d.ai/v1alpha1",
        "kind": "EndpointPickerConfig",
        # Flow control holds a request while the pool is saturated or empty, instead of a 503 at once
        # (pkg/epp/flowcontrol/README.md): what lets a model scaled to zero wake on its first request.
        "featureGates": ["flowControl"],
        "plugins": plugins,
        "schedulingProfiles": [{"name": "default", "plugins": profile}],
    }
    # A bound on what the queue holds, below the container's memory (the default has none).
    document["flowControl"] = {"maxBytes": f"{PICKER_QUEUE_MAX_BYTES_MI}Mi", "maxRequests": PICKER_QUEUE_MAX_REQUESTS}
    if hold_s is not None:  # a model that scales to zero
        # Otherwise the picker's default (60 s): a saturated pool holds a request that long, then 429.
        document["flowControl"]["defaultRequestTTL"] = f"{hold_s}s"
    return yaml.safe_dump(document, sort_keys=False)


def pool_match_labels(model: ModelSpec, pool: str, variant: str) -> dict[str, str]:
    """The pods the InferencePool ``pool`` (``variant`` of ``model``) holds: a version's own replicas, but a
    canary's holds the stable version's too (``labels.ROUTE_LABEL``, which a shadow's pods lack: the picker's
    flow control judges saturation over the whole pool, pkg/epp/flowcontrol/controller/internal/processor.go),
    and its picker prefers the canary's, so the stable version serves the canary's share while it has no ready
    replica."""
    if variant == "canary":
        return {labels.NAME: MODEL_SERVER, labels.ROUTE_LABEL: model.name}
    return pod_match_labels(pool)


def picker_values(model: ModelSpec, pool: str, readiness: ReadinessBudgets, *, monitoring: bool,
                  variant: str = "stable") -> dict:
    """The llm-d-router-gateway chart's values for the InferencePool ``pool`` (``variant`` of ``model``)."""
    registry, repository, tag = ENDPOINT_PICKER_IMAGE
    flags = {"enable-pprof": "false"}
    if variant == "canary":
        # header-label-affinity-scorer is registered as Alpha, which the picker refuses to load without this
        # flag (cmd/epp/runner/runner.go:595, pkg/epp/framework/interface/plugin/registry.go:107-118).
        flags["allow-experimental-plugins"] = "true"
    return {"router": {
        "modelServers": {"matchLabels": pool_match_labels(model, pool, variant), "targetPorts": [{"number": PORT}]},
        # The gateway (Envoy AI Gateway) fails closed whatever the pool says (envoyproxy/ai-gateway
        # v1.1.0 internal/extensionserver/inferencepool.go): say so.
        "inferencePool": {"create": True, "failureMode": "FailClose"},
        "epp": {
            # The chart's tag is `main`, pulled on every start: the release's own tag instead.
            "image": {"registry": registry, "repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"},
            # Active-passive (PICKER_REPLICAS): one leader serves, as the chart advises (the prefix index lives
            # in its memory); the standby takes over on a drain or a crash.
            "replicas": PICKER_REPLICAS,
            # The chart asks for 8 CPUs and 8 GiB, sized for a hundred replicas at high request rates.
            "resources": {"requests": {"cpu": "250m", "memory": "256Mi"},
                          "limits": {"memory": f"{PICKER_MEMORY_LIMIT_MI}Mi"}},
            # pprof shares the metrics port; it has no place in production.
            "flags": flags,
            "pluginsConfigFile": CONFIG_FILE,
            "pluginsCustomConfig": {CONFIG_FILE: picker_config(model, readiness, variant)},
        },
        # /metrics asks for a token (--metrics-endpoint-auth): the chart's ServiceMonitor presents the
        # picker's own, from a Secret whose default name every release in a namespace would share.
        "monitoring": {"prometheus": {"enabled": monitoring, "extraLabels": SELECTED,
                                      "auth": {"secretName": f"{pool}-epp-metrics"}}},
    }}


def picker_args(model: ModelSpec, pool: str, readiness: ReadinessBudgets, *, monitoring: bool,
                system_node_selector: dict[str, str], variant: str = "stable") -> EndpointPickerArgs:
    values = picker_values(model, pool, readiness, monitoring=monitoring, variant=variant)
    return EndpointPickerArgs(
        pool=pool,
        objects=tuple(charts.render(LLM_D_ROUTER, values, name=pool, namespace=SERVING_NAMESPACE)),
        node_selector=system_node_selector,
        gateway_namespace=GATEWAY_NAMESPACE,
        monitoring_namespace=MONITORING_NAMESPACE if monitoring else None,
    )
