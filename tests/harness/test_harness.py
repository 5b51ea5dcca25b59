"""The test harness proves itself with independent clients (requests, skopeo): each registry mode, the
token issuer, the seeded content and the fault proxy."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from fixtures.build import EXPECTED

from .endpoint import ProxyEndpoint, RegistryEndpoint
from .faultproxy import Corrupt, Drip, FaultProxy, Redirect, Reset, Respond, Stall, Truncate
from .registry import start_registry
from .seeding import MANIFEST_ACCEPT
from .token_issuer import parse_scope

pytestmark = [pytest.mark.registry, pytest.mark.timeout(60)]
T = (3.0, 10.0)  # (connect, read) timeout for every request in this file


def _get(url: str, **kwargs: Any) -> requests.Response:
    return requests.get(url, timeout=T, **kwargs)


def _bearer(endpoint: RegistryEndpoint, scope: str, auth: tuple[str, str] | None = None) -> str:
    issuer = endpoint.issuer
    assert issuer is not None
    response = _get(issuer.realm, params={"service": issuer.service, "scope": scope}, auth=auth)
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


# ---------------------------------------------------------------- registry modes


def test_anonymous_registry_answers_v2(registry_anon: RegistryEndpoint) -> None:
    response = _get(registry_anon.url + "/v2/")
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    assert registry_anon.url == f"http://{registry_anon.host}"
    assert registry_anon.username is None and registry_anon.ca_file is None and registry_anon.issuer is None
    assert registry_anon.data_dir.is_dir() and registry_anon.log_path.is_file()


def test_start_retries_when_the_port_is_taken(tmp_path: Path) -> None:
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry not installed: run the README's test command, which installs it")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        registry = start_registry(tmp_path / "retry", "anon", port=taken)
        try:
            assert registry.host != f"127.0.0.1:{taken}"
            assert _get(registry.url + "/v2/").status_code == 200
        finally:
            registry.stop()
    assert registry.process.returncode is not None


def test_basic_registry_needs_credentials(registry_basic: RegistryEndpoint) -> None:
    anonymous = _get(registry_basic.url + "/v2/")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic ")
    wrong = _get(registry_basic.url + "/v2/", auth=(registry_basic.username or "", "wrong"))
    assert wrong.status_code == 401
    auth = (registry_basic.username or "", registry_basic.password or "")
    assert _get(registry_basic.url + "/v2/", auth=auth).status_code == 200
    tags = _get(registry_basic.url + "/v2/private/app1/tags/list", auth=auth)
    assert tags.json() == {"name": "private/app1", "tags": ["latest"]}


def test_tls_registry_needs_the_test_ca(registry_tls: RegistryEndpoint) -> None:
    assert registry_tls.url.startswith("https://") and registry_tls.ca_file is not None
    with pytest.raises(requests.exceptions.SSLError):
        _get(registry_tls.url + "/v2/")
    response = _get(registry_tls.url + "/v2/secure/app1/tags/list", verify=str(registry_tls.ca_file))
    assert response.json()["tags"] == ["latest"]


def test_token_registry_challenges_with_bearer(registry_token: RegistryEndpoint) -> None:
    issuer = registry_token.issuer
    assert issuer is not None
    response = _get(
        registry_token.url + "/v2/team/app1/manifests/latest", headers={"Accept": MANIFEST_ACCEPT}
    )
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'realm="{issuer.realm}"' in challenge and f'service="{issuer.service}"' in challenge
    assert 'scope="repository:team/app1:pull"' in challenge


def test_token_from_issuer_opens_the_repository(registry_token: RegistryEndpoint) -> None:
    creds = (registry_token.username or "", registry_token.password or "")
    token = _bearer(registry_token, "repository:team/app1:pull", creds)
    assert _claims(token)["access"] == [{"type": "repository", "name": "team/app1", "actions": ["pull"]}]
    response = _get(
        registry_token.url + "/v2/team/app1/manifests/latest",
        headers={"Accept": MANIFEST_ACCEPT, "Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == EXPECTED["app1"].manifest_digest


def test_token_without_the_scope_is_refused(registry_token: RegistryEndpoint) -> None:
    token = _bearer(registry_token, "repository:team/app1:pull")  # anonymous: no rights on team/*
    assert _claims(token)["access"] == []
    response = _get(
        registry_token.url + "/v2/team/app1/tags/list", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


def test_anonymous_token_pulls_public_repositories(registry_token: RegistryEndpoint) -> None:
    token = _bearer(registry_token, "repository:public/base:pull")
    response = _get(
        registry_token.url + "/v2/public/base/tags/list", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.json()["tags"] == ["latest"]


def test_expired_token_is_rejected(registry_token: RegistryEndpoint) -> None:
    """Distribution 2.8 accepts a token up to 60 s after ``exp`` (its leeway), so 'expired' here means
    more than a minute ago; a token that expired 1 s ago is still accepted."""
    issuer = registry_token.issuer
    assert issuer is not None
    access = [{"type": "repository", "name": "team/app1", "actions": ["pull"]}]
    url = registry_token.url + "/v2/team/app1/tags/list"
    stale = issuer.issue("alice", access, expires_in=-120)
    assert _get(url, headers={"Authorization": f"Bearer {stale}"}).status_code == 401
    within_leeway = issuer.issue("alice", access, expires_in=-1)
    assert _get(url, headers={"Authorization": f"Bearer {within_leeway}"}).status_code == 200


def test_issuer_password_and_refresh_grants(registry_token: RegistryEndpoint) -> None:
    issuer = registry_token.issuer
    assert issuer is not None
    issuer.clear()
    form = {
        "grant_type": "password",
        "username": "alice",
        "password": "alicepass",
        "service": issuer.service,
        "scope": "repository:team/app2:pull",
        "client_id": "ociinspect-tests",
        "access_type": "offline",
    }
    first = requests.post(issuer.realm, data=form, timeout=T).json()
    assert _claims(first["access_token"])["sub"] == "alice" and first["refresh_token"]
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": first["refresh_token"],
        "service": issuer.service,
    }
    second = requests.post(issuer.realm, data={**refresh, "scope": "repository:team/app2:pull"}, timeout=T)
    assert second.status_code == 200 and "refresh_token" not in second.json()
    assert _claims(second.json()["access_token"])["access"][0]["name"] == "team/app2"
    bad = requests.post(issuer.realm, data={**form, "password": "nope"}, timeout=T)
    assert bad.status_code == 401
    logged = [(r.method, r.grant_type, r.username, r.status) for r in issuer.requests]
    assert logged == [
        ("POST", "password", "alice", 200),
        ("POST", "refresh_token", "alice", 200),
        ("POST", "password", "alice", 401),
    ]
    assert all("password" not in r.query and "refresh_token" not in r.query for r in issuer.requests)


def test_issuer_logs_basic_user_and_short_lifetimes(registry_token: RegistryEndpoint) -> None:
    issuer = registry_token.issuer
    assert issuer is not None
    issuer.clear()
    saved, issuer.expires_in = issuer.expires_in, 2
    try:
        token = _bearer(registry_token, "repository:team/app1:pull", ("alice", "alicepass"))
    finally:
        issuer.expires_in = saved
    claims = _claims(token)
    assert claims["exp"] - claims["iat"] == 2
    (entry,) = issuer.requests
    assert (
        entry.authorization and entry.username == "alice" and entry.scopes == ("repository:team/app1:pull",)
    )
    bad = _get(issuer.realm, params={"service": issuer.service}, auth=("alice", "wrong"))
    assert bad.status_code == 401


def test_parse_scope() -> None:
    assert parse_scope("repository:team/app:pull,push") == ("repository", "team/app", {"pull", "push"})
    assert parse_scope("registry:catalog:*") == ("registry", "catalog", {"*"})


def test_settings_match_each_mode(
    registry_anon: RegistryEndpoint, registry_tls: RegistryEndpoint, registry_token: RegistryEndpoint
) -> None:
    plain = registry_anon.settings.default
    assert plain.plain_http and plain.ca_file is None
    assert registry_token.settings.default.plain_http
    tls = registry_tls.settings.default
    assert not tls.plain_http and tls.ca_file == str(registry_tls.ca_file)


# ---------------------------------------------------------------- seeded content


def test_catalog_lists_the_seeded_repositories(seeded_registry: RegistryEndpoint) -> None:
    repositories = _get(seeded_registry.url + "/v2/_catalog").json()["repositories"]
    expected = {key.rpartition(":")[0] for key in seeded_registry.refs}
    assert expected <= set(repositories)
    assert "fixtures/multi" in repositories and "fixtures/artifact" in repositories


def test_seeded_digests_match_the_layouts(seeded_registry: RegistryEndpoint) -> None:
    """skopeo (without --format) and oras pushed the manifests byte for byte."""
    for repo_tag, digest in seeded_registry.digests.items():
        repo, _, tag = repo_tag.rpartition(":")
        if tag == "latest":
            assert digest == EXPECTED[repo.split("/")[-1]].manifest_digest, repo_tag
    assert seeded_registry.digests["fixtures/app1:v2s2"] != EXPECTED["app1"].manifest_digest


def test_v2s2_refs_are_docker_media_types(seeded_registry: RegistryEndpoint) -> None:
    for repo, media_type in (
        ("fixtures/app1", "application/vnd.docker.distribution.manifest.v2+json"),
        ("fixtures/multi", "application/vnd.docker.distribution.manifest.list.v2+json"),
    ):
        response = _get(
            f"{seeded_registry.url}/v2/{repo}/manifests/v2s2", headers={"Accept": MANIFEST_ACCEPT}
        )
        assert response.headers["Content-Type"] == media_type


def test_access_log_counts_requests(registry_anon: RegistryEndpoint) -> None:
    before = len(registry_anon.access_log())
    for _ in range(3):
        _get(registry_anon.url + "/v2/")
    deadline = time.monotonic() + 5
    while len(registry_anon.access_log()) < before + 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    entries = registry_anon.access_log()[before:]
    assert [(e.method, e.uri, e.status) for e in entries] == [("GET", "/v2/", 200)] * 3


def test_archives_hold_the_images(fixture_archives: Any) -> None:
    import tarfile

    with tarfile.open(fixture_archives.docker["base"]) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == ["docker.io/fixtures/base:latest"]
    with tarfile.open(fixture_archives.oci["multi"]) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
    assert index["manifests"][0]["digest"] == EXPECTED["multi"].manifest_digest
    assert "zstd" not in fixture_archives.docker and "zstd" in fixture_archives.oci


# ---------------------------------------------------------------- fault proxy


def _manifest_url(proxy: FaultProxy, name: str = "base") -> str:
    return f"{proxy.url}/v2/fixtures/{name}/manifests/latest"


def _blob_url(proxy: FaultProxy, name: str = "base") -> str:
    return f"{proxy.url}/v2/fixtures/{name}/blobs/{EXPECTED[name].layers[0].digest}"


def test_proxy_status_rule_then_pass_through(fault_proxy: ProxyEndpoint) -> None:
    fault_proxy.rules.add(Respond(503, {"Retry-After": "1"}), method="GET", path=r"/manifests/", times=2)
    statuses = [_get(_manifest_url(fault_proxy), headers={"Accept": MANIFEST_ACCEPT}) for _ in range(3)]
    assert [r.status_code for r in statuses] == [503, 503, 200]
    assert statuses[0].headers["Retry-After"] == "1"
    assert statuses[2].headers["Docker-Content-Digest"] == EXPECTED["base"].manifest_digest
    assert [r.rule for r in fault_proxy.requests] == ["Respond", "Respond", None]


def test_proxy_rule_always_and_method_filter(fault_proxy: ProxyEndpoint) -> None:
    fault_proxy.rules.add(Respond(429), method="HEAD", path=r"/blobs/", times=None)
    for _ in range(3):
        assert requests.head(_blob_url(fault_proxy), timeout=T).status_code == 429
    head = requests.head(_blob_url(fault_proxy, "app1"), timeout=T)
    assert head.status_code == 429
    get = _get(_blob_url(fault_proxy))
    assert get.status_code == 200 and len(get.content) == EXPECTED["base"].layers[0].size


def test_proxy_head_keeps_upstream_length(fault_proxy: ProxyEndpoint) -> None:
    head = requests.head(_blob_url(fault_proxy), timeout=T)
    assert int(head.headers["Content-Length"]) == EXPECTED["base"].layers[0].size


def test_proxy_reset_mid_body(fault_proxy: ProxyEndpoint) -> None:
    fault_proxy.rules.add(Reset(after=100), path=r"/blobs/")
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        _get(_blob_url(fault_proxy))
    assert _get(_blob_url(fault_proxy)).status_code == 200


def test_proxy_truncated_body(fault_proxy: ProxyEndpoint) -> None:
    fault_proxy.rules.add(Truncate(keep=10), path=r"/blobs/")
    response = _get(_blob_url(fault_proxy), stream=True)
    assert int(response.headers["Content-Length"]) == EXPECTED["base"].layers[0].size
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        response.content  # noqa: B018


def test_proxy_corrupt_body_same_length(fault_proxy: ProxyEndpoint) -> None:
    import hashlib

    fault_proxy.rules.add(Corrupt(), path=r"/blobs/")
    body = _get(_blob_url(fault_proxy)).content
    assert len(body) == EXPECTED["base"].layers[0].size
    assert "sha256:" + hashlib.sha256(body).hexdigest() != EXPECTED["base"].layers[0].digest


def test_proxy_stall_trips_a_read_timeout(fault_proxy: ProxyEndpoint) -> None:
    fault_proxy.rules.add(Stall(3.0), path=r"/manifests/")
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(_manifest_url(fault_proxy), headers={"Accept": MANIFEST_ACCEPT}, timeout=(1, 0.5))
    assert time.monotonic() - started < 2.5


def test_proxy_stall_mid_body(fault_proxy: ProxyEndpoint) -> None:
    fault_proxy.rules.add(Stall(3.0, after=50), path=r"/blobs/")
    response = requests.get(_blob_url(fault_proxy), stream=True, timeout=(1, 0.5))
    assert response.status_code == 200
    with pytest.raises(requests.exceptions.ConnectionError):  # urllib3 ReadTimeoutError while streaming
        response.content  # noqa: B018


def test_proxy_drip(fault_proxy: ProxyEndpoint) -> None:
    fault_proxy.rules.add(Drip(chunk=200, interval=0.02), path=r"/manifests/")
    started = time.monotonic()
    response = _get(_manifest_url(fault_proxy, "app1"), headers={"Accept": MANIFEST_ACCEPT})
    chunks = -(-EXPECTED["app1"].manifest_size // 200)
    assert response.status_code == 200 and len(response.content) == EXPECTED["app1"].manifest_size
    assert time.monotonic() - started >= 0.02 * (chunks - 1)


def test_proxy_redirect_to_cdn_drops_authorization(fault_proxy: ProxyEndpoint, cdn: FaultProxy) -> None:
    fault_proxy.rules.add(Redirect(cdn.url + "{target}"), path=r"/blobs/")
    response = _get(_blob_url(fault_proxy), headers={"Authorization": "Bearer secret-token"})
    assert response.status_code == 200 and len(response.content) == EXPECTED["base"].layers[0].size
    assert fault_proxy.requests[0].authorization
    (seen,) = cdn.requests
    assert seen.path == f"/v2/fixtures/base/blobs/{EXPECTED['base'].layers[0].digest}"
    assert not seen.authorization  # requests strips it when the port changes


def test_proxy_reports_upstream_down() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with FaultProxy(f"127.0.0.1:{port}", timeout=2.0) as proxy:
        assert _get(proxy.url + "/v2/").status_code == 502


def test_proxy_endpoint_refs_point_at_the_proxy(fault_proxy: ProxyEndpoint) -> None:
    assert fault_proxy.refs["fixtures/base:latest"] == f"{fault_proxy.host}/fixtures/base:latest"
    assert fault_proxy.username is None and fault_proxy.ca_file is None
