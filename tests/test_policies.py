"""The policy pack: built without a policy server, every shipped stack checks clean of mandatory
violations, and each policy passes a compliant resource and reports a mutated one with its exact
message. Compliant fixtures are the real resources of the shipped stacks' offline plans."""

from __future__ import annotations

import copy
import importlib.resources
import re

import pytest
from neurodock_policies import MODULES, POLICIES
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy

from infra.check import PolicyConfigError, PolicySettings, load_policy_config, policy_resources, run_on, run_policies
from tests.conftest import SHIPPED_STACKS, run_cli, stack_document


def test_the_pack_builds_its_policies_without_a_server():
    names = [p.name for p in POLICIES]
    assert len(names) == len(set(names)) == len(MODULES) >= 15
    for module, policy in zip(MODULES, POLICIES, strict=True):
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", policy.name)
        # One policy per module, named after it.
        assert module.__name__.rsplit(".", 1)[1] == policy.name.replace("-", "_") == module.NAME.replace("-", "_")
        assert isinstance(policy, ResourceValidationPolicy | StackValidationPolicy)
        assert policy.enforcement_level in (EnforcementLevel.MANDATORY, EnforcementLevel.ADVISORY)
        assert policy.description.endswith(".")


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_shipped_stack_checks_clean_of_mandatory_violations(shipped_plans, stack):
    violations = run_policies(shipped_plans[stack], POLICIES)
    assert [v for v in violations if v.enforcement == "mandatory"] == []


def resources_of(shipped_plans, stack):
    return copy.deepcopy(policy_resources(shipped_plans[stack]))


def pick(resources, type_, where=lambda r: True):
    return next(r for r in resources if r.resource_type == type_ and where(r))


def model_server(r):
    return r.props["metadata"]["labels"].get("app.kubernetes.io/name") == "model-server"


def engine(r):
    return r.props["spec"]["template"]["spec"]["containers"][0]


def set_path(props, path, value):
    node = props
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


DEPLOYMENT = "kubernetes:apps/v1:Deployment"

# (policy, stack, resource type, selector, mutation, exact message with {name} for the resource's name)
CASES = [
    ("pod-security-restricted", "staging", DEPLOYMENT, model_server,
     lambda r: engine(r)["securityContext"].update(allowPrivilegeEscalation=True),
     "Deployment 'neurodock-serving/{name}' breaks Pod Security 'restricted' (Privilege escalation: container "
     "'server' must set allowPrivilegeEscalation: false); fix its security context, or, for a node agent, run it as "
     "a DaemonSet in a namespace labelled privileged and listed in nodeAgentNamespaces."),
    ("images-pinned", "staging", DEPLOYMENT, model_server,
     lambda r: engine(r).update(image="vllm/vllm-openai:latest"),
     "Deployment 'neurodock-serving/{name}' container 'server' image 'vllm/vllm-openai:latest' uses the tag "
     "'latest'; pin it to a released tag, or better a digest (image:tag@sha256:...)."),
    ("container-resources", "staging", DEPLOYMENT, model_server,
     lambda r: engine(r)["resources"]["requests"].pop("cpu"),
     "Deployment 'neurodock-serving/{name}' container 'server' sets no requests.cpu; set resources.requests.cpu, "
     "resources.requests.memory and resources.limits.memory."),
    ("gpu-workloads", "staging", DEPLOYMENT, model_server,
     lambda r: r.props["spec"]["template"]["spec"].update(tolerations=[]),
     "Deployment 'neurodock-serving/{name}' uses GPUs but does not tolerate the taint nvidia.com/gpu:NoSchedule "
     "that GPU pools carry; add a toleration for key 'nvidia.com/gpu'."),
    ("gpu-node-pools-tainted", "staging", "aws:eks/nodeGroup:NodeGroup", lambda r: r.name.endswith("gpu-l4"),
     lambda r: r.props.update(taints=[]),
     "NodeGroup '{name}' has GPUs but no taint nvidia.com/gpu=present:NO_SCHEDULE; add it so that only GPU "
     "workloads are scheduled there."),
    ("model-server-probes", "staging", DEPLOYMENT, model_server,
     lambda r: engine(r).pop("startupProbe"),
     "Deployment 'neurodock-serving/{name}' container 'server' has no startupProbe; add a startup probe sized to "
     "the model-load time and a readiness probe on the server's health endpoint."),
    ("model-server-resilience", "staging", "kubernetes:policy/v1:PodDisruptionBudget",
     lambda r: r.props["metadata"]["namespace"] == "neurodock-serving"
     and r.props["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/name") == "model-server",
     lambda r: r.props["spec"]["selector"].update(matchLabels={"app": "other"}),
     None),  # message checked in its own test: it names the Deployment
    ("no-public-exposure", "dev", "kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyProxy", lambda r: True,
     lambda r: r.props["spec"]["provider"]["kubernetes"]["envoyService"].update(type="LoadBalancer"),
     "EnvoyProxy 'neurodock-gateway/{name}' is reachable from the internet and has no source ranges; list the "
     "client CIDRs allowed (loadBalancerSourceRanges; NeuroDock: gateway.allowedCidrs), or keep it internal."),
    ("eks-cluster-hardening", "staging", "aws:eks/cluster:Cluster", lambda r: True,
     lambda r: r.props["vpcConfig"].update(publicAccessCidrs=["0.0.0.0/0"]),
     "EKS cluster '{name}' has a public API endpoint open to the internet; set vpcConfig.endpointPublicAccess to "
     "false or list your CIDRs in vpcConfig.publicAccessCidrs."),
    ("eks-node-hardening", "staging", "aws:ec2/launchTemplate:LaunchTemplate", lambda r: True,
     lambda r: r.props["metadataOptions"].update(httpPutResponseHopLimit=2),
     "LaunchTemplate '{name}' lets pods reach the instance metadata service; set "
     "metadataOptions.httpPutResponseHopLimit to 1."),
    ("gke-cluster-hardening", "prod", "gcp:container/cluster:Cluster", lambda r: True,
     lambda r: r.props.pop("workloadIdentityConfig"),
     "GKE cluster '{name}' does not enable Workload Identity; set workloadIdentityConfig.workloadPool to "
     "'PROJECT.svc.id.goog'."),
    ("no-plaintext-secrets", "staging", DEPLOYMENT, model_server,
     lambda r: engine(r).setdefault("env", []).append({"name": "HF_TOKEN", "value": "hf_abc"}),
     "Deployment 'neurodock-serving/{name}' container 'server' puts a secret in plain text in env 'HF_TOKEN'; read "
     "it from a Secret with valueFrom.secretKeyRef."),
    ("no-plaintext-secrets", "staging", DEPLOYMENT, model_server,
     lambda r: engine(r).__setitem__("args", ["--api-key", "team-a-key"]),
     "Deployment 'neurodock-serving/{name}' container 'server' has the value of --api-key in plain text in args[1]; "
     "pass it from a Secret through an env var (valueFrom.secretKeyRef) and reference it as $(VAR)."),
    ("no-plaintext-secrets", "staging", "aws:eks/cluster:Cluster", lambda r: True,
     lambda r: r.props["tags"].update(owner="AKIA" + "ABCDEFGH2JKLMNO7"),
     "Cluster '{name}' has an AWS access key id in plain text in tags 'owner'; tags, labels and annotations are "
     "readable by anyone who may read the resource: move it to a secret."),
    ("no-plaintext-secrets", "prod", "gcp:container/nodePool:NodePool", lambda r: r.name.endswith("gpu-l4"),
     lambda r: r.props["nodeConfig"].setdefault("labels", {}).update(token="hf_" + "a" * 34),
     "NodePool '{name}' has a Hugging Face token in plain text in nodeConfig.labels 'token'; tags, labels and "
     "annotations are readable by anyone who may read the resource: move it to a secret."),
    ("prod-gpu-pools-not-spot-only", "prod", "gcp:container/nodePool:NodePool", lambda r: r.name.endswith("gpu-l4"),
     lambda r: r.props["nodeConfig"].update(spot=True),
     "GPU pool '{name}' of a production stack runs on spot capacity only; set its capacity to 'onDemand' (a spot "
     "pool may only add to an on-demand one)."),
    ("prod-stateful-resources-retained", "prod", "gcp:kms/cryptoKey:CryptoKey", lambda r: True,
     lambda r: setattr(r.opts, "retain_on_delete", False),
     "CryptoKey '{name}' holds data or keys in a production stack but is neither protected nor retained; set "
     "protect=True or retain_on_delete=True."),
    ("helm-charts-pinned", "staging", "kubernetes:helm.sh/v3:Release",
     lambda r: r.props["chart"] == "keda", lambda r: r.props.update(version="^2.17"),
     "Helm release '{name}' of chart 'keda' has version '^2.17'; pin an exact chart version (NeuroDock "
     "keeps them in components/versions.py)."),
    ("model-fits-gpu", "prod", DEPLOYMENT, lambda r: model_server(r) and "70b" in r.name,
     lambda r: r.props["metadata"]["annotations"].update({"neurodock.io/gpu-memory-need-gib": "80.0"}),
     "Deployment 'neurodock-serving/{name}' needs 80.0 GiB per GPU but pool 'gpu-h100' has nvidia-h100-80gb GPUs "
     "with 71.1 GiB usable; use more GPUs per replica, a shorter context, quantization, or a pool with larger GPUs."),
]


@pytest.mark.parametrize(("policy", "stack", "type_", "where", "mutate", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_policy_passes_the_compliant_resource_and_reports_the_mutated_one(
        shipped_plans, policy, stack, type_, where, mutate, expected):
    [chosen] = [p for p in POLICIES if p.name == policy]
    resources = resources_of(shipped_plans, stack)
    target = pick(resources, type_, where)
    assert [v for v in run_on(resources, [chosen]) if v.urn == target.urn] == []
    mutate(target)
    found = run_on(resources, [chosen])
    assert found, f"{policy} did not fire"
    if expected is not None:
        shown = target.props.get("metadata", {}).get("name", target.name) if type_.startswith("kubernetes:") \
            and not type_.startswith("kubernetes:helm") else target.name
        assert [v.message for v in found] == [expected.format(name=shown)]
        assert {v.urn for v in found} == {target.urn}


def test_a_model_server_without_a_budget_is_named(shipped_plans):
    resources = resources_of(shipped_plans, "staging")
    resources = [r for r in resources if r.resource_type != "kubernetes:policy/v1:PodDisruptionBudget"]
    [v] = run_on(resources, [p for p in POLICIES if p.name == "model-server-resilience"])
    assert v.message.startswith("Deployment 'neurodock-serving/llama-3-1-8b-server-")
    assert v.message.endswith("is a model server without a PodDisruptionBudget; add one selecting its pods "
                              "(maxUnavailable: 1) so node drains take replicas one at a time.")


def test_a_cpu_only_hpa_on_a_model_server_is_a_violation(shipped_plans):
    from pulumi_policy import PolicyCustomTimeouts, PolicyResource, PolicyResourceOptions

    resources = resources_of(shipped_plans, "staging")
    server = pick(resources, DEPLOYMENT, model_server)
    hpa = PolicyResource(
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
        {"metadata": {"name": "cpu-hpa", "namespace": "neurodock-serving"},
         "spec": {"scaleTargetRef": {"kind": "Deployment", "name": server.props["metadata"]["name"]},
                  "metrics": [{"type": "Resource", "resource": {"name": "cpu"}}]}},
        "urn:hpa", "cpu-hpa", PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), []),
        None, None, [], {})
    [v] = run_on([*resources, hpa], [p for p in POLICIES if p.name == "model-server-resilience"])
    assert v.urn == "urn:hpa"
    assert v.message.startswith("HorizontalPodAutoscaler 'neurodock-serving/cpu-hpa' scales model server")
    assert v.message.endswith("on CPU or memory only; scale on LLM signals (queue depth, KV-cache use) with a KEDA "
                              "ScaledObject or an HPA on custom metrics.")


def test_values_unknown_at_preview_are_not_violations(shipped_plans):
    resources = resources_of(shipped_plans, "staging")
    target = pick(resources, DEPLOYMENT, model_server)
    engine(target)["image"] = "[unknown]"
    engine(target)["resources"] = "[unknown]"
    cluster = pick(resources, "aws:eks/cluster:Cluster")
    cluster.props["vpcConfig"]["publicAccessCidrs"] = "[unknown]"
    assert [v for v in run_on(resources, POLICIES) if v.enforcement == "mandatory"] == []


def test_plaintext_stack_outputs_are_reported(shipped_plans):
    resources = resources_of(shipped_plans, "dev")
    stack = pick(resources, "pulumi:pulumi:Stack")
    assert stack.props["kubeconfig"] == "[secret]"
    stack.props["grafanaAdminPassword"] = "hunter2-hunter2"
    [v] = run_on(resources, [p for p in POLICIES if p.name == "no-plaintext-secrets"])
    assert v.message == ("Stack output 'grafanaAdminPassword' is a secret in plain text; export it with "
                         "pulumi.Output.secret(...).")


def test_node_agents_are_exempt_only_in_privileged_namespaces(shipped_plans):
    resources = resources_of(shipped_plans, "staging")
    policy = [p for p in POLICIES if p.name == "pod-security-restricted"]
    assert run_on(resources, policy) == []
    namespace = pick(resources, "kubernetes:core/v1:Namespace",
                     lambda r: r.props["metadata"]["name"] == "nvidia-device-plugin")
    namespace.props["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] = "baseline"
    found = run_on(resources, policy)
    assert found and all("DaemonSet 'nvidia-device-plugin/" in v.message for v in found)


def test_the_pack_entry_point_hands_the_same_policies_to_pulumi():
    source = (importlib.resources.files("neurodock_policies").parent / "__main__.py").read_text()
    assert "PolicyPack(name=PACK_NAME, policies=POLICIES)" in source


def test_check_exits_0_on_a_clean_stack_and_lists_advice():
    result = run_cli("check", "dev")
    assert result.returncode == 0, result.stderr
    assert re.search(rf"dev: {len(POLICIES)} policies, 0 mandatory and \d+ advisory violations", result.stdout)


def test_check_exits_1_on_a_mandatory_violation_and_2_on_bad_config(write_stack):
    document = stack_document("prod")
    document["config"]["neurodock:nodePools"][1]["capacity"] = "spot"
    result = run_cli("check", "prod", "--stack-file", str(write_stack(document)), "--json")
    assert result.returncode == 1, result.stderr
    import json
    report = json.loads(result.stdout)
    assert [v["policy"] for v in report["violations"] if v["enforcement"] == "mandatory"] == [
        "prod-gpu-pools-not-spot-only"]
    document["config"]["neurodock:nodePools"][1]["gpu"]["count"] = -1
    result = run_cli("check", "prod", "--stack-file", str(write_stack(document)))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "neurodock:nodePools[1].gpu.count" in result.stderr


def only(name):
    return [p for p in POLICIES if p.name == name]


def test_public_exposure_thresholds_and_internal_load_balancers(shipped_plans):
    resources = resources_of(shipped_plans, "dev")
    proxy = pick(resources, "kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyProxy")
    service = proxy.props["spec"]["provider"]["kubernetes"]["envoyService"]
    service.update(type="LoadBalancer", loadBalancerSourceRanges=["10.0.0.0/8"])
    policy = only("no-public-exposure")
    assert run_on([proxy], policy) == []
    [v] = run_on([proxy], policy, {"no-public-exposure": PolicySettings(properties={"minIpv4PrefixLength": 16})})
    assert "is reachable from the internet and allows 10.0.0.0/8, wider than /16;" in v.message
    service["loadBalancerSourceRanges"] = ["0.0.0.0/1"]
    [v] = run_on([proxy], policy)
    assert "allows 0.0.0.0/1, wider than /8;" in v.message
    service["annotations"] = {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"}
    assert run_on([proxy], policy) == []


def test_an_ingress_without_an_allow_list_is_public(shipped_plans):
    from pulumi_policy import PolicyCustomTimeouts, PolicyResource, PolicyResourceOptions

    annotations = {}
    ingress = PolicyResource(
        "kubernetes:networking.k8s.io/v1:Ingress",
        {"metadata": {"name": "chat", "namespace": "neurodock-gateway", "annotations": annotations}, "spec": {}},
        "urn:ingress", "chat", PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), []),
        None, None, [], {})
    [v] = run_on([ingress], only("no-public-exposure"))
    assert v.message == ("Ingress 'neurodock-gateway/chat' is reachable from the internet and has neither an "
                         "internal scheme nor a source allow-list annotation; list the client CIDRs allowed "
                         "(loadBalancerSourceRanges; NeuroDock: gateway.allowedCidrs), or keep it internal.")
    annotations["nginx.ingress.kubernetes.io/whitelist-source-range"] = "198.51.100.0/24, 203.0.113.0/24"
    assert run_on([ingress], only("no-public-exposure")) == []
    annotations["nginx.ingress.kubernetes.io/whitelist-source-range"] = "0.0.0.0/0"
    assert len(run_on([ingress], only("no-public-exposure"))) == 1
    annotations.clear()
    annotations["alb.ingress.kubernetes.io/scheme"] = "internal"
    assert run_on([ingress], only("no-public-exposure")) == []


def test_secret_name_pattern_is_configurable(shipped_plans):
    resources = resources_of(shipped_plans, "staging")
    engine(pick(resources, DEPLOYMENT, model_server)).setdefault("env", []).append(
        {"name": "HF_READ_CRED", "value": "not-a-known-token-shape"})
    assert run_on(resources, only("no-plaintext-secrets")) == []
    settings = {"no-plaintext-secrets": PolicySettings(properties={"secretNamePattern": r"_cred$"})}
    [v] = run_on(resources, only("no-plaintext-secrets"), settings)
    assert "puts a secret in plain text in env 'HF_READ_CRED'" in v.message


def test_gpu_headroom_is_configurable(shipped_plans):
    resources = resources_of(shipped_plans, "prod")
    assert run_on(resources, only("model-fits-gpu")) == []
    found = run_on(resources, only("model-fits-gpu"), {"model-fits-gpu": PolicySettings(properties={"minFreeGib": 5})})
    # The 8B model needs 19.6 GiB of an L4's 19.8 usable: stable, canary and shadow all lose their headroom.
    assert len(found) == 3 and all("needs 19.6 GiB per GPU and 5 GiB must stay free but pool 'gpu-l4'" in v.message
                                   for v in found)


def test_policy_config_levels_resolve_as_in_the_engine(shipped_plans, tmp_path):
    path = tmp_path / "policy-config.json"
    path.write_text('{"all": "advisory", "model-fits-gpu": {"enforcementLevel": "mandatory", "minFreeGib": 5},'
                    ' "images-pinned-by-digest": "disabled"}')
    settings = load_policy_config(path, POLICIES)
    found = run_policies(shipped_plans["prod"], POLICIES, settings)
    assert {v.policy for v in found if v.enforcement == "mandatory"} == {"model-fits-gpu"}
    assert "images-pinned-by-digest" not in {v.policy for v in found}


def test_a_bad_policy_config_names_each_key_and_exits_2(tmp_path):
    path = tmp_path / "policy-config.json"
    path.write_text('{"no-such-policy": "mandatory", "model-fits-gpu": {"enforcementLevel": "strict"},'
                    ' "no-public-exposure": {"minIpv4PrefixLength": 40, "minPrefix": 8},'
                    ' "no-plaintext-secrets": {"secretNamePattern": "("}}')
    with pytest.raises(PolicyConfigError) as caught:
        load_policy_config(path, POLICIES)
    problems = caught.value.problems
    assert problems[0].startswith("no-such-policy: no such policy in the pack; use 'all' or one of: ")
    assert problems[1] == ("model-fits-gpu.enforcementLevel: 'strict' is not a level; use one of: advisory, "
                           "mandatory, remediate, disabled.")
    assert problems[2].startswith("no-public-exposure: Additional properties are not allowed ('minPrefix' was "
                                  "unexpected); this policy's properties: minIpv4PrefixLength, minIpv6PrefixLength.")
    assert problems[3].startswith("no-public-exposure.minIpv4PrefixLength: 40 is greater than the maximum of 32")
    assert problems[4].startswith("no-plaintext-secrets.secretNamePattern: '(' is not a 'regex'")
    result = run_cli("check", "dev", "--policy-config", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "model-fits-gpu.enforcementLevel" in result.stderr and result.stdout == ""
