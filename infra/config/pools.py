"""Node pools: their machines, GPUs and labels, as each cloud takes them."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from components.cluster import machine_types, zones
from components.gpu.catalog import (
    EKS_INSTANCE_TYPES,
    GKE_ATTACHABLE,
    GKE_MACHINE_TYPES,
    GKE_NOT_ON_DEMAND,
    GPU_MODELS,
    MIG_PROFILES,
    GpuMachine,
    devices_per_gpu,
    gke_accelerator,
    machine_gpus,
)
from infra.config.base import Model, Name, Problem, key_path

if TYPE_CHECKING:
    from infra.config.stack import StackConfig


# --------------------------------------------------------------------------------------------
# Node pools
# --------------------------------------------------------------------------------------------


class GpuSharing(Model):
    """Several pods on one GPU."""

    strategy: Literal["timeSharing", "mig"]
    """``timeSharing`` (any GPU; no memory isolation) or ``mig`` (GKE, A100/H100/H200: isolated slices)."""
    max_shared_clients: int = Field(default=2, ge=2, le=48)
    """timeSharing: pods per GPU (default 2)."""
    partition_size: str | None = None
    """mig: the slice size, for example ``1g.10gb``; required with ``mig``."""


class GpuSpec(Model):
    """The GPUs of each node of a pool."""

    type: str
    """GPU model, one of the GPU catalog's names (for example ``nvidia-l4``)."""
    count: int = Field(default=1, ge=1, le=16)
    """GPUs per node (default 1)."""
    sharing: GpuSharing | None = None
    """Share each GPU between pods (default: one pod per GPU)."""


class NodePool(Model):
    """A group of identical nodes."""

    name: Name
    role: Literal["system", "cpu", "gpu"]
    """``system`` runs cluster add-ons; ``cpu`` and ``gpu`` run workloads. GPU pools are tainted."""
    instance_types: list[str] = []
    """EKS: EC2 instance types (several allowed, for spot capacity); GKE: exactly one machine type;
    kind: unused. Required on EKS and GKE."""
    min_nodes: int = Field(default=1, ge=0, le=1000)
    """Smallest node count; 0 lets the autoscaler scale the pool to zero (default 1)."""
    max_nodes: int = Field(default=1, ge=1, le=1000)
    """Largest node count (default 1)."""
    capacity: Literal["onDemand", "spot"] = "onDemand"
    """Capacity type (default onDemand)."""
    disk_size_gib: int = Field(default=100, ge=20, le=16384)
    """Root volume size in GiB; GPU images are large (default 100)."""
    gpu: GpuSpec | None = None
    """GPUs per node; required for, and only for, ``role: gpu``."""
    labels: dict[str, str] = {}
    """Extra node labels (default none)."""


def pool_problems(config: StackConfig) -> list[Problem]:
    problems: list[Problem] = []

    def add(loc: tuple[str | int, ...], message: str) -> None:
        problems.append(Problem(key_path(loc), message))

    provider = config.cloud.provider
    # Node pools.
    seen: dict[str, int] = {}
    for i, pool in enumerate(config.node_pools):
        if pool.name in seen:
            add(("nodePools", i, "name"), f"pool name {pool.name!r} is already used by nodePools[{seen[pool.name]}]")
        seen.setdefault(pool.name, i)
        if pool.min_nodes > pool.max_nodes:
            add(("nodePools", i, "minNodes"), f"must be <= maxNodes ({pool.min_nodes} > {pool.max_nodes})")
        if pool.role == "gpu" and pool.gpu is None:
            add(("nodePools", i, "gpu"), "a pool with role 'gpu' needs gpu.type and gpu.count")
        if pool.role != "gpu" and pool.gpu is not None:
            add(("nodePools", i, "gpu"), f"only pools with role 'gpu' take GPUs (this one has role {pool.role!r})")
        if pool.role == "system" and pool.min_nodes < 1:
            add(("nodePools", i, "minNodes"), "the system pool needs at least 1 node to run cluster add-ons")
        if pool.gpu is not None:
            model = GPU_MODELS.get(pool.gpu.type)
            if model is None:
                add(("nodePools", i, "gpu", "type"),
                    f"unknown GPU type {pool.gpu.type!r}; known types: {', '.join(sorted(GPU_MODELS))}")
            elif provider == "gke" and model.gke_accelerator is None:
                offered = sorted(n for n, m in GPU_MODELS.items() if m.gke_accelerator)
                add(("nodePools", i, "gpu", "type"),
                    f"GKE does not offer {pool.gpu.type!r}; GKE GPU types: {', '.join(offered)}")
            elif provider == "eks" and not model.eks:
                offered = sorted(n for n, m in GPU_MODELS.items() if m.eks)
                add(("nodePools", i, "gpu", "type"),
                    f"EKS does not offer {pool.gpu.type!r}; EKS GPU types: {', '.join(offered)}")
        problems.extend(_machine_problems(provider, i, pool))
        if provider == "gke":
            problems.extend(_placement_problems(config, i, pool))
        problems.extend(_node_label_problems(i, pool, provider))
        if provider in ("eks", "gke") and not pool.instance_types:
            what = "EC2 instance types" if provider == "eks" else "a GCE machine type"
            add(("nodePools", i, "instanceTypes"), f"is required on {provider}: list {what}")
        if provider == "gke" and len(pool.instance_types) > 1:
            add(("nodePools", i, "instanceTypes"), "GKE node pools take exactly one machine type")
        if provider == "eks":
            for j, machine in enumerate(pool.instance_types[1:], start=1):
                first = pool.instance_types[0]
                if _ec2_shape(machine) != _ec2_shape(first):
                    add(("nodePools", i, "instanceTypes", j),
                        f"{machine} is not the same shape as {first}: the Cluster Autoscaler sizes a node group "
                        "by its first instance type and needs every type to have the same vCPUs and memory "
                        "(cluster-autoscaler cloudprovider/aws README); list types of one size and family class "
                        "(e.g. m7i.xlarge with m6i.xlarge), or make another pool")
    if not any(p.role == "system" for p in config.node_pools):
        add(("nodePools",), "needs a pool with role 'system' for cluster add-ons")
    return problems


def pool_warnings(config: StackConfig) -> list[Problem]:
    if config.cloud.provider == "eks":
        return _zonal_volume_warnings(config)
    if config.cloud.provider != "kind":
        return []
    return [Problem(key_path(("nodePools", i, "instanceTypes")), "is unused on kind, whose nodes are containers on "
                    "this machine") for i, pool in enumerate(config.node_pools) if pool.instance_types]


def _zonal_volume_warnings(config: StackConfig) -> list[Problem]:
    """Prometheus keeps its data on an EBS volume, which lives in one zone, and runs on the system pool, whose one
    managed node group spans the stack's zones. The Cluster Autoscaler cannot add a node in a chosen zone to such a
    group (EKS User Guide, managed-node-groups.adoc 53: "configure multiple node groups, each scoped to a single
    Availability Zone" for EBS-backed workloads), so with fewer nodes than zones, a zone can be left without one after
    nodes roll or scale in, and Prometheus stays Pending there. The group's Auto Scaling group keeps its nodes
    balanced over its zones (AZRebalance, the same page, 70), so as many nodes as zones keeps one in each."""
    if not config.monitoring.enabled:
        return []
    zones = len(config.cloud.zones)
    return [Problem(key_path(("nodePools", i, "minNodes")), (
        f"{pool.min_nodes} system node(s) across {zones} zones: Prometheus's volume lives in one zone, and after nodes "
        f"roll or scale in that zone may have none, leaving Prometheus (and alerting) Pending; set minNodes to at "
        f"least {zones}")) for i, pool in enumerate(config.node_pools)
        if pool.role == "system" and pool.min_nodes < zones]


def gpu_devices_per_node(pool: NodePool) -> int | None:
    """``nvidia.com/gpu`` devices a node of ``pool`` advertises: its GPUs, times the time-sharing clients or
    MIG partitions of each (None for a pool without GPUs or with an unknown MIG size, refused elsewhere)."""
    if pool.gpu is None:
        return None
    sharing = pool.gpu.sharing
    per_gpu = 1 if sharing is None else devices_per_gpu(pool.gpu.type, sharing.strategy, sharing.max_shared_clients,
                                                         sharing.partition_size)
    return pool.gpu.count * per_gpu if per_gpu else None


def device_memory_gib(pool: NodePool) -> float | None:
    """Memory of one GPU device a pod of ``pool`` gets: a whole GPU's, or its MIG slice's (the profile names
    its size in GB: ``3g.40gb``, NVIDIA MIG user guide). None without GPUs, or for an unknown GPU or slice, or a
    slice the GPU does not make."""
    gpu = GPU_MODELS.get(pool.gpu.type) if pool.gpu else None
    if gpu is None:
        return None
    sharing = pool.gpu.sharing
    if sharing is None or sharing.strategy != "mig":
        return gpu.memory_gib
    if sharing.partition_size not in MIG_PROFILES.get(pool.gpu.type, {}):
        return None  # a GPU without MIG, or a slice it does not make: refused on the pool, no advice from it
    match = re.fullmatch(r"\d+g\.(\d+)gb", sharing.partition_size or "")
    return int(match[1]) * 1e9 / 2**30 if match else None


def _ec2_shape(instance_type: str) -> tuple[str, bool, str]:
    """What fixes an EC2 type's vCPUs and memory: the family's class letters (m: 4 GiB per vCPU, c: 2,
    r: 8, g/p: per GPU model), its processor (Graviton families carry a ``g`` after the generation
    and need another AMI) and the size (``2xlarge``). Same shape means the autoscaler's first-type
    assumption holds."""
    family, _, size = instance_type.partition(".")
    match = re.fullmatch(r"(?P<cls>[a-z]+)(?P<gen>[0-9]+)(?P<attrs>[a-z-]*)", family)
    if match is None:
        return family, False, size
    return match["cls"], "g" in match["attrs"] and match["cls"] not in ("g", "p"), size


def _machine_problems(provider: str, i: int, pool: NodePool) -> list[Problem]:
    """Instance types agree with the pool's GPUs; GPU sharing fits the cloud and the GPU."""
    out: list[Problem] = []

    def add(loc: tuple[str | int, ...], message: str) -> None:
        out.append(Problem(key_path(("nodePools", i, *loc)), message))

    if provider in ("eks", "gke"):
        known = sorted(EKS_INSTANCE_TYPES if provider == "eks" else
                       [*GKE_MACHINE_TYPES, *(f"{p}*" for p in GKE_ATTACHABLE)])
        wanted = GpuMachine(gpu_type=pool.gpu.type, count=pool.gpu.count) if pool.gpu else None
        for j, machine in enumerate(pool.instance_types):
            if not machine_types.exists(provider, machine):
                close = machine_types.did_you_mean(provider, machine)
                what = machine_types.SOURCES[provider]
                hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
                add(("instanceTypes", j), f"{machine!r} is not in {what}; {hint}(a type launched since is added to "
                    f"components/cluster/machine_types/{machine_types.LISTS[provider]})")
                continue
            gpus = machine_gpus(provider, machine, wanted)
            if pool.gpu is None:
                if gpus is not None and pool.role != "gpu":
                    add(("instanceTypes", j), f"{machine} has GPUs; put it in a pool with role 'gpu'")
                continue
            if gpus is None:
                add(("instanceTypes", j), f"{machine!r} is not a known {provider} GPU machine type for "
                    f"{pool.gpu.count} x {pool.gpu.type}; known: {', '.join(known)}")
            elif (gpus.gpu_type, gpus.count) != (pool.gpu.type, pool.gpu.count):
                add(("instanceTypes", j), f"{machine} has {gpus.count} x {gpus.gpu_type} but gpu says "
                    f"{pool.gpu.count} x {pool.gpu.type}; make them agree")
            if provider == "gke" and machine in GKE_NOT_ON_DEMAND and pool.capacity == "onDemand":
                on_demand = sorted(m for m, g in GKE_MACHINE_TYPES.items()
                                   if m not in GKE_NOT_ON_DEMAND and gpus is not None and g.gpu_type == gpus.gpu_type)
                add(("capacity",), (
                    f"{machine} does not run on demand on Google Cloud: \"{GKE_NOT_ON_DEMAND[machine]}\" (Compute "
                    "Engine docs, accelerator-optimized machines); NeuroDock runs pools on demand or as Spot VMs, so "
                    "set capacity: spot" + (f", or use a machine that runs on demand: {', '.join(on_demand)}"
                                            if on_demand else "")))
    sharing = pool.gpu.sharing if pool.gpu else None
    if sharing is not None and sharing.strategy == "mig":
        profiles = MIG_PROFILES.get(pool.gpu.type)
        if provider != "gke":
            add(("gpu", "sharing", "strategy"), f"mig partitions are supported on gke only (this stack is {provider});"
                " use timeSharing")
        elif profiles is None:
            add(("gpu", "sharing", "strategy"), f"{pool.gpu.type} does not support MIG; MIG GPUs: "
                f"{', '.join(sorted(MIG_PROFILES))}")
        elif sharing.partition_size not in profiles:
            add(("gpu", "sharing", "partitionSize"), f"must be one of {', '.join(sorted(profiles))} for "
                f"{pool.gpu.type} (got {sharing.partition_size!r})")
    if sharing is not None and sharing.strategy == "timeSharing" and sharing.partition_size is not None:
        add(("gpu", "sharing", "partitionSize"), "applies to mig only; remove it")
    return out


def _placement_problems(config: StackConfig, i: int, pool: NodePool) -> list[Problem]:
    """A GKE pool goes to the stack's zones that offer its machine (``components/cluster/zones.py``): one that no
    zone of the stack offers could not be created at all, so it is refused here, naming the region's zones that do
    offer the machine. The zone data is a third-party catalogue (its caveats in the file): the message says so and
    how to check a zone."""
    if len(pool.instance_types) != 1 or (pool.gpu is not None and pool.gpu.type not in GPU_MODELS):
        return []  # refused above: no one machine, or no GPU to place
    machine = pool.instance_types[0]
    accelerator = gke_accelerator(machine, pool.gpu.type) if pool.gpu else None
    offered = zones.offered_zones(machine, accelerator)
    cloud = config.cloud
    if offered is None or zones.pool_zones(machine, accelerator, cloud.zones):
        return []
    region = sorted(z for z in offered if z.startswith(f"{cloud.region}-"))
    some = sorted(offered)
    elsewhere = "" if region else f"; it is offered in {', '.join(some[:6])}{', ...' if len(some) > 6 else ''}"
    return [Problem(key_path(("nodePools", i, "instanceTypes", 0)), (
        f"pool {pool.name!r}: no zone of the stack ({', '.join(cloud.zones)}) offers {machine}; {cloud.region}'s zones "
        f"that do: {', '.join(region) or 'none'}{elsewhere} ({zones.provenance()}, not Google's own table). Add such "
        f"a zone to cloud.zones, or choose a machine type these zones offer; if "
        f"`gcloud compute machine-types list --zones=<zone> --filter=name={machine}` lists it in one of your zones, "
        f"add that zone to the catalogue (its refresh procedure)"))]


LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
LABEL_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
KUBELET_LABELS = frozenset({
    "kubernetes.io/hostname", "kubernetes.io/os", "kubernetes.io/arch", "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch", "beta.kubernetes.io/instance-type", "node.kubernetes.io/instance-type",
    "topology.kubernetes.io/zone", "topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region"})
"""``kubernetes.io`` labels a kubelet may set on its own node, with any under ``kubelet.kubernetes.io`` and
``node.kubernetes.io`` (kubelet v0.35.7 ``pkg/apis/well_known_labels.go``)."""
MAX_EKS_POOL_LABELS = 30
"""An EKS pool's labels each become a node-template tag on its Auto Scaling group, which takes 50 tags with
EKS's own, the stack's labels, taint and GPU count."""


def _node_label_problems(i: int, pool: NodePool, provider: str) -> list[Problem]:
    """``labels`` of a pool: Kubernetes label syntax, within what the cloud accepts on a node pool (EKS: a whole
    key of 63 characters, a non-empty value; EKS and GKE: no ``kubernetes.io``/``k8s.io`` keys; kind: the
    kubelet's own rule), and not a key the stack sets."""
    out: list[Problem] = []
    eks = provider == "eks"
    if eks and len(pool.labels) > MAX_EKS_POOL_LABELS:
        out.append(Problem(key_path(("nodePools", i, "labels")), (
            f"{len(pool.labels)} labels; an EKS pool takes at most {MAX_EKS_POOL_LABELS} (each is also a tag of its "
            "Auto Scaling group, which holds 50)")))
    for key, value in pool.labels.items():
        loc = key_path(("nodePools", i, "labels", key))
        prefix, slash, name = key.rpartition("/")
        domain = prefix.lower()
        kubernetes = any(domain == d or domain.endswith("." + d) for d in ("kubernetes.io", "k8s.io"))
        kubelet_may = key in KUBELET_LABELS or any(
            domain == d or domain.endswith("." + d) for d in ("kubelet.kubernetes.io", "node.kubernetes.io"))
        if not (LABEL_NAME.fullmatch(name) and len(name) <= 63 and (not eks or len(key) <= 63)
                and (not slash or (LABEL_PREFIX.fullmatch(prefix) and len(prefix) <= 253))):
            out.append(Problem(loc, "is not a node label key: an optional DNS prefix and '/', then at most 63 "
                                    "letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
                                    + (" (63 characters in all on EKS)" if eks else "") + ", e.g. 'example.com/team'"))
        elif domain == "neurodock.io" or domain.endswith(".neurodock.io"):
            out.append(Problem(loc, "neurodock.io/ keys are the stack's own (pool, role, GPU type and count), which "
                                    "workloads select on; choose another prefix"))
        elif (kubernetes and (provider != "kind" or not kubelet_may)) or (eks and "eks.amazonaws.com" in domain):
            who = "EKS and GKE refuse" if provider != "kind" else "the kubelet refuses all but a few of"
            out.append(Problem(loc, f"kubernetes.io and k8s.io keys are reserved: {who} them on a node"
                                    + (", and EKS eks.amazonaws.com ones" if eks else "") + "; choose another prefix"))
        if not ((LABEL_NAME.fullmatch(value) or (value == "" and not eks)) and len(value) <= 63):
            out.append(Problem(loc, f"the value {value!r} is not a node label value: at most 63 letters, digits, "
                                    "'-', '_' or '.', starting and ending with a letter or digit"
                                    + (" (EKS refuses an empty one)" if eks else "") + ", e.g. 'ml-platform'"))
    return out


__all__ = [
    "KUBELET_LABELS", "LABEL_NAME", "LABEL_PREFIX", "MAX_EKS_POOL_LABELS", "GpuSharing", "GpuSpec", "NodePool",
    "device_memory_gib", "gpu_devices_per_node", "pool_problems", "pool_warnings"
]
