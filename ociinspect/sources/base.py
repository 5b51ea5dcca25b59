"""The small protocol every image source implements, and shared helpers for sources.

A source supplies only raw bytes: the manifest its reference names, manifests and blobs by digest, byte ranges
of blobs and blob streams.  Everything else (verification, platform resolution, parsing, sizes) is done once, in
:mod:`ociinspect.image.loader` and :mod:`ociinspect.image.sizes`, so the registry, layout and archive sources cannot drift
apart.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from ociinspect.errors import InvalidImage, LimitExceeded
from ociinspect.model.image import RawManifest
from ociinspect.model.reference import Reference

__all__ = ["MAX_MANIFEST_BYTES", "Source", "parse_json"]

#: Manifests, indexes and index.json/manifest.json files larger than this are refused (the OCI distribution
#: spec lets registries refuse manifests over 4 MiB).
MAX_MANIFEST_BYTES = 4 * 1024 * 1024


@runtime_checkable
class Source(Protocol):
    """Where an image's bytes come from.  Implementations: registry, OCI layout (dir or tar), docker-archive."""

    reference: Reference
    #: things noticed while reading that the user should know (reported with the image)
    warnings: list[str]

    @property
    def kind(self) -> str:
        """``"registry"`` or ``"local"`` (local sources make range reads and streams cheap)."""
        ...

    def root(self) -> RawManifest:
        """The manifest (or index) the reference names.  Cost: one manifest read."""
        ...

    def manifest(self, digest: str) -> RawManifest:
        """A manifest by digest (children of an index).  Cost: one manifest read; digest verified."""
        ...

    def blob(self, digest: str, *, size: int | None, max_bytes: int) -> bytes:
        """A whole blob, verified against ``digest`` (and ``size``).  Cost: reads the blob."""
        ...

    def blob_range(self, digest: str, start: int, end: int) -> bytes:
        """Bytes ``start..end`` (inclusive) of a blob, unverified.

        Cost: one Range request (registry) or one seek+read (local).  Raises
        :class:`~ociinspect.errors.RangeNotSupported` when the source cannot read a range.
        """
        ...

    def open_blob(
        self, digest: str, *, size: int | None
    ) -> contextlib.AbstractContextManager[Iterator[bytes]]:
        """Stream a blob in chunks; the digest (and size) are checked when the stream is exhausted."""
        ...

    def close(self) -> None: ...


def parse_json(data: bytes, what: str) -> Any:
    """Parse JSON bytes, translating failures into :class:`InvalidImage` naming ``what``."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise LimitExceeded(
            f"{what}: {len(data)} bytes is over the {MAX_MANIFEST_BYTES}-byte limit for JSON documents"
        )
    if not data.strip():
        raise InvalidImage(
            f"{what} is empty", hint="the image is incomplete or corrupt; rebuild or re-export it"
        )
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InvalidImage(
            f"{what} is not valid JSON ({exc.__class__.__name__}: {str(exc)[:120]})",
            hint="the image is corrupt; rebuild or re-export it",
        ) from None
