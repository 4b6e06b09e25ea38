"""no-public-exposure: no LoadBalancer Service, Envoy Gateway proxy or Ingress reachable from the
internet without an allow-list of sources.

A load balancer is internal when its cloud annotation says so; otherwise it needs source ranges,
and no range may be wider than the configured prefix lengths (``0.0.0.0/0`` is the whole internet,
and so, for a model endpoint, is ``0.0.0.0/1``). An Ingress has no standard source field, so the
controllers' own allow-list annotations count, and an Ingress with neither is public.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from pulumi_policy import PolicyConfigSchema

from neurodock_policies.support import describe, dig, known, resource_policy

NAME = "no-public-exposure"
CONFIG_SCHEMA = PolicyConfigSchema(properties={
    "minIpv4PrefixLength": {"type": "integer", "minimum": 1, "maximum": 32, "default": 8,
                            "description": "An IPv4 source range wider than this prefix counts as public."},
    "minIpv6PrefixLength": {"type": "integer", "minimum": 1, "maximum": 128, "default": 32,
                            "description": "An IPv6 source range wider than this prefix counts as public."},
})
INTERNAL_SERVICE_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
    "service.beta.kubernetes.io/aws-load-balancer-internal": "true",
    "networking.gke.io/load-balancer-type": "Internal",
}
SOURCE_RANGE_ANNOTATION = "service.beta.kubernetes.io/load-balancer-source-ranges"
INTERNAL_INGRESS_ANNOTATIONS = {
    "alb.ingress.kubernetes.io/scheme": "internal",
    "kubernetes.io/ingress.class": "gce-internal",
}
INGRESS_SOURCE_ANNOTATIONS = (
    "alb.ingress.kubernetes.io/inbound-cidrs",
    "nginx.ingress.kubernetes.io/whitelist-source-range",
    "nginx.ingress.kubernetes.io/allowlist-source-range",
)
FIX = ("list the client CIDRs allowed (loadBalancerSourceRanges; NeuroDock: gateway.allowedCidrs), "
       "or keep it internal")


def _split(annotation: object) -> list[str] | None:
    if not isinstance(annotation, str) or not annotation.strip():
        return None
    return [part.strip() for part in annotation.split(",") if part.strip()]


def _range_problem(ranges: list, config: Mapping) -> str | None:
    """Why these source ranges do not restrict who can connect, or None when they do."""
    if not ranges:
        return "has no source ranges"
    limits = {4: config["minIpv4PrefixLength"], 6: config["minIpv6PrefixLength"]}
    for text in ranges:
        if not known(text):
            continue
        try:
            network = ipaddress.ip_network(str(text), strict=False)
        except ValueError:
            return f"has the invalid source range '{text}'"
        if network.prefixlen < limits[network.version]:
            return f"allows {text}, wider than /{limits[network.version]}"
    return None


def _annotated(annotations: Mapping, wanted: Mapping[str, str]) -> bool:
    return any(str(annotations.get(key, "")).lower() == value.lower() for key, value in wanted.items())


def _service_problem(service: object, annotations: Mapping, config: Mapping) -> str | None:
    if dig(service, "type") != "LoadBalancer" or _annotated(annotations, INTERNAL_SERVICE_ANNOTATIONS):
        return None
    ranges = dig(service, "loadBalancerSourceRanges")
    if ranges is not None and not known(ranges):
        return None
    return _range_problem(list(ranges or _split(annotations.get(SOURCE_RANGE_ANNOTATION)) or []), config)


def _ingress_problem(annotations: Mapping, config: Mapping) -> str | None:
    if _annotated(annotations, INTERNAL_INGRESS_ANNOTATIONS):
        return None
    for key in INGRESS_SOURCE_ANNOTATIONS:
        if key in annotations and not known(annotations[key]):
            return None
        if ranges := _split(annotations.get(key)):
            return _range_problem(ranges, config)
    return "has neither an internal scheme nor a source allow-list annotation"


def check(resource_type, props, name, config) -> list[str]:
    annotations = dig(props, "metadata", "annotations")
    annotations = annotations if isinstance(annotations, Mapping) else {}
    if resource_type == "kubernetes:core/v1:Service":
        why = _service_problem(props.get("spec"), annotations, config)
    elif resource_type == "kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyProxy":
        service = dig(props, "spec", "provider", "kubernetes", "envoyService")
        service_annotations = dig(service, "annotations")
        why = _service_problem(service, service_annotations if isinstance(service_annotations, Mapping) else {},
                               config)
    elif resource_type == "kubernetes:networking.k8s.io/v1:Ingress":
        why = _ingress_problem(annotations, config)
    else:
        return []
    if why is None:
        return []
    return [f"{describe(resource_type, props, name)} is reachable from the internet and {why}; {FIX}."]


POLICY = resource_policy(
    NAME,
    "No load balancer, public gateway or Ingress without an allow-list of sources.",
    check,
    config_schema=CONFIG_SCHEMA,
)
