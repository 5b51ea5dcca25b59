"""Options and helpers shared by every command: one decorator for reading images, one for output."""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

import click

from ociinspect.errors import ExitCode, OciInspectError, UsageError
from ociinspect.image.loader import LoadOptions
from ociinspect.model.image import Platform
from ociinspect.model.reference import parse_reference
from ociinspect.model.textsafe import redact_secrets
from ociinspect.reports import FORMATS, formats_for, render, safe_text
from ociinspect.reports.data import error_document
from ociinspect.session import LoadResult, Session

if TYPE_CHECKING:
    from ociinspect.registry import CredentialResolver, RegistrySettings

__all__ = [
    "ReadContext",
    "RegistryAccess",
    "emit_results",
    "exit_code",
    "image_options",
    "load_for_command",
    "output_options",
    "registry_options",
    "report_error",
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


class ReadContext:
    """What every image-reading command needs: a :class:`Session` and :class:`LoadOptions`."""

    def __init__(self, session: Session, options: LoadOptions, all_platforms: bool) -> None:
        self.session = session
        self.options = options
        self.all_platforms = all_platforms


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
        type=click.Choice(formats),
        default="table",
        show_default=True,
        help="Output format on stdout.",
    )
    if callable(func_or_view):
        return option(func_or_view)
    return option


def exit_code(results: Sequence[LoadResult]) -> int:
    errors = [r.error for r in results if r.error]
    if not errors:
        return ExitCode.OK
    if len(errors) < len(results):
        return ExitCode.PARTIAL
    return max(int(e.exit_code) for e in errors)


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


def emit_results(view: str, fmt: str, doc: dict[str, Any], results: Sequence[LoadResult]) -> None:
    """Print one document built from ``results`` (failed refs listed under ``errors``) and exit with the code
    the results call for: 0 all read, 4 some failed, the error's own code when all failed."""
    failed = [r for r in results if r.error]
    doc.setdefault("errors", [])
    doc["errors"] = [
        error_document(r.reference, r.error)["error"] | {"reference": r.reference} for r in failed if r.error
    ]
    if len(failed) < len(results) or not results:
        click.echo(render(view, fmt, [doc]))
    code = exit_code(results)
    if code:
        raise SystemExit(code)
