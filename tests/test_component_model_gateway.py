"""ModelGateway built alone: Envoy Gateway, Envoy AI Gateway, the body-based router, the Gateway and its
policies from minimal Args, and one InputPropertiesError per rule its Args break."""

from __future__ import annotations

from dataclasses import replace

import pytest

from components.charts import ChartSource
from components.gateway.gateway import ModelGateway, ModelGatewayArgs
from components.versions import AI_GATEWAY, AI_GATEWAY_CRDS, ENVOY_GATEWAY
from tests.test_component_harness import build, input_errors

ARGS = ModelGatewayArgs(
    chart=ChartSource(ENVOY_GATEWAY),
    served_names=("org/m",),
    route_namespaces=("neurodock-serving",),
    system_node_selector={"neurodock.io/pool": "system"},
    proxy_replicas=2,
    drain_s=660,
    public=False,
    ai_gateway_crds_chart=ChartSource(AI_GATEWAY_CRDS),
    ai_gateway_chart=ChartSource(AI_GATEWAY),
    pool_crds=(),
)
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def gateway(args: ModelGatewayArgs) -> ModelGateway:
    return ModelGateway("gateway", args)


def test_minimal_args_build_the_controllers_router_gateway_and_its_policies():
    built = build(lambda: gateway(ARGS))
    assert built.resources[0].type == "neurodock:gateway:ModelGateway"
    envoy = "kubernetes:gateway.envoyproxy.io/v1alpha1"
    assert built.types == {
        "kubernetes:core/v1:Namespace", "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole",
        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding", "kubernetes:helm.sh/v3:Release",
        f"{envoy}:EnvoyProxy", "kubernetes:gateway.networking.k8s.io/v1:GatewayClass",
        "kubernetes:gateway.networking.k8s.io/v1:Gateway", f"{envoy}:ClientTrafficPolicy",
        "kubernetes:core/v1:ServiceAccount", "kubernetes:rbac.authorization.k8s.io/v1:Role",
        "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", "kubernetes:apps/v1:Deployment",
        "kubernetes:core/v1:Service", "kubernetes:policy/v1:PodDisruptionBudget",
        "kubernetes:networking.k8s.io/v1:NetworkPolicy", f"{envoy}:EnvoyExtensionPolicy",
        f"{envoy}:HTTPRouteFilter", "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute",
    }
    # Without TLS or keys: an HTTP listener, no certificate, no key check.
    [listener] = built.manifests("Gateway")[0]["spec"]["listeners"]
    assert listener["protocol"] == "HTTP"
    assert not built.manifests("SecurityPolicy") and not built.manifests("Secret")
    assert len(built.of_type("kubernetes:helm.sh/v3:Release")) == 3


@pytest.mark.parametrize(("change", "expected"), [
    ({"public": True}, [("allowed_cidrs", "ModelGatewayArgs.allowed_cidrs is required when public is true")]),
    ({"tls_cert": PEM}, [("tls_key", "ModelGatewayArgs.tls_cert and tls_key go together")]),
    ({"tls_key": PEM}, [("tls_cert", "ModelGatewayArgs.tls_cert and tls_key go together")]),
    ({"api_keys": '{"team-a": "sk-0123456789abcdef"}'},
     [("smoke_test_key", "ModelGatewayArgs.smoke_test_key is required with api_keys")]),
    ({"served_names": ()}, [("served_names", "ModelGatewayArgs.served_names must not be empty")]),
], ids=["a public gateway without an allow-list is refused", "a certificate without its key is refused",
        "a key without its certificate is refused", "API keys without the smoke test's key are refused",
        "a gateway serving no model is refused"])
def test_a_broken_gateway_is_refused(change, expected):
    assert input_errors(lambda: gateway(replace(ARGS, **change))) == expected


def test_every_problem_is_reported_at_once():
    assert [path for path, _ in input_errors(lambda: gateway(replace(ARGS, public=True, served_names=())))] == [
        "allowed_cidrs", "served_names"]
