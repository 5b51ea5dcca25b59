"""Tar entries of a layer and the rules every layer reader shares: path normalisation and whiteouts.

Values and rules only (standard library, no I/O): :class:`Entry` (one tar entry), :class:`EntryTable` (a
layer's entries stored column by column, :class:`Entry` objects made on demand), :class:`LayerScan` (the file
index of one layer, an immutable fact about its blob digest), :func:`normalise_path` (Go ``path.Clean`` semantics,
breakout detection) and the OCI whiteout rules (:func:`whiteout_kind`).  The readers live in
:mod:`ociinspect.content`; the analyzers read these values.
"""

from __future__ import annotations

import sys
import tarfile
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Literal, overload

from ociinspect.model.record import record

__all__ = [
    "OPAQUE_MARKER",
    "TAR_ERRORS",
    "WHITEOUT_PREFIX",
    "Entry",
    "EntryTable",
    "IndexSource",
    "LayerScan",
    "WhiteoutKind",
    "clean_text",
    "make_entry",
    "normalise_path",
    "whiteout_kind",
]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_META_PREFIX = ".wh..wh."

#: What :mod:`tarfile` raises on hostile headers: besides its own errors, ``ValueError`` (a GNU sparse map without
#: its newline, unparsable numbers; ``UnicodeError`` is one), ``OverflowError`` and ``EOFError``.  Every reader of
#: tar bytes from an image catches all of them and raises its typed error (never exit 70).
TAR_ERRORS: tuple[type[Exception], ...] = (tarfile.TarError, ValueError, OverflowError, EOFError)

IndexSource = Literal["stream", "estargz-toc"]
WhiteoutKind = Literal["", "whiteout", "opaque", "meta"]

_TYPE_NAMES = {
    "0": "file",
    "7": "file",  # contiguous file: a regular file everywhere that matters
    "S": "file",  # GNU sparse
    "1": "hardlink",
    "2": "symlink",
    "3": "char",
    "4": "block",
    "5": "dir",
    "6": "fifo",
}
_S_IFMT = 0o170000
_S_IFDIR = 0o040000


@record
class Entry:
    """One tar entry of a layer.

    ``path`` is normalised (``usr/bin/env``: no leading ``./`` or ``/``, no trailing ``/``); for a whiteout it is
    the whiteout file's own path (``etc/.wh.motd``) and :attr:`target` names what it removes.  ``size`` is the
    tar header size in bytes (the logical size for sparse files; 0 for directories and links).  ``mode`` is the
    header's mode word as stored (permission bits, plus file-type bits when the archiver wrote them).
    ``sha256`` is the hex digest of a regular file's content, when the scan hashed contents (``--hash``) or the
    eStargz TOC recorded it.
    """

    path: str
    typeflag: str
    size: int
    mode: int
    uid: int
    gid: int
    linkname: str = ""
    sha256: str | None = None
    whiteout: WhiteoutKind = ""

    @property
    def type(self) -> str:
        """``file``, ``dir``, ``symlink``, ``hardlink``, ``char``, ``block``, ``fifo`` or ``other``."""
        return _TYPE_NAMES.get(self.typeflag, "other")

    @property
    def is_dir(self) -> bool:
        """A directory as Go's ``tar.Header.FileInfo().IsDir()`` sees it: type ``5`` or S_IFDIR mode bits."""
        return self.typeflag == "5" or (self.mode & _S_IFMT) == _S_IFDIR

    @property
    def is_regular(self) -> bool:
        return self.typeflag in ("0", "7", "S")

    @property
    def permissions(self) -> int:
        """Permission, setuid/setgid and sticky bits (``mode & 0o7777``)."""
        return self.mode & 0o7777

    @property
    def target(self) -> str:
        """What a whiteout removes: ``NAME`` for ``.wh.NAME``, the directory for an opaque marker, else ``""``."""
        if self.whiteout == "whiteout":
            head, _, base = self.path.rpartition("/")
            name = base[len(WHITEOUT_PREFIX) :]
            return f"{head}/{name}" if head else name
        if self.whiteout == "opaque":
            return self.path.rpartition("/")[0]
        return ""


def whiteout_kind(path: str) -> WhiteoutKind:
    """Classify a normalised path: ``whiteout`` (``.wh.NAME``), ``opaque`` (``.wh..wh..opq``), ``meta`` (other
    ``.wh..wh.*`` names, AUFS bookkeeping that runtimes ignore) or ``""``.  Cost: string tests."""
    base = path.rpartition("/")[2]
    if not base.startswith(WHITEOUT_PREFIX):
        return ""
    if base == OPAQUE_MARKER:
        return "opaque"
    if base.startswith(_META_PREFIX):
        return "meta"
    return "whiteout" if len(base) > len(WHITEOUT_PREFIX) else "meta"


def make_entry(
    path: str,
    typeflag: str,
    size: int,
    mode: int,
    uid: int = 0,
    gid: int = 0,
    linkname: str = "",
    sha256: str | None = None,
) -> Entry:
    """An :class:`Entry` for an already normalised ``path``, with its whiteout kind filled in."""
    return Entry(path, typeflag, size, mode, uid, gid, linkname, sha256, whiteout_kind(path))


def normalise_path(name: str) -> tuple[str, bool, bool]:
    """``(path, was_absolute, escapes_root)`` for a tar member name.

    ``./a//b/`` → ``a/b``; ``/etc/x`` → ``etc/x`` (absolute); ``..`` at the root of an absolute name stays at the
    root (``/../x`` → ``x``), as in Go's ``path.Clean``; a relative name climbing above the root
    (``../x``, ``a/../../x``) sets ``escapes_root``.  Cost: one split.
    """
    absolute = name.startswith("/")
    parts: list[str] = []
    escapes = False
    for comp in name.split("/"):
        if comp == "" or comp == ".":
            continue
        if comp == "..":
            if parts:
                parts.pop()
            elif not absolute:
                escapes = True
            continue
        parts.append(comp)
    return "/".join(parts), absolute, escapes


def clean_text(text: str) -> str:
    """Non-UTF-8 bytes of a name (decoded as surrogates) become ``\\xNN`` escapes, so names can be stored."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@record
class LayerScan:
    """The file index of one layer: an immutable fact about the blob ``digest`` (hence cacheable forever).

    ``diff_id`` is the sha256 of the uncompressed stream as computed while streaming (``None`` when the index
    came from an eStargz TOC, which is read without downloading the layer).  ``uncompressed_size`` is in bytes
    (from the stream, or the eStargz size annotation, else ``None``).  ``hashed``: every regular file with
    content has a ``sha256``.  ``from_cache`` is set by the store when the scan was not redone.  ``entries`` is an
    :class:`EntryTable` for streamed and cached scans (compact: no object per entry), a tuple elsewhere.
    """

    digest: str
    entries: Sequence[Entry]
    index_source: IndexSource
    hashed: bool
    diff_id: str | None = None
    uncompressed_size: int | None = None
    warnings: tuple[str, ...] = ()
    from_cache: bool = False

    @property
    def content_size(self) -> int:
        """Sum of the entries' tar header sizes, in bytes: dive's layer size (directories and links count 0)."""
        if isinstance(self.entries, EntryTable):
            return self.entries.content_size
        return sum(e.size for e in self.entries)


_INT32 = (-(1 << 31), (1 << 31) - 1)
_TYPE_DIR = bytes(1 if b == ord("5") else 0 for b in range(256))
_MODE_DIR = bytes(1 if (b << 8) & _S_IFMT == _S_IFDIR else 0 for b in range(256))  # bits 8-15 of a mode


class EntryTable(Sequence[Entry]):
    """A layer's entries in tar order, column by column: the compact layer index (issue 14).

    Columns: ``paths`` (list of normalised ``str``), ``types`` (one latin-1 byte per entry: the typeflag),
    ``sizes`` (``array('q')``), ``modes``, ``uids``, ``gids`` (``array('i')``); linknames and sha256s are sparse
    (``dict`` index → value: most entries have neither).  A number outside its column's range (hostile PAX
    values) is kept exactly in ``big``.  Memory: about 100 bytes per entry with its path (a tuple of
    :class:`Entry` takes ~400).  Indexing or iterating builds :class:`Entry` objects on demand (~1 µs each);
    analyzers that read the columns directly (:mod:`ociinspect.analyzers.waste`) build none.
    """

    __slots__ = ("big", "gids", "hashes", "links", "modes", "paths", "sizes", "types", "uids")

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.types = bytearray()
        self.sizes = array("q")
        self.modes = array("i")
        self.uids = array("i")
        self.gids = array("i")
        self.links: dict[int, str] = {}
        self.hashes: dict[int, str] = {}
        self.big: dict[tuple[str, int], int] = {}

    @classmethod
    def of(cls, entries: Iterable[Entry]) -> EntryTable:
        """A table holding ``entries`` (``Entry.whiteout`` is derived from the path, as :func:`make_entry`
        does).  Cost: O(entries)."""
        table = cls()
        for e in entries:
            table.append(e.path, e.typeflag, e.size, e.mode, e.uid, e.gid, e.linkname, e.sha256)
        return table

    def append(
        self,
        path: str,
        typeflag: str,
        size: int,
        mode: int,
        uid: int = 0,
        gid: int = 0,
        linkname: str = "",
        sha256: str | None = None,
    ) -> None:
        """Add one entry (``path`` already normalised; ``typeflag`` one latin-1 character)."""
        i = len(self.paths)
        code = ord(typeflag) if len(typeflag) == 1 else -1
        if not 0 <= code < 256:
            raise ValueError(f"typeflag {typeflag!r} is not one latin-1 character")
        self.paths.append(path)
        self.types.append(code)
        self._int(self.sizes, "size", i, size, (-(1 << 63), (1 << 63) - 1))
        self._int(self.modes, "mode", i, mode, _INT32)
        self._int(self.uids, "uid", i, uid, _INT32)
        self._int(self.gids, "gid", i, gid, _INT32)
        if linkname:
            self.links[i] = linkname
        if sha256 is not None:
            self.hashes[i] = sha256

    def _int(self, column: array[int], name: str, i: int, value: int, bounds: tuple[int, int]) -> None:
        if bounds[0] <= value <= bounds[1]:
            column.append(value)
        else:
            column.append(0)
            self.big[(name, i)] = value

    def set_hash(self, i: int, sha256: str) -> None:
        self.hashes[i] = sha256

    def size(self, i: int) -> int:
        """Entry ``i``'s size in bytes.  Cost: one array read (one dict probe for values kept in ``big``)."""
        return self._value(self.sizes, "size", i)

    @property
    def content_size(self) -> int:
        """Sum of the entries' sizes, in bytes.  Cost: a C-level sum of the size column."""
        total = sum(self.sizes)
        if self.big:
            total += sum(v for (col, _), v in self.big.items() if col == "size")
        return total

    def dir_flags(self) -> bytes:
        """One byte per entry: 1 where :attr:`Entry.is_dir` holds (type ``5`` or S_IFDIR mode bits), else 0.
        Cost: two C-level passes over the type and mode columns (no Python loop over entries)."""
        n = len(self.paths)
        by_type = bytes(self.types).translate(_TYPE_DIR)
        size = self.modes.itemsize
        second = 1 if sys.byteorder == "little" else size - 2  # the byte holding bits 8-15 of each mode
        by_mode = self.modes.tobytes()[second::size].translate(_MODE_DIR)
        flags = (int.from_bytes(by_type, "little") | int.from_bytes(by_mode, "little")).to_bytes(n, "little")
        if any(col == "mode" for col, _ in self.big):
            patched = bytearray(flags)
            for (col, i), value in self.big.items():
                if col == "mode":
                    patched[i] = 1 if self.types[i] == ord("5") or (value & _S_IFMT) == _S_IFDIR else 0
            flags = bytes(patched)
        return flags

    def _value(self, column: array[int], name: str, i: int) -> int:
        if self.big:
            got = self.big.get((name, i))
            if got is not None:
                return got
        return column[i]

    def entry(self, i: int) -> Entry:
        """Entry ``i`` (no negative indexes) as an :class:`Entry`.  Cost: one object."""
        path = self.paths[i]
        return Entry(
            path,
            chr(self.types[i]),
            self._value(self.sizes, "size", i),
            self._value(self.modes, "mode", i),
            self._value(self.uids, "uid", i),
            self._value(self.gids, "gid", i),
            self.links.get(i, "") if self.links else "",
            self.hashes.get(i) if self.hashes else None,
            whiteout_kind(path) if ".wh." in path else "",
        )

    def __len__(self) -> int:
        return len(self.paths)

    @overload
    def __getitem__(self, index: int) -> Entry: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Entry, ...]: ...

    def __getitem__(self, index: int | slice) -> Entry | tuple[Entry, ...]:
        if isinstance(index, slice):
            return tuple(self.entry(i) for i in range(*index.indices(len(self.paths))))
        n = len(self.paths)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("EntryTable index out of range")
        return self.entry(index)

    def __iter__(self) -> Iterator[Entry]:
        for i in range(len(self.paths)):
            yield self.entry(i)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (EntryTable, list, tuple)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"EntryTable({len(self.paths)} entries)"
