"""The registry source: an image in a registry, read through :class:`ociinspect.registry.RegistryClient`.

:class:`DigestReads` remembers, for one session, what a registry served under a digest — manifests by digest,
small whole blobs (configs) and byte ranges of blobs (the size evidence of :mod:`ociinspect.image.sizes`) — so
many references that share a config or layers read each of them once.  A digest names immutable content, and
each entry is keyed by ``(registry, repository, digest)``: one repository's answer never stands in for
another's, because a registry may refuse a blob in a repository that does not hold it.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ociinspect.errors import DigestMismatch, OciInspectError
from ociinspect.model.image import RawManifest
from ociinspect.model.reference import Reference
from ociinspect.registry import RegistryClient
from ociinspect.sources.base import MAX_MANIFEST_BYTES

__all__ = ["DigestReads", "RegistrySource"]

_V = TypeVar("_V")
#: ``(kind, registry, repository, digest, …)``: what was read, where, and of which content.
_Key = tuple[Any, ...]
#: what a remembered value that is not bytes is counted as (a size estimate: a few small objects)
_OBJECT_BYTES = 512
_MISSING = object()


class _Flight:
    """One read in progress: the threads asking for the same key wait for the first one's answer."""

    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class DigestReads:
    """A per-session, thread-safe, bounded memory of registry reads named by a digest.

    Keys are ``(kind, registry, repository, digest[, range])``: an answer is reused only for the registry and
    repository that served it (two repositories holding the same digest are each asked).  Concurrent asks for
    the same key make one request: the others wait for it (single flight) and get its bytes, or a copy of its
    typed error — the request already had the client's retries.  Failures are not remembered.

    Memory: at most ``max_bytes`` of remembered bytes (least recently used dropped first); a value larger than
    ``max_entry`` bytes is returned but not kept.  Cost: a dictionary lookup under one lock per read.
    """

    def __init__(self, *, max_bytes: int = 32 << 20, max_entry: int = 8 << 20) -> None:
        self.max_bytes = max_bytes
        self.max_entry = max_entry
        self._lock = threading.Lock()
        self._kept: collections.OrderedDict[_Key, Any] = collections.OrderedDict()
        self._flights: dict[_Key, _Flight] = {}
        self._bytes = 0
        self.hits = 0  # reads answered from memory or from another thread's request
        self.misses = 0  # reads that went to the registry

    @property
    def size(self) -> int:
        """Bytes remembered now."""
        return self._bytes

    def read(self, key: _Key, fetch: Callable[[], _V]) -> _V:
        """The value remembered for ``key``, else ``fetch()`` once (concurrent callers of the same key wait for
        it), remembered when small enough.  Raises what ``fetch`` raised (waiters: a copy of a typed error)."""
        with self._lock:
            kept = self._kept.get(key, _MISSING)
            if kept is not _MISSING:
                self._kept.move_to_end(key)
                self.hits += 1
                return kept  # type: ignore[no-any-return]
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
                self.misses += 1
            else:
                self.hits += 1
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise _copied(flight.error)
            return flight.value  # type: ignore[no-any-return]
        try:
            value = fetch()
        except BaseException as exc:
            flight.error = exc
            raise
        else:
            flight.value = value
            self._keep(key, value)
            return value
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()

    def put(self, key: _Key, value: object) -> None:
        """Remember ``value`` (already verified by the caller) under ``key``.  Cost: a dictionary insert."""
        self._keep(key, value)

    def _keep(self, key: _Key, value: object) -> None:
        size = _size(value)
        if size > self.max_entry:
            return
        with self._lock:
            old = self._kept.pop(key, None)
            if old is not None:
                self._bytes -= _size(old)
            self._kept[key] = value
            self._bytes += size
            while self._bytes > self.max_bytes and self._kept:
                _, dropped = self._kept.popitem(last=False)
                self._bytes -= _size(dropped)


def _size(value: object) -> int:
    if isinstance(value, RawManifest):
        return len(value.data)
    return len(value) if isinstance(value, bytes) else _OBJECT_BYTES


def _copied(error: BaseException) -> BaseException:
    """A waiter's own copy of the leader's typed error (callers add context to it: ``with_context`` mutates)."""
    if isinstance(error, OciInspectError):
        clone = copy.copy(error)
        clone.__traceback__ = None
        return clone
    return error


class RegistrySource:
    """``docker://`` references.  The client is shared (thread-safe) and owned by the caller; so is ``reads``
    (a :class:`DigestReads`, ``None``: every read goes to the registry)."""

    def __init__(
        self, reference: Reference, client: RegistryClient, reads: DigestReads | None = None
    ) -> None:
        assert reference.registry and reference.repository
        self.reference = reference
        self.client = client
        self.reads = reads
        self.warnings: list[str] = []
        self._registry = reference.registry
        self._repository = reference.repository

    @property
    def kind(self) -> str:
        return "registry"

    def _key(self, kind: str, digest: str, start: int = -1, end: int = -1) -> _Key:
        return (kind, self._registry, self._repository, digest, start, end)

    def root(self) -> RawManifest:
        """Cost: one manifest GET (plus auth round trips the first time per scope); none when the reference is a
        digest this session already read from this repository."""
        ref = self.reference.digest or self.reference.tag or "latest"
        if self.reference.digest:
            return self.manifest(ref)
        raw = self._get_manifest(ref)  # a tag moves: always asked
        if self.reads is not None:
            self.reads.put(self._key("manifest", raw.digest), raw)
        return raw

    def _get_manifest(self, reference: str) -> RawManifest:
        return self.client.get_manifest(
            self._registry, self._repository, reference, max_bytes=MAX_MANIFEST_BYTES
        )

    def manifest(self, digest: str) -> RawManifest:
        """Cost: one manifest GET, or none when this session read it from this repository before."""
        if self.reads is None or ":" not in digest:
            return self._get_manifest(digest)
        return self.reads.read(self._key("manifest", digest), lambda: self._get_manifest(digest))

    def blob(self, digest: str, *, size: int | None, max_bytes: int) -> bytes:
        """Cost: one blob GET, or none when this session read it from this repository before."""

        def fetch() -> bytes:
            return self.client.get_blob(
                self._registry, self._repository, digest, max_bytes=max_bytes, expected_size=size
            )

        if self.reads is None:
            return fetch()
        data = self.reads.read(self._key("blob", digest), fetch)
        if len(data) > max_bytes or (size is not None and len(data) != size):
            return fetch()  # another caller's limits: let the client say what is wrong
        return data

    def blob_range(self, digest: str, start: int, end: int) -> bytes:
        """Cost: one Range GET, or none when this session read the same range from this repository before."""

        def fetch() -> bytes:
            data, _total = self.client.get_blob_range(
                self._registry, self._repository, digest, start=start, end=end
            )
            return data

        if self.reads is None:
            return fetch()
        return self.reads.read(self._key("range", digest, start, end), fetch)

    def remember_derived(self, key: tuple[Any, ...], compute: Callable[[], _V]) -> _V:
        """``compute()``'s value for ``key`` — a figure derived only from content named by a digest in this
        repository (``key`` holds the digest and every other input) — computed once per session (see
        :meth:`ociinspect.image.sizes.estimate`).  Cost: that of ``compute`` the first time, then none."""
        if self.reads is None:
            return compute()
        return self.reads.read(("derived", self._registry, self._repository, *key), compute)

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

    def interrupt(self) -> None:
        """Cut short every request of the shared client in flight (Ctrl-C; see
        :meth:`RegistryClient.interrupt <ociinspect.registry.RegistryClient.interrupt>`).  Cost: none."""
        self.client.interrupt()

    def close(self) -> None:
        """The client and the reads are shared; nothing to release here."""
