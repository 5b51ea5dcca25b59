"""Issue 14, target 4: one session reads what a digest names once per (registry, repository) — single flight,
bounded, thread-safe — and a gzip layer's head and trailer are read at once from a registry source."""

from __future__ import annotations

import gzip
import hashlib
import io
import random
import tarfile
import threading
from typing import Any

import pytest

from ociinspect.errors import NotFound, RangeNotSupported, RegistryError
from ociinspect.image import sizes
from ociinspect.model import mediatypes as mt
from ociinspect.model.image import Descriptor, RawManifest
from ociinspect.model.reference import parse_reference
from ociinspect.sources.memory import MemorySource
from ociinspect.sources.registry import DigestReads, RegistrySource

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
WAIT = 10.0  # seconds a test thread waits for another before the test fails (never reached when it passes)


def key(repository: str, digest: str = D1) -> tuple[object, ...]:
    return ("blob", "r.example", repository, digest, -1, -1)


class FakeClient:
    """The three reads RegistrySource makes, counted per (repository, digest[, range])."""

    def __init__(self, blobs: dict[tuple[str, str], bytes]) -> None:
        self.blobs = blobs
        self.calls: list[tuple[str, ...]] = []
        self.lock = threading.Lock()

    def _get(self, repository: str, digest: str, what: str) -> bytes:
        with self.lock:
            self.calls.append((what, repository, digest))
        if (repository, digest) not in self.blobs:
            raise NotFound(f"blob {digest} not in {repository}")
        return self.blobs[(repository, digest)]

    def get_blob(self, registry: str, repository: str, digest: str, **kw: Any) -> bytes:
        return self._get(repository, digest, "blob")

    def get_blob_range(self, registry: str, repository: str, digest: str, *, start: int, end: int) -> Any:
        data = self._get(repository, digest, f"range {start}-{end}")
        return data[start : end + 1], len(data)

    def get_manifest(self, registry: str, repository: str, reference: str, **kw: Any) -> RawManifest:
        data = self._get(repository, reference, "manifest")
        return RawManifest(data, mt.OCI_MANIFEST, "sha256:" + hashlib.sha256(data).hexdigest())


def source(repository: str, client: FakeClient, reads: DigestReads | None) -> RegistrySource:
    return RegistrySource(parse_reference(f"docker://r.example/{repository}:t"), client, reads)  # type: ignore[arg-type]


def test_one_read_per_digest_and_repository() -> None:
    client = FakeClient({("a", D1): b"config", ("b", D1): b"config"})
    reads = DigestReads()
    for _ in range(5):
        assert source("a", client, reads).blob(D1, size=6, max_bytes=100) == b"config"
        assert source("a", client, reads).blob_range(D1, 0, 1) == b"co"
    assert client.calls == [("blob", "a", D1), ("range 0-1", "a", D1)]
    # the same digest in another repository is asked there: never answered from repository a's read
    assert source("b", client, reads).blob(D1, size=6, max_bytes=100) == b"config"
    assert client.calls[-1] == ("blob", "b", D1)
    # a repository that does not hold it gets the registry's own answer
    with pytest.raises(NotFound):
        source("c", client, reads).blob(D1, size=6, max_bytes=100)
    # without a DigestReads every read goes out (the audit's sources)
    source("a", client, None).blob(D1, size=6, max_bytes=100)
    assert client.calls[-1] == ("blob", "a", D1) and len(client.calls) == 5


def test_limits_of_a_later_caller_still_apply() -> None:
    client = FakeClient({("a", D1): b"config"})
    reads = DigestReads()
    source("a", client, reads).blob(D1, size=6, max_bytes=100)
    source("a", client, reads).blob(D1, size=99, max_bytes=100)  # another size: the client is asked
    assert len(client.calls) == 2


def test_manifests_by_digest_are_remembered_tags_are_not() -> None:
    body = b'{"schemaVersion": 2}'
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    client = FakeClient({("a", "t"): body, ("a", digest): body})
    reads = DigestReads()
    for _ in range(3):
        assert source("a", client, reads).root().digest == digest  # by tag: asked every time
    assert source("a", client, reads).manifest(digest).data == body  # read by tag before: remembered
    assert [c[2] for c in client.calls] == ["t", "t", "t"]


def test_concurrent_asks_make_one_request() -> None:
    reads = DigestReads()
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def fetch() -> bytes:
        calls.append(1)
        started.set()
        assert release.wait(WAIT)
        return b"x"

    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(reads.read(key("a"), fetch))) for _ in range(8)]
    threads[0].start()
    assert started.wait(WAIT)
    for t in threads[1:]:
        t.start()
    while reads.hits < 7:  # every other thread is waiting on the first one's request
        threading.Event().wait(0.001)
    release.set()
    for t in threads:
        t.join(WAIT)
    assert results == [b"x"] * 8 and len(calls) == 1 and reads.misses == 1


def test_a_failed_read_is_shared_as_copies_and_not_remembered() -> None:
    reads = DigestReads()
    started, release = threading.Event(), threading.Event()

    def failing() -> bytes:
        started.set()
        assert release.wait(WAIT)
        raise NotFound("blob gone", hint="push it again")

    errors: list[NotFound] = []

    def ask() -> None:
        try:
            reads.read(key("a"), failing)
        except NotFound as exc:
            errors.append(exc)

    leader = threading.Thread(target=ask)
    leader.start()
    assert started.wait(WAIT)
    waiter = threading.Thread(target=ask)
    waiter.start()
    while reads.hits < 1:
        threading.Event().wait(0.001)
    release.set()
    leader.join(WAIT)
    waiter.join(WAIT)
    assert len(errors) == 2 and errors[0] is not errors[1]
    assert {e.message for e in errors} == {"blob gone"} and {e.hint for e in errors} == {"push it again"}
    errors[0].with_context("reading x")  # one caller's context does not leak into another's error
    assert errors[1].message == "blob gone"
    assert reads.read(key("a"), lambda: b"back") == b"back"  # the failure was not remembered


def test_memory_is_bounded() -> None:
    reads = DigestReads(max_bytes=100, max_entry=60)
    reads.read(key("a", D1), lambda: b"1" * 60)
    reads.read(key("a", D2), lambda: b"2" * 50)  # 110 > 100: the least recently used goes
    assert reads.size == 50
    fetched: list[int] = []

    def again() -> bytes:
        fetched.append(1)
        return b"1" * 60

    reads.read(key("a", D1), again)
    assert fetched == [1]
    reads.read(key("b"), lambda: b"3" * 61)  # larger than an entry may be: returned, not kept
    assert reads.size <= 100 and ("blob", "r.example", "b", D1, -1, -1) not in reads._kept


def _gzip_layer() -> tuple[bytes, Descriptor]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = random.Random(14).randbytes(256 * 1024)  # incompressible: the blob is > 64 KiB
        info = tarfile.TarInfo("f")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    blob = gzip.compress(buf.getvalue(), mtime=0)
    assert len(blob) > sizes.HEAD_BYTES
    return blob, Descriptor(mt.OCI_LAYER_GZIP, "sha256:" + hashlib.sha256(blob).hexdigest(), len(blob))


def test_head_and_trailer_are_read_at_once_from_a_registry() -> None:
    blob, desc = _gzip_layer()
    both = threading.Barrier(2, timeout=WAIT)  # old code: the second read starts after the first: broken

    class Concurrent(MemorySource):
        def blob_range(self, digest: str, start: int, end: int) -> bytes:
            both.wait()
            return super().blob_range(digest, start, end)

    est = sizes.estimate(Concurrent([blob], kind="registry"), desc)
    assert est.source == "trailer" and est.value == len(gzip.decompress(blob))
    # a local source reads them one after the other on the caller's thread, as before
    local = MemorySource([blob])
    assert sizes.estimate(local, desc) == est


def test_a_failed_head_read_is_the_same_typed_error() -> None:
    blob, desc = _gzip_layer()

    class NoHead(MemorySource):
        def blob_range(self, digest: str, start: int, end: int) -> bytes:
            if start == 0:
                raise RangeNotSupported("no range")
            return super().blob_range(digest, start, end)

    est = sizes.estimate(NoHead([blob], kind="registry"), desc)
    assert est.source == "streamed" and est.note == "the registry refused a Range request"  # as before


def test_a_session_remembers_a_layer_size_per_repository() -> None:
    blob, desc = _gzip_layer()
    counted: list[tuple[str, int]] = []

    class Counting(FakeClient):
        def get_blob_range(self, registry: str, repository: str, digest: str, *, start: int, end: int) -> Any:
            counted.append((repository, start))
            return super().get_blob_range(registry, repository, digest, start=start, end=end)

    client = Counting({("a", desc.digest): blob, ("b", desc.digest): blob})
    reads = DigestReads()
    first = [sizes.estimate(source("a", client, reads), desc) for _ in range(3)]
    assert len(set(first)) == 1 and sorted(counted) == [("a", 0), ("a", len(blob) - 8)]
    assert sizes.estimate(source("b", client, reads), desc) == first[0]
    assert sorted(counted[2:]) == [("b", 0), ("b", len(blob) - 8)]


def test_no_read_outlives_a_failed_trailer() -> None:
    """The head read goes out with the trailer's; when the trailer read fails, the error is raised only after the
    head read has ended (no request left running behind the caller)."""
    blob, desc = _gzip_layer()
    trailer_failed = threading.Event()
    head_done: list[bool] = []

    class TrailerFails(MemorySource):
        def blob_range(self, digest: str, start: int, end: int) -> bytes:
            if start != 0:
                trailer_failed.set()
                raise RegistryError("the registry broke")
            assert trailer_failed.wait(WAIT)  # the head ends after the trailer has failed
            data = super().blob_range(digest, start, end)
            head_done.append(True)
            return data

    with pytest.raises(RegistryError):
        sizes.estimate(TrailerFails([blob], kind="registry"), desc)
    assert head_done == [True]
