"""Node pool Args for component tests: the sizing the config always fills (``infra/config/pools.py`` holds its
defaults), given once here so a test names only what it is about."""

from __future__ import annotations

from typing import Any

from components.cluster.base import Capacity, NodePoolArgs


def pool_args(**fields: Any) -> NodePoolArgs:
    sizing = {"min_nodes": 1, "max_nodes": 1, "capacity": Capacity.ON_DEMAND, "disk_size_gib": 100}
    return NodePoolArgs(**{**sizing, **fields})
