"""``neurodock check``: the policy pack's own policies, run in process on an offline plan.

Each registered resource becomes what CrossGuard hands a policy: its type, inputs, URN, name and
options (resource validations), and the whole list (stack validations). The stack's outputs are
one more resource, ``pulumi:pulumi:Stack``, as in the engine. No credentials, no Pulumi CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra.plan.engine import Plan

STACK_TYPE = "pulumi:pulumi:Stack"


@dataclass(frozen=True)
class Violation:
    policy: str
    enforcement: str
    """``mandatory`` or ``advisory``."""
    urn: str | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"policy": self.policy, "enforcement": self.enforcement, "urn": self.urn, "message": self.message}


def policy_resources(plan: Plan) -> list[PolicyResource]:
    """The plan's resources as CrossGuard shows them to policies, the stack's outputs included."""
    out = []
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
        out.append(PolicyResource(r.type, props, r.urn, r.name, options, None, None, [], {}))
    stack_name = f"{plan.stack.project}-{plan.stack.stack}"
    stack_urn = f"urn:pulumi:{plan.stack.stack}::{plan.stack.project}::{STACK_TYPE}::{stack_name}"
    out.append(PolicyResource(STACK_TYPE, dict(plan.outputs), stack_urn, stack_name,
                              PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), []),
                              None, None, [], {}))
    return out


def default_config(policy) -> dict[str, Any]:
    schema = getattr(policy, "config_schema", None)
    properties = getattr(schema, "properties", None) or {}
    return {k: v["default"] for k, v in properties.items() if isinstance(v, dict) and "default" in v}


def run_policies(plan: Plan, policies: list) -> list[Violation]:
    return run_on(policy_resources(plan), policies)


def run_on(resources: list[PolicyResource], policies: list) -> list[Violation]:
    """Every violation the policies report on these resources, in policy order."""
    found: list[Violation] = []

    def reporter(policy, level: EnforcementLevel, default_urn: str | None):
        def report(message: str, urn: str | None = None) -> None:
            found.append(Violation(policy.name, level.value, urn or default_urn, message))
        return report

    for policy in policies:
        level = policy.enforcement_level or EnforcementLevel.ADVISORY
        if level is EnforcementLevel.DISABLED:
            continue
        config = default_config(policy)
        if isinstance(policy, StackValidationPolicy):
            policy.validate(StackValidationArgs(resources, config), reporter(policy, level, None))
        elif isinstance(policy, ResourceValidationPolicy):
            for r in resources:
                args = ResourceValidationArgs(r.resource_type, r.props, r.urn, r.name, r.opts, None, config)
                policy.validate(args, reporter(policy, level, r.urn))
    return found
