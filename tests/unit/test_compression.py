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


def test_a_bad_crc32_or_isize_is_a_corrupt_stream() -> None:
    """Item (issue 14, isal's IgzipDecompressor): each member's CRC32 and ISIZE are still checked."""
    for at in (-8, -1):
        blob = bytearray(gzip.compress(DATA, mtime=0))
        blob[at] ^= 0x01
        with pytest.raises(InvalidImage, match="layer x: corrupt gzip"):
            b"".join(decompress(chunks(bytes(blob), 65536), what="layer x"))


def test_members_split_anywhere_and_padding_across_chunks() -> None:
    """Members ending inside an input piece or across chunks, then zero padding over several chunks."""
    blob = gzip.compress(DATA[:300_000], mtime=0) + gzip.compress(DATA[300_000:], mtime=0)
    for size in (1, 4093, 65536, 1 << 20):
        padded = blob + bytes(3 * size)
        assert b"".join(decompress(chunks(padded, size), what="t")) == DATA


def test_data_after_padding_that_is_not_gzip_is_corrupt() -> None:
    blob = gzip.compress(DATA, mtime=0) + bytes(10) + b"junk"
    with pytest.raises(InvalidImage, match="corrupt gzip"):
        b"".join(decompress(chunks(blob), what="t"))


def test_large_inputs_inflate_in_bounded_pieces() -> None:
    """A 4 MiB chunk of input is fed in pieces; no output piece exceeds the output bound."""
    from ociinspect.content import compression

    big = gzip.compress(os.urandom(1 << 20) * 6, 1)
    pieces = list(decompress([big], what="t"))
    assert sum(map(len, pieces)) == 6 << 20
    assert max(map(len, pieces)) <= compression._OUT_CHUNK
