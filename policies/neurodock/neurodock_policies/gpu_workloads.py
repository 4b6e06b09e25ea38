"""gpu-workloads: a container that uses GPUs asks for ``nvidia.com/gpu`` in its limits (the
scheduler only counts extended resources there), and its pod tolerates the GPU pools' taint."""

from __future__ import annotations

from neurodock_policies.support import (
    GPU_RESOURCE,
    all_containers,
    all_known,
    describe,
    entries,
    gpu_count,
    pod_spec,
    resource_policy,
)

NAME = "gpu-workloads"


def check(resource_type, props, name, config) -> list[str]:
    pod = pod_spec(resource_type, props)
    if pod is None:
        return []
    what = describe(resource_type, props, name)
    out = []
    uses_gpu = False
    for c in all_containers(pod):
        requested, limited = gpu_count(c, "requests"), gpu_count(c, "limits")
        if requested and not limited:
            out.append(f"{what} container '{c.get('name')}' requests {GPU_RESOURCE} without a limit; set "
                       f"resources.limits['{GPU_RESOURCE}'] to the GPUs it needs.")
        uses_gpu = uses_gpu or bool(requested or limited)
    tolerations = pod.get("tolerations")
    tolerated = any(t.get("key") == GPU_RESOURCE and t.get("operator") in ("Exists", "Equal", None)
                    for t in entries(tolerations))
    if uses_gpu and not tolerated and all_known(tolerations):  # tolerations not known yet: judged once known
        out.append(f"{what} uses GPUs but does not tolerate the taint {GPU_RESOURCE}:NoSchedule that GPU pools "
                   f"carry; add a toleration for key '{GPU_RESOURCE}'.")
    return out


POLICY = resource_policy(
    NAME,
    "GPU containers set nvidia.com/gpu in limits and tolerate the GPU taint.",
    check,
)
