"""ociinspect: what is really inside an OCI container image, without a Docker daemon.

Library use (every entry point, with examples the test suite runs: docs/library.md)::

    from ociinspect import Session
    with Session() as s:
        image = s.load("oci:fixtures/demo:latest")
        print(image.digest, image.compressed_size, image.uncompressed_size)
        print(s.waste("oci:fixtures/demo:latest").report.dive.wasted_bytes)

:class:`Session` has one method per command (``waste``, ``files``, ``compare``, ``vm``, ``check``, ``diff``,
``manifest``, ``config``, ``digest``, ``tags``, ``repositories``, ``referrers``, ``blob``); each returns a frozen
value, most with ``to_json()`` — the document ``--format json`` prints.

Logging is silent by default: the library's loggers (:mod:`ociinspect.model.logs`) import :mod:`logging` only once
something else has, and then give the ``ociinspect`` logger a ``NullHandler``; the CLI turns it on with ``-v``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ociinspect._version import __version__
from ociinspect.errors import ExitCode, OciInspectError

if TYPE_CHECKING:
    from ociinspect.analyzers.diff import ImageDiff
    from ociinspect.analyzers.sharing import SharingReport
    from ociinspect.analyzers.waste import WasteReport
    from ociinspect.api import CheckResult, CompareResult, FilesResult, Session, VmResult, WasteResult
    from ociinspect.image.loader import LoadOptions
    from ociinspect.model.image import Image, Layer, Platform, RawManifest, SizeEstimate
    from ociinspect.model.reference import Reference, parse_reference
    from ociinspect.policy.rules import ImageCheck, Policy
    from ociinspect.session import LoadResult
    from ociinspect.verbs import Referrer


#: every public name but the version and the errors, imported on first use (PEP 562): ``import ociinspect.cli``
#: runs this file first, and ``ociinspect inspect`` should not pay for the library API, every analyzer or the
#: registry client it does not use
_LAZY = {
    "CheckResult": "ociinspect.api",
    "CompareResult": "ociinspect.api",
    "FilesResult": "ociinspect.api",
    "Image": "ociinspect.model.image",
    "Layer": "ociinspect.model.image",
    "LoadOptions": "ociinspect.image.loader",
    "LoadResult": "ociinspect.session",
    "Platform": "ociinspect.model.image",
    "RawManifest": "ociinspect.model.image",
    "Reference": "ociinspect.model.reference",
    "Session": "ociinspect.api",
    "SizeEstimate": "ociinspect.model.image",
    "VmResult": "ociinspect.api",
    "WasteResult": "ociinspect.api",
    "parse_reference": "ociinspect.model.reference",
    "ImageCheck": "ociinspect.policy.rules",
    "ImageDiff": "ociinspect.analyzers.diff",
    "Policy": "ociinspect.policy.rules",
    "Referrer": "ociinspect.verbs",
    "SharingReport": "ociinspect.analyzers.sharing",
    "WasteReport": "ociinspect.analyzers.waste",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'ociinspect' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "CheckResult",
    "CompareResult",
    "ExitCode",
    "FilesResult",
    "Image",
    "ImageCheck",
    "ImageDiff",
    "Layer",
    "LoadOptions",
    "LoadResult",
    "OciInspectError",
    "Platform",
    "Policy",
    "RawManifest",
    "Reference",
    "Referrer",
    "Session",
    "SharingReport",
    "SizeEstimate",
    "VmResult",
    "WasteReport",
    "WasteResult",
    "__version__",
    "parse_reference",
]
