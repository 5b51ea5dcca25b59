"""The compact layer index (issue 14): :class:`EntryTable` and the waste analysis over its columns.

The column analysis of :mod:`ociinspect.analyzers.waste` must give exactly the figures of the tree walk it
replaced (tests/waste_tree_walk.py, which the dive equality tests pinned): compared here on generated layer sets
with duplicate paths, implicit directories, directories by mode bits, files replacing files and directories (and
directories replacing files), whiteouts, opaque directories, duplicate content, and hostile ``.wh.`` names.
"""

from __future__ import annotations

import dataclasses
import tarfile
import tracemalloc
import zlib
from pathlib import Path

import pytest
import waste_tree_walk as tree_walk
from hypothesis import given, settings
from hypothesis import strategies as st
from waste_fixtures import WASTE_LAYERS, tar_bytes

import ociinspect.analyzers.waste as waste
from ociinspect.content.scan import scan_tar_stream
from ociinspect.model.entries import Entry, EntryTable, LayerScan, make_entry
from ociinspect.store import Store

_NAMES = ["a", "b", "a/b", "a/c", "a/b/c", "b/x", "c", "a-b", "a/b-c", "d/e/f", ".c", "a/.c", "-a", "a/-b"]
# whiteouts of files, of directories, of implicit directories and of missing paths (dive stops there); names
# sorting before ".wh." ("-a", ".c": dive's Stack removes what the same layer adds below them)
_WHITEOUTS = [
    ".wh.a", ".wh.b", "a/.wh.b", "a/.wh.c", "a/b/.wh.c", ".wh.c", "d/.wh.e", "d/e/.wh.f", ".wh.-a", "a/.wh.-b",
    ".wh..c", "a/.wh..c", ".wh.a-b", ".wh.zz",
]  # fmt: skip
_OPAQUE = [".wh..wh..opq", "a/.wh..wh..opq", "a/b/.wh..wh..opq", "d/e/.wh..wh..opq", "b/.wh..wh..opq"]
# what no sane image holds: AUFS names, bare ".wh.", ".wh." directories, ".wh..wh." inside a path, ".wh." inside
# a name
_ODD = [
    ".wh..wh.plnk",
    "a/.wh..wh.x/y",
    "a/.wh.",
    ".wh.",
    "a/.wh.b/c",
    ".wh.a/x",
    "x.wh.y",
    "a/.wh.b/.wh..wh..opq",
]


@st.composite
def _entry(draw: st.DrawFn, names: list[str]) -> Entry:
    path = draw(st.sampled_from(names))
    kind = draw(st.sampled_from(["0", "5", "2", "1", "dirmode"]))
    size = (
        draw(st.integers(0, 300)) if kind == "0" else draw(st.sampled_from([0, 0, 7, 1 << 64]))
    )  # 1 << 64: kept outside the columns
    sha = draw(st.sampled_from([None, "h1", "h2", ""])) if kind == "0" else None
    if kind == "dirmode":  # a directory by its mode bits only (Go's FileInfo().IsDir())
        return make_entry(path, "0", size, 0o040755)
    return make_entry(path, kind, size, 0o644, 1, 2, "x" if kind in "12" else "", sha)


_PLAIN_LAYERS = st.lists(st.lists(_entry(_NAMES), max_size=8), min_size=1, max_size=4)
_ALL_NAMES = _NAMES * 2 + _WHITEOUTS + _OPAQUE
_LAYERS = st.lists(st.lists(_entry(_ALL_NAMES), max_size=10), min_size=1, max_size=5)
_ODD_LAYERS = st.lists(st.lists(_entry(_ALL_NAMES + _ODD), max_size=10), min_size=1, max_size=5)


def _reference(layers: list[list[Entry]]) -> tuple[object, ...]:
    """The tree walk's figures (tests/waste_tree_walk.py: the code every image with whiteouts took before)."""
    dive = tree_walk._dive_efficiency_trees(layers)
    fs, changes = tree_walk._apply(layers, keep_changes=False)
    final = list(fs.files.values())
    return (
        dive,
        tuple(changes),
        sum(c.whiteout_deleted_bytes for c in changes),
        sum(c.overwritten_bytes for c in changes),
        sum(e.size for _, e in final),
        sum(1 for _, e in final if not e.is_dir),
    )


def _check_against_the_tree_walk(layers: list[list[Entry]]) -> None:
    tables = [EntryTable.of(layer) for layer in layers]
    dive, changes, deleted, overwritten, final_size, final_files = _reference(layers)
    for given_layers in (tables, layers):  # columns as scanned, and lists of Entry (tests, eStargz TOCs)
        assert waste.dive_efficiency(given_layers) == dive
        report = waste.analyze(given_layers, hashed=True)
        assert report.dive == dive
        assert report.layers == changes
        assert (
            report.whiteout_deleted_bytes,
            report.overwritten_bytes,
            report.final_size_bytes,
            report.final_files,
        ) == (deleted, overwritten, final_size, final_files)
        assert report.duplicates == tuple(tree_walk.tree_duplicates(layers))
        assert waste.analyze(given_layers).duplicates is None
    flat = [(f.path, f.layer, f.entry) for f in waste.flatten(tables)]
    fs, full_changes = tree_walk._apply(layers)
    assert flat == [(p, layer, e) for p, (layer, e) in sorted(fs.files.items())]
    assert waste.layer_changes(tables) == full_changes
    assert waste.duplicates(tables) == tree_walk.tree_duplicates(layers)


@settings(max_examples=300, deadline=None)
@given(_PLAIN_LAYERS)
def test_column_analysis_equals_the_tree_walk(layers: list[list[Entry]]) -> None:
    # layers without ".wh." names: the plain path (no stacked tree, nothing removed unless a file replaces a
    # directory)
    _check_against_the_tree_walk(layers)


@settings(max_examples=700, deadline=None)
@given(_LAYERS)
def test_column_analysis_equals_the_tree_walk_with_whiteouts(layers: list[list[Entry]]) -> None:
    # whiteouts (of files, directories, implicit directories, missing paths), opaque directories, files
    # replacing directories and directories replacing files, duplicate content: every figure of the tree walk
    _check_against_the_tree_walk(layers)


@settings(max_examples=500, deadline=None)
@given(_ODD_LAYERS)
def test_column_analysis_equals_the_tree_walk_on_odd_whiteout_names(layers: list[list[Entry]]) -> None:
    # hostile names: dive's trees do odd things with them (".wh." nodes with children, bare ".wh.", AUFS
    # names cutting a path short); the columns must follow node for node
    _check_against_the_tree_walk(layers)


def _f(path: str, kind: str = "0", size: int = 0) -> Entry:
    return make_entry(path, kind, size, 0o755 if kind == "5" else 0o644)


@pytest.mark.parametrize(
    "layers",
    [
        # a ".wh.b" directory under a: dive's Stack re-creates it as an empty record above c, so c counts when a
        # is whited out later
        [[_f("a", "5")], [_f("a", "5"), _f("a/.wh.b/c", "0", 5)], [_f(".wh.a")]],
        # a bare ".wh." with a child: Stack removes a's subtree, then what the layer adds below sorts after it
        [
            [_f("a", "5"), _f("a/-x", "0", 3)],
            [_f("a", "5"), _f("a/.wh./x", "0", 5), _f("a/z", "0", 7)],
            [_f(".wh.a")],
            [_f("a", "5")],  # a leaf here: "/a" is counted in two layers
        ],
        # whiteouts of missing paths: dive stops that layer, and the path keeps smallest -1 unless seen later
        [[_f("x", "0", 3)], [_f(".wh.q"), _f("r", "0", 2)]],
        [[_f("x", "0", 3)], [_f(".wh.q")], [_f("q", "0", 4)]],
        # a whiteout of a directory whose only record in the layer above is implicit counts 0
        [[_f("a", "5"), _f("a/b", "0", 9)], [_f("a/c", "0", 1)], [_f(".wh.a")]],
    ],
)
def test_dive_quirks(layers: list[list[Entry]]) -> None:
    _check_against_the_tree_walk(layers)


def test_worked_example_has_no_entry_built(monkeypatch: pytest.MonkeyPatch) -> None:
    # the worked example of docs/waste.md (whiteouts, an opaque directory, a chmod) with --hash: analyze reads
    # the columns and builds no Entry (the tree walk built one per tar entry, and dive's trees on top)
    layers = [scan_tar_stream([tar_bytes(s)], what="t", hash_files=True)[0] for s in WASTE_LAYERS]
    assert all(isinstance(t, EntryTable) for t in layers)
    expected = _reference(list(map(list, layers)))
    dups = tree_walk.tree_duplicates(list(map(list, layers)))

    def no_entry(self: EntryTable, i: int) -> Entry:
        raise AssertionError("an Entry was built")

    monkeypatch.setattr(EntryTable, "entry", no_entry)
    report = waste.analyze(layers, hashed=True)
    assert (report.dive, report.layers, report.whiteout_deleted_bytes, report.overwritten_bytes) == expected[
        :4
    ]
    assert (report.final_size_bytes, report.final_files) == (1650, 5) == expected[4:]
    assert report.duplicates == tuple(dups) and report.duplicate_wasted_bytes == 1300


@settings(max_examples=300, deadline=None)
@given(
    _LAYERS,
    st.sampled_from([None, 0, 1, 3]),
    st.sampled_from(["size", "path"]),
    st.sampled_from([None, "a", "/a/b*", "d", "/"]),
)
def test_largest_files_equals_flatten_filtered_and_sorted(
    layers: list[list[Entry]], top: int | None, by: str, pattern: str | None
) -> None:
    # `files` (its default view) reads the columns; what it lists is what flatten + filter + sort + slice gave
    from ociinspect.reports.waste import match_path

    tables = [EntryTable.of(layer) for layer in layers]
    keep = (lambda path: match_path(pattern, path)) if pattern else None
    final = [f for f in waste.flatten(tables) if not f.entry.is_dir and (keep is None or keep(f.path))]
    final.sort(key=(lambda f: (-f.entry.size, f.path)) if by == "size" else (lambda f: f.path))
    got, matched, matched_bytes = waste.largest_files(tables, top=top, by=by, keep=keep)
    assert (matched, matched_bytes) == (len(final), sum(f.entry.size for f in final))
    assert got == (final[:top] if top else final)


@settings(max_examples=300, deadline=None)
@given(
    _LAYERS,
    st.integers(0, 4),
    st.sampled_from([None, 0, 1, 3]),
    st.sampled_from(["size", "path"]),
    st.sampled_from([None, "a", "/a/b*", "d"]),
)
def test_layer_files_equals_layer_changes_filtered_and_sorted(
    layers: list[list[Entry]], layer: int, top: int | None, by: str, pattern: str | None
) -> None:
    # `files --layer N` reads the columns; what it lists is layer_changes' changes filtered, sorted and sliced
    from ociinspect.reports.waste import match_path

    tables = [EntryTable.of(layer_entries) for layer_entries in layers]
    layer %= len(tables)
    keep = (lambda path: match_path(pattern, path)) if pattern else None
    want = [c for c in waste.layer_changes(tables)[layer].changes if keep is None or keep(c[1])]
    want.sort(key=(lambda c: (-c[2].size, "/" + c[2].path)) if by == "size" else (lambda c: "/" + c[2].path))
    got, matched, matched_bytes = waste.layer_files(tables, layer, top=top, by=by, keep=keep)
    assert (matched, matched_bytes) == (len(want), sum(c[2].size for c in want))
    assert got == (want[:top] if top else want)


def test_largest_files_builds_an_entry_only_for_the_files_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    table = scan_tar_stream([_tar_of_files(2000)], what="t")[0]
    assert isinstance(table, EntryTable)
    built: list[int] = []
    original = EntryTable.entry

    def counting(self: EntryTable, i: int) -> Entry:
        built.append(i)
        return original(self, i)

    monkeypatch.setattr(EntryTable, "entry", counting)
    got, matched, _ = waste.largest_files([table], top=5)
    assert len(got) == 5 and matched >= 2000 and len(built) == 5


def test_replaced_directory() -> None:
    # a file at "a" over a layer with "a/b": the plain path does not model the subtree removal, the general one
    layers = [[make_entry("a/b", "0", 10, 0o644)], [make_entry("a", "0", 3, 0o644)]]
    tables = [EntryTable.of(layer) for layer in layers]
    assert waste._apply_plain(waste._Columns(tables)) is None
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
    assert waste.analyze([table]).final_size_bytes == 1 << 70  # a value kept outside the columns: exact
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
