"""Alert rules: valid for Prometheus (``promtool check rules``) and behaving as meant on synthetic
series (``promtool test rules``): each alert fires when it should and stays silent otherwise.

promtool comes from Debian's ``prometheus`` package, which ``.ci/run`` installs. Without it these
tests skip locally, and fail under CI, where a skip would hide a broken rule.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from components.monitoring import metrics
from components.monitoring.alerts import Agent, GpuPool, GpuThresholds, ModelTarget, rule_groups
from infra.config import AlertThresholds
from tests import scrape
from tests.conftest import SHIPPED_STACKS, selectors

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None and not os.environ.get("CI"),
    reason="promtool not installed (Debian package 'prometheus'); .ci/run installs it",
)

NS = "neurodock-serving"
SLOW = ModelTarget(served_name="org/slow", engine="vllm", namespace=NS, deployment="slow-server-abc12345",
                   min_replicas=1, ttft_seconds=2.5, availability=0.99, queue_depth=10, kv_cache_usage=0.9,
                   route="slow")
FAST = ModelTarget(served_name="org/fast", engine="vllm", namespace=NS, deployment="fast-server-def67890",
                   min_replicas=1, ttft_seconds=2.5, availability=0.99, queue_depth=10, kv_cache_usage=0.9)
CPU = ModelTarget(served_name="tiny", engine="llamacpp", namespace=NS, deployment="tiny-server-0a1b2c3d",
                  min_replicas=1, ttft_seconds=2.5, availability=0.99, queue_depth=10, kv_cache_usage=0.9)
AGENTS = [Agent(title="NVIDIA device plugin", namespace="nvidia-device-plugin", daemon_set="plugin-1"),
          Agent(title="DCGM exporter", namespace="nvidia-dcgm-exporter", daemon_set="dcgm-1")]
POOLS = [GpuPool(name="gpu-l4", expected=1)]


_DEFAULTS = AlertThresholds()
THRESHOLDS = GpuThresholds(memory_usage=_DEFAULTS.gpu_memory_usage,
                           idle_utilisation_percent=_DEFAULTS.gpu_idle_utilisation_percent,
                           idle_minutes=_DEFAULTS.gpu_idle_minutes)
"""The config's defaults (``monitoring.alerts``), their one home."""


def groups() -> list[dict]:
    return rule_groups([SLOW, FAST, CPU], THRESHOLDS, AGENTS, POOLS)


def rules_by_alert() -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for group in groups():
        for rule in group["rules"]:
            out.setdefault(rule["alert"], []).append(rule)
    return out


def test_every_alert_has_summary_description_runbook_and_severity():
    for group in groups():
        for rule in group["rules"]:
            assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}, rule["alert"]
            assert rule["annotations"]["runbook_url"].startswith("https://")
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}


def test_the_required_alerts_exist():
    assert set(rules_by_alert()) == {
        "NeuroDockGpuXidError", "NeuroDockGpuXidApplicationError", "NeuroDockGpuMemoryNearFull",
        "NeuroDockNVIDIAdevicepluginDown", "NeuroDockDCGMexporterDown", "NeuroDockGpusNotAdvertised",
        "NeuroDockModelServerDown", "NeuroDockTtftBudgetBurn", "NeuroDockErrorBudgetBurn", "NeuroDockQueueDepthHigh",
        "NeuroDockKvCacheNearFull", "NeuroDockGpusIdleAboveMinReplicas",
        "NeuroDockEndpointPickerDown", "NeuroDockEndpointPickerSaturated", "NeuroDockRequestsDropped",
    }
    # No info alert: the chart's InfoInhibitor mutes them wherever nothing worse fires.
    assert {r["labels"]["severity"] for rules in rules_by_alert().values() for r in rules} == {"critical", "warning"}
    # Burn-rate alerts page (critical) on a fast burn and open a ticket (warning) on a slow one.
    assert {r["labels"]["severity"] for r in rules_by_alert()["NeuroDockTtftBudgetBurn"]} == {"critical", "warning"}
    # Only a model behind the gateway has an error-rate SLO: the gateway counts its errors.
    assert {r["labels"]["model"] for r in rules_by_alert()["NeuroDockErrorBudgetBurn"]} == {"org/slow"}


def test_every_rule_uses_only_registered_metrics():
    for group in groups():
        for rule in group["rules"]:
            assert selectors(rule["expr"]) <= metrics.KNOWN_SERIES, rule["alert"]


def test_every_rule_selects_only_what_the_pinned_exporters_expose():
    """Metric and label names against the golden scrape fixtures, the labels annotations print included."""
    for group in groups():
        for rule in group["rules"]:
            assert scrape.problems(rule["expr"]) == [], rule["alert"]
            printed = set(re.findall(r"\$labels\.(\w+)", str(rule["annotations"])))
            carried = {label for name in selectors(rule["expr"]) for label in scrape.labels_of(name)}
            assert printed <= carried, (rule["alert"], printed - carried)


@pytest.mark.parametrize(("expr", "defect"), [
    # dcgm-exporter 4.8.3 renamed Hostname to hostname: per-node grouping would collapse.
    ("max by (Hostname) (DCGM_FI_DEV_GPU_UTIL)", "groups by 'Hostname'"),
    # The last-XID gauge never resets; NeuroDock's counters file does not even collect it.
    ("DCGM_FI_DEV_XID_ERRORS > 0", "DCGM_FI_DEV_XID_ERRORS: no pinned exporter exposes it"),
    # A variant is a label of the model servers' metrics, not of the GPUs'.
    ('DCGM_FI_DEV_GPU_UTIL{variant="stable"}', "selects label 'variant'"),
    # The GPU resource is nvidia_com_gpu in kube-state-metrics, and the pool a node label it only has allow-listed.
    ('kube_node_status_allocatable{gpu="1"}', "selects label 'gpu'"),
    ('sum by (pool) (kube_node_labels)', "groups by 'pool'"),
    # Envoy names its clusters' response classes envoy_response_code_class.
    ('envoy_cluster_upstream_rq_xx{response_code_class="5"}', "selects label 'response_code_class'"),
])
def test_the_fixture_check_catches_each_class_of_defect(expr, defect):
    assert any(defect in p for p in scrape.problems(expr)), scrape.problems(expr)


def test_every_registered_metric_is_in_its_exporters_fixture():
    assert [name for m in metrics.REGISTRY.values() for name in m.series() if not scrape.exposed(name)] == []


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_each_stack_installs_a_rule_for_each_model(shipped_plans, stack):
    plan = shipped_plans[stack]
    [rule] = [r.manifest for r in plan.manifests if r.manifest["kind"] == "PrometheusRule"]
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    downs = [r for r in alerts if r["alert"] == "NeuroDockModelServerDown"]
    assert {r["labels"]["model"] for r in downs} == {m.model_name for m in plan.config.models}
    # The rules name the real (generated) Deployment names.
    deployments = {r.manifest["metadata"]["name"] for r in plan.manifests if r.manifest["kind"] == "Deployment"
                   and r.manifest["metadata"]["labels"].get("neurodock.io/variant") == "stable"}
    assert {re.search(r'deployment="([^"]+)"', r["expr"]).group(1) for r in downs} == deployments


def test_slo_thresholds_come_from_config(write_stack):
    from infra.plan.engine import run_plan
    from infra.plan.stackfile import load_stack_file
    from tests.conftest import stack_document

    document = stack_document("staging")
    document["config"]["neurodock:models"][0]["slo"] = {"ttftP95Seconds": 0.75, "queueDepth": 3,
                                                         "availability": 0.995}
    plan = run_plan(load_stack_file("test", write_stack(document)))
    [rule] = [r.manifest for r in plan.manifests if r.manifest["kind"] == "PrometheusRule"]
    exprs = {(r["alert"], r["labels"]["severity"]): r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]
             if r["labels"].get("model", "").startswith("meta-llama/Llama-3.1")}
    assert 'le="0.75"' in exprs["NeuroDockTtftBudgetBurn", "critical"]
    # A 99.5% objective leaves a 0.5% budget: a page at 14.4 times that rate over an hour.
    assert "> 0.072 and" in exprs["NeuroDockErrorBudgetBurn", "critical"]
    assert exprs["NeuroDockQueueDepthHigh", "warning"].endswith("> 3")


# ---------------------------------------------------------------------------------------------
# promtool
# ---------------------------------------------------------------------------------------------


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    if PROMTOOL is None:
        pytest.fail("promtool is required under CI (install Debian's 'prometheus' package)")
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, check=False)


@needs_promtool
@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_promtool_checks_each_stacks_rules(shipped_plans, stack, tmp_path):
    [rule] = [r.manifest for r in shipped_plans[stack].manifests if r.manifest["kind"] == "PrometheusRule"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    result = _promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def _alert(rule: dict, labels: dict[str, str], value: str = "") -> dict:
    """What promtool should report for ``rule`` firing on a series with ``labels``."""

    def render(text: str) -> str:
        text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)
        return text.replace("{{ $value }}", value)

    return {"exp_labels": {**labels, **rule["labels"]},
            "exp_annotations": {k: render(v) for k, v in rule["annotations"].items()}}


def fixture(source: str, name: str, where: dict[str, str] | None = None, /, **labels: str) -> str:
    """A series of the exporter's golden fixture (its real label names and values), with ``labels``
    set: what promtool feeds the rules."""
    sample = next(s for s in scrape.samples(source) if s.name == name and (where or {}).items() <= s.labels.items())
    return sample.series(**labels)


def gpu_labels(gpu: str) -> dict[str, str]:
    """The labels an alert on one GPU keeps: the exporter's own, as the fixture has them."""
    sample = next(s for s in scrape.samples("dcgm") if s.labels.get("gpu") == gpu)
    return {k: sample.labels[k] for k in ("hostname", "gpu", "modelName")}


def vllm(name: str, model: str, variant: str = "stable", **labels: str) -> str:
    return fixture("vllm", name, None, model_name=model, variant=variant, namespace=NS, **labels)


def _unit_tests() -> list[dict]:
    r = rules_by_alert()
    by_model = {name: {(rule["labels"].get("model"), rule["labels"]["severity"]): rule for rule in rules}
                for name, rules in r.items()}
    xid_total = "DCGM_EXP_XID_ERRORS_TOTAL"
    idle_gpu = next(s.labels for s in scrape.samples("dcgm") if s.labels.get("gpu") == "1")
    dep = {"namespace": NS, "deployment": SLOW.deployment}
    fast_dep = {"namespace": NS, "deployment": FAST.deployment}
    ksm_dep = "kube_deployment_status_replicas_available"
    stable_cluster = 'httproute/neurodock-serving/slow/rule/0'
    canary_cluster = 'httproute/neurodock-serving/slow/rule/1'
    envoy = "envoy_cluster_upstream_rq_xx"
    ttft = "vllm:time_to_first_token_seconds_bucket"
    return [
        {   # XID: a hardware XID appears (the series is born at 1) and pages for its window; an
            # application XID (the fixture's 13 on GPU 0) counts again and is only info.
            "interval": "1m",
            "input_series": [
                {"series": fixture("dcgm", xid_total, {"gpu": "0"}), "values": "2x5 3x25"},
                {"series": scrape.Sample(xid_total, {**idle_gpu, "xid": "79"}, "").series(), "values": "_x14 1x15"},
            ],
            "alert_rule_test": [
                {"eval_time": "12m", "alertname": "NeuroDockGpuXidApplicationError", "exp_alerts": [
                    _alert(r["NeuroDockGpuXidApplicationError"][0], {**gpu_labels("0"), "xid": "13"})]},
                {"eval_time": "12m", "alertname": "NeuroDockGpuXidError", "exp_alerts": []},
                {"eval_time": "18m", "alertname": "NeuroDockGpuXidError", "exp_alerts": [
                    _alert(r["NeuroDockGpuXidError"][0], {**gpu_labels("1"), "xid": "79"})]},
                # It never pages forever: once the window has passed, the XID is history.
                {"eval_time": "29m", "alertname": "NeuroDockGpuXidError", "exp_alerts": []},
                {"eval_time": "29m", "alertname": "NeuroDockGpuXidApplicationError", "exp_alerts": []},
            ],
        },
        {   # An old XID stays history when the GPU's pod changes (the series' pod labels change) and
            # after a scrape gap of 8 minutes.
            "interval": "1m",
            "input_series": [
                {"series": fixture("dcgm", xid_total, {"gpu": "0"}, xid="79"), "values": "1x20"},
                {"series": fixture("dcgm", xid_total, {"gpu": "0"}, xid="79", pod="llama-3-1-8b-server-new-a1"),
                 "values": "_x20 1x5 _x8 1x10"},
            ],
            "alert_rule_test": [
                {"eval_time": "24m", "alertname": "NeuroDockGpuXidError", "exp_alerts": []},
                {"eval_time": "40m", "alertname": "NeuroDockGpuXidError", "exp_alerts": []},
            ],
        },
        {   # Memory: GPU 0 98% full for over 10 minutes fires; GPU 1 (idle) does not.
            "interval": "1m",
            "input_series": [
                {"series": fixture("dcgm", "DCGM_FI_DEV_FB_USED", {"gpu": "0"}), "values": "22500x20"},
                {"series": fixture("dcgm", "DCGM_FI_DEV_FB_FREE", {"gpu": "0"}), "values": "450x20"},
                {"series": fixture("dcgm", "DCGM_FI_DEV_FB_USED", {"gpu": "1"}), "values": "0x20"},
                {"series": fixture("dcgm", "DCGM_FI_DEV_FB_FREE", {"gpu": "1"}), "values": "22588x20"},
            ],
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": "NeuroDockGpuMemoryNearFull", "exp_alerts": []},
                {"eval_time": "15m", "alertname": "NeuroDockGpuMemoryNearFull",
                 "exp_alerts": [_alert(r["NeuroDockGpuMemoryNearFull"][0], gpu_labels("0"))]},
            ],
        },
        {   # Node agents: the plugin is ready on 1 of 2 GPU nodes (fires); DCGM on 2 of 2 (silent).
            "interval": "1m",
            "input_series": [
                {"series": fixture("kube-state-metrics", "kube_daemonset_status_number_ready",
                                   namespace="nvidia-device-plugin", daemonset="plugin-1"), "values": "1x20"},
                {"series": fixture("kube-state-metrics", "kube_daemonset_status_desired_number_scheduled",
                                   namespace="nvidia-device-plugin", daemonset="plugin-1"), "values": "2x20"},
                {"series": fixture("kube-state-metrics", "kube_daemonset_status_number_ready",
                                   namespace="nvidia-dcgm-exporter", daemonset="dcgm-1"), "values": "2x20"},
                {"series": fixture("kube-state-metrics", "kube_daemonset_status_desired_number_scheduled",
                                   namespace="nvidia-dcgm-exporter", daemonset="dcgm-1"), "values": "2x20"},
            ],
            "alert_rule_test": [
                {"eval_time": "15m", "alertname": "NeuroDockNVIDIAdevicepluginDown",
                 "exp_alerts": [_alert(r["NeuroDockNVIDIAdevicepluginDown"][0],
                                       {"namespace": "nvidia-device-plugin", "daemonset": "plugin-1"})]},
                {"eval_time": "15m", "alertname": "NeuroDockDCGMexporterDown", "exp_alerts": []},
            ],
        },
        {   # GPUs advertised: the fixture's node advertises its 1 GPU (silent); a second node of the pool
            # advertises none, its plugin Running but broken (fires with 0).
            "interval": "1m",
            "input_series": [
                {"series": fixture("kube-state-metrics", "kube_node_labels"), "values": "1x20"},
                {"series": fixture("kube-state-metrics", "kube_node_status_allocatable",
                                   {"resource": "nvidia_com_gpu"}), "values": "1x20"},
                {"series": fixture("kube-state-metrics", "kube_node_labels", node="gke-prod-gpu-l4-1a2b3c4d-q9w8"),
                 "values": "1x20"},
            ],
            "alert_rule_test": [
                {"eval_time": "10m", "alertname": "NeuroDockGpusNotAdvertised", "exp_alerts": []},
                {"eval_time": "18m", "alertname": "NeuroDockGpusNotAdvertised", "exp_alerts": [
                    _alert(r["NeuroDockGpusNotAdvertised"][0], {"node": "gke-prod-gpu-l4-1a2b3c4d-q9w8"}, "0")]},
            ],
        },
        {   # Model servers: 'slow' has no available replica (fires after 5m); 'fast' has one.
            "interval": "1m",
            "input_series": [
                {"series": fixture("kube-state-metrics", ksm_dep, **dep), "values": "0x10"},
                {"series": fixture("kube-state-metrics", "kube_deployment_spec_replicas", **dep), "values": "1x10"},
                {"series": fixture("kube-state-metrics", ksm_dep, **fast_dep), "values": "1x10"},
                {"series": fixture("kube-state-metrics", "kube_deployment_spec_replicas", **fast_dep),
                 "values": "1x10"},
            ],
            "alert_rule_test": [
                {"eval_time": "3m", "alertname": "NeuroDockModelServerDown", "exp_alerts": []},
                {"eval_time": "8m", "alertname": "NeuroDockModelServerDown", "exp_alerts": [
                    _alert(by_model["NeuroDockModelServerDown"]["org/slow", "critical"], dep)]},
            ],
        },
        {   # Error budget: 'slow''s stable backend fails 1 request in 4 for 2 hours (page); its canary's
            # errors do not count against the stable version.
            "interval": "1m",
            "input_series": [
                {"series": fixture("envoy", envoy, {"envoy_response_code_class": "2"},
                                   envoy_cluster_name=stable_cluster), "values": "0+30x130"},
                {"series": fixture("envoy", envoy, {"envoy_response_code_class": "5"},
                                   envoy_cluster_name=stable_cluster), "values": "0+10x130"},
                {"series": fixture("envoy", envoy, {"envoy_response_code_class": "5"},
                                   envoy_cluster_name=canary_cluster), "values": "0+100x130"},
            ],
            "alert_rule_test": [
                {"eval_time": "1m", "alertname": "NeuroDockErrorBudgetBurn", "exp_alerts": []},  # still pending
                # A page and a ticket (Alertmanager's inhibition keeps the ticket quiet while the page fires).
                {"eval_time": "70m", "alertname": "NeuroDockErrorBudgetBurn", "exp_alerts": [
                    _alert(by_model["NeuroDockErrorBudgetBurn"]["org/slow", severity], {})
                    for severity in ("critical", "warning")]},
            ],
        },
        {   # TTFT budget: every stable 'slow' request waits 2.5-5 s (all over the 2.5 s objective) for 2 hours:
            # a page; the canary's fast requests and 'fast' model's do not offset it.
            "interval": "1m",
            "input_series": [
                {"series": vllm(ttft, "org/slow", le="2.5"), "values": "0x130"},
                {"series": vllm(ttft, "org/slow", le="+Inf"), "values": "0+60x130"},
                {"series": vllm("vllm:time_to_first_token_seconds_count", "org/slow"), "values": "0+60x130"},
                {"series": vllm(ttft, "org/slow", "canary", le="2.5"), "values": "0+600x130"},
                {"series": vllm(ttft, "org/slow", "canary", le="+Inf"), "values": "0+600x130"},
                {"series": vllm("vllm:time_to_first_token_seconds_count", "org/slow", "canary"),
                 "values": "0+600x130"},
                {"series": vllm(ttft, "org/fast", le="2.5"), "values": "0+60x130"},
                {"series": vllm("vllm:time_to_first_token_seconds_count", "org/fast"), "values": "0+60x130"},
            ],
            "alert_rule_test": [
                {"eval_time": "1m", "alertname": "NeuroDockTtftBudgetBurn", "exp_alerts": []},  # still pending
                {"eval_time": "70m", "alertname": "NeuroDockTtftBudgetBurn", "exp_alerts": [
                    _alert(by_model["NeuroDockTtftBudgetBurn"]["org/slow", severity], {})
                    for severity in ("critical", "warning")]},
            ],
        },
        {   # Queue: 'slow' has 20 waiting (fires after 5m), 'fast' 2; llama.cpp 'tiny' has 15 deferred.
            "interval": "1m",
            "input_series": [
                {"series": vllm("vllm:num_requests_waiting", "org/slow"), "values": "20x10"},
                {"series": vllm("vllm:num_requests_waiting", "org/fast"), "values": "2x10"},
                {"series": fixture("llamacpp", "llamacpp:requests_deferred", namespace=NS,
                                   pod=f"{CPU.deployment}-5d9f-x2"), "values": "15x10"},
            ],
            "alert_rule_test": [
                {"eval_time": "3m", "alertname": "NeuroDockQueueDepthHigh", "exp_alerts": []},
                {"eval_time": "8m", "alertname": "NeuroDockQueueDepthHigh", "exp_alerts": [
                    _alert(by_model["NeuroDockQueueDepthHigh"]["org/slow", "warning"], {}),
                    _alert(by_model["NeuroDockQueueDepthHigh"]["tiny", "warning"], {}),
                ]},
            ],
        },
        {   # The picker of 'slow' (the only model with a route): down for 3m (fires after 2m); its pool
            # saturated with 2 ready replicas for 15m (fires after 10m); held requests evicted (fires after 5m).
            "interval": "1m",
            "input_series": [
                {"series": fixture("kube-state-metrics", "kube_deployment_status_replicas_available", None,
                                   namespace=NS, deployment="slow-epp"), "values": "1 0x20"},
                {"series": fixture("epp", "llm_d_epp_flow_control_pool_saturation", inference_pool="slow",
                                   namespace=NS), "values": "1.2x20"},
                {"series": fixture("epp", "llm_d_epp_ready_endpoints", name="slow", namespace=NS), "values": "2x20"},
                {"series": fixture("epp", "llm_d_epp_flow_control_requests_total", {"outcome": "EvictedTTL"},
                                   inference_pool="slow", namespace=NS), "values": "0+2x20"},
                {"series": fixture("epp", "llm_d_epp_flow_control_requests_total", {"outcome": "Dispatched"},
                                   inference_pool="fast", namespace=NS), "values": "0+50x20"},
            ],
            "alert_rule_test": [
                {"eval_time": "1m", "alertname": "NeuroDockEndpointPickerDown", "exp_alerts": []},
                {"eval_time": "4m", "alertname": "NeuroDockEndpointPickerDown",
                 "exp_alerts": [_alert(by_model["NeuroDockEndpointPickerDown"]["org/slow", "critical"],
                                       {"namespace": NS, "deployment": "slow-epp"})]},
                {"eval_time": "5m", "alertname": "NeuroDockEndpointPickerSaturated", "exp_alerts": []},
                {"eval_time": "12m", "alertname": "NeuroDockEndpointPickerSaturated",
                 "exp_alerts": [_alert(by_model["NeuroDockEndpointPickerSaturated"]["org/slow", "warning"], {})]},
                {"eval_time": "3m", "alertname": "NeuroDockRequestsDropped", "exp_alerts": []},
                {"eval_time": "12m", "alertname": "NeuroDockRequestsDropped",
                 "exp_alerts": [_alert(by_model["NeuroDockRequestsDropped"]["org/slow", "warning"], {})]},
            ],
        },
        {   # KV cache: 'slow' at 95% (fires after 10m), 'fast' at 50%.
            "interval": "1m",
            "input_series": [
                {"series": vllm("vllm:kv_cache_usage_perc", "org/slow"), "values": "0.95x20"},
                {"series": vllm("vllm:kv_cache_usage_perc", "org/fast"), "values": "0.5x20"},
            ],
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": "NeuroDockKvCacheNearFull", "exp_alerts": []},
                {"eval_time": "15m", "alertname": "NeuroDockKvCacheNearFull",
                 "exp_alerts": [_alert(by_model["NeuroDockKvCacheNearFull"]["org/slow", "warning"], {})]},
            ],
        },
        {   # Cost: 'slow' runs 3 replicas (min 1) at 1% GPU for an hour (fires); 'fast' runs its
            # minimum of 1 replica idle (silent: it cannot scale lower).
            "interval": "1m",
            "input_series": [
                {"series": fixture("dcgm", "DCGM_FI_DEV_GPU_UTIL", {"gpu": "0"}, pod=f"{SLOW.deployment}-7c9d-a1"),
                 "values": "1x70"},
                {"series": fixture("kube-state-metrics", "kube_deployment_spec_replicas", **dep), "values": "3x70"},
                {"series": fixture("dcgm", "DCGM_FI_DEV_GPU_UTIL", {"gpu": "0"}, pod=f"{FAST.deployment}-5b8c-b2"),
                 "values": "1x70"},
                {"series": fixture("kube-state-metrics", "kube_deployment_spec_replicas", **fast_dep),
                 "values": "1x70"},
            ],
            "alert_rule_test": [
                {"eval_time": "10m", "alertname": "NeuroDockGpusIdleAboveMinReplicas", "exp_alerts": []},
                {"eval_time": "60m", "alertname": "NeuroDockGpusIdleAboveMinReplicas",
                 "exp_alerts": [_alert(by_model["NeuroDockGpusIdleAboveMinReplicas"]["org/slow", "warning"], {})]},
            ],
        },
    ]


@needs_promtool
def test_promtool_unit_tests_each_alert_fires_when_it_should_and_not_otherwise(tmp_path):
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups()}))
    assert _promtool("check", "rules", "rules.yaml", cwd=tmp_path).returncode == 0
    tests = _unit_tests()
    tested = {t["alertname"] for case in tests for t in case["alert_rule_test"]}
    assert tested == set(rules_by_alert()), "every alert needs a promtool test"
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}, sort_keys=False))
    result = _promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_runbook_link_has_a_section():
    from infra.plan.stackfile import REPO_ROOT

    sections = set(re.findall(r"^## (\S+)$", (REPO_ROOT / "docs" / "runbooks.md").read_text(), re.M))
    anchors = {r["annotations"]["runbook_url"].rsplit("#", 1)[1] for g in groups() for r in g["rules"]}
    assert anchors <= sections
