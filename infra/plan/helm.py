"""Render the plan's Helm releases with Helm itself, offline: every object a release installs.

Each ``kubernetes:helm.sh/v3:Release`` the program registered is rendered from its cached chart
package (``infra.charts``) with the exact values, name and namespace it was given, by Helm's Go SDK
(``helm_python``), as the provider's own dry run does before an install: templates (hooks included)
plus the CRDs of the chart's ``crds/`` directories. Test hooks are left out: only ``helm test`` runs
them. A release whose chart is not cached is reported, not guessed at.

Rendering uses Helm's default capabilities (the Kubernetes version of its SDK, built-in APIs only),
not the target cluster's: a template that branches on ``.Capabilities`` may differ on a cluster.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from components.charts import ChartRef
from infra import charts
from infra.charts import CLUSTER_SCOPED, dump_document
from infra.plan.mocks import Registration

RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"

_CRD_NAME = re.compile(r"^metadata:\s*\n(?:[ \t]+.*\n|\s*\n)*?[ \t]+name:[ \t]*['\"]?([^'\"\s]+)", re.MULTILINE)
_DOCUMENT_SPLIT = re.compile(r"^---[ \t]*(?:#.*)?$", re.MULTILINE)


@dataclass(eq=False)
class ChartObject:
    """One Kubernetes object a release installs, named as Pulumi's own chart resources name theirs:
    ``<release>:<namespace>/<name>`` under the release."""

    release_urn: str
    release: str
    """The Helm release's name."""
    template: str
    """The chart file it came from (``chart/templates/x.yaml`` or ``chart/crds/x.yaml``)."""
    kind: str
    api_version: str
    object_name: str
    namespace: str | None
    install_only: bool = False
    """A CRD of a chart's ``crds/`` directory: Helm creates it on the first install and never
    upgrades or deletes it, so a chart bump does not change it on an existing cluster."""
    _manifest: dict[str, Any] | None = field(default=None, repr=False)
    _text: str | None = field(default=None, repr=False)
    """CRDs keep their YAML and are parsed on first use: kube-prometheus-stack's alone are 4 MB."""

    @cached_property
    def manifest(self) -> dict[str, Any]:
        if self._manifest is not None:
            return self._manifest
        return charts.parsed_document(self._text or "")

    @property
    def text(self) -> str:
        """The object as YAML."""
        if self._text is not None:
            return self._text
        return dump_document(self.manifest)

    @property
    def type(self) -> str:
        """The Pulumi type token of the object's kind, as ``kubernetes:apps/v1:Deployment``."""
        group, _, version = self.api_version.rpartition("/")
        return f"kubernetes:{group or 'core'}/{version}:{self.kind}"

    @property
    def name(self) -> str:
        return f"{self.release}:{self.namespace}/{self.object_name}" if self.namespace else \
            f"{self.release}:{self.object_name}"

    @property
    def urn(self) -> str:
        head = self.release_urn.rpartition("::")[0]
        return f"{head}${self.type}::{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {"urn": self.urn, "type": self.type, "name": self.name, "parent": self.release_urn,
                "custom": True, "provider": None, "release": self.release, "template": self.template,
                "installOnly": self.install_only, "inputs": self.manifest}


@dataclass(frozen=True)
class RenderedRelease:
    urn: str
    name: str
    namespace: str
    chart: ChartRef
    package: Path
    objects: list[ChartObject]
    unknown_values: list[str] = field(default_factory=list)
    """Value keys the chart does not declare: Helm ignores them, so each is most likely a typo."""

    def warnings(self) -> list[str]:
        return [f"Helm release '{self.name}': value '{key}' is not a value of chart {self.chart}, so Helm ignores "
                "it; check its spelling against the chart's values.yaml." for key in self.unknown_values]


FREE_FORM_VALUES: dict[str, frozenset[str]] = {
    # Maps whose keys are the chart user's own, though the chart's defaults list a few.
    "cluster-autoscaler": frozenset({"extraArgs"}),
    # Envoy Gateway's configuration file, merged whole over the chart's defaults (templates/envoy-gateway-config.yaml).
    "gateway-helm": frozenset({"config.envoyGateway", "deployment.pod.annotations"}),
}
"""Per chart, value paths whose keys are free-form although the chart's defaults are not empty."""
KUBERNETES_TYPED = re.compile(r"(?i).*(securityContext|resources|affinity)$")
"""Values that charts copy into an object verbatim (``toYaml``): any field of that Kubernetes type goes."""


def unknown_value_keys(defaults: Any, values: Any, free_form: frozenset[str] = frozenset(),
                       path: str = "") -> list[str]:
    """Dotted paths of ``values`` the chart's defaults do not declare. A default that is empty, null or
    not a map takes anything (``nodeSelector: {}``), and so does a Kubernetes-typed value."""
    if (not isinstance(defaults, dict) or not defaults or not isinstance(values, dict) or path in free_form
            or KUBERNETES_TYPED.match(path.rsplit(".", 1)[-1])):
        return []
    out = []
    for key, value in values.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in defaults:
            out.append(where)
        else:
            out += unknown_value_keys(defaults[key], value, free_form, where)
    return out


def _declared(raw: Any, merged: Any) -> Any:
    """The chart's own values.yaml (which keeps keys declared as null) over the merged defaults
    (which add the subcharts')."""
    if isinstance(raw, dict) and isinstance(merged, dict):
        return {**merged, **{k: _declared(v, merged.get(k)) for k, v in raw.items()}}
    return raw if raw is not None else merged


@dataclass(frozen=True)
class MissingChart:
    """A release whose chart is not in the cache (or not one NeuroDock pins)."""

    urn: str
    release: str
    chart: str
    version: str | None
    ref: ChartRef | None


class RenderError(Exception):
    """Helm refused to render a release: its values or templates are wrong."""


def render_releases(registrations: list[Registration], cache: Path | None = None
                    ) -> tuple[list[RenderedRelease], list[MissingChart]]:
    cache = cache or charts.cache_dir()
    rendered: list[RenderedRelease] = []
    missing: list[MissingChart] = []
    for r in registrations:
        if r.type != RELEASE_TYPE:
            continue
        chart, version = str(r.inputs.get("chart") or ""), r.inputs.get("version")
        ref = charts.ref_of(chart, version)
        package = charts.cached(ref, cache) if ref else None
        if ref is None or package is None:
            missing.append(MissingChart(r.urn, str(r.inputs.get("name") or r.name), chart, version, ref))
            continue
        rendered.append(render_release(r, ref, package))
    return rendered, missing


def render_release(release: Registration, ref: ChartRef, package: Path) -> RenderedRelease:
    """The objects ``release`` installs from ``package``, rendered as the provider renders them."""
    name = str(release.inputs.get("name") or release.name)
    namespace = str(release.inputs.get("namespace") or "default")
    values = release.inputs.get("values") or {}
    try:
        output = charts.helm(package, values, name=name, namespace=namespace)
    except charts.HelmRefused as exc:
        raise RenderError(f"Helm release '{name}' ({ref}): {exc}") from None
    crds = [] if release.inputs.get("skipCrds") else [c for c in output.crds
                                                       if _enabled(output.metadata, c, output.merged_values)]
    declared = _declared(output.chart_values, output.default_values)
    unknown = unknown_value_keys(declared, values, FREE_FORM_VALUES.get(ref.name, frozenset()))
    objects = [_object(release.urn, name, template, document)
               for template, document in output.documents]
    for crd in crds:
        for text in _DOCUMENT_SPLIT.split(crd["data"]):
            match = _CRD_NAME.search(text)
            if match is None:
                continue  # an empty or comment-only document
            objects.append(ChartObject(release.urn, name, crd["filename"], "CustomResourceDefinition",
                                       "apiextensions.k8s.io/v1", match.group(1), None, install_only=True,
                                       _text=text.strip() + "\n"))
    return RenderedRelease(release.urn, name, namespace, ref, package, objects, unknown)


def _enabled(metadata: dict[str, Any], crd: dict[str, str], values: dict[str, Any]) -> bool:
    """Whether a CRD's subchart is enabled: Helm drops a dependency whose ``condition`` is false, and
    its ``crds/`` with it (kube-prometheus-stack's CRDs come from its ``crds`` subchart)."""
    for dependency in metadata.get("dependencies") or []:
        if f"charts/{dependency.get('name')}/" not in crd["filename"] or not dependency.get("condition"):
            continue
        # Helm takes the first condition path that resolves to a boolean.
        for condition in str(dependency["condition"]).split(","):
            node: Any = values
            for key in condition.strip().split("."):
                node = node.get(key) if isinstance(node, dict) else None
            if isinstance(node, bool):
                return node
    return True


GENERATED = "<generated by Helm at install>"
"""What a plan shows for key material a chart generates as it renders (``genCA``, ``genSignedCert``):
new at every render, so a plan would never equal the last; Helm makes it once, at install."""


def _generated_keys(document: dict[str, Any]) -> None:
    if document.get("kind") != "Secret":
        return
    for key, value in (document.get("data") or {}).items():
        try:
            decoded = base64.b64decode(str(value), validate=True)
        except ValueError:
            continue
        if decoded.startswith(b"-----BEGIN "):
            document["data"][key] = GENERATED


def _object(urn: str, release: str, template: str, document: dict[str, Any]) -> ChartObject:
    _generated_keys(document)
    kind = str(document.get("kind", ""))
    metadata = document["metadata"]
    return ChartObject(urn, release, template, kind, str(document.get("apiVersion", "")),
                       str(metadata.get("name", "")), metadata.get("namespace") if kind not in CLUSTER_SCOPED else None,
                       _manifest=document)

