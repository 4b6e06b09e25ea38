"""What the serving engine would refuse, or silently serve wrong: flags NeuroDock manages set again in any version's
``extraArgs``, a canary's or shadow's image that is not a pinned image reference, a model size that contradicts
itself or the catalogue, and a dtype or quantisation the pool's GPU or the checkpoint cannot run."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from components.gpu.catalog import GPU_MODELS, VLLM_HALF_ONLY_QUANTIZATIONS, VLLM_MIN_CAPABILITY
from components.serving.architectures import KNOWN, lookup
from components.versions import VLLM_IMAGE
from infra.config.base import VARIANTS, Problem, key_path
from infra.config.capacity import label

if TYPE_CHECKING:
    from infra.config.serving import ModelSpec
    from infra.config.stack import StackConfig

MANAGED_ENGINE_FLAGS = frozenset({
    "--model", "--served-model-name", "--host", "--port", "--tensor-parallel-size", "-tp", "--max-model-len",
    "--gpu-memory-utilization", "--dtype", "--quantization", "--kv-cache-dtype", "--max-num-seqs",
    "--download-dir", "-m", "--hf-repo", "-hfr", "--hf-file", "-hff", "--alias", "--ctx-size", "-c",
    "--parallel", "-np", "--metrics",
})
"""Flags NeuroDock sets from config; no version's ``extraArgs`` (the model's, its canary's or its shadow's) may set
them again."""

# An image reference as distribution/reference parses it (reference.go's grammar, read 2026-12-06 at 0965666a6):
# name [":" tag] ["@" digest], a name being [domain "/"] path-component ["/" path-component]*.
_ALNUM = r"[a-z0-9]+"
_PATH = rf"{_ALNUM}(?:(?:[_.]|__|-+){_ALNUM})*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
IMAGE_REFERENCE = re.compile(
    rf"(?P<name>(?:{_HOST}/)?{_PATH}(?:/{_PATH})*)(?::(?P<tag>[\w][\w.-]{{0,127}}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?")
PARAMETERS_TOLERANCE = 0.05
"""Stated parameter counts within 5% of the catalogue's agree: model cards round them (8B for 8.03B)."""


def engine_problems(config: StackConfig) -> list[Problem]:
    out: list[Problem] = []
    for i, model in enumerate(config.models):
        out += _flag_problems(i, model)
        out += _image_problems(i, model)
        out += _architecture_problems(i, model)
        out += _number_format_problems(config, i, model)
    return out


def _flag_problems(i: int, model: ModelSpec) -> list[Problem]:
    versions = [(("engineArgs", "extraArgs"), model.engine_args.extra_args)]
    versions += [((key, "extraArgs"), v.extra_args or []) for key in VARIANTS if (v := getattr(model, key))]
    return [Problem(key_path(("models", i, *where, j)), f"{arg.split('=', 1)[0]} is set by NeuroDock from config; "
                    "use the matching engineArgs key instead" + ("" if where[0] == "engineArgs" else
                                                                  f" (it applies to the {where[0]} too)"))
            for where, args in versions for j, arg in enumerate(args) if arg.split("=", 1)[0] in MANAGED_ENGINE_FLAGS]


def _image_problems(i: int, model: ModelSpec) -> list[Problem]:
    """A variant's image must be a reference a registry resolves, pinned to one build: a tag other than ``latest``,
    or a digest (a node pulling an unpinned image gets whatever the registry holds that day)."""
    out = []
    example = f"e.g. {VLLM_IMAGE!r} (the stable version's), or with its digest"
    for key in VARIANTS:
        variant = getattr(model, key)
        if variant is None or variant.image is None:
            continue
        where = key_path(("models", i, key, "image"))
        image = variant.image
        match = IMAGE_REFERENCE.fullmatch(image)
        if not image.strip():
            out.append(Problem(where, "is empty; remove the key to run the stable version's image, or name one, "
                                      + example))
        elif match is None or len(match["name"]) > 255:
            lower = " (repository names are lowercase)" if IMAGE_REFERENCE.fullmatch(image.lower()) else ""
            out.append(Problem(where, f"{image!r} is not an image reference{lower}: [REGISTRY/]REPOSITORY:TAG or "
                                      f"REPOSITORY@sha256:DIGEST, {example}"))
        elif match["digest"] is None and match["tag"] in (None, "latest"):
            said = "no tag" if match["tag"] is None else "the tag 'latest'"
            out.append(Problem(where, f"{image!r} has {said}, so each node pulls whatever the registry holds then and "
                                      f"the {key} is not one version; pin a release tag or a digest, {example}"))
    return out


def architecture_refused(model: ModelSpec) -> bool:
    """The stated architecture is refused (:func:`_architecture_problems`): no memory advice is computed from it."""
    return bool(_architecture_problems(0, model))


def _architecture_problems(i: int, model: ModelSpec) -> list[Problem]:
    """Stated sizes agree with themselves (grouped-query attention shares each KV head among a whole number of
    query heads) and with the catalogue's config.json facts for a catalogued model."""
    arch = model.architecture
    if arch is None:
        return []
    out = []

    def add(key: str, message: str) -> None:
        out.append(Problem(key_path(("models", i, "architecture", key)), message))

    if arch.kv_heads > arch.attention_heads:
        add("kvHeads", f"{arch.kv_heads} KV heads exceed the {arch.attention_heads} attention heads; a model has at "
            "most one KV head per attention head (config.json num_key_value_heads <= num_attention_heads)")
    elif arch.attention_heads % arch.kv_heads:
        add("kvHeads", f"{arch.kv_heads} KV heads do not divide the {arch.attention_heads} attention heads: each KV "
            "head serves a whole group of query heads (config.json num_attention_heads is a multiple of "
            "num_key_value_heads)")
    known = lookup(model.source)
    if known is None:
        return out
    stated = {"parametersBillions": (arch.parameters_billions, known.parameters_b),
              "layers": (arch.layers, known.layers), "attentionHeads": (arch.attention_heads, known.attention_heads),
              "kvHeads": (arch.kv_heads, known.kv_heads), "headDim": (arch.head_dim, known.head_dim),
              "maxContext": (arch.max_context, known.max_context)}
    fields = {"parametersBillions": "parameters_billions", "maxContext": "max_context", "kvHeads": "kv_heads",
              "headDim": "head_dim", "attentionHeads": "attention_heads", "layers": "layers"}
    for key, (given, catalogued) in stated.items():
        if fields[key] not in arch.model_fields_set:
            continue
        differs = (abs(given - catalogued) > PARAMETERS_TOLERANCE * catalogued if key == "parametersBillions"
                   else given != catalogued)
        if differs:
            add(key, f"{given:g} contradicts the catalogue's {catalogued:g} for {model.source} (its config.json, "
                "components/serving/architectures.py); remove architecture to use the catalogue's, or serve the "
                "checkpoint whose size this is under its own source")
    return out


def _number_format_problems(config: StackConfig, i: int, model: ModelSpec) -> list[Problem]:
    """vLLM refuses at start a dtype or quantisation the GPU's compute capability cannot run, AWQ with bfloat16,
    and a 4-bit quantisation of a checkpoint that is not quantised (a catalogued base model: bf16 weights)."""
    pool = config.pool(model.pool)
    if model.engine != "vllm" or pool is None or pool.gpu is None or (gpu := GPU_MODELS.get(pool.gpu.type)) is None:
        return []
    out = []
    engine = model.engine_args

    def add(key: str, message: str) -> None:
        out.append(Problem(key_path(("models", i, "engineArgs", key)), message))

    capability = ".".join(map(str, gpu.compute_capability))
    for key, value in (("dtype", engine.dtype), ("quantization", engine.quantization)):
        need = VLLM_MIN_CAPABILITY.get(value or "")
        if need is not None and gpu.compute_capability < need:
            fix = "use float16 (or auto, which vLLM then resolves to float16)" if key == "dtype" else \
                "use a GPU of compute capability " + ".".join(map(str, need)) + " or more, or another quantization"
            add(key, f"{value} needs compute capability {'.'.join(map(str, need))}, and the {pool.gpu.type} of pool "
                f"{pool.name!r} has {capability}: vLLM refuses to start; {fix}")
    if engine.quantization in VLLM_HALF_ONLY_QUANTIZATIONS and engine.dtype == "bfloat16":
        add("dtype", f"vLLM runs {engine.quantization} with float16 activations only and refuses bfloat16; set dtype "
            "to float16 or auto")
    repo = model.source.removeprefix("hf://").lower().rstrip("/")
    if engine.quantization in ("awq", "gptq") and repo in KNOWN:
        add("quantization", f"{model.source} is the unquantised checkpoint of model {label(model)}, and vLLM reads "
            f"{engine.quantization} weights only from a checkpoint quantised with it; point source at one (the "
            f"catalogue takes {model.source}-AWQ or -GPTQ-Int4 as this model), or use fp8, which vLLM quantises at "
            "load")
    return out


__all__ = ["IMAGE_REFERENCE", "MANAGED_ENGINE_FLAGS", "PARAMETERS_TOLERANCE", "architecture_refused", "engine_problems"]
