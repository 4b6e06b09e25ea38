"""container-resources: every container requests CPU and memory and limits memory. CPU limits are
not required: throttling a latency-bound server hurts more than it protects."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, ResourceValidationArgs, ResourceValidationPolicy

from neurodock_policies.support import all_containers, describe, dig, known, pod_spec

NAME = "container-resources"
REQUIRED = (("requests", "cpu"), ("requests", "memory"), ("limits", "memory"))


def check(resource_type, props, name) -> list[str]:
    pod = pod_spec(resource_type, props)
    if pod is None:
        return []
    out = []
    for c in all_containers(pod):
        resources = c.get("resources")
        if resources is not None and not known(resources):
            continue
        missing = [f"{where}.{what}" for where, what in REQUIRED if not dig(resources, where, what)]
        if missing:
            out.append(f"{describe(resource_type, props, name)} container '{c.get('name')}' sets no "
                       f"{', '.join(missing)}; set resources.requests.cpu, resources.requests.memory and "
                       "resources.limits.memory.")
    return out


def _validate(args: ResourceValidationArgs, report) -> None:
    for message in check(args.resource_type, args.props, args.name):
        report(message)


POLICY = ResourceValidationPolicy(
    name=NAME,
    description="Every container requests CPU and memory and limits memory.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate,
)
