"""`ociinspect inspect` end to end against the real registry in its auth modes, and oras-py as an oracle."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from typing import Any

import pytest

from ociinspect.session import Session

pytestmark = [pytest.mark.registry, pytest.mark.timeout(120)]


def cli(
    *argv: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed CLI in a subprocess (fresh process: stdin, environment and exit code are real)."""
    return subprocess.run(
        [sys.executable, "-m", "ociinspect", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
    )


@pytest.fixture
def clean_env(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An environment with no docker/podman logins, so only the credentials a test gives are used."""
    import os

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR")
    }
    env["HOME"] = str(tmp_path)
    for key in ("DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return env


def test_basic_auth_with_password_stdin(registry_basic: Any, clean_env: dict[str, str]) -> None:
    ref = f"{registry_basic.host}/private/app1:latest"
    r = cli(
        "inspect",
        ref,
        "-u",
        registry_basic.username,
        "--password-stdin",
        "-f",
        "json",
        stdin=registry_basic.password + "\n",
        env=clean_env,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["layer_count"] == 2
    assert registry_basic.password not in r.stdout + r.stderr


def test_basic_auth_missing_and_wrong_credentials(registry_basic: Any, clean_env: dict[str, str]) -> None:
    ref = f"{registry_basic.host}/private/app1:latest"
    r = cli("inspect", ref, env=clean_env)
    assert r.returncode == 3
    assert "ociinspect: error:" in r.stderr and "--password-stdin" in r.stderr and "Traceback" not in r.stderr
    r = cli(
        "inspect",
        ref,
        "-u",
        registry_basic.username,
        "--password-stdin",
        stdin="wrong-password\n",
        env=clean_env,
    )
    assert r.returncode == 3 and "rejected" in r.stderr.lower()
    assert "wrong-password" not in r.stderr


def test_basic_auth_from_docker_config(registry_basic: Any, clean_env: dict[str, str], tmp_path: Any) -> None:
    import base64

    cfg = tmp_path / "dockercfg"
    cfg.mkdir()
    token = base64.b64encode(f"{registry_basic.username}:{registry_basic.password}".encode()).decode()
    (cfg / "config.json").write_text(json.dumps({"auths": {registry_basic.host: {"auth": token}}}))
    env = {**clean_env, "DOCKER_CONFIG": str(cfg)}
    r = cli("inspect", f"{registry_basic.host}/private/app1:latest", "-f", "json", env=env)
    assert r.returncode == 0, r.stderr


def test_tls_with_ca_file_insecure_and_without(registry_tls: Any, clean_env: dict[str, str]) -> None:
    ref = f"{registry_tls.host}/secure/app1:latest"
    r = cli("inspect", ref, "--ca-file", str(registry_tls.ca_file), "-f", "json", env=clean_env)
    assert r.returncode == 0, r.stderr
    r = cli("inspect", ref, "--insecure", "-f", "json", env=clean_env)
    assert r.returncode == 0, r.stderr
    r = cli("inspect", ref, "--timeout", "5", env=clean_env)
    assert r.returncode == 3
    assert "--ca-file" in r.stderr and "Traceback" not in r.stderr


def test_token_auth_two_repositories_in_one_call(registry_token: Any, clean_env: dict[str, str]) -> None:
    refs = [f"{registry_token.host}/team/app1:latest", f"{registry_token.host}/team/app2:latest"]
    r = cli(
        "inspect",
        *refs,
        "-u",
        registry_token.username,
        "--password-stdin",
        "-f",
        "json",
        stdin=registry_token.password + "\n",
        env=clean_env,
    )
    assert r.returncode == 0, r.stderr
    docs = json.loads(r.stdout)
    assert [d["layer_count"] for d in docs] == [2, 2]
    assert docs[0]["layers"][0]["digest"] == docs[1]["layers"][0]["digest"]  # the shared base layer


def test_not_found_and_refused_connection(seeded_registry: Any, clean_env: dict[str, str]) -> None:
    r = cli("inspect", f"{seeded_registry.host}/fixtures/nope:latest", env=clean_env)
    assert r.returncode == 3, r.stderr
    assert "fixtures/nope" in r.stderr and ("not found" in r.stderr.lower() or "unknown" in r.stderr.lower())
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = cli("inspect", f"127.0.0.1:{port}/x:latest", "--retries", "0", env=clean_env)
    assert r.returncode == 3 and "refused" in r.stderr.lower() and "Traceback" not in r.stderr


@pytest.mark.parametrize("name", ["base", "app1", "multi", "artifact"])
def test_oras_oracle_sees_the_same_manifests(name: str, seeded_registry: Any) -> None:
    """oras-py (an independent client) fetches the same manifest: same JSON, and our digest is its sha256."""
    oras_provider = pytest.importorskip("oras.provider")
    import hashlib

    logging.getLogger("oras").setLevel(logging.CRITICAL)
    reg = oras_provider.Registry(hostname=seeded_registry.host, insecure=True)
    theirs = reg.get_manifest(f"{seeded_registry.host}/fixtures/{name}:latest")
    with (
        Session(seeded_registry.settings) as s,
        s.source(f"docker://{seeded_registry.host}/fixtures/{name}:latest") as src,
    ):
        raw = src.root()
    assert json.loads(raw.data) == theirs
    assert (
        raw.digest
        == "sha256:" + hashlib.sha256(raw.data).hexdigest()
        == seeded_registry.digests[f"fixtures/{name}:latest"]
    )
    if "config" in theirs:
        blob = reg.get_blob(f"{seeded_registry.host}/fixtures/{name}:latest", theirs["config"]["digest"])
        with (
            Session(seeded_registry.settings) as s,
            s.source(f"docker://{seeded_registry.host}/fixtures/{name}:latest") as src,
        ):
            ours = src.blob(theirs["config"]["digest"], size=theirs["config"]["size"], max_bytes=1 << 20)
        assert blob.content == ours
