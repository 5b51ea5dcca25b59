"""The SQLite store: round trips, what satisfies a request, schema versions, corruption, threads, privacy."""

from __future__ import annotations

import sqlite3
import stat
import threading
from pathlib import Path

import pytest
from waste_fixtures import WASTE_LAYERS, tar_bytes

from ociinspect.content.scan import scan_tar_stream
from ociinspect.model.entries import LayerScan, make_entry
from ociinspect.store import MIGRATIONS, SCHEMA_VERSION, STORE_FILE, Store, default_cache_dir

DIGEST = "sha256:" + "ab" * 32


def layer_scan(hashed: bool = False, source: str = "stream", digest: str = DIGEST) -> LayerScan:
    entries, diff_id, total, _ = scan_tar_stream([tar_bytes(WASTE_LAYERS[0])], what="t", hash_files=hashed)
    return LayerScan(
        digest=digest,
        entries=tuple(entries),
        index_source=source,  # type: ignore[arg-type]
        hashed=hashed,
        diff_id=diff_id if source == "stream" else None,
        uncompressed_size=total,
        warnings=("a warning",),
    )


def test_default_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "ociinspect"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the XDG spec says: ignore relative paths
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "ociinspect"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "ociinspect"


def test_round_trip(tmp_path: Path) -> None:
    original = layer_scan(hashed=True)
    with Store(tmp_path / "c") as store:
        assert store.get_scan(DIGEST) is None
        store.put_scan(original)
    with Store(tmp_path / "c") as store:
        got = store.get_scan(DIGEST)
    assert got is not None and got.from_cache
    assert got.entries == original.entries and got.diff_id == original.diff_id
    assert (got.hashed, got.index_source, got.uncompressed_size, got.warnings) == (
        True,
        "stream",
        original.uncompressed_size,
        ("a warning",),
    )
    assert stat.S_IMODE((tmp_path / "c").stat().st_mode) == 0o700


def test_hashed_satisfies_unhashed_not_the_reverse(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.put_scan(layer_scan(hashed=False))
        assert store.get_scan(DIGEST, need_hash=False) is not None
        assert store.get_scan(DIGEST, need_hash=True) is None
        store.put_scan(layer_scan(hashed=True))
        hit = store.get_scan(DIGEST, need_hash=True)
        assert hit is not None and hit.hashed
        store.put_scan(layer_scan(hashed=False))  # never downgrades a hashed index
        hit = store.get_scan(DIGEST, need_hash=True)
        assert hit is not None and hit.hashed


def test_toc_index_only_when_allowed_and_stream_preferred(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.put_scan(layer_scan(source="estargz-toc", hashed=True))
        assert store.get_scan(DIGEST, allow_toc=False) is None
        hit = store.get_scan(DIGEST)
        assert hit is not None and hit.index_source == "estargz-toc"
        store.put_scan(layer_scan(source="stream", hashed=True))
        hit = store.get_scan(DIGEST)
        assert hit is not None and hit.index_source == "stream"


def test_entries_are_stored_compactly(tmp_path: Path) -> None:
    entries = tuple(
        make_entry(f"usr/share/doc/package-{i}/copyright", "0", 1000 + i, 0o644) for i in range(20000)
    )
    with Store(tmp_path) as store:
        store.put_scan(LayerScan(DIGEST, entries, "stream", False, "sha256:" + "0" * 64, 1))
        blob = store.connect().execute("SELECT entries FROM layer_scans").fetchone()[0]
        assert len(blob) < 20000 * 20
        got = store.get_scan(DIGEST)
        assert got is not None and got.entries == entries


def test_schema_version_and_wal(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        assert store.schema_version() == SCHEMA_VERSION == MIGRATIONS[-1][0]
        assert store.connect().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in store.connect().execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"meta", "layer_scans", "facts"} <= tables


def test_migrations_run_once_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Store(tmp_path) as store:
        store.put_scan(layer_scan())
    extra = (SCHEMA_VERSION + 1, ("CREATE TABLE audit_runs (id INTEGER PRIMARY KEY, name TEXT)",))
    monkeypatch.setattr("ociinspect.store.MIGRATIONS", [*MIGRATIONS, extra])
    monkeypatch.setattr("ociinspect.store.SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with Store(tmp_path) as store:
        assert store.schema_version() == SCHEMA_VERSION + 1
        assert store.get_scan(DIGEST) is not None  # existing data kept
        store.connect().execute("INSERT INTO audit_runs (name) VALUES ('x')")
    with Store(tmp_path) as store:  # a second open does not re-run the migration
        assert store.connect().execute("SELECT count(*) FROM audit_runs").fetchone()[0] == 1


def test_a_newer_schema_is_left_alone(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.put_scan(layer_scan())
        store.connect().execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    with Store(tmp_path) as store:
        assert store.get_scan(DIGEST) is None
        store.put_scan(layer_scan(digest="sha256:" + "cd" * 32))
        assert store.disabled_reason and "newer ociinspect" in store.disabled_reason
    conn = sqlite3.connect(tmp_path / STORE_FILE)
    assert conn.execute("SELECT count(*) FROM layer_scans").fetchone()[0] == 1
    conn.close()


def test_a_corrupt_file_is_moved_aside_and_rebuilt(tmp_path: Path) -> None:
    (tmp_path / STORE_FILE).write_bytes(b"this is not sqlite" * 100)
    with Store(tmp_path) as store:
        store.put_scan(layer_scan())
        assert store.get_scan(DIGEST) is not None
    assert [p.name.startswith(f"{STORE_FILE}.corrupt-") for p in tmp_path.iterdir()].count(True) == 1


@pytest.mark.parametrize("value", ["abc", "", "1.5", "²", "-1"])
def test_a_schema_version_that_is_no_number_is_a_damaged_store(tmp_path: Path, value: str) -> None:
    """(``int()`` of it raised ValueError, which nothing caught.)"""
    with Store(tmp_path) as store:
        store.put_scan(layer_scan())
        store.connect().execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (value,))
    with Store(tmp_path) as store:
        assert store.get_scan(DIGEST) is None  # moved aside and rebuilt
        store.put_scan(layer_scan())
        assert store.get_scan(DIGEST) is not None and store.schema_version() == SCHEMA_VERSION
        assert store.disabled_reason is None
    assert [p.name.startswith(f"{STORE_FILE}.corrupt-") for p in tmp_path.iterdir()].count(True) == 1


def test_unwritable_directory_disables_the_cache_without_failing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with Store(blocker / "sub") as store:
        store.put_scan(layer_scan())
        assert store.get_scan(DIGEST) is None
        assert store.disabled_reason


def test_unreadable_row_is_dropped(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.put_scan(layer_scan())
        store.connect().execute("UPDATE layer_scans SET entries = x'00ff'")
        assert store.get_scan(DIGEST) is None
        assert store.cached_digests() == []


def test_threads_share_the_store(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    with Store(tmp_path) as store:

        def work(i: int) -> None:
            try:
                digest = f"sha256:{i:064x}"
                store.put_scan(layer_scan(digest=digest))
                assert store.get_scan(digest) is not None
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert len(store.cached_digests()) == 16


def test_facts(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        assert store.get_fact("osfiles:" + DIGEST) is None
        store.put_fact("osfiles:" + DIGEST, '{"files": {}}')
    with Store(tmp_path) as store:
        assert store.get_fact("osfiles:" + DIGEST) == '{"files": {}}'


def test_store_file_is_created_only_on_use(tmp_path: Path) -> None:
    Store(tmp_path / "never").close()
    assert not (tmp_path / "never").exists()
