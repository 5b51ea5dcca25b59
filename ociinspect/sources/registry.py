"""The registry source: an image in a registry, read through :class:`ociinspect.registry.RegistryClient`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ociinspect.errors import DigestMismatch
from ociinspect.model.image import RawManifest
from ociinspect.model.reference import Reference
from ociinspect.registry import RegistryClient
from ociinspect.sources.base import MAX_MANIFEST_BYTES

__all__ = ["RegistrySource"]


class RegistrySource:
    """``docker://`` references.  The client is shared (thread-safe) and owned by the caller."""

    def __init__(self, reference: Reference, client: RegistryClient) -> None:
        assert reference.registry and reference.repository
        self.reference = reference
        self.client = client
        self.warnings: list[str] = []
        self._registry = reference.registry
        self._repository = reference.repository

    @property
    def kind(self) -> str:
        return "registry"

    def root(self) -> RawManifest:
        """Cost: one manifest GET (plus auth round trips the first time per scope)."""
        ref = self.reference.digest or self.reference.tag or "latest"
        return self.manifest(ref)

    def manifest(self, digest: str) -> RawManifest:
        return self.client.get_manifest(
            self._registry, self._repository, digest, max_bytes=MAX_MANIFEST_BYTES
        )

    def blob(self, digest: str, *, size: int | None, max_bytes: int) -> bytes:
        return self.client.get_blob(
            self._registry, self._repository, digest, max_bytes=max_bytes, expected_size=size
        )

    def blob_range(self, digest: str, start: int, end: int) -> bytes:
        data, _total = self.client.get_blob_range(
            self._registry, self._repository, digest, start=start, end=end
        )
        return data

    @contextlib.contextmanager
    def open_blob(self, digest: str, *, size: int | None) -> Iterator[Iterator[bytes]]:
        with self.client.stream_blob(self._registry, self._repository, digest) as chunks:
            if size is None:
                yield chunks
                return

            def sized() -> Iterator[bytes]:
                count = 0
                for chunk in chunks:
                    count += len(chunk)
                    yield chunk
                if count != size:
                    raise DigestMismatch(f"blob {digest}: expected {size} bytes, got {count}")

            yield sized()

    def close(self) -> None:
        """The client is shared; nothing to release here."""
