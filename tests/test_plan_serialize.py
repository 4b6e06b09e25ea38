"""A plan serialises plain input values without the SDK's coroutine per value (``infra.plan.serialize``): the
engine must receive exactly what the SDK's own ``serialize_properties`` sends, names translated by the input
types, maps of user keys left alone, and anything that is not plain data handed to the SDK. And a plan runs
without the cycle collector, and leaves it as it found it."""

from __future__ import annotations

import asyncio
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest
from pulumi.runtime import rpc

from infra.plan.serialize import plain, with_plain_path

DEPLOYMENT = {
    "metadata": {"name": "web", "labels": {"run_as_user": "kept", "app": "web"}},
    "spec": {
        "replicas": 2,
        "selector": {"match_labels": {"app": "web"}},
        "template": {
            "metadata": {"annotations": {"image_pull_policy": "kept"}},
            "spec": {
                "containers": [{"name": "a", "image": "x@sha256:" + "0" * 64, "image_pull_policy": "IfNotPresent",
                                "security_context": {"run_as_user": 1000, "read_only_root_filesystem": True},
                                "args": ("--a", "1"), "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
                "node_selector": {"node_pool": "gpu"},
                "termination_grace_period_seconds": 30.0,
            },
        },
    },
    "extra": None,
}
CRD_SPEC = {
    "group": "example.com",
    "names": {"kind": "Thing", "plural": "things", "list_kind": "ThingList"},
    "scope": "Namespaced",
    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
        "type": "object",
        "x-kubernetes-validations": [{"rule": "self.a == 1", "message": "a is one"}],
        "properties": {"api_version": {"type": "string"}, "x_kubernetes_int_or_string": {"type": "integer",
                                                                                          "default": 1}},
    }}}],
}


def serialized(inputs: dict[str, Any], typ: type | None, *, fast: bool,
               transformer=None) -> tuple[dict[str, Any], dict[str, list]]:
    async def run():
        deps: dict[str, list] = {}
        struct = await rpc.serialize_properties(inputs, deps, None, transformer, typ)
        return rpc.deserialize_properties(struct), {k: sorted(map(id, v)) for k, v in deps.items()}

    original = rpc.serialize_property
    if fast:
        rpc.serialize_property = with_plain_path(original)
    try:
        return asyncio.run(run())
    finally:
        rpc.serialize_property = original


@pytest.mark.parametrize("transformer", [None, str.upper])
@pytest.mark.parametrize(("inputs", "typ"), [
    (DEPLOYMENT, k8s.apps.v1.DeploymentArgs),
    ({"metadata": {"name": "crd"}, "spec": CRD_SPEC}, k8s.apiextensions.v1.CustomResourceDefinitionPatchArgs),
    (DEPLOYMENT, None),
])
def test_plain_inputs_reach_the_engine_as_the_sdk_sends_them(inputs, typ, transformer):
    fast = serialized(inputs, typ, fast=True, transformer=transformer)
    assert fast == serialized(inputs, typ, fast=False, transformer=transformer)
    assert fast[0] != inputs  # the control: names were translated (or tuples made lists) on the way


def test_the_resource_translator_applies_where_no_input_type_does():
    inputs = {"some_key": {"nested_key": [{"inner_key": 1}]}}
    fast = serialized(inputs, None, fast=True, transformer=str.upper)
    assert fast == serialized(inputs, None, fast=False, transformer=str.upper)
    assert fast[0] == {"SOME_KEY": {"NESTED_KEY": [{"INNER_KEY": 1}]}}


def test_what_is_not_plain_data_goes_the_sdks_way():
    class Other:
        pass

    async def check():
        assert plain({"a": [1, "b", None, 2.5, True]}, None, None) == {"a": [1, "b", None, 2.5, True]}
        for value in ({"a": [Other()]}, {"a": pulumi.Output.from_input("x")}, Other()):
            with pytest.raises(Exception):  # noqa: B017 - whatever it is, the SDK's own path takes over
                plain(value, str.upper, None)

    asyncio.run(check())


def test_an_output_inside_a_plain_map_keeps_its_dependencies_and_value():
    async def run(fast: bool):
        original = rpc.serialize_property
        if fast:
            rpc.serialize_property = with_plain_path(original)
        try:
            deps: dict[str, list] = {}
            inputs = {"spec": {"replicas": 1, "selector": {"match_labels": pulumi.Output.from_input({"a": "b"})}}}
            struct = await rpc.serialize_properties(inputs, deps, None, None, k8s.apps.v1.DeploymentArgs)
            return rpc.deserialize_properties(struct)
        finally:
            rpc.serialize_property = original

    fast = asyncio.run(run(True))
    assert fast == asyncio.run(run(False)) == {"spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}}}}


def test_a_plan_runs_without_the_cycle_collector_and_puts_it_back_as_it_was(monkeypatch):
    import gc

    from infra.plan import engine

    seen = []

    def failing(stack, **kwargs):
        seen.append(gc.isenabled())
        raise engine.ProgramError("the program failed")

    monkeypatch.setattr(engine, "_run_plan", failing)
    assert gc.isenabled()
    with pytest.raises(engine.ProgramError):
        engine.run_plan(None)
    assert seen == [False] and gc.isenabled()
    collected = []
    monkeypatch.setattr(engine.gc, "collect", lambda: collected.append(True))
    monkeypatch.setattr(engine, "_planned_without_collector", False)
    gc.disable()  # a caller that had turned it off (the `neurodock` command) keeps it off,
    try:
        with pytest.raises(engine.ProgramError):
            engine.run_plan(None)
        assert seen == [False, False] and not gc.isenabled() and collected == []
        with pytest.raises(engine.ProgramError):  # and each plan after the first frees the one before
            engine.run_plan(None)
        assert seen == [False, False, False] and not gc.isenabled() and collected == [True]
    finally:
        gc.enable()
