"""Layer scanner: stream each layer once and index its tar entries, never writing the image to disk.

A layer blob is read from any :class:`~ociinspect.sources.base.Source` (``open_blob``: the source verifies the
blob digest when the stream ends), inflated by :func:`ociinspect.content.compression.decompress` (gzip via isal, zstd,
plain tar; bounded by ``max_uncompressed``), hashed on the way (the diff_id is checked against the config) and
indexed by a direct 512-byte header walker for plain ustar/GNU/PAX headers; from the first header it does not
handle (sparse files, global PAX headers, base-256 numbers, odd checksums) :mod:`tarfile` reads the rest, with
the same entries and errors.  Each layer takes two threads (read, verify and inflate; hash and index): isal's
inflate and sha256 release the GIL.  Memory is a few 256 KiB pieces per layer in flight plus the entry list;
nothing is extracted.

eStargz layers (``containerd.io/snapshot/stargz/toc.digest`` annotation) are indexed from their table of
contents instead, read with two Range requests (footer, then TOC) and verified against the annotation — see
:mod:`ociinspect.content.estargz`.

Path rules (documented in ``docs/waste.md``): entry names are normalised (no leading ``./`` or ``/``, no
trailing ``/``, ``.`` components and doubled slashes removed).  An *absolute* name (``/etc/passwd``) is read
relative to the root, as Docker and containerd extract it, and reported in the scan's warnings.  A name or a
hardlink target that climbs *out* of the root (``../x``, ``a/../../x``) is an error
(:class:`~ociinspect.errors.InvalidImage`): Docker refuses to extract such a layer ("breakout").

Whiteouts are kept as entries (``.wh.NAME`` removes ``NAME`` of the layers below, ``.wh..wh..opq`` makes its
directory opaque); :mod:`ociinspect.analyzers.waste` applies them.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import sys
import tarfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

from ociinspect import threads
from ociinspect.content import compression
from ociinspect.content.tarheader import numbers, octal, unsigned_checksum
from ociinspect.errors import DigestMismatch, InvalidImage, LimitExceeded, OciInspectError
from ociinspect.model import digest as _digest
from ociinspect.model.entries import (
    TAR_ERRORS,
    Entry,
    EntryTable,
    LayerScan,
    clean_text,
    normalise_path,
    whiteout_kind,
)
from ociinspect.model.logs import get_logger
from ociinspect.model.record import record

if TYPE_CHECKING:
    from ociinspect.model.image import Image, Layer
    from ociinspect.sources.base import Source

__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "DEFAULT_MAX_UNCOMPRESSED",
    "ScanCache",
    "ScanOptions",
    "read_files",
    "scan_image",
    "scan_layer",
    "scan_tar_stream",
]

log = get_logger(__name__)


#: Default cap on one layer's uncompressed bytes (``--max-uncompressed``): 64 GiB.
DEFAULT_MAX_UNCOMPRESSED = 64 << 30
#: Default cap on entries per layer: an index of five million entries needs about 1.5 GiB of memory.
DEFAULT_MAX_ENTRIES = 5_000_000
#: Largest single read tarfile may ask for (PAX / GNU long-name headers are read whole).
_MAX_HEADER_READ = 16 << 20
_BLOCK = 512
_ZERO_BLOCK = bytes(_BLOCK)


@record
class ScanOptions:
    """How to scan.  ``hash_files``: sha256 of every regular file's content (one more hash pass over the
    uncompressed bytes).  ``max_uncompressed``: bytes per layer before :class:`LimitExceeded` (``None``: no cap).
    ``use_estargz_toc``: index eStargz layers from their TOC (two Range reads) instead of streaming them.
    ``workers``: layers scanned in parallel (threads).  ``pipeline``: each streamed layer takes two threads
    (reading and inflating in one, hashing and indexing in the other)."""

    hash_files: bool = False
    max_uncompressed: int | None = DEFAULT_MAX_UNCOMPRESSED
    max_entries: int = DEFAULT_MAX_ENTRIES
    use_estargz_toc: bool = True
    workers: int = 4
    pipeline: bool = True


class ScanCache(Protocol):
    """What :func:`scan_image` needs from a cache (implemented by :class:`ociinspect.store.Store`)."""

    def get_scan(self, digest: str, *, need_hash: bool, allow_toc: bool) -> LayerScan | None: ...

    def put_scan(self, scan: LayerScan) -> None: ...


# ------------------------------------------------------------------------------------------------ tar stream


class _ForwardReader:
    """A forward-only file object over an iterator of byte chunks, for :class:`tarfile.TarFile`.

    Every byte pulled from the iterator is hashed (sha256: the diff_id) and counted.  ``seek`` only moves
    forward (skipping is reading); ``read`` of more than 16 MiB at once is refused (tarfile reads PAX and GNU
    long-name headers whole, so a hostile header cannot make us allocate gigabytes).

    Why not ``tarfile.open(mode="r|")``: its ``_Stream`` re-copies the rest of its buffer on every 512-byte
    header read, which is quadratic with large buffers and slow with small ones; this reader keeps the single
    forward pass and slices chunks without copying them more than once.
    """

    def __init__(self, chunks: Iterator[bytes], what: str, *, hashing: bool = True) -> None:
        self._it = chunks
        self._hashing = hashing
        self._buf = b""
        self._off = 0
        self._pos = 0
        self.what = what
        self.hasher = _digest.new_hash("sha256")
        self.total = 0
        self.last_block_pos = -1
        self.last_block = b""

    def _next_chunk(self) -> bytes | None:
        """The next non-empty chunk of the stream, hashed and counted (``None`` at the end)."""
        for chunk in self._it:
            if chunk:
                if self._hashing:
                    self.hasher.update(chunk)
                self.total += len(chunk)
                return chunk
        return None

    def _fill(self) -> bool:
        chunk = self._next_chunk()
        self._buf = chunk if chunk is not None else b""
        self._off = 0
        return chunk is not None

    def peek(self, size: int) -> bytes:
        """The next ``size`` bytes (fewer at the end of the stream) without moving forward.  Cost: a slice;
        a join of the buffered rest with the next chunk(s) when ``size`` crosses a chunk boundary."""
        off = self._off
        if len(self._buf) - off < size:
            pieces = [self._buf[off:]]
            have = len(pieces[0])
            while have < size:
                chunk = self._next_chunk()
                if chunk is None:
                    break
                pieces.append(chunk)
                have += len(chunk)
            self._buf = b"".join(pieces)
            self._off = off = 0
        return self._buf[off : off + size]

    def tell(self) -> int:
        return self._pos

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            raise InvalidImage(f"{self.what}: unbounded read of the tar stream")
        if size > _MAX_HEADER_READ:
            raise LimitExceeded(
                f"{self.what}: a tar header asks for {size} bytes (over {_MAX_HEADER_READ})",
                hint="the layer is corrupt or hostile",
            )
        start = self._pos
        avail = len(self._buf) - self._off
        if size <= avail:
            data = self._buf[self._off : self._off + size]
            self._off += size
        else:
            parts = [self._buf[self._off :]] if avail else []
            need = size - avail
            while need > 0 and self._fill():
                take = min(need, len(self._buf))
                parts.append(self._buf[:take])
                self._off = take
                need -= take
            data = b"".join(parts)
        self._pos += len(data)
        if size == _BLOCK:
            self.last_block_pos, self.last_block = start, data
        return data

    def skip(self, count: int, sink: Callable[[memoryview], object] | None = None) -> int:
        """Move ``count`` bytes forward, feeding them to ``sink`` (e.g. a hasher's update) without copies."""
        left = count
        while left > 0:
            avail = len(self._buf) - self._off
            if avail == 0:
                if not self._fill():
                    break
                continue
            take = min(left, avail)
            if sink is not None:
                sink(memoryview(self._buf)[self._off : self._off + take])
            self._off += take
            left -= take
        moved = count - left
        self._pos += moved
        return moved

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence != 0 or pos < self._pos:
            raise InvalidImage(f"{self.what}: the tar stream would have to be read backwards")
        self.skip(pos - self._pos)
        return self._pos

    def drain(self) -> None:
        """Read (and hash) everything left: the source verifies the blob digest only at the very end."""
        self._off = len(self._buf)
        while self._fill():
            self._off = len(self._buf)


def _needs_normalising(name: str) -> bool:
    """False when :func:`normalise_path` would return ``name`` itself (relative, no empty, ``.`` or ``..``
    component).  Cost: a few substring tests (most names in a layer take this path)."""
    return (
        not name
        or name[0] == "/"
        or name[-1] == "/"
        or "//" in name
        or (name[0] == "." and (len(name) == 1 or name[1] in "./"))
        or ("/." in name and ("/./" in name or "/../" in name or name.endswith(("/.", "/.."))))
    )


def _entry_from(ti: tarfile.TarInfo | _Member, what: str, absolute: list[str]) -> Entry | None:
    name = clean_text(ti.name)
    if _needs_normalising(name):
        path, was_absolute, escapes = normalise_path(name)
    else:  # already clean: normalise_path would return it unchanged
        path, was_absolute, escapes = name, False, False
    if escapes:
        raise InvalidImage(
            f"{what}: entry {name!r} points outside the image root",
            hint="Docker refuses to extract such a layer (path breakout); rebuild it with a sane tar",
        )
    if ti.size < 0:  # GNU base-256 can encode one; Go's archive/tar (Docker, dive) refuses it too
        raise InvalidImage(
            f"{what}: entry {name!r} has a negative size ({ti.size})", hint="the layer is corrupt or hostile"
        )
    if not path:
        return None  # the root directory itself ("./")
    if was_absolute:
        absolute.append(name)
    typeflag = ti.type.decode("latin-1") if ti.type else "0"
    if typeflag == "\0":
        typeflag = "0"
    linkname = clean_text(ti.linkname) if ti.linkname else ""
    if typeflag == "1":
        _, _, link_escapes = normalise_path(linkname)
        if link_escapes:
            raise InvalidImage(
                f"{what}: hardlink {name!r} points outside the image root ({linkname!r})",
                hint="Docker refuses to extract such a layer (path breakout); rebuild it with a sane tar",
            )
    return Entry(
        path,
        typeflag,
        int(ti.size),
        int(ti.mode),
        int(ti.uid),
        int(ti.gid),
        linkname,
        None,
        whiteout_kind(path) if ".wh." in path else "",  # the test first: most paths are not whiteouts
    )


def _members(reader: _ForwardReader, what: str) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    """The members of the tar ``reader`` delivers, with tarfile's errors translated and the end checked
    (a truncated or corrupt stream raises :class:`InvalidImage` naming ``what``).  Memory: one member."""
    start = reader.tell()  # > 0 when the direct walker hands the rest of the stream over
    try:
        try:
            tf = tarfile.TarFile(
                fileobj=cast(Any, reader), mode="r", encoding="utf-8", errors="surrogateescape"
            )
        except tarfile.ReadError as exc:
            if start > 0:
                raise
            if reader.total == 0:
                return  # an empty stream is an empty layer (Go's archive/tar agrees)
            raise InvalidImage(
                f"{what}: not a tar archive ({exc})",
                hint="the layer's content is not a tar stream (wrong media type or corrupt blob)",
            ) from None
        # no first member: the end (or a bad header :func:`_check_end` judges); asking tarfile again would
        # seek backwards when the archive was taken over mid-stream (:func:`_fast_members`)
        ti: tarfile.TarInfo | None = tf.next() if tf.firstmember is not None else None  # type: ignore[attr-defined]
        while ti is not None:
            tf.members.clear()  # type: ignore[attr-defined]  # ours is compact; tarfile's holds every TarInfo
            yield tf, ti
            ti = tf.next()
        _check_end(tf, reader, what)
    except EOFError:
        raise InvalidImage(
            f"{what}: truncated tar stream", hint="the blob is incomplete; fetch it again"
        ) from None
    except TAR_ERRORS as exc:  # tarfile's own, and the ValueError/OverflowError a hostile header raises
        raise InvalidImage(
            f"{what}: corrupt or truncated tar stream ({exc})", hint="the blob is damaged; fetch it again"
        ) from None


# Plain header types the direct walker reads itself: regular ("0", "\0", contiguous "7"), hardlink, symlink,
# char, block, directory, fifo.  Everything else (GNU sparse "S", PAX global "g", Solaris "X", unknown types,
# base-256 numbers, bad checksums, PAX records tarfile treats specially) goes to tarfile, from that header on.
_PLAIN_TYPES = frozenset(b"01234567\0")
_REGULAR_TYPES = frozenset(b"07\0")
_CHAIN_TYPES = frozenset(b"xLK")
#: Largest PAX / GNU long-name payload the walker reads itself (tarfile reads bigger ones, up to 16 MiB).
_MAX_CHAIN_DATA = 1 << 20
_PAX_RECORD = re.compile(rb"(\d+) ([^=]+)=")
_PAX_APPLIED = ("path", "linkpath", "size", "uid", "gid")


class _Member:
    """The fields of one tar member the scan needs (a :class:`tarfile.TarInfo` has the same attributes)."""

    __slots__ = ("gid", "linkname", "mode", "name", "offset_data", "size", "type", "uid")
    sparse = None

    def __init__(
        self,
        name: str,
        type_: bytes,
        size: int,
        mode: int,
        uid: int,
        gid: int,
        linkname: str,
        offset_data: int,
    ) -> None:
        self.name, self.type, self.size, self.mode = name, type_, size, mode
        self.uid, self.gid, self.linkname, self.offset_data = uid, gid, linkname, offset_data

    def isreg(self) -> bool:
        return self.type[0] in _REGULAR_TYPES


def _nts(field: bytes) -> str:
    nul = field.find(0)
    return (field[:nul] if nul >= 0 else field).decode("utf-8", "surrogateescape")


# The number fields as Python's tarfile, Go's archive/tar and GNU tar write them (mode, uid, gid: 7 octal digits
# and a NUL or space; size, mtime: 11 and one; the checksum: 6, NUL, space): read with one match.
_CANONICAL_NUMBERS = re.compile(
    rb"([0-7]{7})[\0 ]([0-7]{7})[\0 ]([0-7]{7})[\0 ]([0-7]{11})[\0 ]([0-7]{11})[\0 ]([0-7]{6})\0 "
)
_CANONICAL_DEVICES = frozenset((bytes(16), b"0000000\0" * 2, b"0000000 " * 2))


#: A whole plain header as :func:`_header` reads it with its canonical-number match — name and linkname (up to
#: their first NUL, captured by lookaheads), mode, uid, gid, size, checksum, a plain typeflag, canonical device
#: numbers and the ustar prefix — for :func:`_walk_plain`: one match per header.
_PLAIN_HEADER = re.compile(
    rb"(?=([^\0]{0,100})).{100}"
    rb"([0-7]{7})[\0 ]([0-7]{7})[\0 ]([0-7]{7})[\0 ]([0-7]{11})[\0 ][0-7]{11}[\0 ]([0-7]{6})\0 "
    rb"([01234567\0])"
    rb"(?=([^\0]{0,100})).{172}"
    rb"(?:\0{16}|(?:0000000\0){2}|(?:0000000 ){2})"
    rb"([^\0]{0,155})",
    re.DOTALL,
)


def _header(block: bytes) -> tuple[str, bytes, int, int, int, int, str] | None:
    """``(name, type, size, mode, uid, gid, linkname)`` of a 512-byte header exactly as tarfile's ``frombuf``
    and ``_proc_builtin`` give them (ustar prefix joined, a directory's trailing slashes removed), or ``None``
    when tarfile would reject it or treat it specially.  Cost: one pass over the block (checksum), one match."""
    # (a header tarfile would reject, or accept only with a signed-char checksum, is left to it: None)
    m = _CANONICAL_NUMBERS.match(block, 100, 157)
    if m is not None:
        mode, uid, gid, size = int(m[1], 8), int(m[2], 8), int(m[3], 8), int(m[4], 8)
        devices_ok = block[329:345] in _CANONICAL_DEVICES or (
            octal(block[329:337]) is not None and octal(block[337:345]) is not None
        )
        if not devices_ok or int(m[6], 8) != unsigned_checksum(block):
            return None
    else:
        found = numbers(block)
        if found is None:
            return None
        mode, uid, gid, size = found
    type_ = block[156:157]
    name = _nts(block[0:100])
    if type_ == b"\0" and name.endswith("/"):
        type_ = b"5"  # V7: a directory is a regular file with a trailing slash
    if type_ == b"5":
        name = name.rstrip("/")
    if block[345] and type_ not in (b"L", b"K", b"S"):
        prefix = _nts(block[345:500])
        if prefix:
            name = prefix + "/" + name
            if type_ == b"5":
                name = name.rstrip("/")
    return name, type_, size, mode, uid, gid, _nts(block[157:257]) if block[157] else ""


def _blocks(size: int) -> int:
    return (size + _BLOCK - 1) // _BLOCK * _BLOCK


def _pax_records(buf: bytes) -> dict[str, str] | None:
    """A PAX extended header's records as tarfile parses them, or ``None`` for what the walker leaves to it."""
    if b"hdrcharset" in buf or b"GNU.sparse" in buf:
        return None
    records: dict[str, str] = {}
    pos = 0
    while match := _PAX_RECORD.match(buf, pos):
        length = int(match.group(1))
        if length == 0:
            return None
        value = buf[match.end(2) + 1 : match.start(1) + length - 1]
        records[match.group(2).decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


def _next_member(reader: _ForwardReader, start: int) -> _Member | bool | None:
    """Read the member whose header starts at the reader's position (``start``): a :class:`_Member` (the reader
    is then at the next header), ``True`` at a clean end of the archive (nothing left, or a zero block past the
    first header), or ``None`` — nothing consumed — when tarfile must take over from here."""
    buf, off = reader._buf, reader._off
    block = buf[off : off + _BLOCK] if off + _BLOCK <= len(buf) else reader.peek(_BLOCK)
    if len(block) < _BLOCK:
        return True if not block and start > 0 else None
    if block == _ZERO_BLOCK:
        return True if start > 0 else None
    if block[156] in _PLAIN_TYPES:
        head = _header(block)
        if head is None:
            return None
        name, type_, size, mode, uid, gid, linkname = head
        reader._off += _BLOCK  # the block is buffered whole (peeked): a plain move forward
        reader._pos += _BLOCK
        return _Member(name, type_, size, mode, uid, gid, linkname, start + _BLOCK)
    if block[156] not in _CHAIN_TYPES:
        return None
    # a PAX extended header or a GNU long name / long link, then a plain header
    ext = _header(block)
    if ext is None or not 0 <= ext[2] <= _MAX_CHAIN_DATA:
        return None
    span = _BLOCK + _blocks(ext[2])
    both = reader.peek(span + _BLOCK)
    if len(both) < span + _BLOCK or both[span + 156] not in _PLAIN_TYPES:
        return None
    head = _header(both[span:])
    if head is None:
        return None
    name, type_, size, mode, uid, gid, linkname = head
    data = both[_BLOCK:span]
    if block[156] == ord("x"):
        records = _pax_records(data)
        if records is None:
            return None
        try:
            if "size" in records:
                size = int(records["size"])
            if "uid" in records:
                uid = int(records["uid"])
            if "gid" in records:
                gid = int(records["gid"])
        except ValueError:
            return None  # tarfile reads an unparsable number as 0: rare enough to leave to it
        if "path" in records:
            name = records["path"].rstrip("/")
        if "linkpath" in records:
            linkname = records["linkpath"]
    else:
        text = _nts(data)
        if block[156] == ord("L"):
            name = text.removesuffix("/") if type_ == b"5" else text
        else:
            linkname = text
    reader.skip(span + _BLOCK)
    return _Member(name, type_, size, mode, uid, gid, linkname, start + span + _BLOCK)


def _fast_members(
    reader: _ForwardReader, what: str
) -> Iterator[tuple[tarfile.TarFile | None, _Member | tarfile.TarInfo]]:
    """The members of the tar ``reader`` delivers, like :func:`_members`, read by a direct 512-byte header
    walker for plain ustar/GNU/PAX headers; at the first header it does not handle the rest of the stream goes
    to :func:`_members` (tarfile), from that header on.  Yields ``(None, member)`` from the walker; the caller
    must move the reader to the member's next header (:func:`_finish_member`).  Memory: one chunk."""
    while True:
        start = reader.tell()
        got = _next_member(reader, start)
        if got is True:
            return
        if got is None or got is False:
            yield from _members(reader, what)
            return
        yield None, got
        _finish_member(reader, got, what)


def _finish_member(reader: _ForwardReader, member: _Member, what: str) -> None:
    """Move past what is left of a walker member's data (a regular file's size rounded up to 512 bytes); a
    stream ending inside it is an error, in tarfile's words."""
    end = member.offset_data + (_blocks(member.size) if member.isreg() else 0)
    left = end - reader._pos
    if left <= 0:
        return
    if reader._off + left <= len(reader._buf):  # within the buffered chunk
        reader._off += left
        reader._pos = end
    elif reader.skip(left) != left:
        raise InvalidImage(
            f"{what}: corrupt or truncated tar stream (unexpected end of data)",
            hint="the blob is damaged; fetch it again",
        )


def _hash_walked(member: _Member, reader: _ForwardReader, what: str) -> str:
    """sha256 (hex) of a walker member's content, read from the stream (the reader is at its data)."""
    h = _digest.new_hash("sha256", size=member.size)
    if reader.skip(member.size, h.update) != member.size:
        raise InvalidImage(
            f"{what}: truncated tar stream inside {member.name!r}", hint="fetch the blob again"
        )
    return h.hexdigest()


def _add_member(table: EntryTable, ti: tarfile.TarInfo | _Member, what: str, absolute: list[str]) -> bool:
    """Append member ``ti``'s entry to ``table`` (the rules of :func:`_entry_from`); ``False`` for the root
    directory itself, which is not an entry.  Cost: one transient :class:`Entry`."""
    e = _entry_from(ti, what, absolute)
    if e is None:
        return False
    table.append(e.path, e.typeflag, e.size, e.mode, e.uid, e.gid, e.linkname)
    return True


def _walk_plain(reader: _ForwardReader, table: EntryTable, what: str, absolute: list[str]) -> None:
    """Index the run of plain ustar/GNU headers that lies whole in the reader's current chunk, straight into
    ``table``'s columns, and move the reader past them (and past the last one's data, reading on if it extends
    beyond the chunk).  Stops, consuming nothing more, at the first header :func:`_header` would not read with
    its canonical-number match (PAX, long names, the end, a header across the chunk boundary, anything odd): the
    caller reads that one with :func:`_next_member`.  Same entries and errors as :func:`_next_member` +
    :func:`_entry_from`.  Cost: ~1-2 µs per entry, no object per entry but its path.  Memory: nothing more."""
    buf = reader._buf
    off = start = reader._off
    end = len(buf)
    if off + _BLOCK > end:
        return
    view = memoryview(buf)
    match = _PLAIN_HEADER.match
    adler = zlib.adler32
    regular = _REGULAR_TYPES
    paths, types, links = table.paths, table.types, table.links
    add_path, add_type = paths.append, types.append
    add_size, add_mode = table.sizes.append, table.modes.append
    add_uid, add_gid = table.uids.append, table.gids.append
    try:
        while off + _BLOCK <= end:
            m = match(buf, off, off + _BLOCK)
            if m is None:
                break
            name_b, mode_s, uid_s, gid_s, size_s, chk_s, type_b, link_b, prefix_b = m.groups()
            # the header's byte sum with its checksum field as 8 spaces (256), from three Adler-32s whose
            # low words are exactly 1 + their part's sum (each part sums to < 65,521)
            if int(chk_s, 8) != (
                (adler(view[off : off + 148]) & 0xFFFF)
                + (adler(view[off + 156 : off + 356]) & 0xFFFF)
                + (adler(view[off + 356 : off + 512]) & 0xFFFF)
                + 253
            ):
                break
            t = type_b[0]
            name = name_b.decode("utf-8", "surrogateescape")
            if t == 0 and name[-1:] == "/":
                t = 53  # V7: a directory is a regular file with a trailing slash
            if prefix_b:
                name = (
                    prefix_b.decode("utf-8", "surrogateescape")
                    + "/"
                    + (name.rstrip("/") if t == 53 else name)
                )
            if t == 53:
                name = name.rstrip("/")
            size = int(size_s, 8)
            off += _BLOCK + ((size + _BLOCK - 1) // _BLOCK * _BLOCK if t in regular else 0)
            if not name.isascii():
                name = clean_text(name)
            if _needs_normalising(name):
                path, was_absolute, escapes = normalise_path(name)
                if escapes:
                    raise InvalidImage(
                        f"{what}: entry {name!r} points outside the image root",
                        hint="Docker refuses to extract such a layer (path breakout); rebuild it with a sane tar",
                    )
                if not path:
                    continue  # the root directory itself ("./")
                if was_absolute:
                    absolute.append(name)
            else:
                path = name
            if link_b:
                link = clean_text(link_b.decode("utf-8", "surrogateescape"))
                if t == 49 and normalise_path(link)[2]:
                    raise InvalidImage(
                        f"{what}: hardlink {name!r} points outside the image root ({link!r})",
                        hint="Docker refuses to extract such a layer (path breakout); rebuild it with a sane tar",
                    )
                if link:
                    links[len(paths)] = link
            add_path(path)
            add_type(t or 48)
            add_size(size)
            add_mode(int(mode_s, 8))
            add_uid(int(uid_s, 8))
            add_gid(int(gid_s, 8))
    finally:
        view.release()
    if off <= end:
        reader._off = off
        reader._pos += off - start
        return
    reader._off = end
    reader._pos += end - start
    if reader.skip(off - end) != off - end:
        raise InvalidImage(
            f"{what}: corrupt or truncated tar stream (unexpected end of data)",
            hint="the blob is damaged; fetch it again",
        )


def scan_tar_stream(
    data: Iterable[bytes],
    *,
    what: str,
    hash_files: bool = False,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    max_uncompressed: int | None = DEFAULT_MAX_UNCOMPRESSED,
    stream_hasher: Any = None,
) -> tuple[EntryTable, str, int, list[str]]:
    """Index an *uncompressed* tar given as chunks: ``(entries, "sha256:…" of the stream, byte count, warnings)``.

    Reads the stream to its very end (so a source verifies its digest).  ``stream_hasher``: a sha256 hash
    object the chunks were already fed to (by the thread inflating them); without it the stream is hashed
    here.  Cost: one pass; CPU: sha256 of the stream (plus one more sha256 of file contents with
    ``hash_files``) and ~1-2 µs per plain tar header; memory: one chunk plus the :class:`EntryTable` (~100 bytes
    per entry).  Raises :class:`InvalidImage` for a stream that is not a tar, is truncated or corrupt, or
    escapes the root.  ``max_uncompressed`` bounds the logical bytes of sparse files hashed
    (:func:`sparse_content`).
    """
    budget = None if max_uncompressed is None else [max_uncompressed]
    reader = _ForwardReader(iter(data), what, hashing=stream_hasher is None)
    table = EntryTable()
    warnings: list[str] = []
    absolute: list[str] = []

    def check_count() -> None:
        if len(table) > max_entries:
            raise LimitExceeded(
                f"{what}: more than {max_entries} tar entries", hint="the layer is hostile or unusually large"
            )

    while True:
        if not hash_files:
            _walk_plain(reader, table, what, absolute)
            check_count()
        if reader._off >= len(reader._buf):
            reader._fill()  # the next header starts a chunk: no join needed
        got = _next_member(reader, reader.tell())
        if got is True:
            break
        if got is None or got is False:
            for tf, ti in _members(reader, what):  # tarfile reads the rest of the stream
                if _add_member(table, ti, what, absolute):
                    if hash_files and table.types[-1] in _REGULAR_HASHED:
                        table.set_hash(len(table) - 1, _hash_member(tf, ti, reader, what, budget))
                    check_count()
            break
        if _add_member(table, got, what, absolute):
            if hash_files and table.types[-1] in _REGULAR_HASHED:
                table.set_hash(len(table) - 1, _hash_walked(got, reader, what))
            check_count()
        _finish_member(reader, got, what)
    reader.drain()
    if absolute:
        shown = ", ".join(repr(a) for a in absolute[:3]) + (" …" if len(absolute) > 3 else "")
        warnings.append(
            f"{len(absolute)} entr{'y' if len(absolute) == 1 else 'ies'} with an absolute path ({shown}), "
            "read relative to the image root as Docker extracts them"
        )
    hasher = stream_hasher if stream_hasher is not None else reader.hasher
    return table, f"sha256:{hasher.hexdigest()}", reader.total, warnings


#: Typeflags (as stored in :attr:`EntryTable.types`) of the entries ``--hash`` hashes: ``Entry.is_regular``.
_REGULAR_HASHED = frozenset(b"07S")


def _with_hash(e: Entry, sha256: str) -> Entry:
    return Entry(e.path, e.typeflag, e.size, e.mode, e.uid, e.gid, e.linkname, sha256, e.whiteout)


def sparse_content(
    tf: tarfile.TarFile, ti: tarfile.TarInfo, what: str, budget: list[int] | None
) -> Iterator[bytes]:
    """The logical content of a GNU sparse member (its holes as zeros), in chunks of ≤ 1 MiB, rebuilt by tarfile.

    A sparse map is a size claim: a few hundred bytes may declare a petabyte of holes.  ``budget`` (one-item list,
    bytes, shared by every sparse member of a layer; ``None``: no cap) is what is left of ``--max-uncompressed``:
    a member claiming more is :class:`LimitExceeded` before a byte is produced; a corrupt map is
    :class:`InvalidImage`.  Cost: the member's logical size in CPU (zeros included); memory one chunk."""
    if budget is not None:
        if ti.size > budget[0]:
            raise LimitExceeded(
                f"{what}: sparse file {clean_text(ti.name)!r} claims {ti.size} bytes, more than the "
                f"{budget[0]} bytes left of the uncompressed-size cap",
                hint="a decompression bomb or a hostile layer; if the image is trusted, raise --max-uncompressed",
            )
        budget[0] -= ti.size
    try:
        f = tf.extractfile(ti)
        assert f is not None
        while block := f.read(1 << 20):
            yield block
    except TAR_ERRORS as exc:
        raise InvalidImage(
            f"{what}: corrupt sparse file {clean_text(ti.name)!r} ({exc})",
            hint="the blob is damaged or hostile",
        ) from None


def _hash_member(
    tf: tarfile.TarFile,
    ti: tarfile.TarInfo,
    reader: _ForwardReader,
    what: str,
    budget: list[int] | None = None,
) -> str:
    h = _digest.new_hash("sha256")
    if ti.sparse is not None:  # sparse: let tarfile rebuild the logical content (holes are zeros)
        for block in sparse_content(tf, ti, what, budget):
            h.update(block)
        return h.hexdigest()
    reader.seek(ti.offset_data)
    if reader.skip(ti.size, h.update) != ti.size:
        raise InvalidImage(f"{what}: truncated tar stream inside {ti.name!r}", hint="fetch the blob again")
    return h.hexdigest()


def _check_end(tf: tarfile.TarFile, reader: _ForwardReader, what: str) -> None:
    """tarfile silently stops at an unreadable header past the first one; Go's archive/tar (dive, Docker) does
    not.  Accept only a clean end: no more data, or a zero block (the end-of-archive marker)."""
    end = tf.offset
    if reader.last_block_pos == end:
        block = reader.last_block
    else:
        if reader.tell() > end:
            raise InvalidImage(f"{what}: inconsistent tar stream position")
        reader.seek(end)
        block = reader.read(_BLOCK)
    if not block or block == _ZERO_BLOCK:
        return
    if len(block) < _BLOCK:
        raise InvalidImage(
            f"{what}: truncated tar stream (a {len(block)}-byte partial header at offset {end})",
            hint="the blob is incomplete; fetch it again",
        )
    raise InvalidImage(
        f"{what}: corrupt tar header at offset {end}", hint="the blob is damaged; fetch it again"
    )


# ------------------------------------------------------------------------------------------------ pipeline

#: Inflated pieces a layer's inflating thread may run ahead of its hashing and indexing thread.
_PIPELINE_DEPTH = 2
_DONE = object()


_arenas_limited = False


def limit_malloc_arenas(arenas: int = 2) -> None:
    """At most ``arenas`` glibc malloc arenas for the rest of the process (``mallopt(M_ARENA_MAX, arenas)``, what
    ``MALLOC_ARENA_MAX=2`` does), called before the scan's threads start.  Otherwise every thread that allocates
    gets an arena of its own and the pieces of the layers in flight spread over them: ~4 MiB of a cold ``waste``'s
    peak RSS (docs/benchmarks.md); the scan's threads spend their time in isal and sha256, not in malloc.  A no-op
    off Linux, without glibc's ``mallopt``, when ``MALLOC_ARENA_MAX`` is set, and after the first call.
    Cost: one ``ctypes`` call, once per process."""
    global _arenas_limited
    if _arenas_limited:
        return
    _arenas_limited = True
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, ImportError):
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt(-8, arenas)  # M_ARENA_MAX (glibc's malloc.h)


class _Prefetch:
    """Run an iterator in a thread of its own, ``depth`` items ahead of the consumer (a bounded queue).

    Used to inflate a layer (and read and verify its compressed bytes) in one thread while another hashes
    the uncompressed stream and walks its tar headers: isal's inflate and sha256 release the GIL, so the two
    halves of one layer use two cores.  The producer's exception is raised in the consumer, in order; leaving
    the ``with`` block early (an error, or a partial read) stops the producer and waits for it, so the
    blob's stream is never used after its context is closed.  Memory: ``depth`` + 2 items.
    """

    def __init__(self, items: Iterator[bytes], depth: int = _PIPELINE_DEPTH) -> None:
        limit_malloc_arenas()
        self._items = items
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ociinspect-inflate", daemon=True)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)
            return
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()  # in this thread: the generators reading the blob end where they ran
        self._put(_DONE)

    def __enter__(self) -> Iterator[bytes]:
        self._thread.start()
        return self._consume()

    def _consume(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield cast(bytes, item)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ------------------------------------------------------------------------------------------------ layers


def _layer_what(layer: Layer) -> str:
    return f"layer {layer.index} ({_digest.short(layer.digest)})"


def scan_layer(
    source: Source,
    layer: Layer,
    options: ScanOptions | None = None,
    *,
    progress: Callable[[int], None] | None = None,
) -> LayerScan:
    """Index one layer.

    eStargz layers (with ``options.use_estargz_toc``) cost two Range reads (51-byte footer, then the TOC's
    compressed bytes); every other layer is streamed once: the whole blob is read, inflated, its digest and
    diff_id verified.  ``progress`` receives compressed byte counts as they are read.  Errors name the layer.
    """
    options = options or ScanOptions()
    what = _layer_what(layer)
    try:
        return _scan_layer(source, layer, options, what, progress)
    except (
        OciInspectError
    ) as exc:  # source errors (digest, network) do not know which layer they were reading
        raise exc.with_context(what) from None


def _scan_layer(
    source: Source,
    layer: Layer,
    options: ScanOptions,
    what: str,
    progress: Callable[[int], None] | None,
) -> LayerScan:
    if options.use_estargz_toc:
        from ociinspect.content import estargz

        if estargz.is_estargz(layer.descriptor):
            try:
                scan = estargz.scan_toc(source, layer.descriptor, what=what)
            except estargz.TOCUnavailable as exc:
                log.info("%s: %s; streaming the layer instead", what, exc)
            else:
                if progress is not None:
                    progress(layer.size)
                return scan
    with source.open_blob(layer.digest, size=layer.size) as chunks:

        def counted() -> Iterator[bytes]:
            for chunk in chunks:
                if progress is not None:
                    progress(len(chunk))
                yield chunk

        inflated = compression.decompress(counted(), what=what, max_output=options.max_uncompressed)
        stream_hash = _digest.new_hash("sha256") if options.pipeline else None

        def hashed() -> Iterator[bytes]:
            """The inflated chunks, hashed (the diff_id) in the inflating thread: sha256 releases the GIL."""
            assert stream_hash is not None
            try:
                for chunk in inflated:
                    stream_hash.update(chunk)
                    yield chunk
            finally:
                close = getattr(inflated, "close", None)
                if close is not None:
                    close()

        # with the pipeline, inflating and hashing run in a thread of their own (_Prefetch)
        stream: contextlib.AbstractContextManager[Iterable[bytes]] = (
            _Prefetch(hashed()) if options.pipeline else contextlib.nullcontext(inflated)
        )
        with stream as ahead:
            entries, diff_id, total, warnings = scan_tar_stream(
                ahead,
                what=what,
                hash_files=options.hash_files,
                max_entries=options.max_entries,
                max_uncompressed=options.max_uncompressed,
                stream_hasher=stream_hash,
            )
    if layer.diff_id and layer.diff_id.startswith("sha256:") and layer.diff_id != diff_id:
        raise DigestMismatch(
            f"{what}: uncompressed content is {diff_id}, but the config's diff_id is {layer.diff_id}",
            hint="the image is corrupt or its config does not belong to these layers",
        )
    return LayerScan(
        digest=layer.digest,
        entries=entries,
        index_source="stream",
        hashed=options.hash_files,
        diff_id=diff_id,
        uncompressed_size=total,
        warnings=tuple(warnings),
    )


def read_files(
    source: Source,
    layer: Layer,
    paths: Sequence[str],
    *,
    markers: Sequence[str] = (),
    scope: str | None = None,
    max_file_bytes: int = 1 << 20,
    max_uncompressed: int | None = DEFAULT_MAX_UNCOMPRESSED,
) -> tuple[dict[str, bytes], frozenset[str]]:
    """The contents of the regular files at ``paths`` in one layer, and which ``markers`` are present.

    Paths are normalised (``etc/os-release``, no leading ``/``); a marker is present when an entry has that
    path or lies below it.  Files over ``max_file_bytes`` are skipped.  Cost: a *partial* stream of the layer —
    reading stops right after ``paths[0]`` (the most authoritative file) has been read; or, with ``scope``
    (a directory such as ``"etc"``), as soon as the stream has left that directory after having found some of
    ``paths`` (every common image builder writes entries in lexical order, so the directory is contiguous);
    otherwise at the end of the layer.  The blob digest and diff_id are verified only when the whole layer was
    read.  Errors name the layer (:class:`InvalidImage`, :class:`LimitExceeded`).
    """
    what = _layer_what(layer)
    wanted = set(paths)
    found: dict[str, bytes] = {}
    present: set[str] = set()
    prefixes = [(m, m + "/") for m in markers]
    complete = False
    with source.open_blob(layer.digest, size=layer.size) as chunks:
        inflated = compression.decompress(chunks, what=what, max_output=max_uncompressed)
        reader = _ForwardReader(iter(inflated), what)
        for _tf, ti in _fast_members(reader, what):  # the direct header walker; tarfile only as its fallback
            path, _, escapes = normalise_path(clean_text(ti.name))
            if escapes:
                raise InvalidImage(f"{what}: entry {ti.name!r} points outside the image root")
            for marker, below in prefixes:
                if path == marker or path.startswith(below):
                    present.add(marker)
            if (
                scope is not None
                and found
                and path != scope
                and not path.startswith(scope + "/")
                and path > scope
            ):
                break  # left the scope directory with something found: the rest of the layer can't be in it
            if path in wanted and ti.isreg() and ti.sparse is None and ti.size <= max_file_bytes:
                reader.seek(ti.offset_data)
                found[path] = reader.read(ti.size)
                if paths and path == paths[0]:
                    break
        else:
            reader.drain()
            complete = True
    if complete and layer.diff_id and layer.diff_id.startswith("sha256:"):
        diff_id = f"sha256:{reader.hasher.hexdigest()}"
        if diff_id != layer.diff_id:
            raise DigestMismatch(
                f"{what}: uncompressed content is {diff_id}, but the config's diff_id is {layer.diff_id}",
                hint="the image is corrupt or its config does not belong to these layers",
            )
    return found, frozenset(present)


def scan_image(
    source: Source,
    image: Image,
    options: ScanOptions | None = None,
    *,
    cache: ScanCache | None = None,
    progress: Callable[[int], None] | None = None,
    layers: Sequence[int] | None = None,
) -> list[LayerScan]:
    """Index every layer of ``image`` (or those at the indexes in ``layers``), in layer order.

    Layers found in ``cache`` (a hashed scan satisfies a non-hashed request, not the reverse) cost nothing;
    the others are scanned in parallel threads (``options.workers``) and stored in the cache once complete and
    verified.  ``progress`` receives compressed byte counts (cached layers count at once).  The first error
    cancels the layers not yet started and is raised with its layer named.
    """
    options = options or ScanOptions()
    wanted = [image.layers[i] for i in layers] if layers is not None else list(image.layers)
    results: dict[int, LayerScan] = {}
    todo = []
    for layer in wanted:
        cached = None
        if cache is not None:
            cached = cache.get_scan(
                layer.digest, need_hash=options.hash_files, allow_toc=options.use_estargz_toc
            )
        if cached is not None:
            results[layer.index] = cached
            if progress is not None:
                progress(layer.size)
        else:
            todo.append(layer)
    lock = threading.Lock()

    def locked_progress(n: int) -> None:
        if progress is not None:
            with lock:
                progress(n)

    def one(layer: Layer) -> LayerScan:
        scan = scan_layer(source, layer, options, progress=locked_progress if progress else None)
        if cache is not None:
            cache.put_scan(scan)
        return scan

    if len(todo) <= 1 or options.workers <= 1:
        for layer in todo:
            results[layer.index] = one(layer)
    else:
        limit_malloc_arenas()
        with threads.Pool(min(options.workers, len(todo))) as pool:
            futures = {pool.submit(one, layer): layer for layer in todo}
            try:
                for future in threads.as_completed(futures):
                    results[futures[future].index] = future.result()
            except OciInspectError:
                for f in futures:
                    f.cancel()
                raise
    return [results[layer.index] for layer in wanted]
