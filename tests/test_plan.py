"""The stack program under mocks: each shipped stack plans, wires providers explicitly, and gets
outputs that look like a real deployment's."""

from __future__ import annotations

import re

import pytest

from infra.plan.engine import run_plan
from infra.plan.mocks import SECRET
from infra.plan.stackfile import load_stack_file
from tests.conftest import SHIPPED_STACKS, model_servers, stack_document

EXPECTED_TYPES = {
    "dev": {"command:local:Command", "kubernetes:apps/v1:Deployment", "kubernetes:helm.sh/v3:Release"},
    "staging": {"aws:eks/cluster:Cluster", "aws:eks/nodeGroup:NodeGroup", "aws:ec2/vpc:Vpc",
                "kubernetes:apps/v1:Deployment", "kubernetes:helm.sh/v3:Release"},
    "prod": {"gcp:container/cluster:Cluster", "gcp:container/nodePool:NodePool", "gcp:compute/network:Network",
             "kubernetes:apps/v1:Deployment", "kubernetes:helm.sh/v3:Release"},
}


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_stack_plans_its_cloud_and_workloads(shipped_plans, stack):
    plan = shipped_plans[stack]
    types = {r.type for r in plan.resources}
    assert EXPECTED_TYPES[stack] <= types
    assert len(model_servers(plan)) == len(plan.config.models) > 0
    for variant in ("canary", "shadow"):
        assert len(model_servers(plan, variant)) == sum(getattr(m, variant) is not None for m in plan.config.models)


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_resource_uses_an_explicit_provider(shipped_plans, stack):
    plan = shipped_plans[stack]
    providers = {r.urn for r in plan.resources if r.type.startswith("pulumi:providers:")}
    custom = [r for r in plan.resources if r.custom and not r.type.startswith("pulumi:providers:")]
    assert custom
    for r in custom:
        assert r.provider in providers, f"{r.urn} uses provider {r.provider}"
    # Default providers are named "default_<version>"; none may exist.
    assert not [p for p in providers if "::default" in p]


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_kubernetes_resources_use_the_stacks_kubernetes_provider(shipped_plans, stack):
    plan = shipped_plans[stack]
    [kube] = [r for r in plan.resources if r.type == "pulumi:providers:kubernetes"]
    k8s = [r for r in plan.resources if r.custom and r.type.startswith("kubernetes:")]
    assert k8s and all(r.provider == kube.urn for r in k8s)


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_child_has_a_registered_parent(shipped_plans, stack):
    plan = shipped_plans[stack]
    urns = {r.urn for r in plan.resources}
    assert len(urns) == len(plan.resources), "URNs must be unique"
    for r in plan.resources:
        assert r.parent is None or r.parent in urns, r.urn
    components = [r for r in plan.resources if not r.custom and r.type.startswith("neurodock:")]
    assert {c.type.split(":")[1] for c in components} >= {"cluster", "monitoring", "serving"}


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_kubeconfig_is_a_secret_output(shipped_plans, stack):
    outputs = shipped_plans[stack].outputs
    assert outputs["kubeconfig"] == SECRET
    # A DR stack is its primary's environment in another place: same names, other location.
    environment = stack.removesuffix("-dr")
    assert outputs["environment"] == environment
    assert outputs["clusterName"] == f"neurodock-{environment}"


def test_eks_outputs_look_like_eks(shipped_plans):
    plan = shipped_plans["staging"]
    assert re.fullmatch(r"https://[0-9A-F]{32}\.gr7\.us-east-1\.eks\.amazonaws\.com", plan.outputs["clusterEndpoint"])
    [vpc] = [r for r in plan.resources if r.type == "aws:ec2/vpc:Vpc"]
    assert re.fullmatch(r"vpc-[0-9a-f]{17}", vpc.id)
    [cluster] = [r for r in plan.resources if r.type == "aws:eks/cluster:Cluster"]
    # The node groups receive the cluster's real name, not a placeholder.
    groups = [r for r in plan.resources if r.type == "aws:eks/nodeGroup:NodeGroup"]
    assert {g.inputs["clusterName"] for g in groups} == {cluster.id} == {"neurodock-staging"}
    assert all(re.fullmatch(r"arn:aws:iam::\d{12}:role/.+", g.inputs["nodeRoleArn"]) for g in groups)
    assert all(re.fullmatch(r"subnet-[0-9a-f]{17}", s) for g in groups for s in g.inputs["subnetIds"])


def test_gke_outputs_look_like_gke(shipped_plans):
    plan = shipped_plans["prod"]
    # GKE's DNS endpoint: gke-<hash>-<project number>.<region>.gke.goog.
    assert re.fullmatch(r"https://gke-[0-9a-f]{32}-\d{12}\.europe-west4\.gke\.goog", plan.outputs["clusterEndpoint"])
    pools = [r for r in plan.resources if r.type == "gcp:container/nodePool:NodePool"]
    assert {p.inputs["cluster"] for p in pools} == {
        "projects/neurodock-prod-4821/locations/europe-west4/clusters/neurodock-prod"}
    assert all(p.inputs["nodeConfig"]["serviceAccount"].endswith("@neurodock-prod-4821.iam.gserviceaccount.com")
               for p in pools)


def test_kind_kubeconfig_points_at_localhost(shipped_plans):
    plan = shipped_plans["dev"]
    assert re.fullmatch(r"https://127\.0\.0\.1:\d+", plan.outputs["clusterEndpoint"])
    assert plan.outputs["gpulessPools"] == ["gpu-l4"]
    assert any("has no GPU" in w for w in plan.warnings)


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_model_endpoints_are_exported_per_served_name(shipped_plans, stack):
    plan = shipped_plans[stack]
    models = plan.outputs["models"]
    assert set(models) == {m.model_name for m in plan.config.models}
    for url in models.values():
        assert re.fullmatch(r"http://[a-z0-9-]+\.neurodock-serving\.svc\.cluster\.local:8000/v1", url)


def test_plans_are_reproducible(shipped_plans):
    again = run_plan(load_stack_file("staging"))
    assert [r.to_json() for r in again.resources] == [r.to_json() for r in shipped_plans["staging"].resources]


def test_secure_config_reaches_the_program_as_an_unknown_secret(write_stack):
    document = stack_document("dev")
    document["config"]["neurodock:hfToken"] = {"secure": "v1:AAAABBBB"}
    plan = run_plan(load_stack_file("test", write_stack(document)))
    [secret] = [r for r in plan.resources if r.type == "kubernetes:core/v1:Secret" and r.name.endswith("hf-token")]
    # Never written in plaintext; an unknown secret map cannot even show its keys.
    assert secret.inputs["stringData"] in (SECRET, {"token": SECRET})
    [deployment] = model_servers(plan)
    env = deployment.inputs["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"key": "token", "name": secret.id}}} in env


def test_without_a_token_no_token_secret_is_created(shipped_plans):
    secrets = [r for r in shipped_plans["staging"].resources if r.type == "kubernetes:core/v1:Secret"]
    assert secrets and not [r for r in secrets if r.name.endswith("hf-token")]


def test_resource_options_are_recorded(shipped_plans):
    plan = shipped_plans["staging"]
    [key] = [r for r in plan.resources if r.type == "aws:kms/key:Key"]
    assert key.options["retainOnDelete"] is True
    [grant] = [r for r in shipped_plans["prod"].resources if r.type == "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"]
    [cluster] = [r for r in shipped_plans["prod"].resources if r.type == "gcp:container/cluster:Cluster"]
    assert grant.urn in cluster.options["dependsOn"]
    assert cluster.options["ignoreChanges"] == ["nodeConfig", "initialNodeCount"]
    [cluster] = [r for r in plan.resources if r.type == "aws:eks/cluster:Cluster"]
    [logs] = [r for r in plan.resources if r.type == "aws:cloudwatch/logGroup:LogGroup"]
    assert logs.urn in cluster.options["dependsOn"]


def _warnings(write_stack, stack: str, **config) -> list[str]:
    document = stack_document(stack)
    document["config"].update(config)
    return run_plan(load_stack_file("test", write_stack(document)), render_charts=False).warnings


def test_a_gated_model_without_a_hugging_face_token_is_warned_about(write_stack):
    gated = [w for w in _warnings(write_stack, "staging") if "is gated on Hugging Face" in w]
    assert gated == ["models[0]: hf://meta-llama/Llama-3.1-8B-Instruct is gated on Hugging Face and neurodock:hfToken "
                     "is not set, so its download will be refused (401); accept the licence on the model's page and "
                     "set the token with `pulumi config set --secret neurodock:hfToken`"]
    with_token = _warnings(write_stack, "staging", **{"neurodock:hfToken": {"secure": "v1:AAAA"}})
    assert not [w for w in with_token if "is gated" in w]
    # Qwen's repositories are not gated.
    assert not [w for w in _warnings(write_stack, "dev") if "is gated" in w]


def test_tags_lowercased_into_google_cloud_labels_say_so(write_stack):
    document = stack_document("prod")
    document["config"]["neurodock:tags"] = {"Team": "ML", "cost-center": "c42"}
    plan = run_plan(load_stack_file("test", write_stack(document)), render_charts=False)
    assert [w for w in plan.warnings if w.startswith("tags.")] == [
        "tags.Team: Google Cloud labels are lowercase, without ':'; labelled team=ml"]
    [cluster] = [r for r in plan.resources if r.type == "gcp:container/cluster:Cluster"]
    assert cluster.inputs["resourceLabels"]["team"] == "ml"
