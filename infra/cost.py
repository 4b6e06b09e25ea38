"""What a planned stack costs: its pools and fixed costs from the resources it registers
(``components.cost.estimate``, the computation the pack's budget policy runs too), each model's share of its
pool, and each model's cost per million tokens at full load from a decode roofline.

The roofline (``Roofline``): a decode step of a replica reads every weight once and the KV cache of every sequence
in the batch, and decode is bound by memory bandwidth, not compute (together.ai, "LLM inference": "Decode is bound
by memory bandwidth"; Recasens et al., "Mind the Memory Gap", arXiv 2503.08311: large-batch inference "remains
memory-bound"). With tensor parallelism each GPU reads its own shard and its own KV heads at its own bandwidth, so a
step takes ``(weights / tp + KV per GPU) / bandwidth`` and yields one token per sequence. This is the definition of
Model Bandwidth Utilization solved for throughput (Databricks, "LLM Inference Performance Engineering: Best
Practices": achieved bandwidth = (model size + KV cache size) / time per output token). It is an upper bound: it
assumes peak bandwidth (measured utilisation runs from about 0.8 on an L4 to under 0.3 on an H100 for batch-1
decode, "Memory-Bound but Not Bandwidth-Limited"), a full batch every step, no prefill, and every sequence at the
configured context (``maxModelLen``; shorter contexts read less KV and go faster).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING

from components.cost.catalogue import CLOUDS, HOURS_PER_MONTH, load
from components.cost.estimate import (
    DEFAULT_DISK,
    CostResource,
    Scale,
    StackCost,
    disk_hourly,
    stack_cost,
    within_budget,
)
from components.gpu.catalog import MEMORY_BANDWIDTH_GBS, devices_per_gpu, takes_attached_gpus
from components.monitoring.cost import NodePrice
from components.serving.architectures import GIB
from infra.config import ModelSpec, NodePool, StackConfig, replica_size

if TYPE_CHECKING:
    from infra.plan.engine import Plan


@dataclass(frozen=True, kw_only=True)
class Roofline:
    """A replica's decode throughput bound (see the module's docstring)."""

    tokens_per_s: float
    sequences: int
    context: int
    bytes_per_step: float
    """Read by each GPU per decode step: its weight shard and its KV cache for ``sequences`` at ``context``."""
    bandwidth_gbs: int
    tensor_parallel: int
    gpu: str


@dataclass(frozen=True, kw_only=True)
class ModelCost:
    name: str
    pool: str
    devices: int
    """GPU devices per replica (whole GPUs, or time-shared or MIG devices)."""
    replicas_min: int
    replicas_max: int
    """With its canary and shadow."""
    replica_hourly: float | None
    """On-demand USD per replica-hour: its devices' share of their node (None: CPU, or an unpriced pool)."""
    roofline: Roofline | None
    note: str = ""
    """Why the model has no price per token."""

    def hourly(self, scale: Scale) -> float:
        return (self.replica_hourly or 0.0) * (self.replicas_min if scale == "minimum" else self.replicas_max)

    @property
    def usd_per_mtok(self) -> float | None:
        """USD per million output tokens from one replica at its roofline throughput, kept busy all hour."""
        if self.replica_hourly is None or self.roofline is None or not self.roofline.tokens_per_s:
            return None
        return self.replica_hourly / (self.roofline.tokens_per_s * 3600) * 1e6


@dataclass(frozen=True, kw_only=True)
class PlanCost:
    stack: StackCost
    models: tuple[ModelCost, ...]
    stale: str | None
    """The catalogue's staleness warning."""
    budget_usd: int | None
    budget_scale: Scale
    verdict: str | None
    """Why the stack breaks its budget (None: it keeps it, or has none)."""

    def to_json(self) -> dict:
        s = self.stack

        def money(value: float | None) -> float | None:
            return None if value is None else round(value, 4)

        def span(hourly: dict[str, float | None]) -> dict:
            return {scale: {"hourly": money(v), "monthly": money(None if v is None else v * HOURS_PER_MONTH)}
                    for scale, v in hourly.items()}

        return {
            "currency": "USD", "hoursPerMonth": HOURS_PER_MONTH, "region": s.region,
            "pools": [{"name": p.name, "machines": list(p.machines), "spot": p.spot,
                       "nodes": [p.min_nodes, p.max_nodes],
                       "nodeHourly": money(p.node_hourly), "nodeHourlyLow": money(p.node_hourly_low),
                       "cost": span({"minimum": p.hourly("minimum"), "maximum": p.hourly("maximum")}),
                       "unpriced": p.unpriced or None} for p in s.pools],
            "fixed": [{"what": f.what, "count": f.count,
                       "cost": span({"minimum": f.hourly_min, "maximum": f.hourly_max}),
                       "source": f.source.url, "caveat": f.caveat or None} for f in s.fixed],
            "models": [{"name": m.name, "pool": m.pool, "replicas": [m.replicas_min, m.replicas_max],
                        "replicaHourly": money(m.replica_hourly),
                        "cost": span({"minimum": m.hourly("minimum"), "maximum": m.hourly("maximum")}),
                        "decodeTokensPerSecondBound": None if m.roofline is None else round(m.roofline.tokens_per_s, 1),
                        "usdPerMillionTokens": money(m.usd_per_mtok), "note": m.note or None} for m in self.models],
            "total": span({"minimum": s.hourly("minimum"), "maximum": s.hourly("maximum")}),
            "totalWithSpotPrices": span({"minimum": s.hourly_low("minimum"), "maximum": s.hourly_low("maximum")}),
            "unpriced": list(s.unpriced), "leftOut": list(s.left_out),
            "budget": None if self.budget_usd is None else {"monthlyUsd": self.budget_usd, "scale": self.budget_scale,
                                                             "verdict": self.verdict},
            "sources": [{"id": src.id, "url": src.url, "kind": src.kind, "asOf": src.as_of, "read": src.read}
                        for src in s.sources],
            "stale": self.stale,
        }


def cost_resources(plan: Plan) -> list[CostResource]:
    """The plan's resources as the estimate reads them: inputs, with their provider's inputs."""
    providers = {r.urn: r.inputs for r in plan.resources if r.type.startswith("pulumi:providers:")}
    return [CostResource(type=r.type, name=r.name, props=r.inputs, provider=providers.get(r.provider or "", {}))
            for r in plan.resources if r.custom]


def plan_cost(plan: Plan, today: datetime.date | None = None) -> PlanCost | None:
    """The cost of a planned stack; None for one on kind (it costs nothing) or of another project."""
    config = plan.config
    if not isinstance(config, StackConfig):
        return None
    catalogue = load()
    stack = stack_cost(cost_resources(plan), catalogue)
    if stack is None:
        return None
    models = tuple(model_cost(config, model, stack) for model in config.models)
    budget = config.budget
    verdict = within_budget(stack, budget.monthly_usd, budget.scale) if budget else None
    return PlanCost(stack=stack, models=models, stale=catalogue.staleness(today or datetime.date.today()),
                    budget_usd=budget.monthly_usd if budget else None,
                    budget_scale=budget.scale if budget else "maximum", verdict=verdict)


def model_cost(config: StackConfig, model: ModelSpec, stack: StackCost) -> ModelCost:
    pool_spec = config.pool(model.pool)
    pool = stack.pool(model.pool)
    low = model.min_replicas
    high = model.max_replicas
    if model.canary is not None:
        low, high = low + model.canary.replicas, high + model.canary.replicas
    if model.shadow is not None:  # it follows the stable version to zero
        low, high = low + (model.shadow.replicas if model.min_replicas else 0), high + model.shadow.replicas
    base = dict(name=model.name, pool=model.pool, devices=model.gpus_per_replica, replicas_min=low, replicas_max=high)
    if not model.gpus_per_replica or pool_spec is None or pool_spec.gpu is None:
        return ModelCost(**base, replica_hourly=None, roofline=None, note="runs on CPU: priced with its pool only")
    if pool is None or pool.gpu_hourly is None:
        return ModelCost(**base, replica_hourly=None, roofline=None,
                         note=f"pool {model.pool!r} has no price" + (f": {pool.unpriced}" if pool else ""))
    sharing = pool_spec.gpu.sharing
    per_gpu = devices_per_gpu(pool_spec.gpu.type, sharing.strategy, sharing.max_shared_clients,
                              sharing.partition_size) if sharing else 1
    replica_hourly = pool.gpu_hourly / (per_gpu or 1) * model.gpus_per_replica
    if sharing is not None:
        return ModelCost(**base, replica_hourly=replica_hourly, roofline=None,
                         note=f"shares its GPUs ({sharing.strategy}): no bandwidth figure per device")
    return ModelCost(**base, replica_hourly=replica_hourly, roofline=roofline(model, pool_spec))


def roofline(model: ModelSpec, pool_spec: NodePool) -> Roofline | None:
    """The model's decode bound on its GPU pool ``pool_spec`` (None where its memory or GPU is unknown)."""
    size = replica_size(model, pool_spec)
    gpu = pool_spec.gpu.type if pool_spec.gpu else ""
    if size is None or size.memory is None or gpu not in MEMORY_BANDWIDTH_GBS:
        return None
    tp = model.gpus_per_replica
    per_gpu_bytes = (size.memory.weights_gib / tp + size.memory.kv_cache_gib) * GIB
    bandwidth = MEMORY_BANDWIDTH_GBS[gpu]
    step_s = per_gpu_bytes / (bandwidth * 1e9)
    return Roofline(tokens_per_s=model.sequences / step_s, sequences=model.sequences,
                    context=model.engine_args.max_model_len, bytes_per_step=per_gpu_bytes, bandwidth_gbs=bandwidth,
                    tensor_parallel=tp, gpu=gpu)


def node_prices(config: StackConfig) -> tuple[NodePrice, ...]:
    """Each pool's machine types at their on-demand price with the pool's boot disk (the plan's node price), for
    the running-cost recording rules; empty on kind. A machine the catalogue cannot price, or one whose GPUs are
    attached and unpriced, gets no rule: its nodes are missing from the dashboards' cost, as from the plan's."""
    cloud = CLOUDS.get(config.cloud.provider)
    if cloud is None:
        return ()
    catalogue = load()
    disk = catalogue.storage(cloud, DEFAULT_DISK[cloud], config.cloud.region)
    out = []
    for pool in config.node_pools:
        devices = 0
        if pool.gpu is not None:
            sharing = pool.gpu.sharing
            devices = pool.gpu.count * ((devices_per_gpu(pool.gpu.type, sharing.strategy, sharing.max_shared_clients,
                                                         sharing.partition_size) or 1) if sharing else 1)
        for machine in pool.instance_types:
            price = catalogue.machine(cloud, config.cloud.region, machine)
            attached = cloud == "gcp" and takes_attached_gpus(machine)
            if price is None or disk is None or (attached and pool.gpu is not None):
                continue
            out.append(NodePrice(pool=pool.name, instance_type=machine, devices=devices,
                                 usd_per_hour=price.on_demand + disk_hourly(pool.disk_size_gib, disk[0])))
    return tuple(out)


def cost_delta(a: dict | None, b: dict | None) -> dict | None:
    """What an edit changes in what a stack costs a month: per pool, per model, the fixed costs and the total, at
    minimum and maximum scale, from two plans' cost sections (``PlanCost.to_json``; None: kind, which costs
    nothing). Rows that do not change are left out; None when neither side costs anything."""
    if a is None and b is None:
        return None

    def monthly(row: dict | None, key: str = "cost") -> tuple[float, float]:
        if row is None:
            return 0.0, 0.0
        span = row[key]
        return (span["minimum"]["monthly"] or 0.0, span["maximum"]["monthly"] or 0.0)

    def fixed(side: dict | None) -> tuple[float, float]:
        rows = [monthly(f) for f in (side or {}).get("fixed", [])]
        return sum((lo for lo, _ in rows), 0.0), sum((hi for _, hi in rows), 0.0)

    def rows(kind: str) -> list[dict]:
        left = {r["name"]: r for r in (a or {}).get(kind, [])}
        right = {r["name"]: r for r in (b or {}).get(kind, [])}
        out = []
        for name in sorted(left.keys() | right.keys()):
            row = _delta_row(name, monthly(left.get(name)), monthly(right.get(name)))
            unpriced = [side[name]["unpriced"] for side in (left, right) if side.get(name, {}).get("unpriced")]
            if unpriced:
                row["unpriced"] = unpriced[0]
            if row["delta"] != [0.0, 0.0] or name not in left or name not in right or unpriced:
                out.append(row)
        return out

    return {
        "currency": "USD", "period": "month",
        "pools": rows("pools"), "models": rows("models"),
        "fixed": _delta_row("fixed costs", fixed(a), fixed(b)),
        "total": _delta_row("total", monthly(a, "total"), monthly(b, "total")),
        "unpriced": sorted(set((a or {}).get("unpriced", [])) | set((b or {}).get("unpriced", []))),
    }


def _delta_row(name: str, a: tuple[float, float], b: tuple[float, float]) -> dict:
    return {"name": name, "a": [round(a[0], 2), round(a[1], 2)], "b": [round(b[0], 2), round(b[1], 2)],
            "delta": [round(b[0] - a[0], 2), round(b[1] - a[1], 2)]}


__all__ = ["ModelCost", "PlanCost", "Roofline", "cost_delta", "cost_resources", "model_cost", "node_prices",
           "plan_cost", "roofline"]
