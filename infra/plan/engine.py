"""Run the stack program under mocks and collect what it registered."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import runpy
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import resource as pulumi_resource
from pulumi.runtime import rpc
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.proto import source_pb2
from pulumi.runtime.stack import massage, run_pulumi_func

import infra.plan
from infra import charts
from infra.bootstrap.config import BOOTSTRAP_CONFIG_NAMESPACE as BOOTSTRAP_PROJECT
from infra.bootstrap.config import parse_bootstrap_config
from infra.config import ConfigError, StackConfig, parse_config
from infra.plan.admission import Finding, admission_findings
from infra.plan.helm import ChartObject, MissingChart, RenderedRelease, RenderError, render_releases
from infra.plan.mocks import SECRET, UNKNOWN, PlanMocks, RecordingMonitor, Registration, wire_value
from infra.plan.serialize import with_plain_path
from infra.plan.stackfile import StackFile

PROGRAM_DIR = Path(__file__).resolve().parents[1]
"""``infra/``, the directory Pulumi.yaml's ``main`` names."""
BOOTSTRAP_DIR = PROGRAM_DIR / "bootstrap"
"""``infra/bootstrap/``: the state-backend project, with its own Pulumi.yaml and stacks."""
_planned_without_collector = False
"""Whether a plan ran in this process while its caller kept the cycle collector off (``run_plan``)."""


@dataclass(frozen=True)
class Plan:
    stack: StackFile
    config: Any
    """The validated config: a ``StackConfig``, or a ``BootstrapConfig`` for the bootstrap project."""
    resources: list[Registration]
    outputs: dict[str, Any]
    """Stack outputs, secrets as ``[secret]``, unknown values as ``[unknown]``."""
    warnings: list[str]
    """Warnings the program logged (``pulumi.log.warn``: an uncached chart among them), then one per
    value a rendered chart does not declare."""
    releases: list[RenderedRelease] = field(default_factory=list)
    """Each Helm release rendered from its cached chart, with the objects it installs."""
    missing_charts: list[MissingChart] = field(default_factory=list)
    """Releases whose chart is not cached: their objects are unknown to this plan."""
    stack_outputs_wire: dict[str, Any] = field(default_factory=dict, repr=False)
    """The stack's outputs as the SDK registered them: secrets wrapped with their values."""
    first_preview: bool = False
    """Planned as the first `pulumi preview` of a new stack sees it: computed outputs unknown."""
    saved_cost: dict[str, Any] | None = None
    """For a plan read back from `neurodock plan --json` (``infra.diff.saved_plan``): the cost section it
    recorded, priced with its own commit's config; None for a plan computed here."""

    @property
    def manifests(self) -> list[Registration]:
        return [r for r in self.resources if r.manifest is not None]

    @property
    def helm_releases(self) -> list[Registration]:
        return [r for r in self.resources if r.type == "kubernetes:helm.sh/v3:Release"]

    @property
    def chart_objects(self) -> list[ChartObject]:
        """Every object the Helm releases install, release by release."""
        return [o for release in self.releases for o in release.objects]


class ProgramError(Exception):
    """The program failed under mocks (exit code 1)."""


def validate(stack: StackFile) -> StackConfig:
    """The stack's configuration, validated (raises ``ConfigError``)."""
    if _is_bootstrap(stack):
        return parse_bootstrap_config(stack.config)
    return parse_config(stack.config, stack.secret_keys)


def _is_bootstrap(stack: StackFile) -> bool:
    """A stack of the state-backend project (infra/bootstrap) rather than of NeuroDock itself."""
    return stack.project == BOOTSTRAP_PROJECT


def run_plan(stack: StackFile, *, render_charts: bool = True, first_preview: bool = False) -> Plan:
    """Validate the stack's config, then run its project's program under mocks (``infra/__main__.py``,
    or ``infra/bootstrap/__main__.py`` for the bootstrap project), then render its Helm releases from
    the chart cache (unless ``render_charts`` is false).

    By default the mocks answer as an update does, every output known (the steady state a policy pack
    judges once the stack exists). With ``first_preview``, as the engine answers the first `pulumi
    preview` of a new stack: ids and provider-computed outputs unknown, and Kubernetes resources under
    a provider whose kubeconfig is not known yet unchecked and without outputs (``PlanMocks``).

    Configuration errors surface before the program starts, so nothing is ever half-registered.
    """
    # A plan allocates millions of objects that live until it ends (the SDK's types, the charts' objects)
    # and almost no garbage in cycles: the cycle collector found next to nothing to free, and its passes
    # over an ever larger heap took a fifth (dev) to a third (prod) of a plan, and 30% of one serving 41
    # models with a canary and a shadow each (12.5 s against 8.9 s without). It is off while the plan runs;
    # that plan's peak memory grew 7% (479 MB to 513 MB), dev's and prod's under 1%.
    # Where the caller keeps the collector off (the `neurodock` command, ``infra.cli.without_collector``), an
    # earlier plan's heap is only freed by collecting: done before the next plan, so that a command planning
    # several stacks holds one at a time.
    global _planned_without_collector
    collecting = gc.isenabled()
    if not collecting and _planned_without_collector:
        gc.collect()
    gc.disable()
    try:
        return _run_plan(stack, render_charts=render_charts, first_preview=first_preview)
    finally:
        if collecting:
            gc.enable()
        else:
            _planned_without_collector = True


def _run_plan(stack: StackFile, *, render_charts: bool, first_preview: bool) -> Plan:
    config = validate(stack)
    program = BOOTSTRAP_DIR if _is_bootstrap(stack) else PROGRAM_DIR
    mocks = PlanMocks(first_preview=first_preview)
    monitor = RecordingMonitor(mocks)
    log = _CollectingLogger()
    with mocked_sdk(stack, mocks, monitor, log, preview=first_preview) as loop:
        try:
            # The same call the Python language host makes for `main: infra/`.
            loop.run_until_complete(run_pulumi_func(lambda: runpy.run_path(str(program), run_name="__main__")))
        except charts.NotCached:
            raise
        except pulumi.RunError as exc:
            from infra.program import InvalidConfig  # the program's module, imported by now

            if isinstance(exc, InvalidConfig):  # what the running cloud showed: reported as any configuration error
                raise exc.error from None
            raise ProgramError(str(exc)) from None
        except pulumi.InputPropertiesError as exc:  # a component's inputs, named by property path
            raise ProgramError(str(exc)) from None
        root = pulumi_settings.get_root_resource()
        outputs = loop.run_until_complete(_resolve_outputs(getattr(root, "outputs", {}) or {}))
        stack_wire = loop.run_until_complete(_serialized_outputs(getattr(root, "outputs", {}) or {}))
    resources = tree_order(monitor.registrations)
    releases: list[RenderedRelease] = []
    missing: list[MissingChart] = []
    if render_charts:
        try:
            releases, missing = render_releases(resources)
        except RenderError as exc:
            raise ProgramError(f"Helm could not render a release: {exc}") from None
    # A chart missing from the cache is the program's own warning (infra/charts.py), as under `pulumi up`.
    warnings = [*log.warnings, *(w for r in releases for w in r.warnings())]
    if render_charts and not first_preview:
        findings = admitted(resources, releases)
        if failed := [f for f in findings if f.evaluated]:
            raise AdmissionError(failed)
        warnings += [str(f) for f in findings if not f.evaluated]
    return Plan(stack=stack, config=config, resources=resources, outputs=outputs, warnings=warnings,
                releases=releases, missing_charts=missing, stack_outputs_wire=stack_wire,
                first_preview=first_preview)


@contextlib.contextmanager
def mocked_sdk(stack: StackFile, mocks: pulumi.runtime.Mocks, monitor: MockMonitor, log: logging.Logger, *,
               preview: bool) -> Iterator[asyncio.AbstractEventLoop]:
    """The Pulumi SDK set up as the language host sets it up for ``stack``, with ``monitor`` in the engine's
    place: a fresh event loop to run a program on, the stack's config, and its root stack resource."""
    loop = asyncio.new_event_loop()
    stack_trace = pulumi_resource._get_stack_trace
    serialize_property = rpc.serialize_property
    try:
        asyncio.set_event_loop(loop)
        infra.plan._offline = True
        # The SDK sends each resource's source position (the user's stack frames, each with its source line
        # read) to the engine, which keeps it for error messages. The recording monitor reads none, and
        # reading them was a fifth of each registration's time.
        pulumi_resource._get_stack_trace = source_pb2.StackTrace
        # The SDK awaits a coroutine per value of an input, however deep: plain values go the synchronous way.
        rpc.serialize_property = with_plain_path(serialize_property)
        pulumi_settings.ROOT.set(None)
        pulumi.runtime.set_all_config(dict(stack.config), sorted(stack.secret_keys))
        pulumi.runtime.set_mocks(mocks, project=stack.project, stack=stack.stack, preview=preview,
                                 monitor=monitor, logger=log)
        yield loop
    finally:
        infra.plan._offline = False
        pulumi_resource._get_stack_trace = stack_trace
        rpc.serialize_property = serialize_property
        pulumi_settings.ROOT.set(None)
        loop.close()
        asyncio.set_event_loop(None)


class AdmissionError(ProgramError):
    """Objects the API server would refuse on create: their CRD's CEL rules or a ValidatingAdmissionPolicy
    of the stack (``infra.plan.admission``)."""

    def __init__(self, findings: list[Finding]):
        self.findings = findings
        super().__init__("the API server would refuse these objects on create:\n" +
                         "\n".join(f"  {f}" for f in findings))


def admitted(resources: list[Registration], releases: list[RenderedRelease]) -> list[Finding]:
    """What admission would refuse or cannot judge offline among the plan's objects, NeuroDock's own and its
    charts'. Only the CRDs of the API groups the objects use are read (a chart's CRDs are parsed lazily)."""
    objects = [r.manifest for r in resources if r.manifest is not None]
    objects += [o.manifest for release in releases for o in release.objects if o.kind != "CustomResourceDefinition"]
    groups = {str(o.get("apiVersion", "")).rpartition("/")[0] for o in objects}
    objects += [o.manifest for release in releases for o in release.objects
                if o.kind == "CustomResourceDefinition" and o.object_name.split(".", 1)[-1] in groups]
    return admission_findings(objects)


class _CollectingLogger(logging.Logger):
    """Receives the program's diagnostics (the mock engine logs them) and keeps the warnings."""

    def __init__(self) -> None:
        super().__init__("neurodock.plan", level=logging.INFO)
        self.propagate = False
        self.warnings: list[str] = []

    def warning(self, msg, *args, **kwargs) -> None:  # type: ignore[override]
        self.warnings.append(str(msg))

    def error(self, msg, *args, **kwargs) -> None:  # type: ignore[override]
        self.warnings.append(f"error: {msg}")


def tree_order(registrations: list[Registration]) -> list[Registration]:
    """Parents before children, siblings by URN: registration order depends on the event loop's
    scheduling, this order only on the program."""
    children: dict[str | None, list[Registration]] = {}
    urns = {r.urn for r in registrations}
    for r in registrations:
        children.setdefault(r.parent if r.parent in urns else None, []).append(r)
    ordered: list[Registration] = []
    stack = sorted(children.get(None, []), key=lambda r: r.urn, reverse=True)
    while stack:
        node = stack.pop()
        ordered.append(node)
        stack.extend(sorted(children.get(node.urn, []), key=lambda r: r.urn, reverse=True))
    return ordered


async def _serialized_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    """The stack's outputs as the SDK registers them with the engine (``Stack._finish``: ``massage``, then
    ``serialize_properties``). ``set_mocks`` registered its root stack's outputs before the program ran,
    so the monitor never sees these."""
    struct = await rpc.serialize_properties(massage(outputs, []), {})
    return {k: wire_value(v) for k, v in struct.fields.items()}


async def _resolve_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    resolved = {}
    for name, value in sorted(outputs.items()):
        output = pulumi.Output.from_input(value)
        if await output.is_secret():
            resolved[name] = SECRET
        elif not await output.is_known():
            resolved[name] = UNKNOWN
        else:
            resolved[name] = await output.future()
    return resolved


__all__ = ["ConfigError", "Plan", "ProgramError", "run_plan", "validate"]
