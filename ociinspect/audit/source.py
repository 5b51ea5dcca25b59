"""The audit's source: one repository of the registry, read through the shared registry source, paced and
counted by the walker, with small layers read whole once and turned into every fact they give.

The walker provides a few hooks (:class:`AuditHooks`); the source provides the
:class:`~ociinspect.sources.base.Source` protocol, so the loader's rules, :mod:`ociinspect.image.sizes`, the
scanner and base-OS detection read the audit's images as they read any other.

Cost per call: what the inner source costs (one request), plus nothing for a small blob already read; a small
layer (at most ``small_blob`` bytes) is read whole once, whatever part of it is asked for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol

from ociinspect.model.image import Layer, RawManifest
from ociinspect.model.reference import Reference
from ociinspect.sources.base import Source

__all__ = ["AuditHooks", "AuditSource"]


class AuditHooks(Protocol):
    """What the walker provides to its sources."""

    def before_request(self) -> None:
        """Called before each registry request: stop if asked, pace (may raise)."""
        ...

    def fetched(self, *, manifests: int = 0, blobs: int = 0) -> None:
        """Count what was read."""
        ...

    def facts_from_small_blob(self, reference: Reference, layer: Layer, data: bytes) -> None:
        """Turn one small layer, just read whole, into every fact it gives (written at once)."""
        ...


class AuditSource:
    """A :class:`~ociinspect.sources.base.Source` over ``inner`` (the shared registry source of one repository;
    its reference may name a tag, which :meth:`root` reads) that paces and counts every request through
    ``hooks`` and reads layers of at most ``small_blob`` bytes whole, once."""

    def __init__(self, inner: Source, hooks: AuditHooks, *, small_blob: int) -> None:
        self.inner = inner
        self.hooks = hooks
        self.small_blob = small_blob
        self.reference = inner.reference
        self.warnings: list[str] = []
        self._small: dict[str, bytes] = {}
        self._layers: dict[str, Layer] = {}

    @property
    def kind(self) -> str:
        return self.inner.kind

    def remember(self, layer: Layer) -> None:
        """Know ``layer`` (its size decides a whole read; a whole read of it gives its facts)."""
        self._layers[layer.digest] = layer

    def root(self) -> RawManifest:
        """The manifest the reference names (a tag).  Cost: one manifest GET."""
        self.hooks.before_request()
        raw = self.inner.root()
        self.hooks.fetched(manifests=1)
        return raw

    def manifest(self, digest: str) -> RawManifest:
        """Cost: one manifest GET."""
        self.hooks.before_request()
        raw = self.inner.manifest(digest)
        self.hooks.fetched(manifests=1)
        return raw

    def _small_blob(self, digest: str, size: int | None) -> bytes | None:
        if size is None or size > self.small_blob:
            return None
        data = self._small.get(digest)
        if data is None:
            data = self._blob(digest, size=size, max_bytes=size)
            self._small[digest] = data
            layer = self._layers.get(digest)
            if layer is not None:
                self.hooks.facts_from_small_blob(self.reference, layer, data)
        return data

    def _blob(self, digest: str, *, size: int | None, max_bytes: int) -> bytes:
        self.hooks.before_request()
        data = self.inner.blob(digest, size=size, max_bytes=max_bytes)
        self.hooks.fetched(blobs=1)
        return data

    def blob(self, digest: str, *, size: int | None, max_bytes: int) -> bytes:
        """Cost: one blob GET (none for a small blob already read)."""
        small = self._small_blob(digest, size)
        if small is not None:
            return small
        return self._blob(digest, size=size, max_bytes=max_bytes)

    def blob_range(self, digest: str, start: int, end: int) -> bytes:
        """Cost: one Range GET; a known small layer is read whole instead (once)."""
        layer = self._layers.get(digest)
        small = self._small_blob(digest, layer.size if layer else None)
        if small is not None:
            return small[start : end + 1]
        self.hooks.before_request()
        data = self.inner.blob_range(digest, start, end)
        self.hooks.fetched(blobs=1)
        return data

    @contextlib.contextmanager
    def open_blob(self, digest: str, *, size: int | None) -> Iterator[Iterator[bytes]]:
        """Cost: one streamed GET (none for a small blob already read)."""
        small = self._small_blob(digest, size)
        if small is not None:
            yield iter((small,))
            return
        self.hooks.before_request()
        self.hooks.fetched(blobs=1)
        with self.inner.open_blob(digest, size=size) as chunks:
            yield chunks

    def close(self) -> None:
        self._small.clear()
