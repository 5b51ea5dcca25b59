"""The library's front door: open any reference and load images, one or many at once.

A :class:`Session` owns one thread-safe registry client (created on first use, so local-only work never imports
``requests``), opens the right :class:`~ociinspect.sources.base.Source` for each reference, and runs several
references concurrently.  Errors stay typed: :meth:`Session.load_many` returns them beside the results.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from ociinspect.errors import OciInspectError
from ociinspect.image.loader import LoadOptions, load, load_all_platforms
from ociinspect.model.image import Image
from ociinspect.model.osinfo import OsInfo
from ociinspect.model.reference import Reference, parse_reference
from ociinspect.sources.base import Source

if TYPE_CHECKING:
    from ociinspect.content.osdetect import Cache
    from ociinspect.registry import CredentialResolver, RegistryClient, RegistrySettings

__all__ = ["LoadResult", "Session"]


@dataclasses.dataclass(frozen=True, slots=True)
class LoadResult:
    """The outcome for one reference: its images (one per platform) or the error that stopped it."""

    reference: str
    images: tuple[Image, ...] = ()
    error: OciInspectError | None = None
    os: tuple[OsInfo, ...] = ()  # aligned with ``images`` when the base OS was asked for


class Session:
    """Shared state for reading images: registry settings, credentials and the (lazy) registry client.

    ``deadline`` (seconds, from now) bounds everything this session does over the network, retries, token
    requests and downloads included (:class:`~ociinspect.errors.DeadlineExceeded` once passed); it replaces any
    deadline in ``settings``.
    """

    def __init__(
        self,
        settings: RegistrySettings | None = None,
        credentials: CredentialResolver | None = None,
        *,
        deadline: float | None = None,
    ) -> None:
        if deadline is not None:
            from ociinspect.registry import Deadline, RegistrySettings

            settings = dataclasses.replace(settings or RegistrySettings(), deadline=Deadline.after(deadline))
        self._settings = settings
        self._credentials = credentials
        self._client: RegistryClient | None = None
        self._lock = threading.Lock()
        self.os_cache: Cache | None = None  # (get, put) by key; set by callers that have a store

    @property
    def client(self) -> RegistryClient:
        with self._lock:
            if self._client is None:
                from ociinspect.registry import RegistryClient

                self._client = RegistryClient(self._settings, self._credentials)
            return self._client

    def open(self, reference: str | Reference) -> Source:
        """Open a source for ``reference`` (cost: none for registries; archives index their tar headers)."""
        ref = parse_reference(reference) if isinstance(reference, str) else reference
        if ref.is_registry:
            from ociinspect.sources.registry import RegistrySource

            return RegistrySource(ref, self.client)
        from ociinspect.sources.local import open_local

        return open_local(ref)

    @contextlib.contextmanager
    def source(self, reference: str | Reference) -> Iterator[Source]:
        src = self.open(reference)
        try:
            yield src
        finally:
            src.close()

    def load(self, reference: str | Reference, options: LoadOptions | None = None) -> Image:
        """Load one image (one platform).  Cost: see :func:`ociinspect.image.loader.load`."""
        with self.source(reference) as src:
            try:
                return load(src, options)
            except OciInspectError as exc:
                raise exc.with_context(f"reading {src.reference}") from None

    def load_many(
        self,
        references: Sequence[str],
        options: LoadOptions | None = None,
        *,
        all_platforms: bool = False,
        with_os: bool = False,
        workers: int = 8,
    ) -> list[LoadResult]:
        """Load several references concurrently; results come back in input order, errors included.

        ``with_os`` also finds each image's base OS (:func:`ociinspect.content.osdetect.detect_os`: a partial read of the
        base layer, cached by layer digest).
        """

        def one(text: str) -> LoadResult:
            try:
                with self.source(text) as src:
                    try:
                        if all_platforms:
                            images = tuple(load_all_platforms(src, options))
                        else:
                            images = (load(src, options),)
                        os_infos = tuple(self._detect_os(src, img) for img in images) if with_os else ()
                    except OciInspectError as exc:
                        raise exc.with_context(f"reading {src.reference}") from None
                return LoadResult(text, images, os=os_infos)
            except OciInspectError as exc:
                return LoadResult(text, error=exc)

        if len(references) == 1:
            return [one(references[0])]
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(workers, len(references)))) as pool:
            return list(pool.map(one, references))

    def _detect_os(self, source: Source, image: Image) -> OsInfo:
        from ociinspect.content.osdetect import detect_os

        return detect_os(source, image, cache=self.os_cache)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
