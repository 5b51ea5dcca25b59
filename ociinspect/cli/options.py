"""Options and helpers shared by every command: one decorator for reading images, one for scanning layers, one
for output; one :func:`emit` that prints every command's result and exits with the one exit-code rule
(:func:`ociinspect.session.exit_code`); one progress helper (:func:`progress_bar`), one way to write the output
(:func:`write_output`: stdout or ``-o FILE``, atomically) and one help text per shared option (:data:`HELP`,
held by ``tests/unit/test_cli_consistency.py``).

Shared state of one command line (``-o``, ``-q``, ``-j``) lives in the click context's ``meta``, so every
command gets the options without a parameter of its own."""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar, overload

import click

from ociinspect import threads
from ociinspect.errors import OciInspectError, UsageError
from ociinspect.image.loader import LoadOptions
from ociinspect.image.loader import parse_platform as loader_parse_platform
from ociinspect.model.image import Platform
from ociinspect.model.record import record
from ociinspect.model.reference import Reference, parse_reference
from ociinspect.model.textsafe import redact_secrets
from ociinspect.reports import FORMATS, formats_for, render, safe_text
from ociinspect.reports.data import add_sources, error_document
from ociinspect.session import LoadResult, ReadContext, ScanSettings, Session, exit_code

if TYPE_CHECKING:
    from ociinspect.registry import CredentialResolver, RegistrySettings

__all__ = [
    "DEFAULT_JOBS",
    "HELP",
    "SIZE",
    "ReadContext",
    "RegistryAccess",
    "ScanSettings",
    "emit",
    "emit_results",
    "image_options",
    "jobs",
    "jobs_option",
    "load_for_command",
    "note",
    "output_option",
    "output_options",
    "output_path",
    "output_value_option",
    "progress_bar",
    "quiet_option",
    "registry_options",
    "report_error",
    "result",
    "scan_options",
    "status_line",
    "stderr_chatty",
    "warn",
    "write_file",
    "write_output",
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
    "diff": 1800.0,  # streams the layers the two images do not share
    "audit": None,
}
_FALLBACK_DEADLINE = 600.0

#: ``-j/--jobs`` when not given: images read, layers scanned, Range reads and audit requests in flight at once
DEFAULT_JOBS = 4

#: The one help text of each option every command shares (``tests/unit/test_cli_consistency.py`` checks that
#: each command's ``--help`` shows exactly these).
HELP: dict[str, str] = {
    "format": "Output format (on stdout, or in -o FILE).",
    "output": "Write the output to FILE instead of stdout (atomically: a temporary file next to FILE, renamed "
    "when complete).",
    "quiet": "No progress or notes on stderr (errors and warnings are still printed).",
    "jobs": f"Work in parallel: images read, layers scanned, requests in flight (default {DEFAULT_JOBS}).",
    "platform": "Platform to pick from an index: os/arch[/variant] or a shorthand as containerd reads it "
    "(arm64, amd64, arm64/v8; default: this host's linux platform).",
    "creds": "skopeo's spelling: the registry user (USER[:PASSWORD] is refused; the password comes from "
    "--password-stdin, piped stdin, or a prompt on a terminal).",
    "authfile": "Read registry credentials from this auth file only (auth.json / config.json; skopeo's "
    "--authfile).",
    "tls-verify": "skopeo's spelling: --tls-verify=false is --insecure.",
    "cert-dir": "Trust the CA certificates DIR/*.crt for the registry (skopeo's --cert-dir; client "
    "certificates *.cert/*.key are not supported).",
    "timeout": "Seconds to wait for a registry to answer or send bytes.",
}

_META_OUTPUT, _META_QUIET, _META_JOBS, _META_JOBS_ALIAS = (
    "ociinspect.output",
    "ociinspect.quiet",
    "ociinspect.jobs",
    "ociinspect.jobs_alias",
)


def _meta() -> dict[str, Any]:
    """The running command line's shared state (empty outside a click command, e.g. in the library's tests)."""
    ctx = click.get_current_context(silent=True)
    return ctx.meta if ctx is not None else {}


def _remember(key: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None and value is not False:
            ctx.meta[key] = value
        return value

    return callback


def output_path() -> Path | None:
    """``-o/--output FILE`` of the running command (None: stdout)."""
    value = _meta().get(_META_OUTPUT)
    return Path(value) if value is not None else None


def jobs() -> int:
    """``-j/--jobs`` of the running command (or its old spellings ``--workers``, ``--concurrency``)."""
    meta = _meta()
    return int(meta.get(_META_JOBS) or meta.get(_META_JOBS_ALIAS) or DEFAULT_JOBS)


def stderr_chatty() -> bool:
    """True when progress and notes may go to stderr: a terminal, and no ``-q``.  Errors and warnings are
    printed whatever this says."""
    return not _meta().get(_META_QUIET) and sys.stderr.isatty()


def note(message: str) -> None:
    """An informational line on stderr (``ociinspect: …``), only on a terminal and without ``-q``."""
    if stderr_chatty():
        click.echo(safe_text(f"ociinspect: {message}"), err=True)


def result(message: str) -> None:
    """The one-line result of a command whose output is a side effect (``audit scan`` fills a database): on
    stderr unless ``-q``, terminal or not — scripts read it (the run id)."""
    if not _meta().get(_META_QUIET):
        click.echo(safe_text(f"ociinspect: {message}"), err=True)


def warn(message: str) -> None:
    """A warning on stderr (always: scripts need to see it)."""
    click.echo(safe_text(f"ociinspect: warning: {message}"), err=True)


def _output_decl(expose: bool) -> Callable[[F], F]:
    return click.option(
        "-o",
        "--output",
        "output",
        metavar="FILE",
        type=click.Path(),
        callback=_remember(_META_OUTPUT),
        expose_value=expose,
        help=HELP["output"],
    )


def output_option(func: F) -> F:
    """``-o/--output FILE`` (:data:`HELP` ``output``), remembered for :func:`write_output` and :func:`emit`."""
    return _output_decl(False)(func)


def output_value_option(func: F) -> F:
    """``-o/--output FILE`` as :func:`output_option`, and the command also receives it as ``output`` (a ``str``
    or None): for commands that stream bytes to it themselves (``manifest``, ``config``, ``blob``)."""
    return _output_decl(True)(func)


def quiet_option(func: F) -> F:
    """``-q/--quiet`` (:data:`HELP` ``quiet``): no progress and no notes on stderr."""
    return click.option(
        "-q",
        "--quiet",
        "quiet",
        is_flag=True,
        callback=_remember(_META_QUIET),
        expose_value=False,
        help=HELP["quiet"],
    )(func)


def jobs_option(func: F) -> F:
    """``-j/--jobs N`` (:data:`HELP` ``jobs``), with the old spellings ``--workers`` (scan) and ``--concurrency``
    (audit) kept as hidden aliases; read it with :func:`jobs`."""
    for name in ("--workers", "--concurrency"):
        func = click.option(
            name,
            name.strip("-") + "_alias",
            type=click.IntRange(1, 64),
            hidden=True,
            callback=_remember(_META_JOBS_ALIAS),
            expose_value=False,
        )(func)
    return click.option(
        "-j",
        "--jobs",
        "jobs",
        metavar="N",
        type=click.IntRange(1, 64),
        callback=_remember(_META_JOBS),
        expose_value=False,
        help=HELP["jobs"],
    )(func)


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file object whose bytes land in ``path`` only when the block ends without error: written to a
    temporary file next to it, then renamed (removed on error, so a failed or unverified write leaves nothing).
    An unwritable directory is a usage error."""
    import tempfile  # (only when a report is written to a file: ~2 ms with shutil and random)

    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".ociinspect-", suffix=".part", dir=directory)
    except OSError as exc:
        raise UsageError(
            f"cannot write {str(path)!r}: {exc.strerror or exc}",
            hint="check that its directory exists and is writable",
        ) from None
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_output(text: str) -> None:
    """The command's output (``text`` and a final newline): on stdout, or atomically in ``-o FILE``."""
    path = output_path()
    if path is None:
        click.echo(text)
    else:
        write_file(path, text)


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


@record
class RegistryAccess:
    """What the registry and credential options gave: transport settings, explicit credentials (if any) and the
    one auth file to read (``--authfile``; None: docker's and podman's usual files)."""

    settings: RegistrySettings
    username: str | None = None
    secret: str | None = dataclasses.field(default=None, repr=False)
    authfile: str | None = None

    def resolver(self, registries: set[str]) -> CredentialResolver:
        """Credential lookup for a command that talks to ``registries``; explicit credentials (from
        ``--username``/``--creds`` and ``--password-stdin``) are bound to the one registry named, never sent to
        another."""
        from ociinspect.registry import CredentialResolver, Credentials

        if self.username is None:
            return _authfile_resolver(self.authfile) if self.authfile else CredentialResolver()
        if len(registries) != 1:
            raise UsageError(
                f"--username applies to exactly one registry, but the command names {len(registries)}",
                hint="log in with `docker login` / an auth file (--authfile) for several registries",
            )
        (host,) = registries
        return CredentialResolver(explicit={host: Credentials(username=self.username, password=self.secret)})


def _authfile_resolver(path: str) -> CredentialResolver:
    """A :class:`~ociinspect.registry.CredentialResolver` that reads ``path`` only (skopeo's ``--authfile``:
    neither ``$REGISTRY_AUTH_FILE`` nor docker's files are consulted)."""
    from ociinspect.registry import CredentialResolver

    class AuthFileResolver(CredentialResolver):
        def config_files(self) -> list[Path]:
            return [Path(path)]

    return AuthFileResolver()


def _read_secret(username: str, password_stdin: bool) -> str:
    """The password of ``username``: from stdin (``--password-stdin``, or stdin not a terminal), else a prompt
    on the terminal (never echoed)."""
    if password_stdin or not sys.stdin.isatty():
        secret = sys.stdin.readline().rstrip("\r\n")
        if not secret:
            raise UsageError(
                "--password-stdin: nothing was read from standard input",
                hint='pipe the password or token: echo "$TOKEN" | ociinspect … --creds USER',
            )
        return secret
    secret = str(click.prompt(f"Password for {username}", hide_input=True, err=True))
    if not secret:
        raise UsageError(
            "no password was given", hint="type it at the prompt, or pipe it with --password-stdin"
        )
    return secret


_CERT_BUNDLES: list[str] = []  # temporary CA bundles of --cert-dir, removed at exit


def _remove_bundles() -> None:
    for path in _CERT_BUNDLES:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _cert_dir_bundle(directory: str, ca_file: str | None) -> str:
    """One CA bundle for ``--cert-dir DIR``: the default trust store, ``--ca-file`` and every ``DIR/*.crt``
    (containers-certs.d's CA files; skopeo adds them to the system pool).  Client certificate pairs
    (``*.cert`` + ``*.key``) are not supported: a warning says they are ignored.  Cost: reads the files once;
    the bundle is a temporary file removed at exit."""
    import certifi

    root = Path(directory)
    cas = sorted(root.glob("*.crt"))
    clients = sorted(p.name for p in (*root.glob("*.cert"), *root.glob("*.key")))
    if clients:
        warn(
            f"--cert-dir {directory}: client certificates are not supported, ignored: {', '.join(clients)} "
            "(only the CA files *.crt are used)"
        )
    if not cas:
        warn(f"--cert-dir {directory}: no CA file (*.crt) in it")
    parts = [Path(certifi.where()), *([Path(ca_file)] if ca_file else []), *cas]
    try:
        pem = b"\n".join(p.read_bytes() for p in parts)
    except OSError as exc:
        raise UsageError(
            f"--cert-dir {directory}: reading {exc.filename}: {exc.strerror or exc}",
            hint="check the directory holds readable PEM files",
        ) from None
    import tempfile

    fd, path = tempfile.mkstemp(prefix="ociinspect-ca-", suffix=".pem")
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    if not _CERT_BUNDLES:
        atexit.register(_remove_bundles)
    _CERT_BUNDLES.append(path)
    return path


def registry_options(func: F) -> F:
    """Registry and credential options shared by every command that talks to registries (one decorator), with
    skopeo's spellings (``--creds``, ``--authfile``, ``--tls-verify=false``, ``--cert-dir``) accepted too.

    The wrapped command receives ``registry_access: RegistryAccess`` instead of the individual options.  The password
    is read from stdin here, once; a password on the command line (``--password``, ``--creds USER:PASSWORD``) is
    refused.
    """

    @click.option(
        "--plain-http",
        is_flag=True,
        help="Talk plain HTTP to the registry (loopback registries fall back to it on their own).",
    )
    @click.option("--insecure", is_flag=True, help="Skip TLS certificate verification (still HTTPS).")
    @click.option(
        "--tls-verify",
        "tls_verify",
        type=click.BOOL,
        default=None,
        metavar="BOOL",
        help=HELP["tls-verify"],
    )
    @click.option(
        "--ca-file",
        type=click.Path(exists=True, dir_okay=False),
        help="Extra CA bundle (PEM) to trust for the registry.",
    )
    @click.option(
        "--cert-dir",
        "cert_dir",
        metavar="DIR",
        type=click.Path(exists=True, file_okay=False),
        help=HELP["cert-dir"],
    )
    @click.option("--username", "-u", help="Registry user name (the password comes from --password-stdin).")
    @click.option("--creds", "creds", metavar="USER", help=HELP["creds"])
    @click.option(
        "--password-stdin", is_flag=True, help="Read the registry password or token from standard input."
    )
    @click.option("--password", "password_argv", hidden=True, help="Refused: use --password-stdin.")
    @click.option(
        "--authfile",
        "authfile",
        metavar="FILE",
        type=click.Path(exists=True, dir_okay=False),
        help=HELP["authfile"],
    )
    @click.option(
        "--timeout",
        type=click.FloatRange(min=0.1),
        default=30.0,
        show_default=True,
        help=HELP["timeout"],
    )
    @click.option(
        "--deadline",
        "deadline_text",
        metavar="DURATION",
        help="Total time for the whole command, retries, redirects, tokens and downloads included "
        "(e.g. 90s, 5m, 1h30m; 0 or none: no limit).  Default: 10m for inspect, check, compare and vm; "
        "30m for waste, files and blob; none for audit.  On expiry: exit 3 (4 if other images were read).",
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
        tls_verify: bool | None,
        ca_file: str | None,
        cert_dir: str | None,
        username: str | None,
        creds: str | None,
        password_stdin: bool,
        password_argv: str | None,
        authfile: str | None,
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
                raise UsageError(
                    f"--deadline: {exc}", hint="e.g. --deadline 90s, 5m or 1h30m; 0 or none: no limit"
                ) from None
        deadline = Deadline.after(seconds) if seconds is not None else None

        if password_argv is not None or (creds is not None and ":" in creds):
            flag = "--password" if password_argv is not None else "--creds USER:PASSWORD"
            raise UsageError(
                f"refusing {flag}: a password on the command line leaks into shell history and `ps`",
                hint='pipe it instead: echo "$TOKEN" | ociinspect … --creds USER (or --username USER '
                "--password-stdin)",
            )
        secret = None
        if creds is not None:
            if username and username != creds:
                raise UsageError(
                    "--creds and --username name different users", hint="give the user once: --creds USER"
                )
            username = creds
            secret = _read_secret(username, password_stdin)
        elif username or password_stdin:
            if not password_stdin or not username:
                raise UsageError(
                    "--username and --password-stdin go together",
                    hint="give both, or neither to use docker/podman logins",
                )
            secret = _read_secret(username, True)
        if tls_verify is False:
            insecure = True
        if cert_dir is not None and not insecure:
            ca_file = _cert_dir_bundle(cert_dir, ca_file)
        settings = RegistrySettings(
            default=HostSettings(plain_http=plain_http, insecure=insecure, ca_file=ca_file),
            read_timeout=timeout,
            connect_timeout=min(timeout, 10.0),
            retries=retries,
            deadline=deadline,
        )
        return func(*args, registry_access=RegistryAccess(settings, username, secret, authfile), **kwargs)

    return wrapper  # type: ignore[return-value]


def parse_platform(text: str | None) -> Platform | None:
    """``--platform`` as a :class:`Platform` (containerd's shorthands, see :meth:`Platform.parse`); a malformed
    one is a usage error with an example (the loader's one rule)."""
    return loader_parse_platform(text) if text else None


def image_options(func: F) -> F:
    """Registry, credential and platform options shared by every command that reads images.

    The wrapped command receives ``read: ReadContext`` instead of the individual options.
    """

    @click.option("--platform", "platform_text", metavar="OS/ARCH[/VARIANT]", help=HELP["platform"])
    @click.option(
        "--all-platforms", is_flag=True, help="Read every platform of an index (attestations skipped)."
    )
    @jobs_option
    @registry_options
    @functools.wraps(func)
    def wrapper(
        *args: Any,
        registry_access: RegistryAccess,
        platform_text: str | None,
        all_platforms: bool,
        **kwargs: Any,
    ) -> Any:
        platform = parse_platform(platform_text)
        resolver = registry_access.resolver(_registries(kwargs.get("refs", ())))
        session = Session(registry_access.settings, resolver)
        from ociinspect.store import Store

        store = Store()  # immutable, digest-keyed facts (base-OS files of layers); opened on first use
        session.os_cache = (store.get_fact, store.put_fact)
        # remembered sizes: docs/sizes.md; -j: Range reads in flight per image
        options = LoadOptions(platform=platform, size_store=store, workers=jobs())
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
    """``-f/--format``, ``-o/--output FILE`` and ``-q/--quiet`` for every command; the command receives ``fmt``
    (the output path and quiet are read with :func:`output_path` and :func:`stderr_chatty`).

    ``@output_options`` offers table/json/markdown; ``@output_options("compare")`` offers every format the
    ``compare`` view can be rendered in (see :func:`ociinspect.reports.formats_for`).
    """
    formats = FORMATS if callable(func_or_view) else formats_for(func_or_view)
    fmt_option = click.option(
        "--format",
        "-f",
        "fmt",
        type=_Formats([f for f in formats if f != "text"]),
        default="table",
        show_default=True,
        help=HELP["format"],
    )

    def decorate(func: F) -> F:
        return fmt_option(output_option(quiet_option(func)))

    if callable(func_or_view):
        return decorate(func_or_view)
    return decorate


class _SizeType(click.ParamType):  # type: ignore[type-arg]
    """A size in bytes, in the one size grammar of every command line and policy file (go-humanize's, as dive):
    ``2G`` = ``2GB`` = 2·10⁹ bytes, ``2GiB`` = ``2Gi`` = 2·2³⁰, ``1000000`` bytes (``docs/cli.md``, "Sizes")."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        from ociinspect.policy.grammar import parse_size  # imported when a size option is given

        try:
            return parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


#: the click type of every size option (``--max-uncompressed 64GiB``)
SIZE = _SizeType()

#: Images smaller than this (compressed bytes to scan) get no progress bar: they take well under a second.
PROGRESS_MIN_BYTES = 64 << 20


@contextlib.contextmanager
def progress_bar(
    total: int | None, label: str, *, items: bool = False
) -> Iterator[Callable[[int], None] | None]:
    """The one progress helper of the command line (and its :data:`~ociinspect.session.Progress`): a bar on
    stderr, only on a terminal and without ``-q``.  ``total`` is bytes (no bar under
    :data:`PROGRESS_MIN_BYTES`), or with ``items`` a count of things (images, refs); ``None``: bytes of an
    unknown total, shown as a running count.  Yields the callback that hears each step (or None)."""
    if not stderr_chatty() or (total is not None and not items and total < PROGRESS_MIN_BYTES):
        yield None
        return
    if total is None:
        with _running_count(label) as update:
            yield update
        return
    with click.progressbar(length=total, label=label, file=sys.stderr, show_pos=items) as bar:
        yield bar.update


@contextlib.contextmanager
def status_line(text: Callable[[], str], *, every: float = 0.5) -> Iterator[None]:
    """A status line on stderr (``text()``), refreshed every ``every`` seconds while the block runs and
    printed once more at the end — the long-running form of :func:`progress_bar` (``audit scan``).  Only on a
    terminal and without ``-q``."""
    if not stderr_chatty():
        yield
        return
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            sys.stderr.write("\r\x1b[K" + text())
            sys.stderr.flush()

    thread = threading.Thread(target=loop, name="ociinspect-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        sys.stderr.write("\r\x1b[K" + text() + "\n")
        sys.stderr.flush()


@contextlib.contextmanager
def _running_count(label: str) -> Iterator[Callable[[int], None]]:
    """``label: 12.3 MB`` on stderr, refreshed at most 5 times a second, cleared at the end."""
    done = [0, 0.0]
    lock = threading.Lock()

    def update(n: int) -> None:
        with lock:
            done[0] += n
            now = time.monotonic()
            if now - done[1] >= 0.2:
                done[1] = now
                sys.stderr.write(f"\r\x1b[K{label}: {done[0] / 1e6:,.1f} MB")
                sys.stderr.flush()

    try:
        yield update
    finally:
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()


def _default_max_uncompressed() -> int:
    """``--max-uncompressed`` when not given (a callable default: the scanner is imported only by commands that
    scan, when they run)."""
    from ociinspect.content.scan import DEFAULT_MAX_UNCOMPRESSED

    return DEFAULT_MAX_UNCOMPRESSED


def scan_options(func: F) -> F:
    """``--hash``, ``--cache-dir``, ``--no-cache``, ``--max-uncompressed``, ``--no-estargz`` (layers scanned at
    once: ``-j/--jobs`` of :func:`image_options`); the command receives ``scan: ScanSettings``."""

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
        default=_default_max_uncompressed,
        show_default="64GiB",
        help="Refuse a layer that inflates past SIZE (decompression bombs; 2G = 2·10⁹ bytes, 2GiB = 2·2³⁰).",
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
        no_estargz: bool,
        **kwargs: Any,
    ) -> Any:
        if no_cache and cache_dir is not None:
            raise UsageError(
                "--cache-dir and --no-cache contradict each other", hint="give one of them, not both"
            )
        from ociinspect.content.scan import ScanOptions
        from ociinspect.store import default_cache_dir

        settings = ScanSettings(
            ScanOptions(
                hash_files=hash_files,
                max_uncompressed=max_uncompressed,
                workers=jobs(),
                use_estargz_toc=not no_estargz,
            ),
            None if no_cache else (cache_dir or default_cache_dir()),
        )
        return func(*args, scan=settings, **kwargs)

    return wrapper  # type: ignore[return-value]


def load_for_command(
    read: ReadContext,
    refs: Sequence[str],
    *,
    with_os: bool = False,
    report: bool = True,
    on_chosen: Callable[[Reference, str], None] | None = None,
) -> list[LoadResult]:
    """Load ``refs`` concurrently (``-j`` at once) for a multi-image command, in input order; failures are
    reported on stderr (unless not ``report``) and kept in the results for the exit code.  Progress: a count of
    images read, on a terminal, when there are several or layers are streamed (``--exact``).  ``on_chosen``: as
    :meth:`Session.load_many`'s (called in a worker thread with each image's subject digest once known)."""
    refs = list(refs)
    long = len(refs) > 1 or read.options.sizes == "exact"
    with progress_bar(len(refs) if long else 0, f"reading {len(refs)} image(s)", items=True) as update:
        if update is None:
            results = read.session.load_many(
                refs,
                read.options,
                all_platforms=read.all_platforms,
                with_os=with_os,
                workers=jobs(),
                on_chosen=on_chosen,
            )
        else:
            with threads.Pool(min(jobs(), len(refs))) as pool:
                futures = [
                    pool.submit(
                        read.session.load_many,
                        [ref],
                        read.options,
                        all_platforms=read.all_platforms,
                        with_os=with_os,
                        on_chosen=on_chosen,
                    )
                    for ref in refs
                ]
                for _done in threads.as_completed(futures):
                    update(1)
                results = [r for future in futures for r in future.result()]
    for r in results:
        if r.error and report:
            report_error(r.error)
    return results


def write_file(path: Path, text: str, *, append: bool = False) -> None:
    """Write ``text`` and a final newline to ``path`` atomically (a temporary file renamed), or append to it;
    an unwritable path is a usage error."""
    data = (text if text.endswith("\n") else text + "\n").encode("utf-8")
    if not append:
        with atomic_output(path) as out:
            out.write(data)
        return
    try:
        with path.open("ab") as fh:
            fh.write(data)
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
    """The one output path of every command: ``docs`` rendered in ``fmt`` on stdout (or written to ``output``,
    by default ``-o FILE``, atomically)
    — in JSON every document, error documents included, in other formats only what was read — then every
    warning once on stderr (the documents' ``warnings`` and ``warnings``), then exit with ``code`` (returns
    when it is 0).  Errors were reported when they were met (:func:`report_error`)."""
    shown = list(docs) if fmt == "json" else [d for d in docs if "error" not in d]
    if shown:
        text = render(view, fmt, shown, as_list=as_list)
        output = output if output is not None else output_path()
        if output is not None:
            write_file(output, text)
        else:
            click.echo(text)
    lines = [*warnings, *(f"{d.get('reference', '')}: {w}" for d in docs for w in d.get("warnings", ()))]
    for line in dict.fromkeys(lines):
        warn(line)
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
    image_warnings = [f"{img.reference}: {w}" for r in results for img in r.images for w in img.warnings]
    emit(view, fmt, shown, code=code, warnings=[*warnings, *image_warnings])
