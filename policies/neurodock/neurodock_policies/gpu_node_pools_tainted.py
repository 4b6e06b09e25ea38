"""gpu-node-pools-tainted: GPU node pools carry the ``nvidia.com/gpu`` NoSchedule taint, so only pods
that ask for GPUs land on the most expensive nodes."""

from __future__ import annotations

from neurodock_policies.support import GPU_RESOURCE, all_known, dig, entries, known, resource_policy

NAME = "gpu-node-pools-tainted"


def _is_gpu_pool(resource_type, props) -> bool:
    if resource_type == "aws:eks/nodeGroup:NodeGroup":
        return dig(props, "labels", "neurodock.io/role") == "gpu" or "NVIDIA" in str(props.get("amiType") or "")
    return (dig(props, "nodeConfig", "labels", "neurodock.io/role") == "gpu"
            or bool(dig(props, "nodeConfig", "guestAccelerators")))


def check(resource_type, props, name, config) -> list[str]:
    if resource_type not in ("aws:eks/nodeGroup:NodeGroup", "gcp:container/nodePool:NodePool"):
        return []
    if not _is_gpu_pool(resource_type, props):
        return []
    taints = props.get("taints") if resource_type.startswith("aws:") else dig(props, "nodeConfig", "taints")
    if not known(taints) or not all_known(taints):
        return []  # judged once known
    if any(t.get("key") == GPU_RESOURCE and t.get("effect") == "NO_SCHEDULE" for t in entries(taints)):
        return []
    kind = "NodeGroup" if resource_type.startswith("aws:") else "NodePool"
    return [f"{kind} '{name}' has GPUs but no taint {GPU_RESOURCE}=present:NO_SCHEDULE; add it so that only GPU "
            "workloads are scheduled there."]


POLICY = resource_policy(
    NAME,
    "GPU node pools are tainted nvidia.com/gpu:NoSchedule.",
    check,
)
