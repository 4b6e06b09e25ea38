"""The image digest lock: ``components.images lock`` against a local registry that speaks the OCI distribution
API with token authentication, ``--check``, ``versions.pinned``, and that no image constant escapes the lock."""

from __future__ import annotations

import datetime
import hashlib
import importlib.util
import io
import json
import re
import shutil
import sys
import tarfile
import threading
import tomllib
from contextlib import redirect_stderr, redirect_stdout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

import components.versions as versions
from components.images import (
    MANIFEST_TYPES,
    ImageRef,
    RegistryClient,
    RegistryError,
    lock_entry_problem,
    main,
    read_lock,
)
from infra import charts

REPO = Path(__file__).resolve().parent.parent
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
SERVICE = "fake-registry"


class FakeRegistry:
    """A registry on 127.0.0.1: ``/v2/`` challenges for a Bearer token from ``/token``; a manifest asked for
    without the token of its own repository is refused (401, with its challenge), as Docker Hub and ghcr.io do."""

    def __init__(self, manifests: dict[tuple[str, str], bytes], *, digest_header: bool = True,
                 challenge: str | None = None):
        self.manifests = manifests
        self.digest_header = digest_header
        self.challenge = challenge
        self.log: list[tuple[str, str]] = []
        self.accepts: list[str] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _challenge(self, scope: str | None = None) -> None:
                base = f"http://127.0.0.1:{registry.port}"
                value = registry.challenge or (f'Bearer realm="{base}/token",service="{SERVICE}"'
                                               + (f',scope="{scope}"' if scope else ""))
                self.send_response(401)
                self.send_header("WWW-Authenticate", value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _manifest(self, body: bool) -> None:
                url = urlsplit(self.path)
                registry.log.append((self.command, url.path))
                if url.path == "/v2/":
                    return self._challenge()
                if url.path == "/token":
                    query = parse_qs(url.query)
                    scope = query.get("scope", [""])[0]
                    match = re.fullmatch(r"repository:(.+):pull", scope)
                    if query.get("service") != [SERVICE] or match is None:
                        self.send_response(400)
                        self.end_headers()
                        return None
                    payload = json.dumps({"token": f"tok-{match.group(1)}"}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return None
                match = re.fullmatch(r"/v2/(.+)/manifests/([^/]+)", url.path)
                if match is None:
                    self.send_response(404)
                    self.end_headers()
                    return None
                repository, tag = match.groups()
                if self.headers.get("Authorization") != f"Bearer tok-{repository}":
                    return self._challenge(f"repository:{repository}:pull")
                registry.accepts.append(self.headers.get("Accept", ""))
                manifest = registry.manifests.get((repository, tag))
                if manifest is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                self.send_response(200)
                self.send_header("Content-Type", INDEX_TYPE)
                self.send_header("Content-Length", str(len(manifest)))
                if registry.digest_header:
                    self.send_header("Docker-Content-Digest", "sha256:" + hashlib.sha256(manifest).hexdigest())
                self.end_headers()
                if body:
                    self.wfile.write(manifest)
                return None

            def do_GET(self):
                self._manifest(body=True)

            def do_HEAD(self):
                self._manifest(body=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeRegistry:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def lockable(prefix: str) -> str:
    """The one lockable reference starting with ``prefix`` (the constants themselves carry a digest once the
    lock is filled; the lock is keyed by the tag form)."""
    [ref] = [i for i in versions.LOCKABLE_IMAGES if i.startswith(prefix)]
    return ref


VLLM = lockable("vllm/vllm-openai:")
PICKER = lockable("ghcr.io/llm-d/llm-d-router-endpoint-picker:")


def manifest(image: str, revision: int = 0) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": INDEX_TYPE, "annotations": {"ref": image, "rev": revision}},
                      sort_keys=True).encode()


def sha(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def served(images=versions.LOCKABLE_IMAGES) -> dict[tuple[str, str], bytes]:
    return {(ImageRef.parse(i).repository, ImageRef.parse(i).tag): manifest(i) for i in images}


def endpoint_args(url: str) -> list[str]:
    """Every registry the pinned images live on, pointed at the fake."""
    args = []
    for registry in sorted({ImageRef.parse(i).registry for i in versions.LOCKABLE_IMAGES}):
        args += ["--endpoint", f"{registry}={url}"]
    return args


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


# --- references -------------------------------------------------------------------------------------------


def test_references_split_as_the_registry_api_takes_them():
    assert ImageRef.parse("vllm/vllm-openai:v0.28.0") == ImageRef("docker.io", "vllm/vllm-openai", "v0.28.0")
    assert ImageRef.parse("python:3.13") == ImageRef("docker.io", "library/python", "3.13")
    assert ImageRef.parse("docker.io/library/python:3.13.9-alpine3.22").repository == "library/python"
    assert ImageRef.parse("nvcr.io/nvidia/k8s/dcgm-exporter:4.6.1-4.8.4-distroless") == ImageRef(
        "nvcr.io", "nvidia/k8s/dcgm-exporter", "4.6.1-4.8.4-distroless")
    assert ImageRef.parse("localhost:5000/a/b:1") == ImageRef("localhost:5000", "a/b", "1")
    client = RegistryClient()
    assert client.base_url("docker.io") == "https://registry-1.docker.io"
    for registry in ("ghcr.io", "nvcr.io", "registry.k8s.io", "gcr.io", "public.ecr.aws"):
        assert client.base_url(registry) == f"https://{registry}"
    assert RegistryClient({"ghcr.io": "http://mirror"}).base_url("ghcr.io") == "http://mirror"


@pytest.mark.parametrize("ref", ["vllm/vllm-openai", "a/b:1@sha256:" + "0" * 64, "localhost:5000/a", "A/B:1"])
def test_a_reference_without_a_tag_or_with_a_digest_is_refused(ref):
    with pytest.raises(ValueError, match=re.escape(repr(ref))):
        ImageRef.parse(ref)


# --- resolving --------------------------------------------------------------------------------------------


def test_the_digest_comes_from_the_registry_through_its_token_flow():
    image = "ghcr.io/llm-d/llm-d-router-endpoint-picker:v0.10.0"
    with FakeRegistry(served([image])) as fake:
        digest = RegistryClient({"ghcr.io": fake.url}).digest(image)
    assert digest == sha(manifest(image))
    # ping, token, then the manifest with the token; every manifest type accepted, multi-platform index first
    assert fake.log[:3] == [("GET", "/v2/"), ("GET", "/token"), ("HEAD", "/v2/llm-d/llm-d-router-endpoint-picker/"
                                                                         "manifests/v0.10.0")]
    assert fake.accepts == [", ".join(MANIFEST_TYPES)] and fake.accepts[0].startswith(INDEX_TYPE)


def test_without_docker_content_digest_the_manifest_is_hashed():
    image = "docker.io/library/python:3.13.9-alpine3.22"
    with FakeRegistry(served([image]), digest_header=False) as fake:
        digest = RegistryClient({"docker.io": fake.url}).digest(image)
    assert digest == sha(manifest(image))
    assert ("GET", "/v2/library/python/manifests/3.13.9-alpine3.22") in fake.log


def test_a_missing_tag_and_a_registry_wanting_credentials_are_clear_errors():
    with FakeRegistry({}) as fake, pytest.raises(RegistryError, match=r"no tag 'v1' in a/b \(404\)"):
        RegistryClient({"ghcr.io": fake.url}).digest("ghcr.io/a/b:v1")
    with FakeRegistry(served(["ghcr.io/a/b:v1"]), challenge='Basic realm="x"') as fake, \
            pytest.raises(RegistryError, match="Basic authentication"):
        RegistryClient({"ghcr.io": fake.url}).digest("ghcr.io/a/b:v1")
    with pytest.raises(RegistryError, match="no answer"):
        RegistryClient({"ghcr.io": "http://127.0.0.1:9"}, timeout=2).digest("ghcr.io/a/b:v1")


# --- lock and --check -------------------------------------------------------------------------------------


def test_lock_writes_the_digest_of_every_pinned_image(tmp_path):
    lock_file = tmp_path / "lock.json"
    with FakeRegistry(served()) as fake:
        code, out, _ = run("lock", "--lock", str(lock_file), *endpoint_args(fake.url))
    assert code == 0, out
    lock = read_lock(lock_file)
    assert sorted(lock) == sorted(versions.LOCKABLE_IMAGES)
    for image in versions.LOCKABLE_IMAGES:
        assert lock[image] == {"digest": sha(manifest(image)), "resolved": datetime.date.today().isoformat()}


def test_a_failed_image_is_reported_and_the_others_still_locked(tmp_path):
    lock_file = tmp_path / "lock.json"
    missing = lockable("registry.k8s.io/gateway-api-inference-extension/bbr:")
    with FakeRegistry(served([i for i in versions.LOCKABLE_IMAGES if i != missing])) as fake:
        code, out, _ = run("lock", "--lock", str(lock_file), *endpoint_args(fake.url))
    assert code == 1
    assert f"FAILED  {missing}" in out
    lock = read_lock(lock_file)
    assert missing not in lock and len(lock) == len(versions.LOCKABLE_IMAGES) - 1


def test_check_passes_on_a_current_lock_and_catches_a_moved_tag(tmp_path):
    lock_file = tmp_path / "lock.json"
    manifests = served()
    with FakeRegistry(manifests) as fake:
        assert run("lock", "--lock", str(lock_file), *endpoint_args(fake.url))[0] == 0
        before = lock_file.read_text()
        code, out, _ = run("lock", "--check", "--lock", str(lock_file), *endpoint_args(fake.url))
        assert code == 0, out
        moved = ImageRef.parse(VLLM)
        manifests[(moved.repository, moved.tag)] = manifest(VLLM, revision=1)
        code, out, _ = run("lock", "--check", "--lock", str(lock_file), *endpoint_args(fake.url))
    assert code == 1
    assert [line.split()[1].rstrip(":") for line in out.splitlines() if line.startswith("MOVED")] == [VLLM]
    assert lock_file.read_text() == before  # --check writes nothing


def test_check_catches_an_image_missing_from_the_lock_and_a_stale_entry(tmp_path):
    lock_file = tmp_path / "lock.json"
    with FakeRegistry(served()) as fake:
        run("lock", "--lock", str(lock_file), *endpoint_args(fake.url))
        lock = json.loads(lock_file.read_text())
        gcloud = lockable("gcr.io/google.com/cloudsdktool/google-cloud-cli:")
        del lock[gcloud]
        lock["ghcr.io/gone/image:v1"] = {"digest": sha(b"x"), "resolved": "2026-01-01"}
        lock_file.write_text(json.dumps(lock))
        code, out, _ = run("lock", "--check", "--lock", str(lock_file), *endpoint_args(fake.url))
        assert code == 1
        assert f"MISSING {gcloud}" in out and "STALE   ghcr.io/gone/image:v1" in out
        # a full `lock` fills the missing image and drops the stale one; the check then passes
        assert run("lock", "--lock", str(lock_file), *endpoint_args(fake.url))[0] == 0
        assert run("lock", "--check", "--lock", str(lock_file), *endpoint_args(fake.url))[0] == 0


def test_locking_one_image_keeps_the_others(tmp_path):
    lock_file = tmp_path / "lock.json"
    other = {"ghcr.io/gone/image:v1": {"digest": sha(b"x"), "resolved": "2026-01-01"}}
    lock_file.write_text(json.dumps(other))
    with FakeRegistry(served()) as fake:
        code, _, _ = run("lock", "--image", VLLM, "--lock", str(lock_file), *endpoint_args(fake.url))
    assert code == 0
    assert set(read_lock(lock_file)) == {VLLM, *other}


@pytest.mark.parametrize(("argv", "message"), [
    (["--image", "ghcr.io/not/pinned:v1"], "not an image components/versions.py pins by tag"),
    (["--endpoint", "ghcr.io"], "expected REGISTRY=URL"),
    (["--timeout", "0"], "--timeout"),
    (["--bad-lock"], "not JSON"),
])
def test_bad_input_exits_2_naming_the_problem(tmp_path, argv, message):
    lock_file = tmp_path / "lock.json"
    if argv == ["--bad-lock"]:
        lock_file.write_text("{not json")
        argv = ["--check", "--image", VLLM]
    code, _, err = run("lock", "--lock", str(lock_file), *argv)
    assert code == 2 and message in err


# --- the lock file and pinned() ---------------------------------------------------------------------------


def test_the_committed_lock_is_valid_and_holds_only_pinned_images():
    lock = read_lock(versions.IMAGE_LOCK_FILE)  # raises on a malformed entry
    assert set(lock) <= set(versions.LOCKABLE_IMAGES)
    assert versions.image_lock() == {ref: entry["digest"] for ref, entry in lock.items()}
    # packaged: components/data is a package and setuptools ships its *.json
    assert (versions.IMAGE_LOCK_FILE.parent / "__init__.py").is_file()
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "*.json" in package_data["*"]


@pytest.mark.parametrize(("ref", "entry", "problem"), [
    ("a/b:1", {"digest": "sha256:" + "0" * 64, "resolved": "2026-01-01"}, None),
    ("a/b:1", {"digest": "sha256:" + "0" * 63, "resolved": "2026-01-01"}, "digest"),
    ("a/b:1", {"digest": "sha256:" + "A" * 64, "resolved": "2026-01-01"}, "digest"),
    ("a/b:1", {"digest": "sha256:" + "0" * 64}, "needs exactly"),
    ("a/b:1", {"digest": "sha256:" + "0" * 64, "resolved": "yesterday"}, "resolved"),
    ("a/b", {"digest": "sha256:" + "0" * 64, "resolved": "2026-01-01"}, "tag reference"),
])
def test_lock_entries_are_checked(ref, entry, problem):
    found = lock_entry_problem(ref, entry)
    assert (found is None) if problem is None else (problem in found)


@pytest.fixture
def lock_with(monkeypatch, tmp_path):
    def write(entries: dict) -> None:
        path = tmp_path / "image-digests.json"
        path.write_text(json.dumps(entries))
        monkeypatch.setattr(versions, "IMAGE_LOCK_FILE", path)
        monkeypatch.setattr(versions, "_LOCKABLE", [])
        versions.image_lock.cache_clear()
    yield write
    versions.image_lock.cache_clear()


def test_pinned_appends_the_locked_digest_and_only_then(lock_with):
    digest = "sha256:" + "ab" * 32
    lock_with({"ghcr.io/a/b:v1": {"digest": digest, "resolved": "2026-01-01"}})
    assert versions.pinned("ghcr.io/a/b:v1") == f"ghcr.io/a/b:v1@{digest}"
    assert versions.pinned("ghcr.io/a/b:v2") == "ghcr.io/a/b:v2"  # not locked: the tag alone
    already = "ghcr.io/a/b:v1@sha256:" + "cd" * 32
    assert versions.pinned(already) == already  # a digest in the reference wins
    assert versions.pinned_tag("ghcr.io/a/b", "v1") == f"v1@{digest}"
    assert versions.pinned_tag("ghcr.io/a/b", "v2") == "v2"
    assert versions._LOCKABLE == ["ghcr.io/a/b:v1", "ghcr.io/a/b:v2"]


def test_a_malformed_lock_fails_loudly(lock_with):
    lock_with({"ghcr.io/a/b:v1": {"digest": "sha256:short", "resolved": "2026-01-01"}})
    with pytest.raises(ValueError, match=r"image-digests\.json: 'ghcr\.io/a/b:v1'"):
        versions.pinned("ghcr.io/a/b:v1")


def _versions_with_lock(tmp_path: Path, lock: dict, extra: str = ""):
    """A fresh copy of components/versions.py whose lock is ``lock`` (its data file sits beside it)."""
    (tmp_path / "data").mkdir(parents=True)
    (tmp_path / "data" / "image-digests.json").write_text(json.dumps(lock))
    shutil.copy(Path(versions.__file__), tmp_path / "versions.py")
    if extra:
        with (tmp_path / "versions.py").open("a") as f:
            f.write(extra)
    spec = importlib.util.spec_from_file_location("versions_under_test", tmp_path / "versions.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.pop("versions_under_test", None)
    spec.loader.exec_module(module)
    return module


def _unpinned_image_constants(module) -> list[str]:
    """Public constants naming images that carry no digest. A constant of a shape this does not know fails, so
    no new kind of image constant slips past."""
    out = []
    for name, value in vars(module).items():
        if name.startswith("_") or "IMAGE" not in name or name in ("IMAGE_LOCK_FILE", "LOCKABLE_IMAGES"):
            continue
        if isinstance(value, float):  # sizes (VLLM_IMAGE_GB)
            continue
        if isinstance(value, str):
            refs = [value]
        elif isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
            refs = list(value.values())  # KIND_NODE_IMAGES; CLUSTER_AUTOSCALER_IMAGE_TAGS (tags)
        elif isinstance(value, tuple) and len(value) == 3 and all(isinstance(v, str) for v in value):
            refs = [f"{value[0]}/{value[1]}:{value[2]}"]  # (registry, repository, tag)
        else:
            raise AssertionError(f"versions.{name}: an image constant of a shape this test does not know")
        out += [name for ref in refs if not re.search(r"@sha256:[0-9a-f]{64}$", ref)]
    return sorted(set(out))


def test_every_image_constant_is_digest_pinned_or_goes_through_the_lock(tmp_path):
    full = {ref: {"digest": "sha256:" + hashlib.sha256(ref.encode()).hexdigest(), "resolved": "2026-01-01"}
            for ref in versions.LOCKABLE_IMAGES}
    locked = _versions_with_lock(tmp_path / "full", full)
    assert _unpinned_image_constants(locked) == []
    # the lock reaches each form: plain references, the picker's chart tag, the autoscaler's chart tags
    assert f"{VLLM}@{full[VLLM]['digest']}" == locked.VLLM_IMAGE
    registry, repository, tag = locked.ENDPOINT_PICKER_IMAGE
    assert f"{registry}/{repository}:{tag}" == f"{PICKER}@{full[PICKER]['digest']}"
    assert all("@sha256:" in t for t in locked.CLUSTER_AUTOSCALER_IMAGE_TAGS.values())
    # controls: an empty lock leaves the tags as they are (plans unchanged), and a bare tag constant is caught
    empty = _versions_with_lock(tmp_path / "empty", {})
    registry, repository, tag = empty.ENDPOINT_PICKER_IMAGE
    assert empty.VLLM_IMAGE == VLLM and f"{registry}/{repository}:{tag}" == PICKER
    assert "VLLM_IMAGE" in _unpinned_image_constants(empty)
    bare = _versions_with_lock(tmp_path / "bare", full, extra='\nNEW_SIDECAR_IMAGE = "ghcr.io/x/sidecar:v1"\n')
    assert _unpinned_image_constants(bare) == ["NEW_SIDECAR_IMAGE"]


def _chart_file(package: str, member_suffix: str) -> str:
    ref = next(r for r in versions.CHARTS if r.package == package)
    with tarfile.open(charts.cached(ref)) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(member_suffix))
        return tar.extractfile(member).read().decode()


def test_the_charts_render_the_tag_after_a_colon_so_a_digest_can_ride_on_it():
    # llm-d-router-gateway v0.10.0: no digest value; registry/repository:tag
    template = _chart_file(versions.LLM_D_ROUTER.package, "charts/router/templates/_deployment.yaml")
    assert ("image: {{ .Values.router.epp.image.registry }}/{{ .Values.router.epp.image.repository }}:"
            "{{ .Values.router.epp.image.tag }}") in template
    assert "digest" not in template
    # cluster-autoscaler 9.59.0: repository:tag, and its default repository is the one the lock names
    template = _chart_file(versions.CLUSTER_AUTOSCALER.package, "cluster-autoscaler/templates/deployment.yaml")
    assert 'image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"' in template
    values = _chart_file(versions.CLUSTER_AUTOSCALER.package, "cluster-autoscaler/values.yaml")
    assert re.search(rf"^  repository: {re.escape(versions._CLUSTER_AUTOSCALER_REPOSITORY)}$", values, re.M)
