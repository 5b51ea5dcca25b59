"""The audit's per-image work, counted (issue 14, target 5): SQL statements per fact written and the reads a
small layer costs.  Counts, never times: each test fails on the code before the change it names."""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import sys
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from ociinspect.audit.db import AuditDB
from ociinspect.audit.facts import AuditFacts
from ociinspect.audit.images import Depth, ImageFacts
from ociinspect.image import sizes
from ociinspect.image.loader import ManifestFacts
from ociinspect.model import mediatypes as mt
from ociinspect.model.image import Descriptor, Layer, SizeEstimate
from ociinspect.model.reference import Reference


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer_bytes() -> tuple[bytes, bytes]:
    """(tar, gzip of it): a small base layer with an os-release file."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("etc/os-release", b"ID=alpine\nVERSION_ID=3.19.1\n"), ("bin/sh", b"x" * 700)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return raw, gzip.compress(raw, mtime=0)


def _small_layer() -> tuple[bytes, bytes, Layer]:
    """(tar, gzip, the image's bottom layer of that gzip, its size not yet known)."""
    raw, blob = _layer_bytes()
    layer = Layer(
        0,
        Descriptor(mt.OCI_LAYER_GZIP, _digest(blob), len(blob)),
        _digest(raw),
        None,
        SizeEstimate(None, "unknown"),
    )
    return raw, blob, layer


class _Statements:
    """Every SQL statement the database runs, by its first words (a trace callback on the connection)."""

    def __init__(self, db: AuditDB) -> None:
        self.seen: Counter[str] = Counter()
        db._conn.set_trace_callback(self._note)

    def _note(self, sql: str) -> None:
        self.seen[" ".join(re.sub(r"\s+", " ", sql).split(" ")[:3])] += 1


def test_a_small_layer_read_whole_is_sized_without_walking_its_tar_headers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A whole blob's size is what inflating it gave: the tar walk (``tarfile``, the lower bound only a partial
    head needs) is not run for it — and still is for a head."""
    raw, blob = _layer_bytes()
    walks: list[int] = []
    real = sizes._tar_lower_bound

    def counted(data: bytes) -> int:
        walks.append(len(data))
        return real(data)

    monkeypatch.setattr(sizes, "_tar_lower_bound", counted)
    head = sizes.read_gzip_head(blob, whole=True)
    assert (head.whole, head.inflated, head.error, head.more_members) == (True, len(raw), None, False)
    assert walks == []
    partial = sizes.read_gzip_head(blob[: len(blob) // 2], whole=False)
    assert walks and partial.tar_min >= 0


def test_a_manifests_references_are_written_in_one_statement(tmp_path: Path) -> None:
    with AuditDB(tmp_path / "a.sqlite3") as db:
        facts = AuditFacts(db)
        layers = tuple(Descriptor(mt.OCI_LAYER_GZIP, _digest(bytes([i])), 100 + i) for i in range(3))
        config = Descriptor(mt.OCI_CONFIG, _digest(b"config"), 50)
        manifest = ManifestFacts(_digest(b"m"), mt.OCI_MANIFEST, 400, "image", config=config, layers=layers)
        seen = _Statements(db)
        facts.put_manifest(manifest)
        facts.put_manifest(manifest)  # the first writer wins: no second set of references
        assert seen.seen["INSERT INTO manifest_refs"] == 1
        rows = db.query(
            "SELECT manifest, role, position, digest, size FROM manifest_refs ORDER BY role, position"
        )
        assert rows == [(manifest.digest, "config", 0, config.digest, 50)] + [
            (manifest.digest, "layer", i, d.digest, d.size) for i, d in enumerate(layers)
        ]
        assert facts.manifest(manifest.digest) == ManifestFacts(
            manifest.digest, mt.OCI_MANIFEST, 400, "image", config=config, layers=layers
        )


def test_many_rows_go_in_a_few_statements_of_one_transaction(tmp_path: Path) -> None:
    with AuditDB(tmp_path / "a.sqlite3") as db:
        facts = AuditFacts(db)
        seen = _Statements(db)
        facts.add_repositories(1, 0, [f"repo{i:04d}" for i in range(1000)])
        facts.add_repositories(1, 0, ["repo0000", "other"])  # a conflict keeps the first row
        # 1000 rows × 4 values, 900 values a statement at most (SQLite's old limit is 999): 5 statements
        assert seen.seen["INSERT INTO repositories"] == 5 + 1
        assert seen.seen["BEGIN IMMEDIATE"] == 1  # the 5 in one transaction; the single one on its own
        names = [
            r[0] for r in db.query("SELECT name FROM repositories WHERE status = 'pending' ORDER BY name")
        ]
        assert names == ["other"] + [f"repo{i:04d}" for i in range(1000)]


def test_a_small_layers_facts_are_one_facts_statement_in_the_next_commit(tmp_path: Path) -> None:
    """A small layer read whole gives its blob row and its base-OS files; both wait for the thread's next
    commit, and the facts rows of that commit (``osfiles:`` here, with the image's ``os:`` in the audit) are
    one statement."""
    raw, blob, layer = _small_layer()
    with AuditDB(tmp_path / "a.sqlite3") as db:
        images = ImageFacts(AuditFacts(db), Depth(run_id=1))
        ref = Reference(transport="docker", registry="r.example", repository="a/b", tag="1")
        images.facts_from_small_blob(ref, layer, blob)
        # as the image's completion does with its os: fact
        images._pending.facts.append(("os:" + _digest(b"m"), '{"id": "alpine"}'))
        seen = _Statements(db)
        images.flush()
        assert seen.seen["INSERT INTO facts"] == 1
        assert seen.seen["COMMIT"] == 1
        stored = dict(db.query("SELECT key, value FROM facts"))
        assert set(stored) == {f"osfiles:{layer.digest}", "os:" + _digest(b"m")}
        assert "ID=alpine" in stored[f"osfiles:{layer.digest}"]
        assert db.query("SELECT uncompressed_size, uncompressed_source FROM blobs") == [(len(raw), "trailer")]
        assert images.has_blob(layer.digest)


def test_a_thread_sees_its_own_pending_facts_before_their_commit_without_a_query(tmp_path: Path) -> None:
    """As ``has_blob`` sees the thread's pending blobs, ``get_fact`` sees its pending facts: the base-OS files a
    small layer's read gave are not asked of the database, nor read again, before the next commit; another
    thread does not see them until then."""
    import threading

    _raw, blob, layer = _small_layer()
    key = f"osfiles:{layer.digest}"
    with AuditDB(tmp_path / "a.sqlite3") as db:
        images = ImageFacts(AuditFacts(db), Depth(run_id=1))
        ref = Reference(transport="docker", registry="r.example", repository="a/b", tag="1")
        images.facts_from_small_blob(ref, layer, blob)
        seen = _Statements(db)
        mine = images.get_fact(key)
        assert mine is not None and "ID=alpine" in mine
        assert sum(seen.seen.values()) == 0  # no query
        other: list[str | None] = []
        worker = threading.Thread(target=lambda: other.append(images.get_fact(key)))
        worker.start()
        worker.join()
        assert other == [None]  # not committed: not the other thread's to see
        images.flush()
        assert images.get_fact(key) == mine


class _Client:
    def add_observer(self, observer: object) -> None:
        pass


def test_the_walk_lets_a_thread_keep_the_interpreter_lock_longer_and_restores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """During the walk, a thread waiting for the interpreter lock asks for it after 50 ms, not Python's 5 ms
    (the workers hand it over at every request and statement anyway); the caller's interval comes back after
    the walk, also when it fails."""
    from ociinspect.audit.runs import Scope
    from ociinspect.audit.walker import SWITCH_INTERVAL, Walker

    seen: list[float] = []
    monkeypatch.setattr(Walker, "_walk", lambda self: seen.append(sys.getswitchinterval()))
    monkeypatch.setattr(Walker, "_finish", lambda self, status: None)
    before = sys.getswitchinterval()
    with AuditDB(tmp_path / "a.sqlite3") as db:
        walker = Walker(db, _Client(), 1, Scope(registry="r.example"))  # type: ignore[arg-type]
        walker.run()
        assert seen == [pytest.approx(SWITCH_INTERVAL)] and SWITCH_INTERVAL >= 0.05
        assert sys.getswitchinterval() == before

        def fails(self: Walker) -> None:
            seen.append(sys.getswitchinterval())
            raise KeyboardInterrupt

        monkeypatch.setattr(Walker, "_walk", fails)
        with pytest.raises(KeyboardInterrupt):
            walker.run()
        assert seen[-1] == pytest.approx(SWITCH_INTERVAL) and sys.getswitchinterval() == before


def test_the_walks_threads_run_on_one_cpu_and_the_caller_gets_its_cpus_back() -> None:
    """``one_cpu``: threads started in the block are on one CPU (the caller's current one), the caller has its
    CPUs back after — also when the block fails; disabled, or with one CPU allowed, nothing changes."""
    import os
    import threading

    from ociinspect.audit.walker import one_cpu

    allowed = os.sched_getaffinity(0)
    inside: list[set[int]] = []

    def record() -> None:
        inside.append(os.sched_getaffinity(0))

    with one_cpu(True) as cpu:
        worker = threading.Thread(target=record)
        worker.start()
        worker.join()
    assert os.sched_getaffinity(0) == allowed
    if len(allowed) > 1:
        assert cpu in allowed and inside == [{cpu}]
    else:  # a one-CPU machine: nothing to choose
        assert cpu is None and inside == [allowed]
    with pytest.raises(KeyboardInterrupt), one_cpu(True):
        raise KeyboardInterrupt
    assert os.sched_getaffinity(0) == allowed
    with one_cpu(False) as cpu:
        assert cpu is None and os.sched_getaffinity(0) == allowed
    if len(allowed) > 1:  # already on one CPU: left as it is
        first = min(allowed)
        os.sched_setaffinity(0, {first})
        try:
            with one_cpu(True) as cpu:
                assert cpu is None and os.sched_getaffinity(0) == {first}
        finally:
            os.sched_setaffinity(0, allowed)


def test_the_walk_is_on_one_cpu_unless_deep_or_all_cpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from ociinspect.audit.runs import AuditOptions, Scope
    from ociinspect.audit.walker import Walker

    seen: list[int] = []
    monkeypatch.setattr(Walker, "_walk", lambda self: seen.append(len(os.sched_getaffinity(0))))
    monkeypatch.setattr(Walker, "_finish", lambda self, status: None)
    many = len(os.sched_getaffinity(0))
    with AuditDB(tmp_path / "a.sqlite3") as db:
        for options in (AuditOptions(), AuditOptions(deep=True), AuditOptions(one_cpu=False)):
            Walker(db, _Client(), 1, Scope(registry="r.example"), options=options).run()  # type: ignore[arg-type]
    assert seen == [1, many, many]
