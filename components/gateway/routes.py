"""The route of one model: requests whose ``model`` is the model's served name go to its stable
version's InferencePool, a weighted share to its canary's, and a mirrored copy to its shadow.

Plain Gateway API HTTPRoute: header matches, one InferencePool per rule (what Envoy AI Gateway
v1.1.0 serves: at most one pool in a rule, ``internal/extensionserver/post_cluster_modify.go``), and
the ``RequestMirror`` filter. The canary's share is a second rule, more specific than the stable
one, that also matches the gateway's per-request random bucket (``BUCKET_HEADER``, 0-99) below the
canary's weight. Promotion and rollback are config changes that edit the weight; no image is rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.errors import InputProblems
from components.gateway.gateway import (
    BUCKET_HEADER,
    GATEWAY_API,
    GATEWAY_LABELS,
    GATEWAY_NAME,
    GATEWAY_NAMESPACE,
    MODEL_HEADER,
)
from components.gateway.picker import INFERENCE_API


@dataclass(frozen=True, kw_only=True)
class Backend:
    """A version's InferencePool, or with ``port`` a Service (the shadow's, which gets mirrored copies:
    Envoy Gateway mirrors to Services only)."""

    name: pulumi.Input[str]
    """The InferencePool's or Service's name, in the route's namespace."""
    port: int | None = None
    """The Service's port; None for an InferencePool."""

    def ref(self) -> dict:
        if self.port is None:
            return {"group": INFERENCE_API, "kind": "InferencePool", "name": self.name}
        return {"group": "", "kind": "Service", "name": self.name, "port": self.port}


@dataclass(frozen=True, kw_only=True)
class ModelRouteArgs:
    name: str
    """The HTTPRoute's name: alerts and dashboards find its Envoy statistics by it (``cluster_name``)."""
    namespace: pulumi.Input[str]
    """Namespace of the route and of every backend Service."""
    served_name: str
    """The OpenAI ``model`` value that selects the route."""
    stable: Backend
    """The stable version's InferencePool."""
    canary: Backend | None = None
    """The canary's InferencePool."""
    canary_weight: int
    """Percent of requests sent to the canary (0-100; 0 without a canary)."""
    shadow: Backend | None = None
    """The shadow's Service."""
    shadow_percent: int
    """Percent of requests mirrored to the shadow (1-100)."""
    request_timeout_s: int
    """Longest request, streaming included: long generations must not be cut."""


VARIANT_HEADER = "x-neurodock-variant"
"""Request header naming the version a request was routed to (stable, canary)."""


def cluster_name(namespace: str, route: str, rule: int = 0) -> str:
    """The Envoy cluster Envoy Gateway builds for the route's stable rule, the ``envoy_cluster_name`` of
    its statistics: ``httproute/<namespace>/<name>/rule/0`` (``rule/1`` the canary's, ``-mirror-<filter
    index>`` a mirror's; gateway v1.7.0 ``internal/gatewayapi/helpers.go``, ``filters.go``; docs/upstream.md)."""
    return f"httproute/{namespace}/{route}/rule/{rule}"


def canary_buckets(weight: int) -> str:
    """A regular expression (RE2, whole value) matching the buckets 0 to ``weight - 1``."""
    return "^(" + "|".join(str(b) for b in range(weight)) + ")$"


def model_route(name: str, args: ModelRouteArgs, opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
    _validate(args)
    model = {"type": "Exact", "name": MODEL_HEADER, "value": args.served_name}
    rules = [_rule(args, args.stable, [model], "stable")]
    if args.canary is not None and args.canary_weight:
        # More header matches make the more specific rule, which Gateway API routes first.
        bucket = {"type": "RegularExpression", "name": BUCKET_HEADER, "value": canary_buckets(args.canary_weight)}
        rules.append(_rule(args, args.canary, [model, bucket], "canary"))
    return k8s.apiextensions.CustomResource(
        name,
        api_version=f"{GATEWAY_API}/v1",
        kind="HTTPRoute",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=args.name,
            namespace=args.namespace,
            labels=GATEWAY_LABELS,
            annotations={"neurodock.io/served-name": args.served_name},
        ),
        spec={
            "parentRefs": [{"group": GATEWAY_API, "kind": "Gateway", "name": GATEWAY_NAME,
                            "namespace": GATEWAY_NAMESPACE}],
            "rules": rules,
        },
        opts=opts,
    )


def _rule(args: ModelRouteArgs, backend: Backend, headers: list[dict], variant: str) -> dict:
    # Rule filters: Envoy AI Gateway drops a pool reference's own filters.
    filters: list[dict] = [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
        "set": [{"name": VARIANT_HEADER, "value": variant}]}}]
    if args.shadow is not None:
        # Envoy sends the copy and drops its answer: the shadow never reaches a client.
        filters.append({"type": "RequestMirror", "requestMirror": {
            "backendRef": args.shadow.ref(), "percent": args.shadow_percent}})
    return {
        "matches": [{"path": {"type": "PathPrefix", "value": "/v1"}, "headers": headers}],
        "backendRefs": [backend.ref()],
        "filters": filters,
        # From when the picker has chosen a replica: a request held while the model wakes is not counted.
        "timeouts": {"request": f"{args.request_timeout_s}s"},
    }


def _validate(args: ModelRouteArgs) -> None:
    problems = InputProblems()
    if not 0 <= args.canary_weight <= 100:
        problems.add("canary_weight", f"ModelRouteArgs.canary_weight must be 0-100 (got {args.canary_weight})")
    if args.canary is None and args.canary_weight:
        problems.add("canary_weight", "ModelRouteArgs.canary_weight needs a canary")
    if args.stable.port is not None or (args.canary is not None and args.canary.port is not None):
        problems.add(("stable" if args.stable.port is not None else "canary", "port"),
                     "ModelRouteArgs.stable and canary must be InferencePools (no port)")
    if args.shadow is not None and args.shadow.port is None:
        problems.add(("shadow", "port"),
                     "ModelRouteArgs.shadow must be a Service (with a port): Envoy Gateway mirrors to Services only")
    if not 1 <= args.shadow_percent <= 100:
        problems.add("shadow_percent", f"ModelRouteArgs.shadow_percent must be 1-100 (got {args.shadow_percent})")
    problems.raise_any()
