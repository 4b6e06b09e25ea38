"""helm-charts-pinned: every Helm release names an exact chart version, not a range or none."""

from __future__ import annotations

import re

from pulumi_policy import EnforcementLevel, ResourceValidationArgs, ResourceValidationPolicy

from neurodock_policies.support import known

NAME = "helm-charts-pinned"
EXACT = re.compile(r"^v?[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$")
RELEASES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart", "kubernetes:helm.sh/v3:Chart")


def check(resource_type, props, name) -> list[str]:
    if resource_type not in RELEASES:
        return []
    version = props.get("version")
    if version is not None and not known(version):
        return []
    if version and EXACT.match(str(version)):
        return []
    shown = f"version '{version}'" if version else "no version"
    return [f"Helm release '{name}' of chart '{props.get('chart')}' has {shown}; pin an exact chart version "
            "(NeuroDock keeps them in components/versions.py)."]


def _validate(args: ResourceValidationArgs, report) -> None:
    for message in check(args.resource_type, args.props, args.name):
        report(message)


POLICY = ResourceValidationPolicy(
    name=NAME,
    description="Helm charts are pinned to an exact version.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate,
)
