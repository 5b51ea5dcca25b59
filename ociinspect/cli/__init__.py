"""The ``ociinspect`` command line: thin click commands over the library.

Each command parses its options, calls the library, renders through :func:`ociinspect.reports.render` and maps
errors to the documented exit codes (``docs/cli.md``).  stdout carries only the chosen format; errors, hints,
warnings and logs go to stderr.  Commands live in one module each and register on :data:`cli` on import.
"""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Sequence
from typing import Any

import click

from ociinspect._version import __version__
from ociinspect.errors import ExitCode, OciInspectError, UsageError
from ociinspect.model.logs import get_logger
from ociinspect.model.textsafe import escape_controls, redact_secrets

__all__ = ["cli", "main", "run"]


#: command name -> module under ociinspect.cli that defines it (with ``@cli.command()``); imported on first use so
#: that ``ociinspect inspect`` does not pay for the analyzers of every other command.
COMMANDS = {
    "audit": "audit",
    "blob": "raw",
    "check": "check",
    "compare": "compare",
    "config": "raw",
    "diff": "diff",
    "digest": "raw",
    "files": "files",
    "inspect": "inspect",
    "manifest": "raw",
    "referrers": "raw",
    "repos": "raw",
    "tags": "raw",
    "vm": "vm",
    "waste": "waste",
}


class _Command(click.Command):
    """A command whose option parser skips click's did-you-mean search when a short option (``-f``) is first
    looked up as a long one: click then always retries it as a short option and drops that error, but building
    the error imported :mod:`difflib` and ranked every long option (~1-2 ms per process using ``-f``, ``-o``,
    ``-j`` …).  A misspelt long option (``--formt``) still gets its suggestions."""

    def make_parser(self, ctx: click.Context) -> Any:
        parser = super().make_parser(ctx)
        match_long = getattr(parser, "_match_long_opt", None)
        long_opts = getattr(parser, "_long_opt", None)
        if match_long is None or not isinstance(long_opts, dict):
            return parser  # a click without these internals: its own way

        def _match_long_opt(opt: str, explicit_value: str | None, state: Any) -> None:
            if opt not in long_opts and not opt.startswith("--"):
                raise click.NoSuchOption(opt, ctx=ctx)  # the caller drops it and reads a short option
            match_long(opt, explicit_value, state)

        setattr(parser, "_match_long_opt", _match_long_opt)  # noqa: B010  (an instance attribute, on purpose)
        return parser


class _Group(click.Group):
    """A group whose misspelt subcommand gets a did-you-mean hint (click offers none for commands), and whose
    commands are :class:`_Command`."""

    command_class = _Command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = click.utils.make_str(args[0]) if args else ""
        if args and not name.startswith("-") and self.get_command(ctx, name) is None:
            import difflib  # only for a misspelt command

            known = self.list_commands(ctx)
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
            where = " ".join(ctx.command_path.split()[1:])
            hint = (
                f"did you mean {' or '.join(f'`{c}`' for c in close)}?"
                if close
                else f"the commands are: {', '.join(known)}"
            )
            raise _UsageWithHint(f"No such command {name!r}{' under ' + where if where else ''}.", hint, ctx)
        return super().resolve_command(ctx, args)


class _LazyGroup(_Group):
    """A group whose subcommands are imported only when named (or when ``--help`` lists them)."""

    group_class = _Group  # `audit` and any later group resolve misspelt subcommands the same way

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(f"ociinspect.cli.{COMMANDS[cmd_name]}")
        return super().get_command(ctx, cmd_name)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # skopeo's bool flags (pflag) take a value only after '=': a bare --tls-verify is --tls-verify=true
        end = args.index("--") if "--" in args else len(args)
        args = [("--tls-verify=true" if a == "--tls-verify" and i < end else a) for i, a in enumerate(args)]
        return super().parse_args(ctx, args)


class _UsageWithHint(click.UsageError):
    """A click usage error that carries our hint line."""

    def __init__(self, message: str, hint: str, ctx: click.Context | None = None) -> None:
        super().__init__(message, ctx)
        self.hint = hint


def _usage_hint(exc: click.ClickException) -> str:
    """The hint line of a click usage error: click's did-you-mean for options, else where to look."""
    if isinstance(exc, _UsageWithHint):
        return exc.hint
    ctx = getattr(exc, "ctx", None)
    where = f"`{ctx.command_path} --help`" if ctx is not None else "`ociinspect --help`"
    if isinstance(exc, click.NoSuchOption) and exc.possibilities:
        close = sorted(exc.possibilities)
        return f"did you mean {' or '.join(close)}? (see {where})"
    return f"see {where}"


def _usage_message(exc: click.ClickException) -> str:
    if isinstance(exc, click.NoSuchOption):
        return f"No such option: {exc.option_name}"
    return exc.format_message()


@click.group(
    cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}
)
@click.version_option(__version__, prog_name="ociinspect")
@click.option(
    "-v", "--verbose", count=True, help="Log to stderr (-v info, -vv debug). Credentials are never logged."
)
def cli(verbose: int) -> None:
    """What is really inside an OCI image: digests, platforms, layers with compressed and uncompressed sizes —
    from a registry, an OCI layout or an archive, without a Docker daemon.

    \b
    Examples:
      ociinspect inspect oci:fixtures/demo:latest
      ociinspect inspect docker://registry.example.com/team/app:1.2 --format json
    """
    _end_startup()
    if verbose:
        import logging  # (only for -v: the library's loggers cost nothing until logging is imported)

        from ociinspect.model.logformat import SafeFormatter

        handler = logging.StreamHandler(sys.stderr)
        # one sanitising formatter: controls escaped and database passwords redacted in every log line
        handler.setFormatter(SafeFormatter("%(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger("ociinspect")
        root.addHandler(handler)
        root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)


def _report_error(error: OciInspectError) -> None:
    """:func:`ociinspect.cli.options.report_error`, imported when needed (``--version`` and ``--help`` import no
    part of the library)."""
    from ociinspect.cli.options import report_error

    report_error(error)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run the CLI and turn every error into a one-line message and a documented exit code."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="ociinspect", standalone_mode=False)
    except OciInspectError as exc:
        _report_error(exc)
        return int(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("ociinspect: aborted", err=True)
        return int(ExitCode.INTERRUPTED)
    except click.ClickException as exc:  # click's usage errors in our style: one line, a hint, exit 2
        _report_error(UsageError(_usage_message(exc), hint=_usage_hint(exc)))
        return int(ExitCode.USAGE)
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        click.echo("ociinspect: interrupted", err=True)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: one line, not a traceback (-vv logs it in full)
        get_logger("ociinspect").debug("internal error", exc_info=True)
        message = f"ociinspect: internal error: {type(exc).__name__}: {exc}"
        click.echo(escape_controls(redact_secrets(message)), err=True)
        click.echo("  hint: this is a bug in ociinspect; rerun with -vv and report the output", err=True)
        return int(ExitCode.INTERNAL)
    return 0


#: set by :func:`run` (a process of its own): the garbage collector is off until the command's module is imported
_startup_gc_off = False


def _end_startup() -> None:
    """Called once the command's module is imported (click resolves the subcommand before the group's callback):
    when :func:`run` turned the cyclic garbage collector off for the imports, freeze every object made so far
    (modules, classes, functions: they live until exit; later collections skip them) and turn it back on, so the
    command itself runs with the collector as usual.  Library callers of :func:`main` (tests) are not affected."""
    global _startup_gc_off
    if _startup_gc_off:
        _startup_gc_off = False
        gc.freeze()
        gc.enable()


def run() -> None:
    """Console-script entry point (``ociinspect``): a process of its own, so start-up runs without the cyclic
    garbage collector (``python -m ociinspect`` turns it off before importing this module) until the command's
    module is imported — ~35 collections of the objects the imports make, ~4-10 ms (issue 14)."""
    global _startup_gc_off
    if gc.isenabled():
        gc.disable()
    _startup_gc_off = True
    try:
        code = main()
    finally:
        _startup_gc_off = False
    gc.freeze()  # skip the final collection of every object at exit (~20 ms for a short command)
    sys.exit(code)
