"""Tar entries of a layer and the rules every layer reader shares: path normalisation and whiteouts.

Values and rules only (standard library, no I/O): :class:`Entry` (one tar entry), :class:`LayerScan` (the file
index of one layer, an immutable fact about its blob digest), :func:`normalise_path` (Go ``path.Clean`` semantics,
breakout detection) and the OCI whiteout rules (:func:`whiteout_kind`).  The readers live in
:mod:`ociinspect.content`; the analyzers read these values.
"""

from __future__ import annotations

import dataclasses
import tarfile
from typing import Literal

__all__ = [
    "OPAQUE_MARKER",
    "TAR_ERRORS",
    "WHITEOUT_PREFIX",
    "Entry",
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


@dataclasses.dataclass(frozen=True, slots=True)
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


@dataclasses.dataclass(frozen=True, slots=True)
class LayerScan:
    """The file index of one layer: an immutable fact about the blob ``digest`` (hence cacheable forever).

    ``diff_id`` is the sha256 of the uncompressed stream as computed while streaming (``None`` when the index
    came from an eStargz TOC, which is read without downloading the layer).  ``uncompressed_size`` is in bytes
    (from the stream, or the eStargz size annotation, else ``None``).  ``hashed``: every regular file with
    content has a ``sha256``.  ``from_cache`` is set by the store when the scan was not redone.
    """

    digest: str
    entries: tuple[Entry, ...]
    index_source: IndexSource
    hashed: bool
    diff_id: str | None = None
    uncompressed_size: int | None = None
    warnings: tuple[str, ...] = ()
    from_cache: bool = False

    @property
    def content_size(self) -> int:
        """Sum of the entries' tar header sizes, in bytes: dive's layer size (directories and links count 0)."""
        return sum(e.size for e in self.entries)
