"""The chart cache: one directory of packaged charts, ``<chart>-<version>.tgz``, shared by the offline
plan (which renders them) and ``pulumi up`` (whose releases install the very same files).

Where it is: ``$NEURODOCK_CHART_CACHE``, else ``charts/`` in the user's cache directory
(``~/.cache/neurodock/charts`` on Linux). ``neurodock charts pull`` fills it from each chart's upstream
repository; machines without network access point it at a directory of pinned packages instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import marshal
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
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


def source(ref: ChartRef, mirror: str | None = None) -> ChartSource:
    """Where a release of ``ref`` fetches its chart at deploy time (its repository, or ``mirror``), with the
    cached package this machine renders offline. A chart not cached is still installed, but no offline
    plan renders or checks it, and the program says so."""
    path = cached(ref)
    if path is None:
        pulumi.log.warn(f"chart {ref} is not in the chart cache {cache_dir()}: no offline plan renders or checks "
                        f"what its release installs; fetch it with `{PULL_HINT}` (or set {CACHE_ENV}).")
    return ChartSource(ref, str(path) if path else None, mirror)


def crds(source: ChartSource) -> tuple[dict, ...]:
    """The CustomResourceDefinitions of a cached chart's ``crds/`` directories, its own and its subcharts'
    (Envoy Gateway keeps them in a ``crds`` subchart from v1.8: ``charts/crds/crds/``); none when the chart
    is not cached."""
    if source.package_path is None:
        return ()
    path, digest = _file_key(Path(source.package_path))
    return _fresh(("crds", digest), lambda: _read_crds(path))


def _read_crds(path: Path) -> tuple[dict, ...]:
    out = []
    with tarfile.open(path) as package:
        for member in sorted(package.getmembers(), key=lambda m: m.name):
            parts = member.name.split("/")
            # <chart>/crds/..., or <chart>/charts/<subchart>/crds/...: what Helm installs as CRDs (its loader takes
            # every file under a chart's crds/, subdirectories included).
            in_crds = (len(parts) > 2 and parts[1] == "crds") or (len(parts) > 4 and parts[1] == "charts"
                                                                   and parts[3] == "crds")
            if member.isfile() and in_crds and member.name.endswith((".yaml", ".yml")):
                text = package.extractfile(member).read().decode()
                out += [d for d in load_documents(text) if d.get("kind") == "CustomResourceDefinition"]
    return tuple(out)


class NotCached(pulumi.RunError):
    """A chart or CRD bundle the program reads itself is not in the chart cache. A ``RunError``:
    `pulumi up` shows the message alone, no traceback."""

    def __init__(self, *missing: ChartRef | CrdBundle):
        self.missing = missing
        what = " and ".join(str(m) for m in missing)
        verb, it = ("is", "it") if len(missing) == 1 else ("are", "them")
        super().__init__(f"{what} {verb} not in the chart cache {cache_dir()}: fetch {it} with `{PULL_HINT}` (or set "
                         f"{CACHE_ENV} to a directory that holds {it})")


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


def require_all(*wanted: ChartRef | CrdBundle) -> None:
    """Each of ``wanted`` is cached (or recorded, while listing): else one ``NotCached`` naming every one
    missing."""
    missing = []
    for what in wanted:
        try:
            require(what)
        except NotCached:
            missing.append(what)
    if missing:
        raise NotCached(*missing)


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
    path = require(ref)
    if path is None:
        return []
    return [document for _, document in helm(path, values, name=name, namespace=namespace).documents]


# --------------------------------------------------------------------------------------------
# Helm's output, as the API server reads it
# --------------------------------------------------------------------------------------------

# Kinds the API server keeps outside namespaces: Helm leaves their namespace empty, and so do we.
CLUSTER_SCOPED = frozenset({
    "APIService", "CertificateSigningRequest", "ClusterRole", "ClusterRoleBinding", "CSIDriver", "CSINode",
    "CustomResourceDefinition", "FlowSchema", "IngressClass", "MutatingWebhookConfiguration", "Namespace", "Node",
    "PersistentVolume", "PriorityClass", "PriorityLevelConfiguration", "RuntimeClass", "StorageClass",
    "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "ValidatingWebhookConfiguration",
    "VolumeAttachment",
    # Custom resources of the pinned charts' CRDs with `scope: Cluster`.
    "GatewayClass", "ClusterTriggerAuthentication", "ClusterCloudEventSource",
})


class _Loader(yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader):  # type: ignore[misc]
    """YAML as Helm reads it, with libyaml's C parser (several times faster than PyYAML's own, with the
    same result): a plain ``=`` is a string (PyYAML alone reads it as the obsolete 'value' tag, which
    some CRDs' enums contain)."""


_Loader.add_constructor("tag:yaml.org,2002:value", yaml.constructor.SafeConstructor.construct_yaml_str)


def load_documents(text: str) -> list[dict[str, Any]]:
    """The mappings of a multi-document YAML text (empty documents left out)."""
    return [d for d in yaml.load_all(text, Loader=_Loader) if isinstance(d, dict)]


def dump_document(document: Any) -> str:
    """``document`` as block-style YAML with libyaml's C emitter: many times faster than PyYAML's own,
    which folds long quoted strings at other places (the same YAML). For files people and tools read
    (``plan --out``); text that becomes a resource's input keeps PyYAML's emitter, so existing stacks
    see no change."""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False)


_Dumper = yaml.CSafeDumper if hasattr(yaml, "CSafeDumper") else yaml.SafeDumper


def installed_documents(files: dict[str, str], namespace: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(template, object)`` for each object Helm installs from its rendered ``files``: test hooks and
    NOTES left out, and namespaced objects without a namespace in the release's, as Helm applies them."""
    for template, text in sorted(files.items()):
        if not template.endswith((".yaml", ".yml", ".json")):
            continue  # NOTES.txt
        for document in load_documents(text):
            metadata = document.setdefault("metadata", {}) or {}
            hook = str((metadata.get("annotations") or {}).get("helm.sh/hook", ""))
            if any(h.strip().startswith("test") for h in hook.split(",") if h):
                continue
            if document.get("kind") not in CLUSTER_SCOPED and not metadata.get("namespace"):
                metadata["namespace"] = namespace
            yield template, document


@dataclass(frozen=True)
class HelmOutput:
    """What Helm makes of a chart package for one release: the objects it installs, the CRDs of its
    ``crds/`` directories, and the values (the user's merged over the chart's, and the chart's own)."""

    documents: tuple[tuple[str, dict[str, Any]], ...]
    """``(template, object)`` per object, as ``installed_documents`` reads Helm's rendered files."""
    crds: tuple[dict[str, str], ...]
    """``{"filename", "data"}`` per file of a ``crds/`` directory, subcharts' included."""
    merged_values: dict[str, Any]
    chart_values: dict[str, Any]
    """The chart's own values.yaml, keeping keys declared null."""
    default_values: dict[str, Any]
    """The chart's defaults merged with its subcharts'."""
    metadata: dict[str, Any]


def helm(package: Path, values: dict[str, Any], *, name: str, namespace: str) -> HelmOutput:
    """Render ``package`` for release ``name`` in ``namespace`` with Helm's Go SDK, as an install
    (``HelmRefused`` when Helm refuses). Rendering is deterministic, so a process renders each
    package and values once: tests and ``neurodock diff`` plan the same releases many times. Callers
    get their own copy to change."""
    key = json.dumps(values, sort_keys=True, separators=(",", ":"))
    path, digest = _file_key(package)
    return HelmOutput(*_fresh(("helm", digest, key, name, namespace),
                              lambda: dataclasses.astuple(_render(path, json.loads(key), name, namespace))))


class HelmRefused(Exception):
    """Helm refused to render a chart with the values given; the message is Helm's."""


def _render(package: Path, values: dict[str, Any], name: str, namespace: str) -> HelmOutput:
    import helm_python  # the Go SDK: loaded only when something renders a chart

    try:
        return _render_with(helm_python, package, values, name, namespace)
    except helm_python.HelmError as exc:
        raise HelmRefused(str(exc)) from None


def _render_with(helm_python: Any, package: Path, values: dict[str, Any], name: str, namespace: str) -> HelmOutput:
    with helm_python.Chart.load(package) as chart:
        # Helm validates the values against the chart's values.schema.json, where it ships one.
        files = chart.render(values, name=name, namespace=namespace, is_install=True)
        return HelmOutput(
            documents=tuple(installed_documents(files, namespace)),
            crds=tuple(chart.crds),
            merged_values=chart.merge_values(values),
            chart_values=chart.values,
            default_values=chart.merge_values({}),
            metadata=chart.metadata,
        )


def _file_key(path: Path) -> tuple[Path, str]:
    """A file and the digest of its content."""
    stat = path.stat()
    return path, _digest(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _digest(path: Path, _size: int, _mtime: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


RENDER_CACHE_ENV = "NEURODOCK_RENDER_CACHE"
"""Where rendered and parsed charts are kept between runs (default: ``rendered/`` in the user's cache
directory); ``off`` keeps nothing."""


def stored(key: tuple[str, ...], compute: Callable[[], Any]) -> Any:
    """``compute()``, kept on disk under a digest of ``key`` and of everything that shapes the result:
    this module's code, PyYAML's and the Helm SDK's versions (a caller whose result depends on more puts
    that in ``key``). Parsing a chart's YAML is most of a fresh plan's time, and the result only depends
    on those. Stored with ``marshal`` (plain data, no code runs when it is read back); a result that is
    not plain data, or a cache that cannot be written, is simply computed again next time."""
    return _stored(key, compute)[0]


def render_cache_dir() -> Path | None:
    """Where rendered and parsed charts are kept (``RENDER_CACHE_ENV``); None when it is ``off``."""
    configured = os.environ.get(RENDER_CACHE_ENV, "")
    if configured == "off":
        return None
    return Path(configured) if configured else Path(platformdirs.user_cache_dir("neurodock")) / "rendered"


def _stored(key: tuple[str, ...], compute: Callable[[], Any]) -> tuple[Any, bytes | None]:
    """``stored``, with the value's ``marshal`` data (None when it is not plain data)."""
    directory = render_cache_dir()
    if directory is None:
        value = compute()
        with contextlib.suppress(ValueError):
            return value, marshal.dumps(value)
        return value, None
    path = directory / f"{hashlib.sha256(repr((_code_version(), *key)).encode()).hexdigest()}.marshal"
    with contextlib.suppress(OSError, EOFError, ValueError, TypeError):
        data = path.read_bytes()
        return marshal.loads(data), data
    value = compute()
    try:
        data = marshal.dumps(value)
    except ValueError:
        return value, None
    with contextlib.suppress(OSError, ValueError):
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            os.replace(tmp, path)  # whole or not at all, even with several writers
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return value, data


_KEPT_MAX = 512
_kept: dict[tuple[str, ...], Any] = {}
"""``_fresh``'s results in this process: their ``marshal`` data (or, for a value that is not plain data,
the value), oldest first."""


def _fresh(key: tuple[str, ...], compute: Callable[[], Any]) -> Any:
    """``stored(key, compute)``, computed or read once per process, and a fresh copy for each caller to
    change: the value kept as its ``marshal`` data, which reads back several times faster than a copy
    of the objects is made (the first caller takes the value read from disk, which nobody else holds)."""
    kept = _kept.get(key)
    if isinstance(kept, bytes):
        return marshal.loads(kept)
    if kept is not None:
        return copy_of(kept)
    value, data = _stored(key, compute)
    _kept[key] = data if data is not None else copy_of(value)
    while len(_kept) > _KEPT_MAX:
        del _kept[next(iter(_kept))]
    return value


@functools.cache
def _code_version() -> tuple[str, ...]:
    # The Helm SDK's version from its distribution's metadata: importing the SDK loads Helm's Go library,
    # which a plan whose renders are all stored never needs.
    from importlib.metadata import PackageNotFoundError, version

    try:
        helm_version = version("helm-python-sdk")
    except PackageNotFoundError:  # installed without its metadata
        import helm_python

        helm_version = helm_python.__version__
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest(), yaml.__version__, helm_version, sys.version


def parsed_document(text: str) -> dict[str, Any]:
    """The one mapping of a YAML text (``load_documents``), the caller's own copy, kept in the render cache
    under a digest of the text: a chart's CustomResourceDefinitions are megabytes of YAML, which every plan
    reads again."""
    [document] = _fresh(("document", hashlib.sha256(text.encode()).hexdigest()), lambda: load_documents(text))
    return document


def copy_of(value: Any) -> Any:
    """A deep copy of plain data (JSON-like values, tuples and ``HelmOutput``), several times faster
    than ``copy.deepcopy``; strings are immutable and shared."""
    if isinstance(value, dict):
        return {k: copy_of(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_of(v) for v in value]
    if isinstance(value, tuple):
        return tuple(copy_of(v) for v in value)
    if isinstance(value, HelmOutput):
        return HelmOutput(**{k: copy_of(getattr(value, k)) for k in value.__dataclass_fields__})
    return value


def crd_bundle(bundle: CrdBundle) -> tuple[dict[str, Any], ...]:
    """The CustomResourceDefinitions of a CRD bundle, from the chart cache."""
    folder = require(bundle)
    if folder is None:
        return ()
    return tuple(d for f in bundle.files for d in load_documents((folder / f).read_text()))


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
            if not any(d.get("kind") == "CustomResourceDefinition" for d in load_documents(text)):
                raise PullError(f"{bundle} from {url}: not a CustomResourceDefinition")
            (staged / file).write_text(text)
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(staged, target)
    return Pulled(bundle, target, True)


def ref_of(chart: str, version: str | None) -> ChartRef | None:
    """The pinned chart a release's ``chart`` and ``version`` inputs name (a chart name in a repository, or
    an OCI reference in the chart's own registry or a mirror), or a cached package's path, as releases
    of earlier NeuroDock versions named it; None for a chart NeuroDock does not pin."""
    for ref in CHARTS:
        if Path(chart).name == ref.package:
            return ref
        if version == ref.version and (chart in (ref.name, ref.reference)
                                       or (chart.startswith("oci://") and chart.rsplit("/", 1)[-1] == ref.name)):
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
