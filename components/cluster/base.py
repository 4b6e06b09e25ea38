"""What every cluster component offers downstream, and the node-pool arguments they share.

GPU enablement, monitoring and serving only see :class:`Cluster`: a kubeconfig for the explicit
Kubernetes provider, the node pools with their GPU facts, and a storage class for model weights.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol

import pulumi

from components import labels
from components.gpu.catalog import GPU_MODELS, devices_per_gpu


class PoolRole(StrEnum):
    SYSTEM = "system"
    CPU = "cpu"
    GPU = "gpu"


class Capacity(StrEnum):
    ON_DEMAND = "onDemand"
    SPOT = "spot"


@dataclass(frozen=True, kw_only=True)
class Taint:
    key: str
    value: str
    effect: str

    @property
    def cloud_effect(self) -> str:
        """The effect as the EKS and GKE APIs spell it (``NoSchedule`` -> ``NO_SCHEDULE``)."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.effect).upper()


class SharingStrategy(StrEnum):
    TIME_SHARING = "timeSharing"
    MIG = "mig"


@dataclass(frozen=True, kw_only=True)
class GpuSharing:
    strategy: SharingStrategy
    """Time-slicing (any GPU) or MIG partitions (A100, H100, H200)."""
    max_shared_clients: int = 2
    """Time-slicing: pods per GPU (default 2)."""
    partition_size: str | None = None
    """MIG: slice size such as ``1g.10gb``."""

    def devices_per_gpu(self, gpu_type: str | None) -> int:
        """``nvidia.com/gpu`` a node advertises per physical GPU: one per time-slicing client, or one
        per MIG partition (GKE docs, "Time-sharing GPUs" and "Multi-instance GPUs")."""
        devices = devices_per_gpu(gpu_type or "", self.strategy, self.max_shared_clients, self.partition_size)
        assert devices is not None, f"validated: {gpu_type} has MIG partitions {self.partition_size}"
        return devices


@dataclass(frozen=True, kw_only=True)
class NodePoolArgs:
    """One node pool, cloud-neutral."""

    name: str
    """Pool name, unique in the cluster; part of cloud resource names."""
    role: PoolRole
    """System add-ons, CPU workloads or GPU workloads."""
    instance_types: tuple[str, ...] = ()
    """EKS instance types or the GKE machine type; unused on kind (default none)."""
    min_nodes: int
    """Fewest nodes; 0 allows scale to zero."""
    max_nodes: int
    """Most nodes."""
    capacity: Capacity
    """On-demand or spot."""
    disk_size_gib: int
    """Root volume size in GiB."""
    gpu_type: str | None = None
    """GPU catalog name, for GPU pools (default none)."""
    gpu_count: int = 0
    """GPUs per node (default 0)."""
    gpu_sharing: GpuSharing | None = None
    """How pods share each GPU (default: they do not)."""
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    """Extra node labels (default none)."""

    @property
    def gpu_memory_gib(self) -> int:
        return GPU_MODELS[self.gpu_type].memory_gib if self.gpu_type else 0

    def node_labels(self) -> dict[str, str]:
        """Labels every node of the pool carries, set at the node group level so an autoscaler
        sees them while the pool has no nodes."""
        out = {labels.POOL_LABEL: self.name, labels.ROLE_LABEL: self.role.value}
        if self.gpu_type:
            out[labels.GPU_TYPE_LABEL] = self.gpu_type
            out[labels.GPU_COUNT_LABEL] = str(self.gpu_count)
        return {**out, **self.extra_labels}

    def taints(self) -> list[Taint]:
        if self.role is PoolRole.GPU:
            return [Taint(key=labels.GPU_TAINT_KEY, value=labels.GPU_TAINT_VALUE, effect=labels.GPU_TAINT_EFFECT)]
        return []


EksSupportType = Literal["STANDARD", "EXTENDED"]
"""EKS upgrade policy at the end of a version's standard support: ``STANDARD`` lets EKS upgrade the control
plane, ``EXTENDED`` keeps the version longer at a charge (``aws.eks.ClusterUpgradePolicyArgs.support_type``)."""
GkeReleaseChannel = Literal["RAPID", "REGULAR", "STABLE"]
"""A GKE release channel (``gcp.container.ClusterReleaseChannelArgs.channel``, less ``UNSPECIFIED``)."""
# Both live here, beside EKS_SUBNET_PREFIX, rather than in eks.py and gke.py: the stack config types its
# fields with them, and importing those modules would load pulumi_aws or pulumi_gcp for config alone.

EKS_SUBNET_PREFIX = 20
"""An EKS VPC is split into a private and a public subnet per zone of this size, or smaller where the VPC
cannot hold them (``eks._subnet_blocks``; the config refuses such a VPC)."""


def pool_resource_name(component: str, pool: str) -> str:
    """Logical name of a pool's node group or node pool and launch template in cluster component
    ``component``; the pool's other resources extend it (``<it>-asg-<tag>``). ``neurodock check``
    reads it back to name the ``nodePools`` entry a finding came from."""
    return f"{component}-{pool}"


@dataclass(frozen=True, kw_only=True)
class PoolFacts:
    """What downstream components know about a pool once the cluster exists."""

    name: str
    role: PoolRole
    gpu_type: str | None
    gpu_count: int
    gpu_memory_gib: int
    gpu_sharing: GpuSharing | None
    real_gpus: bool
    """False on kind, where GPU pools are stand-ins with no GPU behind them."""
    node_labels: Mapping[str, str]
    taints: tuple[Taint, ...]


def pool_facts(pool: NodePoolArgs, *, real_gpus: bool) -> PoolFacts:
    return PoolFacts(
        name=pool.name,
        role=pool.role,
        gpu_type=pool.gpu_type,
        gpu_count=pool.gpu_count,
        gpu_memory_gib=pool.gpu_memory_gib,
        gpu_sharing=pool.gpu_sharing,
        real_gpus=real_gpus and pool.gpu_type is not None,
        node_labels=pool.node_labels(),
        taints=tuple(pool.taints()),
    )


class Cluster(Protocol):
    """The interface each cluster component implements."""

    cluster_name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    """A kubeconfig (secret) holding no long-lived credential where the cloud allows it."""
    kube_context: str | None
    """A kubeconfig context to use instead of ``kubeconfig`` (existing kind clusters)."""
    cluster_identifier: pulumi.Output[str] | None
    """What the Kubernetes provider replaces itself on: unique to one cluster's life (None: the provider's
    own kubeconfig heuristics)."""
    pools: tuple[PoolFacts, ...]
    storage_class: str
    """Storage class for model-weight caches."""


def system_node_selector(cluster: Cluster) -> dict[str, str]:
    """Node selector of the cluster's system pool, where controllers and small services run."""
    system = next(p for p in cluster.pools if p.role is PoolRole.SYSTEM)
    return {labels.POOL_LABEL: system.name}


RFC1918 = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
"""The private address ranges of RFC 1918."""
PRIVATE_RANGES = (*RFC1918, ipaddress.IPv4Network("100.64.0.0/10"))
"""Address ranges of private networks: RFC 1918's, and RFC 6598's shared space, which VPCs use as secondary ranges."""


def is_private_range(cidr: str) -> bool:
    """Whether the IPv4 range ``cidr`` lies inside one of ``PRIVATE_RANGES``."""
    network = ipaddress.IPv4Network(cidr, strict=False)
    return any(network.subnet_of(private) for private in PRIVATE_RANGES)
