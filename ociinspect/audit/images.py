"""What the audit learns about each manifest, once: children, config, layer sizes, base OS, waste figures.

Facts are keyed by digest and written (committed) as they arrive; each digest is fetched once per audit and once
ever, and concurrent workers wait for one another (:class:`Once`) instead of fetching the same digest twice.
Manifest bytes become facts through the loader's one reading (:func:`~ociinspect.image.loader.manifest_facts`)
and images through its one assembly (:func:`~ociinspect.image.loader.assemble_image`), so the audit and every
other command apply the same loading rules.  Every SQL statement is in :mod:`ociinspect.audit.facts`.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Collection, Mapping

from ociinspect.audit.facts import AuditFacts
from ociinspect.audit.source import AuditSource
from ociinspect.content.osdetect import MAX_LAYERS as MAX_OS_LAYERS
from ociinspect.content.osdetect import detect_os
from ociinspect.content.scan import ScanCache, ScanOptions, read_files, scan_image
from ociinspect.errors import (
    DatabaseError,
    OciInspectError,
    RecordedError,
    error_type_name,
    is_transient,
)
from ociinspect.image import sizes
from ociinspect.image.loader import (
    MAX_CONFIG_BYTES,
    ManifestFacts,
    assemble_image,
    manifest_facts,
    parse_config,
)
from ociinspect.image.nesting import IndexChain, is_nesting_error
from ociinspect.image.sizes import SizeFacts
from ociinspect.model import mediatypes as mt
from ociinspect.model.image import Descriptor, Image, ImageConfig, Layer, RawManifest, SizeEstimate
from ociinspect.model.logs import get_logger
from ociinspect.model.osinfo import DISTROLESS_MARKERS, OS_FILES, OsInfo
from ociinspect.model.reference import Reference
from ociinspect.sources.memory import MemorySource

__all__ = ["DIGESTS_IN_MEMORY", "ROOT", "ImageFacts", "Once", "RecentDigests", "Stopped", "scannable"]

log = get_logger(__name__)

ROOT = IndexChain()  # a tag's manifest: no index entered yet


class Stopped(OciInspectError):
    """Internal: the walk is stopping; work in progress gives up without recording anything."""

    def __init__(self) -> None:
        super().__init__("stopped")


def scannable(image: Image) -> bool:
    """Waste-scannable: at least one layer and every layer a tar (compressed or not).  Attestation manifests
    (in-toto statements) and artifacts are listed in the report, never content-scanned."""
    return bool(image.layers) and all(
        mt.is_layer(layer.media_type) and mt.compression_of(layer.media_type) != "unknown"
        for layer in image.layers
    )


def _tar(layer: Layer) -> bool:
    return mt.is_layer(layer.media_type) and mt.compression_of(layer.media_type) != "unknown"


def _osfiles_json(files: Mapping[str, bytes], present: Collection[str]) -> str:
    return json.dumps(
        {"files": {k: v.decode("latin-1") for k, v in files.items()}, "present": sorted(present)}
    )


class RecentDigests:
    """The digests known to be stored, held in memory up to ``capacity`` (two generations of at most half of it:
    when the young one is full it becomes the old one and the previous old one is dropped).  ``complete`` is True
    while nothing was ever dropped or left out, so that a digest missing here is missing from the database too;
    else the caller asks the database.  Memory: ≈ 170 bytes per digest held, at most 1.5 × ``capacity`` digests;
    O(1) per call.
    """

    def __init__(self, preloaded: set[str], capacity: int) -> None:
        self.capacity = max(2, capacity)
        self.complete = len(preloaded) <= self.capacity
        self._young: set[str] = preloaded if self.complete else set()
        self._old: set[str] = set()

    def __contains__(self, digest: str) -> bool:
        return digest in self._young or digest in self._old

    def add(self, digest: str) -> None:
        if len(self._young) >= self.capacity // 2 and len(self._young) + len(self._old) >= self.capacity:
            self._old, self._young = self._young, set()
            self.complete = False
        self._young.add(digest)


#: digests of complete manifests, and of blobs, held in memory by one worker (each): beyond this, the database is
#: asked (one indexed lookup) — memory stays flat however large the registry and the database grow
DIGESTS_IN_MEMORY = 250_000


class _Pending(threading.local):
    """One thread's writes waiting for its next commit (see :meth:`ImageFacts.flush`): statements, ``facts``
    rows (written in one statement), what to note in memory once they are committed, the blob digests they
    store, and the single flights (:class:`Once`) that end with that commit, committed or not."""

    def __init__(self) -> None:
        self.writes: list[Callable[[], None]] = []
        self.facts: list[tuple[str, str]] = []
        self.after: list[Callable[[], None]] = []
        self.blobs: set[str] = set()
        self.release: list[Callable[[], None]] = []


#: base-OS answers remembered per (config OS, bottom layers read), and layers known to hold OS files: beyond this
#: many, each memo starts again (memory stays flat on a registry of distinct bases)
OS_MEMO_SIZE = 4096


class Once:
    """Per-key single flight: the first thread runs the work, the others wait for it (and share its failure).
    ``before_wait`` is called before a thread waits for another (it must not wait while holding flights it
    kept open, see ``keep``).  Cost: one lock made per work run (held by the worker, waited on by the others),
    none when done."""

    def __init__(self, before_wait: Callable[[], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, threading.Lock] = {}
        self._failed: dict[str, OciInspectError] = {}
        self._before_wait = before_wait

    def run(
        self,
        key: str,
        done: Callable[[], bool],
        work: Callable[[], None],
        *,
        keep: Callable[[Callable[[], None]], bool] | None = None,
    ) -> None:
        """Run ``work`` once for ``key`` unless ``done()``.  ``keep(finish)``: after a successful work, True
        when the caller takes ``finish`` (ending the flight, waking the waiters) to call later itself — when
        what the work learnt is committed, so that a waiter finds it done."""
        while True:
            if done():
                return
            with self._lock:
                failed = self._failed.get(key)
                if failed is not None:
                    raise failed
                running = self._running.get(key)
                owner = running is None
                if owner:
                    running = threading.Lock()  # cheaper than an Event; released when the work ends
                    running.acquire()
                    self._running[key] = running
            assert running is not None
            if not owner:
                if self._before_wait is not None:
                    self._before_wait()
                with running:  # wait for the worker
                    pass
                continue

            def finish(running: threading.Lock = running) -> None:
                with self._lock:
                    self._running.pop(key, None)
                running.release()

            try:
                work()
            except OciInspectError as exc:
                if not is_nesting_error(exc):  # a property of the path walked, not of the key
                    with self._lock:
                        self._failed[key] = exc
                finish()
                raise
            except BaseException:
                finish()
                raise
            if keep is None or not keep(finish):
                finish()
            return


@dataclasses.dataclass(frozen=True)
class Depth:
    """How much to learn per image (from :class:`~ociinspect.audit.runs.AuditOptions`)."""

    run_id: int
    deep: bool = False
    detect_os: bool = True
    retry_errors: bool = False
    small_blob: int = 64 * 1024
    scan_options: ScanOptions = dataclasses.field(default_factory=lambda: ScanOptions(workers=1))
    scan_cache: ScanCache | None = None
    size_store: SizeFacts | None = None


class ImageFacts:
    """The facts under each manifest digest, ensured once (thread-safe).  ``facts``: the database."""

    def __init__(self, facts: AuditFacts, depth: Depth) -> None:
        self.facts = facts
        self.depth = depth
        self._once = Once(before_wait=self.flush)
        self._complete = RecentDigests(facts.complete_manifests(DIGESTS_IN_MEMORY), DIGESTS_IN_MEMORY)
        self._blobs = RecentDigests(facts.blob_digests(DIGESTS_IN_MEMORY), DIGESTS_IN_MEMORY)
        self.digest_errors = facts.digest_errors()
        self._facts_memo: dict[str, str] = {}
        self._manifest_memo: dict[str, ManifestFacts] = {}
        self._config_memo: dict[str, ImageConfig] = {}
        self._subtree_done: set[str] = set()  # complete roots already checked (--deep: scanned) this audit
        self._pending = _Pending()
        self._os_memo: dict[tuple[str | None, tuple[str, ...]], OsInfo] = {}
        self._has_osfiles: dict[str, bool] = {}  # osfiles: fact key → the layer holds any OS file

    # ------------------------------------------------------------------------------------------- known

    def is_complete(self, digest: str) -> bool:
        if digest in self._complete:
            return True
        # another worker may have done it; or it was stored before and is not (or no longer) held in memory
        if (self.facts.shared or not self._complete.complete) and self.facts.is_complete(digest):
            self._complete.add(digest)
            return True
        return False

    def has_blob(self, digest: str) -> bool:
        if digest in self._blobs or digest in self._pending.blobs:
            return True
        if (self.facts.shared or not self._blobs.complete) and self.facts.has_blob(digest):
            self._blobs.add(digest)
            return True
        return False

    def get_fact(self, key: str) -> str | None:
        memo = self._facts_memo.get(key)
        if memo is not None:
            return memo
        # this thread's facts, not committed yet (as has_blob sees its pending blobs)
        for pending_key, pending in self._pending.facts:
            if pending_key == key:
                return pending
        value = self.facts.get_fact(key)
        if value is not None and key.startswith("osfiles:"):
            self._facts_memo[key] = value
        return value

    def put_fact(self, key: str, value: str) -> None:
        if key.startswith("osfiles:"):  # base layers are shared by many images: keep their facts at hand
            self._facts_memo[key] = value
        self.facts.put_fact(key, value)

    def flush(self) -> None:
        """Commit this thread's pending writes (one transaction), then note them in memory.  Called before each
        request of the thread (the walker's hook) and at the end of each tag: a fact is committed before the
        next request is sent, as every other write.  Cost: nothing when none is pending."""
        try:
            if self._pending.writes or self._pending.facts:
                with self.facts.transaction():
                    self._write_pending()
            self._noted_pending()
        finally:
            self._release_pending()

    def _write_pending(self) -> None:
        pending = self._pending
        writes, pending.writes = pending.writes, []
        for write in writes:
            write()
        facts, pending.facts = pending.facts, []
        if facts:
            self.facts.put_facts(facts)

    def _noted_pending(self) -> None:
        """After the commit: note what it wrote in memory."""
        pending = self._pending
        after, pending.after = pending.after, []
        pending.blobs.clear()
        for note in after:
            note()

    def _release_pending(self) -> None:
        """After the commit, or its failure (what was not noted is forgotten): end the flights kept open."""
        pending = self._pending
        pending.writes.clear()
        pending.facts.clear()
        pending.after.clear()
        pending.blobs.clear()
        release, pending.release = pending.release, []
        for finish in release:
            finish()

    def _put_blob(self, d: Descriptor, estimate: SizeEstimate, source: str | None = None) -> None:
        self.facts.put_blob(d, estimate, source)
        self._blobs.add(d.digest)

    def record_error(self, digest: str, exc: OciInspectError) -> None:
        """Remember that ``digest`` failed for good (transient errors and stops are not facts)."""
        if is_transient(exc) or isinstance(exc, Stopped | DatabaseError):
            return
        kind = error_type_name(exc)
        self.digest_errors[digest] = (kind, exc.message, self.depth.run_id)
        self.facts.put_digest_error(digest, kind, exc.message, self.depth.run_id)

    def known_error(self, digest: str) -> OciInspectError | None:
        known = self.digest_errors.get(digest)
        if known is None:
            return None
        kind, message, run = known
        if run != self.depth.run_id and self.depth.retry_errors:
            return None
        return RecordedError(
            kind, message
        )  # as first recorded: a re-audit reports the same error (--retry-errors)

    # ---------------------------------------------------------------------------------------- manifests

    def fetched_facts(self, raw: RawManifest) -> ManifestFacts | None:
        """The facts of a manifest just fetched by its tag, to :meth:`put_manifest`; None when it is complete or
        being built.  Cost: CPU (one parse), no query — parse before a transaction, not inside it."""
        if raw.digest in self._manifest_memo or self.is_complete(raw.digest):
            return None
        return manifest_facts(raw, f"manifest {raw.digest}")

    def put_manifest(self, facts: ManifestFacts) -> None:
        """Write one manifest's facts (the insert keeps the first row).  Cost: 1 transaction (joins the caller's)."""
        self.facts.put_manifest(facts)
        self._manifest_memo[facts.digest] = facts  # until complete: _build_manifest needs it next

    def settled(self, digest: str) -> bool:
        """True when a tag pointing at ``digest`` needs nothing more: the manifest is complete, has no recorded
        error and no ``--deep`` pass is due.  Cost: what :meth:`is_complete` costs."""
        return not self.depth.deep and self.known_error(digest) is None and self.is_complete(digest)

    def store_manifest(self, raw: RawManifest) -> ManifestFacts:
        """Parse (the loader's one reading) and write one manifest's facts.  Cost: CPU + 1 transaction."""
        facts = manifest_facts(raw, f"manifest {raw.digest}")
        self.put_manifest(facts)
        return facts

    def stored_manifest(self, digest: str) -> ManifestFacts | None:
        memo = self._manifest_memo.get(digest)
        return memo if memo is not None else self.facts.manifest(digest)

    def ensure_manifest(
        self,
        source: AuditSource,
        digest: str,
        fetched: RawManifest | None = None,
        chain: IndexChain = ROOT,
        then: Callable[[], None] | None = None,
    ) -> bool:
        """Make sure every fact under manifest ``digest`` is in the database (children, config, layers, OS, and
        with ``--deep`` the waste figures); True when this call built them.  ``chain``: the indexes entered on
        the way from the tag (the one nesting rule, :mod:`ociinspect.image.nesting`).  ``then``: a write run in
        the transaction that marks the manifest complete, when this thread builds it (else not run).

        Cost: nothing when complete (database reads with ``--deep`` or under an index); else 1 GET for the
        manifest (unless ``fetched``) plus its missing facts.
        """
        chain.check(digest, f"{source.reference.name}: manifest {digest}")  # before waiting on it (a cycle)
        known = self.known_error(digest)
        if known is not None:
            raise known
        if self.is_complete(digest):
            if chain or self.depth.deep:
                self._known_subtree(source, digest, chain)
            return False

        def work() -> None:
            try:
                self._build_manifest(source, digest, fetched, chain, then)
            except (Stopped, DatabaseError):
                raise
            except OciInspectError as exc:
                self._manifest_memo.pop(digest, None)
                if not is_nesting_error(exc):  # the same index may be fine as a root: not a fact of it
                    self.record_error(digest, exc)
                raise

        self._once.run(f"m:{digest}", lambda: self.is_complete(digest), work)
        return True

    def _known_subtree(self, source: AuditSource, digest: str, chain: IndexChain) -> None:
        """A complete manifest met again: check that its stored index nesting fits under ``chain``, and with
        ``--deep`` waste-scan the images below it never scanned (a database that was audited without
        ``--deep``).  Cost: database reads, plus what :meth:`_deep` costs for images without waste figures."""
        if not chain and digest in self._subtree_done:
            return
        stored = self.stored_manifest(digest)
        if stored is None:
            return
        if stored.kind == "index":
            inner = chain.enter(digest, f"{source.reference.name}: index {digest}")
            for entry in stored.entries:
                self._known_subtree(source, entry.descriptor.digest, inner)
        elif stored.kind == "image" and self.depth.deep and self.get_fact(f"waste:{digest}") is None:
            image = self._image_of(source, stored)
            if scannable(image):
                key = f"waste:{digest}"
                self._once.run(
                    f"w:{digest}", lambda: self.get_fact(key) is not None, lambda: self._deep(source, image)
                )
        if not chain:
            self._subtree_done.add(digest)

    def _build_manifest(
        self,
        source: AuditSource,
        digest: str,
        fetched: RawManifest | None,
        chain: IndexChain,
        then: Callable[[], None] | None = None,
    ) -> None:
        stored = self.stored_manifest(digest)
        if stored is None:
            if fetched is None or fetched.digest != digest:
                fetched = source.manifest(digest)
            stored = self.store_manifest(fetched)
        if stored.kind == "index":
            inner = chain.enter(digest, f"{source.reference.name}: index {digest}")
            for entry in stored.entries:
                self.ensure_manifest(source, entry.descriptor.digest, chain=inner)
            os_fact = None
        else:
            os_fact = self._ensure_image(source, stored)
        # what the image's last reads gave (a small layer's facts), "complete", and the caller's write (the tag
        # is done): one commit
        try:
            if os_fact is not None:
                self._pending.facts.append(os_fact)  # with the layer's facts: one statement
            with self.facts.transaction():
                self._write_pending()
                self.facts.set_complete(digest)
                if then is not None:
                    then()
            self._noted_pending()
        finally:
            self._release_pending()
        self._complete.add(digest)
        self._manifest_memo.pop(digest, None)

    # ------------------------------------------------------------------------------------------- images

    def _config(self, source: AuditSource, d: Descriptor) -> ImageConfig:
        """The image config's facts; cost: nothing when known, else 1 GET of the config blob."""

        def work() -> None:
            data = source.blob(d.digest, size=d.size, max_bytes=MAX_CONFIG_BYTES)
            config = parse_config(data, f"config {d.digest}")
            self.facts.put_config(d, config)
            self._blobs.add(d.digest)
            self._config_memo[d.digest] = config

        def stored() -> ImageConfig | None:  # a config row comes with a blob row: no query for a new digest
            return self.facts.config(d.digest) if self.has_blob(d.digest) else None

        known = self._config_memo.get(d.digest) or stored()
        if known is None:
            self._once.run(
                f"c:{d.digest}",
                lambda: d.digest in self._config_memo or stored() is not None,
                work,
            )
            known = self._config_memo.get(d.digest) or self.facts.config(d.digest)
        assert known is not None
        self._config_memo.pop(d.digest, None)  # needed once per image; the database has it
        return ImageConfig(
            os=known.os,
            architecture=known.architecture,
            variant=known.variant,
            created=known.created,
            diff_ids=known.diff_ids,
        )  # the facts the database keeps: a config read now and one read back give the same image

    def _image_of(self, source: AuditSource, manifest: ManifestFacts) -> Image:
        """The image (config facts and layers, sizes not known here) of a stored manifest, assembled by the
        loader; its layers are remembered by ``source``.  Cost: nothing when its config is known, else 1 GET."""
        assert manifest.config is not None
        config: ImageConfig | None = None
        if manifest.kind == "image":
            config = self._config(source, manifest.config)
        elif not self.has_blob(manifest.config.digest):
            self._put_blob(manifest.config, SizeEstimate(None, "unknown", "artifact config"), "config")
        unknown = [SizeEstimate(None, "unknown")] * len(manifest.layers)
        image = assemble_image(f"{source.reference.name}@{manifest.digest}", manifest, config, unknown)
        for layer in image.layers:
            source.remember(layer)
        return image

    def _ensure_image(self, source: AuditSource, manifest: ManifestFacts) -> tuple[str, str] | None:
        """Every fact of one image but the ``os:`` fact, which is returned (key, value) for the caller to write
        with the image's completion (one commit); None when there is none to write."""
        image = self._image_of(source, manifest)
        digest = manifest.digest
        os_fact = None
        # the os: fact is written with the image's completion, so an image being built has none (no query; the
        # insert keeps the first value should an older version have written one)
        if manifest.kind == "image" and self.depth.detect_os:
            os_fact = (f"os:{digest}", json.dumps(self._detect_os(source, image).to_json()))
        for layer in image.layers:
            self._ensure_layer(source, layer)
        if (
            manifest.kind == "image"
            and self.depth.deep
            and scannable(image)  # attestations (in-toto statements) and artifacts: listed, not scanned
            and self.get_fact(f"waste:{digest}") is None
        ):
            self._deep(source, image)
        return os_fact

    def facts_from_small_blob(self, reference: Reference, layer: Layer, data: bytes) -> None:
        """Every fact one small layer gives (uncompressed size; base-OS files when it is a tar), written in one
        transaction right after the one request that read it.  Cost: CPU only."""
        # verify=False: the registry client verified these bytes against the digest as they arrived
        mem = MemorySource({layer.digest: data}, reference=reference, verify=False)
        try:
            estimate = sizes.estimate(
                mem, layer.descriptor, diff_id=layer.diff_id, mode="cheap", store=self.depth.size_store
            )
        except OciInspectError as exc:
            estimate = SizeEstimate(None, "unknown", f"unreadable: {exc.message}")
        osfiles = None
        if self.depth.detect_os and _tar(layer):
            try:
                files, present = read_files(mem, layer, OS_FILES, markers=DISTROLESS_MARKERS)
                osfiles = _osfiles_json(files, present)
            except OciInspectError as exc:
                log.info("base-OS files of %s: %s", layer.digest, exc)
        # written with this thread's next commit, before its next request (:meth:`flush`); in the common case
        # that is the image's completion: one transaction instead of two
        pending = self._pending
        if not self.has_blob(layer.digest):
            pending.writes.append(lambda: self.facts.put_blob(layer.descriptor, estimate, None))
            pending.after.append(lambda: self._blobs.add(layer.digest))
            pending.blobs.add(layer.digest)
        if osfiles is not None:
            key, value = f"osfiles:{layer.digest}", osfiles
            pending.facts.append((key, value))
            pending.after.append(lambda: self._facts_memo.__setitem__(key, value))

    def _osfiles(self, source: AuditSource, layer: Layer) -> bool:
        """Make sure the base-OS files of ``layer`` are known (single flight per layer); True when it has any.

        Cost: nothing when known; else a partial stream of the layer (a whole read when it is small)."""
        key = f"osfiles:{layer.digest}"

        def work() -> None:
            files, present = read_files(source, layer, OS_FILES, markers=DISTROLESS_MARKERS)
            self.put_fact(key, _osfiles_json(files, present))

        known = self._has_osfiles.get(key)
        if known is not None:
            return known
        if self._read_whole(layer):
            # one flight reads a small layer for its size and its OS files at once: another thread reading it for
            # its size is waited for (its facts committed), not raced with a second GET of the same blob
            self._ensure_layer(source, layer)
        self._once.run(key, lambda: self.get_fact(key) is not None, work)
        doc = json.loads(self.get_fact(key) or "{}")
        found = bool(doc.get("files") or doc.get("present"))
        if key in self._facts_memo:  # committed and held: true for good (facts are immutable)
            if len(self._has_osfiles) >= OS_MEMO_SIZE:
                self._has_osfiles.clear()
            self._has_osfiles[key] = found
        return found

    def _detect_os(self, source: AuditSource, image: Image) -> OsInfo:
        """The image's base OS, as :func:`ociinspect.content.osdetect.detect_os` finds it, with each layer read at
        most once per audit even when many images share it (their OS files are facts of the layer), and the
        answer remembered per config OS and bottom layers read (many images on one base: one detection)."""
        if image.config and image.config.os == "windows":
            return detect_os(source, image)
        cache = (self.get_fact, self.put_fact)
        read: list[str] = []
        for i, layer in enumerate(image.layers[:MAX_OS_LAYERS]):
            if not _tar(layer):
                return detect_os(source, dataclasses.replace(image, layers=image.layers[:i]))
            try:
                read.append(layer.digest)
                if self._osfiles(source, layer):
                    break
            except Stopped:
                raise
            except OciInspectError as exc:
                if is_transient(exc):
                    raise
                if i == 0:
                    return OsInfo(None, None, None, "static", f"layer 0 unreadable ({exc.message})", None)
                return detect_os(source, dataclasses.replace(image, layers=image.layers[:i]), cache=cache)
        # detect_os reads the bottom layers up to the first with OS files (all cached now): its answer is a
        # function of their facts (immutable, keyed by digest) and of the config's OS
        key = (image.config.os if image.config else None, tuple(read))
        memo = self._os_memo.get(key)
        if memo is not None:
            return memo
        info = detect_os(source, image, cache=cache)  # every layer it reads is cached
        if len(self._os_memo) >= OS_MEMO_SIZE:
            self._os_memo.clear()
        self._os_memo[key] = info
        return info

    def _read_whole(self, layer: Layer) -> bool:
        """True when ``layer``'s facts come from reading it whole (a small gzip or zstd layer)."""
        compressed = mt.is_layer(layer.media_type) and mt.compression_of(layer.media_type) in ("gzip", "zstd")
        return compressed and layer.size <= self.depth.small_blob

    def _ensure_layer(self, source: AuditSource, layer: Layer) -> None:
        def work() -> None:
            if self._read_whole(layer):
                source.blob_range(layer.digest, 0, 0)  # reads it whole: facts_from_small_blob stores them
                if self.has_blob(layer.digest):
                    return
            estimate = sizes.estimate(
                source, layer.descriptor, diff_id=layer.diff_id, mode="cheap", store=self.depth.size_store
            )
            self._put_blob(layer.descriptor, estimate)

        def keep(finish: Callable[[], None]) -> bool:  # its facts are pending: others wait for their commit
            if layer.digest not in self._pending.blobs:
                return False
            self._pending.release.append(finish)
            return True

        self._once.run(f"b:{layer.digest}", lambda: self.has_blob(layer.digest), work, keep=keep)

    def _deep(self, source: AuditSource, image: Image) -> None:
        from ociinspect.analyzers.waste import analyze

        scans = scan_image(source, image, self.depth.scan_options, cache=self.depth.scan_cache)
        report = analyze([s.entries for s in scans], hashed=all(s.hashed for s in scans))
        dive = report.dive
        self.put_fact(
            f"waste:{image.digest}",
            json.dumps(
                {
                    "size_bytes": dive.size_bytes,
                    "wasted_bytes": dive.wasted_bytes,
                    "efficiency": dive.efficiency,
                    "user_wasted_ratio": dive.user_wasted_ratio,
                    "whiteout_deleted_bytes": report.whiteout_deleted_bytes,
                    "overwritten_bytes": report.overwritten_bytes,
                }
            ),
        )
