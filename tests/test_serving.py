"""Model serving: every catalog entry becomes a hardened, right-sized, autoscaled workload, and
models that cannot fit are rejected before anything exists."""

from __future__ import annotations

import copy
import json
import re
import shlex

import pytest
import yaml

from components.serving import architectures
from components.versions import KEDA
from infra.config import ConfigError
from tests import scrape
from tests.conftest import SHIPPED_STACKS, of_type, plan_with, release_of
from tests.pss import violations

# A bucket source names no model: its size is stated in config.
LLAMA_8B = {"parametersBillions": 8.03, "layers": 32, "attentionHeads": 32, "kvHeads": 8, "headDim": 128}


def manifests(plan, kind):
    return [r.manifest for r in plan.manifests if r.manifest["kind"] == kind]


def deployment_of(plan, model: str) -> dict:
    [d] = [d for d in manifests(plan, "Deployment")
           if d["metadata"]["labels"].get("app.kubernetes.io/instance") == model]
    return d


def server(deployment: dict) -> dict:
    [c] = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "server"]
    return c


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


# -- Pod Security ----------------------------------------------------------------------------


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_serving_pod_meets_pod_security_restricted(shipped_plans, stack):
    pods = [d["spec"]["template"]["spec"] for kind in ("Deployment", "Job")
            for d in manifests(shipped_plans[stack], kind) if d["metadata"]["namespace"] == "neurodock-serving"]
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
    assert command[:2] == ["vllm", "serve"]
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


def upload_image(pod: dict) -> str:
    [upload] = pod["containers"]
    return upload["image"]


def mirror_jobs(plan) -> list[dict]:
    return [j for j in manifests(plan, "Job") if j["metadata"]["labels"]["app.kubernetes.io/name"] == "weights-mirror"]


def test_hugging_face_weights_are_mirrored_once_at_the_pinned_revision_without_other_formats(shipped_plans):
    plan = shipped_plans["staging"]
    [job] = mirror_jobs(plan)
    pod = job["spec"]["template"]["spec"]
    [check, download] = pod["initContainers"]
    assert download["command"][:2] == ["/bin/sh", "-c"] and download["command"][2].startswith(
        "if [ -e /work/.mirrored ]; then exit 0; fi")
    program, repo, revision, scratch = download["command"][6:10]
    assert (repo, revision, scratch) == ("meta-llama/Llama-3.1-8B-Instruct", "0e9e39f249a16976918f6564b8830bc894c89659",
                                         "/work/model")
    # Only what vLLM serves: Llama 3.1's original/consolidated.00.pth would double the download.
    assert "allow_patterns=['*.safetensors'," in program and "ignore_patterns=['*/*']" in program
    assert "revision=sys.argv[2]" in program
    [upload] = pod["containers"]
    script = upload["command"][2]
    prefix = f"s3://neurodock-staging-weights-123456789012-us-east-1/hf/{repo}/{revision}"
    # Looks for the marker before any call to Hugging Face (a re-created stack downloads nothing), skips the
    # download and the upload when it is there, and writes the marker last, naming source and revision.
    script_check = check["command"][2]
    marker = f"aws s3 ls {prefix}/.neurodock-complete"
    assert script_check.index("aws sts get-caller-identity") < script_check.index(marker)
    assert "touch /work/.mirrored" in script_check and check["image"] == upload_image(pod)
    # Only "no such object" means not mirrored; any other failure fails the check rather than download again.
    assert "*'matched no objects'*) echo 'not mirrored yet'; exit 0;;" in script_check
    assert script_check.endswith('echo "$out" >&2; exit 1')
    shlex.split(script_check)  # well-formed quoting
    assert script.startswith("set -eu; if [ -e /work/.mirrored ]; then exit 0; fi;")
    assert script.rstrip().endswith(f"aws s3 cp - {prefix}/.neurodock-complete")
    assert pod["serviceAccountName"] == "weights-mirror"
    assert job["metadata"]["annotations"]["pulumi.com/replaceUnready"] == "true"  # a failed mirror runs again
    assert {"name": "AWS_REGION", "value": "us-east-1"} in upload["env"]
    # Every replica streams from the mirror: no download step, no weights volume.
    d = deployment_of(plan, "llama-3-1-8b")
    command = server(d)["command"]
    assert command[2] == prefix and flag(command, "--load-format") == "runai_streamer"
    assert json.loads(flag(command, "--model-loader-extra-config")) == {"concurrency": 16, "memory_limit": 4 * 2**30}
    assert "initContainers" not in d["spec"]["template"]["spec"]
    assert "weights" not in {v["name"] for v in d["spec"]["template"]["spec"]["volumes"]}
    assert {"name": "AWS_REGION", "value": "us-east-1"} in server(d)["env"]
    # The replicas' identity reads the prefix; only the mirror's may write.
    policies = {r.name: r.inputs["policy"] for r in plan.resources if r.type == "aws:iam/rolePolicy:RolePolicy"}
    assert f"{prefix.removeprefix('s3://')}/*" in policies["llama-3-1-8b-weights-reader-read"]
    assert "s3:PutObject" not in policies["llama-3-1-8b-weights-reader-read"]
    assert "s3:PutObject" in policies["weights-mirror-writer-read"]
    # The server waits for the mirror and for its identity's grant.
    [deployment] = [r for r in plan.resources
                    if r.type == "kubernetes:apps/v1:Deployment" and r.name == "llama-3-1-8b-server"]
    [job_urn] = [r.urn for r in plan.resources if r.type == "kubernetes:batch/v1:Job" and "mirror" in r.name]
    [grant] = [r.urn for r in plan.resources if r.name == "llama-3-1-8b-weights-reader-read"]
    assert {job_urn, grant} <= set(deployment.options["dependsOn"])


def test_tensor_parallel_ranks_stream_their_share(shipped_plans):
    # Without "distributed", each of the 70B's 4 ranks would read the whole model from the bucket.
    command = server(deployment_of(shipped_plans["prod"], "llama-3-3-70b"))["command"]
    assert json.loads(flag(command, "--model-loader-extra-config"))["distributed"] is True
    command = server(deployment_of(shipped_plans["prod"], "llama-3-1-8b"))["command"]
    assert "distributed" not in json.loads(flag(command, "--model-loader-extra-config"))


def test_a_new_revision_is_a_new_prefix_and_job_and_versions_share_a_mirror(write_stack, shipped_plans):
    [before] = [r for r in shipped_plans["prod"].resources
                if r.type == "kubernetes:batch/v1:Job" and "8b-mirror" in r.name]
    commit = "1234567890abcdef1234567890abcdef12345678"
    plan = plan_with(write_stack, "prod", lambda c: c["neurodock:models"][0].update(revision=commit))
    jobs = [r for r in plan.resources if r.type == "kubernetes:batch/v1:Job" and "8b-mirror" in r.name]
    assert [j.name for j in jobs] != [before.name] and len(jobs) == 1  # canary and shadow read the same copy
    assert server(deployment_of(plan, "llama-3-1-8b"))["command"][2].endswith(f"/Llama-3.1-8B-Instruct/{commit}")
    # A mirror is kept for good: a branch would be frozen at whatever it was the first time.
    for revision in (None, "main"):
        with pytest.raises(ConfigError) as error:
            plan_with(write_stack, "prod", lambda c, r=revision: c["neurodock:models"][0].update(revision=r))
        assert [p.path for p in error.value.problems] == ["neurodock:models[0].revision"]
    # A canary of another commit is a mirror of its own, and needs a commit too.
    with pytest.raises(ConfigError) as error:
        plan_with(write_stack, "prod", lambda c: c["neurodock:models"][0]["canary"].update(revision="main"))
    assert [p.path for p in error.value.problems] == ["neurodock:models[0].canary.revision"]
    # A revision names a Hugging Face commit: a bucket source takes none.
    with pytest.raises(ConfigError) as error:
        plan_with(write_stack, "prod", lambda c: c["neurodock:models"][0]["canary"].update(
            revision=commit, source="gs://acme-models/llama"))
    assert "neurodock:models[0].canary.revision" in [p.path for p in error.value.problems]
    plan = plan_with(write_stack, "prod", lambda c: c["neurodock:models"][0]["canary"].update(revision=commit))
    assert len([r for r in plan.resources if r.type == "kubernetes:batch/v1:Job" and "8b-" in r.name
                and "mirror" in r.name]) == 2


def test_bucket_sources_stream_and_kind_downloads_per_replica(write_stack, shipped_plans):
    def mutate(c):
        c["neurodock:models"][0]["source"] = "s3://acme-models/llama-3.1-8b-instruct"
        c["neurodock:models"][0].pop("revision")
        c["neurodock:models"][0]["architecture"] = LLAMA_8B
    plan = plan_with(write_stack, "staging", mutate)
    assert mirror_jobs(plan) == [] and not [r for r in plan.resources if r.type == "aws:s3/bucket:Bucket"]
    command = server(deployment_of(plan, "llama-3-1-8b"))["command"]
    assert command[2] == "s3://acme-models/llama-3.1-8b-instruct"
    # Control: a vLLM model on kind downloads to its own volume, by revision, without other formats.
    def on_kind(c):
        c["neurodock:models"].append({"name": "small", "source": "hf://Qwen/Qwen2.5-0.5B-Instruct",
                                      "revision": "abc123", "pool": "gpu-l4", "concurrency": 4})
    pod = deployment_of(plan_with(write_stack, "dev", on_kind), "small")["spec"]["template"]["spec"]
    [init] = pod["initContainers"]
    script = init["command"][2]
    program = next(t for t in shlex.split(script) if "snapshot_download" in t)
    assert "ignore_patterns=['*/*']" in program and "revision=sys.argv[2]" in program
    assert "key=hf://Qwen/Qwen2.5-0.5B-Instruct@abc123;" in script


def test_a_cache_whose_marker_names_another_revision_downloads_again(write_stack, tmp_path):
    import subprocess

    def mutate(c):
        c["neurodock:models"][0]["cache"] = {"sharedStorageClass": "efs-sc"}
    plan = plan_with(write_stack, "staging", mutate)
    [init] = deployment_of(plan, "llama-3-1-8b")["spec"]["template"]["spec"]["initContainers"]
    script = init["command"][2].replace("/models", str(tmp_path)).replace("python3 -c", "echo fetched; true")
    marker = tmp_path / "llama-3-1-8b" / ".neurodock-complete"
    marker.parent.mkdir()
    marker.write_text("hf://meta-llama/Llama-3.1-8B-Instruct@an-older-commit")
    out = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=True).stdout
    assert "fetched" in out and marker.read_text().endswith("@0e9e39f249a16976918f6564b8830bc894c89659")
    out = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=True).stdout
    assert "weights already cached" in out and "fetched" not in out


def test_vllm_runs_as_the_images_own_user_and_llamacpp_as_1000(shipped_plans):
    vllm = deployment_of(shipped_plans["staging"], "llama-3-1-8b")["spec"]["template"]["spec"]
    assert vllm["securityContext"]["runAsUser"] == 2000
    env = {e["name"]: e.get("value") for e in vllm["containers"][0]["env"]}
    assert env["USER"] == "vllm" and env["HOME"] == "/tmp" and env["XDG_CACHE_HOME"].startswith("/tmp/")
    llama = deployment_of(shipped_plans["dev"], "qwen2-5-0-5b")["spec"]["template"]["spec"]
    assert llama["securityContext"]["runAsUser"] == 1000


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
        c["neurodock:models"][0].pop("revision")
        c["neurodock:models"][0]["architecture"] = LLAMA_8B
    plan = plan_with(write_stack, "staging", mutate)
    d = deployment_of(plan, "llama-3-1-8b")
    pod = d["spec"]["template"]["spec"]
    [account] = [a for a in manifests(plan, "ServiceAccount") if a["metadata"]["name"] == pod["serviceAccountName"]]
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    assert account["automountServiceAccountToken"] is False
    [policy] = [r for r in plan.resources if r.type == "aws:iam/rolePolicy:RolePolicy" and "weights" in r.name]
    assert "arn:aws:s3:::acme-models/llama-3.1-8b-instruct/*" in policy.inputs["policy"]
    assert "s3:PutObject" not in policy.inputs["policy"]


def test_gcs_weights_use_workload_identity(write_stack):
    def mutate(c):
        c["neurodock:models"][0]["source"] = "gs://acme-models/llama-3.1-8b"
        c["neurodock:models"][0].pop("revision")
        c["neurodock:models"][0]["architecture"] = LLAMA_8B
    plan = plan_with(write_stack, "prod", mutate)
    pod = deployment_of(plan, "llama-3-1-8b")["spec"]["template"]["spec"]
    assert server(deployment_of(plan, "llama-3-1-8b"))["command"][2] == "gs://acme-models/llama-3.1-8b"
    [account] = [a for a in manifests(plan, "ServiceAccount") if a["metadata"]["name"] == pod["serviceAccountName"]]
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].endswith(".iam.gserviceaccount.com")
    # One identity per version of the model: prod's 8B model also runs a canary and a shadow.
    members = {r.inputs["member"] for r in plan.resources if r.type == "gcp:serviceaccount/iAMMember:IAMMember"
               and "weights-reader" in r.name and "mirror" not in r.name and "8b" in r.name}
    assert members == {f"serviceAccount:neurodock-prod-4821.svc.id.goog[neurodock-serving/{account}]"
                       for account in (pod["serviceAccountName"], "llama-3-1-8b-canary-model",
                                       "llama-3-1-8b-shadow-model")}
    reads = [r for r in plan.resources if r.type == "gcp:storage/bucketIAMMember:BucketIAMMember"
             and r.inputs["bucket"] == "acme-models"]
    assert len(reads) == 3 and all(r.inputs["role"] == "roles/storage.objectViewer" for r in reads)


def test_a_shared_cache_is_one_retained_rwx_claim(write_stack):
    plan = plan_with(write_stack, "staging", lambda c: c["neurodock:models"][0].update(
        cache={"sharedStorageClass": "efs-sc", "sizeGib": 100}))
    [claim] = [r for r in plan.manifests if r.manifest["kind"] == "PersistentVolumeClaim"]
    assert claim.manifest["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim.options["retainOnDelete"] is True
    pod = deployment_of(plan, "llama-3-1-8b")["spec"]["template"]["spec"]
    [weights] = [v for v in pod["volumes"] if v["name"] == "weights"]
    assert weights["persistentVolumeClaim"]["claimName"] == claim.manifest["metadata"]["name"]
    assert mirror_jobs(plan) == []


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
    # Immutable on the API server: a change makes a new class, never an update it refuses.
    [registration] = of_type(plan, "kubernetes:scheduling.k8s.io/v1:PriorityClass")
    assert set(registration.options["replaceOnChanges"]) == {"value", "preemptionPolicy"}


def test_probes_and_rollout_fit_the_budgets(shipped_plans):
    d = deployment_of(shipped_plans["staging"], "llama-3-1-8b")
    c = server(d)
    assert c["startupProbe"]["httpGet"]["path"] == "/health"
    assert c["readinessProbe"]["httpGet"]["path"] == "/health"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert d["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert d["spec"]["progressDeadlineSeconds"] > c["startupProbe"]["periodSeconds"] * c["startupProbe"][
        "failureThreshold"]


def test_vllm_drains_running_requests_for_the_longest_request_the_gateway_allows(shipped_plans, write_stack):
    d = deployment_of(shipped_plans["staging"], "llama-3-1-8b")
    c = server(d)
    # vLLM's default (0) aborts running requests on SIGTERM; the route lets one run 600 s, and the
    # Cluster Autoscaler gives an evicted pod 600 s in all.
    assert flag(c["command"], "--shutdown-timeout") == "575"
    assert c["lifecycle"]["preStop"]["sleep"]["seconds"] == 10  # leave the gateway's endpoints first
    assert d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 10 + 575 + 15
    [route] = [r for r in manifests(shipped_plans["staging"], "HTTPRoute") if r["metadata"]["name"] == "llama-3-1-8b"]
    assert route["spec"]["rules"][0]["timeouts"]["request"] == "600s"
    # A shorter drain is honoured; llama.cpp, which stops at once, waits its whole drain before SIGTERM.
    plan = plan_with(write_stack, "staging", lambda c: c["neurodock:models"][0].update(drainSeconds=120))
    assert flag(server(deployment_of(plan, "llama-3-1-8b"))["command"], "--shutdown-timeout") == "120"
    llama = server(deployment_of(shipped_plans["dev"], "qwen2-5-0-5b"))
    assert llama["lifecycle"]["preStop"]["sleep"]["seconds"] == 30


def test_pdb_allows_a_voluntary_disruption_and_network_policy_admits_gateway_monitoring_and_picker(shipped_plans):
    plan = shipped_plans["staging"]
    [pdb] = [p for p in manifests(plan, "PodDisruptionBudget") if p["metadata"]["namespace"] == "neurodock-serving"
             and p["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/name") == "model-server"]
    assert pdb["spec"]["maxUnavailable"] == 1
    [policy] = [p for p in manifests(plan, "NetworkPolicy") if p["metadata"]["namespace"] == "neurodock-serving"
                and p["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/name") == "model-server"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    [rule] = policy["spec"]["ingress"]
    peers = {p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in rule["from"]
             if "namespaceSelector" in p}
    assert peers == {"neurodock-gateway", "monitoring"}
    # The pool's picker reads the replicas' /metrics: its pods, and only its.
    [picker_peer] = [p["podSelector"]["matchLabels"] for p in rule["from"] if "podSelector" in p]
    [picker] = [d for d in manifests(plan, "Deployment") if picker_peer.items() <= d["spec"]["template"]["metadata"]
                ["labels"].items()]
    assert picker["metadata"]["name"] == "llama-3-1-8b-epp"
    assert rule["ports"] == [{"port": 8000, "protocol": "TCP"}]
    # The picker admits the gateway's proxies on its ext_proc port and Prometheus on its metrics port.
    [own] = [p for p in manifests(plan, "NetworkPolicy") if p["spec"]["podSelector"]["matchLabels"] == picker_peer]
    assert {(r["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], r["ports"][0]["port"])
            for r in own["spec"]["ingress"]} == {("neurodock-gateway", 9002), ("monitoring", 9090)}


# -- Autoscaling ------------------------------------------------------------------------------------


def test_models_scale_on_their_queue_with_keda(shipped_plans):
    plan = shipped_plans["staging"]
    [scaler] = manifests(plan, "ScaledObject")
    spec = scaler["spec"]
    assert spec["scaleTargetRef"]["name"] == deployment_of(plan, "llama-3-1-8b")["metadata"]["name"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 4)
    [trigger] = spec["triggers"]
    assert trigger["type"] == "prometheus"
    # The servers' queues plus what the stable pool's picker holds, each side kept when the other is empty.
    assert trigger["metadata"]["query"] == (
        '(sum(vllm:num_requests_waiting{model_name="meta-llama/Llama-3.1-8B-Instruct", '
        'namespace="neurodock-serving", pod=~"llama-3-1-8b-server-.*"}) or vector(0)) + '
        '(sum(llm_d_epp_flow_control_queue_size{namespace="neurodock-serving", inference_pool="llama-3-1-8b"}) '
        'or vector(0))')
    assert scrape.problems(trigger["metadata"]["query"]) == []
    assert trigger["metadata"]["threshold"] == "5"
    assert trigger["metadata"]["serverAddress"].endswith(":9090")
    assert release_of(plan, KEDA).inputs["version"] == KEDA.version
    assert not [h for h in manifests(plan, "HorizontalPodAutoscaler")], "no CPU HPA on model servers"
    # KEDA reads cooldownPeriod only when scaling to zero: the HPA behaviour paces scale-down.
    assert "cooldownPeriod" not in spec
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 600


def test_an_autoscaled_deployment_leaves_the_replica_count_to_keda(shipped_plans):
    # Once KEDA owns the count, ours would conflict with it under server-side apply on the next
    # `pulumi up`; dropping the field instead would reset a count Pulumi still owns to 1.
    plan = shipped_plans["prod"]
    deployments = {r.name: r for r in plan.resources if r.type == "kubernetes:apps/v1:Deployment"}
    stable = deployments["llama-3-1-8b-server"]
    assert stable.manifest["spec"]["replicas"] == 2 and stable.options["ignoreChanges"] == ["spec.replicas"]
    # Control: versions KEDA does not scale keep theirs, and Pulumi keeps owning it.
    canary = deployments["llama-3-1-8b-canary-server"]
    assert canary.manifest["spec"]["replicas"] == 1 and canary.options["ignoreChanges"] == []


def test_a_model_at_zero_is_woken_by_the_requests_its_picker_holds(write_stack):
    plan = plan_with(write_stack, "staging", lambda c: c["neurodock:models"][0].update(minReplicas=0))
    [scaler] = manifests(plan, "ScaledObject")
    spec = scaler["spec"]
    assert spec["minReplicaCount"] == 0 and spec["cooldownPeriod"] == 600
    trigger, busy = spec["triggers"]
    # The model stays active while it has any request, running ones included: a replica serving without
    # a backlog is not stopped under its clients.
    assert busy["metadata"]["activationThreshold"] == "0" and scrape.problems(busy["metadata"]["query"]) == []
    assert trigger["metadata"]["query"] in busy["metadata"]["query"]
    assert "vllm:num_requests_running" in busy["metadata"]["query"]
    # Any held request activates the model (KEDA: value above activationThreshold).
    assert trigger["metadata"]["activationThreshold"] == "0"
    query = trigger["metadata"]["query"]
    held = re.search(r'llm_d_epp_flow_control_queue_size\{namespace="([^"]+)", inference_pool="([^"]+)"\}', query)
    assert held is not None and scrape.problems(query) == []
    # The pool it reads is the one the model's route sends to, and that pool selects the stable pods only.
    [pool] = [p for p in manifests(plan, "InferencePool") if p["metadata"]["name"] == held.group(2)]
    assert pool["metadata"]["namespace"] == held.group(1)
    [route] = [r for r in manifests(plan, "HTTPRoute") if r["metadata"]["name"] == "llama-3-1-8b"]
    assert route["spec"]["rules"][0]["backendRefs"][0]["name"] == held.group(2)
    target = deployment_of(plan, "llama-3-1-8b")
    assert pool["spec"]["selector"]["matchLabels"].items() <= target["spec"]["template"]["metadata"]["labels"].items()
    assert spec["scaleTargetRef"]["name"] == target["metadata"]["name"]
    assert target["spec"]["replicas"] == 0
    # The picker holds a request as long as a replica is given to become ready, and the smoke test waits as long.
    config_map = next(c for c in manifests(plan, "ConfigMap") if c["metadata"]["name"] == "llama-3-1-8b-epp")
    ttl = yaml.safe_load(config_map["data"]["neurodock.yaml"])["flowControl"]["defaultRequestTTL"]
    # The time to ready and KEDA's minute to ask for a replica.
    assert int(ttl.removesuffix("s")) > 600
    [job] = [j for j in manifests(plan, "Job") if j["metadata"]["name"].startswith("smoke-test-")]
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert json.loads(env["WAKE_SECONDS"]) == {"meta-llama/Llama-3.1-8B-Instruct": int(ttl.removesuffix("s"))}
    assert int(env["DEADLINE_SECONDS"]) == 600 + int(ttl.removesuffix("s"))


def test_min_replicas_zero_needs_the_gateway_that_holds_the_waking_request(write_stack):
    def no_gateway(config):
        config["neurodock:models"][0]["minReplicas"] = 0
        config["neurodock:gateway"] = {"enabled": False}

    with pytest.raises(ConfigError) as error:
        plan_with(write_stack, "staging", no_gateway)
    [problem] = error.value.problems
    assert problem.path == "neurodock:models[0].minReplicas" and "set gateway.enabled to true" in problem.message
    # Without the gateway the servers' own queue is all KEDA reads: no picker, no pool.
    plan = plan_with(write_stack, "staging", lambda c: c.update({"neurodock:gateway": {"enabled": False}}))
    [scaler] = manifests(plan, "ScaledObject")
    assert "llm_d_epp" not in scaler["spec"]["triggers"][0]["metadata"]["query"]
    assert not manifests(plan, "InferencePool")


def test_a_fixed_size_model_gets_no_scaler(write_stack):
    plan = plan_with(write_stack, "staging", lambda c: c["neurodock:models"][0].update(maxReplicas=1))
    assert not manifests(plan, "ScaledObject")
    assert deployment_of(plan, "llama-3-1-8b")["spec"]["replicas"] == 1


# -- Capacity ---------------------------------------------------------------------------------------


def test_memory_estimates_match_hand_arithmetic():
    llama8b = architectures.KNOWN["meta-llama/llama-3.1-8b-instruct"]
    e = architectures.estimate(llama8b, tensor_parallel=1, max_model_len=8192, sequences=1, gpu_memory_gib=22)
    assert e.weights_gib == pytest.approx(8.03e9 * 2 / 2**30)            # ~14.96 GiB in bf16
    assert e.kv_cache_gib == pytest.approx(2 * 32 * 8 * 128 * 2 * 8192 / 2**30)  # 1 GiB
    # Non-PyTorch 1 + CUDA graphs 1.5 + activations of 2048 batched tokens (an L4 is under 70 GiB).
    assert e.overhead_gib == pytest.approx(1 + 1.5 + 2048 * 4096 * 16 / 2**30)
    llama70b = architectures.KNOWN["meta-llama/llama-3.3-70b-instruct"]
    tp4 = architectures.estimate(llama70b, tensor_parallel=4, max_model_len=8192, sequences=1, gpu_memory_gib=79)
    overhead = 1 + 0.5 + 1.5 + 8192 * 8192 / 4 * 16 / 2**30  # NCCL with TP, 8192 tokens on an H100
    assert tp4.per_gpu_gib == pytest.approx(70.6e9 * 2 / 2**30 / 4 + 2 * 80 * 2 * 128 * 2 * 8192 / 2**30 + overhead)
    assert architectures.lookup("hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF") is architectures.KNOWN[
        "qwen/qwen2.5-0.5b-instruct"]
    assert architectures.lookup("s3://bucket/llama") is None


def test_the_capacity_check_holds_every_batched_sequence_unless_told_otherwise(write_stack):
    # Without concurrency, the KV cache must hold maxNumSeqs (64) full-length sequences: not on one L4.
    with pytest.raises(ConfigError) as error:
        plan_with(write_stack, "staging", lambda c: c["neurodock:models"][0].pop("concurrency"))
    [problem] = error.value.problems
    assert problem.path == "neurodock:models[0].concurrency" and "64 x 8192 tokens" in problem.message
    # Control: fewer batched sequences fit.
    plan_with(write_stack, "staging", lambda c: c["neurodock:models"][0].update(
        concurrency=None, engineArgs={"maxNumSeqs": 2}))
    # The CUDA context needs what gpuMemoryUtilization leaves free.
    def greedy(c):
        c["neurodock:models"][0]["engineArgs"] = {"gpuMemoryUtilization": 0.97}
        c["neurodock:monitoring"]["alerts"] = {"gpuMemoryUsage": 1.0}
    with pytest.raises(ConfigError) as error:
        plan_with(write_stack, "staging", greedy)
    assert [p.path for p in error.value.problems if "CUDA context" in p.message] == [
        "neurodock:models[0].engineArgs.gpuMemoryUtilization"]


def test_time_to_ready_estimates_for_the_shipped_models(shipped_plans):
    from infra.readiness import budgets, mirror_budget, time_to_ready

    prod = shipped_plans["prod"].config
    small, large = prod.models
    e = time_to_ready(prod, small)
    # 16.06 GB: 161 s from the Hub at 100 MB/s + 129 s up from the Job's volume at 125 MB/s; then every
    # replica streams it (17 s at 1000 MB/s) and starts vLLM (120 s); 12 GB image at 50 MB/s; a node in 300 s.
    assert (e.first.node_s, e.first.image_s, e.first.weights_s, e.first.load_s) == (300, 240, 290, 137)
    assert (e.scale_out.weights_s, e.scale_out.total_s) == (0, 677)
    b = budgets(prod, small)
    assert (b.node_scale_up_s, b.image_pull_s, b.model_load_s) == (600, 480, 274)
    e = time_to_ready(prod, large)
    assert (e.first.weights_s, e.first.load_s, e.first.total_s, e.scale_out.total_s) == (2542, 262, 3344, 802)
    assert mirror_budget(prod, large) == 2 * 2542
    dev = shipped_plans["dev"].config
    e = time_to_ready(dev, dev.models[0])
    assert e.first.total_s == e.scale_out.total_s  # each replica downloads on kind
    assert budgets(dev, dev.models[0]).model_load_s == 120  # the floor


def test_readiness_budgets_take_config_over_the_estimate(write_stack):
    from infra.readiness import budgets

    def mutate(c):
        c["neurodock:readiness"] = {"imagePullSeconds": 900, "throughput": {"huggingFaceMbPerSecond": 50}}
        c["neurodock:models"][0]["readiness"] = {"modelLoadSeconds": 1000}
    config = plan_with(write_stack, "staging", mutate).config
    b = budgets(config, config.models[0])
    assert (b.image_pull_s, b.model_load_s, b.node_scale_up_s) == (900, 1000, 600)
    startup = server(deployment_of(plan_with(write_stack, "staging", mutate), "llama-3-1-8b"))["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] == 1000


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_shipped_models_fit_their_pools(shipped_plans, stack):
    assert shipped_plans[stack].config.models  # the capacity check ran and passed


def test_engine_commands_are_shell_safe(shipped_plans):
    [job] = mirror_jobs(shipped_plans["staging"])
    shlex.split(job["spec"]["template"]["spec"]["containers"][0]["command"][2])  # well-formed quoting


def test_a_long_environment_names_its_weights_bucket_by_a_digest_not_a_cut(write_stack):
    def long_environment(config):
        config["neurodock:environment"] = "ml-platform-inference-eu"

    plan = plan_with(write_stack, "staging", long_environment)
    [bucket] = [r for r in plan.resources if r.type == "aws:s3/bucket:Bucket"]
    # Cut at 63, the region would go, and two regions' stacks would share one bucket name.
    name = bucket.inputs["bucket"]
    assert len(name) <= 63 and name.startswith("nd-") and name.endswith("-us-east-1"), name


def test_the_weights_bucket_waits_for_the_cluster_and_so_for_the_projects_apis(write_stack):
    from tests.conftest import plan_with

    plan = plan_with(write_stack, "prod", lambda c: c.pop("neurodock:weightsBucket"))
    [component] = [r for r in plan.resources if r.type == "neurodock:serving:MirrorBucket"]
    # A component in depends_on stands for its children: the cluster, and the project's API enablements.
    waits = component.options["dependsOn"]
    assert any("gcp:container/cluster:Cluster::" in urn for urn in waits)
    assert any("gcp:projects/service:Service::" in urn for urn in waits)
    [bucket] = [r for r in plan.resources if r.type == "gcp:storage/bucket:Bucket"]
    assert bucket.parent == component.urn  # a child: it waits for what its parent waits for


def test_a_shadow_follows_its_model_to_zero_and_wakes_with_it(write_stack, shipped_plans):
    from tests.conftest import model_servers, plan_with

    def servers(plan, variant):
        return [r.manifest for r in model_servers(plan, variant)]

    def at_zero(config):
        config["neurodock:models"][0]["minReplicas"] = 0

    plan = plan_with(write_stack, "prod", at_zero)
    objects = [r.manifest for r in plan.manifests if r.manifest["kind"] == "ScaledObject"]
    by_target = {o["spec"]["scaleTargetRef"]["name"]: o for o in objects}
    [shadow] = [d for d in servers(plan, "shadow") if d["metadata"]["name"].startswith("llama-3-1-8b-shadow")]
    [stable] = [d for d in servers(plan, "stable") if d["metadata"]["name"].startswith("llama-3-1-8b-server")]
    scaler, stable_scaler = by_target[shadow["metadata"]["name"]], by_target[stable["metadata"]["name"]]
    assert shadow["spec"]["replicas"] == 0
    assert (scaler["spec"]["minReplicaCount"], scaler["spec"]["maxReplicaCount"]) == (0, 1)
    # Woken, and kept up, by the stable version's own signals.
    assert [t["metadata"]["query"] for t in scaler["spec"]["triggers"]] == \
        [t["metadata"]["query"] for t in stable_scaler["spec"]["triggers"]]
    # A model that never goes to zero keeps its shadow at its fixed count, without a scaler.
    [shipped_shadow] = servers(shipped_plans["prod"], "shadow")
    assert shipped_shadow["spec"]["replicas"] == 1
    assert not any(o["spec"]["scaleTargetRef"]["name"] == shipped_shadow["metadata"]["name"]
                   for o in (r.manifest for r in shipped_plans["prod"].manifests) if o["kind"] == "ScaledObject")
