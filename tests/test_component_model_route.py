"""A model's HTTPRoute built alone: its stable rule, and one InputPropertiesError per rule its Args break
(weights, backends, mirroring)."""

from __future__ import annotations

from dataclasses import replace

import pulumi
import pytest

from components.gateway.routes import Backend, ModelRouteArgs, model_route
from tests.test_component_harness import build, input_errors

ARGS = ModelRouteArgs(name="m", namespace="neurodock-serving", served_name="org/m", stable=Backend(name="m-pool"),
                      canary_weight=0, shadow_percent=100, request_timeout_s=600)
CANARY = Backend(name="m-canary-pool")
SHADOW = Backend(name="m-shadow", port=8000)


def route(args: ModelRouteArgs) -> pulumi.Resource:
    return model_route("m-route", args, pulumi.ResourceOptions())


def test_minimal_args_route_the_model_to_its_stable_pool():
    built = build(lambda: route(ARGS))
    assert [r.type for r in built.resources] == ["kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"]
    [manifest] = built.manifests("HTTPRoute")
    assert [rule["backendRefs"] for rule in manifest["spec"]["rules"]] == [
        [{"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "m-pool"}]]


@pytest.mark.parametrize(("change", "expected"), [
    ({"canary": CANARY, "canary_weight": 101},
     [("canary_weight", "ModelRouteArgs.canary_weight must be 0-100 (got 101)")]),
    ({"canary_weight": 10}, [("canary_weight", "ModelRouteArgs.canary_weight needs a canary")]),
    ({"stable": Backend(name="m", port=8000)},
     [("stable.port", "ModelRouteArgs.stable and canary must be InferencePools (no port)")]),
    ({"canary": Backend(name="m-canary", port=8000), "canary_weight": 10},
     [("canary.port", "ModelRouteArgs.stable and canary must be InferencePools (no port)")]),
    ({"shadow": Backend(name="m-shadow-pool")},
     [("shadow.port",
       "ModelRouteArgs.shadow must be a Service (with a port): Envoy Gateway mirrors to Services only")]),
    ({"shadow": SHADOW, "shadow_percent": 0},
     [("shadow_percent", "ModelRouteArgs.shadow_percent must be 1-100 (got 0)")]),
], ids=["a canary weight above 100 is refused", "a canary weight without a canary is refused",
        "a stable Service instead of a pool is refused", "a canary Service instead of a pool is refused",
        "a shadow pool instead of a Service is refused", "a shadow percent of 0 is refused"])
def test_a_broken_route_is_refused(change, expected):
    assert input_errors(lambda: route(replace(ARGS, **change))) == expected


def test_every_problem_is_reported_at_once():
    assert input_errors(lambda: route(replace(ARGS, canary_weight=150, shadow_percent=0))) == [
        ("canary_weight", "ModelRouteArgs.canary_weight must be 0-100 (got 150)"),
        ("canary_weight", "ModelRouteArgs.canary_weight needs a canary"),
        ("shadow_percent", "ModelRouteArgs.shadow_percent must be 1-100 (got 0)"),
    ]
