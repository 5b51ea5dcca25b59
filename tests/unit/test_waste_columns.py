"""The compact layer index (issue 14): :class:`EntryTable` and the waste analysis over its columns.

The column path of :func:`ociinspect.analyzers.waste.analyze` must give exactly the figures of the tree walk
(which the dive equality tests pin): compared here on generated whiteout-free layer sets, with duplicate paths,
implicit directories, directories by mode bits and files replacing files of lower layers.
"""

from __future__ import annotations

import dataclasses
import tarfile
import tracemalloc
import zlib
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

import ociinspect.analyzers.waste as waste
from ociinspect.content.scan import scan_tar_stream
from ociinspect.model.entries import Entry, EntryTable, LayerScan, make_entry
from ociinspect.store import Store

_NAMES = ["a", "b", "a/b", "a/c", "a/b/c", "b/x", "c", "a-b", "a/b-c", "d/e/f"]


@st.composite
def _entry(draw: st.DrawFn) -> Entry:
    path = draw(st.sampled_from(_NAMES))
    kind = draw(st.sampled_from(["0", "5", "2", "1", "dirmode"]))
    size = draw(st.integers(0, 300)) if kind == "0" else draw(st.sampled_from([0, 0, 7]))
    if kind == "dirmode":  # a directory by its mode bits only (Go's FileInfo().IsDir())
        return make_entry(path, "0", size, 0o040755)
    return make_entry(path, kind, size, 0o644, 1, 2, "x" if kind in "12" else "")


_LAYERS = st.lists(st.lists(_entry(), max_size=8), min_size=1, max_size=4)


def _reference(layers: list[list[Entry]]) -> tuple[object, ...]:
    """The tree walk's figures (the code every image took before the column path)."""
    dive = waste._dive_efficiency_trees(layers)
    fs, changes = waste._apply(layers, keep_changes=False)
    final = list(fs.files.values())
    return (
        dive,
        tuple(changes),
        sum(c.overwritten_bytes for c in changes),
        sum(e.size for _, e in final),
        sum(1 for _, e in final if not e.is_dir),
    )


@settings(max_examples=400, deadline=None)
@given(_LAYERS)
def test_column_analysis_equals_the_tree_walk(layers: list[list[Entry]]) -> None:
    tables = [EntryTable.of(layer) for layer in layers]
    assert waste._plain_tables(tables) is not None  # no ".wh." name: the column path is taken for dive
    assert waste._dive_efficiency_columns(tables) == waste._dive_efficiency_trees(layers)
    report = waste.analyze(tables)
    dive, changes, overwritten, final_size, final_files = _reference(layers)
    assert report.dive == dive
    assert report.layers == changes
    assert (report.overwritten_bytes, report.final_size_bytes, report.final_files) == (
        overwritten,
        final_size,
        final_files,
    )
    assert report.whiteout_deleted_bytes == 0


def test_replaced_directory_takes_the_tree_walk() -> None:
    # a file at "a" over a layer with "a/b": the column path does not model the subtree removal
    layers = [[make_entry("a/b", "0", 10, 0o644)], [make_entry("a", "0", 3, 0o644)]]
    tables = [EntryTable.of(layer) for layer in layers]
    below = [waste._ancestors(t.paths) for t in tables]
    assert waste._apply_columns(tables, below, [True, True]) is None
    report = waste.analyze(tables)
    assert (report.final_size_bytes, report.final_files, report.overwritten_bytes) == (3, 1, 10)


def test_table_round_trips_entries_and_keeps_huge_numbers() -> None:
    entries = [
        make_entry("a", "5", 0, 0o755),
        make_entry("a/.wh.b", "0", 0, 0o644),
        make_entry("a/l", "1", 0, 0o644, 7, 8, "a/x", None),
        make_entry("a/f", "0", 1 << 70, 1 << 40, -5, 1 << 33, "", "ab" * 32),  # hostile PAX values: exact
    ]
    table = EntryTable.of(entries)
    assert list(table) == entries and table == entries and table[-1] == entries[-1]
    assert table[1:3] == tuple(entries[1:3]) and table[1].whiteout == "whiteout"
    assert table.content_size == 1 << 70
    assert LayerScan("sha256:x", table, "stream", False).content_size == 1 << 70
    assert waste._plain_tables([table]) is None  # a value kept outside the columns: the tree walk
    assert table.dir_flags() == bytes([1, 0, 0, 0])
    assert (
        EntryTable.of(
            [make_entry("d", "0", 0, 0o040700), make_entry("x", "0", 0, 1 << 40 | 0o040000)]
        ).dir_flags()
        == b"\1\1"
    )


def _tar_of_files(count: int) -> bytes:
    import io

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for i in range(count):
            ti = tarfile.TarInfo(f"node_modules/pkg{i // 100:05d}/lib/f{i % 100:03d}.js")
            ti.size = 3
            tf.addfile(ti, io.BytesIO(b"x=1"))
    return buf.getvalue()


def test_index_has_no_object_per_entry() -> None:
    # 20,000 entries: the old tuple of Entry objects took ~400 bytes each plus the path; the table ~100 with it
    data = _tar_of_files(20_000)
    tracemalloc.start()
    try:
        table, _, _, _ = scan_tar_stream([data], what="t")
        kept, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(table, EntryTable) and len(table) == 20_000
    assert kept < 20_000 * 160, kept
    report = waste.analyze([table])
    assert report.final_files == 20_000 and report.layers[0].added_bytes == 60_000
    assert report.dive.efficiency == 1.0 and report.dive.inefficient_files == ()


def _mixed_tar(fmt: int) -> bytes:
    import io

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for i in range(40):
            kind = i % 5
            name = (
                ("deep/" * (i % 30)) + f"n{i}" + ("é" if i % 7 == 0 else "")
            )  # long names: prefix / PAX / GNU
            ti = tarfile.TarInfo(("./" if i % 4 == 0 else "") + name)
            ti.uid, ti.mode = i, 0o640
            if kind == 0:
                ti.type = tarfile.DIRTYPE
            elif kind == 1:
                ti.type, ti.linkname = tarfile.SYMTYPE, "../" * (i % 3) + "t"
            elif kind == 2:
                ti.type, ti.linkname = tarfile.LNKTYPE, "n1"
            else:
                ti.size = i * 37
            tf.addfile(ti, io.BytesIO(b"y" * ti.size) if ti.size else None)
    return buf.getvalue()


def test_column_walker_is_chunking_blind_and_equals_the_member_reader() -> None:
    # the column walker (plain headers read in place, scan.py _walk_plain) against the per-member reader that
    # --hash takes, over every header format and chunkings that cut headers and data anywhere
    for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        try:
            data = _mixed_tar(fmt)
        except ValueError:
            continue
        whole, digest, total, warnings = scan_tar_stream([data], what="t")
        hashed = scan_tar_stream([data], what="t", hash_files=True)[0]
        assert [e.path for e in whole] == [e.path for e in hashed] and len(whole) == 40
        assert whole == [dataclasses.replace(e, sha256=None) for e in hashed]
        for step in (1, 100, 511, 512, 513, 1000, 4096):
            pieces = [data[i : i + step] for i in range(0, len(data), step)]
            assert scan_tar_stream(pieces, what="t") == (whole, digest, total, warnings)


def test_store_gives_tables_and_drops_rows_a_table_cannot_hold(tmp_path: Path) -> None:
    table = EntryTable.of([make_entry("a", "5", 0, 0o755), make_entry("a/b", "2", 0, 0o777, 0, 0, "c")])
    digest = "sha256:" + "cd" * 32
    with Store(tmp_path / "c") as store:
        store.put_scan(LayerScan(digest, table, "stream", False, "sha256:" + "0" * 64, 1024))
    with Store(tmp_path / "c") as store:
        got = store.get_scan(digest)
        assert got is not None and isinstance(got.entries, EntryTable) and got.entries == table
        # rows an older or damaged store may hold: a two-character typeflag, a numeric path, a text size
        for row in ('["a","xy",0,0,0,0,"",null]', '[5,"0",0,0,0,0,"",null]', '["a","0","9",0,0,0,"",null]'):
            store.put_scan(LayerScan(digest, table, "stream", False, "sha256:" + "0" * 64, 1024))
            blob = zlib.compress(f"[{row}]".encode())
            store.connect().execute("UPDATE layer_scans SET entries = ?", (blob,))
            assert store.get_scan(digest) is None  # dropped: the layer is scanned again
            assert store.connect().execute("SELECT count(*) FROM layer_scans").fetchone()[0] == 0
