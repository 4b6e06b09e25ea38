"""Helm charts: which chart a release installs (``ChartRef``) and where the release reads it from
(``ChartSource``: a cached package, or the chart's repository)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi_kubernetes as k8s

RELEASE_HISTORY = 10
"""Revisions Helm keeps per release, each a Secret holding the whole rendered release (kube-prometheus-stack's, with
its CRD upgrade hook, is about 0.7 MB). pulumi-kubernetes keeps them all unless told (``maxHistory`` 0,
helm_release.go); 10 is the helm CLI's own default for upgrades."""


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
    """Where a Helm release fetches its chart at deploy time: the chart's repository at its exact version,
    or a mirror of the pinned charts (``mirror``, for clusters deployed without internet access). The
    release's inputs name the chart the same way on every machine, whatever the local chart cache holds:
    a path there would make `pulumi up` from another machine (a laptop, a DR runner) upgrade every release.
    The cache is where offline plans render the very same package (``package_path``)."""

    ref: ChartRef
    package_path: str | None = None
    """Absolute path of the cached ``.tgz`` on this machine, for what the program reads from the chart
    itself (its CRDs); never part of a release's inputs (default: none)."""
    mirror: str | None = None
    """An HTTP(S) chart repository or an ``oci://`` registry path holding every pinned chart under its own
    name and version (``neurodock:chartMirror``), fetched from instead of each chart's repository
    (default: none)."""

    def release_args(self) -> dict[str, Any]:
        """Keyword arguments of ``helm.v3.Release`` that name the chart: a repository and a chart name, or
        an OCI reference, with the exact version. The provider fetches it at deploy time (pulumi-kubernetes
        ``helm_release.go``: a chart that is not a local path is pulled from ``repositoryOpts.repo`` or its
        ``oci://`` reference). And how many revisions Helm keeps (``RELEASE_HISTORY``)."""
        repository = self.mirror.rstrip("/") if self.mirror else self.ref.repository
        if repository.startswith("oci://"):
            return {"chart": f"{repository}/{self.ref.name}", "version": self.ref.version,
                    "max_history": RELEASE_HISTORY}
        return {"chart": self.ref.name, "version": self.ref.version, "max_history": RELEASE_HISTORY,
                "repository_opts": k8s.helm.v3.RepositoryOptsArgs(repo=repository)}
