"""Sizes of common open models, and the memory a vLLM replica needs for them.

Numbers come from each model's ``config.json`` on Hugging Face (``num_hidden_layers``,
``num_attention_heads``, ``num_key_value_heads``, ``head_dim`` or hidden size / heads) and its model
card (parameter count). Models not listed must state their architecture in the stack config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GIB = 1024**3

# Per-GPU memory vLLM takes from its gpuMemoryUtilization budget beyond weights and KV cache
# (v0.28.0 vllm/v1/worker/gpu_worker.py determine_available_memory; docs/upstream.md): memory that
# grows outside PyTorch while it profiles (NCCL buffers, cuBLAS workspaces), the activation peak of
# a profiling batch of max_num_batched_tokens tokens, and its CUDA graphs' estimate. vLLM measures
# them at start; these are on the safe side of what it reports, so a model that passes fits.
NON_TORCH_GIB = 1.0
"""Non-PyTorch memory that grows during profiling; more with tensor parallelism (NCCL)."""
TENSOR_PARALLEL_NCCL_GIB = 0.5
CUDA_GRAPHS_GIB = 1.5
"""CUDA graphs for capture sizes up to 512 (vLLM logs 0.4-1.4 GiB for dense 8B-70B models)."""
ACTIVATION_BYTES_PER_TOKEN_AND_WIDTH = 16
"""Activation peak per batched token and unit of model width: bf16 hidden states, attention and MLP
intermediates (about 8 live tensors of the model's width)."""
CUDA_CONTEXT_GIB = 1.0
"""The CUDA context and NCCL communicators, allocated before vLLM's budget is measured: they must fit
in the memory gpuMemoryUtilization leaves free."""
LARGE_GPU_GIB = 70
"""vLLM's `vllm serve` batches 8192 tokens per step on GPUs of at least this memory (but A100), else
2048 (v0.28.0 vllm/engine/arg_utils.py get_batch_defaults)."""


def batched_tokens(gpu_memory_gib: float) -> int:
    """vLLM's default max_num_batched_tokens for `vllm serve` on a GPU of this memory."""
    return 8192 if gpu_memory_gib >= LARGE_GPU_GIB else 2048


def runtime_overhead_gib(arch: Architecture, *, tensor_parallel: int, gpu_memory_gib: float) -> float:
    """Per-GPU memory vLLM needs besides weights and KV cache, within its utilisation budget."""
    width = arch.attention_heads * arch.head_dim / tensor_parallel
    activations = batched_tokens(gpu_memory_gib) * width * ACTIVATION_BYTES_PER_TOKEN_AND_WIDTH / GIB
    nccl = TENSOR_PARALLEL_NCCL_GIB if tensor_parallel > 1 else 0.0
    return NON_TORCH_GIB + nccl + CUDA_GRAPHS_GIB + activations

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


GATED_REPOSITORIES = ("meta-llama/", "google/gemma", "mistralai/")
"""Hugging Face repositories whose owners gate downloads behind accepting a licence: every ``meta-llama``
Llama repository (manual approval), Google's Gemma and Mistral's own (approved at once). Without a token
the Hub answers 401, and 403 to a token whose user was not granted access (huggingface_hub 2.4.0,
``utils/_http.py``; the model cards; docs/upstream.md, "Gated models")."""


def gated(source: str) -> bool:
    """Whether downloading ``source`` (``hf://ORG/MODEL``) needs a Hugging Face token that was granted access."""
    return source.startswith("hf://") and source.removeprefix("hf://").lower().startswith(GATED_REPOSITORIES)


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
    overhead_gib: float
    """Per GPU: profiling growth, activation peak and CUDA graphs (``runtime_overhead_gib``)."""
    per_gpu_gib: float
    """What one GPU must hold: its weight shard, its KV cache and the runtime overhead."""


def estimate(arch: Architecture, *, tensor_parallel: int, max_model_len: int, sequences: int, gpu_memory_gib: float,
             dtype: str = "auto", quantization: str | None = None, kv_cache_dtype: str = "auto") -> MemoryEstimate:
    """Memory one vLLM replica needs per GPU (of ``gpu_memory_gib``) to hold the weights and ``sequences``
    full-length sequences."""
    per_param = QUANTIZED_BYTES_PER_PARAMETER[quantization] if quantization else BYTES_PER_PARAMETER[dtype]
    weights = arch.parameters_b * 1e9 * per_param / GIB
    # KV heads are split across tensor-parallel ranks, or replicated when there are fewer than ranks.
    kv_heads_per_gpu = max(arch.kv_heads // tensor_parallel, 1)
    kv_per_token = 2 * arch.layers * kv_heads_per_gpu * arch.head_dim * KV_BYTES[kv_cache_dtype]
    kv = kv_per_token * max_model_len * sequences / GIB
    overhead = runtime_overhead_gib(arch, tensor_parallel=tensor_parallel, gpu_memory_gib=gpu_memory_gib)
    per_gpu = weights / tensor_parallel + kv + overhead
    return MemoryEstimate(weights_gib=weights, kv_cache_gib=kv, overhead_gib=overhead, per_gpu_gib=per_gpu)


GGUF_BYTES_PER_PARAMETER = 0.5625
"""GGUF files served on CPU are 4-bit quantised (Q4_K_M): about 0.56 bytes a parameter."""
UNKNOWN_GGUF_GIB = 2.0
"""Weights assumed for a GGUF model whose size is unknown."""


@dataclass(frozen=True, kw_only=True)
class ReplicaSize:
    """What one replica of a model needs: the one place sizes are computed, for the capacity check
    of the config and for the servers alike."""

    weights_gib: float
    memory: MemoryEstimate | None
    """Per-GPU memory (vLLM); None on CPU."""
    cpu: int
    memory_gib: int
    """Host memory request and limit, shared memory included."""
    shm_gib: int
    volume_gib: int
    """A weights volume with room for the weights and the engine's own files."""


def replica_size(arch: Architecture | None, *, gpus: int, max_model_len: int, sequences: int, gpu_memory_gib: float,
                 dtype: str = "auto", quantization: str | None = None, kv_cache_dtype: str = "auto") -> ReplicaSize:
    """A vLLM replica on ``gpus`` GPUs (``arch`` required), or a llama.cpp replica on CPU (``gpus`` 0)."""
    if gpus:
        if arch is None:
            raise ValueError("a GPU replica's size needs the model's architecture")
        memory = estimate(arch, tensor_parallel=gpus, max_model_len=max_model_len, sequences=sequences,
                          gpu_memory_gib=gpu_memory_gib, dtype=dtype, quantization=quantization,
                          kv_cache_dtype=kv_cache_dtype)
        weights = memory.weights_gib
        # NCCL and PyTorch workers exchange tensors through /dev/shm once there is more than one GPU.
        shm = 2 if gpus == 1 else 16
        # The weights pass through page cache while loading, plus 8 GiB per GPU worker process.
        host = math.ceil(weights) + 8 * gpus
        cpu = 4 * gpus
    else:
        memory = None
        weights = arch.parameters_b * 1e9 * GGUF_BYTES_PER_PARAMETER / GIB if arch else UNKNOWN_GGUF_GIB
        shm = 1
        host = math.ceil(weights * 1.5) + 2
        cpu = 2
    return ReplicaSize(weights_gib=weights, memory=memory, cpu=cpu, memory_gib=host + shm, shm_gib=shm,
                       volume_gib=math.ceil(weights * 1.2) + 10)
