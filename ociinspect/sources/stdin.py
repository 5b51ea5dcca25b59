"""``docker-archive:-`` and ``oci-archive:-``: an archive piped on standard input.

Tar archives are read by seeking (members by offset), so standard input is copied once into a temporary file in
the temp dir; the archive source opens that file and the file's name is removed at once (the open handle keeps
the bytes until the source closes, and nothing is left behind if the process dies).  Standard input can be read
once per process: a second ``-`` reference is refused.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import BinaryIO, TypeVar

from ociinspect.errors import InvalidImage, LimitExceeded, OciInspectError, UsageError
from ociinspect.model.reference import Reference

__all__ = ["STDIN_PATH", "open_stdin_archive", "spool"]

#: the path that names standard input in ``docker-archive:-`` / ``oci-archive:-``
STDIN_PATH = "-"
#: the most bytes copied from standard input (the same cap as an inflated compressed archive)
MAX_STDIN_BYTES = 64 << 30
_CHUNK = 1 << 20
_S = TypeVar("_S")
_lock = threading.Lock()
_used = False


def spool(stream: BinaryIO, *, what: str, max_bytes: int = MAX_STDIN_BYTES) -> str:
    """Copy ``stream`` into a new temporary file and return its path (the caller removes it).

    Cost: one pass over the stream, writing as many bytes to the temp dir (at most ``max_bytes``,
    :class:`LimitExceeded` beyond); memory: one 1 MiB chunk.
    """
    fd, path = tempfile.mkstemp(prefix="ociinspect-stdin-", suffix=".tar")
    try:
        total = 0
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(_CHUNK):
                total += len(chunk)
                if total > max_bytes:
                    raise LimitExceeded(
                        f"{what}: standard input is more than {max_bytes} bytes, the limit for a piped archive",
                        hint="save the archive to a file and pass its path instead of -",
                    )
                out.write(chunk)
        if total == 0:
            raise InvalidImage(
                f"{what}: nothing was read from standard input",
                hint="pipe an archive in, e.g. `docker save app | ociinspect inspect docker-archive:-`",
            )
    except OSError as exc:
        os.unlink(path)
        raise InvalidImage(
            f"{what}: cannot copy standard input into the temp dir ({exc.strerror or exc})",
            hint="free space in the temp dir (or set TMPDIR), or save the archive to a file",
        ) from None
    except BaseException:
        os.unlink(path)
        raise
    return path


def open_stdin_archive(reference: Reference, opener: Callable[[Reference], _S]) -> _S:
    """Open ``reference`` (``docker-archive:-…`` or ``oci-archive:-…``) from standard input with ``opener``
    (the local-source opener, called with the spooled file's path); the temp file's name is removed before
    this returns.  The source keeps ``reference`` (``…:-``) for its messages.

    Cost: that of :func:`spool`, then of opening the archive.  Raises :class:`UsageError` when standard input is
    a terminal or was already read for another reference.
    """
    global _used
    what = f"reading {reference}"
    with _lock:
        if _used:
            raise UsageError(
                f"{what}: standard input was already read for another reference",
                hint="only one reference can read standard input (-); save the other archive to a file",
            )
        stream = sys.stdin.buffer if sys.stdin is not None else None
        if stream is None or stream.isatty():
            raise UsageError(
                f"{what}: standard input is a terminal, not an archive",
                hint="pipe one in, e.g. `docker save app | ociinspect inspect docker-archive:-`",
            )
        _used = True
        path = spool(stream, what=what)
    try:
        import dataclasses

        source = opener(dataclasses.replace(reference, path=path))
    except OciInspectError as exc:  # name what the user gave, not the spooled file (whose name is gone)
        exc.message = exc.message.replace(repr(path), "'-' (standard input)").replace(path, "-")
        exc.args = (exc.message,)
        raise
    finally:
        os.unlink(path)  # the open archive keeps its bytes; no name is left in the temp dir
    source.reference = reference  # type: ignore[attr-defined]
    return source
