"""container-resources: every container requests CPU and memory and limits memory. CPU limits are
not required: throttling a latency-bound server hurts more than it protects."""

from __future__ import annotations

from neurodock_policies.support import all_containers, describe, dig, known, pod_spec, resource_policy

NAME = "container-resources"
REQUIRED = (("requests", "cpu"), ("requests", "memory"), ("limits", "memory"))


def check(resource_type, props, name, config) -> list[str]:
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


POLICY = resource_policy(
    NAME,
    "Every container requests CPU and memory and limits memory.",
    check,
)
