"""Config -> the gateway, and the smoke test that runs after each deployment."""

from __future__ import annotations

import hashlib
import json

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.cluster.base import Cluster, system_node_selector
from components.gateway.gateway import GATEWAY_NAMESPACE, ModelGateway, ModelGatewayArgs
from components.gateway.smoke_test import SmokeTest, SmokeTestArgs
from components.serving.catalog import SERVING_NAMESPACE, ModelCatalog
from components.versions import (
    AI_GATEWAY,
    AI_GATEWAY_CRDS,
    ENDPOINT_PICKER_IMAGE,
    ENVOY_GATEWAY,
    INFERENCE_EXTENSION_CRDS,
    LLAMACPP_IMAGE,
    VLLM_IMAGE,
)
from infra import charts
from infra.config import StackConfig
from infra.readiness import budgets
from infra.routing import drain_seconds, hold_seconds
from infra.secrets import StackSecrets


def stack_drain_seconds(config: StackConfig) -> int:
    """How long the stack's gateway proxies drain (``drain_seconds``): the holds of its models at zero
    are their wake budgets."""
    return drain_seconds(list(config.models), {m.name: hold_seconds(budgets(config, m))
                                               for m in config.models if m.min_replicas == 0})


def build_gateway(
    config: StackConfig,
    cluster: Cluster,
    secrets: StackSecrets,
    random_provider: pulumi.ProviderResource,
    crds: pulumi.Resource | None,
    opts: pulumi.ResourceOptions,
) -> tuple[ModelGateway, pulumi.Output[str] | None]:
    """The gateway, and the smoke test's API key (None when the gateway takes no keys). Each model's
    route is its ``ServedModel``'s."""
    system_selector = system_node_selector(cluster)
    gw = config.gateway
    chart = charts.source(ENVOY_GATEWAY, config.chart_mirror)
    served = tuple(m.model_name for m in config.models)
    smoke_key = None
    if secrets.gateway_api_keys is not None:
        smoke_key = random.RandomPassword("gateway-smoke-test-key", length=48, special=False,
                                          opts=pulumi.ResourceOptions(provider=random_provider)).result
    gateway = ModelGateway(
        "gateway",
        ModelGatewayArgs(
            chart=chart,
            chart_crds=charts.crds(chart),
            served_names=served,
            route_namespaces=(SERVING_NAMESPACE,),
            system_node_selector=system_selector,
            # One proxy is enough on a laptop; elsewhere two ride out a node drain.
            proxy_replicas=1 if config.cloud.provider == "kind" else 2,
            drain_s=stack_drain_seconds(config),
            public=gw.public,
            allowed_cidrs=tuple(gw.allowed_cidrs),
            tls_cert=secrets.gateway_tls_cert if gw.tls else None,
            tls_key=secrets.gateway_tls_key if gw.tls else None,
            api_keys=secrets.gateway_api_keys,
            smoke_test_key=smoke_key,
            monitoring_crds=crds,
            ai_gateway_crds_chart=charts.source(AI_GATEWAY_CRDS, config.chart_mirror),
            ai_gateway_chart=charts.source(AI_GATEWAY, config.chart_mirror),
            pool_crds=charts.crd_bundle(INFERENCE_EXTENSION_CRDS),
        ),
        opts=opts,
    )
    return gateway, smoke_key


def build_smoke_test(config: StackConfig, cluster: Cluster, gateway: ModelGateway, smoke_key: pulumi.Output[str] | None,
                     catalog: ModelCatalog, opts: pulumi.ResourceOptions) -> None:
    """After each change to serving, a chat completion to every model through the gateway."""
    if not config.gateway.smoke_test:
        return
    key_secret = None
    if smoke_key is not None:
        key_secret = k8s.core.v1.Secret(
            "gateway-smoke-test-key",
            metadata=k8s.meta.v1.ObjectMetaArgs(namespace=GATEWAY_NAMESPACE),
            type="Opaque",
            string_data={"key": smoke_key},
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[gateway])),
        ).metadata.name
    SmokeTest(
        "smoke-test",
        SmokeTestArgs(
            gateway_url=gateway.url,
            served_names=tuple(m.model_name for m in config.models),
            revision=serving_revision(config),
            node_selector=system_node_selector(cluster),
            api_key_secret=key_secret,
            ca_secret=gateway.tls_secret,
            # Models at zero are woken by the test's own request, held by their picker meanwhile.
            wake_s={m.model_name: hold_seconds(budgets(config, m)) for m in config.models if m.min_replicas == 0},
        ),
        opts=pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(depends_on=[gateway, catalog, *gateway.ready, *catalog.routes])),
    )


def serving_revision(config: StackConfig) -> str:
    """A hash of everything that changes what answers a request: models, variants, weights, flags,
    images and the gateway's settings. A new value replaces the smoke-test Job, so it runs again."""
    document = {
        "models": [m.model_dump(mode="json", by_alias=True) for m in config.models],
        "gateway": config.gateway.model_dump(mode="json", by_alias=True),
        "images": [VLLM_IMAGE, LLAMACPP_IMAGE, list(ENDPOINT_PICKER_IMAGE)],
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
