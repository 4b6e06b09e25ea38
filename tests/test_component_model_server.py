"""ModelServer built alone: one vLLM model version's workload from minimal Args, and one
InputPropertiesError per rule its Args break (engine and GPUs, weights source, autoscaling, rollout)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from components.serving.model_server import (
    Autoscaling,
    Engine,
    EngineSettings,
    ModelServer,
    ModelServerArgs,
    ReadinessBudgets,
)
from tests.test_component_harness import build, input_errors, load

SETTINGS = EngineSettings(max_model_len=4096, gpu_memory_utilization=0.9, dtype="auto", quantization=None,
                          kv_cache_dtype="auto", max_num_seqs=16, extra_args=())
ARGS = ModelServerArgs(
    namespace="neurodock-serving", served_name="org/m", source="hf://org/m", revision="0" * 40,
    engine=Engine.VLLM, settings=SETTINGS, gpus=1, cpu="4", memory_gib=32, shm_gib=2, replicas=1,
    node_selector={"neurodock.io/pool": "gpu-l4"}, tolerate_gpu_taint=True, storage_class="standard",
    cache_gib=40, readiness=ReadinessBudgets(node_scale_up_s=600, image_pull_s=600, model_load_s=900),
    drain_s=30, max_surge=1, max_unavailable=0, allowed_namespaces=("neurodock-gateway",), variant="stable",
)
LLAMACPP = replace(ARGS, engine=Engine.LLAMACPP, gpus=0, settings=replace(SETTINGS, gguf_file="m.Q4_K_M.gguf"))
SCALING = Autoscaling(min_replicas=1, max_replicas=3, prometheus_url="http://prometheus:9090", query="sum(q)",
                      target_per_replica=4)


@pytest.fixture(scope="module")
def _provider_modules() -> None:
    load("pulumi_kubernetes.apps.v1", "pulumi_kubernetes.networking.v1", "pulumi_kubernetes.policy.v1")


def server(args: ModelServerArgs) -> ModelServer:
    return ModelServer("m", args)


@pytest.mark.usefixtures("_provider_modules")
def test_minimal_args_build_the_server_and_its_service_budget_and_policy():
    built = build(lambda: server(ARGS))
    assert built.resources[0].type == "neurodock:serving:ModelServer"
    assert built.types == {"kubernetes:core/v1:ServiceAccount", "kubernetes:apps/v1:Deployment",
                           "kubernetes:core/v1:Service", "kubernetes:policy/v1:PodDisruptionBudget",
                           "kubernetes:networking.k8s.io/v1:NetworkPolicy"}
    [deployment] = built.manifests("Deployment")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"


@pytest.mark.usefixtures("_provider_modules")
def test_minimal_llamacpp_args_build_a_cpu_server():
    [deployment] = build(lambda: server(LLAMACPP)).manifests("Deployment")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]


@pytest.mark.parametrize(("args", "expected"), [
    (replace(ARGS, gpus=0), [("gpus", "ModelServerArgs.gpus must be at least 1 for vLLM")]),
    (replace(LLAMACPP, gpus=1), [("gpus", "ModelServerArgs.gpus must be 0 for the llama.cpp CPU engine")]),
    (replace(LLAMACPP, settings=SETTINGS),
     [("settings.gguf_file", "ModelServerArgs.settings.gguf_file is required for llama.cpp")]),
    (replace(ARGS, source="https://example.com/m"),
     [("source", "ModelServerArgs.source must be an hf://, s3:// or gs:// URI")]),
    (replace(ARGS, autoscaling=SCALING), [("keda", "ModelServerArgs.keda is required with autoscaling")]),
    (replace(ARGS, max_surge=0), [("max_surge", "ModelServerArgs.max_surge and max_unavailable cannot both be 0")]),
], ids=["vLLM without a GPU is refused", "llama.cpp with a GPU is refused", "llama.cpp without a GGUF file is refused",
        "a source that is no hf, s3 or gs URI is refused", "autoscaling without KEDA is refused",
        "a rollout that can neither surge nor stop a replica is refused"])
def test_a_broken_server_is_refused(args, expected):
    assert input_errors(lambda: server(args)) == expected


def test_every_problem_is_reported_at_once():
    assert [path for path, _ in input_errors(lambda: server(replace(LLAMACPP, gpus=2, settings=SETTINGS,
                                                                     source="m.gguf")))] == [
        "gpus", "settings.gguf_file", "source"]
