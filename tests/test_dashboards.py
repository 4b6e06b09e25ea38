"""Grafana dashboards: valid JSON in labelled ConfigMaps, every query parses as PromQL and selects
only metrics of the registry, with the metric and label names the pinned exporters really expose (the
golden scrape fixtures)."""

from __future__ import annotations

import json
import re

import promql_parser
import pytest

from components.monitoring import metrics
from components.monitoring.dashboards import DASHBOARDS, panel_queries
from tests import scrape
from tests.conftest import SHIPPED_STACKS, selectors


@pytest.mark.parametrize("file_name", sorted(DASHBOARDS))
def test_every_panel_query_parses_and_uses_registered_metrics(file_name):
    dashboard = DASHBOARDS[file_name]()
    queries = panel_queries(dashboard)
    assert len(queries) >= 3
    for expr in queries:
        promql_parser.parse(expr)  # raises on a syntax error
        unknown = selectors(expr) - metrics.KNOWN_SERIES
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
            "GPUs per pool: allocatable vs requested"} <= titles
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
