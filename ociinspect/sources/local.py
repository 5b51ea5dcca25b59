"""Local sources: OCI image layouts (``oci:DIR``, ``oci-archive:FILE``) and ``docker save`` tarballs.

Both are built on :mod:`ociinspect.sources.files`, so a layout directory and the same layout in a tar behave
identically.  Blobs are read by seek; nothing is extracted to disk.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from ociinspect.content.compression import sniff as sniff_compression
from ociinspect.errors import InvalidImage, InvalidReference, NotFound, UsageError
from ociinspect.model import digest as _digest
from ociinspect.model import mediatypes as mt
from ociinspect.model.image import RawManifest
from ociinspect.model.reference import Reference, parse_repository
from ociinspect.sources.base import MAX_MANIFEST_BYTES, parse_json
from ociinspect.sources.files import DirFiles, Files, TarFiles

__all__ = ["DockerArchiveSource", "LayoutSource", "open_local"]

REF_NAME = "org.opencontainers.image.ref.name"
_CONTAINERD_NAME = "io.containerd.image.name"


class _LocalBlobs:
    """Blob access shared by the local sources: ``_blob_path`` maps a digest to a file of ``self.files``."""

    files: Files
    reference: Reference

    @property
    def kind(self) -> str:
        return "local"

    def _blob_path(self, digest: str) -> str:
        algorithm, hexpart = _digest.parse(digest)
        return f"blobs/{algorithm}/{hexpart}"

    def _missing(self, digest: str) -> NotFound:
        return NotFound(
            f"reading {self.reference}: blob {digest} is missing",
            hint="the layout or archive is incomplete; export it again (skopeo copy / docker save)",
        )

    def blob(self, digest: str, *, size: int | None, max_bytes: int) -> bytes:
        path = self._blob_path(digest)
        if not self.files.exists(path):
            raise self._missing(digest)
        data = self.files.read(path, max_bytes=max_bytes)
        _digest.verify(
            data, digest, what=f"reading {self.reference}: blob {_digest.short(digest)}", size=size
        )
        return data

    def blob_range(self, digest: str, start: int, end: int) -> bytes:
        path = self._blob_path(digest)
        if not self.files.exists(path):
            raise self._missing(digest)
        return self.files.read_range(path, start, end - start + 1)

    @contextlib.contextmanager
    def open_blob(self, digest: str, *, size: int | None) -> Iterator[Iterator[bytes]]:
        path = self._blob_path(digest)
        if not self.files.exists(path):
            raise self._missing(digest)
        hasher = _digest.DigestHasher(
            digest, what=f"reading {self.reference}: blob {_digest.short(digest)}", size=size
        )
        with self.files.stream(path) as chunks:

            def verified() -> Iterator[bytes]:
                for chunk in chunks:
                    hasher.update(chunk)
                    yield chunk
                hasher.check()

            yield verified()

    def close(self) -> None:
        self.files.close()


class LayoutSource(_LocalBlobs):
    """An OCI image layout, as a directory (``oci:``) or a tar of one (``oci-archive:``)."""

    def __init__(self, reference: Reference, files: Files) -> None:
        self.reference = reference
        self.files = files
        self.warnings: list[str] = []

    def _read_index(self) -> tuple[bytes, dict[str, Any]]:
        what = f"reading {self.reference}"
        if not self.files.exists("index.json"):
            hint = "point oci: at the directory that holds oci-layout and index.json"
            if self.files.exists("manifest.json"):
                hint = "this looks like a `docker save` tarball: use docker-archive:"
            raise InvalidImage(f"{what}: not an OCI image layout (no index.json)", hint=hint)
        data = self.files.read("index.json", max_bytes=MAX_MANIFEST_BYTES)
        doc = parse_json(data, f"{what}: index.json")
        if not isinstance(doc, dict):
            raise InvalidImage(f"{what}: index.json is not a JSON object")
        return data, doc

    def _entries(self) -> tuple[bytes, list[dict[str, Any]]]:
        data, doc = self._read_index()
        entries = doc.get("manifests")
        if not isinstance(entries, list) or not entries:
            why = "lists no images"
            if "layers" in doc or "config" in doc:
                why = "is an image manifest, not an index: the layout is malformed"
            raise InvalidImage(f"reading {self.reference}: index.json {why}", hint="export the image again")
        good = [
            e
            for e in entries
            if isinstance(e, dict) and isinstance(e.get("digest"), str) and _digest.is_digest(e["digest"])
        ]
        if len(good) != len(entries):
            raise InvalidImage(f"reading {self.reference}: index.json has a malformed manifest entry")
        return data, good

    @staticmethod
    def _tags(entry: Mapping[str, Any]) -> list[str]:
        ann = entry.get("annotations") or {}
        tags = []
        if isinstance(ann, dict):
            if isinstance(ann.get(REF_NAME), str):
                tags.append(ann[REF_NAME])
            name = ann.get(_CONTAINERD_NAME)
            if isinstance(name, str) and ":" in name.rsplit("/", 1)[-1]:
                tags.append(name.rsplit(":", 1)[1])
        return tags

    def tags(self) -> list[str]:
        """Every tag the layout's index.json names (cost: reads index.json)."""
        _, entries = self._entries()
        return sorted({t for e in entries for t in self._tags(e)})

    def _load(self, entry: Mapping[str, Any]) -> RawManifest:
        digest = str(entry["digest"])
        size = entry.get("size")
        what = f"reading {self.reference}: manifest {digest}"
        path = self._blob_path(digest)
        if not self.files.exists(path):
            raise self._missing(digest)
        data = self.files.read(path, max_bytes=MAX_MANIFEST_BYTES)
        _digest.verify(data, digest, what=what, size=size if isinstance(size, int) else None)
        if not data.strip():
            raise InvalidImage(
                f"{what}: the manifest blob is empty", hint="the layout is corrupt; export it again"
            )
        mtype = entry.get("mediaType")
        return RawManifest(
            data, mt.manifest_media_type(mtype if isinstance(mtype, str) else None, data), digest
        )

    def root(self) -> RawManifest:
        ref = self.reference
        index_bytes, entries = self._entries()
        if ref.digest:
            for e in entries:
                if e["digest"] == ref.digest:
                    return self._load(e)
            return self.manifest(ref.digest)
        if ref.tag:
            matches = [e for e in entries if ref.tag in self._tags(e)]
            if not matches:
                available = ", ".join(self.tags()) or "none"
                raise NotFound(
                    f"reading {ref}: no image tagged {ref.tag!r} in the layout (tags: {available})",
                    hint="name one of the listed tags, or the image by digest with oci:DIR@sha256:…",
                )
            return self._load(matches[0])
        digests = {e["digest"] for e in entries}
        if len(digests) == 1:
            return self._load(entries[0])
        if all(isinstance(e.get("platform"), dict) for e in entries):
            # a layout whose index.json is itself a multi-platform index: resolve it like any index
            return RawManifest(index_bytes, mt.OCI_INDEX, _digest.compute(index_bytes))
        available = ", ".join(self.tags()) or "untagged"
        raise UsageError(
            f"reading {ref}: the layout holds {len(digests)} images; name one (tags: {available})",
            hint=f"write oci:{ref.path}:TAG or oci:{ref.path}@sha256:…",
        )

    def manifest(self, digest: str) -> RawManifest:
        return self._load({"digest": digest})


_HEX_NAME = re.compile(r"(?:^|/)(?:sha256[:/])?([a-f0-9]{64})(?:\.json)?$")


class DockerArchiveSource(_LocalBlobs):
    """A ``docker save`` tarball: classic (``manifest.json`` + ``<id>/layer.tar``), kaniko/ggcr style
    (``sha256:<hex>`` config, ``<hex>.tar.gz`` layers) and Docker 25+ (OCI blobs + ``manifest.json``).

    The archive stores no registry manifest, so a Docker schema2 manifest is synthesized from ``manifest.json``
    (its digest is that of the synthesized bytes; config digest, diff_ids and layers are the archive's own).
    Cost of opening: one pass over the tar headers, plus 6 bytes per layer to detect compression; compressed
    layers stored under a non-digest name are hashed once (a full read) to learn their digest.
    """

    def __init__(self, reference: Reference, files: TarFiles) -> None:
        self.reference = reference
        self.files = files
        self._paths: dict[str, str] = {}
        self.warnings: list[str] = []
        self._root = self._synthesize()

    def _select(self, entries: list[Any]) -> dict[str, Any]:
        ref = self.reference
        if ref.archive_index is not None:
            if ref.archive_index >= len(entries):
                raise NotFound(
                    f"reading {ref}: the archive holds {len(entries)} image(s); @{ref.archive_index} is out of range"
                )
            return dict(entries[ref.archive_index])
        if ref.archive_name:
            want = parse_repository(str(ref), ref.archive_name), ref.tag or "latest"
            for e in entries:
                for rt in _repo_tags(e):
                    try:
                        if _normalise_repo_tag(rt) == want:
                            return dict(e)
                    except InvalidReference:
                        continue  # a tag docker would not write cannot be the one asked for
            raise NotFound(
                f"reading {ref}: no image tagged {ref.archive_name}:{ref.tag} in the archive "
                f"(tags: {', '.join(_all_tags(entries)) or 'none'})",
                hint="name one of the listed tags, or the image by position with docker-archive:FILE:@N",
            )
        if len(entries) > 1:
            raise UsageError(
                f"reading {ref}: the archive holds {len(entries)} images; name one "
                f"(tags: {', '.join(_all_tags(entries)) or 'untagged'})",
                hint=f"write docker-archive:{ref.path}:REPO:TAG or docker-archive:{ref.path}:@N",
            )
        return dict(entries[0])

    def _synthesize(self) -> RawManifest:
        ref = self.reference
        what = f"reading {ref}"
        if not self.files.exists("manifest.json"):
            if self.files.exists("repositories"):
                why, hint = (
                    "it has no manifest.json (pre-1.10 docker save format)",
                    "save it again with a current docker",
                )
            elif self.files.exists("index.json"):
                why, hint = (
                    "it has no manifest.json but is an OCI layout tar",
                    "use oci-archive: for this file",
                )
            else:
                why, hint = (
                    "it has no manifest.json",
                    "make it with `docker save` or `skopeo copy … docker-archive:`",
                )
            raise InvalidImage(f"{what}: not a docker-archive: {why}", hint=hint)
        doc = parse_json(
            self.files.read("manifest.json", max_bytes=MAX_MANIFEST_BYTES), f"{what}: manifest.json"
        )
        if not isinstance(doc, list) or not doc or not all(isinstance(e, dict) for e in doc):
            raise InvalidImage(
                f"{what}: manifest.json does not list any image (expected a non-empty JSON array, got {json.dumps(doc)[:40]})",
                hint="the archive is corrupt; save it again",
            )
        entry = self._select(doc)
        config_path, layer_paths = entry.get("Config"), entry.get("Layers")
        if not isinstance(config_path, str) or not isinstance(layer_paths, list):
            raise InvalidImage(f"{what}: manifest.json entry lacks Config or Layers")
        config = self.files.read(config_path, max_bytes=MAX_MANIFEST_BYTES * 2)
        config_digest = _digest.compute(config)
        named = _HEX_NAME.search(config_path)
        if named and named.group(1) != config_digest.split(":", 1)[1]:
            # docker save names the config by its digest; hand-edited archives do not.  The content digest is
            # what the synthesized manifest records, so numbers stay right; say so instead of failing.
            self.warnings.append(f"config file {config_path} is not named by its digest ({config_digest})")
        self._paths[config_digest] = config_path
        diff_ids = _diff_ids(config)
        sources = entry.get("LayerSources") if isinstance(entry.get("LayerSources"), dict) else {}
        layers = []
        for i, path in enumerate(layer_paths):
            if not isinstance(path, str):
                raise InvalidImage(f"{what}: manifest.json has a layer path that is not a string")
            layers.append(self._layer(path, diff_ids[i] if i < len(diff_ids) else None, sources or {}))
        manifest = {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_MANIFEST,
            "config": {"mediaType": mt.DOCKER_CONFIG, "size": len(config), "digest": config_digest},
            "layers": layers,
        }
        data = json.dumps(manifest, indent=3).encode()
        return RawManifest(data, mt.DOCKER_MANIFEST, _digest.compute(data))

    def _layer(self, path: str, diff_id: str | None, sources: Mapping[str, Any]) -> dict[str, Any]:
        size = self.files.size(path)
        head = self.files.read_range(path, 0, 6)
        compression = sniff_compression(head)
        named = _HEX_NAME.search(path)
        if named and "blobs/" in path:
            digest = f"sha256:{named.group(1)}"
        elif compression == "none" and diff_id:
            digest = diff_id  # an uncompressed layer's digest is its diff_id; checked when streamed
        else:
            h = _digest.new_hash("sha256", size=size)
            with self.files.stream(path) as chunks:
                for chunk in chunks:
                    h.update(chunk)
            digest = f"sha256:{h.hexdigest()}"
        self._paths[digest] = path
        media_type = {
            "gzip": mt.DOCKER_LAYER_GZIP,
            "zstd": "application/vnd.docker.image.rootfs.diff.tar.zstd",
        }.get(compression, "application/vnd.docker.image.rootfs.diff.tar")
        src = sources.get(digest)
        if isinstance(src, dict) and isinstance(src.get("mediaType"), str):
            media_type = src["mediaType"]
        return {"mediaType": media_type, "size": size, "digest": digest}

    def _blob_path(self, digest: str) -> str:
        try:
            return self._paths[digest]
        except KeyError:
            raise self._missing(digest) from None

    def root(self) -> RawManifest:
        return self._root

    def manifest(self, digest: str) -> RawManifest:
        if digest == self._root.digest:
            return self._root
        raise NotFound(f"reading {self.reference}: a docker-archive holds no manifest {digest}")


def _diff_ids(config: bytes) -> list[str]:
    try:
        doc = json.loads(config)
        ids = doc["rootfs"]["diff_ids"]
        return [d for d in ids if isinstance(d, str)]
    except (ValueError, KeyError, TypeError, RecursionError):
        return []


def _normalise_repo_tag(text: str) -> tuple[tuple[str, str], str]:
    name, tag = text, "latest"
    if ":" in text.rsplit("/", 1)[-1]:
        name, tag = text.rsplit(":", 1)
    return parse_repository(text, name), tag


def _repo_tags(entry: Mapping[str, Any]) -> list[str]:
    """The string items of an entry's ``RepoTags`` (a hostile manifest.json may put anything there)."""
    tags = entry.get("RepoTags")
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def _all_tags(entries: list[Any]) -> list[str]:
    return [t for e in entries for t in _repo_tags(e)]


def open_local(reference: Reference) -> LayoutSource | DockerArchiveSource:
    """Open a local source for an ``oci:``, ``oci-archive:`` or ``docker-archive:`` reference.

    Cost: ``oci:`` none; archives one pass over the tar headers (docker-archive: see its class).
    """
    assert reference.path is not None
    if reference.path == "-" and reference.transport != "oci":  # an archive piped on stdin
        from ociinspect.sources.stdin import open_stdin_archive

        return open_stdin_archive(reference, open_local)
    if reference.transport == "oci":
        return LayoutSource(reference, DirFiles(reference.path))
    if reference.transport == "oci-archive":
        return LayoutSource(reference, TarFiles(reference.path, "oci-archive"))
    files = TarFiles(reference.path, "docker-archive")
    try:
        return DockerArchiveSource(reference, files)
    except BaseException:
        files.close()
        raise
