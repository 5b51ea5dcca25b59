"""Credential discovery from temporary auth files and fake ``docker-credential-*`` helpers (no real config)."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from pathlib import Path

import pytest

from ociinspect.registry import CredentialResolver, Credentials
from ociinspect.registry.credentials import registry_key

pytestmark = pytest.mark.timeout(30)

HOST = "reg.example:5000"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write_config(path: Path, config: dict[str, object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config))
    return path


def inline(user: str, password: str) -> dict[str, object]:
    return {"auths": {HOST: {"auth": b64(f"{user}:{password}")}}}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def bindir(tmp_path: Path) -> Path:
    """A PATH directory with fake helpers; each logs its stdin to ``<name>.log`` next to it."""
    path = tmp_path / "bin"
    path.mkdir()

    def helper(name: str, body: str) -> None:
        script = path / f"docker-credential-{name}"
        script.write_text(f'#!/bin/sh\ninput=$(cat)\necho "$input" >> "{path}/{name}.log"\n{body}\n')
        script.chmod(0o755)

    helper("good", """printf '{"ServerURL":"%s","Username":"helper-user","Secret":"helper-pw"}' "$input" """)
    helper("token", """printf '{"ServerURL":"%s","Username":"<token>","Secret":"identity-123"}' "$input" """)
    helper("fails", 'echo "credentials not found in native keychain"; exit 1')
    helper("garbage", "echo this is not json")
    (path / "docker-credential-slow").write_text("#!/bin/sh\nexec sleep 5\n")
    (path / "docker-credential-slow").chmod(0o755)
    return path


def env_for(home: Path, bindir: Path | None = None, **extra: str) -> dict[str, str]:
    env = {"HOME": str(home), "PATH": f"{bindir}:{os.defpath}" if bindir else os.defpath}
    env.update(extra)
    return env


def calls(bindir: Path, name: str) -> list[str]:
    log = bindir / f"{name}.log"
    return log.read_text().splitlines() if log.exists() else []


# ------------------------------------------------------------------------------------------ sources


def test_precedence_of_all_sources(tmp_path: Path, home: Path) -> None:
    auth_file = write_config(tmp_path / "rauth.json", inline("from-registry-auth-file", "1"))
    xdg = tmp_path / "xdg"
    write_config(xdg / "containers" / "auth.json", inline("from-xdg", "2"))
    docker_config = tmp_path / "dockercfg"
    write_config(docker_config / "config.json", inline("from-docker-config", "3"))
    write_config(home / ".docker" / "config.json", inline("from-home", "4"))
    env = env_for(
        home, REGISTRY_AUTH_FILE=str(auth_file), XDG_RUNTIME_DIR=str(xdg), DOCKER_CONFIG=str(docker_config)
    )

    def user(explicit: dict[str, Credentials] | None = None) -> str | None:
        found = CredentialResolver(explicit=explicit, env=env).for_registry(HOST)
        return found.username if found else None

    assert user({HOST: Credentials("explicit", "0")}) == "explicit"
    assert user() == "from-registry-auth-file"
    auth_file.unlink()
    assert user() == "from-xdg"
    (xdg / "containers" / "auth.json").unlink()
    assert user() == "from-docker-config"
    (docker_config / "config.json").unlink()
    assert user() == "from-home"
    (home / ".docker" / "config.json").unlink()
    assert user() is None


def test_lower_file_is_used_when_the_higher_one_has_no_entry_for_the_host(tmp_path: Path, home: Path) -> None:
    auth_file = write_config(tmp_path / "auth.json", {"auths": {"other.example": {"auth": b64("o:o")}}})
    write_config(home / ".docker" / "config.json", inline("from-home", "pw"))
    found = CredentialResolver(env=env_for(home, REGISTRY_AUTH_FILE=str(auth_file))).for_registry(HOST)
    assert found == Credentials("from-home", "pw")


@pytest.mark.parametrize("registry", ["docker.io", "registry-1.docker.io", "index.docker.io"])
def test_docker_hub_legacy_key(home: Path, registry: str) -> None:
    write_config(
        home / ".docker" / "config.json",
        {"auths": {"https://index.docker.io/v1/": {"auth": b64("hubuser:hubpw")}}},
    )
    assert CredentialResolver(env=env_for(home)).for_registry(registry) == Credentials("hubuser", "hubpw")


@pytest.mark.parametrize(
    "key", ["https://reg.example:5000", "http://reg.example:5000/", "reg.example:5000/v2/x"]
)
def test_keys_are_normalised(home: Path, key: str) -> None:
    write_config(home / ".docker" / "config.json", {"auths": {key: {"auth": b64("u:p")}}})
    assert CredentialResolver(env=env_for(home)).for_registry("REG.example:5000") == Credentials("u", "p")
    assert registry_key(key) == HOST


def test_entry_forms(home: Path) -> None:
    write_config(
        home / ".docker" / "config.json",
        {
            "auths": {
                "colon.example": {"auth": b64("user:pa:ss:word")},
                "fields.example": {"username": "fielduser", "password": "fieldpw"},
                "identity.example": {"auth": b64("someone:"), "identitytoken": "refresh-xyz"},
                "bearer.example": {"registrytoken": "bearer-abc"},
                "empty.example": {},
                "broken.example": {"auth": "%%%not-base64%%%"},
                "nonascii.example": {"auth": "dXNlcjpwdw==é"},  # (base64.b64decode raised ValueError on it)
                "latin1.example": {"auth": base64.b64encode("u:p\xe9".encode("latin-1")).decode()},
            }
        },
    )
    resolver = CredentialResolver(env=env_for(home))
    assert resolver.for_registry("colon.example") == Credentials("user", "pa:ss:word")
    assert resolver.for_registry("fields.example") == Credentials("fielduser", "fieldpw")
    identity = resolver.for_registry("identity.example")
    assert identity is not None and identity.identity_token == "refresh-xyz" and identity.password is None
    assert resolver.for_registry("bearer.example") == Credentials(registry_token="bearer-abc")
    assert resolver.for_registry("empty.example") is None
    assert resolver.for_registry("broken.example") is None
    assert resolver.for_registry("nonascii.example") is None
    assert resolver.for_registry("latin1.example") is None


def test_invalid_json_file_is_skipped(tmp_path: Path, home: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    write_config(home / ".docker" / "config.json", inline("good", "pw"))
    found = CredentialResolver(env=env_for(home, REGISTRY_AUTH_FILE=str(bad))).for_registry(HOST)
    assert found == Credentials("good", "pw")


# ------------------------------------------------------------------------------------------ helpers


def test_cred_helpers_beat_creds_store_beat_inline(home: Path, bindir: Path) -> None:
    config = home / ".docker" / "config.json"
    write_config(
        config,
        {"credHelpers": {HOST: "good"}, "credsStore": "token", "auths": {HOST: {"auth": b64("inline:pw")}}},
    )
    assert CredentialResolver(env=env_for(home, bindir)).for_registry(HOST) == Credentials(
        "helper-user", "helper-pw"
    )
    assert calls(bindir, "good") == [HOST] and calls(bindir, "token") == []
    write_config(config, {"credsStore": "token", "auths": {HOST: {"auth": b64("inline:pw")}}})
    assert CredentialResolver(env=env_for(home, bindir)).for_registry(HOST) == Credentials(
        identity_token="identity-123"
    )
    write_config(config, {"auths": {HOST: {"auth": b64("inline:pw")}}})
    assert CredentialResolver(env=env_for(home, bindir)).for_registry(HOST) == Credentials("inline", "pw")


def test_helper_gets_docker_hub_legacy_url(home: Path, bindir: Path) -> None:
    write_config(home / ".docker" / "config.json", {"credHelpers": {"docker.io": "good"}})
    found = CredentialResolver(env=env_for(home, bindir)).for_registry("registry-1.docker.io")
    assert found == Credentials("helper-user", "helper-pw")
    assert calls(bindir, "good") == ["https://index.docker.io/v1/"]


@pytest.mark.parametrize("helper", ["fails", "garbage", "missing", "../../bin/sh"])
def test_broken_or_missing_helper_falls_through(
    home: Path, bindir: Path, helper: str, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="ociinspect.registry")
    write_config(
        home / ".docker" / "config.json",
        {"credHelpers": {HOST: helper}, "auths": {HOST: {"auth": b64("u:p")}}},
    )
    assert CredentialResolver(env=env_for(home, bindir)).for_registry(HOST) == Credentials("u", "p")
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")  # never prints, and the helper's output is captured
    assert any("helper" in r.getMessage() for r in caplog.records)
    assert all(r.levelname == "DEBUG" for r in caplog.records)


def test_slow_helper_times_out_and_falls_through(home: Path, bindir: Path) -> None:
    write_config(
        home / ".docker" / "config.json", {"credsStore": "slow", "auths": {HOST: {"auth": b64("u:p")}}}
    )
    started = time.monotonic()
    found = CredentialResolver(env=env_for(home, bindir), helper_timeout=0.5).for_registry(HOST)
    assert found == Credentials("u", "p")
    assert time.monotonic() - started < 3.0


def test_results_are_cached_per_host_and_thread_safe(home: Path, bindir: Path) -> None:
    write_config(home / ".docker" / "config.json", {"credsStore": "good"})
    resolver = CredentialResolver(env=env_for(home, bindir))
    results: list[Credentials | None] = []
    threads = [threading.Thread(target=lambda: results.append(resolver.for_registry(HOST))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [Credentials("helper-user", "helper-pw")] * 8
    assert calls(bindir, "good") == [HOST]
    resolver.for_registry("other.example")
    assert calls(bindir, "good") == [HOST, "other.example"]


def test_nothing_is_written(tmp_path: Path, home: Path, bindir: Path) -> None:
    write_config(home / ".docker" / "config.json", {"credHelpers": {HOST: "good"}, "auths": {}})
    explicit = {"new.example": Credentials("x", "y")}
    before = {p: p.stat().st_mtime_ns for p in home.rglob("*")}
    resolver = CredentialResolver(explicit=explicit, env=env_for(home, bindir))
    resolver.for_registry(HOST)
    resolver.for_registry("new.example")
    assert {p: p.stat().st_mtime_ns for p in home.rglob("*")} == before


def test_repr_hides_secrets() -> None:
    creds = Credentials("user", "pw-secret", identity_token="id-secret", registry_token="reg-secret")
    text = repr(creds)
    assert "user" in text
    for secret in ("pw-secret", "id-secret", "reg-secret"):
        assert secret not in text
