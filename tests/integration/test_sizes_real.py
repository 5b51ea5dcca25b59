"""Cheap sizes against real writers: Go's compress/gzip and zstd (through skopeo), concatenated gzip members of
8 MiB, and generated (never committed) layers over 4 GiB of zeros.  Each asserts: the cheap figure is the true
size or is marked (``unknown``, with candidates when ambiguous), and ``--exact`` is the true size."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import tarfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from isal import isal_zlib

from ociinspect.image import sizes
from ociinspect.image.loader import LoadOptions
from ociinspect.model import mediatypes as mt
from ociinspect.model.image import Image, SizeEstimate
from ociinspect.session import Session
from ociinspect.store import Store
from tests.unit.test_sizes import MemorySource, layer, tar_of

GIB = 2**30


def uncompressed_layout(root: Path, raw: bytes) -> str:
    """An OCI layout holding one image with one uncompressed layer ``raw``; returns its ``oci:`` reference."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        d = hashlib.sha256(data).hexdigest()
        (blobs / d).write_bytes(data)
        return f"sha256:{d}"

    diff_id = put(raw)
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": put(config), "size": len(config)},
            "layers": [{"mediaType": mt.OCI_LAYER, "digest": diff_id, "size": len(raw)}],
        }
    ).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": mt.OCI_MANIFEST,
                "digest": put(manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }
        ],
    }
    (root / "index.json").write_text(json.dumps(index))
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return f"oci:{root}:latest"


def loaded(ref: str, **options: Any) -> Image:
    with Session() as session:
        return session.load(ref, LoadOptions(**options))


def assert_true_or_marked(est: SizeEstimate, true: int) -> None:
    assert est.value == true or (est.value is None and est.source == "unknown" and est.note), est
    if est.ambiguous:
        assert true in est.candidates


@pytest.mark.parametrize("fmt", ["gzip", "zstd"])
def test_go_writer_on_incompressible_content(skopeo: Any, tmp_path: Path, fmt: str) -> None:
    # 8 MiB of random bytes and some text: Go's compress/gzip stores most of it, so the blob is larger than
    # its random part; skopeo's zstd writes no Frame_Content_Size
    raw = tar_of(("r.bin", random.Random(1).randbytes(8 * 2**20)), ("t.txt", b"some text\n" * 5000))
    src = uncompressed_layout(tmp_path / "src", raw)
    dst = f"oci:{tmp_path / 'dst'}:latest"
    skopeo.copy(src, dst, "--dest-compress", "--dest-compress-format", fmt)
    cheap = loaded(dst).layers[0]
    assert cheap.descriptor.media_type.endswith(fmt)
    assert_true_or_marked(cheap.uncompressed, len(raw))
    if fmt == "gzip":
        assert (cheap.uncompressed.value, cheap.uncompressed.source) == (len(raw), "trailer")
    store = Store(tmp_path / "cache")
    try:
        exact = loaded(dst, sizes="exact", size_store=store).layers[0].uncompressed
        assert (exact.value, exact.source) == (len(raw), "streamed")
        again = loaded(dst, size_store=store).layers[0].uncompressed
        if fmt == "zstd":  # no content size in the header: the store's verified figure answers
            assert (again.value, again.source) == (len(raw), "store")
        else:
            assert (again.value, again.source) == (len(raw), "trailer")
    finally:
        store.close()


def test_concatenated_members_of_8_mib() -> None:
    raw = tar_of(
        ("a.bin", random.Random(3).randbytes(8 * 2**20)),
        ("b.txt", b"text that compresses\n" * 400_000),
        ("c.bin", random.Random(4).randbytes(2 * 2**20)),
    )
    step = 8 * 2**20
    data = b"".join(gzip.compress(raw[i : i + step], mtime=0) for i in range(0, len(raw), step))
    desc, blobs = layer(data, mt.OCI_LAYER_GZIP)
    est = sizes.estimate(MemorySource(blobs), desc)
    # the first member is longer than the head, so nothing cheap shows that there are several; the trailer's
    # sizes (of the last member, as if it were the only one) are far from this ratio: marked, not a figure
    assert (est.value, est.source) == (None, "unknown") and "--exact" in (est.note or "")
    assert sizes.estimate(MemorySource(blobs), desc, mode="exact").value == len(raw)


def zero_layer(compress: Any, *, first: bytes = b"") -> tuple[bytes, int]:
    """A tar stream of an optional file ``first`` then one 4.5 GiB file of zeros, compressed as it is generated
    (never held uncompressed: about 5–20 MiB in memory).  Returns the blob and the true tar size."""
    big = 9 * GIB // 2
    parts: list[bytes] = []
    total = 0

    def feed(b: bytes) -> None:
        nonlocal total
        total += len(b)
        parts.append(compress.compress(b))

    if first:
        info = tarfile.TarInfo("first.bin")
        info.size, info.mtime = len(first), 0
        feed(info.tobuf(tarfile.PAX_FORMAT) + first + b"\0" * (-len(first) % 512))
    info = tarfile.TarInfo("zeros.img")
    info.size, info.mtime = big, 0
    feed(info.tobuf(tarfile.PAX_FORMAT))
    chunk = b"\0" * (4 * 2**20)
    for _ in range(big // len(chunk)):
        feed(chunk)
    feed(b"\0" * 1024)  # end of archive
    parts.append(compress.flush())
    return b"".join(parts), total


@pytest.mark.parametrize(
    ("writer", "first_size"),
    [("igzip-1", 0), ("zlib-1", 0), ("igzip-1", 2 * 2**20)],
    ids=["igzip-1-header-in-head", "zlib-1-header-in-head", "igzip-1-after-other-files"],
)
def test_layer_over_4_gib_of_zeros_is_never_half_a_gib_unmarked(writer: str, first_size: int) -> None:
    compress = (
        isal_zlib.compressobj(1, isal_zlib.DEFLATED, 31)
        if writer.startswith("igzip")
        else zlib.compressobj(1, zlib.DEFLATED, 31)
    )
    data, true = zero_layer(compress, first=random.Random(9).randbytes(first_size))
    desc, blobs = layer(data, mt.OCI_LAYER_GZIP)
    est = sizes.estimate(MemorySource(blobs), desc)
    assert est.value != true - 2**32  # the 0.5 GiB alias
    assert_true_or_marked(est, true)
    if first_size:  # the big file's header is not in the head: nothing cheap rules out 0.5 GiB
        assert est.ambiguous and true - 2**32 in est.candidates
    elif writer == "igzip-1":  # ≈ 1029:1: the header rules out 0.5 GiB and 8.5 GiB cannot fit
        assert (est.value, est.source) == (true, "trailer")
    else:  # ≈ 229:1: 0.5 GiB ruled out by the header, 4.5 or 8.5 GiB left
        assert est.ambiguous and true - 2**32 not in est.candidates
