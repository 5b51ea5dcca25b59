"""Walk a registry (catalog → tags → manifests → configs and layer sizes) into the audit database.

Costs, per audit (requests to the registry; "+ auth" as in :mod:`ociinspect.registry.client`):

* repositories: ``/v2/_catalog`` pages (1 per 1000 names), or none with ``--repo``/``--repos-from``;
* tags: 1 ``tags/list`` GET per repository (more when the registry paginates);
* a tag never seen before: 1 manifest GET by tag.  A tag seen by an earlier audit of this registry: 1 manifest
  HEAD; nothing more when its digest is already known (re-audit of an unchanged registry ≈ 1 HEAD per tag);
* a manifest digest not yet in the database: 1 GET (index children, by digest);
* an image config not yet in the database: 1 GET;
* a layer not yet in the database: 1 Range read of its gzip trailer or zstd header; a layer of at most
  :data:`SMALL_BLOB` bytes is read whole instead (same one request), and every fact it gives (size, base-OS
  files) is written at once; an untrusted trailer on a layer of up to 1 MiB costs one streamed read more;
* base-OS detection (default on): a partial stream of the base layer, once per distinct base layer;
* ``--deep``: every layer streamed once ever (layer indexes cached in :mod:`ociinspect.store`).

Each digest is fetched once per audit and once ever: facts are keyed by digest, written (committed) as they
arrive, and concurrent workers wait for one another instead of fetching the same digest twice.  Work is
bounded by ``concurrency`` threads and, optionally, ``max_rps`` requests per second; Docker Hub's
``ratelimit-remaining`` header slows the walk down before the limit is reached, and stops it (resumable)
when only a reserve is left.  429/``Retry-After`` and timeouts are handled by the transport.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime
import hashlib
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import requests

from ociinspect._version import __version__
from ociinspect.audit.db import AuditDB, DatabaseError
from ociinspect.content.osdetect import MAX_LAYERS as MAX_OS_LAYERS
from ociinspect.content.osdetect import detect_os
from ociinspect.content.scan import ScanCache, ScanOptions, read_files, scan_image
from ociinspect.errors import (
    ConnectionFailed,
    DigestMismatch,
    InvalidImage,
    LimitExceeded,
    NotFound,
    OciInspectError,
    RateLimited,
    RegistryError,
    Timeout,
    UsageError,
)
from ociinspect.image import sizes
from ociinspect.image.loader import (
    MAX_CONFIG_BYTES,
    index_entries,
    parse_config,
    parse_descriptor,
    parse_manifest,
)
from ociinspect.image.nesting import IndexChain, is_nesting_error
from ociinspect.model import mediatypes as mt
from ociinspect.model.image import Descriptor, Image, ImageConfig, Layer, Platform, RawManifest, SizeEstimate
from ociinspect.model.osinfo import DISTROLESS_MARKERS, OS_FILES, OsInfo
from ociinspect.model.reference import Reference
from ociinspect.registry import RegistryClient
from ociinspect.sources.base import MAX_MANIFEST_BYTES

__all__ = [
    "SMALL_BLOB",
    "AuditOptions",
    "Counters",
    "Pacer",
    "Scope",
    "ShardSpec",
    "Walker",
    "open_run",
]

log = logging.getLogger(__name__)

#: Layers up to this size (bytes) are read whole in one request instead of a trailer Range read.
SMALL_BLOB = 64 * 1024
_BASE_NAME = "org.opencontainers.image.base.name"
_BASE_DIGEST = "org.opencontainers.image.base.digest"
_ROOT = IndexChain()  # a tag's manifest: no index entered yet
# ASCII digits only ("١٠" or "1_0" is no number), each ending at ";", "," or the end
_RATELIMIT_RE = re.compile(r"^\s*(\d{1,18})\s*(?:;\s*w\s*=\s*(\d{1,18})\s*)?(?=[;,]|$)", re.ASCII)


# ------------------------------------------------------------------------------------------------ values


@dataclasses.dataclass(frozen=True, slots=True)
class Scope:
    """What to audit: a registry host, an optional repository prefix, or an explicit list of repositories."""

    registry: str
    prefix: str = ""
    repos: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps({"prefix": self.prefix, "repos": list(self.repos)}, sort_keys=True)

    def wants(self, repository: str) -> bool:
        return repository.startswith(self.prefix)


@dataclasses.dataclass(frozen=True, slots=True)
class ShardSpec:
    """Shard ``index`` of ``count`` (0-based, as Kubernetes' ``JOB_COMPLETION_INDEX``).

    A repository belongs to shard ``int(sha256(name)[:16], 16) % count``: deterministic, independent of the
    catalog order and of the worker, so N workers partition any registry without talking to each other.
    """

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> ShardSpec:
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
            raise UsageError(
                f"--shard {text!r} is not K/N with 0 <= K < N",
                hint="e.g. --shard 0/3, --shard 1/3, --shard 2/3 (K is 0-based, like JOB_COMPLETION_INDEX)",
            )
        return cls(int(m.group(1)), int(m.group(2)))

    def owns(self, repository: str) -> bool:
        if self.count == 1:
            return True
        h = int(hashlib.sha256(repository.encode("utf-8")).hexdigest()[:16], 16)
        return h % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclasses.dataclass(frozen=True)
class AuditOptions:
    """How to walk.  ``concurrency``: requests in flight; ``max_rps``: cap on requests per second (0: none);
    ``deep``: waste scan of every image (streams layers); ``detect_os``: base OS per image (VM model);
    ``retry_errors``: fetch again digests that failed for good in an earlier run; ``reserve``: stop when a
    registry's ``ratelimit-remaining`` falls to this many requests."""

    concurrency: int = 8
    max_rps: float = 0.0
    deep: bool = False
    detect_os: bool = True
    retry_errors: bool = False
    page_size: int = 1000
    small_blob: int = SMALL_BLOB
    max_consecutive_failures: int = 25
    reserve: int = 0
    scan_options: ScanOptions = dataclasses.field(default_factory=lambda: ScanOptions(workers=1))
    scan_cache: ScanCache | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "concurrency": self.concurrency,
                "max_rps": self.max_rps,
                "deep": self.deep,
                "os": self.detect_os,
            },
            sort_keys=True,
        )


@dataclasses.dataclass
class Counters:
    """Live progress of one walk (read by the progress line; written under ``lock``)."""

    repos_total: int = 0
    repos_done: int = 0
    tags_total: int = 0
    tags_done: int = 0
    tag_errors: int = 0
    repo_errors: int = 0
    repos_listed: int = 0  # repositories whose tags are known (the rest are estimated from them)
    manifests: int = 0  # manifests (and index children) whose facts were ensured by this process
    fetched_manifests: int = 0
    fetched_blobs: int = 0
    requests: int = 0
    started: float = dataclasses.field(default_factory=time.monotonic)
    catalog_done: bool = False
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def add(self, **kw: int) -> None:
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                k: getattr(self, k)
                for k in (
                    "repos_total",
                    "repos_done",
                    "tags_total",
                    "tags_done",
                    "tag_errors",
                    "repo_errors",
                    "repos_listed",
                    "manifests",
                    "fetched_manifests",
                    "fetched_blobs",
                    "requests",
                    "catalog_done",
                )
            } | {"elapsed": time.monotonic() - self.started}


class Pacer:
    """Politeness: a token bucket of ``max_rps`` requests per second (0: no cap), and Docker Hub's rate-limit
    headers (``ratelimit-remaining: 76;w=21600``).  Below a low-water mark the walk spreads the remaining
    requests over the window (capped at ``max_pause`` s between requests); at ``reserve`` or below it stops with
    :class:`RateLimited` so the run can be resumed once the window has passed.  Thread-safe; no I/O."""

    def __init__(
        self,
        max_rps: float = 0.0,
        *,
        concurrency: int = 8,
        reserve: int = 0,
        max_pause: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.max_rps = max_rps
        self.concurrency = concurrency
        self.reserve = reserve
        self.max_pause = max_pause
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._next = 0.0  # earliest time of the next request
        self.remaining: int | None = None
        self.limit: int | None = None
        self.window: int | None = None

    def spacing(self) -> float:
        """Seconds to leave between two requests now (0: none)."""
        gap = 1.0 / self.max_rps if self.max_rps > 0 else 0.0
        if self.remaining is not None and self.window:
            low_water = max(4 * self.concurrency, (self.limit or 0) // 10)
            if self.remaining < low_water:
                gap = max(gap, min(self.max_pause, self.window / max(1, self.remaining - self.reserve)))
        return gap

    def wait(self) -> None:
        """Block until the next request may be sent; raise :class:`RateLimited` when the reserve is reached."""
        if self.remaining is not None and self.remaining <= self.reserve:
            raise RateLimited(
                f"the registry's rate limit is nearly used up ({self.remaining} of {self.limit} requests left "
                f"per {self.window} s window); stopping before it is exhausted",
                hint="resume later with `ociinspect audit scan … --resume`, or log in for a higher limit",
            )
        gap = self.spacing()
        if gap <= 0:
            return
        with self._lock:
            now = self._clock()
            at = max(now, self._next)
            self._next = at + gap
        if at > now:
            self._sleep(at - now)

    def observe(self, method: str, url: str, response: requests.Response) -> None:
        """Read ``ratelimit-limit`` / ``ratelimit-remaining`` from a response (any status)."""
        remaining = response.headers.get("ratelimit-remaining")
        if remaining is None:
            return
        m = _RATELIMIT_RE.match(remaining)
        if not m:
            return
        limit = _RATELIMIT_RE.match(response.headers.get("ratelimit-limit", ""))
        with self._lock:
            self.remaining = int(m.group(1))
            self.window = int(m.group(2)) if m.group(2) else (self.window or 21600)
            if limit:
                self.limit = int(limit.group(1))


# ------------------------------------------------------------------------------------------------- runs


def _now() -> float:
    return time.time()


def open_run(
    db: AuditDB,
    scope: Scope,
    options: AuditOptions,
    *,
    label: str | None = None,
    shard: ShardSpec = ShardSpec(),
    resume: bool = False,
) -> tuple[int, str]:
    """Create, join or resume a run; returns ``(run id, label)``.  Cost: a few database statements.

    * ``label`` names a run: workers of one sharded audit pass the same label and join one run; running the
      same command again continues the run where it stopped.
    * ``resume`` without a label continues the latest unfinished run of this registry and scope.
    * neither: a new run labelled with the UTC time.
    """
    with db.transaction():
        if label is None and resume:
            rows = db.query(
                "SELECT id, label, scope, shards FROM runs WHERE registry = ? AND status <> 'complete' "
                "ORDER BY id DESC LIMIT 1",
                (scope.registry,),
            )
            if not rows:
                raise UsageError(
                    f"no unfinished audit of {scope.registry} to resume in {db.display}",
                    hint="start one without --resume (see `ociinspect audit runs`)",
                )
            label = str(rows[0][1])
        if label is None:
            label = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        find = (
            "SELECT id, scope, shards FROM runs WHERE registry = ? AND label = ?",
            (scope.registry, label),
        )
        rows = db.query(*find)
        if not rows:
            if resume:
                raise UsageError(
                    f"no audit run {label!r} of {scope.registry} in {db.display} to resume",
                    hint="see `ociinspect audit runs`",
                )
            # workers of one sharded audit start together: the first insert wins, the others join its run
            db.execute(
                "INSERT INTO runs (label, registry, scope, shards, status, started_at, options, tool_version) "
                "VALUES (?, ?, ?, ?, 'running', ?, ?, ?) ON CONFLICT (registry, label) DO NOTHING",
                (label, scope.registry, scope.to_json(), shard.count, _now(), options.to_json(), __version__),
            )
            rows = db.query(*find)
        run_id, run_scope, shards = int(rows[0][0]), str(rows[0][1]), int(rows[0][2])
        if run_scope != scope.to_json():
            raise UsageError(
                f"run {label!r} of {scope.registry} audits another scope ({run_scope})",
                hint="give the same REGISTRY/prefix and --repo options, or another --run label",
            )
        if shards != shard.count:
            raise UsageError(
                f"run {label!r} is split into {shards} shards, not {shard.count}",
                hint=f"pass --shard K/{shards}",
            )
        db.execute(
            "UPDATE runs SET status = 'running', finished_at = NULL WHERE id = ? AND status <> 'complete'",
            (run_id,),
        )
        db.execute(
            "INSERT INTO run_shards (run_id, shard, status, started_at) VALUES (?, ?, 'running', ?) "
            "ON CONFLICT (run_id, shard) DO UPDATE SET status = CASE WHEN run_shards.status = 'complete' "
            "THEN 'complete' ELSE 'running' END",
            (run_id, shard.index, _now()),
        )
    return run_id, label


# ------------------------------------------------------------------------------------------------ source


class _MemorySource:
    """One small blob held in memory, served as a local source (ranges and streams cost nothing)."""

    kind = "local"

    def __init__(self, reference: Reference, digest: str, data: bytes) -> None:
        self.reference = reference
        self.warnings: list[str] = []
        self._digest, self._data = digest, data

    def _check(self, digest: str) -> None:
        if digest != self._digest:
            raise NotFound(f"blob {digest} is not held in memory")

    def root(self) -> RawManifest:
        raise NotFound("a memory source has no manifest")

    def manifest(self, digest: str) -> RawManifest:
        raise NotFound("a memory source has no manifest")

    def blob(self, digest: str, *, size: int | None, max_bytes: int) -> bytes:
        self._check(digest)
        return self._data

    def blob_range(self, digest: str, start: int, end: int) -> bytes:
        self._check(digest)
        return self._data[start : end + 1]

    @contextlib.contextmanager
    def open_blob(self, digest: str, *, size: int | None) -> Iterator[Iterator[bytes]]:
        self._check(digest)
        yield iter((self._data,))

    def close(self) -> None:
        pass


class _RepoSource:
    """A registry source for one repository that reads small blobs whole, once, and lets the walker turn that
    one response into every fact it gives before anything else is requested (see the module docstring)."""

    kind = "registry"

    def __init__(self, walker: Walker, repository: str) -> None:
        self.walker = walker
        self.repository = repository
        self.reference = Reference(transport="docker", registry=walker.scope.registry, repository=repository)
        self.warnings: list[str] = []
        self._small: dict[str, bytes] = {}
        self._layers: dict[str, Layer] = {}

    def remember(self, layer: Layer) -> None:
        self._layers[layer.digest] = layer

    def root(self) -> RawManifest:
        raise NotFound("the audit source resolves tags itself")

    def manifest(self, digest: str) -> RawManifest:
        m = self.walker.fetch_manifest(self.repository, digest)
        return RawManifest(m.data, m.media_type, m.digest)

    def _small_blob(self, digest: str, size: int | None) -> bytes | None:
        if size is None or size > self.walker.options.small_blob:
            return None
        data = self._small.get(digest)
        if data is None:
            data = self.walker.get_blob(self.repository, digest, max_bytes=size, expected_size=size)
            self._small[digest] = data
            layer = self._layers.get(digest)
            if layer is not None:
                self.walker.facts_from_small_blob(self.reference, layer, data)
        return data

    def blob(self, digest: str, *, size: int | None, max_bytes: int) -> bytes:
        small = self._small_blob(digest, size)
        if small is not None:
            return small
        return self.walker.get_blob(self.repository, digest, max_bytes=max_bytes, expected_size=size)

    def blob_range(self, digest: str, start: int, end: int) -> bytes:
        layer = self._layers.get(digest)
        small = self._small_blob(digest, layer.size if layer else None)
        if small is not None:
            return small[start : end + 1]
        self.walker.before_request()
        data, _total = self.walker.client.get_blob_range(
            self.walker.scope.registry, self.repository, digest, start=start, end=end
        )
        self.walker.counters.add(fetched_blobs=1)
        return data

    @contextlib.contextmanager
    def open_blob(self, digest: str, *, size: int | None) -> Iterator[Iterator[bytes]]:
        small = self._small_blob(digest, size)
        if small is not None:
            yield iter((small,))
            return
        self.walker.before_request()
        self.walker.counters.add(fetched_blobs=1)
        with self.walker.client.stream_blob(self.walker.scope.registry, self.repository, digest) as chunks:
            yield chunks

    def close(self) -> None:
        self._small.clear()


# ------------------------------------------------------------------------------------------------ walker


_TRANSIENT = (ConnectionFailed, Timeout, RateLimited)
_TRANSIENT_STATUSES = frozenset(
    {429, 502, 503, 504}
)  # as the transport's retries; 500 is the content's fault


def is_transient(exc: OciInspectError) -> bool:
    """Errors that may go away by themselves (network, overload, rate limit): never recorded as facts."""
    if isinstance(exc, _TRANSIENT):
        return True
    return isinstance(exc, RegistryError) and exc.status in _TRANSIENT_STATUSES


def _as_error(exc: Exception, doing: str) -> OciInspectError:
    """``exc`` as the error to record against one tag or repository: typed errors as they are; anything else
    (a bug met on a hostile value: ValueError, RecursionError, MemoryError …) as an internal error that keeps
    its type name (``error_type``), never transient, so ``--resume`` goes past it."""
    if isinstance(exc, OciInspectError):
        return exc
    log.debug("%s: internal error", doing, exc_info=exc)
    text = "".join(c if c.isprintable() else "?" for c in str(exc)[:200])
    err = OciInspectError(
        f"{doing}: internal error ({type(exc).__name__}: {text})",
        hint="a bug in ociinspect met a value it did not expect; please report it (run with -vv for details)",
    )
    err.__dict__["recorded_type"] = type(exc).__name__
    return err


def _scannable(image: Image) -> bool:
    """Waste-scannable: at least one layer and every layer a tar (compressed or not).  Attestation manifests
    (in-toto statements) and artifacts are listed in the report, never content-scanned."""
    return bool(image.layers) and all(
        mt.is_layer(layer.media_type) and mt.compression_of(layer.media_type) != "unknown"
        for layer in image.layers
    )


class _Once:
    """Per-key single flight: the first thread runs the work, the others wait for it (and share its failure)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, threading.Event] = {}
        self._failed: dict[str, OciInspectError] = {}

    def run(self, key: str, done: Callable[[], bool], work: Callable[[], None]) -> None:
        while True:
            if done():
                return
            with self._lock:
                failed = self._failed.get(key)
                if failed is not None:
                    raise failed
                event = self._running.get(key)
                owner = event is None
                if owner:
                    event = threading.Event()
                    self._running[key] = event
            assert event is not None
            if not owner:
                event.wait()
                continue
            try:
                work()
            except OciInspectError as exc:
                if not is_nesting_error(exc):  # a property of the path walked, not of the key
                    with self._lock:
                        self._failed[key] = exc
                raise
            finally:
                with self._lock:
                    self._running.pop(key, None)
                event.set()
            return


@dataclasses.dataclass
class _TagWork:
    repository: str
    tag: str
    run_digest: str | None  # resolved earlier in this run (resume)
    previous: str | None  # digest an earlier run saw for this tag


class Walker:
    """One worker's walk of one shard of a run.  :meth:`run` returns the counters; it raises
    :class:`KeyboardInterrupt` or a fatal :class:`OciInspectError` after marking the shard interrupted (every
    fact fetched so far is already committed, so ``--resume`` continues from there)."""

    def __init__(
        self,
        db: AuditDB,
        client: RegistryClient,
        run_id: int,
        scope: Scope,
        *,
        shard: ShardSpec = ShardSpec(),
        options: AuditOptions | None = None,
        counters: Counters | None = None,
    ) -> None:
        self.db = db
        self.client = client
        self.run_id = run_id
        self.scope = scope
        self.shard = shard
        self.options = options or AuditOptions()
        self.counters = counters or Counters()
        self.pacer = Pacer(
            self.options.max_rps, concurrency=self.options.concurrency, reserve=self.options.reserve
        )
        self._once = _Once()
        self._complete: set[str] = set()
        self._blobs: set[str] = set()
        self._digest_errors: dict[str, tuple[str, str, int]] = {}
        self._facts_memo: dict[str, str] = {}
        self._manifest_memo: dict[str, tuple[str, list[tuple[Any, ...]]]] = {}
        self._config_memo: dict[str, tuple[Any, ...]] = {}
        self._subtree_done: set[str] = set()  # complete roots already checked (--deep: scanned) this audit
        self._stop = threading.Event()
        self._failures_in_a_row = 0
        self._fail_lock = threading.Lock()
        self._fatal: OciInspectError | None = None
        client.add_observer(self._observe)

    # ---------------------------------------------------------------------------------------- plumbing

    def _observe(self, method: str, url: str, response: requests.Response) -> None:
        self.counters.add(requests=1)
        self.pacer.observe(method, url, response)

    def before_request(self) -> None:
        """Called before each registry request: stop if asked, pace."""
        if self._stop.is_set():
            raise _Stopped()
        self.pacer.wait()

    def fetch_manifest(self, repository: str, reference: str) -> Any:
        self.before_request()
        m = self.client.get_manifest(self.scope.registry, repository, reference, max_bytes=MAX_MANIFEST_BYTES)
        self.counters.add(fetched_manifests=1)
        return m

    def get_blob(self, repository: str, digest: str, *, max_bytes: int, expected_size: int | None) -> bytes:
        self.before_request()
        data = self.client.get_blob(
            self.scope.registry, repository, digest, max_bytes=max_bytes, expected_size=expected_size
        )
        self.counters.add(fetched_blobs=1)
        return data

    def _load_known(self) -> None:
        self._complete = {str(r[0]) for r in self.db.query("SELECT digest FROM manifests WHERE complete = 1")}
        self._blobs = {str(r[0]) for r in self.db.query("SELECT digest FROM blobs")}
        self._digest_errors = {
            str(d): (str(t), str(m), int(r))
            for d, t, m, r in self.db.query("SELECT digest, error_type, error, run_id FROM digest_errors")
        }

    def _is_complete(self, digest: str) -> bool:
        if digest in self._complete:
            return True
        shared = self.db.dialect == "postgresql"  # another worker may have done it
        if shared and self.db.query("SELECT 1 FROM manifests WHERE digest = ? AND complete = 1", (digest,)):
            self._complete.add(digest)
            return True
        return False

    def _has_blob(self, digest: str) -> bool:
        if digest in self._blobs:
            return True
        shared = self.db.dialect == "postgresql"
        if shared and self.db.query("SELECT 1 FROM blobs WHERE digest = ?", (digest,)):
            self._blobs.add(digest)
            return True
        return False

    def get_fact(self, key: str) -> str | None:
        memo = self._facts_memo.get(key)
        if memo is not None:
            return memo
        rows = self.db.query("SELECT value FROM facts WHERE key = ?", (key,))
        value = str(rows[0][0]) if rows else None
        if value is not None and key.startswith("osfiles:"):
            self._facts_memo[key] = value
        return value

    def put_fact(self, key: str, value: str) -> None:
        if key.startswith("osfiles:"):  # base layers are shared by many images: keep their facts at hand
            self._facts_memo[key] = value
        self.db.execute(
            "INSERT INTO facts (key, value, created_at) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING",
            (key, value, _now()),
        )

    # ------------------------------------------------------------------------------------------- facts

    def _put_blob(self, d: Descriptor, estimate: SizeEstimate, source: str | None = None) -> None:
        self.db.execute(
            "INSERT INTO blobs (digest, media_type, size, uncompressed_size, uncompressed_source, note, fetched_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING",
            (
                d.digest,
                d.media_type,
                d.size,
                estimate.value,
                source or estimate.source,
                estimate.note,
                _now(),
            ),
        )
        self._blobs.add(d.digest)

    def facts_from_small_blob(self, reference: Reference, layer: Layer, data: bytes) -> None:
        """Every fact one small layer gives (uncompressed size; base-OS files when it is a tar), written in one
        transaction right after the one request that read it.  Cost: CPU only."""
        mem = _MemorySource(reference, layer.digest, data)
        try:
            estimate = sizes.estimate(mem, layer.descriptor, diff_id=layer.diff_id, mode="cheap")
        except OciInspectError as exc:
            estimate = SizeEstimate(None, "unknown", f"unreadable: {exc.message}")
        osfiles = None
        if (
            self.options.detect_os
            and mt.is_layer(layer.media_type)
            and mt.compression_of(layer.media_type) != "unknown"
        ):
            try:
                files, present = read_files(mem, layer, OS_FILES, markers=DISTROLESS_MARKERS)
                osfiles = json.dumps(
                    {"files": {k: v.decode("latin-1") for k, v in files.items()}, "present": sorted(present)}
                )
            except OciInspectError as exc:
                log.info("base-OS files of %s: %s", layer.digest, exc)
        with self.db.transaction():
            if not self._has_blob(layer.digest):
                self._put_blob(layer.descriptor, estimate)
            if osfiles is not None:
                self.put_fact(f"osfiles:{layer.digest}", osfiles)

    def _record_digest_error(self, digest: str, exc: OciInspectError) -> None:
        if is_transient(exc) or isinstance(exc, _Stopped | DatabaseError):
            return
        self._digest_errors[digest] = (type(exc).__name__, exc.message, self.run_id)
        self.db.execute(
            "INSERT INTO digest_errors (digest, error_type, error, run_id, seen_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (digest) DO UPDATE SET error_type = excluded.error_type, error = excluded.error, "
            "run_id = excluded.run_id, seen_at = excluded.seen_at",
            (digest, type(exc).__name__, exc.message, self.run_id, _now()),
        )

    def _known_error(self, digest: str) -> OciInspectError | None:
        known = self._digest_errors.get(digest)
        if known is None:
            return None
        kind, message, run = known
        if run != self.run_id and self.options.retry_errors:
            return None
        error_class: type[OciInspectError] = {
            "DigestMismatch": DigestMismatch,
            "InvalidImage": InvalidImage,
            "LimitExceeded": LimitExceeded,
        }.get(kind, OciInspectError)
        if kind.endswith("NotFound"):
            error_class = NotFound
        err = error_class(message)  # as first recorded: a re-audit reports the same error (--retry-errors)
        err.__dict__["recorded_type"] = kind
        return err

    def ensure_manifest(
        self, source: _RepoSource, digest: str, fetched: Any = None, chain: IndexChain = _ROOT
    ) -> None:
        """Make sure every fact under manifest ``digest`` is in the database (children, config, layers, OS,
        and with ``--deep`` the waste figures).  ``chain``: the indexes entered on the way from the tag (the one
        nesting rule, :mod:`ociinspect.image.nesting`).

        Cost: nothing when complete (database reads with ``--deep`` or under an index); else 1 GET for the
        manifest (unless ``fetched``) plus its missing facts.
        """
        chain.check(digest, f"{source.reference.name}: manifest {digest}")  # before waiting on it (a cycle)
        known = self._known_error(digest)
        if known is not None:
            raise known
        if self._is_complete(digest):
            if chain or self.options.deep:
                self._known_subtree(source, digest, chain)
            return

        def work() -> None:
            try:
                self._build_manifest(source, digest, fetched, chain)
            except (_Stopped, DatabaseError):
                raise
            except OciInspectError as exc:
                self._manifest_memo.pop(digest, None)
                if not is_nesting_error(exc):  # the same index may be fine as a root: not a fact of it
                    self._record_digest_error(digest, exc)
                raise

        self._once.run(f"m:{digest}", lambda: self._is_complete(digest), work)
        self.counters.add(manifests=1)

    def _stored_manifest(self, digest: str) -> tuple[str, list[tuple[Any, ...]]] | None:
        memo = self._manifest_memo.get(digest)
        if memo is not None:
            return memo
        rows = self.db.query("SELECT kind FROM manifests WHERE digest = ?", (digest,))
        if not rows:
            return None
        refs = self.db.query(
            "SELECT role, position, digest, media_type, size, platform, kind FROM manifest_refs "
            "WHERE manifest = ? ORDER BY role, position",
            (digest,),
        )
        return str(rows[0][0]), refs

    def _known_subtree(self, source: _RepoSource, digest: str, chain: IndexChain) -> None:
        """A complete manifest met again: check that its stored index nesting fits under ``chain``, and with
        ``--deep`` waste-scan the images below it never scanned (a database that was audited without
        ``--deep``).  Cost: database reads, plus what :meth:`_deep` costs for images without waste figures."""
        if not chain and digest in self._subtree_done:
            return
        stored = self._stored_manifest(digest)
        if stored is None:
            return
        kind, refs = stored
        if kind == "index":
            inner = chain.enter(digest, f"{source.reference.name}: index {digest}")
            for role, _pos, child, *_ in refs:
                if role == "manifest":
                    self._known_subtree(source, str(child), inner)
        elif kind == "image" and self.options.deep and self.get_fact(f"waste:{digest}") is None:
            image = self._image_of(source, digest, kind, refs)
            if _scannable(image):
                key = f"waste:{digest}"
                self._once.run(
                    f"w:{digest}", lambda: self.get_fact(key) is not None, lambda: self._deep(source, image)
                )
        if not chain:
            self._subtree_done.add(digest)

    def _build_manifest(self, source: _RepoSource, digest: str, fetched: Any, chain: IndexChain) -> None:
        stored = self._stored_manifest(digest)
        if stored is None:
            if fetched is None or fetched.digest != digest:
                fetched = self.fetch_manifest(source.repository, digest)
            stored = self._store_manifest(fetched)
        kind, refs = stored
        if kind == "index":
            inner = chain.enter(digest, f"{source.reference.name}: index {digest}")
            for role, _pos, child, *_ in refs:
                if role == "manifest":
                    self.ensure_manifest(source, str(child), chain=inner)
        else:
            self._ensure_image(source, digest, kind, refs)
        self.db.execute("UPDATE manifests SET complete = 1 WHERE digest = ?", (digest,))
        self._complete.add(digest)
        self._manifest_memo.pop(digest, None)

    def _store_manifest(self, fetched: Any) -> tuple[str, list[tuple[Any, ...]]]:
        """Parse (with the loader's rules) and write one manifest's facts.  Cost: CPU + 1 transaction."""
        what = f"manifest {fetched.digest}"
        media_type, doc = parse_manifest(RawManifest(fetched.data, fetched.media_type, fetched.digest), what)
        refs: list[tuple[Any, ...]] = []
        config: Descriptor | None = None
        artifact_type = doc.get("artifactType") if isinstance(doc.get("artifactType"), str) else None
        if mt.is_index(media_type):
            kind = "index"
            for pos, entry in enumerate(index_entries(doc, what)):
                d = entry.descriptor
                refs.append(
                    (
                        "manifest",
                        pos,
                        d.digest,
                        d.media_type,
                        d.size,
                        str(d.platform) if d.platform else None,
                        entry.kind,
                    )
                )
        else:
            config = parse_descriptor(doc.get("config"), f"{what}: config")
            layers = doc.get("layers") or []
            if not isinstance(layers, list):
                raise InvalidImage(f"{what}: the manifest's layers field is not a list")
            kind = "image" if mt.is_image_config(config.media_type) and not artifact_type else "artifact"
            refs.append(("config", 0, config.digest, config.media_type, config.size, None, None))
            for pos, obj in enumerate(layers):
                d = parse_descriptor(obj, f"{what}: layer {pos}")
                refs.append(("layer", pos, d.digest, d.media_type, d.size, None, None))
        ann = doc.get("annotations") if isinstance(doc.get("annotations"), dict) else {}
        assert isinstance(ann, dict)
        with self.db.transaction():
            inserted = self.db.query(
                "INSERT INTO manifests (digest, media_type, size, kind, config_digest, config_media_type, "
                "config_size, artifact_type, base_name, base_digest, complete, fetched_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?) ON CONFLICT (digest) DO NOTHING RETURNING digest",
                (
                    fetched.digest,
                    media_type,
                    len(fetched.data),
                    kind,
                    config.digest if config else None,
                    config.media_type if config else None,
                    config.size if config else None,
                    artifact_type,
                    str(ann.get(_BASE_NAME)) if ann.get(_BASE_NAME) else None,
                    str(ann.get(_BASE_DIGEST)) if ann.get(_BASE_DIGEST) else None,
                    _now(),
                ),
            )
            if inserted:
                self.db.executemany(
                    "INSERT INTO manifest_refs (manifest, role, position, digest, media_type, size, platform, kind) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [(fetched.digest, *r) for r in refs],
                )
        stored = kind, sorted(refs, key=lambda r: (r[0], r[1]))
        self._manifest_memo[fetched.digest] = stored  # until complete: _build_manifest needs it next
        return stored

    def _config_row(self, digest: str) -> tuple[Any, ...] | None:
        memo = self._config_memo.get(digest)
        if memo is not None:
            return memo
        rows = self.db.query(
            "SELECT created, os, architecture, variant, diff_ids FROM configs WHERE digest = ?", (digest,)
        )
        return rows[0] if rows else None

    def _config_facts(self, source: _RepoSource, d: Descriptor) -> ImageConfig:
        """The image config's facts; cost: nothing when known, else 1 GET of the config blob."""

        def work() -> None:
            data = self.get_blob(
                source.repository, d.digest, max_bytes=MAX_CONFIG_BYTES, expected_size=d.size
            )
            config = parse_config(data, f"config {d.digest}")
            with self.db.transaction():
                self.db.execute(
                    "INSERT INTO configs (digest, created, os, architecture, variant, diff_ids, fetched_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING",
                    (
                        d.digest,
                        config.created,
                        config.os,
                        config.architecture,
                        config.variant,
                        json.dumps(list(config.diff_ids)),
                        _now(),
                    ),
                )
                if not self._has_blob(d.digest):
                    self._put_blob(d, SizeEstimate(None, "unknown", "image config"), "config")
            self._config_memo[d.digest] = (
                config.created,
                config.os,
                config.architecture,
                config.variant,
                json.dumps(list(config.diff_ids)),
            )

        row = self._config_row(d.digest)
        if row is None:
            self._once.run(f"c:{d.digest}", lambda: self._config_row(d.digest) is not None, work)
            row = self._config_row(d.digest)
        assert row is not None
        self._config_memo.pop(d.digest, None)  # needed once per image; the database has it
        created, os_, arch, variant, diff_ids = row
        return ImageConfig(
            os=os_, architecture=arch, variant=variant, created=created, diff_ids=tuple(json.loads(diff_ids))
        )

    def _image_of(
        self, source: _RepoSource, digest: str, kind: str, refs: Sequence[tuple[Any, ...]]
    ) -> Image:
        """The image (config facts and layers, sizes unknown) from its stored references; the layers are
        remembered by ``source``.  Cost: nothing when its config is known, else 1 GET of the config."""
        config_row = next(r for r in refs if r[0] == "config")
        config_d = Descriptor(
            media_type=str(config_row[3]), digest=str(config_row[2]), size=int(config_row[4])
        )
        layer_rows = [r for r in refs if r[0] == "layer"]
        config: ImageConfig | None = None
        if kind == "image":
            config = self._config_facts(source, config_d)
        elif not self._has_blob(config_d.digest):
            self._put_blob(config_d, SizeEstimate(None, "unknown", "artifact config"), "config")
        diff_ids = config.diff_ids if config else ()
        layers = tuple(
            Layer(
                index=i,
                descriptor=Descriptor(media_type=str(r[3]), digest=str(r[2]), size=int(r[4])),
                diff_id=diff_ids[i] if i < len(diff_ids) else None,
                history=None,
                uncompressed=SizeEstimate(None, "unknown"),
            )
            for i, r in enumerate(layer_rows)
        )
        for layer in layers:
            source.remember(layer)
        return Image(
            reference=f"{source.reference.name}@{digest}",
            digest=digest,
            media_type="",
            manifest_size=0,
            platform=Platform(config.os, config.architecture, config.variant)
            if config and config.os and config.architecture
            else None,
            config_descriptor=config_d,
            config=config,
            layers=layers,
        )

    def _ensure_image(
        self, source: _RepoSource, digest: str, kind: str, refs: Sequence[tuple[Any, ...]]
    ) -> None:
        image = self._image_of(source, digest, kind, refs)
        layers = image.layers
        if kind == "image" and self.options.detect_os and self.get_fact(f"os:{digest}") is None:
            info = self._detect_os(source, image)
            self.put_fact(f"os:{digest}", json.dumps(info.to_json()))
        for layer in layers:
            self._ensure_layer(source, layer)
        if (
            kind == "image"
            and self.options.deep
            and _scannable(image)  # attestations (in-toto statements) and artifacts: listed, not scanned
            and self.get_fact(f"waste:{digest}") is None
        ):
            self._deep(source, image)

    def _osfiles(self, source: _RepoSource, layer: Layer) -> bool:
        """Make sure the base-OS files of ``layer`` are known (single flight per layer); True when it has any.

        Cost: nothing when known; else a partial stream of the layer (a whole read when it is small)."""
        key = f"osfiles:{layer.digest}"

        def work() -> None:
            files, present = read_files(source, layer, OS_FILES, markers=DISTROLESS_MARKERS)
            self.put_fact(
                key,
                json.dumps(
                    {"files": {k: v.decode("latin-1") for k, v in files.items()}, "present": sorted(present)}
                ),
            )

        self._once.run(key, lambda: self.get_fact(key) is not None, work)
        doc = json.loads(self.get_fact(key) or "{}")
        return bool(doc.get("files") or doc.get("present"))

    def _detect_os(self, source: _RepoSource, image: Image) -> OsInfo:
        """The image's base OS, as :func:`ociinspect.content.osdetect.detect_os` finds it, with each layer read at most
        once per audit even when many images share it (their OS files are facts of the layer)."""
        if image.config and image.config.os == "windows":
            return detect_os(source, image)
        for i, layer in enumerate(image.layers[:MAX_OS_LAYERS]):
            if not (mt.is_layer(layer.media_type) and mt.compression_of(layer.media_type) != "unknown"):
                return detect_os(source, dataclasses.replace(image, layers=image.layers[:i]))
            try:
                if self._osfiles(source, layer):
                    break
            except _Stopped:
                raise
            except OciInspectError as exc:
                if is_transient(exc):
                    raise
                if i == 0:
                    return OsInfo(None, None, None, "static", f"layer 0 unreadable ({exc.message})", None)
                return detect_os(
                    source,
                    dataclasses.replace(image, layers=image.layers[:i]),
                    cache=(self.get_fact, self.put_fact),
                )
        return detect_os(
            source, image, cache=(self.get_fact, self.put_fact)
        )  # every layer it reads is cached

    def _ensure_layer(self, source: _RepoSource, layer: Layer) -> None:
        readable = mt.is_layer(layer.media_type) and mt.compression_of(layer.media_type) in ("gzip", "zstd")

        def work() -> None:
            if readable and layer.size <= self.options.small_blob:
                source.blob_range(layer.digest, 0, 0)  # reads it whole: facts_from_small_blob stores them
                if self._has_blob(layer.digest):
                    return
            estimate = sizes.estimate(source, layer.descriptor, diff_id=layer.diff_id, mode="cheap")
            self._put_blob(layer.descriptor, estimate)

        self._once.run(f"b:{layer.digest}", lambda: self._has_blob(layer.digest), work)

    def _deep(self, source: _RepoSource, image: Image) -> None:
        from ociinspect.analyzers.waste import analyze

        scans = scan_image(source, image, self.options.scan_options, cache=self.options.scan_cache)
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

    # -------------------------------------------------------------------------------------------- tags

    def _previous_digests(self, repository: str) -> dict[str, str]:
        rows = self.db.query(
            "SELECT t.tag, t.digest FROM tags t JOIN runs r ON r.id = t.run_id WHERE r.registry = ? "
            "AND t.repository = ? AND t.run_id <> ? AND t.digest IS NOT NULL ORDER BY t.run_id",
            (self.scope.registry, repository, self.run_id),
        )
        return {str(t): str(d) for t, d in rows}

    def _process_tag(self, work: _TagWork) -> None:
        source = _RepoSource(self, work.repository)
        digest = work.run_digest
        fetched = None
        try:
            try:
                if digest is None:
                    prev = work.previous
                    if prev and (self._is_complete(prev) or prev in self._digest_errors):
                        self.before_request()
                        digest, media_type, size = self.client.head_manifest(
                            self.scope.registry, work.repository, work.tag
                        )
                    else:
                        fetched = self.fetch_manifest(work.repository, work.tag)
                        digest, media_type, size = fetched.digest, fetched.media_type, len(fetched.data)
                    self._resolve(work, digest, media_type, size, fetched)
                self.ensure_manifest(source, digest)
            finally:
                source.close()
        except _Stopped:
            raise
        except Exception as caught:  # one hostile tag never stops the walk: whatever it raises is its error
            exc = _as_error(caught, f"reading {work.repository}:{work.tag}")
            transient = is_transient(exc)
            self.db.execute(
                "UPDATE tags SET status = 'error', digest = COALESCE(?, digest), error_type = ?, error = ?, "
                "transient = ?, checked_at = ? WHERE run_id = ? AND repository = ? AND tag = ?",
                (
                    digest,
                    exc.__dict__.get("recorded_type", type(exc).__name__),
                    exc.message,
                    int(transient),
                    _now(),
                    self.run_id,
                    work.repository,
                    work.tag,
                ),
            )
            self.counters.add(tags_done=1, tag_errors=1)
            self._failure(exc, transient)
            return
        self.db.execute(
            "UPDATE tags SET status = 'done', error_type = NULL, error = NULL, transient = 0 "
            "WHERE run_id = ? AND repository = ? AND tag = ?",
            (self.run_id, work.repository, work.tag),
        )
        self.counters.add(tags_done=1)
        with self._fail_lock:
            self._failures_in_a_row = 0

    def _resolve(self, work: _TagWork, digest: str, media_type: str, size: int, fetched: Any) -> None:
        """Record what the tag points at, with the manifest's facts when it was just read (one transaction:
        a resumed audit never reads the tag or the manifest again)."""
        try:
            with self.db.transaction():
                if (
                    fetched is not None
                    and not self._is_complete(digest)
                    and self._stored_manifest(digest) is None
                ):
                    self._store_manifest(fetched)
                self.db.execute(
                    "UPDATE tags SET status = 'resolved', digest = ?, media_type = ?, manifest_size = ?, "
                    "checked_at = ? WHERE run_id = ? AND repository = ? AND tag = ?",
                    (digest, media_type, size, _now(), self.run_id, work.repository, work.tag),
                )
        except (_Stopped, DatabaseError):
            raise
        except OciInspectError as exc:
            self._record_digest_error(digest, exc)
            raise

    def _failure(self, exc: OciInspectError, transient: bool) -> None:
        if (
            isinstance(exc, RateLimited)
            and self.pacer.remaining is not None
            and self.pacer.remaining <= self.options.reserve
        ):
            self._abort(exc)
            return
        if not transient:
            return
        with self._fail_lock:
            self._failures_in_a_row += 1
            if self._failures_in_a_row >= self.options.max_consecutive_failures:
                self._abort(
                    type(exc)(
                        f"{self._failures_in_a_row} requests in a row failed (last: {exc.message})",
                        hint="the registry or the network is down; fix it, then continue with --resume",
                    )
                )

    def _abort(self, exc: OciInspectError) -> None:
        if self._fatal is None:
            self._fatal = exc
        self._stop.set()

    def _list_repository(self, repository: str) -> list[_TagWork]:
        """List the tags of one repository and record them (cost: 1 GET per tags page + auth)."""
        try:
            self.before_request()
            tags = sorted(set(self.client.list_tags(self.scope.registry, repository)))
        except _Stopped:
            raise
        except Exception as caught:  # one hostile repository never stops the walk
            exc = _as_error(caught, f"listing the tags of {repository}")
            self.db.execute(
                "UPDATE repositories SET status = ?, error_type = ?, error = ? WHERE run_id = ? AND name = ?",
                (
                    "retry" if is_transient(exc) else "error",
                    exc.__dict__.get("recorded_type", type(exc).__name__),
                    exc.message,
                    self.run_id,
                    repository,
                ),
            )
            self.counters.add(repos_done=1, repo_errors=1)
            self._failure(exc, is_transient(exc))
            return []
        with self.db.transaction():
            if tags:
                self.db.executemany(
                    "INSERT INTO tags (run_id, repository, tag, status) VALUES (?, ?, ?, 'pending') "
                    "ON CONFLICT DO NOTHING",
                    [(self.run_id, repository, t) for t in tags],
                )
            self.db.execute(
                "UPDATE repositories SET status = ?, tag_count = ? WHERE run_id = ? AND name = ?",
                ("listed" if tags else "done", len(tags), self.run_id, repository),
            )
        prev = self._previous_digests(repository)
        self.counters.add(tags_total=len(tags), repos_done=0 if tags else 1, repos_listed=1)
        return [_TagWork(repository, t, None, prev.get(t)) for t in tags]

    def _pending_tags(self, repository: str) -> list[_TagWork]:
        """Tags of an already listed repository still to do in this run (resume)."""
        rows = self.db.query(
            "SELECT tag, status, digest, transient FROM tags WHERE run_id = ? AND repository = ?",
            (self.run_id, repository),
        )
        prev = self._previous_digests(repository)
        out = []
        done = failed = 0
        for tag, status, digest, transient in rows:
            if status == "done" or (status == "error" and not transient):
                done += 1
                failed += status == "error"
                continue
            out.append(
                _TagWork(
                    repository,
                    str(tag),
                    str(digest) if digest else None,  # resolved in this run (also before a transient error)
                    prev.get(str(tag)),
                )
            )
        self.counters.add(tags_total=len(rows), tags_done=done, tag_errors=failed, repos_listed=1)
        return out

    # ----------------------------------------------------------------------------------------- the walk

    def _enumerate(self) -> list[tuple[str, str]]:
        """``(repository, status)`` of this shard, listing the catalog unless done before (resume)."""
        rows = self.db.query(
            "SELECT catalog_done FROM run_shards WHERE run_id = ? AND shard = ?",
            (self.run_id, self.shard.index),
        )
        if not (rows and rows[0][0]):
            names: Iterator[str]
            if self.scope.repos:
                names = iter(self.scope.repos)
            else:
                self.before_request()
                names = self.client.catalog(self.scope.registry, page_size=self.options.page_size)
            batch: list[str] = []

            def flush() -> None:
                if batch:
                    self.db.executemany(
                        "INSERT INTO repositories (run_id, name, shard, status) VALUES (?, ?, ?, 'pending') "
                        "ON CONFLICT DO NOTHING",
                        [(self.run_id, n, self.shard.index) for n in batch],
                    )
                    batch.clear()

            for name in names:
                if self.scope.wants(name) and self.shard.owns(name):
                    batch.append(name)
                    if len(batch) >= 1000:
                        flush()
            flush()
            self.db.execute(
                "UPDATE run_shards SET catalog_done = 1 WHERE run_id = ? AND shard = ?",
                (self.run_id, self.shard.index),
            )
        with self.counters.lock:
            self.counters.catalog_done = True
        # repositories finished with transient failures are walked again (their failed tags only)
        self.db.execute(
            "UPDATE repositories SET status = 'listed' WHERE run_id = ? AND shard = ? AND status = 'done' "
            "AND name IN (SELECT repository FROM tags WHERE run_id = ? AND status = 'error' AND transient = 1)",
            (self.run_id, self.shard.index, self.run_id),
        )
        return [
            (str(n), str(s))
            for n, s in self.db.query(
                "SELECT name, status FROM repositories WHERE run_id = ? AND shard = ? ORDER BY name",
                (self.run_id, self.shard.index),
            )
        ]

    def run(self) -> Counters:
        """Walk this shard to the end (or until stopped).  See the module docstring for the cost."""
        self._load_known()
        try:
            self._walk()
        except BaseException as exc:
            self._stop.set()
            self._finish("interrupted")
            if isinstance(exc, _Stopped) and self._fatal is not None:
                raise self._fatal from None
            raise
        if self._fatal is not None:
            self._finish("interrupted")
            raise self._fatal
        self._finish("complete")
        return self.counters

    def _walk(self) -> None:
        repos = self._enumerate()
        self.counters.add(
            repos_total=len(repos),
            repos_done=sum(1 for _, s in repos if s in ("done", "error")),
            repo_errors=sum(1 for _, s in repos if s == "error"),
            repos_listed=sum(1 for _, s in repos if s in ("done", "error")),
        )
        done_tags = self.db.query(
            "SELECT COUNT(*), SUM(CASE WHEN t.status = 'error' THEN 1 ELSE 0 END) FROM tags t "
            "JOIN repositories r ON r.run_id = t.run_id AND r.name = t.repository "
            "WHERE t.run_id = ? AND r.shard = ? AND r.status = 'done'",
            (self.run_id, self.shard.index),
        )
        n_done, n_failed = int(done_tags[0][0] or 0), int(done_tags[0][1] or 0)
        self.counters.add(tags_total=n_done, tags_done=n_done, tag_errors=n_failed)
        to_list = deque(n for n, s in repos if s in ("pending", "retry"))
        tag_queue: deque[_TagWork] = deque()
        for name, status in repos:
            if status == "listed":
                tag_queue.extend(self._pending_tags(name))
        remaining: dict[str, int] = {}
        for w in tag_queue:
            remaining[w.repository] = remaining.get(w.repository, 0) + 1
        for name, status in repos:  # listed repositories with nothing left to do
            if status == "listed" and name not in remaining:
                self._repo_done(name)
        limit = max(2, 2 * self.options.concurrency)
        with concurrent.futures.ThreadPoolExecutor(
            max_workers=self.options.concurrency, thread_name_prefix="audit"
        ) as pool:
            in_flight: dict[concurrent.futures.Future[Any], tuple[str, Any]] = {}
            try:
                while (to_list or tag_queue or in_flight) and not self._stop.is_set():
                    while len(in_flight) < limit and (tag_queue or to_list):
                        if tag_queue and (len(tag_queue) > limit or not to_list):
                            w = tag_queue.popleft()
                            in_flight[pool.submit(self._process_tag, w)] = ("tag", w)
                        else:
                            name = to_list.popleft()
                            in_flight[pool.submit(self._list_repository, name)] = ("repo", name)
                    done, _ = concurrent.futures.wait(
                        in_flight, return_when=concurrent.futures.FIRST_COMPLETED
                    )
                    for future in done:
                        what, item = in_flight.pop(future)
                        exc = future.exception()
                        if isinstance(exc, _Stopped):
                            continue
                        if exc is not None:
                            raise exc
                        if what == "repo":
                            works: list[_TagWork] = future.result()
                            if works:
                                remaining[item] = len(works)
                                tag_queue.extend(works)
                        else:
                            remaining[item.repository] -= 1
                            if remaining[item.repository] == 0:
                                self._repo_done(item.repository)
            except BaseException:
                self._stop.set()
                for future in in_flight:
                    future.cancel()
                raise

    def _retries_left(self) -> bool:
        """Transient failures remain in this shard (a resume would try them again)."""
        return bool(
            self.db.query(
                "SELECT 1 FROM tags t JOIN repositories r ON r.run_id = t.run_id AND r.name = t.repository "
                "WHERE t.run_id = ? AND r.shard = ? AND t.status = 'error' AND t.transient = 1 LIMIT 1",
                (self.run_id, self.shard.index),
            )
            or self.db.query(
                "SELECT 1 FROM repositories WHERE run_id = ? AND shard = ? AND status = 'retry' LIMIT 1",
                (self.run_id, self.shard.index),
            )
        )

    def _repo_done(self, name: str) -> None:
        self.db.execute(
            "UPDATE repositories SET status = 'done' WHERE run_id = ? AND name = ? AND status <> 'error'",
            (self.run_id, name),
        )
        self.counters.add(repos_done=1)

    def _finish(self, status: str) -> None:
        """Record the shard's (and maybe the run's) end and its request count."""
        with contextlib.suppress(OciInspectError), self.db.transaction():
            if status == "complete" and self._retries_left():
                status = "incomplete"
            self.db.execute(
                "UPDATE run_shards SET status = ?, finished_at = ?, requests = requests + ? "
                "WHERE run_id = ? AND shard = ?",
                (status, _now(), self.counters.requests, self.run_id, self.shard.index),
            )
            rows = self.db.query(
                "SELECT COUNT(*) FROM run_shards WHERE run_id = ? AND status = 'complete'", (self.run_id,)
            )
            shards = self.db.query("SELECT shards FROM runs WHERE id = ?", (self.run_id,))
            if status == "complete" and int(rows[0][0]) >= int(shards[0][0]):
                self.db.execute(
                    "UPDATE runs SET status = 'complete', finished_at = ? WHERE id = ?", (_now(), self.run_id)
                )
            elif status != "complete":
                self.db.execute(
                    "UPDATE runs SET status = ? WHERE id = ? AND status <> 'complete'", (status, self.run_id)
                )


class _Stopped(OciInspectError):
    """Internal: the walk is stopping; work in progress gives up without recording anything."""

    def __init__(self) -> None:
        super().__init__("stopped")
