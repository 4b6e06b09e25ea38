"""The one table of GPU facts that validation, node pools and capacity checks read.

Keys are NeuroDock's GPU type names (the values of ``nodePools[].gpu.type``). Memory is per GPU, in
GiB, as the driver reports it; ``product`` is the value the NVIDIA GPU Feature Discovery writes to
the ``nvidia.com/gpu.product`` node label; ``gke_accelerator`` is GKE's ``accelerator_type`` (None
where GKE has no such GPU); ``eks`` says whether an EC2 GPU instance family carries it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class GpuModel:
    """Facts about one GPU model."""

    name: str
    memory_gib: int
    product: str
    gke_accelerator: str | None
    eks: bool
    compute_capability: tuple[int, int]
    """CUDA compute capability (NVIDIA, "CUDA GPU Compute Capability", developer.nvidia.com/cuda-gpus, as the CUDA
    Programming Guide 5.1.1 points to it; read 2026-12-06): which number formats the engine can run (vLLM: bf16
    needs 8.0, fp8 8.0 with weight-only Marlin kernels below 8.9; see ``VLLM_MIN_CAPABILITY``)."""


GPU_MODELS: dict[str, GpuModel] = {
    g.name: g
    for g in (
        GpuModel(name="nvidia-t4", memory_gib=15, product="Tesla-T4",
                 gke_accelerator="nvidia-tesla-t4", eks=True, compute_capability=(7, 5)),
        GpuModel(name="nvidia-a10g", memory_gib=22, product="NVIDIA-A10G", gke_accelerator=None, eks=True,
                 compute_capability=(8, 6)),
        GpuModel(name="nvidia-l4", memory_gib=22, product="NVIDIA-L4", gke_accelerator="nvidia-l4", eks=True,
                 compute_capability=(8, 9)),
        GpuModel(name="nvidia-l40s", memory_gib=44, product="NVIDIA-L40S", gke_accelerator=None, eks=True,
                 compute_capability=(8, 9)),
        GpuModel(name="nvidia-a100-40gb", memory_gib=39, product="NVIDIA-A100-SXM4-40GB",
                 gke_accelerator="nvidia-tesla-a100", eks=True, compute_capability=(8, 0)),
        GpuModel(name="nvidia-a100-80gb", memory_gib=79, product="NVIDIA-A100-SXM4-80GB",
                 gke_accelerator="nvidia-a100-80gb", eks=True, compute_capability=(8, 0)),
        GpuModel(name="nvidia-h100-80gb", memory_gib=79, product="NVIDIA-H100-80GB-HBM3",
                 gke_accelerator="nvidia-h100-80gb", eks=True, compute_capability=(9, 0)),
        GpuModel(name="nvidia-h200-141gb", memory_gib=139, product="NVIDIA-H200",
                 gke_accelerator="nvidia-h200-141gb", eks=True, compute_capability=(9, 0)),
    )
}


VLLM_MIN_CAPABILITY: dict[str, tuple[int, int]] = {"bfloat16": (8, 0), "fp8": (8, 0), "awq": (7, 5)}
"""The compute capability vLLM needs for a weights dtype or a quantisation: ``check_if_supports_dtype`` refuses
bfloat16 below 8.0 (vllm/platforms/cuda.py, "Bfloat16 is only supported on GPUs with compute capability of at
least 8.0"), and each quantisation's ``get_min_capability`` (vllm/model_executor/layers/quantization fp8.py 80,
awq.py 75), checked when the engine loads the model. Read 2026-12-06 in the stored copies of vllm-project/vllm
(cuda.py at 002db4951e, fp8.py at 0071b24bf8, awq.py at 000796acdf): the v0.28.0 tree is over the size this
workplace fetches, and the bfloat16 threshold reads the same in every older copy found (``_check_if_gpu_supports_dtype``
of the v0 workers)."""
VLLM_HALF_ONLY_QUANTIZATIONS = frozenset({"awq"})
"""Quantisations whose kernels take float16 activations only (``get_supported_act_dtypes`` returns
``[torch.half]``): vLLM refuses them with bfloat16 ("torch.bfloat16 is not supported for quantization method
awq. Supported dtypes: [torch.float16]")."""


@dataclass(frozen=True, kw_only=True)
class GpuMachine:
    """A machine type that comes with GPUs attached."""

    gpu_type: str
    """Key of ``GPU_MODELS``."""
    count: int
    """GPUs per node."""
    gke_accelerator: str | None = None
    """GKE's ``accelerator_type`` for this machine where it is not its GPU model's (default: the model's): the A3
    Mega machine's H100s are ``nvidia-h100-mega-80gb``, the A3 High machine's ``nvidia-h100-80gb`` (GKE docs, GPU
    requirements of Standard node pools: "NVIDIA H100 80GB Mega GPUs (corresponding to the nvidia-h100-mega-80gb
    accelerator type and A3 Mega machine type)"; Compute Engine's GPU page; read 2026-12-06). A pool's guest
    accelerator must be its machine's: GKE refuses another."""


def _family(gpu_type: str, sizes: dict[str, int], prefix: str) -> dict[str, GpuMachine]:
    return {f"{prefix}{size}": GpuMachine(gpu_type=gpu_type, count=n) for size, n in sizes.items()}


_G_SINGLE = {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1,
             "12xlarge": 4, "24xlarge": 4, "48xlarge": 8}

EKS_INSTANCE_TYPES: dict[str, GpuMachine] = {
    **_family("nvidia-t4", {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1,
                            "12xlarge": 4, "metal": 8}, "g4dn."),
    **_family("nvidia-a10g", _G_SINGLE, "g5."),
    **_family("nvidia-l4", _G_SINGLE, "g6."),
    **_family("nvidia-l40s", _G_SINGLE, "g6e."),
    "p4d.24xlarge": GpuMachine(gpu_type="nvidia-a100-40gb", count=8),
    "p4de.24xlarge": GpuMachine(gpu_type="nvidia-a100-80gb", count=8),
    "p5.4xlarge": GpuMachine(gpu_type="nvidia-h100-80gb", count=1),
    "p5.48xlarge": GpuMachine(gpu_type="nvidia-h100-80gb", count=8),
    "p5e.48xlarge": GpuMachine(gpu_type="nvidia-h200-141gb", count=8),
    "p5en.48xlarge": GpuMachine(gpu_type="nvidia-h200-141gb", count=8),
}
"""EC2 GPU instance types: the GPUs each one has."""

GKE_MACHINE_TYPES: dict[str, GpuMachine] = {
    **_family("nvidia-l4", {"4": 1, "8": 1, "12": 1, "16": 1, "32": 1, "24": 2, "48": 4, "96": 8}, "g2-standard-"),
    **_family("nvidia-a100-40gb", {"1g": 1, "2g": 2, "4g": 4, "8g": 8}, "a2-highgpu-"),
    "a2-megagpu-16g": GpuMachine(gpu_type="nvidia-a100-40gb", count=16),
    **_family("nvidia-a100-80gb", {"1g": 1, "2g": 2, "4g": 4, "8g": 8}, "a2-ultragpu-"),
    **_family("nvidia-h100-80gb", {"1g": 1, "2g": 2, "4g": 4, "8g": 8}, "a3-highgpu-"),
    "a3-megagpu-8g": GpuMachine(gpu_type="nvidia-h100-80gb", count=8, gke_accelerator="nvidia-h100-mega-80gb"),
    "a3-ultragpu-8g": GpuMachine(gpu_type="nvidia-h200-141gb", count=8),
}
"""GCE accelerator-optimised machine types: the GPUs each one has."""

GKE_NOT_ON_DEMAND: dict[str, str] = {
    **{f"a3-highgpu-{n}g": "you must create instances by using Spot VMs or Flex-start VMs" for n in (1, 2, 4)},
    "a3-ultragpu-8g": "you must reserve capacity to create instances or clusters, use Spot VMs, use Flex-start VMs, or "
                      "create a resize request in a MIG",
}
"""Machine types Compute Engine does not start on demand (the standard provisioning model), with Google's words for
what it takes instead (Compute Engine docs, "Accelerator-optimized machine family",
docs.cloud.google.com/compute/docs/accelerator-optimized-machines, updated 2026-04-13: the notes under A3 High and A3
Ultra, and the table "Consumption option availability by machine type"). NeuroDock's pools run on demand or as Spot
VMs (``capacity``); reservations and flex-start are not offered, so these machines run as Spot VMs or not at all."""

GKE_HYPERDISK_ONLY = ("a3-ultragpu-",)
"""Machine families that take no Persistent Disk (the same page, A3 Ultra limitations: "You can't use Persistent Disk
(regional or zonal). You can only use Google Cloud Hyperdisk", and "Hyperdisk Balanced (hyperdisk-balanced): this is the
only disk type that is supported for the boot disk")."""


def gke_boot_disk(machine: str) -> str:
    """The boot disk type a GKE node of ``machine`` gets: Hyperdisk Balanced where Persistent Disk is not supported,
    Persistent Disk Balanced elsewhere."""
    return "hyperdisk-balanced" if machine.startswith(GKE_HYPERDISK_ONLY) else "pd-balanced"


GKE_ATTACHABLE: dict[str, tuple[str, frozenset[int]]] = {
    "n1-": ("nvidia-t4", frozenset({1, 2, 4})),
}
"""GCE machine families to which GPUs are attached by count: prefix -> (GPU type, allowed counts)."""


def takes_attached_gpus(machine: str) -> bool:
    """Whether GPUs are attached to GCE ``machine`` by count (``GKE_ATTACHABLE``), rather than built in."""
    return machine.startswith(tuple(GKE_ATTACHABLE))


MIG_PROFILES: dict[str, dict[str, int]] = {
    "nvidia-a100-40gb": {"1g.5gb": 7, "2g.10gb": 3, "3g.20gb": 2, "7g.40gb": 1},
    "nvidia-a100-80gb": {"1g.10gb": 7, "2g.20gb": 3, "3g.40gb": 2, "7g.80gb": 1},
    "nvidia-h100-80gb": {"1g.10gb": 7, "1g.20gb": 4, "2g.20gb": 3, "3g.40gb": 2, "7g.80gb": 1},
    "nvidia-h200-141gb": {"1g.18gb": 7, "1g.35gb": 4, "2g.35gb": 3, "3g.71gb": 2, "7g.141gb": 1},
}
"""MIG partition sizes GKE accepts per GPU type (only these GPUs support MIG), and how many partitions
of that size it makes of one GPU (GoogleCloudPlatform/container-engine-accelerators
``pkg/gpu/nvidia/mig/mig.go`` ``gpuPartitionSizeMaxCount``)."""


def devices_per_gpu(gpu_type: str, strategy: str, max_shared_clients: int, partition_size: str | None) -> int | None:
    """``nvidia.com/gpu`` devices a node advertises per shared GPU: one per time-slicing client, one per MIG
    partition (GKE docs, "Time-sharing GPUs" and "Multi-instance GPUs"); None for an unknown MIG size."""
    if strategy == "timeSharing":
        return max_shared_clients
    return MIG_PROFILES.get(gpu_type, {}).get(partition_size or "")


def gke_accelerator(machine: str, gpu_type: str) -> str | None:
    """GKE's ``accelerator_type`` for ``gpu_type`` GPUs on GCE machine type ``machine``: the machine's own where it
    has one (:attr:`GpuMachine.gke_accelerator`), else the GPU model's (None where GKE has no such GPU)."""
    machine_type = GKE_MACHINE_TYPES.get(machine)
    if machine_type is not None and machine_type.gke_accelerator is not None:
        return machine_type.gke_accelerator
    model = GPU_MODELS.get(gpu_type)
    return model.gke_accelerator if model else None


def machine_gpus(cloud: str, machine: str, attached: GpuMachine | None = None) -> GpuMachine | None:
    """The GPUs a machine type has on ``cloud``; for GKE families that take attached GPUs, the
    ``attached`` request when it is allowed. None when the machine has no (such) GPUs."""
    if cloud == "eks":
        return EKS_INSTANCE_TYPES.get(machine)
    if cloud == "gke":
        if machine in GKE_MACHINE_TYPES:
            return GKE_MACHINE_TYPES[machine]
        for prefix, (gpu_type, counts) in GKE_ATTACHABLE.items():
            if machine.startswith(prefix) and attached and attached.gpu_type == gpu_type and attached.count in counts:
                return attached
    return None


MEMORY_BANDWIDTH_GBS: dict[str, int] = {
    "nvidia-t4": 320,
    "nvidia-a10g": 600,
    "nvidia-l4": 300,
    "nvidia-l40s": 864,
    "nvidia-a100-40gb": 1555,
    "nvidia-a100-80gb": 2039,
    "nvidia-h100-80gb": 3350,
    "nvidia-h200-141gb": 4800,
}
"""Peak memory bandwidth per GPU, GB/s (10^9 bytes a second), the figure decode throughput is bounded by
(``infra.cost``). NVIDIA's pages, as read in copies on 2026-12-06 (no stored nvidia.com datasheet could be opened):
T4 "Peak Memory bandwidth Up to 320 GBytes/s" (T4 product brief, Table 2, reproduced at manualmachine.com);
A10G has no public NVIDIA datasheet: the A10's 600 GB/s, which it shares (baseten.co, "NVIDIA A10 vs A10G");
L4 "24 GB GDDR6 @ 300 GBps" (Compute Engine's GPU chart, as quoted; nvidia.com/en-us/data-center/l4);
L40S 864 GB/s (NVIDIA's L40/L40S spec table); A100 SXM4 40GB 1,555 GB/s and 80GB 2,039 GB/s (A100 datasheet
r4, nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf); H100 SXM5 3,350 GB/s (NVIDIA's H100 spec table; the p5
and A3 machines carry the SXM part, node label NVIDIA-H100-80GB-HBM3); H200 4.8 TB/s
(nvidia.com/en-us/data-center/h200).
Peak figures: what a server achieves is a fraction of them (see ``infra.cost.Roofline``)."""
