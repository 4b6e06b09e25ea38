"""``neurodock check``: the policy pack on an offline plan, as `pulumi preview --policy-pack` runs it, and what
only an offline plan can check besides.

Three passes, no credentials and no Pulumi CLI:

1. CrossGuard, as the engine runs it (``infra.crossguard``): the pack's own process over gRPC, handed every
   resource as the engine marshals it, on the stack as it stands once created (every output known). Its
   verdicts are those of `pulumi preview --policy-pack` on an existing stack.
2. A first preview: the same, on the plan of a new stack's first `pulumi preview` (provider-computed
   outputs unknown, Kubernetes resources under a kubeconfig not known yet unchecked). What a mandatory policy
   reports in pass 1 but not here, a first `pulumi up` only learns while it creates the stack.
3. Offline only (``policy_resources``, in process): what CrossGuard is never shown, the objects each Helm
   release installs, and what it is never told, each resource's ``retainOnDelete``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jsonschema
from neurodock_policies.support import plain
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.policy import _NotApplicableError

from components.cluster.base import pool_resource_name
from infra.config import StackConfig, key_path
from infra.plan.engine import Plan

STACK_TYPE = "pulumi:pulumi:Stack"
LEVELS = {level.value: level for level in EnforcementLevel}
SECTIONS: dict[str, tuple[str, ...]] = {
    # Components made from one section of the stack config (infra/program.py, infra/gateway.py), and
    # so is all they contain. The catalog's shared pieces (KEDA, the weights bucket) and the GPU agents
    # serve every model or pool alike: no one key made them, and they name none.
    "neurodock:cluster:EksCluster": ("cloud",),
    "neurodock:cluster:GkeCluster": ("cloud",),
    "neurodock:cluster:KindCluster": ("cloud",),
    "neurodock:cluster:EksAddons": ("cloud",),
    "neurodock:monitoring:MonitoringStack": ("monitoring",),
    "neurodock:monitoring:AlertRules": ("monitoring",),
    "neurodock:gateway:ModelGateway": ("gateway",),
    "neurodock:gateway:SmokeTest": ("gateway", "smokeTest"),
}
SERVED_MODEL = "neurodock:serving:ServedModel"
"""Named after its model's ``name`` (components/serving/catalog.py)."""
POOL_TYPES = frozenset({"aws:eks/nodeGroup:NodeGroup", "aws:ec2/launchTemplate:LaunchTemplate",
                        "gcp:container/nodePool:NodePool", "aws:autoscaling/tag:Tag"})
"""A cluster component's resources of one node pool, named by ``pool_resource_name``."""


class PolicyConfigError(Exception):
    """A policy config file that does not fit the pack; ``problems`` name each key and its fix."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class PolicySettings:
    """One policy's settings from a policy config file: its level and its config properties."""

    level: EnforcementLevel | None = None
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ConfigKey:
    """The stack-config key a resource came from."""

    path: tuple[str | int, ...]
    """``("models", 1, "canary")``, ``("nodePools", 0)``, ``("cloud",)``."""
    entry: str | None = None
    """The ``name`` of the model or node pool the key is an entry of."""

    @property
    def key(self) -> str:
        """As written in the stack file: ``neurodock:models[1].canary``."""
        return key_path(self.path)

    def __str__(self) -> str:
        return f"{self.key} ({self.entry})" if self.entry else self.key


PASSES = {
    "crossguard": "CrossGuard (as `pulumi preview --policy-pack` runs the pack)",
    "offline": "offline only (Helm releases' objects and retainOnDelete, which CrossGuard is not shown)",
}


@dataclass(frozen=True)
class Violation:
    policy: str
    enforcement: str
    """``mandatory`` or ``advisory``."""
    urn: str | None
    message: str
    config: ConfigKey | None = None
    """The config key that produced the resource, where one did (``config_keys``)."""
    found_by: str = "offline"
    """The pass that reported it: ``crossguard`` (the pack's process) or ``offline``."""

    def to_json(self) -> dict[str, Any]:
        return {"policy": self.policy, "enforcement": self.enforcement, "urn": self.urn, "message": self.message,
                "configKey": self.config.key if self.config else None, "foundBy": self.found_by}


@dataclass(frozen=True)
class PreviewGap:
    """A mandatory policy that a first `pulumi preview` of a new stack cannot apply in full."""

    policy: str
    urn: str | None
    why: str

    def to_json(self) -> dict[str, Any]:
        return {"policy": self.policy, "urn": self.urn, "why": self.why}


@dataclass(frozen=True)
class CheckReport:
    violations: list[Violation]
    """Pass 1 (CrossGuard) and pass 3 (offline only), each with the config key of its resource."""
    not_applicable: dict[str, str]
    """Policies the pack reported as not applicable, with its reason (pass 1)."""
    preview_gaps: list[PreviewGap]
    """Pass 2: what a first preview would not enforce."""

    @property
    def mandatory(self) -> list[Violation]:
        return [v for v in self.violations if v.enforcement == "mandatory"]


def config_keys(plan: Plan) -> dict[str, ConfigKey]:
    """URN -> the config key its resource came from, for each resource (and chart object) that has one.

    A resource takes its nearest ancestor's key, made precise on the way down: a ``ServedModel`` is
    ``models[i]`` (the model of its name), and its children of a canary or shadow ``models[i].canary``
    (the child's name starts with the variant's resource-name prefix); a cluster's node group, node
    pool, launch template or ASG tag is ``nodePools[i]``, the rest of it ``cloud``. Components
    of one section (``SECTIONS``) are that section.
    """
    config = plan.config
    if not isinstance(config, StackConfig):  # a bootstrap stack: no such keys
        return {}
    by_urn = {r.urn: r for r in plan.resources}
    models = {m.name: i for i, m in enumerate(config.models)}
    out: dict[str, ConfigKey] = {}
    for r in plan.resources:  # parents first
        parent = by_urn.get(r.parent or "")
        key = out.get(r.parent or "")
        if r.type in SECTIONS:
            key = ConfigKey(SECTIONS[r.type])
        elif r.type == SERVED_MODEL and r.name in models:
            key = ConfigKey(("models", models[r.name]), r.name)
        elif key and parent and parent.type == SERVED_MODEL:
            key = _variant(key, r.name, config)
        elif key and parent and key.path == ("cloud",) and r.type in POOL_TYPES:
            key = _pool(key, parent.name, r.name, config)
        if key:
            out[r.urn] = key
    for o in plan.chart_objects:
        if key := out.get(o.release_urn):
            out[o.urn] = key
    return out


def _variant(model_key: ConfigKey, name: str, config: StackConfig) -> ConfigKey:
    """``models[i].canary`` or ``.shadow`` for a ServedModel's child named after that version."""
    model = config.models[int(model_key.path[1])]
    # Every child is named ``<version name>`` or ``<version name>-<role>``; the stable version's name
    # (the model's) prefixes the variants', so the longest match is the version.
    owner = max((v for v in model.versions() if name == v.name or name.startswith(v.name + "-")),
                key=lambda v: len(v.name), default=None)
    if owner is None or owner.key == "stable":
        return model_key
    return replace(model_key, path=(*model_key.path, owner.key))


def _pool(cloud_key: ConfigKey, component: str, name: str, config: StackConfig) -> ConfigKey:
    """``nodePools[i]`` for a cluster component's resource of pool i, else the cluster's own key."""
    matches = [(i, pool.name) for i, pool in enumerate(config.node_pools)
               if name == pool_resource_name(component, pool.name)
               or name.startswith(pool_resource_name(component, pool.name) + "-")]
    if not matches:
        return cloud_key
    # Pools "gpu" and "gpu-l4": "cluster-gpu-l4-asg-..." is gpu-l4's, the longer name.
    i, pool = max(matches, key=lambda m: len(m[1]))
    return ConfigKey(("nodePools", i), pool)


def _no_options(parent: str | None = None) -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], parent=parent)


def policy_resources(plan: Plan) -> list[PolicyResource]:
    """The plan's resources as CrossGuard shows them to policies, the stack's outputs included, and
    each object the Helm releases install, as a child of its release.

    Under ``pulumi preview --policy-pack`` CrossGuard sees a release as one resource; only this offline
    check sees what it installs, rendered by Helm from the cached chart.
    """
    out = []
    # Each resource's provider with its inputs (a region, a project), as the engine hands them to the pack
    # (AnalyzerProviderResource): the budget policy prices an EKS pool in its provider's region.
    providers = {r.urn: PolicyProviderResource(r.type, plain(r.inputs), r.urn, r.name) for r in plan.resources
                 if r.type.startswith("pulumi:providers:")}
    for r in plan.resources:
        if r.type.startswith("pulumi:providers:") or r.type == STACK_TYPE:
            continue
        options = PolicyResourceOptions(
            protect=bool(r.options.get("protect")),
            ignore_changes=list(r.options.get("ignoreChanges") or []),
            delete_before_replace=r.options.get("deleteBeforeReplace"),
            aliases=[],
            custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
            additional_secret_outputs=[],
            parent=r.parent,
        )
        # CrossGuard does not show retainOnDelete; the offline plan knows it.
        options.retain_on_delete = bool(r.options.get("retainOnDelete"))
        # Kubernetes objects as the provider checks them: with the names it generates.
        props = r.manifest if r.manifest is not None else r.inputs
        out.append(PolicyResource(r.type, plain(props), r.urn, r.name, options, providers.get(r.provider or ""), None,
                                  [], {}))
    for o in plan.chart_objects:
        out.append(PolicyResource(o.type, plain(o.manifest), o.urn, o.name, _no_options(o.release_urn), None, None,
                                  [], {}))
    stack_name = f"{plan.stack.project}-{plan.stack.stack}"
    stack_urn = f"urn:pulumi:{plan.stack.stack}::{plan.stack.project}::{STACK_TYPE}::{stack_name}"
    out.append(PolicyResource(STACK_TYPE, dict(plan.outputs), stack_urn, stack_name, _no_options(), None, None, [], {}))
    return out


def load_policy_config(path: Path, policies: list) -> dict[str, PolicySettings]:
    """Read a policy config file in the format of ``pulumi preview --policy-pack-config``.

    ``{"all": "advisory", "policy-name": "disabled", "other": {"enforcementLevel": "mandatory",
    "someProperty": 1}}``: levels apply to every policy (``all``) or one, and properties are checked
    against the policy's config schema, so a typo fails here rather than being silently ignored.
    """
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PolicyConfigError([f"{path}: cannot read it as JSON ({exc}); pass a JSON object file."]) from None
    if not isinstance(document, dict):
        raise PolicyConfigError([f"{path}: must be a JSON object of policy names to settings."])
    by_name = {p.name: p for p in policies}
    problems: list[str] = []
    settings: dict[str, PolicySettings] = {}
    for key, value in document.items():
        if key != "all" and key not in by_name:
            problems.append(f"{key}: no such policy in the pack; use 'all' or one of: {', '.join(by_name)}.")
            continue
        raw = value if isinstance(value, Mapping) else {"enforcementLevel": value}
        level_name = raw.get("enforcementLevel")
        if level_name is not None and level_name not in LEVELS:
            problems.append(f"{key}.enforcementLevel: '{level_name}' is not a level; use one of: "
                            f"{', '.join(LEVELS)}.")
            continue
        properties = {k: v for k, v in raw.items() if k != "enforcementLevel"}
        if key == "all" and properties:
            problems.append("all: takes only an enforcement level; set properties under a policy's name.")
            continue
        if key != "all":
            problems += _schema_problems(key, by_name[key], properties)
        settings[key] = PolicySettings(LEVELS.get(level_name) if level_name else None, properties)
    if problems:
        raise PolicyConfigError(problems)
    return settings


def _schema_problems(name: str, policy, properties: dict[str, Any]) -> list[str]:
    declared = getattr(getattr(policy, "config_schema", None), "properties", None) or {}
    schema = {"type": "object", "properties": declared, "additionalProperties": False}
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    problems = []
    for error in sorted(validator.iter_errors(properties), key=lambda e: list(e.path)):
        where = ".".join([name, *(str(p) for p in error.path)])
        if error.validator == "additionalProperties":
            known_keys = ", ".join(declared) or "none"
            problems.append(f"{where}: {error.message}; this policy's properties: {known_keys}.")
        else:
            problems.append(f"{where}: {error.message}; see the policy's config schema in policies/README.md.")
    return problems


def run_policies(plan: Plan, policies: list, settings: Mapping[str, PolicySettings] | None = None) -> list[Violation]:
    """Every violation the policies report on the plan when run in process (pass 3's way), each with the
    config key of its resource."""
    keys = config_keys(plan)
    return [replace(v, config=keys.get(v.urn or "")) for v in run_on(policy_resources(plan), policies, settings)]


def check(plan: Plan, first_preview: Callable[[], Plan], policies: list,
          settings: Mapping[str, PolicySettings] | None = None) -> CheckReport:
    """The three passes (module docstring) on ``plan``; ``first_preview`` plans the stack as a first
    preview, when pass 2 needs it."""
    from infra.crossguard import analyzer_resources, pack_process

    settings = settings or {}
    keys = config_keys(plan)
    with pack_process() as pack:
        pack.configure(settings)
        analyze, stack = analyzer_resources(plan)
        found = pack.analyze(analyze) + pack.analyze_stack(stack)
        not_applicable = dict(pack.not_applicable)
        preview = first_preview()
        analyze, stack = analyzer_resources(preview)
        preview_found = pack.analyze(analyze) + pack.analyze_stack(stack)
    crossguard = [Violation(d.policy, d.enforcement, d.urn, d.message, keys.get(d.urn or ""), "crossguard")
                  for d in found]
    seen = {(v.policy, v.urn, v.message) for v in crossguard}
    # Offline only: resource policies on what CrossGuard never sees, stack policies on all of it.
    everything = policy_resources(plan)
    charts = [r for r in everything if r.urn in {o.urn for o in plan.chart_objects}]
    offline_found = [*run_on(charts, [p for p in policies if isinstance(p, ResourceValidationPolicy)], settings),
                     *run_on(everything, [p for p in policies if isinstance(p, StackValidationPolicy)], settings)]
    offline = [replace(v, config=keys.get(v.urn or ""), found_by="offline")
               for v in offline_found if (v.policy, v.urn, v.message) not in seen]
    gaps = [PreviewGap(d.policy, d.urn, d.message) for d in preview_found if d.preview_downgrade
            and _level(policies, d.policy, settings) is EnforcementLevel.MANDATORY]
    in_preview = {(d.policy, d.urn) for d in preview_found}
    gaps += [PreviewGap(v.policy, v.urn, "a first preview does not see this violation: the values it depends on "
                        "are only known once the resources exist, so a first `pulumi up` would stop at it mid-way; "
                        "fix it before the first deploy")
             for v in crossguard if v.enforcement == "mandatory" and (v.policy, v.urn) not in in_preview]
    return CheckReport([*crossguard, *offline], not_applicable, gaps)


def _level(policies: list, name: str, settings: Mapping[str, PolicySettings]) -> EnforcementLevel:
    policy = next(p for p in policies if p.name == name)
    own, everyone = settings.get(name, PolicySettings()), settings.get("all", PolicySettings())
    level = own.level or everyone.level or policy.enforcement_level or EnforcementLevel.ADVISORY
    return EnforcementLevel.MANDATORY if level is EnforcementLevel.REMEDIATE else level


def run_on(resources: list[PolicyResource], policies: list,
           settings: Mapping[str, PolicySettings] | None = None) -> list[Violation]:
    """Every violation the policies report on these resources, in policy order.

    Levels resolve as in the Pulumi engine: a policy's own setting, else ``all``, else the level the
    policy declares. Properties are the schema's defaults overlaid with the configured ones.
    """
    settings = settings or {}
    found: list[Violation] = []

    def reporter(policy, level: EnforcementLevel, default_urn: str | None):
        def report(message: str, urn: str | None = None) -> None:
            found.append(Violation(policy.name, level.value, urn or default_urn, message))
        return report

    everyone = settings.get("all", PolicySettings())
    for policy in policies:
        own = settings.get(policy.name, PolicySettings())
        level = own.level or everyone.level or policy.enforcement_level or EnforcementLevel.ADVISORY
        if level is EnforcementLevel.REMEDIATE:  # nothing in the pack remediates; the engine reports it so
            level = EnforcementLevel.MANDATORY
        if level is EnforcementLevel.DISABLED:
            continue
        # The policy fills in its schema's defaults, as it does under the engine.
        config = dict(own.properties)
        try:
            if isinstance(policy, StackValidationPolicy):
                policy.validate(StackValidationArgs(resources, config), reporter(policy, level, None))
            elif isinstance(policy, ResourceValidationPolicy):
                for r in resources:
                    args = ResourceValidationArgs(r.resource_type, r.props, r.urn, r.name, r.opts, None, config)
                    policy.validate(args, reporter(policy, level, r.urn))
        except _NotApplicableError:
            continue  # offline, every policy sees all it needs: only the pack's process says this
    return found
