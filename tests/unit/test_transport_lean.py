"""The transport's hot path (issue 14, target 5): body-less requests bypass ``Session.request`` (same headers,
no cookies), and the origin of a URL is parsed once per ``scheme://netloc``.  No timings."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from harness.fakeserver import FakeServer, Reply, Req

from ociinspect.registry import RegistryClient
from ociinspect.registry import transport as transport_mod
from ociinspect.registry.transport import RegistrySettings, _origin


def test_the_lean_send_sends_what_session_request_sent_and_bypasses_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[Req] = []

    def app(req: Req) -> Reply:
        seen.append(req)
        return Reply(200, {"Content-Type": "application/json", "Set-Cookie": "a=b; Path=/"}, b"{}")

    server = FakeServer(app)
    try:
        with RegistryClient(RegistrySettings()) as client:

            def refuse(*args: Any, **kwargs: Any) -> Any:
                raise AssertionError("Session.request used for a body-less request")

            client.ping(server.host)  # the loopback plain-HTTP probe (Session.get), then the ping
            monkeypatch.setattr(client._transport._session, "request", refuse)
            client.ping(server.host)
            client.ping(server.host)  # a cookie set by an earlier answer is never sent back
    finally:
        server.close()
    assert len(seen) >= 3
    for req in seen[-2:]:
        assert req.headers["accept-encoding"] == "identity"
        assert req.headers["user-agent"].startswith("ociinspect/")
        assert "cookie" not in req.headers and "authorization" not in req.headers


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


def test_a_bad_port_is_still_an_error() -> None:
    with pytest.raises(ValueError):
        _origin("http://h:99999/x")
    with pytest.raises(requests.exceptions.InvalidURL):
        requests.PreparedRequest().prepare_url("http://h:99999/x", None)
