"""Registry credential discovery, read-only, with the same sources and order as docker and podman.

Highest first:

1. explicit credentials (``--username`` / ``--password-stdin``, passed in by the CLI);
2. ``$REGISTRY_AUTH_FILE``;
3. ``$XDG_RUNTIME_DIR/containers/auth.json`` (podman, skopeo, buildah);
4. ``$DOCKER_CONFIG/config.json``;
5. ``$HOME/.docker/config.json``.

Within one file: ``credHelpers[host]`` > ``credsStore`` > the inline ``auths[host]`` entry (``auth`` =
base64 ``user:password``, or ``username`` + ``password``, ``identitytoken``, ``registrytoken``).  Keys are
normalised (scheme, path and trailing slash dropped), and Docker Hub's ``https://index.docker.io/v1/`` key
also serves ``docker.io``, ``index.docker.io`` and ``registry-1.docker.io``.

Helpers (``docker-credential-<name> get``) run with a timeout; a missing, failing or slow helper is logged at
DEBUG level and the search goes on.  Nothing is ever written, printed or logged with a secret in it.
"""

from __future__ import annotations

import binascii
import dataclasses
import json
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ociinspect.model.logs import get_logger
from ociinspect.model.record import record
from ociinspect.model.reference import is_docker_hub
from ociinspect.registry.settings import normalize_host

__all__ = ["DOCKER_HUB_KEY", "CredentialResolver", "Credentials", "registry_key"]

log = get_logger("ociinspect.registry")

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HELPER_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"  # (compiled by re's cache: only with a helper)
_HELPER_OUTPUT_LIMIT = 1 << 20


@record
class Credentials:
    """Credentials for one registry.  Secrets are left out of ``repr``."""

    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    identity_token: str | None = dataclasses.field(default=None, repr=False)  # OAuth2 refresh token
    registry_token: str | None = dataclasses.field(default=None, repr=False)  # a bearer token, used as is

    @property
    def has_password(self) -> bool:
        """True when a user name and a password can be sent as Basic auth."""
        return bool(self.username) and self.password is not None

    @property
    def is_empty(self) -> bool:
        """True when nothing usable is set."""
        return not (self.has_password or self.identity_token or self.registry_token)


def registry_key(name: str) -> str:
    """Lookup key of a registry name or config key: ``https://index.docker.io/v1/`` → ``docker.io``."""
    host = normalize_host(name)
    return "docker.io" if is_docker_hub(host) else host


def _server_url(key: str) -> str:
    """What a credential helper expects on stdin: the Hub's legacy URL, otherwise the host."""
    return DOCKER_HUB_KEY if key == "docker.io" else key


class CredentialResolver:
    """Finds credentials for a registry; results are cached per host.  Thread-safe."""

    def __init__(
        self,
        *,
        explicit: dict[str, Credentials] | None = None,
        env: Mapping[str, str] | None = None,
        helper_timeout: float = 10.0,
    ) -> None:
        self._explicit = {registry_key(k): v for k, v in (explicit or {}).items()}
        self._env: Mapping[str, str] = os.environ if env is None else env
        self._helper_timeout = helper_timeout
        self._lock = threading.Lock()
        self._cache: dict[str, Credentials | None] = {}
        self._key_locks: dict[str, threading.Lock] = {}

    def for_registry(self, registry: str) -> Credentials | None:
        """Credentials for ``registry`` (``"host[:port]"``), or None for anonymous access.

        Cost: the first call per host reads up to four small JSON files and may run one or two credential
        helpers (each bounded by ``helper_timeout`` seconds); later calls are a dict lookup.
        """
        key = registry_key(registry)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._cache:
                    return self._cache[key]
            found = self._lookup(key)
            with self._lock:
                self._cache[key] = found
            return found

    def config_files(self) -> list[Path]:
        """The auth files consulted, highest precedence first (whether or not they exist)."""
        env = self._env
        paths: list[Path] = []
        if env.get("REGISTRY_AUTH_FILE"):
            paths.append(Path(env["REGISTRY_AUTH_FILE"]))
        if env.get("XDG_RUNTIME_DIR"):
            paths.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
        if env.get("DOCKER_CONFIG"):
            paths.append(Path(env["DOCKER_CONFIG"]) / "config.json")
        if env.get("HOME"):
            paths.append(Path(env["HOME"]) / ".docker" / "config.json")
        return paths

    def _lookup(self, key: str) -> Credentials | None:
        if key in self._explicit:
            log.debug("credentials for %s: explicit", key)
            return self._explicit[key]
        for path in self.config_files():
            config = _load_json(path)
            if config is None:
                continue
            found = self._from_config(config, key, path)
            if found is not None:
                return found
        log.debug("credentials for %s: none found, anonymous", key)
        return None

    def _from_config(self, config: dict[str, Any], key: str, path: Path) -> Credentials | None:
        helpers = config.get("credHelpers")
        if isinstance(helpers, dict):
            for raw_key, helper in helpers.items():
                if isinstance(raw_key, str) and isinstance(helper, str) and registry_key(raw_key) == key:
                    found = self._run_helper(helper, key)
                    if found is not None:
                        log.debug("credentials for %s: credHelpers[%s] in %s", key, helper, path)
                        return found
        store = config.get("credsStore")
        if isinstance(store, str) and store:
            found = self._run_helper(store, key)
            if found is not None:
                log.debug("credentials for %s: credsStore %s in %s", key, store, path)
                return found
        auths = config.get("auths")
        if isinstance(auths, dict):
            for raw_key, entry in auths.items():
                if isinstance(raw_key, str) and registry_key(raw_key) == key and isinstance(entry, dict):
                    found = _from_auth_entry(entry)
                    if found is not None:
                        log.debug("credentials for %s: auths entry in %s", key, path)
                        return found
        return None

    def _run_helper(self, name: str, key: str) -> Credentials | None:
        """Run ``docker-credential-<name> get``; None (logged at DEBUG) on any failure."""
        import shutil  # here: only a credential helper needs them (~5 ms of start-up otherwise)
        import subprocess

        if not re.match(_HELPER_NAME, name):
            log.debug("credential helper name %r is invalid; ignored", name)
            return None
        program = shutil.which(f"docker-credential-{name}", path=self._env.get("PATH", os.defpath))
        if program is None:
            log.debug("credential helper docker-credential-%s not found on PATH", name)
            return None
        try:
            done = subprocess.run(
                [program, "get"],
                input=_server_url(key).encode(),
                capture_output=True,
                timeout=self._helper_timeout,
                env=dict(self._env),
                check=False,
            )
        except subprocess.TimeoutExpired:
            log.debug("credential helper %s timed out after %g s", name, self._helper_timeout)
            return None
        except OSError as exc:
            log.debug("credential helper %s could not run: %s", name, type(exc).__name__)
            return None
        if done.returncode != 0:
            log.debug("credential helper %s has no credentials for %s (exit %d)", name, key, done.returncode)
            return None
        try:
            answer = json.loads(done.stdout[:_HELPER_OUTPUT_LIMIT])
        except ValueError:
            log.debug("credential helper %s printed invalid JSON", name)
            return None
        if not isinstance(answer, dict):
            return None
        username, secret = answer.get("Username"), answer.get("Secret")
        if not isinstance(secret, str) or not secret:
            return None
        if username == "<token>":
            return Credentials(identity_token=secret)
        return Credentials(username=username if isinstance(username, str) else None, password=secret)


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        with path.open("rb") as f:
            data = json.loads(f.read(4 << 20))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.debug("cannot read auth file %s (%s); skipped", path, type(exc).__name__)
        return None
    return data if isinstance(data, dict) else None


def _from_auth_entry(entry: dict[str, Any]) -> Credentials | None:
    """An ``auths`` entry: ``auth`` (base64 user:pass), ``username``/``password``, ``identitytoken``."""
    username = entry.get("username") if isinstance(entry.get("username"), str) else None
    password = entry.get("password") if isinstance(entry.get("password"), str) else None
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            decoded = binascii.a2b_base64(encoded.encode("ascii")).decode("utf-8")  # (base64.b64decode's)
        except (ValueError, UnicodeError):  # not base64 (binascii.Error), not ASCII, not UTF-8
            log.debug("an auths entry has an undecodable 'auth' field; ignored")
            decoded = ""
        if ":" in decoded:
            username, password = decoded.split(":", 1)
    identity = entry.get("identitytoken")
    registry_token = entry.get("registrytoken")
    found = Credentials(
        username=username or None,
        password=(password or None) if username else None,
        identity_token=identity if isinstance(identity, str) and identity else None,
        registry_token=registry_token if isinstance(registry_token, str) and registry_token else None,
    )
    return None if found.is_empty else found
