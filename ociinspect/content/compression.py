"""Streaming decompression of layer blobs: gzip (isal when installed, zlib otherwise), zstd, or plain tar.

The format is sniffed from the first bytes, not trusted from the media type (``docker save`` labels plain tars
as gzip, for instance).  Multi-member gzip (eStargz, pigz --independent) and multi-frame zstd are read to the end.
Every stream is bounded by ``max_output`` bytes: past it :class:`~ociinspect.errors.LimitExceeded` is raised, so a
decompression bomb costs at most that much CPU and no memory beyond one chunk.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from ociinspect.errors import InvalidImage, LimitExceeded

__all__ = ["GZIP_MAGIC", "ZSTD_MAGIC", "decompress", "sniff"]

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: Largest piece of output per inflate call (bytes): small pieces keep the layers in flight within a few MiB.
_OUT_CHUNK = 256 << 10
#: Largest piece of input per inflate call (bytes): the decompressor copies what it cannot consume yet.
_IN_PIECE = 256 << 10


@functools.cache
def _isal() -> tuple[Any, int, Any] | None:
    """isal's inflater (its decompressor class, the gzip flag, its error), or None without the wheel: isal's
    inflate is ~3x zlib's here and releases the GIL.  Imported at the first inflate, not with this module (a
    command that inflates nothing — ``inspect`` of a layout with its base OS cached — does not load it)."""
    try:
        from isal.igzip_lib import DECOMP_GZIP, IgzipDecompressor, error
    except ImportError:  # pragma: no cover - exercised only where isal is missing
        return None
    return IgzipDecompressor, DECOMP_GZIP, error


def sniff(head: bytes) -> str:
    """``"gzip"``, ``"zstd"`` or ``"none"`` from a blob's first bytes (at least 4)."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


def _gzip_members(chunks: Iterator[bytes], what: str) -> Iterator[bytes]:
    """Inflate concatenated gzip members (cost: one pass; memory: one input chunk plus one output piece).

    With isal, :class:`isal.igzip_lib.IgzipDecompressor` inflates with the GIL released (layers scanned in
    parallel threads really run in parallel) and checks each member's header CRC, CRC32 and ISIZE; zlib's
    ``decompressobj`` (fallback) checks the same.  Zero padding after the last member is tolerated (some
    tools pad to a block); anything after the padding is an error."""
    isal = _isal()
    if isal is None:  # pragma: no cover - exercised only where isal is missing
        yield from _zlib_members(chunks, what)
        return
    state = _Members(*isal)
    for chunk in chunks:
        view = memoryview(chunk)
        for start in range(0, len(view), _IN_PIECE):
            yield from _feed(view[start : start + _IN_PIECE], state, what)
    if state.d is not None:
        raise InvalidImage(f"{what}: truncated gzip stream", hint="the blob is incomplete; fetch it again")


class _Members:
    """Where :func:`_gzip_members` is between two input pieces: the current member's decompressor (``None``
    between members) and whether only zero padding may follow; and isal's decompressor class, gzip flag and
    error (:func:`_isal`)."""

    __slots__ = ("d", "error", "flag", "inflater", "padding")

    def __init__(self, inflater: Any, flag: int, error: Any) -> None:
        self.d: Any = None
        self.padding = False
        self.inflater, self.flag, self.error = inflater, flag, error


def _feed(data: memoryview | bytes, state: _Members, what: str) -> Iterator[bytes]:
    """Inflate one input piece (≤ ``_IN_PIECE`` bytes), crossing member boundaries inside it."""
    while data:
        if state.d is None:
            if (
                state.padding or data[0] == 0
            ):  # zeros after the last member: padding, and nothing else may follow
                if bytes(data).strip(b"\0"):
                    raise InvalidImage(
                        f"{what}: corrupt gzip stream (data after the zero padding that ends it)",
                        hint="the blob is damaged; fetch it again",
                    )
                state.padding = True
                return
            state.d = state.inflater(flag=state.flag)
        d = state.d
        try:
            out = d.decompress(data, _OUT_CHUNK)  # bounded output: a bomb never inflates in one call
            while True:
                if out:
                    yield out
                if d.eof or d.needs_input:
                    break
                out = d.decompress(b"", _OUT_CHUNK)
        except state.error as exc:  # corrupt stream
            raise InvalidImage(
                f"{what}: corrupt gzip stream ({exc})", hint="the blob is damaged; fetch it again"
            ) from None
        if d.eof:
            data = d.unused_data
            state.d = None
        else:
            data = b""


def _zlib_members(chunks: Iterator[bytes], what: str) -> Iterator[bytes]:  # pragma: no cover - no isal
    """:func:`_gzip_members` with zlib's ``decompressobj`` (which copies its unconsumed input each call)."""
    buf = b""
    d: Any = None
    for chunk in chunks:
        buf += chunk
        while buf:
            if d is None:
                d = zlib.decompressobj(31)
            try:
                out = d.decompress(buf, _OUT_CHUNK)
            except zlib.error as exc:
                raise InvalidImage(
                    f"{what}: corrupt gzip stream ({exc})", hint="the blob is damaged; fetch it again"
                ) from None
            if out:
                yield out
            if d.eof:
                buf = d.unused_data
                d = None
                if buf and not buf.strip(b"\0"):
                    buf = b""
            else:
                buf = d.unconsumed_tail
    if d is not None:
        raise InvalidImage(f"{what}: truncated gzip stream", hint="the blob is incomplete; fetch it again")


_ZSTD_FEED = (
    2048  # input bytes per call: a zstd block of 128 KiB needs ≥ 4 input bytes, so one call yields ≤ 64 MiB
)


def _zstd_frames(chunks: Iterator[bytes], what: str) -> Iterator[bytes]:
    """Decompress concatenated zstd frames, feeding small input pieces so that output per call stays bounded."""
    import zstandard

    d = zstandard.ZstdDecompressor()
    obj = d.decompressobj()
    mid_frame = False
    for chunk in chunks:
        for i in range(0, len(chunk), _ZSTD_FEED):
            data = chunk[i : i + _ZSTD_FEED]
            while data:
                try:
                    out = obj.decompress(data)
                except zstandard.ZstdError as exc:
                    raise InvalidImage(
                        f"{what}: corrupt zstd stream ({exc})", hint="the blob is damaged; fetch it again"
                    ) from None
                mid_frame = True
                if out:
                    yield out
                if obj.eof:
                    data, obj, mid_frame = obj.unused_data, d.decompressobj(), False
                else:
                    data = b""
    if mid_frame:
        raise InvalidImage(f"{what}: truncated zstd stream", hint="the blob is incomplete; fetch it again")


def decompress(chunks: Iterable[bytes], *, what: str, max_output: int | None = None) -> Iterator[bytes]:
    """Yield the uncompressed bytes of a (possibly compressed) blob given as chunks.

    ``what`` names the blob in errors.  Raises :class:`InvalidImage` on corrupt or truncated data and
    :class:`LimitExceeded` when more than ``max_output`` bytes would come out.
    """
    it = iter(chunks)
    head = b""
    for chunk in it:
        head += chunk
        if len(head) >= 4:
            break
    kind = sniff(head)

    def rest() -> Iterator[bytes]:
        if head:
            yield head
        yield from it

    if kind == "gzip":
        out = _gzip_members(rest(), what)
    elif kind == "zstd":
        out = _zstd_frames(rest(), what)
    else:
        out = rest()
    total = 0
    for piece in out:
        total += len(piece)
        if max_output is not None and total > max_output:
            raise LimitExceeded(
                f"{what}: decompresses to more than {max_output} bytes",
                hint="raise --max-uncompressed if this layer is genuinely that large",
            )
        yield piece
