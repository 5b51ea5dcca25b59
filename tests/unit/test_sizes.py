"""Uncompressed sizes: gzip ISIZE resolution, zstd frame headers, trust rules, and the streaming fallback."""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import os
import random
import tarfile
from typing import Any

import pytest
import zstandard

from ociinspect.errors import DigestMismatch, LimitExceeded
from ociinspect.image import sizes
from ociinspect.model import digest as dg
from ociinspect.model import mediatypes as mt
from ociinspect.model.image import Descriptor, SizeEstimate, frozen_map
from ociinspect.sources.memory import MemorySource


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
    assert src.reads.range_bytes == src.reads.streamed_bytes == 0


@pytest.mark.parametrize("n", [0, 512, 10240, 70144, 300032])
def test_gzip_trailer_reads_trailer_and_head(n: int) -> None:
    # cost: one Range read of the whole blob when it is ≤ 64 KiB, else the 8-byte trailer and the 64 KiB head
    # (the head is what tells one member from several, and the true size from its 2^32 aliases)
    raw = payload(n)
    desc, blobs = layer(gzip.compress(raw, mtime=0), mt.OCI_LAYER_GZIP)
    src = MemorySource(blobs)
    est = sizes.estimate(src, desc)
    assert (est.value, est.source, est.note) == (n, "trailer", None)
    expected = desc.size if desc.size <= sizes.HEAD_BYTES else 8 + sizes.HEAD_BYTES
    assert src.reads.range_bytes == expected and src.reads.streamed_bytes == 0


def test_zstd_header() -> None:
    raw = payload(51200)
    desc, blobs = layer(zstandard.ZstdCompressor(write_content_size=True).compress(raw), mt.OCI_LAYER_ZSTD)
    src = MemorySource(blobs)
    est = sizes.estimate(src, desc)
    assert (est.value, est.source) == (51200, "header")
    assert src.reads.range_bytes <= 18


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
    assert src.reads.streamed_bytes == 0


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
    assert src.reads.range_bytes == src.reads.streamed_bytes == 0


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


# ----------------------------------------------------------------------------------- issue 10 §1, issue 15


def tar_of(*files: tuple[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_incompressible_layer_over_4_mib_is_its_true_size_not_plus_4_gib() -> None:
    # defect 1: zlib stores incompressible data in ~16 KiB blocks (5 bytes each), so the blob is larger than the
    # tar; the old lower bound (one 5-byte header per 64 KiB) rejected the true size and reported it + 2^32
    raw = random.Random(5).randbytes(5 * 2**20)  # the content of a tar of wheels, JARs, media
    data = gzip.compress(raw, compresslevel=6, mtime=0)
    assert len(data) > len(raw)
    desc, blobs = layer(data, mt.OCI_LAYER_GZIP)
    est = sizes.estimate(MemorySource(blobs), desc)
    assert (est.value, est.source) == (len(raw), "trailer")


def head(ratio: float, *, tar_min: int = 0, more: bool = False) -> sizes.GzipHead:
    return sizes.GzipHead(consumed=65536, inflated=int(65536 * ratio), more_members=more, tar_min=tar_min)


GIB = 2**30


@pytest.mark.parametrize(
    ("true", "compressed", "evidence", "expected"),
    [
        # incompressible 100 MiB through Go's writer: stored blocks, the head compresses 1:1
        (100 * 2**20, 100 * 2**20 + 100 * 2**20 // 16384 * 5 + 18, head(1.0), "exact"),
        # an ordinary 300 MiB layer compressing 3:1
        (300 * 2**20, 100 * 2**20, head(3.0), "exact"),
        # defect 3: 4.5 GiB of zeros at 1028:1 (zlib -9, igzip -1); the file's tar header inside the head rules
        # out 0.5 GiB, and 8.5 GiB cannot fit in the compressed size
        (9 * GIB // 2 + 2048, (9 * GIB // 2) // 1028, head(1028.0, tar_min=9 * GIB // 2 + 1024), "exact"),
        # ... at 229:1 (zlib -1): 0.5 GiB is ruled out, but 4.5 and 8.5 GiB remain (8.5 GiB would need 377:1)
        (9 * GIB // 2 + 2048, (9 * GIB // 2) // 229, head(229.0, tar_min=9 * GIB // 2 + 1024), "ambiguous"),
        # ... the same without the header in the head (other files first): not 0.5 GiB, ambiguous
        (9 * GIB // 2 + 2048, (9 * GIB // 2) // 200, head(3.0), "ambiguous"),
        # ... nor when the head is zeros too (its ratio explains 0.5 GiB and 4.5 GiB alike)
        (9 * GIB // 2 + 2048, (9 * GIB // 2) // 200, head(1000.0), "ambiguous"),
        # a 1.5 GiB layer at 3:1: 5.8 GiB (11.6:1) is as plausible as 1.5 GiB from a trailer and a head
        (3 * GIB // 2, GIB // 2, head(3.0), "ambiguous"),
        # defect 2: several members (one per 8 MiB) found in the head: the trailer is the last member's only
        (80 * 2**20, 27 * 2**20, head(3.0, more=True), "untrusted"),
    ],
)
def test_gzip_decision_from_trailer_and_head(
    true: int, compressed: int, evidence: sizes.GzipHead, expected: str
) -> None:
    est, why = sizes.decide_gzip(true % 2**32, compressed, evidence)
    if expected == "exact":
        assert est is not None and (est.value, est.source) == (true, "trailer"), why
    elif expected == "ambiguous":
        assert est is not None and est.value is None and est.source == "unknown" and est.ambiguous
        assert true in est.candidates and list(est.candidates) == sorted(est.candidates)
        assert (est.note or "").startswith("ambiguous") and "--exact" in (est.note or "")
    else:
        assert est is None and "multi-member" in why


@pytest.mark.parametrize("members", [(32768,) * 16, (32768, 40960, 8 * 2**20)])
def test_multi_member_of_whole_tar_blocks_with_a_plausible_last_member_is_not_trusted(
    members: tuple[int, ...],
) -> None:
    # defect 2: members holding whole tar blocks, the last one alone fits the compressed size (its ISIZE is a
    # whole tar, and at least the blob's size), so the trailer alone would give the last member's size; the
    # head shows the first member ending with more data after it (the whole blob, or the 64 KiB head)
    raw = tar_of(("a", random.Random(2).randbytes(70_000)), ("z", b"\0" * 9 * 2**20))
    cuts = [sum(members[:i]) for i in range(len(members))] + [len(raw)]
    data = b"".join(gzip.compress(raw[a:b], mtime=0) for a, b in itertools.pairwise(cuts))
    isize = int.from_bytes(data[-4:], "little")
    assert isize % 512 == 0 and sizes.resolve_isize(isize, len(data))[0] == isize != len(raw)  # the trap
    desc, blobs = layer(data, mt.OCI_LAYER_GZIP)
    est = sizes.estimate(MemorySource(blobs), desc)
    assert (est.value, est.source) == (len(raw), "streamed")
    assert "multi-member" in (est.note or "")


def test_zstd_claimed_content_size_must_fit_the_compressed_size() -> None:
    # issue 15: a frame header claiming 2^60 bytes on a 2 MiB blob is not believed (RLE blocks give at most
    # 128 KiB per 4 bytes); the blob is too large to stream cheaply, so the size is unknown with a note
    fhd = (3 << 6) | (1 << 5)
    data = zstandard.FRAME_HEADER + bytes([fhd]) + (2**60).to_bytes(8, "little") + b"\0" * (2 * 2**20)
    desc, blobs = layer(data, mt.OCI_LAYER_ZSTD)
    est = sizes.estimate(MemorySource(blobs), desc)
    assert (est.value, est.source) == (None, "unknown")
    assert "claims" in (est.note or "") and "--exact" in (est.note or "")
    assert sizes.zstd_max_content_size(2 * 2**20) < 2**60
    # a real frame of zeros at zstd's best ratio is still believed
    zeros = zstandard.ZstdCompressor(level=19, write_content_size=True).compress(b"\0" * (64 * 2**20))
    assert sizes.zstd_max_content_size(len(zeros)) >= 64 * 2**20


class FakeStore:
    def __init__(self, known: dict[str, int] | None = None) -> None:
        self.known = dict(known or {})

    def get_uncompressed_size(self, diff_id: str) -> int | None:
        return self.known.get(diff_id)

    def put_uncompressed_size(self, diff_id: str, size: int) -> None:
        self.known[diff_id] = size


def test_store_remembers_streamed_sizes_and_answers_when_cheap_evidence_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = payload(50000)
    cctx = zstandard.ZstdCompressor(write_content_size=False)  # what skopeo and buildkit write
    buf = io.BytesIO()
    with cctx.stream_writer(buf, closefd=False) as w:
        w.write(raw)
    data = buf.getvalue()
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    desc, blobs = layer(data, mt.OCI_LAYER_ZSTD)
    store = FakeStore()
    exact = sizes.estimate(MemorySource(blobs), desc, diff_id=diff_id, mode="exact", store=store)
    assert exact.value == 50000 and store.known == {diff_id: 50000}
    monkeypatch.setattr(sizes, "CHEAP_STREAM_BYTES", 10)  # too large to stream: only the store knows
    src = MemorySource(blobs)
    est = sizes.estimate(src, desc, diff_id=diff_id, store=store)
    assert (est.value, est.source) == (50000, "store") and "store" in (est.note or "")
    assert src.reads.streamed_bytes == 0
    # the same content recompressed as gzip, ambiguous from its trailer, is known too
    amb = SizeEstimate(None, "unknown", "ambiguous", (1, 2))
    monkeypatch.setattr(sizes, "decide_gzip", lambda *a: (amb, ""))
    gz_desc, gz_blobs = layer(gzip.compress(raw, mtime=0), mt.OCI_LAYER_GZIP)
    est = sizes.estimate(MemorySource(gz_blobs), gz_desc, diff_id=diff_id, store=store)
    assert (est.value, est.source) == (50000, "store")
    # without a store: unknown, never a guess
    assert sizes.estimate(MemorySource(blobs), desc, diff_id=diff_id).source == "unknown"


def test_store_is_not_consulted_before_a_trustworthy_trailer() -> None:
    raw = payload(10240)
    desc, blobs = layer(gzip.compress(raw, mtime=0), mt.OCI_LAYER_GZIP)
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    est = sizes.estimate(MemorySource(blobs), desc, diff_id=diff_id, store=FakeStore({diff_id: 1}))
    assert (est.value, est.source) == (10240, "trailer")


def test_store_keeps_sizes_of_scanned_and_streamed_layers(tmp_path: Any) -> None:
    from ociinspect.model.entries import LayerScan
    from ociinspect.store import Store

    diff_id = "sha256:" + "a" * 64
    with Store(tmp_path) as store:
        assert store.get_uncompressed_size(diff_id) is None
        store.put_scan(LayerScan("sha256:" + "b" * 64, (), "stream", False, diff_id, 12800))  # waste/files
        assert store.get_uncompressed_size(diff_id) == 12800
        store.put_scan(LayerScan("sha256:" + "c" * 64, (), "estargz-toc", False, "sha256:" + "d" * 64, 5))
        assert store.get_uncompressed_size("sha256:" + "d" * 64) is None  # a TOC's claim is not a count
        store.put_fact("usize:sha256:" + "e" * 64, "１２")  # a damaged fact (Unicode digits) is no fact
        assert store.get_uncompressed_size("sha256:" + "e" * 64) is None
