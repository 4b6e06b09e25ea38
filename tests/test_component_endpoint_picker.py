"""EndpointPicker built alone from a minimal chart rendering: its pool, picker and NetworkPolicy, and one
InputPropertiesError per rule its Args break."""

from __future__ import annotations

from dataclasses import replace

import pytest

from components.gateway.picker import SELECTOR_LABEL, EndpointPicker, EndpointPickerArgs
from tests.test_component_harness import build, input_errors

NS = "neurodock-serving"


def _obj(api_version: str, kind: str, name: str, **fields) -> dict:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": NS}, **fields}


POOL = _obj("inference.networking.k8s.io/v1", "InferencePool", "m", spec={
    "selector": {"matchLabels": {"app.kubernetes.io/instance": "m"}}, "targetPorts": [{"number": 8000}],
    "endpointPickerRef": {"name": "m-epp", "port": {"number": 9002}}})
DEPLOYMENT = _obj("apps/v1", "Deployment", "m-epp", spec={
    "selector": {"matchLabels": {SELECTOR_LABEL: "m-epp"}},
    "template": {"metadata": {"labels": {SELECTOR_LABEL: "m-epp"}},
                 "spec": {"containers": [{"name": "epp", "image": "registry.example/epp:v0.10.0"}]}}})
SERVICE = _obj("v1", "Service", "m-epp", spec={"selector": {SELECTOR_LABEL: "m-epp"},
                                                "ports": [{"name": "grpc-ext-proc", "port": 9002}]})
ARGS = EndpointPickerArgs(pool="m", objects=(POOL, DEPLOYMENT, SERVICE),
                          node_selector={"neurodock.io/pool": "system"}, gateway_namespace="neurodock-gateway")


def picker(args: EndpointPickerArgs) -> EndpointPicker:
    return EndpointPicker("m-picker", args)


def test_minimal_args_build_the_pool_its_picker_and_the_picker_network_policy():
    built = build(lambda: picker(ARGS))
    assert built.resources[0].type == "neurodock:gateway:EndpointPicker"
    assert built.types == {"kubernetes:inference.networking.k8s.io/v1:InferencePool",
                           "kubernetes:apps/v1:Deployment", "kubernetes:core/v1:Service",
                           "kubernetes:networking.k8s.io/v1:NetworkPolicy"}
    [policy] = built.manifests("NetworkPolicy")
    assert [p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]] == [9002]


@pytest.mark.parametrize(("objects", "expected"), [
    ((DEPLOYMENT, SERVICE), [("objects", "EndpointPickerArgs.objects must hold one InferencePool (got 0)")]),
    ((POOL, DEPLOYMENT, DEPLOYMENT, SERVICE),
     [("objects", "EndpointPickerArgs.objects must hold one Deployment (got 2)")]),
    ((POOL, DEPLOYMENT), [("objects", "EndpointPickerArgs.objects must hold one Service (got 0)")]),
    ((POOL, DEPLOYMENT, SERVICE, _obj("batch/v1", "Job", "m-job")),
     [("objects", "EndpointPickerArgs.objects holds kinds NeuroDock does not create: ['Job']")]),
    ((POOL, DEPLOYMENT, {**SERVICE, "status": {}}),
     [("objects[2]", "the picker chart's Service m-epp has fields NeuroDock does not create: ['status']")]),
], ids=["a rendering without a pool is refused", "a rendering with two pickers is refused",
        "a rendering without the picker's Service is refused", "a kind NeuroDock does not create is refused",
        "a field NeuroDock does not create is refused"])
def test_rendering_the_picker_cannot_create_is_refused(objects, expected):
    assert input_errors(lambda: picker(replace(ARGS, objects=objects))) == expected


def test_an_active_passive_picker_waits_for_its_leader_alone_and_has_no_budget():
    two = {**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "replicas": 2}}
    built = build(lambda: picker(replace(ARGS, objects=(POOL, two, SERVICE))))
    assert "kubernetes:policy/v1:PodDisruptionBudget" not in built.types
    [deployment] = built.manifests("Deployment")
    assert deployment["metadata"]["annotations"]["pulumi.com/waitFor"] == (
        '["jsonpath={.status.updatedReplicas}=2", "jsonpath={.status.readyReplicas}=1"]')


def test_a_single_picker_keeps_pulumis_own_await():
    [deployment] = build(lambda: picker(ARGS)).manifests("Deployment")
    assert "pulumi.com/waitFor" not in (deployment["metadata"].get("annotations") or {})
