"""``ociinspect files``."""

from __future__ import annotations

from typing import Any

import click

from ociinspect.cli import cli
from ociinspect.cli.extract import cat_or_extract
from ociinspect.cli.options import (
    emit,
    image_options,
    output_options,
    output_path,
    progress_bar,
    report_error,
    scan_options,
)
from ociinspect.errors import OciInspectError, UsageError
from ociinspect.model.entries import LayerScan
from ociinspect.model.image import Image
from ociinspect.reports.data import error_document
from ociinspect.reports.waste import files_document
from ociinspect.session import ReadContext, ScanSettings, exit_code, scan_reference


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
@click.option(
    "--extract",
    "extract",
    multiple=True,
    metavar="PATH",
    help="Write PATH (file or tree) under the directory -o DIR.",
)
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
    if cat is not None or extract:  # one file or tree, reading only the layers that hold it (docs/diff.md)
        return cat_or_extract(read, refs[0], scan, cat=cat, extract=extract, outdir=output_path())
    try:
        scanned = scan_reference(read, refs[0], scan, progress_bar)
    except OciInspectError as exc:
        report_error(exc)
        docs = [error_document(refs[0], exc)]
        emit("files", fmt, docs, code=exit_code([exc], read=0), as_list=read.all_platforms)
    docs = [_listing(image, scans, layer_index, top, path_filter, sort) for image, scans in scanned]
    emit("files", fmt, docs, as_list=read.all_platforms)


def _layer(image: Image, index: int | None) -> int | None:
    """``--layer N`` as an index into ``image``'s layers (``-1`` the top one); out of range is a usage error."""
    if index is None:
        return None
    count = len(image.layers)
    if not -count <= index < count:
        if not count:
            raise UsageError(
                f"--layer {index}: the image has no layers", hint="list its files without --layer"
            )
        raise UsageError(
            f"--layer {index}: the image has {count} layer{'s' if count > 1 else ''} "
            f"(0 … {count - 1}, or -1 … -{count})",
            hint="`ociinspect inspect REF` numbers its layers",
        )
    return index % count


def _listing(
    image: Image,
    scans: list[LayerScan],
    layer_index: int | None,
    top: int | None,
    path_filter: str | None,
    sort: str,
) -> dict[str, Any]:
    """The ``files`` document of one image: its largest files, or what layer ``layer_index`` changes."""
    index = _layer(image, layer_index)
    limit = top if top is not None else (20 if index is None else 0)
    return files_document(image, scans, layer=index, top=limit, path_filter=path_filter, sort=sort)
