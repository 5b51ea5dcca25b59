"""Registry transport settings and host names: values only, without the HTTP stack.

:class:`HostSettings` and :class:`RegistrySettings` are what the command line builds from its options for every
command, local or not; they live here, apart from :mod:`ociinspect.registry.transport`, so that building them
imports neither the transport, sockets nor :mod:`ssl` (start-up a local ``inspect`` never needs).
:mod:`ociinspect.registry.transport` re-exports them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import field
from types import MappingProxyType

from ociinspect._version import __version__
from ociinspect.model.record import record
from ociinspect.registry.deadline import Deadline

__all__ = ["USER_AGENT", "HostSettings", "RegistrySettings", "is_loopback", "normalize_host"]

#: what every request says it is (one place: ``ociinspect/<version>``, the version from :mod:`ociinspect._version`)
USER_AGENT = f"ociinspect/{__version__}"


@functools.lru_cache(maxsize=64)  # (a run talks to a few hosts; hostile names are bounded too)
def normalize_host(name: str) -> str:
    """``"https://Registry.example:5000/v1/"`` → ``"registry.example:5000"`` (drops scheme, path, case).  Cost: a
    cache hit for a name seen before (a request asks for its host's ~6 times)."""
    host = name.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    return host.split("/", 1)[0].lower()


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1`` (with or without a port; IPv6 in brackets).  Cost: string
    work, and :mod:`ipaddress` imported on the first call."""
    import ipaddress

    name = normalize_host(host)
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name[1:]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@record
class HostSettings:
    """How to talk to one host.  ``plain_http`` wins over TLS options; ``insecure`` wins over ``ca_file``."""

    plain_http: bool = False
    insecure: bool = False
    ca_file: str | None = None


@record
class RegistrySettings:
    """Transport settings: per-host TLS, timeouts (seconds), retry policy, and the total ``deadline`` (None:
    no limit).  Immutable; share freely — but a deadline is a fixed point in time: make new settings (with
    :func:`dataclasses.replace`) for each command or run."""

    default: HostSettings = HostSettings()
    hosts: Mapping[str, HostSettings] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    retries: int = 3
    max_retry_after: float = 30.0
    backoff: float = 0.5
    user_agent: str = USER_AGENT
    deadline: Deadline | None = None

    def __post_init__(self) -> None:
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ValueError("timeouts must be positive seconds")
        if self.retries < 0 or self.max_retry_after < 0 or self.backoff < 0:
            raise ValueError("retries, max_retry_after and backoff must not be negative")
        frozen = MappingProxyType({normalize_host(k): v for k, v in self.hosts.items()})
        object.__setattr__(self, "hosts", frozen)

    def for_host(self, host: str) -> HostSettings:
        """The settings for ``host`` (``"name[:port]"``): its override, else :attr:`default`."""
        return self.hosts.get(normalize_host(host), self.default)
