"""Shared fixtures.

Plans run the stack program under Pulumi's mocks: ``run_plan`` installs the mocks and the stack's
config before the program is imported and run, and resets the runtime's root resource afterwards,
so plans never leak state into each other. Plans are deterministic, so each shipped stack is
planned once per session and shared, read-only.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import io
import os
import pickle
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from infra.crossguard import Pack, pack_process
from infra.plan.engine import Plan, run_plan
from infra.plan.stackfile import REPO_ROOT, load_stack_file, stack_names
from tests.scrape import promql_nodes

SHIPPED_STACKS = stack_names()
SHARED_CHARTS = REPO_ROOT.parent / "shared" / "charts"
"""The pinned chart packages every developer and CI have beside the repository."""

# Plans render Helm releases from the chart cache; tests use the pinned packages unless told otherwise.
os.environ.setdefault("NEURODOCK_CHART_CACHE", str(SHARED_CHARTS))


@pytest.fixture(scope="session", autouse=True)
def chart_cache() -> Path:
    """The chart cache the tests render from; it must hold every pinned chart, or the tests that read
    rendered chart objects would judge nothing."""
    from components.versions import CHARTS
    from infra import charts

    missing = [ref.package for ref in CHARTS if charts.cached(ref) is None]
    if missing:
        pytest.fail(f"chart cache {charts.cache_dir()} lacks {', '.join(missing)}: set NEURODOCK_CHART_CACHE to "
                    f"a directory holding the pinned charts ({SHARED_CHARTS}), or run `neurodock charts pull`")
    return charts.cache_dir()


@pytest.fixture(autouse=True)
def _restore_chart_cache(monkeypatch):
    """`neurodock ... --chart-cache DIR` points this process's environment at DIR, as it must for the
    stack program; each test starts from, and gets back, the suite's own cache."""
    monkeypatch.setenv("NEURODOCK_CHART_CACHE", os.environ["NEURODOCK_CHART_CACHE"])


class ShippedPlans(Mapping[str, Plan]):
    """Each shipped stack's plan, made the first time a test reads it: a test worker plans only the
    stacks its tests read. With ``shared`` (a directory every worker of the session sees), the first worker
    to need a stack plans it and leaves it pickled there; the others load it (a tenth of a second against
    several seconds of planning). The directory is the session's own, so a plan never outlives its code."""

    def __init__(self, shared: Path | None = None) -> None:
        self._plans: dict[str, Plan] = {}
        self._shared = shared

    def __getitem__(self, name: str) -> Plan:
        if name not in SHIPPED_STACKS:
            raise KeyError(name)
        if name not in self._plans:
            self._plans[name] = self._plan(name)
        return self._plans[name]

    def _plan(self, name: str) -> Plan:
        if self._shared is None:
            return run_plan(load_stack_file(name))
        pickled = self._shared / f"{name}.plan.pickle"
        with open(self._shared / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one worker plans, the others wait for its file
            if pickled.is_file():
                return pickle.loads(pickled.read_bytes())
            plan = run_plan(load_stack_file(name))
            partial = pickled.with_suffix(".partial")
            partial.write_bytes(pickle.dumps(plan))
            partial.replace(pickled)
            return plan

    def __iter__(self) -> Iterator[str]:
        return iter(SHIPPED_STACKS)

    def __len__(self) -> int:
        return len(SHIPPED_STACKS)


@pytest.fixture(scope="session")
def shipped_plans(tmp_path_factory, worker_id) -> ShippedPlans:
    # Under pytest-xdist each worker's base temp is a child of the session's: their parent is shared.
    shared = tmp_path_factory.getbasetemp().parent / "shipped-plans" if worker_id != "master" else None
    if shared is not None:
        shared.mkdir(exist_ok=True)
    return ShippedPlans(shared)


@pytest.fixture(scope="session")
def crd_schemas(shipped_plans) -> dict[tuple[str, str], dict[str, Any]]:
    """Strict schemas of every custom resource kind, from the CRDs the pinned charts install (as Helm
    renders them in the shipped stacks' plans) and the pinned upstream CRDs beside the charts."""
    from tests.crds import schemas, shared_crds

    rendered = {o.object_name: o.manifest for plan in shipped_plans.values() for o in plan.chart_objects
                if o.kind == "CustomResourceDefinition"}
    # A chart's crds/ that the program applies itself (Envoy Gateway's), ahead of a release that skips them.
    rendered |= {r.manifest["metadata"]["name"]: r.manifest for plan in shipped_plans.values() for r in plan.manifests
                 if r.manifest["kind"] == "CustomResourceDefinition"}
    return schemas([*rendered.values(), *shared_crds()])


@pytest.fixture(scope="module")
def pack() -> Iterator[Pack]:
    """The policy pack's own process (``python -m pulumi.policy``), as `pulumi preview --policy-pack` starts it,
    with the default policy config; one per test module."""
    with pack_process() as running:
        running.configure({})
        yield running


def stack_document(name: str) -> dict[str, Any]:
    """A shipped stack file's document, as a deep copy to mutate."""
    return copy.deepcopy(yaml.safe_load((REPO_ROOT / "stacks" / f"Pulumi.{name}.yaml").read_text()))


@pytest.fixture
def write_stack(tmp_path: Path):
    """Write a stack document to a temporary Pulumi.<name>.yaml and return its path."""

    def write(document: dict[str, Any], name: str = "test") -> Path:
        path = tmp_path / f"Pulumi.{name}.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path

    return write


def plan_with(write_stack, stack: str, mutate: Callable[[dict[str, Any]], None]) -> Plan:
    """The plan of a shipped stack after ``mutate`` edits its ``config`` mapping."""
    document = stack_document(stack)
    mutate(document["config"])
    return run_plan(load_stack_file("test", write_stack(document)))


def plan_in(directory: Path, stack: str, mutate: Callable[[dict[str, Any]], None], name: str = "test") -> Plan:
    """``plan_with`` for a module-scoped fixture: the edited stack file is written to ``directory``."""
    document = stack_document(stack)
    mutate(document["config"])
    path = directory / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return run_plan(load_stack_file(name, path))


def one(plan: Plan, type_: str) -> Any:
    """The plan's one registration of a resource type."""
    [registration] = of_type(plan, type_)
    return registration


def of_type(plan: Plan, type_: str) -> list:
    """The plan's registrations of one resource type."""
    return [r for r in plan.resources if r.type == type_]


def release_of(plan: Plan, ref) -> Any:
    """The plan's one Helm release of a pinned chart (``versions.KEDA``...), whatever its source."""
    from infra import charts

    [release] = [r for r in of_type(plan, "kubernetes:helm.sh/v3:Release")
                 if charts.ref_of(str(r.inputs["chart"]), r.inputs.get("version")) == ref]
    return release


def selectors(expr: str) -> set[str]:
    """Names of every series an expression selects."""
    return {node.name for node in promql_nodes(expr) if isinstance(node, promql_parser.VectorSelector)}


def model_servers(plan: Plan, variant: str = "stable") -> list:
    """Model-server Deployments of one variant (stable, canary or shadow)."""
    return [r for r in of_type(plan, "kubernetes:apps/v1:Deployment")
            if r.manifest["metadata"]["labels"].get("neurodock.io/variant") == variant]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """``neurodock ARGS`` run in this process (``infra.cli.main``, what the console script runs), its
    exit code and output as ``subprocess.run`` reports them: the same code path without a fresh
    interpreter's imports. Tests of the process itself (no traceback on stderr) start one."""
    from infra.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(["neurodock", *args], code, out.getvalue(), err.getvalue())


def alert_rule(plan: Plan) -> dict[str, Any]:
    """The manifest of the stack's PrometheusRule of alert and recording rules (``alerts-rules``; the cost rules
    are ``alerts-cost``)."""
    [rule] = [r.manifest for r in plan.manifests if r.manifest["kind"] == "PrometheusRule" and r.name == "alerts-rules"]
    return rule
