"""Options and helpers shared by every command: one decorator for reading images, one for scanning layers, one
for output; one :func:`emit` that prints every command's result and exits with the one exit-code rule
(:func:`ociinspect.session.exit_code`)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

import click

from ociinspect.content.scan import DEFAULT_MAX_UNCOMPRESSED, ScanOptions
from ociinspect.errors import OciInspectError, UsageError
from ociinspect.image.loader import LoadOptions
from ociinspect.model.image import Platform
from ociinspect.model.reference import parse_reference
from ociinspect.model.textsafe import redact_secrets
from ociinspect.policy.grammar import parse_size
from ociinspect.reports import FORMATS, formats_for, render, safe_text
from ociinspect.reports.data import add_sources, error_document
from ociinspect.session import LoadResult, ReadContext, ScanSettings, Session, exit_code

if TYPE_CHECKING:
    from ociinspect.registry import CredentialResolver, RegistrySettings

__all__ = [
    "SIZE",
    "ReadContext",
    "RegistryAccess",
    "ScanSettings",
    "emit",
    "emit_results",
    "image_options",
    "load_for_command",
    "output_options",
    "progress_bar",
    "registry_options",
    "report_error",
    "scan_options",
    "write_file",
]

F = TypeVar("F", bound=Callable[..., Any])

#: ``--deadline`` when not given, in seconds, by command (None: no limit).  10 minutes covers a large image's
#: manifests, configs and Range reads many times over on a slow link; ``waste`` and ``files`` stream whole
#: layers (1 GiB at 2 MB/s is ~9 minutes), hence 30 minutes; an ``audit scan`` of a large registry runs for
#: hours and is resumable, so it has none unless asked.
DEFAULT_DEADLINES: dict[str, float | None] = {
    "inspect": 600.0,
    "check": 600.0,
    "compare": 600.0,
    "vm": 600.0,
    "waste": 1800.0,
    "files": 1800.0,
    "audit": None,
}
_FALLBACK_DEADLINE = 600.0


def _default_deadline() -> float | None:
    """The default deadline of the running command (by its top-level name, e.g. ``audit`` for ``audit scan``)."""
    ctx = click.get_current_context(silent=True)
    names: list[str] = []
    while ctx is not None:
        if ctx.info_name:
            names.append(ctx.info_name)
        ctx = ctx.parent
    for name in reversed(names):
        if name in DEFAULT_DEADLINES:
            return DEFAULT_DEADLINES[name]
    return _FALLBACK_DEADLINE


def report_error(error: OciInspectError) -> None:
    """One line on stderr (what was being done, why it failed), plus the hint line when there is one.
    Control characters quoted from an image or a registry are escaped (:func:`~ociinspect.reports.safe_text`)."""
    click.echo(f"ociinspect: error: {safe_text(redact_secrets(error.message))}", err=True)
    if error.hint:
        click.echo(f"  hint: {safe_text(redact_secrets(error.hint))}", err=True)


def _registries(refs: Sequence[str]) -> set[str]:
    out = set()
    for text in refs:
        ref = parse_reference(text)
        if ref.registry:
            out.add(ref.registry)
    return out


@dataclasses.dataclass(frozen=True)
class RegistryAccess:
    """What the registry and credential options gave: transport settings and explicit credentials (if any)."""

    settings: RegistrySettings
    username: str | None = None
    secret: str | None = dataclasses.field(default=None, repr=False)

    def resolver(self, registries: set[str]) -> CredentialResolver:
        """Credential lookup for a command that talks to ``registries``; explicit credentials (from
        ``--username``/``--password-stdin``) are bound to the one registry named, never sent to another."""
        from ociinspect.registry import CredentialResolver, Credentials

        if self.username is None:
            return CredentialResolver()
        if len(registries) != 1:
            raise UsageError(
                f"--username applies to exactly one registry, but the command names {len(registries)}",
                hint="log in with `docker login` / an auth file for several registries",
            )
        (host,) = registries
        return CredentialResolver(explicit={host: Credentials(username=self.username, password=self.secret)})


def registry_options(func: F) -> F:
    """Registry and credential options shared by every command that talks to registries (one decorator).

    The wrapped command receives ``registry_access: RegistryAccess`` instead of the individual options.  The password
    is read from stdin here, once; ``--password`` on the command line is refused.
    """

    @click.option(
        "--plain-http",
        is_flag=True,
        help="Talk plain HTTP to the registry (loopback registries fall back to it on their own).",
    )
    @click.option("--insecure", is_flag=True, help="Skip TLS certificate verification (still HTTPS).")
    @click.option(
        "--ca-file",
        type=click.Path(exists=True, dir_okay=False),
        help="Extra CA bundle (PEM) to trust for the registry.",
    )
    @click.option("--username", "-u", help="Registry user name (the password comes from --password-stdin).")
    @click.option(
        "--password-stdin", is_flag=True, help="Read the registry password or token from standard input."
    )
    @click.option("--password", "password_argv", hidden=True, help="Refused: use --password-stdin.")
    @click.option(
        "--timeout",
        type=click.FloatRange(min=0.1),
        default=30.0,
        show_default=True,
        help="Seconds to wait for a registry to answer or send bytes.",
    )
    @click.option(
        "--deadline",
        "deadline_text",
        metavar="DURATION",
        help="Total time for the whole command, retries, redirects, tokens and downloads included "
        "(e.g. 90s, 5m, 1h30m; 0 or none: no limit).  Default: 10m for inspect, check, compare and vm; "
        "30m for waste and files; none for audit.  On expiry: exit 3 (4 if other images were read).",
    )
    @click.option(
        "--retries",
        type=click.IntRange(0, 10),
        default=3,
        show_default=True,
        help="Retries on connection errors, 429 and 502/503/504 (Retry-After honoured, capped).",
    )
    @functools.wraps(func)
    def wrapper(
        *args: Any,
        plain_http: bool,
        insecure: bool,
        ca_file: str | None,
        username: str | None,
        password_stdin: bool,
        password_argv: str | None,
        timeout: float,
        retries: int,
        deadline_text: str | None,
        **kwargs: Any,
    ) -> Any:
        from ociinspect.registry import Deadline, HostSettings, RegistrySettings, parse_duration

        if deadline_text is None:
            seconds = _default_deadline()
        else:
            try:
                seconds = parse_duration(deadline_text)
            except ValueError as exc:
                raise UsageError(f"--deadline: {exc}") from None
        deadline = Deadline.after(seconds) if seconds is not None else None

        if password_argv is not None:
            raise UsageError(
                "refusing --password: a password on the command line leaks into shell history and `ps`",
                hint='pipe it instead: echo "$TOKEN" | ociinspect … --username USER --password-stdin',
            )
        secret = None
        if username or password_stdin:
            if not password_stdin or not username:
                raise UsageError(
                    "--username and --password-stdin go together",
                    hint="give both, or neither to use docker/podman logins",
                )
            secret = sys.stdin.readline().rstrip("\r\n")
            if not secret:
                raise UsageError("--password-stdin: nothing was read from standard input")
        settings = RegistrySettings(
            default=HostSettings(plain_http=plain_http, insecure=insecure, ca_file=ca_file),
            read_timeout=timeout,
            connect_timeout=min(timeout, 10.0),
            retries=retries,
            deadline=deadline,
        )
        return func(*args, registry_access=RegistryAccess(settings, username, secret), **kwargs)

    return wrapper  # type: ignore[return-value]


def image_options(func: F) -> F:
    """Registry, credential and platform options shared by every command that reads images.

    The wrapped command receives ``read: ReadContext`` instead of the individual options.
    """

    @click.option(
        "--platform",
        "platform_text",
        metavar="OS/ARCH[/VARIANT]",
        help="Platform to pick from an index (default: this host's linux platform).",
    )
    @click.option(
        "--all-platforms", is_flag=True, help="Read every platform of an index (attestations skipped)."
    )
    @registry_options
    @functools.wraps(func)
    def wrapper(
        *args: Any,
        registry_access: RegistryAccess,
        platform_text: str | None,
        all_platforms: bool,
        **kwargs: Any,
    ) -> Any:
        platform = None
        if platform_text:
            try:
                platform = Platform.parse(platform_text)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        resolver = registry_access.resolver(_registries(kwargs.get("refs", ())))
        session = Session(registry_access.settings, resolver)
        from ociinspect.store import Store

        store = Store()  # immutable, digest-keyed facts (base-OS files of layers); opened on first use
        session.os_cache = (store.get_fact, store.put_fact)
        options = LoadOptions(platform=platform, size_store=store)  # remembered sizes: docs/sizes.md
        try:
            return func(*args, read=ReadContext(session, options, all_platforms), **kwargs)
        finally:
            session.close()
            store.close()

    return wrapper  # type: ignore[return-value]


class _Formats(click.Choice):  # type: ignore[type-arg]
    """The format vocabulary of every command: ``table`` (default), ``json``, ``markdown``, ``csv`` where the
    view is tabular, ``html`` where a report exists, and the CI formats of ``check``.  ``text`` (``check``'s old
    name for ``table``) is accepted as a deprecated alias of ``table``, with a note on stderr."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value == "text":
            click.echo("ociinspect: note: --format text is deprecated: it is --format table", err=True)
            return "table"
        return super().convert(value, param, ctx)


@overload
def output_options(func_or_view: F) -> F: ...
@overload
def output_options(func_or_view: str) -> Callable[[F], F]: ...
def output_options(func_or_view: F | str) -> F | Callable[[F], F]:
    """``--format`` for every command; the command receives ``fmt``.

    ``@output_options`` offers table/json/markdown; ``@output_options("compare")`` offers every format the
    ``compare`` view can be rendered in (see :func:`ociinspect.reports.formats_for`).
    """
    formats = FORMATS if callable(func_or_view) else formats_for(func_or_view)
    option = click.option(
        "--format",
        "-f",
        "fmt",
        type=_Formats([f for f in formats if f != "text"]),
        default="table",
        show_default=True,
        help="Output format on stdout.",
    )
    if callable(func_or_view):
        return option(func_or_view)
    return option


class _SizeType(click.ParamType):  # type: ignore[type-arg]
    """A size in bytes, in the one size grammar of every command line and policy file (go-humanize's, as dive):
    ``2G`` = ``2GB`` = 2·10⁹ bytes, ``2GiB`` = ``2Gi`` = 2·2³⁰, ``1000000`` bytes (``docs/cli.md``, "Sizes")."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


#: the click type of every size option (``--max-uncompressed 64GiB``)
SIZE = _SizeType()

#: Images smaller than this (compressed bytes to scan) get no progress bar: they take well under a second.
PROGRESS_MIN_BYTES = 64 << 20


@contextlib.contextmanager
def progress_bar(total: int, label: str) -> Iterator[Callable[[int], None] | None]:
    """The command line's :data:`~ociinspect.session.Progress`: a bar on stderr for long scans, only when
    stderr is a terminal."""
    if total < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr, show_pos=False) as bar:
        yield bar.update


def scan_options(func: F) -> F:
    """``--hash``, ``--cache-dir``, ``--no-cache``, ``--max-uncompressed``, ``--workers``, ``--no-estargz``;
    the command receives ``scan: ScanSettings``."""

    @click.option("--hash", "hash_files", is_flag=True, help="Hash every file's content (finds duplicates).")
    @click.option(
        "--cache-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Directory of the layer-index cache (default: $XDG_CACHE_HOME/ociinspect).",
    )
    @click.option("--no-cache", is_flag=True, help="Neither read nor write the layer-index cache.")
    @click.option(
        "--max-uncompressed",
        type=SIZE,
        default=DEFAULT_MAX_UNCOMPRESSED,
        show_default="64GiB",
        help="Refuse a layer that inflates past SIZE (decompression bombs; 2G = 2·10⁹ bytes, 2GiB = 2·2³⁰).",
    )
    @click.option(
        "--workers", type=click.IntRange(1, 32), default=4, show_default=True, help="Layers scanned at once."
    )
    @click.option(
        "--no-estargz",
        is_flag=True,
        help="Stream eStargz layers too, instead of reading their table of contents with Range requests.",
    )
    @functools.wraps(func)
    def wrapper(
        *args: Any,
        hash_files: bool,
        cache_dir: Path | None,
        no_cache: bool,
        max_uncompressed: int,
        workers: int,
        no_estargz: bool,
        **kwargs: Any,
    ) -> Any:
        if no_cache and cache_dir is not None:
            raise UsageError("--cache-dir and --no-cache contradict each other")
        from ociinspect.store import default_cache_dir

        settings = ScanSettings(
            ScanOptions(
                hash_files=hash_files,
                max_uncompressed=max_uncompressed,
                workers=workers,
                use_estargz_toc=not no_estargz,
            ),
            None if no_cache else (cache_dir or default_cache_dir()),
        )
        return func(*args, scan=settings, **kwargs)

    return wrapper  # type: ignore[return-value]


def load_for_command(read: ReadContext, refs: Sequence[str], *, with_os: bool = False) -> list[LoadResult]:
    """Load ``refs`` concurrently for a multi-image command; failures are reported on stderr as they are known
    (and kept in the results for the exit code)."""
    results = read.session.load_many(
        list(refs), read.options, all_platforms=read.all_platforms, with_os=with_os
    )
    for r in results:
        if r.error:
            report_error(r.error)
    return results


def write_file(path: Path, text: str, *, append: bool = False) -> None:
    """Write (or append) ``text`` and a final newline to ``path``; an unwritable path is a usage error."""
    try:
        with path.open("a" if append else "w", encoding="utf-8") as fh:
            fh.write(text if text.endswith("\n") else text + "\n")
    except OSError as exc:
        raise UsageError(
            f"writing {path}: {exc.strerror or exc}", hint="check the directory exists and is writable"
        ) from None


def emit(
    view: str,
    fmt: str,
    docs: Sequence[dict[str, Any]],
    *,
    code: int = 0,
    as_list: bool = False,
    output: Path | None = None,
    warnings: Sequence[str] = (),
) -> None:
    """The one output path of every command: ``docs`` rendered in ``fmt`` on stdout (or written to ``output``)
    — in JSON every document, error documents included, in other formats only what was read — then every
    warning once on stderr (the documents' ``warnings`` and ``warnings``), then exit with ``code`` (returns
    when it is 0).  Errors were reported when they were met (:func:`report_error`)."""
    shown = list(docs) if fmt == "json" else [d for d in docs if "error" not in d]
    if shown:
        text = render(view, fmt, shown, as_list=as_list)
        if output is not None:
            write_file(output, text)
        else:
            click.echo(text)
    lines = [*warnings, *(f"{d.get('reference', '')}: {w}" for d in docs for w in d.get("warnings", ()))]
    for line in dict.fromkeys(lines):
        click.echo(safe_text(f"ociinspect: warning: {line}"), err=True)
    if code:
        raise SystemExit(int(code))


def emit_results(
    view: str,
    fmt: str,
    doc: dict[str, Any],
    results: Sequence[LoadResult],
    *,
    undecidable: bool = False,
    warnings: Sequence[str] = (),
) -> None:
    """Print one document built from ``results`` (failed refs listed under ``errors``; nothing when every ref
    failed) and exit by the one rule: 0 all read, 4 some failed (or ``undecidable``), the error's code when all
    failed."""
    failed = [r for r in results if r.error]
    doc["errors"] = [
        error_document(r.reference, r.error)["error"] | {"reference": r.reference} for r in failed if r.error
    ]
    add_sources(doc, [img for r in results for img in r.images])  # each image's source URL, as written
    shown = [doc] if len(failed) < len(results) or not results else []
    code = exit_code(
        [r.error for r in failed if r.error], read=len(results) - len(failed), undecidable=undecidable
    )
    emit(view, fmt, shown, code=code, warnings=warnings)
