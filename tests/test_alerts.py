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
from components.monitoring.alerts import Agent, GpuThresholds, ModelTarget, rule_groups
from tests.conftest import SHIPPED_STACKS, selectors

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None and not os.environ.get("CI"),
    reason="promtool not installed (Debian package 'prometheus'); .ci/run installs it",
)

NS = "neurodock-serving"
SLOW = ModelTarget(served_name="org/slow", engine="vllm", namespace=NS, deployment="slow-server-abc12345",
                   min_replicas=1, ttft_p95_seconds=2.0, queue_depth=10, kv_cache_usage=0.9)
FAST = ModelTarget(served_name="org/fast", engine="vllm", namespace=NS, deployment="fast-server-def67890",
                   min_replicas=1, ttft_p95_seconds=2.0, queue_depth=10, kv_cache_usage=0.9)
CPU = ModelTarget(served_name="tiny", engine="llamacpp", namespace=NS, deployment="tiny-server-0a1b2c3d",
                  min_replicas=1, ttft_p95_seconds=2.0, queue_depth=10, kv_cache_usage=0.9)
AGENTS = [Agent(title="NVIDIA device plugin", namespace="nvidia-device-plugin", daemon_set="plugin-1"),
          Agent(title="DCGM exporter", namespace="nvidia-dcgm-exporter", daemon_set="dcgm-1")]


def groups() -> list[dict]:
    return rule_groups([SLOW, FAST, CPU], GpuThresholds(), AGENTS)


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
        "NeuroDockGpuXidError", "NeuroDockGpuMemoryNearFull", "NeuroDockNVIDIAdevicepluginDown",
        "NeuroDockDCGMexporterDown", "NeuroDockModelServerDown", "NeuroDockTtftOverSlo", "NeuroDockQueueDepthHigh",
        "NeuroDockKvCacheNearFull", "NeuroDockGpusIdleAboveMinReplicas",
    }


def test_every_rule_uses_only_registered_metrics():
    for group in groups():
        for rule in group["rules"]:
            assert selectors(rule["expr"]) <= metrics.KNOWN_SERIES, rule["alert"]


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
    document["config"]["neurodock:models"][0]["slo"] = {"ttftP95Seconds": 0.75, "queueDepth": 3}
    plan = run_plan(load_stack_file("test", write_stack(document)))
    [rule] = [r.manifest for r in plan.manifests if r.manifest["kind"] == "PrometheusRule"]
    exprs = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert exprs["NeuroDockTtftOverSlo"].endswith("> 0.75")
    assert exprs["NeuroDockQueueDepthHigh"].endswith("> 3")


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


def _unit_tests() -> list[dict]:
    r = {name: rules for name, rules in rules_by_alert().items()}
    by_model = {name: {rule["labels"].get("model"): rule for rule in rules} for name, rules in r.items()}
    gpu = {"Hostname": "node-1", "gpu": "0", "modelName": "NVIDIA L4"}
    dep = f'namespace="{NS}", deployment="{SLOW.deployment}"'
    fast_dep = f'namespace="{NS}", deployment="{FAST.deployment}"'
    return [
        {   # XID: fires as soon as the driver reports one; silent while the value is 0.
            "interval": "1m",
            "input_series": [
                {"series": 'DCGM_FI_DEV_XID_ERRORS{Hostname="node-1", gpu="0", modelName="NVIDIA L4"}',
                 "values": "0 0 43 43 43"},
                {"series": 'DCGM_FI_DEV_XID_ERRORS{Hostname="node-2", gpu="0", modelName="NVIDIA L4"}',
                 "values": "0x4"},
            ],
            "alert_rule_test": [
                {"eval_time": "1m", "alertname": "NeuroDockGpuXidError", "exp_alerts": []},
                {"eval_time": "3m", "alertname": "NeuroDockGpuXidError",
                 "exp_alerts": [_alert(r["NeuroDockGpuXidError"][0], gpu, "43")]},
            ],
        },
        {   # Memory: a GPU 98% full for over 10 minutes fires; one 43% full does not.
            "interval": "1m",
            "input_series": [
                {"series": 'DCGM_FI_DEV_FB_USED{Hostname="node-1", gpu="0"}', "values": "22500x20"},
                {"series": 'DCGM_FI_DEV_FB_FREE{Hostname="node-1", gpu="0"}', "values": "450x20"},
                {"series": 'DCGM_FI_DEV_FB_USED{Hostname="node-2", gpu="0"}', "values": "10000x20"},
                {"series": 'DCGM_FI_DEV_FB_FREE{Hostname="node-2", gpu="0"}', "values": "13000x20"},
            ],
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": "NeuroDockGpuMemoryNearFull", "exp_alerts": []},
                {"eval_time": "15m", "alertname": "NeuroDockGpuMemoryNearFull",
                 "exp_alerts": [_alert(r["NeuroDockGpuMemoryNearFull"][0], {"Hostname": "node-1", "gpu": "0"})]},
            ],
        },
        {   # Node agents: the plugin is ready on 1 of 2 GPU nodes (fires); DCGM on 2 of 2 (silent).
            "interval": "1m",
            "input_series": [
                {"series": 'kube_daemonset_status_number_ready{namespace="nvidia-device-plugin", daemonset="plugin-1"}',
                 "values": "1x20"},
                {"series": 'kube_daemonset_status_desired_number_scheduled{namespace="nvidia-device-plugin", '
                           'daemonset="plugin-1"}', "values": "2x20"},
                {"series": 'kube_daemonset_status_number_ready{namespace="nvidia-dcgm-exporter", daemonset="dcgm-1"}',
                 "values": "2x20"},
                {"series": 'kube_daemonset_status_desired_number_scheduled{namespace="nvidia-dcgm-exporter", '
                           'daemonset="dcgm-1"}', "values": "2x20"},
            ],
            "alert_rule_test": [
                {"eval_time": "15m", "alertname": "NeuroDockNVIDIAdevicepluginDown",
                 "exp_alerts": [_alert(r["NeuroDockNVIDIAdevicepluginDown"][0],
                                       {"namespace": "nvidia-device-plugin", "daemonset": "plugin-1"})]},
                {"eval_time": "15m", "alertname": "NeuroDockDCGMexporterDown", "exp_alerts": []},
            ],
        },
        {   # Model servers: 'slow' has no available replica (fires after 5m); 'fast' has one.
            "interval": "1m",
            "input_series": [
                {"series": f"kube_deployment_status_replicas_available{{{dep}}}", "values": "0x10"},
                {"series": f"kube_deployment_spec_replicas{{{dep}}}", "values": "1x10"},
                {"series": f"kube_deployment_status_replicas_available{{{fast_dep}}}", "values": "1x10"},
                {"series": f"kube_deployment_spec_replicas{{{fast_dep}}}", "values": "1x10"},
            ],
            "alert_rule_test": [
                {"eval_time": "3m", "alertname": "NeuroDockModelServerDown", "exp_alerts": []},
                {"eval_time": "8m", "alertname": "NeuroDockModelServerDown", "exp_alerts": [
                    _alert(by_model["NeuroDockModelServerDown"]["org/slow"],
                           {"namespace": NS, "deployment": SLOW.deployment})]},
            ],
        },
        {   # TTFT: every 'slow' request takes 1-5 s (p95 4.8 s > 2 s); 'fast' ones under 0.5 s.
            "interval": "1m",
            "input_series": [
                {"series": 'vllm:time_to_first_token_seconds_bucket{model_name="org/slow", le="0.5"}',
                 "values": "0x30"},
                {"series": 'vllm:time_to_first_token_seconds_bucket{model_name="org/slow", le="1"}',
                 "values": "0x30"},
                {"series": 'vllm:time_to_first_token_seconds_bucket{model_name="org/slow", le="5"}',
                 "values": "0+60x30"},
                {"series": 'vllm:time_to_first_token_seconds_bucket{model_name="org/slow", le="+Inf"}',
                 "values": "0+60x30"},
                {"series": 'vllm:time_to_first_token_seconds_bucket{model_name="org/fast", le="0.5"}',
                 "values": "0+60x30"},
                {"series": 'vllm:time_to_first_token_seconds_bucket{model_name="org/fast", le="+Inf"}',
                 "values": "0+60x30"},
            ],
            "alert_rule_test": [
                {"eval_time": "8m", "alertname": "NeuroDockTtftOverSlo", "exp_alerts": []},
                {"eval_time": "20m", "alertname": "NeuroDockTtftOverSlo",
                 "exp_alerts": [_alert(by_model["NeuroDockTtftOverSlo"]["org/slow"], {})]},
            ],
        },
        {   # Queue: 'slow' has 20 waiting (fires after 5m), 'fast' 2; llama.cpp 'tiny' has 15 deferred.
            "interval": "1m",
            "input_series": [
                {"series": 'vllm:num_requests_waiting{model_name="org/slow"}', "values": "20x10"},
                {"series": 'vllm:num_requests_waiting{model_name="org/fast"}', "values": "2x10"},
                {"series": f'llamacpp:requests_deferred{{namespace="{NS}", pod="{CPU.deployment}-5d9f-x2"}}',
                 "values": "15x10"},
            ],
            "alert_rule_test": [
                {"eval_time": "3m", "alertname": "NeuroDockQueueDepthHigh", "exp_alerts": []},
                {"eval_time": "8m", "alertname": "NeuroDockQueueDepthHigh", "exp_alerts": [
                    _alert(by_model["NeuroDockQueueDepthHigh"]["org/slow"], {}),
                    _alert(by_model["NeuroDockQueueDepthHigh"]["tiny"], {}),
                ]},
            ],
        },
        {   # KV cache: 'slow' at 95% (fires after 10m), 'fast' at 50%.
            "interval": "1m",
            "input_series": [
                {"series": 'vllm:kv_cache_usage_perc{model_name="org/slow"}', "values": "0.95x20"},
                {"series": 'vllm:kv_cache_usage_perc{model_name="org/fast"}', "values": "0.5x20"},
            ],
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": "NeuroDockKvCacheNearFull", "exp_alerts": []},
                {"eval_time": "15m", "alertname": "NeuroDockKvCacheNearFull",
                 "exp_alerts": [_alert(by_model["NeuroDockKvCacheNearFull"]["org/slow"], {})]},
            ],
        },
        {   # Cost: 'slow' runs 3 replicas (min 1) at 1% GPU for an hour (fires); 'fast' runs its
            # minimum of 1 replica idle (silent: it cannot scale lower).
            "interval": "1m",
            "input_series": [
                {"series": f'DCGM_FI_DEV_GPU_UTIL{{namespace="{NS}", pod="{SLOW.deployment}-7c9d-a1"}}',
                 "values": "1x70"},
                {"series": f"kube_deployment_spec_replicas{{{dep}}}", "values": "3x70"},
                {"series": f'DCGM_FI_DEV_GPU_UTIL{{namespace="{NS}", pod="{FAST.deployment}-5b8c-b2"}}',
                 "values": "1x70"},
                {"series": f"kube_deployment_spec_replicas{{{fast_dep}}}", "values": "1x70"},
            ],
            "alert_rule_test": [
                {"eval_time": "10m", "alertname": "NeuroDockGpusIdleAboveMinReplicas", "exp_alerts": []},
                {"eval_time": "60m", "alertname": "NeuroDockGpusIdleAboveMinReplicas",
                 "exp_alerts": [_alert(by_model["NeuroDockGpusIdleAboveMinReplicas"]["org/slow"], {})]},
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
