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

import contextlib
import dataclasses
import os
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from ociinspect import threads
from ociinspect.audit.db import AuditDB
from ociinspect.audit.facts import AuditFacts
from ociinspect.audit.images import Depth, ImageFacts, Stopped
from ociinspect.audit.pacer import Pacer
from ociinspect.audit.runs import SMALL_BLOB, AuditOptions, Scope, ShardSpec, open_run
from ociinspect.audit.source import AuditSource
from ociinspect.errors import (
    DatabaseError,
    OciInspectError,
    RateLimited,
    RecordedError,
    error_type_name,
    is_transient,
)
from ociinspect.model.image import Layer, RawManifest
from ociinspect.model.logs import get_logger
from ociinspect.model.reference import Reference
from ociinspect.registry import RegistryClient
from ociinspect.sources.registry import RegistrySource

__all__ = [
    "SMALL_BLOB",
    "AuditOptions",
    "Counters",
    "Pacer",
    "Scope",
    "ShardSpec",
    "Walker",
    "is_transient",
    "open_run",
]

log = get_logger(__name__)

TAGS_PER_JOB = 8  # at most this many tags per job of the thread pool, when the queue is long
#: seconds a thread waiting for the interpreter lock lets the running one keep it (Python's default: 0.005), during
#: the walk: the workers hand the lock over at every request and SQL statement anyway, so the 5 ms forced
#: hand-overs (and the 5 ms wake-ups of every waiting thread) were pure overhead (≈ −5–10 % CPU per image, paired)
SWITCH_INTERVAL = 0.05


def _current_cpu() -> int | None:
    """The CPU this thread last ran on (Linux: field 39 of ``/proc/thread-self/stat``), else None."""
    try:
        with open("/proc/thread-self/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
        return int(fields[36])  # fields[0] is field 3 (the state)
    except (OSError, ValueError, IndexError):
        return None


@contextlib.contextmanager
def one_cpu(enabled: bool) -> Iterator[int | None]:
    """Run the threads started inside the block on one CPU — the one this thread runs on now, where the
    scheduler just put it — and give this thread its CPUs back after (the CPU chosen, or None when nothing was
    changed: disabled, one CPU allowed already, or no ``sched_setaffinity``).

    Why: the walk is bound by the interpreter lock (its threads run Python one at a time; SQLite, hashing and
    inflating small blobs are short), so a second CPU adds no throughput, while every hand-over of the lock between
    threads on two CPUs is a cross-CPU wake-up.  Measured on 2 CPUs with a local registry (docs/benchmarks.md):
    -30 % CPU per image and -25 % wall time.  ``--deep`` (layers inflated and hashed outside the lock) keeps every
    CPU; ``--all-cpus`` too.  Cost: two system calls."""
    allowed: set[int] | None = None
    cpu = None
    if enabled and hasattr(os, "sched_setaffinity"):
        try:
            allowed = os.sched_getaffinity(0)
            cpu = _current_cpu()
            if len(allowed) > 1:
                if cpu not in allowed:
                    cpu = min(allowed)
                os.sched_setaffinity(0, {cpu})  # this thread: the pool's threads, started after, inherit it
            else:
                allowed, cpu = None, None
        except OSError:
            allowed, cpu = None, None
    try:
        yield cpu
    finally:
        if allowed is not None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, allowed)


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


def _as_error(exc: Exception, doing: str) -> OciInspectError:
    """``exc`` as the error to record against one tag or repository: typed errors as they are; anything else
    (a bug met on a hostile value: ValueError, RecursionError, MemoryError …) as an internal error that keeps
    its type name (``error_type``), never transient, so ``--resume`` goes past it."""
    if isinstance(exc, OciInspectError):
        return exc
    log.debug("%s: internal error", doing, exc_info=exc)
    text = "".join(c if c.isprintable() else "?" for c in str(exc)[:200])
    return RecordedError(
        type(exc).__name__,
        f"{doing}: internal error ({type(exc).__name__}: {text})",
        hint="a bug in ociinspect met a value it did not expect; please report it (run with -vv for details)",
    )


@dataclasses.dataclass
class _TagWork:
    repository: str
    tag: str
    run_digest: str | None  # resolved earlier in this run (resume)
    previous: str | None  # digest an earlier run saw for this tag


class Walker:
    """One worker's walk of one shard of a run: the queue of repositories and tags, and the threads that work it.
    :meth:`run` returns the counters; it raises :class:`KeyboardInterrupt` or a fatal :class:`OciInspectError`
    after marking the shard interrupted (every fact fetched so far is already committed, so ``--resume``
    continues from there).  What each manifest gives is :class:`~ociinspect.audit.images.ImageFacts`' work."""

    def __init__(
        self,
        db: AuditDB,
        client: RegistryClient,
        run_id: int,
        scope: Scope,
        *,
        shard: ShardSpec | None = None,
        options: AuditOptions | None = None,
        counters: Counters | None = None,
    ) -> None:
        self.db = db
        self.facts = AuditFacts(db)
        self.client = client
        self.run_id = run_id
        self.scope = scope
        self.shard = shard or ShardSpec()
        self.options = options or AuditOptions()
        self.counters = counters or Counters()
        self.pacer = Pacer(
            self.options.max_rps, concurrency=self.options.concurrency, reserve=self.options.reserve
        )
        self.images: ImageFacts | None = None  # the database's facts, read when the walk starts
        self._stop = threading.Event()
        self._failures_in_a_row = 0
        self._fail_lock = threading.Lock()
        self._fatal: OciInspectError | None = None
        client.add_observer(self._observe)

    # ---------------------------------------------------------------------------------------- plumbing

    def _observe(self, method: str, url: str, status: int, headers: Any) -> None:
        counters = self.counters
        with counters.lock:  # once per request: not through add(**kw)
            counters.requests += 1
        self.pacer.observe(method, url, status, headers)

    def before_request(self) -> None:
        """Called before each registry request: stop if asked, commit this thread's pending facts, pace (the
        audit source's hook)."""
        if self._stop.is_set():
            raise Stopped()
        if self.images is not None:
            self.images.flush()
        self.pacer.wait()

    def fetched(self, *, manifests: int = 0, blobs: int = 0) -> None:
        """Count what the audit source read (its hook)."""
        counters = self.counters
        with counters.lock:
            counters.fetched_manifests += manifests
            counters.fetched_blobs += blobs

    def facts_from_small_blob(self, reference: Reference, layer: Layer, data: bytes) -> None:
        """The audit source's hook: see :meth:`ImageFacts.facts_from_small_blob`."""
        self._image_facts().facts_from_small_blob(reference, layer, data)

    def _image_facts(self) -> ImageFacts:
        if self.images is None:
            o = self.options
            self.images = ImageFacts(
                self.facts,
                Depth(
                    self.run_id,
                    deep=o.deep,
                    detect_os=o.detect_os,
                    retry_errors=o.retry_errors,
                    small_blob=o.small_blob,
                    scan_options=o.scan_options,
                    scan_cache=o.scan_cache,
                    size_store=o.size_store,
                ),
            )
        return self.images

    def source(self, repository: str, tag: str | None = None) -> AuditSource:
        """The audit's source for one repository (its root: ``tag``), over the shared registry source."""
        ref = Reference(transport="docker", registry=self.scope.registry, repository=repository, tag=tag)
        return AuditSource(RegistrySource(ref, self.client), self, small_blob=self.options.small_blob)

    def ensure_manifest(
        self,
        source: AuditSource,
        digest: str,
        fetched: RawManifest | None = None,
        then: Callable[[], None] | None = None,
    ) -> None:
        """Every fact under manifest ``digest`` (see :meth:`ImageFacts.ensure_manifest` for the cost and
        ``then``)."""
        if self._image_facts().ensure_manifest(source, digest, fetched, then=then):
            self.counters.add(manifests=1)

    # -------------------------------------------------------------------------------------------- tags

    def _process_tags(self, works: list[_TagWork]) -> None:
        """Read several tags, one after the other (one job of the pool)."""
        for work in works:
            if self._stop.is_set():
                raise Stopped()
            self._process_tag(work)

    def _process_tag(self, work: _TagWork) -> None:
        source = self.source(work.repository, work.tag)
        images = self._image_facts()
        digest = work.run_digest
        fetched = None
        done: list[bool] = []  # the tag's "done" written (with its manifest's completion, or with its digest)

        def tag_done() -> None:
            self.facts.tag_done(self.run_id, work.repository, work.tag)
            done.append(True)

        try:
            try:
                if digest is None:
                    prev = work.previous
                    if prev and (images.is_complete(prev) or prev in images.digest_errors):
                        self.before_request()
                        digest, media_type, size = self.client.head_manifest(
                            self.scope.registry, work.repository, work.tag
                        )
                    else:
                        fetched = source.root()
                        digest, media_type, size = fetched.digest, fetched.media_type, len(fetched.data)
                    if images.settled(digest):  # nothing more to learn: resolved and done, one statement
                        self.facts.tag_resolved(
                            self.run_id, work.repository, work.tag, digest, media_type, size, done=True
                        )
                        done.append(True)
                    else:
                        self._resolve(work, digest, media_type, size, fetched)
                if not done:
                    self.ensure_manifest(source, digest, fetched, then=tag_done)
            finally:
                source.close()
        except Stopped:
            images.flush()  # facts fetched so far are kept
            raise
        except Exception as caught:  # one hostile tag never stops the walk: whatever it raises is its error
            exc = _as_error(caught, f"reading {work.repository}:{work.tag}")
            transient = is_transient(exc)
            images.flush()
            self.facts.tag_failed(
                self.run_id, work.repository, work.tag, digest, error_type_name(exc), exc.message, transient
            )
            self.counters.add(tags_done=1, tag_errors=1)
            self._failure(exc, transient)
            return
        images.flush()
        if not done:  # its manifest was complete, or built by another thread
            tag_done()
        self.counters.add(tags_done=1)
        with self._fail_lock:
            self._failures_in_a_row = 0

    def _resolve(
        self, work: _TagWork, digest: str, media_type: str, size: int, fetched: RawManifest | None
    ) -> None:
        """Record what the tag points at, with the manifest's facts when it was just read (one transaction:
        a resumed audit never reads the tag or the manifest again)."""
        images = self._image_facts()
        try:
            facts = images.fetched_facts(fetched) if fetched is not None else None  # parsed outside the lock
            with self.facts.transaction():
                if facts is not None:
                    images.put_manifest(facts)
                self.facts.tag_resolved(self.run_id, work.repository, work.tag, digest, media_type, size)
        except (Stopped, DatabaseError):
            raise
        except OciInspectError as exc:
            images.record_error(digest, exc)
            raise

    def _failure(self, exc: OciInspectError, transient: bool) -> None:
        if isinstance(exc, RateLimited) and self.pacer.exhausted():
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
        except Stopped:
            raise
        except Exception as caught:  # one hostile repository never stops the walk
            exc = _as_error(caught, f"listing the tags of {repository}")
            status = "retry" if is_transient(exc) else "error"
            self.facts.repository_failed(self.run_id, repository, status, error_type_name(exc), exc.message)
            self.counters.add(repos_done=1, repo_errors=1)
            self._failure(exc, is_transient(exc))
            return []
        self.facts.repository_listed(self.run_id, repository, tags)
        prev = self.facts.previous_digests(self.scope.registry, repository, self.run_id)
        self.counters.add(tags_total=len(tags), repos_done=0 if tags else 1, repos_listed=1)
        return [_TagWork(repository, t, None, prev.get(t)) for t in tags]

    def _pending_tags(self, repository: str) -> list[_TagWork]:
        """Tags of an already listed repository still to do in this run (resume)."""
        rows = self.facts.tags(self.run_id, repository)
        prev = self.facts.previous_digests(self.scope.registry, repository, self.run_id)
        out = []
        done = failed = 0
        for tag, status, digest, transient in rows:
            if status == "done" or (status == "error" and not transient):
                done += 1
                failed += status == "error"
                continue
            # digest: resolved in this run (also before a transient error)
            out.append(_TagWork(repository, tag, digest, prev.get(tag)))
        self.counters.add(tags_total=len(rows), tags_done=done, tag_errors=failed, repos_listed=1)
        return out

    # ----------------------------------------------------------------------------------------- the walk

    def _enumerate(self) -> list[tuple[str, str]]:
        """``(repository, status)`` of this shard, listing the catalog unless done before (resume)."""
        if not self.facts.catalog_done(self.run_id, self.shard.index):
            names: Iterator[str]
            if self.scope.repos:
                names = iter(self.scope.repos)
            else:
                self.before_request()
                names = self.client.catalog(self.scope.registry, page_size=self.options.page_size)
            batch: list[str] = []
            for name in names:
                if self.scope.wants(name) and self.shard.owns(name):
                    batch.append(name)
                    if len(batch) >= 1000:
                        self.facts.add_repositories(self.run_id, self.shard.index, batch)
                        batch.clear()
            if batch:
                self.facts.add_repositories(self.run_id, self.shard.index, batch)
            self.facts.set_catalog_done(self.run_id, self.shard.index)
        with self.counters.lock:
            self.counters.catalog_done = True
        self.facts.relist_retried_repositories(self.run_id, self.shard.index)
        return self.facts.repositories(self.run_id, self.shard.index)

    def run(self) -> Counters:
        """Walk this shard to the end (or until stopped).  See the module docstring for the cost."""
        self._image_facts()
        interval = sys.getswitchinterval()
        sys.setswitchinterval(max(interval, SWITCH_INTERVAL))
        try:
            with one_cpu(self.options.one_cpu and not self.options.deep):
                self._walk()
        except BaseException as exc:
            self._stop.set()
            self._finish("interrupted")
            if isinstance(exc, Stopped) and self._fatal is not None:
                raise self._fatal from None
            raise
        finally:
            sys.setswitchinterval(interval)
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
        n_done, n_failed = self.facts.done_tag_counts(self.run_id, self.shard.index)
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
        with threads.Pool(self.options.concurrency, "audit") as pool:
            in_flight: dict[threads.Future[Any], tuple[str, Any]] = {}
            finished: queue.SimpleQueue[threads.Future[Any]] = queue.SimpleQueue()
            try:
                while (to_list or tag_queue or in_flight) and not self._stop.is_set():
                    while len(in_flight) < limit and (tag_queue or to_list):
                        if tag_queue and (len(tag_queue) > limit * TAGS_PER_JOB or not to_list):
                            # tags are handed out a few per job: one wake-up of this loop per job, not per tag
                            # (that hand-off cost ~10 % of the walk's CPU); single tags when few are left
                            n = max(1, min(TAGS_PER_JOB, len(tag_queue) // limit))
                            batch = [tag_queue.popleft() for _ in range(n)]
                            future: threads.Future[Any] = pool.submit(self._process_tags, batch)
                            in_flight[future] = ("tags", batch)
                        else:
                            name = to_list.popleft()
                            future = pool.submit(self._list_repository, name)
                            in_flight[future] = ("repo", name)
                        future.add_done_callback(finished.put)
                    # the jobs that ended, in the order they ended (a queue: no pass over every job in flight
                    # per wake-up, as concurrent.futures.wait makes)
                    done = [finished.get()]
                    with contextlib.suppress(queue.Empty):
                        while True:
                            done.append(finished.get_nowait())
                    for ended in done:
                        what, item = in_flight.pop(ended)
                        exc = ended.exception()
                        if isinstance(exc, Stopped):
                            continue
                        if exc is not None:
                            raise exc
                        if what == "repo":
                            works: list[_TagWork] = ended.result()
                            if works:
                                remaining[item] = len(works)
                                tag_queue.extend(works)
                        else:
                            for w in item:
                                remaining[w.repository] -= 1
                                if remaining[w.repository] == 0:
                                    self._repo_done(w.repository)
            except BaseException:
                self._stop.set()
                for future in in_flight:
                    future.cancel()
                raise

    def _repo_done(self, name: str) -> None:
        self.facts.repository_done(self.run_id, name)
        self.counters.add(repos_done=1)

    def _finish(self, status: str) -> None:
        """Record the shard's (and maybe the run's) end and its request count."""
        with contextlib.suppress(OciInspectError):
            self.facts.finish_shard(self.run_id, self.shard.index, status, self.counters.requests)
