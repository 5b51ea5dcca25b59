"""Read audit runs back from the database: list them, pick one, and collect one run's facts for the report.

Cost: database reads only (no registry requests).  :func:`collect` reads the run's repositories and tags, then
the facts reachable from the tags' digests (manifests, index children, configs, blobs, base-OS and waste facts)
in batches of :data:`_BATCH` digests, so a report of a 10 000-image run needs a few hundred queries.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from typing import Any

from ociinspect.audit.db import AuditDB
from ociinspect.errors import UsageError
from ociinspect.model.textsafe import parse_uint

__all__ = ["RunData", "RunInfo", "collect", "list_runs", "resolve_run"]

_BATCH = 500


@dataclasses.dataclass(frozen=True, slots=True)
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
    shards = db.query("SELECT shard, status, requests FROM run_shards WHERE run_id = ?", (run_id,))
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
        requests=sum(int(r or 0) for _, _, r in shards),
        options=json.loads(row[8]),
    )


_RUN_COLUMNS = "id, label, registry, scope, shards, status, started_at, finished_at, options"


def list_runs(db: AuditDB, registry: str | None = None) -> list[RunInfo]:
    """Every run, newest first (optionally of one registry).  Cost: 1 + runs queries."""
    if registry:
        rows = db.query(f"SELECT {_RUN_COLUMNS} FROM runs WHERE registry = ? ORDER BY id DESC", (registry,))
    else:
        rows = db.query(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY id DESC")
    return [_run_info(db, r) for r in rows]


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
    rows = []
    run_id = parse_uint(text, max_digits=18)  # ASCII digits only ("²", "١" are labels, not ids)
    if run_id is not None:
        rows = db.query(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
    if not rows:
        rows = db.query(f"SELECT {_RUN_COLUMNS} FROM runs WHERE label = ? ORDER BY id DESC", (text,))
    if not rows:
        raise UsageError(f"no audit run {text!r} in {db.display}", hint="see `ociinspect audit runs`")
    return _run_info(db, rows[0])


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), _BATCH):
        yield items[i : i + _BATCH]


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def collect(db: AuditDB, run: RunInfo) -> RunData:
    """Read one run and the facts reachable from its tags.  Cost: database reads (see the module docstring)."""
    repos = {
        str(n): (str(s), int(c) if c is not None else None, t, e)
        for n, s, c, t, e in db.query(
            "SELECT name, status, tag_count, error_type, error FROM repositories WHERE run_id = ?", (run.id,)
        )
    }
    tags = [
        (str(r), str(t), str(s), d, et, e)
        for r, t, s, d, et, e in db.query(
            "SELECT repository, tag, status, digest, error_type, error FROM tags WHERE run_id = ? "
            "ORDER BY repository, tag",
            (run.id,),
        )
    ]
    manifests: dict[str, tuple[str, int, str, str | None, str | None]] = {}
    refs: dict[str, list[tuple[str, int, str, str, int, str | None, str | None]]] = {}
    todo = sorted({d for *_, d, _, _ in tags if d})
    blob_digests: set[str] = set()
    config_digests: set[str] = set()
    while todo:
        children: set[str] = set()
        for chunk in _chunks(todo):
            for d, mt, size, kind, base_name, base_digest in db.query(
                "SELECT digest, media_type, size, kind, base_name, base_digest FROM manifests "
                f"WHERE complete = 1 AND digest IN ({_marks(len(chunk))})",
                chunk,
            ):
                manifests[str(d)] = (str(mt), int(size), str(kind), base_name, base_digest)
            for m, role, pos, d, mt, size, platform, kind in db.query(
                "SELECT manifest, role, position, digest, media_type, size, platform, kind FROM manifest_refs "
                f"WHERE manifest IN ({_marks(len(chunk))}) ORDER BY manifest, role, position",
                chunk,
            ):
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
    blobs: dict[str, tuple[int, int | None, str]] = {}
    for chunk in _chunks(sorted(blob_digests)):
        for d, size, unc, src in db.query(
            f"SELECT digest, size, uncompressed_size, uncompressed_source FROM blobs WHERE digest IN ({_marks(len(chunk))})",
            chunk,
        ):
            blobs[str(d)] = (int(size), int(unc) if unc is not None else None, str(src))
    configs: dict[str, tuple[str | None, str | None, str | None, str | None, tuple[str, ...]]] = {}
    for chunk in _chunks(sorted(config_digests)):
        for d, created, os_, arch, variant, diff_ids in db.query(
            "SELECT digest, created, os, architecture, variant, diff_ids FROM configs "
            f"WHERE digest IN ({_marks(len(chunk))})",
            chunk,
        ):
            configs[str(d)] = (created, os_, arch, variant, tuple(json.loads(diff_ids)))
    facts: dict[str, dict[str, dict[str, Any]]] = {"os": {}, "waste": {}}
    keys = [f"{kind}:{d}" for d in sorted(manifests) for kind in facts]
    for chunk in _chunks(keys):
        for key, value in db.query(
            f"SELECT key, value FROM facts WHERE key IN ({_marks(len(chunk))})", chunk
        ):
            kind, _, digest = str(key).partition(":")
            facts[kind][digest] = json.loads(value)
    return RunData(run, repos, tags, manifests, refs, blobs, configs, facts["os"], facts["waste"])
