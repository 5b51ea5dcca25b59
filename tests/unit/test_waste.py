"""The waste analyzer on hand-computable layer sets: dive's numbers and ours, derived in the comments."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from waste_fixtures import (
    QUIRK_LAYERS,
    TOOL,
    WASTE_LAYERS,
    A,
    Spec,
    content,
    d,
    f,
    hard,
    opq,
    sym,
    tar_bytes,
    wh,
)

import ociinspect.analyzers.waste as waste_module
from ociinspect.analyzers.waste import (
    analyze,
    dive_efficiency,
    dive_file_lists,
    duplicates,
    flatten,
    layer_changes,
)
from ociinspect.content.scan import scan_tar_stream
from ociinspect.model.entries import Entry


def entries(layers: list[list[Spec]], *, hashed: bool = False) -> list[list[Entry]]:
    return [scan_tar_stream([tar_bytes(s)], what="t", hash_files=hashed)[0] for s in layers]


WORKED = entries(WASTE_LAYERS, hashed=True)


def test_worked_example_dive_numbers() -> None:
    # Layer sizes = sum of tar header sizes (directories, links and whiteouts are 0):
    #   L0 = tool 1000 + a 200 + b 300 + c 400 + config 100 + libx.so 500 = 2500
    #   L1 = config 100 + copy-of-tool 1000 = 1100;  L2 = srv/a 200;  L3 = new.so 50
    dive = dive_efficiency(WORKED)
    assert dive.layer_sizes == (2500, 1100, 200, 50)
    assert (dive.size_bytes, dive.user_size_bytes) == (3850, 1350)
    # Leaves per layer and the size each adds to its path:
    #   L0: /bin/tool 1000, /data/a 200, /data/b 300, /data/sub/c 400, /etc/config 100, /lib/libx.so 500,
    #       /lib/libx-link 0, /lib/libx.so.1 0
    #   L1: /bin 0 (a directory entry with no children in this layer is a leaf), /etc/config 100,
    #       /opt/copy-of-tool 1000
    #   L2: /bin/tool 0 and /data/a 0 (whiteouts of files), /data/sub 400 (whiteout of a directory: everything
    #       below it in L0+L1), /srv/a 200
    #   L3: /lib/new.so 50 (the opaque marker is ignored; /lib has children so it is no leaf)
    # Paths in >= 2 layers: /bin/tool 1000+0, /data/a 200+0, /etc/config 100+100 -> wasted 1400
    assert [(x.path, x.count, x.wasted_bytes) for x in dive.inefficient_files] == [
        ("/bin/tool", 2, 1000),
        ("/data/a", 2, 200),
        ("/etc/config", 2, 200),
    ]
    assert dive.wasted_bytes == 1400
    # efficiency = sum of smallest sizes / sum of cumulative sizes
    #   smallest: tool 0, a 0, config 100, b 300, c 400, sub 400, libx 500, links 0, bin 0, copy 1000,
    #             srv/a 200, new.so 50 = 2950
    #   cumulative: 1000 + 200 + 200 + 300 + 400 + 400 + 500 + 0 + 0 + 0 + 1000 + 200 + 50 = 4250
    assert dive.efficiency == 2950 / 4250
    assert dive.user_wasted_ratio == 1400 / 1350
    assert dive.notes == ()


def test_worked_example_our_numbers() -> None:
    report = analyze(WORKED, hashed=True)
    # whiteouts delete tool 1000 + a 200 + sub/c 400 (L2) and libx.so 500 + 2 links (L3, opaque /lib)
    assert report.whiteout_deleted_bytes == 2100
    assert [c.whiteout_deleted_bytes for c in report.layers] == [0, 0, 1600, 500]
    # the chmod of /etc/config rewrites its 100 bytes
    assert report.overwritten_bytes == 100
    counts = [(c.added, c.modified, c.removed) for c in report.layers]
    assert counts == [(8, 0, 0), (1, 1, 0), (1, 0, 3), (1, 0, 3)]
    assert [(c.added_bytes, c.modified_bytes, c.removed_bytes) for c in report.layers] == [
        (2500, 0, 0),
        (1000, 100, 0),
        (200, 0, 1600),
        (50, 0, 500),
    ]
    # final filesystem: copy-of-tool 1000, b 300, srv/a 200, config 100, new.so 50
    assert (report.final_size_bytes, report.final_files) == (1650, 5)
    # duplicates: tool = copy-of-tool (1000), a = srv/a (200), config L0 = config L1 (100)
    assert report.duplicates is not None
    assert [(x.size, x.copies) for x in report.duplicates] == [
        (1000, ((0, "bin/tool", False), (1, "opt/copy-of-tool", True))),
        (200, ((0, "data/a", False), (2, "srv/a", True))),
        (100, ((0, "etc/config", False), (1, "etc/config", True))),
    ]
    assert report.duplicate_wasted_bytes == 1300


def test_duplicates_need_hashes() -> None:
    report = analyze(entries(WASTE_LAYERS), hashed=False)
    assert report.duplicates is None and report.duplicate_wasted_bytes is None
    assert duplicates(entries(WASTE_LAYERS)) == []


def test_flatten_worked_example() -> None:
    final = {(x.path, x.layer, x.entry.type) for x in flatten(WORKED)}
    assert final == {
        ("bin", 1, "dir"),
        ("data", 0, "dir"),
        ("data/b", 0, "file"),
        ("etc", 0, "dir"),
        ("etc/config", 1, "file"),
        ("lib", 3, "dir"),
        ("lib/new.so", 3, "file"),
        ("opt", 1, "dir"),
        ("opt/copy-of-tool", 1, "file"),
        ("srv", 2, "dir"),
        ("srv/a", 2, "file"),
    }


def test_layer_changes_list_where_removed_files_came_from() -> None:
    changes = layer_changes(WORKED)[3].changes
    assert sorted((kind, path, origin) for kind, path, _, origin in changes) == [
        ("added", "lib/new.so", 3),
        ("removed", "lib/libx-link", 0),
        ("removed", "lib/libx.so", 0),
        ("removed", "lib/libx.so.1", 0),
    ]


def test_dive_quirks() -> None:
    dive = dive_efficiency(entries(QUIRK_LAYERS))
    # L0: /a/f 100, /keep 10.  L1: /a/g 50 — layer 1 has no entry for a/, so dive's stacked tree records a/ as
    # an empty, non-directory node.  L2: .wh.a counts 0 (not a directory in that stack); .wh.missing has nothing
    # below: its record is created (cumulative 0, smallest -1) and dive stops visiting layer 2, so /zzz (30) is
    # never counted.  L3: /a/f 100 again.
    # smallest: a/f 100 + keep 10 + a/g 50 + a 0 + missing -1 = 159;  cumulative: 200 + 10 + 50 + 0 + 0 = 260
    assert dive.efficiency == 159 / 260
    assert dive.wasted_bytes == 200 and [x.path for x in dive.inefficient_files] == ["/a/f"]
    assert dive.layer_sizes == (110, 50, 30, 100)  # /zzz still counts in its layer's size
    assert dive.user_wasted_ratio == 200 / 180
    assert len(dive.notes) == 1 and "/missing" in dive.notes[0]


def test_whiteout_and_readd_in_one_layer() -> None:
    layers = entries([[f("a", content("a", 10))], [wh("a"), f("a", content("a2", 12))]])
    dive = dive_efficiency(layers)
    # L1 has two leaves for /a (.wh.a: 0, a: 12): three nodes, cumulative 22, smallest 0
    assert (dive.wasted_bytes, dive.efficiency) == (22, 0.0)
    report = analyze(layers)
    assert [(c.added, c.modified, c.removed) for c in report.layers] == [(1, 0, 0), (0, 1, 0)]
    assert report.whiteout_deleted_bytes == 10


def test_directory_replaced_by_a_file() -> None:
    layers = entries(
        [[d("x"), f("x/a", content("xa", 10)), f("x/b", content("xb", 20))], [f("x", content("x", 5))]]
    )
    assert dive_efficiency(layers).wasted_bytes == 0  # dive: /x is a new leaf path, x/a and x/b seen once
    report = analyze(layers)
    assert report.overwritten_bytes == 30  # ours: the file hides everything under the old directory
    assert [x.path for x in flatten(layers)] == ["x"]


def test_opaque_directory_hides_only_lower_layers() -> None:
    layers = entries(
        [
            [d("etc"), f("etc/a", content("a", 7)), f("etc/b", content("b", 8))],
            [d("etc"), opq("etc"), f("etc/c", content("c", 9))],
        ]
    )
    assert [x.path for x in flatten(layers)] == ["etc", "etc/c"]
    report = analyze(layers)
    assert report.whiteout_deleted_bytes == 15 and report.layers[1].removed == 2
    assert dive_efficiency(layers).wasted_bytes == 0  # dive ignores opaque markers


def test_hardlinks_and_symlinks_count_zero() -> None:
    layers = entries([[f("big", TOOL), hard("big-link", "big"), sym("big-sym", "big")], [wh("big-link")]])
    dive = dive_efficiency(layers)
    assert dive.layer_sizes == (1000, 0)
    assert [(x.path, x.wasted_bytes) for x in dive.inefficient_files] == [("/big-link", 0)]
    assert analyze(layers).whiteout_deleted_bytes == 0


def test_no_layers_and_empty_layers() -> None:
    empty = dive_efficiency([])
    assert (empty.size_bytes, empty.efficiency, empty.user_wasted_ratio) == (0, 1.0, None)
    one = dive_efficiency(entries([[f("a", A)]]))
    assert (one.user_size_bytes, one.user_wasted_ratio, one.efficiency) == (0, None, 1.0)
    blank = dive_efficiency([[], []])
    assert (blank.wasted_bytes, blank.efficiency, blank.user_wasted_ratio) == (0, 1.0, None)


def test_dive_file_lists_shape() -> None:
    lists = dive_file_lists(
        entries([[d("etc"), f("etc/x", b"12", 0o4755), sym("etc/s", "x")], [f("opt/y", b"3")]])
    )
    assert lists[0] == [
        {"path": "etc/s", "typeFlag": 50, "linkName": "x", "size": 0, "fileMode": (1 << 27) | 0o777, "uid": 0,
         "gid": 0, "isDir": False},
        {"path": "etc/x", "typeFlag": 48, "linkName": "", "size": 2, "fileMode": (1 << 23) | 0o755, "uid": 0,
         "gid": 0, "isDir": False},
        {"path": "etc", "typeFlag": 53, "linkName": "", "size": 0, "fileMode": (1 << 31) | 0o755, "uid": 0,
         "gid": 0, "isDir": True},
    ]  # fmt: skip
    # layer 1 has no entry for opt/: dive lists it as an empty record
    assert lists[1][1] == {"path": "", "typeFlag": 0, "linkName": "", "size": 0, "fileMode": 0, "uid": 0,
                           "gid": 0, "isDir": False}  # fmt: skip


def test_analyzer_is_pure() -> None:
    tree = ast.parse(Path(waste_module.__file__).read_text())
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    pure = {"__future__", "dataclasses", "collections", "heapq", "typing", "ociinspect"}  # computation only
    assert imported <= pure
    source = Path(waste_module.__file__).read_text()
    for forbidden in ("open(", "requests", "socket", "subprocess"):
        assert forbidden not in source


@pytest.mark.parametrize("order", [0, 1])
def test_tar_order_does_not_change_dive_numbers(order: int) -> None:
    layers = [list(reversed(specs)) if order else specs for specs in WASTE_LAYERS]
    dive = dive_efficiency(entries(layers))
    assert (dive.wasted_bytes, dive.efficiency) == (1400, 2950 / 4250)
