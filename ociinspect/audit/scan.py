"""``audit scan`` below the command line: what REGISTRY and ``--repo`` name, the checks on sharding, the layer
cache of ``--deep``, opening the database and the client, the walk, and the run's summary with its exit code
(the one rule, :func:`ociinspect.session.exit_code`)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ociinspect.audit.db import AuditDB
from ociinspect.audit.runs import Scope, ShardSpec
from ociinspect.audit.walker import AuditOptions, Counters, open_run
from ociinspect.errors import ExitCode, UsageError
from ociinspect.model.record import record
from ociinspect.model.reference import DOCKER_HUB, is_docker_hub
from ociinspect.session import exit_code

if TYPE_CHECKING:
    from ociinspect.registry import RegistryClient

__all__ = ["ScanSummary", "parse_registry", "qualify", "scan_registry", "scope_for"]


def parse_registry(text: str) -> Scope:
    """``host[:port][/prefix/]`` → :class:`Scope` (``docker.io`` means Docker Hub's API host).  Cost: string
    operations."""
    body = text.strip()
    for scheme in ("docker://", "https://", "http://"):
        if body.startswith(scheme):
            body = body[len(scheme) :]
    host, _, path = body.partition("/")
    if not host or " " in host:
        raise UsageError(
            f"{text!r} is not a registry", hint="e.g. registry.example.com or 127.0.0.1:5000/team/"
        )
    host = DOCKER_HUB if is_docker_hub(host) else host.lower()
    path = path.strip("/")
    return Scope(host, prefix=f"{path}/" if path else "")


def qualify(scope: Scope, name: str) -> str:
    """A ``--repo`` name under the REGISTRY prefix (``team/`` + ``api``), with Docker Hub's ``library/`` rule."""
    name = name.strip().strip("/")
    if scope.prefix and not name.startswith(scope.prefix):
        name = scope.prefix + name
    if scope.registry == DOCKER_HUB and "/" not in name:
        name = f"library/{name}"
    return name


def scope_for(registry: str, names: Sequence[str] = ()) -> Scope:
    """The scope of ``audit scan REGISTRY`` (with ``--repo``/``--repos-from`` names, qualified)."""
    scope = parse_registry(registry)
    if names:
        scope = Scope(scope.registry, scope.prefix, tuple(qualify(scope, n) for n in names))
    return scope


@record
class ScanSummary:
    """What one ``audit scan`` did: the run, its counts (tags, repositories, requests) and seconds taken."""

    run_id: int
    label: str
    tags_done: int
    tag_errors: int
    repo_errors: int
    repos_total: int
    requests: int
    elapsed: float

    @property
    def exit_code(self) -> ExitCode:
        """0 every tag read; 4 some tags or repositories failed (they are in the report) — the one rule."""
        failed = self.tag_errors or self.repo_errors
        return exit_code([ExitCode.PARTIAL] if failed else [], read=self.tags_done)


def scan_registry(
    scope: Scope,
    db_target: str | None,
    client_factory: Callable[[str], RegistryClient],
    options: AuditOptions,
    *,
    label: str | None = None,
    shard: ShardSpec | None = None,
    resume: bool = False,
    counters: Counters | None = None,
    on_start: Callable[[int, str, str], None] | None = None,
) -> ScanSummary:
    """Audit ``scope`` into the database ``db_target`` (None: the default SQLite file) through a client for its
    host.  ``--deep`` (``options.deep``) lends the layer-index cache shared with ``waste`` to the walk.
    ``on_start(run_id, label, db_display)`` hears when the run is open.  Raises what stopped the walk (the run
    stays resumable).  Cost: see :mod:`ociinspect.audit.walker`."""
    from ociinspect.audit.walker import Walker

    shard = shard or ShardSpec()
    if shard.count > 1 and not label:
        raise UsageError(
            "--shard needs --run LABEL, the same for every worker of the audit",
            hint="e.g. --run nightly-2026-11-28 --shard $JOB_COMPLETION_INDEX/3",
        )
    counters = counters or Counters()
    with contextlib.ExitStack() as stack:
        if options.deep:
            from ociinspect.store import Store

            store = stack.enter_context(Store())  # the layer-index cache shared with `waste`
            options = dataclasses.replace(options, scan_cache=store, size_store=store)
        db = stack.enter_context(AuditDB(db_target))
        client = stack.enter_context(client_factory(scope.registry))
        run_id, run_label = open_run(db, scope, options, label=label, shard=shard, resume=resume)
        if on_start is not None:
            on_start(run_id, run_label, db.display)
        Walker(db, client, run_id, scope, shard=shard, options=options, counters=counters).run()
    snap = counters.snapshot()
    return ScanSummary(
        run_id=run_id,
        label=run_label,
        tags_done=int(snap["tags_done"]),
        tag_errors=int(snap["tag_errors"]),
        repo_errors=int(snap["repo_errors"]),
        repos_total=int(snap["repos_total"]),
        requests=int(snap["requests"]),
        elapsed=float(snap["elapsed"]),
    )
