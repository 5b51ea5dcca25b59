"""Start a real CNCF Distribution registry (Debian's ``docker-registry`` 2.8.2) on a free loopback port.

Modes: ``anon`` (no auth), ``basic`` (htpasswd with a bcrypt hash made by the ``bcrypt`` package), ``tls``
(test CA + server certificate for 127.0.0.1/localhost, no auth), ``token`` (``auth: token`` with the realm
on a :class:`~harness.token_issuer.TokenIssuer`).

Logs: Distribution writes its application log (logrus, ``level=info msg="response completed" ...`` per
request) to **stderr** and, when ``log.accesslog.disabled`` is false, an Apache combined-format access log to
**stdout**. So with ``access_log=True`` stdout goes to ``access.log`` (one line per request, parsed by
:meth:`RunningRegistry.access_log`) and stderr to ``registry.log``.

Cost: about 0.2-1 s per start (bcrypt and key generation included).
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt

from . import pki
from .token_issuer import TokenIssuer

MODES = ("anon", "basic", "tls", "token")
REGISTRY_BINARY = "docker-registry"
DEFAULT_USER, DEFAULT_PASSWORD = "testuser", "testpass"
_ACCESS_LINE = re.compile(
    r'^(?P<remote>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<method>\S+) '
    r'(?P<uri>\S+) [^"]*" (?P<status>\d{3}) (?P<size>\d+|-)'
)


class RegistryStartError(RuntimeError):
    """The registry did not become ready; the message carries the end of its log."""


@dataclass(frozen=True)
class AccessEntry:
    method: str
    uri: str
    status: int
    user: str  # "-" when anonymous


@dataclass
class RunningRegistry:
    mode: str
    host: str  # "127.0.0.1:PORT"
    url: str  # "http(s)://127.0.0.1:PORT"
    workdir: Path
    data_dir: Path
    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    access_log_path: Path | None = None
    ca_file: Path | None = None
    username: str | None = None
    password: str | None = None
    issuer: TokenIssuer | None = None
    owns_issuer: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, grace: float = 5.0) -> None:
        """Terminate the one process we started (SIGTERM, wait, then SIGKILL) and our issuer."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=grace)
        if self.issuer is not None and self.owns_issuer:
            self.issuer.stop()
            self.owns_issuer = False

    def log_tail(self, lines: int = 30) -> str:
        return _tail(self.log_path, lines)

    def access_log(self) -> list[AccessEntry]:
        """Parsed access-log lines so far (needs ``access_log=True``). The registry writes each line
        when the response is complete, so read it after the client has finished reading the body."""
        if self.access_log_path is None:
            raise RuntimeError("registry started without access_log=True")
        entries = []
        for line in self.access_log_path.read_text(errors="replace").splitlines():
            match = _ACCESS_LINE.match(line)
            if match:
                entries.append(
                    AccessEntry(match["method"], match["uri"], int(match["status"]), match["user"])
                )
        return entries

    def ssl_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file else None


_STARTED: list[RunningRegistry] = []


@atexit.register
def _stop_leftovers() -> None:
    """Safety net if a test run dies before its fixtures' teardown: stop the registries we started."""
    for registry in _STARTED:
        registry.stop(grace=2.0)


def registry_available() -> bool:
    return shutil.which(REGISTRY_BINARY) is not None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _write_htpasswd(path: Path, users: Mapping[str, str]) -> None:
    lines = [
        f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=4)).decode()}"
        for user, pw in users.items()
    ]
    path.write_text("\n".join(lines) + "\n")


def _config(
    mode: str,
    workdir: Path,
    port: int,
    *,
    access_log: bool,
    auth: dict[str, Any] | None,
    tls: pki.Issued | None,
) -> dict[str, Any]:
    http: dict[str, Any] = {"addr": f"127.0.0.1:{port}", "secret": "ociinspect-test-secret"}
    if tls is not None:
        http["tls"] = {"certificate": str(tls.cert_path), "key": str(tls.key_path)}
    config: dict[str, Any] = {
        "version": "0.1",
        "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": not access_log}},
        "storage": {
            "filesystem": {"rootdirectory": str(workdir / "data")},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": http,
    }
    if auth:
        config["auth"] = auth
    return config


def start_registry(
    workdir: Path,
    mode: str = "anon",
    *,
    access_log: bool = False,
    users: Mapping[str, str] | None = None,
    issuer: TokenIssuer | None = None,
    deadline: float = 15.0,
    attempts: int = 3,
    port: int | None = None,
) -> RunningRegistry:
    """Start ``docker-registry serve`` in ``mode`` with its files under ``workdir``; wait until ``/v2/``
    answers (200 or 401). Retries on a new port if the chosen one was taken in the meantime.

    ``port`` forces the first attempt's port (tests of the retry). ``users`` (basic mode) defaults to
    {testuser: testpass}. In token mode an issuer is started (and
    stopped with the registry) unless one is given.
    """
    if mode not in MODES:
        raise ValueError(f"unknown registry mode {mode!r}; expected one of {MODES}")
    binary = shutil.which(REGISTRY_BINARY)
    if binary is None:
        raise RegistryStartError(f"{REGISTRY_BINARY} not found on PATH")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "data").mkdir(exist_ok=True)
    auth, tls, ca_file, username, password = None, None, None, None, None
    owns_issuer = False
    if mode == "basic":
        users = dict(users or {DEFAULT_USER: DEFAULT_PASSWORD})
        _write_htpasswd(workdir / "htpasswd", users)
        auth = {"htpasswd": {"realm": "ociinspect-basic", "path": str(workdir / "htpasswd")}}
        username, password = next(iter(users.items()))
    elif mode == "tls":
        ca = pki.make_ca(workdir / "pki")
        tls = pki.issue(ca, workdir / "pki", "server", "127.0.0.1")
        ca_file = ca.cert_path
    elif mode == "token":
        if issuer is None:
            issuer, owns_issuer = TokenIssuer(workdir).start(), True
        auth = {
            "token": {
                "realm": issuer.realm,
                "service": issuer.service,
                "issuer": issuer.issuer,
                "rootcertbundle": str(issuer.root_cert_path),
            }
        }
    last_error = ""
    for attempt in range(attempts):
        port = port if attempt == 0 and port else free_port()
        config_path = workdir / "config.yml"  # JSON is valid YAML
        config_path.write_text(
            json.dumps(_config(mode, workdir, port, access_log=access_log, auth=auth, tls=tls))
        )
        log_path = workdir / "registry.log"
        access_path = workdir / "access.log" if access_log else None
        process = _spawn(binary, config_path, log_path, access_path)
        scheme = "https" if tls else "http"
        registry = RunningRegistry(
            mode=mode,
            host=f"127.0.0.1:{port}",
            url=f"{scheme}://127.0.0.1:{port}",
            workdir=workdir,
            data_dir=workdir / "data",
            config_path=config_path,
            log_path=log_path,
            process=process,
            access_log_path=access_path,
            ca_file=ca_file,
            username=username,
            password=password,
            issuer=issuer,
            owns_issuer=owns_issuer,
        )
        _STARTED.append(registry)
        try:
            _wait_ready(registry, deadline)
            return registry
        except RegistryStartError as exc:
            registry.owns_issuer = False  # keep the issuer for the next attempt
            registry.stop()
            last_error = str(exc)
            if "address already in use" not in registry.log_tail(50):
                break
    if owns_issuer and issuer is not None:
        issuer.stop()
    raise RegistryStartError(last_error)


def _spawn(binary: str, config: Path, log_path: Path, access_path: Path | None) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        stdout = open(access_path, "wb") if access_path else log  # noqa: SIM115
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
            return subprocess.Popen(
                [binary, "serve", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=log,
                env=env,
            )
        finally:
            if access_path:
                stdout.close()  # type: ignore[union-attr]


def _wait_ready(registry: RunningRegistry, deadline: float) -> None:
    """Poll GET /v2/ until 200 or 401, the process exits, or ``deadline`` seconds pass."""
    end = time.monotonic() + deadline
    host, port = registry.host.split(":")
    last = "no answer yet"
    while time.monotonic() < end:
        if registry.process.poll() is not None:
            raise RegistryStartError(_failure(registry, f"exited with code {registry.process.returncode}"))
        try:
            if registry.ca_file:
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    host, int(port), timeout=1.0, context=registry.ssl_context()
                )
            else:
                conn = http.client.HTTPConnection(host, int(port), timeout=1.0)
            try:
                conn.request("GET", "/v2/")
                status = conn.getresponse().status
            finally:
                conn.close()
            if status in (200, 401):
                return
            last = f"HTTP {status}"
        except (OSError, http.client.HTTPException) as exc:
            last = repr(exc)
        time.sleep(0.05)
    raise RegistryStartError(_failure(registry, f"not ready after {deadline:.0f} s (last: {last})"))


def _failure(registry: RunningRegistry, why: str) -> str:
    return (
        f"docker-registry ({registry.mode}, {registry.url}, pid {registry.pid}) {why}; "
        f"config {registry.config_path}; log tail:\n{registry.log_tail()}"
    )
