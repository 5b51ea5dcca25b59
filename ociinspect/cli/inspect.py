"""``ociinspect inspect``."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
from typing import TYPE_CHECKING, Any

import click

from ociinspect import verbs
from ociinspect.cli import cli
from ociinspect.cli.options import emit, image_options, jobs, load_for_command, output_options, report_error
from ociinspect.errors import OciInspectError
from ociinspect.model.image import Image
from ociinspect.model.osinfo import OsInfo
from ociinspect.model.reference import parse_reference
from ociinspect.reports.data import error_document, inspect_document
from ociinspect.session import ReadContext, exit_code

if TYPE_CHECKING:
    from ociinspect.analyzers.vm import VmParameters


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
    params: VmParameters | None = None
    if with_os:  # the VM model (and its TOML) only when the base OS is asked for
        from ociinspect.analyzers.vm_profiles import load_parameters

        params = load_parameters()
    counts, failures = _referrer_counts(read, [img for r in results for img in r.images])
    docs = []
    for r in results:
        if r.error:
            report_error(r.error)
            docs.append(error_document(r.reference, r.error))
        for img, info in itertools.zip_longest(r.images, r.os):
            docs.append(_document(read, img, info, params, counts, failures))
    errors = [r.error for r in results if r.error]
    code = exit_code(errors, read=len(results) - len(errors))
    emit("inspect", fmt, docs, code=code, as_list=len(refs) > 1 or read.all_platforms)


def _document(
    read: ReadContext,
    img: Image,
    info: OsInfo | None,
    params: VmParameters | None,
    counts: dict[str, int],
    failures: dict[str, OciInspectError],
) -> dict[str, Any]:
    """The ``inspect`` document of one image: its figures, base OS and VM line, and its referrer count
    (``None`` with a warning when the registry could not say).  Cost: no request (counts are fetched before)."""
    vm = None
    if info is not None and params is not None:
        from ociinspect.analyzers.vm import estimate_for

        vm = estimate_for(img, info, params)
    doc = inspect_document(img, os=info, vm=vm)
    failed = failures.get(img.index_digest or img.digest)
    if failed is not None:
        doc["referrers"] = None
        doc["warnings"] = [*doc.get("warnings", ()), f"referrers not known: {failed.message}"]
        return doc
    count = verbs.image_referrer_count(read.session, img, counts)  # local: None; registry: from ``counts``
    if count is not None:
        doc["referrers"] = count
    return doc


def _referrer_counts(
    read: ReadContext, images: list[Image]
) -> tuple[dict[str, int], dict[str, OciInspectError]]:
    """The referrer count of every registry image's top manifest (its index when it came from one), by subject
    digest, and the subjects whose count could not be read.  One request per distinct subject (+ one manifest
    GET on registries without the referrers API), ``-j`` in flight at once, so 50 refs cost ~50/``-j`` round
    trips of wall time instead of 50.  Local images: no request."""
    subjects: dict[str, Image] = {}
    for img in images:
        if parse_reference(img.reference).is_registry:
            subjects.setdefault(img.index_digest or img.digest, img)
    counts: dict[str, int] = {}
    failures: dict[str, OciInspectError] = {}

    def one(subject: str, img: Image) -> None:
        try:
            count = verbs.image_referrer_count(read.session, img)
        except OciInspectError as exc:
            failures[subject] = exc
            return
        if count is not None:
            counts[subject] = count

    if len(subjects) <= 1:
        for subject, img in subjects.items():
            one(subject, img)
        return counts, failures
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(jobs(), len(subjects))) as pool:
        for future in [pool.submit(one, subject, img) for subject, img in subjects.items()]:
            future.result()
    return counts, failures
