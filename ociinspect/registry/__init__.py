"""Daemonless client for OCI / Docker registries, on its own HTTP/1.1 client (:mod:`.transport`, framing in
:mod:`.http11`; no :mod:`http.client`, and :mod:`ssl` only for ``https://``).

Public API: :class:`RegistryClient` (endpoints), :class:`RegistrySettings` / :class:`HostSettings`
(transport), :class:`Deadline` (a command's total time), :class:`CredentialResolver` / :class:`Credentials` (docker and podman credential discovery),
and the result types :class:`FetchedManifest` and :class:`BlobInfo`.  Logging goes to the
``ociinspect.registry`` logger at DEBUG level only; secrets are never logged.

Each name is imported on first use (PEP 562): settings, deadlines and credentials cost no HTTP-stack import
(sockets, the transport, ~5 ms), so a command reading only local images never pays for the HTTP stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ociinspect.registry.client import BlobInfo, FetchedManifest, RegistryClient
    from ociinspect.registry.credentials import CredentialResolver, Credentials
    from ociinspect.registry.deadline import Deadline, parse_duration
    from ociinspect.registry.settings import HostSettings, RegistrySettings

#: public name -> the module of this package defining it
_WHERE = {
    "BlobInfo": "client",
    "CredentialResolver": "credentials",
    "Credentials": "credentials",
    "Deadline": "deadline",
    "FetchedManifest": "client",
    "HostSettings": "settings",
    "RegistryClient": "client",
    "RegistrySettings": "settings",
    "parse_duration": "deadline",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'ociinspect.registry' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"ociinspect.registry.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])


__all__ = [
    "BlobInfo",
    "CredentialResolver",
    "Credentials",
    "Deadline",
    "FetchedManifest",
    "HostSettings",
    "RegistryClient",
    "RegistrySettings",
    "parse_duration",
]
