"""HTTP transport for registry calls: a lean HTTP/1.1 client (framing in :mod:`ociinspect.registry.http11`) —
pooled connections, timeouts, retries, TLS, proxies, redirects.

Everything that touches sockets lives here, so socket, TLS and HTTP framing exceptions are translated
into the :mod:`ociinspect.errors` tree at this one boundary.  Every request has a ``(connect, read)`` timeout
(seconds).  Retries are bounded: connection resets and connect timeouts (GET/HEAD only) and HTTP 429, 502,
503, 504 (honouring ``Retry-After``, capped).  DNS failures, refused connections, TLS failures and read
timeouts are not retried: they would fail the same way again and a CLI user should hear it at once.  A
kept-alive connection that the server closed while it sat in the pool is replaced by a new one at once (GET
and HEAD), which is not a retry.

Redirects are followed here: ``Authorization`` goes only to the origin (scheme, host, port) of the first URL,
so a blob redirected to a CDN never sees a registry token; a request that carries a body (the identity-token
POST) never follows a redirect to another origin at all.  Cookies are never stored or sent, and ``~/.netrc``
is never consulted.  Proxies come from ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY`` (read
once per origin; ``https://`` goes through an ``http://`` proxy's ``CONNECT`` tunnel).  TLS is verified
against ``--ca-file``, else ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``, else certifi's bundle (the system's
when certifi is absent).

Why not ``requests``: importing it (with urllib3, charset_normalizer, idna, certifi) costs ~100 ms, more than
everything else a loopback ``inspect`` does, and each request through it costs ~0.45 ms of CPU against
~0.1 ms here (docs/benchmarks.md, issue 14).  Why not :mod:`http.client`: it imports :mod:`email` and
:mod:`ssl` (~10–15 ms) even for plain HTTP; here :mod:`ssl` is imported only for an ``https://`` connection.

A total :class:`~ociinspect.registry.deadline.Deadline` (``RegistrySettings.deadline``) bounds everything the
transport does: each socket timeout is at most the time remaining, retry pauses end before it, bodies check it
between reads, and a watchdog timer shuts down every socket the transport opened when it passes (a server that
drips one byte per second defeats a per-read timeout, not a shutdown).  Then the caller gets
:class:`~ociinspect.errors.DeadlineExceeded` naming what was in flight.
"""

from __future__ import annotations

import _socket  # the C socket: `socket` itself (enums, selectors: ~3 ms of imports) comes only with ssl
import binascii
import contextlib
import functools
import json
import os
import re
import select
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, unquote, urlencode, urljoin, urlsplit, urlunsplit

from ociinspect import errors
from ociinspect.model.logs import DEBUG, get_logger
from ociinspect.model.textsafe import parse_uint
from ociinspect.registry.deadline import Deadline
from ociinspect.registry.http11 import Answer, Headers, ProtocolError, encode_request, read_answer
from ociinspect.registry.settings import (  # defined without the HTTP stack; re-exported here
    USER_AGENT,
    HostSettings,
    RegistrySettings,
    is_loopback,
    normalize_host,
)

if TYPE_CHECKING:
    import ssl

__all__ = [
    "USER_AGENT",
    "Deadline",
    "Headers",
    "HostSettings",
    "RegistrySettings",
    "Response",
    "Transport",
    "error_from_response",
    "iter_body",
    "normalize_host",
    "read_body",
    "redact_url",
]


log = get_logger("ociinspect.registry")

#: ``observer(method, url, status, headers)``: called after every HTTP round trip (see ``Transport.observers``)
Observer = Callable[[str, str, int, Mapping[str, str]], None]

RETRY_STATUSES = (
    errors.TRANSIENT_STATUSES
)  # the one list of transient statuses (the audit never records them)
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
ERROR_BODY_LIMIT = 64 * 1024  # bytes of an error body we read to find the OCI error code
_CHUNK = 64 * 1024

_PLAIN_HTTP_MARKERS = (
    "wrong version number",
    "record layer failure",
    "http request",
    "packet length too long",
)


def _origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of ``url``.  Cost: one regex match and a cache hit per call (the origin of the
    same ``scheme://netloc`` is parsed once: a request asks for it several times)."""
    m = _PREFIX_RE.match(url)
    return _origin_of(m.group(0) if m else url)


# scheme://netloc of a plain URL, up to the first "/", "?" or "#" as urlsplit splits it (printable ASCII only: a URL
# with whitespace or control characters before its path takes the full parse, which strips those).  Greedy over
# printable ASCII but "#", "/" and "?" (one scan; a lazy repeat tried the lookahead after every character).
_PREFIX_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[!\"$-.0->@-~]*(?=[/?#]|$)", re.ASCII)


@functools.lru_cache(maxsize=256)
def _origin_of(url: str) -> tuple[str, str, int | None]:
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:  # a bad port or bracket (a hostile Location or Link): matches no real origin
        return "", "", None
    return parts.scheme, (parts.hostname or "").lower(), port


_NETLOC_RE = re.compile(r"^[^:/?#]*://([^/?#]*)")


def _host_of(url: str) -> str:
    match = _NETLOC_RE.match(url)
    netloc = match.group(1) if match else ""
    return netloc.rsplit("@", 1)[-1].lower()


_SAFE_QUERY_KEYS = frozenset({"n", "last", "service", "scope", "digest", "artifacttype"})


def redact_url(url: str) -> str:
    """``url`` without user-info and with query values blanked unless harmless (for messages and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"{_host_of(url) or 'an unparsable URL'} (unparsable URL)"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = urlencode(
        [(k, v if k.lower() in _SAFE_QUERY_KEYS else "REDACTED") for k, v in parse_qsl(parts.query, True)]
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception reachable through ``reason``, ``args``, ``__cause__``, ``__context__``."""
    seen: list[BaseException] = []
    stack: list[object] = [exc]
    while stack:
        item = stack.pop()
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        yield item
        stack.extend([getattr(item, "reason", None), item.__cause__, item.__context__, *item.args])


class _Failure(Exception):
    """A request that got no answer.  ``phase``: ``"connect"`` (DNS, TCP, a proxy's tunnel, the TLS handshake),
    ``"exchange"`` (sending the request, waiting for the status line and headers) or ``"request"`` (the request
    could not be written: an unusable URL or header value).  ``cause``: the exception behind it."""

    def __init__(self, phase: str, cause: BaseException) -> None:
        super().__init__(cause)
        self.phase = phase
        self.cause = cause


def _is_tls_error(exc: BaseException) -> bool:
    ssl_module = sys.modules.get("ssl")  # imported only once a TLS connection was tried
    return ssl_module is not None and isinstance(exc, ssl_module.SSLError | ssl_module.CertificateError)


def _is_cert_error(exc: BaseException) -> bool:
    return any(
        type(c).__name__ in ("SSLCertVerificationError", "CertificateError")
        or "certificate verify failed" in str(c).lower()
        or "hostname mismatch" in str(c).lower()
        for c in _causes(exc)
    )


def _speaks_plain_http(exc: BaseException) -> bool:
    text = " ".join(str(c).lower() for c in _causes(exc))
    return any(marker in text for marker in _PLAIN_HTTP_MARKERS)


def _is_retryable_connection_error(exc: _Failure) -> bool:
    """Resets and connect timeouts are transient; DNS, refused, TLS, read timeouts and bad requests are not."""
    if exc.phase == "request":
        return False
    causes = list(_causes(exc.cause))
    if any(_is_tls_error(c) for c in causes):
        return False
    if isinstance(exc.cause, TimeoutError):
        return exc.phase == "connect"
    return not any(isinstance(c, _socket.gaierror | ConnectionRefusedError) for c in causes)


def map_exception(
    exc: BaseException, *, what: str, url: str, settings: RegistrySettings
) -> errors.RegistryError:
    """Translate a transport failure (a :class:`_Failure`, or a socket, TLS or HTTP framing exception) into the
    typed error tree (no I/O)."""
    host = _host_of(url)
    safe_url = redact_url(url)
    phase = exc.phase if isinstance(exc, _Failure) else "exchange"
    cause = exc.cause if isinstance(exc, _Failure) else exc
    causes = list(_causes(cause))
    if phase == "request":
        return errors.RegistryError(
            f"{what}: cannot send the request to {host}: {type(cause).__name__}: {str(cause)[:120]}",
            hint="a URL or value the registry (or its token service) sent cannot be used in an HTTP request",
            url=safe_url,
        )
    if any(isinstance(c, _socket.gaierror) for c in causes):
        return errors.ConnectionFailed(
            f"{what}: cannot resolve host {urlsplit(url).hostname}",
            hint="check the registry name for typos, and your network / DNS settings",
            url=safe_url,
        )
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return errors.ConnectionFailed(
            f"{what}: connection to {host} refused",
            hint="is the registry running? is the port right?",
            url=safe_url,
        )
    tls = [c for c in causes if _is_tls_error(c)]
    if tls:
        reason = str(tls[-1])
        if _speaks_plain_http(cause):
            hint = f"the server at {host} answered plain HTTP: try --plain-http"
        elif _is_cert_error(cause):
            hint = "pass the registry's CA certificate with --ca-file PATH, or skip verification: --insecure"
        else:
            hint = "check that the port speaks TLS; --ca-file PATH, --insecure or --plain-http may help"
        return errors.TLSFailure(f"{what}: TLS with {host} failed: {reason}", hint=hint, url=safe_url)
    if isinstance(cause, TimeoutError) and phase == "connect":
        return errors.Timeout(
            f"{what}: connecting to {host} timed out after {settings.connect_timeout:g} s",
            hint="check the host name and port, your network, proxy and firewall",
            url=safe_url,
        )
    if any(isinstance(c, TimeoutError) for c in causes):
        return errors.Timeout(
            f"{what}: {host} sent nothing for {settings.read_timeout:g} s (read timeout)",
            hint="the registry is overloaded or stuck; try again later or raise the read timeout",
            url=safe_url,
        )
    if isinstance(cause, _ProxyError):
        return errors.ConnectionFailed(f"{what}: {cause}", hint=cause.hint, url=safe_url)
    if isinstance(cause, FileNotFoundError | IsADirectoryError | PermissionError) and phase == "connect":
        return errors.TLSFailure(
            f"{what}: cannot read the CA certificates {cause.filename!r}: {cause.strerror}",
            hint="pass a readable PEM file with --ca-file PATH",
            url=safe_url,
        )
    root = causes[-1] if causes else cause
    return errors.ConnectionFailed(
        f"{what}: connection to {host} failed ({type(root).__name__})",
        hint="the connection was reset or closed early; check proxies and try again",
        url=safe_url,
    )


def _retry_after(response: Response) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or HTTP-date), or None when absent or unparsable."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    seconds = parse_uint(value, max_digits=9)  # ASCII digits only: "²" or "١" is not a delay
    if seconds is not None:
        return float(seconds)
    import email.utils  # only for an HTTP-date (rare): ~5 ms

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


_LINK_RE = re.compile(r"\s*<([^>]*)>\s*((?:;\s*[^;,]*)*)")


def parse_links(value: str) -> dict[str, dict[str, str]]:
    """``Link`` header → ``{rel or url: {"url": …, "rel": …, …}}`` (RFC 8288, as ``requests`` reads it).
    Cost: one regex pass; hostile input gives fewer links, never an error."""
    links: dict[str, dict[str, str]] = {}
    for match in _LINK_RE.finditer(value):
        link = {"url": match.group(1).strip()}
        for param in match.group(2).split(";"):
            key, sep, val = param.partition("=")
            if sep and key.strip():
                link[key.strip().lower()] = val.strip().strip("'\"")
        links[link.get("rel") or link["url"]] = link
    return links


class Response:
    """One HTTP answer: ``status_code``, ``headers``, the ``url`` it answers and the ``method`` asked; its body
    is unread until :func:`iter_body`, :func:`read_body` or :func:`discard`.  :meth:`close` returns the
    connection to the pool when the body was read to its end, else closes it."""

    __slots__ = (
        "_broken",
        "_raw",
        "_release",
        "_sock",
        "headers",
        "method",
        "received",
        "status_code",
        "url",
    )

    def __init__(
        self,
        method: str,
        url: str,
        raw: Answer,
        release: Callable[[bool], None],
        sock: _socket.socket | None = None,
    ) -> None:
        self.method = method
        self.url = url
        self.status_code: int = raw.status
        self.headers = raw.fields
        self.received = 0  #: body bytes read so far
        self._raw: Answer | None = raw
        self._release = release
        self._broken = False
        self._sock = sock

    @property
    def links(self) -> dict[str, dict[str, str]]:
        """The ``Link`` header's links by ``rel`` (``{}`` without one)."""
        value = self.headers.get("Link")
        return parse_links(value) if value else {}

    @property
    def socket(self) -> _socket.socket | None:
        """The connection's socket while the body is open (to lower its timeout), else None."""
        return self._sock if self._raw is not None else None

    def read(self, amount: int) -> bytes:
        """Up to ``amount`` bytes of the body (``b""`` at its end).  Raises
        :class:`~ociinspect.registry.http11.IncompleteRead` when the connection ends before ``Content-Length``
        bytes (or inside a chunk) or the chunked framing is broken, :class:`OSError` on a reset or timeout."""
        raw = self._raw
        if raw is None:
            return b""
        try:
            data = raw.read(amount)
        except BaseException:
            self._broken = True
            raise
        self.received += len(data)
        return data

    def close(self) -> None:
        """Release the connection: back to the pool when the body was read to its end, else closed."""
        raw, self._raw = self._raw, None
        if raw is None:
            return
        reusable = not self._broken and raw.complete and not raw.will_close
        raw.close()
        self._release(reusable)

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _ProxyError(OSError):
    """A proxy URL this transport cannot use, or a proxy that refused the tunnel."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


class _Connection:
    """One HTTP/1.1 connection to ``host:port`` — or to a proxy, with ``tunnel`` (host, port, headers) for
    ``https://`` through it — and TLS on top when ``context`` is set.  Its sockets are registered with
    ``tracker`` (the deadline's watchdog shuts them down).  ``timeout`` is the connect timeout; the caller sets
    the read timeout after.  ``sock``: None until :meth:`connect`, and again after :meth:`close`."""

    __slots__ = (
        "_context",
        "_server_hostname",
        "_tracker",
        "_tunnel",
        "host",
        "idle_since",
        "port",
        "sock",
        "timeout",
    )

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float,
        tracker: _SocketTracker,
        context: ssl.SSLContext | None,
        server_hostname: str,
        tunnel: tuple[str, int, dict[str, str]] | None,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._tracker = tracker
        self._context = context
        self._server_hostname = server_hostname
        self._tunnel = tunnel
        self.sock: _socket.socket | None = None
        self.idle_since = 0.0  #: time.monotonic() when it was last given back to the pool

    def connect(self) -> None:
        """TCP (with ``TCP_NODELAY``), the proxy's ``CONNECT`` tunnel, then the TLS handshake."""
        # an ASCII host as bytes: a str would be encoded with the "idna" codec, whose import costs ~2 ms
        host = self.host.encode("ascii") if self.host.isascii() else self.host
        sock: _socket.socket = _connect_tcp(host, self.port, self.timeout)
        self._tracker.add(sock)
        try:
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            if self._tunnel is not None:
                self._open_tunnel(sock, *self._tunnel)
            if self._context is not None:
                # (ssl reads the C socket's family, type, proto, descriptor and timeout, then detaches it)
                sock = self._context.wrap_socket(sock, server_hostname=self._server_hostname)  # type: ignore[arg-type]
                self._tracker.add(sock)
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def _open_tunnel(self, sock: _socket.socket, host: str, port: int, headers: dict[str, str]) -> None:
        authority = f"{_netloc(host, port, -1)}"
        sock.sendall(encode_request("CONNECT", authority, {"Host": authority, **headers}, None))
        answer = read_answer(sock, "CONNECT")
        answer.close()
        if not 200 <= answer.status < 300:
            raise _ProxyError(
                f"the proxy refused the tunnel to {self._server_hostname} (HTTP {answer.status})",
                "check HTTPS_PROXY / NO_PROXY and the proxy's credentials",
            )

    def exchange(self, method: str, target: str, headers: Mapping[str, str], body: bytes | None) -> Answer:
        """Send one request and read its answer up to the body.  Raises ValueError (nothing sent) for a value
        that cannot be written, :class:`~ociinspect.registry.http11.ProtocolError` or :class:`OSError`."""
        data = encode_request(method, target, headers, body)
        sock = self.sock
        if sock is None:
            raise ConnectionResetError("the connection is closed")
        sock.sendall(data)
        return read_answer(sock, method)

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()


class _TcpSocket(_socket.socket):
    """A TCP socket of the C type that can be weakly referenced (the deadline watchdog tracks sockets weakly)."""

    __slots__ = ("__weakref__",)


def _connect_tcp(host: bytes | str, port: int, timeout: float) -> _TcpSocket:
    """:func:`socket.create_connection` without the :mod:`socket` module: each address ``getaddrinfo`` gives,
    in turn, until one connects; the last failure is raised (cost: one resolution, one ``connect`` per address
    tried; ``timeout`` seconds at most for each)."""
    failure: OSError | None = None
    for family, kind, proto, _name, address in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
        sock = _TcpSocket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            return sock
        except OSError as exc:
            failure = exc
            sock.close()
    raise failure or OSError(f"cannot resolve {host!r}: getaddrinfo gave no address")


#: seconds a connection given back to the pool is taken again without polling it first, for a request that is
#: sent again at once on a new connection if the server had closed it (a server's keep-alive lasts far longer)
FRESH = 1.0
#: a pool key: (scheme, host, port, proxy URL or "", TLS verification: False, True or a CA path)
_PoolKey = tuple[str, str, int, str, "bool | str"]


class _Pool:
    """Idle kept-alive connections per origin (and proxy and TLS settings), most recent first; at most
    ``per_key`` kept for each.  Thread-safe.  A connection whose server has closed it (or sent anything unasked)
    is dropped when taken (one ``poll`` with no wait)."""

    def __init__(self, per_key: int) -> None:
        self._idle: dict[_PoolKey, list[_Connection]] = {}
        self._lock = threading.Lock()
        self._per_key = per_key
        self._closed = False

    def take(self, key: _PoolKey, *, retried: bool = False) -> _Connection | None:
        """An idle connection for ``key`` (None: open a new one).  ``retried``: the caller sends again at once on
        a new connection when this one turns out closed (GET and HEAD), so a connection given back less than
        :data:`FRESH` seconds ago is not polled (cost: one ``poll`` per connection taken, else none)."""
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                conn = idle.pop()
            if conn.sock is None:
                continue
            if retried and time.monotonic() - conn.idle_since < FRESH:
                return conn
            if not _dropped(conn.sock):
                return conn
            conn.close()

    def give(self, key: _PoolKey, conn: _Connection) -> None:
        conn.idle_since = time.monotonic()
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if not self._closed and len(idle) < self._per_key:
                idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for conn in conns:
            conn.close()


def _dropped(sock: _socket.socket) -> bool:
    """True when an idle connection is readable: the server closed it (or broke the protocol)."""
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
        return bool(poller.poll(0))
    except (OSError, ValueError, AttributeError):  # AttributeError: no poll() (Windows)
        return True


#: characters left as they are when a URL is re-quoted (what ``requests`` leaves: RFC 3986 reserved + "%")
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"
#: the sockets' exceptions that mean "a kept-alive connection was closed under us": a new one is tried at once
_STALE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)  # RemoteDisconnected is a reset


class _SocketTracker:
    """The sockets a transport opened (weakly held), so that the deadline watchdog can shut them all down."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: weakref.WeakSet[_socket.socket] = weakref.WeakSet()
        self.closed = False

    def add(self, sock: _socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)
            closed = self.closed
        if closed:
            _shutdown(sock)

    def shutdown_all(self) -> None:
        with self._lock:
            self.closed = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: _socket.socket) -> None:
    """Wake any thread blocked reading ``sock``: shutdown(2) on the descriptor (TLS included: the base
    class method is called, so the TLS layer just sees the connection end)."""
    with contextlib.suppress(OSError):
        _socket.socket.shutdown(sock, _socket.SHUT_RDWR)


class Transport:
    """A pool of kept-alive HTTP/1.1 connections plus the policies above.  Thread-safe; :meth:`close` when done.

    With ``settings.deadline``, a daemon timer thread waits for it and then shuts down every socket this
    transport opened; :meth:`close` cancels it.
    """

    def __init__(self, settings: RegistrySettings) -> None:
        self.settings = settings
        self._tracker = _SocketTracker()
        self._pool = _Pool(per_key=32)
        self._user_agent = settings.user_agent
        self.deadline = settings.deadline
        self._watchdog: threading.Timer | None = None
        if self.deadline is not None:
            self._watchdog = threading.Timer(max(0.0, self.deadline.remaining()), self._tracker.shutdown_all)
            self._watchdog.name = "ociinspect-deadline"
            self._watchdog.daemon = True
            self._watchdog.start()
        self._lock = threading.Lock()
        self._plain_loopback: set[str] = set()
        #: called with (method, url, status, headers) after every HTTP round trip (retries, redirects and token
        #: requests included), before the body is read: e.g. to count requests or read rate-limit headers.
        #: ``headers`` is read-only and case-insensitive.
        self.observers: list[Observer] = []
        self._probed: set[str] = set()
        self._probes: dict[str, threading.Lock] = {}
        self._env_proxies: dict[tuple[str, str, int | None], str] = {}
        self._env_ca = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None
        self._contexts: dict[bool | str, ssl.SSLContext] = {}

    def close(self) -> None:
        """Close pooled connections (no requests) and stop the deadline watchdog."""
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._pool.close()

    def interrupt(self) -> None:
        """Shut down every socket this transport opened, from any thread (Ctrl-C), as the deadline watchdog does:
        reads blocked on them fail at once, and so does every later request (the transport is not usable after).
        Cost: one shutdown(2) per open socket."""
        self._tracker.shutdown_all()

    def expired(self) -> bool:
        """True once the deadline has passed (or the watchdog fired).  Cost: one clock read."""
        return self.deadline is not None and (self._tracker.closed or self.deadline.expired(slack=0.05))

    def check_deadline(self, what: str, doing: str, *, url: str | None = None) -> None:
        """Raise :class:`~ociinspect.errors.DeadlineExceeded` when the deadline has passed."""
        if self.deadline is not None and self.expired():
            raise self.deadline.error(what, doing, url=redact_url(url) if url else None)

    def pause(self, delay: float, *, what: str, doing: str) -> None:
        """Sleep ``delay`` seconds before a retry, or raise :class:`~ociinspect.errors.DeadlineExceeded` at
        once when the deadline would pass during the pause (sleeping until then could not help)."""
        if self.deadline is not None and delay >= self.deadline.remaining():
            raise self.deadline.error(what, f"{doing}: the {delay:.1f} s pause would pass the deadline")
        time.sleep(delay)

    def timeouts(self) -> tuple[float, float]:
        """``(connect, read)`` socket timeouts in seconds, each at most the time remaining."""
        connect, read = self.settings.connect_timeout, self.settings.read_timeout
        if self.deadline is None:
            return connect, read
        return self.deadline.cap(connect), self.deadline.cap(read)

    def url(self, host: str, path: str) -> str:
        """Absolute URL for ``path`` on ``host``: http:// for plain-http hosts, https:// otherwise."""
        return f"{'http' if self.is_plain_http(host) else 'https'}://{host}{path}"

    def is_plain_http(self, host: str) -> bool:
        """True when ``host`` is configured for plain HTTP or a loopback host was found to speak it.

        A loopback host with default TLS settings is probed once, without credentials, with ``GET /v2/`` over
        plain HTTP (about 1 ms on loopback, instead of building a TLS context and failing a handshake): a
        registry answer (200 or 401), or a transient one (429, 502, 503, 504: a registry still starting, which
        the request itself then retries), means plain HTTP; anything else, HTTPS as usual.
        """
        key = normalize_host(host)
        with self._lock:
            if key in self._plain_loopback:
                return True
        host_settings = self.settings.for_host(host)
        if host_settings.plain_http:
            return True
        if host_settings.insecure or host_settings.ca_file or not is_loopback(host):
            return False
        with self._lock:
            probe_lock = self._probes.setdefault(key, threading.Lock())
        with probe_lock:
            with self._lock:
                if key in self._probed:
                    return key in self._plain_loopback
            plain = self._probe_plain(host)
            with self._lock:
                self._probed.add(key)
                if plain:
                    self._plain_loopback.add(key)
            return plain

    def _probe_plain(self, host: str) -> bool:
        """One credential-less ``GET http://host/v2/`` with short timeouts: does a registry answer plain HTTP?"""
        try:
            response = self._send_once("GET", f"http://{host}/v2/", {}, None, timeouts=(2.0, 2.0))
        except _Failure:
            return False
        try:
            return response.status_code in (200, 401) or response.status_code in RETRY_STATUSES
        finally:
            discard(response)

    def same_origin(self, url: str, host: str) -> bool:
        """True when ``url`` points at ``host`` (scheme, host and port as :meth:`url` would build them)."""
        return _origin(url) == _origin(self.url(host, "/"))

    def request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        headers: Mapping[str, str] | None = None,
        authorization: str | None = None,
        data: Mapping[str, str] | None = None,
    ) -> Response:
        """Send one logical request; returns the final response with its body unread .

        Cost: one HTTP round trip per redirect hop (≤ 5) and per retry (≤ ``settings.retries`` per hop).
        ``authorization`` is sent only to the origin of ``url``; a request with ``data`` (a form, e.g. the
        identity-token POST) does not follow a redirect to another origin.  Non-2xx answers are returned, not
        raised: use :func:`error_from_response`.  Raises :class:`~ociinspect.errors.RegistryError` subclasses
        for transport failures, :class:`~ociinspect.errors.DeadlineExceeded` once the deadline has passed.
        """
        url = self._remembered_scheme(url)
        origin = _origin(url)
        for hop in range(MAX_REDIRECTS + 1):
            if hop:
                url = self._remembered_scheme(url)
            auth = authorization if not hop or _origin(url) == origin else None
            response, sent = self._send(
                method, url, what=what, headers=headers, authorization=auth, data=data
            )
            if hop == 0 and sent != url:
                origin = _origin(sent)  # the loopback fallback switched https -> http
            url = sent
            location = response.headers.get("Location")
            if response.status_code not in REDIRECT_STATUSES or not location:
                return response
            discard(response)
            try:
                target = urljoin(url, location)
            except ValueError:  # e.g. an unclosed "[" in the host
                raise errors.RegistryError(
                    f"{what}: the registry redirected (HTTP {response.status_code}) to an unparsable URL",
                    hint="the registry or its CDN is misconfigured",
                    status=response.status_code,
                    url=redact_url(url),
                ) from None
            if data is not None and _origin(target) != _origin(url):
                raise errors.RegistryError(
                    f"{what}: refusing to follow a redirect (HTTP {response.status_code}) to another host "
                    f"({_host_of(target)}): the request carries a secret in its body",
                    hint="the token service is misconfigured (or hostile); report it to the registry operator",
                    status=response.status_code,
                    url=redact_url(url),
                )
            if urlsplit(target).scheme not in ("http", "https"):
                raise errors.RegistryError(
                    f"{what}: redirect to an unsupported URL scheme",
                    hint="the registry or its CDN is misconfigured",
                    status=response.status_code,
                    url=redact_url(url),
                )
            if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                method, data = ("HEAD" if method == "HEAD" else "GET"), None
            log.debug("%s: redirect %d to %s", what, response.status_code, redact_url(target))
            url = target
        raise errors.RegistryError(
            f"{what}: more than {MAX_REDIRECTS} redirects",
            hint="the registry or its CDN is misconfigured",
            url=redact_url(url),
        )

    def _remembered_scheme(self, url: str) -> str:
        """``url`` with http:// when its host is configured or known to speak plain HTTP."""
        if url.startswith("https://") and self.is_plain_http(_host_of(url)):
            return "http://" + url[len("https://") :]
        return url

    def _send(
        self,
        method: str,
        url: str,
        *,
        what: str,
        headers: Mapping[str, str] | None,
        authorization: str | None,
        data: Mapping[str, str] | None,
    ) -> tuple[Response, str]:
        """One hop with retries and the loopback plain-HTTP fallback; returns (response, effective url)."""
        send_headers = dict(headers or {})
        if authorization:
            send_headers["Authorization"] = authorization
        attempt = 0
        while True:
            if self.deadline is not None:
                self.check_deadline(what, f"waiting for response headers from {_host_of(url)}", url=url)
            try:
                response = self._send_once(method, url, send_headers, data)
            except _Failure as exc:
                if self.expired():
                    waiting = f"waiting for response headers from {_host_of(url)}"
                    raise self._deadline_error(what, waiting, url) from None
                fallback = self._loopback_fallback(method, url, send_headers, data, exc)
                if fallback is not None:
                    response, url = fallback  # a registry still starting answers 503: retried below
                else:
                    retryable = method in ("GET", "HEAD") and _is_retryable_connection_error(exc)
                    if retryable and attempt < self.settings.retries:
                        delay = self.settings.backoff * (2**attempt)
                        name = type(exc.cause).__name__
                        log.debug("%s: %s, retry %d in %.2f s", what, name, attempt + 1, delay)
                        self.pause(delay, what=what, doing=f"retrying after {name}")
                        attempt += 1
                        continue
                    raise map_exception(exc, what=what, url=url, settings=self.settings) from None
            if response.status_code in RETRY_STATUSES and attempt < self.settings.retries:
                retry_after = _retry_after(response)
                if retry_after is not None:
                    delay = min(retry_after, self.settings.max_retry_after)
                else:
                    delay = self.settings.backoff * (2**attempt)
                discard(response)
                log.debug("%s: HTTP %d, retry %d in %.2f s", what, response.status_code, attempt + 1, delay)
                self.pause(delay, what=what, doing=f"retrying after HTTP {response.status_code}")
                attempt += 1
                continue
            return response, url

    def _deadline_error(self, what: str, doing: str, url: str) -> errors.DeadlineExceeded:
        assert self.deadline is not None
        return self.deadline.error(what, doing, url=redact_url(url))

    def _loopback_fallback(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        data: Mapping[str, str] | None,
        exc: _Failure,
    ) -> tuple[Response, str] | None:
        """Like docker: a loopback registry that fails TLS in a plain-HTTP way is retried once over http://."""
        host = _host_of(url)
        if not url.startswith("https://") or not is_loopback(host) or self.settings.for_host(host).ca_file:
            return None
        if exc.phase != "connect" or _is_cert_error(exc.cause) or isinstance(exc.cause, TimeoutError):
            return None
        causes = list(_causes(exc.cause))
        handshake_broken = any(isinstance(c, ConnectionResetError) for c in causes)
        if not (any(_is_tls_error(c) for c in causes) or handshake_broken):
            return None
        plain = "http://" + url[len("https://") :]
        try:
            response = self._send_once(method, plain, headers, data)
        except _Failure:
            return None
        log.debug("%s answers plain HTTP: using http:// for it from now on", host)
        with self._lock:
            self._plain_loopback.add(normalize_host(host))
        return response, plain

    def _proxy(self, url: str) -> str:
        """The environment's proxy URL for ``url``'s origin (``""``: none, or ``NO_PROXY`` matches), read once
        per origin.  Cost: nothing unless a ``*_proxy`` variable is set (then ``urllib.request`` is imported)."""
        key = _origin(url)
        with self._lock:
            found = self._env_proxies.get(key)
        if found is None:
            found = ""
            if any(name.lower().endswith("_proxy") for name in os.environ):
                import urllib.request  # only when a proxy variable exists: ~6 ms

                proxies = urllib.request.getproxies_environment()
                parts = urlsplit(url)
                if not urllib.request.proxy_bypass_environment(  # type: ignore[attr-defined]
                    parts.netloc.rsplit("@", 1)[-1], proxies
                ):
                    found = proxies.get(key[0]) or proxies.get("all") or ""
            with self._lock:
                self._env_proxies[key] = found
        return found

    def _context(self, verify: bool | str) -> ssl.SSLContext:
        """The TLS context for ``verify`` (False: no verification; True: the default CAs; a path: that CA file or
        directory), built once per transport (loading a CA bundle costs ~10–20 ms)."""
        with self._lock:
            context = self._contexts.get(verify)
        if context is not None:
            return context
        import ssl

        if verify is False:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            where = verify if isinstance(verify, str) else _default_ca_bundle()
            if where is not None and os.path.isdir(where):
                context = ssl.create_default_context(capath=where)
            else:
                context = ssl.create_default_context(cafile=where)
        context.set_alpn_protocols(["http/1.1"])
        with self._lock:
            self._contexts.setdefault(verify, context)
        return context

    def _connection(
        self, scheme: str, host: str, port: int, verify: bool | str, proxy: str, connect_timeout: float
    ) -> _Connection:
        """A new (unconnected) connection for this origin, through ``proxy`` when set."""
        context = self._context(verify) if scheme == "https" else None
        if not proxy:
            return _Connection(
                host,
                port,
                timeout=connect_timeout,
                tracker=self._tracker,
                context=context,
                server_hostname=host,
                tunnel=None,
            )
        p = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if p.scheme != "http" or not p.hostname:
            raise _ProxyError(
                f"cannot use the proxy {redact_url(proxy)!r}: only http:// proxies are supported",
                "set HTTPS_PROXY / HTTP_PROXY to an http://host:port proxy, or NO_PROXY for this host",
            )
        tunnel: tuple[str, int, dict[str, str]] | None = None
        if scheme == "https":
            credentials = _proxy_authorization(proxy)
            tunnel = (host, port, {"Proxy-Authorization": credentials} if credentials else {})
        return _Connection(
            p.hostname,
            p.port or 80,
            timeout=connect_timeout,
            tracker=self._tracker,
            context=context,
            server_hostname=host,
            tunnel=tunnel,
        )

    def _send_once(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        data: Mapping[str, str] | None,
        *,
        timeouts: tuple[float, float] | None = None,
    ) -> Response:
        """One HTTP exchange on a pooled (or new) connection; ``timeouts`` caps :meth:`timeouts`' (connect,
        read) seconds.  Raises :class:`_Failure` when no answer came."""
        try:
            scheme, host, port, target = _request_target(url)
        except (ValueError, UnicodeError) as exc:
            raise _Failure("request", exc) from None
        host_settings = self.settings.for_host(_host_of(url))
        verify: bool | str = self._env_ca or True
        if host_settings.insecure:
            verify = False
        elif host_settings.ca_file:
            verify = host_settings.ca_file
        proxy = self._proxy(url)
        key: _PoolKey = (scheme, host, port, proxy, verify if scheme == "https" else False)
        send_headers = {
            "Host": _netloc(host, port, 443 if scheme == "https" else 80),
            "User-Agent": self._user_agent,
            "Accept-Encoding": "identity",
        }
        send_headers.update(headers)
        body: bytes | None = None
        if data is not None:
            body = urlencode(list(data.items())).encode("ascii")
            send_headers["Content-Type"] = "application/x-www-form-urlencoded"
        if proxy and scheme == "http":
            target = f"http://{_netloc(host, port, 80)}{target}"  # a plain-HTTP proxy wants the absolute URL
            credentials = _proxy_authorization(proxy)
            if credentials:
                send_headers["Proxy-Authorization"] = credentials
        connect_timeout, read_timeout = self.timeouts()
        if timeouts is not None:
            connect_timeout, read_timeout = min(connect_timeout, timeouts[0]), min(read_timeout, timeouts[1])
        conn = self._pool.take(key, retried=method in ("GET", "HEAD"))
        while True:
            reused = conn is not None
            if conn is None:
                try:
                    conn = self._connection(scheme, host, port, verify, proxy, connect_timeout)
                    conn.connect()
                except (OSError, ProtocolError, ValueError) as exc:
                    raise _Failure("connect", exc) from None
            sock = conn.sock
            try:
                assert sock is not None
                if sock.gettimeout() != read_timeout:  # (each settimeout is an ioctl)
                    sock.settimeout(read_timeout)
                raw = conn.exchange(method, target, send_headers, body)
            except ValueError as exc:  # UnicodeError included: nothing was sent
                conn.close()
                raise _Failure("request", exc) from None
            except (OSError, ProtocolError) as exc:
                conn.close()
                if reused and method in ("GET", "HEAD") and isinstance(exc, _STALE):
                    conn = None  # closed while it sat in the pool: a new connection, at once
                    continue
                raise _Failure("exchange", exc) from None
            break
        response = Response(method, url, raw, functools.partial(self._release, key, conn), sock)
        if log.isEnabledFor(DEBUG):
            log.debug("%s %s -> %d", method, redact_url(url), response.status_code)
        for observe in self.observers:
            observe(method, url, response.status_code, response.headers)
        return response

    def _release(self, key: _PoolKey, conn: _Connection, reusable: bool) -> None:
        if reusable and not self._tracker.closed:
            self._pool.give(key, conn)
        else:
            conn.close()


def basic_header(username: str, password: str) -> str:
    """``Authorization`` (or ``Proxy-Authorization``) value for Basic auth."""
    return "Basic " + binascii.b2a_base64(f"{username}:{password}".encode(), newline=False).decode("ascii")


def _proxy_authorization(proxy: str) -> str | None:
    """``Proxy-Authorization`` for a proxy URL with ``user:password@`` (percent-decoded), else None."""
    try:
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    except ValueError:
        return None
    if parts.username is None:
        return None
    return basic_header(unquote(parts.username), unquote(parts.password or ""))


def _default_ca_bundle() -> str | None:
    """certifi's CA bundle when certifi is installed (what ``requests`` used), else None: the system's CAs."""
    try:
        import certifi
    except ImportError:
        return None
    return str(certifi.where())


def _netloc(host: str, port: int, default: int) -> str:
    name = f"[{host}]" if ":" in host else host
    return name if port == default else f"{name}:{port}"


#: a host name or IP address (lower case, as :func:`_origin_of` gives it) that needs no further checks
_PLAIN_HOST_RE = re.compile(r"[a-z0-9.-]+|[0-9a-f:.]+", re.ASCII)
#: a path and query that quoting with :data:`_URL_SAFE` leaves as they are (and no fragment)
_PLAIN_TARGET_RE = re.compile(r"[A-Za-z0-9_.~!$&'()*+,/:;=?@%-]*", re.ASCII)


def _request_target(url: str) -> tuple[str, str, int, str]:
    """``(scheme, host, port, path?query)`` of an http(s) URL, re-quoted as ``requests`` would (non-ASCII and
    spaces percent-encoded, ``%xx`` kept).  Raises ValueError for another scheme, no host or a bad port,
    UnicodeError for a host IDNA cannot encode.  Cost: a cache hit and one regex match for a plain URL (the
    origin of its ``scheme://netloc`` is parsed once), else one :func:`urlsplit`."""
    prefix = _PREFIX_RE.match(url)
    if prefix is not None:
        rest = url[prefix.end() :]
        if (not rest or rest[0] == "/") and not rest.endswith("?") and _PLAIN_TARGET_RE.fullmatch(rest):
            scheme, host, port = _origin_of(prefix.group(0))
            if scheme in ("http", "https") and _PLAIN_HOST_RE.fullmatch(host) and port is not None:
                return scheme, host, port, rest or "/"  # nothing to quote, no fragment: as the slow path
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme {scheme!r}")
    host = parts.hostname or ""
    if not host:
        raise ValueError("no host in the URL")
    if not host.isascii():
        host = host.encode("idna").decode("ascii")
    port = parts.port or (443 if scheme == "https" else 80)
    target = quote(parts.path or "/", safe=_URL_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_URL_SAFE)
    return scheme, host, port, target


def content_length(response: Response) -> int | None:
    """``Content-Length`` as int, or None when absent or malformed."""
    value = response.headers.get("Content-Length", "")
    return parse_uint(value)  # ASCII digits only, at most 20


def iter_body(
    response: Response, *, what: str, settings: RegistrySettings, chunk_size: int = _CHUNK
) -> Iterator[bytes]:
    """Yield the body in chunks of at most ``chunk_size`` bytes, mapping socket failures to typed errors.

    A stall longer than ``settings.read_timeout`` seconds raises :class:`~ociinspect.errors.Timeout`; a
    reset or a body shorter than ``Content-Length`` raises :class:`~ociinspect.errors.ConnectionFailed`.
    With ``settings.deadline``, the deadline is checked before every read and the socket's read timeout is
    lowered to the time remaining; a read cut off by the transport's watchdog (or that passes the deadline)
    raises :class:`~ociinspect.errors.DeadlineExceeded`.
    """
    deadline = settings.deadline

    def doing() -> str:
        return f"reading the body from {_host_of(response.url)} after {response.received} bytes"

    try:
        while True:
            if deadline is not None:
                deadline.check(what, doing(), url=redact_url(response.url))
                _cap_read_timeout(response, deadline.cap(settings.read_timeout))
            chunk = response.read(chunk_size)
            if not chunk:
                break
            yield chunk
    except (OSError, ProtocolError) as exc:
        if deadline is not None and deadline.expired(slack=0.05):
            raise deadline.error(what, doing(), url=redact_url(response.url)) from None
        if any(isinstance(c, TimeoutError) for c in _causes(exc)):
            raise errors.Timeout(
                f"{what}: {_host_of(response.url)} stopped sending after {response.received} bytes "
                f"(nothing for {settings.read_timeout:g} s)",
                hint="the registry or network is stuck; try again later or raise the read timeout",
                url=redact_url(response.url),
            ) from None
        raise errors.ConnectionFailed(
            f"{what}: connection to {_host_of(response.url)} broke after {response.received} bytes",
            hint="the connection was reset or the body truncated; try again",
            url=redact_url(response.url),
        ) from None


def _cap_read_timeout(response: Response, seconds: float) -> None:
    """Set the socket timeout of ``response``'s connection to ``seconds`` (best effort: the watchdog still
    ends the read at the deadline)."""
    sock = response.socket
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.settimeout(seconds)


def read_body(response: Response, *, limit: int, what: str, settings: RegistrySettings) -> bytes:
    """Read the whole body, at most ``limit`` bytes, then close the response.

    Raises :class:`~ociinspect.errors.LimitExceeded` as soon as more than ``limit`` bytes are announced or
    received (it never buffers more than ``limit`` + one chunk).
    """
    try:
        announced = content_length(response)
        if announced is not None and announced > limit:
            raise errors.LimitExceeded(
                f"{what}: the body is {announced} bytes, more than the limit of {limit} bytes",
                hint="this is not a normal image manifest or JSON document; check the reference",
            )
        buf = bytearray()
        for chunk in iter_body(response, what=what, settings=settings, chunk_size=min(_CHUNK, limit + 1)):
            buf += chunk
            if len(buf) > limit:
                raise errors.LimitExceeded(
                    f"{what}: the body exceeds the limit of {limit} bytes",
                    hint="this is not a normal image manifest or JSON document; check the reference",
                )
        return bytes(buf)
    finally:
        response.close()


def discard(response: Response) -> None:
    """Drain a small body (≤ 64 KiB) or a HEAD answer so the connection is reused, then close it."""
    try:
        length = content_length(response)
        if response.method != "HEAD" and length is not None and 0 < length <= ERROR_BODY_LIMIT:
            while response.read(ERROR_BODY_LIMIT):
                pass
    except (OSError, ProtocolError):
        pass
    finally:
        response.close()


_OCI_CODE_RE = re.compile(r"^[A-Z_]+$")


def parse_error_body(body: bytes) -> tuple[str | None, str | None]:
    """``(code, message)`` of an OCI ``{"errors": [{"code", "message", ...}]}`` body, else a text line."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than Python's recursion limit
        text = body.decode("utf-8", "replace").strip().splitlines()
        return None, (text[0][:200] if text else None)
    if isinstance(doc, dict) and isinstance(doc.get("errors"), list) and doc["errors"]:
        first = doc["errors"][0]
        if isinstance(first, dict):
            code = first.get("code")
            message = first.get("message")
            return (
                code if isinstance(code, str) and _OCI_CODE_RE.match(code) else None,
                str(message)[:200] if message else None,
            )
    return None, None


_NOT_FOUND_HINTS = {
    "MANIFEST_UNKNOWN": "check the tag or digest; list the repository's tags to see what exists",
    "NAME_UNKNOWN": "check the repository name (Docker Hub official images live under library/)",
    "BLOB_UNKNOWN": "the manifest points at a blob the registry does not have; the image is incomplete",
}


def error_from_response(
    response: Response,
    *,
    what: str,
    settings: RegistrySettings,
    credentials_sent: bool = False,
    not_found_code: str | None = None,
) -> errors.RegistryError:
    """Typed error for a non-2xx ``response`` (reads ≤ 64 KiB of its body and closes it).

    ``not_found_code`` is used as ``.code`` for a 404 without a parsable body (e.g. a HEAD request).
    """
    status = response.status_code
    url = redact_url(response.url)
    body = b""
    try:
        for chunk in iter_body(response, what=what, settings=settings):
            body += chunk
            if len(body) >= ERROR_BODY_LIMIT:
                break
    except errors.RegistryError:
        pass
    finally:
        response.close()
    code, detail = parse_error_body(body)
    because = f" ({code}: {detail})" if code and detail else f" ({detail})" if detail else ""
    if status == 401:
        if credentials_sent:
            return errors.AuthError(
                f"{what}: credentials rejected (HTTP 401){because}",
                hint="check the user name and password or token; `docker login` again if it expired",
                status=status,
                code=code,
                url=url,
            )
        return errors.AuthError(
            f"{what}: authentication required (HTTP 401){because}",
            hint="log in with --username NAME --password-stdin, or `docker login` / `podman login`",
            status=status,
            code=code,
            url=url,
        )
    if status == 403:
        return errors.AuthError(
            f"{what}: access denied (HTTP 403){because}",
            hint="these credentials may not read this repository; check the name and your permissions",
            status=status,
            code=code,
            url=url,
        )
    if status == 404:
        code = code or not_found_code
        return errors.RegistryNotFound(
            f"{what}: not found (HTTP 404){because}",
            hint=_NOT_FOUND_HINTS.get(code or "", "check the registry, repository and tag or digest"),
            status=status,
            code=code,
            url=url,
        )
    if status == 429:
        retry_after = _retry_after(response)
        return errors.RateLimited(
            f"{what}: rate limited (HTTP 429) after {settings.retries} retries{because}",
            hint="wait and try again"
            + (f" (the registry asks for {retry_after:.0f} s)" if retry_after is not None else "")
            + ", or log in: registries give authenticated users higher limits",
            retry_after=retry_after,
            status=status,
            code=code,
            url=url,
        )
    if status >= 500:
        return errors.RegistryError(
            f"{what}: the registry failed with HTTP {status}{because}",
            hint="a server-side problem; try again later",
            status=status,
            code=code,
            url=url,
        )
    return errors.RegistryError(
        f"{what}: unexpected HTTP {status}{because}",
        hint="the registry does not support this request, or the request is malformed",
        status=status,
        code=code,
        url=url,
    )
