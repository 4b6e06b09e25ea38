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


def source_of(series: str) -> str | None:
    for metric in metrics.REGISTRY.values():
        if series in metric.series():
            return metric.source
    return None


def labels_of(series: str) -> frozenset[str]:
    """Every label a series of this name carries once scraped: the fixture's and the scrape's."""
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


def problems(expr: str, extra_labels: frozenset[str] = frozenset()) -> list[str]:
    """What the expression asks of the exporters that their fixtures do not have: a metric no fixture
    exposes, a matcher on a label its metric does not carry, a grouping label none of its metrics do.
    ``extra_labels`` are labels the expression itself creates (label_replace)."""
    selected: list[tuple[str, list[str]]] = []
    grouping: set[str] = set()
    for node in promql_nodes(expr):
        modifier = getattr(node, "modifier", None)
        if isinstance(node, promql_parser.VectorSelector):
            selected.append((node.name, [m.name for m in node.matchers.matchers]))
        elif isinstance(node, promql_parser.AggregateExpr) and modifier is not None:
            grouping.update(modifier.labels)
        elif isinstance(node, promql_parser.BinaryExpr) and modifier is not None:
            if modifier.matching is not None:
                grouping.update(modifier.matching.labels)
            grouping.update(modifier.group_labels or [])
    out = []
    available: set[str] = set(extra_labels)
    for name, matchers in selected:
        if not exposed(name):
            out.append(f"{name}: no pinned exporter exposes it")
            continue
        carried = labels_of(name)
        available |= carried
        out += [f"{name}: selects label {label!r}, which it does not carry" for label in matchers
                if label not in carried | extra_labels]
    out += [f"groups by {label!r}, which none of its metrics carry" for label in sorted(grouping - available)]
    return out
