"""A scriptable fault-injecting HTTP/1.1 proxy for loopback tests, and a fake "CDN" for redirects.

    proxy = FaultProxy("127.0.0.1:5000").start()          # forwards everything to the real registry
    proxy.rules.add(Respond(503, {"Retry-After": "1"}), method="GET", path=r"/manifests/", times=2)
    proxy.rules.add(Reset(after=100), path=r"/blobs/sha256:")   # headers + 100 body bytes, then RST
    proxy.requests  # every request seen: method, target, headers, whether Authorization was present

Rules are tried in the order added; the first one that matches (method, ``re.search`` on the request target
including the query) and still has uses left applies; ``times=None`` means always. ``skip=N`` lets the first N
matching requests through untouched ("fail after N requests"); ``probability=p`` applies the rule to a random
fraction of the matching requests (the proxy's RNG, seeded with ``proxy.rules.seed(n)``), and ``OneOf`` picks
an action at random each time, so ``rules.add(OneOf((Respond(503), Reset())), times=None, probability=0.05)``
is a random-fault mode. Without a matching rule
the request is forwarded unchanged (Host header included, so the registry builds Location URLs that point
back at the proxy). Upstream responses are read whole into memory: this is for small fixture blobs.
"""

from __future__ import annotations

import http.client
import random
import re
import socket
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from .quiet import QuietHTTPServer

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}


# ---------------------------------------------------------------- actions


@dataclass(frozen=True)
class Respond:
    """Answer ``status`` with ``headers`` and ``body`` without asking upstream."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class Reset:
    """Send upstream's headers and ``after`` body bytes, then reset the connection (SO_LINGER 0)."""

    after: int = 0


@dataclass(frozen=True)
class Stall:
    """Send nothing for ``seconds`` (after the headers and ``after`` body bytes if ``after`` is set), then
    carry on normally. The stall ends early when the proxy stops."""

    seconds: float
    after: int | None = None


@dataclass(frozen=True)
class Truncate:
    """Send upstream's headers (full Content-Length) and only ``keep`` body bytes, then close cleanly."""

    keep: int


@dataclass(frozen=True)
class Corrupt:
    """Flip one byte of the body (at ``offset``, default the middle); same length, same headers."""

    offset: int | None = None


@dataclass(frozen=True)
class Redirect:
    """Answer ``status`` with ``Location: location.format(path=..., query=..., target=...)``."""

    location: str
    status: int = 307


@dataclass(frozen=True)
class Drip:
    """Send the body ``chunk`` bytes at a time with ``interval`` seconds between chunks."""

    chunk: int = 16
    interval: float = 0.05


@dataclass(frozen=True)
class Rewrite:
    """Forward the request, then replace ``pattern`` (a regex) by ``replacement`` in the value of the response
    header ``header`` (name case-insensitive), e.g. point a ``WWW-Authenticate`` realm or a ``Link`` elsewhere.
    With ``add=True`` the header is added when upstream did not send it (its value is ``replacement``)."""

    header: str
    pattern: str
    replacement: str
    add: bool = False


@dataclass(frozen=True)
class OneOf:
    """Apply one of ``actions``, chosen at random (the proxy's seeded RNG) each time the rule applies."""

    actions: tuple[Respond | Reset | Stall | Truncate | Corrupt | Redirect | Drip | Rewrite, ...]


Action = Respond | Reset | Stall | Truncate | Corrupt | Redirect | Drip | Rewrite | OneOf


@dataclass
class Rule:
    action: Action
    method: str | None = None
    path: str = ""
    times: int | None = 1
    hits: int = 0
    skip: int = 0  # let this many matching requests through first
    probability: float = 1.0  # apply to this fraction of the matching requests (at random)
    matched: int = 0

    def take(self, method: str, target: str, rng: random.Random | None = None) -> bool:
        """True (and count a use) if this rule applies to the request."""
        if self.method and self.method.upper() != method:
            return False
        if not re.search(self.path, target) or (self.times is not None and self.hits >= self.times):
            return False
        self.matched += 1
        if self.matched <= self.skip:
            return False
        if self.probability < 1.0 and (rng or random).random() >= self.probability:
            return False
        self.hits += 1
        return True


class Rules:
    def __init__(self) -> None:
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self.rng = random.Random(0)

    def seed(self, value: int) -> None:
        """Seed the RNG behind ``probability`` and ``OneOf`` (reproducible random faults)."""
        with self._lock:
            self.rng.seed(value)

    def add(
        self,
        action: Action,
        *,
        method: str | None = None,
        path: str = "",
        times: int | None = 1,
        skip: int = 0,
        probability: float = 1.0,
    ) -> Rule:
        rule = Rule(action, method, path, times, skip=skip, probability=probability)
        with self._lock:
            self._rules.append(rule)
        return rule

    def pick(self, action: Action) -> Action:
        """``action`` itself, or for :class:`OneOf` one of its actions at random."""
        with self._lock:
            while isinstance(action, OneOf):
                action = self.rng.choice(action.actions)
        return action

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def match(self, method: str, target: str) -> Rule | None:
        with self._lock:
            return next((rule for rule in self._rules if rule.take(method, target, self.rng)), None)


@dataclass(frozen=True)
class Seen:
    """A request as received. ``headers`` keys are lower-case."""

    method: str
    target: str
    headers: Mapping[str, str]
    rule: str | None  # the action's class name if a rule applied

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def authorization(self) -> bool:
        return "authorization" in self.headers


# ---------------------------------------------------------------- server


class FaultProxy:
    """Threaded forwarder on 127.0.0.1:0 in front of ``upstream`` ("HOST:PORT", plain HTTP)."""

    def __init__(self, upstream: str, *, timeout: float = 30.0) -> None:
        self.upstream, self.timeout = upstream, timeout
        self.rules = Rules()
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self._server = QuietHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fault-proxy", daemon=True
        )

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def clear(self) -> None:
        """Drop every rule and the request record."""
        self.rules.clear()
        with self._lock:
            self.requests.clear()

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)

    def forward(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """One request on a fresh upstream connection; the whole response body is read."""
        host, port = self.upstream.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=self.timeout)
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers.items():
                if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                    conn.putheader(name, value)
            if body or method in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            response = conn.getresponse()
            data = b"" if method == "HEAD" else response.read()
            return response.status, response.getheaders(), data
        finally:
            conn.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _make_handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        timeout = 30

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            except OSError:  # client went away, or we reset the connection on purpose
                self.close_connection = True

        def _any(self) -> None:
            body = self._read_body()
            rule = proxy.rules.match(self.command, self.path)
            action = proxy.rules.pick(rule.action) if rule else None
            proxy.record(
                Seen(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    type(action).__name__ if action else None,
                )
            )
            if isinstance(action, Respond):
                return self._send(action.status, list(action.headers.items()), action.body)
            if isinstance(action, Redirect):
                path, _, query = self.path.partition("?")
                location = action.location.format(path=path, query=query, target=self.path)
                return self._send(action.status, [("Location", location)], b"")
            if isinstance(action, Stall) and action.after is None:
                proxy.stopping.wait(action.seconds)
            try:
                status, headers, data = proxy.forward(self.command, self.path, dict(self.headers), body)
            except (OSError, http.client.HTTPException) as exc:
                return self._send(502, [("Content-Type", "text/plain")], f"upstream: {exc!r}".encode())
            self._deliver(action, status, headers, data)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while (size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)) > 0:
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline().strip():  # trailers
                    pass
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _head(self, status: int, headers: list[tuple[str, str]], length: int | None) -> None:
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            if length is not None:
                self.send_header("Content-Length", str(length))
            self.end_headers()

        def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self._head(status, headers, len(body))
            if self.command != "HEAD":
                self.wfile.write(body)

        def _deliver(
            self, action: Action | None, status: int, headers: list[tuple[str, str]], data: bytes
        ) -> None:
            length = (
                dict((k.lower(), v) for k, v in headers).get("content-length")
                if self.command == "HEAD"
                else None
            )
            if isinstance(action, Rewrite):
                headers = _rewrite(headers, action)
            if action is None or self.command == "HEAD":
                self._head(status, headers, int(length) if length is not None else len(data))
                return None if self.command == "HEAD" else self.wfile.write(data)
            if isinstance(action, Corrupt) and data:
                at = len(data) // 2 if action.offset is None else action.offset
                data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
            self._head(status, headers, len(data))
            if isinstance(action, Reset):
                self.wfile.write(data[: action.after])
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True
            elif isinstance(action, Truncate):
                self.wfile.write(data[: action.keep])
                self.close_connection = True
            elif isinstance(action, Stall) and action.after is not None:
                self.wfile.write(data[: action.after])
                proxy.stopping.wait(action.seconds)
                self.wfile.write(data[action.after :])
            elif isinstance(action, Drip):
                for start in range(0, len(data), action.chunk):
                    self.wfile.write(data[start : start + action.chunk])
                    if proxy.stopping.wait(action.interval):
                        break
            else:
                self.wfile.write(data)
            return None

    return Handler


def _rewrite(headers: list[tuple[str, str]], action: Rewrite) -> list[tuple[str, str]]:
    name = action.header.lower()
    out = [(k, re.sub(action.pattern, action.replacement, v) if k.lower() == name else v) for k, v in headers]
    if action.add and not any(k.lower() == name for k, _ in headers):
        out.append((action.header, action.replacement))
    return out


def start_proxy(upstream: str, **kwargs: Any) -> FaultProxy:
    return FaultProxy(upstream, **kwargs).start()


def start_cdn(upstream: str) -> FaultProxy:
    """A second loopback server standing in for a blob CDN: it serves whatever ``upstream`` serves (so a
    ``Redirect(cdn.url + "{target}")`` lands on the real blob) and records the headers it received, e.g. to
    check that ``Authorization`` was not carried across hosts. It is a :class:`FaultProxy`, so rules work."""
    return FaultProxy(upstream).start()
