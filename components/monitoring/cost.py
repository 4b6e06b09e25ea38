"""What the running stack costs, from live node counts and the plan's price catalogue: recording rules and the
*NeuroDock / Cost* dashboard.

The program hands the stack's node prices (``NodePrice``: each pool's machine types at their catalogue price with
the pool's boot disk, the figure ``neurodock plan`` uses) to :func:`cost_rules`, which writes one rule per pool and
machine type: every node kube-state-metrics lists with that pool and instance-type label costs that much an hour.
``node.kubernetes.io/instance-type`` is the well-known label the kubelet sets from the cloud provider (Kubernetes
docs, "Well-Known Labels, Annotations and Taints"); kube-state-metrics exports it as
``label_node_kubernetes_io_instance_type`` once it is allow-listed (``stack.NODE_LABELS_EXPORTED``).

A model version's cost is the devices its server pods request (``nvidia.com/gpu``) at their node's price per
device; its measured cost per million tokens divides that by the tokens vLLM generated. Neither knows discounts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from components.monitoring import metrics as m
from components.monitoring.recording import (
    COST_WINDOWS,
    DEVICE_PRICE,
    INSTANCE_TYPE,
    MODEL_PRICE,
    NODE_PRICE,
    POOL,
    POOL_PRICE,
    usd_per_mtok,
)


@dataclass(frozen=True, kw_only=True)
class NodePrice:
    pool: str
    instance_type: str
    usd_per_hour: float
    """On-demand list price of one node with its boot disk (``components.cost``)."""
    devices: int = 0
    """Schedulable GPU devices per node (GPUs x devices per GPU when shared); 0 on a CPU pool."""


def _nodes(price: NodePrice) -> str:
    return (f'max by (node, {POOL}, {INSTANCE_TYPE}) ({m.KSM_NODE_LABELS.name}{{{POOL}="{price.pool}", '
            f'{INSTANCE_TYPE}="{price.instance_type}"}})')


def cost_rules(prices: Iterable[NodePrice]) -> list[dict]:
    """Recording rules of the running cost: per node, pool and model version, and the measured $/Mtok."""
    prices = sorted(prices, key=lambda p: (p.pool, p.instance_type))
    if not prices:
        return []
    rules = [{"record": NODE_PRICE.name, "expr": f"{p.usd_per_hour:.6f} * {_nodes(p)}"} for p in prices]
    rules += [{"record": DEVICE_PRICE.name, "expr": f"{p.usd_per_hour / p.devices:.6f} * {_nodes(p)}"}
              for p in prices if p.devices]
    rules.append({"record": POOL_PRICE.name, "expr": f"sum by ({POOL}) ({NODE_PRICE.name})"})
    if any(p.devices for p in prices):
        servers = f"group by (namespace, pod, model_name, variant) ({m.VLLM_RUNNING.name})"
        requests = f'{m.KSM_POD_REQUESTS.name}{{resource="nvidia_com_gpu"}}'
        rules.append({"record": MODEL_PRICE.name,
                      "expr": f"sum by (model_name, variant) ({requests} "
                              f"* on (node) group_left () {DEVICE_PRICE.name} "
                              f"* on (namespace, pod) group_left (model_name, variant) {servers})"})
        # A version that generated nothing has no price per token (not +Inf): its cost is in MODEL_PRICE.
        rules += [{"record": usd_per_mtok(w).name,
                   "expr": f"{MODEL_PRICE.name} / on (model_name, variant) "
                           f"(sum by (model_name, variant) (rate({m.VLLM_GENERATION_TOKENS.name}[{w}])) * 3600 / 1e6 "
                           f"> 0)"}
                  for w in COST_WINDOWS]
    return rules


def cost_groups(prices: Iterable[NodePrice]) -> list[dict]:
    """The cost rule group, or none where nothing is priced."""
    rules = cost_rules(prices)
    return [{"name": "neurodock-cost", "rules": rules}] if rules else []


def cost_dashboard_panels() -> list[tuple[str, list[tuple[str, str]], str, str]]:
    """The *NeuroDock / Cost* dashboard's panels: (title, [(expr, legend)], unit, description)."""
    return [
        ("Running cost per pool", [(f"{POOL_PRICE.name}", f"{{{{{POOL}}}}}")], "currencyUSD",
         "List price per hour of the nodes running now, by pool (boot disks included; no discounts)."),
        ("Running cost, projected a month", [(f"sum({POOL_PRICE.name}) * 730", "all pools")], "currencyUSD",
         "This hour's node cost times 730: compare with the plan's minimum .. maximum (docs/cost.md)."),
        ("Cost per model version", [(f"{MODEL_PRICE.name}", "{{model_name}} {{variant}}")], "currencyUSD",
         "The GPU devices each version's servers request, at their node's price per device, per hour."),
        ("Measured cost per million tokens", [(f"{usd_per_mtok('1h').name}", "{{model_name}} {{variant}}")],
         "currencyUSD",
         "Per version: its hourly cost over the tokens it generated in the last hour. The plan's $/Mtok is a floor "
         "at full load; this is what the traffic made of it."),
    ]


__all__ = [
    "NodePrice",
    "cost_dashboard_panels",
    "cost_groups",
    "cost_rules",
    "usd_per_mtok",
]
