"""``ociinspect diff A B``: what changed between two images (see ``docs/diff.md``)."""

from __future__ import annotations

import click

from ociinspect.cli import cli
from ociinspect.cli.options import (
    ReadContext,
    ScanSettings,
    image_options,
    output_options,
    scan_options,
    write_output,
)
from ociinspect.errors import ExitCode, UsageError
from ociinspect.reports import render
from ociinspect.session import (  # the loading lives below the CLI (check uses it too)
    DiffRead,
    diff_references,
)

__all__ = ["DiffRead", "diff", "diff_references"]


@cli.command()
@click.argument("refs", nargs=2, metavar="A B")
@click.option(
    "--depth",
    type=click.IntRange(0, 64),
    default=3,
    show_default=True,
    help="Levels of the 'where it grew' directory tree below /.",
)
@click.option(
    "--top",
    type=click.IntRange(min=0),
    default=30,
    show_default=True,
    help="Changed paths listed in table/markdown/html, largest byte delta first (0: all; JSON lists all).",
)
@click.option(
    "--exit-zero", is_flag=True, help="Exit 0 when the images differ (scripts that want the report)."
)
@scan_options
@image_options
@output_options("diff")
def diff(
    refs: tuple[str, str],
    depth: int,
    top: int,
    exit_zero: bool,
    scan: ScanSettings,
    read: ReadContext,
    fmt: str,
) -> None:
    """What changed between two images: layers (shared, only in A, only in B, recompressed), size deltas, files
    added/removed/modified, where it grew, config changes.  Layers both images share at the bottom are not
    read; the others are streamed once through the layer cache.

    Exit 0 when identical, 1 when they differ (or when contents could not be compared: use --hash), 2 bad
    usage, 3 an image could not be read.

    \b
    Examples:
      ociinspect diff docker://reg.example.com/app:1.0 docker://reg.example.com/app:1.1
      ociinspect diff oci:build/layout:old oci:build/layout:new --hash -f markdown > comment.md
    """
    if read.all_platforms:
        raise UsageError("diff compares one platform of each image", hint="pick it with --platform OS/ARCH")
    result, cost = diff_references(read, refs[0], refs[1], scan, depth=depth)
    doc = result.to_json() | {
        "read": cost.to_json(),
        "options": {"hash": scan.options.hash_files, "top": top},
    }
    write_output(render("diff", fmt, [doc]))
    if result.identical is None:
        click.echo(
            f"ociinspect: {len(result.files.unknown)} file(s) rewritten with the same size, mode and owner were "
            "not compared by content\n  hint: rerun with --hash to settle whether the images are identical",
            err=True,
        )
    if not result.identical and not exit_zero:
        raise SystemExit(int(ExitCode.CHECK_FAILED))
