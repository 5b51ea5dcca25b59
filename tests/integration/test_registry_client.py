"""RegistryClient against the real CNCF Distribution registry (fixtures from tests/conftest.py).

Images were pushed by skopeo (and oras-py), never by ociinspect, and ``fixtures.build.EXPECTED`` holds facts
computed while building them, so every assertion compares against an independent source.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness.faultproxy import Corrupt, Redirect, Reset, Respond, Stall

from fixtures.build import EXPECTED
from ociinspect import errors
from ociinspect.model import mediatypes
from ociinspect.registry import (
    CredentialResolver,
    Credentials,
    HostSettings,
    RegistryClient,
    RegistrySettings,
)

pytestmark = [pytest.mark.registry, pytest.mark.timeout(30)]

BASE_LAYER = EXPECTED["base"].layers[0]
APP1 = EXPECTED["app1"]


def _client(endpoint: Any, **creds: str) -> RegistryClient:
    resolver = CredentialResolver(explicit={endpoint.host: Credentials(**creds)} if creds else None, env={})
    return RegistryClient(endpoint.settings, resolver)


@pytest.fixture
def anon(seeded_registry: Any) -> Iterator[RegistryClient]:
    with _client(seeded_registry) as client:
        yield client


def _count(endpoint: Any, *, status: int | None = None, path: str = "") -> int:
    return sum(1 for e in endpoint.access_log() if (status is None or e.status == status) and path in e.uri)


# ----------------------------------------------------------------------------------------- anonymous


@pytest.mark.parametrize(
    ("repo_tag", "media_type"),
    [
        ("fixtures/base:latest", mediatypes.OCI_MANIFEST),
        ("fixtures/multi:latest", mediatypes.OCI_INDEX),
        ("fixtures/app1:v2s2", mediatypes.DOCKER_MANIFEST),
        ("fixtures/multi:v2s2", mediatypes.DOCKER_MANIFEST_LIST),
    ],
)
def test_manifest_get_and_head_oci_and_docker(
    seeded_registry: Any, anon: RegistryClient, repo_tag: str, media_type: str
) -> None:
    repo, tag = repo_tag.rsplit(":", 1)
    fetched = anon.get_manifest(seeded_registry.host, repo, tag)
    assert fetched.media_type == media_type
    assert fetched.digest == seeded_registry.digests[repo_tag]
    assert fetched.digest == "sha256:" + hashlib.sha256(fetched.data).hexdigest()
    assert json.loads(fetched.data)["mediaType"] == media_type
    assert anon.head_manifest(seeded_registry.host, repo, tag) == (
        fetched.digest,
        media_type,
        len(fetched.data),
    )
    by_digest = anon.get_manifest(seeded_registry.host, repo, fetched.digest)
    assert by_digest == fetched


def test_manifest_digest_matches_what_the_fixture_builder_wrote(
    seeded_registry: Any, anon: RegistryClient
) -> None:
    fetched = anon.get_manifest(seeded_registry.host, "fixtures/app1", "latest")
    assert fetched.digest == APP1.manifest_digest
    assert len(fetched.data) == APP1.manifest_size


def test_missing_manifest_is_not_found_with_oci_code(seeded_registry: Any, anon: RegistryClient) -> None:
    with pytest.raises(errors.NotFound) as info:
        anon.get_manifest(seeded_registry.host, "fixtures/base", "no-such-tag")
    error = info.value
    assert isinstance(error, errors.RegistryError)
    assert (error.status, error.code) == (404, "MANIFEST_UNKNOWN")
    assert error.url is not None and error.url.endswith("/v2/fixtures/base/manifests/no-such-tag")
    assert "no-such-tag" in str(error) and error.hint


def test_missing_repository_is_not_found_with_name_unknown(
    seeded_registry: Any, anon: RegistryClient
) -> None:
    # Distribution 2.8 answers MANIFEST_UNKNOWN for a manifest of an unknown repository, NAME_UNKNOWN for tags
    with pytest.raises(errors.RegistryNotFound) as info:
        anon.list_tags(seeded_registry.host, "fixtures/does-not-exist")
    assert (info.value.status, info.value.code) == (404, "NAME_UNKNOWN")
    assert info.value.hint is not None and "repository name" in info.value.hint


def test_head_manifest_404_is_not_found(seeded_registry: Any, anon: RegistryClient) -> None:
    with pytest.raises(errors.RegistryNotFound) as info:
        anon.head_manifest(seeded_registry.host, "fixtures/base", "no-such-tag")
    assert info.value.status == 404 and info.value.code == "MANIFEST_UNKNOWN"


def test_blob_head_range_suffix_gives_gzip_isize(seeded_registry: Any, anon: RegistryClient) -> None:
    host = seeded_registry.host
    info = anon.head_blob(host, "fixtures/base", BASE_LAYER.digest)
    assert (info.size, info.digest, info.accepts_ranges) == (BASE_LAYER.size, BASE_LAYER.digest, True)
    trailer, total = anon.get_blob_range(host, "fixtures/base", BASE_LAYER.digest, suffix=4)
    assert total == BASE_LAYER.size
    assert int.from_bytes(trailer, "little") == BASE_LAYER.gzip_isize == BASE_LAYER.uncompressed_size


def test_blob_explicit_range_equals_slice_of_whole_blob(seeded_registry: Any, anon: RegistryClient) -> None:
    host = seeded_registry.host
    whole = anon.get_blob(
        host, "fixtures/base", BASE_LAYER.digest, max_bytes=1 << 20, expected_size=BASE_LAYER.size
    )
    part, total = anon.get_blob_range(host, "fixtures/base", BASE_LAYER.digest, start=10, end=109)
    assert part == whole[10:110] and total == len(whole)
    assert len(gzip.decompress(whole)) == BASE_LAYER.uncompressed_size


def test_missing_blob_head_is_not_found(seeded_registry: Any, anon: RegistryClient) -> None:
    missing = "sha256:" + "0" * 64
    with pytest.raises(errors.RegistryNotFound) as info:
        anon.head_blob(seeded_registry.host, "fixtures/base", missing)
    assert info.value.code == "BLOB_UNKNOWN"


def test_stream_blob_in_chunks_with_digest_check(seeded_registry: Any, anon: RegistryClient) -> None:
    layer = EXPECTED["demo"].layers[1]  # ~100 KB
    with anon.stream_blob(seeded_registry.host, "fixtures/demo", layer.digest, chunk_size=4096) as chunks:
        parts = list(chunks)
    assert len(parts) >= layer.size // 4096 and all(len(p) <= 4096 for p in parts)
    assert "sha256:" + hashlib.sha256(b"".join(parts)).hexdigest() == layer.digest
    assert sum(map(len, parts)) == layer.size


def test_get_blob_over_max_bytes_is_limit_exceeded(seeded_registry: Any, anon: RegistryClient) -> None:
    with pytest.raises(errors.LimitExceeded):
        anon.get_blob(seeded_registry.host, "fixtures/base", BASE_LAYER.digest, max_bytes=1000)


def test_catalog_pagination_follows_relative_links(seeded_registry: Any, anon: RegistryClient) -> None:
    before = _count(seeded_registry, path="/v2/_catalog")
    repos = list(anon.catalog(seeded_registry.host, page_size=2))
    pages = _count(seeded_registry, path="/v2/_catalog") - before
    assert repos == sorted(repos) and len(repos) == len(set(repos))
    expected = {key.rsplit(":", 1)[0] for key in seeded_registry.refs}
    assert expected <= set(repos)
    assert pages >= (len(repos) + 1) // 2 and pages >= 2
    assert list(anon.catalog(seeded_registry.host, page_size=1000)) == repos


def test_list_tags(seeded_registry: Any, anon: RegistryClient) -> None:
    assert sorted(anon.list_tags(seeded_registry.host, "fixtures/app1")) == ["latest", "v2s2"]


def test_ping(seeded_registry: Any, anon: RegistryClient) -> None:
    seen: list[tuple[str, str, int, str | None]] = []
    anon.add_observer(
        lambda method, url, status, headers: seen.append(
            (method, url, status, headers.get("Docker-Distribution-Api-Version"))
        )
    )
    before = _count(seeded_registry, path="/v2/")
    assert anon.ping(seeded_registry.host) is None
    # one anonymous GET /v2/, answered 200 by a registry that speaks the v2 API
    assert seen == [("GET", f"{seeded_registry.url}/v2/", 200, "registry/2.0")]
    assert _count(seeded_registry, path="/v2/") == before + 1
    assert [(e.method, e.uri, e.status) for e in seeded_registry.access_log()][-1] == ("GET", "/v2/", 200)


def test_ping_of_a_server_that_is_not_a_registry(fault_proxy: Any) -> None:
    fault_proxy.rules.add(
        Respond(404, {"Content-Type": "text/html"}, b"<h1>nope</h1>"), path="/v2/", times=None
    )
    with RegistryClient(fault_proxy.settings) as client, pytest.raises(errors.RegistryError) as info:
        client.ping(fault_proxy.host)
    assert info.value.status == 404 and f"contacting registry {fault_proxy.host}" in str(info.value)
    assert info.value.hint


def test_many_threads_share_one_client(seeded_registry: Any, anon: RegistryClient) -> None:
    names = ["base", "app1", "app2", "history", "plain", "demo"]
    failures: list[BaseException] = []
    results: dict[str, str] = {}

    def work(name: str) -> None:
        try:
            for _ in range(5):
                results[name] = anon.get_manifest(seeded_registry.host, f"fixtures/{name}", "latest").digest
        except BaseException as exc:  # collected and asserted below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in names * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert results == {n: EXPECTED[n].manifest_digest for n in names}


# ------------------------------------------------------------------------------- faults (proxy, CDN)


def test_retry_on_503_with_retry_after_then_success(fault_proxy: Any) -> None:
    fault_proxy.rules.add(Respond(503, {"Retry-After": "0"}), method="GET", path="/manifests/", times=2)
    with RegistryClient(fault_proxy.settings) as client:
        fetched = client.get_manifest(fault_proxy.host, "fixtures/base", "latest")
    assert fetched.digest == EXPECTED["base"].manifest_digest
    assert [s.rule for s in fault_proxy.requests if "/manifests/" in s.target] == ["Respond", "Respond", None]


def test_429_exhausted_is_rate_limited(fault_proxy: Any) -> None:
    fault_proxy.rules.add(Respond(429, {"Retry-After": "0"}), path="/manifests/", times=None)
    settings = RegistrySettings(default=HostSettings(plain_http=True), retries=2)
    with RegistryClient(settings) as client, pytest.raises(errors.RateLimited) as info:
        client.get_manifest(fault_proxy.host, "fixtures/base", "latest")
    assert info.value.status == 429 and info.value.retry_after == 0
    assert sum(1 for s in fault_proxy.requests if "/manifests/" in s.target) == 3


def test_corrupted_blob_stream_is_digest_mismatch(fault_proxy: Any) -> None:
    fault_proxy.rules.add(Corrupt(), path=f"/blobs/{BASE_LAYER.digest}")
    with RegistryClient(fault_proxy.settings) as client:
        stream = client.stream_blob(fault_proxy.host, "fixtures/base", BASE_LAYER.digest)
        with stream as chunks, pytest.raises(errors.DigestMismatch):
            for _ in chunks:
                pass


def test_reset_mid_blob_every_time_is_connection_failed(fault_proxy: Any) -> None:
    fault_proxy.rules.add(Reset(after=100), path=f"/blobs/{BASE_LAYER.digest}", times=None)
    settings = RegistrySettings(default=HostSettings(plain_http=True), retries=1)
    with RegistryClient(settings) as client, pytest.raises(errors.ConnectionFailed):
        client.get_blob(fault_proxy.host, "fixtures/base", BASE_LAYER.digest, max_bytes=1 << 20)
    assert sum(1 for s in fault_proxy.requests if BASE_LAYER.digest in s.target) == 2  # retried once


def test_stall_mid_blob_is_timeout(fault_proxy: Any) -> None:
    fault_proxy.rules.add(Stall(5, after=100), path=f"/blobs/{BASE_LAYER.digest}")
    settings = RegistrySettings(default=HostSettings(plain_http=True), read_timeout=0.5)
    with RegistryClient(settings) as client, pytest.raises(errors.Timeout):
        client.get_blob(fault_proxy.host, "fixtures/base", BASE_LAYER.digest, max_bytes=1 << 20)


def test_redirect_to_cdn_drops_authorization_keeps_range(fault_proxy: Any, cdn: Any) -> None:
    fault_proxy.rules.add(Redirect(cdn.url + "{target}"), path="/blobs/")
    resolver = CredentialResolver(explicit={fault_proxy.host: Credentials(registry_token="t0ken")}, env={})
    with RegistryClient(fault_proxy.settings, resolver) as client:
        trailer, total = client.get_blob_range(fault_proxy.host, "fixtures/base", BASE_LAYER.digest, suffix=4)
    assert int.from_bytes(trailer, "little") == BASE_LAYER.gzip_isize and total == BASE_LAYER.size
    blob_requests = [s for s in fault_proxy.requests if "/blobs/" in s.target]
    assert blob_requests and all(s.authorization for s in blob_requests)
    assert len(cdn.requests) == 1
    assert not cdn.requests[0].authorization
    assert cdn.requests[0].headers.get("range") == "bytes=-4"


# -------------------------------------------------------------------------------------------- basic


def test_basic_auth_is_preemptive_after_the_first_401(registry_basic: Any) -> None:
    before = _count(registry_basic, status=401)
    with _client(registry_basic, username=registry_basic.username, password=registry_basic.password) as c:
        fetched = c.get_manifest(registry_basic.host, "private/app1", "latest")
        assert c.head_manifest(registry_basic.host, "private/app1", "latest")[0] == fetched.digest
        config = json.loads(fetched.data)["config"]
        c.get_blob(registry_basic.host, "private/app1", config["digest"], max_bytes=1 << 20)
        c.head_blob(registry_basic.host, "private/app1", config["digest"])
        c.list_tags(registry_basic.host, "private/app1")
    assert fetched.digest == APP1.manifest_digest
    assert _count(registry_basic, status=401) - before == 1


def test_basic_without_credentials_is_auth_error_with_login_hint(registry_basic: Any) -> None:
    with _client(registry_basic) as client, pytest.raises(errors.AuthError) as info:
        client.get_manifest(registry_basic.host, "private/app1", "latest")
    assert info.value.status == 401
    assert info.value.hint is not None and "--password-stdin" in info.value.hint


def test_basic_wrong_password_is_rejected(registry_basic: Any) -> None:
    before = _count(registry_basic, status=401)
    with (
        _client(registry_basic, username=registry_basic.username, password="wrong-pw") as client,
        pytest.raises(errors.AuthError) as info,
    ):
        client.get_manifest(registry_basic.host, "private/app1", "latest")
    assert "rejected" in str(info.value) and "wrong-pw" not in str(info.value)
    assert _count(registry_basic, status=401) - before == 2  # the challenge, then the refusal: no loop


def test_basic_credentials_from_docker_config(registry_basic: Any, tmp_path: Path) -> None:
    import base64

    auth = base64.b64encode(f"{registry_basic.username}:{registry_basic.password}".encode()).decode()
    (tmp_path / "config.json").write_text(
        json.dumps({"auths": {f"http://{registry_basic.host}/": {"auth": auth}}})
    )
    resolver = CredentialResolver(env={"DOCKER_CONFIG": str(tmp_path)})
    with RegistryClient(registry_basic.settings, resolver) as client:
        fetched = client.get_manifest(registry_basic.host, "private/app1", "latest")
    assert fetched.digest == APP1.manifest_digest


# ---------------------------------------------------------------------------------------------- TLS


def test_tls_with_ca_file(registry_tls: Any) -> None:
    assert registry_tls.ca_file is not None
    with RegistryClient(registry_tls.settings) as client:
        fetched = client.get_manifest(registry_tls.host, "secure/app1", "latest")
    assert fetched.digest == APP1.manifest_digest


def test_tls_without_ca_is_tls_failure_with_hint(registry_tls: Any) -> None:
    with RegistryClient(RegistrySettings()) as client, pytest.raises(errors.TLSFailure) as info:
        client.get_manifest(registry_tls.host, "secure/app1", "latest")
    assert info.value.hint is not None and "--ca-file" in info.value.hint
    assert not client._transport.is_plain_http(registry_tls.host)  # no plain-HTTP fallback on cert errors


def test_tls_insecure_works_without_leaking_warning_filters(registry_tls: Any) -> None:
    settings = RegistrySettings(hosts={registry_tls.host: HostSettings(insecure=True)})
    filters_before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with RegistryClient(settings) as client:
            fetched = client.get_manifest(registry_tls.host, "secure/app1", "latest")
        inner_filters = list(warnings.filters)
    assert fetched.digest == APP1.manifest_digest
    assert [w for w in caught if "Insecure" in type(w.message).__name__] == []
    assert inner_filters[0][0] == "always"  # our local filter was removed again
    assert list(warnings.filters) == filters_before


# -------------------------------------------------------------------------------------------- token


def test_token_anonymous_pull_allowed_for_public(registry_token: Any) -> None:
    registry_token.issuer.clear()
    with _client(registry_token) as client:
        fetched = client.get_manifest(registry_token.host, "public/base", "latest")
    assert fetched.digest == EXPECTED["base"].manifest_digest
    (request,) = registry_token.issuer.requests
    assert (request.method, request.authorization, request.scopes) == (
        "GET",
        False,
        ("repository:public/base:pull",),
    )
    assert request.query["service"] == [registry_token.issuer.service]


def test_token_anonymous_pull_denied_for_team(registry_token: Any) -> None:
    with _client(registry_token) as client, pytest.raises(errors.AuthError) as info:
        client.get_manifest(registry_token.host, "team/app1", "latest")
    assert info.value.status == 401
    assert info.value.hint is not None and "--username" in info.value.hint


def test_token_credentialed_two_repositories_two_scopes(registry_token: Any) -> None:
    registry_token.issuer.clear()
    before = _count(registry_token, status=401)
    with _client(registry_token, username=registry_token.username, password=registry_token.password) as c:
        one = c.get_manifest(registry_token.host, "team/app1", "latest")
        two = c.get_manifest(registry_token.host, "team/app2", "latest")
        again = c.get_manifest(registry_token.host, "team/app1", "latest")
        layer = EXPECTED["app2"].layers[1]
        blob = c.get_blob(registry_token.host, "team/app2", layer.digest, max_bytes=1 << 20)
    assert (one.digest, two.digest, again.digest) == (
        APP1.manifest_digest,
        EXPECTED["app2"].manifest_digest,
        APP1.manifest_digest,
    )
    assert len(blob) == layer.size
    requests_ = registry_token.issuer.requests
    assert [r.scopes for r in requests_] == [("repository:team/app1:pull",), ("repository:team/app2:pull",)]
    assert all(
        r.authorization and r.username == registry_token.username and r.status == 200 for r in requests_
    )
    assert _count(registry_token, status=401) - before == 1  # only the very first request was challenged


def test_token_identity_token_uses_refresh_grant(registry_token: Any) -> None:
    refresh = registry_token.issuer.new_refresh_token(registry_token.username)
    registry_token.issuer.clear()
    with _client(registry_token, identity_token=refresh) as client:
        fetched = client.get_manifest(registry_token.host, "team/app1", "latest")
    assert fetched.digest == APP1.manifest_digest
    (request,) = registry_token.issuer.requests
    assert (request.method, request.grant_type, request.username) == ("POST", "refresh_token", "alice")
    assert request.query["client_id"] == ["ociinspect"] and request.scopes == ("repository:team/app1:pull",)


def test_token_wrong_password_is_rejected_by_token_service(registry_token: Any) -> None:
    with (
        _client(registry_token, username=registry_token.username, password="nope") as client,
        pytest.raises(errors.AuthError) as info,
    ):
        client.get_manifest(registry_token.host, "team/app1", "latest")
    assert "rejected" in str(info.value) and "nope" not in str(info.value) + str(info.value.hint)


def test_token_credentials_without_rights_are_denied(registry_token: Any) -> None:
    with (
        _client(registry_token, username=registry_token.username, password=registry_token.password) as c,
        pytest.raises(errors.AuthError) as info,
    ):
        c.get_manifest(registry_token.host, "elsewhere/app", "latest")
    assert "denied" in str(info.value)


def test_ping_checks_credentials(registry_basic: Any, registry_token: Any) -> None:
    with _client(registry_basic, username=registry_basic.username, password=registry_basic.password) as c:
        c.ping(registry_basic.host)
    with _client(registry_token, username=registry_token.username, password=registry_token.password) as c:
        c.ping(registry_token.host)
    with _client(registry_basic) as client, pytest.raises(errors.AuthError):
        client.ping(registry_basic.host)
