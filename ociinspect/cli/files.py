"""``ociinspect files``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ociinspect.cli import cli
from ociinspect.cli.extract import cat_or_extract
from ociinspect.cli.options import ReadContext, image_options, output_options, report_error
from ociinspect.cli.waste import ScanSettings, raise_exit, scan_options, scan_reference
from ociinspect.errors import OciInspectError, UsageError
from ociinspect.reports import render
from ociinspect.reports.data import error_document
from ociinspect.reports.waste import files_document


@cli.command()
@click.argument("refs", nargs=-1, required=True, metavar="REF")
@click.option(
    "--top",
    type=click.IntRange(min=0),
    default=None,
    help="How many files to list (default: 20 largest files; every change with --layer; 0: all).",
)
@click.option(
    "--layer",
    "layer_index",
    type=int,
    help="List what layer N adds, modifies and removes (0 is the base layer; -1 the top one).",
)
@click.option(
    "--path",
    "path_filter",
    metavar="PATTERN",
    help="Only paths under this directory (/usr/share) or matching this glob ('/usr/lib/*.so*').",
)
@click.option(
    "--sort",
    type=click.Choice(["size", "path"]),
    default="size",
    show_default=True,
    help="Order of the list.",
)
@click.option("--cat", "cat", metavar="PATH", help="Write the final bytes of the file at PATH to stdout.")
@click.option("--extract", "extract", multiple=True, metavar="PATH", help="Write PATH (file or tree) under -o DIR.")
@click.option("-o", "--output", "outdir", type=click.Path(file_okay=False, path_type=Path), help="For --extract.")
@scan_options
@image_options
@output_options
def files(
    refs: tuple[str, ...],
    top: int | None,
    layer_index: int | None,
    path_filter: str | None,
    sort: str,
    cat: str | None,
    extract: tuple[str, ...],
    outdir: Path | None,
    scan: ScanSettings,
    read: ReadContext,
    fmt: str,
) -> None:
    """The files inside an image: the largest files of its final filesystem, or what one layer changes —
    read from a registry, an OCI layout or an archive without extracting anything (indexes are cached).

    \b
    Examples:
      ociinspect files docker://localhost:5000/app:1.0 --top 50
      ociinspect files oci:build/layout:latest --layer -1
      ociinspect files docker-archive:app.tar --path /usr/lib --format json
      ociinspect files docker://localhost:5000/app:1.0 --cat /etc/os-release
    """
    if len(refs) != 1:
        raise UsageError(f"files reads one image, {len(refs)} references were given")
    ref = refs[0]
    if cat is not None or extract:  # one file or tree, reading only the layers that hold it (docs/diff.md)
        return cat_or_extract(read, ref, scan, cat=cat, extract=extract, outdir=outdir)
    docs: list[dict[str, Any]] = []
    errors: list[OciInspectError] = []
    try:
        for image, scans in scan_reference(read, ref, scan):
            index = layer_index
            if index is not None:
                count = len(image.layers)
                if not -count <= index < count:
                    raise UsageError(
                        f"--layer {index}: the image has {count} layers (0 … {count - 1}, or -1 … -{count})"
                    )
                index %= count
            limit = top if top is not None else (20 if index is None else 0)
            docs.append(
                files_document(image, scans, layer=index, top=limit, path_filter=path_filter, sort=sort)
            )
    except UsageError:
        raise
    except OciInspectError as exc:
        errors.append(exc)
        report_error(exc)
        docs.append(error_document(ref, exc))
    shown = docs if fmt == "json" else [d for d in docs if "error" not in d]
    if shown:
        click.echo(render("files", fmt, shown, as_list=read.all_platforms))
    raise_exit(errors, 1)
