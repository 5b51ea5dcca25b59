"""An in-memory source: content-addressed bytes plus a tag table, with read counters.

It implements the :class:`~ociinspect.sources.base.Source` protocol exactly as the registry and local sources do
(same typed errors, digests verified on whole reads and at the end of streams, ranges unverified), so the loader,
the scanners and the audit can be driven from bytes held in memory, and tests can assert what was fetched.

Cost: every read is a slice of a ``bytes`` object already in memory; nothing touches disk or the network.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Iterable, Iterator, Mapping

from ociinspect.errors import InvalidImage, LimitExceeded, NotFound, RangeNotSupported
from ociinspect.model import digest as _digest
from ociinspect.model import mediatypes as mt
from ociinspect.model.image import RawManifest
from ociinspect.model.reference import Reference, parse_reference
from ociinspect.sources.base import MAX_MANIFEST_BYTES

__all__ = ["MemorySource", "Reads"]

#: the stream chunk size (bytes); small enough that tests see several chunks per blob
CHUNK = 64 * 1024


@dataclasses.dataclass
class Reads:
    """What a :class:`MemorySource` handed out, in call order (digests) and in bytes."""

    manifests: list[str] = dataclasses.field(default_factory=list)
    blobs: list[str] = dataclasses.field(default_factory=list)
    ranges: list[tuple[str, int, int]] = dataclasses.field(default_factory=list)
    streams: list[str] = dataclasses.field(default_factory=list)
    blob_bytes: int = 0
    range_bytes: int = 0
    streamed_bytes: int = 0


class MemorySource:
    """A :class:`~ociinspect.sources.base.Source` over ``digest → bytes`` and ``tag → manifest``.

    * ``blobs``: content by digest (manifests, configs, layers alike); digests are not checked on the way in, so
      a test can plant corrupt content and see the typed :class:`~ociinspect.errors.DigestMismatch` on reading.
    * ``tags``: ``tag → manifest bytes`` (the bytes are added to the content under their sha256 digest) or
      ``tag → digest`` of content already held.  :meth:`root` serves the reference's digest, else its tag, else
      ``latest``.
    * ``media_types``: ``digest → media type`` a registry would send as Content-Type; without one, the
      ``mediaType`` inside the manifest (or its shape) decides, as for an OCI layout.
    * ``ranges=False``: :meth:`blob_range` raises :class:`~ociinspect.errors.RangeNotSupported`, like a registry
      that ignores Range.
    * ``kind``: ``"local"`` (default: ranges and streams are cheap) or ``"registry"`` (the loader then treats
      reads as costly, as it would for a real registry).
    * ``verify=False``: serve whatever is held under a digest unchecked (a lying registry: the only way to
      plant an index that lists its own digest); by default every whole read and stream is verified.
    * ``chunk``: the stream chunk size in bytes (:meth:`open_blob`).
    * ``reads`` (a :class:`Reads`) counts what was fetched; it is thread-safe.
    """

    def __init__(
        self,
        blobs: Mapping[str, bytes] | Iterable[bytes] = (),
        *,
        tags: Mapping[str, bytes | str] | None = None,
        media_types: Mapping[str, str] | None = None,
        reference: Reference | str = "oci:/memory:latest",
        ranges: bool = True,
        kind: str = "local",
        verify: bool = True,
        chunk: int = CHUNK,
    ) -> None:
        if kind not in ("local", "registry"):
            raise ValueError(f"kind must be 'local' or 'registry', not {kind!r}")
        if chunk < 1:
            raise ValueError(f"chunk must be at least 1 byte, not {chunk}")
        self.verify = verify
        self.chunk = chunk
        self.reference = parse_reference(reference) if isinstance(reference, str) else reference
        self.warnings: list[str] = []
        self.blobs: dict[str, bytes] = {}
        if isinstance(blobs, Mapping):
            self.blobs.update(blobs)
        else:
            for data in blobs:
                self.add(data)
        self.tags: dict[str, str] = {}
        for tag, value in (tags or {}).items():
            self.tags[tag] = self.add(value) if isinstance(value, bytes) else value
        self.media_types: dict[str, str] = dict(media_types or {})
        self.allow_ranges = ranges
        self._kind = kind
        self.reads = Reads()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        tags = {tag: _digest.short(d) if _digest.is_digest(d) else d for tag, d in self.tags.items()}
        return f"MemorySource({self.reference}, blobs={len(self.blobs)}, tags={tags}, verify={self.verify})"

    # ------------------------------------------------------------------------------------------ building

    def add(self, data: bytes, media_type: str | None = None) -> str:
        """Hold ``data`` under its sha256 digest (returned); ``media_type`` is what a registry would send."""
        digest = _digest.compute(data)
        self.blobs[digest] = data
        if media_type:
            self.media_types[digest] = media_type
        return digest

    # ------------------------------------------------------------------------------------------ protocol

    @property
    def kind(self) -> str:
        return self._kind

    def _missing(self, what: str, digest: str) -> NotFound:
        return NotFound(
            f"reading {self.reference}: {what} {digest} is not held in memory",
            hint="add the content to the MemorySource (blobs=... or tags=...)",
        )

    def _get(self, what: str, digest: str) -> bytes:
        _digest.parse(digest)  # a malformed digest is an InvalidReference, as for the other sources
        data = self.blobs.get(digest)
        if data is None:
            raise self._missing(what, digest)
        return data

    def _checked(self, what: str, digest: str, *, size: int | None, max_bytes: int) -> bytes:
        """Whole content by digest: at most ``max_bytes``, and verified (digest, ``size``) unless ``verify`` is off."""
        data = self._get(what, digest)
        doing = f"reading {self.reference}: {what} {_digest.short(digest)}"
        if len(data) > max_bytes:
            raise LimitExceeded(f"{doing} is {len(data)} bytes, over the {max_bytes}-byte limit")
        if self.verify:
            _digest.verify(data, digest, what=doing, size=size)
        return data

    def root(self) -> RawManifest:
        """The manifest the reference names (its digest, else its tag, else ``latest``).  Cost: a dict lookup."""
        if self.reference.digest:
            return self.manifest(self.reference.digest)
        tag = self.reference.tag or "latest"
        digest = self.tags.get(tag)
        if digest is None:
            known = ", ".join(sorted(self.tags)) or "none"
            raise NotFound(
                f"reading {self.reference}: no tag {tag!r} is held in memory (tags: {known})",
                hint="name one of the tags listed, or pin a digest",
            )
        return self.manifest(digest)

    def manifest(self, digest: str) -> RawManifest:
        """A manifest by digest, verified.  Cost: one dict lookup and one hash of the manifest."""
        data = self._checked("manifest", digest, size=None, max_bytes=MAX_MANIFEST_BYTES)
        with self._lock:
            self.reads.manifests.append(digest)
        return RawManifest(data, mt.manifest_media_type(self.media_types.get(digest), data), digest)

    def blob(self, digest: str, *, size: int | None, max_bytes: int) -> bytes:
        """A whole blob, verified against ``digest`` and ``size``.  Cost: one hash of the blob."""
        data = self._checked("blob", digest, size=size, max_bytes=max_bytes)
        with self._lock:
            self.reads.blobs.append(digest)
            self.reads.blob_bytes += len(data)
        return data

    def blob_range(self, digest: str, start: int, end: int) -> bytes:
        """Bytes ``start..end`` (inclusive, clipped to the blob), unverified.  Cost: one slice."""
        data = self._get("blob", digest)
        if not self.allow_ranges:
            raise RangeNotSupported(
                f"reading {self.reference}: this memory source refuses Range (as some registries do)",
                hint="the reader falls back to streaming the blob",
            )
        if start < 0 or end < start:
            raise InvalidImage(f"reading {self.reference}: bad byte range {start}-{end} of blob {digest}")
        piece = data[start : end + 1]
        with self._lock:
            self.reads.ranges.append((digest, start, end))
            self.reads.range_bytes += len(piece)
        return piece

    @contextlib.contextmanager
    def open_blob(self, digest: str, *, size: int | None) -> Iterator[Iterator[bytes]]:
        """Chunks of a blob; digest and size are checked when the stream is exhausted.  Cost: slices."""
        data = self._get("blob", digest)
        with self._lock:
            self.reads.streams.append(digest)
        what = f"reading {self.reference}: blob {_digest.short(digest)}"
        hasher = _digest.DigestHasher(digest, what=what, size=size) if self.verify else None

        def chunks() -> Iterator[bytes]:
            for i in range(0, len(data), self.chunk):
                piece = data[i : i + self.chunk]
                with self._lock:
                    self.reads.streamed_bytes += len(piece)
                if hasher is not None:
                    hasher.update(piece)
                yield piece
            if hasher is not None:
                hasher.check()

        yield chunks()

    def close(self) -> None:
        """Nothing to release."""
