"""Uncompressed layer sizes at the lowest cost, each with how it was obtained (see ``docs/sizes.md``).

=========== ============================================================== ===============================
source      how                                                            cost
=========== ============================================================== ===============================
``exact``   plain tar: the blob size is the tar size                       nothing
``trailer`` gzip: ISIZE from the last 8 bytes (one Range read), mod 2^32,  1 request, 8 bytes
            resolved with the compressed size
``header``  zstd: Frame_Content_Size from the first frame header           1 request, 18 bytes
``streamed`` inflate and count every byte (digest and diff_id verified)     the whole blob
``unknown`` none of the above was possible or trustworthy                  —
=========== ============================================================== ===============================

A trailer or header value is distrusted (and the layer streamed when that is cheap — at most
:data:`CHEAP_STREAM_BYTES` compressed — or with ``exact=True``; reported ``unknown`` otherwise) when it cannot be
the size of a single gzip member / zstd frame of that compressed size, when it is not a whole number of 512-byte
tar blocks (so it describes only the last of several members), or when annotations say the blob is eStargz or
zstd:chunked (several members/frames by design).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Literal

from ociinspect import compression, mediatypes
from ociinspect.errors import DigestMismatch, LimitExceeded, RangeNotSupported
from ociinspect.model import Descriptor, SizeEstimate
from ociinspect.sources.base import Source

__all__ = [
    "CHEAP_STREAM_BYTES",
    "CHEAP_STREAM_MAX_OUTPUT",
    "SizeMode",
    "estimate",
    "resolve_isize",
    "stream_size",
    "zstd_content_size",
]

log = logging.getLogger(__name__)

SizeMode = Literal["cheap", "exact", "none"]

#: Blobs up to this compressed size may be streamed when a cheap figure is not trustworthy.
CHEAP_STREAM_BYTES = 1024 * 1024
#: ... but only up to this many uncompressed bytes (a ratio of 256 for a 1 MiB blob; real layers compress 3–10x).
#: Past it the size is ``unknown``: a 1 MiB zstd bomb inflates to 32 GiB, and a cheap ``inspect`` must not spend
#: minutes of CPU on each such layer.
CHEAP_STREAM_MAX_OUTPUT = 256 * 1024 * 1024
_DEFLATE_MAX_RATIO = 1032  # deflate cannot expand 1 byte into more than ~1032 (RFC 1951 max match length)
_GZIP_MIN_OVERHEAD = 18  # 10-byte header + 8-byte trailer
_GZIP_HEADER_SLACK = 1024  # optional FNAME/FCOMMENT/FEXTRA fields we allow for without reading the header
_PLAUSIBLE_RATIO = 20  # a second 2^32 candidate below this compression ratio makes the figure ambiguous
_2_32 = 1 << 32
# every tar stream is a whole number of 512-byte blocks; a size that is not cannot be the layer's
_TAR_BLOCK = 512
_MULTI_MEMBER_ANNOTATIONS = (
    "containerd.io/snapshot/stargz/toc.digest",
    "io.containers.estargz.uncompressed-size",
    "io.github.containers.zstd-chunked.manifest-checksum",
    "io.github.containers.zstd-chunked.manifest-position",
)


def resolve_isize(isize: int, compressed: int) -> tuple[int | None, str | None]:
    """Turn a gzip ISIZE (true size mod 2^32) into a size, using the compressed size to pick the wrap count.

    Returns ``(size, note)``; ``size`` is ``None`` when no candidate is consistent with a single gzip member
    of ``compressed`` bytes (multi-member gzip, or a corrupt trailer).  Cost: arithmetic only.
    """
    payload = compressed - _GZIP_MIN_OVERHEAD - _GZIP_HEADER_SLACK
    lower = max(0, payload * 65535 // 65540)  # stored blocks add 5 bytes per 65535
    upper = compressed * _DEFLATE_MAX_RATIO + 1024
    candidates: list[int] = []
    k = max(0, (lower - isize + _2_32 - 1) // _2_32)
    while isize + k * _2_32 <= upper and len(candidates) < 2:
        candidates.append(isize + k * _2_32)
        k += 1
    if not candidates:
        return None, "gzip trailer is inconsistent with the compressed size (multi-member gzip?)"
    size = candidates[0]
    note = None
    if size >= _2_32:
        note = "≥ 4 GiB: gzip ISIZE is mod 2^32, wrap count chosen from the compressed size"
    if len(candidates) > 1 and candidates[1] <= compressed * _PLAUSIBLE_RATIO:
        note = (note + "; " if note else "") + f"ambiguous (could be {candidates[1]}): confirm with --exact"
    return size, note


def zstd_content_size(head: bytes) -> int | None:
    """Frame_Content_Size of the zstd frame starting ``head`` (≥ 18 bytes), or ``None`` when absent."""
    if len(head) < 6 or not head.startswith(compression.ZSTD_MAGIC):
        return None
    fhd = head[4]
    fcs_flag, single_segment, dict_flag = fhd >> 6, (fhd >> 5) & 1, fhd & 3
    pos = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[dict_flag]
    width = (1 if single_segment else 0, 2, 4, 8)[fcs_flag]
    if width == 0 or len(head) < pos + width:
        return None
    value = int.from_bytes(head[pos : pos + width], "little")
    return value + 256 if width == 2 else value


def stream_size(
    source: Source, layer: Descriptor, *, diff_id: str | None, max_output: int | None = None
) -> int:
    """Stream a layer, verify its digest (and ``diff_id`` when given) and return its uncompressed size.

    Cost: downloads/reads the whole blob and inflates it; memory is one chunk.
    """
    what = f"layer {layer.digest}"
    total = 0
    h = hashlib.sha256()
    with source.open_blob(layer.digest, size=layer.size) as chunks:
        for piece in compression.decompress(chunks, what=what, max_output=max_output):
            total += len(piece)
            h.update(piece)
    if diff_id and diff_id.startswith("sha256:") and f"sha256:{h.hexdigest()}" != diff_id:
        raise DigestMismatch(
            f"{what}: uncompressed content is sha256:{h.hexdigest()}, but the config's diff_id is {diff_id}",
            hint="the image is corrupt or its config does not belong to these layers",
        )
    return total


def _untrusted(
    source: Source, layer: Descriptor, diff_id: str | None, mode: SizeMode, why: str, max_output: int | None
) -> SizeEstimate:
    if mode == "exact":
        return SizeEstimate(
            stream_size(source, layer, diff_id=diff_id, max_output=max_output), "streamed", why
        )
    if mode == "cheap" and layer.size <= CHEAP_STREAM_BYTES:
        cap = CHEAP_STREAM_MAX_OUTPUT if max_output is None else min(max_output, CHEAP_STREAM_MAX_OUTPUT)
        try:
            return SizeEstimate(stream_size(source, layer, diff_id=diff_id, max_output=cap), "streamed", why)
        except LimitExceeded:
            if cap != CHEAP_STREAM_MAX_OUTPUT:
                raise  # the caller's own cap
            return SizeEstimate(
                None, "unknown", f"{why}; inflates past {cap} bytes: use --exact to stream it"
            )
    return SizeEstimate(None, "unknown", f"{why}; use --exact to stream it")


def estimate(
    source: Source,
    layer: Descriptor,
    *,
    diff_id: str | None = None,
    mode: SizeMode = "cheap",
    max_output: int | None = None,
) -> SizeEstimate:
    """The uncompressed size of ``layer`` by the cheapest trustworthy method (see the module table).

    ``mode="exact"`` always streams (and verifies digest and diff_id); ``"none"`` makes no request at all.
    """
    kind = mediatypes.compression_of(layer.media_type)
    if not mediatypes.is_layer(layer.media_type):
        return SizeEstimate(None, "unknown", "not a filesystem layer")
    if mode == "exact":
        return SizeEstimate(stream_size(source, layer, diff_id=diff_id, max_output=max_output), "streamed")
    if kind == "none":
        return SizeEstimate(layer.size, "exact")
    if mode == "none":
        return SizeEstimate(None, "unknown", "size lookups disabled")
    if any(k in layer.annotations for k in _MULTI_MEMBER_ANNOTATIONS):
        return _untrusted(
            source, layer, diff_id, mode, "eStargz/zstd:chunked layer (many members)", max_output
        )
    try:
        if kind == "gzip":
            if layer.size < _GZIP_MIN_OVERHEAD:
                return _untrusted(source, layer, diff_id, mode, "blob too small to be gzip", max_output)
            tail = source.blob_range(layer.digest, layer.size - 8, layer.size - 1)
            size, note = resolve_isize(int.from_bytes(tail[4:8], "little"), layer.size)
            if size is not None and size % _TAR_BLOCK:
                size, note = None, "gzip trailer is not a whole tar (multi-member gzip?)"
            if size is None:
                return _untrusted(source, layer, diff_id, mode, note or "untrusted trailer", max_output)
            return SizeEstimate(size, "trailer", note)
        if kind == "zstd":
            fcs = zstd_content_size(source.blob_range(layer.digest, 0, min(layer.size, 18) - 1))
            if fcs is None:
                return _untrusted(
                    source, layer, diff_id, mode, "zstd frame header has no content size", max_output
                )
            if fcs % _TAR_BLOCK or fcs + 64 < layer.size - layer.size // 1000:
                return _untrusted(
                    source, layer, diff_id, mode, "zstd header inconsistent (several frames?)", max_output
                )
            return SizeEstimate(fcs, "header")
    except RangeNotSupported:
        return _untrusted(source, layer, diff_id, mode, "the registry refused a Range request", max_output)
    return SizeEstimate(None, "unknown", f"unknown layer compression ({layer.media_type})")
