"""The transport's own HTTP/1.1 client (issue 14, targets 3 and 5): what it sends, kept-alive connections,
a pooled connection the server closed, repeated header fields, ``Link`` pages, proxies from the environment
(``CONNECT`` for https), hostile URLs and header values; and the origin of a URL parsed once per prefix.
No timings."""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from harness.fakeserver import FakeServer, Reply, Req
from hypothesis import given
from hypothesis import strategies as st

from ociinspect import errors
from ociinspect.registry import HostSettings, RegistryClient, http11
from ociinspect.registry import transport as transport_mod
from ociinspect.registry.transport import Headers, RegistrySettings, _origin, parse_links
from tests.unit.test_transport import MANIFEST_DIGEST, manifest_reply, plain, scripted


def test_requests_carry_our_headers_no_cookies_and_share_one_connection() -> None:
    seen: list[Req] = []

    def app(req: Req) -> Reply:
        seen.append(req)
        return Reply(200, {"Content-Type": "application/json", "Set-Cookie": "a=b; Path=/"}, b"{}")

    server = FakeServer(app)
    try:
        with RegistryClient(RegistrySettings()) as client:
            for _ in range(3):  # the loopback plain-HTTP probe, then three pings
                client.ping(server.host)
    finally:
        server.close()
    assert len(seen) == 4
    assert server.connections == 1  # kept alive: one TCP connection for the probe and the three pings
    for req in seen:
        assert req.headers["accept-encoding"] == "identity"
        assert req.headers["user-agent"].startswith("ociinspect/")
        assert "cookie" not in req.headers and "authorization" not in req.headers


def test_a_pooled_connection_the_server_dropped_is_replaced_at_once(serve: Callable[..., FakeServer]) -> None:
    """No retries allowed: the second request meets a hang-up on the kept-alive connection and is sent again on
    a new one at once; a hang-up on a *new* connection is an error (retries=0)."""
    server = serve(scripted(manifest_reply(), Reply(hang_up=True), manifest_reply()))
    with RegistryClient(plain(retries=0)) as client:
        assert client.get_manifest(server.host, "a/b", "latest").digest == MANIFEST_DIGEST
        assert client.get_manifest(server.host, "a/b", "latest").digest == MANIFEST_DIGEST
    assert len(server.requests) == 3 and server.connections == 2
    fresh = serve(scripted(Reply(hang_up=True)))
    with RegistryClient(plain(retries=0)) as client, pytest.raises(errors.ConnectionFailed):
        client.get_manifest(fresh.host, "a/b", "latest")
    assert len(fresh.requests) == 1


def test_a_connection_is_not_reused_after_a_body_left_unread(serve: Callable[..., FakeServer]) -> None:
    big = Reply(200, {"Content-Type": "application/octet-stream"}, b"x" * 300_000)
    server = serve(scripted(big, manifest_reply()))
    with RegistryClient(plain()) as client:
        transport = client._transport
        response = transport.request("GET", f"http://{server.host}/v2/x/blobs/y", what="test")
        assert response.read(10) == b"x" * 10
        response.close()  # 299,990 bytes unread: the connection cannot carry another answer
        assert client.get_manifest(server.host, "a/b", "latest").digest == MANIFEST_DIGEST
    assert server.connections == 2


def test_repeated_header_fields_read_as_one_and_names_ignore_case() -> None:
    headers = Headers([("WWW-Authenticate", 'Bearer realm="a"'), ("www-authenticate", "Basic"), ("X", "1")])
    assert headers["www-authenticate"] == 'Bearer realm="a", Basic'
    assert headers.get("x") == "1" and headers.get("missing") is None and headers.get("missing", "") == ""
    assert "WWW-AUTHENTICATE" in headers and 3 not in headers
    assert list(headers) == ["WWW-Authenticate", "X"] and len(headers) == 2


def test_the_header_block_is_read_without_the_email_parser() -> None:
    lines = ["A: 1", "B:  x ", "\tcontinued ", "no colon", " lead: no", "a:2"]
    fields = http11.header_fields([*lines, b"Caf\xe9: \xff".decode("iso-8859-1"), "Empty:", ""])
    assert dict(fields.items()) == {"A": "1, 2", "B": "x continued lead: no", "Caf\xe9": "\xff", "Empty": ""}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('</v2/_catalog?last=b&n=2>; rel="next"', {"next": "/v2/_catalog?last=b&n=2"}),
        ("<a>; rel=prev, <b>; rel=next", {"prev": "a", "next": "b"}),
        ("<only>", {"only": "only"}),
        ('garbage, <x>; rel="next"; title="y"', {"next": "x"}),
        ("", {}),
        ("<unclosed; rel=next", {}),
    ],
)
def test_link_header_parsing(value: str, expected: dict[str, str]) -> None:
    assert {key: link["url"] for key, link in parse_links(value).items()} == expected


def test_http_proxy_from_the_environment_and_no_proxy(
    serve: Callable[..., FakeServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = serve(scripted(manifest_reply()))
    proxy = serve(scripted(manifest_reply()))
    monkeypatch.setenv("HTTP_PROXY", f"http://pr%40xy:s3cret@{proxy.host}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with RegistryClient(plain()) as client:
        client.get_manifest(registry.host, "a/b", "latest")
    assert [r.path for r in proxy.requests] == [f"http://{registry.host}/v2/a/b/manifests/latest"]
    assert proxy.requests[0].headers["host"] == registry.host and not registry.requests
    assert proxy.requests[0].headers["proxy-authorization"] == "Basic cHJAeHk6czNjcmV0"  # pr@xy:s3cret
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with RegistryClient(plain()) as client:
        client.get_manifest(registry.host, "a/b", "latest")
    assert len(proxy.requests) == 1 and [r.path for r in registry.requests] == ["/v2/a/b/manifests/latest"]


class _Loopback:
    """A server on 127.0.0.1 that hands each connection to :meth:`handle` in a thread of its own."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    @staticmethod
    def read_head(conn: socket.socket) -> bytes:
        """A request's line and headers (up to the blank line; what came before the end if it never came)."""
        head = b""
        while b"\r\n\r\n" not in head:
            data = conn.recv(4096)
            if not data:
                break
            head += data
        return head

    def close(self) -> None:
        self.listener.close()


class _ConnectProxy(_Loopback):
    """A minimal HTTP CONNECT proxy on 127.0.0.1 that records each CONNECT line and its headers."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        super().__init__()

    def handle(self, client: socket.socket) -> None:
        head = self.read_head(client)
        if b"\r\n\r\n" not in head:
            return
        lines = head.split(b"\r\n")
        target = lines[0].split()[1].decode()
        auth = next((ln.decode() for ln in lines if ln.lower().startswith(b"proxy-authorization:")), "")
        self.seen.append((target, auth))
        host, port = target.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

        def pipe(a: socket.socket, b: socket.socket) -> None:
            try:
                while data := a.recv(65536):
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)

        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)


@pytest.fixture
def connect_proxy() -> Iterator[_ConnectProxy]:
    proxy = _ConnectProxy()
    yield proxy
    proxy.close()


def test_https_goes_through_the_proxys_connect_tunnel_with_its_credentials(
    serve: Callable[..., FakeServer],
    test_ca: tuple[Path, ssl.SSLContext],
    connect_proxy: _ConnectProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ca_file, context = test_ca
    server = serve(scripted(manifest_reply()), tls=context)
    monkeypatch.setenv("HTTPS_PROXY", f"http://us%40er:p%3Ass@127.0.0.1:{connect_proxy.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    settings = RegistrySettings(hosts={server.host: HostSettings(ca_file=str(ca_file))})
    with RegistryClient(settings) as client:
        assert client.get_manifest(server.host, "a/b", "latest").digest == MANIFEST_DIGEST
    assert connect_proxy.seen == [(server.host, "Proxy-Authorization: Basic dXNAZXI6cDpzcw==")]  # us@er:p:ss
    assert [r.path for r in server.requests] == ["/v2/a/b/manifests/latest"]


def test_an_unusable_proxy_url_is_a_typed_error(
    serve: Callable[..., FakeServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve(scripted(manifest_reply()))
    monkeypatch.setenv("HTTP_PROXY", "socks5://127.0.0.1:1080")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with RegistryClient(plain()) as client, pytest.raises(errors.ConnectionFailed) as info:
        client.get_manifest(server.host, "a/b", "latest")
    assert "only http:// proxies" in info.value.message and not server.requests


def test_hostile_redirect_targets_and_header_values_are_typed_errors(
    serve: Callable[..., FakeServer],
) -> None:
    """A Location with spaces and non-ASCII is re-quoted (as requests did); a token with a line break cannot
    become a header: a one-line RegistryError, never a traceback."""
    server = serve(
        lambda req: (
            manifest_reply()
            if req.path.startswith("/v2/a/b/manifests/caf%C3%A9%20x")
            else Reply(307, {"Location": "/v2/a/b/manifests/café x"})
        )
    )
    with RegistryClient(plain()) as client:
        assert client.get_manifest(server.host, "a/b", "latest").digest == MANIFEST_DIGEST
        transport = client._transport
        with pytest.raises(errors.RegistryError) as info:
            transport.request(
                "GET", f"http://{server.host}/v2/", what="test", authorization="Bearer a\r\nX-Evil: 1"
            )
        assert "cannot send the request" in info.value.message
        for bad in ("http://[::1/v2/", f"http://{server.host}:99999/v2/", "http://h:abc/"):
            with pytest.raises(errors.RegistryError):
                transport.request("GET", bad, what="test")
    assert [r.path for r in server.requests][-1].startswith("/v2/a/b/manifests/caf%C3%A9%20x")


@pytest.mark.parametrize(
    "target", ["http://[::1/x", "http://127.0.0.1:99999/x", "http://h:abc/x", "//[bad/x"]
)
def test_unparsable_redirect_and_next_page_links_are_typed_errors(
    serve: Callable[..., FakeServer], target: str
) -> None:
    redirect = serve(scripted(Reply(302, {"Location": target})))
    pages = serve(
        scripted(
            Reply(
                200, {"Content-Type": "application/json", "Link": f'<{target}>; rel="next"'}, b'{"tags":[]}'
            )
        )
    )
    with RegistryClient(plain()) as client:
        with pytest.raises(errors.RegistryError) as info:
            client.get_manifest(redirect.host, "a/b", "latest")
        assert type(info.value) in (errors.RegistryError, errors.ConnectionFailed)
        with pytest.raises(errors.RegistryError):
            client.list_tags(pages.host, "a/b")


@pytest.mark.parametrize(
    "url",
    [
        "http://a:5000/v2/x",
        "https://A.Example/v2/?n=1",
        "http://[::1]:80/x",
        "http://user:pw@h/x",
        "http://h#frag",
        "http://h?x=/y",
        "http://h",
        "https://h:443",
        "http://h\t/x",
        "http://h /x",
    ],
)
def test_origin_is_urlsplits_and_parsed_once_per_prefix(url: str) -> None:
    parts = urlsplit(url)
    expected = (
        parts.scheme,
        (parts.hostname or "").lower(),
        parts.port or {"http": 80, "https": 443}[parts.scheme],
    )
    assert _origin(url) == expected
    hits = transport_mod._origin_of.cache_info().hits
    assert _origin(url + "/more") == expected or "#" in url or "?" in url
    assert transport_mod._origin_of.cache_info().hits > hits or not transport_mod._PREFIX_RE.match(url)


_LAZY_PREFIX = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*://[!-~]*?(?=[/?#]|$)", re.ASCII
)  # the pattern it replaced


@given(
    st.sampled_from(["", "http://", "h+s://", "1://", "x:/"]),
    st.text('ab:/?#. \t\n\x7f\x80é@[]%"$=>', max_size=14),
)
def test_the_url_prefix_pattern_matches_what_the_lazy_one_matched(scheme: str, rest: str) -> None:
    """Property test: the greedy ``scheme://netloc`` pattern ends where the lazy one with a lookahead after every
    character ended (or neither matches)."""
    url = scheme + rest
    old, new = _LAZY_PREFIX.match(url), transport_mod._PREFIX_RE.match(url)
    assert (old and old.group(0)) == (new and new.group(0))


def test_the_request_target_fast_path_equals_the_full_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain URLs skip urlsplit and quoting (one regex and a cached origin); any URL gives what the full parse
    gives: scheme, host, port and re-quoted target, or the same error."""
    import random

    class Never:
        def fullmatch(self, text: str) -> None:
            return None

    def parse(url: str, *, full: bool) -> object:
        with monkeypatch.context() as m:
            if full:
                m.setattr(transport_mod, "_PLAIN_TARGET_RE", Never())
            try:
                return transport_mod._request_target(url)
            except (ValueError, UnicodeError) as exc:
                return type(exc)

    rng = random.Random(14)
    alphabet = "aZ09/:?#@%&=+~._-[] \t\u00e9!$'()*,;"
    bases = (
        "http://h:5000",
        "https://User:pw@Reg.Example",
        "http://[::1]:80",
        "HTTP://h",
        "http://h:99999",
        "ftp://h",
    )
    for _ in range(3000):
        rest = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        for base in (*bases, "http://127.0.0.1:5000/v2/"):
            url = base + rest
            assert parse(url, full=False) == parse(url, full=True), url
    plain = "http://127.0.0.1:5000/v2/a/b/blobs/sha256:" + "0" * 64 + "?n=1&last=x%2Fy"
    assert transport_mod._request_target(plain) == (
        "http",
        "127.0.0.1",
        5000,
        plain[len("http://127.0.0.1:5000") :],
    )


def test_a_bad_port_is_still_an_error() -> None:
    assert _origin("http://h:99999/x") == ("", "", None) != _origin("http://h/x")  # matches no real origin
    with pytest.raises(ValueError):
        transport_mod._request_target("http://h:99999/x")


class _RawServer(_Loopback):
    """A loopback server that answers every connection's first request with the same raw bytes, then closes."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        with conn:
            self.read_head(conn)
            with contextlib.suppress(OSError):
                conn.sendall(self.answer)


_MANIFEST_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n"


@pytest.mark.parametrize(
    "answer",
    [
        _MANIFEST_HEAD
        + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",  # a chunk size that is no number
        _MANIFEST_HEAD
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + b"1" * 70000
        + b"\r\n",  # a chunk-size line too long
        _MANIFEST_HEAD + b"Transfer-Encoding: chunked\r\n\r\n-5\r\nabc\r\n0\r\n\r\n",  # a negative chunk size
        _MANIFEST_HEAD + b"Content-Length: 10\r\n\r\nabc",  # shorter than announced
        b"SSH-2.0-OpenSSH_9.6\r\n",  # not HTTP at all
        b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 150 + b"\r\n",  # more header fields than anyone sends
        b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n",  # a header line too long
        b"HTTP/1.1 abc OK\r\n\r\n",  # a status that is no number
        b"",  # the connection closed without an answer
    ],
)
def test_a_hostile_answer_is_a_typed_error_never_a_traceback(answer: bytes) -> None:
    server = _RawServer(answer)
    try:
        with RegistryClient(plain(retries=1)) as client, pytest.raises(errors.RegistryError) as info:
            client.get_manifest(server.host, "a/b", "latest")
        assert info.value.hint
    finally:
        server.close()


def test_tcp_connections_without_the_socket_module_try_each_address_and_raise_the_last_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``_connect_tcp`` is ``socket.create_connection`` on the C socket type: the first address that connects
    wins, a refused one is skipped, and when none connects the last failure is raised as it came."""
    import _socket
    import weakref

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    open_port = listener.getsockname()[1]
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # nothing listens there now

    def addresses(*ports: int) -> Callable[..., list[tuple[int, int, int, str, tuple[str, int]]]]:
        return lambda *_a, **_k: [
            (_socket.AF_INET, _socket.SOCK_STREAM, 6, "", ("127.0.0.1", p)) for p in ports
        ]

    try:
        monkeypatch.setattr(_socket, "getaddrinfo", addresses(closed_port, open_port))
        sock = transport_mod._connect_tcp(b"example.test", 443, 2.0)
        try:
            assert sock.getpeername() == ("127.0.0.1", open_port)
            assert sock.gettimeout() == 2.0
            assert weakref.ref(sock)() is sock  # the deadline watchdog holds sockets weakly
        finally:
            sock.close()
        monkeypatch.setattr(_socket, "getaddrinfo", addresses(closed_port))
        with pytest.raises(ConnectionRefusedError):
            transport_mod._connect_tcp(b"example.test", 443, 2.0)
        monkeypatch.setattr(_socket, "getaddrinfo", addresses())
        with pytest.raises(OSError, match="no address"):
            transport_mod._connect_tcp(b"example.test", 443, 2.0)
    finally:
        listener.close()


def test_a_connection_given_back_just_now_is_not_polled_for_get_but_is_for_post(
    serve: Callable[..., FakeServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GET or HEAD is sent again at once on a new connection when a kept-alive one turns out closed, so one
    given back less than FRESH seconds ago is taken without a ``poll``; a POST (not sent twice) always polls, and
    so does a GET on a connection idle for longer."""
    polls: list[int] = []
    real = transport_mod._dropped

    def counting(sock: Any) -> bool:
        polls.append(1)
        return real(sock)

    monkeypatch.setattr(transport_mod, "_dropped", counting)
    server = serve(scripted(Reply(200, {"Content-Length": "0"}, b"")))
    t = transport_mod.Transport(plain())
    try:
        for method in ("GET", "HEAD", "GET"):
            discard_all(t.request(method, f"http://{server.host}/v2/", what="x"))
        assert polls == [] and server.connections == 1
        discard_all(t.request("POST", f"http://{server.host}/token", what="x", data={"a": "b"}))
        assert polls == [1]
        monkeypatch.setattr(transport_mod, "FRESH", 0.0)
        discard_all(t.request("GET", f"http://{server.host}/v2/", what="x"))
        assert polls == [1, 1] and server.connections == 1
    finally:
        t.close()


def discard_all(response: transport_mod.Response) -> None:
    response.read(1 << 20)
    response.close()
