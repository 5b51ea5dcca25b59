"""Registry authentication: ``WWW-Authenticate`` parsing, Basic, and the Docker/OCI bearer-token flow.

* Basic: after the first ``401 Basic`` from a host, Basic is sent preemptively (no more 401 round trips).
* Bearer: the realm and service learned from the first challenge are remembered per registry; tokens are
  cached per ``(registry, service, scope)`` until they expire (``expires_in``, default 60 s, counted from
  ``issued_at`` when the server sends it), so a new scope costs one token request and no 401.
* Token requests: anonymous GET; GET with Basic when a password is known; POST
  ``grant_type=refresh_token`` when an identity token is known.  The registry's own tokens are never sent to
  the realm, and credentials go only to the registry (Basic) or its realm (token request).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import field
from types import MappingProxyType
from typing import Literal
from urllib.parse import urlencode, urlsplit

from ociinspect import errors
from ociinspect.model.logs import get_logger
from ociinspect.model.record import record
from ociinspect.registry.credentials import CredentialResolver, Credentials
from ociinspect.registry.transport import (
    Response,
    Transport,
    basic_header,
    discard,
    error_from_response,
    read_body,
    redact_url,
)

__all__ = [
    "AuthManager",
    "Authorization",
    "Challenge",
    "TokenCache",
    "basic_header",
    "parse_challenges",
    "token_lifetime",
]

log = get_logger("ociinspect.registry")

DEFAULT_TOKEN_LIFETIME = 60.0  # seconds, per the distribution token spec
CLIENT_ID = "ociinspect"
_TOKEN_BODY_LIMIT = 1 << 20


# --------------------------------------------------------------------------------------------- challenges


@record
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header; ``scheme`` and parameter names are lower case."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        return self.params.get("service")

    @property
    def scope(self) -> str | None:
        return self.params.get("scope")

    @property
    def error(self) -> str | None:
        return self.params.get("error")


_TCHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ/")


def parse_challenges(header: str | None) -> list[Challenge]:
    """Parse ``WWW-Authenticate`` (RFC 7235): several challenges, quoted or bare values, any case.

    Never raises: malformed parts are skipped.  Cost: one pass over the string.
    """
    text = header or ""
    pos, end = 0, len(text)
    result: list[tuple[str, dict[str, str]]] = []

    def skip(chars: str) -> None:
        nonlocal pos
        while pos < end and text[pos] in chars:
            pos += 1

    def token() -> str:
        nonlocal pos
        start = pos
        while pos < end and text[pos] in _TCHARS:
            pos += 1
        return text[start:pos]

    while pos < end:
        skip(" \t,")
        start = pos
        name = token()
        if not name:
            pos += 1  # stray character: skip it
            continue
        after_name = pos
        skip(" \t")
        if pos < end and text[pos] == "=" and not text[pos:].startswith("==") and result:
            pos += 1
            skip(" \t")
            if pos < end and text[pos] == '"':
                pos += 1
                chars: list[str] = []
                while pos < end and text[pos] != '"':
                    if text[pos] == "\\" and pos + 1 < end:
                        pos += 1
                    chars.append(text[pos])
                    pos += 1
                pos += 1  # closing quote
                value = "".join(chars)
            else:
                value_start = pos
                while pos < end and text[pos] not in ", \t":
                    pos += 1
                value = text[value_start:pos]
            result[-1][1][name.lower()] = value
        elif pos < end and text[pos] == "=":
            while pos < end and text[pos] != ",":  # token68 (``abc==``) or a parameter before any scheme
                pos += 1
        else:
            pos = after_name
            result.append((text[start:after_name].lower(), {}))
    return [Challenge(scheme, MappingProxyType(params)) for scheme, params in result]


# ---------------------------------------------------------------------------------------------- token cache


def token_lifetime(body: Mapping[str, object], *, now: float) -> float:
    """Seconds a token from ``body`` stays valid, from ``expires_in`` (default and minimum 60 s) and
    ``issued_at`` (RFC 3339; ignored when in the future or older than the lifetime: clock skew)."""
    raw = body.get("expires_in")
    lifetime = float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else 0.0
    lifetime = max(lifetime, DEFAULT_TOKEN_LIFETIME)
    issued = body.get("issued_at")
    if isinstance(issued, str) and issued:
        try:
            issued_at = dt.datetime.fromisoformat(issued.replace("Z", "+00:00"))
        except ValueError:
            issued_at = None
        if issued_at is not None and issued_at.tzinfo is not None:
            age = now - issued_at.timestamp()
            if 0 <= age < lifetime:
                lifetime -= age
    return lifetime


class TokenCache:
    """Bearer tokens keyed by ``(registry, service, scope)`` with expiry.  Thread-safe.

    A token is treated as expired ``margin`` seconds early (10 % of its lifetime, at most 10 s) so that it
    does not expire between the check and its use.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}

    def get(self, key: tuple[str, str, str]) -> str | None:
        with self._lock:
            entry = self._tokens.get(key)
            if entry is None:
                return None
            if self._clock() >= entry[1]:
                del self._tokens[key]
                return None
            return entry[0]

    def put(self, key: tuple[str, str, str], token: str, lifetime: float) -> None:
        margin = min(10.0, lifetime / 10)
        with self._lock:
            self._tokens[key] = (token, self._clock() + lifetime - margin)

    def drop(self, key: tuple[str, str, str], token: str | None = None) -> None:
        """Forget the token for ``key`` (only if it is still ``token``, when given)."""
        with self._lock:
            entry = self._tokens.get(key)
            if entry is not None and (token is None or entry[0] == token):
                del self._tokens[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._tokens)


# ------------------------------------------------------------------------------------------- auth manager


@record
class Authorization:
    """What was sent with one request: the header value (secret), its kind, the scope, and whether the
    token was fetched for this very request (a fresh token that is refused will not be fetched again)."""

    header: str | None = field(default=None, repr=False)
    kind: Literal["none", "basic", "bearer", "static"] = "none"
    scope: str | None = None
    fresh: bool = False


@record
class _HostState:
    """What a registry asked for last: its auth scheme, and a bearer challenge's realm and service."""

    scheme: Literal["basic", "bearer"] | None = None
    realm: str | None = None
    service: str = ""


class AuthManager:
    """Decides the ``Authorization`` header for each registry request and reacts to 401.  Thread-safe."""

    def __init__(
        self,
        transport: Transport,
        credentials: CredentialResolver | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._transport = transport
        self._credentials = credentials
        self._wall_clock = wall_clock
        self.tokens = TokenCache(clock)
        self._lock = threading.Lock()
        self._hosts: dict[str, _HostState] = {}
        self._fetch_locks: dict[tuple[str, str, str], threading.Lock] = {}
        self._scope_aliases: dict[tuple[str, str | None], str] = {}  # scope asked -> scope demanded

    def credentials(self, registry: str) -> Credentials | None:
        """The credentials for ``registry`` (cost: see :meth:`CredentialResolver.for_registry`)."""
        if self._credentials is None:
            return None
        found = self._credentials.for_registry(registry)
        return None if found is None or found.is_empty else found

    def _state(self, registry: str) -> _HostState:
        with self._lock:
            state = self._hosts.get(registry)
            return _HostState(state.scheme, state.realm, state.service) if state else _HostState()

    def authorization(self, registry: str, scope: str | None, *, what: str) -> Authorization:
        """The header to send to ``registry`` for ``scope`` (e.g. ``repository:a/b:pull``).

        Cost: nothing when the answer is cached or the host's scheme is not known yet; one token request
        when the host is known to use bearer tokens and no valid token for this scope is cached.
        """
        creds = self.credentials(registry)
        if creds is not None and creds.registry_token:
            return Authorization(f"Bearer {creds.registry_token}", "static", scope)
        with self._lock:
            scope = self._scope_aliases.get((registry, scope), scope)
        state = self._state(registry)
        if state.scheme == "basic" and creds is not None and creds.has_password:
            assert creds.username is not None and creds.password is not None
            return Authorization(basic_header(creds.username, creds.password), "basic", scope)
        if state.scheme == "bearer" and state.realm:
            key = (registry, state.service, scope or "")
            cached = self.tokens.get(key)
            if cached is not None:
                return Authorization(f"Bearer {cached}", "bearer", scope)
            with self._lock:
                fetch_lock = self._fetch_locks.setdefault(key, threading.Lock())
            with fetch_lock:  # one token request per scope, however many threads want it
                cached = self.tokens.get(key)
                if cached is not None:
                    return Authorization(f"Bearer {cached}", "bearer", scope)
                token, lifetime = self._fetch_token(registry, state.realm, state.service, scope, creds, what)
                self.tokens.put(key, token, lifetime)
                return Authorization(f"Bearer {token}", "bearer", scope, fresh=True)
        return Authorization(scope=scope)

    def on_unauthorized(
        self, registry: str, response: Response, sent: Authorization, *, what: str
    ) -> str | None:
        """Handle a 401 from ``registry``: learn the challenge and return the scope to retry with.

        Raises :class:`~ociinspect.errors.AuthError` when retrying cannot help (no credentials for Basic,
        credentials or a fresh token refused).  Closes ``response``.  Cost: no requests.
        """
        header = response.headers.get("WWW-Authenticate")
        challenges = parse_challenges(header)
        bearer = next((c for c in challenges if c.scheme == "bearer" and c.realm), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        creds = self.credentials(registry)
        if bearer is not None:
            assert bearer.realm is not None
            scope = bearer.scope or sent.scope
            if bearer.error == "insufficient_scope" and bearer.scope and bearer.scope != sent.scope:
                log.debug("%s: insufficient_scope, re-challenged for %s", what, bearer.scope)
                with self._lock:
                    self._scope_aliases[(registry, sent.scope)] = bearer.scope
            elif sent.kind == "static" or (sent.kind == "bearer" and sent.fresh):
                raise self._refused(response, what, creds, bearer.error)
            with self._lock:
                self._hosts[registry] = _HostState("bearer", bearer.realm, bearer.service or "")
            if sent.kind == "bearer" and sent.header:
                refused = sent.header.removeprefix("Bearer ")
                self.tokens.drop((registry, bearer.service or "", sent.scope or ""), refused)
                log.debug("%s: token refused (%s); fetching a new one", what, bearer.error or "401")
            discard(response)
            return scope
        if basic is not None:
            if creds is None or not creds.has_password or sent.kind == "basic":
                raise self._refused(response, what, creds, None)
            with self._lock:
                self._hosts[registry] = _HostState("basic")
            log.debug("%s: %s uses Basic auth; sending it preemptively from now on", what, registry)
            discard(response)
            return sent.scope
        raise self._refused(response, what, creds, None)

    def _refused(
        self, response: Response, what: str, creds: Credentials | None, reason: str | None
    ) -> errors.AuthError:
        error = error_from_response(
            response, what=what, settings=self._transport.settings, credentials_sent=creds is not None
        )
        if reason == "insufficient_scope" and creds is not None:
            error = errors.AuthError(
                f"{what}: access denied: the registry accepted the credentials but they do not grant this",
                hint="check the repository name and that this account may pull from it",
                status=error.status,
                code=error.code,
                url=error.url,
            )
        assert isinstance(error, errors.AuthError)
        return error

    def _fetch_token(
        self,
        registry: str,
        realm: str,
        service: str,
        scope: str | None,
        creds: Credentials | None,
        what: str,
    ) -> tuple[str, float]:
        """Ask the realm for a token: one request (plus redirects/retries).  Returns (token, seconds)."""
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise errors.AuthError(
                f"{what}: {registry} named an unusable token service {redact_url(realm)!r}",
                hint="the registry's auth configuration is broken; report it to its operator",
            )
        doing = f"{what}: getting a token from {parts.netloc}"
        params = [("service", service)] if service else []
        params += [("scope", s) for s in (scope or "").split()]
        if creds is not None and creds.identity_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": creds.identity_token,
                "client_id": CLIENT_ID,
            }
            if service:
                form["service"] = service
            if scope:
                form["scope"] = scope
            response = self._transport.request("POST", realm, what=doing, data=form)
        elif creds is not None and creds.has_password:
            assert creds.username is not None and creds.password is not None
            query = urlencode([*params, ("account", creds.username)])
            url = realm + ("&" if parts.query else "?") + query
            response = self._transport.request(
                "GET", url, what=doing, authorization=basic_header(creds.username, creds.password)
            )
        else:
            url = realm + (("&" if parts.query else "?") + urlencode(params) if params else "")
            response = self._transport.request("GET", url, what=doing)
        if response.status_code != 200:
            raise self._token_error(response, doing, creds)
        body = read_body(response, limit=_TOKEN_BODY_LIMIT, what=doing, settings=self._transport.settings)
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the recursion limit
            doc = None
        token = None
        if isinstance(doc, dict):
            token = doc.get("token") or doc.get("access_token")
        if not isinstance(token, str) or not token or not isinstance(doc, dict):
            raise errors.AuthError(
                f"{doing}: the answer holds no token",
                hint="the token service is not Docker/OCI compatible or misconfigured",
                status=200,
                url=redact_url(realm),
            )
        lifetime = token_lifetime(doc, now=self._wall_clock())
        log.debug("%s: token for scope %r valid for %.0f s", doing, scope or "", lifetime)
        return token, lifetime

    def _token_error(self, response: Response, doing: str, creds: Credentials | None) -> errors.AuthError:
        settings, sent = self._transport.settings, creds is not None
        error = error_from_response(response, what=doing, settings=settings, credentials_sent=sent)
        if isinstance(error, errors.AuthError) or error.status in (400, 401, 403):
            if creds is not None:
                return errors.AuthError(
                    f"{doing}: credentials rejected by the token service (HTTP {error.status})",
                    hint="check the user name and password or token; `docker login` again if it expired",
                    status=error.status,
                    code=error.code,
                    url=error.url,
                )
            return errors.AuthError(
                f"{doing}: anonymous access refused (HTTP {error.status})",
                hint="log in with --username NAME --password-stdin, or `docker login` / `podman login`",
                status=error.status,
                code=error.code,
                url=error.url,
            )
        raise error
