"""The layer scanner: tar entries from a stream, path rules, corrupt input, limits, digests, parallel scans."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from waste_fixtures import (
    WASTE_LAYERS,
    LayerBlob,
    MemorySource,
    d,
    f,
    gz,
    gzip_layer,
    hard,
    model_layer,
    opq,
    plain_layer,
    sha256,
    sym,
    tar_bytes,
    wh,
    zstd_layer,
)

from ociinspect.content.scan import ScanOptions, read_files, scan_image, scan_layer, scan_tar_stream
from ociinspect.errors import DigestMismatch, InvalidImage, LimitExceeded
from ociinspect.model.entries import LayerScan, normalise_path


def scan(data: bytes, **kw: object) -> tuple[list, str, int, list[str]]:
    return scan_tar_stream(
        [data[i : i + 4096] for i in range(0, len(data), 4096)], what="layer 7 (abc)", **kw
    )  # type: ignore[arg-type]


def raw_tar(members: list[tuple[tarfile.TarInfo, bytes]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if data else None)
    return buf.getvalue()


def info(name: str, type_: bytes = tarfile.REGTYPE, size: int = 0, **kw: object) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.size = type_, size
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


def test_entry_fields_for_every_type() -> None:
    data = tar_bytes(
        [
            d("usr"),
            f("usr/bin/su", b"x" * 10, 0o4755, uid=0, gid=42),
            sym("usr/bin/sh", "dash"),
            hard("usr/bin/su2", "usr/bin/su"),
            d("tmp", 0o1777),
        ]
    )
    entries, diff_id, total, warnings = scan(data)
    assert diff_id == sha256(data) and total == len(data) and warnings == []
    got = {e.path: (e.type, e.size, e.permissions, e.uid, e.gid, e.linkname, e.is_dir) for e in entries}
    assert got == {
        "usr": ("dir", 0, 0o755, 0, 0, "", True),
        "usr/bin/su": ("file", 10, 0o4755, 0, 42, "", False),
        "usr/bin/sh": ("symlink", 0, 0o777, 0, 0, "dash", False),
        "usr/bin/su2": ("hardlink", 0, 0o644, 0, 0, "usr/bin/su", False),
        "tmp": ("dir", 0, 0o1777, 0, 0, "", True),
    }


def test_fifo_char_and_block_devices() -> None:
    data = raw_tar(
        [
            (info("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666), b""),
            (info("dev/sda", tarfile.BLKTYPE, mode=0o660), b""),
            (info("run/pipe", tarfile.FIFOTYPE, mode=0o600), b""),
        ]
    )
    assert [(e.path, e.type) for e in scan(data)[0]] == [
        ("dev/null", "char"),
        ("dev/sda", "block"),
        ("run/pipe", "fifo"),
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("./a/b", ("a/b", False, False)),
        ("a//b/", ("a/b", False, False)),
        ("/etc/passwd", ("etc/passwd", True, False)),
        ("/../etc/x", ("etc/x", True, False)),
        ("a/./b/../c", ("a/c", False, False)),
        ("../x", ("x", False, True)),
        ("a/../../x", ("x", False, True)),
        ("./", ("", False, False)),
    ],
)
def test_normalise_path(name: str, expected: tuple[str, bool, bool]) -> None:
    assert normalise_path(name) == expected


def test_root_entry_is_skipped_and_leading_dot_slash_removed() -> None:
    data = raw_tar([(info("./", tarfile.DIRTYPE), b""), (info("./etc/hosts", size=3), b"abc")])
    assert [e.path for e in scan(data)[0]] == ["etc/hosts"]


def test_absolute_paths_are_read_relative_to_root_with_a_warning() -> None:
    data = raw_tar([(info("/etc/shadow", size=1), b"x"), (info("/etc/passwd", size=2), b"xy")])
    entries, _, _, warnings = scan(data)
    assert [e.path for e in entries] == ["etc/shadow", "etc/passwd"]
    assert len(warnings) == 1 and "2 entries with an absolute path" in warnings[0]
    assert "'/etc/shadow'" in warnings[0]


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "./../../etc/cron.d/x"])
def test_entries_escaping_the_root_are_an_error(name: str) -> None:
    data = raw_tar([(info("ok", size=1), b"x"), (info(name, size=1), b"x")])
    with pytest.raises(InvalidImage, match=r"layer 7 \(abc\): entry .* points outside the image root") as exc:
        scan(data)
    assert exc.value.hint and "breakout" in exc.value.hint


def test_hardlink_escaping_the_root_is_an_error() -> None:
    data = raw_tar([(info("x", tarfile.LNKTYPE, linkname="../../etc/shadow"), b"")])
    with pytest.raises(InvalidImage, match="hardlink 'x' points outside"):
        scan(data)


def test_symlink_targets_may_point_anywhere() -> None:
    data = raw_tar([(info("x", tarfile.SYMTYPE, linkname="../../etc/shadow"), b"")])
    assert scan(data)[0][0].linkname == "../../etc/shadow"


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT], ids=["pax", "gnu"])
def test_long_names_and_long_link_targets(fmt: int) -> None:
    long_dir = "/".join(["directory-with-a-long-name"] * 8)
    target = "t/" * 80 + "end"
    data = raw_tar(
        [
            (info(f"{long_dir}/file", size=2), b"hi"),
            (info(f"{long_dir}/link", tarfile.SYMTYPE, linkname=target), b""),
        ],
        fmt,
    )
    entries = scan(data)[0]
    assert [e.path for e in entries] == [f"{long_dir}/file", f"{long_dir}/link"]
    assert entries[1].linkname == target and entries[0].size == 2


def test_unicode_and_non_utf8_names() -> None:
    data = raw_tar([(info("café/naïve.txt", size=1), b"x")])
    assert scan(data)[0][0].path == "café/naïve.txt"
    # a GNU tar header with latin-1 bytes in the name (not valid UTF-8)
    buf = bytearray(raw_tar([(info("caf_.txt", size=1), b"x")], tarfile.GNU_FORMAT))
    buf[3] = 0xE9
    buf[148:156] = b" " * 8
    buf[148:155] = f"{sum(buf[:512]):06o}\0".encode()
    assert scan(bytes(buf))[0][0].path == "caf\\xe9.txt"


def test_whiteouts_are_classified() -> None:
    data = tar_bytes([wh("etc/motd"), opq("var/cache"), f(".wh..wh.plnk/1.2", b""), wh("top")])
    entries = scan(data)[0]
    assert [(e.path, e.whiteout, e.target) for e in entries] == [
        ("etc/.wh.motd", "whiteout", "etc/motd"),
        ("var/cache/.wh..wh..opq", "opaque", "var/cache"),
        (".wh..wh.plnk/1.2", "", ""),
        (".wh.top", "whiteout", "top"),
    ]
    meta = scan(tar_bytes([f(".wh..wh.aufs", b"")]))[0][0]
    assert meta.whiteout == "meta"


@pytest.mark.skipif(
    shutil.which("tar") is None, reason="GNU tar is not installed (needed to write a sparse file)"
)
@pytest.mark.parametrize("sparse_format", ["gnu", "posix"])
def test_sparse_files_have_their_logical_size_and_content_hash(tmp_path: Path, sparse_format: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse.img", "wb") as fh:
        fh.write(b"head")
        fh.seek(3 << 20)
        fh.write(b"tail")
    out = tmp_path / "s.tar"
    subprocess.run(
        ["tar", f"--format={sparse_format}", "--sparse", "-cf", str(out), "-C", str(src), "sparse.img"],
        check=True,
    )
    data = out.read_bytes()
    assert len(data) < 1 << 20  # really stored sparse
    entries = scan(data, hash_files=True)[0]
    logical = (src / "sparse.img").read_bytes()
    assert [(e.path, e.size, e.type) for e in entries] == [("sparse.img", len(logical), "file")]
    assert entries[0].sha256 == hashlib.sha256(logical).hexdigest()


def test_content_hashes() -> None:
    data = tar_bytes([f("a", b"hello"), f("b", b""), d("c"), sym("s", "a")])
    entries = scan(data, hash_files=True)[0]
    assert [e.sha256 for e in entries] == [
        hashlib.sha256(b"hello").hexdigest(),
        hashlib.sha256(b"").hexdigest(),
        None,
        None,
    ]
    assert all(e.sha256 is None for e in scan(data)[0])


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 3000), min_size=1, max_size=12),
    chunk=st.integers(1, 5000),
    hash_files=st.booleans(),
)
def test_any_chunking_gives_the_same_index_and_digest(sizes: list[int], chunk: int, hash_files: bool) -> None:
    data = tar_bytes([f(f"f{i}", os.urandom(n)) for i, n in enumerate(sizes)])
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    entries, diff_id, total, _ = scan_tar_stream(pieces, what="t", hash_files=hash_files)
    assert diff_id == sha256(data) and total == len(data)
    assert [e.size for e in entries] == sizes


def test_empty_stream_and_all_zero_tar_are_empty_layers() -> None:
    assert scan(b"")[0] == []
    entries, diff_id, total, _ = scan(bytes(10240))
    assert entries == [] and total == 10240 and diff_id == sha256(bytes(10240))


def test_tar_without_end_of_archive_marker_is_accepted() -> None:
    data = tar_bytes([f("a", b"x" * 700)], eof=False)
    assert [e.path for e in scan(data)[0]] == ["a"]


def test_data_after_the_end_marker_is_hashed_but_not_indexed() -> None:
    data = tar_bytes([f("a", b"x")]) + tar_bytes([f("hidden", b"y")])
    entries, diff_id, total, _ = scan(data)
    assert [e.path for e in entries] == ["a"] and diff_id == sha256(data) and total == len(data)


def test_not_a_tar() -> None:
    with pytest.raises(InvalidImage, match=r"layer 7 \(abc\): not a tar archive") as exc:
        scan(os.urandom(4096))
    assert exc.value.hint


def test_truncated_inside_a_file() -> None:
    data = tar_bytes([f("a", b"x" * 5000), f("b", b"y" * 5000)])
    with pytest.raises(InvalidImage, match=r"layer 7 \(abc\): .*truncated"):
        scan(data[:1200])


def test_truncated_inside_a_header() -> None:
    data = tar_bytes([f("a", b"x" * 512), f("b", b"y")], eof=False)
    with pytest.raises(InvalidImage, match="truncated"):
        scan(data[: 1024 + 100])


def test_corrupt_header_after_the_first_is_an_error_not_a_silent_end() -> None:
    data = bytearray(tar_bytes([f("a", b"x" * 512), f("b", b"y")]))
    data[1024 + 148] ^= 0x01  # break the second header's checksum
    with pytest.raises(InvalidImage, match="corrupt tar header at offset 1024"):
        scan(bytes(data))


def test_hostile_pax_header_size_is_refused() -> None:
    ti = info("x", size=1)
    header = bytearray(ti.tobuf(tarfile.USTAR_FORMAT))
    header[156:157] = b"x"  # turn it into a PAX extended header claiming 1 GiB
    header[124:136] = b"%011o\0" % (1 << 30)
    header[148:156] = b" " * 8
    header[148:155] = f"{sum(header):06o}\0".encode()
    with pytest.raises(LimitExceeded, match="tar header asks for"):
        scan(bytes(header) + bytes(4096))


def test_max_entries() -> None:
    data = tar_bytes([f(f"f{i}", b"") for i in range(20)])
    with pytest.raises(LimitExceeded, match="more than 10 tar entries"):
        scan(data, max_entries=10)


# ------------------------------------------------------------------------------------- layers from sources


def one_layer(lb: LayerBlob, **kw: object) -> tuple[MemorySource, object]:
    src = MemorySource([lb.blob])
    return src, model_layer(0, lb, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("make", [plain_layer, gzip_layer, zstd_layer], ids=["tar", "gzip", "zstd"])
def test_scan_layer_every_compression(make) -> None:  # type: ignore[no-untyped-def]
    lb = make(WASTE_LAYERS[0])
    src, layer = one_layer(lb)
    result = scan_layer(src, layer)  # type: ignore[arg-type]
    assert result.index_source == "stream" and result.diff_id == lb.diff_id
    assert result.uncompressed_size == len(tar_bytes(WASTE_LAYERS[0]))
    assert len(result.entries) == 13 and result.content_size == 2500
    assert src.opened == [sha256(lb.blob)]


def test_wrong_blob_digest() -> None:
    lb = gzip_layer([f("a", b"x")])
    src = MemorySource()
    claimed = sha256(b"something else")
    src.blobs[claimed] = lb.blob  # the source serves bytes that do not match the digest asked for
    layer = model_layer(0, lb, digest=claimed)
    with pytest.raises(DigestMismatch, match=r"^layer 0 \(.{12}\): .*digest mismatch"):
        scan_layer(src, layer)  # type: ignore[arg-type]


def test_wrong_diff_id() -> None:
    lb = gzip_layer([f("a", b"x")])
    src, layer = one_layer(lb, diff_id=sha256(b"other"))
    with pytest.raises(
        DigestMismatch, match=r"layer 0 \(.{12}\): uncompressed content is sha256:.* diff_id is"
    ):
        scan_layer(src, layer)  # type: ignore[arg-type]


def test_truncated_gzip() -> None:
    good = gzip_layer([f("a", os.urandom(50_000))])
    lb = LayerBlob(good.blob[:-100], good.media_type, good.diff_id)
    src, layer = one_layer(lb)
    with pytest.raises(InvalidImage, match=r"layer 0 \(.{12}\): truncated gzip stream"):
        scan_layer(src, layer)  # type: ignore[arg-type]


def test_layer_that_is_not_a_tar() -> None:
    data = os.urandom(3000)
    lb = LayerBlob(gz(data), "application/vnd.oci.image.layer.v1.tar+gzip", sha256(data))
    src, layer = one_layer(lb)
    with pytest.raises(InvalidImage, match=r"layer 0 \(.{12}\): not a tar archive"):
        scan_layer(src, layer)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "compress", [gz, lambda b: zstandard.ZstdCompressor().compress(b)], ids=["gzip", "zstd"]
)
def test_decompression_bomb(compress) -> None:  # type: ignore[no-untyped-def]
    data = tar_bytes([f("zeros", bytes(20 << 20))])
    blob = compress(data)
    assert len(blob) < 100_000
    src, layer = one_layer(LayerBlob(blob, "application/vnd.oci.image.layer.v1.tar+gzip", sha256(data)))
    with pytest.raises(
        LimitExceeded, match=r"layer 0 \(.{12}\): decompresses to more than 1048576 bytes"
    ) as exc:
        scan_layer(src, layer, ScanOptions(max_uncompressed=1 << 20))  # type: ignore[arg-type]
    assert exc.value.hint and "--max-uncompressed" in exc.value.hint


class CountingCache:
    def __init__(self) -> None:
        self.scans: dict[str, LayerScan] = {}
        self.gets = 0
        self.lock = threading.Lock()

    def get_scan(self, digest: str, *, need_hash: bool, allow_toc: bool) -> LayerScan | None:
        self.gets += 1
        s = self.scans.get(digest)
        return s if s is not None and (s.hashed or not need_hash) else None

    def put_scan(self, scan: LayerScan) -> None:
        with self.lock:
            self.scans[scan.digest] = scan


def test_scan_image_parallel_keeps_layer_order_and_uses_the_cache() -> None:
    from waste_fixtures import write_oci_layout  # noqa: F401  (same builders as the integration tests)

    blobs = [gzip_layer(specs) for specs in WASTE_LAYERS]
    src = MemorySource([lb.blob for lb in blobs])
    image = type("Img", (), {"layers": tuple(model_layer(i, lb) for i, lb in enumerate(blobs))})()
    cache = CountingCache()
    seen: list[int] = []
    scans = scan_image(src, image, ScanOptions(workers=4), cache=cache, progress=seen.append)  # type: ignore[arg-type]
    assert [s.digest for s in scans] == [sha256(lb.blob) for lb in blobs]
    assert [s.content_size for s in scans] == [2500, 1100, 200, 50]
    assert sum(seen) == sum(len(lb.blob) for lb in blobs)
    assert len(src.opened) == 4
    again = scan_image(src, image, ScanOptions(), cache=cache)  # type: ignore[arg-type]
    assert again == scans and len(src.opened) == 4  # nothing read the second time
    scan_image(src, image, ScanOptions(hash_files=True), cache=cache)  # type: ignore[arg-type]
    assert len(src.opened) == 8  # an unhashed index does not satisfy --hash


@pytest.mark.parametrize("env_set", [False, True])
def test_the_scan_limits_malloc_arenas_once_before_its_threads(
    monkeypatch: pytest.MonkeyPatch, env_set: bool
) -> None:
    """``mallopt(M_ARENA_MAX, 2)`` before a parallel scan starts its threads (~4 MiB less peak RSS), once per
    process, and not when the environment already says MALLOC_ARENA_MAX."""
    import ctypes

    from ociinspect.content import scan as scan_module

    calls: list[tuple[int, int]] = []

    class FakeMallopt:
        argtypes: object = None

        def __call__(self, option: int, value: int) -> int:
            calls.append((option, value))
            return 1

    fake_libc = type("FakeLibc", (), {"mallopt": FakeMallopt()})()
    monkeypatch.setattr(ctypes, "CDLL", lambda name: fake_libc)
    monkeypatch.setattr(scan_module, "_arenas_limited", False)
    if env_set:
        monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    else:
        monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    blobs = [gzip_layer(WASTE_LAYERS[0]), gzip_layer(WASTE_LAYERS[1])]
    src = MemorySource([b.blob for b in blobs])
    image = type("Img", (), {"layers": tuple(model_layer(i, b) for i, b in enumerate(blobs))})()
    scan_image(src, image, ScanOptions(workers=2))  # type: ignore[arg-type]
    scan_image(src, image, ScanOptions(workers=2))  # type: ignore[arg-type]
    assert calls == ([] if env_set else [(-8, 2)])


def test_scan_image_error_names_the_layer_and_stores_nothing_for_it() -> None:
    good = gzip_layer(WASTE_LAYERS[0])
    bad = LayerBlob(gz(os.urandom(2000)), good.media_type, sha256(b"x"))
    src = MemorySource([good.blob, bad.blob])
    image = type("Img", (), {"layers": (model_layer(0, good), model_layer(1, bad))})()
    cache = CountingCache()
    with pytest.raises(InvalidImage, match=r"layer 1 \("):
        scan_image(src, image, ScanOptions(workers=2), cache=cache)  # type: ignore[arg-type]
    assert sha256(bad.blob) not in cache.scans


def test_read_files_stops_after_the_first_wanted_file() -> None:
    big = os.urandom(2 << 20)
    specs = [d("etc"), f("etc/os-release", b"ID=debian\n"), f("usr/big", big), d("var/lib/dpkg/status.d")]
    lb = gzip_layer(specs)
    src, layer = one_layer(lb)
    files, present = read_files(
        src, layer, ("etc/os-release", "usr/lib/os-release"), markers=("var/lib/dpkg/status.d",)
    )  # type: ignore[arg-type]
    assert files == {"etc/os-release": b"ID=debian\n"} and present == frozenset()
    assert src.streamed_bytes < len(lb.blob)
    files, present = read_files(
        src, layer, ("usr/lib/os-release", "etc/os-release"), markers=("var/lib/dpkg/status.d",)
    )  # type: ignore[arg-type]
    assert files == {"etc/os-release": b"ID=debian\n"} and present == {"var/lib/dpkg/status.d"}


def test_read_files_walks_plain_headers_without_tarfile(monkeypatch: pytest.MonkeyPatch) -> None:
    """OS detection reads a layer's files through the direct header walker (the audit reads one small layer per
    base this way); tarfile is only its fallback, and the answers and the diff_id check are the same."""
    specs = [
        d("etc"),
        f("etc/debian_version", b"12.5\n"),
        f("etc/os-release", b"ID=debian\n"),
        d("var/lib/dpkg"),
    ]
    lb = gzip_layer(specs)
    src, layer = one_layer(lb)

    def no_tarfile(*args: object, **kwargs: object) -> None:
        raise AssertionError("tarfile used for plain headers")

    monkeypatch.setattr(tarfile, "TarFile", no_tarfile)
    files, present = read_files(
        src, layer, ("usr/lib/os-release", "etc/os-release", "etc/debian_version"), markers=("var/lib/dpkg",)
    )  # type: ignore[arg-type]
    assert files == {"etc/os-release": b"ID=debian\n", "etc/debian_version": b"12.5\n"}
    assert present == {"var/lib/dpkg"}


def test_gzip_multimember_layer_like_pigz() -> None:
    data = tar_bytes([f("a", b"x" * 100_000), f("b", b"y" * 10)])
    blob = gzip.compress(data[:30_000], mtime=0) + gzip.compress(data[30_000:], mtime=0)
    src, layer = one_layer(LayerBlob(blob, "application/vnd.oci.image.layer.v1.tar+gzip", sha256(data)))
    assert [e.path for e in scan_layer(src, layer).entries] == ["a", "b"]  # type: ignore[arg-type]


# ------------------------------------------------------------- the direct header walker equals tarfile's reading


def tarfile_reference(data: bytes, hash_files: bool = False) -> object:
    """What the scan gave before the direct walker: every member read through tarfile (``_members``), or the
    error it raised (type and message)."""
    from ociinspect.content import scan as scan_mod

    reader = scan_mod._ForwardReader(
        iter([data[i : i + 4096] for i in range(0, len(data), 4096)]), "layer 7 (abc)"
    )
    out: list[object] = []
    absolute: list[str] = []
    try:
        for tf, ti in scan_mod._members(reader, "layer 7 (abc)"):
            entry = scan_mod._entry_from(ti, "layer 7 (abc)", absolute)
            if entry is not None and hash_files and entry.is_regular:
                entry = scan_mod._with_hash(entry, scan_mod._hash_member(tf, ti, reader, "layer 7 (abc)"))
            if entry is not None:
                out.append(entry)
        reader.drain()
    except (InvalidImage, LimitExceeded) as exc:
        return (type(exc).__name__, str(exc))
    return (out, f"sha256:{reader.hasher.hexdigest()}", reader.total, sorted(absolute))


def walker_result(data: bytes, hash_files: bool = False) -> object:
    try:
        entries, diff_id, total, _ = scan(data, hash_files=hash_files)
    except (InvalidImage, LimitExceeded) as exc:
        return (type(exc).__name__, str(exc))
    absolute = sorted(e.path for e in entries if False)  # warnings are compared through the entries' names
    del absolute
    return entries, diff_id, total


def same_as_tarfile(data: bytes, hash_files: bool = False) -> None:
    ref = tarfile_reference(data, hash_files)
    got = walker_result(data, hash_files)
    if isinstance(ref, tuple) and len(ref) == 4:
        assert got == ref[:3]
    else:
        assert got == ref


_NAME_PARTS = st.sampled_from(
    ["a", "b.c", ".", "..", "", "é", "\udcff", "x" * 60, ".wh.a", ".wh..wh..opq", "/"]
)
_NAMES = st.lists(_NAME_PARTS, min_size=1, max_size=6).map("/".join)
_MEMBER = st.tuples(
    _NAMES,
    st.sampled_from(list(b"0\x00521647")).map(lambda t: bytes([t])),  # the member types
    st.integers(0, 1500),
    st.sampled_from([0, 1000, 8**7 + 5]),  # the last needs PAX or GNU base-256
    _NAMES,
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(_MEMBER, min_size=0, max_size=6),
    st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT]),
    st.booleans(),
    st.one_of(st.none(), st.tuples(st.integers(0, 8000), st.integers(0, 255))),
    st.one_of(st.none(), st.integers(0, 8000)),
)
def test_walker_gives_tarfiles_entries_and_errors(
    members: list[tuple[str, bytes, int, int, str]],
    fmt: int,
    hash_files: bool,
    flip: tuple[int, int] | None,
    cut: int | None,
) -> None:
    """Item: the direct header walker (issue 14) — the same entries, digest, size and error as tarfile, for
    PAX/GNU/ustar headers, long names and links, odd names and types, and damaged or truncated streams."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape") as tf:
        for name, type_, size, uid, link in members:
            ti = tarfile.TarInfo(name)
            ti.type, ti.uid = type_, uid
            ti.size = size if type_ in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE) else 0
            if type_ in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                ti.linkname = link
            try:
                tf.addfile(ti, io.BytesIO(b"z" * ti.size) if ti.size else None)
            except ValueError:
                continue  # not writable in this format (a name or number too long for ustar)
    data = bytearray(buf.getvalue())
    if flip is not None and data:
        data[flip[0] % len(data)] ^= flip[1]
    if cut is not None:
        data = data[:cut]
    same_as_tarfile(bytes(data), hash_files)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda h: h.__setitem__(slice(156, 157), b"\0"),  # V7 regular file type
        lambda h: h.__setitem__(slice(100, 108), b"  644 \0 "),  # odd spacing in a number
        lambda h: h.__setitem__(slice(100, 108), b"\x80\0\0\0\0\0\x01\xa4"),  # base-256 mode
        lambda h: h.__setitem__(slice(345, 350), b"pre\0\0"),  # a ustar prefix
        lambda h: h.__setitem__(slice(156, 157), b"g"),  # a PAX global header
        lambda h: h.__setitem__(slice(156, 157), b"Q"),  # an unknown type
    ],
    ids=["v7", "spaces", "base256", "prefix", "global", "unknown"],
)
def test_walker_on_hand_made_headers(mutate) -> None:  # type: ignore[no-untyped-def]
    data = bytearray(
        raw_tar([(info("a/", size=0), b""), (info("dir/b", size=3), b"abc"), (info("c", size=1), b"z")])
    )
    for start in (0, 512, 1536):
        header = bytearray(data[start : start + 512])
        mutate(header)
        header[148:156] = b" " * 8
        header[148:155] = f"{sum(header):06o}\0".encode()
        copy = bytearray(data)
        copy[start : start + 512] = header
        same_as_tarfile(bytes(copy))
        same_as_tarfile(bytes(copy), hash_files=True)


def test_walker_pax_records_and_gnu_long_names() -> None:
    long = "d/" + "n" * 200
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        data = raw_tar(
            [(info(long + "/", tarfile.DIRTYPE), b""), (info(long + "/f", size=5, uid=8**8), b"12345"),
             (info("s", tarfile.SYMTYPE, linkname="t" * 150), b""), (info("é/ü", size=1), b"x")],
            fmt,
        )  # fmt: skip
        same_as_tarfile(data)
        same_as_tarfile(data, hash_files=True)
        assert [e.path for e in scan(data)[0]] == [long, long + "/f", "s", "é/ü"]


# ----------------------------------------------------------------- two threads per layer (issue 14 pipeline)


def test_pipeline_hands_the_producers_error_over_and_stops_it_on_an_early_exit() -> None:
    """Item: the inflating thread's error is raised in the scanning thread; leaving early stops the producer
    and closes its generator in its own thread before the blob's context ends."""
    from ociinspect.content.scan import _Prefetch

    closed = threading.Event()

    def endless() -> object:
        try:
            while True:
                yield b"x" * 10
        finally:
            closed.set()

    with _Prefetch(endless()) as ahead:  # type: ignore[arg-type]
        assert next(ahead) == b"x" * 10
    assert closed.is_set()

    def failing() -> object:
        yield b"a"
        raise DigestMismatch("blob digest differs")

    with pytest.raises(DigestMismatch, match="blob digest differs"), _Prefetch(failing()) as ahead:  # type: ignore[arg-type]
        assert list(ahead) == [b"a"]


@pytest.mark.parametrize("pipeline", [True, False])
def test_scan_layer_with_and_without_the_pipeline_agree(pipeline: bool) -> None:
    lb = gzip_layer([d("etc"), f("etc/a", os.urandom(300_000)), f("etc/b", b"b")])
    src, layer = one_layer(lb)
    result = scan_layer(src, layer, ScanOptions(pipeline=pipeline, hash_files=True))  # type: ignore[arg-type]
    assert [(e.path, e.size) for e in result.entries] == [("etc", 0), ("etc/a", 300_000), ("etc/b", 1)]
    assert result.diff_id == lb.diff_id and result.entries[2].sha256 == sha256(b"b")[7:]


def test_pipeline_error_from_the_inflating_thread_names_the_layer() -> None:
    good = gzip_layer([f("a", os.urandom(600_000))])
    blob = bytearray(good.blob)
    blob[400_000:400_050] = b"\xff" * 50  # corrupt past the first pieces the scanning thread has read
    lb = LayerBlob(bytes(blob), good.media_type, good.diff_id)
    src, layer = one_layer(lb)
    with pytest.raises(InvalidImage, match=r"layer 0 \(.*\): corrupt gzip"):
        scan_layer(src, layer)  # type: ignore[arg-type]
