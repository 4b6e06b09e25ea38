"""The chart cache: one directory of packaged charts, ``<chart>-<version>.tgz``, shared by the offline
plan (which renders them) and ``pulumi up`` (whose releases install the very same files).

Where it is: ``$NEURODOCK_CHART_CACHE``, else ``charts/`` in the user's cache directory
(``~/.cache/neurodock/charts`` on Linux). ``neurodock charts pull`` fills it from each chart's upstream
repository; machines without network access point it at a directory of pinned packages instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
import pulumi
import yaml

from components.charts import ChartRef, ChartSource, CrdBundle
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


class NotCached(pulumi.RunError):
    """A chart or CRD bundle the program reads itself is not in the chart cache. A ``RunError``:
    `pulumi up` shows the message alone, no traceback."""

    def __init__(self, what: ChartRef | CrdBundle):
        self.what = what
        super().__init__(f"{what} is not in the chart cache {cache_dir()}: fetch it with `{PULL_HINT}` "
                         f"(or set {CACHE_ENV} to a directory that holds it)")


_listing: list[set[ChartRef | CrdBundle]] = []


@contextlib.contextmanager
def listing() -> Iterator[set[ChartRef | CrdBundle]]:
    """While the program runs inside this, what it renders or reads itself is only recorded (and
    reads as nothing when not cached): ``charts pull --stacks`` learns what a stack needs."""
    wanted: set[ChartRef | CrdBundle] = set()
    _listing.append(wanted)
    try:
        yield wanted
    finally:
        _listing.pop()


def require(what: ChartRef | CrdBundle) -> Path | None:
    """The cached package of a chart, or folder of a CRD bundle, that the program reads itself
    (``NotCached`` when missing; None when missing while listing)."""
    if _listing:
        _listing[-1].add(what)
    if isinstance(what, ChartRef):
        path = cached(what)
    else:
        folder = cache_dir() / what.directory
        path = folder if all((folder / f).is_file() for f in what.files) else None
    if path is None and not _listing:
        raise NotCached(what)
    return path


def render(ref: ChartRef, values: dict[str, Any], *, name: str, namespace: str) -> list[dict[str, Any]]:
    """The objects Helm installs from the cached package of ``ref`` for release ``name`` in
    ``namespace``, rendered as a plan renders a release's. For charts whose objects the program creates
    itself, one Pulumi resource each, where a release would give no hold on what Helm writes."""
    from infra.plan.helm import installed_documents

    path = require(ref)
    if path is None:
        return []
    import helm_python

    with helm_python.Chart.load(path) as chart:
        files = chart.render(values, name=name, namespace=namespace, is_install=True)
    return [document for _, document in installed_documents(files, namespace)]


def crd_bundle(bundle: CrdBundle) -> tuple[dict[str, Any], ...]:
    """The CustomResourceDefinitions of a CRD bundle, from the chart cache."""
    folder = require(bundle)
    if folder is None:
        return ()
    return tuple(d for f in bundle.files for d in yaml.safe_load_all((folder / f).read_text()) if d)


def pull_crds(bundle: CrdBundle, directory: Path, *, mirror: str | None = None, force: bool = False) -> Pulled:
    """Fetch a CRD bundle's files into ``directory/crds/<name>-<version>``, all or none, from where the
    project publishes them, or from ``mirror``, which holds them at ``crds/<name>-<version>/``."""
    target = directory / bundle.directory
    if not force and all((target / f).is_file() for f in bundle.files):
        return Pulled(bundle, target, False)
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".pull-") as tmp:
        staged = Path(tmp) / "bundle"
        staged.mkdir()
        for file in bundle.files:
            url = f"{mirror.rstrip('/')}/{bundle.directory}/{file}" if mirror else f"{bundle.url}/{file}"
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    text = response.read().decode()
            except OSError as exc:
                raise PullError(f"{bundle} from {url}: {exc}") from None
            if not any(d and d.get("kind") == "CustomResourceDefinition" for d in yaml.safe_load_all(text)):
                raise PullError(f"{bundle} from {url}: not a CustomResourceDefinition")
            (staged / file).write_text(text)
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(staged, target)
    return Pulled(bundle, target, True)


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
    ref: ChartRef | CrdBundle
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
