"""Every policy judges what a first preview hands it without crashing: any list, mapping or value it reads may be
unknown there. Under CrossGuard an exception other than pulumi-policy's own (``UnknownValueError``, not applicable)
fails the Analyze call, and with it the preview (pulumi-policy 1.21.0 ``policy.py``, ``Analyze``/``AnalyzeStack``);
the pack hands policies each unknown as the string ``"[unknown]"`` (``neurodock_policies.pack``), wherever the
engine has one: a whole list, one element, one value. So each shipped plan's resources are shown to every policy
with all lists and mappings at one depth unknown, then all list elements, then all scalar values, depth by depth.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from neurodock_policies import MODULES
from neurodock_policies.support import UNKNOWN, NotApplicable, schema_defaults
from pulumi_policy import ResourceValidationPolicy

from infra.check import policy_resources
from tests.conftest import SHIPPED_STACKS

DEPTHS = range(1, 8)
KINDS = ("containers", "elements", "scalars")
PER_TYPE = 2
"""Resources of one type shown per stack: their shapes repeat."""


def unknown_at(value: Any, depth: int, kind: str) -> Any:
    """``value`` with what lies ``depth`` levels down unknown: each list or mapping (``containers``), each list
    element (``elements``) or each scalar (``scalars``)."""
    if depth == 0:
        if kind == "containers" and isinstance(value, (dict, list)):
            return UNKNOWN
        if kind == "scalars" and not isinstance(value, (dict, list)) and value is not None:
            return UNKNOWN
        return value
    if isinstance(value, dict):
        return {k: unknown_at(v, depth - 1, kind) for k, v in value.items()}
    if isinstance(value, list):
        if kind == "elements" and depth == 1:
            return [UNKNOWN for _ in value]
        return [unknown_at(v, depth - 1, kind) for v in value]
    return value


def _sample(resources: list) -> list:
    seen: dict[str, int] = {}
    out = []
    for r in resources:
        if seen.get(r.resource_type, 0) < PER_TYPE:
            seen[r.resource_type] = seen.get(r.resource_type, 0) + 1
            out.append(r)
    return out


def _with(resource, props):
    """``resource`` (pulumi-policy's ``PolicyResource``, a plain class) with other properties."""
    changed = copy.copy(resource)
    changed.props = props
    return changed


def _findings(module, policy, resource_check: bool, resources: list, config: dict) -> set[tuple[str, str]]:
    """``(policy, resource)`` of each violation: which resources a policy finds fault with, whatever it says."""
    if resource_check:
        return {(policy.name, r.urn) for r in resources
                if list(module.check(r.resource_type, r.props, r.name, config))}
    try:
        return {(policy.name, urn) for urn, _ in module.check(resources, config)}
    except NotApplicable:  # what the pack reports as not applicable, with its reason: no verdict
        return set()


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_no_policy_crashes_on_unknowns_or_finds_fault_with_what_it_cannot_see(shipped_plans, stack):
    resources = policy_resources(shipped_plans[stack])
    sample = _sample(resources)
    policies = []
    for module in MODULES:
        resource_check = isinstance(module.POLICY, ResourceValidationPolicy)
        config = schema_defaults(module.POLICY.config_schema)
        shown = sample if resource_check else resources
        policies.append((module, resource_check, config, _findings(module, module.POLICY, resource_check, shown,
                                                                   config)))
    crashes: list[str] = []
    added: list[str] = []
    for depth in DEPTHS:
        for kind in KINDS:
            unknown = {r.urn: _with(r, unknown_at(r.props, depth, kind)) for r in resources}
            for module, resource_check, config, known_findings in policies:
                policy = module.POLICY
                shown = [unknown[r.urn] for r in (sample if resource_check else resources)]
                try:
                    found = _findings(module, policy, resource_check, shown, config)
                except Exception as error:
                    crashes.append(f"{policy.name} at depth {depth} ({kind}): {type(error).__name__}: {error}")
                    continue
                added += [f"{policy.name} at depth {depth} ({kind}) finds fault with {urn}"
                          for _, urn in sorted(found - known_findings)]
    assert not crashes, "\n".join(sorted(set(crashes))[:40])
    assert not added, "\n".join(sorted(set(added))[:40])
