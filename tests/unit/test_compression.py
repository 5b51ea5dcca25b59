"""Streaming decompression: format sniffing, multi-member gzip, multi-frame zstd, corruption, caps."""

from __future__ import annotations

import gzip
import os
import zlib

import pytest
import zstandard

from ociinspect.content.compression import decompress, sniff
from ociinspect.errors import InvalidImage, LimitExceeded

DATA = os.urandom(100_000) + b"a" * 400_000


def chunks(data: bytes, size: int = 7001) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_sniff() -> None:
    assert sniff(gzip.compress(b"x")) == "gzip"
    assert sniff(zstandard.ZstdCompressor().compress(b"x")) == "zstd"
    assert sniff(b"ustar") == "none"


@pytest.mark.parametrize(
    "blob",
    [
        gzip.compress(DATA, mtime=0),
        gzip.compress(DATA[:1000], mtime=0) + gzip.compress(DATA[1000:], mtime=0),
        zstandard.ZstdCompressor().compress(DATA),
        zstandard.ZstdCompressor().compress(DATA[:5]) + zstandard.ZstdCompressor().compress(DATA[5:]),
        DATA,
    ],
    ids=["gzip", "gzip-multimember", "zstd", "zstd-multiframe", "plain"],
)
def test_round_trip(blob: bytes) -> None:
    assert b"".join(decompress(chunks(blob), what="t")) == DATA


def test_matches_zlib_byte_for_byte_on_large_input() -> None:
    big = os.urandom(1 << 20) * 3
    assert b"".join(decompress(chunks(gzip.compress(big, 1), 65536), what="t")) == zlib.decompress(
        gzip.compress(big, 1), 31
    )


@pytest.mark.parametrize(
    "blob",
    [gzip.compress(DATA)[:-20], zstandard.ZstdCompressor().compress(DATA)[:-20]],
    ids=["gzip", "zstd"],
)
def test_truncated(blob: bytes) -> None:
    with pytest.raises(InvalidImage, match="truncated"):
        b"".join(decompress(chunks(blob), what="layer x"))


def test_corrupt_gzip() -> None:
    blob = bytearray(gzip.compress(DATA))
    blob[200:260] = b"\xff" * 60
    with pytest.raises(InvalidImage, match="layer x: corrupt gzip"):
        b"".join(decompress(chunks(bytes(blob)), what="layer x"))


def test_bomb_capped_without_inflating_everything() -> None:
    bomb = gzip.compress(b"\0" * 50_000_000, 9)
    assert len(bomb) < 100_000
    out = 0
    with pytest.raises(LimitExceeded, match="more than 1000000 bytes"):
        for piece in decompress(chunks(bomb), what="t", max_output=1_000_000):
            out += len(piece)
    assert out <= 1_000_000
