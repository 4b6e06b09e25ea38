"""The route of one model: requests whose ``model`` is the model's served name go to its stable
version, a weighted share to its canary, and a mirrored copy to its shadow.

Plain Gateway API HTTPRoute: header match, weighted ``backendRefs`` and the ``RequestMirror``
filter. Promotion and rollback are config changes that edit the weights; no image is rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.gateway.gateway import GATEWAY_API, GATEWAY_LABELS, GATEWAY_NAME, MODEL_HEADER, NAMESPACE


@dataclass(frozen=True, kw_only=True)
class Backend:
    service: pulumi.Input[str]
    """Service name, in the route's namespace."""
    port: int


@dataclass(frozen=True, kw_only=True)
class ModelRouteArgs:
    name: str
    """The HTTPRoute's name: alerts and dashboards find its Envoy statistics by it (``cluster_name``)."""
    namespace: pulumi.Input[str]
    """Namespace of the route and of every backend Service."""
    served_name: str
    """The OpenAI ``model`` value that selects the route."""
    stable: Backend
    canary: Backend | None = None
    canary_weight: int = 0
    """Percent of requests sent to the canary (0-100)."""
    shadow: Backend | None = None
    shadow_percent: int = 100
    """Percent of requests mirrored to the shadow (1-100)."""
    request_timeout_s: int
    """Longest request, streaming included: long generations must not be cut."""


VARIANT_HEADER = "x-neurodock-variant"
"""Request header naming the version a request was routed to (stable, canary)."""


def cluster_name(namespace: str, route: str) -> str:
    """The Envoy cluster Envoy Gateway builds for the route's only rule, the ``envoy_cluster_name`` of
    its statistics: ``httproute/<namespace>/<name>/rule/0``, then ``/backend/<i>`` per backendRef when
    the backends have filters of their own, and ``-mirror-<filter index>`` for a mirror (gateway v1.7.0
    ``internal/gatewayapi/helpers.go``, ``filters.go``; docs/upstream.md)."""
    return f"httproute/{namespace}/{route}/rule/0"


def model_route(name: str, args: ModelRouteArgs, opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
    _validate(args)
    # Each backend's own filter also gives it its own Envoy cluster (backend/0 stable, backend/1
    # canary), so the gateway's response codes tell the versions apart, whatever their health.
    backends = [_ref(args.stable, 100 - args.canary_weight if args.canary else None, "stable")]
    if args.canary is not None:
        backends.append(_ref(args.canary, args.canary_weight, "canary"))
    rule: dict = {
        "matches": [{"path": {"type": "PathPrefix", "value": "/v1"},
                     "headers": [{"type": "Exact", "name": MODEL_HEADER, "value": args.served_name}]}],
        "backendRefs": backends,
        "timeouts": {"request": f"{args.request_timeout_s}s"},
    }
    if args.shadow is not None:
        # Envoy sends the copy and drops its answer: the shadow never reaches a client.
        rule["filters"] = [{"type": "RequestMirror", "requestMirror": {
            "backendRef": {"group": "", "kind": "Service", "name": args.shadow.service, "port": args.shadow.port},
            "percent": args.shadow_percent,
        }}]
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
            "parentRefs": [{"group": GATEWAY_API, "kind": "Gateway", "name": GATEWAY_NAME, "namespace": NAMESPACE}],
            "rules": [rule],
        },
        opts=opts,
    )


def _ref(backend: Backend, weight: int | None, variant: str) -> dict:
    ref = {"group": "", "kind": "Service", "name": backend.service, "port": backend.port,
           "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
               "set": [{"name": VARIANT_HEADER, "value": variant}]}}]}
    if weight is not None:
        ref["weight"] = weight
    return ref


def _validate(args: ModelRouteArgs) -> None:
    problems = []
    if not 0 <= args.canary_weight <= 100:
        problems.append(f"ModelRouteArgs.canary_weight must be 0-100 (got {args.canary_weight})")
    if args.canary is None and args.canary_weight:
        problems.append("ModelRouteArgs.canary_weight needs a canary")
    if not 1 <= args.shadow_percent <= 100:
        problems.append(f"ModelRouteArgs.shadow_percent must be 1-100 (got {args.shadow_percent})")
    if problems:
        raise ValueError("; ".join(problems))
