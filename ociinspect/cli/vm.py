"""``ociinspect vm``."""

from __future__ import annotations

import dataclasses

import click

from ociinspect.analyzers.vm import estimate_fleet, estimate_for
from ociinspect.cli import cli
from ociinspect.cli.options import ReadContext, emit_results, image_options, load_for_command, output_options
from ociinspect.errors import UsageError
from ociinspect.reports.data import vm_document
from ociinspect.vmprofiles import load_parameters


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
@image_options
@output_options("vm")
def vm(
    refs: tuple[str, ...],
    replicas: int,
    vm_profile: str | None,
    writable_layer: float | None,
    read: ReadContext,
    fmt: str,
) -> None:
    """What the same workloads would weigh as VM images: for each image, the VM's used size (with a low–high
    range), download size and provisioned disk, from its base OS and a cited per-distribution model; and for
    the set as a fleet of --replicas containers each, containers (layers shared, stored once) vs VMs (one
    OS copy each), and the ratio. The model and its sources: docs/vm-model.md.

    \b
    Examples:
      ociinspect vm oci:fixtures/demo:latest
      ociinspect vm docker://reg.example.com/team/api:1 docker://reg.example.com/team/web:1 --replicas 50 -f html > vm.html
    """
    params = load_parameters(vm_profile)
    if writable_layer is not None:
        params = dataclasses.replace(params, writable_layer=int(writable_layer * 10**6))
    results = load_for_command(read, refs, with_os=True)
    pairs = [(img, info) for r in results for img, info in zip(r.images, r.os, strict=False)]
    estimates = []
    for img, info in pairs:
        estimate = estimate_for(img, info, params)
        if estimate is None:
            raise UsageError(
                f"{img.reference}: some uncompressed layer sizes are unknown, so the VM size cannot be computed",
                hint="rerun with --exact to stream the layers",
            )
        estimates.append(estimate)
    fleet = estimate_fleet([img for img, _ in pairs], estimates, params, replicas=replicas) if pairs else None
    emit_results("vm", fmt, vm_document(estimates, fleet, params), results)
