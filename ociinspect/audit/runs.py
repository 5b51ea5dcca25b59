"""Audit runs: what to audit (:class:`Scope`, :class:`ShardSpec`, :class:`AuditOptions`), opening a run
(:func:`open_run`), and reading runs back: list them, pick one, and collect one run's facts for the report.

Cost: database statements only (no registry requests).  :func:`collect` reads the run's repositories and tags, then
the facts reachable from the tags' digests (manifests, index children, configs, blobs, base-OS and waste facts)
in batches of 500 digests (:mod:`ociinspect.audit.facts`), so a report of a 10 000-image run needs a few hundred queries.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

from ociinspect.audit.db import AuditDB
from ociinspect.audit.facts import AuditFacts
from ociinspect.content.scan import ScanCache, ScanOptions
from ociinspect.errors import UsageError
from ociinspect.image.sizes import SizeFacts
from ociinspect.model.record import record
from ociinspect.model.textsafe import parse_uint

__all__ = [
    "SMALL_BLOB",
    "AuditOptions",
    "RunData",
    "RunInfo",
    "Scope",
    "ShardSpec",
    "collect",
    "list_runs",
    "open_run",
    "resolve_run",
]

#: Layers up to this size (bytes) are read whole in one request instead of a trailer Range read.
SMALL_BLOB = 64 * 1024


@record
class Scope:
    """What to audit: a registry host, an optional repository prefix, or an explicit list of repositories."""

    registry: str
    prefix: str = ""
    repos: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps({"prefix": self.prefix, "repos": list(self.repos)}, sort_keys=True)

    def wants(self, repository: str) -> bool:
        return repository.startswith(self.prefix)


@record
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
    registry's ``ratelimit-remaining`` falls to this many requests; ``size_store``: sizes known from earlier
    verified streams (a deep scan), reused where a cheap estimate is not trusted."""

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
    size_store: SizeFacts | None = None  # remembered verified sizes by diff_id (the --deep store)
    #: run the walk's threads on one CPU (``--all-cpus`` turns it off; ``--deep`` never uses it): see
    #: :func:`ociinspect.audit.walker.one_cpu`
    one_cpu: bool = True

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
    facts = AuditFacts(db)
    with db.transaction():
        if label is None and resume:
            label = facts.unfinished_run_label(scope.registry)
            if label is None:
                raise UsageError(
                    f"no unfinished audit of {scope.registry} to resume in {db.display}",
                    hint="start one without --resume (see `ociinspect audit runs`)",
                )
        if label is None:
            label = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        found = facts.find_run(scope.registry, label)
        if found is None:
            if resume:
                raise UsageError(
                    f"no audit run {label!r} of {scope.registry} in {db.display} to resume",
                    hint="see `ociinspect audit runs`",
                )
            facts.create_run(label, scope.registry, scope.to_json(), shard.count, options.to_json())
            found = facts.find_run(scope.registry, label)
            assert found is not None
        run_id, run_scope, shards = found
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
        facts.start_shard(run_id, shard.index)
    return run_id, label


@record
class RunInfo:
    """One row of ``runs`` plus its shards' states and request counts."""

    id: int
    label: str
    registry: str
    scope: dict[str, Any]
    shards: int
    status: str
    started_at: float
    finished_at: float | None
    shard_status: dict[int, str]
    requests: int
    options: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        done = sum(1 for s in self.shard_status.values() if s == "complete")
        return {
            "id": self.id,
            "label": self.label,
            "registry": self.registry,
            "prefix": self.scope.get("prefix", ""),
            "status": self.status,
            "complete": self.status == "complete",
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "shards": self.shards,
            "shards_complete": done,
            "shard_status": {str(k): v for k, v in sorted(self.shard_status.items())},
            "requests": self.requests,
            "options": self.options,
        }


@dataclasses.dataclass
class RunData:
    """Everything :func:`ociinspect.audit.report.build_report` needs about one run (plain values, no I/O).

    ``repos``: name → (status, tag_count, error_type, error); ``tags``: (repository, tag, status, digest,
    error_type, error) rows; ``manifests``: digest → (media_type, size, kind, base_name, base_digest);
    ``refs``: manifest digest → [(role, position, digest, media_type, size, platform, kind)];
    ``blobs``: digest → (size, uncompressed_size, uncompressed_source); ``configs``: digest → (created, os,
    architecture, variant, diff_ids); ``os``/``waste``: manifest digest → fact document.
    """

    run: RunInfo
    repos: dict[str, tuple[str, int | None, str | None, str | None]]
    tags: list[tuple[str, str, str, str | None, str | None, str | None]]
    manifests: dict[str, tuple[str, int, str, str | None, str | None]]
    refs: dict[str, list[tuple[str, int, str, str, int, str | None, str | None]]]
    blobs: dict[str, tuple[int, int | None, str]]
    configs: dict[str, tuple[str | None, str | None, str | None, str | None, tuple[str, ...]]]
    os: dict[str, dict[str, Any]]
    waste: dict[str, dict[str, Any]]


def _run_info(db: AuditDB, row: Sequence[Any]) -> RunInfo:
    run_id = int(row[0])
    shards = AuditFacts(db).shards(run_id)
    return RunInfo(
        id=run_id,
        label=str(row[1]),
        registry=str(row[2]),
        scope=json.loads(row[3]),
        shards=int(row[4]),
        status=str(row[5]),
        started_at=float(row[6]),
        finished_at=float(row[7]) if row[7] is not None else None,
        shard_status={int(s): str(st) for s, st, _ in shards},
        requests=sum(r for _, _, r in shards),
        options=json.loads(row[8]),
    )


def list_runs(db: AuditDB, registry: str | None = None) -> list[RunInfo]:
    """Every run, newest first (optionally of one registry).  Cost: 1 + runs queries."""
    return [_run_info(db, r) for r in AuditFacts(db).run_rows(registry)]


def resolve_run(db: AuditDB, text: str | None, registry: str | None = None) -> RunInfo:
    """The run named by ``text`` (its id, or its label), or the latest run (of ``registry``) when ``None``."""
    if text is None:
        runs = list_runs(db, registry)
        if not runs:
            raise UsageError(
                f"no audit runs in {db.display}" + (f" for {registry}" if registry else ""),
                hint="run `ociinspect audit scan REGISTRY` first (or pass the --db it used)",
            )
        return runs[0]
    run_id = parse_uint(text, max_digits=18)  # ASCII digits only ("²", "١" are labels, not ids)
    row = AuditFacts(db).run_row(run_id, text)
    if row is None:
        raise UsageError(f"no audit run {text!r} in {db.display}", hint="see `ociinspect audit runs`")
    return _run_info(db, row)


def collect(db: AuditDB, run: RunInfo) -> RunData:
    """Read one run and the facts reachable from its tags.  Cost: database reads (see the module docstring)."""
    facts = AuditFacts(db)
    repos = {
        str(n): (str(s), int(c) if c is not None else None, t, e)
        for n, s, c, t, e in facts.repository_rows(run.id)
    }
    tags = [(str(r), str(t), str(s), d, et, e) for r, t, s, d, et, e in facts.tag_rows(run.id)]
    manifests: dict[str, tuple[str, int, str, str | None, str | None]] = {}
    refs: dict[str, list[tuple[str, int, str, str, int, str | None, str | None]]] = {}
    todo = sorted({d for *_, d, _, _ in tags if d})
    blob_digests: set[str] = set()
    config_digests: set[str] = set()
    while todo:
        children: set[str] = set()
        for d, mt, size, kind, base_name, base_digest in facts.complete_manifest_rows(todo):
            manifests[str(d)] = (str(mt), int(size), str(kind), base_name, base_digest)
        for m, role, pos, d, mt, size, platform, kind in facts.ref_rows(todo):
            refs.setdefault(str(m), []).append(
                (str(role), int(pos), str(d), str(mt), int(size), platform, kind)
            )
            if role == "manifest":
                children.add(str(d))
            else:
                blob_digests.add(str(d))
                if role == "config":
                    config_digests.add(str(d))
        todo = sorted(children - manifests.keys())
    blobs: dict[str, tuple[int, int | None, str]] = {
        str(d): (int(size), int(unc) if unc is not None else None, str(src))
        for d, size, unc, src in facts.blob_rows(sorted(blob_digests))
    }
    configs: dict[str, tuple[str | None, str | None, str | None, str | None, tuple[str, ...]]] = {
        str(d): (created, os_, arch, variant, tuple(json.loads(diff_ids)))
        for d, created, os_, arch, variant, diff_ids in facts.config_rows(sorted(config_digests))
    }
    found: dict[str, dict[str, dict[str, Any]]] = {"os": {}, "waste": {}}
    keys = [f"{kind}:{d}" for d in sorted(manifests) for kind in found]
    for key, value in facts.fact_rows(keys):
        kind, _, digest = str(key).partition(":")
        found[kind][digest] = json.loads(value)
    return RunData(run, repos, tags, manifests, refs, blobs, configs, found["os"], found["waste"])
