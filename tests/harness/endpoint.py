"""What the pytest fixtures hand to tests: a registry endpoint with the attributes tests code against."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .faultproxy import FaultProxy
from .registry import AccessEntry, RunningRegistry
from .token_issuer import TokenIssuer


def registry_settings(ca_file: Path | None) -> Any:
    """``ociinspect.registry.RegistrySettings`` for a loopback endpoint: plain HTTP, or TLS with our CA.

    Imported lazily: ``ociinspect.registry`` is written in parallel, and a test that never touches
    ``.settings`` should not depend on it. Missing package -> the test is skipped with that reason.
    """
    import pytest

    module = pytest.importorskip(
        "ociinspect.registry", reason="ociinspect.registry is not importable yet (needed for .settings)"
    )
    if ca_file is not None:
        return module.RegistrySettings(default=module.HostSettings(ca_file=str(ca_file)))
    return module.RegistrySettings(default=module.HostSettings(plain_http=True))


@dataclass
class RegistryEndpoint:
    """A running registry as tests see it.

    ``refs`` maps "repo:tag" -> "HOST/repo:tag" for what the fixture pushed; ``digests`` maps "repo:tag" ->
    the manifest digest the registry serves (filled for the seeded anonymous registry).
    """

    registry: RunningRegistry
    refs: dict[str, str] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        return self.registry.mode

    @property
    def host(self) -> str:
        return self.registry.host

    @property
    def url(self) -> str:
        return self.registry.url

    @property
    def username(self) -> str | None:
        return self.registry.username

    @property
    def password(self) -> str | None:
        return self.registry.password

    @property
    def ca_file(self) -> Path | None:
        return self.registry.ca_file

    @property
    def data_dir(self) -> Path:
        return self.registry.data_dir

    @property
    def log_path(self) -> Path:
        return self.registry.log_path

    @property
    def issuer(self) -> TokenIssuer | None:
        return self.registry.issuer

    @property
    def settings(self) -> Any:
        return registry_settings(self.ca_file)

    def ref(self, repo_tag: str) -> str:
        """``"fixtures/base:latest"`` -> ``"127.0.0.1:PORT/fixtures/base:latest"``."""
        return f"{self.host}/{repo_tag}"

    def access_log(self) -> list[AccessEntry]:
        """Requests served so far (the readiness probe and seeding included: compare counts before/after)."""
        return self.registry.access_log()


class ProxyEndpoint(FaultProxy):
    """A :class:`FaultProxy` in front of a seeded registry, with the same attributes as
    :class:`RegistryEndpoint` (``host``/``url`` are the proxy's; ``refs`` point at the proxy)."""

    def __init__(self, upstream: RegistryEndpoint, **kwargs: Any) -> None:
        super().__init__(upstream.host, **kwargs)
        self.upstream_endpoint = upstream
        self.username: str | None = None
        self.password: str | None = None
        self.ca_file: Path | None = None
        self.issuer: TokenIssuer | None = None

    @property
    def refs(self) -> dict[str, str]:
        return {key: self.ref(key) for key in self.upstream_endpoint.refs}

    @property
    def digests(self) -> dict[str, str]:
        return self.upstream_endpoint.digests

    @property
    def data_dir(self) -> Path:
        return self.upstream_endpoint.data_dir

    @property
    def log_path(self) -> Path:
        return self.upstream_endpoint.log_path

    @property
    def settings(self) -> Any:
        return registry_settings(None)

    def ref(self, repo_tag: str) -> str:
        return f"{self.host}/{repo_tag}"
