"""``ociinspect compare``."""

from __future__ import annotations

import dataclasses

import click

from ociinspect.analyzers.sharing import analyze
from ociinspect.cli import cli
from ociinspect.cli.options import ReadContext, emit_results, image_options, load_for_command, output_options
from ociinspect.errors import UsageError
from ociinspect.reports.data import compare_document


@cli.command()
@click.argument("refs", nargs=-1, required=True)
@click.option(
    "--base",
    "bases",
    multiple=True,
    metavar="REF",
    help="A candidate base image (repeatable): attributes images whose layers start with its layers.",
)
@click.option(
    "--matrix",
    is_flag=True,
    help="Also print the pairwise overlap matrix (shared bytes / common leading layers).",
)
@click.option(
    "--os/--no-os",
    "with_os",
    default=True,
    show_default=True,
    help="Find each image's base OS (reads the start of its base layer, cached).",
)
@click.option(
    "--exact",
    is_flag=True,
    help="Stream every layer to count its uncompressed bytes (when cheap sizes are unknown: '?').",
)
@image_options
@output_options("compare")
def compare(
    refs: tuple[str, ...],
    bases: tuple[str, ...],
    matrix: bool,
    with_os: bool,
    exact: bool,
    read: ReadContext,
    fmt: str,
) -> None:
    """Shared and unique bytes across images, like `docker system df -v` for any refs: per image its size,
    the bytes it shares with the others and the bytes only it has (compressed, by blob; and unpacked, by
    content), the common base images and what sharing them saves.

    Images may mix sources (registry, oci:, oci-archive:, docker-archive:). A ref that fails is reported and
    the rest are still analysed (exit 4). Unpacked figures whose layer sizes are unknown or ambiguous show '?'
    and say why (--exact streams the layers); OCI artifacts count compressed only (unpacked: not applicable).

    \b
    Examples:
      ociinspect compare docker://reg.example.com/team/api:1 docker://reg.example.com/team/web:1
      ociinspect compare oci:build/layout:api oci:build/layout:web --matrix -f html > sharing.html
    """
    if len(refs) < 2 and not bases and not read.all_platforms:
        raise UsageError(
            f"compare needs at least two images, {len(refs)} was given",
            hint="name two or more refs, add --base REF, or compare an index's platforms with --all-platforms",
        )
    if exact:
        read.options = dataclasses.replace(read.options, sizes="exact")
    results = load_for_command(read, refs, with_os=with_os)
    base_results = load_for_command(read, bases) if bases else []
    images = [img for r in results for img in r.images]
    os_by_ref = {img.reference: info for r in results for img, info in zip(r.images, r.os, strict=False)}
    doc = compare_document(
        analyze(images, bases=[img for r in base_results for img in r.images]), os_by_ref=os_by_ref
    )
    doc["options"] = {"matrix": matrix}
    emit_results("compare", fmt, doc, [*results, *base_results])
