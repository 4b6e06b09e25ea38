"""One served model: its versions (stable, and optionally a canary and a shadow), the cloud identity
each reads its weights with, the InferencePool and endpoint picker of each version the gateway
routes to, and the gateway route that selects it by the request's ``model``.

Everything about a model lives here, resolved once by the caller: a version's servers, sizes and
readiness budgets arrive complete in its :class:`ModelServerArgs`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import pulumi
import pulumi_kubernetes as k8s

from components.gateway.picker import EndpointPicker, EndpointPickerArgs
from components.gateway.routes import Backend, ModelRouteArgs, model_route
from components.serving.eval_job import EvalGateArgs, EvalTarget, eval_job, eval_pod_labels
from components.serving.model_server import PORT, ModelServer, ModelServerArgs
from components.serving.weights_access import (
    GcsWeightsReader,
    GcsWeightsReaderArgs,
    S3WeightsReader,
    S3WeightsReaderArgs,
)
from components.serving.weights_mirror import mirror_job

ReaderArgs = S3WeightsReaderArgs | GcsWeightsReaderArgs


@dataclass(frozen=True, kw_only=True)
class Mirror:
    """Hugging Face weights to mirror into the stack's bucket before the version's replicas start."""

    repo: str
    revision: str
    target: str
    """The bucket prefix the version's server reads (its ``source``)."""
    volume_gib: int
    """Scratch space for the download."""
    storage_class: str
    node_selector: dict[str, str]
    """Where the Job runs: the system pool."""
    deadline_s: int
    """How long the mirror may take."""
    account: pulumi.Resource | None = None
    """The Job's ServiceAccount, filled in by the catalog that creates it."""


@dataclass(frozen=True, kw_only=True)
class Version:
    """One version of the model: its server, and who may read its weights."""

    name: str
    """Resource-name prefix (``<model>``, ``<model>-canary``, ``<model>-shadow``)."""
    server: ModelServerArgs
    reader: ReaderArgs | None
    """The cloud identity of a bucket source; None for Hugging Face sources."""
    shared_storage_class: str | None
    """A ReadWriteMany class: one weights volume for every replica; None: a volume per replica."""
    mirror: Mirror | None
    """Mirror Hugging Face weights into the stack's bucket first; None: the source is read as it is."""
    picker: EndpointPickerArgs | None = None
    """The version's InferencePool and endpoint picker, which the route sends to; None for a shadow
    (it gets mirrored copies at its Service) and without a gateway."""


@dataclass(frozen=True, kw_only=True)
class ServedModelRoute:
    """How the gateway reaches the model."""

    gateway: pulumi.Resource
    """The gateway the route attaches to; the route waits for it."""
    request_timeout_s: int
    """Longest request, streaming included."""
    canary_weight: int
    """Percent of requests sent to the canary."""
    shadow_percent: int
    """Percent of requests mirrored to the shadow."""


@dataclass(frozen=True, kw_only=True)
class ServedModelArgs:
    name: str
    """Kubernetes-safe id of the model; the route's name and the stable version's resource prefix."""
    stable: Version
    canary: Version | None
    shadow: Version | None
    route: ServedModelRoute | None
    """None without a gateway."""
    cloud_provider: pulumi.ProviderResource | None
    """The provider of the weights readers' cloud resources."""
    canary_eval: EvalGateArgs | None = None
    """The suite the canary must pass before the route gives it traffic (default none: no gate)."""
    shadow_eval: EvalGateArgs | None = None
    """The suite the shadow must pass before the route mirrors requests to it (default none: no gate)."""


class ServedModel(pulumi.ComponentResource):
    """The servers, weights identities and route of one model."""

    deployment_name: pulumi.Output[str]
    """The stable version's Deployment."""
    url: pulumi.Output[str]
    """In-cluster OpenAI base URL of the stable version."""
    route: pulumi.Resource | None

    def __init__(self, name: str, args: ServedModelArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("neurodock:serving:ServedModel", name, None, opts)
        # Before this component existed, readers and routes were created at the stack's root and servers
        # under the catalog (this component's parent): aliases keep a running stack's resources in place.
        at_root = [pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)]
        under_catalog = [pulumi.Alias(parent=opts.parent)] if opts and opts.parent else None
        servers: dict[str, ModelServer] = {}
        pickers: dict[str, EndpointPicker] = {}
        jobs: dict[str, pulumi.Resource] = {}
        evals = {key: gate for key, gate in (("canary", args.canary_eval), ("shadow", args.shadow_eval))
                 if gate is not None and getattr(args, key) is not None}
        for key, version in (("stable", args.stable), ("canary", args.canary), ("shadow", args.shadow)):
            if version is None:
                continue
            server = version.server
            if version.reader is not None:
                reader = _reader(version.name, version.reader, pulumi.ResourceOptions(
                    parent=self, providers=[args.cloud_provider] if args.cloud_provider else None, aliases=at_root))
                # The annotation names the identity before its grant exists: replicas wait for both.
                server = replace(server, service_account_annotations=reader.annotations,
                                 wait_for=(*server.wait_for, reader))
            if version.mirror is not None:
                m = version.mirror
                jobs[m.target] = jobs.get(m.target) or mirror_job(
                    # Named by what it mirrors, not where: a stack moved to another region keeps it.
                    f"{version.name}-mirror-{hashlib.sha256(f'{m.repo}@{m.revision}'.encode()).hexdigest()[:8]}",
                    namespace=server.namespace, repo=m.repo, revision=m.revision, target=m.target,
                    aws_region=server.aws_region, hf_token_secret=server.hf_token_secret,
                    volume_gib=m.volume_gib, storage_class=m.storage_class, node_selector=m.node_selector,
                    deadline_s=m.deadline_s, opts=pulumi.ResourceOptions(
                        parent=self, depends_on=[m.account] if m.account else None))
                server = replace(server, wait_for=(*server.wait_for, jobs[m.target]))
            if version.shared_storage_class:
                server = replace(server, shared_cache_claim=self._shared_claim(version, under_catalog))
            if key in evals:
                server = replace(server, allowed_pods=(*server.allowed_pods, eval_pod_labels(version.name)))
            if key == "stable":
                # A gate comparing with the stable version asks its Service too.
                server = replace(server, allowed_pods=(*server.allowed_pods, *(
                    eval_pod_labels(getattr(args, k).name) for k, g in evals.items() if g.max_regression is not None)))
            servers[key] = ModelServer(version.name, server, opts=pulumi.ResourceOptions(
                parent=self, aliases=under_catalog))
            if version.picker is not None:
                picker = version.picker
                if key == "canary":
                    # Its pool selects the stable replicas too: on an upgrade that labels them, the selector changes
                    # only once the servers carry the label, so the pool is never left empty meanwhile.
                    picker = replace(picker, pool_after=(*picker.pool_after, servers["stable"], servers["canary"]))
                pickers[key] = EndpointPicker(f"{version.name}-picker", picker,
                                              opts=pulumi.ResourceOptions(parent=self))
        # The gates: the suite against the canary's (or shadow's) own Service, once its replicas are ready (and
        # the stable version's, when compared with it); the route, which holds both the canary's rule and the
        # shadow's mirror, waits for them, so a failing suite fails `pulumi up` with the route (and so the traffic
        # split and the mirror) unchanged.
        gates: list[pulumi.Resource] = []
        for key, gate in evals.items():
            version = getattr(args, key)
            compare = gate.max_regression is not None
            gates.append(eval_job(f"{version.name}-eval", gate, EvalTarget(
                version=version.name, namespace=version.server.namespace, service=servers[key].service_name,
                port=PORT, served_name=version.server.served_name,
                baseline_service=servers["stable"].service_name if compare else None),
                parent=self, wait_for=[servers[key], *([servers["stable"]] if compare else [])]))
        stable = servers["stable"]
        self.deployment_name = stable.deployment_name
        self.url = stable.url
        self.route = None
        if args.route is not None:
            self.route = model_route(f"{name}-route", ModelRouteArgs(
                name=name,
                namespace=args.stable.server.namespace,
                served_name=args.stable.server.served_name,
                stable=Backend(name=pickers["stable"].pool_name),
                canary=Backend(name=pickers["canary"].pool_name) if "canary" in pickers else None,
                canary_weight=args.route.canary_weight,
                shadow=Backend(name=servers["shadow"].service_name, port=PORT) if "shadow" in servers else None,
                shadow_percent=args.route.shadow_percent,
                request_timeout_s=args.route.request_timeout_s,
            ), pulumi.ResourceOptions(parent=self, depends_on=[args.route.gateway, *servers.values(),
                                                               *pickers.values(), *gates],
                                      aliases=at_root))
        self.register_outputs({"url": self.url})

    def _shared_claim(self, version: Version, aliases: list[pulumi.Alias] | None) -> pulumi.Output[str]:
        return k8s.core.v1.PersistentVolumeClaim(
            f"{version.name}-weights",
            metadata=k8s.meta.v1.ObjectMetaArgs(namespace=version.server.namespace),
            spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                access_modes=["ReadWriteMany"],
                storage_class_name=version.shared_storage_class,
                resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                    requests={"storage": f"{version.server.cache_gib}Gi"}),
            ),
            # Weights are re-downloadable, but a shared cache spares every replica the download.
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True, aliases=aliases),
        ).metadata.name


def _reader(name: str, args: ReaderArgs, opts: pulumi.ResourceOptions) -> S3WeightsReader | GcsWeightsReader:
    if isinstance(args, S3WeightsReaderArgs):
        return S3WeightsReader(f"{name}-weights-reader", args, opts=opts)
    return GcsWeightsReader(f"{name}-weights-reader", args, opts=opts)
