"""prod-gpu-pools-not-spot-only: in prod, GPU serving pools run on on-demand capacity: a spot
reclaim must not take every replica of a model at once."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, ResourceValidationArgs, ResourceValidationPolicy

from neurodock_policies.support import dig, environment_of

NAME = "prod-gpu-pools-not-spot-only"


def check(resource_type, props, name, config) -> list[str]:
    if environment_of(props) not in set(config.get("productionEnvironments", ["prod"])):
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


def _validate(args: ResourceValidationArgs, report) -> None:
    for message in check(args.resource_type, args.props, args.name, args.get_config()):
        report(message)


POLICY = ResourceValidationPolicy(
    name=NAME,
    description="Production GPU serving pools are not spot-only.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate,
    config_schema=None,
)
