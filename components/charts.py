"""Helm charts: which chart a release installs (``ChartRef``) and where the release reads it from
(``ChartSource``: a cached package, or the chart's repository)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi_kubernetes as k8s


@dataclass(frozen=True)
class ChartRef:
    """A chart at an exact version, and the repository it is published in."""

    name: str
    """The chart's name (``Chart.yaml``)."""
    version: str
    """Exact chart version, as the repository spells it (some carry a ``v``)."""
    repository: str
    """An HTTP(S) chart repository, or an OCI registry path (``oci://host/path``) that holds the chart."""

    @property
    def package(self) -> str:
        """File name of the packaged chart, as ``helm pull`` writes it."""
        return f"{self.name}-{self.version}.tgz"

    @property
    def oci(self) -> bool:
        return self.repository.startswith("oci://")

    @property
    def reference(self) -> str:
        """What ``helm pull`` takes: the OCI reference, or the chart name within ``repository``."""
        return f"{self.repository}/{self.name}" if self.oci else self.name

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


@dataclass(frozen=True)
class CrdBundle:
    """CustomResourceDefinitions an upstream project releases outside any chart, at an exact tag."""

    name: str
    version: str
    url: str
    """Where the files are published, one per CRD: ``<url>/<file>``."""
    files: tuple[str, ...]

    @property
    def directory(self) -> str:
        """Its folder in the chart cache: ``crds/<name>-<version>``."""
        return f"crds/{self.name}-{self.version}"

    def __str__(self) -> str:
        return f"{self.name} {self.version} CRDs"


@dataclass(frozen=True)
class ChartSource:
    """Where a Helm release reads its chart: the very package that was rendered and checked offline
    when it is cached, else the chart's repository at deploy time."""

    ref: ChartRef
    package_path: str | None = None
    """Absolute path of the cached ``.tgz`` (default: none; the release downloads the chart)."""

    def release_args(self) -> dict[str, Any]:
        """Keyword arguments of ``helm.v3.Release`` that name the chart."""
        if self.package_path is not None:
            # A local path and no repository: the provider installs this file (and ignores
            # `version`, which it then reads back from the package's Chart.yaml).
            return {"chart": self.package_path, "version": self.ref.version}
        if self.ref.oci:
            return {"chart": self.ref.reference, "version": self.ref.version}
        return {"chart": self.ref.name, "version": self.ref.version,
                "repository_opts": k8s.helm.v3.RepositoryOptsArgs(repo=self.ref.repository)}
