"""A scriptable fake HTTP/1.1 server on 127.0.0.1 for unit tests of the registry client.

``FakeServer(app)`` answers every request with ``app(req) -> Reply`` and records the requests; a ``Reply`` can
truncate its body, stall, use chunked encoding or hang up, and the server can speak TLS.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from .quiet import QuietHTTPServer

__all__ = ["FakeServer", "Reply", "Req"]


@dataclass
class Req:
    method: str
    path: str
    headers: dict[str, str]  # lower-case keys
    body: bytes


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    send_bytes: int | None = None  # write only this many body bytes, then close (truncated body)
    stall: float = 0.0  # sleep this long after ``send_bytes`` bytes (or before the body)
    chunked: bool = False
    hang_up: bool = False  # close the connection without any answer


class FakeServer:
    """Threaded HTTP/1.1 server on 127.0.0.1:0; ``app(req) -> Reply``; records every request."""

    def __init__(self, app: Callable[[Req], Reply], *, tls: ssl.SSLContext | None = None) -> None:
        self.app = app
        self.requests: list[Req] = []
        self.connections = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def setup(self) -> None:
                outer.connections += 1
                super().setup()

            def serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                req = Req(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                outer.requests.append(req)
                reply = outer.app(req)
                if reply.hang_up:
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                if reply.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                elif "Content-Length" not in reply.headers:
                    self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if self.command == "HEAD":
                    return
                body = reply.body
                if reply.chunked:
                    for start in range(0, len(body), 65536):
                        piece = body[start : start + 65536]
                        try:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                        except OSError:
                            return
                    self.wfile.write(b"0\r\n\r\n")
                    return
                if reply.send_bytes is not None:
                    self.wfile.write(body[: reply.send_bytes])
                    self.wfile.flush()
                    time.sleep(reply.stall)
                    self.close_connection = True
                    return
                time.sleep(reply.stall)
                self.wfile.write(body)

            do_GET = do_HEAD = do_POST = serve

        self.server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
