"""``ociinspect inspect``."""

from __future__ import annotations

import dataclasses
import itertools

import click

from ociinspect.analyzers.vm import estimate_for
from ociinspect.analyzers.vm_profiles import load_parameters
from ociinspect.cli import cli
from ociinspect.cli.options import ReadContext, exit_code, image_options, output_options, report_error
from ociinspect.reports import render, safe_text
from ociinspect.reports.data import error_document, inspect_document


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
    options = dataclasses.replace(read.options, sizes="exact") if exact else read.options
    results = read.session.load_many(list(refs), options, all_platforms=read.all_platforms, with_os=with_os)
    params = load_parameters() if with_os else None
    docs = []
    for r in results:
        if r.error:
            report_error(r.error)
            docs.append(error_document(r.reference, r.error))
        for img, info in itertools.zip_longest(r.images, r.os):
            vm = estimate_for(img, info, params) if info is not None and params is not None else None
            docs.append(inspect_document(img, os=info, vm=vm))
    if fmt != "json":
        docs = [d for d in docs if "error" not in d]
    if docs:
        click.echo(render("inspect", fmt, docs, as_list=len(refs) > 1 or read.all_platforms))
    for d in docs:
        for w in d.get("warnings", ()):
            click.echo(safe_text(f"ociinspect: warning: {d['reference']}: {w}"), err=True)
    code = exit_code(results)
    if code:
        raise SystemExit(code)
