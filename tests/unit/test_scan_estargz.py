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

from ociinspect.errors import DigestMismatch, InvalidImage
from ociinspect.estargz import parse_footer, parse_toc
from ociinspect.scan import ScanOptions, scan_layer

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
    toc = scan_layer(src, layer)  # type: ignore[arg-type]
    assert toc.index_source == "estargz-toc" and src.opened == []
    assert len(src.ranges) == 2 and src.ranges[0][1] == len(lb.blob) - 51
    streamed = scan_layer(src, layer, ScanOptions(use_estargz_toc=False, hash_files=True))  # type: ignore[arg-type]
    assert streamed.index_source == "stream" and streamed.diff_id == lb.diff_id
    assert toc.entries == streamed.entries  # same paths, types, sizes, modes, owners, links — and hashes
    assert toc.hashed and toc.uncompressed_size == streamed.uncompressed_size


def test_toc_reads_a_few_bytes_only() -> None:
    big = [d("data")] + [f(f"data/{i}", bytes([i]) * 200_000) for i in range(20)]
    lb = estargz_layer(big)
    src = MemorySource([lb.blob])
    scan_layer(src, model_layer(0, lb))  # type: ignore[arg-type]
    read = sum(end - start + 1 for _, start, end in src.ranges)
    assert read < 3000 < len(lb.blob)


def test_toc_digest_must_match_the_annotation() -> None:
    lb = estargz_layer(SPECS)
    forged = dataclasses.replace(lb, annotations={**lb.annotations, TOC_ANNOTATION: sha256(b"forged")})
    src = MemorySource([lb.blob])
    with pytest.raises(DigestMismatch, match=r"layer 0 \(.{12}\): eStargz TOC digest is sha256:"):
        scan_layer(src, model_layer(0, forged))  # type: ignore[arg-type]


def test_range_refused_falls_back_to_streaming() -> None:
    lb = estargz_layer(SPECS)
    src = MemorySource([lb.blob], ranges=False)
    scan = scan_layer(src, model_layer(0, lb))  # type: ignore[arg-type]
    assert scan.index_source == "stream" and src.opened == [sha256(lb.blob)]


def test_annotated_layer_without_footer_is_streamed() -> None:
    plain = gzip_layer(SPECS)
    lb = LayerBlob(plain.blob, plain.media_type, plain.diff_id, {TOC_ANNOTATION: sha256(b"x")})
    src = MemorySource([lb.blob])
    scan = scan_layer(src, model_layer(0, lb))  # type: ignore[arg-type]
    assert scan.index_source == "stream" and [e.path for e in scan.entries][:2] == ["app", "app/main.py"]


def test_legacy_footer_layer() -> None:
    blob, toc, _ = estargz(SPECS, legacy_footer=True)
    lb = LayerBlob(blob, "application/vnd.oci.image.layer.v1.tar+gzip", sha256(b""), {TOC_ANNOTATION: toc})
    scan = scan_layer(MemorySource([blob]), model_layer(0, lb))  # type: ignore[arg-type]
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
