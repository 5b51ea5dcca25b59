"""The total deadline (issue 15, "Time"): a server that drips one byte at a time defeats every per-read timeout,
so only ``--deadline`` can end the command.  Each scenario uses a small threaded socket server (below) that sends
the response headers or the body one byte at a time, on the paths it is told to; the command must end with
DeadlineExceeded (exit 3, naming what was in flight) within the deadline plus a generous slack — a bound check,
not a performance assertion: without the deadline each of these runs for minutes.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from ociinspect import errors
from ociinspect.model import mediatypes
from ociinspect.registry import Deadline, HostSettings, RegistryClient, RegistrySettings, parse_duration
from ociinspect.registry.deadline import format_duration
from reliability.helpers import run_cli

pytestmark = pytest.mark.timeout(60)

SLACK = 5.0  # seconds beyond the deadline that a run may take (thread wake-ups, a loaded CI machine)
MANIFEST = json.dumps(
    {"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST, "config": {}, "layers": []}
).encode()


@dataclass
class Answer:
    """What the server sends: ``head`` (status line and headers, without the blank line) and ``body``; with a
    ``*_drip`` delay, that part goes out one byte at a time with the delay between bytes."""

    status: str = "200 OK"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    head_drip: float = 0.0
    body_drip: float = 0.0


class DripServer:
    """Threaded HTTP/1.1 server on 127.0.0.1:0 answering ``app(method, path) -> Answer`` (keep-alive)."""

    def __init__(self, app: Callable[[str, str], Answer]) -> None:
        self.app = app
        self.paths: list[str] = []
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _send(self, conn: socket.socket, data: bytes, drip: float) -> None:
        if not drip:
            conn.sendall(data)
            return
        for i in range(len(data)):
            if self._stop.wait(drip):
                raise OSError("server closed")
            conn.sendall(data[i : i + 1])

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        try:
            with conn:
                while not self._stop.is_set():
                    while b"\r\n\r\n" not in buf:
                        data = conn.recv(65536)
                        if not data:
                            return
                        buf += data
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    lines = head.decode("latin-1").split("\r\n")
                    method, path, _ = lines[0].split(" ", 2)
                    length = 0
                    for line in lines[1:]:
                        name, _, value = line.partition(":")
                        if name.strip().lower() == "content-length":
                            length = int(value.strip())
                    while len(buf) < length:
                        buf += conn.recv(65536)
                    buf = buf[length:]
                    self.paths.append(path)
                    answer = self.app(method, path)
                    headers = {"Content-Length": str(len(answer.body)), **answer.headers}
                    text = f"HTTP/1.1 {answer.status}\r\n" + "".join(
                        f"{k}: {v}\r\n" for k, v in headers.items()
                    )
                    self._send(conn, text.encode() + b"\r\n", answer.head_drip)
                    if method != "HEAD":
                        self._send(conn, answer.body, answer.body_drip)
        except OSError:
            return


@pytest.fixture
def drip() -> Iterator[Callable[[Callable[[str, str], Answer]], DripServer]]:
    servers: list[DripServer] = []

    def start(app: Callable[[str, str], Answer]) -> DripServer:
        servers.append(DripServer(app))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def manifest_answer(**kwargs: object) -> Answer:
    digest = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
    headers = {"Content-Type": mediatypes.OCI_MANIFEST, "Docker-Content-Digest": digest}
    return Answer(headers=headers, body=MANIFEST, **kwargs)  # type: ignore[arg-type]


def assert_deadline(code: int, err: str, seconds: float, deadline: float, *in_flight: str) -> None:
    assert code == 3, err
    assert f"deadline {format_duration(deadline)} exceeded after" in err, err
    for text in in_flight:
        assert text in err, err
    assert "\n  hint: " in err and "--deadline" in err, err
    assert seconds < deadline + SLACK, (seconds, err)


# --------------------------------------------------------------------------------------------- CLI, end to end


def test_headers_one_byte_per_second(drip: Callable[..., DripServer]) -> None:
    """Without --deadline: --timeout 3 never fires (a byte arrives every second) and inspect runs ~70 s."""
    server = drip(lambda method, path: Answer(headers={"X-Pad": "x" * 60}, head_drip=1.0))
    ref = f"docker://{server.host}/team/app:1"
    run = run_cli("inspect", "--no-os", "--plain-http", "--timeout", "3", "--deadline", "3s", ref)
    assert_deadline(
        run.code, run.err, run.seconds, 3, f"waiting for response headers from {server.host}", "team/app"
    )


def test_headers_drip_without_plain_http_the_loopback_probe_is_bounded_too(
    drip: Callable[..., DripServer],
) -> None:
    server = drip(lambda method, path: Answer(headers={"X-Pad": "x" * 60}, head_drip=1.0))
    run = run_cli("inspect", "--no-os", "--deadline", "3", f"docker://{server.host}/team/app:1")
    assert_deadline(run.code, run.err, run.seconds, 3, "team/app")


def test_body_one_byte_every_half_second(drip: Callable[..., DripServer]) -> None:
    def app(method: str, path: str) -> Answer:
        if "/manifests/" in path:
            return manifest_answer(body_drip=0.5)
        return Answer(body=b"{}")

    server = drip(app)
    run = run_cli(
        "inspect", "--no-os", "--plain-http", "--deadline", "3s", f"docker://{server.host}/team/app:1"
    )
    assert_deadline(run.code, run.err, run.seconds, 3, f"reading the body from {server.host} after")


def test_token_endpoint_dripping(drip: Callable[..., DripServer]) -> None:
    holder: list[DripServer] = []

    def app(method: str, path: str) -> Answer:
        if path.startswith("/token"):
            return Answer(body=b'{"token": "t"}', head_drip=1.0)
        realm = f"http://{holder[0].host}/token"
        return Answer("401 Unauthorized", {"WWW-Authenticate": f'Bearer realm="{realm}",service="s"'})

    holder.append(drip(app))
    host = holder[0].host
    run = run_cli("inspect", "--no-os", "--plain-http", "--deadline", "3s", f"docker://{host}/team/app:1")
    assert_deadline(run.code, run.err, run.seconds, 3, f"getting a token from {host}")
    assert any(p.startswith("/token") for p in holder[0].paths)


def test_retry_after_longer_than_the_deadline_fails_at_once(drip: Callable[..., DripServer]) -> None:
    """A 503 asking for 30 s: waiting would pass a 2 s deadline, so it is reported at once, not slept out."""
    server = drip(lambda method, path: Answer("503 Service Unavailable", {"Retry-After": "30"}))
    run = run_cli(
        "inspect", "--no-os", "--plain-http", "--deadline", "2s", f"docker://{server.host}/team/app:1"
    )
    assert_deadline(
        run.code, run.err, run.seconds, 2, "retrying after HTTP 503", "pause would pass the deadline"
    )


def test_bad_deadline_is_a_usage_error() -> None:
    run = run_cli("inspect", "--deadline", "5 minutes", "docker://127.0.0.1:9/a:b")
    assert run.code == 2 and "--deadline" in run.err and "not a duration" in run.err, run


# ------------------------------------------------------------------------------ library: tags and catalog pages


def _client(seconds: float) -> RegistryClient:
    return RegistryClient(
        RegistrySettings(
            default=HostSettings(plain_http=True), read_timeout=3.0, deadline=Deadline.after(seconds)
        )
    )


@pytest.mark.parametrize("listing", ["tags", "catalog"])
@pytest.mark.parametrize("part", ["head", "body"])
def test_second_list_page_dripping(drip: Callable[..., DripServer], listing: str, part: str) -> None:
    def app(method: str, path: str) -> Answer:
        key = "tags" if "/tags/" in path else "repositories"
        if "last=" not in path:
            link = path.split("?")[0] + "?n=1&last=a"
            return Answer(headers={"Link": f'<{link}>; rel="next"'}, body=json.dumps({key: ["a"]}).encode())
        slow = {"head_drip": 1.0} if part == "head" else {"body_drip": 0.5}
        body = json.dumps({key: ["b" * 40]}).encode()
        return Answer(headers={"X-Pad": "x" * 40}, body=body, **slow)  # type: ignore[arg-type]

    server = drip(app)
    start = time.monotonic()
    with _client(2.0) as client, pytest.raises(errors.DeadlineExceeded) as info:
        if listing == "tags":
            client.list_tags(server.host, "team/app")
        else:
            list(client.catalog(server.host))
    elapsed = time.monotonic() - start
    assert "(page 2)" in str(info.value) and "deadline 2s exceeded" in str(info.value)
    assert info.value.exit_code == 3
    assert elapsed < 2 + SLACK


def test_parse_duration_grammar() -> None:
    assert parse_duration("90s") == 90 and parse_duration("5m") == 300 and parse_duration("1h") == 3600
    assert parse_duration("1h30m") == 5400 and parse_duration("1.5h") == 5400 and parse_duration("45") == 45
    assert parse_duration("500ms") == 0.5 and parse_duration(" 2D ") == 172800
    for off in ("0", "none", "off", "0s"):
        assert parse_duration(off) is None
    for bad in ("", "5 minutes", "-5s", "1x", "²s", "１s", "5m-1s", "400d"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_deadline_defaults_by_command() -> None:
    from ociinspect.cli.options import DEFAULT_DEADLINES

    assert DEFAULT_DEADLINES["inspect"] == 600 and DEFAULT_DEADLINES["waste"] == 1800
    assert DEFAULT_DEADLINES["audit"] is None
