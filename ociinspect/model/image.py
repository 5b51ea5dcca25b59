"""The frozen image model: what the loader builds from any source and every analyzer reads.

Frozen, slotted dataclasses; sizes are ``int`` bytes; digests are ``algo:hex`` strings.  Mappings are stored as
read-only ``MappingProxyType`` views so a model can be shared between threads.  Standard library only (plus the
media-type constants in :mod:`ociinspect.model.mediatypes`).
"""

from __future__ import annotations

import dataclasses
import platform as _platform
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal

from ociinspect.model.record import record

__all__ = [
    "Descriptor",
    "HistoryEntry",
    "Image",
    "ImageConfig",
    "IndexEntry",
    "Layer",
    "Platform",
    "RawManifest",
    "SizeEstimate",
    "SizeSource",
    "frozen_map",
    "host_platform",
]

_EMPTY: Mapping[str, str] = MappingProxyType({})


def frozen_map(value: Mapping[str, Any] | None) -> Mapping[str, str]:
    """A read-only copy of a str→str mapping (non-string values are converted with ``str``)."""
    if not value:
        return _EMPTY
    return MappingProxyType({str(k): str(v) for k, v in value.items()})


@record
class RawManifest:
    """Manifest bytes exactly as a source served them, with their media type and digest."""

    data: bytes
    media_type: str
    digest: str


_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm"}
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}
#: operating systems and architectures Go knows (``go tool dist list``): what containerd calls known
_KNOWN_OS = frozenset(
    [
        "aix",
        "android",
        "darwin",
        "dragonfly",
        "freebsd",
        "hurd",
        "illumos",
        "ios",
        "js",
        "linux",
        "nacl",
        "netbsd",
        "openbsd",
        "plan9",
        "solaris",
        "wasip1",
        "windows",
        "zos",
    ]
)
_KNOWN_ARCH = frozenset(
    [
        "386",
        "amd64",
        "amd64p32",
        "arm",
        "armbe",
        "arm64",
        "arm64be",
        "loong64",
        "mips",
        "mipsle",
        "mips64",
        "mips64le",
        "mips64p32",
        "mips64p32le",
        "ppc",
        "ppc64",
        "ppc64le",
        "riscv",
        "riscv64",
        "s390",
        "s390x",
        "sparc",
        "sparc64",
        "wasm",
    ]
)


def _is_arch(text: str) -> bool:
    return text in _KNOWN_ARCH or text in ("x86_64", "x86-64", "aarch64", "armhf", "armel", "i386")


def _normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    """containerd's ``normalizeArch``: (architecture, variant) in their canonical spelling."""
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        return "arm64", "" if variant in ("8", "v8", "v8.0") else variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            return "arm", "v7"
        if variant in ("5", "6", "8"):
            return "arm", "v" + variant
    return arch, variant


@record
class Platform:
    """An OCI platform.  ``str(p)`` is ``os/arch[/variant]``."""

    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse a platform as containerd's ``platforms.Parse`` + ``Normalize`` do; raises ``ValueError`` when
        malformed.  Accepted: ``os/arch[/variant]`` (``linux/arm64/v8``), a bare architecture (``arm64``,
        ``amd64``: the OS is ``linux``), ``arch/variant`` (``arm64/v8``, when the first part is a known
        architecture and not an OS).  Normalised: ``x86_64``/``x86-64`` → ``amd64``, ``aarch64`` → ``arm64``,
        ``i386`` → ``386``, ``armhf`` → ``arm/v7``, ``armel`` → ``arm/v6``, a variant ``7`` → ``v7``; default
        variants are dropped unless spelled out in three parts (``arm64`` = ``linux/arm64``, which matches
        ``linux/arm64/v8`` images; ``arm`` = ``linux/arm``, matching ``v7``).  Cost: string operations."""
        parts = [p.strip().lower() for p in text.strip().split("/")]
        if not 1 <= len(parts) <= 3 or not all(parts):
            raise ValueError(
                f"platform {text!r} is not os/arch[/variant], e.g. linux/amd64, linux/arm64/v8 or arm64"
            )
        if len(parts) == 1 or (len(parts) == 2 and parts[0] not in _KNOWN_OS and _is_arch(parts[0])):
            if not _is_arch(parts[0]):
                raise ValueError(
                    f"platform {text!r}: {parts[0]!r} is not a known architecture; give os/arch[/variant], "
                    "e.g. linux/amd64 or linux/arm64/v8"
                )
            os_name, arch_text, variant_text = "linux", parts[0], (parts[1] if len(parts) == 2 else "")
            explicit = len(parts) == 2
        else:
            os_name, arch_text = parts[0], parts[1]
            variant_text = parts[2] if len(parts) == 3 else ""
            explicit = len(parts) == 3
        os_name = "darwin" if os_name == "macos" else os_name
        arch, variant = _normalize_arch(arch_text, variant_text)
        if explicit and not variant and arch in _DEFAULT_VARIANT:
            variant = _DEFAULT_VARIANT[arch]  # containerd keeps a variant written out in full
        if not explicit and arch == "arm" and variant == "v7":
            variant = ""  # containerd: the default arm variant is left implicit
        return cls(os_name, arch, variant or None)

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None) -> Platform | None:
        if not isinstance(value, Mapping):
            return None
        os_, arch = value.get("os"), value.get("architecture")
        if not isinstance(os_, str) or not isinstance(arch, str):
            return None
        variant = value.get("variant")
        os_version = value.get("os.version")
        if not isinstance(variant, str | None) or not isinstance(os_version, str | None):
            return None  # a variant that is not text is no platform at all, not "any variant" (which would match)
        return cls(
            os_,
            arch,
            variant if isinstance(variant, str) and variant else None,
            os_version if isinstance(os_version, str) and os_version else None,
        )

    @property
    def is_unknown(self) -> bool:
        """``unknown/unknown``: buildx attestation manifests, never a runnable image."""
        return self.os == "unknown" or self.architecture == "unknown"

    def matches(self, wanted: Platform) -> bool:
        """True when this (offered) platform satisfies ``wanted``.

        os and architecture must be equal; a wanted variant must equal the offered one, where a missing
        variant counts as the default (``v8`` for arm64, ``v7`` for arm).
        """
        if (self.os, self.architecture) != (wanted.os, wanted.architecture):
            return False
        if wanted.variant is None:
            return True
        default = _DEFAULT_VARIANT.get(self.architecture)
        return (self.variant or default) == (wanted.variant or default)

    def __str__(self) -> str:
        s = f"{self.os}/{self.architecture}"
        return f"{s}/{self.variant}" if self.variant else s

    def to_json(self) -> dict[str, str | None]:
        return {"os": self.os, "architecture": self.architecture, "variant": self.variant}


def host_platform() -> Platform:
    """The host's Linux platform (``linux/amd64`` on x86_64, ``linux/arm64/v8`` on aarch64 …)."""
    machine = _platform.machine().lower()
    arch = _ARCH_ALIASES.get(machine, machine)
    if arch.startswith("armv7"):
        return Platform("linux", "arm", "v7")
    if arch.startswith("armv6"):
        return Platform("linux", "arm", "v6")
    return Platform("linux", arch, "v8" if arch == "arm64" else None)


@record
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: Mapping[str, str] = dataclasses.field(default_factory=lambda: _EMPTY)
    artifact_type: str | None = None
    urls: tuple[str, ...] = ()


@record
class IndexEntry:
    """One manifest listed by an index, as shown by ``--all-platforms``."""

    descriptor: Descriptor
    kind: Literal["image", "index", "attestation", "artifact", "unknown"]


SizeSource = Literal["exact", "trailer", "header", "toc", "streamed", "store", "unknown"]


@record
class SizeEstimate:
    """An uncompressed size and how it was obtained (see ``docs/sizes.md``).

    The rule: a figure is right or says it is not known.  ``value`` is ``None`` exactly when
    ``source == "unknown"``; ``note`` says why (or, for a known figure, what it rests on).  ``candidates`` is
    non-empty only for an *ambiguous* figure: the cheap evidence left several sizes possible (e.g. a gzip trailer,
    which is the size modulo 2^32), so ``value`` is ``None``, ``source`` is ``"unknown"`` and the candidates are
    listed smallest first; ``--exact`` settles it.
    """

    value: int | None
    source: SizeSource
    note: str | None = None
    candidates: tuple[int, ...] = ()

    @property
    def known(self) -> bool:
        """True when ``value`` is a size that the exact method would confirm."""
        return self.value is not None

    @property
    def ambiguous(self) -> bool:
        """True when several sizes fit the evidence (``candidates`` lists them; ``value`` is ``None``)."""
        return bool(self.candidates)


@record
class HistoryEntry:
    """One entry of the config's ``history``."""

    created: str | None = None
    created_by: str | None = None
    author: str | None = None
    comment: str | None = None
    empty_layer: bool = False


@record
class ImageConfig:
    """The parts of an image config (OCI or Docker) that ociinspect reports."""

    os: str | None = None
    architecture: str | None = None
    variant: str | None = None
    created: str | None = None
    author: str | None = None
    user: str | None = None
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()
    working_dir: str | None = None
    labels: Mapping[str, str] = dataclasses.field(default_factory=lambda: _EMPTY)
    exposed_ports: tuple[str, ...] = ()
    stop_signal: str | None = None
    diff_ids: tuple[str, ...] = ()
    history: tuple[HistoryEntry, ...] = ()


@record
class Layer:
    """A layer of an image: its blob descriptor, its diff_id, the history line behind it, its sizes."""

    index: int
    descriptor: Descriptor
    diff_id: str | None
    history: HistoryEntry | None
    uncompressed: SizeEstimate

    @property
    def digest(self) -> str:
        return self.descriptor.digest

    @property
    def media_type(self) -> str:
        return self.descriptor.media_type

    @property
    def size(self) -> int:
        """Compressed (as stored) size in bytes."""
        return self.descriptor.size


@record
class Image:
    """One image (or artifact) manifest resolved to one platform, verified, with its config and layers."""

    reference: str  # as the user wrote it, normalised (str(Reference))
    digest: str  # digest of the manifest below (not of the index)
    media_type: str
    manifest_size: int
    platform: Platform | None
    config_descriptor: Descriptor
    config: ImageConfig | None  # None for artifacts whose config is not an image config
    layers: tuple[Layer, ...]
    annotations: Mapping[str, str] = dataclasses.field(default_factory=lambda: _EMPTY)
    artifact_type: str | None = None
    subject: Descriptor | None = None
    index_digest: str | None = None  # set when the reference named an index/list
    index_media_type: str | None = None
    index_entries: tuple[IndexEntry, ...] = ()  # every manifest the index lists (all platforms)
    history: tuple[HistoryEntry, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def is_artifact(self) -> bool:
        """True for OCI artifacts (artifactType set, or a config that is not an image config)."""
        return self.config is None or self.artifact_type is not None

    @property
    def compressed_size(self) -> int:
        """Sum of the layer blob sizes, in bytes (what a pull downloads, config and manifest excluded)."""
        return sum(layer.size for layer in self.layers)

    @property
    def uncompressed_size(self) -> int | None:
        """Sum of the uncompressed layer sizes in bytes, ``None`` when any is unknown."""
        total = 0
        for layer in self.layers:
            if layer.uncompressed.value is None:
                return None
            total += layer.uncompressed.value
        return total

    @property
    def platforms(self) -> tuple[Platform, ...]:
        """Runnable platforms the index offers (attestations excluded), or this image's platform."""
        if self.index_entries:
            return tuple(
                e.descriptor.platform
                for e in self.index_entries
                if e.kind == "image" and e.descriptor.platform
            )
        return (self.platform,) if self.platform else ()
