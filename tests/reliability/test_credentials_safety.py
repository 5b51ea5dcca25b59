"""Credential safety, end to end against the real registries (basic and token auth), issue 7 part 2.

* never sent to another host: blob redirects to a CDN, ``Link`` headers pointing elsewhere in tag and catalog
  pagination, and a token realm on another host (which gets Basic for the token request and never the
  registry's bearer token);
* never printed: the CLI runs as a subprocess with ``-v``/``-vv`` for every credential source (``--password-stdin``,
  ``auth`` in config.json, ``identitytoken``, a credential helper) and stdout+stderr are searched for every
  secret, including the bearer tokens the registry received;
* never written: after those runs the cache, data and home directories (XDG dirs in tmp) are searched;
* ``--password`` on the command line is refused (exit 2) without echoing the password.
"""

from __future__ import annotations

import base64
import json
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness.endpoint import ProxyEndpoint
from harness.faultproxy import FaultProxy, Redirect, Respond, Rewrite

from fixtures.build import EXPECTED
from ociinspect import errors
from ociinspect.registry import CredentialResolver, Credentials, RegistryClient
from ociinspect.registry import transport as transport_module
from reliability.helpers import (
    CliRun,
    Isolated,
    assert_image,
    inspect_json,
    run_cli,
    run_cli_process,
    secrets_in,
)

pytestmark = [pytest.mark.registry, pytest.mark.timeout(120)]

APP1 = EXPECTED["app1"]
APP1_BLOBS = [APP1.config_digest or "", *(layer.digest for layer in APP1.layers)]


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def basic_proxy(registry_basic: Any) -> Iterator[ProxyEndpoint]:
    """A recording proxy in front of the htpasswd registry (testuser/testpass, private/app1 = app1)."""
    proxy = ProxyEndpoint(registry_basic)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def token_proxy(registry_token: Any) -> Iterator[ProxyEndpoint]:
    """A recording proxy in front of the token registry (alice/alicepass; team/app1 = app1)."""
    proxy = ProxyEndpoint(registry_token)
    proxy.start()
    registry_token.issuer.clear()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def realm_proxy(registry_token: Any) -> Iterator[FaultProxy]:
    """A recording proxy in front of the token issuer: a token realm on yet another host."""
    issuer_host = registry_token.issuer.url.removeprefix("http://")
    proxy = FaultProxy(issuer_host).start()
    try:
        yield proxy
    finally:
        proxy.stop()


def _redirect_blobs_to_cdn(proxy: Any, repository: str, cdn: Any) -> None:
    """Every app1 blob of ``repository`` is answered 307 → the CDN, which serves the seeded registry's copy
    (same digests) anonymously: so whatever arrives at the CDN with an ``Authorization`` header leaked."""
    for digest in APP1_BLOBS:
        location = f"{cdn.url}/v2/fixtures/app1/blobs/{digest}"
        proxy.rules.add(Redirect(location), path=f"/v2/{repository}/blobs/{digest}$", times=None)


def _bearer_tokens(proxy: Any) -> list[str]:
    values = [s.headers.get("authorization", "") for s in proxy.requests]
    return sorted({v.removeprefix("Bearer ") for v in values if v.startswith("Bearer ")})


# ----------------------------------------------------------------------------- never to another host


def test_basic_credentials_never_follow_a_redirect_to_the_cdn(basic_proxy: Any, cdn: Any) -> None:
    """Guards: with Basic auth, blob redirects (config, trailer Range reads, `--exact` streams) reach the CDN
    without `Authorization`, while the registry itself gets Basic — and the numbers stay right."""
    check_basic_redirect(basic_proxy, cdn)


def check_basic_redirect(proxy: Any, cdn: Any) -> None:
    registry = proxy.upstream_endpoint
    _redirect_blobs_to_cdn(proxy, "private/app1", cdn)
    for options in ([], ["--exact"]):
        run = inspect_json(
            proxy, "private/app1:latest", *options, "-u", registry.username, "--password-stdin",
            stdin=registry.password,
        )  # fmt: skip
        assert run.code == 0, run
        assert_image(run.doc, "app1")
    assert len(cdn.requests) == 6  # config + 2 trailers, config + 2 streams
    assert not [s.headers for s in cdn.requests if s.authorization]
    basic = _basic(registry.username, registry.password)
    assert any(s.headers.get("authorization") == basic for s in proxy.requests if "/blobs/" in s.target)


def test_bearer_token_never_follows_a_redirect_to_the_cdn(token_proxy: Any, cdn: Any) -> None:
    """Guards: with token auth, the CDN never sees the registry's bearer token (nor the password)."""
    registry = token_proxy.upstream_endpoint
    _redirect_blobs_to_cdn(token_proxy, "team/app1", cdn)
    run = inspect_json(
        token_proxy, "team/app1:latest", "--exact", "-u", registry.username, "--password-stdin",
        stdin=registry.password,
    )  # fmt: skip
    assert run.code == 0, run
    assert_image(run.doc, "app1")
    assert cdn.requests and not [s.headers for s in cdn.requests if s.authorization]
    assert _bearer_tokens(token_proxy)


@pytest.mark.parametrize("listing", ["tags", "catalog"])
def test_link_header_to_another_host_is_not_followed(basic_proxy: Any, listing: str) -> None:
    """Guards: a `Link: <http://other-host/…>; rel="next"` in tag or catalog pagination is refused
    (RegistryError) — the other host receives nothing, least of all the credentials. A relative Link on the
    same registry is still followed (control)."""
    registry = basic_proxy.upstream_endpoint
    evil = FaultProxy(registry.host).start()
    try:
        evil.rules.add(Respond(200, {"Content-Type": "application/json"}, b'{"tags": []}'), times=None)
        path = "/v2/private/app1/tags/list" if listing == "tags" else "/v2/_catalog"
        link = f'<{evil.url}{path}?n=1&last=x>; rel="next"'
        basic_proxy.rules.add(Rewrite("Link", ".*", link, add=True), path=path, times=None)
        creds = Credentials(username=registry.username, password=registry.password)
        resolver = CredentialResolver(explicit={basic_proxy.host: creds}, env={})
        with (
            RegistryClient(basic_proxy.settings, resolver) as client,
            pytest.raises(errors.RegistryError) as info,
        ):
            if listing == "tags":
                client.list_tags(basic_proxy.host, "private/app1")
            else:
                list(client.catalog(basic_proxy.host))
        assert "another host" in str(info.value)
        assert evil.requests == []
        assert any(s.authorization for s in basic_proxy.requests)  # credentials were in play
        basic_proxy.clear()  # control: a relative link on the same host is followed
        relative = f'<{path}?n=1&last=zzz>; rel="next"'
        basic_proxy.rules.add(Rewrite("Link", ".*", relative, add=True), path=path, times=1)
        with RegistryClient(basic_proxy.settings, resolver) as client:
            if listing == "tags":
                assert client.list_tags(basic_proxy.host, "private/app1") == ["latest"]
            else:
                assert "private/app1" in list(client.catalog(basic_proxy.host))
        assert sum(1 for s in basic_proxy.requests if s.path == path) == 2
    finally:
        evil.stop()


def test_realm_on_another_host_gets_basic_only_and_never_the_bearer_token(
    registry_token: Any, token_proxy: Any, realm_proxy: Any
) -> None:
    """Guards: the token realm (here on a third host) receives the user's Basic credentials for the token
    request and nothing else — never a bearer token; the registry receives bearer tokens and never Basic.
    Without credentials the realm receives no `Authorization` at all."""
    issuer = registry_token.issuer
    rewrite = Rewrite("WWW-Authenticate", re.escape(issuer.url), realm_proxy.url)
    token_proxy.rules.add(rewrite, times=None)
    registry = token_proxy.upstream_endpoint
    run = inspect_json(
        token_proxy, "team/app1:latest", "-u", registry.username, "--password-stdin", stdin=registry.password
    )
    assert run.code == 0, run
    assert_image(run.doc, "app1")
    basic = _basic(registry.username, registry.password)
    realm_auth = [s.headers.get("authorization") for s in realm_proxy.requests]
    assert realm_auth and set(realm_auth) == {basic}
    registry_auth = {s.headers.get("authorization", "") for s in token_proxy.requests}
    assert basic not in registry_auth and any(a.startswith("Bearer ") for a in registry_auth)
    tokens = _bearer_tokens(token_proxy)
    assert tokens and not [t for t in tokens for s in realm_proxy.requests if t in json.dumps(s.headers)]
    realm_proxy.clear()
    assert inspect_json(token_proxy, "public/base:latest").code == 0  # anonymous pull of a public repo
    assert realm_proxy.requests and not [s for s in realm_proxy.requests if s.authorization]


def test_check_fails_when_authorization_follows_redirects(
    basic_proxy: Any, cdn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With every URL treated as the same origin, Authorization reaches the CDN: the check fails."""
    monkeypatch.setattr(transport_module, "_origin", lambda url: ("http", "same", 0))
    with pytest.raises(AssertionError):
        check_basic_redirect(basic_proxy, cdn)


# ----------------------------------------------------------------------- never printed, never written


def _write_docker_config(directory: Path, host: str, entry: dict[str, Any] | None, **top: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {"auths": {host: entry} if entry is not None else {}, **top}
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def _helper(bin_dir: Path, name: str, username: str, secret: str) -> None:
    """A `docker-credential-NAME` helper that answers `get` with the given secret."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / f"docker-credential-{name}"
    answer = json.dumps({"Username": username, "Secret": secret})
    script.write_text(f"#!/bin/sh\n[ \"$1\" = get ] || exit 1\ncat >/dev/null\necho '{answer}'\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def _assert_silent(runs: list[CliRun], secrets: list[str]) -> None:
    for run in runs:
        text = run.out + run.err
        leaked = [s[:6] + "…" for s in secrets if s and s in text]
        assert not leaked, f"secret printed: {leaked}\n{run}"


def test_credentials_are_never_printed_or_written(
    isolated: Isolated,
    tmp_path: Path,
    registry_basic: Any,
    registry_token: Any,
    basic_proxy: Any,
    token_proxy: Any,
) -> None:
    """Guards: no secret — password, its Basic encoding, an identity (refresh) token, a helper's secret, or a
    bearer token the registry received — appears in stdout/stderr of `-v`/`-vv` runs (successes and
    failures; inspect, waste and audit), nor in any file under the cache, data or home directories afterwards
    (the layer store and the audit database included)."""
    user, password = registry_basic.username, registry_basic.password
    alice, alice_password = registry_token.username, registry_token.password
    refresh = registry_token.issuer.new_refresh_token(alice)
    helper_secret = password  # the helper hands out testuser's real password
    creds_dir = tmp_path / "creds"  # outside the searched directories
    env = dict(isolated.env)
    runs: list[CliRun] = []

    def cli(*argv: str, stdin: str | None = None, extra: dict[str, str] | None = None) -> CliRun:
        run = run_cli_process(*argv, env={**env, **(extra or {})}, stdin=stdin)
        runs.append(run)
        return run

    basic_ref = basic_proxy.ref("private/app1:latest")
    token_ref = token_proxy.ref("team/app1:latest")
    # 1. --password-stdin, Basic registry: inspect (with OS detection, so the store is written), waste, -vv
    ok = cli("-vv", "inspect", "--exact", "-u", user, "--password-stdin", basic_ref, stdin=password + "\n")
    assert ok.code == 0 and "DEBUG ociinspect.registry" in ok.err, ok  # -vv really logs
    assert cli("-v", "waste", "-u", user, "--password-stdin", basic_ref, stdin=password + "\n").code == 0
    wrong = cli("-vv", "inspect", "-u", user, "--password-stdin", basic_ref, stdin="not-" + password + "\n")
    assert wrong.code == 3 and "credentials rejected" in wrong.err, wrong
    # 2. --password-stdin, token registry, two repositories (two scopes, two tokens)
    two = cli("-vv", "inspect", "-u", alice, "--password-stdin", token_ref, token_proxy.ref("team/app2:latest"),
              stdin=alice_password + "\n")  # fmt: skip
    assert two.code == 0, two
    # 3. config.json: inline `auth` (Basic registry) and `identitytoken` (token registry)
    docker_dir = _write_docker_config(
        creds_dir / "docker",
        basic_proxy.host,
        {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()},
    )
    assert cli("-vv", "inspect", basic_ref, extra={"DOCKER_CONFIG": str(docker_dir)}).code == 0
    identity_dir = _write_docker_config(creds_dir / "identity", token_proxy.host, {"identitytoken": refresh})
    assert cli("-vv", "inspect", token_ref, extra={"DOCKER_CONFIG": str(identity_dir)}).code == 0
    assert any(r.grant_type == "refresh_token" for r in registry_token.issuer.requests)
    # 4. a credential helper (credsStore) for the Basic registry
    _helper(creds_dir / "bin", "ocitest", user, helper_secret)
    helper_dir = _write_docker_config(creds_dir / "helper", basic_proxy.host, None, credsStore="ocitest")
    extra = {"DOCKER_CONFIG": str(helper_dir), "PATH": f"{creds_dir / 'bin'}:{env.get('PATH', '')}"}
    assert cli("-vv", "inspect", basic_ref, extra=extra).code == 0

    # 5. an audit with credentials (its database goes to $XDG_DATA_HOME), and its report
    audit = cli("-vv", "audit", "scan", basic_proxy.host, "--repo", "private/app1", "--no-os", "-q",
                "-u", user, "--password-stdin", stdin=password + "\n")  # fmt: skip
    assert audit.code == 0, audit
    assert cli("audit", "report", "-f", "json").code == 0

    tokens = _bearer_tokens(token_proxy)
    assert len(tokens) >= 2
    b64 = base64.b64encode(f"{user}:{password}".encode()).decode()
    b64_alice = base64.b64encode(f"{alice}:{alice_password}".encode()).decode()
    secrets = [password, alice_password, b64, b64_alice, refresh, helper_secret, *tokens]
    _assert_silent(runs, secrets)
    assert list(isolated.cache.rglob("*.sqlite3")), "the store was never written: the search below is vacuous"
    assert list(isolated.data.rglob("audit.sqlite3")), "the audit database was never written"
    found = secrets_in([isolated.cache, isolated.data, isolated.home], [s.encode() for s in secrets])
    assert not found, found


def test_password_on_the_command_line_is_refused(basic_proxy: Any) -> None:
    """Guards: `--password` (both spellings) is refused with exit 2 and a hint to use --password-stdin, the
    password is not echoed, and no request is made."""
    for argv in (["--password", "s3cr3t-on-argv"], ["--password=s3cr3t-on-argv"]):
        run = run_cli("inspect", "-u", "testuser", *argv, basic_proxy.ref("private/app1:latest"))
        assert run.code == 2, run
        assert "refusing --password" in run.err and "--password-stdin" in run.err
        assert "s3cr3t-on-argv" not in run.out + run.err
    assert basic_proxy.requests == []
