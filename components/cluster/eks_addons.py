"""Kubernetes-side add-ons an EKS cluster needs: the Cluster Autoscaler and an encrypted gp3 storage
class. Created with the stack's Kubernetes provider, after the cluster."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components import labels
from components.charts import ChartSource
from components.errors import InputProblems
from components.k8s import PART_OF_VALUE, RESTRICTED_CONTAINER_SECURITY, RESTRICTED_POD_SECURITY
from components.versions import CLUSTER_AUTOSCALER_IMAGE_TAGS

STORAGE_CLASS = "gp3"
"""The default StorageClass this component creates (EBS gp3, encrypted)."""
CLUSTER_TAG = "neurodock:cluster"
"""Tag key whose value is the cluster's name, on every AWS resource of an EKS stack that takes tags: those the
program creates and the EBS volumes the CSI driver creates for the StorageClass's claims. A teardown's orphan
check filters on it (docs/disaster-recovery.md)."""


@dataclass(frozen=True, kw_only=True)
class EksAddonsArgs:
    autoscaler_chart: ChartSource
    """Where the Cluster Autoscaler's release reads its chart (``versions.CLUSTER_AUTOSCALER``)."""
    cluster_name: str
    """EKS cluster name, for the autoscaler's ASG auto-discovery."""
    discovery_tags: tuple[str, ...]
    """Tag keys of the ASGs the autoscaler manages (``eks.autoscaler_discovery_tags``)."""
    region: str
    """AWS region."""
    kubernetes_version: str
    """Cluster minor version; picks the matching autoscaler image."""
    autoscaler_role_arn: pulumi.Input[str]
    """IRSA role of the autoscaler's ServiceAccount."""
    system_node_selector: dict[str, str] = field(default_factory=dict)
    """Where the autoscaler runs: the system pool (default: anywhere)."""
    max_graceful_termination_s: int = 600
    """The longest grace period, in seconds, the autoscaler gives a pod it evicts to remove a node (default: the
    autoscaler's own, 600 s, cluster-autoscaler 1.35.1 config/flags/flags.go:121; it cuts a longer one short,
    core/scaledown/actuation/drain.go:230-236): the gateway proxies' (their drain plus 300 s)."""


class EksAddons(pulumi.ComponentResource):
    """Cluster Autoscaler (scale from zero included) and the default gp3 StorageClass."""

    storage_class: pulumi.Output[str]

    def __init__(self, name: str, args: EksAddonsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("neurodock:cluster:EksAddons", name, None, opts)
        problems = InputProblems()
        tag = CLUSTER_AUTOSCALER_IMAGE_TAGS.get(args.kubernetes_version)
        if tag is None:
            problems.add("kubernetes_version", f"EksAddonsArgs.kubernetes_version {args.kubernetes_version!r} has no "
                         f"pinned autoscaler image; use one of {', '.join(sorted(CLUSTER_AUTOSCALER_IMAGE_TAGS))}")
        problems.raise_any()
        storage = k8s.storage.v1.StorageClass(
            f"{name}-gp3",
            # A fixed name: stacks and charts refer to it.
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=STORAGE_CLASS,
                annotations={"storageclass.kubernetes.io/is-default-class": "true"},
                labels={labels.PART_OF: PART_OF_VALUE},
            ),
            provisioner="ebs.csi.aws.com",
            parameters={
                "type": "gp3", "encrypted": "true", "csi.storage.k8s.io/fstype": "ext4",
                # A parameter named tagSpecification* is a "key=value" tag on every volume the driver creates
                # (aws-ebs-csi-driver v1.64.0 docs/tagging.md, pkg/driver/controller.go:220-222). Without it
                # the driver tags a volume with no cluster: `kubernetes.io/cluster/<id>` needs the controller's
                # --k8s-tag-cluster-id (pkg/driver/controller.go:283-289), which the add-on does not set here.
                # StorageClass parameters are immutable, so adding this replaces the class (same name, deleted
                # first); bound volumes keep their claims.
                "tagSpecification_1": f"{CLUSTER_TAG}={args.cluster_name}",
            },
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True,
            reclaim_policy="Delete",
            opts=pulumi.ResourceOptions(parent=self),
        )
        k8s.helm.v3.Release(
            f"{name}-autoscaler",
            name="cluster-autoscaler",
            **args.autoscaler_chart.release_args(),
            namespace="kube-system",
            values={
                "cloudProvider": "aws",
                "awsRegion": args.region,
                # Explicit rather than the chart's template of the same tags: the IAM condition and
                # the node groups read them from the same function.
                "autoDiscovery": {"clusterName": args.cluster_name, "tags": list(args.discovery_tags)},
                "image": {"tag": tag},
                "rbac": {"serviceAccount": {
                    "name": "cluster-autoscaler",
                    "annotations": {"eks.amazonaws.com/role-arn": args.autoscaler_role_arn},
                }},
                "priorityClassName": "system-cluster-critical",
                # Pod Security "restricted": the chart sets no security context of its own. The image
                # is distroless and needs no root (uid 65534 as the chart's own example).
                "securityContext": {**RESTRICTED_POD_SECURITY, "runAsUser": 65534, "runAsGroup": 65534},
                "containerSecurityContext": RESTRICTED_CONTAINER_SECURITY,
                # Its memory grows with the cluster's nodes and pods; 600Mi holds a few hundred nodes.
                "resources": {"requests": {"cpu": "100m", "memory": "300Mi"}, "limits": {"memory": "600Mi"}},
                "nodeSelector": args.system_node_selector,
                "extraArgs": {
                    "balance-similar-node-groups": "true",
                    # Cheapest fit first; GPU pools are only chosen for pods that need them.
                    "expander": "least-waste",
                    "skip-nodes-with-system-pods": "false",
                    # GPU nodes are expensive: give back idle ones after 10 minutes.
                    "scale-down-unneeded-time": "10m",
                    # A scale-down evicts with the pod's grace period capped at this: a stopping proxy keeps
                    # serving held and running requests for its drain, which may exceed the default 600 s.
                    "max-graceful-termination-sec": str(args.max_graceful_termination_s),
                },
            },
            atomic=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.storage_class = storage.metadata.name
        self.register_outputs({"storageClass": self.storage_class})
