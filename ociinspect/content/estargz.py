"""eStargz: a layer's file index from its table of contents, read with Range requests (no layer download).

An eStargz blob (containerd/stargz-snapshotter, ``estargz/types.go``) is a gzip tar whose every file sits in its
own gzip member(s), followed by a gzip member holding a tar entry ``stargz.index.json`` (the TOC, a JSON list
of the tar entries) and a footer: an empty gzip member whose Extra field records the TOC's offset.

* eStargz footer, 51 bytes: 10-byte gzip header (FLG.FEXTRA), XLEN = 26, subfield ``SG`` of 22 bytes holding
  ``"%016xSTARGZ"`` (the hex offset of the TOC member), a 5-byte empty stored block, the 8-byte gzip trailer.
* legacy stargz footer, 47 bytes: the same without the ``SG`` subfield header (XLEN = 22).

The TOC's sha256 (of the JSON bytes) is the layer annotation ``containerd.io/snapshot/stargz/toc.digest``; it is
verified, so the index is as trustworthy as the manifest that carries the annotation.  It is *not* checked
against the layer's bytes (that would need the download this module avoids); ``--no-estargz`` streams instead.

The TOC entry sits after the tar end-of-archive blocks, so tar readers (Docker, dive, our stream scanner)
never see ``stargz.index.json``; the TOC does not list itself.  Landmark files that eStargz builders may add
(``.prefetch.landmark``, ``.no.prefetch.landmark``: one byte each) are ordinary tar entries and appear in both
indexes alike.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ociinspect.content import compression
from ociinspect.errors import DigestMismatch, InvalidImage, LimitExceeded, RangeNotSupported
from ociinspect.model.entries import TAR_ERRORS
from ociinspect.model.logs import get_logger
from ociinspect.model.textsafe import parse_uint

if TYPE_CHECKING:
    from ociinspect.model.entries import LayerScan
    from ociinspect.model.image import Descriptor
    from ociinspect.sources.base import Source

__all__ = [
    "FOOTER_SIZE",
    "LEGACY_FOOTER_SIZE",
    "TOC_DIGEST_ANNOTATION",
    "UNCOMPRESSED_SIZE_ANNOTATION",
    "TOCUnavailable",
    "is_estargz",
    "parse_footer",
    "parse_toc",
    "scan_toc",
]

log = get_logger(__name__)

TOC_DIGEST_ANNOTATION = "containerd.io/snapshot/stargz/toc.digest"
UNCOMPRESSED_SIZE_ANNOTATION = "io.containers.estargz.uncompressed-size"
TOC_TAR_NAME = "stargz.index.json"
FOOTER_SIZE = 51
LEGACY_FOOTER_SIZE = 47
#: Caps on the TOC, checked before a byte is allocated (compressed size claimed by the footer) and while
#: inflating (stopped as soon as a cap is passed, before the digest is checked).  The absolute cap is the one
#: containers/storage applies to eStargz and zstd:chunked TOCs (``maxTocSize = (1 << 20) * 150`` in
#: pkg/chunked/compression_linux.go: "to prevent DoS attacks from layers that embed a very large TOC file");
#: stargz-snapshotter itself documents no cap.  A real TOC is JSON with two sha256 hex digests per file and
#: inflates about 3-6:1, so more than MAX_TOC_RATIO:1 (beyond the first MAX_TOC_FLOOR bytes) is a bomb.
MAX_TOC_COMPRESSED = 150 << 20
MAX_TOC_JSON = 150 << 20
MAX_TOC_RATIO = 100
MAX_TOC_FLOOR = 1 << 20

_FOOTER_RE = re.compile(rb"^([0-9a-f]{16})STARGZ$")
_TYPEFLAGS = {
    "reg": "0",
    "hardlink": "1",
    "symlink": "2",
    "char": "3",
    "block": "4",
    "dir": "5",
    "fifo": "6",
}


class TOCUnavailable(Exception):
    """The TOC could not be read cheaply (no footer, Range refused): callers stream the layer instead."""


def is_estargz(descriptor: Descriptor) -> bool:
    """True when the layer carries the eStargz TOC digest annotation (cost: a dict lookup)."""
    return TOC_DIGEST_ANNOTATION in descriptor.annotations


def parse_footer(tail: bytes) -> tuple[int, int]:
    """``(toc_offset, footer_size)`` from the last 51 (or more) bytes of a blob; ``ValueError`` when neither an
    eStargz nor a legacy stargz footer is there.  Cost: byte comparisons."""
    if len(tail) >= FOOTER_SIZE:
        f = tail[-FOOTER_SIZE:]
        if (
            f[:4] == b"\x1f\x8b\x08\x04"
            and int.from_bytes(f[10:12], "little") == 26
            and f[12:14] == b"SG"
            and int.from_bytes(f[14:16], "little") == 22
        ):
            m = _FOOTER_RE.match(f[16:38])
            if m:
                return int(m.group(1), 16), FOOTER_SIZE
    if len(tail) >= LEGACY_FOOTER_SIZE:
        f = tail[-LEGACY_FOOTER_SIZE:]
        if f[:4] == b"\x1f\x8b\x08\x04" and int.from_bytes(f[10:12], "little") == 22:
            m = _FOOTER_RE.match(f[12:34])
            if m:
                return int(m.group(1), 16), LEGACY_FOOTER_SIZE
    raise ValueError("no eStargz footer")


def toc_inflate_cap(compressed: int) -> int:
    """Most bytes a TOC member of ``compressed`` bytes may inflate to (see :data:`MAX_TOC_RATIO`)."""
    return min(MAX_TOC_JSON, max(MAX_TOC_FLOOR, MAX_TOC_RATIO * compressed))


def _toc_json(member: bytes, what: str) -> bytes:
    """The JSON bytes inside the TOC's gzip member (a tar holding ``stargz.index.json``).

    Inflates at most :func:`toc_inflate_cap` bytes (memory: that much); beyond, :class:`TOCUnavailable`."""
    import io
    import tarfile

    cap = toc_inflate_cap(len(member))
    try:
        raw = b"".join(compression.decompress([member], what=f"{what}: eStargz TOC", max_output=cap))
    except LimitExceeded:
        raise TOCUnavailable(
            f"the eStargz TOC of {len(member)} compressed bytes inflates to more than {cap} bytes (a TOC "
            f"bomb or a broken layer); its digest is not checked"
        ) from None
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tf:
            ti = tf.next()
            if ti is None or ti.name.lstrip("./") != TOC_TAR_NAME or not ti.isreg():
                raise InvalidImage(f"{what}: the eStargz TOC member does not hold {TOC_TAR_NAME}")
            f = tf.extractfile(ti)
            assert f is not None
            return f.read()
    except TAR_ERRORS as exc:  # a hostile header raises ValueError too
        raise InvalidImage(f"{what}: the eStargz TOC is not a valid tar ({exc})") from None


def parse_toc(data: bytes, what: str) -> tuple[list[Any], list[str]]:
    """Entries of a TOC JSON document → ``(list of scan.Entry, warnings)``; ``chunk`` entries (continuations of
    large files) are folded into their file.  Cost: one JSON parse."""
    from ociinspect.model.entries import make_entry, normalise_path

    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InvalidImage(f"{what}: the eStargz TOC is not valid JSON ({exc})") from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("entries"), list):
        raise InvalidImage(f"{what}: the eStargz TOC has no entries list")
    entries = []
    absolute = 0
    for e in doc["entries"]:
        if not isinstance(e, Mapping):
            raise InvalidImage(f"{what}: an eStargz TOC entry is not an object")
        kind = e.get("type")
        if kind == "chunk":
            continue
        typeflag = _TYPEFLAGS.get(kind) if isinstance(kind, str) else None
        name = e.get("name")
        if typeflag is None or not isinstance(name, str):
            raise InvalidImage(f"{what}: eStargz TOC entry {str(name)[:80]!r} has type {kind!r}")
        path, was_absolute, escapes = normalise_path(name)
        linkname = e.get("linkName") or ""
        if not isinstance(linkname, str):
            raise InvalidImage(f"{what}: eStargz TOC entry {name!r} has an invalid linkName")
        if escapes or (typeflag == "1" and normalise_path(linkname)[2]):
            raise InvalidImage(
                f"{what}: entry {name!r} points outside the image root",
                hint="Docker refuses to extract such a layer (path breakout); rebuild it with a sane tar",
            )
        if not path:
            continue
        absolute += was_absolute
        size = _int(e.get("size"), what, name) if typeflag == "0" else 0
        sha = None
        dig = e.get("digest")
        if typeflag == "0":
            if isinstance(dig, str) and dig.startswith("sha256:") and len(dig) == 71:
                sha = dig[7:]
            elif size == 0:
                sha = hashlib.sha256(b"").hexdigest()
        entries.append(
            make_entry(
                path,
                typeflag,
                size,
                _int(e.get("mode"), what, name),
                _int(e.get("uid"), what, name),
                _int(e.get("gid"), what, name),
                linkname,
                sha,
            )
        )
    warnings = []
    if absolute:
        warnings.append(
            f"{absolute} TOC entr{'y' if absolute == 1 else 'ies'} with an absolute path, read relative to the root"
        )
    return entries, warnings


def _int(value: Any, what: str, name: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidImage(f"{what}: eStargz TOC entry {name!r} has an invalid number {value!r}")
    return value


def scan_toc(source: Source, layer: Descriptor, *, what: str) -> LayerScan:
    """Index an eStargz layer from its TOC.

    Cost: two Range reads — the last 51 bytes, then the TOC member (typically a few KiB to a few MiB, at most
    :data:`MAX_TOC_COMPRESSED`); nothing else of the layer is read; memory: the member plus at most
    :func:`toc_inflate_cap` bytes inflated.  Raises :class:`TOCUnavailable` when the source cannot serve ranges,
    the blob has no footer, or the footer or the TOC make an implausible claim (outside the blob, over a cap):
    the caller then streams the layer, which verifies it.  :class:`DigestMismatch` when the TOC does not match
    the annotation.
    """
    from ociinspect.model.entries import LayerScan

    expected = layer.annotations[TOC_DIGEST_ANNOTATION]
    size = layer.size
    if size < FOOTER_SIZE:
        raise TOCUnavailable(f"{size}-byte blob is too small for an eStargz footer")
    try:
        tail = source.blob_range(layer.digest, size - FOOTER_SIZE, size - 1)
    except RangeNotSupported as exc:
        raise TOCUnavailable(str(exc)) from None
    try:
        toc_offset, footer_size = parse_footer(tail)
    except ValueError:
        raise TOCUnavailable("annotated as eStargz but has no eStargz footer") from None
    toc_end = size - footer_size  # exclusive
    if not 0 <= toc_offset < toc_end:
        raise TOCUnavailable(f"the eStargz footer points outside the blob (offset {toc_offset})")
    if toc_end - toc_offset > MAX_TOC_COMPRESSED:
        raise TOCUnavailable(
            f"the eStargz footer claims a TOC of {toc_end - toc_offset} compressed bytes (over the cap of "
            f"{MAX_TOC_COMPRESSED})"
        )
    try:
        member = source.blob_range(layer.digest, toc_offset, toc_end - 1)
    except RangeNotSupported as exc:
        raise TOCUnavailable(str(exc)) from None
    data = _toc_json(member, what)
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise DigestMismatch(
            f"{what}: eStargz TOC digest is {actual}, the annotation says {expected}",
            hint="the layer or its manifest was altered; use --no-estargz to stream and verify the layer",
        )
    entries, warnings = parse_toc(data, what)
    unc = layer.annotations.get(UNCOMPRESSED_SIZE_ANNOTATION)
    return LayerScan(
        digest=layer.digest,
        entries=tuple(entries),
        index_source="estargz-toc",
        hashed=all(e.sha256 is not None for e in entries if e.is_regular),
        diff_id=None,
        uncompressed_size=parse_uint(unc),  # ASCII digits only; anything else: not known
        warnings=tuple(warnings),
    )
