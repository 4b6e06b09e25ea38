"""images-pinned: every container image names a version: a tag other than ``latest``, or a digest."""

from __future__ import annotations

from neurodock_policies.support import all_containers, describe, known, pod_spec, resource_policy

NAME = "images-pinned"


def unpinned(image: str) -> str | None:
    """Why an image reference is not pinned, or None."""
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return "has no tag"
    if last.rsplit(":", 1)[1] == "latest":
        return "uses the tag 'latest'"
    return None


def check(resource_type, props, name, config) -> list[str]:
    pod = pod_spec(resource_type, props)
    if pod is None:
        return []
    out = []
    for c in all_containers(pod):
        image = c.get("image")
        if not known(image):
            continue
        why = unpinned(str(image))
        if why:
            out.append(f"{describe(resource_type, props, name)} container '{c.get('name')}' image '{image}' {why}; "
                       "pin it to a released tag, or better a digest (image:tag@sha256:...).")
    return out


POLICY = resource_policy(
    NAME,
    "Container images are pinned: no 'latest' and no missing tag (a digest is recommended).",
    check,
)
