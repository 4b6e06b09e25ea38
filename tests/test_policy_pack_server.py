"""The policy pack as the Pulumi CLI runs it: a separate process started the way
``pulumi-analyzer-policy-python`` starts it (``python -u -m pulumi.policy ENGINE PACK_DIR``), asked
over the Analyzer gRPC protocol for its policies, configured, and handed every resource of a plan as the
engine marshals it (``infra.crossguard``): secrets wrapped with their values, unknowns as the engine's
sentinel, options without ``retainOnDelete``, stack policies given outputs.

This is the part of ``pulumi preview --policy-pack policies/neurodock`` that the CLI delegates to the
pack; only the CLI itself is missing here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace

import pytest
from google.protobuf import empty_pb2, json_format
from neurodock_policies import PACK_NAME, POLICIES
from pulumi.runtime import proto

from infra.check import PolicySettings, policy_resources, run_on
from infra.crossguard import (
    RESOURCE_SIG,
    SECRET_SIG,
    SIG,
    UNKNOWN_STRING,
    Pack,
    analyzer_resources,
    engine_value,
    pack_process,
)
from infra.plan.engine import Plan, run_plan
from infra.plan.mocks import Registration
from tests.conftest import SHIPPED_STACKS

LEVELS = {proto.MANDATORY: "mandatory", proto.ADVISORY: "advisory", proto.DISABLED: "disabled"}


def findings(pack: Pack, plan: Plan) -> list:
    analyze, stack = analyzer_resources(plan)
    return pack.analyze(analyze) + pack.analyze_stack(stack)


def stack_findings(pack: Pack, plan: Plan) -> list:
    """What the pack's stack policies report (``AnalyzeStack``, the call that runs them): the seeded defects below
    are each a stack policy's, so the per-resource pass would only repeat what the shipped-stack tests run."""
    return pack.analyze_stack(analyzer_resources(plan)[1])


def mandatory(found) -> list[tuple[str, str | None, str]]:
    return sorted((d.policy, d.urn, d.message) for d in found if d.enforcement == "mandatory")


def test_the_pack_process_announces_every_policy_with_its_level_and_config_schema(pack):
    info = pack._stub.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == PACK_NAME
    served = {p.name: p for p in info.policies}
    assert list(served) == [p.name for p in POLICIES]
    for policy in POLICIES:
        assert LEVELS[served[policy.name].enforcementLevel] == policy.enforcement_level.value
        declared = policy.config_schema.properties if policy.config_schema else {}
        assert json_format.MessageToDict(served[policy.name].configSchema.properties) == declared


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_shipped_stack_passes_the_packs_own_process_as_it_stands_and_on_a_first_preview(pack, shipped_plans,
                                                                                               stack):
    plan = shipped_plans[stack]
    assert mandatory(findings(pack, plan)) == []
    preview = run_plan(plan.stack, render_charts=False, first_preview=True)
    found = findings(pack, preview)
    assert mandatory(found) == []
    # No policy is downgraded to advisory by an unknown it read (pulumi-policy's UnknownValueError).
    assert [d for d in found if d.preview_downgrade] == []


def test_retention_is_not_applicable_under_crossguard_because_the_engine_never_sends_it(pack, shipped_plans):
    findings(pack, shipped_plans["prod"])
    reason = pack.not_applicable["prod-stateful-resources-retained"]
    assert "the engine does not show policies retainOnDelete, so CryptoKey 'cluster-secrets'" in reason
    # Offline, where the plan knows retainOnDelete, the same policy judges and passes prod.
    offline = run_on(policy_resources(shipped_plans["prod"]),
                     [p for p in POLICIES if p.name == "prod-stateful-resources-retained"])
    assert offline == []


# --- the engine's marshalling ------------------------------------------------------------------


def test_values_reach_the_pack_as_the_engine_marshals_them():
    wire = {"password": {SIG: SECRET_SIG, "value": "s3cr3t"}, "endpoint": UNKNOWN_STRING,
            "role": {SIG: RESOURCE_SIG, "urn": "urn:pulumi:s::p::aws:iam/role:Role::r", "id": "r-123"},
            "component": {SIG: RESOURCE_SIG, "urn": "urn:pulumi:s::p::my:index:Thing::t", "id": ""},
            "__defaults": ["name"], "count": 3.0}
    assert engine_value(wire) == {
        "password": {SIG: SECRET_SIG, "value": "s3cr3t"},  # KeepSecrets: the value travels, wrapped
        "endpoint": UNKNOWN_STRING,  # KeepUnknowns: the string sentinel
        "role": "r-123",  # KeepResources false: a custom resource's id...
        "component": "urn:pulumi:s::p::my:index:Thing::t",  # ...a component's URN
        "count": 3}  # SkipInternalKeys drops __defaults


def test_options_carry_protect_but_never_retain_on_delete(shipped_plans):
    plan = shipped_plans["prod"]
    [key] = [r for r in plan.resources if r.type == "gcp:kms/cryptoKey:CryptoKey"]
    assert key.options["retainOnDelete"] is True
    analyze, stack = analyzer_resources(plan)
    [sent] = [a for a in analyze if a.urn == key.urn]
    assert "retainOnDelete" not in proto.AnalyzerResourceOptions.DESCRIPTOR.fields_by_name
    assert sent.options.protect is key.options["protect"]
    [in_stack] = [s for s in stack if s.urn == key.urn]
    assert in_stack.parent == key.parent


def test_a_secret_output_reaches_stack_policies_wrapped_and_kubernetes_inputs_checked(shipped_plans):
    plan = shipped_plans["dev"]
    analyze, stack = analyzer_resources(plan)
    [root] = [s for s in stack if s.type == "pulumi:pulumi:Stack"]
    outputs = json_format.MessageToDict(root.properties)
    assert outputs["grafanaAdminPassword"][SIG] == SECRET_SIG and outputs["grafanaAdminPassword"]["value"]
    assert outputs["environment"] == "dev"
    [server] = [a for a in analyze if a.type == "kubernetes:apps/v1:Deployment" and a.name.endswith("-server")]
    # The provider's Check gives the object its generated name before the engine analyses it.
    assert json_format.MessageToDict(server.properties)["metadata"]["name"].startswith(server.name + "-")


def test_a_first_preview_hands_the_pack_unchecked_kubernetes_inputs_and_no_outputs(shipped_plans):
    preview = run_plan(shipped_plans["staging"].stack, render_charts=False, first_preview=True)
    analyze, stack = analyzer_resources(preview)
    [server] = [a for a in analyze if a.type == "kubernetes:apps/v1:Deployment" and a.name.endswith("-server")]
    assert "name" not in json_format.MessageToDict(server.properties)["metadata"]  # no generated name
    [server_outputs] = [s for s in stack if s.urn == server.urn]
    assert json_format.MessageToDict(server_outputs.properties) == {}
    [cluster] = [s for s in stack if s.type == "aws:eks/cluster:Cluster"]
    assert json_format.MessageToDict(cluster.properties)["endpoint"] == UNKNOWN_STRING


# --- seeded defects: the pack's process and the offline check agree ---------------------------------


def seeded(plan: Plan, change: Callable[[Registration], None], outputs: dict | None = None) -> Plan:
    """A copy of ``plan`` with ``change`` applied to every registration (its wire inputs, its outputs and
    the offline view alike) and ``outputs`` added to the stack's."""
    resources = []
    for r in plan.resources:
        copied = copy.deepcopy(r)
        change(copied)
        resources.append(copied)
    plan = replace(plan, resources=resources, releases=[],
                   stack_outputs_wire={**plan.stack_outputs_wire, **(outputs or {})},
                   outputs={**plan.outputs, **(outputs or {})})
    return plan


def offline(plan: Plan, name: str) -> list[tuple[str, str | None, str]]:
    policy = [p for p in POLICIES if p.name == name]
    return sorted((v.policy, v.urn, v.message) for v in run_on(policy_resources(plan), policy))


def test_a_runner_in_the_vpc_is_judged_by_the_pack_as_offline(pack, write_stack):
    """The pack's process gets numbers as a protobuf Struct holds them (443.0): a rule admitting the runner on 443
    counts there as offline, and one missing is found by both."""
    from tests.conftest import plan_with

    def in_vpc(config):
        config["neurodock:cloud"].pop("vpcCidr", None)
        config["neurodock:cloud"]["endpoint"] = {"public": False}
        config["neurodock:cloud"]["existingVpc"] = {"vpcId": "vpc-0a1b2c3d4e5f60718",
                                                    "privateSubnetIds": ["subnet-0a1b2c3d", "subnet-1a1b2c3d"]}
        config["neurodock:deploy"] = {"runsOn": ["self-hosted"], "inVpc": True, "privateCidrs": ["10.1.32.0/20"]}

    plan = plan_with(write_stack, "staging", in_vpc)
    assert [m for p, _, m in mandatory(stack_findings(pack, plan)) if p == "deploy-reaches-api"] == []
    assert offline(plan, "deploy-reaches-api") == []
    rule = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
    without = replace(plan, resources=[r for r in plan.resources if r.type != rule])
    found = [(p, m) for p, _, m in mandatory(stack_findings(pack, without)) if p == "deploy-reaches-api"]
    assert found == [(p, m) for p, _, m in offline(without, "deploy-reaches-api")]
    assert found and "admits the runner's ['10.1.32.0/20'] on port 443" in found[0][1]


def test_a_deploy_runner_outside_the_allow_list_is_refused_by_the_pack_as_offline(pack, shipped_plans):
    plan = shipped_plans["staging"]
    deploy = {**plan.outputs["deploy"], "egressCidrs": ["192.0.2.10/32"]}
    bad = seeded(plan, lambda r: None, {"deploy": deploy})
    found = mandatory(stack_findings(pack, bad))
    assert [(p, m) for p, _, m in found] == [(p, m) for p, _, m in offline(bad, "deploy-reaches-api")]
    assert "but the deploy runner's egress ['192.0.2.10/32'] is outside it" in found[0][2]


def _needs(gib: float):
    def change(r: Registration) -> None:
        labels = ((r.manifest or {}).get("metadata") or {}).get("labels") or {}
        if r.type == "kubernetes:apps/v1:Deployment" and labels.get("app.kubernetes.io/name") == "model-server":
            for props in (r.wire, r.state, r.inputs, r.manifest):
                props["metadata"]["annotations"]["neurodock.io/gpu-memory-need-gib"] = str(gib)
    return change


def test_a_model_too_big_for_its_gpus_is_refused_by_the_pack_as_offline(pack, shipped_plans):
    bad = seeded(shipped_plans["staging"], _needs(30.0))
    found = mandatory(stack_findings(pack, bad))
    assert found and found == offline(bad, "model-fits-gpu")
    assert "needs 30.0 GiB per GPU but pool 'gpu-l4' has nvidia-l4 GPUs" in found[0][2]
    assert mandatory(stack_findings(pack, seeded(shipped_plans["staging"], _needs(10.0)))) == []  # control


def _label(key: str, value: str):
    def change(r: Registration) -> None:
        if r.type == "aws:eks/nodeGroup:NodeGroup":
            for props in (r.wire, r.state, r.inputs):
                props["labels"] = {**props.get("labels", {}), key: value}
    return change


def test_an_aws_key_id_in_a_label_is_refused_by_the_pack_as_offline(pack, shipped_plans):
    bad = seeded(shipped_plans["staging"], _label("owner", "AKIAIOSFODNN7EXAMPL3"))
    found = mandatory(stack_findings(pack, bad))
    assert found and found == offline(bad, "no-plaintext-secrets")
    assert all("in plain text in labels 'owner'" in m for _, _, m in found)
    assert mandatory(stack_findings(pack, seeded(shipped_plans["staging"], _label("owner", "ml-platform")))) == []


def test_a_plaintext_password_output_is_refused_and_a_secret_one_passes(pack, shipped_plans):
    plan = shipped_plans["dev"]
    bad = seeded(plan, lambda r: None, {"adminPassword": "correct-horse-battery-staple"})
    found = mandatory(stack_findings(pack, bad))
    assert [m for _, _, m in found] == [m for _, _, m in offline(bad, "no-plaintext-secrets")] == [
        "Stack output 'adminPassword' is a secret in plain text; export it with pulumi.Output.secret(...)."]
    secret = seeded(plan, lambda r: None, {"adminPassword": {SIG: SECRET_SIG, "value": "correct-horse-battery"}})
    assert mandatory(stack_findings(pack, secret)) == []


def test_the_pack_process_applies_policy_config(shipped_plans):
    plan = seeded(shipped_plans["dev"], lambda r: None, {"grafanaLogin": "hunter2-hunter2"})
    with pack_process() as pack:
        pack.configure({"no-plaintext-secrets": PolicySettings(properties={"secretNamePattern": "login$"})})
        found = mandatory(stack_findings(pack, plan))
    assert [(p, m) for p, _, m in found] == [("no-plaintext-secrets", "Stack output 'grafanaLogin' is a secret in "
                                              "plain text; export it with pulumi.Output.secret(...).")]
