"""The ``ociinspect`` command line: thin click commands over the library.

Each command parses its options, calls the library, renders through :func:`ociinspect.reports.render` and maps
errors to the documented exit codes (``docs/cli.md``).  stdout carries only the chosen format; errors, hints,
warnings and logs go to stderr.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from ociinspect import __version__
from ociinspect.errors import ExitCode, OciInspectError, PartialFailure, UsageError
from ociinspect.loader import LoadOptions
from ociinspect.model import Platform
from ociinspect.reference import parse_reference
from ociinspect.reports import FORMATS, render
from ociinspect.reports.data import error_document, inspect_document
from ociinspect.session import LoadResult, Session

__all__ = ["cli", "main", "run"]

F = TypeVar("F", bound=Callable[..., Any])


def _fail(error: OciInspectError) -> None:
    click.echo(f"ociinspect: error: {error.message}", err=True)
    if error.hint:
        click.echo(f"  hint: {error.hint}", err=True)


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


def image_options(func: F) -> F:
    """Registry, credential and platform options shared by every command that reads images.

    The wrapped command receives ``read: ReadContext`` instead of the individual options.
    """

    @click.option("--platform", "platform_text", metavar="OS/ARCH[/VARIANT]", help="Platform to pick from an index (default: this host's linux platform).")
    @click.option("--all-platforms", is_flag=True, help="Read every platform of an index (attestations skipped).")
    @click.option("--plain-http", is_flag=True, help="Talk plain HTTP to the registry (loopback registries fall back to it on their own).")
    @click.option("--insecure", is_flag=True, help="Skip TLS certificate verification (still HTTPS).")
    @click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), help="Extra CA bundle (PEM) to trust for the registry.")
    @click.option("--username", "-u", help="Registry user name (the password comes from --password-stdin).")
    @click.option("--password-stdin", is_flag=True, help="Read the registry password or token from standard input.")
    @click.option("--password", "password_argv", hidden=True, help="Refused: use --password-stdin.")
    @click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True, help="Seconds to wait for a registry to answer or send bytes.")
    @click.option("--retries", type=click.IntRange(0, 10), default=3, show_default=True, help="Retries on connection errors, 429 and 502/503/504.")
    @functools.wraps(func)
    def wrapper(
        *args: Any,
        platform_text: str | None,
        all_platforms: bool,
        plain_http: bool,
        insecure: bool,
        ca_file: str | None,
        username: str | None,
        password_stdin: bool,
        password_argv: str | None,
        timeout: float,
        retries: int,
        **kwargs: Any,
    ) -> Any:
        from ociinspect.registry import CredentialResolver, Credentials, HostSettings, RegistrySettings

        if password_argv is not None:
            raise UsageError(
                "refusing --password: a password on the command line leaks into shell history and `ps`",
                hint="pipe it instead: echo \"$TOKEN\" | ociinspect … --username USER --password-stdin",
            )
        platform = None
        if platform_text:
            try:
                platform = Platform.parse(platform_text)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        explicit: dict[str, Credentials] = {}
        if username or password_stdin:
            if not password_stdin or not username:
                raise UsageError("--username and --password-stdin go together", hint="give both, or neither to use docker/podman logins")
            registries = _registries(kwargs.get("refs", ()))
            if len(registries) != 1:
                raise UsageError(
                    f"--username applies to exactly one registry, but the references name {len(registries)}",
                    hint="log in with `docker login` / an auth file for several registries",
                )
            secret = sys.stdin.readline().rstrip("\r\n")
            if not secret:
                raise UsageError("--password-stdin: nothing was read from standard input")
            explicit[registries.pop()] = Credentials(username=username, password=secret)
        settings = RegistrySettings(
            default=HostSettings(plain_http=plain_http, insecure=insecure, ca_file=ca_file),
            read_timeout=timeout,
            connect_timeout=min(timeout, 10.0),
            retries=retries,
        )
        session = Session(settings, CredentialResolver(explicit=explicit))
        options = LoadOptions(platform=platform)
        try:
            return func(*args, read=ReadContext(session, options, all_platforms), **kwargs)
        finally:
            session.close()

    return wrapper  # type: ignore[return-value]


def output_options(func: F) -> F:
    """``--format`` for every command; the command receives ``fmt``."""
    return click.option(
        "--format",
        "-f",
        "fmt",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="Output format on stdout.",
    )(func)


def _exit_code(results: Sequence[LoadResult]) -> int:
    errors = [r.error for r in results if r.error]
    if not errors:
        return ExitCode.OK
    if len(errors) < len(results):
        return ExitCode.PARTIAL
    return max(int(e.exit_code) for e in errors)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="ociinspect")
@click.option("-v", "--verbose", count=True, help="Log to stderr (-v info, -vv debug). Credentials are never logged.")
def cli(verbose: int) -> None:
    """What is really inside an OCI image: digests, platforms, layers with compressed and uncompressed sizes —
    from a registry, an OCI layout or an archive, without a Docker daemon.

    \b
    Examples:
      ociinspect inspect oci:fixtures/demo:latest
      ociinspect inspect docker://registry.example.com/team/app:1.2 --format json
    """
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger("ociinspect")
        root.addHandler(handler)
        root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)


@cli.command()
@click.argument("refs", nargs=-1, required=True)
@click.option("--exact", is_flag=True, help="Stream every layer to count its uncompressed bytes (verifies digests and diff_ids).")
@image_options
@output_options
def inspect(refs: tuple[str, ...], exact: bool, read: ReadContext, fmt: str) -> None:
    """Show an image's digest, platform, config and layers with compressed and uncompressed sizes.

    REFS are image references: docker://HOST/REPO[:TAG][@DIGEST] (or a bare NAME), oci:DIR[:TAG|@DIGEST],
    oci-archive:FILE[:TAG], docker-archive:FILE[:REPO:TAG]. Several refs are read concurrently.

    Uncompressed sizes come from the gzip trailer / zstd header (a few bytes per layer); each says its
    source. --exact streams the layers instead.

    \b
    Examples:
      ociinspect inspect oci:fixtures/demo:latest
      ociinspect inspect docker://localhost:5000/app:1.0 --platform linux/arm64 -f json
    """
    options = dataclasses.replace(read.options, sizes="exact") if exact else read.options
    results = read.session.load_many(list(refs), options, all_platforms=read.all_platforms)
    docs = []
    for r in results:
        if r.error:
            _fail(r.error)
            docs.append(error_document(r.reference, r.error))
        docs.extend(inspect_document(img) for img in r.images)
    if fmt != "json":
        docs = [d for d in docs if "error" not in d]
    if docs:
        click.echo(render("inspect", fmt, docs, as_list=len(refs) > 1 or read.all_platforms))
    for d in docs:
        for w in d.get("warnings", ()):
            click.echo(f"ociinspect: warning: {d['reference']}: {w}", err=True)
    code = _exit_code(results)
    if code:
        raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run the CLI and turn every error into a one-line message and a documented exit code."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="ociinspect", standalone_mode=False)
    except OciInspectError as exc:
        _fail(exc)
        if isinstance(exc, PartialFailure):
            return int(ExitCode.PARTIAL)
        return int(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("ociinspect: aborted", err=True)
        return int(ExitCode.INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        return int(ExitCode.USAGE)
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        click.echo("ociinspect: interrupted", err=True)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: one line, not a traceback (-vv logs it in full)
        logging.getLogger("ociinspect").debug("internal error", exc_info=True)
        click.echo(f"ociinspect: internal error: {type(exc).__name__}: {exc}", err=True)
        click.echo("  hint: this is a bug in ociinspect; rerun with -vv and report the output", err=True)
        return int(ExitCode.INTERNAL)
    return 0


def run() -> None:
    """Console-script entry point (``ociinspect``)."""
    sys.exit(main())
