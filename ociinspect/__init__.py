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

__version__ = "0.1.0"

logging.getLogger("ociinspect").addHandler(logging.NullHandler())
logging.getLogger("oras").addHandler(logging.NullHandler())

from ociinspect.errors import ExitCode, OciInspectError  # noqa: E402
from ociinspect.loader import LoadOptions  # noqa: E402
from ociinspect.model import Image, Layer, Platform, SizeEstimate  # noqa: E402
from ociinspect.reference import Reference, parse_reference  # noqa: E402
from ociinspect.session import LoadResult, Session  # noqa: E402

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
