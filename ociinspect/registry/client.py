"""Registry endpoints (OCI distribution spec, read-only): manifests, blobs, tags, catalog.

Every method states its cost in HTTP requests; "+ auth" means the first request per registry and scope
may add a 401 round trip and one token request (see :mod:`ociinspect.registry.auth`).  Sizes are bytes.
Content is verified against the digests that name it; bodies are read with hard caps.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote, urljoin

from ociinspect import errors
from ociinspect.model import digest as digests
from ociinspect.model import mediatypes
from ociinspect.model.image import RawManifest
from ociinspect.model.logs import get_logger
from ociinspect.model.record import record
from ociinspect.model.reference import is_repository_path, is_tag
from ociinspect.registry.auth import AuthManager
from ociinspect.registry.credentials import CredentialResolver
from ociinspect.registry.transport import (
    Observer,
    RegistrySettings,
    Response,
    Transport,
    content_length,
    discard,
    error_from_response,
    iter_body,
    read_body,
    redact_url,
)

__all__ = ["MANIFEST_ACCEPT_HEADER", "RANGE_FALLBACK_LIMIT", "BlobInfo", "FetchedManifest", "RegistryClient"]

log = get_logger("ociinspect.registry")
_T = TypeVar("_T")

#: Accept header for manifests: the four supported types, then schema1 so that it is *detected* (and
#: explained upstream) rather than answered with a confusing 404.
MANIFEST_ACCEPT_HEADER = ", ".join(
    (*mediatypes.MANIFEST_ACCEPT, mediatypes.DOCKER_SCHEMA1_SIGNED, mediatypes.DOCKER_SCHEMA1)
)
#: When a server ignores ``Range`` and sends the whole blob, it is sliced locally only up to this size.
RANGE_FALLBACK_LIMIT = 1 << 20
_OPEN_RANGE_LIMIT = 16 << 20  # ``bytes=N-`` without an end
_LIST_PAGE_LIMIT = 32 << 20  # one page of tags or repositories (Distribution ignores ``n`` for tags)
_AUTH_ATTEMPTS = 4
_GENERIC_TYPES = mediatypes.GENERIC_TYPES
_CONTENT_RANGE_RE = re.compile(r"^bytes (\d{1,20})-(\d{1,20})/(\d{1,20}|\*)$", re.ASCII)  # ASCII digits only


#: A manifest exactly as served, with its media type and its (verified) digest: the sources' one manifest type
#: (the name is kept for the registry package's public API).
FetchedManifest = RawManifest


@record
class BlobInfo:
    """What a blob HEAD tells: size in bytes, the registry's digest header (if any), Range support."""

    size: int
    digest: str | None
    accepts_ranges: bool


def _scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def _check_repository(repository: str) -> str:
    if not is_repository_path(repository):
        raise errors.InvalidReference(
            f"invalid repository name {repository!r}",
            hint="repository names are lower-case path components like library/alpine",
        )
    return quote(repository, safe="/")


def _check_reference(reference: str) -> tuple[str, str | None]:
    """``(url-safe reference, digest or None)``; a digest is validated, a tag checked against the grammar."""
    if ":" in reference:
        digests.parse(reference)
        return reference, reference
    if not is_tag(reference):
        raise errors.InvalidReference(
            f"invalid tag {reference!r}", hint="tags are up to 128 letters, digits, '_', '.' or '-'"
        )
    return reference, None


def _display(registry: str, repository: str, reference: str) -> str:
    return f"{registry}/{repository}{'@' if ':' in reference else ':'}{reference}"


def _content_type(header: str | None) -> str:
    """A Content-Type header without parameters, lower case (``""`` when absent)."""
    return (header or "").split(";", 1)[0].strip().lower()


def _media_type(content_type: str | None, data: bytes) -> str:
    """Content-Type without parameters; for a missing/generic one, the JSON's ``mediaType`` (or its shape): the
    one sniffing rule, :func:`ociinspect.model.mediatypes.manifest_media_type`."""
    return mediatypes.manifest_media_type(_content_type(content_type), data)


@record
class _ManifestHead:
    """What one manifest HEAD told: ``digest`` is the ``Docker-Content-Digest`` when it is of the reference's
    algorithm (else None), ``media_type`` the Content-Type (:func:`_content_type`), ``size`` the Content-Length
    in bytes (None when absent); ``expected`` the digest the reference names, if it names one."""

    what: str
    expected: str | None
    digest: str | None
    media_type: str
    size: int | None

    def confirmed_digest(self) -> str:
        """The header's digest, which must be the one asked for.  Raises :class:`~ociinspect.errors.DigestMismatch`."""
        assert self.digest is not None
        if self.expected is not None and self.digest != self.expected:
            raise errors.DigestMismatch(
                f"{self.what}: digest mismatch: asked for {self.expected}, the registry says {self.digest}",
                hint="the registry is broken or a proxy rewrote the answer",
            )
        return self.digest


class RegistryClient:
    """Read-only client for OCI/Docker registries.  Thread-safe (one pooled session); a context manager."""

    def __init__(
        self, settings: RegistrySettings | None = None, credentials: CredentialResolver | None = None
    ) -> None:
        self.settings = settings if settings is not None else RegistrySettings()
        self._transport = Transport(self.settings)
        self._auth = AuthManager(self._transport, credentials)

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close pooled connections."""
        self._transport.close()

    def interrupt(self) -> None:
        """Cut short every request in flight, from any thread (for Ctrl-C): their sockets are shut down, so the
        threads blocked on them fail at once instead of at their read timeout, and so does every later request
        (the client is not usable after).  Cost: one shutdown(2) per open socket."""
        self._transport.interrupt()

    def add_observer(self, observer: Observer) -> None:
        """Call ``observer(method, url, status, headers)`` after every HTTP round trip this client makes (retries,
        redirects and token requests included; the body is not read yet; ``headers`` is a read-only,
        case-insensitive mapping).  For request counters and
        rate-limit headers such as Docker Hub's ``ratelimit-remaining``.  Cost: none."""
        self._transport.observers.append(observer)

    # ------------------------------------------------------------------------------------------ plumbing

    def _open(
        self,
        registry: str,
        scope: str | None,
        method: str,
        target: str,
        *,
        what: str,
        headers: Mapping[str, str] | None = None,
        not_found_code: str | None = None,
    ) -> Response:
        """Send with auth; return a 2xx response (body unread) or raise the typed error.

        Cost: 1 request, + up to 3 when authentication has to be negotiated (401, token, retry).
        """
        url = target if "://" in target else self._transport.url(registry, target)
        if not self._transport.same_origin(url, registry):
            raise errors.RegistryError(
                f"{what}: the registry pointed to another host ({redact_url(url)}); refusing to follow",
                hint="the registry's pagination links are misconfigured",
                url=redact_url(url),
            )
        for _ in range(_AUTH_ATTEMPTS):
            auth = self._auth.authorization(registry, scope, what=what)
            response = self._transport.request(
                method, url, what=what, headers=headers, authorization=auth.header
            )
            if response.status_code == 401 and self._transport.same_origin(response.url, registry):
                scope = self._auth.on_unauthorized(registry, response, auth, what=what)
                continue
            if 200 <= response.status_code < 300:
                return response
            raise error_from_response(
                response,
                what=what,
                settings=self.settings,
                credentials_sent=auth.kind != "none",
                not_found_code=not_found_code,
            )
        raise errors.AuthError(
            f"{what}: the registry kept asking for authentication",
            hint="check the credentials and that this account may pull from the repository",
            status=401,
            url=redact_url(url),
        )

    def _fetch(self, what: str, send: Callable[[], Response], read: Callable[[Response], _T]) -> _T:
        """``read(send())``, sent again when the body breaks off (a reset, or fewer bytes than Content-Length:
        :class:`~ociinspect.errors.ConnectionFailed` from the body) — a connection error like one before the
        answer, so it gets the same bounded retries and back-off.  Read timeouts are not retried.

        Cost: one more request (+ its body) per retry, at most ``settings.retries``.
        """
        attempt = 0
        while True:
            response = send()
            try:
                return read(response)
            except errors.ConnectionFailed:
                if attempt >= self.settings.retries:
                    raise
                delay = self.settings.backoff * (2**attempt)
                log.debug("%s: the body broke off, retry %d in %.2f s", what, attempt + 1, delay)
                self._transport.pause(delay, what=what, doing="retrying after the body broke off")
                attempt += 1

    def _read_json(self, response: Response, *, what: str) -> dict[str, Any]:
        body = read_body(response, limit=_LIST_PAGE_LIMIT, what=what, settings=self.settings)
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            doc = None
        if not isinstance(doc, dict):
            raise errors.RegistryError(
                f"{what}: the registry answered something that is not a JSON object",
                hint="is this really an OCI registry? check the host and port",
                status=response.status_code,
                url=redact_url(response.url),
            )
        return doc

    # ----------------------------------------------------------------------------------------- endpoints

    def ping(self, registry: str) -> None:
        """``GET /v2/``: the registry is reachable, speaks the API and accepts our credentials (if any).

        Cost: 1 request, + up to 2 for authentication.
        """
        response = self._open(registry, None, "GET", "/v2/", what=f"contacting registry {registry}")
        discard(response)

    def get_manifest(
        self, registry: str, repository: str, reference: str, *, max_bytes: int = 4 * 1024 * 1024
    ) -> FetchedManifest:
        """Fetch a manifest or index by tag or digest, as raw bytes, its media type and its digest.

        The digest is checked against ``reference`` when it is a digest, and against the registry's
        ``Docker-Content-Digest`` header when that uses the same algorithm (else :class:`DigestMismatch`).
        Schema1 manifests are returned, not rejected.  Reads at most ``max_bytes`` bytes
        (:class:`LimitExceeded` beyond).  Cost: 1 GET + auth.
        """
        path_repo = _check_repository(repository)
        path_ref, expected = _check_reference(reference)
        what = f"fetching manifest {_display(registry, repository, reference)}"
        response, data = self._fetch(
            what,
            lambda: self._manifest_request("GET", registry, repository, path_repo, path_ref, what),
            lambda r: (r, read_body(r, limit=max_bytes, what=what, settings=self.settings)),
        )
        header_digest = response.headers.get("Docker-Content-Digest", "").strip()
        content_type = response.headers.get("Content-Type")
        algorithm = expected.split(":", 1)[0] if expected else "sha256"
        computed = digests.compute(data, algorithm)
        if expected is not None and computed != expected:
            raise errors.DigestMismatch(
                f"{what}: digest mismatch: asked for {expected}, the content hashes to {computed}",
                hint="the registry or a proxy altered the manifest; do not trust this registry's answer",
            )
        same_algorithm = digests.is_digest(header_digest) and header_digest.split(":", 1)[0] == algorithm
        if same_algorithm and header_digest != computed:
            raise errors.DigestMismatch(
                f"{what}: digest mismatch: the registry says {header_digest}, the content hashes to "
                f"{computed}",
                hint="the manifest was altered in transit or the registry is broken; try again",
            )
        return FetchedManifest(data=data, media_type=_media_type(content_type, data), digest=computed)

    def _manifest_request(
        self, method: str, registry: str, repository: str, path_repo: str, path_ref: str, what: str
    ) -> Response:
        """One manifest GET or HEAD with the full Accept list (body unread).  Cost: 1 request + auth."""
        return self._open(
            registry,
            _scope(repository),
            method,
            f"/v2/{path_repo}/manifests/{path_ref}",
            what=what,
            headers={"Accept": MANIFEST_ACCEPT_HEADER},
            not_found_code="MANIFEST_UNKNOWN",
        )

    def _blob_request(
        self,
        method: str,
        registry: str,
        repository: str,
        path_repo: str,
        digest: str,
        what: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """One blob GET or HEAD (body unread; redirects to a CDN followed).  Cost: 1 request + auth + hops."""
        return self._open(
            registry,
            _scope(repository),
            method,
            f"/v2/{path_repo}/blobs/{digest}",
            what=what,
            headers=headers,
            not_found_code="BLOB_UNKNOWN",
        )

    def _head_manifest(self, registry: str, repository: str, reference: str) -> _ManifestHead:
        """One HEAD of a manifest, read into a :class:`_ManifestHead` (no body).  Cost: 1 HEAD + auth."""
        path_repo = _check_repository(repository)
        path_ref, expected = _check_reference(reference)
        what = f"checking manifest {_display(registry, repository, reference)}"
        response = self._manifest_request("HEAD", registry, repository, path_repo, path_ref, what)
        discard(response)
        header_digest = response.headers.get("Docker-Content-Digest", "").strip()
        algorithm = expected.split(":", 1)[0] if expected else "sha256"
        usable = digests.is_digest(header_digest) and header_digest.split(":", 1)[0] == algorithm
        return _ManifestHead(
            what,
            expected,
            header_digest if usable else None,
            _content_type(response.headers.get("Content-Type")),
            content_length(response),
        )

    def head_manifest(self, registry: str, repository: str, reference: str) -> tuple[str, str, int]:
        """``(digest, media_type, size)`` of a manifest, from a HEAD's headers.

        Cost: 1 HEAD + auth; + 1 GET when the registry omits ``Docker-Content-Digest``, ``Content-Length``
        or a specific ``Content-Type`` (then the manifest is fetched and hashed, up to 4 MiB).
        """
        head = self._head_manifest(registry, repository, reference)
        if head.digest is not None and head.media_type not in _GENERIC_TYPES and head.size is not None:
            return head.confirmed_digest(), head.media_type, head.size
        fetched = self.get_manifest(registry, repository, reference)
        return fetched.digest, fetched.media_type, len(fetched.data)

    def head_blob(self, registry: str, repository: str, digest: str) -> BlobInfo:
        """Size, digest header and Range support of a blob.  Cost: 1 HEAD + auth (+ redirect hops)."""
        path_repo = _check_repository(repository)
        digests.parse(digest)
        what = f"checking blob {digest} in {registry}/{repository}"
        response = self._blob_request("HEAD", registry, repository, path_repo, digest, what)
        discard(response)
        size = content_length(response)
        if size is None:
            raise errors.RegistryError(
                f"{what}: the registry sent no Content-Length",
                hint="the registry does not follow the distribution spec for blob HEAD",
                status=response.status_code,
                url=redact_url(response.url),
            )
        header_digest = response.headers.get("Docker-Content-Digest", "").strip()
        found = header_digest if digests.is_digest(header_digest) else None
        if found is not None and found.split(":", 1)[0] == digest.split(":", 1)[0] and found != digest:
            raise errors.DigestMismatch(
                f"{what}: the registry answered for another blob ({found})",
                hint="the registry is broken or a proxy rewrote the answer",
            )
        accepts = "bytes" in response.headers.get("Accept-Ranges", "").lower()
        return BlobInfo(size=size, digest=found, accepts_ranges=accepts)

    def get_blob(
        self, registry: str, repository: str, digest: str, *, max_bytes: int, expected_size: int | None = None
    ) -> bytes:
        """The whole blob, verified against ``digest`` (and ``expected_size``).

        Reads at most ``max_bytes`` bytes (:class:`LimitExceeded` beyond).  Cost: 1 GET + auth.
        """
        path_repo = _check_repository(repository)
        digests.parse(digest)
        what = f"fetching blob {digest} from {registry}/{repository}"
        if expected_size is not None and expected_size > max_bytes:
            raise errors.LimitExceeded(
                f"{what}: the blob is {expected_size} bytes, more than the limit of {max_bytes} bytes",
                hint="this blob is too large to be read into memory here",
            )
        data = self._fetch(
            what,
            lambda: self._blob_request("GET", registry, repository, path_repo, digest, what),
            lambda r: read_body(r, limit=max_bytes, what=what, settings=self.settings),
        )
        digests.verify(data, digest, what=what, size=expected_size)
        return data

    def get_blob_range(
        self,
        registry: str,
        repository: str,
        digest: str,
        *,
        start: int | None = None,
        end: int | None = None,
        suffix: int | None = None,
    ) -> tuple[bytes, int | None]:
        """Bytes ``start..end`` (inclusive, as in HTTP), ``start..`` (≤ 16 MiB) or the last ``suffix`` bytes.

        Returns ``(data, total blob size from Content-Range, or None)``.  A server that ignores ``Range`` and
        answers 200 is handled when the blob is ≤ 1 MiB (sliced locally, digest verified); otherwise
        :class:`~ociinspect.errors.RangeNotSupported` is raised after reading at most 1 MiB, so callers can
        fall back to streaming.  Cost: 1 GET + auth (+ redirect hops, which keep ``Range``).
        """
        wanted: int | None
        if suffix is not None:
            if start is not None or end is not None or suffix <= 0:
                raise ValueError("pass either suffix > 0 alone, or start (and optionally end)")
            byte_range, wanted = f"bytes=-{suffix}", suffix
        else:
            if start is None or start < 0 or (end is not None and end < start):
                raise ValueError("start must be >= 0 and end (inclusive) >= start")
            wanted = end - start + 1 if end is not None else None
            byte_range = f"bytes={start}-{'' if end is None else end}"
        path_repo = _check_repository(repository)
        digests.parse(digest)
        what = f"reading {byte_range} of blob {digest} from {registry}/{repository}"

        def read(response: Response) -> tuple[bool, bytes, int | None]:
            if response.status_code == 206:
                return (True, *self._partial(response, what=what, start=start, wanted=wanted))
            try:
                whole = read_body(response, limit=RANGE_FALLBACK_LIMIT, what=what, settings=self.settings)
            except errors.LimitExceeded:
                raise errors.RangeNotSupported(
                    f"{what}: the server ignored the Range header (HTTP {response.status_code}) and the blob "
                    f"is larger than {RANGE_FALLBACK_LIMIT} bytes",
                    hint="read the blob as a stream instead",
                    status=response.status_code,
                    url=redact_url(response.url),
                ) from None
            return False, whole, None

        partial, whole, total = self._fetch(
            what,
            lambda: self._blob_request(
                "GET", registry, repository, path_repo, digest, what, headers={"Range": byte_range}
            ),
            read,
        )
        if partial:
            return whole, total
        digests.verify(whole, digest, what=what)
        if suffix is not None:
            return whole[-suffix:], len(whole)
        assert start is not None
        return whole[start : (end + 1 if end is not None else None)], len(whole)

    def _partial(
        self, response: Response, *, what: str, start: int | None, wanted: int | None
    ) -> tuple[bytes, int | None]:
        match = _CONTENT_RANGE_RE.match(response.headers.get("Content-Range", "").strip())
        total = int(match.group(3)) if match and match.group(3) != "*" else None
        if match and start is not None and int(match.group(1)) != start:
            response.close()
            raise errors.RegistryError(
                f"{what}: the server sent another range ({match.group(0)})",
                hint="a proxy or CDN mangled the Range request; read the blob as a stream instead",
                status=206,
                url=redact_url(response.url),
            )
        limit = wanted if wanted is not None else _OPEN_RANGE_LIMIT
        data = read_body(response, limit=limit, what=what, settings=self.settings)
        return data, total

    @contextlib.contextmanager
    def stream_blob(
        self, registry: str, repository: str, digest: str, *, chunk_size: int = 256 << 10, verify: bool = True
    ) -> Iterator[Iterator[bytes]]:
        """Context manager yielding an iterator of chunks (≤ ``chunk_size`` bytes) of the blob.

        256 KiB chunks keep several layers streamed at once within a few MiB (1 MiB chunks cost ~3 MiB of
        peak memory per stream in http.client's and urllib3's copies; measured in docs/benchmarks.md).

        With ``verify``, the digest is computed on the way and a mismatch raises
        :class:`~ociinspect.errors.DigestMismatch` after the last chunk.  A reset raises
        :class:`~ociinspect.errors.ConnectionFailed`, a stall :class:`~ociinspect.errors.Timeout`.
        Cost: 1 GET + auth; memory: one chunk.
        """
        path_repo = _check_repository(repository)
        digests.parse(digest)
        what = f"streaming blob {digest} from {registry}/{repository}"
        response = self._blob_request("GET", registry, repository, path_repo, digest, what)
        try:
            yield self._chunks(response, digest, what=what, chunk_size=chunk_size, verify=verify)
        finally:
            response.close()

    def _chunks(
        self, response: Response, digest: str, *, what: str, chunk_size: int, verify: bool
    ) -> Iterator[bytes]:
        hasher = digests.DigestHasher(digest, what=what) if verify else None
        for chunk in iter_body(response, what=what, settings=self.settings, chunk_size=chunk_size):
            if hasher is not None:
                hasher.update(chunk)
            yield chunk
        if hasher is not None:
            hasher.check()

    def list_tags(
        self, registry: str, repository: str, *, page_size: int | None = None, max_pages: int = 10000
    ) -> list[str]:
        """All tags, following ``Link: <…>; rel="next"`` (relative links allowed).  ``page_size`` is a hint.

        Cost: 1 GET per page + auth; :class:`LimitExceeded` after ``max_pages`` pages.
        """
        path_repo = _check_repository(repository)
        first = f"/v2/{path_repo}/tags/list" + (f"?n={int(page_size)}" if page_size else "")
        what = f"listing tags of {registry}/{repository}"
        tags: list[str] = []
        for doc in self._pages(registry, _scope(repository), first, what=what, max_pages=max_pages):
            tags.extend(_strings(doc.get("tags"), what=what, key="tags"))
        return tags

    def catalog(self, registry: str, *, page_size: int = 1000, max_pages: int = 100000) -> Iterator[str]:
        """Repository names from ``/v2/_catalog``, page by page (lazy).

        Cost: 1 GET per page + auth (scope ``registry:catalog:*``); :class:`LimitExceeded` after
        ``max_pages`` pages.
        """
        first = f"/v2/_catalog?n={int(page_size)}"
        what = f"listing repositories of {registry}"
        for doc in self._pages(registry, "registry:catalog:*", first, what=what, max_pages=max_pages):
            yield from _strings(doc.get("repositories"), what=what, key="repositories")

    def _pages(
        self, registry: str, scope: str, first: str, *, what: str, max_pages: int
    ) -> Iterator[dict[str, Any]]:
        target = first
        seen: set[str] = set()
        for page in range(1, max_pages + 1):
            doing = f"{what} (page {page})"
            response = self._open(registry, scope, "GET", target, what=doing, not_found_code="NAME_UNKNOWN")
            link = response.links.get("next", {}).get("url")
            here = response.url
            yield self._read_json(response, what=doing)
            if not link:
                return
            try:
                target = urljoin(here, link)
            except ValueError:  # e.g. an unclosed "[" in the host
                raise errors.RegistryError(
                    f"{doing}: the registry's next-page link is not a URL",
                    hint="the registry's pagination is broken",
                    url=redact_url(here),
                ) from None
            if target in seen:
                raise errors.RegistryError(
                    f"{doing}: the registry's next-page link loops back to {redact_url(target)}",
                    hint="the registry's pagination is broken",
                    url=redact_url(target),
                )
            seen.add(target)
        raise errors.LimitExceeded(
            f"{what}: more than {max_pages} pages",
            hint="raise max_pages or the page size if this many pages is expected",
        )

    # ------------------------------------------------------------ everyday verbs (issue 12: digest, referrers)

    def manifest_digest(self, registry: str, repository: str, reference: str) -> tuple[str, str | None]:
        """``(digest, media type or None)`` of the manifest ``reference`` names, as cheaply as the registry allows.

        One HEAD (no body) when the registry answers a ``Docker-Content-Digest`` of the reference's algorithm
        (checked against ``reference`` when that is a digest); otherwise one GET, the manifest hashed (≤ 4 MiB).
        The media type is the HEAD's specific ``Content-Type`` (None when generic).  Cost: 1 HEAD + auth, + 1 GET
        only when the registry omits the digest header.
        """
        head = self._head_manifest(registry, repository, reference)
        if head.digest is not None:
            declared = head.media_type
            return head.confirmed_digest(), (None if declared in _GENERIC_TYPES else declared)
        log.debug("%s: no usable Docker-Content-Digest on HEAD; fetching the manifest", head.what)
        fetched = self.get_manifest(registry, repository, reference)
        return fetched.digest, fetched.media_type

    def get_referrers(
        self,
        registry: str,
        repository: str,
        digest: str,
        *,
        artifact_type: str | None = None,
        max_pages: int = 1000,
    ) -> list[dict[str, Any]] | None:
        """The descriptors the OCI 1.1 referrers API lists for ``digest`` (``GET /v2/NAME/referrers/DIGEST``,
        an index; ``Link`` pages followed), or ``None`` when the registry has no referrers API (404, as the
        distribution spec says: fall back to the ``<alg>-<hex>`` tag schema).  ``artifact_type`` is sent as the
        ``artifactType`` filter; registries may ignore it, so callers filter again.  Items are raw JSON objects
        (validated by the caller).  Cost: 1 GET per page + auth; each page read up to 32 MiB.
        """
        path_repo = _check_repository(repository)
        digests.parse(digest)
        query = f"?artifactType={quote(artifact_type, safe='')}" if artifact_type else ""
        first = f"/v2/{path_repo}/referrers/{digest}{query}"
        what = f"listing referrers of {registry}/{repository}@{digest}"
        items: list[dict[str, Any]] = []
        try:
            for doc in self._pages(registry, _scope(repository), first, what=what, max_pages=max_pages):
                manifests = doc.get("manifests")
                if manifests is None:
                    continue
                if not isinstance(manifests, list) or not all(isinstance(m, dict) for m in manifests):
                    raise errors.RegistryError(
                        f"{what}: 'manifests' is not a list of descriptors",
                        hint="the registry does not follow the OCI distribution spec for referrers",
                    )
                items.extend(manifests)
        except errors.RegistryNotFound:
            if items:  # a later page vanished: not "no API"
                raise
            return None
        return items


def _strings(value: object, *, what: str, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise errors.RegistryError(
            f"{what}: {key!r} is not a list of strings", hint="the registry does not follow the OCI spec"
        )
    return list(value)
