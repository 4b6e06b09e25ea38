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
from components.monitoring.cost import NodePrice, cost_groups
from components.monitoring.recording import RECORDED, SLO_WINDOWS
from infra.config import AlertThresholds
from tests import scrape
from tests.conftest import SHIPPED_STACKS, alert_rule, selectors

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None and not os.environ.get("CI"),
    reason="promtool not installed (Debian package 'prometheus'); .ci/run installs it",
)

NS = "neurodock-serving"
SLOW = ModelTarget(served_name="org/slow", engine="vllm", namespace=NS, deployment="slow-server-abc12345",
                   min_replicas=1, ttft_seconds=5, availability=0.99, queue_depth=10, kv_cache_usage=0.9,
                   route="slow")
"""Behind the gateway: its SLIs are the gateway's (the route's cluster, its picker); TTFT a bound of the picker's."""
FAST = ModelTarget(served_name="org/fast", engine="vllm", namespace=NS, deployment="fast-server-def67890",
                   min_replicas=1, ttft_seconds=2.5, availability=0.99, queue_depth=10, kv_cache_usage=0.9)
"""No route: TTFT from vLLM's histogram (a bound of it), no availability SLO."""
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
MIN_REQUESTS = _DEFAULTS.slo_min_requests
DCGM_NS = "nvidia-dcgm-exporter"


PRICES = (NodePrice(pool="gpu-l4", instance_type="g2-standard-16", usd_per_hour=1.2, devices=1),
          NodePrice(pool="system", instance_type="e2-standard-8", usd_per_hour=0.3))
"""Node prices of the cost rules (the program's come from the catalogue: ``infra.cost.node_prices``)."""


def groups(models: tuple[ModelTarget, ...] = (SLOW, FAST, CPU)) -> list[dict]:
    return rule_groups(list(models), THRESHOLDS, AGENTS, POOLS, slo_min_requests=MIN_REQUESTS,
                       gpu_exporter_namespace=DCGM_NS) + cost_groups(PRICES)


def rules_by_alert(models: tuple[ModelTarget, ...] = (SLOW, FAST, CPU)) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for group in groups(models):
        for rule in group["rules"]:
            if "alert" in rule:
                out.setdefault(rule["alert"], []).append(rule)
    return out


def records() -> list[dict]:
    return [rule for group in groups() for rule in group["rules"] if "record" in rule]


def test_every_alert_has_summary_description_runbook_and_severity():
    for rules in rules_by_alert().values():
        for rule in rules:
            assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}, rule["alert"]
            assert rule["annotations"]["runbook_url"].startswith("https://")
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}


def test_the_required_alerts_exist():
    assert set(rules_by_alert()) == {
        "NeuroDockGpuXidError", "NeuroDockGpuXidApplicationError", "NeuroDockGpuMemoryNearFull",
        "NeuroDockNVIDIAdevicepluginDown", "NeuroDockDCGMexporterDown", "NeuroDockGpusNotAdvertised",
        "NeuroDockGpuMetricsMissing",
        "NeuroDockModelServerDown", "NeuroDockTtftBudgetBurn", "NeuroDockErrorBudgetBurn", "NeuroDockQueueDepthHigh",
        "NeuroDockGatewayErrorBudgetBurn", "NeuroDockKvCacheNearFull", "NeuroDockGpusIdleAboveMinReplicas",
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
            known = metrics.KNOWN_SERIES | set(RECORDED)
            assert selectors(rule["expr"]) <= known, rule.get("alert", rule.get("record"))


def test_every_rule_selects_only_what_the_pinned_exporters_expose():
    """Metric and label names (and closed label values) against the golden scrape fixtures, the labels
    annotations print included; recorded series with the labels their rules declare."""
    for group in groups():
        for rule in group["rules"]:
            assert scrape.problems(rule["expr"]) == [], rule.get("alert", rule.get("record"))
            printed = set(re.findall(r"\$labels\.(\w+)", str(rule.get("annotations", ""))))
            carried = {label for name in selectors(rule["expr"]) for label in scrape.labels_of(name)}
            assert printed <= carried, (rule["alert"], printed - carried)


def test_every_recording_rule_writes_a_declared_series_and_every_declared_series_is_written():
    written = {r["record"] for r in records()}
    assert written <= set(RECORDED)
    assert written == set(RECORDED)  # with a routed model, a vLLM model and GPUs, every SLI and energy record
    for rule in records():
        assert set(rule.get("labels", {})) <= RECORDED[rule["record"]].labels, rule["record"]


def test_burn_rate_alerts_wait_no_duration_and_read_recorded_windows():
    """The SRE workbook's multiwindow, multi-burn-rate alerts: no `for`, the short window does the waiting; each
    reads the SLI's recorded ratios and the traffic guard, never a raw 3-day rate."""
    burns = [r for name, rules in rules_by_alert().items() if name.endswith("BudgetBurn") for r in rules]
    assert len(burns) == 2 * 4  # page and ticket: SLOW's availability and TTFT, FAST's TTFT, the gateway's
    for rule in burns:
        assert "for" not in rule, rule["alert"]
        assert selectors(rule["expr"]) <= set(RECORDED), rule["alert"]
        assert f">= {MIN_REQUESTS}" in rule["expr"]
    for window in SLO_WINDOWS:
        assert any(f"ratio_rate{window}{{" in r["expr"] for r in burns), window


def test_every_non_burn_alert_says_how_long_it_waits():
    for name, rules in rules_by_alert().items():
        if not name.endswith("BudgetBurn"):
            assert all("for" in r for r in rules), name


def test_a_model_on_a_mig_pool_gets_no_idle_gpu_alert():
    """The exporter reads no utilisation on MIG instances (0): the idle alert would always fire."""
    from dataclasses import replace

    alerts = rules_by_alert((replace(SLOW, mig=True), FAST))
    assert {r["labels"]["model"] for r in alerts["NeuroDockGpusIdleAboveMinReplicas"]} == {"org/fast"}


def test_a_stack_serving_a_model_from_a_mig_pool_installs_no_idle_gpu_alert_for_it(shipped_plans, write_stack):
    """The program tells the rules which pools are MIG-partitioned: prod's 8B model on whole L4s has the idle alert;
    moved to a MIG-partitioned H100 pool, it has none (and keeps every other alert)."""
    from tests.conftest import plan_with

    def idle_models(plan) -> set[str]:
        rule = alert_rule(plan)
        return {r["labels"]["model"] for g in rule["spec"]["groups"] for r in g["rules"]
                if r.get("alert") == "NeuroDockGpusIdleAboveMinReplicas"}

    llama = "meta-llama/Llama-3.1-8B-Instruct"
    assert llama in idle_models(shipped_plans["prod"])

    def on_mig(config):
        [h100] = [p for p in config["neurodock:nodePools"] if p["name"] == "gpu-h100"]
        h100["gpu"]["sharing"] = {"strategy": "mig", "partitionSize": "3g.40gb"}
        config["neurodock:models"] = [{**m, "pool": "gpu-h100"} for m in config["neurodock:models"]
                                      if m["servedName"] == llama]

    plan = plan_with(write_stack, "prod", on_mig)
    assert idle_models(plan) == set()
    rule = alert_rule(plan)
    assert {r["labels"].get("model") for g in rule["spec"]["groups"] for r in g["rules"]
            if r.get("alert") == "NeuroDockModelServerDown"} == {llama}


def test_the_ttft_sli_is_the_gateways_with_a_route_and_vllms_without():
    by_model = {(r["labels"]["model"], r["record"]): r["expr"] for r in records()
                if r.get("labels", {}).get("slo") == "ttft"}
    slow = by_model["org/slow", "neurodock:slo_errors:ratio_rate1h"]
    assert "llm_d_epp_request_ttft_seconds_bucket" in slow and 'streaming="true"' in slow
    assert "vllm:" not in slow
    assert "vllm:time_to_first_token_seconds_bucket" in by_model["org/fast", "neurodock:slo_errors:ratio_rate1h"]


@pytest.mark.parametrize("expr", [
    'sum(rate(envoy_http_downstream_rq_xx{envoy_http_conn_manager_prefix=~"https?-[0-9]+"}[5m]))',
    'llm_d_epp_request_error_total{error_code=~"ServiceUnavailable|ResourceExhausted"}',
    'llm_d_epp_request_ttft_seconds_bucket{le=~"5|5[.]0"}',
    "sum by (hostname) (max by (hostname, gpu) (DCGM_FI_DEV_POWER_USAGE))",
])
def test_the_fixture_check_passes_each_corrected_query(expr):
    """Each control's fix passes: the checks catch the defect, not the family."""
    assert scrape.problems(expr) == []


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
    # Downstream stats are per connection manager: unscoped, they count every Prometheus scrape and kubelet probe...
    ("sum(rate(envoy_http_downstream_rq_xx[5m]))", "mixes in 'admin', 'eg-ready-http', 'eg-stats-http'"),
    # ...and scoped to the HTTP listener alone, they miss the clients of a TLS gateway (https-10443).
    ('envoy_http_downstream_rq_xx{envoy_http_conn_manager_prefix="http-10080"}', "misses 'https-10443'"),
    # The picker's error codes and outcomes are closed sets (llm-d-router v0.10.0): a typo selects nothing.
    ('llm_d_epp_request_error_total{error_code="Unavailable"}', "error_code 'Unavailable' matches no value"),
    ('llm_d_epp_flow_control_requests_total{outcome="Evicted"}', "outcome 'Evicted' matches no value"),
    # A TTFT objective between the picker's bucket bounds counts nobody exactly (2.5 is vLLM's, not the picker's).
    ('llm_d_epp_request_ttft_seconds_bucket{le="2.5"}', "le '2.5' matches no value"),
    # Time-shared GPUs: power and energy are copied onto every sharing pod; summed, a GPU counts once per pod.
    ("sum by (hostname) (DCGM_FI_DEV_POWER_USAGE)", "sums DCGM_FI_DEV_POWER_USAGE"),
    ("sum(rate(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION[5m]))", "sums DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"),
    # dcgm-exporter 4.9 renames the energy counter (and moves it to joules): the pinned 4.8.4 has the old name.
    ("rate(DCGM_FI_DEV_GPU_ENERGY_JOULES_TOTAL[5m])", "DCGM_FI_DEV_GPU_ENERGY_JOULES_TOTAL: no pinned exporter"),
    # A recorded series has the labels its rule gives it, no others.
    ('neurodock:model_joules_per_token:ratio_rate5m{pod="x"}', "selects label 'pod'"),
])
def test_the_fixture_check_catches_each_class_of_defect(expr, defect):
    assert any(defect in p for p in scrape.problems(expr)), scrape.problems(expr)


def test_every_registered_metric_is_in_its_exporters_fixture():
    assert [name for m in metrics.REGISTRY.values() for name in m.series() if not scrape.exposed(name)] == []


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_each_stack_installs_a_rule_for_each_model(shipped_plans, stack):
    plan = shipped_plans[stack]
    rule = alert_rule(plan)
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
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
    document["config"]["neurodock:models"][0]["slo"] = {"ttftP95Seconds": 0.8, "queueDepth": 3,
                                                         "availability": 0.995}
    document["config"]["neurodock:monitoring"]["alerts"] = {"sloMinRequests": 250}
    plan = run_plan(load_stack_file("test", write_stack(document)))
    rule = alert_rule(plan)
    llama = [r for g in rule["spec"]["groups"] for r in g["rules"]
             if r.get("labels", {}).get("model", "").startswith("meta-llama/Llama-3.1")]
    exprs = {(r["alert"], r["labels"]["severity"]): r["expr"] for r in llama if "alert" in r}
    [ttft] = [r["expr"] for r in llama if r.get("record") == "neurodock:slo_errors:ratio_rate1h"
              and r["labels"]["slo"] == "ttft"]
    # The picker's histogram, at the objective's bound.
    assert 'llm_d_epp_request_ttft_seconds_bucket{' in ttft and 'le="0.8"' in ttft
    assert ">= 250)" in exprs["NeuroDockTtftBudgetBurn", "critical"]
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
    # The alert and recording rules, and the cost rules (a PrometheusRule of their own on a cloud stack).
    groups = [g for r in shipped_plans[stack].manifests if r.manifest["kind"] == "PrometheusRule"
              for g in r.manifest["spec"]["groups"]]
    assert "neurodock-slo" in {g["name"] for g in groups}
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
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


LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
"""The model of the fixtures' pods (vLLM's, the picker's and the GPUs')."""
HOST = "ip-10-0-12-34.eu-west-1.compute.internal"
"""The fixture's GPU node; the DCGM exporter's scrape also names it in ``node`` (components/gpu/dcgm.py)."""


def dcgm(name: str, where: dict[str, str] | None = None, /, **labels: str) -> str:
    """A DCGM exporter series as Prometheus stores it: the fixture's, with the scrape's node and exporter pod."""
    return fixture("dcgm", name, where, node=HOST, **{"exporter_pod": "dcgm-a", **labels})


def _xid_tests(r: dict[str, list[dict]]) -> list[dict]:
    xid_total = "DCGM_EXP_XID_ERRORS_TOTAL"
    temp = "DCGM_FI_DEV_GPU_TEMP"
    new_pod = {"pod": "llama-3-1-8b-server-new-a1"}
    return [
        {   # XID: a hardware XID appears (the series is born at 1, 15 minutes after the exporter started) and
            # pages for its window; an application XID (the fixture's 13 on GPU 0) counts again and only warns.
            "interval": "1m",
            "input_series": [
                {"series": dcgm(xid_total, {"gpu": "0"}), "values": "2x5 3x25"},
                {"series": dcgm(temp, {"gpu": "0"}), "values": "66x30"},
                {"series": scrape.Sample(xid_total, {**gpu_sample("1"), "xid": "79"}, "").series(
                    node=HOST, exporter_pod="dcgm-a"), "values": "_x14 1x15"},
                {"series": dcgm(temp, {"gpu": "1"}), "values": "34x30"},
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
        {   # GPU 0: an old XID stays history when the GPU's pod changes (every series of the GPU changes pod
            # labels) and through a scrape gap of 8 minutes. GPU 1: the exporter restarts at 31m (a new pod,
            # dcgm-b) and forgets its counts; the old XID does not come back, but the same XID again at 45m is a
            # new one, born again at 1 with the labels it had, and pages (an hour-long look back would mask it).
            "interval": "1m",
            "input_series": [
                {"series": dcgm(xid_total, {"gpu": "0"}, xid="79"), "values": "1x20"},
                {"series": dcgm(temp, {"gpu": "0"}), "values": "66x20"},
                {"series": dcgm(xid_total, {"gpu": "0"}, xid="79", **new_pod), "values": "_x20 1x5 _x8 1x10"},
                {"series": dcgm(temp, {"gpu": "0"}, **new_pod), "values": "_x20 66x5 _x8 66x10"},
                {"series": scrape.Sample(xid_total, {**gpu_sample("1"), "xid": "79"}, "").series(
                    node=HOST, exporter_pod="dcgm-a"), "values": "_x5 1x25"},
                {"series": dcgm(temp, {"gpu": "1"}), "values": "34x30"},
                {"series": scrape.Sample(xid_total, {**gpu_sample("1"), "xid": "79"}, "").series(
                    node=HOST, exporter_pod="dcgm-b"), "values": "_x45 1x20"},
                {"series": dcgm(temp, {"gpu": "1"}, exporter_pod="dcgm-b"), "values": "_x31 34x34"},
            ],
            "alert_rule_test": [
                {"eval_time": "8m", "alertname": "NeuroDockGpuXidError", "exp_alerts": [
                    _alert(r["NeuroDockGpuXidError"][0], {**gpu_labels("1"), "xid": "79"})]},
                {"eval_time": "24m", "alertname": "NeuroDockGpuXidError", "exp_alerts": []},
                {"eval_time": "40m", "alertname": "NeuroDockGpuXidError", "exp_alerts": []},
                {"eval_time": "48m", "alertname": "NeuroDockGpuXidError", "exp_alerts": [
                    _alert(r["NeuroDockGpuXidError"][0], {**gpu_labels("1"), "xid": "79"})]},
                {"eval_time": "60m", "alertname": "NeuroDockGpuXidError", "exp_alerts": []},
            ],
        },
    ]


def gpu_sample(gpu: str) -> dict[str, str]:
    """The fixture's labels of an idle L4 GPU (no pod)."""
    return next(s.labels for s in scrape.samples("dcgm") if s.labels.get("gpu") == gpu and "pod" not in s.labels
                and "GPU_I_ID" not in s.labels)


def _gpu_tests(r: dict[str, list[dict]]) -> list[dict]:
    ready = "kube_pod_status_ready"
    exporter = {"namespace": DCGM_NS, "created_by_kind": "DaemonSet"}
    pods = {node: f"dcgm-{i}" for i, node in enumerate((HOST, "gpu-node-blind", "gpu-node-starting"))}
    return [
        {   # Memory: GPU 0, time-shared by two pods, is 98% full for over 10 minutes: fires once, for the GPU
            # (its used memory is also split per pod, its free memory copied onto each); GPU 1 (idle) is not.
            "interval": "1m",
            "input_series": [
                {"series": dcgm("DCGM_FI_DEV_FB_USED", {"gpu": "0"}), "values": "22500x20"},
                {"series": dcgm("DCGM_FI_DEV_FB_USED", {"gpu": "0", "vgpu": "0"}), "values": "11000x20"},
                {"series": dcgm("DCGM_FI_DEV_FB_USED", {"gpu": "0", "vgpu": "1"}), "values": "11000x20"},
                {"series": dcgm("DCGM_FI_DEV_FB_FREE", {"gpu": "0", "vgpu": "0"}), "values": "450x20"},
                {"series": dcgm("DCGM_FI_DEV_FB_FREE", {"gpu": "0", "vgpu": "1"}), "values": "450x20"},
                {"series": dcgm("DCGM_FI_DEV_FB_USED", {"gpu": "1"}), "values": "0x20"},
                {"series": dcgm("DCGM_FI_DEV_FB_FREE", {"gpu": "1"}), "values": "22588x20"},
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
        {   # GPU metrics missing: three exporter pods; the one on the fixture's node is ready and its GPUs'
            # series arrive (silent); one is ready and none arrive (fires after 10m); one is not ready yet (the
            # DaemonSet's readiness alert is the one for it).
            "interval": "1m",
            "input_series": [
                *({"series": fixture("kube-state-metrics", "kube_pod_info", exporter, node=node, pod=pod),
                   "values": "1x20"} for node, pod in pods.items()),
                *({"series": fixture("kube-state-metrics", ready, {"namespace": DCGM_NS, "condition": "true"},
                                     pod=pod), "values": "0x20" if node == "gpu-node-starting" else "1x20"}
                  for node, pod in pods.items()),
                {"series": dcgm("DCGM_FI_DEV_GPU_TEMP", {"gpu": "1"}), "values": "34x20"},
            ],
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": "NeuroDockGpuMetricsMissing", "exp_alerts": []},
                {"eval_time": "15m", "alertname": "NeuroDockGpuMetricsMissing", "exp_alerts": [
                    _alert(r["NeuroDockGpuMetricsMissing"][0], {"node": "gpu-node-blind"})]},
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
    ]


def epp(name: str, where: dict[str, str] | None = None, /, **labels: str) -> str:
    """A series of the stable pool's picker (its ServiceMonitor's job: ``<pool>-epp``)."""
    return fixture("epp", name, where, **{"namespace": NS, "job": f"{SLOW.route}-epp", **labels})


def _slo_tests(by_model: dict[str, dict]) -> list[dict]:
    stable_cluster = "httproute/neurodock-serving/slow/rule/0"
    canary_cluster = "httproute/neurodock-serving/slow/rule/1"
    envoy = "envoy_cluster_upstream_rq_xx"
    errors = "llm_d_epp_request_error_total"
    ttft = "llm_d_epp_request_ttft_seconds"
    streamed = {"streaming": "true"}
    downstream = "envoy_http_downstream_rq_xx"

    def burns(name: str, model: str | None) -> list[dict]:
        return [_alert(by_model[name][model, severity], {}) for severity in ("critical", "warning")]

    return [
        {   # Availability: 'slow' wakes from zero and its picker answers a quarter of its requests 503 (no
            # replica): they burn its budget though no replica ever saw them. The picker's 400s are answered, good
            # requests; the canary's errors (its rule's cluster, its own pool's picker) do not count. No `for`: the
            # page fires at the first evaluation with traffic enough (3m: 120 requests), not before (2m: 80).
            "interval": "1m",
            "input_series": [
                {"series": fixture("envoy", envoy, {"envoy_response_code_class": "2"},
                                   envoy_cluster_name=stable_cluster), "values": "0+25x130"},
                {"series": epp(errors, None, error_code="ServiceUnavailable"), "values": "0+10x130"},
                {"series": epp(errors, None, error_code="BadRequest"), "values": "0+5x130"},
                {"series": fixture("envoy", envoy, {"envoy_response_code_class": "5"},
                                   envoy_cluster_name=canary_cluster), "values": "0+100x130"},
                {"series": epp(errors, None, error_code="ServiceUnavailable", job="slow-canary-epp"),
                 "values": "0+100x130"},
            ],
            "alert_rule_test": [
                {"eval_time": "2m", "alertname": "NeuroDockErrorBudgetBurn", "exp_alerts": []},
                # A page and a ticket (Alertmanager's inhibition keeps the ticket quiet while the page fires).
                {"eval_time": "3m", "alertname": "NeuroDockErrorBudgetBurn",
                 "exp_alerts": burns("NeuroDockErrorBudgetBurn", "org/slow")},
                {"eval_time": "70m", "alertname": "NeuroDockErrorBudgetBurn",
                 "exp_alerts": burns("NeuroDockErrorBudgetBurn", "org/slow")},
            ],
            "promql_expr_test": [
                # 10 bad of 25 + 10 + 5 a minute.
                {"expr": 'round(neurodock:slo_errors:ratio_rate1h{slo="availability"}, 0.001)', "eval_time": "70m",
                 "exp_samples": [{"labels": '{model="org/slow", slo="availability", variant="stable"}',
                                  "value": 0.25}]},
            ],
        },
        {   # TTFT at the gateway: 'slow' scales from zero again and again, and 2 streamed requests in 5 wait 90 s
            # for a replica (le 120, over the 5 s objective): 40% slow, a page over 6 hours and 30 minutes.
            # vLLM never saw the hold (its own TTFT is fast), and the picker's non-streamed requests (whose
            # "first token" is the whole answer) and the canary pool's fast ones do not offset it.
            "interval": "1m",
            "input_series": [
                {"series": epp(f"{ttft}_bucket", streamed, le="5"), "values": "0+30x130"},
                {"series": epp(f"{ttft}_bucket", streamed, le="120"), "values": "0+50x130"},
                {"series": epp(f"{ttft}_bucket", streamed, le="+Inf"), "values": "0+50x130"},
                {"series": epp(f"{ttft}_count", streamed), "values": "0+50x130"},
                {"series": epp(f"{ttft}_bucket", {"streaming": "false"}, le="5"), "values": "0+500x130"},
                {"series": epp(f"{ttft}_count", {"streaming": "false"}), "values": "0+500x130"},
                {"series": epp(f"{ttft}_bucket", streamed, le="5", job="slow-canary-epp"), "values": "0+500x130"},
                {"series": epp(f"{ttft}_count", streamed, job="slow-canary-epp"), "values": "0+500x130"},
                {"series": vllm("vllm:time_to_first_token_seconds_bucket", "org/slow", le="0.1"),
                 "values": "0+50x130"},
                {"series": vllm("vllm:time_to_first_token_seconds_count", "org/slow"), "values": "0+50x130"},
            ],
            "alert_rule_test": [
                {"eval_time": "70m", "alertname": "NeuroDockTtftBudgetBurn",
                 "exp_alerts": burns("NeuroDockTtftBudgetBurn", "org/slow")},
            ],
            "promql_expr_test": [
                {"expr": 'round(neurodock:slo_errors:ratio_rate1h{slo="ttft"}, 0.001)', "eval_time": "70m",
                 "exp_samples": [{"labels": '{model="org/slow", slo="ttft", variant="stable"}', "value": 0.4}]},
            ],
        },
        {   # The traffic guard: 'fast' (no gateway: vLLM's TTFT) saw 2 requests in 2 hours, 1 of them slow (50%, ten
            # times its budget); under 100 requests no burn-rate alert fires, whatever the ratio.
            "interval": "1m",
            "input_series": [
                {"series": vllm("vllm:time_to_first_token_seconds_bucket", "org/fast", le="2.5"),
                 "values": "0x30 1x100"},
                {"series": vllm("vllm:time_to_first_token_seconds_count", "org/fast"), "values": "0x10 1x20 2x100"},
            ],
            "alert_rule_test": [
                {"eval_time": "70m", "alertname": "NeuroDockTtftBudgetBurn", "exp_alerts": []},
            ],
            "promql_expr_test": [
                {"expr": 'round(neurodock:slo_errors:ratio_rate2h{model="org/fast"}, 0.001)', "eval_time": "70m",
                 "exp_samples": [{"labels": '{model="org/fast", slo="ttft", variant="stable"}', "value": 0.5}]},
            ],
        },
        {   # The gateway's clients: the stable pool's picker is down and the gateway fails closed, a 500 for a
            # quarter of all requests. No model's SLI counts them (no cluster, no picker saw them); the gateway's
            # does. Prometheus' own scrapes of the proxy (eg-stats-http) do not dilute them.
            "interval": "1m",
            "input_series": [
                {"series": fixture("envoy", downstream, {"envoy_http_conn_manager_prefix": "http-10080",
                                                         "envoy_response_code_class": "2"}), "values": "0+30x130"},
                {"series": fixture("envoy", downstream, {"envoy_http_conn_manager_prefix": "http-10080",
                                                         "envoy_response_code_class": "5"}), "values": "0+10x130"},
                {"series": fixture("envoy", downstream, {"envoy_http_conn_manager_prefix": "eg-stats-http",
                                                         "envoy_response_code_class": "2"}), "values": "0+1000x130"},
            ],
            "alert_rule_test": [
                {"eval_time": "70m", "alertname": "NeuroDockGatewayErrorBudgetBurn",
                 "exp_alerts": burns("NeuroDockGatewayErrorBudgetBurn", None)},
                {"eval_time": "70m", "alertname": "NeuroDockErrorBudgetBurn", "exp_alerts": []},
            ],
        },
    ]


def _energy_tests() -> list[dict]:
    """Energy per token from the fixtures' series, computed by hand: GPU 0, time-shared by the two pods of the
    model's server, uses 3,600,000 mJ a minute (the counter is in mJ), 3,600 J a minute, 60 W; each pod generates
    300 tokens a minute, 600 together, 10 a second: 60 J/s / 10 tokens/s = 6 J per token. Summed over the pods
    that each carry a copy of the GPU's counter it would read 120 W and 12 J. GPU 1 (16 W, 960,000 mJ a minute)
    serves no model."""
    energy = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
    pods = {"0": "llama-3-1-8b-server-7f9c6d5b4-x2kqp", "1": "llama-3-1-8b-server-7f9c6d5b4-m8r4t"}
    model = f'model_name="{LLAMA}", variant="stable"'
    gpu = {k: v for k, v in gpu_sample("0").items() if k in ("hostname", "gpu", "modelName")}
    gpu1 = {k: v for k, v in gpu_sample("1").items() if k in ("hostname", "gpu", "modelName")}

    samples = {
        "neurodock:model_joules_per_token:ratio_rate5m": [(model, 6)],
        "neurodock:model_joules_per_token:ratio_rate1h": [(model, 6)],
        "neurodock:model_gpu_power_watts:rate5m": [(model, 60)],
        "neurodock:pod_gpu_power_watts:rate5m": [(f'namespace="{NS}", pod="{p}"', 30) for p in sorted(pods.values())],
        "neurodock:gpu_power_watts:rate5m": [
            (", ".join(f'{k}="{v}"' for k, v in {**gpu, "node": HOST}.items()), 60),
            (", ".join(f'{k}="{v}"' for k, v in {**gpu1, "node": HOST}.items()), 16)],
        "neurodock:pool_gpu_power_watts:rate5m": [('label_neurodock_io_pool="gpu-l4"', 76)],
        "neurodock:pool_idle_gpu_power_watts:rate5m": [('label_neurodock_io_pool="gpu-l4"', 16)],
    }
    return [{
        "interval": "1m",
        "input_series": [
            *({"series": dcgm(energy, {"gpu": "0", "vgpu": vgpu}), "values": "1.2345678901e10+3.6e6x80"}
              for vgpu in pods),
            {"series": dcgm(energy, {"gpu": "1"}), "values": "4.23456789e9+9.6e5x80"},
            *({"series": vllm("vllm:generation_tokens_total", LLAMA, pod=pod), "values": "0+300x80"}
              for pod in pods.values()),
            *({"series": vllm("vllm:num_requests_running", LLAMA, pod=pod), "values": "3x80"} for pod in pods.values()),
            {"series": fixture("kube-state-metrics", "kube_node_labels", node=HOST), "values": "1x80"},
        ],
        # Rounded to the milliwatt and millijoule: promtool compares floats exactly, and rate() divides.
        "promql_expr_test": [
            {"expr": f"round({record}, 0.001)", "eval_time": "70m",
             "exp_samples": [{"labels": "{" + selector + "}", "value": value} for selector, value in rows]}
            for record, rows in samples.items()
        ],
    }, {
        # A version that generated nothing in the window: its GPU's power counts (16 W), its energy per token is no
        # sample at all, not +Inf (nor a division by zero a panel would draw).
        "interval": "1m",
        "input_series": [
            {"series": dcgm(energy, {"gpu": "1"}, namespace=NS, pod="quiet-server-a1", container="engine"),
             "values": "4.23456789e9+9.6e5x80"},
            {"series": vllm("vllm:generation_tokens_total", "org/quiet", pod="quiet-server-a1"), "values": "42x80"},
            {"series": vllm("vllm:num_requests_running", "org/quiet", pod="quiet-server-a1"), "values": "0x80"},
            {"series": fixture("kube-state-metrics", "kube_node_labels", node=HOST), "values": "1x80"},
        ],
        "promql_expr_test": [
            {"expr": "round(neurodock:model_gpu_power_watts:rate5m, 0.001)", "eval_time": "70m", "exp_samples": [
                {"labels": '{model_name="org/quiet", variant="stable"}', "value": 16}]},
            {"expr": "neurodock:model_joules_per_token:ratio_rate5m", "eval_time": "70m", "exp_samples": []},
            # Its GPU serves a model, though an idle one: no idle power in the pool (every GPU is held).
            {"expr": "neurodock:pool_idle_gpu_power_watts:rate5m", "eval_time": "70m", "exp_samples": []},
        ],
    }]


def _cost_tests() -> list[dict]:
    """The running cost from the fixtures' series, by hand: the GPU node (pool gpu-l4, a g2-standard-16 at $1.20 an
    hour with one GPU) runs the model's server, which requests its GPU and generates 600 tokens a minute, 36,000
    an hour: $1.20 / 0.036 million tokens = $33.333 per million. A system node is in no model's cost."""
    pod = "llama-3-1-8b-server-7f9c6d5b4-x2kqp"
    gpu_request = fixture("kube-state-metrics", "kube_pod_container_resource_requests", {"resource": "nvidia_com_gpu"},
                          namespace=NS, pod=pod, node=HOST)
    system = fixture("kube-state-metrics", "kube_node_labels", node="system-1", label_neurodock_io_pool="system",
                     label_neurodock_io_role="system", label_node_kubernetes_io_instance_type="e2-standard-8")
    model = f'model_name="{LLAMA}", variant="stable"'
    return [{
        "interval": "1m",
        "input_series": [
            {"series": fixture("kube-state-metrics", "kube_node_labels", node=HOST), "values": "1x80"},
            {"series": system, "values": "1x80"},
            {"series": gpu_request, "values": "1x80"},
            {"series": vllm("vllm:generation_tokens_total", LLAMA, pod=pod), "values": "0+600x80"},
            {"series": vllm("vllm:num_requests_running", LLAMA, pod=pod), "values": "3x80"},
        ],
        "promql_expr_test": [
            {"expr": "round(neurodock:pool_price_usd_per_hour, 0.001)", "eval_time": "70m", "exp_samples": [
                {"labels": '{label_neurodock_io_pool="gpu-l4"}', "value": 1.2},
                {"labels": '{label_neurodock_io_pool="system"}', "value": 0.3}]},
            {"expr": "round(neurodock:model_price_usd_per_hour, 0.001)", "eval_time": "70m", "exp_samples": [
                {"labels": "{" + model + "}", "value": 1.2}]},
            {"expr": "round(neurodock:model_usd_per_million_tokens:ratio_rate1h, 0.001)", "eval_time": "70m",
             "exp_samples": [{"labels": "{" + model + "}", "value": 33.333}]},
        ],
    }]


def _unit_tests() -> list[dict]:
    r = rules_by_alert()
    by_model = {name: {(rule["labels"].get("model"), rule["labels"]["severity"]): rule for rule in rules}
                for name, rules in r.items()}
    dep = {"namespace": NS, "deployment": SLOW.deployment}
    fast_dep = {"namespace": NS, "deployment": FAST.deployment}
    ksm_dep = "kube_deployment_status_replicas_available"
    return [
        *_xid_tests(r),
        *_gpu_tests(r),
        *_slo_tests(by_model),
        *_energy_tests(),
        *_cost_tests(),
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
            # minimum of 1 replica idle (silent: it cannot scale lower). Each pod's own share of a time-shared GPU.
            "interval": "1m",
            "input_series": [
                {"series": fixture("dcgm", "DCGM_FI_DEV_GPU_UTIL", {"gpu": "0", "vgpu": "0"},
                                   pod=f"{SLOW.deployment}-7c9d-a1"), "values": "1x70"},
                {"series": fixture("kube-state-metrics", "kube_deployment_spec_replicas", **dep), "values": "3x70"},
                {"series": fixture("dcgm", "DCGM_FI_DEV_GPU_UTIL", {"gpu": "0", "vgpu": "1"},
                                   pod=f"{FAST.deployment}-5b8c-b2"), "values": "1x70"},
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
    tested = {t["alertname"] for case in tests for t in case.get("alert_rule_test", [])}
    assert tested == set(rules_by_alert()), "every alert needs a promtool test"
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}, sort_keys=False))
    result = _promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_runbook_link_has_a_section():
    from infra.plan.stackfile import REPO_ROOT

    sections = set(re.findall(r"^## (\S+)$", (REPO_ROOT / "docs" / "runbooks.md").read_text(), re.M))
    anchors = {r["annotations"]["runbook_url"].rsplit("#", 1)[1] for rules in rules_by_alert().values() for r in rules}
    assert anchors <= sections
