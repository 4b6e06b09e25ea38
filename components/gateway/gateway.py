"""The single OpenAI-compatible entry point of every model.

Built from standard parts: Envoy Gateway implements the Kubernetes Gateway API; the body-based
router (BBR) of the Gateway API Inference Extension runs as an Envoy external processor and copies
the request's JSON ``model`` field into the ``X-Gateway-Model-Name`` header; plain Gateway API
HTTPRoutes then match that header, split traffic by weight (canaries) and mirror it (shadows).
Each route's backend is a model version's InferencePool: Envoy AI Gateway's controller, Envoy
Gateway's extension server, has the proxies ask the pool's endpoint picker which replica serves
each request (components/gateway/picker.py).
Clients keep the OpenAI SDK unchanged: base URL, ``model``, and an API key as the bearer token.

Exposure is in-cluster (a ClusterIP Service) unless the stack asks for a public load balancer with
an allow-list of sources. TLS and API keys come from Pulumi secrets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import labels
from components.charts import ChartSource
from components.errors import InputProblems
from components.gateway.keys import SMOKE_TEST_CLIENT, parse_api_keys
from components.gateway.picker import INFERENCE_API
from components.k8s import (
    PART_OF_VALUE,
    RESTRICTED_CONTAINER_SECURITY,
    RESTRICTED_POD_SECURITY,
    checksum,
    namespace,
    restricted_container_security_context,
    restricted_pod_security_context,
)
from components.monitoring import metrics
from components.monitoring.resources import service_monitor
from components.versions import BODY_BASED_ROUTER_IMAGE

GATEWAY_NAMESPACE = "neurodock-gateway"
"""The controller, the Envoy proxies and the body-based router; with monitoring, the only
namespace allowed to reach model servers."""
GATEWAY_CLASS = "neurodock"
GATEWAY_NAME = "neurodock"
PROXY_POD_LABELS = {"app.kubernetes.io/component": "proxy", "app.kubernetes.io/managed-by": "envoy-gateway",
                    "gateway.envoyproxy.io/owning-gateway-name": GATEWAY_NAME}
"""Labels Envoy Gateway puts on the proxy pods of a Gateway (v1.8.3,
internal/infrastructure/kubernetes/proxy/resource.go:50-51; internal/gatewayapi/translator.go:41)."""
ENVOY_UID = 65532
"""The uid Envoy Gateway runs its proxy containers as by default (v1.8.3 proxy/resource.go 489-492, 504-506)."""
PROXY_METRICS_PORT = "metrics"
"""The proxies' Prometheus port (19001, /stats/prometheus), on by default; their Service does not expose it."""
PROXY_METRICS_KEPT = metrics.kept("envoy")
"""Envoy exports thousands of series; the dashboards and alerts read these: the registry's Envoy families
(components/monitoring/metrics.py), the clusters' responses and the clients' (downstream)."""
SERVICE_NAME = "neurodock-gateway"
"""The proxies' Service: a fixed name, so clients and the smoke test have a stable address."""
CONTROLLER_NAME = "gateway.envoyproxy.io/gatewayclass-controller"
MODEL_HEADER = "X-Gateway-Model-Name"
"""Set by the body-based router from the request's ``model`` field; routes match on it."""
ROUTER_HEADERS = (MODEL_HEADER, "X-Gateway-Base-Model-Name")
"""The headers the body-based router sets from the body (bbr v1.4.0 pkg/bbr/handlers/request.go)."""
BUCKET_HEADER = "x-neurodock-bucket"
"""A random number 0-99 the gateway gives each request: the canary rule matches the buckets below its
weight (components/gateway/routes.py)."""
DESTINATION_HEADER = "x-gateway-destination-endpoint"
"""The replica the endpoint picker chose, which the pool's Envoy cluster connects to (ORIGINAL_DST;
envoyproxy/ai-gateway v1.1.0 internal/extensionserver/inferencepool.go)."""
INTERNAL_HEADERS = (*ROUTER_HEADERS, BUCKET_HEADER, DESTINATION_HEADER)
"""Headers only the gateway may set: a client's are removed before any filter runs."""
PREFER_HEADER = "x-neurodock-prefer"
PREFER_VALUE = "canary"
"""Set on every request before any filter (replacing a client's): a canary's endpoint picker prefers the
replicas whose variant label equals it (infra/routing.py). The picker's scorer compares a label with a
request header, and only headers set before the picker's filter reach it; the route's own header filters
run later, in the router."""
BUCKET_LUA = f"""-- NeuroDock: the canary split's bucket, 0-99 per request, from the request's id: Envoy gives every
-- request a random UUID (x-request-id) before any filter, so buckets are uniform and independent across worker
-- threads, which a per-thread math.randomseed(os.time()) would not be (every worker starts in the same second).
function envoy_on_request(request_handle)
  local id = request_handle:headers():get("x-request-id") or ""
  local bits = tonumber(string.sub(string.gsub(id, "-", ""), -8), 16)
  if bits == nil then
    bits = math.random(0, 2147483647)
  end
  request_handle:headers():replace("{BUCKET_HEADER}", tostring(bits % 100))
end
"""
AI_GATEWAY_CONTROLLER = "ai-gateway-controller"
"""Envoy AI Gateway's controller Deployment and Service (chart value ``controller.fullnameOverride``)."""
EXTENSION_PORT = 1063
"""The controller's extension server, which Envoy Gateway calls (plain gRPC; chart ``controller.service``)."""
BBR_NAME = "body-based-router"
BBR_PORT = 9004
BBR_HEALTH_PORT = 9005
CONTROL_PLANE_PORTS = (9443,)
"""Envoy Gateway's webhook port in its pod, which the API server calls (fixed in the gateway-helm chart,
templates/envoy-gateway-deployment.yaml): a private GKE cluster needs it opened to its control plane."""
CLIENT_ID_HEADER = "x-neurodock-client"
"""Carries the authenticated client id to model servers (the key itself is stripped)."""
GATEWAY_API = "gateway.networking.k8s.io"
ENVOY_API = "gateway.envoyproxy.io"
GATEWAY_LABELS = {labels.PART_OF: PART_OF_VALUE, labels.COMPONENT: "gateway"}
BUFFER_LIMIT = "3968Ki"
"""Largest request body the gateway reads (long prompts exceed Envoy's 32 KiB default), under what the
body-based router can take: Envoy sends a buffered body to it as one gRPC message, and its server keeps
grpc-go's default 4 MiB receive limit with no flag to raise it (gateway-api-inference-extension v1.4.0
pkg/bbr/server/runserver.go:84-86; grpc-go v1.79.1 server.go:59), so a body between that and a larger
limit would be answered 500. 128 KiB under it leaves room for the message's framing; a larger body gets
Envoy's 413 (ext_proc.cc, buffered mode over the connection's buffer limit)."""


@dataclass(frozen=True, kw_only=True)
class ModelGatewayArgs:
    chart: ChartSource
    """Where the controller's release reads Envoy Gateway's chart (``versions.ENVOY_GATEWAY``)."""
    served_names: tuple[str, ...]
    """OpenAI ``model`` values served, listed by ``GET /v1/models``."""
    route_namespaces: tuple[str, ...]
    """Namespaces whose HTTPRoutes may attach to the gateway (the serving namespace)."""
    system_node_selector: dict[str, str]
    """Where the controller, proxies and router run: the system pool."""
    proxy_replicas: int
    """Envoy proxy replicas."""
    drain_s: int
    """How long a stopping proxy keeps serving what it has in flight: the longest request a route allows or a
    picker holds. Envoy Gateway gives the pod this plus 300 s to terminate."""
    public: bool
    """A cloud load balancer instead of a ClusterIP Service."""
    allowed_cidrs: tuple[str, ...] = ()
    """Sources allowed to a public load balancer."""
    tls_cert: pulumi.Input[str] | None = None
    """PEM certificate chain; with ``tls_key``, the gateway serves HTTPS only (default: HTTP)."""
    tls_key: pulumi.Input[str] | None = None
    """PEM private key."""
    api_keys: pulumi.Input[str] | None = None
    """JSON object of client id to API key; with it, every request needs a key (default: none)."""
    smoke_test_key: pulumi.Input[str] | None = None
    """The smoke test's own key, added to ``api_keys`` (required with ``api_keys``)."""
    timeout_s: int = 600
    """How long `pulumi up` waits for the controller release (default 600)."""
    chart_crds: tuple[dict, ...] = ()
    """The chart's CRDs (its ``crds/``), applied here ahead of the release, which skips them: Helm
    installs a chart's ``crds/`` on the first install only and never upgrades them, so a chart bump
    would otherwise leave the old CRDs in place. Empty: the release installs them, once."""
    monitoring_crds: pulumi.Resource | None = None
    """The monitoring release (PodMonitor CRD); without it the proxies are not scraped."""
    ai_gateway_crds_chart: ChartSource
    """Envoy AI Gateway's CRDs chart (``versions.AI_GATEWAY_CRDS``)."""
    ai_gateway_chart: ChartSource
    """Envoy AI Gateway's controller chart (``versions.AI_GATEWAY``)."""
    pool_crds: tuple[dict, ...]
    """The InferencePool CRD alone (``versions.INFERENCE_EXTENSION_CRDS``): Envoy Gateway watches pools
    from its start, so the CRD comes first."""


class ModelGateway(pulumi.ComponentResource):
    """Envoy Gateway, the body-based router, the Gateway and its policies."""

    url: str
    """In-cluster base URL of the OpenAI API (``.../v1``)."""
    scheme: str
    port: int
    gateway: k8s.apiextensions.CustomResource
    tls_secret: pulumi.Output[str] | None
    """Name of the Secret holding the certificate, with TLS."""
    ready: list[pulumi.Resource]
    """Resources a request through the gateway needs: routes and smoke tests depend on them."""

    def __init__(self, name: str, args: ModelGatewayArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("neurodock:gateway:ModelGateway", name, None, opts)
        _validate(args)
        self._name = name
        # Baseline is enforced, restricted audited and warned: the Envoy Gateway chart does not let
        # every field restricted needs be set on its controller and certificate Job. What we run
        # here ourselves (proxies, router, smoke test) is restricted, and tests check it.
        ns = namespace(f"{name}-ns", GATEWAY_NAMESPACE, parent=self, component="gateway", pod_security="baseline")
        # Server-side apply, forced over the fields Helm set at the first install: what Envoy Gateway's
        # upgrade guide does with `kubectl apply --server-side --force-conflicts` (docs/upstream.md).
        # Patch resources create a CRD that is missing and take over one that exists.
        chart_crds = [self._crd(crd) for crd in args.chart_crds]
        self.pool_crd = self._crd(args.pool_crds[0]) if args.pool_crds else None
        pool_reader = self._pool_reader(ns)
        release = k8s.helm.v3.Release(
            f"{name}-controller",
            name="envoy-gateway",
            **args.chart.release_args(),
            skip_crds=bool(chart_crds),
            namespace=ns.metadata.name,
            values={
                # Envoy Gateway reloads its configuration file when it changes, whenever the kubelet gets
                # round to updating the mounted ConfigMap: a checksum makes an upgrade restart it at once.
                "deployment": {"pod": {"annotations": {"neurodock.io/config-checksum": checksum(_extension_config())},
                                       "affinity": {"nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [
                        {"key": k, "operator": "In", "values": [v]} for k, v in args.system_node_selector.items()]}]},
                }}}},
                # The certificate Job runs once per install or upgrade; the chart leaves it unbounded.
                "certgen": {"job": {"resources": {"requests": {"cpu": "10m", "memory": "32Mi"},
                                                  "limits": {"memory": "64Mi"}}}},
                "config": {"envoyGateway": _extension_config()},
            },
            atomic=True,
            timeout=args.timeout_s,
            # Envoy Gateway watches InferencePools from its start and is not ready until it can list them.
            opts=self._child(depends_on=[*chart_crds, *filter(None, [self.pool_crd]), pool_reader]),
        )
        crds = self._child(depends_on=[release])
        ai_gateway = self._ai_gateway(args, release)
        proxy = self._envoy_proxy(args, crds)
        if args.monitoring_crds is not None:
            # The proxies' response codes per route backend are the models' error rates: vLLM itself
            # never counts a failed request (docs/upstream.md).
            service_monitor(f"{name}-proxy-monitor", namespace=GATEWAY_NAMESPACE, match_labels=PROXY_POD_LABELS,
                            port=PROXY_METRICS_PORT, path="/stats/prometheus", parent=self,
                            crds=args.monitoring_crds, keep_metrics=PROXY_METRICS_KEPT, kind="PodMonitor")
        gateway_class = k8s.apiextensions.CustomResource(
            f"{name}-class",
            api_version=f"{GATEWAY_API}/v1",
            kind="GatewayClass",
            metadata=_meta(name=GATEWAY_CLASS),
            spec={
                "controllerName": CONTROLLER_NAME,
                "parametersRef": {"group": ENVOY_API, "kind": "EnvoyProxy", "name": proxy.metadata["name"],
                                  "namespace": GATEWAY_NAMESPACE},
            },
            opts=self._child(depends_on=[release, proxy]),
        )
        tls = args.tls_cert is not None
        self.tls_secret = None
        self.scheme, self.port = ("https", 443) if tls else ("http", 80)
        listener: dict = {
            "name": self.scheme,
            "protocol": self.scheme.upper(),
            "port": self.port,
            "allowedRoutes": {"namespaces": {"from": "Selector", "selector": {"matchExpressions": [{
                "key": "kubernetes.io/metadata.name", "operator": "In",
                "values": sorted({GATEWAY_NAMESPACE, *args.route_namespaces})}]}}},
        }
        if tls:
            certificate = k8s.core.v1.Secret(
                f"{name}-tls",
                metadata=_meta(namespace=GATEWAY_NAMESPACE),
                type="kubernetes.io/tls",
                string_data={"tls.crt": args.tls_cert, "tls.key": args.tls_key},
                opts=self._child(depends_on=[ns]),
            )
            self.tls_secret = certificate.metadata.name
            listener["tls"] = {"mode": "Terminate",
                               "certificateRefs": [{"kind": "Secret", "name": certificate.metadata.name}]}
        self.gateway = k8s.apiextensions.CustomResource(
            f"{name}-gateway",
            api_version=f"{GATEWAY_API}/v1",
            kind="Gateway",
            metadata=_meta(name=GATEWAY_NAME, namespace=GATEWAY_NAMESPACE),
            spec={"gatewayClassName": gateway_class.metadata["name"], "listeners": [listener]},
            # The Gateway makes Envoy Gateway create the proxy pods, which Envoy AI Gateway's webhook must admit (it
            # mutates them); a pod created before the webhook exists stays unmutated until it restarts.
            opts=self._child(depends_on=[release, ns, ai_gateway]),
        )
        target = [{"group": GATEWAY_API, "kind": "Gateway", "name": GATEWAY_NAME}]
        k8s.apiextensions.CustomResource(
            f"{name}-client-traffic",
            api_version=f"{ENVOY_API}/v1alpha1",
            kind="ClientTrafficPolicy",
            metadata=_meta(namespace=GATEWAY_NAMESPACE),
            spec={"targetRefs": target, "connection": {"bufferLimit": BUFFER_LIMIT},
                  # Before any filter: routing reads these headers, which only the gateway may set. When
                  # a body has no `model`, the router sets nothing, and a client's header must not route.
                  "headers": {"earlyRequestHeaders": {"remove": list(INTERNAL_HEADERS),
                                                      "set": [{"name": PREFER_HEADER, "value": PREFER_VALUE}]}}},
            opts=self._child(depends_on=[release, self.gateway]),
        )
        router = self._body_based_router(args, crds)
        extension = k8s.apiextensions.CustomResource(
            f"{name}-model-extraction",
            api_version=f"{ENVOY_API}/v1alpha1",
            kind="EnvoyExtensionPolicy",
            metadata=_meta(namespace=GATEWAY_NAMESPACE),
            spec={
                "targetRefs": target,
                "extProc": [{
                    "backendRefs": [{"group": "", "kind": "Service", "name": BBR_NAME, "port": BBR_PORT}],
                    # The router reads the whole body to find `model`; it fails closed: a request
                    # it cannot read is refused rather than sent to an arbitrary model.
                    "processingMode": {"request": {"body": "Buffered"}},
                    "failOpen": False,
                    "messageTimeout": "5s",
                }],
                # Runs before the router's external processor (Envoy Gateway's filter order), whose
                # header change makes Envoy choose the route again, with the bucket set.
                "lua": [{"type": "Inline", "inline": BUCKET_LUA}],
            },
            opts=self._child(depends_on=[release, self.gateway, router]),
        )
        self.ready = [self.gateway, extension, router, ai_gateway]
        if args.api_keys is not None:
            self.ready.append(self._api_key_auth(args, target, crds))
        self.ready.append(self._fallback_routes(args, crds))
        self.url = f"{self.scheme}://{SERVICE_NAME}.{GATEWAY_NAMESPACE}.svc.cluster.local:{self.port}/v1"
        self.register_outputs({"url": self.url})

    def _child(self, **kwargs) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, **kwargs)

    def _crd(self, crd: dict) -> pulumi.Resource:
        # Deleting a Patch gives up its fields, and a CRD cannot lose its group, names and
        # versions: the API server would refuse it. A destroyed stack leaves the CRDs behind.
        return k8s.apiextensions.v1.CustomResourceDefinitionPatch(
            f"{self._name}-crd-{crd['metadata']['name']}",
            metadata={**crd["metadata"], "annotations": {**crd["metadata"].get("annotations", {}),
                                                         "pulumi.com/patchForce": "true"}},
            spec=crd["spec"],
            opts=self._child(retain_on_delete=True),
        )

    def _pool_reader(self, ns: pulumi.Resource) -> pulumi.Resource:
        """Lets Envoy Gateway's ServiceAccount read InferencePools. Envoy AI Gateway's chart grants the
        same, but it installs after Envoy Gateway, which is not ready until it can list them: a first
        install would wait on itself."""
        role = k8s.rbac.v1.ClusterRole(
            f"{self._name}-pool-reader",
            metadata=_meta(),
            rules=[k8s.rbac.v1.PolicyRuleArgs(api_groups=[INFERENCE_API], resources=["inferencepools"],
                                              verbs=["get", "list", "watch"])],
            opts=self._child(),
        )
        return k8s.rbac.v1.ClusterRoleBinding(
            f"{self._name}-pool-reader",
            metadata=_meta(),
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="ClusterRole",
                                             name=role.metadata.name),
            # The ServiceAccount gateway-helm creates for Envoy Gateway (templates/envoy-gateway-serviceaccount.yaml).
            subjects=[k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name="envoy-gateway",
                                              namespace=GATEWAY_NAMESPACE)],
            opts=self._child(depends_on=[ns]),
        )

    def _ai_gateway(self, args: ModelGatewayArgs, envoy_gateway: pulumi.Resource) -> pulumi.Resource:
        """Envoy AI Gateway's CRDs and controller: the extension server that turns a route's
        InferencePool into an Envoy cluster of the pool's replicas, with the picker asked per request.
        Its pods are restricted by the chart's defaults (v1.1.0 values.yaml)."""
        crds = k8s.helm.v3.Release(
            f"{self._name}-ai-gateway-crds", name="ai-gateway-crds", **args.ai_gateway_crds_chart.release_args(),
            namespace=GATEWAY_NAMESPACE, atomic=True, timeout=args.timeout_s,
            opts=self._child(depends_on=[envoy_gateway]))
        return k8s.helm.v3.Release(
            f"{self._name}-ai-gateway",
            name="ai-gateway",
            **args.ai_gateway_chart.release_args(),
            namespace=GATEWAY_NAMESPACE,
            values={
                # Whose ServiceAccount may read InferencePools: Envoy Gateway's, here.
                "envoyGateway": {"namespace": GATEWAY_NAMESPACE},
                "controller": {
                    "nodeSelector": args.system_node_selector,
                    # Its webhook admits every Envoy proxy pod and fails closed: two replicas, one
                    # always up through a drain.
                    "replicaCount": 2,
                    "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
                    "topologySpreadConstraints": [{
                        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "ai-gateway-helm"}}}],
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
                },
            },
            atomic=True,
            timeout=args.timeout_s,
            opts=self._child(depends_on=[crds]),
        )

    def _envoy_proxy(self, args: ModelGatewayArgs, opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
        """The proxies' Deployment and Service: restricted pods on the system pool, and a ClusterIP
        Service unless a public load balancer with an allow-list is asked for."""
        service: dict = {"name": SERVICE_NAME, "type": "ClusterIP"}
        if args.public:
            service = {"name": SERVICE_NAME, "type": "LoadBalancer",
                       "loadBalancerSourceRanges": list(args.allowed_cidrs),
                       # GKE: a passthrough load balancer, the allow-list a firewall rule on the client's address,
                       # which Local keeps up to the pods. EKS, without the AWS Load Balancer Controller: the
                       # in-tree provider's Classic Load Balancer (EKS User Guide, eks-networking-add-ons.adoc
                       # 3158), whose security group applies the allow-list; it does not pass the client's address.
                       "externalTrafficPolicy": "Local"}
        return k8s.apiextensions.CustomResource(
            f"{self._name}-proxy",
            api_version=f"{ENVOY_API}/v1alpha1",
            kind="EnvoyProxy",
            metadata=_meta(namespace=GATEWAY_NAMESPACE),
            spec={"provider": {"type": "Kubernetes", "kubernetes": {
                "envoyService": service,
                "envoyDeployment": {
                    "replicas": args.proxy_replicas,
                    "pod": {
                        "nodeSelector": args.system_node_selector,
                        "securityContext": RESTRICTED_POD_SECURITY,
                        # Two proxies never share a node, and spread over zones where they can: a node drain
                        # or a zone outage takes one at most.
                        "topologySpreadConstraints": [
                            {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                             "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": PROXY_POD_LABELS}},
                            {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                             "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": PROXY_POD_LABELS}},
                        ],
                    },
                    # Restricted, with a writable root: Envoy Gateway gives this securityContext to the
                    # shutdown-manager as well (v1.8.3 internal/infrastructure/kubernetes/proxy/resource.go
                    # 499-513), which writes /tmp/shutdown-ready when a drain ends (internal/cmd/envoy/
                    # shutdown_manager.go 38, 165) and has no volume to write it to. On a read-only root each
                    # proxy pod's preStop would wait out the whole drain timeout. The uid is the image's
                    # (the same file, 489-492).
                    "container": {"securityContext": {**RESTRICTED_CONTAINER_SECURITY, "readOnlyRootFilesystem": False,
                                                      "runAsNonRoot": True, "runAsUser": ENVOY_UID,
                                                      "runAsGroup": ENVOY_UID}},
                },
                # One proxy at a time through an eviction (a node drain, an upgrade): Envoy Gateway renders
                # the PodDisruptionBudget only when asked (v1.8.3 resource_provider.go:527-555).
                "envoyPDB": {"maxUnavailable": 1},
            }},
                # A stopping proxy fails its health checks, leaves the Service, and serves its open requests
                # until they end or the drain timeout passes (v1.8.3 internal/cmd/envoy/shutdown_manager.go
                # 121-165); the default 60 s would cut generations and held requests short.
                "shutdown": {"drainTimeout": f"{args.drain_s}s", "minDrainDuration": "10s"},
            },
            opts=opts,
        )

    def _body_based_router(self, args: ModelGatewayArgs, opts: pulumi.ResourceOptions) -> k8s.apps.v1.Deployment:
        """BBR: a gRPC external processor that copies the body's ``model`` into a header. Plain gRPC
        inside the namespace (a NetworkPolicy admits only the proxies); it watches ConfigMaps of
        its own namespace only."""
        match_labels = {labels.NAME: BBR_NAME, labels.INSTANCE: self._name}
        object_labels = {**match_labels, **GATEWAY_LABELS}
        account = k8s.core.v1.ServiceAccount(
            f"{self._name}-bbr", metadata=_meta(namespace=GATEWAY_NAMESPACE, object_labels=object_labels), opts=opts)
        role = k8s.rbac.v1.Role(
            f"{self._name}-bbr",
            metadata=_meta(namespace=GATEWAY_NAMESPACE, object_labels=object_labels),
            rules=[k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["configmaps"],
                                              verbs=["get", "list", "watch"])],
            opts=opts,
        )
        k8s.rbac.v1.RoleBinding(
            f"{self._name}-bbr",
            metadata=_meta(namespace=GATEWAY_NAMESPACE, object_labels=object_labels),
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="Role",
                                             name=role.metadata.name),
            subjects=[k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=account.metadata.name,
                                              namespace=GATEWAY_NAMESPACE)],
            opts=opts,
        )
        grpc = k8s.core.v1.GRPCActionArgs(port=BBR_HEALTH_PORT)
        deployment = k8s.apps.v1.Deployment(
            f"{self._name}-bbr",
            metadata=_meta(namespace=GATEWAY_NAMESPACE, object_labels=object_labels),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=2,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=match_labels),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=object_labels),
                    spec=k8s.core.v1.PodSpecArgs(
                        service_account_name=account.metadata.name,
                        # It watches the ConfigMaps of its namespace (its Role allows no more).
                        automount_service_account_token=True,
                        security_context=restricted_pod_security_context(65532),
                        node_selector=args.system_node_selector,
                        topology_spread_constraints=[k8s.core.v1.TopologySpreadConstraintArgs(
                            max_skew=1, topology_key="kubernetes.io/hostname", when_unsatisfiable="ScheduleAnyway",
                            label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=match_labels))],
                        containers=[k8s.core.v1.ContainerArgs(
                            name="bbr",
                            image=BODY_BASED_ROUTER_IMAGE,
                            args=[f"--grpc-port={BBR_PORT}", f"--grpc-health-port={BBR_HEALTH_PORT}",
                                  "--secure-serving=false", "--enable-pprof=false", "--v=1"],
                            env=[k8s.core.v1.EnvVarArgs(name="NAMESPACE", value_from=k8s.core.v1.EnvVarSourceArgs(
                                field_ref=k8s.core.v1.ObjectFieldSelectorArgs(field_path="metadata.namespace")))],
                            ports=[k8s.core.v1.ContainerPortArgs(name="grpc", container_port=BBR_PORT),
                                   k8s.core.v1.ContainerPortArgs(name="health", container_port=BBR_HEALTH_PORT)],
                            resources=k8s.core.v1.ResourceRequirementsArgs(
                                requests={"cpu": "100m", "memory": "128Mi"}, limits={"memory": "512Mi"}),
                            readiness_probe=k8s.core.v1.ProbeArgs(grpc=grpc, period_seconds=5),
                            liveness_probe=k8s.core.v1.ProbeArgs(grpc=grpc, period_seconds=10, failure_threshold=3),
                            security_context=restricted_container_security_context(),
                        )],
                    ),
                ),
            ),
            opts=opts,
        )
        k8s.core.v1.Service(
            f"{self._name}-bbr",
            # The name the EnvoyExtensionPolicy refers to.
            metadata=_meta(name=BBR_NAME, namespace=GATEWAY_NAMESPACE, object_labels=object_labels),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP", selector=match_labels,
                ports=[k8s.core.v1.ServicePortArgs(name="grpc", port=BBR_PORT, target_port="grpc",
                                                   app_protocol="kubernetes.io/h2c")]),
            opts=opts,
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{self._name}-bbr",
            metadata=_meta(namespace=GATEWAY_NAMESPACE, object_labels=object_labels),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                max_unavailable=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=match_labels)),
            opts=opts,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{self._name}-bbr",
            metadata=_meta(namespace=GATEWAY_NAMESPACE, object_labels=object_labels),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=match_labels),
                policy_types=["Ingress"],
                ingress=[k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                    from_=[k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs())],
                    ports=[k8s.networking.v1.NetworkPolicyPortArgs(port=BBR_PORT, protocol="TCP")],
                )],
            ),
            opts=opts,
        )
        return deployment

    def _api_key_auth(self, args: ModelGatewayArgs, target: list[dict], opts: pulumi.ResourceOptions
                      ) -> pulumi.Resource:
        """Every request needs a key, sent as OpenAI clients do (``Authorization: Bearer KEY``);
        the key is stripped before the request reaches a model, which gets the client id instead."""
        assert args.api_keys is not None and args.smoke_test_key is not None
        keys = k8s.core.v1.Secret(
            f"{self._name}-api-keys",
            metadata=_meta(namespace=GATEWAY_NAMESPACE),
            type="Opaque",
            string_data=pulumi.Output.all(args.api_keys, args.smoke_test_key).apply(
                lambda values: {**parse_api_keys(values[0]), SMOKE_TEST_CLIENT: values[1]}),
            opts=opts,
        )
        return k8s.apiextensions.CustomResource(
            f"{self._name}-api-key-auth",
            api_version=f"{ENVOY_API}/v1alpha1",
            kind="SecurityPolicy",
            metadata=_meta(namespace=GATEWAY_NAMESPACE),
            spec={"targetRefs": target, "apiKeyAuth": {
                "credentialRefs": [{"group": "", "kind": "Secret", "name": keys.metadata.name}],
                "extractFrom": [{"headers": ["authorization"]}],
                "forwardClientIDHeader": CLIENT_ID_HEADER,
                "sanitize": True,
            }},
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[self.gateway])),
        )

    def _fallback_routes(self, args: ModelGatewayArgs, opts: pulumi.ResourceOptions) -> pulumi.Resource:
        """What no model route matches: ``GET /v1/models`` lists the served models; anything else
        gets an OpenAI-style 404. A route must match before the router runs, so this also makes
        every request reach the router."""
        models = {"object": "list", "data": [
            {"id": served, "object": "model", "created": 0, "owned_by": "neurodock"} for served in args.served_names]}
        not_found = {"error": {"message": "The model does not exist on this gateway; GET /v1/models lists them.",
                               "type": "invalid_request_error", "param": "model", "code": "model_not_found"}}
        filters = {}
        for key, status, body in (("models", 200, models), ("not-found", 404, not_found)):
            filters[key] = k8s.apiextensions.CustomResource(
                f"{self._name}-{key}",
                api_version=f"{ENVOY_API}/v1alpha1",
                kind="HTTPRouteFilter",
                metadata=_meta(namespace=GATEWAY_NAMESPACE),
                spec={"directResponse": {"statusCode": status, "contentType": "application/json",
                                         "body": {"type": "Inline", "inline": json.dumps(body, sort_keys=True)}}},
                opts=opts,
            )

        def answer(key: str) -> list[dict]:
            return [{"type": "ExtensionRef", "extensionRef": {
                "group": ENVOY_API, "kind": "HTTPRouteFilter", "name": filters[key].metadata["name"]}}]

        return k8s.apiextensions.CustomResource(
            f"{self._name}-fallback",
            api_version=f"{GATEWAY_API}/v1",
            kind="HTTPRoute",
            metadata=_meta(namespace=GATEWAY_NAMESPACE),
            spec={
                "parentRefs": [{"group": GATEWAY_API, "kind": "Gateway", "name": GATEWAY_NAME,
                                "namespace": GATEWAY_NAMESPACE}],
                "rules": [
                    {"matches": [{"path": {"type": "Exact", "value": "/v1/models"}, "method": "GET"}],
                     "filters": answer("models")},
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "filters": answer("not-found")},
                ],
            },
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[self.gateway])),
        )


def _extension_config() -> dict:
    """Envoy Gateway's extension manager set to Envoy AI Gateway's controller, with InferencePool as a
    backend it serves: what Envoy AI Gateway v1.1.0 prescribes (manifests/envoy-gateway-values.yaml,
    examples/inference-pool/envoy-gateway-values-addon.yaml), less the EnvoyPatchPolicy API it does not
    need and the Backend API (arbitrary upstream addresses; InferencePools do not use it)."""
    every = {"includeAll": True}
    return {
        "extensionManager": {
            "hooks": {"xdsTranslator": {
                "translation": {"listener": every, "route": every, "cluster": every, "secret": every},
                "post": ["Translation", "Cluster", "Route"]}},
            "service": {"fqdn": {"hostname": f"{AI_GATEWAY_CONTROLLER}.{GATEWAY_NAMESPACE}.svc.cluster.local",
                                 "port": EXTENSION_PORT}},
            "backendResources": [{"group": INFERENCE_API, "kind": "InferencePool", "version": "v1"}],
        },
    }


def _meta(*, name: str | None = None, namespace: str | None = None,
          object_labels: dict[str, str] | None = None) -> k8s.meta.v1.ObjectMetaArgs:
    return k8s.meta.v1.ObjectMetaArgs(
        name=name, namespace=namespace,
        labels=object_labels or GATEWAY_LABELS)


def _validate(args: ModelGatewayArgs) -> None:
    problems = InputProblems()
    if args.public and not args.allowed_cidrs:
        problems.add("allowed_cidrs", "ModelGatewayArgs.allowed_cidrs is required when public is true")
    if (args.tls_cert is None) != (args.tls_key is None):
        # The path names the half that is missing.
        problems.add("tls_key" if args.tls_key is None else "tls_cert",
                     "ModelGatewayArgs.tls_cert and tls_key go together")
    if args.api_keys is not None and args.smoke_test_key is None:
        problems.add("smoke_test_key", "ModelGatewayArgs.smoke_test_key is required with api_keys")
    if not args.served_names:
        problems.add("served_names", "ModelGatewayArgs.served_names must not be empty")
    problems.raise_any()
