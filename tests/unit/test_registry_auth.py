"""Authentication: challenge parsing, token lifetime and cache, and the Basic and bearer flows against small
loopback fakes (a registry on 127.0.0.1 and its token realm on ``localhost``: two different hosts)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from harness.fakeserver import FakeServer as _FakeServer
from harness.fakeserver import Reply as _Reply
from harness.fakeserver import Req

from ociinspect import errors
from ociinspect.model import mediatypes
from ociinspect.registry import (
    CredentialResolver,
    Credentials,
    HostSettings,
    RegistryClient,
    RegistrySettings,
)
from ociinspect.registry.auth import TokenCache, parse_challenges, token_lifetime

pytestmark = pytest.mark.timeout(30)

PLAIN = RegistrySettings(default=HostSettings(plain_http=True), backoff=0.01)
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST, "layers": []}).encode()
MANIFEST_DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()


# ------------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('Basic realm="test-realm"', [("basic", {"realm": "test-realm"})]),
        ("basic realm=unquoted", [("basic", {"realm": "unquoted"})]),
        (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
            'scope="repository:library/alpine:pull"',
            [
                (
                    "bearer",
                    {
                        "realm": "https://auth.docker.io/token",
                        "service": "registry.docker.io",
                        "scope": "repository:library/alpine:pull",
                    },
                )
            ],
        ),
        (
            "BEARER Realm=https://a.example/t, Service=reg , scope=repository:x:pull",
            [("bearer", {"realm": "https://a.example/t", "service": "reg", "scope": "repository:x:pull"})],
        ),
        (
            'Bearer realm="https://a/t",service="s",scope="repository:x:pull,push",error="insufficient_scope"',
            [
                (
                    "bearer",
                    {"realm": "https://a/t", "service": "s", "scope": "repository:x:pull,push"}
                    | {"error": "insufficient_scope"},
                )
            ],
        ),
        (
            'Bearer realm="https://a/t", error="invalid_token", error_description="expired"',
            [("bearer", {"realm": "https://a/t", "error": "invalid_token", "error_description": "expired"})],
        ),
        (
            'Basic realm="r1", Bearer realm="https://a/t",service="s"',
            [("basic", {"realm": "r1"}), ("bearer", {"realm": "https://a/t", "service": "s"})],
        ),
        ('Negotiate abc123==, Basic realm="x"', [("negotiate", {}), ("basic", {"realm": "x"})]),
        (
            'Basic realm="a \\"quoted\\" realm, with comma"',
            [("basic", {"realm": 'a "quoted" realm, with comma'})],
        ),
        ("Bearer", [("bearer", {})]),
        ("", []),
    ],
)
def test_parse_challenges(header: str, expected: list[tuple[str, dict[str, str]]]) -> None:
    assert [(c.scheme, dict(c.params)) for c in parse_challenges(header)] == expected


def test_challenge_accessors() -> None:
    (challenge,) = parse_challenges('Bearer realm="r",service="s",scope="x",error="invalid_token"')
    assert (challenge.realm, challenge.service, challenge.scope, challenge.error) == (
        "r",
        "s",
        "x",
        "invalid_token",
    )
    assert parse_challenges(None) == []


# ---------------------------------------------------------------------------------- token lifetime


def test_token_lifetime_defaults_minimum_and_issued_at() -> None:
    now = 1_700_000_000.0
    assert token_lifetime({}, now=now) == 60
    assert token_lifetime({"expires_in": 10}, now=now) == 60  # below the spec's minimum
    assert token_lifetime({"expires_in": 300}, now=now) == 300
    issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 100))
    assert token_lifetime({"expires_in": 300, "issued_at": issued}, now=now) == pytest.approx(200)
    future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 1000))
    assert token_lifetime({"expires_in": 300, "issued_at": future}, now=now) == 300  # clock skew: ignored
    assert token_lifetime({"expires_in": 300, "issued_at": "garbage"}, now=now) == 300
    assert token_lifetime({"expires_in": True}, now=now) == 60


def test_token_cache_per_scope_and_expiry() -> None:
    clock = [1000.0]
    cache = TokenCache(lambda: clock[0])
    a, b = ("reg", "svc", "repository:a:pull"), ("reg", "svc", "repository:b:pull")
    cache.put(a, "token-a", 60)
    cache.put(b, "token-b", 300)
    assert (cache.get(a), cache.get(b)) == ("token-a", "token-b")
    assert cache.get(("other", "svc", "repository:a:pull")) is None
    clock[0] += 53  # 60 s minus the 10 % margin = 54 s
    assert cache.get(a) == "token-a"
    clock[0] += 2
    assert cache.get(a) is None and cache.get(b) == "token-b"
    cache.drop(b, "some-other-token")  # only drops the token that was refused
    assert cache.get(b) == "token-b"
    cache.drop(b, "token-b")
    assert cache.get(b) is None and len(cache) == 0


# ------------------------------------------------------------------------------------------- fakes


Reply = tuple[int, dict[str, str], bytes]


def FakeServer(app: Callable[[Req], Reply]) -> _FakeServer:
    """The shared fake server, answering with ``(status, headers, body)`` tuples."""
    return _FakeServer(lambda req: _Reply(*app(req)))


class TokenRegistry:
    """A registry that wants bearer tokens, with its realm on another host name (``localhost``).

    Tokens are opaque strings mapped to the scopes they grant.  ``u``/``p`` may pull anything; anonymous
    clients may pull ``public/*``; identity token ``refresh-1`` belongs to ``u``.  ``extra_scope`` makes a
    repository demand one more scope (like a cross-repository mount); ``revoke()`` invalidates all tokens.
    """

    SERVICE = "fake-registry"

    def __init__(self, *, token_field: str = "token", expires_in: int = 300) -> None:
        self.token_field, self.expires_in = token_field, expires_in
        self.valid: dict[str, set[str]] = {}
        self.extra_scope: dict[str, str] = {}
        self.realm_status = 200
        self.realm_delay = 0.0  # seconds the token endpoint takes (to make concurrent requests overlap)
        self._lock = threading.Lock()
        self.realm = FakeServer(self._token)
        self.registry = FakeServer(self._serve)
        self.host = f"127.0.0.1:{self.registry.port}"
        self.realm_url = f"http://localhost:{self.realm.port}/token"

    def close(self) -> None:
        self.realm.close()
        self.registry.close()

    def revoke(self) -> None:
        with self._lock:
            self.valid.clear()

    def _token(self, req: Req) -> Reply:
        url = urlsplit(req.path)
        fields = parse_qs(req.body.decode()) if req.method == "POST" else parse_qs(url.query)
        scopes = [s for value in fields.get("scope", []) for s in value.split(" ")]
        user = None
        if req.method == "POST":
            if fields.get("grant_type") != ["refresh_token"] or fields.get("refresh_token") != ["refresh-1"]:
                return 401, {}, b'{"errors": [{"code": "UNAUTHORIZED"}]}'
            user = "u"
        elif "authorization" in req.headers:
            if req.headers["authorization"] != "Basic " + base64.b64encode(b"u:p").decode():
                return (
                    401,
                    {"WWW-Authenticate": 'Basic realm="tokens"'},
                    b'{"errors": [{"code": "UNAUTHORIZED"}]}',
                )
            user = "u"
        time.sleep(self.realm_delay)
        if self.realm_status != 200:
            return self.realm_status, {}, b"realm trouble"
        granted = {s for s in scopes if user or s.startswith("repository:public/")}
        with self._lock:
            token = f"tok-{len(self.valid) + 1}-{time.monotonic_ns()}"
            self.valid[token] = granted
        body = {self.token_field: token, "expires_in": self.expires_in}
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    def _challenge(self, scope: str, error: str | None = None) -> Reply:
        header = f'Bearer realm="{self.realm_url}",service="{self.SERVICE}",scope="{scope}"'
        if error:
            header += f',error="{error}"'
        body = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]})
        return 401, {"WWW-Authenticate": header, "Content-Type": "application/json"}, body.encode()

    def _serve(self, req: Req) -> Reply:
        name = req.path.split("/v2/", 1)[1].rsplit("/manifests/", 1)[0]
        needed = f"repository:{name}:pull"
        if name in self.extra_scope:
            needed += " " + self.extra_scope[name]
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return self._challenge(needed)
        with self._lock:
            granted = self.valid.get(auth[len("Bearer ") :])
        if granted is None:
            return self._challenge(needed, "invalid_token")
        if not set(needed.split()) <= granted:
            return self._challenge(needed, "insufficient_scope")
        return (
            200,
            {"Content-Type": mediatypes.OCI_MANIFEST, "Docker-Content-Digest": MANIFEST_DIGEST},
            MANIFEST,
        )

    def token_requests(self) -> list[Req]:
        return list(self.realm.requests)

    def statuses_401(self) -> int:
        return sum(1 for r in self.registry.requests if not r.headers.get("authorization"))


@pytest.fixture
def fake() -> Iterator[TokenRegistry]:
    server = TokenRegistry()
    yield server
    server.close()


def client_for(host: str, creds: Credentials | None = None) -> RegistryClient:
    resolver = CredentialResolver(explicit={host: creds} if creds else None, env={})
    return RegistryClient(PLAIN, resolver)


# ------------------------------------------------------------------------------------- bearer flows


def test_anonymous_token_flow(fake: TokenRegistry) -> None:
    with client_for(fake.host) as client:
        assert client.get_manifest(fake.host, "public/base", "latest").digest == MANIFEST_DIGEST
    assert len(fake.registry.requests) == 2  # 401, then with the token
    (token_req,) = fake.token_requests()
    assert token_req.method == "GET" and "authorization" not in token_req.headers
    query = parse_qs(urlsplit(token_req.path).query)
    assert query == {"service": [TokenRegistry.SERVICE], "scope": ["repository:public/base:pull"]}


def test_anonymous_denied_is_auth_error_without_looping(fake: TokenRegistry) -> None:
    with client_for(fake.host) as client, pytest.raises(errors.AuthError) as info:
        client.get_manifest(fake.host, "team/app", "latest")
    assert info.value.status == 401
    assert (
        info.value.hint is not None and "--username" in info.value.hint and "docker login" in info.value.hint
    )
    assert len(fake.registry.requests) == 2 and len(fake.token_requests()) == 1


def test_credentialed_flow_sends_basic_only_to_realm_and_bearer_only_to_registry(fake: TokenRegistry) -> None:
    with client_for(fake.host, Credentials("u", "p")) as client:
        client.get_manifest(fake.host, "team/app", "latest")
    (token_req,) = fake.token_requests()
    assert token_req.headers["authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    assert parse_qs(urlsplit(token_req.path).query)["account"] == ["u"]
    assert all(not r.headers.get("authorization", "").startswith("Basic") for r in fake.registry.requests)
    assert all(not r.headers.get("authorization", "").startswith("Bearer") for r in fake.realm.requests)


def test_tokens_are_cached_per_scope_and_new_scopes_need_no_401(fake: TokenRegistry) -> None:
    with client_for(fake.host, Credentials("u", "p")) as client:
        for _ in range(3):
            client.get_manifest(fake.host, "team/a", "latest")
        assert len(fake.token_requests()) == 1
        client.get_manifest(fake.host, "team/b", "latest")
        client.get_manifest(fake.host, "team/a", "latest")
    scopes = [parse_qs(urlsplit(r.path).query)["scope"] for r in fake.token_requests()]
    assert scopes == [["repository:team/a:pull"], ["repository:team/b:pull"]]
    assert fake.statuses_401() == 1  # only the first request of all went without a token


def test_expired_token_is_fetched_again(fake: TokenRegistry) -> None:
    clock = [0.0]
    with client_for(fake.host, Credentials("u", "p")) as client:
        client._auth.tokens = TokenCache(lambda: clock[0])
        client.get_manifest(fake.host, "team/a", "latest")
        clock[0] += 200
        client.get_manifest(fake.host, "team/a", "latest")
        assert len(fake.token_requests()) == 1
        clock[0] += 100  # past 300 s (minus margin)
        client.get_manifest(fake.host, "team/a", "latest")
    assert len(fake.token_requests()) == 2
    assert fake.statuses_401() == 1


def test_invalid_token_is_dropped_and_fetched_once(fake: TokenRegistry) -> None:
    with client_for(fake.host, Credentials("u", "p")) as client:
        client.get_manifest(fake.host, "team/a", "latest")
        fake.revoke()
        assert client.get_manifest(fake.host, "team/a", "latest").digest == MANIFEST_DIGEST
    assert len(fake.token_requests()) == 2
    assert len(fake.registry.requests) == 4  # 401, ok, 401 invalid_token, ok


def test_insufficient_scope_rechallenge_with_new_scope(fake: TokenRegistry) -> None:
    fake.extra_scope["team/app"] = "repository:team/base:pull"
    with client_for(fake.host, Credentials("u", "p")) as client:
        client.get_manifest(fake.host, "team/warmup", "latest")  # learns the realm
        assert client.get_manifest(fake.host, "team/app", "latest").digest == MANIFEST_DIGEST
        served = len(fake.registry.requests)
        client.get_manifest(fake.host, "team/app", "latest")  # remembered: the demanded scope's token
        assert len(fake.registry.requests) == served + 1
    scopes = [parse_qs(urlsplit(r.path).query)["scope"] for r in fake.token_requests()]
    assert scopes == [
        ["repository:team/warmup:pull"],
        ["repository:team/app:pull"],  # preemptive, for the scope we asked for
        ["repository:team/app:pull", "repository:team/base:pull"],  # what the challenge demanded
    ]


def test_identity_token_uses_refresh_grant_and_access_token_field() -> None:
    fake = TokenRegistry(token_field="access_token")
    try:
        with client_for(fake.host, Credentials(identity_token="refresh-1")) as client:
            assert client.get_manifest(fake.host, "team/a", "latest").digest == MANIFEST_DIGEST
        (token_req,) = fake.token_requests()
        assert token_req.method == "POST" and "authorization" not in token_req.headers
        assert parse_qs(token_req.body.decode()) == {
            "grant_type": ["refresh_token"],
            "refresh_token": ["refresh-1"],
            "client_id": ["ociinspect"],
            "service": [TokenRegistry.SERVICE],
            "scope": ["repository:team/a:pull"],
        }
    finally:
        fake.close()


def test_registry_token_is_sent_directly(fake: TokenRegistry) -> None:
    fake.valid["given-token"] = {"repository:team/a:pull"}
    with client_for(fake.host, Credentials(registry_token="given-token")) as client:
        client.get_manifest(fake.host, "team/a", "latest")
    assert fake.token_requests() == []
    assert [r.headers["authorization"] for r in fake.registry.requests] == ["Bearer given-token"]


def test_wrong_password_at_token_service_is_auth_error_fast(fake: TokenRegistry) -> None:
    started = time.monotonic()
    with client_for(fake.host, Credentials("u", "wrong")) as client, pytest.raises(errors.AuthError) as info:
        client.get_manifest(fake.host, "team/a", "latest")
    assert time.monotonic() - started < 1.0
    assert "rejected by the token service" in str(info.value) and info.value.status == 401
    assert len(fake.token_requests()) == 1


def test_token_service_failure_is_registry_error(fake: TokenRegistry) -> None:
    fake.realm_status = 500
    with client_for(fake.host) as client, pytest.raises(errors.RegistryError) as info:
        client.get_manifest(fake.host, "public/a", "latest")
    assert not isinstance(info.value, errors.AuthError) and info.value.status == 500


def test_many_threads_many_repositories(fake: TokenRegistry) -> None:
    repos = [f"team/repo{i}" for i in range(8)]
    failures: list[BaseException] = []
    with client_for(fake.host, Credentials("u", "p")) as client:
        client.get_manifest(fake.host, "team/warmup", "latest")
        fake.realm_delay = 0.2  # threads wanting the same scope overlap while its token is fetched

        def work(repo: str) -> None:
            try:
                for _ in range(5):
                    client.get_manifest(fake.host, repo, "latest")
            except BaseException as exc:  # asserted below
                failures.append(exc)

        threads = [threading.Thread(target=work, args=(r,)) for r in repos * 2]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []
    assert len(fake.token_requests()) == 1 + len(repos)  # one per scope, however many threads wanted it
    assert fake.statuses_401() == 1


def test_no_secrets_in_logs_or_errors(fake: TokenRegistry, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ociinspect")
    with client_for(fake.host, Credentials("u", "p")) as client:
        client.get_manifest(fake.host, "team/a", "latest")
        fake.revoke()
        client.get_manifest(fake.host, "team/a", "latest")
    with (
        client_for(fake.host, Credentials("u", "sekrit-pw")) as client,
        pytest.raises(errors.AuthError) as info,
    ):
        client.get_manifest(fake.host, "team/a", "latest")
    secrets = ["sekrit-pw", base64.b64encode(b"u:p").decode(), *fake.valid]
    text = caplog.text + str(info.value) + str(info.value.hint) + repr(Credentials("u", "sekrit-pw"))
    assert caplog.records  # something was logged at DEBUG
    assert all(record.levelno == logging.DEBUG for record in caplog.records)
    for secret in secrets:
        assert secret not in text


# --------------------------------------------------------------------------------------- Basic flows


class BasicRegistry:
    def __init__(self, *, forbidden: bool = False) -> None:
        self.good = "Basic " + base64.b64encode(b"u:p").decode()
        self.forbidden = forbidden
        self.server = FakeServer(self._serve)
        self.host = f"127.0.0.1:{self.server.port}"

    def _serve(self, req: Req) -> Reply:
        if req.headers.get("authorization") != self.good:
            return (
                401,
                {"WWW-Authenticate": 'Basic realm="basic-realm"'},
                b'{"errors":[{"code":"UNAUTHORIZED"}]}',
            )
        if self.forbidden:
            return (
                403,
                {},
                b'{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}',
            )
        return 200, {"Content-Type": mediatypes.OCI_MANIFEST}, MANIFEST


@pytest.fixture
def basic() -> Iterator[BasicRegistry]:
    server = BasicRegistry()
    yield server
    server.server.close()


def test_basic_is_preemptive_after_the_first_401(basic: BasicRegistry) -> None:
    with client_for(basic.host, Credentials("u", "p")) as client:
        for repo in ("a/b", "c/d", "a/b"):
            client.get_manifest(basic.host, repo, "latest")
        client.head_manifest(basic.host, "e/f", "latest")
    statuses = [r.headers.get("authorization") == basic.good for r in basic.server.requests]
    assert statuses == [False, True, True, True, True, True]  # HEAD without a digest header falls back to GET


def test_basic_without_credentials(basic: BasicRegistry) -> None:
    with client_for(basic.host) as client, pytest.raises(errors.AuthError) as info:
        client.get_manifest(basic.host, "a/b", "latest")
    assert "authentication required" in str(info.value) and info.value.status == 401
    assert info.value.hint is not None and "--password-stdin" in info.value.hint
    assert len(basic.server.requests) == 1


def test_basic_wrong_credentials(basic: BasicRegistry) -> None:
    with client_for(basic.host, Credentials("u", "bad")) as client, pytest.raises(errors.AuthError) as info:
        client.get_manifest(basic.host, "a/b", "latest")
    assert "credentials rejected" in str(info.value)
    assert len(basic.server.requests) == 2


def test_forbidden_is_auth_error_denied() -> None:
    server = BasicRegistry(forbidden=True)
    try:
        with (
            client_for(server.host, Credentials("u", "p")) as client,
            pytest.raises(errors.AuthError) as info,
        ):
            client.get_manifest(server.host, "a/b", "latest")
        assert info.value.status == 403 and info.value.code == "DENIED" and "denied" in str(info.value)
    finally:
        server.server.close()


def test_unusable_realm_is_auth_error() -> None:
    server = FakeServer(lambda req: (401, {"WWW-Authenticate": 'Bearer realm="not-a-url",service="s"'}, b""))
    try:
        with client_for(f"127.0.0.1:{server.port}") as client, pytest.raises(errors.AuthError) as info:
            client.get_manifest(f"127.0.0.1:{server.port}", "a/b", "latest")
        assert "token service" in str(info.value)
        assert len(server.requests) == 1
    finally:
        server.close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_identity_token_post_never_follows_a_redirect_to_another_origin(status: int) -> None:
    """307/308 keep the body: the refresh token would reach the other host.  No redirect to another origin
    is followed for a request with a body; the other host never receives anything."""
    elsewhere = FakeServer(lambda req: (200, {"Content-Type": "application/json"}, b'{"token": "stolen"}'))
    realm = FakeServer(lambda req: (status, {"Location": f"http://127.0.0.1:{elsewhere.port}/token"}, b""))
    challenge = f'Bearer realm="http://localhost:{realm.port}/token",service="svc"'
    registry = FakeServer(lambda req: (401, {"WWW-Authenticate": challenge}, b""))
    host = f"127.0.0.1:{registry.port}"
    try:
        client = client_for(host, Credentials(identity_token="refresh-secret"))
        with client, pytest.raises(errors.RegistryError, match="refusing to follow a redirect") as info:
            client.get_manifest(host, "team/a", "latest")
        assert f"HTTP {status}" in str(info.value) and "refresh-secret" not in str(info.value)
        assert elsewhere.requests == []  # neither the body nor the request ever reached the other origin
        (post,) = realm.requests
        assert post.method == "POST" and b"refresh-secret" in post.body
    finally:
        for server in (elsewhere, realm, registry):
            server.close()
