"""One model version's InferencePool and its endpoint picker (llm-d router), which scores the
version's replicas on queue depth, KV-cache use and prefix-cache affinity for every request the
gateway sends to the pool, and holds requests in its flow-control queue while no replica is ready.

The objects are the llm-d router chart's own (``llm-d-router-gateway``, rendered by Helm from the
pinned package by the caller), created here one Pulumi resource each rather than as a Helm release:
the chart has no setting for a security context, and its pods must pass Pod Security "restricted" in
the serving namespace. What is changed, and why, is in :func:`harden`; everything else is the chart's.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import labels
from components.errors import InputProblems
from components.k8s import PART_OF_VALUE, RESTRICTED_CONTAINER_SECURITY, checksum

INFERENCE_API = "inference.networking.k8s.io"
EXT_PROC_PORT = 9002
"""The picker's ext_proc port, which the gateway's proxies call (chart ``router.epp.extProcPort``)."""
METRICS_PORT = 9090
"""The picker's Prometheus port (``--metrics-port``, llm-d-router v0.10.0 pkg/epp/server/options.go)."""
PICKER_UID = 65532
"""The user of the picker's image (Dockerfile.epp: ``USER 65532:65532``, distroless nonroot)."""
SELECTOR_LABEL = "llm-d-router-gateway"
"""The label the chart selects the picker's pods by, valued ``<release>-epp`` (routerlib _helpers.tpl)."""


WAIT_FOR = "pulumi.com/waitFor"


def picker_wait_for(replicas: int) -> str:
    """What Pulumi waits for on an active-passive picker: every replica of the new revision (observedGeneration
    current, provider/pkg/await/condition/jsonpath.go:46-52) and one of them ready, the leader."""
    return json.dumps([f"jsonpath={{.status.updatedReplicas}}={replicas}", "jsonpath={.status.readyReplicas}=1"])


def picker_name(pool: str) -> str:
    """The picker's Deployment, Service and ServiceAccount (the chart's ``<release>-epp``)."""
    return f"{pool}-epp"


def picker_pod_labels(pool: str) -> dict[str, str]:
    """Labels that select the pool's picker pods."""
    return {SELECTOR_LABEL: picker_name(pool)}


@dataclass(frozen=True, kw_only=True)
class EndpointPickerArgs:
    pool: str
    """The InferencePool's name, which is the chart's release name."""
    objects: tuple[dict[str, Any], ...]
    """What the chart renders for the pool (``infra.charts.render``)."""
    node_selector: dict[str, str]
    """Where the picker runs: the system pool."""
    gateway_namespace: str
    """Whose pods (the gateway's proxies) may call the picker."""
    monitoring_namespace: str | None = None
    """Whose pods (Prometheus) may scrape it (default: none)."""
    pool_crd: pulumi.Resource | None = None
    """The InferencePool CRD; the pool waits for it."""
    monitoring_crds: pulumi.Resource | None = None
    """The monitoring release (ServiceMonitor CRD), when the chart renders a ServiceMonitor."""
    pool_after: tuple[pulumi.Resource, ...] = ()
    """What the InferencePool waits for besides its CRD: the servers whose pods a changed selector must find
    labelled first (a canary's pool, which selects the stable replicas too)."""


class EndpointPicker(pulumi.ComponentResource):
    """The InferencePool and its picker's Deployment, Service, RBAC, configuration and scrape."""

    pool_name: pulumi.Output[str]
    pod_labels: dict[str, str]
    """Labels of the picker's pods, for the model servers' NetworkPolicy."""

    def __init__(self, name: str, args: EndpointPickerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("neurodock:gateway:EndpointPicker", name, None, opts)
        _validate(args)
        created: dict[str, list[pulumi.Resource]] = {}
        # What others wait for first: a token Secret is deleted by Kubernetes when its ServiceAccount is
        # missing, and the picker starts with its RoleBindings and configuration in place.
        for obj in sorted(harden(args.objects, args.node_selector), key=lambda o: o["kind"] in AFTER):
            kind = obj["kind"]
            depends = [r for before in AFTER.get(kind, ()) for r in created.get(before, [])]
            if kind == "ServiceMonitor" and args.monitoring_crds:
                depends.append(args.monitoring_crds)
            if kind == "InferencePool":
                depends += [*([args.pool_crd] if args.pool_crd is not None else []), *args.pool_after]
            created.setdefault(kind, []).append(_create(f"{name}-{kind.lower()}-{obj['metadata']['name']}", obj,
                                                        pulumi.ResourceOptions(parent=self, depends_on=depends)))
        [pool] = created["InferencePool"]
        self.pod_labels = picker_pod_labels(args.pool)
        # No PodDisruptionBudget: only the leader is ready (llm-d-router v0.10.0 cmd/epp/runner/health.go:76-100),
        # so a budget counting ready pods would allow no eviction of the leader and block every node drain; the
        # standby takes the lease when the leader goes (docs/upstream.md, "picker readiness").
        namespace = next(o["metadata"]["namespace"] for o in args.objects if o["kind"] == "Deployment")
        k8s.networking.v1.NetworkPolicy(
            f"{name}-ingress",
            metadata=k8s.meta.v1.ObjectMetaArgs(namespace=namespace, labels=_labels({})),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=self.pod_labels),
                policy_types=["Ingress"],
                ingress=[k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                    from_=[k8s.networking.v1.NetworkPolicyPeerArgs(namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                        match_labels={"kubernetes.io/metadata.name": ns}))],
                    ports=[k8s.networking.v1.NetworkPolicyPortArgs(port=port, protocol="TCP")],
                ) for ns, port in ((args.gateway_namespace, EXT_PROC_PORT), (args.monitoring_namespace, METRICS_PORT))
                    if ns is not None],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.pool_name = pool.metadata["name"]
        self.register_outputs({"pool": self.pool_name})


AFTER = {"Secret": ("ServiceAccount",), "Deployment": ("ServiceAccount", "RoleBinding", "ClusterRoleBinding",
                                                       "ConfigMap")}
"""What a kind's objects wait for (none of which waits for anything)."""


def harden(objects: tuple[dict[str, Any], ...], node_selector: dict[str, str]) -> list[dict[str, Any]]:
    """The chart's objects with what NeuroDock changes:

    - the picker's pod runs as its image's non-root user with the runtime's seccomp profile, and its
      container drops every capability, cannot escalate and has a read-only root filesystem (Pod
      Security "restricted"; the picker writes no file, llm-d-router v0.10.0);
    - it runs on the system pool, and says that it mounts its ServiceAccount's token (it watches its
      pool and the pool's pods);
    - with more than one replica (leader and standby), they prefer different nodes, and Pulumi waits for the
      leader alone (only it is ready);
    - its pod carries a checksum of its configuration: the picker reads it at its start only
      (llm-d-router v0.10.0 cmd/epp/runner/runner.go), so a change restarts it;
    - every object carries NeuroDock's part-of label.
    """
    config = next((o.get("data") for o in objects if o["kind"] == "ConfigMap"), None)
    out = []
    for original in objects:
        obj = copy.deepcopy(original)
        obj["metadata"]["labels"] = _labels(obj["metadata"].get("labels") or {})
        if obj["kind"] == "Deployment":
            pod = obj["spec"]["template"]["spec"]
            pod["securityContext"] = {"runAsNonRoot": True, "runAsUser": PICKER_UID, "runAsGroup": PICKER_UID,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
            pod["nodeSelector"] = dict(node_selector)
            # It watches its pool and the pool's pods: said outright, as every NeuroDock pod says it.
            pod["automountServiceAccountToken"] = True
            if int(obj["spec"].get("replicas") or 1) > 1:
                # Leader and standby on different nodes: one node drain never takes both.
                pod["affinity"] = {**(pod.get("affinity") or {}), "podAntiAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": obj["spec"]["selector"]["matchLabels"]}}}]}}
                # pulumi-kubernetes' own Deployment await wants every replica ready (v4.34.2
                # provider/pkg/await/deployment.go:676-690), which the standby never is: wait instead for the
                # rollout (the chart's Recreate strategy, routerlib templates/_deployment.yaml:338-345) and one
                # ready leader (a custom waitFor replaces that await, provider/pkg/await/await.go:321-332).
                obj["metadata"]["annotations"] = {**(obj["metadata"].get("annotations") or {}),
                                                  WAIT_FOR: picker_wait_for(int(obj["spec"]["replicas"]))}
            template = obj["spec"]["template"]["metadata"]
            template["annotations"] = {**(template.get("annotations") or {}),
                                       "neurodock.io/config-checksum": checksum(config)}
            for container in pod["containers"]:
                container["securityContext"] = {**RESTRICTED_CONTAINER_SECURITY, "runAsNonRoot": True}
        out.append(obj)
    return out


def _labels(chart_labels: dict[str, str]) -> dict[str, str]:
    return {**chart_labels, labels.PART_OF: PART_OF_VALUE, labels.COMPONENT: "endpoint-picker"}


_TOP_LEVEL = {
    # kind -> the object's top-level fields besides apiVersion, kind and metadata, as the typed resource's
    # keyword arguments.
    "ConfigMap": {"data": "data"},
    "Secret": {"type": "type", "data": "data", "stringData": "string_data"},
    "Service": {"spec": "spec"},
    "ServiceAccount": {"automountServiceAccountToken": "automount_service_account_token"},
    "Deployment": {"spec": "spec"},
    "Role": {"rules": "rules"},
    "ClusterRole": {"rules": "rules"},
    "RoleBinding": {"roleRef": "role_ref", "subjects": "subjects"},
    "ClusterRoleBinding": {"roleRef": "role_ref", "subjects": "subjects"},
}
_TYPED = {
    "ConfigMap": k8s.core.v1.ConfigMap, "Secret": k8s.core.v1.Secret, "Service": k8s.core.v1.Service,
    "ServiceAccount": k8s.core.v1.ServiceAccount, "Deployment": k8s.apps.v1.Deployment,
    "Role": k8s.rbac.v1.Role, "ClusterRole": k8s.rbac.v1.ClusterRole, "RoleBinding": k8s.rbac.v1.RoleBinding,
    "ClusterRoleBinding": k8s.rbac.v1.ClusterRoleBinding,
}


def _create(resource_name: str, obj: dict[str, Any], opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    kind = obj["kind"]
    extra = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    if kind in _TYPED:
        # Fields outside _TOP_LEVEL were refused by _validate.
        return _TYPED[kind](resource_name, metadata=obj["metadata"],
                            **{_TOP_LEVEL[kind][k]: v for k, v in extra.items()}, opts=opts)
    # The InferencePool and the ServiceMonitor: custom resources, checked against their CRDs.
    return k8s.apiextensions.CustomResource(resource_name, api_version=obj["apiVersion"], kind=kind,
                                            metadata=obj["metadata"], opts=opts, **extra)


def _validate(args: EndpointPickerArgs) -> None:
    kinds = [o["kind"] for o in args.objects]
    problems = InputProblems()
    for needed in ("InferencePool", "Deployment", "Service"):
        if kinds.count(needed) != 1:
            problems.add("objects", f"EndpointPickerArgs.objects must hold one {needed} (got {kinds.count(needed)})")
    unsupported = sorted({k for k in kinds if k not in _TYPED and k not in ("InferencePool", "ServiceMonitor")})
    if unsupported:
        problems.add("objects", f"EndpointPickerArgs.objects holds kinds NeuroDock does not create: {unsupported}")
    for i, obj in enumerate(args.objects):
        if obj["kind"] not in _TOP_LEVEL:
            continue  # custom resources take any field their CRD allows
        # Checked here, before any child exists, rather than as each object is created.
        unknown = set(obj) - {"apiVersion", "kind", "metadata"} - set(_TOP_LEVEL[obj["kind"]])
        if unknown:
            problems.add(("objects", i), f"the picker chart's {obj['kind']} {obj['metadata']['name']} has fields "
                         f"NeuroDock does not create: {sorted(unknown)}")
    problems.raise_any()
