"""``ociinspect inspect``."""

from __future__ import annotations

import dataclasses
import itertools

import click

from ociinspect import verbs
from ociinspect.analyzers.vm import estimate_for
from ociinspect.analyzers.vm_profiles import load_parameters
from ociinspect.cli import cli
from ociinspect.cli.options import emit, image_options, load_for_command, output_options, report_error
from ociinspect.errors import OciInspectError
from ociinspect.reports.data import error_document, inspect_document
from ociinspect.session import ReadContext, exit_code


@cli.command()
@click.argument("refs", nargs=-1, required=True)
@click.option(
    "--exact",
    is_flag=True,
    help="Stream every layer to count its uncompressed bytes (verifies digests and diff_ids).",
)
@click.option(
    "--os/--no-os",
    "with_os",
    default=True,
    show_default=True,
    help="Find the base OS and its VM equivalent (reads the start of the base layer once; cached by digest).",
)
@image_options
@output_options
def inspect(refs: tuple[str, ...], exact: bool, with_os: bool, read: ReadContext, fmt: str) -> None:
    """Show an image's digest, platform, config and layers with compressed and uncompressed sizes.

    REFS are image references: docker://HOST/REPO[:TAG][@DIGEST] (or a bare NAME), oci:DIR[:TAG|@DIGEST],
    oci-archive:FILE[:TAG], docker-archive:FILE[:REPO:TAG]. Several refs are read concurrently.

    Uncompressed sizes come from the gzip trailer / zstd header (a few bytes per layer); each says its
    source. --exact streams the layers instead. The base OS comes from /etc/os-release in the base layer
    (read only up to that file, then cached), with a one-line VM equivalent (see `ociinspect vm`).

    \b
    Examples:
      ociinspect inspect oci:fixtures/demo:latest
      ociinspect inspect docker://localhost:5000/app:1.0 --platform linux/arm64 -f json
    """
    if exact:
        read.options = dataclasses.replace(read.options, sizes="exact")
    results = load_for_command(read, refs, with_os=with_os, report=False)  # errors reported in order below
    params = load_parameters() if with_os else None
    docs = []
    referrer_counts: dict[str, int] = {}
    for r in results:
        if r.error:
            report_error(r.error)
            docs.append(error_document(r.reference, r.error))
        for img, info in itertools.zip_longest(r.images, r.os):
            vm = estimate_for(img, info, params) if info is not None and params is not None else None
            doc = inspect_document(img, os=info, vm=vm)
            try:  # referrers: a count for registry images (one request per index), "not known" on failure
                count = verbs.image_referrer_count(read.session, img, referrer_counts)
                if count is not None:
                    doc["referrers"] = count
            except OciInspectError as exc:
                doc["referrers"] = None
                doc["warnings"] = [*doc.get("warnings", ()), f"referrers not known: {exc.message}"]
            docs.append(doc)
    errors = [r.error for r in results if r.error]
    code = exit_code(errors, read=len(results) - len(errors))
    emit("inspect", fmt, docs, code=code, as_list=len(refs) > 1 or read.all_platforms)
