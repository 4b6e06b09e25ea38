"""The chart cache: one directory of packaged charts, ``<chart>-<version>.tgz``, shared by the offline
plan (which renders them) and ``pulumi up`` (whose releases install the very same files).

Where it is: ``$NEURODOCK_CHART_CACHE``, else ``charts/`` in the user's cache directory
(``~/.cache/neurodock/charts`` on Linux). ``neurodock charts pull`` fills it from each chart's upstream
repository; machines without network access point it at a directory of pinned packages instead.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs
import yaml

from components.charts import ChartRef, ChartSource
from components.versions import CHARTS

CACHE_ENV = "NEURODOCK_CHART_CACHE"
PULL_HINT = "neurodock charts pull"


def cache_dir() -> Path:
    """The chart cache directory (it may not exist yet)."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    return Path(platformdirs.user_cache_dir("neurodock")) / "charts"


def cached(ref: ChartRef, directory: Path | None = None) -> Path | None:
    """The cached package of ``ref``, or None."""
    path = (directory or cache_dir()) / ref.package
    return path if path.is_file() else None


def source(ref: ChartRef) -> ChartSource:
    """Where a release of ``ref`` reads its chart: the cached package if there is one. Otherwise the
    release downloads it at deploy time, unseen by any offline check, and the program says so."""
    path = cached(ref)
    if path is None:
        import pulumi

        pulumi.log.warn(f"chart {ref} is not in the chart cache {cache_dir()}: its release downloads it from "
                        f"{ref.repository} at deploy time, and no offline plan renders or checks it; fetch it with "
                        f"`{PULL_HINT}` (or set {CACHE_ENV}).")
    return ChartSource(ref, str(path) if path else None)


def crds(source: ChartSource) -> tuple[dict, ...]:
    """The CustomResourceDefinitions of a cached chart's ``crds/`` directory (none when the chart is not
    cached: its release then installs them, once)."""
    if source.package_path is None:
        return ()
    out = []
    with tarfile.open(source.package_path) as package:
        for member in sorted(package.getmembers(), key=lambda m: m.name):
            parts = member.name.split("/")
            if member.isfile() and len(parts) > 2 and parts[1] == "crds" and member.name.endswith((".yaml", ".yml")):
                text = package.extractfile(member).read().decode()
                out += [d for d in yaml.safe_load_all(text) if d and d.get("kind") == "CustomResourceDefinition"]
    return tuple(out)


def ref_of(chart: str, version: str | None) -> ChartRef | None:
    """The pinned chart a release's ``chart`` and ``version`` inputs name: a cached package's path,
    an OCI reference, or a chart name; None for a chart NeuroDock does not pin."""
    for ref in CHARTS:
        if (version == ref.version and chart in (ref.name, ref.reference)) or Path(chart).name == ref.package:
            return ref
    return None


class PullError(Exception):
    """A chart could not be fetched; the message says which and why."""


@dataclass(frozen=True)
class Pulled:
    ref: ChartRef
    path: Path
    fetched: bool
    """False when the package was already cached."""


def pull(ref: ChartRef, directory: Path, *, mirror: str | None = None, force: bool = False) -> Pulled:
    """Fetch ``ref`` into ``directory`` from its repository (or ``mirror``, an HTTP chart repository
    holding the same packages), unless it is cached already.

    The download lands in a temporary directory first and is moved into place whole, so an
    interrupted pull never leaves a truncated package that a later plan would try to render.
    """
    import helm_python  # Helm's Go SDK: loaded only by the commands that need it.

    target = directory / ref.package
    if target.is_file() and not force:
        return Pulled(ref, target, False)
    directory.mkdir(parents=True, exist_ok=True)
    source_name = mirror or ref.repository
    with tempfile.TemporaryDirectory(dir=directory, prefix=".pull-") as tmp:
        try:
            if mirror is None and ref.oci:
                helm_python.pull(ref.reference, version=ref.version, destination=tmp)
            else:
                helm_python.pull(ref.name, repo_url=source_name, version=ref.version, destination=tmp)
        except helm_python.HelmError as exc:
            raise PullError(f"{ref} from {source_name}: {exc}") from None
        fetched = Path(tmp) / ref.package
        if not fetched.is_file():
            got = ", ".join(p.name for p in Path(tmp).iterdir()) or "nothing"
            raise PullError(f"{ref} from {source_name}: expected {ref.package}, got {got}")
        try:
            with helm_python.Chart.load(fetched) as chart:
                name, version = chart.name, chart.version
        except helm_python.HelmError as exc:
            raise PullError(f"{ref} from {source_name}: not a chart package ({exc})") from None
        if (name, version) != (ref.name, ref.version):
            raise PullError(f"{ref} from {source_name}: the package is {name} {version}")
        shutil.move(str(fetched), target)
    return Pulled(ref, target, True)
