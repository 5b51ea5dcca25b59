"""Media-type constants and predicates (OCI image spec and Docker distribution).

Standard library plus ``oras.defaults`` (constants only, no side effects, ~0.3 ms to import).
"""

from __future__ import annotations

import json

from oras import defaults as _oras

__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_FOREIGN_LAYER",
    "DOCKER_LAYER_GZIP",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "DOCKER_SCHEMA1",
    "DOCKER_SCHEMA1_SIGNED",
    "GENERIC_TYPES",
    "MANIFEST_ACCEPT",
    "OCI_CONFIG",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_ZSTD",
    "OCI_MANIFEST",
    "UNKNOWN_CONFIG",
    "compression_of",
    "is_image_config",
    "is_index",
    "is_layer",
    "is_manifest",
    "is_schema1",
    "manifest_media_type",
]

OCI_MANIFEST: str = _oras.default_manifest_media_type  # application/vnd.oci.image.manifest.v1+json
OCI_INDEX: str = _oras.default_index_media_type  # application/vnd.oci.image.index.v1+json
DOCKER_MANIFEST: str = _oras.docker_manifest_media_type
DOCKER_MANIFEST_LIST: str = _oras.docker_manifest_list_media_type
UNKNOWN_CONFIG: str = _oras.unknown_config_media_type
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

#: Sent on every manifest request: without the OCI types Distribution answers 404 for OCI manifests, and
#: without the Docker v2 type it down-converts to schema1 (measured; see docs/references.md).
MANIFEST_ACCEPT: tuple[str, ...] = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)

_INDEXES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
_MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
_CONFIGS = frozenset({OCI_CONFIG, DOCKER_CONFIG})


def is_index(media_type: str) -> bool:
    """OCI image index or Docker manifest list."""
    return media_type in _INDEXES


def is_manifest(media_type: str) -> bool:
    """OCI image manifest or Docker schema2 manifest."""
    return media_type in _MANIFESTS


def is_schema1(media_type: str) -> bool:
    """Docker schema1 (signed or not): unsupported, see docs/references.md."""
    return media_type in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED)


def is_image_config(media_type: str) -> bool:
    """A runnable image's config (OCI or Docker), as opposed to an artifact's config."""
    return media_type in _CONFIGS


def is_layer(media_type: str) -> bool:
    """A filesystem layer (tar, possibly compressed, possibly non-distributable/foreign)."""
    return (
        media_type.startswith("application/vnd.oci.image.layer.")
        or media_type.startswith("application/vnd.docker.image.rootfs.")
        or media_type in ("application/tar", "application/tar+gzip", "application/tar+zstd")
    )


def compression_of(media_type: str) -> str:
    """``"gzip"``, ``"zstd"``, ``"none"`` for layer media types, ``"unknown"`` otherwise (cost: string tests)."""
    if media_type.endswith(("+gzip", ".tar.gzip", ".gzip")):
        return "gzip"
    if media_type.endswith(("+zstd", ".tar.zstd")):
        return "zstd"
    if media_type.endswith((".tar", "/tar")):
        return "none"
    return "unknown"


#: Types that say nothing about what a manifest is (a registry's missing or generic Content-Type, a descriptor's
#: empty or generic mediaType): for these the document itself decides (:func:`manifest_media_type`).
GENERIC_TYPES = frozenset(
    {"", "application/json", "text/plain", "application/octet-stream", "binary/octet-stream"}
)


def manifest_media_type(declared: str | None, data: bytes) -> str:
    """The media type of manifest bytes, the one sniffing rule for every source.

    ``declared`` (a registry's Content-Type without parameters, or the descriptor's ``mediaType`` in a layout)
    wins unless it is missing or in :data:`GENERIC_TYPES`; then the ``mediaType`` inside the JSON; then its
    shape (``schemaVersion: 1`` → Docker schema1, signed when it has ``signatures``; a ``manifests`` list → OCI
    index; ``config`` or ``layers`` → OCI manifest); else ``declared`` or ``application/octet-stream``.  The
    loader still checks the document against the type (:func:`ociinspect.image.loader.parse_manifest`).

    Cost: one JSON parse of ``data`` when ``declared`` is generic, else none.
    """
    declared = declared or ""
    if declared not in GENERIC_TYPES:
        return declared
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's recursion limit
        return declared or "application/octet-stream"
    if isinstance(doc, dict):
        value = doc.get("mediaType")
        if isinstance(value, str) and value:
            return value
        if doc.get("schemaVersion") == 1:
            return DOCKER_SCHEMA1_SIGNED if "signatures" in doc else DOCKER_SCHEMA1
        if isinstance(doc.get("manifests"), list):
            return OCI_INDEX
        if "config" in doc or "layers" in doc:
            return OCI_MANIFEST
    return declared or "application/octet-stream"
