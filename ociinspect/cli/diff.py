"""``ociinspect diff A B``: what changed between two images (see ``docs/diff.md``)."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import click

from ociinspect.analyzers.diff import ImageDiff, diff_images, layers_to_read, prefix_needed
from ociinspect.cli import cli
from ociinspect.cli.options import (
    ReadContext,
    ScanSettings,
    image_options,
    output_options,
    scan_options,
    write_output,
)
from ociinspect.content.scan import scan_image
from ociinspect.errors import ExitCode, OciInspectError, UsageError
from ociinspect.image.loader import load
from ociinspect.model.entries import LayerScan
from ociinspect.model.image import Image
from ociinspect.reports import render

__all__ = ["DiffRead", "diff", "diff_references"]


@dataclasses.dataclass(frozen=True, slots=True)
class DiffRead:
    """What a diff read: layers streamed (and their compressed bytes), layers taken from the cache, shared
    layers never read."""

    layers_streamed: int
    bytes_streamed: int
    layers_cached: int
    layers_skipped: int

    def to_json(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def _load(read: ReadContext, src: Any, label: str) -> Image:
    try:
        image = load(src, read.options)
    except OciInspectError as exc:
        raise exc.with_context(f"reading {label} {src.reference}") from None
    if image.is_artifact:
        raise UsageError(
            f"{label} {image.reference} is an artifact ({image.artifact_type}), not a container image",
            hint="diff compares container images",
        )
    return image


def diff_references(
    read: ReadContext, ref_a: str, ref_b: str, settings: ScanSettings, *, depth: int = 3
) -> tuple[ImageDiff, DiffRead]:
    """Load both images and diff them, reading only what the result depends on.

    Cost: the two manifests and configs (plus the loader's small Range reads for cheap sizes); the layers above
    the shared prefix of each image, each streamed once unless the layer cache holds its index; the shared
    prefix only when :func:`~ociinspect.analyzers.diff.prefix_needed` says so (once, from A, cache first).
    """
    store = settings.store()
    scans: list[LayerScan] = []
    sizes: dict[str, int] = {}
    try:
        with contextlib.ExitStack() as stack:
            src_a = stack.enter_context(read.session.source(ref_a))
            src_b = stack.enter_context(read.session.source(ref_b))
            a, b = _load(read, src_a, "A"), _load(read, src_b, "B")
            sizes.update({x.digest: x.size for x in (*a.layers, *b.layers)})
            plan = layers_to_read(a, b)

            def scan(src: Any, image: Image, indexes: tuple[int, ...], label: str) -> list[LayerScan]:
                try:
                    out = scan_image(src, image, settings.options, cache=store, layers=indexes)
                except OciInspectError as exc:
                    raise exc.with_context(f"reading {label} {image.reference}") from None
                scans.extend(out)
                return out

            sa = scan(src_a, a, plan.only_a, "A")
            sb = scan(src_b, b, plan.only_b, "B")
            prefix = scan(src_a, a, plan.prefix, "A") if plan.shared and prefix_needed(sa, sb) else None
            result = diff_images(a, b, sa, sb, prefix, depth=depth)
    finally:
        if store is not None:
            store.close()
    streamed = [s for s in scans if not s.from_cache]
    return result, DiffRead(
        layers_streamed=len(streamed),
        bytes_streamed=sum(sizes.get(s.digest, 0) for s in streamed if s.index_source == "stream"),
        layers_cached=len(scans) - len(streamed),
        layers_skipped=0 if result.prefix_read else layers_to_read(result.a, result.b).shared,
    )


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
