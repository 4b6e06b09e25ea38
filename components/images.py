"""Resolve the digest of every image NeuroDock pins by tag, and keep the digest lock
(``components/data/image-digests.json``) that ``components.versions.pinned`` applies. Run where the registries are
reachable, from the repository root::

    python -m components.images lock                 # resolve every image, write the lock
    python -m components.images lock --image REF     # one image (repeatable)
    python -m components.images lock --check         # exit 1 when an image is missing or its tag has moved

Exit status: 0 done (or, with ``--check``, the lock is complete and current); 1 a registry failed to answer, or
the check found a problem; 2 bad input (an unknown ``--image``, a malformed ``--endpoint`` or lock file).

The registry protocol, read anonymously (public images only), standard library only:

- OCI Distribution Specification v1.1 (opencontainers/distribution-spec ``spec.md``, "Pulling manifests"):
  ``HEAD /v2/<name>/manifests/<reference>`` with an ``Accept`` header naming the manifest types the client takes;
  the registry answers with the manifest's headers. ``Docker-Content-Digest`` is a Docker header that the spec
  calls optional ("clients SHOULD NOT depend on them"): when it is absent the manifest is fetched with ``GET``
  and its digest computed, sha256 over the bytes as served (OCI image-spec ``descriptor.md``, "Digests").
- Token authentication (distribution/distribution ``docs/spec/auth/token.md``; docs.docker.com/reference/api/
  registry/auth): a registry that wants a token answers 401 with ``WWW-Authenticate: Bearer realm="...",
  service="...",scope="..."``; the client asks the realm for a token (``?service=...&scope=repository:<name>:pull``),
  which answers JSON with ``token`` (or ``access_token``), and retries with ``Authorization: Bearer <token>``.
- Names (distribution/reference ``reference.go``, ``normalize.go``): ``reference := name [":" tag] ["@" digest]``;
  a first path component with a ``.`` or ``:`` (or ``localhost``) is the registry, otherwise the image is on
  ``docker.io``, where a single-component name is an official image under ``library/``. Docker Hub's API is
  served from ``registry-1.docker.io`` (moby ``registry/config.go``, ``DefaultRegistryHost``); every other
  registry (ghcr.io, nvcr.io, registry.k8s.io, gcr.io, public.ecr.aws) from its own host.

The digest locked is the one the tag names: for a multi-platform image, its index (manifest list), which is what
a node pulling ``name:tag@digest`` resolves to its own platform.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from components.versions import DIGEST, IMAGE_LOCK_FILE, LOCKABLE_IMAGES, lock_entry_shape_problem

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
"""What the manifest request accepts: OCI image index and Docker manifest list (multi-platform) first, then the
single-platform OCI and Docker manifests (OCI image-spec ``media-types.md``; Docker Image Manifest V2 schema 2)."""
DOCKER_HUB = "docker.io"
REGISTRY_HOSTS = {DOCKER_HUB: "registry-1.docker.io"}
"""Registries whose API is not served from the name's own host."""
DEFAULT_TIMEOUT_S = 20.0
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class InputError(ValueError):
    """Bad input from the user: exit status 2."""


class RegistryError(RuntimeError):
    """A registry (or its token service) could not be asked, or answered something unusable."""


@dataclass(frozen=True)
class ImageRef:
    """An image reference split the way the registry API takes it."""

    registry: str
    """Registry name as written (``docker.io`` when the reference names none)."""
    repository: str
    """Repository path on that registry (``library/python`` for ``python``)."""
    tag: str

    @classmethod
    def parse(cls, ref: str) -> ImageRef:
        """Split ``[registry/]path:tag``; a reference with a digest or without a tag is an ``InputError``."""
        if "@" in ref:
            raise InputError(f"{ref!r} already carries a digest: the lock holds tag references only")
        name, colon, tag = ref.rpartition(":")
        if not colon or "/" in tag:
            raise InputError(f"{ref!r} has no tag: pin a tag (name:tag) first")
        if not _TAG.fullmatch(tag):
            raise InputError(f"{ref!r}: {tag!r} is not a valid tag")
        first, slash, rest = name.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            registry, path = first, rest
        else:
            registry, path = DOCKER_HUB, name
        if registry == DOCKER_HUB and "/" not in path:
            path = f"library/{path}"
        if not all(_PATH_COMPONENT.fullmatch(c) for c in path.split("/")):
            raise InputError(f"{ref!r}: {path!r} is not a valid repository path")
        return cls(registry, path, tag)


def _challenge(header: str | None) -> dict[str, str]:
    """The parameters of a ``Bearer`` challenge; a registry asking for anything else needs credentials."""
    scheme, _, params = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        raise RegistryError(f"asks for {scheme or 'unknown'} authentication, not an anonymous Bearer token: "
                            "this command reads public images only")
    found = dict(_CHALLENGE_PARAM.findall(params))
    if "realm" not in found:
        raise RegistryError(f"sent a Bearer challenge without a realm: {header!r}")
    return found


class RegistryClient:
    """Reads digests from registries, anonymously. ``endpoints`` maps a registry name to the base URL of its API
    (``https://<host>`` otherwise): for a mirror, or a test's local registry."""

    def __init__(self, endpoints: Mapping[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT_S):
        self.endpoints = dict(endpoints or {})
        self.timeout = timeout

    def base_url(self, registry: str) -> str:
        return self.endpoints.get(registry) or f"https://{REGISTRY_HOSTS.get(registry, registry)}"

    def _send(self, method: str, url: str, headers: Mapping[str, str]) -> tuple[int, Mapping[str, str], bytes]:
        if not url.startswith(("https://", "http://")):
            # A token realm comes from the registry's answer: never let it name a file or another scheme.
            raise RegistryError(f"{url!r} is not an http(s) URL")
        request = urllib.request.Request(url, method=method, headers=dict(headers))
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            raise RegistryError(f"{url}: no answer ({getattr(e, 'reason', e)})") from e

    def _bearer(self, header: str | None, repository: str) -> str:
        """The ``Authorization`` value answering the challenge ``header``."""
        return f"Bearer {self._token(_challenge(header), repository)}"

    def _token(self, challenge: dict[str, str], repository: str) -> str:
        query = {"scope": challenge.get("scope") or f"repository:{repository}:pull"}
        if challenge.get("service"):
            query["service"] = challenge["service"]
        url = f"{challenge['realm']}?{urllib.parse.urlencode(query)}"
        status, _, body = self._send("GET", url, {})
        if status != 200:
            raise RegistryError(f"token service {challenge['realm']} answered {status}")
        try:
            answer = json.loads(body)
            token = answer.get("token") or answer.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token service {challenge['realm']} sent no token")
        return token

    def digest(self, image: str) -> str:
        """The digest ``image``'s tag names now (``sha256:...``)."""
        ref = ImageRef.parse(image)
        base = self.base_url(ref.registry).rstrip("/")
        try:
            return self._digest(ref, base)
        except RegistryError as e:
            raise RegistryError(f"{image}: {e}") from e

    def _digest(self, ref: ImageRef, base: str) -> str:
        headers = {"Accept": ", ".join(MANIFEST_TYPES)}
        status, answer, _ = self._send("GET", f"{base}/v2/", {})
        if status == 401:
            headers["Authorization"] = self._bearer(answer.get("WWW-Authenticate"), ref.repository)
        elif status != 200:
            raise RegistryError(f"{base}/v2/ answered {status}: not a registry API")
        url = f"{base}/v2/{ref.repository}/manifests/{ref.tag}"
        for attempt in range(2):
            status, answer, _ = self._send("HEAD", url, headers)
            if status == 401 and attempt == 0:
                # The manifest's own challenge (a registry that answers /v2/ openly, or sends the request on to a
                # backend with its own token service) names the scope it wants.
                headers["Authorization"] = self._bearer(answer.get("WWW-Authenticate"), ref.repository)
                continue
            break
        if status == 404:
            raise RegistryError(f"the registry has no tag {ref.tag!r} in {ref.repository} (404)")
        if status == 429:
            raise RegistryError("rate limited by the registry (429): retry later")
        if status != 200:
            raise RegistryError(f"{url} answered {status}")
        digest = answer.get("Docker-Content-Digest")
        if not digest:
            status, _, body = self._send("GET", url, headers)
            if status != 200:
                raise RegistryError(f"GET {url} answered {status}")
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if not DIGEST.fullmatch(digest):
            raise RegistryError(f"the registry sent {digest!r}, not a sha256 digest")
        return digest


def read_lock(path: Path) -> dict[str, dict[str, str]]:
    """The lock's entries; a malformed file is an ``InputError`` naming what is wrong."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as e:
        raise InputError(f"{path}: not JSON ({e}); fix it or delete it and run `lock` again") from e
    if not isinstance(raw, dict):
        raise InputError(f"{path}: expected an object mapping image references to entries")
    for ref, entry in raw.items():
        problem = lock_entry_problem(ref, entry)
        if problem:
            raise InputError(f"{path}: {ref!r} {problem}")
    return raw


def lock_entry_problem(ref: str, entry: object) -> str | None:
    """Why a lock entry is malformed, or None: a reference the registry API could not take, or an entry whose
    shape deploying refuses (``components.versions.lock_entry_shape_problem``)."""
    try:
        ImageRef.parse(ref)
    except InputError as e:
        return f"is not a tag reference ({e})"
    return lock_entry_shape_problem(ref, entry)


def write_lock(path: Path, lock: Mapping[str, Mapping[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(sorted(lock.items())), indent=2) + "\n")


def lock_images(client: RegistryClient, path: Path, images: Sequence[str], *, prune: bool,
                today: datetime.date | None = None, out=None) -> int:
    """Resolve ``images`` and write their digests into the lock at ``path``; an unchanged digest keeps its entry
    (and date). ``prune`` drops entries of images NeuroDock no longer pins. Returns the exit status."""
    out = out or sys.stdout
    lock = read_lock(path)
    day = (today or datetime.date.today()).isoformat()
    failed = 0
    for image in images:
        digest = _digest_or_report(client, image, out)
        if digest is None:
            failed += 1
            continue
        previous = lock.get(image, {}).get("digest")
        if previous != digest:
            lock[image] = {"digest": digest, "resolved": day}
        print(f"{'same' if previous == digest else 'locked' if previous is None else 'MOVED'}  {image}  {digest}"
              + (f" (was {previous})" if previous not in (None, digest) else ""), file=out)
    if prune:
        for stale in sorted(set(lock) - set(LOCKABLE_IMAGES)):
            print(f"dropped {stale} (no longer pinned in components/versions.py)", file=out)
            del lock[stale]
    write_lock(path, lock)
    return 1 if failed else 0


def check_images(client: RegistryClient, path: Path, images: Sequence[str], *, stale: bool, out=None) -> int:
    """Exit status 1 when an image is missing from the lock, its tag now names another digest, a registry
    failed to answer, or (``stale``) the lock holds an image no longer pinned; else 0."""
    out = out or sys.stdout
    lock = read_lock(path)
    problems = 0
    for image in images:
        locked = lock.get(image, {}).get("digest")
        if locked is None:
            print(f"MISSING {image}: not in {path.name}; run `python -m components.images lock --image {image}`",
                  file=out)
            problems += 1
            continue
        digest = _digest_or_report(client, image, out)
        if digest is None:
            problems += 1
            continue
        if digest != locked:
            print(f"MOVED   {image}: the tag now names {digest}, the lock has {locked} "
                  f"(resolved {lock[image]['resolved']}); review the new image, then `lock --image {image}`",
                  file=out)
            problems += 1
        else:
            print(f"ok      {image}  {digest}", file=out)
    if stale:
        for ref in sorted(set(lock) - set(LOCKABLE_IMAGES)):
            print(f"STALE   {ref}: no longer pinned in components/versions.py; run `lock` to drop it", file=out)
            problems += 1
    return 1 if problems else 0


def _digest_or_report(client: RegistryClient, image: str, out) -> str | None:
    """The digest ``image``'s tag names now, or None after saying why the registry did not give it."""
    try:
        return client.digest(image)
    except RegistryError as e:
        print(f"FAILED  {e}", file=out)
        return None


def _endpoints(values: Iterable[str]) -> dict[str, str]:
    out = {}
    for value in values:
        registry, eq, url = value.partition("=")
        if not eq or not registry or not url.startswith(("http://", "https://")):
            raise InputError(f"--endpoint {value!r}: expected REGISTRY=URL, e.g. docker.io=https://mirror.example")
        out[registry] = url
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.images",
                                     description="Keep the image digest lock (components/data/image-digests.json).")
    sub = parser.add_subparsers(dest="command", required=True)
    lock = sub.add_parser("lock", help="resolve each pinned tag's digest and write it into the lock")
    lock.add_argument("--check", action="store_true",
                      help="write nothing; exit 1 when an image is missing or its tag names another digest")
    lock.add_argument("--image", action="append", default=[], metavar="REF",
                      help="only this image (name:tag as in components/versions.py); repeatable")
    lock.add_argument("--lock", type=Path, default=IMAGE_LOCK_FILE, help="the lock file (default: the project's)")
    lock.add_argument("--endpoint", action="append", default=[], metavar="REGISTRY=URL",
                      help="ask URL for REGISTRY's API instead of its own host (a mirror); repeatable")
    lock.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per HTTP request")
    args = parser.parse_args(argv)
    try:
        unknown = [i for i in args.image if i not in LOCKABLE_IMAGES]
        if unknown:
            raise InputError(f"--image {', '.join(unknown)}: not an image components/versions.py pins by tag; one of: "
                             + ", ".join(LOCKABLE_IMAGES))
        if not 0 < args.timeout <= 600:
            raise InputError(f"--timeout {args.timeout}: give seconds between 0 and 600")
        client = RegistryClient(_endpoints(args.endpoint), args.timeout)
        images = list(dict.fromkeys(args.image)) or list(LOCKABLE_IMAGES)
        if args.check:
            return check_images(client, args.lock, images, stale=not args.image)
        return lock_images(client, args.lock, images, prune=not args.image)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
