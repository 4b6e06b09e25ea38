"""Grafana dashboards: valid JSON in labelled ConfigMaps, every query parses as PromQL and selects
only metrics of the registry (or series NeuroDock's recording rules write), with the metric and label names
the pinned exporters really expose (the golden scrape fixtures)."""

from __future__ import annotations

import json
import re

import promql_parser
import pytest

from components.monitoring import metrics
from components.monitoring.dashboards import DASHBOARDS, panel_queries
from components.monitoring.recording import RECORDED
from tests import scrape
from tests.conftest import SHIPPED_STACKS, selectors


@pytest.mark.parametrize("file_name", sorted(DASHBOARDS))
def test_every_panel_query_parses_and_uses_registered_metrics(file_name):
    dashboard = DASHBOARDS[file_name]()
    queries = panel_queries(dashboard)
    assert len(queries) >= 3
    for expr in queries:
        promql_parser.parse(expr)  # raises on a syntax error
        unknown = selectors(expr) - metrics.KNOWN_SERIES - set(RECORDED)
        assert not unknown, f"{dashboard['title']}: {expr} uses unregistered {unknown}"
        assert scrape.problems(expr) == [], f"{dashboard['title']}: {expr}"


@pytest.mark.parametrize("file_name", sorted(DASHBOARDS))
def test_every_variable_reads_a_label_its_metric_carries(file_name):
    for variable in DASHBOARDS[file_name]()["templating"]["list"]:
        found = re.fullmatch(r"label_values\((\S+), (\w+)\)", str(variable.get("query", "")))
        if variable["type"] == "query" and found:
            assert found.group(2) in scrape.labels_of(found.group(1)), variable["name"]


def test_every_panel_legend_names_a_label_its_query_keeps():
    for build in DASHBOARDS.values():
        for panel in build()["panels"]:
            for target in panel["targets"]:
                carried = {label for name in selectors(target["expr"]) for label in scrape.labels_of(name)}
                assert set(re.findall(r"\{\{(\w+)\}\}", target["legendFormat"])) <= carried, target["expr"]


def test_the_registry_check_catches_a_renamed_metric():
    assert selectors("rate(vllm:gpu_cache_usage_perc[5m])") - metrics.KNOWN_SERIES == {"vllm:gpu_cache_usage_perc"}


def test_a_syntax_error_is_caught():
    with pytest.raises(Exception):  # noqa: B017 - the binding raises its own error type
        promql_parser.parse("sum by (model_name (rate(x[5m]))")


def test_dashboards_cover_what_operators_need():
    titles = {p["title"] for f in DASHBOARDS.values() for p in f()["panels"]}
    assert {"GPU utilisation by node", "GPU utilisation by pod", "GPU memory used", "Power", "Temperature",
            "XID errors", "Request rate", "Time to first token", "Inter-token latency",
            "End-to-end latency", "Queue depth", "KV-cache usage", "Tokens per second",
            "Gateway error ratio (5xx)", "Running requests per pod", "Model server replicas: ready vs desired",
            "GPUs per pool: allocatable vs requested", "SLO: bad requests as users feel them (1h)",
            "Clients' responses at the gateway", "Time to first token at the gateway", "Energy per generated token",
            "Generated tokens per joule", "GPU power per model", "GPU power that serves no model",
            "Energy per node, last hour"} <= titles
    # Variants side by side: every vLLM panel of the LLM dashboard splits by the `variant` label.
    for panel in DASHBOARDS["neurodock-llm.json"]()["panels"]:
        for target in panel["targets"]:
            if "vllm:" in target["expr"]:
                assert "variant" in target["expr"], panel["title"]
    # Errors come from the gateway's response codes: vLLM never counts a failed request.
    errors = next(p for p in DASHBOARDS["neurodock-llm.json"]()["panels"] if p["title"] == "Gateway error ratio (5xx)")
    assert 'envoy_response_code_class="5"' in errors["targets"][0]["expr"]
    latency = next(p for p in DASHBOARDS["neurodock-llm.json"]()["panels"] if p["title"] == "Time to first token")
    assert [t["expr"].split(",")[0] for t in latency["targets"]] == [
        "histogram_quantile(0.5", "histogram_quantile(0.95", "histogram_quantile(0.99"]


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_dashboards_ship_as_labelled_configmaps_of_valid_json(shipped_plans, stack):
    maps = [r.manifest for r in shipped_plans[stack].manifests
            if r.manifest["kind"] == "ConfigMap" and r.manifest["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert {k for m in maps for k in m["data"]} == set(DASHBOARDS)
    uids = [json.loads(v)["uid"] for m in maps for v in m["data"].values()]
    assert len(uids) == len(set(uids))
    assert all(m["metadata"]["namespace"] == "monitoring" for m in maps)


def _panel(file_name: str, title: str) -> dict:
    return next(p for p in DASHBOARDS[file_name]()["panels"] if p["title"] == title)


def test_energy_panels_read_the_energy_records_in_their_units():
    """J per generated token, tokens per joule, watts per model and of GPUs serving no model, Wh per node: all
    from the energy counter's records, which take each GPU once (components/monitoring/recording.py)."""
    units = {"Energy per generated token": ("joule", "neurodock:model_joules_per_token:ratio_rate5m"),
             "Generated tokens per joule": ("short", "neurodock:model_joules_per_token:ratio_rate5m"),
             "GPU power per model": ("watt", "neurodock:model_gpu_power_watts:rate5m"),
             "GPU power that serves no model": ("watt", "neurodock:pool_idle_gpu_power_watts:rate5m")}
    for title, (unit, record) in units.items():
        panel = _panel("neurodock-llm.json", title)
        assert panel["fieldConfig"]["defaults"]["unit"] == unit, title
        assert record in panel["targets"][0]["expr"], title
    assert _panel("neurodock-llm.json", "Generated tokens per joule")["targets"][0]["expr"].startswith("1 / ")
    energy = _panel("neurodock-gpu.json", "Energy per node, last hour")
    assert energy["fieldConfig"]["defaults"]["unit"] == "watth"
    assert "mJ" in _panel("neurodock-llm.json", "Energy per generated token")["description"]


def test_gpu_panels_take_each_gpu_once_and_leave_mig_instances_out_of_utilisation():
    """On a time-shared GPU the exporter copies power onto every pod, and gives utilisation per pod beside the
    GPU's own: per node, each GPU counts once. MIG instances read 0 utilisation: left out, and said why."""
    power = _panel("neurodock-gpu.json", "Power")["targets"][0]["expr"]
    assert power.startswith("sum by (hostname) (max by (hostname, gpu, modelName) (DCGM_FI_DEV_POWER_USAGE")
    for title in ("GPU utilisation by node", "GPU utilisation by pod"):
        panel = _panel("neurodock-gpu.json", title)
        assert 'GPU_I_ID=""' in panel["targets"][0]["expr"], title
        assert "MIG" in panel["description"], title


def test_the_gateway_ttft_panel_reads_the_pickers_streamed_requests():
    panel = _panel("neurodock-llm.json", "Time to first token at the gateway")
    assert all('llm_d_epp_request_ttft_seconds_bucket{' in t["expr"] and 'streaming="true"' in t["expr"]
               for t in panel["targets"])


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_proxies_pod_monitor_keeps_every_envoy_family_the_rules_and_panels_read(shipped_plans, stack):
    """The gateway's PodMonitor drops every Envoy family but those kept: each one NeuroDock reads must be."""
    [monitor] = [r.manifest for r in shipped_plans[stack].manifests if r.manifest["kind"] == "PodMonitor"
                 and r.manifest["metadata"]["namespace"] == "neurodock-gateway"]
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    [keep] = [c for c in endpoint["metricRelabelings"] if c["action"] == "keep"]
    envoy = {s for m in metrics.REGISTRY.values() if m.source == "envoy" for s in m.series()}
    assert envoy >= {"envoy_cluster_upstream_rq_xx", "envoy_http_downstream_rq_xx"}
    assert {s for s in envoy if re.fullmatch(keep["regex"], s)} == envoy
    # ...and nothing else of Envoy's thousands of families.
    assert not re.fullmatch(keep["regex"], "envoy_http_downstream_rq_total")
