"""Components built alone under Pulumi's mocks, without planning a stack (STYLE #26), as pulumi-eks's
``nodegroup.test.ts`` builds one node group: ``build`` constructs one component from its Args and returns
what it registered, ``input_errors`` the property paths and reasons of the ``pulumi.InputPropertiesError``
its Args raise.

The mocks and the recording monitor are the offline plan's own (``infra.plan.mocks``), installed as
``infra.plan.engine.run_plan`` installs them, each build on a fresh event loop and root stack, so builds
share no state with each other or with the plans other tests make in the same worker.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from dataclasses import dataclass

import pulumi
import pytest
from pulumi.runtime import resource as pulumi_resource
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.proto import source_pb2
from pulumi.runtime.stack import run_pulumi_func

from infra.plan.mocks import PlanMocks, RecordingMonitor, Registration


@dataclass(frozen=True)
class Built:
    """One component and everything it registered, itself first."""

    component: pulumi.Resource
    resources: list[Registration]

    @property
    def types(self) -> set[str]:
        """Type tokens of the component's descendants."""
        return {r.type for r in self.resources[1:]}

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.resources if r.type == type_]

    def manifests(self, kind: str) -> list[dict]:
        """Kubernetes objects of one kind, as the provider would send them."""
        return [r.manifest for r in self.resources if r.manifest is not None and r.manifest["kind"] == kind]


def load(*modules: str) -> None:
    """Import provider SDK modules ahead of a test module's tests: pulumi_aws, pulumi_gcp and
    pulumi_kubernetes import a module on its first use, which costs seconds for the largest (``compute``,
    ``ec2``), once per process. Called from a module-scoped fixture that only the tests which build the
    component use, it keeps that out of their time, and out of collection and the input-error tests (which
    stop before any provider resource) in workers that never build it."""
    for module in modules:
        # The SDKs' modules are lazy (pulumi/_utils.py, _LazyModule): the first attribute read loads them.
        hasattr(importlib.import_module(module), "__all__")


def _run(factory: Callable[[], pulumi.Resource]) -> tuple[pulumi.Resource | None, list[Registration],
                                                           BaseException | None]:
    mocks = PlanMocks()
    monitor = RecordingMonitor(mocks)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    made: list[pulumi.Resource] = []
    error: BaseException | None = None
    # What the offline plan skips too: the SDK reads each registration's source position, which the
    # recording monitor ignores (infra/plan/engine.py).
    stack_trace = pulumi_resource._get_stack_trace
    pulumi_resource._get_stack_trace = source_pb2.StackTrace
    try:
        pulumi_settings.ROOT.set(None)
        pulumi.runtime.set_mocks(mocks, project="neurodock", stack="component-test", preview=False, monitor=monitor)
        loop.run_until_complete(run_pulumi_func(lambda: made.append(factory())))
    except Exception as exc:  # handed to the caller, with what was registered by then
        error = exc
    finally:
        pulumi_resource._get_stack_trace = stack_trace
        pulumi_settings.ROOT.set(None)
        loop.close()
        asyncio.set_event_loop(None)
    return (made[0] if made else None), monitor.registrations, error


def _tree(registrations: list[Registration]) -> list[Registration]:
    """The one component registered under the root stack, then its descendants level by level."""
    [root] = [r for r in registrations if r.type == "pulumi:pulumi:Stack"]
    [me] = [r for r in registrations if r.parent == root.urn]
    descendants, frontier = [], [me.urn]
    while frontier:
        children = sorted((r for r in registrations if r.parent in frontier), key=lambda r: r.urn)
        descendants += children
        frontier = [r.urn for r in children]
    return [me, *descendants]


def build(factory: Callable[[], pulumi.Resource]) -> Built:
    """Construct the component ``factory`` returns, under mocks, and wait for every registration."""
    component, registrations, error = _run(factory)
    if error is not None:
        raise error
    assert component is not None
    return Built(component=component, resources=_tree(registrations))


def input_errors(factory: Callable[[], pulumi.Resource]) -> list[tuple[str, str]]:
    """The (property path, reason) pairs of the ``pulumi.InputPropertiesError`` that constructing the
    component raises, having checked that its message is every reason and that no child exists."""
    _, registrations, error = _run(factory)
    if not isinstance(error, pulumi.InputPropertiesError):
        pytest.fail(f"expected a pulumi.InputPropertiesError, got {error!r}")
    pairs = [(e["property_path"], e["reason"]) for e in error.errors or []]
    assert str(error) == "; ".join(reason for _, reason in pairs)
    components = [r for r in registrations if r.type != "pulumi:pulumi:Stack"]
    assert len(components) <= 1, f"resources created before the input error: {[r.name for r in components[1:]]}"
    return pairs


# -- the harness itself ----------------------------------------------------------------------


class _Probe(pulumi.ComponentResource):
    def __init__(self, name: str, fail: bool = False):
        super().__init__("neurodock:test:Probe", name, None, None)
        if fail:
            raise pulumi.InputPropertiesError("bad", [{"property_path": "x", "reason": "bad"}])
        pulumi.ComponentResource("neurodock:test:Child", f"{name}-child", None,
                                 pulumi.ResourceOptions(parent=self))
        self.register_outputs({})


def test_a_build_records_the_component_and_its_children_only():
    built = build(lambda: _Probe("probe"))
    assert [(r.type, r.name) for r in built.resources] == [
        ("neurodock:test:Probe", "probe"), ("neurodock:test:Child", "probe-child")]
    assert built.resources[1].parent == built.resources[0].urn


def test_builds_share_no_state():
    build(lambda: _Probe("first"))
    assert [r.name for r in build(lambda: _Probe("second")).resources] == ["second", "second-child"]


def test_an_input_error_comes_out_of_the_build():
    assert input_errors(lambda: _Probe("probe", fail=True)) == [("x", "bad")]
    # And the runtime is usable again afterwards.
    assert len(build(lambda: _Probe("after")).resources) == 2


def test_a_child_created_before_the_error_is_reported():
    class Late(pulumi.ComponentResource):
        def __init__(self, name: str):
            super().__init__("neurodock:test:Late", name, None, None)
            pulumi.ComponentResource("neurodock:test:Child", f"{name}-child", None,
                                     pulumi.ResourceOptions(parent=self))
            raise pulumi.InputPropertiesError("bad", [{"property_path": "x", "reason": "bad"}])

    with pytest.raises(AssertionError, match="created before the input error"):
        input_errors(lambda: Late("late"))


def test_another_error_is_not_taken_for_an_input_error():
    def broken() -> pulumi.Resource:
        raise ValueError("not an input error")

    with pytest.raises(pytest.fail.Exception, match="ValueError"):
        input_errors(broken)
