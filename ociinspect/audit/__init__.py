"""Registry audit: walk a whole registry into a database, then report shared, unique and stale bytes.

    from ociinspect.audit import AuditDB, AuditOptions, Scope, audit, report
    with AuditDB("audit.sqlite3") as db:
        run_id = audit(db, client, Scope("registry.example.com", prefix="team/"), AuditOptions(concurrency=8))
        doc = report(db, str(run_id))

* :mod:`~ociinspect.audit.db` — SQLite (default) or PostgreSQL, versioned migrations;
* :mod:`~ociinspect.audit.walker` — the walk: the queue of repositories and tags, bounded concurrency, resume;
* :mod:`~ociinspect.audit.images` — what each manifest gives, once (through the loader's rules);
* :mod:`~ociinspect.audit.source` — the audit's source over the shared registry source;
* :mod:`~ociinspect.audit.pacer` — request rate and Docker Hub's rate-limit headers;
* :mod:`~ociinspect.audit.facts` — every SQL statement, behind named methods;
* :mod:`~ociinspect.audit.runs` — scope, shards and options; opening runs and reading them back;
* :mod:`~ociinspect.audit.report` — the report, the diff and the run list (pure aggregation).

The tables are documented for plain SQL in ``docs/audit.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ociinspect.audit.db import AuditDB, default_db_path
from ociinspect.audit.facts import AuditFacts
from ociinspect.audit.pacer import Pacer
from ociinspect.audit.report import build_diff, build_report, runs_document
from ociinspect.audit.runs import RunData, RunInfo, collect, list_runs, resolve_run
from ociinspect.audit.walker import AuditOptions, Counters, Scope, ShardSpec, Walker, open_run
from ociinspect.errors import DatabaseError
from ociinspect.registry import RegistryClient

__all__ = [
    "AuditDB",
    "AuditOptions",
    "Counters",
    "DatabaseError",
    "Pacer",
    "RunData",
    "RunInfo",
    "Scope",
    "ShardSpec",
    "Walker",
    "audit",
    "build_diff",
    "build_report",
    "collect",
    "default_db_path",
    "diff",
    "list_runs",
    "open_run",
    "report",
    "resolve_run",
    "runs",
    "runs_document",
]


def audit(
    db: AuditDB,
    client: RegistryClient,
    scope: Scope,
    options: AuditOptions | None = None,
    *,
    label: str | None = None,
    shard: ShardSpec | None = None,
    resume: bool = False,
    counters: Counters | None = None,
    on_start: Callable[[int, str], None] | None = None,
) -> int:
    """Audit ``scope`` into ``db`` (new run, or the one ``label``/``resume`` names); returns the run id.

    Cost: see :mod:`ociinspect.audit.walker`.  Raises what stopped the walk (the run stays resumable).
    """
    options = options or AuditOptions()
    shard = shard or ShardSpec()
    run_id, run_label = open_run(db, scope, options, label=label, shard=shard, resume=resume)
    if on_start is not None:
        on_start(run_id, run_label)
    Walker(db, client, run_id, scope, shard=shard, options=options, counters=counters).run()
    return run_id


def report(db: AuditDB, run: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """The report document of ``run`` (id or label; the latest run when ``None``).  Database reads only."""
    return build_report(collect(db, resolve_run(db, run)), **kwargs)


def diff(db: AuditDB, run_a: str, run_b: str, **kwargs: Any) -> dict[str, Any]:
    """What changed between two runs (tags added, removed, moved; growth).  Database reads only."""
    a, b = collect(db, resolve_run(db, run_a)), collect(db, resolve_run(db, run_b))
    return build_diff(a, b, build_report(a, **kwargs), build_report(b, **kwargs))


def runs(db: AuditDB, registry: str | None = None) -> dict[str, Any]:
    """The run list document.  Database reads only."""
    found = list_runs(db, registry)
    counts = AuditFacts(db).run_counts()
    return runs_document(found, counts)
