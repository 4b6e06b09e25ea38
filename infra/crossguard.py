"""The policy pack as `pulumi preview --policy-pack policies/neurodock` runs it: its own process, asked over
the Analyzer gRPC protocol, and handed each resource as the engine marshals it.

The pack is started as the CLI's ``pulumi-analyzer-policy-python`` starts it (``python -u -m pulumi.policy
ENGINE PACK_DIR``: it prints its port), configured with the policy config (``Configure``), asked for each
resource (``Analyze``, the resource's checked inputs) and then for the whole stack (``AnalyzeStack``, every
resource's outputs, the stack's own among them). What the engine sends is what this module sends, each rule
from the engine's source (pulumi ``pkg/resource/deploy/step_generator.go``, ``continueStepsFromImport`` and
``AnalyzeResources``; ``pkg/resource/plugin/analyzer_plugin.go``, ``Analyze``, ``AnalyzeStack`` and
``marshalResourceOptions``; ``sdk/go/common/resource/plugin/rpc.go``, ``MarshalPropertyValue``; read at
pulumi 3.259, the engine the pinned 3.272 SDK speaks to):

- properties marshalled with ``KeepUnknowns``, ``KeepSecrets`` and ``SkipInternalKeys``: a secret stays
  wrapped with its value (pulumi-policy unwraps it; the pack keeps a mark on it, ``neurodock_policies.secrets``),
  an unknown is the unknown string sentinel, a known output value is its value, a resource reference its id
  (or URN, for a component), and keys starting ``__`` are left out;
- ``Analyze`` gets the provider's checked inputs: a Kubernetes object with its generated name, except where
  the provider's configuration is unknown, when the engine passes the program's inputs unchecked;
- ``AnalyzeStack`` gets outputs: where a first preview knows none (an unconfigured provider's resources),
  an empty map;
- options: protect, ignoreChanges, deleteBeforeReplace (and whether it was set), aliases, custom timeouts,
  additional secret outputs and the parent. Never ``retainOnDelete``: the protocol has no field for it.

The Helm releases' rendered objects are never shown to CrossGuard (it sees a release as one resource):
``neurodock check`` judges them apart, in process, as offline-only findings.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime import proto
from pulumi.runtime.proto import analyzer_pb2_grpc
from pulumi.runtime.rpc import UNKNOWN as UNKNOWN_MARKER

from infra.plan.engine import Plan
from infra.plan.mocks import Registration, is_k8s_object, k8s_checked

PACK_DIR = Path(__file__).resolve().parents[1] / "policies" / "neurodock"
STACK_TYPE = "pulumi:pulumi:Stack"

# Signatures of the wire format's special values (pulumi sdk/go/common/resource/properties.go).
SIG = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
OUTPUT_SIG = "d0e6a833031e9bbcd3f4e8bde6ca49a4"
UNKNOWN_STRING = UNKNOWN_MARKER
"""``UnknownStringValue``: what the engine sends for an unknown of no known type (the SDK's unknowns)."""
LEVELS = {proto.MANDATORY: "mandatory", proto.ADVISORY: "advisory", proto.DISABLED: "disabled",
          proto.REMEDIATE: "mandatory"}
PREVIEW_DOWNGRADE = "during preview: "
"""pulumi-policy's message when a policy read an unknown value (``UnknownValueError``): it reports the
policy as advisory for that run, whatever its level (pulumi_policy/policy.py, ``Analyze``)."""


def engine_value(value: Any) -> Any:
    """A value the SDK sent (as ``RecordingMonitor`` recorded it) as the engine sends it to analyzers."""
    if isinstance(value, dict):
        sig = value.get(SIG)
        if sig == SECRET_SIG:
            return {SIG: SECRET_SIG, "value": engine_value(value.get("value"))}
        if sig == RESOURCE_SIG:
            return value.get("id") or value.get("urn")
        if sig == OUTPUT_SIG:
            inner = engine_value(value["value"]) if "value" in value else UNKNOWN_STRING
            return {SIG: SECRET_SIG, "value": inner} if value.get("secret") else inner
        return {k: engine_value(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [engine_value(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _secret_paths(value: Any, path: tuple = ()) -> Iterator[tuple]:
    """The paths at which ``value`` (in wire format) holds a secret."""
    if isinstance(value, dict):
        if value.get(SIG) == SECRET_SIG or (value.get(SIG) == OUTPUT_SIG and value.get("secret")):
            yield path
            return
        for k, v in value.items():
            yield from _secret_paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _secret_paths(v, (*path, i))


def _wrap_secret(state: Any, path: tuple) -> Any:
    """``state`` with the value at ``path`` wrapped as a secret, where it exists."""
    if not path:
        if isinstance(state, dict) and state.get(SIG) == SECRET_SIG:
            return state
        return {SIG: SECRET_SIG, "value": state}
    head, *rest = path
    if isinstance(state, dict) and head in state:
        return {**state, head: _wrap_secret(state[head], tuple(rest))}
    if isinstance(state, list) and isinstance(head, int) and head < len(state):
        return [*state[:head], _wrap_secret(state[head], tuple(rest)), *state[head + 1:]]
    return state


def outputs_of(r: Registration) -> dict[str, Any]:
    """A resource's outputs as the engine keeps them: what its provider returned, with the secrets of its
    inputs still secret where the same property comes back, and its additional secret outputs made secret
    (the engine's rule for outputs, pulumi ``pkg/resource/deploy/step_executor.go``)."""
    state: Any = r.state or {}
    for path in _secret_paths(r.wire):
        state = _wrap_secret(state, path)
    for key in r.additional_secret_outputs:
        state = _wrap_secret(state, (key,))
    return engine_value(state)


def checked_inputs(r: Registration, configured: bool) -> dict[str, Any]:
    """What the provider's ``Check`` returns for a resource, which the engine hands ``Analyze``."""
    wire = engine_value(r.wire)
    if r.custom and is_k8s_object(r.type) and configured:
        return k8s_checked(r.type, r.name, wire)
    return wire


def _struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    return json_format.ParseDict(value, struct_pb2.Struct())


@dataclass(frozen=True)
class Diagnostic:
    """One violation the pack's process reported."""

    policy: str
    enforcement: str
    urn: str | None
    message: str
    """The policy's own message (the pack puts the policy's description and a newline before it)."""

    @property
    def preview_downgrade(self) -> bool:
        """The policy read an unknown value, so pulumi-policy reported it as advisory for this run."""
        return self.message.startswith("can't run policy") and PREVIEW_DOWNGRADE in self.message


class Pack:
    """The policy pack's own process, over its Analyzer gRPC API."""

    def __init__(self, stub: analyzer_pb2_grpc.AnalyzerStub):
        self._stub = stub
        info = stub.GetAnalyzerInfo(empty_pb2.Empty())
        self.name = info.name
        self.policies = {p.name: p for p in info.policies}
        self.not_applicable: dict[str, str] = {}
        """Policies that reported themselves not applicable, with the reason, over every call so far."""

    def configure(self, settings: Mapping[str, Any]) -> None:
        """Set the policy config, as ``pulumi preview --policy-pack-config`` does: the engine resolves
        ``all`` and each policy's own level and hands every policy its settings."""
        config = {}
        everyone = settings.get("all")
        for name, policy in self.policies.items():
            own = settings.get(name)
            level = (own.level if own and own.level else everyone.level if everyone and everyone.level else None)
            level_value = {"advisory": proto.ADVISORY, "mandatory": proto.MANDATORY, "disabled": proto.DISABLED,
                           "remediate": proto.REMEDIATE}[level.value] if level else policy.enforcementLevel
            config[name] = proto.PolicyConfig(enforcementLevel=level_value,
                                              properties=_struct(own.properties if own else {}))
        self._stub.Configure(proto.ConfigureAnalyzerRequest(policyConfig=config))

    def _diagnostics(self, response, default_urn: str | None) -> list[Diagnostic]:
        for skipped in response.not_applicable:
            self.not_applicable.setdefault(skipped.policy_name, skipped.reason)
        out = []
        for d in response.diagnostics:
            description = self.policies[d.policyName].description if d.policyName in self.policies else ""
            message = d.message.removeprefix(description + "\n") if description else d.message
            out.append(Diagnostic(d.policyName, LEVELS.get(d.enforcementLevel, "advisory"), d.urn or default_urn,
                                  message))
        return out

    def analyze(self, resources: list[proto.AnalyzerResource]) -> list[Diagnostic]:
        """``Analyze`` each resource, then ``AnalyzeStack`` them all, as the engine does in a preview."""
        return [d for r in resources for d in self.analyze_one(r)]

    def analyze_one(self, r: proto.AnalyzerResource) -> list[Diagnostic]:
        request = proto.AnalyzeRequest(type=r.type, properties=r.properties, urn=r.urn, name=r.name,
                                       options=r.options, provider=r.provider if r.HasField("provider") else None)
        return self._diagnostics(self._stub.Analyze(request), r.urn)

    def analyze_stack(self, resources: list[proto.AnalyzerResource]) -> list[Diagnostic]:
        return self._diagnostics(self._stub.AnalyzeStack(proto.AnalyzeStackRequest(resources=resources)), None)


@contextmanager
def pack_process(pack_dir: Path = PACK_DIR) -> Iterator[Pack]:
    """The pack's process, started as the Pulumi CLI starts a Python policy pack, for as long as the block
    runs. The engine address it is given is only used for logs, which these calls never send."""
    server = subprocess.Popen([sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", str(pack_dir)],
                              cwd=pack_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = server.stdout.readline().strip() if server.stdout else ""
        if not port.isdigit():
            error = server.stderr.read() if server.stderr and server.poll() is not None else ""
            raise RuntimeError(f"the policy pack in {pack_dir} did not start: {error.strip() or 'no port printed'}")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
            yield Pack(analyzer_pb2_grpc.AnalyzerStub(channel))
    finally:
        server.kill()
        server.wait(timeout=30)


def analyzer_resources(plan: Plan) -> tuple[list[proto.AnalyzerResource], list[proto.AnalyzerResource]]:
    """The plan's resources as the engine hands them to ``Analyze`` (checked inputs) and to ``AnalyzeStack``
    (outputs), the stack itself among them."""
    by_urn = {r.urn: r for r in plan.resources}
    configured = {r.urn: not (plan.first_preview and UNKNOWN_MARKER in _flat(r.wire))
                  for r in plan.resources if r.type.startswith("pulumi:providers:")}
    analyze, stack = [], []
    for r in plan.resources:
        provider_urn = r.provider  # the registration keeps its provider's URN (the reference without its id)
        provider = by_urn.get(provider_urn or "")
        provider_proto = proto.AnalyzerProviderResource(
            urn=provider.urn, type=provider.type, name=provider.name,
            properties=_struct(engine_value(provider.wire))) if provider else None
        options = _options(r)
        common = {"urn": r.urn, "type": r.type, "name": r.name, "options": options}
        if provider_proto is not None:
            common["provider"] = provider_proto
        inputs = checked_inputs(r, configured.get(provider_urn or "", True))
        analyze.append(proto.AnalyzerResource(properties=_struct(inputs), **common))
        outputs = plan_stack_outputs(plan) if r.type == STACK_TYPE else \
            (outputs_of(r) if r.custom else engine_value(r.wire))
        stack.append(proto.AnalyzerResource(
            properties=_struct(outputs), parent=r.parent or "", dependencies=r.dependencies,
            propertyDependencies={k: proto.AnalyzerPropertyDependencies(urns=v)
                                  for k, v in r.property_dependencies.items() if v}, **common))
    return analyze, stack


def plan_stack_outputs(plan: Plan) -> dict[str, Any]:
    return engine_value(plan.stack_outputs_wire)


def _options(r: Registration) -> proto.AnalyzerResourceOptions:
    timeouts = r.options.get("customTimeouts") or {}
    dbr = r.options.get("deleteBeforeReplace")
    return proto.AnalyzerResourceOptions(
        protect=bool(r.options.get("protect")), ignoreChanges=list(r.options.get("ignoreChanges") or []),
        deleteBeforeReplace=bool(dbr), deleteBeforeReplaceDefined=bool(dbr),
        additionalSecretOutputs=r.additional_secret_outputs, aliases=list(r.aliases),
        customTimeouts=proto.AnalyzerResourceOptions.CustomTimeouts(
            create=_seconds(timeouts.get("create")), update=_seconds(timeouts.get("update")),
            delete=_seconds(timeouts.get("delete"))),
        parent=r.parent or "")


def _seconds(duration: str | None) -> float:
    """A Go duration the SDK sends (``10m``, ``1h30m0s``) in seconds, as the engine keeps custom timeouts."""
    if not duration:
        return 0.0
    import re

    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * units[u] for n, u in re.findall(r"([0-9.]+)(ms|h|m|s)", duration))


def _flat(value: Any) -> str:
    import json

    return json.dumps(value)
