"""Read-only file access for local sources: a directory, or the members of a tar archive.

Both give the same small interface (``exists``, ``size``, ``read``, ``read_range``, ``stream``), so the OCI layout
reader works unchanged on ``oci:DIR`` and ``oci-archive:FILE``, and the docker-archive reader on both forms of
``docker save``.  Tar archives are indexed once (one pass over the headers, no member data read); member reads
are seeks into the archive file.  Paths are normalised (``./`` prefixes dropped) and symlinks/hardlinks between
members are followed (``docker save`` may store a layer as a link to another image's layer).

A compressed archive (``docker save | gzip``, ``| zstd``: what many CI caches hold, and what skopeo and ``docker
load`` accept) is recognised by its magic bytes, not its name, and inflated once into an anonymous temporary file
(``tempfile.TemporaryFile`` in the system temp dir: unlinked at once, so it vanishes on close or on a crash),
bounded by :data:`MAX_INFLATED_ARCHIVE`; member reads are then seeks into that file as for a plain tar.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import threading
from collections.abc import Iterator
from typing import BinaryIO

from ociinspect.content import compression
from ociinspect.errors import InvalidImage, LimitExceeded, NotFound

__all__ = ["CHUNK", "MAX_INFLATED_ARCHIVE", "DirFiles", "Files", "TarFiles", "normalise"]

CHUNK = 1 << 20
#: the largest tar a compressed archive may inflate to (bytes) before reading it is refused
MAX_INFLATED_ARCHIVE = 64 << 30


def normalise(path: str) -> str:
    """A member path without ``./``, leading or doubled slashes (``"./blobs//x"`` → ``"blobs/x"``)."""
    p = posixpath.normpath("/" + path.replace("\\", "/")).lstrip("/")
    return "" if p == "." else p


class Files:
    """Interface of a read-only file tree (see module docstring)."""

    description: str

    def exists(self, path: str) -> bool:
        raise NotImplementedError

    def size(self, path: str) -> int:
        raise NotImplementedError

    def _open(self, path: str) -> tuple[BinaryIO, int, int]:
        """(file object, start offset, length) of ``path``; the caller holds the lock while using it."""
        raise NotImplementedError

    def close(self) -> None:
        """Release open files."""

    _lock: threading.Lock

    def read(self, path: str, *, max_bytes: int) -> bytes:
        """The whole file (cost: one read of its size); over ``max_bytes`` ⇒ :class:`LimitExceeded`."""
        size = self.size(path)
        if size > max_bytes:
            raise LimitExceeded(
                f"{self.description}: {path} is {size} bytes, over the {max_bytes}-byte limit"
            )
        return self.read_range(path, 0, size)

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` (clipped to the file), cost: one seek and read."""
        with self._lock:
            f, start, total = self._open(path)
            offset = max(0, min(offset, total))
            length = max(0, min(length, total - offset))
            f.seek(start + offset)
            data = f.read(length)
        if len(data) != length:
            raise InvalidImage(
                f"{self.description}: {path} is truncated", hint="the file is incomplete; copy it again"
            )
        return data

    @contextlib.contextmanager
    def stream(self, path: str, chunk_size: int = CHUNK) -> Iterator[Iterator[bytes]]:
        """Chunks of the file, in order (cost: reads the file once)."""
        total = self.size(path)

        def chunks() -> Iterator[bytes]:
            pos = 0
            while pos < total:
                data = self.read_range(path, pos, min(chunk_size, total - pos))
                pos += len(data)
                yield data

        yield chunks()


class DirFiles(Files):
    """A directory on disk.  Paths outside the directory (via ``..`` or symlinks) are refused."""

    def __init__(self, root: str) -> None:
        if not os.path.isdir(root):
            kind = "does not exist" if not os.path.exists(root) else "is not a directory"
            raise NotFound(f"reading OCI layout {root!r}: the path {kind}", hint="check the path after oci:")
        self.root = os.path.realpath(root)
        self.description = root
        self._lock = threading.Lock()
        self._handles: dict[str, BinaryIO] = {}

    def _path(self, path: str) -> str:
        full = os.path.realpath(os.path.join(self.root, normalise(path)))
        if full != self.root and not full.startswith(self.root + os.sep):
            raise InvalidImage(f"{self.description}: {path} points outside the layout directory")
        return full

    def exists(self, path: str) -> bool:
        return os.path.isfile(self._path(path))

    def size(self, path: str) -> int:
        try:
            return os.path.getsize(self._path(path))
        except FileNotFoundError:
            raise NotFound(f"{self.description}: {normalise(path)} is missing") from None

    def _open(self, path: str) -> tuple[BinaryIO, int, int]:
        full = self._path(path)
        f = self._handles.get(full)
        if f is None:
            try:
                f = open(full, "rb")  # noqa: SIM115 - kept open for repeated range reads, closed in close()
            except FileNotFoundError:
                raise NotFound(f"{self.description}: {normalise(path)} is missing") from None
            except OSError as exc:
                raise InvalidImage(
                    f"{self.description}: cannot read {normalise(path)}: {exc.strerror}"
                ) from None
            self._handles[full] = f
        return f, 0, os.fstat(f.fileno()).st_size

    def close(self) -> None:
        with self._lock:
            for f in self._handles.values():
                f.close()
            self._handles.clear()


class TarFiles(Files):
    """The regular-file members of a tar archive (a plain tar, as ``docker save``/``oci-archive`` write, or one
    compressed with gzip or zstd, inflated once into a temporary file; ``compression`` says which)."""

    def __init__(self, path: str, what: str) -> None:
        self.description = path
        self._lock = threading.Lock()
        try:
            self._file: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed in close()
        except FileNotFoundError:
            raise NotFound(
                f"reading {what} {path!r}: the file does not exist", hint="check the path"
            ) from None
        except IsADirectoryError:
            raise InvalidImage(
                f"reading {what} {path!r}: it is a directory, not a tar file",
                hint="for a layout directory use oci:DIR",
            ) from None
        except OSError as exc:
            raise InvalidImage(f"reading {what} {path!r}: {exc.strerror}") from None
        self.compression = "none"
        try:
            self._inflate_if_compressed(path, what)
        except BaseException:
            self._file.close()
            raise
        # (tarfile only for an archive: a layout directory's inspect does not import it, ~3 ms)
        import tarfile

        from ociinspect.model.entries import TAR_ERRORS

        # tarfile's errors, the ValueError a hostile header raises, I/O
        archive_errors: tuple[type[Exception], ...] = (*TAR_ERRORS, OSError)
        self._members: dict[str, tuple[int, int]] = {}
        links: dict[str, str] = {}
        try:
            with tarfile.open(fileobj=self._file, mode="r:") as tar:
                for m in tar:
                    name = normalise(m.name)
                    if m.isreg():
                        self._members[name] = (m.offset_data, m.size)
                    elif m.issym():
                        links[name] = normalise(posixpath.join(posixpath.dirname(name), m.linkname))
                    elif m.islnk():
                        links[name] = normalise(m.linkname)
        except archive_errors as exc:
            self._file.close()
            raise InvalidImage(
                f"reading {what} {path!r}: not a readable tar file ({exc})",
                hint="docker-archive: and oci-archive: take a tar (plain, gzip or zstd), as `docker save`/`skopeo copy` write",
            ) from None
        for name, target in links.items():
            for _ in range(16):  # follow link chains, bounded
                if target in self._members:
                    self._members[name] = self._members[target]
                    break
                if target not in links:
                    break
                target = links[target]

    def _inflate_if_compressed(self, path: str, what: str) -> None:
        """Replace ``self._file`` by an inflated anonymous temporary copy when the archive starts with gzip or
        zstd magic bytes.  Cost: one pass over the archive, writing the tar to the temp dir (at most
        :data:`MAX_INFLATED_ARCHIVE` bytes); nothing for a plain tar (4 bytes read)."""
        import tempfile

        kind = compression.sniff(self._file.read(4))
        self._file.seek(0)
        if kind == "none":
            return

        def chunks() -> Iterator[bytes]:
            while data := self._file.read(CHUNK):
                yield data

        label = f"{what} {path!r} ({kind}-compressed)"
        tmp: BinaryIO = tempfile.TemporaryFile(prefix="ociinspect-archive-")  # noqa: SIM115 - kept as _file
        try:
            for piece in compression.decompress(chunks(), what=label, max_output=MAX_INFLATED_ARCHIVE):
                tmp.write(piece)
            tmp.flush()
            tmp.seek(0)
        except LimitExceeded:
            tmp.close()
            raise LimitExceeded(
                f"reading {label}: it inflates to more than {MAX_INFLATED_ARCHIVE} bytes, the limit for a "
                "compressed archive (inflated into the temp dir)",
                hint=f"decompress it yourself (e.g. `{'gunzip' if kind == 'gzip' else 'unzstd'} -k FILE`) and "
                "pass the .tar",
            ) from None
        except OSError as exc:
            tmp.close()
            raise InvalidImage(
                f"reading {label}: cannot inflate it into the temp dir ({exc.strerror or exc})",
                hint="free space in the temp dir (or set TMPDIR), or decompress the archive yourself",
            ) from None
        except BaseException:
            tmp.close()
            raise
        self._file.close()
        self._file = tmp
        self.compression = kind

    def exists(self, path: str) -> bool:
        return normalise(path) in self._members

    def names(self) -> list[str]:
        return sorted(self._members)

    def size(self, path: str) -> int:
        try:
            return self._members[normalise(path)][1]
        except KeyError:
            raise NotFound(f"{self.description}: the archive has no member {normalise(path)!r}") from None

    def _open(self, path: str) -> tuple[BinaryIO, int, int]:
        start, size = self._members.get(normalise(path), (-1, 0))
        if start < 0:
            raise NotFound(f"{self.description}: the archive has no member {normalise(path)!r}")
        return self._file, start, size

    def close(self) -> None:
        with self._lock:
            self._file.close()
