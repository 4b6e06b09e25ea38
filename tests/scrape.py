"""The golden scrape fixtures (``tests/fixtures/metrics/*.prom``): what each pinned exporter really
exposes, written from its source (each file's header cites it). Alert rules and dashboard queries are
checked against them, label names included, and promtool's unit tests feed their series.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import promql_parser

from components.monitoring import metrics
from components.monitoring.recording import RECORDED

FIXTURES = Path(__file__).parent / "fixtures" / "metrics"
FIXTURE_OF_SOURCE = {"vllm": "vllm.prom", "llamacpp": "llamacpp.prom", "dcgm": "dcgm-exporter.prom",
                     "kube-state-metrics": "kube-state-metrics.prom", "envoy": "envoy.prom", "epp": "llm-d-epp.prom"}

TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod", "container", "service", "endpoint"})
"""Labels the Prometheus Operator's monitors give every scraped series."""
SCRAPE_LABELS: dict[str, frozenset[str]] = {
    # ServiceMonitor of each model server: the target's labels, and its pod's variant
    # (components/serving/model_server.py).
    "vllm": TARGET_LABELS | {"variant"},
    "llamacpp": TARGET_LABELS | {"variant"},
    # The exporter's own pod, namespace and container are dropped; node and exporter_pod added
    # (components/gpu/dcgm.py SCRAPE_RELABELINGS). pod/namespace/container come from the exporter.
    "dcgm": frozenset({"job", "instance", "service", "endpoint", "node", "exporter_pod"}),
    # The chart's ServiceMonitor honours kube-state-metrics' labels.
    "kube-state-metrics": TARGET_LABELS,
    # The gateway's PodMonitor (components/gateway/gateway.py).
    "envoy": frozenset({"job", "instance", "namespace", "pod", "container", "endpoint"}),
    # The picker chart's ServiceMonitor (components/gateway/picker.py); the picker's own `namespace` label
    # on scheduler attempts becomes `exported_namespace` (honorLabels false).
    "epp": TARGET_LABELS | {"exported_namespace"},
}

CLOSED_LABELS: dict[tuple[str, str], frozenset[str]] = {
    # llm-d-router v0.10.0 pkg/common/error/error.go:58-69 (the codes request_error_total records).
    ("epp", "error_code"): frozenset({"Unknown", "BadRequest", "Unauthorized", "Forbidden", "NotFound",
                                      "PreconditionFailed", "Internal", "ServiceUnavailable", "ModelServerError",
                                      "ResourceExhausted"}),
    # pkg/epp/flowcontrol/types/outcomes.go:82-103 (QueueOutcome.String()).
    ("epp", "outcome"): frozenset({"Dispatched", "RejectedCapacity", "RejectedNoEndpoints", "RejectedOther",
                                   "EvictedTTL", "EvictedContextCancelled", "EvictedOther"}),
    # pkg/epp/metrics/metrics.go:679-697 (strconv.FormatBool of the response's streaming).
    ("epp", "streaming"): frozenset({"true", "false"}),
    # Envoy well_known_names.cc:71 ("_rq_((\d))xx$"); the connection managers count 1xx to 5xx.
    ("envoy", "envoy_response_code_class"): frozenset({"1", "2", "3", "4", "5"}),
    # kube-state-metrics v2.18.0 internal/store/utils.go:38 (conditionStatuses, lowercased).
    ("kube-state-metrics", "condition"): frozenset({"true", "false", "unknown"}),
}
"""Labels whose every value the exporter's source enumerates: a matcher that matches none of them selects
nothing, whatever the traffic (a typo, or a value from another version)."""

SCOPED: dict[str, tuple[str, frozenset[str], frozenset[str]]] = {
    # Envoy Gateway names the connection managers clients reach http-<port> / https-<port> (80 -> 10080, 443 ->
    # 10443); its own stats and readiness listeners, and the admin interface, are connection managers too
    # (components/monitoring/queries.py CLIENT_LISTENERS; fixtures/metrics/envoy.prom).
    metrics.ENVOY_DOWNSTREAM_RQ_XX.name: ("envoy_http_conn_manager_prefix", frozenset({"http-10080", "https-10443"}),
                                          frozenset({"eg-stats-http", "eg-ready-http", "admin"})),
}
"""Families whose series of one label's values must be told apart: a selector must match all of the first
values (NeuroDock's HTTP and HTTPS listeners) and none of the second (Prometheus' scrapes, kubelet probes)."""

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: str

    def series(self, **extra: str) -> str:
        """The sample as a promtool series selector, with ``extra`` labels added."""
        labels = {**self.labels, **extra}
        return self.name + "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def parse(text: str) -> list[Sample]:
    """Samples of a Prometheus text exposition (names kept exactly as written)."""
    out = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = _SAMPLE.match(line.strip())
        if match is None:
            raise ValueError(f"not a sample line: {line!r}")
        name, _, body, value = match.groups()
        labels = {}
        rest = body or ""
        while rest:
            label = _LABEL.match(rest)
            if label is None:
                raise ValueError(f"bad labels in {line!r}")
            labels[label.group(1)] = label.group(2)
            rest = rest[label.end():]
        out.append(Sample(name, labels, value))
    return out


@cache
def samples(source: str) -> tuple[Sample, ...]:
    return tuple(parse((FIXTURES / FIXTURE_OF_SOURCE[source]).read_text()))


def metric_of(series: str) -> metrics.Metric | None:
    for metric in metrics.REGISTRY.values():
        if series in metric.series():
            return metric
    return None


def source_of(series: str) -> str | None:
    metric = metric_of(series)
    return metric.source if metric is not None else None


def labels_of(series: str) -> frozenset[str]:
    """Every label a series of this name carries once scraped: the fixture's and the scrape's (a recorded
    series': those its rule declares)."""
    if series in RECORDED:
        return RECORDED[series].labels
    source = source_of(series)
    if source is None:
        return frozenset()
    found = {k for s in samples(source) if s.name == series for k in s.labels}
    return frozenset(found) | SCRAPE_LABELS[source]


def exposed(series: str) -> bool:
    source = source_of(series)
    return source is not None and any(s.name == series for s in samples(source))


def promql_nodes(expr: str):
    """Every node of an expression's syntax tree, parents before children."""
    stack = [promql_parser.parse(expr)]
    while stack:
        node = stack.pop()
        yield node
        children = [getattr(node, attr, None) for attr in ("lhs", "rhs", "expr", "vector_selector", "param")]
        stack += [c for c in (*children, *(getattr(node, "args", None) or [])) if c is not None
                  and not isinstance(c, (str, int, float))]


def _matches(matcher, value: str) -> bool:
    op = str(matcher.op).rsplit(".", 1)[-1]
    hit = value == matcher.value if op in ("Equal", "NotEqual") else re.fullmatch(matcher.value, value) is not None
    return hit if op in ("Equal", "Re") else not hit


def _bound_texts(bound: float) -> set[str]:
    """How an ``le`` bound is written: by the exporter (Go's shortest %g: ``5``, ``0.005``) and by Prometheus 3
    on ingestion (``5.0``)."""
    return {f"{bound:g}", repr(float(bound))}


def _value_problems(name: str, matchers) -> list[str]:
    out = []
    source, metric = source_of(name), metric_of(name)
    for matcher in matchers:
        known = CLOSED_LABELS.get((source, matcher.name))
        if matcher.name == "le" and name.endswith("_bucket") and metric is not None and metric.buckets:
            known = frozenset(t for b in metric.buckets for t in _bound_texts(b)) | {"+Inf"}
        if known is not None and str(matcher.op).endswith(("Equal", "Re")) and not str(matcher.op).endswith(
                ("NotEqual", "NotRe")) and not any(_matches(matcher, v) for v in known):
            out.append(f"{name}: {matcher.name} {matcher.value!r} matches no value it takes "
                       f"({', '.join(sorted(known)[:8])}{'...' if len(known) > 8 else ''})")
    scope = SCOPED.get(name)
    if scope is not None:
        label, wanted, unwanted = scope
        on_label = [mt for mt in matchers if mt.name == label]
        missed = sorted(v for v in wanted if not all(_matches(mt, v) for mt in on_label))
        mixed = sorted(v for v in unwanted if all(_matches(mt, v) for mt in on_label))
        if mixed:
            out.append(f"{name}: mixes in {', '.join(repr(v) for v in mixed)} ({label}), which no client reaches")
        if missed:
            out.append(f"{name}: misses {', '.join(repr(v) for v in missed)} ({label}), a listener clients reach")
    return out


_RANGE_FUNCTIONS = {"rate", "irate", "increase", "delta", "idelta", "avg_over_time", "max_over_time",
                    "min_over_time", "sum_over_time", "last_over_time", "quantile_over_time"}


def _summed_copies(node) -> list[str]:
    """DCGM fields a ``sum`` adds over the copies the exporter makes of one GPU's value, one per pod sharing
    it (``metrics.DCGM_PER_PROCESS``): the sum reaches the selector through range functions alone."""
    if str(node.op) != "sum":
        return []
    inner = node.expr
    while True:
        if isinstance(inner, promql_parser.ParenExpr):
            inner = inner.expr
        elif isinstance(inner, promql_parser.Call) and inner.func.name in _RANGE_FUNCTIONS:
            inner = inner.args[0]
        elif isinstance(inner, promql_parser.MatrixSelector):
            inner = inner.vector_selector
        else:
            break
    if isinstance(inner, promql_parser.VectorSelector) and source_of(inner.name) == "dcgm" \
            and inner.name not in metrics.DCGM_PER_PROCESS:
        return [f"sums {inner.name}, which the exporter copies onto every pod sharing a GPU: take one value per "
                "GPU first (max by (hostname, gpu))"]
    return []


def problems(expr: str, extra_labels: frozenset[str] = frozenset()) -> list[str]:
    """What the expression asks of the exporters that their fixtures do not have: a metric no fixture
    exposes, a matcher on a label its metric does not carry or on a value it never takes, a grouping label
    none of its metrics do; and what it does wrong with what they have: a family that mixes clients' and
    Envoy's own connection managers, a sum over a GPU's per-pod copies. A series NeuroDock's recording rules
    write (``recording.RECORDED``) counts as exposed with its declared labels. ``extra_labels`` are labels the
    expression itself creates (label_replace)."""
    selected: list[tuple[str, list]] = []
    grouping: set[str] = set()
    out = []
    for node in promql_nodes(expr):
        modifier = getattr(node, "modifier", None)
        if isinstance(node, promql_parser.VectorSelector):
            selected.append((node.name, list(node.matchers.matchers)))
        elif isinstance(node, promql_parser.AggregateExpr):
            out += _summed_copies(node)
            if modifier is not None:
                grouping.update(modifier.labels)
        elif isinstance(node, promql_parser.BinaryExpr) and modifier is not None:
            if modifier.matching is not None:
                grouping.update(modifier.matching.labels)
            grouping.update(modifier.group_labels or [])
    available: set[str] = set(extra_labels)
    for name, matchers in selected:
        if name in RECORDED:
            carried = RECORDED[name].labels
        elif not exposed(name):
            out.append(f"{name}: no pinned exporter exposes it")
            continue
        else:
            carried = labels_of(name)
            out += _value_problems(name, matchers)
        available |= carried
        out += [f"{name}: selects label {m.name!r}, which it does not carry" for m in matchers
                if m.name not in carried | extra_labels]
    out += [f"groups by {label!r}, which none of its metrics carry" for label in sorted(grouping - available)]
    return out
