"""Registry corpora for the audit tests and benchmark, and the expected numbers computed from storage.

* :func:`corpus` yields deterministic ``(repository, tag, Built)`` pushes: small images on three shared bases
  (one base layer above 64 KiB, so its size comes from a Range read of the gzip trailer), OCI and Docker schema2
  manifests, OCI indexes and Docker manifest lists (amd64 + arm64), an OCI artifact, several tags per repository
  (``latest`` repeats the newest version), old and recent ``created`` dates.
* :class:`Pusher` puts them into a registry with plain HTTP (blob upload POST + PUT, manifest PUT): about
  1000 images/s on loopback, much faster than skopeo; tests also push fixture images with skopeo, an
  independent client.
* :func:`break_repositories` pushes ``broken/corrupt`` (its manifest blob is then corrupted in the registry's
  storage) and ``broken/noconfig`` (its config blob is then deleted from storage).
* :func:`expected_from_storage` recomputes the report's numbers from the registry's own storage directory
  (``docker/registry/v2``): tags from ``_manifests/tags/*/current/link``, manifests and configs parsed from
  ``blobs/sha256/xx/<hex>/data`` (content verified against its digest), sizes from ``os.stat`` of the blob
  files.  It shares no code with ociinspect.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from fixtures.build import canonical_json, digest_of, file_entry, layer, make_tar, pseudo_random

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OLD, RECENT = "2023-03-01T00:00:00Z", "2026-11-01T00:00:00Z"


@dataclass
class Built:
    """A manifest (image or index) with every blob it needs and its child manifests."""

    manifest: bytes
    media_type: str
    blobs: dict[str, bytes] = field(default_factory=dict)
    children: list[Built] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)


def _layer_blob(name: str, files: list[tuple[str, bytes]]) -> tuple[bytes, Any]:
    return layer(make_tar([file_entry(p, data) for p, data in files]))


_BASES: dict[str, tuple[bytes, Any]] = {}
_BASE_LOCK = threading.Lock()


def base_layer(name: str) -> tuple[bytes, Any]:
    """Three shared bases: debian (20 KiB), alpine (4 KiB) and ubuntu (100 KiB, above the 64 KiB whole-read
    threshold, so its size comes from the gzip trailer)."""
    with _BASE_LOCK:
        if name not in _BASES:
            release = {
                "debian": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n',
                "alpine": 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.3\n',
                "ubuntu": 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n',
            }[name]
            size = {"debian": 20_000, "alpine": 4_000, "ubuntu": 100_000}[name]
            _BASES[name] = _layer_blob(
                name,
                [("etc/os-release", release.encode()), (f"usr/lib/{name}.so", pseudo_random(name, size))],
            )
        return _BASES[name]


def build_image(
    seed: str,
    base: str,
    *,
    docker: bool = False,
    created: str = RECENT,
    arch: str = "amd64",
    variant: str | None = None,
    app_size: int = 2000,
    extra_size: int = 0,
) -> Built:
    """One image: ``base`` + an app layer (``app_size`` random bytes) [+ an extra layer of ``extra_size``]."""
    layers = [base_layer(base), _layer_blob(seed, [(f"app/{seed}.bin", pseudo_random(seed, app_size))])]
    if extra_size:
        layers.append(_layer_blob(seed + "x", [(f"opt/{seed}.dat", pseudo_random(seed + "x", extra_size))]))
    config_doc: dict[str, Any] = {
        "architecture": arch,
        "os": "linux",
        "created": created,
        "config": {"Cmd": [f"/app/{seed}.bin"]},
        "rootfs": {"type": "layers", "diff_ids": [f.diff_id for _, f in layers]},
        "history": [{"created": created, "created_by": f"layer {i}"} for i in range(len(layers))],
    }
    if variant:
        config_doc["variant"] = variant
    config = canonical_json(config_doc)
    layer_type = DOCKER_LAYER if docker else None
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
            "config": {
                "mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
                "digest": digest_of(config),
                "size": len(config),
            },
            "layers": [
                {"mediaType": layer_type or f.media_type, "digest": f.digest, "size": f.size}
                for _, f in layers
            ],
        }
    )
    blobs = {digest_of(config): config, **{f.digest: blob for blob, f in layers}}
    return Built(manifest, DOCKER_MANIFEST if docker else OCI_MANIFEST, blobs)


def build_index(children: list[tuple[Built, str, str | None]], *, docker: bool = False) -> Built:
    entries = []
    for child, arch, variant in children:
        platform = {"os": "linux", "architecture": arch, **({"variant": variant} if variant else {})}
        entries.append(
            {
                "mediaType": child.media_type,
                "digest": child.digest,
                "size": len(child.manifest),
                "platform": platform,
            }
        )
    media_type = DOCKER_LIST if docker else OCI_INDEX
    index = canonical_json({"schemaVersion": 2, "mediaType": media_type, "manifests": entries})
    return Built(index, media_type, {}, [c for c, _, _ in children])


def build_artifact(seed: str) -> Built:
    payload = json.dumps({"sbom": seed, "packages": [seed + str(i) for i in range(20)]}).encode()
    empty = b"{}"
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.sbom.v1+json",
            "config": {"mediaType": OCI_EMPTY, "digest": digest_of(empty), "size": 2},
            "layers": [
                {
                    "mediaType": "application/vnd.example.sbom.v1+json",
                    "digest": digest_of(payload),
                    "size": len(payload),
                }
            ],
        }
    )
    return Built(manifest, OCI_MANIFEST, {digest_of(empty): empty, digest_of(payload): payload})


IN_TOTO = "application/vnd.in-toto+json"


def build_attestation(seed: str, subject: Built) -> Built:
    """An attestation manifest as buildx writes one: an image config of platform unknown/unknown and in-toto
    statement layers (JSON, not tar)."""
    statement = canonical_json(
        {
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://slsa.dev/provenance/v0.2",
            "subject": [{"name": seed, "digest": {"sha256": subject.digest.split(":", 1)[1]}}],
            "predicate": {"builder": {"id": seed}},
        }
    )
    config = canonical_json(
        {
            "architecture": "unknown",
            "os": "unknown",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [digest_of(statement)]},
        }
    )
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
            "layers": [
                {
                    "mediaType": IN_TOTO,
                    "digest": digest_of(statement),
                    "size": len(statement),
                    "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"},
                }
            ],
        }
    )
    return Built(manifest, OCI_MANIFEST, {digest_of(config): config, digest_of(statement): statement})


def build_buildx_index(seed: str, base: str = "debian") -> Built:
    """What ``docker buildx build --platform linux/amd64,linux/arm64 --push`` pushes by default: an OCI index of
    both images plus one attestation manifest per image (platform unknown/unknown, annotated
    ``vnd.docker.reference.type: attestation-manifest`` and ``vnd.docker.reference.digest``)."""
    amd = build_image(seed + "/amd64", base, extra_size=3000)
    arm = build_image(seed + "/arm64", base, arch="arm64", variant="v8")
    entries: list[dict[str, Any]] = []
    children = []
    for image, platform in (
        (amd, {"os": "linux", "architecture": "amd64"}),
        (arm, {"os": "linux", "architecture": "arm64", "variant": "v8"}),
    ):
        entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": image.digest,
                "size": len(image.manifest),
                "platform": platform,
            }
        )
        children.append(image)
    for image in (amd, arm):
        att = build_attestation(seed, image)
        entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": att.digest,
                "size": len(att.manifest),
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {
                    "vnd.docker.reference.type": "attestation-manifest",
                    "vnd.docker.reference.digest": image.digest,
                },
            }
        )
        children.append(att)
    index = canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    return Built(index, OCI_INDEX, {}, children)


def index_chain(depth: int, seed: str) -> list[Built]:
    """An image under ``depth`` nested indexes, bottom first: ``[image, index 1, …, index depth]`` (each index
    lists the one below it; push them in this order, each by digest, the last by tag)."""
    chain = [build_image(seed, "alpine")]
    for _ in range(depth):
        below = chain[-1]
        entry = {"mediaType": below.media_type, "digest": below.digest, "size": len(below.manifest)}
        if below.media_type == OCI_MANIFEST:
            entry["platform"] = {"os": "linux", "architecture": "amd64"}
        chain.append(
            Built(
                canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}), OCI_INDEX
            )
        )
    return chain


def repo_name(i: int) -> str:
    return f"team{i % 7}/svc{i:05d}"


def base_image(name: str) -> Built:
    """The base itself as an image (one layer), as registries usually hold their bases."""
    blob, facts = base_layer(name)
    config = canonical_json(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": OLD,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [facts.diff_id]},
        }
    )
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
            "layers": [{"mediaType": facts.media_type, "digest": facts.digest, "size": facts.size}],
        }
    )
    return Built(manifest, OCI_MANIFEST, {digest_of(config): config, facts.digest: blob})


BASE_TAGS = {"debian": "12", "alpine": "3.20", "ubuntu": "24.04"}


def corpus(n_repos: int, *, first: int = 0, bases: bool = True) -> Iterator[tuple[str, str, Built]]:
    """Deterministic pushes for repositories ``first .. first + n_repos - 1`` (3–5 tags each, ``latest``
    repeating the newest version), after the three bases as images (``base/NAME``) when ``bases``."""
    if bases:
        for name, tag in BASE_TAGS.items():
            yield f"base/{name}", tag, base_image(name)
    for i in range(first, first + n_repos):
        repo = repo_name(i)
        base = ("debian", "alpine", "ubuntu")[i % 3]
        versions = 2 + i % 3
        kind = "docker" if i % 5 == 1 else "index" if i % 10 == 3 else "list" if i % 10 == 7 else "oci"
        if i % 53 == 5:
            kind = "artifact"
        newest: Built | None = None
        for v in range(versions):
            seed = f"{repo}:{v}"
            created = OLD if v == 0 and i % 4 == 0 else RECENT
            extra = 70_000 + (i % 5) * 1000 if (i % 4 == 2 and v == versions - 1) else 0
            if kind == "artifact":
                built = build_artifact(seed)
            elif kind in ("index", "list"):
                docker = kind == "list"
                amd = build_image(seed + "/amd64", base, docker=docker, created=created, extra_size=extra)
                arm = build_image(
                    seed + "/arm64", base, docker=docker, created=created, arch="arm64", variant="v8"
                )
                built = build_index([(amd, "amd64", None), (arm, "arm64", "v8")], docker=docker)
            else:
                built = build_image(
                    seed,
                    base,
                    docker=kind == "docker",
                    created=created,
                    extra_size=extra,
                    app_size=1000 + (i * 37 + v * 11) % 4000,
                )
            yield repo, f"1.{v}", built
            newest = built
        assert newest is not None
        yield repo, "latest", newest


class PushError(RuntimeError):
    pass


class Pusher:
    """Push :class:`Built` manifests with plain HTTP (the distribution API's monolithic blob upload)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._local = threading.local()
        self._done: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    @property
    def session(self) -> requests.Session:
        s: requests.Session | None = getattr(self._local, "s", None)
        if s is None:
            s = self._local.s = requests.Session()
        return s

    def _check(self, r: requests.Response, what: str, *ok: int) -> None:
        if r.status_code not in ok:
            raise PushError(f"{what}: HTTP {r.status_code}: {r.text[:300]}")

    def blob(self, repo: str, data: bytes) -> None:
        d = digest_of(data)
        with self._lock:
            if (repo, d) in self._done:
                return
        r = self.session.post(f"{self.url}/v2/{repo}/blobs/uploads/", timeout=30)
        self._check(r, f"upload {repo}", 202)
        location = r.headers["Location"]
        if location.startswith("/"):
            location = self.url + location
        sep = "&" if "?" in location else "?"
        r = self.session.put(
            f"{location}{sep}digest={d}",
            data=data,
            timeout=30,
            headers={"Content-Type": "application/octet-stream"},
        )
        self._check(r, f"put blob {repo}@{d}", 201)
        with self._lock:
            self._done.add((repo, d))

    def chain(self, repo: str, tag: str, chain: list[Built]) -> None:
        """Push an :func:`index_chain` bottom up without recursion (each manifest by digest, the top by tag)."""
        for built in chain[:-1]:
            for data in built.blobs.values():
                self.blob(repo, data)
            self._put(repo, built.digest, built)
        self._put(repo, tag, chain[-1])

    def _put(self, repo: str, reference: str, built: Built) -> None:
        r = self.session.put(
            f"{self.url}/v2/{repo}/manifests/{reference}",
            data=built.manifest,
            timeout=30,
            headers={"Content-Type": built.media_type},
        )
        self._check(r, f"put manifest {repo}:{reference}", 201)

    def manifest(self, repo: str, reference: str, built: Built) -> None:
        for child in built.children:
            self.push(repo, child.digest, child)
        for data in built.blobs.values():
            self.blob(repo, data)
        r = self.session.put(
            f"{self.url}/v2/{repo}/manifests/{reference}",
            data=built.manifest,
            timeout=30,
            headers={"Content-Type": built.media_type},
        )
        self._check(r, f"put manifest {repo}:{reference}", 201)

    push = manifest

    def push_all(self, items: list[tuple[str, str, Built]], workers: int = 8) -> None:
        """Push in parallel, one repository per task (so a repository's tags go in order)."""
        by_repo: dict[str, list[tuple[str, Built]]] = defaultdict(list)
        for repo, tag, built in items:
            by_repo[repo].append((tag, built))

        def one(repo: str) -> None:
            for tag, built in by_repo[repo]:
                self.push(repo, tag, built)

        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            for f in [pool.submit(one, r) for r in by_repo]:
                f.result()


def blob_path(data_dir: Path, digest: str) -> Path:
    hexa = digest.split(":", 1)[1]
    return data_dir / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexa[:2] / hexa / "data"


def break_repositories(pusher: Pusher, data_dir: Path) -> dict[str, str]:
    """Push ``broken/corrupt:1`` and ``broken/noconfig:1``, then break them in storage: one byte of the first's
    manifest is flipped (the registry serves it under its old digest); the second's config blob file is deleted.
    Returns ``{"repo:tag": what was broken}``."""
    corrupt = build_image("broken-corrupt", "debian")
    noconfig = build_image("broken-noconfig", "alpine")
    pusher.push("broken/corrupt", "1", corrupt)
    pusher.push("broken/noconfig", "1", noconfig)
    path = blob_path(data_dir, corrupt.digest)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x20
    path.write_bytes(bytes(raw))
    config_digest = json.loads(noconfig.manifest)["config"]["digest"]
    blob_path(data_dir, config_digest).unlink()
    return {"broken/corrupt:1": "manifest corrupted", "broken/noconfig:1": "config blob deleted"}


# ------------------------------------------------------------------------------ independent expectation


def _read_blob(data_dir: Path, digest: str) -> bytes | None:
    path = blob_path(data_dir, digest)
    if not path.is_file():
        return None
    data = path.read_bytes()
    return data if "sha256:" + hashlib.sha256(data).hexdigest() == digest else None


def expected_from_storage(data_dir: Path) -> dict[str, Any]:
    """The audit's headline numbers, recomputed from the registry's storage directory only (see the module
    docstring).  A tag counts only when every manifest and blob under it is present and intact."""
    root = data_dir / "docker" / "registry" / "v2"
    repos: list[str] = []
    for dirpath, dirnames, _ in os.walk(root / "repositories"):
        if "_manifests" in dirnames:
            repos.append(os.path.relpath(dirpath, root / "repositories"))
            dirnames[:] = [d for d in dirnames if not d.startswith("_")]
    tags: dict[tuple[str, str], str] = {}
    for repo in repos:
        tag_dir = root / "repositories" / repo / "_manifests" / "tags"
        for tag in sorted(os.listdir(tag_dir)) if tag_dir.is_dir() else []:
            link = tag_dir / tag / "current" / "link"
            if link.is_file():
                tags[(repo, tag)] = link.read_text().strip()

    def images_of(digest: str) -> list[tuple[str, dict[str, int]]] | None:
        raw = _read_blob(data_dir, digest)
        if raw is None:
            return None
        doc = json.loads(raw)
        if "manifests" in doc:
            out = []
            for entry in doc["manifests"]:
                sub = images_of(entry["digest"])
                if sub is None:
                    return None
                out += sub
            return out
        blobs = {}
        for desc in [doc["config"], *doc.get("layers", [])]:
            path = blob_path(data_dir, desc["digest"])
            if not path.is_file():
                return None
            blobs[desc["digest"]] = path.stat().st_size
        return [(digest, blobs)]

    image_blobs: dict[str, dict[str, int]] = {}
    repo_blobs: dict[str, set[str]] = defaultdict(set)
    broken = set()
    read = 0
    for (repo, tag), digest in tags.items():
        found = images_of(digest)
        if found is None:
            broken.add(f"{repo}:{tag}")
            continue
        read += 1
        for image, blobs in found:
            image_blobs[image] = blobs
            repo_blobs[repo].update(blobs)
    sizes = {b: s for blobs in image_blobs.values() for b, s in blobs.items()}
    users: dict[str, set[str]] = defaultdict(set)
    for repo, blobs in repo_blobs.items():
        for b in blobs:
            users[b].add(repo)
    return {
        "repositories": len(repos),
        "tags": len(tags),
        "tags_read": read,
        "images": len(image_blobs),
        "logical_size": sum(sum(b.values()) for b in image_blobs.values()),
        "deduplicated_size": sum(sizes.values()),
        "broken": broken,
        "repos": {
            repo: {
                "stored_size": sum(sizes[b] for b in repo_blobs.get(repo, set())),
                "unique_size": sum(sizes[b] for b in repo_blobs.get(repo, set()) if len(users[b]) == 1),
            }
            for repo in repos
        },
    }
