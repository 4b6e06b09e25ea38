"""images-pinned-by-digest: advice to pin images by digest, which a registry cannot move."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel

from neurodock_policies.support import all_containers, describe, known, pod_spec, resource_policy

NAME = "images-pinned-by-digest"


def check(resource_type, props, name, config) -> list[str]:
    pod = pod_spec(resource_type, props)
    if pod is None:
        return []
    return [f"{describe(resource_type, props, name)} container '{c.get('name')}' image '{c.get('image')}' is pinned "
            "by tag only; add its digest (image:tag@sha256:...) so the registry cannot change what runs."
            for c in all_containers(pod) if known(c.get("image")) and "@sha256:" not in str(c.get("image"))]


POLICY = resource_policy(
    NAME,
    "Container images are pinned by digest (advice).",
    check,
    level=EnforcementLevel.ADVISORY,
)
