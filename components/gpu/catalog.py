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


GPU_MODELS: dict[str, GpuModel] = {
    g.name: g
    for g in (
        GpuModel(name="nvidia-t4", memory_gib=15, product="Tesla-T4",
                 gke_accelerator="nvidia-tesla-t4", eks=True),
        GpuModel(name="nvidia-a10g", memory_gib=22, product="NVIDIA-A10G", gke_accelerator=None, eks=True),
        GpuModel(name="nvidia-l4", memory_gib=22, product="NVIDIA-L4", gke_accelerator="nvidia-l4", eks=True),
        GpuModel(name="nvidia-l40s", memory_gib=44, product="NVIDIA-L40S", gke_accelerator=None, eks=True),
        GpuModel(name="nvidia-a100-40gb", memory_gib=39, product="NVIDIA-A100-SXM4-40GB",
                 gke_accelerator="nvidia-tesla-a100", eks=True),
        GpuModel(name="nvidia-a100-80gb", memory_gib=79, product="NVIDIA-A100-SXM4-80GB",
                 gke_accelerator="nvidia-a100-80gb", eks=True),
        GpuModel(name="nvidia-h100-80gb", memory_gib=79, product="NVIDIA-H100-80GB-HBM3",
                 gke_accelerator="nvidia-h100-80gb", eks=True),
        GpuModel(name="nvidia-h200-141gb", memory_gib=139, product="NVIDIA-H200",
                 gke_accelerator="nvidia-h200-141gb", eks=True),
    )
}
