"""Uncompressed layer sizes at the lowest cost, each with how it was obtained (see ``docs/sizes.md``).

The rule: a figure is exact or says it is not known.  A cheap figure that the evidence does not pin down is
``unknown`` — with the candidate sizes listed when the evidence leaves a few (``ambiguous``) — never a guess.

=========== ============================================================== ===============================
source      how                                                            cost
=========== ============================================================== ===============================
``exact``   plain tar: the blob size is the tar size                       nothing
``store``   an earlier verified stream of content with the same diff_id    one local SQLite read
``trailer`` gzip: every size ISIZE + k·2^32 that one member of that        2 requests at once (registry):
            compressed size can hold, decided with the inflated head       8 bytes (trailer) and ≤ 64 KiB
            (tar headers, compression ratio, member boundary)              (head); one when the blob ≤ 64 KiB
``header``  zstd: Frame_Content_Size from the first frame header, if       1 request, 18 bytes
            plausible for the compressed size
``streamed`` inflate and count every byte (digest and diff_id verified)     the whole blob
``unknown`` none of the above was possible or trustworthy (``candidates``  —
            lists the sizes left when several fit)
=========== ============================================================== ===============================

An untrusted cheap figure is replaced by streaming when that is cheap (at most :data:`CHEAP_STREAM_BYTES`
compressed, :data:`CHEAP_STREAM_MAX_OUTPUT` inflated) or with ``mode="exact"``; otherwise it is ``unknown``.
"""

from __future__ import annotations

import contextlib
import re
import threading
import zlib
from collections.abc import Callable
from io import BytesIO
from typing import Literal, Protocol

from ociinspect import threads
from ociinspect.content import compression
from ociinspect.content.tarheader import plain_tar_bound
from ociinspect.errors import DigestMismatch, LimitExceeded, RangeNotSupported
from ociinspect.model import mediatypes
from ociinspect.model.digest import new_hash
from ociinspect.model.image import Descriptor, SizeEstimate
from ociinspect.model.logs import get_logger
from ociinspect.model.record import record
from ociinspect.sources.base import Source

__all__ = [
    "CHEAP_STREAM_BYTES",
    "CHEAP_STREAM_MAX_OUTPUT",
    "HEAD_BYTES",
    "HEAD_MAX_OUTPUT",
    "Evidence",
    "GzipHead",
    "SizeFacts",
    "SizeMode",
    "decide_gzip",
    "estimate",
    "gzip_candidates",
    "read_evidence",
    "read_gzip_head",
    "resolve_isize",
    "stream_size",
    "trailer_doubt",
    "zstd_content_size",
    "zstd_max_content_size",
]

log = get_logger(__name__)

SizeMode = Literal["cheap", "exact", "none"]

#: Blobs up to this compressed size may be streamed when a cheap figure is not trustworthy.
CHEAP_STREAM_BYTES = 1024 * 1024
#: ... but only up to this many uncompressed bytes (a ratio of 256 for a 1 MiB blob; real layers compress 3–10x).
#: Past it the size is ``unknown``: a 1 MiB zstd bomb inflates to 32 GiB, and a cheap ``inspect`` must not spend
#: minutes of CPU on each such layer.
CHEAP_STREAM_MAX_OUTPUT = 256 * 1024 * 1024
#: Compressed bytes read from the start of a gzip layer as evidence (one Range read).
HEAD_BYTES = 64 * 1024
#: The head is inflated to at most this many bytes (64 KiB of compressed zeros would give 64 MiB).
HEAD_MAX_OUTPUT = 16 * 1024 * 1024

_DEFLATE_MAX_RATIO = 1032  # deflate cannot expand 1 byte into more than ~1032 (RFC 1951 max match length)
_GZIP_MIN_OVERHEAD = 18  # 10-byte header + 8-byte trailer
_GZIP_HEADER_SLACK = 1024  # optional FNAME/FCOMMENT/FEXTRA fields we allow for without reading the header
# A stored deflate block adds 5 bytes; zlib writes them of ~16 KiB, Go's compress/gzip of 16–64 KiB.  Allowing
# blocks as small as 1 KiB keeps the true size of incompressible content inside the candidate range.
_MIN_STORED_BLOCK = 1024
_MAX_CANDIDATES = 16  # listed at most (a hostile descriptor size could make billions)
# The smallest candidate is accepted when the head's ratio explains it and the next one would need a ratio
# both above this floor and above _RATIO_SLACK times the head's.
_RATIO_FLOOR = 20
_RATIO_SLACK = 4
_2_32 = 1 << 32
# every tar stream is a whole number of 512-byte blocks; a size that is not cannot be the layer's
_TAR_BLOCK = 512
# zstd (RFC 8878 §3.1.1.2): a block regenerates at most Block_Maximum_Size = 128 KiB, and the cheapest block is
# an RLE block — a 3-byte header plus one byte — so a frame cannot expand past 128 KiB per 4 compressed bytes.
_ZSTD_MAX_BLOCK = 128 * 1024
_ZSTD_MIN_BLOCK_BYTES = 4
_ZSTD_MIN_FRAME_HEADER = 6  # magic (4) + frame header descriptor (1) + smallest window/FCS field (1)
_MULTI_MEMBER_ANNOTATIONS = (
    "containerd.io/snapshot/stargz/toc.digest",
    "io.containers.estargz.uncompressed-size",
    "io.github.containers.zstd-chunked.manifest-checksum",
    "io.github.containers.zstd-chunked.manifest-position",
)
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}\Z")


class SizeFacts(Protocol):
    """Where verified sizes are remembered (implemented by :class:`ociinspect.store.Store`)."""

    def get_uncompressed_size(self, diff_id: str) -> int | None: ...

    def put_uncompressed_size(self, diff_id: str, size: int) -> None: ...


# ------------------------------------------------------------------------------------------------- gzip


def _bounds(compressed: int) -> tuple[int, int]:
    """The uncompressed sizes one gzip member of ``compressed`` bytes can hold: ``[lower, upper]``."""
    payload = compressed - _GZIP_MIN_OVERHEAD - _GZIP_HEADER_SLACK
    lower = max(0, payload * (_MIN_STORED_BLOCK - 5) // _MIN_STORED_BLOCK)
    return lower, compressed * _DEFLATE_MAX_RATIO + 1024


def gzip_candidates(isize: int, compressed: int, *, floor: int = 0) -> tuple[int, ...]:
    """Every size ``isize + k·2^32`` (at least ``floor``) that one gzip member of ``compressed`` bytes can hold,
    smallest first, at most 16.  Cost: arithmetic only."""
    lower, upper = _bounds(compressed)
    lower = max(lower, floor)
    out: list[int] = []
    k = max(0, (lower - isize + _2_32 - 1) // _2_32)
    while isize + k * _2_32 <= upper and len(out) < _MAX_CANDIDATES:
        out.append(isize + k * _2_32)
        k += 1
    return tuple(out)


def resolve_isize(isize: int, compressed: int) -> tuple[int | None, str | None]:
    """The trailer alone: the smallest size consistent with ISIZE and the compressed size, and a note.

    ``size`` is ``None`` when no candidate fits one gzip member of ``compressed`` bytes (multi-member gzip, or a
    corrupt trailer).  The note says when more than one candidate fits — :func:`estimate` then decides with the
    blob's head (:func:`decide_gzip`) instead of taking the smallest.  Cost: arithmetic only.
    """
    candidates = gzip_candidates(isize, compressed)
    if not candidates:
        return None, "gzip trailer is inconsistent with the compressed size (multi-member gzip?)"
    size = candidates[0]
    note = None
    if size >= _2_32:
        note = "≥ 4 GiB: gzip ISIZE is mod 2^32, wrap count chosen from the compressed size"
    if len(candidates) > 1:
        note = (note + "; " if note else "") + f"ambiguous (could be {candidates[1]}): confirm with --exact"
    return size, note


@record
class GzipHead:
    """What inflating the first bytes of a gzip blob shows (see :func:`read_gzip_head`).

    ``consumed``: compressed bytes inflated; ``inflated``: bytes they gave (capped at :data:`HEAD_MAX_OUTPUT`);
    ``more_members``: the first member ended inside the head and non-padding data follows it;
    ``tar_min``: a lower bound on the tar size from the tar headers wholly inside the inflated bytes;
    ``whole``: the head was the whole blob, and ``inflated`` is the exact size of all its members;
    ``error``: the head could not be inflated (a corrupt blob).
    """

    consumed: int
    inflated: int
    more_members: bool = False
    tar_min: int = 0
    whole: bool = False
    error: str | None = None

    @property
    def ratio(self) -> float:
        """Uncompressed / compressed bytes of the head (0 when nothing was consumed)."""
        return self.inflated / self.consumed if self.consumed else 0.0


def _tar_lower_bound(data: bytes) -> int:
    """The smallest size a tar stream starting with ``data`` can have: the end of the data of the last entry
    whose header lies wholly inside ``data`` (a header declaring a 4.5 GiB file proves the tar is that large).
    Cost: parses the headers only — plain ones directly (:func:`~ociinspect.content.tarheader.plain_tar_bound`),
    anything else with :mod:`tarfile` (imported then, ~2 ms)."""
    plain = plain_tar_bound(data)
    if plain is not None:
        return plain
    import tarfile

    bound = 0
    try:
        with tarfile.open(fileobj=BytesIO(data), mode="r:") as tf:
            while True:
                member = tf.next()
                if member is None:
                    break
                end = member.offset_data + -(-max(member.size, 0) // _TAR_BLOCK) * _TAR_BLOCK
                bound = max(bound, end)
    except (tarfile.TarError, ValueError, OverflowError, EOFError, UnicodeError, OSError):
        pass  # the head ends inside a header, or is not a tar: what was read so far stands
    return bound


def read_gzip_head(data: bytes, *, whole: bool) -> GzipHead:
    """Inflate the first bytes of a gzip blob (``whole``: they are the entire blob) with a bounded output.

    A whole blob is inflated member after member to its exact size (≤ 64 KiB in gives ≤ 64 MiB out); otherwise
    only the first member, up to :data:`HEAD_MAX_OUTPUT` bytes.  Cost: CPU only, ≤ 16 MiB (64 MiB whole) of output.
    """
    out = BytesIO()
    consumed = 0
    total = 0
    members = 0
    buf = data
    cap = _DEFLATE_MAX_RATIO * len(data) + 1024 if whole else HEAD_MAX_OUTPUT
    try:
        while buf:
            d = zlib.decompressobj(31)
            piece = d.decompress(buf, max(1, cap - total))
            total += len(piece)
            if out.tell() < HEAD_MAX_OUTPUT:
                out.write(piece[: HEAD_MAX_OUTPUT - out.tell()])
            if not d.eof:
                consumed += len(buf) - len(d.unconsumed_tail)
                if whole and not d.unconsumed_tail:
                    return GzipHead(consumed, total, error="truncated gzip stream")
                break
            members += 1
            consumed += len(buf) - len(d.unused_data)
            buf = d.unused_data
            if not buf.strip(b"\0"):
                buf = b""  # trailing zero padding after the last member is tolerated
            elif not whole:
                return GzipHead(consumed, total, more_members=True, tar_min=_tar_lower_bound(out.getvalue()))
    except zlib.error as exc:
        return GzipHead(consumed, total, error=f"corrupt gzip stream ({exc})")
    is_whole = whole and not buf
    return GzipHead(
        consumed,
        total,
        more_members=members > 1,
        # the bound only matters when the inflated bytes are not the whole blob (decide_gzip): a small layer
        # read whole skips the walk through its tar headers
        tar_min=0 if is_whole else _tar_lower_bound(out.getvalue()),
        whole=is_whole,
    )


def _ratio(n: float) -> str:
    return f"{n:.0f}:1" if n >= 10 else f"{n:.1f}:1"


def trailer_doubt(isize: int, compressed: int) -> str | None:
    """Why the trailer alone cannot be the layer's size (``None``: it may be).  Cost: arithmetic only."""
    if isize % _TAR_BLOCK:
        return "gzip trailer is not a whole tar (multi-member gzip?)"
    if not gzip_candidates(isize, compressed):
        return "gzip trailer is inconsistent with the compressed size (multi-member gzip?)"
    return None


def decide_gzip(isize: int, compressed: int, head: GzipHead) -> tuple[SizeEstimate | None, str]:
    """Decide a gzip layer's size from its trailer (``isize``), compressed size and inflated head.

    Returns ``(estimate, why)``: an exact ``trailer`` figure, an ``ambiguous`` unknown listing the candidates, or
    ``None`` when the trailer cannot describe the whole blob (multi-member or corrupt: stream it or say unknown,
    for the reason ``why``).  The rule (docs/sizes.md): the candidates are the sizes one member can hold, less
    those below the tar headers' bound; one left is the size; of several, the smallest is taken only when the
    head's ratio r explains it (≤ 4·max(r, 1)) and the next would need a ratio above max(4·r, 20).
    Cost: arithmetic only.
    """
    why = trailer_doubt(isize, compressed)
    if why:
        return None, why
    if head.error:
        return None, head.error
    if head.more_members:
        return None, "multi-member gzip: the trailer describes the last member only"
    physical = gzip_candidates(isize, compressed)
    if head.whole:
        if head.inflated in physical:
            return SizeEstimate(head.inflated, "trailer"), ""
        return None, "gzip trailer disagrees with the inflated blob (corrupt?)"
    left = gzip_candidates(isize, compressed, floor=head.tar_min)
    if not left:
        return None, "gzip trailer is smaller than the tar headers declare (multi-member gzip?)"
    r = head.ratio
    explained = _RATIO_SLACK * max(r, 1.0) * compressed
    c0 = left[0]
    wrapped = "≥ 4 GiB: gzip ISIZE is mod 2^32"
    if len(left) == 1:
        if c0 < _2_32:
            return SizeEstimate(c0, "trailer"), ""
        if len(physical) > 1:
            return SizeEstimate(
                c0, "trailer", f"{wrapped}; the tar headers in the head rule out the smaller sizes"
            ), ""
        if c0 <= explained:
            return SizeEstimate(
                c0, "trailer", f"{wrapped}; the only size one member of this size can hold"
            ), ""
        return None, (
            f"the only size the gzip trailer allows ({c0}) needs a ratio of {_ratio(c0 / compressed)}, "
            f"but the head compresses {_ratio(r)}"
        )
    c1 = left[1]
    if c0 <= explained and c1 > max(_RATIO_SLACK * r, _RATIO_FLOOR) * compressed:
        note = None
        if c0 >= _2_32:
            note = (
                f"{wrapped}; the head compresses {_ratio(r)}, the next size ({c1}) would need "
                f"{_ratio(c1 / compressed)}"
            )
        return SizeEstimate(c0, "trailer", note), ""
    shown = ", ".join(str(c) for c in left[:4]) + (", …" if len(left) > 4 else "")
    return (
        SizeEstimate(
            None,
            "unknown",
            f"ambiguous: as one gzip member it holds {shown} bytes (head compresses {_ratio(r)}); "
            "confirm with --exact",
            left,
        ),
        "",
    )


# ------------------------------------------------------------------------------------------------- zstd


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


def zstd_max_content_size(compressed: int) -> int:
    """The most a zstd frame of ``compressed`` bytes can regenerate: 128 KiB per 4-byte RLE block (RFC 8878).
    Cost: arithmetic only."""
    return max(0, compressed - _ZSTD_MIN_FRAME_HEADER) // _ZSTD_MIN_BLOCK_BYTES * _ZSTD_MAX_BLOCK


# ------------------------------------------------------------------------------------------------- streaming


def stream_size(
    source: Source,
    layer: Descriptor,
    *,
    diff_id: str | None,
    max_output: int | None = None,
    store: SizeFacts | None = None,
) -> int:
    """Stream a layer, verify its digest (and ``diff_id`` when given) and return its uncompressed size.

    The size is remembered in ``store`` under the sha256 of the uncompressed content (the diff_id).
    Cost: downloads/reads the whole blob and inflates it; memory is one chunk.
    """
    what = f"layer {layer.digest}"
    total = 0
    h = new_hash("sha256")  # (the uncompressed size is not known: OpenSSL's)
    with source.open_blob(layer.digest, size=layer.size) as chunks:
        for piece in compression.decompress(chunks, what=what, max_output=max_output):
            total += len(piece)
            h.update(piece)
    computed = f"sha256:{h.hexdigest()}"
    if diff_id and diff_id.startswith("sha256:") and computed != diff_id:
        raise DigestMismatch(
            f"{what}: uncompressed content is {computed}, but the config's diff_id is {diff_id}",
            hint="the image is corrupt or its config does not belong to these layers",
        )
    if store is not None:
        store.put_uncompressed_size(computed, total)
    return total


def _remembered(store: SizeFacts | None, diff_id: str | None, why: str) -> SizeEstimate | None:
    """The size ``store`` remembers for ``diff_id`` (cost: one local read), as a ``store`` figure."""
    if store is None or not diff_id or not _SHA256.match(diff_id):
        return None
    known = store.get_uncompressed_size(diff_id)
    if known is None:
        return None
    return SizeEstimate(
        known, "store", f"{why}; size from the store (an earlier verified stream of this diff_id)"
    )


def _untrusted(
    source: Source,
    layer: Descriptor,
    diff_id: str | None,
    mode: SizeMode,
    why: str,
    max_output: int | None,
    store: SizeFacts | None,
) -> SizeEstimate:
    if mode == "exact":
        return SizeEstimate(
            stream_size(source, layer, diff_id=diff_id, max_output=max_output, store=store), "streamed", why
        )
    remembered = _remembered(store, diff_id, why) if mode == "cheap" else None
    if remembered is not None:
        return remembered
    if mode == "cheap" and layer.size <= CHEAP_STREAM_BYTES:
        cap = CHEAP_STREAM_MAX_OUTPUT if max_output is None else min(max_output, CHEAP_STREAM_MAX_OUTPUT)
        try:
            return SizeEstimate(
                stream_size(source, layer, diff_id=diff_id, max_output=cap, store=store), "streamed", why
            )
        except LimitExceeded:
            if cap != CHEAP_STREAM_MAX_OUTPUT:
                raise  # the caller's own cap
            return SizeEstimate(
                None, "unknown", f"{why}; inflates past {cap} bytes: use --exact to stream it"
            )
    return SizeEstimate(None, "unknown", f"{why}; use --exact to stream it")


_AHEAD_WORKERS = 16
_ahead_pool: threads.Pool | None = None
_ahead_lock = threading.Lock()


def _read_ahead(source: Source, digest: str, start: int, end: int) -> Callable[[], bytes]:
    """Start ``source.blob_range(digest, start, end)`` and return what waits for its bytes (raising what the
    read raised).  A registry's range read goes out at once on a small shared thread pool, so a gzip layer's
    head and trailer requests wait on the network together (one round trip, not two); a local source reads when
    asked (a seek and a read: a thread would cost more).  Cost: the one read, not repeated; when the trailer
    alone rules the cheap figure out, the registry's head read (≤ 64 KiB) was made for nothing."""
    if source.kind != "registry":
        return lambda: source.blob_range(digest, start, end)
    global _ahead_pool
    with _ahead_lock:
        if _ahead_pool is None:
            # lives as long as the process: daemon threads, never shut down
            _ahead_pool = threads.Pool(_AHEAD_WORKERS, "ociinspect-range", daemon=True)
        future = _ahead_pool.submit(source.blob_range, digest, start, end)
    return future.result


def _gzip(source: Source, layer: Descriptor) -> Evidence:
    size = layer.size
    if size < _GZIP_MIN_OVERHEAD:
        return Evidence(None, "blob too small to be gzip")
    if size <= HEAD_BYTES:
        data = source.blob_range(layer.digest, 0, size - 1)
        tail, head = data[-8:], read_gzip_head(data, whole=True)
    else:
        head_bytes = _read_ahead(source, layer.digest, 0, HEAD_BYTES - 1)  # in flight with the trailer's
        try:
            tail = source.blob_range(layer.digest, size - 8, size - 1)
        except BaseException:
            with contextlib.suppress(Exception):
                head_bytes()  # no request outlives the call that made it
            raise
        why = trailer_doubt(int.from_bytes(tail[4:8], "little"), size) if len(tail) == 8 else None
        if why:  # no need for the head (from a registry it was read anyway, at once with the trailer)
            return Evidence(None, why)
        head = read_gzip_head(head_bytes(), whole=False)
    if len(tail) != 8:
        return Evidence(None, "short read of the gzip trailer")
    result, why = decide_gzip(int.from_bytes(tail[4:8], "little"), size, head)
    return Evidence(result, why)


@record
class Evidence:
    """What a layer's cheap evidence (its gzip trailer and head, its zstd frame header, its media type) says on
    its own, before the image config is known: ``estimate`` is the figure when the evidence decides it (an
    ambiguous one included), ``None`` when it is not trusted, for the reason ``why``.  It depends only on the
    layer's descriptor (digest, size, media type, annotations), never on the diff_id, the store or a cap: those
    decide only what happens to an untrusted or ambiguous figure (:func:`estimate`)."""

    estimate: SizeEstimate | None
    why: str = ""

    @property
    def final(self) -> bool:
        """The figure stands whatever the diff_id, store or cap (trusted and not ambiguous)."""
        return self.estimate is not None and not self.estimate.ambiguous


def _evidence_key(layer: Descriptor) -> tuple[object, ...]:
    return (
        "size-evidence",
        layer.digest,
        layer.size,
        layer.media_type,
        any(k in layer.annotations for k in _MULTI_MEMBER_ANNOTATIONS),
    )


def read_evidence(source: Source, layer: Descriptor) -> Evidence:
    """Read the cheap size evidence of ``layer`` (the reads of ``mode="cheap"``, nothing else) — what
    :func:`estimate` reads first, so a caller can read it before the image config (and its diff_ids) is known
    and pass it to :func:`estimate` as ``evidence``.  Remembered per session by a source that remembers
    derived figures (``remember_derived``), keyed by the layer's digest, size, media type and multi-member
    annotations.  Cost: at most 2 Range reads of ≤ 64 KiB + 8 bytes (gzip) or 1 of 18 bytes (zstd); none for a
    plain tar, a non-layer or an eStargz/zstd:chunked layer; none when remembered.  Raises what the reads raise
    (a refused Range request is evidence: not trusted)."""
    remember = getattr(source, "remember_derived", None)
    if remember is None:
        return _read_evidence(source, layer)
    found: Evidence = remember(_evidence_key(layer), lambda: _read_evidence(source, layer))
    return found


def _read_evidence(source: Source, layer: Descriptor) -> Evidence:
    kind = mediatypes.compression_of(layer.media_type)
    if not mediatypes.is_layer(layer.media_type):
        return Evidence(SizeEstimate(None, "unknown", "not a filesystem layer"))
    if kind == "none":
        return Evidence(SizeEstimate(layer.size, "exact"))
    if any(k in layer.annotations for k in _MULTI_MEMBER_ANNOTATIONS):
        return Evidence(None, "eStargz/zstd:chunked layer (many members)")
    try:
        if kind == "gzip":
            return _gzip(source, layer)
        if kind == "zstd":
            fcs = zstd_content_size(source.blob_range(layer.digest, 0, min(layer.size, 18) - 1))
            if fcs is None:
                return Evidence(None, "zstd frame header has no content size")
            if fcs > zstd_max_content_size(layer.size):
                return Evidence(
                    None,
                    f"zstd frame header claims {fcs} bytes, more than {layer.size} compressed bytes can hold",
                )
            if fcs % _TAR_BLOCK or fcs + 64 < layer.size - layer.size // 1000:
                return Evidence(None, "zstd header inconsistent (several frames?)")
            return Evidence(SizeEstimate(fcs, "header"))
    except RangeNotSupported:
        return Evidence(None, "the registry refused a Range request")
    return Evidence(SizeEstimate(None, "unknown", f"unknown layer compression ({layer.media_type})"))


def estimate(
    source: Source,
    layer: Descriptor,
    *,
    diff_id: str | None = None,
    mode: SizeMode = "cheap",
    max_output: int | None = None,
    store: SizeFacts | None = None,
    evidence: Evidence | None = None,
) -> SizeEstimate:
    """The uncompressed size of ``layer`` by the cheapest trustworthy method (see the module table).

    ``mode="exact"`` always streams (and verifies digest and diff_id); ``"none"`` makes no request at all.
    ``store``: streamed sizes are remembered by diff_id, and a remembered size stands in (source ``store``) where
    the cheap evidence is inconclusive — before streaming or saying unknown.  It is not consulted first, so an
    ordinary layer's figure says ``trailer``/``header`` whatever the machine streamed before.
    ``evidence`` (``"cheap"`` only): what :func:`read_evidence` read for this layer, so that it is not read
    again (the loader reads it while the config is fetched).

    A source that remembers derived figures (a session's registry source: ``remember_derived(key, compute)``)
    is asked for the evidence by the layer's descriptor (:func:`read_evidence`) and, when the evidence does not
    decide alone, for the figure by every input that decides it — the layer's digest, size, media type and
    multi-member annotations, the diff_id, ``max_output``, whether there is a store — so many images sharing a
    layer decide its size once per session (the same rules, the same answer).
    Cost: that of :func:`read_evidence` (none when ``evidence`` is given), + a stream of the blob when the
    evidence is not trusted and the blob is small (≤ 1 MiB) or ``mode="exact"``.
    """
    if mode != "cheap":
        return _estimate(source, layer, diff_id, mode, max_output, store)
    found = evidence if evidence is not None else read_evidence(source, layer)
    if found.final:
        assert found.estimate is not None
        return found.estimate
    remember = getattr(source, "remember_derived", None)
    if remember is None:
        return _settle(source, layer, found, diff_id, max_output, store)
    key = (
        "size",
        layer.digest,
        layer.size,
        layer.media_type,
        any(k in layer.annotations for k in _MULTI_MEMBER_ANNOTATIONS),
        diff_id,
        max_output,
        store is not None,
    )
    estimated: SizeEstimate = remember(key, lambda: _settle(source, layer, found, diff_id, max_output, store))
    return estimated


def _settle(
    source: Source,
    layer: Descriptor,
    evidence: Evidence,
    diff_id: str | None,
    max_output: int | None,
    store: SizeFacts | None,
) -> SizeEstimate:
    """The cheap figure of evidence that does not decide alone: an ambiguous gzip figure is replaced by the one
    the store remembers for ``diff_id``; an untrusted one is streamed when cheap, else unknown."""
    if evidence.estimate is not None:  # ambiguous
        return _remembered(store, diff_id, "gzip trailer ambiguous") or evidence.estimate
    return _untrusted(source, layer, diff_id, "cheap", evidence.why, max_output, store)


def _estimate(
    source: Source,
    layer: Descriptor,
    diff_id: str | None,
    mode: SizeMode,
    max_output: int | None,
    store: SizeFacts | None,
) -> SizeEstimate:
    """``mode`` ``"exact"`` or ``"none"``."""
    if not mediatypes.is_layer(layer.media_type):
        return SizeEstimate(None, "unknown", "not a filesystem layer")
    if mode == "exact":
        return SizeEstimate(
            stream_size(source, layer, diff_id=diff_id, max_output=max_output, store=store), "streamed"
        )
    if mediatypes.compression_of(layer.media_type) == "none":
        return SizeEstimate(layer.size, "exact")
    return SizeEstimate(None, "unknown", "size lookups disabled")
