"""``ociinspect audit scan|report|runs|diff``: thin commands over :mod:`ociinspect.audit`."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ociinspect.audit import AuditDB, AuditOptions, Counters, ShardSpec, default_db_path, diff, report, runs
from ociinspect.audit.scan import parse_registry, scan_registry, scope_for
from ociinspect.audit.scan import qualify as _qualify
from ociinspect.cli import cli
from ociinspect.cli.options import (
    RegistryAccess,
    emit,
    jobs,
    jobs_option,
    note,
    output_options,
    quiet_option,
    registry_options,
    result,
    status_line,
)
from ociinspect.errors import UsageError
from ociinspect.session import exit_code

__all__ = ["_qualify", "audit_group", "parse_registry"]

F = TypeVar("F", bound=Callable[..., Any])


def registry_client_options(func: F) -> F:
    """The shared registry and credential options (:func:`ociinspect.cli.options.registry_options`); the command
    receives ``client_factory``, which makes a :class:`~ociinspect.registry.RegistryClient` for the audited host
    (explicit credentials bound to that host only)."""

    @registry_options
    @functools.wraps(func)
    def wrapper(*args: Any, registry_access: RegistryAccess, **kwargs: Any) -> Any:
        from ociinspect.registry import RegistryClient

        def factory(host: str) -> RegistryClient:
            return RegistryClient(registry_access.settings, registry_access.resolver({host}))

        return func(*args, client_factory=factory, **kwargs)

    return wrapper  # type: ignore[return-value]


def db_option(func: F) -> F:
    return click.option(
        "--db",
        "db_target",
        metavar="PATH|URL",
        envvar="OCIINSPECT_AUDIT_DB",
        help=f"Audit database: a SQLite file (default {default_db_path()}) or postgresql://… "
        "(env OCIINSPECT_AUDIT_DB).",
    )(func)


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def progress_line(snap: dict[str, Any]) -> str:
    """One status line: done/remaining repositories, tags and manifests, rate and ETA (pure).

    Tags are known only once their repository is listed: until then the total is extrapolated from the
    repositories listed so far (shown with ``~``)."""
    elapsed = max(snap["elapsed"], 1e-6)
    rate = snap["tags_done"] / elapsed
    listed, total_repos = snap.get("repos_listed", 0), snap["repos_total"]
    tags_total: float = snap["tags_total"]
    approx = ""
    if snap["catalog_done"] and 0 < listed < total_repos:
        tags_total = snap["tags_total"] * total_repos / listed
        approx = "~"
    left = max(0, round(tags_total) - snap["tags_done"])
    eta = left / rate if rate > 0 and snap["catalog_done"] and listed else None
    repos_total = f"{total_repos}" if snap["catalog_done"] else "…"
    return (
        f"repos {snap['repos_done']}/{repos_total} · tags {snap['tags_done']}/{approx}{round(tags_total)} "
        f"({approx}{left} left, {snap['tag_errors']} failed) · manifests {snap['manifests']} "
        f"· {rate:.0f} tags/s · {snap['requests']} requests · ETA {approx}{_fmt_duration(eta)}"
    )


def _read_repos(path: Path | None, repos: tuple[str, ...]) -> tuple[str, ...]:
    names = list(repos)
    if path is not None:
        try:
            text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--repos-from {path}: {exc.strerror}") from None
        names += [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return tuple(dict.fromkeys(names))


@cli.group("audit")
def audit_group() -> None:
    """Audit a whole registry: walk every repository, tag and manifest into a database (SQLite, or PostgreSQL
    shared by several workers), then report logical vs deduplicated storage, per-repository unique and shared
    bytes, the most shared layers and their bases, the largest, most wasted and stale images, multi-arch
    coverage, the VM equivalent and every error.  See docs/audit.md.

    \b
    Examples:
      ociinspect audit scan registry.example.com/team/ && ociinspect audit report
      ociinspect audit report -f html > audit.html
    """


@audit_group.command("scan")
@click.argument("registry")
@click.option(
    "--repo",
    "repos",
    multiple=True,
    metavar="NAME",
    help="Audit this repository (repeatable); no catalog needed (e.g. Docker Hub).",
)
@click.option(
    "--repos-from",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Repository names, one per line ('-': stdin); no catalog needed.",
)
@click.option(
    "--resume", is_flag=True, help="Continue the latest unfinished run of this registry (or --run)."
)
@click.option(
    "--run",
    "label",
    metavar="LABEL",
    help="Name of the run; workers of one sharded audit share it (default: the UTC time).",
)
@click.option(
    "--shard",
    "shard_text",
    metavar="K/N",
    help="Audit only shard K of N (0-based) of the repositories; needs --run.",
)
@jobs_option
@click.option(
    "--max-rps",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="At most this many requests per second (0: no cap).",
)
@click.option(
    "--reserve",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Stop (resumable) when ratelimit-remaining falls to this many requests.",
)
@click.option(
    "--deep",
    is_flag=True,
    help="Also scan every image for wasted space (streams every layer once; layer indexes are cached).",
)
@click.option(
    "--os/--no-os",
    "detect_os",
    default=True,
    show_default=True,
    help="Find each image's base OS (for the VM equivalent): a partial read of each base layer, once.",
)
@click.option(
    "--retry-errors", is_flag=True, help="Fetch again digests that failed for good in earlier runs."
)
@click.option(
    "--all-cpus",
    is_flag=True,
    help="Let the walk's threads run on every CPU (default: on one, where they hand over the interpreter lock "
    "cheaply; --deep always uses every CPU).",
)
@quiet_option
@db_option
@registry_client_options
def scan(
    registry: str,
    repos: tuple[str, ...],
    repos_from: Path | None,
    resume: bool,
    label: str | None,
    shard_text: str | None,
    max_rps: float,
    reserve: int,
    deep: bool,
    detect_os: bool,
    retry_errors: bool,
    all_cpus: bool,
    db_target: str | None,
    client_factory: Callable[[str], Any],
) -> None:
    """Walk REGISTRY (host[:port], optionally /prefix/) into the audit database: repositories from the catalog
    (or --repo/--repos-from), their tags, every manifest (indexes per platform), config and layer size. Each
    digest is fetched once ever; a re-audit of an unchanged registry costs about one HEAD per tag. Interrupted
    (Ctrl-C, kill, network loss)? Run it again with --resume: nothing fetched is lost.

    Exit 0 when every tag was read, 4 when some failed (they are in the report), 3 when the walk stopped.

    \b
    Examples:
      ociinspect audit scan registry.example.com/team/
      ociinspect audit scan docker.io --repos-from repos.txt --jobs 4 --reserve 10
      ociinspect audit scan reg.internal:5000 --db postgresql://audit@db/audit --run nightly --shard 0/3
    """
    scope = scope_for(registry, _read_repos(repos_from, repos))
    options = AuditOptions(
        concurrency=jobs(),
        max_rps=max_rps,
        deep=deep,
        detect_os=detect_os,
        retry_errors=retry_errors,
        reserve=reserve,
        one_cpu=not all_cpus,
    )
    counters = Counters()
    shard = ShardSpec.parse(shard_text) if shard_text else ShardSpec()
    where = f"{scope.registry}{'/' + scope.prefix if scope.prefix else ''}, shard {shard}"

    def started(run_id: int, run_label: str, db: str) -> None:
        note(f"audit run {run_id} ({run_label}) of {where}, into {db}")

    with status_line(lambda: progress_line(counters.snapshot())):
        done = scan_registry(
            scope,
            db_target,
            client_factory,
            options,
            label=label,
            shard=shard,
            resume=resume,
            counters=counters,
            on_start=started,
        )
    result(
        f"run {done.run_id}: {done.tags_done} tags ({done.tag_errors} failed) in {done.repos_total} "
        f"repositories, {done.requests} requests in {done.elapsed:.1f} s; see `ociinspect audit report {done.run_id}`"
    )
    if done.exit_code:  # this run's failures, found by this process or an earlier one
        raise SystemExit(int(done.exit_code))


@audit_group.command("report")
@click.argument("run", required=False)
@click.option(
    "--stale-days",
    type=click.IntRange(min=0),
    default=180,
    show_default=True,
    help="Tags whose image was created more than this many days ago are stale.",
)
@click.option(
    "--top",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Rows in the ranked lists (0: all).",
)
@click.option(
    "--vm-profile", type=click.Path(dir_okay=False), help="TOML overriding the VM model (docs/vm-model.md)."
)
@db_option
@output_options("audit")
def report_cmd(
    run: str | None, stale_days: int, top: int, vm_profile: str | None, db_target: str | None, fmt: str
) -> None:
    """Report one run (id or label; default: the latest): logical vs deduplicated size, per repository tags,
    images, unique and shared bytes, top shared layers with their base, largest/most wasted/stale images,
    multi-arch coverage, VM equivalent and errors. Database reads only: no registry request.

    \b
    Examples:
      ociinspect audit report
      ociinspect audit report nightly -f json | jq .deduplicated_size
      ociinspect audit report -f csv > repos.csv; ociinspect audit report -f html > audit.html
    """
    from ociinspect.analyzers.vm_profiles import load_parameters

    params = load_parameters(vm_profile)
    with AuditDB(_existing(db_target)) as db:
        doc = report(db, run, stale_days=stale_days, top=top, vm_params=params)
    emit("audit", fmt, [doc], code=exit_code([], read=1))


@audit_group.command("runs")
@db_option
@output_options("audit-runs")
def runs_cmd(db_target: str | None, fmt: str) -> None:
    """List the audit runs in the database, newest first: status, shards, repositories, tags, errors, requests."""
    with AuditDB(_existing(db_target)) as db:
        doc = runs(db)
    emit("audit-runs", fmt, [doc], code=exit_code([], read=1))


@audit_group.command("diff")
@click.argument("run_a")
@click.argument("run_b")
@db_option
@output_options("audit-diff")
def diff_cmd(run_a: str, run_b: str, db_target: str | None, fmt: str) -> None:
    """What changed from RUN_A to RUN_B (ids or labels): tags added, removed and moved, and storage growth
    per repository.

    \b
    Example:
      ociinspect audit diff 3 4
    """
    with AuditDB(_existing(db_target)) as db:
        doc = diff(db, run_a, run_b)
    emit("audit-diff", fmt, [doc], code=exit_code([], read=1))


def _existing(target: str | None) -> str:
    """Reading commands do not create a SQLite database by mistake."""
    path = target or os.environ.get("OCIINSPECT_AUDIT_DB") or str(default_db_path())
    if "://" not in path and not Path(path).exists():
        raise UsageError(
            f"no audit database at {path}",
            hint="run `ociinspect audit scan REGISTRY` first, or pass --db PATH",
        )
    return path
