"""Sizes of common open models, and the memory a vLLM replica needs for them.

Numbers come from each model's ``config.json`` on Hugging Face (``num_hidden_layers``,
``num_attention_heads``, ``num_key_value_heads``, ``head_dim`` or hidden size / heads) and its model
card (parameter count). Models not listed must state their architecture in the stack config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GIB = 1024**3

# Per-GPU memory vLLM needs beyond weights and KV cache: CUDA context, NCCL buffers, activations
# of a profiling batch. An estimate on the safe side, so a model that passes fits in practice.
RUNTIME_OVERHEAD_GIB = 2.0

BYTES_PER_PARAMETER = {"auto": 2.0, "bfloat16": 2.0, "float16": 2.0, "float32": 4.0}
"""Weights by dtype, when not quantised."""
QUANTIZED_BYTES_PER_PARAMETER = {"fp8": 1.0, "awq": 0.5625, "gptq": 0.5625}
"""Weights by quantisation: 4-bit AWQ/GPTQ carry about 1/8 extra for scales and zero points."""
KV_BYTES = {"auto": 2.0, "fp8": 1.0}


@dataclass(frozen=True, kw_only=True)
class Architecture:
    parameters_b: float
    """Parameters, in billions."""
    layers: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    max_context: int


KNOWN: dict[str, Architecture] = {
    "meta-llama/llama-3.2-1b-instruct": Architecture(parameters_b=1.24, layers=16, attention_heads=32, kv_heads=8,
                                                     head_dim=64, max_context=131072),
    "meta-llama/llama-3.2-3b-instruct": Architecture(parameters_b=3.21, layers=28, attention_heads=24, kv_heads=8,
                                                     head_dim=128, max_context=131072),
    "meta-llama/llama-3.1-8b-instruct": Architecture(parameters_b=8.03, layers=32, attention_heads=32, kv_heads=8,
                                                     head_dim=128, max_context=131072),
    "meta-llama/llama-3.1-70b-instruct": Architecture(parameters_b=70.6, layers=80, attention_heads=64, kv_heads=8,
                                                      head_dim=128, max_context=131072),
    "meta-llama/llama-3.3-70b-instruct": Architecture(parameters_b=70.6, layers=80, attention_heads=64, kv_heads=8,
                                                      head_dim=128, max_context=131072),
    "qwen/qwen2.5-0.5b-instruct": Architecture(parameters_b=0.49, layers=24, attention_heads=14, kv_heads=2,
                                               head_dim=64, max_context=32768),
    "qwen/qwen2.5-7b-instruct": Architecture(parameters_b=7.62, layers=28, attention_heads=28, kv_heads=4,
                                             head_dim=128, max_context=32768),
    "qwen/qwen2.5-14b-instruct": Architecture(parameters_b=14.7, layers=48, attention_heads=40, kv_heads=8,
                                              head_dim=128, max_context=32768),
    "qwen/qwen2.5-32b-instruct": Architecture(parameters_b=32.8, layers=64, attention_heads=40, kv_heads=8,
                                              head_dim=128, max_context=32768),
    "qwen/qwen2.5-72b-instruct": Architecture(parameters_b=72.7, layers=80, attention_heads=64, kv_heads=8,
                                              head_dim=128, max_context=32768),
    "mistralai/mistral-7b-instruct-v0.3": Architecture(parameters_b=7.25, layers=32, attention_heads=32, kv_heads=8,
                                                       head_dim=128, max_context=32768),
    "mistralai/mixtral-8x7b-instruct-v0.1": Architecture(parameters_b=46.7, layers=32, attention_heads=32,
                                                         kv_heads=8, head_dim=128, max_context=32768),
    "google/gemma-2-9b-it": Architecture(parameters_b=9.24, layers=42, attention_heads=16, kv_heads=8,
                                         head_dim=256, max_context=8192),
    "google/gemma-2-27b-it": Architecture(parameters_b=27.2, layers=46, attention_heads=32, kv_heads=16,
                                          head_dim=128, max_context=8192),
    "microsoft/phi-3-mini-4k-instruct": Architecture(parameters_b=3.82, layers=32, attention_heads=32, kv_heads=32,
                                                     head_dim=96, max_context=4096),
}


def lookup(source: str) -> Architecture | None:
    """The architecture of ``hf://ORG/MODEL`` (a ``-GGUF`` or ``-AWQ``-style repo of a listed model
    counts as that model); None for unknown models and object-store sources."""
    if not source.startswith("hf://"):
        return None
    repo = source.removeprefix("hf://").lower().rstrip("/")
    for suffix in ("-gguf", "-awq", "-gptq-int4", "-fp8"):
        repo = repo.removesuffix(suffix)
    return KNOWN.get(repo)


@dataclass(frozen=True, kw_only=True)
class MemoryEstimate:
    weights_gib: float
    """All weights."""
    kv_cache_gib: float
    """KV cache per GPU for the configured sequences."""
    per_gpu_gib: float
    """What one GPU must hold: its weight shard, its KV cache and the runtime overhead."""


def estimate(arch: Architecture, *, tensor_parallel: int, max_model_len: int, sequences: int,
             dtype: str = "auto", quantization: str | None = None, kv_cache_dtype: str = "auto") -> MemoryEstimate:
    """Memory one vLLM replica needs per GPU to hold the weights and ``sequences`` full-length sequences."""
    per_param = QUANTIZED_BYTES_PER_PARAMETER[quantization] if quantization else BYTES_PER_PARAMETER[dtype]
    weights = arch.parameters_b * 1e9 * per_param / GIB
    # KV heads are split across tensor-parallel ranks, or replicated when there are fewer than ranks.
    kv_heads_per_gpu = max(arch.kv_heads // tensor_parallel, 1)
    kv_per_token = 2 * arch.layers * kv_heads_per_gpu * arch.head_dim * KV_BYTES[kv_cache_dtype]
    kv = kv_per_token * max_model_len * sequences / GIB
    per_gpu = weights / tensor_parallel + kv + RUNTIME_OVERHEAD_GIB
    return MemoryEstimate(weights_gib=weights, kv_cache_gib=kv, per_gpu_gib=per_gpu)


def host_memory_gib(weights_gib: float, gpus: int) -> int:
    """Host memory for a replica: the weights pass through page cache while loading, plus 8 GiB per
    GPU worker process."""
    return math.ceil(weights_gib) + 8 * max(gpus, 1)
