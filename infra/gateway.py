"""Config -> the gateway, one route per model, and the smoke test that runs after each deployment."""

from __future__ import annotations

import hashlib
import json

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.cluster.base import Cluster, system_node_selector
from components.gateway.gateway import NAMESPACE as GATEWAY_NAMESPACE
from components.gateway.gateway import ModelGateway, ModelGatewayArgs
from components.gateway.routes import Backend, ModelRouteArgs, model_route
from components.gateway.smoke_test import SmokeTest, SmokeTestArgs
from components.serving.catalog import NAMESPACE as SERVING_NAMESPACE
from components.serving.catalog import ModelCatalog
from components.serving.model_server import PORT
from components.versions import ENVOY_GATEWAY, LLAMACPP_IMAGE, VLLM_IMAGE
from infra import charts
from infra.config import StackConfig
from infra.secrets import StackSecrets


def build_gateway(
    config: StackConfig,
    cluster: Cluster,
    catalog: ModelCatalog,
    secrets: StackSecrets,
    random_provider: pulumi.ProviderResource,
    crds: pulumi.Resource | None,
    opts: pulumi.ResourceOptions,
) -> ModelGateway:
    """The gateway, the routes of every model, and (unless turned off) the smoke test."""
    system_selector = system_node_selector(cluster)
    gw = config.gateway
    served = tuple(m.model_name for m in config.models)
    smoke_key = None
    if secrets.gateway_api_keys is not None:
        smoke_key = random.RandomPassword("gateway-smoke-test-key", length=48, special=False,
                                          opts=pulumi.ResourceOptions(provider=random_provider)).result
    gateway = ModelGateway(
        "gateway",
        ModelGatewayArgs(
            chart=charts.source(ENVOY_GATEWAY),
            served_names=served,
            route_namespaces=(SERVING_NAMESPACE,),
            system_node_selector=system_selector,
            # One proxy is enough on a laptop; elsewhere two ride out a node drain.
            proxy_replicas=1 if config.cloud.provider == "kind" else 2,
            public=gw.public,
            allowed_cidrs=tuple(gw.allowed_cidrs),
            tls_cert=secrets.gateway_tls_cert if gw.tls else None,
            tls_key=secrets.gateway_tls_key if gw.tls else None,
            api_keys=secrets.gateway_api_keys,
            smoke_test_key=smoke_key,
            monitoring_crds=crds,
        ),
        opts=opts,
    )
    route_opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[gateway, catalog]))
    routes = []
    for model in config.models:
        budgets = model.readiness or config.readiness
        routes.append(model_route(f"{model.name}-route", ModelRouteArgs(
            name=model.name,
            namespace=SERVING_NAMESPACE,
            served_name=model.model_name,
            stable=Backend(service=catalog.services[model.name], port=PORT),
            canary=Backend(service=catalog.services[model.variant_name("canary")], port=PORT) if model.canary else None,
            canary_weight=model.canary.weight if model.canary else 0,
            shadow=Backend(service=catalog.services[model.variant_name("shadow")], port=PORT) if model.shadow else None,
            shadow_percent=model.shadow.percent if model.shadow else 100,
            request_timeout_s=max(600, budgets.model_load_seconds),
        ), route_opts))
    # A model scaled to zero has no replica to answer until traffic wakes it: it is not asked.
    awake = tuple(m.model_name for m in config.models if m.min_replicas > 0)
    if gw.smoke_test and awake:
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
                served_names=awake,
                revision=serving_revision(config),
                node_selector=system_selector,
                api_key_secret=key_secret,
                ca_secret=gateway.tls_secret,
            ),
            opts=pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(depends_on=[gateway, catalog, *gateway.ready, *routes])),
        )
    return gateway


def serving_revision(config: StackConfig) -> str:
    """A hash of everything that changes what answers a request: models, variants, weights, flags,
    images and the gateway's settings. A new value replaces the smoke-test Job, so it runs again."""
    document = {
        "models": [m.model_dump(mode="json", by_alias=True) for m in config.models],
        "gateway": config.gateway.model_dump(mode="json", by_alias=True),
        "images": [VLLM_IMAGE, LLAMACPP_IMAGE],
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
