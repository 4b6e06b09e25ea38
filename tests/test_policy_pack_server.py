"""The policy pack as the Pulumi CLI runs it: a separate process started the way
``pulumi-analyzer-policy-python`` starts it (``python -u -m pulumi.policy ENGINE PACK_DIR``), asked
over the Analyzer gRPC protocol for its policies, configured, and handed resources to analyse.

This is the part of ``pulumi preview --policy-pack policies/neurodock`` that the CLI delegates to the
pack; only the CLI itself is missing here.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2, json_format, struct_pb2
from neurodock_policies import PACK_NAME, POLICIES
from pulumi.runtime import proto
from pulumi.runtime.proto import analyzer_pb2_grpc

from infra.check import policy_resources, run_on

PACK_DIR = Path(__file__).resolve().parents[1] / "policies" / "neurodock"
LEVELS = {proto.MANDATORY: "mandatory", proto.ADVISORY: "advisory", proto.DISABLED: "disabled"}


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    # The engine address is only used for logging, which these calls never reach.
    server = subprocess.Popen([sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", str(PACK_DIR)],
                              cwd=PACK_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = server.stdout.readline().strip()
        assert port.isdigit(), f"the pack did not start: {server.stderr.read() if server.poll() is not None else ''}"
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        server.kill()
        server.wait(timeout=30)


def struct(value: dict) -> struct_pb2.Struct:
    return json_format.ParseDict(value, struct_pb2.Struct())


def test_the_pack_process_announces_every_policy_with_its_level_and_config_schema(analyzer):
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == PACK_NAME
    served = {p.name: p for p in info.policies}
    assert list(served) == [p.name for p in POLICIES]
    for policy in POLICIES:
        assert LEVELS[served[policy.name].enforcementLevel] == policy.enforcement_level.value
        declared = policy.config_schema.properties if policy.config_schema else {}
        assert json_format.MessageToDict(served[policy.name].configSchema.properties) == declared


DESCRIPTIONS = {p.name: p.description for p in POLICIES}


def message(diagnostic) -> str:
    """The policy's own message: the SDK puts the policy's description and a newline before it."""
    prefix = DESCRIPTIONS[diagnostic.policyName] + "\n"
    assert diagnostic.message.startswith(prefix)
    return diagnostic.message.removeprefix(prefix)


def analyze(analyzer, resource) -> list[tuple[str, str]]:
    request = proto.AnalyzeRequest(type=resource.resource_type, properties=struct(resource.props),
                                   urn=resource.urn, name=resource.name)
    return sorted((d.policyName, message(d)) for d in analyzer.Analyze(request).diagnostics)


def test_the_pack_process_reports_a_resource_violation_as_neurodock_check_does(analyzer, shipped_plans):
    [proxy] = [r for r in copy.deepcopy(policy_resources(shipped_plans["dev"]))
               if r.resource_type == "kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyProxy"]
    assert analyze(analyzer, proxy) == []
    proxy.props["spec"]["provider"]["kubernetes"]["envoyService"]["type"] = "LoadBalancer"
    offline = sorted((v.policy, v.message) for v in run_on([proxy], POLICIES) if v.urn == proxy.urn)
    assert [policy for policy, _ in offline] == ["no-public-exposure"]
    assert analyze(analyzer, proxy) == offline


def test_the_pack_process_applies_policy_config_and_runs_stack_policies(analyzer, shipped_plans):
    resources = copy.deepcopy(policy_resources(shipped_plans["dev"]))
    stack = next(r for r in resources if r.resource_type == "pulumi:pulumi:Stack")
    stack.props["grafanaLogin"] = "hunter2-hunter2"
    analyzer.Configure(proto.ConfigureAnalyzerRequest(policyConfig={
        "no-plaintext-secrets": proto.PolicyConfig(enforcementLevel=proto.MANDATORY,
                                                   properties=struct({"secretNamePattern": "login$"}))}))
    request = proto.AnalyzeStackRequest(resources=[
        proto.AnalyzerResource(type=r.resource_type, properties=struct(r.props), urn=r.urn, name=r.name,
                               options=proto.AnalyzerResourceOptions(protect=r.opts.protect))
        for r in resources])
    found = [(d.policyName, d.urn, message(d)) for d in analyzer.AnalyzeStack(request).diagnostics
             if d.enforcementLevel == proto.MANDATORY]
    assert found == [("no-plaintext-secrets", stack.urn, "Stack output 'grafanaLogin' is a secret in plain text; "
                      "export it with pulumi.Output.secret(...).")]
