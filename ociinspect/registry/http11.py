"""HTTP/1.1 framing for the registry transport: one request written as bytes, one answer read from a socket —
its status line, header fields and body (``Content-Length``, ``chunked``, or until the connection closes).

No connections, pools, TLS, proxies or policies here (:mod:`ociinspect.registry.transport` has those), and no
:mod:`http.client`: importing it brings :mod:`email` and :mod:`ssl` (~10–15 ms of a loopback ``inspect``'s
start-up, issue 14), and its header parsing goes through the :mod:`email` package (~50 µs per answer).

Everything a server sends is bounded: a header block at most :data:`MAX_HEAD` bytes, a status or header line
at most :data:`MAX_LINE`, at most :data:`MAX_FIELDS` header fields and :data:`MAX_INTERIM` interim (1xx)
answers, a chunk size at most 16 hex digits, a trailer at most :data:`MAX_FIELDS` lines.  Anything else is a
:class:`ProtocolError` (a server that closes before answering: :class:`RemoteDisconnected`, a
:class:`ConnectionResetError`); socket errors and timeouts pass through as :class:`OSError`.  Cost: the header
block found with one search per piece received (one ``recv`` for a small answer) and decoded once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, TypeVar, overload

from ociinspect.model.textsafe import parse_uint

if TYPE_CHECKING:
    from _socket import socket as Socket

__all__ = [
    "MAX_FIELDS",
    "MAX_HEAD",
    "MAX_INTERIM",
    "MAX_LINE",
    "Answer",
    "Headers",
    "IncompleteRead",
    "ProtocolError",
    "RemoteDisconnected",
    "encode_request",
    "header_fields",
    "read_answer",
]

MAX_LINE = 65536  #: bytes of a status, header, chunk-size or trailer line (as http.client)
MAX_FIELDS = 100  #: header fields of one answer, lines of one trailer (as http.client)
MAX_INTERIM = 16  #: interim (1xx) answers skipped before the final one
MAX_HEAD = 1 << 20  #: bytes of one status line and header block
_RECV = 64 * 1024  #: bytes asked of the socket per read while looking for the end of the header block

_T = TypeVar("_T")


class ProtocolError(Exception):
    """The server broke HTTP/1.1's framing: the connection cannot carry another request."""


class IncompleteRead(ProtocolError):
    """The connection ended before the body did (``Content-Length`` bytes, or inside a chunk)."""


class RemoteDisconnected(ConnectionResetError):
    """The server closed the connection without answering (a kept-alive connection it had dropped)."""


class Headers(Mapping[str, str]):
    """A response's header fields: read-only, case-insensitive; a field sent several times reads as its values
    joined by ``", "`` (RFC 9110 §5.3).  Cost: one dict built per response."""

    __slots__ = ("_fields",)

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        found: dict[str, tuple[str, str]] = {}
        for name, value in fields:
            key = name.lower()
            old = found.get(key)
            found[key] = (name, value) if old is None else (old[0], f"{old[1]}, {value}")
        self._fields = found

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()][1]

    @overload
    def get(self, name: str, /) -> str | None: ...
    @overload
    def get(self, name: str, /, default: str | _T) -> str | _T: ...

    def get(self, name: str, /, default: object = None) -> object:
        field = self._fields.get(name.lower())
        return default if field is None else field[1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._fields.values())

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"Headers({dict(self._fields.values())!r})"


def header_fields(lines: Iterable[str]) -> Headers:
    """The header block's fields from its lines (bytes read as ISO-8859-1, line ends removed): ``Name: value``
    lines, a line starting with a space or tab continuing the previous field (obsolete folding), a line without
    a name skipped.  Cost: one pass."""
    pairs: list[tuple[str, str]] = []
    for line in lines:
        if not line:
            continue
        if line[0] in " \t":
            if pairs:
                name, value = pairs[-1]
                more = line.strip(" \t")
                pairs[-1] = (name, f"{value} {more}".strip(" "))
            continue
        name, sep, value = line.partition(":")
        if sep and name and name == name.strip():
            pairs.append((name, value.strip(" \t")))
    return Headers(pairs)


# what may not appear in a request target (http.client's rule: controls, space, DEL); a header value may hold no
# CR, LF or NUL (checked with `in`: encode_request)
_BAD_TARGET_RE = re.compile(r"[\x00-\x20\x7f]")
_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEX_RE = re.compile(rb"[0-9A-Fa-f]{1,16}")


#: methods and field names already found to be tokens (a request sends the same few: checked once each)
_TOKENS: set[str] = set()


def _token(name: str) -> bool:
    """True when ``name`` is an HTTP token; remembered (at most 256 names) so the next request skips the match."""
    if name in _TOKENS:
        return True
    if not _TOKEN_RE.fullmatch(name):
        return False
    if len(_TOKENS) < 256:
        _TOKENS.add(name)
    return True


def encode_request(method: str, target: str, headers: Mapping[str, str], body: bytes | None) -> bytes:
    """The request's bytes: ``METHOD target HTTP/1.1``, the fields (``Host`` first when given), then ``body``
    with its ``Content-Length``.  Raises ValueError (a UnicodeError for a value outside ISO-8859-1) for a method
    or field name that is no token, a target with spaces or control characters, a value with CR, LF or NUL: a
    value the registry sent cannot smuggle a header or a second request.  Cost: one join."""
    if not _token(method):
        raise ValueError(f"unusable HTTP method {method!r}")
    if not target or _BAD_TARGET_RE.search(target):
        raise ValueError("the request target contains spaces or control characters")
    lines = [f"{method} {target} HTTP/1.1"]
    for name, value in headers.items():
        if not _token(name):
            raise ValueError(f"unusable header name {name[:40]!r}")
        if "\r" in value or "\n" in value or "\0" in value:
            raise ValueError(f"the {name} header's value contains a line break or NUL")
        lines.append(f"{name}: {value}")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("iso-8859-1")
    return head + body if body else head


def _blank(buf: bytes | bytearray, pos: int) -> tuple[int, int]:
    """``(start, end)`` of the first blank line at or after ``pos`` that ends a header block — what
    ``re.search(rb"\\r?\\n\\r?\\n", buf, pos)`` finds (a bare LF accepted for CRLF, as http.client does) —
    or ``(-1, -1)``.  Cost: two ``find`` scans (memchr speed; the regex tried a match at every byte)."""
    crlf, lf = buf.find(b"\n\r\n", pos), buf.find(b"\n\n", pos)
    if crlf < 0 and lf < 0:
        return -1, -1
    # the first LF that a [CR] LF follows; the blank line starts at the CR before it, if any
    at, end = (crlf, crlf + 3) if lf < 0 or 0 <= crlf < lf else (lf, lf + 2)
    return (at - 1 if at > pos and buf[at - 1] == 13 else at), end


class _Reader:
    """Buffered reads from a socket for one answer: its header block (:meth:`head`), then lines and bytes of its
    body.  What was received and not yet handed out is ``_buf[_pos:]``; bytes received past the answer's end are
    dropped with the reader.  Cost: one ``recv`` per piece, linear in the bytes received however they are cut
    (nothing is copied again for each line or chunk)."""

    __slots__ = ("_buf", "_pos", "_sock")

    def __init__(self, sock: Socket) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def _more(self, limit: int, find: Callable[[bytearray, int], int]) -> tuple[bytearray, int]:
        """Receive until ``find(buffer, start)`` — ``start``: where the new piece begins — gives a position (≥ 0)
        or the connection ends (-1): the buffer (what was left, then the new pieces) and that position.  Raises :class:`ProtocolError` once the buffer
        holds more than ``limit`` bytes without it."""
        grown = bytearray(self._buf[self._pos :])  # searched already
        self._buf, self._pos = b"", 0
        while True:
            if len(grown) > limit:
                raise ProtocolError(f"more than {limit} bytes without the end of a line or header block")
            data = self._sock.recv(_RECV)
            if not data:
                return grown, -1
            start = len(grown)
            grown += data
            found = find(grown, start)
            if found >= 0:
                return grown, found

    def head(self) -> list[str]:
        """The lines of the next status line and header block (ISO-8859-1, line ends removed), up to the blank
        line; a connection that ends before it ends the block.  Raises :class:`RemoteDisconnected` when the
        connection ends before any byte, :class:`ProtocolError` past :data:`MAX_HEAD` bytes or for a line past
        :data:`MAX_LINE`, :data:`MAX_FIELDS` fields."""
        at, end = _blank(self._buf, self._pos)
        if at >= 0:
            head = self._buf[self._pos : at]
            self._pos = end
        else:

            def find(buf: bytearray, start: int) -> int:
                return _blank(buf, max(0, start - 3))[0]

            grown, at = self._more(MAX_HEAD, find)
            if at < 0:
                if not grown:
                    raise RemoteDisconnected("the server closed the connection without an answer")
                head = bytes(grown)
            else:
                end = _blank(grown, at)[1]  # the blank line found at ``at``: where it ends
                head, self._buf, self._pos = bytes(grown[:at]), bytes(grown), end
        lines = head.decode("iso-8859-1").split("\n")
        if len(lines) > MAX_FIELDS + 1:
            raise ProtocolError(f"more than {MAX_FIELDS} header fields")
        out = []
        for line in lines:
            if len(line) > MAX_LINE:
                raise ProtocolError(f"a status or header line longer than {MAX_LINE} bytes")
            out.append(line[:-1] if line.endswith("\r") else line)
        return out

    def readline(self, what: str) -> bytes:
        """One line of the body's framing (a chunk size, a trailer field), its line end included; what is left
        at the connection's end (``b""`` there).  Raises :class:`ProtocolError` for ``what`` past
        :data:`MAX_LINE` bytes."""
        buf, pos = self._buf, self._pos
        end = buf.find(b"\n", pos, pos + MAX_LINE)
        if end >= 0:
            self._pos = end + 1
            return buf[pos : end + 1]
        if len(buf) - pos >= MAX_LINE:
            raise ProtocolError(f"{what} longer than {MAX_LINE} bytes")
        try:
            grown, at = self._more(MAX_LINE, lambda b, start: b.find(b"\n", start, MAX_LINE))
        except ProtocolError:
            raise ProtocolError(f"{what} longer than {MAX_LINE} bytes") from None
        if at < 0:
            return bytes(grown)
        self._buf, self._pos = bytes(grown), at + 1
        return self._buf[: at + 1]

    def read(self, amount: int) -> bytes:
        """Up to ``amount`` bytes: fewer only at the connection's end (``b""`` there).  Cost: what the buffer
        holds, then one ``recv`` per piece the socket gives."""
        buf, pos = self._buf, self._pos
        if len(buf) - pos >= amount:
            self._pos = pos + amount
            return buf[pos : pos + amount]
        parts = [buf[pos:]]
        have = len(buf) - pos
        self._buf, self._pos = b"", 0
        while have < amount:
            data = self._sock.recv(amount - have)
            if not data:
                break
            parts.append(data)
            have += len(data)
        return b"".join(parts)


def _status_line(line: str) -> tuple[int, int, str]:
    """``(version 10/11, status, reason)`` of a status line."""
    parts = line.split(None, 2)
    if len(parts) < 2 or parts[0] not in ("HTTP/1.0", "HTTP/1.1"):
        raise ProtocolError(f"not an HTTP/1.x status line: {line[:40]!r}")
    code = parts[1]
    if len(code) != 3 or not code.isascii() or not code.isdigit() or code[0] == "0":
        raise ProtocolError(f"not an HTTP status code: {code[:10]!r}")
    return (10 if parts[0] == "HTTP/1.0" else 11), int(code), (parts[2] if len(parts) > 2 else "")


class Answer:
    """One answer read from a connection: ``status``, ``reason``, ``fields`` (:class:`Headers`); its body read
    with :meth:`read`.  ``complete``: the body was read to its end (a HEAD, 204, 304 or empty body at once);
    ``will_close``: the server will close the connection after it (``Connection: close``, HTTP/1.0 without
    keep-alive, a body that ends with the connection)."""

    __slots__ = (
        "_chunk_left",
        "_fp",
        "chunked",
        "complete",
        "fields",
        "length",
        "reason",
        "status",
        "will_close",
    )

    def __init__(self, reader: _Reader, method: str) -> None:
        self._fp: _Reader | None = reader
        for _ in range(MAX_INTERIM + 1):
            lines = reader.head()
            version, status, reason = _status_line(lines[0])
            if not 100 <= status < 200 or status == 101:
                break  # else an interim answer (100 Continue, 103 Early Hints): its fields skipped
        else:
            raise ProtocolError(f"more than {MAX_INTERIM} interim (1xx) answers")
        if status == 101:
            raise ProtocolError("the server switched protocols (HTTP 101) unasked")
        self.status = status
        self.reason = reason.strip()
        fields = self.fields = header_fields(lines[1:])
        tokens = {t.strip().lower() for t in (fields.get("connection") or "").split(",")}
        self.will_close = "close" in tokens if version == 11 else "keep-alive" not in tokens
        self.chunked = (fields.get("transfer-encoding") or "").strip().lower() == "chunked"
        self._chunk_left: int | None = None
        #: body bytes still to come (None: chunked, or until the connection closes)
        self.length: int | None = None
        if not self.chunked:
            self.length = _content_length(fields.get("content-length"))
        if method == "HEAD" or status in (204, 304) or (method == "CONNECT" and 200 <= status < 300):
            self.length, self.chunked = 0, False
        if self.length is None and not self.chunked:
            self.will_close = True  # the body ends when the connection does
        self.complete = False
        if self.length == 0:
            self._finish()

    def read(self, amount: int) -> bytes:
        """Up to ``amount`` (> 0) bytes of the body; ``b""`` at its end.  Raises :class:`IncompleteRead` when the
        connection ends early or the chunked framing is broken, :class:`OSError` on a reset or timeout."""
        fp = self._fp
        if fp is None:
            return b""
        if self.chunked:
            return self._read_chunk(fp, amount)
        if self.length is None:
            data = fp.read(amount)
            if not data:
                self._finish()
            return data
        data = fp.read(min(amount, self.length))
        if not data:
            self.close()
            raise IncompleteRead(f"the connection ended {self.length} bytes before the announced length")
        self.length -= len(data)
        if not self.length:
            self._finish()
        return data

    def _read_chunk(self, fp: _Reader, amount: int) -> bytes:
        left = self._chunk_left
        if not left:
            # the CRLF after the previous chunk's data
            if left == 0 and fp.readline("a chunk's end") not in (b"\r\n", b"\n"):
                raise self._broken("no line break after a chunk")
            line = fp.readline("a chunk-size line")
            size = _HEX_RE.fullmatch(line.split(b";", 1)[0].strip(b" \t\r\n"))
            if size is None:
                raise self._broken(f"not a chunk size: {line[:20]!r}")
            left = int(size.group(0), 16)
            if left == 0:
                for _ in range(MAX_FIELDS + 1):  # the trailer's fields: skipped
                    if fp.readline("a trailer line") in (b"\r\n", b"\n", b""):
                        self._finish()
                        return b""
                raise self._broken(f"a trailer of more than {MAX_FIELDS} lines")
        data = fp.read(min(amount, left))
        if not data:
            raise self._broken("the connection ended inside a chunk")
        self._chunk_left = left - len(data)
        return data

    def _broken(self, why: str) -> IncompleteRead:
        self.close()
        return IncompleteRead(why)

    def _finish(self) -> None:
        self.complete = True
        self.close()

    def close(self) -> None:
        """Stop reading: the reader and what it holds are dropped (the socket stays the connection's)."""
        self._fp = None


def _content_length(value: str | None) -> int | None:
    """``Content-Length`` as int (the same value repeated counts once), None when absent or unusable: then the
    body ends with the connection."""
    if value is None:
        return None
    values = {v.strip() for v in value.split(",")}
    if len(values) != 1:
        return None
    (text,) = values
    return parse_uint(text, max_digits=19)  # ASCII digits only: "²" or "١" is no length


def read_answer(sock: Socket, method: str) -> Answer:
    """Read the answer to ``method`` from ``sock`` up to its body.  Raises :class:`ProtocolError`,
    :class:`RemoteDisconnected` or :class:`OSError`."""
    return Answer(_Reader(sock), method)
