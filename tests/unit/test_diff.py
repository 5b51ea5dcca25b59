"""ociinspect.analyzers.diff: hand-computed cases, plus a property test of the cost rule (prefix_needed)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ociinspect.analyzers.diff import (
    diff_configs,
    diff_images,
    diff_trees,
    growth_tree,
    layers_to_read,
    prefix_needed,
)
from ociinspect.analyzers.waste import flatten
from ociinspect.model.entries import Entry, LayerScan, make_entry
from ociinspect.model.image import (
    Descriptor,
    HistoryEntry,
    Image,
    ImageConfig,
    Layer,
    SizeEstimate,
    frozen_map,
)

GZ = "application/vnd.oci.image.layer.v1.tar+gzip"


def file(path: str, size: int = 10, mode: int = 0o644, sha: str | None = None, uid: int = 0) -> Entry:
    return make_entry(path, "0", size, mode, uid, 0, "", sha)


def dir_(path: str, mode: int = 0o755) -> Entry:
    return make_entry(path, "5", 0, mode)


def sym(path: str, target: str) -> Entry:
    return make_entry(path, "2", 0, 0o777, linkname=target)


def hard(path: str, target: str) -> Entry:
    return make_entry(path, "1", 0, 0o644, linkname=target)


def wh(path: str) -> Entry:
    head, _, base = path.rpartition("/")
    return make_entry(f"{head}/.wh.{base}" if head else f".wh.{base}", "0", 0, 0o644)


def opq(directory: str) -> Entry:
    return make_entry(f"{directory}/.wh..wh..opq", "0", 0, 0o644)


def layer(
    index: int, name: str, size: int = 100, unc: int | None = 1000, diff_id: str | None = None
) -> Layer:
    return Layer(
        index,
        Descriptor(GZ, f"sha256:{name}", size),
        diff_id if diff_id is not None else f"sha256:diff-{name}",
        HistoryEntry(created_by=f"RUN {name}"),
        SizeEstimate(unc, "exact") if unc is not None else SizeEstimate(None, "unknown", "no trailer read"),
    )


def image(ref: str, layers: Sequence[Layer], config: ImageConfig | None = None, **kw: object) -> Image:
    return Image(
        reference=ref,
        digest=f"sha256:{ref}",
        media_type="application/vnd.oci.image.manifest.v1+json",
        manifest_size=1,
        platform=None,
        config_descriptor=Descriptor("application/vnd.oci.image.config.v1+json", "sha256:c", 1),
        config=config or ImageConfig(),
        layers=tuple(layers),
        **kw,  # type: ignore[arg-type]
    )


def scan(name: str, entries: Sequence[Entry], unc: int | None = None) -> LayerScan:
    return LayerScan(f"sha256:{name}", tuple(entries), "stream", False, None, unc)


def paths(changes: Sequence[object]) -> list[str]:
    return [c.path for c in changes]  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------------ layers


def test_shared_prefix_by_digest_or_diff_id_and_the_suffixes() -> None:
    a = image("a", [layer(0, "base"), layer(1, "x", diff_id="sha256:same"), layer(2, "app1")])
    b = image("b", [layer(0, "base"), layer(1, "y", diff_id="sha256:same"), layer(2, "app2"), layer(3, "z")])
    plan = layers_to_read(a, b)
    assert (plan.shared, plan.only_a, plan.only_b, plan.prefix) == (2, (2,), (2, 3), (0, 1))
    # the same layer at another position does not extend the prefix
    c = image("c", [layer(0, "other"), layer(1, "base")])
    assert layers_to_read(a, c).shared == 0


def test_layer_diff_recompressed_and_size_deltas() -> None:
    a = image("a", [layer(0, "base"), layer(1, "x", 50, diff_id="sha256:same"), layer(2, "app1", 10, 300)])
    b = image("b", [layer(0, "base"), layer(1, "y", 70, diff_id="sha256:same"), layer(2, "app2", 30, 1000)])
    result = diff_images(a, b, [scan("app1", [])], [scan("app2", [])], [scan("base", []), scan("x", [])])
    ld = result.layers
    assert [x.digest for x in ld.shared] == ["sha256:base", "sha256:x"]
    assert [(x.digest, y.digest) for x, y in ld.recompressed] == [("sha256:x", "sha256:y")]
    assert ld.size_delta.compressed == (100 + 70 + 30) - (100 + 50 + 10)
    assert ld.size_delta.uncompressed == 700  # the prefix cancels out even though its sizes differ in blobs
    doc = result.to_json()
    assert doc["layers"]["recompressed"][0]["size_a"] == 50 and doc["size_delta"]["uncompressed"] == 700


def test_unknown_uncompressed_size_is_null_with_a_reason_unless_the_scan_streamed_it() -> None:
    a = image("a", [layer(0, "base"), layer(1, "app1", unc=None)])
    b = image("b", [layer(0, "base"), layer(1, "app2", unc=400)])
    result = diff_images(a, b, [scan("app1", [file("f")])], [scan("app2", [file("f")])])
    assert result.layers.size_delta.uncompressed is None
    note = result.layers.size_delta.uncompressed_note
    assert note is not None and "layer 1 of A" in note and "no trailer read" in note
    streamed = diff_images(a, b, [scan("app1", [file("f")], unc=100)], [scan("app2", [file("f")])])
    assert streamed.layers.size_delta.uncompressed == 300


# ------------------------------------------------------------------------------------------------ files


def test_added_removed_modified_with_what_changed() -> None:
    base = [dir_("etc"), file("etc/keep", 5), file("etc/gone", 7), file("etc/mode", 3), sym("etc/ln", "keep")]
    upper_b = [
        wh("etc/gone"),
        file("etc/mode", 3, 0o755, uid=1000),
        sym("etc/ln", "mode"),
        file("etc/new", 11),
        dir_("etc/keep"),  # a file became a directory
    ]
    d = diff_trees([base], [base, upper_b])
    assert paths(d.added) == ["/etc/new"] and d.added[0].size_b == 11
    assert paths(d.removed) == ["/etc/gone"] and d.removed[0].size_a == 7
    by_path = {c.path: c for c in d.modified}
    assert by_path["/etc/mode"].changes == ("mode", "uid")
    assert by_path["/etc/ln"].changes == ("link",)
    assert by_path["/etc/keep"].changes == ("type", "size", "mode")  # 0644 file → 0755 dir
    assert by_path["/etc/keep"].delta == -5
    assert not d.unknown


def test_content_rules_hashes_sizes_same_layers_and_unknown() -> None:
    base = [file("same", 4, sha="h1"), file("diff", 4, sha="h1"), file("nohash", 4), file("grow", 4)]
    upper = [file("same", 4, sha="h1"), file("diff", 4, sha="h2"), file("nohash", 4), file("grow", 5)]
    d = diff_trees([base], [base, upper])
    assert [(c.path, c.changes) for c in d.modified] == [
        ("/diff", ("content",)),
        ("/grow", ("size", "content")),
    ]
    assert paths(d.unknown) == ["/nohash"]  # rewritten, same size/mode/owner, no hashes: not called modified
    # the same bytes (layers with equal digest/diff_id at (i, j)) are unchanged without hashes
    d2 = diff_trees([[file("x", 4)]], [[], [file("x", 4)]], same_layers=frozenset({(0, 1)}))
    assert not (d2.modified or d2.unknown)


def test_whiteouts_opaque_dirs_and_hardlinks() -> None:
    base = [
        dir_("d"),
        file("d/a", 1),
        file("d/b", 2),
        dir_("o"),
        file("o/old", 3),
        file("t", 4),
        hard("h", "t"),
    ]
    upper = [opq("o"), dir_("o"), file("o/new", 5), wh("d"), file("u", 4), hard("h", "u")]
    d = diff_trees([base], [base, upper])
    assert paths(d.removed) == ["/d", "/d/a", "/d/b", "/o/old"]
    assert paths(d.added) == ["/o/new", "/u"]
    assert [(c.path, c.changes) for c in d.modified] == [("/h", ("link",))]


def test_flatten_reaches_below_implicit_directories() -> None:
    """A layer holding ``a/b/c`` without ``a/`` entries: a whiteout, an opaque marker or a file replacing ``a``
    must remove ``a/b/c`` (before the fix, flatten kept it)."""
    lower = [file("a/b/c", 5)]
    assert [f.path for f in flatten([lower, [wh("a")]])] == []
    assert [f.path for f in flatten([lower, [opq("a")]])] == []
    assert [f.path for f in flatten([lower, [file("a", 1)]])] == ["a"]


def test_growth_tree_depth_and_order() -> None:
    base = [dir_("usr"), dir_("usr/lib"), file("usr/lib/x", 100), dir_("opt"), file("opt/big", 1000)]
    upper = [wh("opt/big"), file("usr/lib/py/y", 300), file("usr/lib/x", 150), file("top", 7)]
    d = diff_trees([base], [base, upper])
    root = growth_tree(d, depth=2)
    assert (root.path, root.delta, root.changed) == ("/", 300 + 50 + 7 - 1000, 4)
    assert [(n.path, n.delta) for n in root.children] == [("/opt", -1000), ("/usr", 350)]
    usr = root.children[1]
    assert [(n.path, n.delta, n.bytes_a, n.bytes_b) for n in usr.children] == [("/usr/lib", 350, 100, 450)]
    assert usr.children[0].children == ()  # depth 2 stops at /usr/lib
    assert growth_tree(d, depth=0).children == ()
    with pytest.raises(ValueError):
        growth_tree(d, depth=-1)


# ------------------------------------------------------------------------------------------------ config


def test_config_diff() -> None:
    ca = ImageConfig(
        user="root",
        env=("PATH=/bin", "A=1", "GONE=x"),
        entrypoint=("/app",),
        exposed_ports=("80/tcp",),
        labels=frozen_map({"v": "1", "k": "same"}),
    )
    cb = ImageConfig(
        user="app",
        env=("PATH=/bin", "A=2", "NEW"),
        entrypoint=("/app",),
        cmd=("--serve",),
        exposed_ports=("443/tcp",),
        labels=frozen_map({"v": "2", "k": "same", "extra": "y"}),
    )
    h = [HistoryEntry(created_by="FROM base"), HistoryEntry(created_by="RUN a")]
    a = image("a", [], ca, history=tuple(h))
    b = image(
        "b",
        [],
        cb,
        history=(h[0], HistoryEntry(created_by="RUN b"), HistoryEntry(created_by="RUN c")),
        annotations=frozen_map({"org.opencontainers.image.base.name": "debian:12"}),
    )
    c = diff_configs(a, b)
    doc = c.to_json()
    assert doc["user"] == {"a": "root", "b": "app"} and doc["entrypoint"] is None
    assert doc["cmd"] == {"a": None, "b": ["--serve"]}
    assert doc["env"] == {
        "added": {"NEW": None},
        "removed": {"GONE": "x"},
        "changed": {"A": {"a": "1", "b": "2"}},
    }
    assert doc["exposed_ports"] == {"added": ["443/tcp"], "removed": ["80/tcp"]}
    assert doc["labels"]["added"] == {"extra": "y"} and doc["labels"]["changed"] == {
        "v": {"a": "1", "b": "2"}
    }
    assert doc["annotations"]["added"] == {"org.opencontainers.image.base.name": "debian:12"}
    assert doc["history"] == {"common": 1, "removed": ["RUN a"], "added": ["RUN b", "RUN c"]}
    assert not c.identical and diff_configs(a, a).identical


# ------------------------------------------------------------------------------------------------ cost rule


def test_prefix_needed_cases() -> None:
    same_paths_a = [scan("a1", [dir_("app"), file("app/x", 3), wh("tmp")])]
    same_paths_b = [scan("b1", [dir_("app"), file("app/x", 9), wh("tmp")])]
    assert not prefix_needed(same_paths_a, same_paths_b)  # both fix every path they touch
    assert not prefix_needed([], [])
    assert prefix_needed([], [scan("b1", [file("new")])])  # added or modified: depends on the prefix
    assert prefix_needed(same_paths_a, [scan("b1", [dir_("app"), file("app/x", 9)])])  # only A removes /tmp
    # a whiteout on both sides hides the prefix there; a path B adds under it is added whatever the prefix
    assert not prefix_needed([scan("a1", [wh("d")])], [scan("b1", [wh("d"), dir_("d"), file("d/n")])])
    # an opaque directory on the A side, a whiteout of the same directory on the B side: B hides more
    assert prefix_needed([scan("a1", [opq("d"), dir_("d")])], [scan("b1", [wh("d")])])
    # a file written on both sides: whatever the prefix had there (and below) is replaced on both sides
    assert not prefix_needed([scan("a1", [file("p", 1)])], [scan("b1", [file("p", 2)])])
    # ... unless a layer names the path twice (the rule gives up)
    assert prefix_needed([scan("a1", [dir_("p"), file("p", 1)])], [scan("b1", [file("p", 2)])])


def test_diff_images_refuses_to_guess_without_the_prefix() -> None:
    a = image("a", [layer(0, "base"), layer(1, "app1")])
    b = image("b", [layer(0, "base"), layer(1, "app2")])
    with pytest.raises(ValueError, match="pass the prefix"):
        diff_images(a, b, [scan("app1", [])], [scan("app2", [file("new")])])
    with pytest.raises(ValueError, match="scans of A"):
        diff_images(a, b, [], [scan("app2", [])])
    with pytest.raises(ValueError, match="given for layer 1"):
        diff_images(a, b, [scan("app2", [])], [scan("app2", [])])


def test_identical_and_json_contract() -> None:
    a = image("a", [layer(0, "base"), layer(1, "app1")])
    b = image("b", [layer(0, "base"), layer(1, "app2")])
    prefix = [scan("base", [dir_("etc"), file("etc/x", 5)])]
    doc = diff_images(a, b, [scan("app1", [file("f", 3)])], [scan("app2", [file("f", 3)])], prefix).to_json()
    assert doc["identical"] is None and [f["path"] for f in doc["files"]["unknown"]] == ["/f"]
    changed = diff_images(a, b, [scan("app1", [file("f", 3)])], [scan("app2", [file("f", 4)])], prefix)
    doc = changed.to_json()
    assert doc["identical"] is False
    assert set(doc) >= {"schema_version", "a", "b", "layers", "files", "size_delta", "growth", "config"}
    assert doc["schema_version"] == 1 and doc["a"] == {
        "reference": "a",
        "digest": "sha256:a",
        "platform": None,
        "layers": 2,
    }
    assert set(doc["layers"]) == {"shared", "only_a", "only_b", "recompressed"}
    m = doc["files"]["modified"][0]
    assert (m["path"], m["size_a"], m["size_b"], m["delta"], m["changes"]) == (
        "/f",
        3,
        4,
        1,
        ["size", "content"],
    )
    assert doc["growth"]["tree"]["delta"] == 1 and doc["prefix_read"] is True
    same = diff_images(a, a, [], [])
    assert same.identical is True and same.prefix_read is False


# ------------------------------------------------------------------------------------------------ property


NAMES = ["d", "d/x", "d/e", "d/e/y", "x", "f", "f/z"]


@st.composite
def layer_entries(draw: st.DrawFn) -> list[Entry]:
    """A well-formed layer: parents written as directories, nothing below a non-directory, no path both
    written and whited out."""
    out: dict[str, Entry] = {}
    removed: list[Entry] = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(NAMES))
        kind = draw(st.sampled_from(["file", "file", "dir", "sym", "wh", "opq"]))
        parts = name.split("/")
        ancestors = ["/".join(parts[:i]) for i in range(1, len(parts))]
        if any(a in out and not out[a].is_dir for a in ancestors) or name in out:
            continue
        if any(r.target == name or name.startswith(r.target + "/") for r in removed):
            continue
        if kind == "wh":
            if not any(p == name or p.startswith(name + "/") for p in out):
                removed.append(wh(name))
            continue
        for a in ancestors:
            out.setdefault(a, dir_(a))
        if kind == "opq":
            out[name] = dir_(name)
            out[name + "/.wh..wh..opq"] = opq(name)
        elif kind == "dir":
            out[name] = dir_(name, draw(st.sampled_from([0o755, 0o700])))
        elif kind == "sym":
            out[name] = sym(name, draw(st.sampled_from(["x", "d/x"])))
        else:
            out[name] = file(name, draw(st.integers(0, 3)), sha=draw(st.sampled_from(["h1", "h2"])))
        if not out[name].is_dir:
            for p in [p for p in out if p.startswith(name + "/")]:
                del out[p]
    return removed + [out[p] for p in sorted(out)]


def _as_tuple(d: object) -> tuple[object, ...]:
    return tuple(
        tuple((c.path, c.changes, c.a, c.b) for c in getattr(d, k)) for k in ("added", "removed", "modified")
    )


@settings(max_examples=150, deadline=None)
@given(
    st.lists(layer_entries(), min_size=1, max_size=3),
    st.lists(layer_entries(), max_size=2),
    st.lists(layer_entries(), max_size=2),
)
def test_prefix_not_needed_means_the_prefix_cannot_change_the_diff(
    prefix: list[list[Entry]], sa: list[list[Entry]], sb: list[list[Entry]]
) -> None:
    scans_a = [scan(f"a{i}", e) for i, e in enumerate(sa)]
    scans_b = [scan(f"b{i}", e) for i, e in enumerate(sb)]
    if prefix_needed(scans_a, scans_b):
        return
    with_prefix = diff_trees([*prefix, *sa], [*prefix, *sb])
    without = diff_trees(sa, sb)
    assert _as_tuple(with_prefix) == _as_tuple(without)
