"""ociinspect: what is really inside an OCI container image, without a Docker daemon.

Library use::

    from ociinspect import Session
    with Session() as s:
        image = s.load("oci:fixtures/demo:latest")
        print(image.digest, image.compressed_size, image.uncompressed_size)

Logging is silent by default (a ``NullHandler`` on the ``ociinspect`` logger); the CLI turns it on with ``-v``.
"""

from __future__ import annotations

import logging

from ociinspect._version import __version__
from ociinspect.errors import ExitCode, OciInspectError
from ociinspect.image.loader import LoadOptions
from ociinspect.model.image import Image, Layer, Platform, SizeEstimate
from ociinspect.model.reference import Reference, parse_reference
from ociinspect.session import LoadResult, Session

logging.getLogger("ociinspect").addHandler(logging.NullHandler())
logging.getLogger("oras").addHandler(logging.NullHandler())

__all__ = [
    "ExitCode",
    "Image",
    "Layer",
    "LoadOptions",
    "LoadResult",
    "OciInspectError",
    "Platform",
    "Reference",
    "Session",
    "SizeEstimate",
    "__version__",
    "parse_reference",
]
