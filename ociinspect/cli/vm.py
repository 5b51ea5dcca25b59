"""``ociinspect vm``."""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from ociinspect.analyzers.vm import VmParameters, analyse_fleet
from ociinspect.analyzers.vm_profiles import load_parameters
from ociinspect.cli import cli
from ociinspect.cli.options import emit_results, image_options, load_for_command, output_options
from ociinspect.model.image import Image
from ociinspect.model.osinfo import OsInfo
from ociinspect.reports.data import vm_document
from ociinspect.session import LoadResult, ReadContext


@cli.command()
@click.argument("refs", nargs=-1, required=True)
@click.option(
    "--replicas",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Containers (and VMs) per image in the fleet.",
)
@click.option(
    "--vm-profile",
    type=click.Path(dir_okay=False),
    help="A TOML file overriding the model's parameters (see docs/vm-model.md).",
)
@click.option(
    "--writable-layer",
    type=click.FloatRange(min=0),
    help="Per-container writable layer, in MB (decimal; default from the profile: 0).",
)
@click.option(
    "--exact",
    is_flag=True,
    help="Stream every layer to count its uncompressed bytes (for images whose cheap sizes are unknown).",
)
@image_options
@output_options("vm")
def vm(
    refs: tuple[str, ...],
    replicas: int,
    vm_profile: str | None,
    writable_layer: float | None,
    exact: bool,
    read: ReadContext,
    fmt: str,
) -> None:
    """What the same workloads would weigh as VM images: for each image, the VM's used size (with a low–high
    range), download size and provisioned disk, from its base OS and a cited per-distribution model; and for
    the set as a fleet of --replicas containers each, containers (layers shared, stored once) vs VMs (one
    OS copy each), and the ratio. The model and its sources: docs/vm-model.md.

    An image whose uncompressed size is unknown or ambiguous (cheap evidence could not settle it) gets no VM
    figures and is left out of the fleet, which says so; the rest are analysed and the exit code is 4 (rerun
    with --exact to stream the layers). OCI artifacts (SBOMs, signatures) are listed, not modelled.

    \b
    Examples:
      ociinspect vm oci:fixtures/demo:latest
      ociinspect vm docker://reg.example.com/team/api:1 docker://reg.example.com/team/web:1 --replicas 50 -f html > vm.html
    """
    params = load_parameters(vm_profile)
    if writable_layer is not None:
        params = dataclasses.replace(params, writable_layer=int(writable_layer * 10**6))
    if exact:
        read.options = dataclasses.replace(read.options, sizes="exact")
    results = load_for_command(read, refs, with_os=True)
    doc, unknown = _vm_document(results, params, replicas)
    warnings = [f"{img.reference}: no VM figures: {why}" for img, _, why in unknown]
    # exits 4 (some refs failed, or some images have no VM figures) or the error's code (all failed)
    emit_results("vm", fmt, doc, results, undecidable=bool(unknown), warnings=warnings)


def _vm_document(
    results: list[LoadResult], params: VmParameters, replicas: int
) -> tuple[dict[str, Any], tuple[tuple[Image, OsInfo, str], ...]]:
    """The ``vm`` document of the images read, and the images whose uncompressed size is not known (with why).
    Cost: arithmetic only."""
    pairs = [(img, info) for r in results for img, info in zip(r.images, r.os, strict=False)]
    got = analyse_fleet(pairs, params, replicas=replicas)
    doc = vm_document(
        got.estimates, got.fleet, params, bases=got.bases, unknown=got.unknown, artifacts=got.artifacts
    )
    return doc, got.unknown
