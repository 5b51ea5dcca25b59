"""Find an image's base OS by reading its layers only as far as the OS files (``/etc/os-release`` …).

The base layer is streamed through the layer scanner's tar reader and the stream is dropped as soon as the OS
files have been seen: right after a regular ``/etc/os-release``, or at the end of ``etc/`` when that holds other
release files (Debian and Ubuntu make ``/etc/os-release`` a symlink into ``usr/``, but keep
``/etc/debian_version`` and ``/etc/lsb-release``).  Tar order puts ``etc/`` early in a root filesystem, so this
usually costs a small part of the base layer.  Only when the base layer has none is the next one tried (up to :data:`MAX_LAYERS`), so an
OS file rewritten by a later layer (a distribution upgrade in the image) is not seen: the base OS is reported.
Results are cached by layer digest (layers are immutable), so a second look costs nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from ociinspect.errors import DeadlineExceeded, OciInspectError
from ociinspect.model.image import Image
from ociinspect.model.logs import get_logger
from ociinspect.model.osinfo import DISTROLESS_MARKERS, OS_FILES, OsInfo, identify
from ociinspect.sources.base import Source

__all__ = ["LayerFiles", "detect_os"]

log = get_logger(__name__)

#: Layers (from the bottom) examined at most; a base OS lives in the first few.
MAX_LAYERS = 3

LayerFiles = tuple[dict[str, bytes], frozenset[str]]
Cache = tuple[Callable[[str], str | None], Callable[[str, str], None]]  # (get, put) of JSON text by key


def _files_of_layer(source: Source, image: Image, index: int, cache: Cache | None) -> LayerFiles:
    layer = image.layers[index]
    key = f"osfiles:{layer.digest}"
    if cache is not None:
        hit = cache[0](key)
        if hit is not None:
            doc = json.loads(hit)
            return {k: v.encode("latin-1") for k, v in doc["files"].items()}, frozenset(doc["present"])
    # imported on a cache miss only: the tar reader costs ~4 ms to import
    from ociinspect.content.scan import read_files

    files, present = read_files(source, layer, OS_FILES, markers=DISTROLESS_MARKERS, scope="etc")
    if cache is not None:
        doc = {"files": {k: v.decode("latin-1") for k, v in files.items()}, "present": sorted(present)}
        cache[1](key, json.dumps(doc))
    return files, present


def detect_os(
    source: Source, image: Image, *, cache: Cache | None = None, fallback_family: str = "static"
) -> OsInfo:
    """The base OS of ``image``.  Cost: a partial read of up to :data:`MAX_LAYERS` bottom layers (none when
    cached, none for Windows images and for artifacts).  Unreadable layers degrade to the fallback with the reason stated."""
    if image.is_artifact:  # an SBOM or a signature has blobs, not filesystem layers: nothing to read
        return OsInfo(
            None, None, None, fallback_family, "an artifact, not a container image: no OS detection"
        )
    config_os = image.config.os if image.config else None
    if config_os == "windows":
        return identify({}, config_os="windows")
    found: tuple[dict[str, bytes], frozenset[str], int] | None = None
    for index in range(min(MAX_LAYERS, len(image.layers))):
        try:
            files, present = _files_of_layer(source, image, index, cache)
        except DeadlineExceeded:
            raise  # the command's time is up: not a layer we may skip
        except OciInspectError as exc:
            log.info("reading OS files of layer %d failed: %s", index, exc)
            if found is None:
                return OsInfo(
                    None, None, None, fallback_family, f"layer {index} unreadable ({exc.message})", None
                )
            break
        if files or present:
            found = (files, present, index)
            break
    if found is None:
        return identify({}, config_os=config_os, fallback_family=fallback_family)
    files, present, index = found
    return identify(
        files, present=present, config_os=config_os, layer_index=index, fallback_family=fallback_family
    )
