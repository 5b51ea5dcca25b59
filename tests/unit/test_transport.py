"""Transport behaviour against tiny loopback servers started by each test (no other network).

Retries and Retry-After, timeouts, connection errors, TLS (test CA), the loopback plain-HTTP fallback,
redirects across hosts, size caps, digest checks and Link pagination.
"""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
import time
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness.fakeserver import FakeServer, Reply, Req

from ociinspect import errors
from ociinspect.model import mediatypes
from ociinspect.registry import (
    CredentialResolver,
    Credentials,
    HostSettings,
    RegistryClient,
    RegistrySettings,
)
from ociinspect.registry.transport import redact_url

pytestmark = pytest.mark.timeout(30)

MANIFEST = json.dumps(
    {"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST, "config": {}, "layers": []}
).encode()
MANIFEST_DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()


# ------------------------------------------------------------------------------------ fake server


def plain(**kwargs: Any) -> RegistrySettings:
    kwargs.setdefault("backoff", 0.01)
    return RegistrySettings(default=HostSettings(plain_http=True), **kwargs)


def manifest_reply(data: bytes = MANIFEST, digest: str | None = None) -> Reply:
    headers = {"Content-Type": mediatypes.OCI_MANIFEST}
    headers["Docker-Content-Digest"] = digest or "sha256:" + hashlib.sha256(data).hexdigest()
    return Reply(200, headers, data)


def scripted(*replies: Reply) -> Callable[[Req], Reply]:
    """Answer with ``replies`` in order, then repeat the last one."""
    queue = list(replies)

    def app(req: Req) -> Reply:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return app


# ----------------------------------------------------------------------------------------- settings


def test_public_api_is_sorted_and_importable() -> None:
    import ociinspect.registry as registry

    assert registry.__all__ == sorted(registry.__all__)
    assert set(registry.__all__) == {
        "BlobInfo",
        "CredentialResolver",
        "Credentials",
        "Deadline",
        "FetchedManifest",
        "HostSettings",
        "RegistryClient",
        "RegistrySettings",
        "parse_duration",
    }
    assert all(getattr(registry, name) is not None for name in registry.__all__)


def test_settings_per_host_override_and_normalisation() -> None:
    special = HostSettings(insecure=True)
    settings = RegistrySettings(hosts={"HTTPS://Reg.Example:5000/": special})
    assert settings.for_host("reg.example:5000") is special
    assert settings.for_host("other:5000") == HostSettings()
    assert hash(settings) == hash(RegistrySettings(hosts={"reg.example:5000": special}))
    with pytest.raises(TypeError):
        settings.hosts["x"] = special  # type: ignore[index]
    with pytest.raises(ValueError):
        RegistrySettings(read_timeout=0)
    with pytest.raises(ValueError):
        RegistrySettings(retries=-1)
    assert (
        settings.user_agent.startswith("ociinspect/")
        and settings.user_agent[len("ociinspect/") :][0].isdigit()
    )


def test_redact_url_removes_userinfo_and_secret_query_values() -> None:
    url = "https://user:pw@cdn.example/blob?X-Amz-Signature=secret&n=2&token=abc"
    redacted = redact_url(url)
    assert "pw" not in redacted and "secret" not in redacted and "abc" not in redacted
    assert redacted.startswith("https://cdn.example/blob?") and "n=2" in redacted


# ------------------------------------------------------------------------------------------ retries


def test_retry_on_503_then_success(serve: Callable[..., FakeServer]) -> None:
    server = serve(scripted(Reply(503), Reply(503), manifest_reply()))
    with RegistryClient(plain(retries=3)) as client:
        fetched = client.get_manifest(server.host, "a/b", "latest")
    assert fetched.digest == MANIFEST_DIGEST
    assert len(server.requests) == 3


def test_429_honours_retry_after_seconds(serve: Callable[..., FakeServer]) -> None:
    server = serve(scripted(Reply(429, {"Retry-After": "1"}), manifest_reply()))
    started = time.monotonic()
    with RegistryClient(plain(retries=3)) as client:
        client.get_manifest(server.host, "a/b", "latest")
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 3.0
    assert len(server.requests) == 2


def test_retry_after_http_date_is_honoured(serve: Callable[..., FakeServer]) -> None:
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 2))
    server = serve(scripted(Reply(503, {"Retry-After": when}), manifest_reply()))
    started = time.monotonic()
    with RegistryClient(plain(retries=1)) as client:
        client.get_manifest(server.host, "a/b", "latest")
    assert 0.5 <= time.monotonic() - started < 4.0  # 1-2 s: the date has a one-second resolution


def test_retry_after_is_capped(serve: Callable[..., FakeServer]) -> None:
    server = serve(scripted(Reply(429, {"Retry-After": "100"}), manifest_reply()))
    started = time.monotonic()
    with RegistryClient(plain(retries=1, max_retry_after=0.2)) as client:
        client.get_manifest(server.host, "a/b", "latest")
    assert 0.2 <= time.monotonic() - started < 2.0


def test_429_without_retry_after_uses_exponential_backoff(serve: Callable[..., FakeServer]) -> None:
    server = serve(scripted(Reply(429), Reply(429), manifest_reply()))
    started = time.monotonic()
    with RegistryClient(plain(retries=2, backoff=0.2)) as client:
        client.get_manifest(server.host, "a/b", "latest")
    assert 0.6 <= time.monotonic() - started < 2.5  # 0.2 + 0.4
    assert len(server.requests) == 3


def test_429_retries_exhausted_is_rate_limited(serve: Callable[..., FakeServer]) -> None:
    server = serve(scripted(Reply(429, {"Retry-After": "0"})))
    with RegistryClient(plain(retries=2)) as client, pytest.raises(errors.RateLimited) as info:
        client.get_manifest(server.host, "a/b", "latest")
    assert info.value.status == 429 and info.value.retry_after == 0
    assert info.value.url == f"http://{server.host}/v2/a/b/manifests/latest"
    assert len(server.requests) == 3


def test_503_retries_exhausted_is_registry_error_with_status(serve: Callable[..., FakeServer]) -> None:
    server = serve(scripted(Reply(503)))
    with RegistryClient(plain(retries=1)) as client, pytest.raises(errors.RegistryError) as info:
        client.get_manifest(server.host, "a/b", "latest")
    assert type(info.value) is errors.RegistryError and info.value.status == 503
    assert len(server.requests) == 2


def test_500_is_not_retried(serve: Callable[..., FakeServer]) -> None:
    body = json.dumps({"errors": [{"code": "UNKNOWN", "message": "boom"}]}).encode()
    server = serve(scripted(Reply(500, {"Content-Type": "application/json"}, body)))
    with RegistryClient(plain(retries=3)) as client, pytest.raises(errors.RegistryError) as info:
        client.get_manifest(server.host, "a/b", "latest")
    assert (info.value.status, info.value.code) == (500, "UNKNOWN") and "boom" in str(info.value)
    assert len(server.requests) == 1


def test_connection_closed_without_answer_is_retried(serve: Callable[..., FakeServer]) -> None:
    server = serve(scripted(Reply(hang_up=True), manifest_reply()))
    with RegistryClient(plain(retries=2)) as client:
        assert client.get_manifest(server.host, "a/b", "latest").digest == MANIFEST_DIGEST
    assert len(server.requests) == 2


# --------------------------------------------------------------------------- timeouts and failures


def test_stalled_server_is_timeout_within_read_timeout() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # accepts (kernel backlog) and never answers
        host = f"127.0.0.1:{listener.getsockname()[1]}"
        started = time.monotonic()
        with (
            RegistryClient(plain(read_timeout=0.5, retries=3)) as client,
            pytest.raises(errors.Timeout) as info,
        ):
            client.get_manifest(host, "a/b", "latest")
        elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 2.0
    assert info.value.hint and "0.5 s" in str(info.value)


def test_stall_mid_body_is_timeout(serve: Callable[..., FakeServer]) -> None:
    blob = b"x" * 10000
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    server = serve(scripted(Reply(200, {}, blob, send_bytes=100, stall=3)))
    started = time.monotonic()
    client = RegistryClient(plain(read_timeout=0.5))
    with client, client.stream_blob(server.host, "a/b", digest) as chunks, pytest.raises(errors.Timeout):
        for _ in chunks:
            pass
    assert time.monotonic() - started < 2.5


def test_truncated_body_is_connection_failed(serve: Callable[..., FakeServer]) -> None:
    blob = b"y" * 5000
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    server = serve(scripted(Reply(200, {}, blob, send_bytes=10)))
    with RegistryClient(plain()) as client, pytest.raises(errors.ConnectionFailed) as info:
        client.get_blob(server.host, "a/b", digest, max_bytes=1 << 20)
    assert "after 10 bytes" in str(info.value)


def test_connection_refused_fails_fast_without_retries() -> None:
    with socket.socket() as bound:  # bound but not listening: connect() is refused, no race
        bound.bind(("127.0.0.1", 0))
        host = f"127.0.0.1:{bound.getsockname()[1]}"
        started = time.monotonic()
        client = RegistryClient(plain(retries=3, backoff=0.5))
        with client, pytest.raises(errors.ConnectionFailed) as info:
            client.get_manifest(host, "a/b", "latest")
    assert time.monotonic() - started < 1.0
    assert "refused" in str(info.value) and info.value.hint is not None and "running" in info.value.hint
    assert info.value.url == f"http://{host}/v2/a/b/manifests/latest"


def test_dns_failure_is_connection_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def fake_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "registry.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    started = time.monotonic()
    with (
        RegistryClient(RegistrySettings(backoff=0.5)) as client,
        pytest.raises(errors.ConnectionFailed) as info,
    ):
        client.get_manifest("registry.invalid", "a/b", "latest")
    assert time.monotonic() - started < 1.0
    assert "cannot resolve host registry.invalid" in str(info.value)
    assert info.value.hint is not None and "DNS" in info.value.hint


# ------------------------------------------------------------------------------------------- headers


def test_user_agent_identity_encoding_and_no_netrc(
    serve: Callable[..., FakeServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve(scripted(manifest_reply()))
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password netrc-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    settings = plain()
    with RegistryClient(settings) as client:
        client.get_manifest(server.host, "a/b", "latest")
    (req,) = server.requests
    assert req.headers["user-agent"] == settings.user_agent
    assert req.headers["accept-encoding"] == "identity"
    assert "authorization" not in req.headers
    accept = [t.strip() for t in req.headers["accept"].split(",")]
    assert accept[:4] == list(mediatypes.MANIFEST_ACCEPT)
    assert accept[4:] == [mediatypes.DOCKER_SCHEMA1_SIGNED, mediatypes.DOCKER_SCHEMA1]


# -------------------------------------------------------------------------------------------- redirects


def test_redirect_to_other_host_drops_authorization_and_cookies_keeps_range(
    serve: Callable[..., FakeServer],
) -> None:
    blob = bytes(range(256)) * 8
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    cdn = serve(
        lambda req: Reply(
            206, {"Content-Range": f"bytes {len(blob) - 4}-{len(blob) - 1}/{len(blob)}"}, blob[-4:]
        )
    )
    cdn_url = f"http://localhost:{cdn.port}/blobs/x?sig=abc"  # localhost vs 127.0.0.1: another host

    def registry(req: Req) -> Reply:
        if "authorization" not in req.headers:
            return Reply(401, {"WWW-Authenticate": 'Basic realm="r"', "Set-Cookie": "session=abc; Path=/"})
        return Reply(307, {"Location": cdn_url, "Set-Cookie": "session=def; Path=/"})

    server = serve(registry)
    creds = CredentialResolver(explicit={server.host: Credentials("u", "p")}, env={})
    with RegistryClient(plain(), creds) as client:
        data, total = client.get_blob_range(server.host, "a/b", digest, suffix=4)
        client.get_blob_range(server.host, "a/b", digest, suffix=4)
    assert (data, total) == (blob[-4:], len(blob))
    assert [("authorization" in r.headers) for r in server.requests] == [False, True, True]
    assert all("cookie" not in r.headers for r in server.requests + cdn.requests)
    assert len(cdn.requests) == 2
    for req in cdn.requests:
        assert "authorization" not in req.headers and req.headers["range"] == "bytes=-4"
        assert req.path == "/blobs/x?sig=abc"


def test_same_host_redirect_keeps_authorization(serve: Callable[..., FakeServer]) -> None:
    def registry(req: Req) -> Reply:
        if req.path.startswith("/v2/a/b/manifests/"):
            return Reply(307, {"Location": "/elsewhere/manifest"})
        return manifest_reply()

    server = serve(registry)
    creds = CredentialResolver(explicit={server.host: Credentials(registry_token="tok")}, env={})
    with RegistryClient(plain(), creds) as client:
        client.get_manifest(server.host, "a/b", "latest")
    assert [r.path for r in server.requests] == ["/v2/a/b/manifests/latest", "/elsewhere/manifest"]
    assert all(r.headers.get("authorization") == "Bearer tok" for r in server.requests)


def test_redirect_loop_stops_after_five_hops(serve: Callable[..., FakeServer]) -> None:
    server = serve(lambda req: Reply(302, {"Location": req.path}))
    with RegistryClient(plain()) as client, pytest.raises(errors.RegistryError) as info:
        client.get_manifest(server.host, "a/b", "latest")
    assert "redirects" in str(info.value)
    assert len(server.requests) == 6


# ---------------------------------------------------------------------------------- content checks


def test_manifest_digest_header_mismatch(serve: Callable[..., FakeServer]) -> None:
    server = serve(scripted(manifest_reply(digest="sha256:" + "1" * 64)))
    with RegistryClient(plain()) as client, pytest.raises(errors.DigestMismatch) as info:
        client.get_manifest(server.host, "a/b", "latest")
    assert "sha256:" + "1" * 64 in str(info.value) and MANIFEST_DIGEST in str(info.value)


def test_manifest_by_digest_must_match_content(serve: Callable[..., FakeServer]) -> None:
    server = serve(scripted(Reply(200, {"Content-Type": mediatypes.OCI_MANIFEST}, MANIFEST)))
    with RegistryClient(plain()) as client:
        assert client.get_manifest(server.host, "a/b", MANIFEST_DIGEST).digest == MANIFEST_DIGEST
        with pytest.raises(errors.DigestMismatch):
            client.get_manifest(server.host, "a/b", "sha256:" + "2" * 64)


def test_manifest_media_type_from_json_when_content_type_is_generic(serve: Callable[..., FakeServer]) -> None:
    server = serve(scripted(Reply(200, {"Content-Type": "application/json; charset=utf-8"}, MANIFEST)))
    with RegistryClient(plain()) as client:
        assert client.get_manifest(server.host, "a/b", "latest").media_type == mediatypes.OCI_MANIFEST


def test_schema1_is_returned_not_rejected(serve: Callable[..., FakeServer]) -> None:
    schema1 = json.dumps({"schemaVersion": 1, "name": "a/b", "fsLayers": [], "signatures": []}).encode()
    server = serve(
        lambda req: (
            Reply(200, {"Content-Type": mediatypes.DOCKER_SCHEMA1_SIGNED}, schema1)
            if "typed" in req.path
            else Reply(200, {"Content-Type": "application/json"}, schema1)
        )
    )
    with RegistryClient(plain()) as client:
        assert client.get_manifest(server.host, "a/b", "typed").media_type == mediatypes.DOCKER_SCHEMA1_SIGNED
        assert (
            client.get_manifest(server.host, "a/b", "generic").media_type == mediatypes.DOCKER_SCHEMA1_SIGNED
        )


def test_head_manifest_uses_headers_and_falls_back_to_get(serve: Callable[..., FakeServer]) -> None:
    def app(req: Req) -> Reply:
        reply = manifest_reply()
        if "nodigest" in req.path:
            del reply.headers["Docker-Content-Digest"]
        return reply

    server = serve(app)
    with RegistryClient(plain()) as client:
        expected = (MANIFEST_DIGEST, mediatypes.OCI_MANIFEST, len(MANIFEST))
        assert client.head_manifest(server.host, "a/b", "latest") == expected
        assert [r.method for r in server.requests] == ["HEAD"]
        assert client.head_manifest(server.host, "a/b", "nodigest") == expected
        assert [r.method for r in server.requests] == ["HEAD", "HEAD", "GET"]
        with pytest.raises(errors.DigestMismatch):
            client.head_manifest(server.host, "a/b", "sha256:" + "3" * 64)


def test_stream_blob_checks_digest_at_the_end_unless_told_not_to(serve: Callable[..., FakeServer]) -> None:
    blob = b"b" * 300_000
    wrong = "sha256:" + "4" * 64
    server = serve(lambda req: Reply(200, {}, blob))
    with RegistryClient(plain()) as client:
        received = bytearray()
        stream = client.stream_blob(server.host, "a/b", wrong, chunk_size=65536)
        with stream as chunks, pytest.raises(errors.DigestMismatch):
            for chunk in chunks:
                received += chunk
        assert bytes(received) == blob  # every byte was delivered before the mismatch was raised
        with client.stream_blob(server.host, "a/b", wrong, verify=False) as chunks:
            assert b"".join(chunks) == blob


def test_manifest_over_max_bytes_announced(serve: Callable[..., FakeServer]) -> None:
    server = serve(scripted(manifest_reply(b"{" + b" " * 5000 + b"}")))
    with RegistryClient(plain()) as client, pytest.raises(errors.LimitExceeded):
        client.get_manifest(server.host, "a/b", "latest", max_bytes=4096)


def test_body_over_max_bytes_streamed_is_not_buffered(serve: Callable[..., FakeServer]) -> None:
    big = b"z" * (16 << 20)
    server = serve(scripted(Reply(200, {"Content-Type": mediatypes.OCI_MANIFEST}, big, chunked=True)))
    with RegistryClient(plain()) as client:
        tracemalloc.start()
        try:
            with pytest.raises(errors.LimitExceeded):
                client.get_manifest(server.host, "a/b", "latest", max_bytes=1 << 20)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 4 << 20  # far below the 16 MiB body


def test_range_ignored_small_blob_is_sliced_large_blob_is_range_not_supported(
    serve: Callable[..., FakeServer],
) -> None:
    small = bytes(range(200)) * 10
    large = b"L" * (2 << 20)
    blobs = {"sha256:" + hashlib.sha256(b).hexdigest(): b for b in (small, large)}
    server = serve(lambda req: Reply(200, {}, blobs[req.path.rsplit("/", 1)[1]]))
    small_digest, large_digest = list(blobs)
    with RegistryClient(plain()) as client:
        assert client.get_blob_range(server.host, "a/b", small_digest, suffix=4) == (small[-4:], len(small))
        assert client.get_blob_range(server.host, "a/b", small_digest, start=5, end=9) == (
            small[5:10],
            len(small),
        )
        with pytest.raises(errors.RangeNotSupported):
            client.get_blob_range(server.host, "a/b", large_digest, suffix=4)
    assert all(r.headers["range"] for r in server.requests)


# ------------------------------------------------------------------------------------------- listing


def test_tags_pagination_with_relative_links(serve: Callable[..., FakeServer]) -> None:
    pages = {
        "/v2/r/tags/list?n=2": (["a", "b"], '</v2/r/tags/list?n=2&last=b>; rel="next"'),
        "/v2/r/tags/list?n=2&last=b": (["c", "d"], '<list?n=2&last=d>; rel="next"'),
        "/v2/r/tags/list?n=2&last=d": (["e"], None),
    }

    def app(req: Req) -> Reply:
        tags, link = pages[req.path]
        headers = {"Content-Type": "application/json"} | ({"Link": link} if link else {})
        return Reply(200, headers, json.dumps({"name": "r", "tags": tags}).encode())

    server = serve(app)
    with RegistryClient(plain()) as client:
        assert client.list_tags(server.host, "r", page_size=2) == ["a", "b", "c", "d", "e"]
    assert [r.path for r in server.requests] == list(pages)


def test_pagination_refuses_links_to_other_hosts_and_caps_pages(serve: Callable[..., FakeServer]) -> None:
    def app(req: Req) -> Reply:
        if req.path.startswith("/v2/evil/"):
            return Reply(200, {"Link": '<http://localhost:1/steal>; rel="next"'}, b'{"tags": ["x"]}')
        n = int(req.path.rsplit("=", 1)[1]) if "last=" in req.path else 0
        link = f'</v2/_catalog?n=1&last={n + 1}>; rel="next"'
        return Reply(200, {"Link": link}, json.dumps({"repositories": [f"r{n}"]}).encode())

    server = serve(app)
    with RegistryClient(plain()) as client:
        with pytest.raises(errors.RegistryError, match="another host"):
            client.list_tags(server.host, "evil/repo")
        with pytest.raises(errors.LimitExceeded):
            list(client.catalog(server.host, page_size=1, max_pages=3))
        assert list(zip(range(5), client.catalog(server.host, page_size=1), strict=False)) == [
            (i, f"r{i}") for i in range(5)
        ]


# ----------------------------------------------------------------------------------------------- TLS


def test_tls_with_ca_file_without_and_insecure(
    serve: Callable[..., FakeServer], test_ca: tuple[Path, ssl.SSLContext]
) -> None:
    ca_file, context = test_ca
    server = serve(scripted(manifest_reply()), tls=context)
    trusted = RegistrySettings(hosts={server.host: HostSettings(ca_file=str(ca_file))})
    with RegistryClient(trusted) as client:
        assert client.get_manifest(server.host, "a/b", "latest").digest == MANIFEST_DIGEST
    with RegistryClient(RegistrySettings()) as client, pytest.raises(errors.TLSFailure) as info:
        client.get_manifest(server.host, "a/b", "latest")
    assert info.value.hint is not None and "--ca-file" in info.value.hint and "--insecure" in info.value.hint
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        insecure = RegistrySettings(default=HostSettings(insecure=True))
        with RegistryClient(insecure) as client:
            assert client.get_manifest(server.host, "a/b", "latest").digest == MANIFEST_DIGEST
        # a warning raised by unrelated code right after our call is not swallowed
        warnings.warn("after", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["after"]
    assert list(warnings.filters) == before


def test_loopback_plain_http_fallback_is_remembered(serve: Callable[..., FakeServer]) -> None:
    server = serve(scripted(manifest_reply()))
    with RegistryClient(RegistrySettings()) as client:  # https by default
        assert client.get_manifest(server.host, "a/b", "latest").digest == MANIFEST_DIGEST
        assert client._transport.is_plain_http(server.host)
        client.get_manifest(server.host, "a/b", "latest")
    # one credential-less plain-HTTP probe of /v2/ (no TLS attempt at all), then the two requests
    assert [r.path for r in server.requests] == [
        "/v2/",
        "/v2/a/b/manifests/latest",
        "/v2/a/b/manifests/latest",
    ]
    assert "authorization" not in server.requests[0].headers


def test_loopback_tls_registry_is_not_mistaken_for_plain(
    serve: Callable[..., FakeServer], test_ca: tuple[Path, ssl.SSLContext]
) -> None:
    _ca_file, context = test_ca
    server = serve(scripted(manifest_reply()), tls=context)
    with RegistryClient(RegistrySettings()) as client:
        assert not client._transport.is_plain_http(server.host)  # the plain probe fails: stay on https
        with pytest.raises(errors.TLSFailure):  # and https without the CA is refused, as it must be
            client.get_manifest(server.host, "a/b", "latest")


def test_plain_http_server_with_tls_required_hints_plain_http(
    serve: Callable[..., FakeServer], test_ca: tuple[Path, ssl.SSLContext]
) -> None:
    server = serve(scripted(manifest_reply()))
    settings = RegistrySettings(hosts={server.host: HostSettings(ca_file=str(test_ca[0]))})  # no fallback
    with RegistryClient(settings) as client, pytest.raises(errors.TLSFailure) as info:
        client.get_manifest(server.host, "a/b", "latest")
    assert info.value.hint is not None and "--plain-http" in info.value.hint
    assert server.requests == []


def test_first_requests_to_a_starting_loopback_registry_are_retried(serve: Callable[..., FakeServer]) -> None:
    """No --plain-http: the loopback probe and the first request meet 503 (a registry still starting, common
    in CI) and are retried like every other request."""
    server = serve(scripted(Reply(503), Reply(503), manifest_reply()))
    with RegistryClient(RegistrySettings(backoff=0.01)) as client:
        fetched = client.get_manifest(server.host, "team/app", "latest")
    assert fetched.digest == MANIFEST_DIGEST
    assert len(server.requests) == 3  # the probe (503), the request (503), its retry (200)
