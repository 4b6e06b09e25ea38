"""Alert rules for GPUs and model servers, built from the metric registry and per-model SLOs.

``rule_groups`` is pure (names in, rule groups out), so the rules can be written to a file and
checked with ``promtool check rules`` and ``promtool test rules``; ``AlertRules`` installs them as a
PrometheusRule once the names of the objects they watch are known.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pulumi

from components.monitoring import metrics as m
from components.monitoring.resources import prometheus_rule

RUNBOOK_BASE = "https://github.com/neurodock/neurodock/blob/main/docs/runbooks.md"
"""Where docs/runbooks.md of this repository is published; each alert links to its section."""


@dataclass(frozen=True, kw_only=True)
class ModelTarget:
    served_name: str
    """The model's OpenAI name: the ``model_name`` label of vLLM's metrics."""
    engine: str
    """``vllm`` or ``llamacpp``."""
    namespace: str
    deployment: pulumi.Input[str]
    """The model server's Deployment name."""
    min_replicas: int
    ttft_p95_seconds: float
    queue_depth: int
    kv_cache_usage: float


@dataclass(frozen=True, kw_only=True)
class GpuThresholds:
    memory_usage: float = 0.95
    idle_utilisation_percent: float = 5
    idle_minutes: int = 30


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


def rule_groups(models: list[ModelTarget], gpu: GpuThresholds, agents: list[Agent]) -> list[dict]:
    """Prometheus rule groups; every ``deployment`` and ``daemon_set`` must be a plain string."""
    gpu_rules = [
        _rule("NeuroDockGpuXidError",
              f"max by (Hostname, gpu, modelName) ({m.DCGM_XID.name}) > 0", "0m", "critical",
              "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} reported XID error {{ $value }}",
              "The NVIDIA driver reported an XID error: the GPU may have faulted or fallen off the bus. "
              "Pods on it may hang or return garbage.", "gpu-xid-error"),
        _rule("NeuroDockGpuMemoryNearFull",
              f"{m.DCGM_FB_USED.name} / ({m.DCGM_FB_USED.name} + {m.DCGM_FB_FREE.name}) > {gpu.memory_usage}",
              "10m", "warning",
              "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} memory above "
              f"{gpu.memory_usage:.0%}",
              "The framebuffer is nearly full; new requests or a second process on this GPU can fail with "
              "out-of-memory errors.", "gpu-memory-near-full"),
    ]
    for agent in agents:
        slug = agent.title.lower().replace(" ", "-")
        gpu_rules.append(_rule(
            f"NeuroDock{agent.title.replace(' ', '')}Down",
            f'{m.KSM_DAEMONSET_READY.name}{{namespace="{agent.namespace}", daemonset="{agent.daemon_set}"}} '
            f'< {m.KSM_DAEMONSET_DESIRED.name}{{namespace="{agent.namespace}", daemonset="{agent.daemon_set}"}}',
            "10m", "critical",
            f"{agent.title} is not ready on every GPU node",
            f"Some GPU nodes have no ready {agent.title} pod: their GPUs are not advertised or not "
            "monitored, so model servers cannot start there or run unobserved.", f"{slug}-down"))

    model_rules = []
    for t in models:
        who = {"model": t.served_name}
        sel = f'model_name="{t.served_name}"'
        dep = f'namespace="{t.namespace}", deployment="{t.deployment}"'
        model_rules.append(_rule(
            "NeuroDockModelServerDown",
            f"{m.KSM_DEPLOYMENT_AVAILABLE.name}{{{dep}}} == 0 and {m.KSM_DEPLOYMENT_SPEC_REPLICAS.name}{{{dep}}} > 0",
            "5m", "critical", f"Model {t.served_name} has no available replica",
            "Every replica of the model server is down or not ready: requests for this model fail.",
            "model-server-down", who))
        if t.engine == "vllm":
            model_rules += [
                _rule("NeuroDockTtftOverSlo",
                      f"histogram_quantile(0.95, sum by (le) (rate({m.VLLM_TTFT.name}_bucket{{{sel}}}[5m]))) "
                      f"> {t.ttft_p95_seconds}", "10m", "warning",
                      f"Model {t.served_name}: p95 time to first token above {t.ttft_p95_seconds}s",
                      "Users wait too long for the first token: the model is overloaded (see queue depth) "
                      "or prompts got longer.", "ttft-over-slo", who),
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
                      "15m", "info",
                      f"Model {t.served_name}: GPUs idle while above its minimum of {t.min_replicas} replicas",
                      f"The model's GPUs averaged under {gpu.idle_utilisation_percent}% for "
                      f"{gpu.idle_minutes} minutes with more replicas than its minimum: capacity is paid for "
                      "and unused.", "gpus-idle", who),
            ]
        else:
            model_rules.append(_rule(
                "NeuroDockQueueDepthHigh",
                f'sum({m.LLAMACPP_DEFERRED.name}{{namespace="{t.namespace}", pod=~"{t.deployment}-.*"}}) '
                f"> {t.queue_depth}", "5m", "warning",
                f"Model {t.served_name}: more than {t.queue_depth} requests waiting",
                "Requests queue faster than replicas serve them.", "queue-depth-high", who))
    groups = [{"name": "neurodock-gpu", "rules": gpu_rules}]
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
    gpu: GpuThresholds = GpuThresholds()
    """GPU thresholds."""


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
        ))
        prometheus_rule(f"{name}-rules", namespace=args.namespace, groups=groups, parent=self, crds=args.crds)
        self.register_outputs({})
