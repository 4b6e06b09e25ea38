"""A local kind cluster whose workers stand in for the stack's node pools.

The cluster is created and deleted by the stack through ``kind`` (pulumi-command), from a kind
config rendered here, so ``pulumi destroy`` removes it. Or, with ``existing_context``, an existing
cluster is used and nothing is created. Pools keep the labels and taints they have on the clouds, so
manifests and scheduling are the same everywhere; GPU pools simply have no GPU behind them on a
laptop, and the component says so.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import pulumi
import pulumi_command as command
import yaml

from components import labels
from components.cluster.base import NodePoolArgs, PoolFacts, pool_facts
from components.errors import InputProblems
from components.versions import KIND_NODE_IMAGES


@dataclass(frozen=True, kw_only=True)
class KindClusterArgs:
    cluster_name: str
    """kind cluster name (its kubeconfig context is ``kind-<name>``)."""
    kubernetes_version: str
    """Kubernetes minor version; must be a key of ``KIND_NODE_IMAGES``."""
    node_pools: tuple[NodePoolArgs, ...] = ()
    """Pools; each becomes ``max(min_nodes, 1)`` workers with the pool's labels and taints."""
    existing_context: str | None = None
    """Use this kubeconfig context and create nothing (default: create a cluster)."""


class KindCluster(pulumi.ComponentResource):
    """A kind cluster, created by the stack or adopted from a kubeconfig context."""

    cluster_name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    kube_context: str | None
    cluster_identifier: pulumi.Output[str] | None = None
    """The Command's id for a created cluster: new only when the cluster is created again. None for an adopted
    context, whose provider input is the context itself."""
    pools: tuple[PoolFacts, ...]
    storage_class: str
    gpuless_pools: tuple[str, ...]
    """GPU pools with no real GPU behind them (all of them, on kind)."""

    def __init__(self, name: str, args: KindClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("neurodock:cluster:KindCluster", name, None, opts)
        problems = InputProblems()
        if args.kubernetes_version not in KIND_NODE_IMAGES:
            problems.add("kubernetes_version",
                         f"KindClusterArgs.kubernetes_version {args.kubernetes_version!r} has no pinned kind node "
                         f"image; use one of {', '.join(sorted(KIND_NODE_IMAGES))}")
        problems.raise_any()
        self.pools = tuple(pool_facts(p, real_gpus=False) for p in args.node_pools)
        self.gpuless_pools = tuple(p.name for p in self.pools if p.gpu_type)
        # kind ships rancher's local-path provisioner as the default storage class.
        self.storage_class = "standard"
        self.kube_context = args.existing_context

        if args.existing_context:
            self.cluster_name = pulumi.Output.from_input(args.cluster_name)
            self.endpoint = pulumi.Output.from_input(f"kubeconfig context {args.existing_context}")
            self.kubeconfig = pulumi.Output.secret("")
        else:
            created = self._create_cluster(name, args)
            self.cluster_name = pulumi.Output.from_input(args.cluster_name)
            self.kubeconfig = pulumi.Output.secret(created.stdout)
            self.endpoint = created.stdout.apply(_server_of)
            # The provider keeps its identity while this stays the same (pulumi-kubernetes 4.34.2
            # provider.go DiffConfig), even where a preview cannot know the kubeconfig: an edit of the kind script
            # runs `update`, whose stdout a preview leaves unknown, and that alone used to replace the provider and
            # every Kubernetes object under it. The Command's id survives updates, previews included (pulumi
            # pkg/resource/deploy/step.go UpdateStep.Apply), and is new when the cluster is created again.
            self.cluster_identifier = created.id.apply(lambda id_: f"kind:{args.cluster_name}:{id_}")

        for pool in self.gpuless_pools:
            pulumi.log.warn(
                f"kind pool {pool!r} stands in for a GPU pool but has no GPU: GPU workloads scheduled "
                "there stay Pending; CPU engines are unaffected",
                resource=self,
            )
        self.register_outputs({
            "clusterName": self.cluster_name,
            "endpoint": self.endpoint,
            "kubeconfig": self.kubeconfig,
        })

    def _create_cluster(self, name: str, args: KindClusterArgs) -> command.local.Command:
        kind_config = render_kind_config(args)
        cluster = shlex.quote(args.cluster_name)
        # kind would otherwise merge the new cluster into ~/.kube/config and switch the user's
        # current context; we write it to a scratch file and print the kubeconfig instead.
        create = (
            "set -eu; scratch=$(mktemp); trap 'rm -f \"$scratch\"' EXIT; "
            f"kind create cluster --name {cluster} --config - --kubeconfig \"$scratch\" --wait 300s >&2; "
            f"kind get kubeconfig --name {cluster}"
        )
        return command.local.Command(
            f"{name}-kind",
            create=create,
            # Without an update script, an input change other than the triggers (this program's script text, after
            # an upgrade) runs `create` again, which kind refuses on the live cluster (pulumi-command v1.2.1
            # local/commandController.go 79-88: Update runs Create when no update is set).
            update=f"kind get kubeconfig --name {cluster}",
            delete=f"kind delete cluster --name {cluster}",
            # stdout is the kubeconfig, client key included: pulumi-command logs stdout by default (v1.2.1
            # local/logging.go 27-29), and the engine masks only config secrets in what it prints.
            logging=command.local.Logging.STDERR,
            stdin=kind_config,
            # A changed node layout can only be applied by recreating the cluster (a trigger's change replaces
            # the Command: pulumi-command's `triggers`).
            triggers=[kind_config],
            opts=pulumi.ResourceOptions(
                parent=self,
                # stdout is the kubeconfig, client key included.
                additional_secret_outputs=["stdout"],
                # The cluster's name is fixed, and kind refuses to create a cluster whose nodes exist ("node(s)
                # already exist for a cluster with the name", kind v0.29.0 pkg/cluster/internal/create/create.go
                # 176-185): Pulumi's default replacement, the new one created before the old one is deleted,
                # would fail, so the old cluster is deleted first.
                delete_before_replace=True,
            ),
        )


def render_kind_config(args: KindClusterArgs) -> str:
    """The kind ``Cluster`` document for the pools (pure, so tests can read it)."""
    image = KIND_NODE_IMAGES[args.kubernetes_version]
    nodes: list[dict] = [{"role": "control-plane", "image": image}]
    for pool in args.node_pools:
        taints = [{"key": t.key, "value": t.value, "effect": t.effect} for t in pool.taints()]
        node_labels = pool.node_labels()
        if pool.gpu_type:
            node_labels[labels.GPU_BACKED_LABEL] = "false"
        worker: dict = {"role": "worker", "image": image, "labels": node_labels}
        if taints:
            # nodeRegistration.taints has the same shape in kubeadm v1beta3 and v1beta4.
            worker["kubeadmConfigPatches"] = [yaml.safe_dump({
                "kind": "JoinConfiguration", "nodeRegistration": {"taints": taints},
            })]
        nodes.extend(dict(worker) for _ in range(max(pool.min_nodes, 1)))
    document = {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "name": args.cluster_name,
                "nodes": nodes}
    return yaml.safe_dump(document, sort_keys=False)


def _server_of(kubeconfig: str) -> str:
    try:
        return yaml.safe_load(kubeconfig)["clusters"][0]["cluster"]["server"]
    except (yaml.YAMLError, KeyError, IndexError, TypeError):
        return ""
