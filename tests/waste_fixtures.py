"""Deterministic layer tars and images for the scan/waste tests (built in memory, written to tmp_path).

Every tar entry has mtime ``MTIME``, uid/gid 0 and empty user/group names; gzip members have mtime 0 and no
name; JSON is written with sorted keys — so the same spec always gives the same digests.  Nothing here computes
an expected result with ociinspect: the tests compare ociinspect's output with numbers computed by hand from these
specs.  :class:`MemorySource` is the shared in-memory ``Source`` (ociinspect/sources/memory.py), which counts what is read.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import tarfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ociinspect.sources.memory import MemorySource as SharedMemorySource

MTIME = 1704067200  # 2024-01-01T00:00:00Z
CREATED = "2024-01-01T00:00:00Z"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_GZIP = LAYER_TAR + "+gzip"
LAYER_ZSTD = LAYER_TAR + "+zstd"
TOC_ANNOTATION = "containerd.io/snapshot/stargz/toc.digest"
ESTARGZ_SIZE_ANNOTATION = "io.containers.estargz.uncompressed-size"


def content(tag: str, size: int) -> bytes:
    """``size`` deterministic bytes, different for every ``tag``."""
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{tag}:{counter}".encode()).digest()
        counter += 1
    return out[:size]


@dataclasses.dataclass(frozen=True)
class Spec:
    """One tar entry to write: ``kind`` in file, dir, symlink, hardlink, fifo."""

    name: str
    kind: str = "file"
    data: bytes = b""
    mode: int | None = None
    link: str = ""
    uid: int = 0
    gid: int = 0


def f(name: str, data: bytes, mode: int = 0o644, **kw: Any) -> Spec:
    return Spec(name, "file", data, mode, **kw)


def d(name: str, mode: int = 0o755) -> Spec:
    return Spec(name, "dir", b"", mode)


def sym(name: str, target: str) -> Spec:
    return Spec(name, "symlink", b"", 0o777, target)


def hard(name: str, target: str) -> Spec:
    return Spec(name, "hardlink", b"", 0o644, target)


def wh(path: str) -> Spec:
    """A whiteout removing ``path``."""
    head, _, base = path.rpartition("/")
    return Spec(f"{head}/.wh.{base}" if head else f".wh.{base}", "file", b"", 0o644)


def opq(directory: str) -> Spec:
    """An opaque marker for ``directory``."""
    return Spec(f"{directory}/.wh..wh..opq", "file", b"", 0o644)


_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "fifo": tarfile.FIFOTYPE,
}


def tar_bytes(specs: Sequence[Spec], *, fmt: int = tarfile.PAX_FORMAT, eof: bool = True) -> bytes:
    """A tar of ``specs`` in the given order (``eof=False`` leaves out the end-of-archive blocks)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for s in specs:
            ti = tarfile.TarInfo(s.name + ("/" if s.kind == "dir" and not s.name.endswith("/") else ""))
            ti.type = _TYPES[s.kind]
            ti.mtime = MTIME
            ti.mode = s.mode if s.mode is not None else 0o644
            ti.uid, ti.gid, ti.uname, ti.gname = s.uid, s.gid, "", ""
            ti.linkname = s.link
            if s.kind == "file":
                ti.size = len(s.data)
                tf.addfile(ti, io.BytesIO(s.data))
            else:
                tf.addfile(ti)
        if not eof:
            data = buf.getvalue()
            tf.fileobj = io.BytesIO()  # swallow the end-of-archive blocks close() writes
            return data
    return buf.getvalue()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------------------------- eStargz


def _gz_member(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def estargz(specs: Sequence[Spec], *, legacy_footer: bool = False) -> tuple[bytes, str, int]:
    """An eStargz blob of ``specs``: ``(blob, toc_digest, uncompressed_size)``.

    Layout as containerd/stargz-snapshotter writes it: one gzip member per entry (header + data + padding),
    the end-of-archive blocks, then a member holding the ``stargz.index.json`` tar entry (plus its own
    end-of-archive blocks), then the 51-byte footer (47 bytes for the legacy stargz footer).
    """
    members: list[bytes] = []
    toc_entries: list[dict[str, Any]] = []
    offset = 0
    uncompressed = 0
    single = tar_bytes(specs, eof=False)
    # split the tar into per-entry chunks by re-reading it
    with tarfile.open(fileobj=io.BytesIO(single), mode="r:") as tf:
        infos = tf.getmembers()
    bounds = [ti.offset for ti in infos] + [len(single)]
    for i, ti in enumerate(infos):
        chunk = single[bounds[i] : bounds[i + 1]]
        if i == len(infos) - 1:
            chunk += bytes(1024)  # end-of-archive inside the last entry's member, as estargz does
        member = _gz_member(chunk)
        kind = {"0": "reg", "5": "dir", "2": "symlink", "1": "hardlink", "6": "fifo"}[ti.type.decode()]
        entry: dict[str, Any] = {"name": ti.name + ("/" if ti.isdir() else ""), "type": kind}
        if ti.isreg():
            data = single[ti.offset_data : ti.offset_data + ti.size]
            entry["size"] = ti.size
            entry["digest"] = sha256(data)
            entry["offset"] = offset
        if ti.linkname:
            entry["linkName"] = ti.linkname
        entry["mode"] = ti.mode
        entry["modtime"] = CREATED
        toc_entries.append(entry)
        members.append(member)
        offset += len(member)
        uncompressed += len(chunk)
    toc_json = json.dumps({"version": 1, "entries": toc_entries}, indent="\t").encode()
    toc_tar = io.BytesIO()
    with tarfile.open(fileobj=toc_tar, mode="w", format=tarfile.GNU_FORMAT) as tf:
        ti = tarfile.TarInfo("stargz.index.json")
        ti.size = len(toc_json)
        ti.mode = 0o644
        tf.addfile(ti, io.BytesIO(toc_json))
    toc_member = _gz_member(toc_tar.getvalue())
    uncompressed += len(toc_tar.getvalue())
    toc_offset = offset
    extra = b"%016xSTARGZ" % toc_offset
    if legacy_footer:
        header = b"\x1f\x8b\x08\x04" + bytes(4) + b"\x00\xff" + (22).to_bytes(2, "little") + extra
    else:
        header = (
            b"\x1f\x8b\x08\x04"
            + bytes(4)
            + b"\x00\xff"
            + (26).to_bytes(2, "little")
            + b"SG"
            + (22).to_bytes(2, "little")
            + extra
        )
    footer = header + b"\x01\x00\x00\xff\xff" + bytes(8)
    assert len(footer) == (47 if legacy_footer else 51)
    blob = b"".join(members) + toc_member + footer
    # sanity: the blob is a valid multi-member gzip of the tar stream
    assert len(zlib.decompressobj(31).decompress(blob[: len(members[0])])) > 0
    return blob, sha256(toc_json), uncompressed


# ----------------------------------------------------------------------------------------------- images


@dataclasses.dataclass(frozen=True)
class LayerBlob:
    blob: bytes
    media_type: str
    diff_id: str
    annotations: dict[str, str] = dataclasses.field(default_factory=dict)
    created_by: str = ""


def plain_layer(specs: Sequence[Spec], created_by: str = "") -> LayerBlob:
    data = tar_bytes(specs)
    return LayerBlob(data, LAYER_TAR, sha256(data), created_by=created_by)


def gzip_layer(specs: Sequence[Spec], created_by: str = "") -> LayerBlob:
    data = tar_bytes(specs)
    return LayerBlob(gz(data), LAYER_GZIP, sha256(data), created_by=created_by)


def zstd_layer(specs: Sequence[Spec], created_by: str = "") -> LayerBlob:
    import zstandard

    data = tar_bytes(specs)
    return LayerBlob(
        zstandard.ZstdCompressor(level=3).compress(data), LAYER_ZSTD, sha256(data), created_by=created_by
    )


def estargz_layer(specs: Sequence[Spec], created_by: str = "", **kw: Any) -> LayerBlob:
    blob, toc, _unc = estargz(specs, **kw)
    raw = b"".join(_inflate_all(blob))
    return LayerBlob(
        blob,
        LAYER_GZIP,
        sha256(raw),
        {TOC_ANNOTATION: toc, ESTARGZ_SIZE_ANNOTATION: str(len(raw))},
        created_by=created_by,
    )


def _inflate_all(blob: bytes) -> list[bytes]:
    out = []
    while blob:
        d = zlib.decompressobj(31)
        out.append(d.decompress(blob))
        blob = d.unused_data
    return out


def _config(layers: Sequence[LayerBlob]) -> bytes:
    return json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": CREATED,
            "config": {"Env": ["PATH=/usr/bin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [lb.diff_id for lb in layers]},
            "history": [
                {"created": CREATED, "created_by": lb.created_by or f"/bin/sh -c layer {i}"}
                for i, lb in enumerate(layers)
            ],
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


def write_oci_layout(directory: Path, layers: Sequence[LayerBlob], tag: str = "latest") -> str:
    """Write an OCI image layout; returns the reference ``oci:DIR:TAG``."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        digest = sha256(data)
        (blobs / digest[7:]).write_bytes(data)
        return digest

    config = _config(layers)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": put(config), "size": len(config)},
        "layers": [
            {"mediaType": lb.media_type, "digest": put(lb.blob), "size": len(lb.blob)}
            | ({"annotations": lb.annotations} if lb.annotations else {})
            for lb in layers
        ],
    }
    mbytes = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": put(mbytes),
                "size": len(mbytes),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (directory / "index.json").write_text(json.dumps(index, sort_keys=True))
    (directory / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return f"oci:{directory}:{tag}"


def write_docker_archive(path: Path, layers: Sequence[bytes], created_by: Sequence[str] = ()) -> str:
    """Write a classic ``docker save`` tarball of uncompressed layer tars; returns ``docker-archive:PATH``."""
    blobs = [
        LayerBlob(t, LAYER_TAR, sha256(t), created_by=(created_by[i] if i < len(created_by) else ""))
        for i, t in enumerate(layers)
    ]
    config = _config(blobs)
    config_name = sha256(config)[7:] + ".json"
    names = [f"{lb.diff_id[7:]}/layer.tar" for lb in blobs]
    manifest = [{"Config": config_name, "RepoTags": ["waste/fixture:latest"], "Layers": names}]
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:

        def add(name: str, data: bytes) -> None:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode = len(data), MTIME, 0o644
            tf.addfile(ti, io.BytesIO(data))

        add(config_name, config)
        seen = set()
        for name, lb in zip(names, blobs, strict=True):
            if name not in seen:
                seen.add(name)
                add(name, lb.blob)
        add("manifest.json", json.dumps(manifest, separators=(",", ":")).encode())
    return f"docker-archive:{path}"


# ----------------------------------------------------------------------------------------------- scenarios

TOOL = content("tool", 1000)
CONFIG = content("config", 100)
A = content("a", 200)
B = content("b", 300)
C = content("c", 400)
LIBX = content("libx", 500)
NEW = content("new", 50)

#: The worked example of docs/waste.md: copy, chmod, move, delete (file and directory), opaque directory,
#: hardlink and symlink.  Expected numbers are computed by hand in tests/unit/test_waste.py.
WASTE_LAYERS: list[list[Spec]] = [
    [
        d("bin"),
        f("bin/tool", TOOL, 0o755),
        d("data"),
        f("data/a", A),
        f("data/b", B),
        d("data/sub"),
        f("data/sub/c", C),
        d("etc"),
        f("etc/config", CONFIG),
        d("lib"),
        f("lib/libx.so", LIBX),
        hard("lib/libx-link", "lib/libx.so"),
        sym("lib/libx.so.1", "libx.so"),
    ],
    [
        d("bin"),  # the directory's mtime changed: an entry of its own, and a leaf in dive's tree
        f("etc/config", CONFIG, 0o600),  # chmod: the whole file again
        d("opt"),
        f("opt/copy-of-tool", TOOL, 0o755),  # cp /bin/tool /opt/copy-of-tool
    ],
    [
        wh("bin/tool"),  # rm /bin/tool
        wh("data/a"),  # mv /data/a /srv/a
        wh("data/sub"),  # rm -r /data/sub
        d("srv"),
        f("srv/a", A),
    ],
    [
        d("lib"),
        opq("lib"),  # rm -r /lib/* && add /lib/new.so
        f("lib/new.so", NEW),
    ],
]

#: dive's quirks: a directory recorded only implicitly in a later layer (then whited out counts 0), and a
#: whiteout of a path that no lower layer has (dive stops counting the rest of that layer).
QUIRK_LAYERS: list[list[Spec]] = [
    [d("a"), f("a/f", content("f", 100)), f("keep", content("keep", 10))],
    [f("a/g", content("g", 50))],
    [wh("a"), wh("missing"), f("zzz", content("zzz", 30))],
    [d("a"), f("a/f", content("f2", 100))],
]


# ----------------------------------------------------------------------------------------------- test double


class MemorySource(SharedMemorySource):
    """:class:`ociinspect.sources.memory.MemorySource` under the names these tests read.

    ``opened`` lists the digests streamed, ``ranges`` the ``(digest, start, end)`` range reads, ``streamed_bytes``
    the bytes streamed; ``ranges=False`` refuses Range like a registry that ignores it.
    """

    @property
    def opened(self) -> list[str]:
        return self.reads.streams

    @property
    def ranges(self) -> list[tuple[str, int, int]]:
        return self.reads.ranges

    @property
    def streamed_bytes(self) -> int:
        return self.reads.streamed_bytes


def model_layer(index: int, lb: LayerBlob, *, digest: str | None = None, diff_id: str | None = None) -> Any:
    """An ``ociinspect.model.image.Layer`` for ``lb`` (``digest``/``diff_id`` override what it claims)."""
    from ociinspect.model.image import Descriptor, Layer, SizeEstimate, frozen_map

    descriptor = Descriptor(
        lb.media_type, digest or sha256(lb.blob), len(lb.blob), annotations=frozen_map(lb.annotations)
    )
    return Layer(
        index, descriptor, diff_id if diff_id is not None else lb.diff_id, None, SizeEstimate(None, "unknown")
    )
