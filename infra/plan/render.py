"""Present a plan: the readable preview, its JSON form, and the files of ``--out DIR``.

The files are a public interface (see README "Plan output"): keep their shape stable.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from infra.plan.engine import Plan
from infra.plan.mocks import Registration, digest

STACK_TYPE = "pulumi:pulumi:Stack"


def counts_by_type(plan: Plan) -> dict[str, int]:
    """Custom resources (and providers) per type; components are structure, not resources."""
    counts = Counter(r.type for r in plan.resources if r.custom)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def cloud_of(plan: Plan) -> str:
    """``kind``/``eks``/``gke`` for a NeuroDock stack, ``aws``/``gcp`` for a bootstrap stack."""
    cloud = plan.config.cloud
    return str(getattr(cloud, "provider", cloud))


def text(plan: Plan) -> str:
    custom = [r for r in plan.resources if r.custom]
    lines = [
        f"Plan of stack '{plan.stack.stack}' ({cloud_of(plan)}) from {plan.stack.path}",
        "Offline, under mocks: nothing was created and no credentials were used.",
        "",
        "Component tree",
        *_tree(plan.resources),
        "",
        f"Resources by type ({len(custom)} resources, "
        f"{sum(1 for r in plan.resources if not r.custom and r.type != STACK_TYPE)} components)",
    ]
    counts = counts_by_type(plan)
    width = max((len(str(n)) for n in counts.values()), default=1)
    lines += [f"  {n:>{width}}  {t}" for t, n in counts.items()]
    lines += ["", "Outputs"]
    key_width = max((len(k) for k in plan.outputs), default=0)
    for key, value in plan.outputs.items():
        shown = value if isinstance(value, str) else json.dumps(value, indent=2)
        shown = shown.replace("\n", "\n" + " " * (key_width + 4))
        lines.append(f"  {key:<{key_width}}  {shown}")
    if plan.warnings:
        lines += ["", "Warnings", *(f"  {w}" for w in plan.warnings)]
    return "\n".join(lines) + "\n"


def _tree(resources: list[Registration]) -> list[str]:
    children: dict[str | None, list[Registration]] = {}
    for r in resources:
        children.setdefault(r.parent, []).append(r)
    roots = [r for r in resources if r.type == STACK_TYPE] or children.get(None, [])
    out: list[str] = []

    def walk(node: Registration, prefix: str, last: bool, depth: int) -> None:
        connector = "" if depth == 0 else ("└─ " if last else "├─ ")
        out.append(f"  {prefix}{connector}{node.type}  {node.name}")
        kids = children.get(node.urn, [])
        extension = "" if depth == 0 else ("   " if last else "│  ")
        for i, kid in enumerate(kids):
            walk(kid, prefix + extension, i == len(kids) - 1, depth + 1)

    for root in roots:
        walk(root, "", True, 0)
    return out


def as_json(plan: Plan) -> dict[str, Any]:
    return {
        "stack": plan.stack.stack,
        "project": plan.stack.project,
        "cloud": cloud_of(plan),
        "resourceCount": sum(1 for r in plan.resources if r.custom),
        "countsByType": counts_by_type(plan),
        "outputs": plan.outputs,
        "warnings": plan.warnings,
        "resources": [r.to_json() for r in plan.resources],
    }


def write_out(plan: Plan, directory: Path) -> dict[str, Path]:
    """Write resources.json, outputs.json, manifests/ and helm-releases.yaml under ``directory``.

    ``manifests/`` is emptied first, so it never holds objects of an earlier plan.
    """
    directory.mkdir(parents=True, exist_ok=True)
    resources = directory / "resources.json"
    resources.write_text(json.dumps([r.to_json() for r in plan.resources], indent=2) + "\n")
    outputs = directory / "outputs.json"
    outputs.write_text(json.dumps(plan.outputs, indent=2, sort_keys=True) + "\n")

    manifests = directory / "manifests"
    manifests.mkdir(exist_ok=True)
    for stale in manifests.glob("*.yaml"):
        stale.unlink()
    for name, obj in manifest_files(plan).items():
        (manifests / name).write_text(yaml.safe_dump(obj, sort_keys=False))

    helm = directory / "helm-releases.yaml"
    helm.write_text(yaml.safe_dump(helm_releases(plan), sort_keys=False))
    return {"resources": resources, "outputs": outputs, "manifests": manifests, "helmReleases": helm}


def manifest_files(plan: Plan) -> dict[str, dict[str, Any]]:
    """File name -> object. Names are ``<namespace|cluster>.<kind>.<name>.yaml``, which is unique
    for objects that can coexist in one cluster; should two objects clash anyway (a bug the tests
    catch), the later one gets its URN's hash appended instead of overwriting the first."""
    files: dict[str, dict[str, Any]] = {}
    for r in plan.manifests:
        obj = r.manifest or {}
        metadata = obj.get("metadata") or {}
        parts = [metadata.get("namespace") or "cluster", str(obj.get("kind", "object")), str(metadata.get("name"))]
        name = ".".join(_safe(p) for p in parts) + ".yaml"
        if name in files:
            name = name.removesuffix(".yaml") + f".{digest(r.urn, length=8)}.yaml"
        files[name] = obj
    return files


def helm_releases(plan: Plan) -> list[dict[str, Any]]:
    releases = []
    for r in plan.helm_releases:
        inputs = r.inputs
        releases.append({
            "urn": r.urn,
            "name": inputs.get("name"),
            "chart": inputs.get("chart"),
            "repository": (inputs.get("repositoryOpts") or {}).get("repo"),
            "version": inputs.get("version"),
            "namespace": inputs.get("namespace"),
            "values": inputs.get("values") or {},
        })
    return releases


def _safe(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", part).lower()
