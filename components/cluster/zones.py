"""Where a GKE node pool's nodes go: the stack's zones that offer the pool's GPU machine, and how many nodes a
new pool starts with in each.

Which zones offer which GPU machine is data that ages (STYLE #24): ``data/gce_gpu_zones.json`` holds it, with its
source (a THIRD-PARTY catalogue generated from the Compute Engine API: Google's own table could not be read), the
date it was read, its caveats, the ``gcloud`` commands that verify a zone and the refresh procedure. A CPU machine
type (``e2-standard-8``) is not in it and keeps every zone of the stack.

A GKE pool's ``node_locations`` ("The list of zones in which the node pool's nodes should be located",
terraform-provider-google ``resource_container_node_pool.go`` at e03b7622, 2026-08-21; updated in place, not
ForceNew) get a node group in each zone; NeuroDock lists only zones that offer the pool's machine, so no zone is
asked for a machine it does not have.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

DATA_FILE = Path(__file__).with_name("data") / "gce_gpu_zones.json"
DATA_NAME = "components/cluster/data/gce_gpu_zones.json"
"""The data file as messages name it."""
STALE_AFTER_DAYS = 180
"""Data read longer ago than this is stale: a test warns (the refresh procedure is in the file)."""
_PUBLIC_ZONE = re.compile(r"[a-z]+-[a-z]+[0-9]+-[a-z]")
"""A public zone's name (``europe-west4-b``): the only kind the data covers. AI zones (``us-central1-ai1a``) exist for
accelerators and are not in it: a pool keeps them, unjudged."""


@cache
def catalogue() -> dict[str, Any]:
    """The data file: ``source``, ``read``, ``caveats``, ``verify``, ``refresh``, then the zones of each machine
    series, of each machine type that differs from its series, and of each accelerator attached to a series."""
    return json.loads(DATA_FILE.read_text())


def offered_zones(machine: str, accelerator: str | None = None) -> frozenset[str] | None:
    """The zones that offer GCE machine type ``machine`` (with ``accelerator``, GKE's accelerator type, attached,
    for a series such as N1 that takes GPUs by count), or None for a machine the data does not cover: a CPU
    machine type, offered wherever the stack is."""
    data = catalogue()
    entry = data["machineTypes"].get(machine) or data["machineSeries"].get(machine.rsplit("-", 1)[0])
    if entry is None and accelerator is not None:
        attached = data["attachedAccelerators"].get(accelerator)
        if attached is not None and machine.split("-", 1)[0] in attached["machineSeries"]:
            entry = attached
    return frozenset(entry["zones"]) if entry is not None else None


def judged(zone: str) -> bool:
    """Whether the data can say anything about ``zone`` (a public zone; not an AI zone)."""
    return _PUBLIC_ZONE.fullmatch(zone) is not None


def pool_zones(machine: str, accelerator: str | None, zones: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The zones of ``zones`` where a pool of ``machine`` (with ``accelerator`` attached) is placed: those that
    offer it, in the stack's order; every one for a machine the data does not cover. Empty when none offers it,
    which the stack's configuration refuses (``infra/config/pools.py``)."""
    offered = offered_zones(machine, accelerator)
    if offered is None:
        return tuple(zones)
    return tuple(z for z in zones if z in offered or not judged(z))


def initial_nodes_per_zone(*, gpu: bool, min_nodes: int, zone_count: int) -> int:
    """A new GKE pool's ``initial_node_count``, which GKE creates in EACH of its zones ("In regional or multi-zonal
    clusters, this is the number of nodes per zone", terraform-provider-google ``resource_container_node_pool.go``
    at e03b7622; GKE docs, "Autoscaling a cluster": ``--num-nodes`` is "the number of nodes to create in each
    location").

    A GPU pool never starts above its minimum: ``floor(min_nodes / zones)`` per zone, so ``min_nodes`` exactly when
    the zones divide it and fewer otherwise; the serving pods that need the rest stay pending and the autoscaler
    adds their nodes in whichever zone has capacity (``location_policy: ANY``). A CPU or system pool rounds up
    (``ceil``): the cluster's add-ons need somewhere to run as soon as it exists, and a spare CPU node is cheap."""
    if zone_count <= 0:
        return 0
    return min_nodes // zone_count if gpu else math.ceil(min_nodes / zone_count)


def read_date() -> date:
    return date.fromisoformat(catalogue()["read"])


def stale(on: date) -> str | None:
    """A message when the data was read longer ago than :data:`STALE_AFTER_DAYS` before ``on``, else None."""
    age = (on - read_date()).days
    if age <= STALE_AFTER_DAYS:
        return None
    return f"{DATA_NAME} was read {age} days ago ({catalogue()['read']}): {catalogue()['refresh']}"


def provenance() -> str:
    """How messages cite the data: what it is, and when it was read."""
    return f"THIRD-PARTY catalogue {DATA_NAME}, read {catalogue()['read']}"


__all__ = [
    "DATA_FILE", "DATA_NAME", "STALE_AFTER_DAYS", "catalogue", "initial_nodes_per_zone", "judged", "offered_zones",
    "pool_zones", "provenance", "read_date", "stale",
]
