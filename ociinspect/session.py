"""The library's front door: open any reference, load images (one or many at once) and scan their layers.

A :class:`Session` owns one thread-safe registry client (created on first use, so local-only work never imports
``requests``), opens the right :class:`~ociinspect.sources.base.Source` for each reference, and runs several
references concurrently.  Errors stay typed: :meth:`Session.load_many` returns them beside the results.

For the commands (and library callers doing the same work): :class:`ReadContext` (a session and its load
options), :func:`each_image` / :func:`scan_reference` / :func:`scan_loaded` (layer indexes through the cache,
progress as a callback: none by default), and :func:`exit_code`, the one exit-code rule of every command.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Self, TypeVar

from ociinspect import threads
from ociinspect.errors import ExitCode, OciInspectError, UsageError
from ociinspect.image.loader import LoadOptions, load, load_all_platforms
from ociinspect.model.image import Image
from ociinspect.model.record import record
from ociinspect.model.reference import Reference, parse_reference
from ociinspect.sources.base import Source

# the layer-index and OS models too: types only here (the scanner and the OS reader import them)
if TYPE_CHECKING:
    from ociinspect.analyzers.diff import ImageDiff
    from ociinspect.content.osdetect import Cache
    from ociinspect.content.scan import ScanOptions
    from ociinspect.model.entries import LayerScan
    from ociinspect.model.osinfo import OsInfo
    from ociinspect.registry import CredentialResolver, Credentials, RegistryClient, RegistrySettings
    from ociinspect.sources.registry import DigestReads
    from ociinspect.store import Store

__all__ = [
    "DiffRead",
    "LoadResult",
    "Progress",
    "ReadContext",
    "ScanSettings",
    "Session",
    "diff_loaded",
    "diff_references",
    "each_image",
    "exit_code",
    "scan_layers",
    "scan_loaded",
    "scan_reference",
]

_T = TypeVar("_T")

#: A progress reporter: called with the bytes about to be read and a label (``"scanning 4 layers"``), it returns a
#: context manager yielding the callback that receives each chunk's byte count (or ``None``: no progress shown).
#: The library shows none; the command line passes a progress bar on a terminal's stderr.
Progress = Callable[[int, str], AbstractContextManager[Callable[[int], None] | None]]


@record
class LoadResult:
    """The outcome for one reference: its images (one per platform) or the error that stopped it."""

    reference: str
    images: tuple[Image, ...] = ()
    error: OciInspectError | None = None
    os: tuple[OsInfo, ...] = ()  # aligned with ``images`` when the base OS was asked for


class Session:
    """Shared state for reading images: registry settings, credentials and the (lazy) registry client.

    Either pass the lower-level ``settings`` (:class:`~ociinspect.registry.RegistrySettings`) and ``credentials``
    (:class:`~ociinspect.registry.CredentialResolver`), or the keyword conveniences that build them, as the
    command line's flags do: ``plain_http``, ``insecure`` (skip TLS verification), ``ca_file`` (an extra PEM
    bundle), ``authfile`` (a containers-auth.json / docker config.json, read before the usual files: skopeo's
    ``--authfile``), ``username`` with ``password`` (a password or token; sent only to ``registry`` when given,
    else to the first registry this session talks to — another registry is then a
    :class:`~ociinspect.errors.UsageError`, never sent the password).  Mixing both styles is a ``UsageError``.
    The password is kept only inside the credential resolver: never logged, never in a ``repr``.

    ``deadline`` (seconds, from now) bounds everything this session does over the network, retries, token
    requests and downloads included (:class:`~ociinspect.errors.DeadlineExceeded` once passed); it replaces any
    deadline in ``settings``.  Cost of construction: none (an ``authfile`` is checked to exist, not read).

    Within a session, what a registry served under a digest (manifests by digest, configs, the few bytes read
    for layer sizes) is remembered by ``(registry, repository, digest)`` and not asked again — bounded to
    32 MiB, thread-safe, concurrent asks for the same digest sharing one request
    (:class:`~ociinspect.sources.registry.DigestReads`, :attr:`reads`): 50 tags of one image cost 50 manifest
    requests plus one read of each distinct blob.  Tags are always asked.
    """

    def __init__(
        self,
        settings: RegistrySettings | None = None,
        credentials: CredentialResolver | None = None,
        *,
        deadline: float | None = None,
        username: str | None = None,
        password: str | None = None,
        registry: str | None = None,
        authfile: str | Path | None = None,
        insecure: bool = False,
        ca_file: str | Path | None = None,
        plain_http: bool = False,
    ) -> None:
        if insecure or ca_file is not None or plain_http:
            if settings is not None:
                raise UsageError(
                    "Session: give settings= or insecure=/ca_file=/plain_http=, not both",
                    hint="put the TLS choices in settings.default (HostSettings), or drop settings=",
                )
            settings = _host_settings(insecure=insecure, ca_file=ca_file, plain_http=plain_http)
        if username is not None or password is not None or authfile is not None or registry is not None:
            if credentials is not None:
                raise UsageError(
                    "Session: give credentials= or username=/password=/authfile=, not both",
                    hint="build the CredentialResolver with explicit= yourself, or drop credentials=",
                )
            credentials = _credentials(username, password, registry, authfile)
        if deadline is not None:
            from ociinspect.registry import Deadline, RegistrySettings

            settings = dataclasses.replace(settings or RegistrySettings(), deadline=Deadline.after(deadline))
        self._settings = settings
        self._credentials = credentials
        self._username = username
        self._client: RegistryClient | None = None
        self._reads: DigestReads | None = None
        self._lock = threading.Lock()
        self.os_cache: Cache | None = None  # (get, put) by key; set by callers that have a store

    def __repr__(self) -> str:
        default = self._settings.default if self._settings is not None else None
        parts = [f"username={self._username!r}"] if self._username is not None else []
        if default is not None:
            parts += [f"plain_http={default.plain_http}", f"insecure={default.insecure}"]
        return f"{type(self).__name__}({', '.join(parts)})"  # never the password

    @property
    def client(self) -> RegistryClient:
        with self._lock:
            if self._client is None:
                from ociinspect.registry import RegistryClient

                self._client = RegistryClient(self._settings, self._credentials)
            return self._client

    @property
    def reads(self) -> DigestReads:
        """This session's memory of reads named by a digest (created on first use)."""
        with self._lock:
            if self._reads is None:
                from ociinspect.sources.registry import DigestReads

                self._reads = DigestReads()
            return self._reads

    def open(self, reference: str | Reference) -> Source:
        """Open a source for ``reference`` (cost: none for registries; archives index their tar headers)."""
        ref = parse_reference(reference) if not isinstance(reference, Reference) else reference
        if ref.is_registry:
            from ociinspect.sources.registry import RegistrySource

            return RegistrySource(ref, self.client, self.reads)
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
        on_chosen: Callable[[Reference, str], None] | None = None,
    ) -> list[LoadResult]:
        """Load several references concurrently; results come back in input order, errors included.

        ``with_os`` also finds each image's base OS (:func:`ociinspect.content.osdetect.detect_os`: a partial read of the
        base layer, cached by layer digest).  ``on_chosen`` is called in the worker thread with a reference's
        source reference and its subject digest (the top index's, else the manifest's) as soon as its manifest
        is chosen — before its config and layers are read (:func:`~ociinspect.image.loader.load`) — so a caller
        can start its own requests about the image meanwhile (``inspect`` asks its referrers there); it must not
        raise.  Cost: none of its own.
        """

        def one(text: str) -> LoadResult:
            try:
                with self.source(text) as src:
                    chosen = None if on_chosen is None else functools.partial(on_chosen, src.reference)
                    try:
                        if all_platforms:
                            images = tuple(load_all_platforms(src, options, on_chosen=chosen))
                        else:
                            images = (load(src, options, on_chosen=chosen),)
                        os_infos = tuple(self._detect_os(src, img) for img in images) if with_os else ()
                    except OciInspectError as exc:
                        raise exc.with_context(f"reading {src.reference}") from None
                return LoadResult(text, images, os=os_infos)
            except OciInspectError as exc:
                return LoadResult(text, error=exc)

        if len(references) == 1:
            return [one(references[0])]
        with threads.Pool(max(1, min(workers, len(references)))) as pool:
            return list(pool.map(one, references))

    def _detect_os(self, source: Source, image: Image) -> OsInfo:
        """The base OS of ``image``; from a registry, once per session for the same bottom layers in the same
        repository (what :func:`~ociinspect.content.osdetect.detect_os` reads: the config's OS and up to
        ``MAX_LAYERS`` bottom layers), so 50 tags of one image read and parse its OS files once."""
        from ociinspect.content.osdetect import MAX_LAYERS, detect_os

        remember = getattr(source, "remember_derived", None)
        if remember is None:
            return detect_os(source, image, cache=self.os_cache)
        key = (
            "os",
            image.is_artifact,
            image.config.os if image.config else None,
            tuple(layer.digest for layer in image.layers[:MAX_LAYERS]),
        )
        info: OsInfo = remember(key, lambda: detect_os(source, image, cache=self.os_cache))
        return info

    def close(self) -> None:
        with self._lock:
            self._reads = None
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _host_settings(*, insecure: bool, ca_file: str | Path | None, plain_http: bool) -> RegistrySettings:
    """The CLI's ``--insecure``/``--ca-file``/``--plain-http`` as settings for every host.  Cost: one stat."""
    from ociinspect.registry import HostSettings, RegistrySettings

    if ca_file is not None and not Path(ca_file).is_file():
        raise UsageError(f"Session: ca_file {str(ca_file)!r} is not a file", hint="give a PEM bundle's path")
    host = HostSettings(
        plain_http=plain_http, insecure=insecure, ca_file=None if ca_file is None else str(ca_file)
    )
    return RegistrySettings(default=host)


def _credentials(
    username: str | None, password: str | None, registry: str | None, authfile: str | Path | None
) -> CredentialResolver:
    """The CLI's ``--username``/``--password-stdin``/``--authfile`` as a resolver.  Cost: one stat."""
    import os

    from ociinspect.registry import CredentialResolver, Credentials

    if (username is None) != (password is None):
        raise UsageError(
            "Session: username= and password= go together",
            hint="give both, or neither to use docker/podman logins (or authfile=)",
        )
    if registry is not None and username is None:
        raise UsageError("Session: registry= names where username=/password= go", hint="give them too")
    env: dict[str, str] | None = None
    if authfile is not None:
        if not Path(authfile).is_file():
            raise UsageError(
                f"Session: authfile {str(authfile)!r} is not a file",
                hint="give the path of an auth.json (podman login / skopeo login write one)",
            )
        env = {**os.environ, "REGISTRY_AUTH_FILE": str(authfile)}
    if username is None:
        return CredentialResolver(env=env)
    explicit = Credentials(username=username, password=password)
    return _one_registry(explicit, registry, env)


def _one_registry(
    explicit: Credentials, registry: str | None, env: dict[str, str] | None
) -> CredentialResolver:
    """A resolver giving ``explicit`` to ``registry`` (or the first registry asked about) and refusing to give it
    to any other: a second registry is a :class:`UsageError`.  Thread-safe.  (Defined here, not at import:
    ``ociinspect.registry`` imports ``requests``, which local-only work never needs.)"""
    from ociinspect.registry import CredentialResolver
    from ociinspect.registry.credentials import registry_key

    class OneRegistry(CredentialResolver):
        def __init__(self) -> None:
            super().__init__(env=env)
            self._bound = registry_key(registry) if registry is not None else None
            self._bind_lock = threading.Lock()

        def for_registry(self, name: str) -> Credentials | None:
            key = registry_key(name)
            with self._bind_lock:
                if self._bound is None:
                    self._bound = key
                bound = self._bound
            if key == bound:
                return explicit
            raise UsageError(
                f"Session: username= and password= were given for {bound}, not for {key}",
                hint="use one Session per registry (registry=HOST names it), or an authfile= for several",
            )

    return OneRegistry()


class ReadContext:
    """What every image-reading command needs: a :class:`Session`, its :class:`LoadOptions`, and whether every
    platform of an index is read (``all_platforms``)."""

    def __init__(self, session: Session, options: LoadOptions, all_platforms: bool) -> None:
        self.session = session
        self.options = options
        self.all_platforms = all_platforms


@record
class ScanSettings:
    """How layers are scanned (:class:`~ociinspect.content.scan.ScanOptions`) and where the layer-index cache
    lives (``None``: no cache)."""

    options: ScanOptions
    cache_dir: Path | None

    def store(self) -> Store | None:
        """The cache, opened (cost: none until first used); ``None`` without a cache directory."""
        from ociinspect.store import Store

        return Store(self.cache_dir) if self.cache_dir is not None else None


def _container_images(images: Iterable[Image], what: str) -> list[Image]:
    out = []
    for image in images:
        if image.is_artifact:
            raise UsageError(
                f"{image.digest} is an artifact ({image.artifact_type}), not a container image",
                hint=f"{what} read container images only",
            )
        out.append(image)
    return out


def each_image(
    read: ReadContext,
    reference: str,
    settings: ScanSettings,
    work: Callable[[Source, Image, Store | None], _T],
    *,
    what: str = "waste and files",
) -> list[_T]:
    """Load the image(s) ``reference`` names (one, or every platform) and call ``work`` on each, with the open
    source and the store (``None`` without a cache).  An OCI artifact is a :class:`UsageError` (``what`` names
    the commands in its hint).  Errors carry the reference.  Cost: the manifest and config reads, plus what
    ``work`` does."""
    options = dataclasses.replace(read.options, sizes="none")
    store = settings.store()
    try:
        with read.session.source(reference) as src:
            try:
                images = load_all_platforms(src, options) if read.all_platforms else [load(src, options)]
                return [work(src, image, store) for image in _container_images(images, what)]
            except OciInspectError as exc:
                raise exc.with_context(f"reading {src.reference}") from None
    finally:
        if store is not None:
            store.close()


def scan_layers(
    source: Source,
    image: Image,
    settings: ScanSettings,
    store: Store | None,
    progress: Progress | None = None,
) -> list[LayerScan]:
    """Index every layer of ``image`` through the cache.  Cost: per layer nothing (cached), two Range reads
    (eStargz) or one streamed read of the blob; ``progress`` hears the compressed bytes read."""
    from ociinspect.content.scan import scan_image  # not imported by commands that never scan

    if progress is None:
        return scan_image(source, image, settings.options, cache=store)
    total = sum(layer.size for layer in image.layers)
    with progress(total, f"scanning {len(image.layers)} layers") as update:
        return scan_image(source, image, settings.options, cache=store, progress=update)


def scan_reference(
    read: ReadContext, reference: str, settings: ScanSettings, progress: Progress | None = None
) -> list[tuple[Image, list[LayerScan]]]:
    """Every image ``reference`` names with its layer indexes (see :func:`each_image`, :func:`scan_layers`)."""
    return each_image(
        read,
        reference,
        settings,
        lambda src, image, store: (image, scan_layers(src, image, settings, store, progress)),
    )


def scan_loaded(
    read: ReadContext,
    reference: str,
    images: Sequence[Image],
    settings: ScanSettings,
    progress: Progress | None = None,
) -> list[list[LayerScan]]:
    """The layer indexes of ``images``, already loaded from ``reference``: its source is opened once more, but
    no manifest or config is read again.  Cost: :func:`scan_layers` per image."""
    store = settings.store()
    try:
        with read.session.source(reference) as src:
            try:
                return [scan_layers(src, image, settings, store, progress) for image in images]
            except OciInspectError as exc:
                raise exc.with_context(f"reading {src.reference}") from None
    finally:
        if store is not None:
            store.close()


def exit_code(
    errors: Iterable[OciInspectError | ExitCode],
    *,
    read: int,
    failed: bool = False,
    undecidable: bool = False,
    gate: bool = False,
) -> ExitCode:
    """The one exit-code rule of every command (``docs/cli.md``, "Exit codes"); the first line that applies wins:

    1. a policy rule failed (``failed``: ``check``; ``--warn-only`` passes ``False``) → 1, even when an input
       could not be read: an unreadable ref never hides a failed rule;
    2. an input could not be read (``errors``) and nothing else was (``read == 0``), or the command is a gate
       (``gate``: ``check`` cannot pass what it could not read) → the error's own code, ``2`` (bad usage) before
       the others, else the largest (3 unreadable, 4 partial);
    3. some inputs were read and others not → 4;
    4. everything was read but a figure the command needs is unknown (``undecidable``: a size rule of ``check``,
       an image without VM figures in ``vm``) → 4;
    5. otherwise 0.

    ``read`` counts the inputs that were read (images, refs or checks).  Cost: one pass over ``errors``.
    """
    codes = [ExitCode(int(e.exit_code) if isinstance(e, OciInspectError) else int(e)) for e in errors]
    if failed:
        return ExitCode.CHECK_FAILED
    if codes and (gate or read == 0):
        return ExitCode.USAGE if ExitCode.USAGE in codes else max(codes)
    if codes or undecidable:
        return ExitCode.PARTIAL
    return ExitCode.OK


# ------------------------------------------------------------------------------------------------ diff


@record
class DiffRead:
    """What a diff read: layers streamed (and their compressed bytes), layers taken from the cache or given
    already scanned, shared layers never read."""

    layers_streamed: int
    bytes_streamed: int
    layers_cached: int
    layers_skipped: int

    def to_json(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def _diff_side(read: ReadContext, src: Source, label: str) -> Image:
    try:
        image = load(src, read.options)
    except OciInspectError as exc:
        raise exc.with_context(f"reading {label} {src.reference}") from None
    if image.is_artifact:
        raise UsageError(
            f"{label} {image.reference} is an artifact ({image.artifact_type}), not a container image",
            hint="diff compares container images",
        )
    return image


def diff_references(
    read: ReadContext, ref_a: str, ref_b: str, settings: ScanSettings, *, depth: int = 3
) -> tuple[ImageDiff, DiffRead]:
    """Load both images (``read.options``: one platform each) and diff them, reading only what the result
    depends on (see :func:`diff_loaded`).

    Cost: the two manifests and configs (plus the loader's small Range reads for cheap sizes), then what
    :func:`diff_loaded` reads; each source is opened once.  Errors name A or B."""
    with read.session.source(ref_a) as src_a, read.session.source(ref_b) as src_b:
        a, b = _diff_side(read, src_a, "A"), _diff_side(read, src_b, "B")
        return _diff_sources(src_a, a, src_b, b, settings, depth, {}, ("A", "B"))


def diff_loaded(
    read: ReadContext,
    a: tuple[str, Image],
    b: tuple[str, Image],
    settings: ScanSettings,
    *,
    depth: int = 3,
    scanned: Sequence[LayerScan] = (),
    labels: tuple[str, str] = ("A", "B"),
) -> tuple[ImageDiff, DiffRead]:
    """Diff two images already loaded (each with the reference it came from), reading only what the result
    depends on (:func:`ociinspect.analyzers.diff.layers_to_read` / ``prefix_needed``).

    Cost: no manifest or config is read again (each source is opened once more: nothing for a registry, a tar
    header index for an archive); the layers above the shared prefix of each image, each streamed once unless
    the layer cache holds its index or ``scanned`` (layer scans the caller already has, matched by blob digest)
    does; the shared prefix only when ``prefix_needed`` says so (once, from A, same order).  Errors name the
    side (``labels``) and its image."""
    (ref_a, image_a), (ref_b, image_b) = a, b
    known = {s.digest: s for s in scanned}
    with read.session.source(ref_a) as src_a, read.session.source(ref_b) as src_b:
        return _diff_sources(src_a, image_a, src_b, image_b, settings, depth, known, labels)


def _diff_sources(
    src_a: Source,
    image_a: Image,
    src_b: Source,
    image_b: Image,
    settings: ScanSettings,
    depth: int,
    known: dict[str, LayerScan],
    labels: tuple[str, str],
) -> tuple[ImageDiff, DiffRead]:
    from ociinspect.analyzers.diff import diff_images, layers_to_read, prefix_needed
    from ociinspect.content.scan import scan_image

    store = settings.store()
    read_now: list[LayerScan] = []
    reused = 0
    plan = layers_to_read(image_a, image_b)

    def scan(src: Source, image: Image, indexes: tuple[int, ...], label: str) -> list[LayerScan]:
        nonlocal reused
        wanted = tuple(i for i in indexes if image.layers[i].digest not in known)
        try:
            got = scan_image(src, image, settings.options, cache=store, layers=wanted) if wanted else []
        except OciInspectError as exc:
            raise exc.with_context(f"reading {label} {image.reference}") from None
        read_now.extend(got)
        reused += len(indexes) - len(wanted)
        by_index = dict(zip(wanted, got, strict=True))
        return [by_index[i] if i in by_index else known[image.layers[i].digest] for i in indexes]

    try:
        sa = scan(src_a, image_a, plan.only_a, labels[0])
        sb = scan(src_b, image_b, plan.only_b, labels[1])
        prefix = (
            scan(src_a, image_a, plan.prefix, labels[0]) if plan.shared and prefix_needed(sa, sb) else None
        )
        result = diff_images(image_a, image_b, sa, sb, prefix, depth=depth)
    finally:
        if store is not None:
            store.close()
    sizes = {x.digest: x.size for x in (*image_a.layers, *image_b.layers)}
    streamed = [s for s in read_now if not s.from_cache]
    return result, DiffRead(
        layers_streamed=len(streamed),
        bytes_streamed=sum(sizes.get(s.digest, 0) for s in streamed if s.index_source == "stream"),
        layers_cached=len(read_now) - len(streamed) + reused,
        layers_skipped=0 if result.prefix_read else plan.shared,
    )
