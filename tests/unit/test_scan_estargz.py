"""eStargz: footer parsing, the TOC index (Range reads only), its verification and the streaming fallback."""

from __future__ import annotations

import dataclasses
import json

import pytest
from waste_fixtures import (
    TOC_ANNOTATION,
    WASTE_LAYERS,
    LayerBlob,
    MemorySource,
    d,
    estargz,
    estargz_layer,
    f,
    gzip_layer,
    hard,
    model_layer,
    sha256,
    sym,
)

from ociinspect.content.estargz import parse_footer, parse_toc
from ociinspect.content.scan import ScanOptions, scan_layer
from ociinspect.errors import DigestMismatch, InvalidImage

SPECS = [
    d("app"),
    f("app/main.py", b"print(1)\n" * 50),
    sym("app/link", "main.py"),
    hard("app/hard", "app/main.py"),
]


def test_parse_footer_estargz_and_legacy() -> None:
    blob, _, _ = estargz(SPECS)
    offset, size = parse_footer(blob[-51:])
    assert size == 51 and blob[offset : offset + 2] == b"\x1f\x8b"
    legacy, _, _ = estargz(SPECS, legacy_footer=True)
    offset, size = parse_footer(legacy[-51:])
    assert size == 47 and legacy[offset : offset + 2] == b"\x1f\x8b"
    with pytest.raises(ValueError):
        parse_footer(b"\x1f\x8b" + bytes(49))


@pytest.mark.parametrize("index", range(len(WASTE_LAYERS)))
def test_toc_index_equals_the_streamed_index(index: int) -> None:
    lb = estargz_layer(WASTE_LAYERS[index])
    src = MemorySource([lb.blob])
    layer = model_layer(index, lb)
    toc = scan_layer(src, layer)
    assert toc.index_source == "estargz-toc" and src.opened == []
    assert len(src.ranges) == 2 and src.ranges[0][1] == len(lb.blob) - 51
    streamed = scan_layer(src, layer, ScanOptions(use_estargz_toc=False, hash_files=True))
    assert streamed.index_source == "stream" and streamed.diff_id == lb.diff_id
    assert toc.entries == streamed.entries  # same paths, types, sizes, modes, owners, links — and hashes
    assert toc.hashed and toc.uncompressed_size == streamed.uncompressed_size


def test_toc_reads_a_few_bytes_only() -> None:
    big = [d("data")] + [f(f"data/{i}", bytes([i]) * 200_000) for i in range(20)]
    lb = estargz_layer(big)
    src = MemorySource([lb.blob])
    scan_layer(src, model_layer(0, lb))
    read = sum(end - start + 1 for _, start, end in src.ranges)
    assert read < 3000 < len(lb.blob)


def test_toc_digest_must_match_the_annotation() -> None:
    lb = estargz_layer(SPECS)
    forged = dataclasses.replace(lb, annotations={**lb.annotations, TOC_ANNOTATION: sha256(b"forged")})
    src = MemorySource([lb.blob])
    with pytest.raises(DigestMismatch, match=r"layer 0 \(.{12}\): eStargz TOC digest is sha256:"):
        scan_layer(src, model_layer(0, forged))


def test_range_refused_falls_back_to_streaming() -> None:
    lb = estargz_layer(SPECS)
    src = MemorySource([lb.blob], ranges=False)
    scan = scan_layer(src, model_layer(0, lb))
    assert scan.index_source == "stream" and src.opened == [sha256(lb.blob)]


def test_annotated_layer_without_footer_is_streamed() -> None:
    plain = gzip_layer(SPECS)
    lb = LayerBlob(plain.blob, plain.media_type, plain.diff_id, {TOC_ANNOTATION: sha256(b"x")})
    src = MemorySource([lb.blob])
    scan = scan_layer(src, model_layer(0, lb))
    assert scan.index_source == "stream" and [e.path for e in scan.entries][:2] == ["app", "app/main.py"]


def test_legacy_footer_layer() -> None:
    blob, toc, _ = estargz(SPECS, legacy_footer=True)
    lb = LayerBlob(blob, "application/vnd.oci.image.layer.v1.tar+gzip", sha256(b""), {TOC_ANNOTATION: toc})
    scan = scan_layer(MemorySource([blob]), model_layer(0, lb))
    assert scan.index_source == "estargz-toc" and len(scan.entries) == 4


def toc(entries: list[dict[str, object]]) -> bytes:
    return json.dumps({"version": 1, "entries": entries}).encode()


def test_parse_toc_folds_chunks_and_checks_paths() -> None:
    entries, warnings = parse_toc(
        toc(
            [
                {
                    "name": "big",
                    "type": "reg",
                    "size": 10_000_000,
                    "digest": "sha256:" + "a" * 64,
                    "mode": 420,
                },
                {"name": "big", "type": "chunk", "chunkOffset": 4_000_000, "chunkSize": 4_000_000},
                {"name": "/abs", "type": "reg", "size": 0},
                {"name": "dir/", "type": "dir", "mode": 493, "uid": 1000, "gid": 1000},
            ]
        ),
        "layer 3",
    )
    assert [(e.path, e.type, e.size, e.uid) for e in entries] == [
        ("big", "file", 10_000_000, 0),
        ("abs", "file", 0, 0),
        ("dir", "dir", 0, 1000),
    ]
    assert entries[0].sha256 == "a" * 64 and entries[1].sha256 is not None  # empty files hash to sha256("")
    assert warnings and "absolute" in warnings[0]
    with pytest.raises(InvalidImage, match="points outside the image root"):
        parse_toc(toc([{"name": "../x", "type": "reg"}]), "layer 3")
    with pytest.raises(InvalidImage, match="has type 'socket'"):
        parse_toc(toc([{"name": "x", "type": "socket"}]), "layer 3")
    with pytest.raises(InvalidImage, match="not valid JSON"):
        parse_toc(b"{", "layer 3")


# ------------------------------------------------------------------------- claimed sizes (issue 15)


def _with_toc_member(toc_tar: bytes) -> LayerBlob:
    """A valid eStargz layer of SPECS whose TOC member is replaced by gzip(``toc_tar``) (footer fixed up)."""
    import gzip

    blob, _, _ = estargz(SPECS)
    offset, footer_size = parse_footer(blob[-51:])
    footer = blob[-footer_size:]
    member = gzip.compress(toc_tar, mtime=0)
    new_footer = footer[:16] + b"%016x" % offset + footer[32:]
    new_blob = blob[:offset] + member + new_footer
    toc_json = toc_tar[512 : 512 + int(toc_tar[124:135], 8)]
    return LayerBlob(
        new_blob,
        "application/vnd.oci.image.layer.v1.tar+gzip",
        sha256(gzip.decompress(new_blob)),
        {TOC_ANNOTATION: sha256(toc_json)},
    )


def _toc_tar(json_bytes: bytes) -> bytes:
    import io
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tf:
        ti = tarfile.TarInfo("stargz.index.json")
        ti.size = len(json_bytes)
        tf.addfile(ti, io.BytesIO(json_bytes))
    return out.getvalue()


def test_toc_bomb_is_not_inflated_past_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ~30 KiB TOC member that inflates to 30 MiB (valid JSON padded with spaces, and its digest is even the
    annotated one): inflating stops at the cap (100x the member, at least 1 MiB), the digest is not checked,
    and the layer is streamed (and so verified) instead."""
    import types

    from ociinspect.content import compression
    from ociinspect.content import estargz as estargz_module

    bomb = _toc_tar(toc([]) + b" " * (30 << 20))
    lb = _with_toc_member(bomb)
    inflated: list[int] = []

    def counting(chunks: object, **kw: object) -> object:
        total = 0
        for piece in compression.decompress(chunks, **kw):  # type: ignore[arg-type]
            total += len(piece)
            inflated.append(total)
            yield piece

    monkeypatch.setattr(estargz_module, "compression", types.SimpleNamespace(decompress=counting))
    member_size = len(lb.blob) - 51 - parse_footer(lb.blob[-51:])[0]
    cap = estargz_module.toc_inflate_cap(member_size)
    assert member_size < 64 << 10 and cap < 8 << 20
    src = MemorySource([lb.blob])
    scan = scan_layer(src, model_layer(0, lb))
    assert scan.index_source == "stream" and src.opened == [sha256(lb.blob)]
    assert [e.path for e in scan.entries] == ["app", "app/main.py", "app/link", "app/hard"]
    assert max(inflated) <= cap + (1 << 20)  # stopped within one inflate piece of the cap, not at 30 MiB


def test_toc_within_the_ratio_is_read() -> None:
    """Guards the cap: a TOC that inflates 50:1 past the 1 MiB floor is still believed."""
    from ociinspect.content.estargz import MAX_TOC_FLOOR, toc_inflate_cap

    assert toc_inflate_cap(10) == MAX_TOC_FLOOR and toc_inflate_cap(100_000) == 10_000_000
    lb = estargz_layer(SPECS)
    scan = scan_layer(MemorySource([lb.blob]), model_layer(0, lb))
    assert scan.index_source == "estargz-toc"


def test_implausible_footer_claims_fall_back_to_streaming(monkeypatch: pytest.MonkeyPatch) -> None:
    """A footer offset outside the blob, or a claimed TOC over the compressed cap: not believed, not an error —
    the layer is streamed instead."""
    from ociinspect.content import estargz as estargz_module

    lb = estargz_layer(SPECS)
    footer = lb.blob[-51:]
    outside = dataclasses.replace(lb, blob=lb.blob[:-51] + footer[:16] + b"%016x" % (1 << 60) + footer[32:])
    src = MemorySource([outside.blob])
    assert scan_layer(src, model_layer(0, outside)).index_source == "stream"
    monkeypatch.setattr(estargz_module, "MAX_TOC_COMPRESSED", 100)
    src = MemorySource([lb.blob])
    scan = scan_layer(src, model_layer(0, lb))
    assert scan.index_source == "stream" and len(src.ranges) == 1  # the footer only: the TOC was never read
