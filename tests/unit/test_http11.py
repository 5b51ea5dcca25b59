"""The transport's own HTTP/1.1 framing (ociinspect/registry/http11.py, issue 14 target 3): what a request looks
like on the wire, how an answer's status line, fields and body are read (Content-Length, chunked, until the
connection closes), and that every framing a hostile server can send is bounded: a ProtocolError (or a
RemoteDisconnected reset), never another exception, never an unbounded read.  Over a socketpair; no timings."""

from __future__ import annotations

import functools
import itertools
import random
import re
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ociinspect.registry.http11 import (
    MAX_FIELDS,
    MAX_HEAD,
    MAX_INTERIM,
    MAX_LINE,
    Answer,
    IncompleteRead,
    ProtocolError,
    RemoteDisconnected,
    _blank,
    encode_request,
    read_answer,
)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    ours.settimeout(5)
    yield ours, theirs
    ours.close()
    theirs.close()


def answer_to(
    pair: tuple[socket.socket, socket.socket], raw: bytes, method: str = "GET", close: bool = True
) -> Answer:
    ours, theirs = pair
    writer = threading.Thread(target=theirs.sendall, args=(raw,))
    writer.start()
    if close:
        writer.join()
        theirs.shutdown(socket.SHUT_WR)
    answer = read_answer(ours, method)
    writer.join()
    return answer


def body_of(answer: Answer, size: int = 7) -> bytes:
    out = b""
    while chunk := answer.read(size):
        out += chunk
    return out


def test_a_request_on_the_wire() -> None:
    raw = encode_request("GET", "/v2/a/manifests/latest", {"Host": "h:5000", "Accept": "x, y"}, None)
    assert raw == b"GET /v2/a/manifests/latest HTTP/1.1\r\nHost: h:5000\r\nAccept: x, y\r\n\r\n"
    form = encode_request("POST", "/token", {"Host": "h"}, b"a=b")
    assert form.endswith(b"Content-Length: 3\r\n\r\na=b")
    assert encode_request("POST", "/t", {}, None).endswith(b"Content-Length: 0\r\n\r\n")


@pytest.mark.parametrize(
    ("method", "target", "headers"),
    [
        ("GET", "/a b", {}),  # a space would end the target
        ("GET", "/a\r\nX-Evil: 1", {}),  # a second header smuggled through the path
        ("GET", "", {}),
        ("GE T", "/", {}),
        ("GET", "/", {"Authorization": "Bearer a\r\nX-Evil: 1"}),  # a token with a line break
        ("GET", "/", {"Authorization": "Bearer a\nb"}),
        ("GET", "/", {"X": "a\x00b"}),
        ("GET", "/", {"Bad Name": "v"}),
        ("GET", "/", {"X-Caf\u00e9": "v"}),
        ("GET", "/", {"X": "\u20ac"}),  # outside ISO-8859-1: a UnicodeError, a ValueError
    ],
)
def test_values_that_cannot_be_written_are_value_errors(
    method: str, target: str, headers: dict[str, str]
) -> None:
    with pytest.raises(ValueError):
        encode_request(method, target, headers, None)


def test_content_length_body_and_keep_alive(pair: tuple[socket.socket, socket.socket]) -> None:
    answer = answer_to(pair, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-A: 1\r\nx-a: 2\r\n\r\n0123456789")
    assert (answer.status, answer.reason, answer.fields["X-A"]) == (200, "OK", "1, 2")
    assert not answer.will_close and not answer.complete
    assert body_of(answer, 3) == b"0123456789" and answer.complete and answer.read(5) == b""


def test_chunked_body_with_extensions_and_trailer(pair: tuple[socket.socket, socket.socket]) -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n5;ext=1\r\nhello\r\nA \r\n0123456789\r\n0\r\nT: x\r\n\r\n"
    answer = answer_to(pair, raw)
    assert answer.chunked and body_of(answer, 4) == b"hello0123456789" and answer.complete
    assert not answer.will_close


def test_body_until_close_and_http10(pair: tuple[socket.socket, socket.socket]) -> None:
    answer = answer_to(pair, b"HTTP/1.0 200 OK\r\n\r\nall of it")
    assert answer.will_close and body_of(answer) == b"all of it" and answer.complete


@pytest.mark.parametrize(
    ("raw", "method", "will_close"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", "HEAD", False),
        (b"HTTP/1.1 204 No Content\r\n\r\n", "GET", False),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", "GET", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", "GET", True),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n", "GET", False),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: <x>\r\n\r\nHTTP/1.1 204 OK\r\n\r\n",
            "GET",
            False,
        ),
    ],
)
def test_bodiless_answers_are_complete_at_once(
    pair: tuple[socket.socket, socket.socket], raw: bytes, method: str, will_close: bool
) -> None:
    answer = answer_to(
        pair, raw, method, close=False
    )  # the server keeps the connection open: no read may wait
    assert answer.complete and answer.read(10) == b"" and answer.will_close is will_close


def test_repeated_equal_content_lengths_count_once_and_conflicting_ones_read_until_close(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    answer = answer_to(
        pair, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", close=False
    )
    assert body_of(answer) == b"abc" and not answer.will_close
    ours, theirs = socket.socketpair()
    try:
        answer = answer_to((ours, theirs), b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabcd")
        assert answer.length is None and answer.will_close and body_of(answer) == b"abcd"
    finally:
        ours.close()
        theirs.close()


HOSTILE = [
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",  # not a chunk size
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nabc\r\n0\r\n\r\n",  # a negative one
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nabcde\r\n0\r\n\r\n",  # int(x, 16) would take it
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"f" * 17 + b"\r\n",  # more than 16 hex digits
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"1" * (MAX_LINE + 10)
    + b"\r\n",  # too long a line
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY5\r\n",  # no CRLF after the chunk's data
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",  # the connection ends inside a chunk
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",  # ... before the last chunk
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + b"T: x\r\n" * (MAX_FIELDS + 5) + b"\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",  # shorter than announced
    b"SSH-2.0-OpenSSH_9.6\r\n",  # not HTTP at all
    b"HTTP/2 200\r\n\r\n",
    b"HTTP/1.1 abc OK\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"HTTP/1.1 \xd9\xa2\xd9\xa0\xd9\xa0 OK\r\n\r\n",  # Arabic-Indic digits: isdigit() alone would take them
    b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * (MAX_FIELDS + 1) + b"\r\n",
    b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * (MAX_LINE + 10) + b"\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n" * (MAX_INTERIM + 1) + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
    b"",  # closed without an answer
]


@pytest.mark.parametrize("raw", HOSTILE)
def test_hostile_framing_is_a_protocol_error(pair: tuple[socket.socket, socket.socket], raw: bytes) -> None:
    with pytest.raises((ProtocolError, RemoteDisconnected)):
        body_of(answer_to(pair, raw))


def test_a_body_cut_short_is_an_incomplete_read_after_the_bytes_that_came(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    answer = answer_to(pair, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    assert answer.read(100) == b"abc"
    with pytest.raises(IncompleteRead):
        answer.read(100)
    assert answer.read(100) == b""  # the answer is closed: nothing more, and never reused


def test_any_chunking_of_any_body_reads_back_the_same(pair: tuple[socket.socket, socket.socket]) -> None:
    """Property test (seeded, 200 cases): a random body, cut into random chunks (with random extensions and
    upper/lower-case hex), read with random read sizes, equals the body; the answer completes and stays
    reusable."""
    rng = random.Random(14)
    ours, theirs = pair
    for _ in range(200):
        body = rng.randbytes(rng.randrange(0, 5000))
        raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        pos = 0
        while pos < len(body):
            size = rng.randrange(1, 1500)
            piece = body[pos : pos + size]
            pos += size
            hex_size = format(len(piece), rng.choice(["x", "X"])).encode()
            raw += hex_size + (b";a=b" if rng.random() < 0.2 else b"") + b"\r\n" + piece + b"\r\n"
        raw += b"0\r\n\r\n"
        writer = threading.Thread(target=theirs.sendall, args=(raw,))
        writer.start()
        answer = read_answer(ours, "GET")
        got = b""
        while chunk := answer.read(rng.randrange(1, 3000)):
            got += chunk
        writer.join()
        assert got == body and answer.complete and not answer.will_close


class _Pieces:
    """A socket stand-in whose ``recv`` hands out the bytes in pieces of the sizes ``sizes`` draws (then ``b""``)."""

    def __init__(self, data: bytes, sizes: Callable[[], int]) -> None:
        self.data = data
        self.sizes = sizes

    def recv(self, n: int) -> bytes:
        size = min(n, self.sizes())
        piece, self.data = self.data[:size], self.data[size:]
        return piece


VALID = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-A: 1\r\nx-a: 2\r\n\r\n0123456789",
    b"HTTP/1.1 200 OK\nContent-Length: 3\n\nabc",  # bare LF line ends
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"5;x=y\r\nhello\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nX: folded\r\n  more\r\n\r\nuntil the end",
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nX: no blank line before the end",  # the connection's end ends the header block
]


def _parse(data: bytes, sizes: Callable[[], int]) -> tuple[int, dict[str, str], bytes]:
    answer = read_answer(_Pieces(data, sizes), "GET")  # type: ignore[arg-type]
    return answer.status, dict(answer.fields.items()), body_of(answer, 4)


@pytest.mark.parametrize("raw", VALID)
def test_an_answer_reads_the_same_in_any_pieces(raw: bytes) -> None:
    """Property test (seeded): the status, fields and body do not depend on how the bytes arrive (1 byte at a
    time, a blank line split across reads, random pieces)."""
    whole = _parse(raw, lambda: 1 << 20)
    assert whole[0] in (200, 404)
    rng = random.Random(raw)
    for sizes in ([1], [2], [3], [1, 3, 2]):
        assert _parse(raw, functools.partial(next, itertools.cycle(sizes))) == whole
    for _ in range(50):
        assert _parse(raw, lambda: rng.randrange(1, 9)) == whole


_BLANK_LINE = re.compile(rb"\r?\n\r?\n")  # what ends a header block, as the reader once searched for it


@given(st.binary(max_size=24).map(lambda b: bytes(b"\r\n:a "[x % 5] for x in b)), st.integers(0, 6))
def test_the_blank_line_finder_finds_what_the_regex_finds(buf: bytes, pos: int) -> None:
    """Property test: two ``find`` scans give the leftmost ``\\r?\\n\\r?\\n`` at or after ``pos`` (its start and
    end), in bytes and bytearrays alike."""
    m = _BLANK_LINE.search(buf, pos)
    assert _blank(buf, pos) == _blank(bytearray(buf), pos) == ((m.start(), m.end()) if m else (-1, -1))


def test_a_header_block_without_end_is_bounded() -> None:
    endless = b"HTTP/1.1 200 OK\r\n" + b"X: " + b"a" * (MAX_HEAD + 10)
    with pytest.raises(ProtocolError):
        read_answer(_Pieces(endless, lambda: 1 << 16), "GET")  # type: ignore[arg-type]
