"""prod-gpu-pools-not-spot-only: in prod, GPU serving pools run on on-demand capacity: a spot
reclaim must not take every replica of a model at once."""

from __future__ import annotations

from neurodock_policies.support import PRODUCTION_SCHEMA, dig, environment_of, resource_policy

NAME = "prod-gpu-pools-not-spot-only"


def check(resource_type, props, name, config) -> list[str]:
    if environment_of(props) not in set(config["productionEnvironments"]):
        return []
    if resource_type == "aws:eks/nodeGroup:NodeGroup":
        spot = dig(props, "labels", "neurodock.io/role") == "gpu" and props.get("capacityType") == "SPOT"
    elif resource_type == "gcp:container/nodePool:NodePool":
        spot = (dig(props, "nodeConfig", "labels", "neurodock.io/role") == "gpu"
                and (dig(props, "nodeConfig", "spot") is True or dig(props, "nodeConfig", "preemptible") is True))
    else:
        return []
    if not spot:
        return []
    return [f"GPU pool '{name}' of a production stack runs on spot capacity only; set its capacity to 'onDemand' "
            "(a spot pool may only add to an on-demand one)."]


POLICY = resource_policy(
    NAME,
    "Production GPU serving pools are not spot-only.",
    check,
    config_schema=PRODUCTION_SCHEMA,
)
