"""no-public-exposure: no LoadBalancer Service, and no Envoy Gateway proxy exposed through one,
without an allow-list of sources that excludes the whole internet."""

from __future__ import annotations

from neurodock_policies.support import describe, dig, known, resource_policy

NAME = "no-public-exposure"
OPEN = ("0.0.0.0/0", "::/0")


def _problem(service) -> str | None:
    if dig(service, "type") != "LoadBalancer":
        return None
    ranges = dig(service, "loadBalancerSourceRanges")
    if ranges is not None and not known(ranges):
        return None
    if not ranges:
        return "has no loadBalancerSourceRanges"
    if any(r in OPEN for r in ranges):
        return "allows 0.0.0.0/0"
    return None


def check(resource_type, props, name, config) -> list[str]:
    if resource_type == "kubernetes:core/v1:Service":
        why = _problem(props.get("spec"))
    elif resource_type == "kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyProxy":
        why = _problem(dig(props, "spec", "provider", "kubernetes", "envoyService"))
    else:
        return []
    if why is None:
        return []
    return [f"{describe(resource_type, props, name)} is a public load balancer that {why}; list the client CIDRs "
            "allowed in loadBalancerSourceRanges (NeuroDock: gateway.allowedCidrs), or keep it ClusterIP."]


POLICY = resource_policy(
    NAME,
    "No load balancer or public gateway without an allow-list of sources.",
    check,
)
