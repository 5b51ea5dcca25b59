"""Versioned, JSON-ready documents built from the model (the JSON contract in ``docs/cli.md``).

Every other renderer (table, markdown) is built from these documents, so the formats cannot disagree.
Sizes stay ``int`` bytes here.
"""

from __future__ import annotations

from typing import Any

from ociinspect.errors import OciInspectError
from ociinspect.model import Image, IndexEntry

__all__ = ["SCHEMA_VERSION", "error_document", "inspect_document"]

SCHEMA_VERSION = 1


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


def inspect_document(image: Image) -> dict[str, Any]:
    """The ``inspect`` JSON document for one image (schema_version 1)."""
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
        "warnings": list(image.warnings),
    }


def error_document(reference: str, error: OciInspectError) -> dict[str, Any]:
    """A failed input, in the same list as successful ones (so nothing is silently dropped)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "reference": reference,
        "error": {
            "type": type(error).__name__,
            "message": error.message,
            "hint": error.hint,
            "exit_code": int(error.exit_code),
        },
    }
