"""The VM-image-size equivalent: what the same workload would weigh as VM images (``docs/vm-model.md``).

Pure functions over sizes and :class:`~ociinspect.analyzers.vm.VmParameters` (loaded by
:mod:`ociinspect.analyzers.vm_profiles`).  Every result carries the parameters it used, so a report can explain itself.

Model (per image, family ``f``)::

    A      = max(0, U - U_base)                       payload on top of the OS (U_base: detected base layers,
                                                       else the family's typical container base B_ctr)
    V_used = B_vm(f) + A      (low/high from B_vm's range)
    V_dl   = V_used / k       (k: qcow2 download ratio; low = V_used_low / k_high, high = V_used_high / k_low)
    V_prov = max(D(f), V_used * (1 + headroom))

Fleet of images with ``replicas`` each: ``C = Σ unique layers (by diff_id) + N·w`` versus ``Σ replicas·V_used``.

A figure is right or says it is not known: an image with an unknown or ambiguous uncompressed layer size has no
VM figures (:func:`unknown_sizes` says which layers, with the candidates, and that ``--exact`` settles it) and is
left out of the fleet, which says so; an OCI artifact (SBOM, signature) is not a workload and has no VM figures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from ociinspect.model.image import Image
from ociinspect.model.osinfo import OsInfo
from ociinspect.model.record import record

__all__ = [
    "FleetAnalysis",
    "FleetEstimate",
    "Span",
    "VmEstimate",
    "VmParameters",
    "VmProfile",
    "analyse_fleet",
    "estimate_fleet",
    "estimate_for",
    "estimate_image",
    "size_basis",
    "unknown_sizes",
]


@record
class Span:
    """A figure with its low–high range (bytes, or a ratio)."""

    low: float
    central: float
    high: float


@record
class VmProfile:
    """One OS family's VM model: its container base and VM OS sizes (bytes), disk, and where they come from."""

    family: str
    label: str
    os_ids: tuple[str, ...]
    container_base: int  # B_ctr, bytes
    vm_os: Span  # B_vm, bytes
    disk: int  # D, bytes
    confidence: str
    derivation: str
    sources: tuple[str, ...]
    disk_source: str
    components: Mapping[str, int]  # name -> bytes, the decomposition of B_vm where published


@record
class VmParameters:
    """The VM model's parameters: the profiles by family and the global figures, with their sources."""

    profiles: Mapping[str, VmProfile]
    download_ratio: Span
    headroom: float
    writable_layer: int  # w, bytes per container
    fallback_family: str
    origin: str  # "built-in" or the --vm-profile path
    sources: Mapping[str, str]  # global parameter -> its source

    def profile(self, family: str) -> VmProfile:
        return self.profiles.get(family) or self.profiles[self.fallback_family]


@record
class VmEstimate:
    """One image as a VM.  Sizes in bytes (ints)."""

    reference: str
    os: OsInfo
    profile: VmProfile
    container_size: int  # U
    base_size: int  # U_base used
    base_size_source: str  # "detected base layers (0..n)" or "family default"
    payload: int  # A
    vm_used: int
    vm_used_low: int
    vm_used_high: int
    vm_download: int
    vm_download_low: int
    vm_download_high: int
    vm_disk: int


@record
class FleetEstimate:
    """A fleet of containers against the same workloads as VMs.  Sizes in bytes (ints)."""

    replicas: int  # per image
    containers: int  # N = replicas * images
    containers_size: int  # C (bytes)
    unique_layers_size: int
    writable_size: int
    vms_used_size: int
    vms_used_low: int
    vms_used_high: int
    vms_disk_size: int
    ratio: float | None  # vms_used / C; None when C is 0
    ratio_low: float | None
    ratio_high: float | None
    disk_ratio: float | None

    def to_json(self) -> dict[str, int | float | None]:
        """Every field, for JSON documents (sizes in bytes)."""
        return dataclasses.asdict(self)


def estimate_image(
    reference: str,
    uncompressed_size: int,
    os: OsInfo,
    params: VmParameters,
    *,
    base_size: int | None = None,
    base_layers: int | None = None,
) -> VmEstimate:
    """One image's VM equivalent.  ``base_size`` is the uncompressed size of the detected base layers
    (``base_layers`` of them); without it the family's typical container base is used and said so."""
    profile = params.profile(os.family)
    if base_size is None:
        u_base, source = (
            profile.container_base,
            f"typical {profile.family} container base (no base layers detected)",
        )
    else:
        u_base, source = base_size, f"detected base layers (0..{(base_layers or 1) - 1})"
    payload = max(0, uncompressed_size - u_base)
    used = [int(v + payload) for v in (profile.vm_os.low, profile.vm_os.central, profile.vm_os.high)]
    k = params.download_ratio
    return VmEstimate(
        reference=reference,
        os=os,
        profile=profile,
        container_size=uncompressed_size,
        base_size=u_base,
        base_size_source=source,
        payload=payload,
        vm_used=used[1],
        vm_used_low=used[0],
        vm_used_high=used[2],
        vm_download=int(used[1] / k.central),
        vm_download_low=int(used[0] / k.high),
        vm_download_high=int(used[2] / k.low),
        vm_disk=max(profile.disk, int(used[1] * (1 + params.headroom))),
    )


def estimate_for(image: Image, os: OsInfo, params: VmParameters) -> VmEstimate | None:
    """:func:`estimate_image` for a loaded image: the base layers are those up to the one holding the OS files.

    ``None`` when an uncompressed layer size is unknown (:func:`unknown_sizes` says which; the caller suggests
    ``--exact``) and for an artifact (no workload to model).
    """
    size = image.uncompressed_size
    if size is None or image.is_artifact:
        return None
    base_size = None
    if os.layer_index is not None:
        base_size = sum(layer.uncompressed.value or 0 for layer in image.layers[: os.layer_index + 1])
    return estimate_image(
        image.reference, size, os, params, base_size=base_size, base_layers=(os.layer_index or 0) + 1
    )


def unknown_sizes(image: Image) -> str | None:
    """Why ``image``'s uncompressed size is not known (``None`` when it is): the layers whose size is unknown,
    ambiguous ones with their candidate sizes in bytes, and the hint.  Cost: none (reads the model)."""
    unknown = [layer for layer in image.layers if not layer.uncompressed.known]
    if not unknown:
        return None
    parts = []
    for layer in unknown:
        est = layer.uncompressed
        if est.ambiguous:
            parts.append(f"{layer.index} (ambiguous: {' or '.join(str(c) for c in est.candidates)} bytes)")
        else:
            why = (est.note or "").split("; use --exact")[0].split(": use --exact")[0]
            parts.append(f"{layer.index}" + (f" ({why})" if why else ""))
    return f"uncompressed size of layer(s) {', '.join(parts)} unknown: rerun with --exact"


def size_basis(image: Image) -> str:
    """How the image's uncompressed size was obtained: ``exact`` (every layer streamed, or stored
    uncompressed), ``cheap`` (gzip trailers, zstd headers, eStargz TOCs or the store: known, but not counted
    byte by byte) or ``unknown``."""
    sources = {layer.uncompressed.source for layer in image.layers if layer.uncompressed.known}
    if any(not layer.uncompressed.known for layer in image.layers):
        return "unknown"
    return "exact" if sources <= {"exact", "streamed"} else "cheap"


def estimate_fleet(
    images: Sequence[Image], estimates: Sequence[VmEstimate], params: VmParameters, *, replicas: int = 1
) -> FleetEstimate:
    """``replicas`` containers of each image on one host (layers stored once, by diff_id) versus as many VMs.

    Raises ``ValueError`` when an uncompressed layer size is unknown (callers load with exact sizes then).
    """
    unique: dict[str, int] = {}
    for img in images:
        for layer in img.layers:
            if layer.uncompressed.value is None:
                raise ValueError(f"{img.reference}: layer {layer.index} has no known uncompressed size")
            unique.setdefault(layer.diff_id or layer.digest, layer.uncompressed.value)
    n = replicas * len(images)
    layers_size = sum(unique.values())
    writable = n * params.writable_layer
    c = layers_size + writable
    used = sum(e.vm_used for e in estimates) * replicas
    low = sum(e.vm_used_low for e in estimates) * replicas
    high = sum(e.vm_used_high for e in estimates) * replicas
    disk = sum(e.vm_disk for e in estimates) * replicas

    def ratio(v: int) -> float | None:
        return v / c if c else None  # no bytes on the container side: the ratio is undefined

    return FleetEstimate(
        replicas=replicas,
        containers=n,
        containers_size=c,
        unique_layers_size=layers_size,
        writable_size=writable,
        vms_used_size=used,
        vms_used_low=low,
        vms_used_high=high,
        vms_disk_size=disk,
        ratio=ratio(used),
        ratio_low=ratio(low),
        ratio_high=ratio(high),
        disk_ratio=ratio(disk),
    )


@record
class FleetAnalysis:
    """``vm`` for a set of images: each image with figures (``estimates``, in input order, with how its size was
    obtained in ``bases``), the fleet of those (``None`` when none has figures), the images without figures
    (``unknown``: image, OS, why) and the artifacts left out."""

    estimates: tuple[VmEstimate, ...]
    fleet: FleetEstimate | None
    bases: tuple[str, ...]
    unknown: tuple[tuple[Image, OsInfo, str], ...]
    artifacts: tuple[Image, ...]


def analyse_fleet(
    images: Iterable[tuple[Image, OsInfo]], params: VmParameters, *, replicas: int = 1, rerun: str = "--exact"
) -> FleetAnalysis:
    """Every image as a VM and the fleet of the ones whose uncompressed size is known (the one loop behind the
    ``vm`` command and ``Session.vm``).  ``rerun`` names what settles unknown sizes for the caller (``--exact``
    on the command line, ``exact=True`` in the library).  Cost: arithmetic only."""
    estimates: list[VmEstimate] = []
    known: list[Image] = []
    bases: list[str] = []
    unknown: list[tuple[Image, OsInfo, str]] = []
    artifacts: list[Image] = []
    for img, info in images:
        if img.is_artifact:
            artifacts.append(img)
            continue
        estimate = estimate_for(img, info, params)
        if estimate is None:
            unknown.append(
                (img, info, unknown_sizes(img) or f"uncompressed size unknown: rerun with {rerun}")
            )
            continue
        estimates.append(estimate)
        known.append(img)
        bases.append(size_basis(img))
    fleet = estimate_fleet(known, estimates, params, replicas=replicas) if known else None
    return FleetAnalysis(tuple(estimates), fleet, tuple(bases), tuple(unknown), tuple(artifacts))
