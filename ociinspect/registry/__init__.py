"""Daemonless client for OCI / Docker registries, on ``requests``.

Public API: :class:`RegistryClient` (endpoints), :class:`RegistrySettings` / :class:`HostSettings`
(transport), :class:`Deadline` (a command's total time), :class:`CredentialResolver` / :class:`Credentials` (docker and podman credential discovery),
and the result types :class:`FetchedManifest` and :class:`BlobInfo`.  Logging goes to the
``ociinspect.registry`` logger at DEBUG level only; secrets are never logged.
"""

from __future__ import annotations

from ociinspect.registry.client import BlobInfo, FetchedManifest, RegistryClient
from ociinspect.registry.credentials import CredentialResolver, Credentials
from ociinspect.registry.deadline import Deadline, parse_duration
from ociinspect.registry.transport import HostSettings, RegistrySettings

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
