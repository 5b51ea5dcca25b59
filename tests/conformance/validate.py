"""Source conformance, in the manner of go-containerregistry's ``validate.Image``: the invariants every
:class:`ociinspect.sources.base.Source` must hold, checked from the outside with the standard library (and
``zstandard`` for zstd layers) — nothing here reuses ociinspect's loader, sizes or digest code.

For the manifest the source's reference names (or ``root_digest``) and, for an index, every child manifest:

* the manifest's digest is the digest of the bytes served, and a child's size is the index's descriptor size;
* every blob listed (config and layers) reads whole, and its sha256 and length are the descriptor's;
* ranges equal slices of the whole blob (first byte, a head, a tail, the last byte, the whole blob);
* a stream, joined, equals the whole read;
* an image config parses as a JSON object, and its ``rootfs.diff_ids`` are the sha256 of the uncompressed layers
  (gzip, zstd or plain, decided by the bytes' magic number);
* a digest the source does not hold raises :class:`ociinspect.errors.NotFound` (or a subclass) from ``manifest``,
  ``blob``, ``blob_range`` and ``open_blob``.

Cost: reads every blob of the image once whole, once streamed and a few ranges; decompresses every tar layer.
Meant for the small test images only.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
from typing import Any

import zstandard

from ociinspect.errors import NotFound, RangeNotSupported
from ociinspect.sources.base import Source

__all__ = ["ABSENT", "Checked", "ConformanceError", "validate_source"]

#: a well-formed digest no source holds
ABSENT = "sha256:" + hashlib.sha256(b"ociinspect conformance: content nobody stored").hexdigest()
INDEX_KEYS = ("manifests",)
IMAGE_CONFIGS = {"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"}
MAX_BLOB = 64 << 20


class ConformanceError(AssertionError):
    """A source broke an invariant; the message names the source, the digest and the invariant."""


@dataclasses.dataclass
class Checked:
    """What :func:`validate_source` looked at (so a test can tell a check that ran from one that had nothing)."""

    manifests: list[str] = dataclasses.field(default_factory=list)
    blobs: list[str] = dataclasses.field(default_factory=list)
    ranges: int = 0
    diff_ids: int = 0
    absent_checks: int = 0
    ranges_refused: list[str] = dataclasses.field(default_factory=list)


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _fail(src: Source, what: str) -> ConformanceError:
    return ConformanceError(f"{src.reference} ({type(src).__name__}): {what}")


def _uncompress(data: bytes) -> bytes:
    """The layer tar: gzip (every member), zstd (every frame) or the bytes as they are."""
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:4] == b"\x28\xb5\x2f\xfd":
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True)
        return reader.read()
    return data


def _descriptor(src: Source, d: Any, where: str) -> tuple[str, int]:
    if not isinstance(d, dict) or not isinstance(d.get("digest"), str) or not isinstance(d.get("size"), int):
        raise _fail(src, f"{where}: malformed descriptor {d!r:.200}")
    return d["digest"], d["size"]


def _check_manifest(src: Source, digest: str, data: bytes, size: int | None, checked: Checked) -> Any:
    if _sha256(data) != digest:
        raise _fail(src, f"manifest {digest}: the bytes served hash to {_sha256(data)}")
    if size is not None and len(data) != size:
        raise _fail(src, f"manifest {digest}: {len(data)} bytes served, the index says {size}")
    checked.manifests.append(digest)
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise _fail(src, f"manifest {digest} is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise _fail(src, f"manifest {digest} is not a JSON object")
    return doc


def _check_blob(src: Source, digest: str, size: int, checked: Checked, *, ranges_optional: bool) -> bytes:
    whole = src.blob(digest, size=size, max_bytes=MAX_BLOB)
    if _sha256(whole) != digest or len(whole) != size:
        raise _fail(src, f"blob {digest}: read {len(whole)} bytes hashing to {_sha256(whole)}, listed {size}")
    with src.open_blob(digest, size=size) as chunks:
        streamed = b"".join(chunks)
    if streamed != whole:
        raise _fail(src, f"blob {digest}: the stream ({len(streamed)} bytes) differs from the whole read")
    n = len(whole)
    if n:
        spans = {(0, 0), (0, min(n, 512) - 1), (n // 2, n - 1), (n - 1, n - 1), (0, n - 1)}
        for start, end in sorted(spans):
            try:
                piece = src.blob_range(digest, start, end)
            except RangeNotSupported:
                if not ranges_optional:
                    raise _fail(src, f"blob {digest}: Range {start}-{end} refused") from None
                checked.ranges_refused.append(digest)
                break
            if piece != whole[start : end + 1]:
                raise _fail(src, f"blob {digest}: range {start}-{end} is not that slice of the blob")
            checked.ranges += 1
    checked.blobs.append(digest)
    return whole


def _check_image(
    src: Source, doc: dict[str, Any], digest: str, checked: Checked, ranges_optional: bool
) -> None:
    config_digest, config_size = _descriptor(src, doc.get("config"), f"manifest {digest}: config")
    config = _check_blob(src, config_digest, config_size, checked, ranges_optional=ranges_optional)
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise _fail(src, f"manifest {digest}: layers is not a list")
    blobs = [
        _check_blob(
            src,
            *_descriptor(src, d, f"manifest {digest}: layer {i}"),
            checked,
            ranges_optional=ranges_optional,
        )
        for i, d in enumerate(layers)
    ]
    if doc["config"].get("mediaType") not in IMAGE_CONFIGS:
        return  # an artifact or attestation: its config is not an image config
    try:
        cfg = json.loads(config)
    except ValueError as exc:
        raise _fail(src, f"config {config_digest} is not JSON ({exc})") from None
    if not isinstance(cfg, dict):
        raise _fail(src, f"config {config_digest} is not a JSON object")
    diff_ids = (cfg.get("rootfs") or {}).get("diff_ids")
    if not isinstance(diff_ids, list) or len(diff_ids) != len(blobs):
        raise _fail(
            src, f"config {config_digest}: diff_ids {diff_ids!r:.200} do not pair with {len(blobs)} layers"
        )
    for i, (diff_id, blob) in enumerate(zip(diff_ids, blobs, strict=True)):
        actual = _sha256(_uncompress(blob))
        if actual != diff_id:
            raise _fail(src, f"layer {i} of {digest}: uncompressed sha256 {actual}, config says {diff_id}")
        checked.diff_ids += 1


def _check_absent(src: Source, checked: Checked) -> None:
    def expect_not_found(what: str, call: Any) -> None:
        try:
            call()
        except NotFound:
            checked.absent_checks += 1
            return
        except Exception as exc:
            raise _fail(src, f"{what} of an absent digest raised {type(exc).__name__}: {exc}") from None
        raise _fail(src, f"{what} of an absent digest returned instead of raising NotFound")

    def stream() -> None:
        with src.open_blob(ABSENT, size=None) as chunks:
            b"".join(chunks)

    expect_not_found("manifest()", lambda: src.manifest(ABSENT))
    expect_not_found("blob()", lambda: src.blob(ABSENT, size=None, max_bytes=MAX_BLOB))
    expect_not_found("blob_range()", lambda: src.blob_range(ABSENT, 0, 0))
    expect_not_found("open_blob()", stream)


def validate_source(src: Source, *, root_digest: str | None = None, ranges_optional: bool = False) -> Checked:
    """Check every invariant of the module docstring on ``src``; raise :class:`ConformanceError` on the first
    broken one.  ``root_digest`` reads that manifest instead of :meth:`Source.root` (the audit's source resolves
    tags itself); ``ranges_optional`` accepts a source that refuses Range (then every range is skipped).
    """
    checked = Checked()
    root = src.manifest(root_digest) if root_digest else src.root()
    if root_digest and root.digest != root_digest:
        raise _fail(src, f"manifest({root_digest}) answered {root.digest}")
    pending: list[tuple[str, bytes, int | None]] = [(root.digest, root.data, None)]
    while pending:
        digest, data, size = pending.pop(0)
        doc = _check_manifest(src, digest, data, size, checked)
        if any(key in doc for key in INDEX_KEYS):
            for i, d in enumerate(doc.get("manifests") or []):
                child_digest, child_size = _descriptor(src, d, f"index {digest}: manifest {i}")
                child = src.manifest(child_digest)
                if child.digest != child_digest:
                    raise _fail(src, f"manifest({child_digest}) answered {child.digest}")
                pending.append((child_digest, child.data, child_size))
        else:
            _check_image(src, doc, digest, checked, ranges_optional)
    _check_absent(src, checked)
    return checked
