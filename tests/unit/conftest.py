"""Fixtures shared by the unit tests of the registry transport: tiny loopback servers and a test CA."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import pki
from harness.fakeserver import FakeServer, Reply, Req


@pytest.fixture
def serve() -> Iterator[Callable[..., FakeServer]]:
    servers: list[FakeServer] = []

    def start(app: Callable[[Req], Reply], **kwargs: Any) -> FakeServer:
        server = FakeServer(app, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ssl.SSLContext]:
    directory = tmp_path_factory.mktemp("pki")
    ca = pki.make_ca(directory)
    server = pki.issue(ca, directory, "server", "127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server.cert_path, server.key_path)
    return ca.cert_path, context
