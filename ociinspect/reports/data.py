"""Versioned, JSON-ready documents built from the model (the JSON contract in ``docs/cli.md``).

Every other renderer (table, markdown) is built from these documents, so the formats cannot disagree.
Sizes stay ``int`` bytes here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ociinspect.errors import OciInspectError, error_type_name
from ociinspect.model.image import Image, IndexEntry

# types only: `inspect -f json` imports no analyzer it does not use (nor the OS model before the base OS is read)
if TYPE_CHECKING:
    from ociinspect.analyzers.sharing import SharingReport
    from ociinspect.analyzers.vm import FleetEstimate, VmEstimate, VmParameters
    from ociinspect.model.osinfo import OsInfo

__all__ = [
    "ARTIFACT_NOTE",
    "SCHEMA_VERSION",
    "SOURCE_KEY",
    "add_sources",
    "artifact_entry",
    "compare_document",
    "error_document",
    "image_source",
    "inspect_document",
    "vm_document",
]

SCHEMA_VERSION = 1

#: the annotation (or config label) naming where an image's source lives
SOURCE_KEY = "org.opencontainers.image.source"


def image_source(image: Image) -> str | None:
    """The image's ``org.opencontainers.image.source`` as written (manifest annotation first, then config
    label), or ``None``.  Not validated: it comes from the image; a renderer that links it validates it."""
    value = image.annotations.get(SOURCE_KEY)
    if value is None and image.config is not None:
        value = image.config.labels.get(SOURCE_KEY)
    return value if isinstance(value, str) else None


def add_sources(doc: dict[str, Any], images: Sequence[Image]) -> None:
    """Set ``source`` (:func:`image_source`, or ``None``) on every entry of ``doc``'s ``images``,
    ``unknown_images`` and ``artifacts`` lists, matched by reference.  Cost: linear in the entries."""
    by_ref = {img.reference: image_source(img) for img in images}
    for key in ("images", "unknown_images", "artifacts"):
        for entry in doc.get(key) or ():
            if isinstance(entry, dict) and "reference" in entry:
                entry["source"] = by_ref.get(entry["reference"])


def _entry(e: IndexEntry) -> dict[str, Any]:
    d = e.descriptor
    return {
        "digest": d.digest,
        "media_type": d.media_type,
        "size": d.size,
        "platform": d.platform.to_json() if d.platform else None,
        "kind": e.kind,
        "artifact_type": d.artifact_type,
    }


def inspect_document(
    image: Image, *, os: OsInfo | None = None, vm: VmEstimate | None = None
) -> dict[str, Any]:
    """The ``inspect`` JSON document for one image (schema_version 1); ``os``/``vm`` add the base OS and the
    one-line VM equivalent."""
    cfg = image.config
    created = cfg.created if cfg else None
    return {
        "schema_version": SCHEMA_VERSION,
        "reference": image.reference,
        "digest": image.digest,
        "media_type": image.media_type,
        "manifest_size": image.manifest_size,
        "index_digest": image.index_digest,
        "index_media_type": image.index_media_type,
        "platform": image.platform.to_json() if image.platform else None,
        "platforms": [str(p) for p in image.platforms],
        "created": created,
        "config_digest": image.config_descriptor.digest,
        "config_media_type": image.config_descriptor.media_type,
        "config_size": image.config_descriptor.size,
        "artifact_type": image.artifact_type,
        "is_artifact": image.is_artifact,
        "entrypoint": list(cfg.entrypoint) if cfg and cfg.entrypoint is not None else None,
        "cmd": list(cfg.cmd) if cfg and cfg.cmd is not None else None,
        "user": cfg.user if cfg else None,
        "working_dir": cfg.working_dir if cfg else None,
        "env": list(cfg.env) if cfg else [],
        "exposed_ports": list(cfg.exposed_ports) if cfg else [],
        "labels": dict(cfg.labels) if cfg else {},
        "annotations": dict(image.annotations),
        "compressed_size": image.compressed_size,
        "uncompressed_size": image.uncompressed_size,
        "layer_count": len(image.layers),
        "layers": [
            {
                "index": layer.index,
                "digest": layer.digest,
                "media_type": layer.media_type,
                "size": layer.size,
                "uncompressed_size": layer.uncompressed.value,
                "uncompressed_size_source": layer.uncompressed.source,
                "uncompressed_size_note": layer.uncompressed.note,
                **(
                    {"uncompressed_size_candidates": list(layer.uncompressed.candidates)}
                    if layer.uncompressed.ambiguous
                    else {}
                ),
                "diff_id": layer.diff_id,
                "created_by": layer.history.created_by if layer.history else None,
                "created": layer.history.created if layer.history else None,
                "annotations": dict(layer.descriptor.annotations),
            }
            for layer in image.layers
        ],
        "history": [
            {
                "created": h.created,
                "created_by": h.created_by,
                "empty_layer": h.empty_layer,
                "comment": h.comment,
            }
            for h in image.history
        ],
        "index_manifests": [_entry(e) for e in image.index_entries],
        "base_os": os.to_json() if os else None,
        "vm_equivalent": None
        if vm is None
        else {
            "family": vm.profile.family,
            "vm_used_size": vm.vm_used,
            "vm_used_low": vm.vm_used_low,
            "vm_used_high": vm.vm_used_high,
            "vm_download_size": vm.vm_download,
            "vm_disk_size": vm.vm_disk,
        },
        "warnings": list(image.warnings),
    }


def error_document(reference: str, error: OciInspectError) -> dict[str, Any]:
    """A failed input, in the same list as successful ones (so nothing is silently dropped)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "reference": reference,
        "error": {
            "type": error_type_name(error),
            "message": error.message,
            "hint": error.hint,
            "exit_code": int(error.exit_code),
        },
    }


def compare_document(report: SharingReport, *, os_by_ref: dict[str, OsInfo] | None = None) -> dict[str, Any]:
    """The ``compare`` JSON document (schema_version 1): per-image shared/unique, layers, bases, pairs."""
    os_by_ref = os_by_ref or {}
    return {
        "schema_version": SCHEMA_VERSION,
        "images": [
            {
                "reference": s.reference,
                "digest": s.digest,
                "total_size": s.total_size,
                "shared_size": s.shared_size,
                "unique_size": s.unique_size,
                "uncompressed_total_size": s.uncompressed_total_size,
                "uncompressed_shared_size": s.uncompressed_shared_size,
                "uncompressed_unique_size": s.uncompressed_unique_size,
                "layer_count": s.layer_count,
                "base": s.base,
                "os": os_by_ref[s.reference].to_json() if s.reference in os_by_ref else None,
                "kind": s.kind,
                "artifact_type": s.artifact_type,
                "uncompressed_note": s.uncompressed_note,
            }
            for s in report.images
        ],
        "layers": [
            {
                "digest": layer.digest,
                "diff_id": layer.diff_id,
                "size": layer.size,
                "uncompressed_size": layer.uncompressed_size,
                "used_by": list(layer.used_by),
                "same_content_as": list(layer.same_content_as),
            }
            for layer in report.layers
        ],
        "bases": [
            {
                "label": g.label,
                "source": g.source,
                "digest": g.digest,
                "layers": g.layers,
                "size": g.size,
                "uncompressed_size": g.uncompressed_size,
                "images": list(g.images),
                "same_blobs": g.same_blobs,
                "saved_size": g.saved,
                "uncompressed_saved_size": g.uncompressed_saved,
            }
            for g in report.bases
        ],
        "pairs": [
            {
                "a": p.a,
                "b": p.b,
                "common_prefix_layers": p.common_prefix_layers,
                "common_prefix_size": p.common_prefix_size,
                "common_prefix_uncompressed_size": p.common_prefix_uncompressed_size,
                "shared_size": p.shared_size,
            }
            for p in report.pairs
        ],
        "deduplicated_size": report.deduplicated_size,
        "logical_size": report.logical_size,
        "uncompressed_deduplicated_size": report.uncompressed_deduplicated_size,
        "uncompressed_logical_size": report.uncompressed_logical_size,
        "uncompressed_unknown": list(report.uncompressed_unknown),
        "errors": [],
    }


#: what an artifact's blobs are, for every report that lists one (``vm``, ``compare``)
ARTIFACT_NOTE = (
    "an artifact's blobs are not filesystem layers: compressed sizes counted, uncompressed not applicable"
)


def artifact_entry(image: Image) -> dict[str, Any]:
    """An OCI artifact (SBOM, signature …) as ``vm`` and ``compare`` list it: what it is and what can be counted."""
    return {
        "reference": image.reference,
        "digest": image.digest,
        "artifact_type": image.artifact_type or image.config_descriptor.media_type,
        "subject": image.subject.digest if image.subject else None,
        "blobs": len(image.layers),
        "compressed_size": image.compressed_size,
        "uncompressed_size": None,
        "note": ARTIFACT_NOTE,
    }


def vm_document(
    estimates: Sequence[VmEstimate],
    fleet: FleetEstimate | None,
    params: VmParameters,
    *,
    bases: Sequence[str] = (),
    unknown: Sequence[tuple[Image, OsInfo, str]] = (),
    artifacts: Sequence[Image] = (),
) -> dict[str, Any]:
    """The ``vm`` JSON document (schema_version 1): each image as a VM, the fleet, and the parameters used.

    ``bases`` (aligned with ``estimates``) says how each container size was obtained (``exact`` or ``cheap``);
    ``unknown`` lists images whose uncompressed size is unknown or ambiguous (no VM figures, left out of the
    fleet, which then says ``complete: false``), each with why; ``artifacts`` are described, never modelled."""
    families = sorted(
        {e.profile.family for e in estimates} | {params.profile(i.family).family for _, i, _ in unknown}
    )
    basis = list(bases) + ["cheap"] * (len(estimates) - len(bases))
    left_out = [img.reference for img, _, _ in unknown]
    return {
        "schema_version": SCHEMA_VERSION,
        "images": [
            {
                "reference": e.reference,
                "os": e.os.to_json(),
                "family": e.profile.family,
                "family_label": e.profile.label,
                "container_size": e.container_size,
                "container_size_basis": basis[n],
                "base_size": e.base_size,
                "base_size_source": e.base_size_source,
                "payload_size": e.payload,
                "vm_os_size": int(e.profile.vm_os.central),
                "vm_used_size": e.vm_used,
                "vm_used_low": e.vm_used_low,
                "vm_used_high": e.vm_used_high,
                "vm_download_size": e.vm_download,
                "vm_download_low": e.vm_download_low,
                "vm_download_high": e.vm_download_high,
                "vm_disk_size": e.vm_disk,
            }
            for n, e in enumerate(estimates)
        ],
        "unknown_images": [
            {
                "reference": img.reference,
                "digest": img.digest,
                "platform": img.platform.to_json() if img.platform else None,
                "os": info.to_json(),
                "family": params.profile(info.family).family,
                "container_size": None,
                "container_size_basis": "unknown",
                "compressed_size": img.compressed_size,
                "note": note,
            }
            for img, info, note in unknown
        ],
        "artifacts": [artifact_entry(img) for img in artifacts],
        "fleet": None
        if fleet is None
        else fleet.to_json()
        | {
            "complete": not left_out,
            "left_out": left_out,
            "container_size_basis": "exact" if basis and all(b == "exact" for b in basis) else "cheap",
        },
        "parameters": {
            "origin": params.origin,
            "download_ratio": dataclasses.asdict(params.download_ratio),
            "headroom": params.headroom,
            "writable_layer": params.writable_layer,
            "sources": dict(params.sources),
            "families": {
                f: {
                    "label": (p := params.profile(f)).label,
                    "container_base": p.container_base,
                    "vm_os": dataclasses.asdict(p.vm_os),
                    "disk": p.disk,
                    "confidence": p.confidence,
                    "derivation": p.derivation,
                    "sources": list(p.sources),
                    "disk_source": p.disk_source,
                    "components": dict(p.components),
                }
                for f in families
            },
        },
        "errors": [],
    }
