"""Uncompressed sizes: gzip ISIZE resolution, zstd frame headers, trust rules, and the streaming fallback."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import random
from collections.abc import Iterator

import pytest
import zstandard

from ociinspect import digest as dg
from ociinspect import mediatypes as mt
from ociinspect import sizes
from ociinspect.errors import DigestMismatch, LimitExceeded, RangeNotSupported
from ociinspect.model import Descriptor, RawManifest, frozen_map
from ociinspect.reference import parse_reference


class MemorySource:
    """A Source over in-memory blobs; counts the bytes each method hands out."""

    kind = "local"

    def __init__(self, blobs: dict[str, bytes], *, ranges: bool = True) -> None:
        self.reference = parse_reference("oci:/memory")
        self.blobs = blobs
        self.ranges = ranges
        self.range_bytes = 0
        self.streamed_bytes = 0
        self.warnings: list[str] = []

    def root(self) -> RawManifest:
        raise NotImplementedError

    def manifest(self, digest: str) -> RawManifest:
        raise NotImplementedError

    def blob(self, digest: str, *, size: int | None, max_bytes: int) -> bytes:
        return self.blobs[digest]

    def blob_range(self, digest: str, start: int, end: int) -> bytes:
        if not self.ranges:
            raise RangeNotSupported("no ranges here")
        data = self.blobs[digest][start : end + 1]
        self.range_bytes += len(data)
        return data

    @contextlib.contextmanager
    def open_blob(self, digest: str, *, size: int | None) -> Iterator[Iterator[bytes]]:
        data = self.blobs[digest]
        h = dg.DigestHasher(digest, what="blob", size=size)

        def chunks() -> Iterator[bytes]:
            for i in range(0, len(data), 4096):
                piece = data[i : i + 4096]
                self.streamed_bytes += len(piece)
                h.update(piece)
                yield piece
            h.check()

        yield chunks()

    def close(self) -> None:
        pass


def layer(data: bytes, media_type: str, **annotations: str) -> tuple[Descriptor, dict[str, bytes]]:
    d = dg.compute(data)
    return Descriptor(media_type, d, len(data), annotations=frozen_map(annotations)), {d: data}


def payload(n: int, seed: int = 1) -> bytes:
    rnd = random.Random(seed)
    return bytes(rnd.getrandbits(8) for _ in range(n // 2)) + b"x" * (n - n // 2)


def test_plain_tar_is_exact_without_reading() -> None:
    desc, blobs = layer(b"t" * 10240, mt.OCI_LAYER)
    src = MemorySource(blobs)
    est = sizes.estimate(src, desc)
    assert (est.value, est.source) == (10240, "exact")
    assert src.range_bytes == src.streamed_bytes == 0


@pytest.mark.parametrize("n", [0, 512, 10240, 70144, 300032])
def test_gzip_trailer_reads_8_bytes(n: int) -> None:
    raw = payload(n)
    desc, blobs = layer(gzip.compress(raw, mtime=0), mt.OCI_LAYER_GZIP)
    src = MemorySource(blobs)
    est = sizes.estimate(src, desc)
    assert (est.value, est.source, est.note) == (n, "trailer", None)
    assert src.range_bytes == 8 and src.streamed_bytes == 0


def test_zstd_header() -> None:
    raw = payload(51200)
    desc, blobs = layer(zstandard.ZstdCompressor(write_content_size=True).compress(raw), mt.OCI_LAYER_ZSTD)
    src = MemorySource(blobs)
    est = sizes.estimate(src, desc)
    assert (est.value, est.source) == (51200, "header")
    assert src.range_bytes <= 18


def test_zstd_without_content_size_streams_when_cheap() -> None:
    raw = payload(50000)
    cctx = zstandard.ZstdCompressor(write_content_size=False)
    buf = io.BytesIO()
    with cctx.stream_writer(buf, closefd=False) as w:
        w.write(raw)
    data = buf.getvalue()
    assert sizes.zstd_content_size(data[:18]) is None
    desc, blobs = layer(data, mt.OCI_LAYER_ZSTD)
    est = sizes.estimate(MemorySource(blobs), desc)
    assert (est.value, est.source) == (50000, "streamed")


def test_multimember_gzip_detected_and_streamed() -> None:
    raw1, raw2 = payload(200000, 1), payload(50, 2)
    data = gzip.compress(raw1, mtime=0) + gzip.compress(raw2, mtime=0)
    desc, blobs = layer(data, mt.OCI_LAYER_GZIP)
    est = sizes.estimate(MemorySource(blobs), desc)
    assert (est.value, est.source) == (200050, "streamed")
    assert est.note and "multi-member" in est.note


def test_trailer_that_is_not_a_whole_tar_is_distrusted() -> None:
    # the last member alone is plausible for the compressed size, but 10000 bytes cannot be a tar stream
    first, last = payload(10240, 3), payload(10000, 4)
    data = gzip.compress(first, mtime=0) + gzip.compress(last, mtime=0)
    assert sizes.resolve_isize(10000, len(data))[0] == 10000  # the range check alone would accept it
    desc, blobs = layer(data, mt.OCI_LAYER_GZIP)
    est = sizes.estimate(MemorySource(blobs), desc)
    assert (est.value, est.source) == (20240, "streamed")
    assert "whole tar" in (est.note or "")


def test_untrusted_and_expensive_is_unknown_not_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sizes, "CHEAP_STREAM_BYTES", 10)
    data = gzip.compress(payload(200000), mtime=0) + gzip.compress(b"z", mtime=0)
    desc, blobs = layer(data, mt.OCI_LAYER_GZIP)
    src = MemorySource(blobs)
    est = sizes.estimate(src, desc)
    assert (est.value, est.source) == (None, "unknown")
    assert "--exact" in (est.note or "")
    assert src.streamed_bytes == 0


def test_estargz_annotation_distrusts_trailer() -> None:
    data = gzip.compress(payload(1000), mtime=0)
    desc, blobs = layer(
        data, mt.OCI_LAYER_GZIP, **{"containerd.io/snapshot/stargz/toc.digest": "sha256:" + "0" * 64}
    )
    est = sizes.estimate(MemorySource(blobs), desc)
    assert est.source == "streamed" and est.value == 1000


def test_range_refused_falls_back_to_stream() -> None:
    desc, blobs = layer(gzip.compress(payload(3000), mtime=0), mt.OCI_LAYER_GZIP)
    est = sizes.estimate(MemorySource(blobs, ranges=False), desc)
    assert (est.value, est.source) == (3000, "streamed")
    assert "Range" in (est.note or "")


def test_exact_mode_verifies_diff_id() -> None:
    raw = payload(5000)
    desc, blobs = layer(gzip.compress(raw, mtime=0), mt.OCI_LAYER_GZIP)
    good = "sha256:" + hashlib.sha256(raw).hexdigest()
    assert sizes.estimate(MemorySource(blobs), desc, diff_id=good, mode="exact").value == 5000
    with pytest.raises(DigestMismatch, match="diff_id"):
        sizes.estimate(MemorySource(blobs), desc, diff_id="sha256:" + "1" * 64, mode="exact")


def test_exact_mode_detects_corrupt_blob() -> None:
    desc, blobs = layer(gzip.compress(payload(5000), mtime=0), mt.OCI_LAYER_GZIP)
    blobs[desc.digest] = gzip.compress(payload(5000, seed=9), mtime=0)  # valid gzip, wrong content
    with pytest.raises(DigestMismatch):
        sizes.estimate(MemorySource(blobs), desc, mode="exact")


def test_decompression_bomb_capped() -> None:
    desc, blobs = layer(gzip.compress(b"\0" * 5_000_000, mtime=0), mt.OCI_LAYER_GZIP)
    with pytest.raises(LimitExceeded):
        sizes.estimate(MemorySource(blobs), desc, mode="exact", max_output=1_000_000)


def test_none_mode_makes_no_reads() -> None:
    desc, blobs = layer(gzip.compress(payload(5000), mtime=0), mt.OCI_LAYER_GZIP)
    src = MemorySource(blobs)
    assert sizes.estimate(src, desc, mode="none").source == "unknown"
    assert src.range_bytes == src.streamed_bytes == 0


def test_non_layer_blob_is_unknown() -> None:
    desc, blobs = layer(b"{}", "application/vnd.example.sbom+json")
    est = sizes.estimate(MemorySource(blobs), desc)
    assert est.source == "unknown" and est.value is None


@pytest.mark.parametrize(
    ("true_size", "compressed"),
    [
        (5 * 2**30, 2 * 2**30),  # 5 GiB compressing 2.5:1
        (2**32, 2**32 - 1000),  # incompressible, exactly 4 GiB
        (100, 90),
    ],
)
def test_isize_wrap_resolution(true_size: int, compressed: int) -> None:
    size, note = sizes.resolve_isize(true_size % 2**32, compressed)
    assert size == true_size
    if true_size >= 2**32:
        assert note and "4 GiB" in note


def test_isize_ambiguity_flagged() -> None:
    # 500 MiB compressed, ISIZE says 300 MiB: 800 MiB... no: 300 MiB is impossible (< compressed), so the
    # candidates are 4.29 GiB and 8.29 GiB, both plausible ratios: the smaller is reported, flagged ambiguous
    size, note = sizes.resolve_isize(300 * 2**20, 500 * 2**20)
    assert size == 300 * 2**20 + 2**32
    assert note and "ambiguous" in note and str(300 * 2**20 + 2 * 2**32) in note


def test_isize_true_size_beyond_first_candidate_is_flagged_not_hidden() -> None:
    # 9 GiB compressing 3:1: ISIZE = 1 GiB; 5 GiB is the smallest consistent candidate. A trailer cannot tell
    # 5 from 9 GiB, so the figure must carry the ambiguity note (and --exact gives the truth).
    size, note = sizes.resolve_isize(9 * 2**30 % 2**32, 3 * 2**30)
    assert size == 5 * 2**30
    assert note and "ambiguous" in note and str(9 * 2**30) in note


def test_isize_impossible_is_rejected() -> None:
    size, note = sizes.resolve_isize(10, 50_000)
    assert size is None and note


def test_zstd_header_parsing_variants() -> None:
    for n in (0, 1, 255, 256, 65791, 70000, 2**32 + 5):
        head = zstandard.ZstdCompressor(write_content_size=True).compress(b"") if n == 0 else None
        if head is None:
            # build a frame header by hand for big sizes: single segment, 8-byte FCS
            fhd = (3 << 6) | (1 << 5)
            head = zstandard.FRAME_HEADER + bytes([fhd]) + n.to_bytes(8, "little")
        assert sizes.zstd_content_size(head) == n
    real = zstandard.ZstdCompressor(write_content_size=True).compress(os.urandom(300))
    assert sizes.zstd_content_size(real[:18]) == 300
