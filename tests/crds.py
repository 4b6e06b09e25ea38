"""Strict JSON Schemas of custom resources, taken from the real CRDs: the ones the pinned charts ship
(rendered with Helm in every plan) and the pinned upstream release CRDs in ``../shared/charts/crds``.

A CRD's ``openAPIV3Schema`` is structural: the API server prunes fields it does not declare, so a
misspelt field vanishes silently instead of failing. ``strict`` turns that pruning into an error
(``additionalProperties: false`` wherever the schema does not keep unknown fields), and maps the
Kubernetes extensions JSON Schema lacks (``x-kubernetes-int-or-string``, ``nullable``). CEL rules
(``x-kubernetes-validations``) are not evaluated here; the API server still does that.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from infra.charts import load_documents

SHARED_CRDS = Path(__file__).resolve().parents[2] / "shared" / "charts" / "crds"

METADATA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of a structural schema that rejects undeclared fields."""
    node = copy.copy(schema)
    if node.pop("x-kubernetes-int-or-string", False):
        node.pop("type", None)
        node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.pop("nullable", False) and "type" in node:
        node["type"] = [node["type"], "null"]
    if "properties" in node:
        node["properties"] = {k: strict(v) for k, v in node["properties"].items()}
        if not node.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in node:
            node["additionalProperties"] = False
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = strict(node["additionalProperties"])
    if isinstance(node.get("items"), dict):
        node["items"] = strict(node["items"])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in node:
            node[key] = [strict(s) for s in node[key]]
    return node


def schemas(crds: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """``(apiVersion, kind) -> strict schema`` of every served version of these CRDs."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for crd in crds:
        spec = crd["spec"]
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            schema = strict(version["schema"]["openAPIV3Schema"])
            api_version = f"{spec['group']}/{version['name']}"
            schema["properties"] = {**schema.get("properties", {}), "metadata": METADATA,
                                    "apiVersion": {"const": api_version}, "kind": {"const": spec["names"]["kind"]}}
            schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
            out[(api_version, spec["names"]["kind"])] = schema
    return out


def shared_crds() -> list[dict[str, Any]]:
    """The pinned upstream release CRDs beside the charts (the Inference Extension's)."""
    return [d for path in sorted(SHARED_CRDS.glob("*/*.yaml")) for d in load_documents(path.read_text())
            if d.get("kind") == "CustomResourceDefinition"]
