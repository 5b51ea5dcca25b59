"""The ``ociinspect`` command line: thin click commands over the library.

Each command parses its options, calls the library, renders through :func:`ociinspect.reports.render` and maps
errors to the documented exit codes (``docs/cli.md``).  stdout carries only the chosen format; errors, hints,
warnings and logs go to stderr.  Commands live in one module each and register on :data:`cli` on import.
"""

from __future__ import annotations

import gc
import importlib
import logging
import sys
from collections.abc import Sequence

import click

from ociinspect._version import __version__
from ociinspect.cli.options import report_error
from ociinspect.errors import ExitCode, OciInspectError
from ociinspect.model.textsafe import SafeFormatter, escape_controls, redact_secrets

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


class _LazyGroup(click.Group):
    """A group whose subcommands are imported only when named (or when ``--help`` lists them)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(f"ociinspect.cli.{COMMANDS[cmd_name]}")
        return super().get_command(ctx, cmd_name)


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
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        # one sanitising formatter: controls escaped and database passwords redacted in every log line
        handler.setFormatter(SafeFormatter("%(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger("ociinspect")
        root.addHandler(handler)
        root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run the CLI and turn every error into a one-line message and a documented exit code."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="ociinspect", standalone_mode=False)
    except OciInspectError as exc:
        report_error(exc)
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
        message = f"ociinspect: internal error: {type(exc).__name__}: {exc}"
        click.echo(escape_controls(redact_secrets(message)), err=True)
        click.echo("  hint: this is a bug in ociinspect; rerun with -vv and report the output", err=True)
        return int(ExitCode.INTERNAL)
    return 0


def run() -> None:
    """Console-script entry point (``ociinspect``)."""
    code = main()
    gc.freeze()  # skip the final collection of every object at exit (~20 ms for a short command)
    sys.exit(code)
