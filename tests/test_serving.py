"""Model serving: every catalog entry becomes a hardened, right-sized, autoscaled workload, and
models that cannot fit are rejected before anything exists."""

from __future__ import annotations

import copy
import shlex

import pytest

from components.serving import architectures
from components.versions import KEDA
from infra.config import ConfigError
from tests.conftest import SHIPPED_STACKS, plan_with, release_of
from tests.pss import violations

# A bucket source names no model: its size is stated in config.
LLAMA_8B = {"parametersBillions": 8.03, "layers": 32, "attentionHeads": 32, "kvHeads": 8, "headDim": 128}


def manifests(plan, kind):
    return [r.manifest for r in plan.manifests if r.manifest["kind"] == kind]


def deployment_of(plan, model: str) -> dict:
    [d] = [d for d in manifests(plan, "Deployment") if d["metadata"]["labels"]["app.kubernetes.io/instance"] == model]
    return d


def server(deployment: dict) -> dict:
    [c] = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "server"]
    return c


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


# -- Pod Security ----------------------------------------------------------------------------


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_serving_pod_meets_pod_security_restricted(shipped_plans, stack):
    pods = [d["spec"]["template"]["spec"] for d in manifests(shipped_plans[stack], "Deployment")
            if d["metadata"]["namespace"] == "neurodock-serving"]
    assert pods
    for pod in pods:
        assert violations(pod, "restricted") == []


def test_the_checker_catches_node_agents_and_each_mutation(shipped_plans):
    [plugin] = [d for d in manifests(shipped_plans["staging"], "DaemonSet")
                if d["metadata"]["namespace"] == "nvidia-device-plugin"]
    assert any(v.startswith("HostPath volumes") for v in violations(plugin["spec"]["template"]["spec"], "baseline"))
    pod = deployment_of(shipped_plans["staging"], "llama-3-1-8b")["spec"]["template"]["spec"]
    for path, value, expected in [
        (("containers", 0, "securityContext", "allowPrivilegeEscalation"), True, "Privilege escalation"),
        (("containers", 0, "securityContext", "runAsNonRoot"), False, "Running as non-root"),
        (("containers", 0, "securityContext", "capabilities", "drop"), [], "Capabilities"),
        (("containers", 0, "securityContext", "privileged"), True, "Privileged containers"),
        (("securityContext", "runAsUser"), 0, "Running as non-root user"),
        (("containers", 0, "securityContext", "seccompProfile", "type"), "Unconfined", "Seccomp"),
        (("hostNetwork",), True, "Host namespaces"),
    ]:
        mutated = copy.deepcopy(pod)
        node = mutated
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        assert any(v.startswith(expected) for v in violations(mutated)), (path, violations(mutated))


# -- Engine, resources, weights -----------------------------------------------------------------


def test_vllm_flags_derive_from_config(shipped_plans):
    d = deployment_of(shipped_plans["prod"], "llama-3-3-70b")
    command = server(d)["command"]
    assert command[:3] == ["vllm", "serve", "/models/llama-3-3-70b"]
    assert flag(command, "--served-model-name") == "meta-llama/Llama-3.3-70B-Instruct"
    assert flag(command, "--tensor-parallel-size") == "4"
    assert flag(command, "--max-model-len") == "8192"
    assert flag(command, "--gpu-memory-utilization") == "0.9"
    limits = server(d)["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "4"
    assert server(d)["image"].startswith("vllm/vllm-openai:v")


def test_engine_args_and_extra_args_reach_the_engine(write_stack):
    def mutate(c):
        c["neurodock:models"][0]["engineArgs"] = {"maxModelLen": 4096, "quantization": "fp8",
                                                  "extraArgs": ["--enable-prefix-caching"]}
    command = server(deployment_of(plan_with(write_stack, "staging", mutate), "llama-3-1-8b"))["command"]
    assert flag(command, "--max-model-len") == "4096"
    assert flag(command, "--quantization") == "fp8"
    assert command[-1] == "--enable-prefix-caching"


def test_resources_and_shared_memory_are_sized_for_the_model(shipped_plans):
    small = deployment_of(shipped_plans["prod"], "llama-3-1-8b")
    large = deployment_of(shipped_plans["prod"], "llama-3-3-70b")
    gib = lambda q: int(q.removesuffix("Gi"))  # noqa: E731
    assert gib(server(large)["resources"]["requests"]["memory"]) > gib(server(small)["resources"]["requests"]["memory"])
    for d in (small, large):
        resources = server(d)["resources"]
        assert resources["requests"]["memory"] == resources["limits"]["memory"]
        shm = next(v for v in d["spec"]["template"]["spec"]["volumes"] if v["name"] == "dshm")
        assert shm["emptyDir"]["medium"] == "Memory"
    shm_large = next(v for v in large["spec"]["template"]["spec"]["volumes"] if v["name"] == "dshm")
    assert shm_large["emptyDir"]["sizeLimit"] == "16Gi"  # NCCL between 4 tensor-parallel workers


def test_hugging_face_weights_are_fetched_once_into_a_per_replica_volume(shipped_plans):
    d = deployment_of(shipped_plans["staging"], "llama-3-1-8b")
    pod = d["spec"]["template"]["spec"]
    [init] = pod["initContainers"]
    script = init["command"][2]
    assert "snapshot_download" in script and "meta-llama/Llama-3.1-8B-Instruct" in script
    assert script.index("if [ -f /models/llama-3-1-8b/.neurodock-complete ]") < script.index("snapshot_download")
    assert script.rstrip().endswith("touch /models/llama-3-1-8b/.neurodock-complete")
    [weights] = [v for v in pod["volumes"] if v["name"] == "weights"]
    claim = weights["ephemeral"]["volumeClaimTemplate"]["spec"]
    assert claim["storageClassName"] == "gp3"
    assert int(claim["resources"]["requests"]["storage"].removesuffix("Gi")) >= 15


def test_llamacpp_serves_the_gguf_and_caches_it_itself(shipped_plans):
    d = deployment_of(shipped_plans["dev"], "qwen2-5-0-5b")
    command = server(d)["command"]
    assert command[0] == "/app/llama-server"
    assert flag(command, "--hf-file") == "qwen2.5-0.5b-instruct-q4_k_m.gguf"
    assert flag(command, "--parallel") == "4"
    env = {e["name"]: e.get("value") for e in server(d)["env"]}
    assert env["LLAMA_CACHE"].startswith("/models/")
    assert "initContainers" not in d["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in server(d)["resources"]["limits"]


def test_s3_weights_use_irsa_on_a_dedicated_service_account(write_stack):
    def mutate(c):
        c["neurodock:models"][0]["source"] = "s3://acme-models/llama-3.1-8b-instruct"
        c["neurodock:models"][0]["architecture"] = LLAMA_8B
    plan = plan_with(write_stack, "staging", mutate)
    d = deployment_of(plan, "llama-3-1-8b")
    pod = d["spec"]["template"]["spec"]
    assert "aws s3 sync" in pod["initContainers"][0]["command"][2]
    [account] = [a for a in manifests(plan, "ServiceAccount") if a["metadata"]["name"] == pod["serviceAccountName"]]
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    assert account["automountServiceAccountToken"] is False
    [policy] = [r for r in plan.resources if r.type == "aws:iam/rolePolicy:RolePolicy" and "weights" in r.name]
    assert "arn:aws:s3:::acme-models/llama-3.1-8b-instruct/*" in policy.inputs["policy"]
    assert "s3:PutObject" not in policy.inputs["policy"]


def test_gcs_weights_use_workload_identity(write_stack):
    def mutate(c):
        c["neurodock:models"][0]["source"] = "gs://acme-models/llama-3.1-8b"
        c["neurodock:models"][0]["architecture"] = LLAMA_8B
    plan = plan_with(write_stack, "prod", mutate)
    pod = deployment_of(plan, "llama-3-1-8b")["spec"]["template"]["spec"]
    assert "gcloud storage rsync --recursive" in pod["initContainers"][0]["command"][2]
    [account] = [a for a in manifests(plan, "ServiceAccount") if a["metadata"]["name"] == pod["serviceAccountName"]]
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].endswith(".iam.gserviceaccount.com")
    # One identity per version of the model: prod's 8B model also runs a canary and a shadow.
    members = {r.inputs["member"] for r in plan.resources if r.type == "gcp:serviceaccount/iAMMember:IAMMember"}
    assert members == {f"serviceAccount:neurodock-prod-4821.svc.id.goog[neurodock-serving/{account}]"
                       for account in (pod["serviceAccountName"], "llama-3-1-8b-canary-model",
                                       "llama-3-1-8b-shadow-model")}
    reads = [r for r in plan.resources if r.type == "gcp:storage/bucketIAMMember:BucketIAMMember"]
    assert len(reads) == 3
    assert all(r.inputs["role"] == "roles/storage.objectViewer" and r.inputs["bucket"] == "acme-models" for r in reads)


def test_a_shared_cache_is_one_retained_rwx_claim(write_stack):
    plan = plan_with(write_stack, "staging", lambda c: c["neurodock:models"][0].update(
        cache={"sharedStorageClass": "efs-sc", "sizeGib": 100}))
    [claim] = [r for r in plan.manifests if r.manifest["kind"] == "PersistentVolumeClaim"]
    assert claim.manifest["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim.options["retainOnDelete"] is True
    pod = deployment_of(plan, "llama-3-1-8b")["spec"]["template"]["spec"]
    [weights] = [v for v in pod["volumes"] if v["name"] == "weights"]
    assert weights["persistentVolumeClaim"]["claimName"] == claim.manifest["metadata"]["name"]


# -- Placement, probes, rollouts ------------------------------------------------------------------


def test_placement_tolerates_gpus_selects_the_pool_spreads_zones_and_has_priority(shipped_plans):
    plan = shipped_plans["prod"]
    pod = deployment_of(plan, "llama-3-3-70b")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"neurodock.io/pool": "gpu-h100"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    [spread] = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
    [priority] = manifests(plan, "PriorityClass")
    assert pod["priorityClassName"] == priority["metadata"]["name"]
    assert 0 < priority["value"] < 1_000_000_000


def test_probes_drain_and_rollout_fit_the_budgets(shipped_plans):
    d = deployment_of(shipped_plans["staging"], "llama-3-1-8b")
    c = server(d)
    assert c["startupProbe"]["httpGet"]["path"] == "/health"
    assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] >= 900
    assert c["readinessProbe"]["httpGet"]["path"] == "/health"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    drain = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= drain + 10
    assert d["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert d["spec"]["progressDeadlineSeconds"] > c["startupProbe"]["periodSeconds"] * c["startupProbe"][
        "failureThreshold"]


def test_pdb_allows_a_voluntary_disruption_and_network_policy_admits_gateway_and_monitoring(shipped_plans):
    plan = shipped_plans["staging"]
    [pdb] = [p for p in manifests(plan, "PodDisruptionBudget") if p["metadata"]["namespace"] == "neurodock-serving"]
    assert pdb["spec"]["maxUnavailable"] == 1
    [policy] = [p for p in manifests(plan, "NetworkPolicy") if p["metadata"]["namespace"] == "neurodock-serving"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    peers = {p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
             for p in policy["spec"]["ingress"][0]["from"]}
    assert peers == {"neurodock-gateway", "monitoring"}
    assert policy["spec"]["ingress"][0]["ports"] == [{"port": 8000, "protocol": "TCP"}]


# -- Autoscaling ------------------------------------------------------------------------------------


def test_models_scale_on_their_queue_with_keda(shipped_plans):
    plan = shipped_plans["staging"]
    [scaler] = manifests(plan, "ScaledObject")
    spec = scaler["spec"]
    assert spec["scaleTargetRef"]["name"] == deployment_of(plan, "llama-3-1-8b")["metadata"]["name"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 4)
    [trigger] = spec["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger["metadata"]["query"] == (
        'sum(vllm:num_requests_waiting{model_name="meta-llama/Llama-3.1-8B-Instruct", '
        'namespace="neurodock-serving", pod=~"llama-3-1-8b-server-.*"})')
    assert trigger["metadata"]["threshold"] == "5"
    assert trigger["metadata"]["serverAddress"].endswith(":9090")
    assert release_of(plan, KEDA).inputs["version"] == KEDA.version
    assert not [h for h in manifests(plan, "HorizontalPodAutoscaler")], "no CPU HPA on model servers"


def test_min_replicas_zero_is_refused_until_a_request_can_wake_a_model(write_stack):
    # With no replica there is no queue metric: KEDA would never scale up, clients would get 503s.
    with pytest.raises(ConfigError) as error:
        plan_with(write_stack, "staging", lambda c: c["neurodock:models"][0].update(minReplicas=0))
    [problem] = error.value.problems
    assert problem.path == "neurodock:models[0].minReplicas" and "set minReplicas to 1" in problem.message
    plan = plan_with(write_stack, "staging", lambda c: c["neurodock:models"][0].update(minReplicas=1))
    [scaler] = manifests(plan, "ScaledObject")
    assert scaler["spec"]["minReplicaCount"] == 1


def test_a_fixed_size_model_gets_no_scaler(write_stack):
    plan = plan_with(write_stack, "staging", lambda c: c["neurodock:models"][0].update(maxReplicas=1))
    assert not manifests(plan, "ScaledObject")
    assert deployment_of(plan, "llama-3-1-8b")["spec"]["replicas"] == 1


# -- Capacity ---------------------------------------------------------------------------------------


def test_memory_estimates_match_hand_arithmetic():
    llama8b = architectures.KNOWN["meta-llama/llama-3.1-8b-instruct"]
    e = architectures.estimate(llama8b, tensor_parallel=1, max_model_len=8192, sequences=1)
    assert e.weights_gib == pytest.approx(8.03e9 * 2 / 2**30)            # ~14.96 GiB in bf16
    assert e.kv_cache_gib == pytest.approx(2 * 32 * 8 * 128 * 2 * 8192 / 2**30)  # 1 GiB
    llama70b = architectures.KNOWN["meta-llama/llama-3.3-70b-instruct"]
    tp4 = architectures.estimate(llama70b, tensor_parallel=4, max_model_len=8192, sequences=1)
    assert tp4.per_gpu_gib == pytest.approx(70.6e9 * 2 / 2**30 / 4 + 2 * 80 * 2 * 128 * 2 * 8192 / 2**30 + 2)
    assert architectures.lookup("hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF") is architectures.KNOWN[
        "qwen/qwen2.5-0.5b-instruct"]
    assert architectures.lookup("s3://bucket/llama") is None


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_shipped_models_fit_their_pools(shipped_plans, stack):
    assert shipped_plans[stack].config.models  # the capacity check ran and passed


def test_engine_commands_are_shell_safe(shipped_plans):
    d = deployment_of(shipped_plans["staging"], "llama-3-1-8b")
    script = d["spec"]["template"]["spec"]["initContainers"][0]["command"][2]
    shlex.split(script)  # well-formed quoting
