"""A Distribution-compatible token issuer (the Docker Hub / GHCR bearer flow) for loopback tests.

``GET /token?service=S&scope=repository:NAME:pull[&scope=...]`` with optional Basic credentials, and
``POST /token`` with ``grant_type=password`` or ``grant_type=refresh_token`` (OAuth2 form), answer
``{"token", "access_token", "expires_in", "issued_at"[, "refresh_token"]}``. Tokens are RS256 JWS whose
header carries ``x5c`` = the signing certificate, which chains to :attr:`TokenIssuer.root_cert_path` (give
that file to the registry as ``rootcertbundle``).

Rights are patterns ``TYPE:NAME-GLOB:ACTIONS`` per user (``ANONYMOUS`` for clients without credentials), e.g.
``"repository:team/*:pull"``. Every request is logged in :attr:`TokenIssuer.requests` with the username only,
never a password or token.
"""

from __future__ import annotations

import base64
import datetime as dt
import fnmatch
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from . import pki
from .quiet import QuietHTTPServer

ANONYMOUS = ""
DEFAULT_USERS: Mapping[str, str] = {"pusher": "pushpass", "alice": "alicepass"}
DEFAULT_RIGHTS: Mapping[str, Sequence[str]] = {
    "pusher": ["repository:*:pull,push,delete", "registry:catalog:*"],
    "alice": ["repository:team/*:pull", "repository:public/*:pull"],
    ANONYMOUS: ["repository:public/*:pull"],
}
_SECRET_FIELDS = {"password", "refresh_token"}


@dataclass(frozen=True)
class IssuerRequest:
    """One request seen by the issuer. ``username`` is the claimed user name (never a secret)."""

    method: str
    path: str
    query: Mapping[str, Sequence[str]]  # URL query, plus POST form fields without secrets
    authorization: bool
    username: str | None
    grant_type: str | None
    scopes: tuple[str, ...]
    status: int


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parse_scope(scope: str) -> tuple[str, str, set[str]]:
    """``repository:team/app:pull,push`` -> ("repository", "team/app", {"pull", "push"})."""
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    return kind, name, {a for a in actions.split(",") if a}


class TokenIssuer:
    """Threaded HTTP token server on 127.0.0.1:0. Use :func:`start_token_issuer` or ``with``."""

    def __init__(
        self,
        workdir: Path,
        *,
        service: str = "ociinspect-registry",
        issuer: str = "ociinspect-test-issuer",
        users: Mapping[str, str] = DEFAULT_USERS,
        rights: Mapping[str, Sequence[str]] = DEFAULT_RIGHTS,
        expires_in: int = 300,
    ) -> None:
        self.service, self.issuer = service, issuer
        self.users, self.rights = dict(users), {k: list(v) for k, v in rights.items()}
        self.expires_in = expires_in  # seconds; tests may change it at run time
        self.requests: list[IssuerRequest] = []
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> username
        self._lock = threading.Lock()
        ca = pki.make_ca(workdir / "issuer-pki", "ociinspect token CA")
        self._signer = pki.issue(ca, workdir / "issuer-pki", "signer", issuer, server=False, rsa_key=True)
        self.root_cert_path: Path = ca.cert_path
        self._server = QuietHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="token-issuer", daemon=True
        )

    # -- lifecycle
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def realm(self) -> str:
        return self.url + "/token"

    def start(self) -> TokenIssuer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> TokenIssuer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- policy
    def granted(self, username: str | None, scopes: Sequence[str]) -> list[dict[str, Any]]:
        """The ``access`` claim for ``username`` (None = anonymous): requested actions that a rule allows."""
        patterns = self.rights.get(username if username is not None else ANONYMOUS, [])
        access = []
        for scope in scopes:
            kind, name, wanted = parse_scope(scope)
            allowed: set[str] = set()
            for pattern in patterns:
                p_kind, p_name, p_actions = parse_scope(pattern)
                if p_kind == kind and fnmatch.fnmatchcase(name, p_name):
                    allowed |= wanted if "*" in p_actions else wanted & p_actions
            if allowed:
                access.append({"type": kind, "name": name, "actions": sorted(allowed)})
        return access

    def issue(
        self,
        subject: str,
        access: Sequence[Mapping[str, Any]],
        *,
        expires_in: int | None = None,
        audience: str | None = None,
        now: float | None = None,
    ) -> str:
        """Mint a signed token. A negative ``expires_in`` gives an already expired token."""
        issued = int(now if now is not None else time.time())
        lifetime = self.expires_in if expires_in is None else expires_in
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self._signer.der()).decode()]}
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience or self.service,
            "exp": issued + lifetime,
            "nbf": min(issued, issued + lifetime) - 1,
            "iat": issued,
            "jti": secrets.token_hex(8),
            "access": list(access),
        }
        signing_input = f"{_b64url(_compact(header))}.{_b64url(_compact(claims))}".encode()
        key = self._signer.key
        assert isinstance(key, rsa.RSAPrivateKey)
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input.decode()}.{_b64url(signature)}"

    def check_password(self, username: str, password: str) -> bool:
        return username in self.users and secrets.compare_digest(self.users[username], password)

    def new_refresh_token(self, username: str) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.refresh_tokens[token] = username
        return token

    def record(self, entry: IssuerRequest) -> None:
        with self._lock:
            self.requests.append(entry)

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _make_handler(issuer: TokenIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        timeout = 30

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            user, auth_ok = self._basic_user()
            scopes = _scopes(query.get("scope", []))
            if url.path != "/token":
                return self._reply(404, {"errors": [{"code": "NOT_FOUND"}]}, query, user, None, scopes)
            if not auth_ok:
                return self._reply(401, _error("UNAUTHORIZED", "bad credentials"), query, user, None, scopes)
            offline = query.get("offline_token", ["false"])[0] == "true" and user is not None
            self._grant(query, user, None, scopes, refresh=offline)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = urllib.parse.parse_qs(self.rfile.read(length).decode()) if length else {}
            logged = {k: v for k, v in form.items() if k not in _SECRET_FIELDS}
            grant = form.get("grant_type", [None])[0]
            scopes = _scopes(form.get("scope", []))
            user: str | None = form.get("username", [None])[0]
            if grant == "password":
                ok = user is not None and issuer.check_password(user, form.get("password", [""])[0])
            elif grant == "refresh_token":
                user = issuer.refresh_tokens.get(form.get("refresh_token", [""])[0])
                ok = user is not None
            else:
                return self._reply(400, _error("UNSUPPORTED", "grant_type"), logged, user, grant, scopes)
            if not ok:
                return self._reply(
                    401, _error("UNAUTHORIZED", "bad credentials"), logged, user, grant, scopes
                )
            offline = grant == "password" and form.get("access_type", [""])[0] == "offline"
            self._grant(logged, user, grant, scopes, refresh=offline)

        def _grant(
            self,
            query: Mapping[str, Sequence[str]],
            user: str | None,
            grant: str | None,
            scopes: tuple[str, ...],
            *,
            refresh: bool,
        ) -> None:
            service = query.get("service", [issuer.service])[0]
            if service != issuer.service:
                return self._reply(400, _error("INVALID_SERVICE", service), query, user, grant, scopes)
            token = issuer.issue(user or "", issuer.granted(user, scopes))
            body: dict[str, Any] = {
                "token": token,
                "access_token": token,
                "expires_in": issuer.expires_in,
                "issued_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            }
            if refresh and user is not None:
                body["refresh_token"] = issuer.new_refresh_token(user)
            self._reply(200, body, query, user, grant, scopes)

        def _basic_user(self) -> tuple[str | None, bool]:
            """(username, credentials valid); no Authorization header = (None, True) = anonymous."""
            header = self.headers.get("Authorization", "")
            if not header:
                return None, True
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "basic":
                return None, False
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except ValueError:
                return None, False
            return user, issuer.check_password(user, password)

        def _reply(
            self,
            status: int,
            body: Mapping[str, Any],
            query: Mapping[str, Sequence[str]],
            user: str | None,
            grant: str | None,
            scopes: tuple[str, ...],
        ) -> None:
            issuer.record(
                IssuerRequest(
                    method=self.command,
                    path=urllib.parse.urlsplit(self.path).path,
                    query=dict(query),
                    authorization="Authorization" in self.headers,
                    username=user,
                    grant_type=grant,
                    scopes=scopes,
                    status=status,
                )
            )
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="ociinspect-token-issuer"')
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _scopes(values: Sequence[str]) -> tuple[str, ...]:
    """Scopes may repeat (Docker) or be space-separated in one parameter (OAuth2 form)."""
    return tuple(s for value in values for s in value.split(" ") if s)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"errors": [{"code": code, "message": message}]}


def start_token_issuer(workdir: Path, **kwargs: Any) -> TokenIssuer:
    """Create and start an issuer (see :class:`TokenIssuer` for the keyword arguments)."""
    return TokenIssuer(workdir, **kwargs).start()
