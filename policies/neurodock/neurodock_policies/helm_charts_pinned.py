"""helm-charts-pinned: every Helm release names an exact chart version, not a range or none."""

from __future__ import annotations

import re

from neurodock_policies.support import known, resource_policy

NAME = "helm-charts-pinned"
EXACT = re.compile(r"^v?[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$")
RELEASES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart", "kubernetes:helm.sh/v3:Chart")


def check(resource_type, props, name, config) -> list[str]:
    if resource_type not in RELEASES:
        return []
    version = props.get("version")
    if version is not None and not known(version):
        return []
    if version and EXACT.match(str(version)):
        return []
    shown = f"version '{version}'" if version else "no version"
    chart = str(props.get("chart"))
    if chart.endswith(".tgz"):
        chart = chart.rsplit("/", 1)[-1]  # a cached package: its path says nothing to a reviewer
    return [f"Helm release '{name}' of chart '{chart}' has {shown}; pin an exact chart version "
            "(NeuroDock keeps them in components/versions.py)."]


POLICY = resource_policy(
    NAME,
    "Helm charts are pinned to an exact version.",
    check,
)
