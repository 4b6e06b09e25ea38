"""What a stack's resources cost, from the price catalogue: the one computation behind ``neurodock plan``'s cost,
``neurodock diff``'s cost change and the pack's ``stack-within-budget`` policy, so the three cannot disagree.

It reads the cloud resources a program registers (node groups and pools, clusters, NAT gateways, keys), as the
plan records them and as CrossGuard hands them to the pack, with each resource's provider configuration (the AWS
region). Every figure is a list price before discounts and usage-based charges. A Spot pool is a range: Google
publishes a Spot price (it moves at most once a day); AWS does not (the market price is read with
``DescribeSpotPriceHistory``), and a Spot node's price never exceeds the on-demand price, which is EC2's default
maximum price ("If you don't specify a maximum price, the default maximum price is the On-Demand price", EC2 Auto
Scaling user guide, mixed-instances-groups-set-up-overview, "Spot max price"; EKS managed node groups set none).
So the estimate's upper figures, which budgets judge, price Spot nodes at on-demand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from components.cost.catalogue import HOURS_PER_MONTH, Catalogue, FixedPrice, Source
from components.gpu.catalog import machine_gpus, takes_attached_gpus
from components.labels import POOL_LABEL, POOL_TAG

Scale = Literal["minimum", "maximum"]

CLOUD_NAT_VM_CAP = 32
"""Cloud NAT charges per VM up to this many VMs, then a flat gateway-hour."""


@dataclass(frozen=True, kw_only=True)
class CostResource:
    """A registered resource as the estimate reads it: the same shape from a plan and from CrossGuard."""

    type: str
    name: str
    props: Mapping[str, Any]
    provider: Mapping[str, Any] = field(default_factory=dict)
    """The inputs of the resource's provider (``region``)."""


@dataclass(frozen=True, kw_only=True)
class PoolCost:
    name: str
    region: str
    machines: tuple[str, ...]
    spot: bool
    min_nodes: int
    max_nodes: int
    gpus_per_node: int
    node_hourly: float | None = None
    """On-demand USD per node-hour, its root disk included; for several EC2 types the dearest (None: unpriced)."""
    node_hourly_low: float | None = None
    """The lowest a node-hour may cost: on-demand again, or the published Spot price; None for AWS Spot, whose
    price is the market's."""
    sources: tuple[Source, ...] = ()
    unpriced: str = ""
    """Why the pool has no price (empty when it has one)."""

    def nodes(self, scale: Scale) -> int:
        return self.min_nodes if scale == "minimum" else self.max_nodes

    def hourly(self, scale: Scale) -> float:
        return (self.node_hourly or 0.0) * self.nodes(scale)

    def hourly_low(self, scale: Scale) -> float | None:
        return None if self.node_hourly_low is None else self.node_hourly_low * self.nodes(scale)

    @property
    def gpu_hourly(self) -> float | None:
        """On-demand USD per GPU-hour: the node's price shared by its GPUs."""
        if self.node_hourly is None or not self.gpus_per_node:
            return None
        return self.node_hourly / self.gpus_per_node


@dataclass(frozen=True, kw_only=True)
class FixedCost:
    what: str
    count: int
    hourly_min: float
    hourly_max: float
    source: Source
    caveat: str = ""

    def hourly(self, scale: Scale) -> float:
        return self.hourly_min if scale == "minimum" else self.hourly_max


@dataclass(frozen=True, kw_only=True)
class StackCost:
    cloud: str
    region: str
    pools: tuple[PoolCost, ...]
    fixed: tuple[FixedCost, ...]
    unpriced: tuple[str, ...]
    """Everything the stack pays for that the estimate could not price, in words."""
    left_out: tuple[str, ...]
    """What the estimate leaves out by design (usage-based charges)."""

    def hourly(self, scale: Scale) -> float:
        return sum(p.hourly(scale) for p in self.pools) + sum(f.hourly(scale) for f in self.fixed)

    def hourly_low(self, scale: Scale) -> float | None:
        """The total with Spot pools at their published Spot price; None when a Spot pool has none (AWS)."""
        lows = [p.hourly_low(scale) for p in self.pools]
        if any(low is None for low in lows):
            return None
        return sum(lows) + sum(f.hourly(scale) for f in self.fixed)  # type: ignore[arg-type]

    def monthly(self, scale: Scale) -> float:
        return self.hourly(scale) * HOURS_PER_MONTH

    @property
    def fixed_hourly(self) -> float:
        return sum(f.hourly_min for f in self.fixed)

    @property
    def has_spot(self) -> bool:
        return any(p.spot for p in self.pools)

    @property
    def sources(self) -> tuple[Source, ...]:
        seen: dict[str, Source] = {}
        for s in [s for p in self.pools for s in p.sources] + [f.source for f in self.fixed]:
            seen.setdefault(s.id, s)
        return tuple(seen.values())

    def pool(self, name: str) -> PoolCost | None:
        return next((p for p in self.pools if p.name == name), None)


LEFT_OUT = {
    "aws": ("NAT data processed (per GB)", "load balancers and their capacity units", "S3 storage and requests",
            "CloudWatch logs", "data transfer", "KMS requests beyond the free tier"),
    "gcp": ("Cloud NAT data processed (per GiB) and NAT IPs", "load balancers' forwarding rules and data processed",
            "Cloud Storage storage and operations", "Cloud Logging", "data transfer", "KMS operations"),
}


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


DEFAULT_DISK = {"aws": "gp3", "gcp": "pd-balanced"}
"""The boot disk type of the node pools the program creates (components/cluster/eks.py, gke.py)."""


def disk_hourly(disk_gib: int, usd_per_gib_month: float) -> float:
    """A node's boot disk per hour: disks are priced by the GiB-month."""
    return disk_gib * usd_per_gib_month / HOURS_PER_MONTH


def _fields(value: Any) -> Mapping[str, Any]:
    """``value`` where it is a mapping: one not known yet (a first preview's ``"[unknown]"``) holds nothing."""
    return value if isinstance(value, Mapping) else {}


def _items(value: Any) -> list[Any]:
    """``value`` where it is a list: one not known yet holds nothing."""
    return value if isinstance(value, list) else []


def _int(value: Any, default: int = 0) -> int:
    """A whole number as a plan holds it (``int``) or as CrossGuard hands it (a protobuf ``Struct`` has only
    doubles: ``2.0``); ``default`` for anything else."""
    if isinstance(value, bool):
        return default
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) else default


def stack_cost(resources: Iterable[CostResource], catalogue: Catalogue) -> StackCost | None:
    """The cost of the cloud resources in ``resources``; None for a stack with no priced cloud (kind)."""
    resources = list(resources)
    pools = [p for r in resources if (p := _pool(r, resources, catalogue)) is not None]
    if not pools and not any(r.type in ("aws:eks/cluster:Cluster", "gcp:container/cluster:Cluster") for r in resources):
        return None
    cloud = "aws" if any(r.type.startswith("aws:") for r in resources) else "gcp"
    region = next((p.region for p in pools if p.region), "")
    nodes_min = sum(p.min_nodes for p in pools)
    nodes_max = sum(p.max_nodes for p in pools)
    fixed: list[FixedCost] = []
    unpriced = [f"pool {p.name!r}: {p.unpriced}" for p in pools if p.unpriced]

    def add(key: str, count: int = 1, *, per_min: float | None = None, per_max: float | None = None) -> None:
        row = catalogue.fixed(key)
        lo = row.hourly * count if per_min is None else per_min
        hi = row.hourly * count if per_max is None else per_max
        fixed.append(FixedCost(what=row.what, count=count, hourly_min=lo, hourly_max=hi, source=row.source,
                               caveat=row.caveat))

    for r in resources:
        if r.type == "aws:eks/cluster:Cluster":
            extended = _dig(r.props, "upgradePolicy", "supportType") == "EXTENDED"
            add("eks-control-plane-extended" if extended else "eks-control-plane")
        elif r.type == "gcp:container/cluster:Cluster":
            add("gke-cluster-fee")
    nat_gateways = sum(r.type == "aws:ec2/natGateway:NatGateway" for r in resources)
    if nat_gateways:
        add("aws-nat-gateway", nat_gateways)
    for r in resources:
        if r.type == "gcp:compute/routerNat:RouterNat":
            per_vm, cap = catalogue.fixed("gcp-cloud-nat-vm"), catalogue.fixed("gcp-cloud-nat-gateway")

            def nat(nodes: int, per_vm: FixedPrice = per_vm, cap: FixedPrice = cap) -> float:
                return per_vm.hourly * nodes if nodes <= CLOUD_NAT_VM_CAP else cap.hourly

            fixed.append(FixedCost(what=f"{per_vm.what}: the stack's {nodes_min}-{nodes_max} nodes", count=1,
                                   hourly_min=nat(nodes_min), hourly_max=nat(nodes_max), source=per_vm.source,
                                   caveat=per_vm.caveat))
    kms = {"aws:kms/key:Key": "aws-kms-key", "gcp:kms/cryptoKey:CryptoKey": "gcp-kms-key-version"}
    for type_, key in kms.items():
        if count := sum(r.type == type_ for r in resources):
            add(key, count)
    return StackCost(cloud=cloud, region=region, pools=tuple(pools), fixed=tuple(fixed), unpriced=tuple(unpriced),
                     left_out=LEFT_OUT[cloud])


def _pool(r: CostResource, resources: list[CostResource], catalogue: Catalogue) -> PoolCost | None:
    if r.type == "aws:eks/nodeGroup:NodeGroup":
        return _eks_pool(r, resources, catalogue)
    if r.type == "gcp:container/nodePool:NodePool":
        return _gke_pool(r, catalogue)
    return None


def _eks_pool(r: CostResource, resources: list[CostResource], catalogue: Catalogue) -> PoolCost:
    region = str(r.provider.get("region") or "")
    machines = tuple(m for m in _items(r.props.get("instanceTypes")) if isinstance(m, str))
    scaling = _fields(r.props.get("scalingConfig"))
    # The root volume is the pool's launch template's (registered under the node group's own name).
    template = next((t for t in resources if t.type == "aws:ec2/launchTemplate:LaunchTemplate" and t.name == r.name),
                    None)
    ebs = _dig((_items(_dig(template.props, "blockDeviceMappings")) or [{}])[0], "ebs") if template else None
    disk_gib = _int(_dig(ebs, "volumeSize")) if ebs else _int(r.props.get("diskSize"), 20)
    disk_type = (_dig(ebs, "volumeType") if ebs else None) or DEFAULT_DISK["aws"]
    prices = [catalogue.machine("aws", region, m) for m in machines]
    gpus = machine_gpus("eks", machines[0]) if machines else None
    pool = _fields(r.props.get("tags")).get(POOL_TAG) or r.name
    spot = r.props.get("capacityType") == "SPOT"
    base = dict(name=pool, region=region, machines=machines, spot=spot,
                min_nodes=_int(scaling.get("minSize")), max_nodes=_int(scaling.get("maxSize")),
                gpus_per_node=gpus.count if gpus else 0)
    missing = [m for m, p in zip(machines, prices, strict=True) if p is None]
    disk = catalogue.storage("aws", disk_type, region)
    if missing or not machines:
        return PoolCost(**base, unpriced=_no_price("aws", region, missing or ["(no instance type)"], catalogue))
    if disk is None:
        return PoolCost(**base, unpriced=f"no {disk_type} volume price for {region} in the catalogue")
    disk_cost = disk_hourly(disk_gib, disk[0])
    node = max(p.on_demand for p in prices if p) + disk_cost
    return PoolCost(**base, node_hourly=node, node_hourly_low=None if spot else node,
                    sources=(*{p.source.id: p.source for p in prices if p}.values(), disk[1]))


def _gke_pool(r: CostResource, catalogue: Catalogue) -> PoolCost:
    config = _fields(r.props.get("nodeConfig"))
    location = str(r.props.get("location") or "")
    # A zonal location (europe-west4-a) is in the region its name starts with.
    region = location[:-2] if len(location.split("-")) == 3 else location
    machine = str(config.get("machineType") or "")
    zones = len(_items(r.props.get("nodeLocations"))) or 1
    autoscaling = _fields(r.props.get("autoscaling"))
    if "totalMinNodeCount" in autoscaling or "totalMaxNodeCount" in autoscaling:
        lo, hi = _int(autoscaling.get("totalMinNodeCount")), _int(autoscaling.get("totalMaxNodeCount"))
    elif autoscaling:
        lo, hi = _int(autoscaling.get("minNodeCount")) * zones, _int(autoscaling.get("maxNodeCount")) * zones
    else:
        lo = hi = _int(r.props.get("nodeCount"), _int(r.props.get("initialNodeCount"))) * zones
    spot = bool(config.get("spot") or config.get("preemptible"))
    accelerators = [a for a in _items(config.get("guestAccelerators")) if isinstance(a, Mapping)]
    attached = accelerators[0] if accelerators and takes_attached_gpus(machine) else None
    gpus = sum(_int(a.get("count")) for a in accelerators)
    pool = _fields(config.get("labels")).get(POOL_LABEL) or r.name
    base = dict(name=pool, region=region, machines=(machine,), spot=spot, min_nodes=lo, max_nodes=hi,
                gpus_per_node=gpus)
    price = catalogue.machine("gcp", region, machine)
    if price is None:
        return PoolCost(**base, unpriced=_no_price("gcp", region, [machine], catalogue))
    if attached is not None:
        accelerator = str(attached.get("type"))
        return PoolCost(**base, sources=(price.source,),
                        unpriced=f"{accelerator}: {catalogue.unpriced('gcp', accelerator) or 'no GPU price'}")
    disk_type = str(config.get("diskType") or DEFAULT_DISK["gcp"])
    disk = catalogue.storage("gcp", disk_type, region)
    if disk is None:
        return PoolCost(**base, unpriced=f"no {disk_type} price for {region} in the catalogue")
    disk_cost = disk_hourly(_int(config.get("diskSizeGb"), 100), disk[0])
    node = price.on_demand + disk_cost
    low = (price.spot + disk_cost) if spot and price.spot is not None else (None if spot else node)
    return PoolCost(**base, node_hourly=node, node_hourly_low=low,
                    sources=(price.source,) if disk[1].id == price.source.id else (price.source, disk[1]))


def _no_price(cloud: str, region: str, machines: list[str], catalogue: Catalogue) -> str:
    parts = []
    for machine in machines:
        reason = catalogue.unpriced(cloud, machine)
        elsewhere = catalogue.regions(cloud, machine)
        if reason:
            parts.append(f"{machine}: {reason}")
        elif elsewhere:
            parts.append(f"{machine} has no price for {region} in the catalogue (it has {', '.join(elsewhere[:4])}"
                         f"{'...' if len(elsewhere) > 4 else ''}); add the region from the provider's price list "
                         "(docs/cost.md, \"Refreshing the catalogue\")")
        else:
            parts.append(f"{machine} is not in the price catalogue")
    return "; ".join(parts)


def within_budget(cost: StackCost, monthly_usd: float, scale: Scale) -> str | None:
    """Why ``cost`` breaks a budget of ``monthly_usd`` judged at ``scale`` (None when it keeps it), naming the
    pools that cost most; a stack with unpriced parts cannot be judged, and fails."""
    if cost.unpriced:
        return (f"the budget of ${monthly_usd:,.0f} a month cannot be judged: " + "; ".join(cost.unpriced))
    monthly = cost.monthly(scale)
    if monthly <= monthly_usd:
        return None
    ranked = sorted(cost.pools, key=lambda p: p.hourly(scale), reverse=True)
    top = ", ".join(f"pool {p.name!r} ${p.hourly(scale) * HOURS_PER_MONTH:,.0f} ({p.nodes(scale)} x "
                    f"{'/'.join(p.machines)})" for p in ranked[:3] if p.hourly(scale))
    spot = " (Spot nodes at on-demand, the most they can cost)" if cost.has_spot else ""
    return (f"at {scale} scale the stack costs ${monthly:,.0f} a month{spot}, over its budget of ${monthly_usd:,.0f} "
            f"(neurodock:budget.monthlyUsd) by ${monthly - monthly_usd:,.0f}; most: {top}; fixed "
            f"${cost.fixed_hourly * HOURS_PER_MONTH:,.0f}")


__all__ = ["DEFAULT_DISK", "CostResource", "FixedCost", "PoolCost", "Scale", "StackCost", "disk_hourly", "stack_cost",
           "within_budget"]
