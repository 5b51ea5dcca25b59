"""Truth test of ``ociinspect.analyzers.diff``: our diff of two images equals the diff of their trees unpacked by a
small independent reference unpacker (plain :mod:`tarfile`, OCI whiteout rules, nothing from ociinspect), on a
hand-made pair with adds/removes/modifies/chmod/chown/whiteouts/opaque dirs/hardlinks/type changes, and on
hypothesis-generated pairs.  Images are real gzip layers behind the in-memory source (which counts the blobs
read), loaded by the loader and scanned by the scanner, so the cost rule is checked on real reads.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from waste_fixtures import (
    CREATED,
    OCI_CONFIG,
    OCI_MANIFEST,
    LayerBlob,
    MemorySource,
    Spec,
    content,
    d,
    f,
    gzip_layer,
    hard,
    opq,
    sha256,
    sym,
    tar_bytes,
    wh,
)

from ociinspect.analyzers.diff import diff_images, diff_trees, layers_to_read, prefix_needed
from ociinspect.content.scan import ScanOptions, scan_image, scan_tar_stream
from ociinspect.image.loader import load
from ociinspect.model.image import Image

# ------------------------------------------------------------------------------------- reference unpacker

Record = tuple[str, int, int, int, int, str, str | None]  # type, size, permissions, uid, gid, link, sha256


def _clean(name: str) -> str:
    return "/".join(p for p in name.split("/") if p not in ("", "."))


def _drop(fs: dict[str, Record], path: str, *, keep_self: bool = False) -> None:
    for p in list(fs):
        if p.startswith(path + "/") or path == "" or (p == path and not keep_self):
            del fs[p]


def reference_unpack(tars: Sequence[bytes]) -> dict[str, Record]:
    """Apply layer tars in order like an unpacker: each layer's whiteouts first (they apply to the layers below),
    then its entries (a non-directory replaces whatever was there, subtree included; a directory over a
    directory keeps the children)."""
    fs: dict[str, Record] = {}
    for data in tars:
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            members = tf.getmembers()
            for m in members:
                name = _clean(m.name)
                head, _, base = name.rpartition("/")
                if base == ".wh..wh..opq":
                    _drop(fs, head, keep_self=True)
                elif base.startswith(".wh."):
                    _drop(fs, f"{head}/{base[4:]}" if head else base[4:])
            for m in members:
                name = _clean(m.name)
                if not name or name.rpartition("/")[2].startswith(".wh."):
                    continue
                old = fs.get(name)
                if m.isdir():
                    if old is not None and old[0] != "dir":
                        del fs[name]
                    rec: Record = ("dir", 0, m.mode & 0o7777, m.uid, m.gid, "", None)
                else:
                    _drop(fs, name)
                    if m.isreg():
                        fobj = tf.extractfile(m)
                        assert fobj is not None
                        digest = hashlib.sha256(fobj.read()).hexdigest()
                        rec = ("file", m.size, m.mode & 0o7777, m.uid, m.gid, "", digest)
                    elif m.issym():
                        rec = ("symlink", 0, m.mode & 0o7777, m.uid, m.gid, m.linkname, None)
                    elif m.islnk():
                        rec = ("hardlink", 0, m.mode & 0o7777, m.uid, m.gid, m.linkname, None)
                    else:
                        raise AssertionError(f"unexpected member type {m.type!r}")
                fs[name] = rec
    return fs


_FIELDS = ("type", "size", "mode", "uid", "gid", "link", "content")


def reference_diff(a: dict[str, Record], b: dict[str, Record]) -> dict[str, Any]:
    """added/removed as {path: size}, modified as {path: [changed fields]} (paths with a leading /)."""
    modified = {}
    for p in sorted(a.keys() & b.keys()):
        fields = [name for name, x, y in zip(_FIELDS, a[p], b[p], strict=True) if x != y]
        if fields:
            # a link target is compared for links only; content only between regular files
            fields = [x for x in fields if x != "content" or (a[p][0] == b[p][0] == "file")]
            modified["/" + p] = fields
    return {
        "added": {"/" + p: b[p][1] for p in sorted(b.keys() - a.keys())},
        "removed": {"/" + p: a[p][1] for p in sorted(a.keys() - b.keys())},
        "modified": modified,
    }


def our_diff(doc: dict[str, Any]) -> dict[str, Any]:
    files = doc["files"]
    return {
        "added": {x["path"]: x["size"] for x in files["added"]},
        "removed": {x["path"]: x["size"] for x in files["removed"]},
        "modified": {x["path"]: x["changes"] for x in files["modified"]},
    }


# ------------------------------------------------------------------------------------- images in memory


def put_image(src: MemorySource, tag: str, layers: Sequence[LayerBlob], env: Sequence[str] = ()) -> None:
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": CREATED,
            "config": {"Env": list(env)},
            "rootfs": {"type": "layers", "diff_ids": [lb.diff_id for lb in layers]},
            "history": [
                {"created": CREATED, "created_by": lb.created_by or f"layer {i}"}
                for i, lb in enumerate(layers)
            ],
        },
        sort_keys=True,
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": src.add(config), "size": len(config)},
        "layers": [
            {"mediaType": lb.media_type, "digest": src.add(lb.blob), "size": len(lb.blob)} for lb in layers
        ],
    }
    src.tags[tag] = src.add(json.dumps(manifest, sort_keys=True).encode())


def load_tag(tag: str, src: MemorySource) -> Image:
    view = MemorySource(src.blobs, tags=dict(src.tags), reference=f"oci:/memory:{tag}")
    return load(view)


def run_diff(src: MemorySource, a: Image, b: Image, *, hashed: bool) -> tuple[dict[str, Any], bool]:
    """The command's flow: suffixes, then the prefix only if needed.  Returns (json, prefix read)."""
    opts = ScanOptions(hash_files=hashed, workers=1)
    plan = layers_to_read(a, b)
    sa = scan_image(src, a, opts, layers=plan.only_a)
    sb = scan_image(src, b, opts, layers=plan.only_b)
    prefix = scan_image(src, a, opts, layers=plan.prefix) if prefix_needed(sa, sb) else None
    result = diff_images(a, b, sa, sb, prefix, depth=2)
    return result.to_json(), prefix is not None


# ------------------------------------------------------------------------------------- the hand-made pair

BASE = [
    d("etc"),
    f("etc/hosts", b"127.0.0.1 localhost\n"),
    f("etc/motd", b"hello\n"),
    f("etc/same", b"unchanged bytes\n"),
    d("opt"),
    d("opt/cache"),
    f("opt/cache/a", content("a", 3000)),
    f("opt/cache/b", content("b", 2000)),
    d("usr"),
    d("usr/bin"),
    f("usr/bin/tool", content("tool", 5000), 0o755),
    hard("usr/bin/tool2", "usr/bin/tool"),
    sym("usr/bin/t", "tool"),
    d("var"),
    f("var/log", b"x"),
]
APP_A = [d("app"), f("app/main.py", b"print(1)\n"), f("app/data", content("d1", 400))]
APP_B1 = [
    d("app"),
    f("app/main.py", b"print(2)\n"),  # same size, other bytes: content (hash) only
    f("app/data", content("d2", 900)),  # grows
    f("app/new.txt", content("n", 123)),
    wh("etc/motd"),  # removed
    f("etc/same", b"unchanged bytes\n"),  # rewritten, same bytes: not modified with hashes
    f("etc/hosts", b"127.0.0.1 localhost\n", 0o600, uid=1000, gid=1000),  # chmod + chown
    d("opt"),
    d("opt/cache"),
    opq("opt/cache"),  # opaque: a and b are gone
    f("opt/cache/c", content("c", 10)),
    d("usr"),
    d("usr/bin"),
    sym("usr/bin/t", "tool2"),  # retargeted
    hard("usr/bin/tool3", "usr/bin/tool"),  # a new hardlink
    d("var/log"),  # a file became a directory
]
APP_B2 = [d("usr"), d("usr/lib"), d("usr/lib/python3"), f("usr/lib/python3/big", content("big", 20_000))]


def _pair() -> tuple[MemorySource, Image, Image, list[bytes], list[bytes]]:
    src = MemorySource()
    base, app_a = gzip_layer(BASE, "FROM base"), gzip_layer(APP_A, "COPY app")
    b1, b2 = gzip_layer(APP_B1, "COPY app /app"), gzip_layer(APP_B2, "RUN pip install big")
    put_image(src, "a", [base, app_a], ["PATH=/bin", "V=1"])
    put_image(src, "b", [base, b1, b2], ["PATH=/bin", "V=2"])
    a, b = load_tag("a", src), load_tag("b", src)
    return (
        src,
        a,
        b,
        [tar_bytes(BASE), tar_bytes(APP_A)],
        [tar_bytes(BASE), tar_bytes(APP_B1), tar_bytes(APP_B2)],
    )


def test_hand_made_pair_equals_the_reference_unpacker_with_hashes() -> None:
    src, a, b, tars_a, tars_b = _pair()
    doc, prefix_read = run_diff(src, a, b, hashed=True)
    expected = reference_diff(reference_unpack(tars_a), reference_unpack(tars_b))
    assert our_diff(doc) == expected
    # the cases are all there (so the equality above means something)
    assert expected["removed"] == {"/etc/motd": 6, "/opt/cache/a": 3000, "/opt/cache/b": 2000}
    assert expected["modified"]["/app/main.py"] == ["content"]
    assert expected["modified"]["/etc/hosts"] == ["mode", "uid", "gid"]
    assert expected["modified"]["/usr/bin/t"] == ["link"]
    assert expected["modified"]["/var/log"] == ["type", "size", "mode"]
    assert "/etc/same" not in expected["modified"] and "/usr/bin/tool3" in expected["added"]
    assert doc["files"]["unknown"] == []
    # where it grew: +20000 under /usr/lib/python3 is one line at depth 2 (/usr/lib)
    usr = next(n for n in doc["growth"]["tree"]["children"] if n["path"] == "/usr")
    assert usr["children"][0] == {
        "path": "/usr/lib",
        "delta": 20_000,
        "bytes_a": 0,
        "bytes_b": 20_000,
        "changed": 1,
        "children": [],
    }
    assert doc["config"]["env"]["changed"] == {"V": {"a": "1", "b": "2"}}
    assert doc["config"]["history"] == {
        "common": 1,
        "removed": ["COPY app"],
        "added": ["COPY app /app", "RUN pip install big"],
    }
    # cost: the base layer is read once (B's new files need it), each differing layer once
    assert prefix_read
    base_digest = a.layers[0].digest
    assert src.opened.count(base_digest) == 1 and len(src.opened) == 4
    assert doc["size_delta"]["uncompressed"] == len(tar_bytes(APP_B1)) + len(tar_bytes(APP_B2)) - len(
        tar_bytes(APP_A)
    )


def test_hand_made_pair_without_hashes_lists_unknown_content_never_guesses() -> None:
    src, a, b, tars_a, tars_b = _pair()
    doc, _ = run_diff(src, a, b, hashed=False)
    expected = reference_diff(reference_unpack(tars_a), reference_unpack(tars_b))
    ours = our_diff(doc)
    assert ours["added"] == expected["added"] and ours["removed"] == expected["removed"]
    unknown = {x["path"] for x in doc["files"]["unknown"]}
    assert unknown == {"/app/main.py", "/etc/same"}  # same size, rewritten: one changed, one did not
    assert {p: c for p, c in expected["modified"].items() if p not in unknown} == ours["modified"]
    assert doc["identical"] is False


def test_shared_base_is_not_read_when_the_suffixes_fix_every_path() -> None:
    """A rebuild that rewrote the same paths: the base layer is never opened."""
    src = MemorySource()
    base = gzip_layer(BASE)
    v1 = gzip_layer([d("app"), f("app/main.py", b"v1"), wh("etc/motd")])
    v2 = gzip_layer([d("app"), f("app/main.py", b"v2 longer"), wh("etc/motd")])
    put_image(src, "a", [base, v1])
    put_image(src, "b", [base, v2])
    a, b = load_tag("a", src), load_tag("b", src)
    doc, prefix_read = run_diff(src, a, b, hashed=False)
    assert not prefix_read and base.blob and sha256(base.blob) not in src.opened
    assert len(src.opened) == 2
    assert our_diff(doc) == {
        "added": {},
        "removed": {},
        "modified": {"/app/main.py": ["size", "content"]},
    }
    full = reference_diff(
        reference_unpack([tar_bytes(BASE), tar_bytes([d("app"), f("app/main.py", b"v1"), wh("etc/motd")])]),
        reference_unpack(
            [tar_bytes(BASE), tar_bytes([d("app"), f("app/main.py", b"v2 longer"), wh("etc/motd")])]
        ),
    )
    assert our_diff(doc) == full


# ------------------------------------------------------------------------------------- generated pairs

NAMES = ["d", "d/x", "d/e", "d/e/y", "x", "f", "f/z", "h"]


@st.composite
def layer_specs(draw: st.DrawFn) -> list[Spec]:
    """A well-formed layer: parents as directories, nothing below a non-directory, whiteouts of paths the
    layer does not write; hardlinks to a file written earlier in the same layer."""
    out: dict[str, Spec] = {}
    whiteouts: list[str] = []
    for _ in range(draw(st.integers(0, 5))):
        name = draw(st.sampled_from(NAMES))
        kind = draw(st.sampled_from(["file", "file", "dir", "sym", "hard", "wh", "opq"]))
        parts = name.split("/")
        ancestors = ["/".join(parts[:i]) for i in range(1, len(parts))]
        if name in out or any(a in out and out[a].kind != "dir" for a in ancestors):
            continue
        if any(w == name or name.startswith(w + "/") or w.startswith(name + "/") for w in whiteouts):
            continue
        if kind == "wh":
            if not any(p == name or p.startswith(name + "/") for p in out):
                whiteouts.append(name)
            continue
        for a in ancestors:
            out.setdefault(a, d(a))
        if kind == "opq":
            out[name] = d(name)
            out[name + "/.wh..wh..opq"] = opq(name)
        elif kind == "dir":
            out[name] = d(name, draw(st.sampled_from([0o755, 0o700])))
        elif kind == "sym":
            out[name] = sym(name, draw(st.sampled_from(["x", "d/x"])))
        elif kind == "hard":
            targets = [p for p, s in out.items() if s.kind == "file" and p < name and "wh." not in p]
            if not targets:
                continue
            out[name] = hard(name, draw(st.sampled_from(targets)))
        else:
            data = draw(st.sampled_from([b"", b"one", b"two", b"three!"]))
            out[name] = f(
                name, data, draw(st.sampled_from([0o644, 0o600])), uid=draw(st.sampled_from([0, 7]))
            )
        if out[name].kind != "dir":
            for p in [p for p in out if p.startswith(name + "/")]:
                del out[p]
    return [wh(w) for w in whiteouts] + [out[p] for p in sorted(out)]


def _entries(specs: Sequence[Spec]) -> list[Any]:
    entries, _, _, _ = scan_tar_stream([tar_bytes(specs)], what="test", hash_files=True)
    return entries


@settings(max_examples=60, deadline=None)
@given(
    st.lists(layer_specs(), min_size=0, max_size=2),
    st.lists(layer_specs(), min_size=0, max_size=2),
    st.lists(layer_specs(), min_size=0, max_size=2),
)
def test_generated_pairs_equal_the_reference_unpacker(
    prefix: list[list[Spec]], sa: list[list[Spec]], sb: list[list[Spec]]
) -> None:
    layers_a, layers_b = [*prefix, *sa], [*prefix, *sb]
    files = diff_trees([_entries(s) for s in layers_a], [_entries(s) for s in layers_b])
    doc = {
        "files": {
            "added": [{"path": c.path, "size": c.size_b} for c in files.added],
            "removed": [{"path": c.path, "size": c.size_a} for c in files.removed],
            "modified": [{"path": c.path, "changes": list(c.changes)} for c in files.modified],
        }
    }
    expected = reference_diff(
        reference_unpack([tar_bytes(s) for s in layers_a]), reference_unpack([tar_bytes(s) for s in layers_b])
    )
    assert our_diff(doc) == expected
    assert not files.unknown  # every file was hashed
