"""model-fits-gpu: every model server fits the GPU memory of the pool it is scheduled on. The
server states its need per GPU (weights / tensor-parallel size + KV cache + runtime) in the
``neurodock.io/gpu-memory-need-gib`` annotation; the pool's GPU type comes from its node labels."""

from __future__ import annotations

from pulumi_policy import PolicyConfigSchema

from components.gpu.catalog import GPU_MODELS
from neurodock_policies.support import all_known, describe, dig, entries, is_model_server, known, pod_spec, stack_policy

NAME = "model-fits-gpu"
NEED_ANNOTATION = "neurodock.io/gpu-memory-need-gib"
POOL_LABEL = "neurodock.io/pool"
GPU_TYPE_LABEL = "neurodock.io/gpu-type"
CONFIG_SCHEMA = PolicyConfigSchema(properties={
    "minFreeGib": {"type": "number", "minimum": 0, "default": 0,
                   "description": "GiB per GPU that must stay free beyond the model's need (fragmentation, "
                                  "CUDA graphs, a longer context later)."}})


def _pool_gpu_types(resources) -> dict[str, str]:
    types = {}
    for r in resources:
        if r.resource_type == "aws:eks/nodeGroup:NodeGroup":
            labels = r.props.get("labels")
        elif r.resource_type == "gcp:container/nodePool:NodePool":
            labels = dig(r.props, "nodeConfig", "labels")
        else:
            continue
        if isinstance(labels, dict) and known(labels.get(POOL_LABEL)) and known(labels.get(GPU_TYPE_LABEL)):
            types[labels[POOL_LABEL]] = labels[GPU_TYPE_LABEL]
    return types


def _utilisation(command: list) -> float:
    if "--gpu-memory-utilization" in command:
        return float(command[command.index("--gpu-memory-utilization") + 1])
    return 0.9


def check(resources, config) -> list[tuple[str, str]]:
    pools = _pool_gpu_types(resources)
    free = float(config["minFreeGib"])
    out = []
    for r in resources:
        if not is_model_server(r.resource_type, r.props):
            continue
        need = dig(r.props, "metadata", "annotations", NEED_ANNOTATION)
        pod = pod_spec(r.resource_type, r.props) or {}
        pool = dig(pod, "nodeSelector", POOL_LABEL)
        if not known(need) or not known(pool) or pool not in pools or pools[pool] not in GPU_MODELS:
            continue
        gpu = GPU_MODELS[pools[pool]]
        containers = pod.get("containers")
        if not all_known(containers) or not entries(containers):
            continue  # judged once known
        engine = entries(containers)[0]
        usable = gpu.memory_gib * _utilisation(list(engine.get("command") or []) + list(engine.get("args") or []))
        if float(need) + free > usable:
            spare = f" and {free:g} GiB must stay free" if free else ""
            what = describe(r.resource_type, r.props, r.name)
            out.append((r.urn, f"{what} needs {float(need):.1f} GiB per GPU{spare} but pool '{pool}' has "
                               f"{gpu.name} GPUs with {usable:.1f} GiB usable; use more GPUs per replica, a shorter "
                               "context, quantization, or a pool with larger GPUs."))
    return out


POLICY = stack_policy(
    NAME,
    "Every model fits the GPU memory of its pool.",
    check,
    config_schema=CONFIG_SCHEMA,
)
