"""Image references in skopeo's transport syntax, parsed once into a frozen value.

Accepted forms (see ``docs/references.md``)::

    docker://HOST[:PORT]/REPO[:TAG][@DIGEST]     a registry image
    NAME[:TAG][@DIGEST]                          the same, docker:// implied
    oci:DIR[:TAG|@DIGEST]                        an OCI image layout directory
    oci-archive:FILE[:TAG]                       a tar of an OCI image layout
    docker-archive:FILE[:REPO:TAG|:@INDEX]       a ``docker save`` tarball

Docker Hub rules live here and only here: ``docker.io`` and ``index.docker.io`` become
``registry-1.docker.io``; a one-component Hub name gets ``library/``; the first path component is a registry
when it contains ``.`` or ``:`` or is ``localhost`` (upper case anywhere in the repository is refused, as docker does).
Parsing is strict and anchored.  No I/O; standard library only.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Literal

from ociinspect.errors import InvalidReference
from ociinspect.model import digest as _digest
from ociinspect.model.record import record
from ociinspect.model.textsafe import parse_uint

__all__ = [
    "DOCKER_HUB",
    "HUB_ALIASES",
    "Reference",
    "Transport",
    "is_docker_hub",
    "is_repository_path",
    "is_tag",
    "parse_reference",
    "parse_repository",
]

Transport = Literal["docker", "oci", "oci-archive", "docker-archive"]

DOCKER_HUB = "registry-1.docker.io"
#: every name Docker Hub goes by (lower case); the one list, used by references, credentials and the audit
HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})

# distribution/reference grammar
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")  # the OCI tag grammar: ASCII only
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(
    rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]{{1,5}})?$"
)
_MAX_NAME = 255

_HINT = "write e.g. docker://registry.example.com/team/app:1.2, oci:./layout:latest or docker-archive:app.tar"


@record
class Reference:
    """A parsed image reference.  Exactly the fields of its transport are set."""

    transport: Transport
    registry: str | None = None  # docker: host[:port], Hub mapped to registry-1.docker.io
    repository: str | None = None  # docker: path within the registry, library/ added for the Hub
    tag: str | None = None  # docker, oci, oci-archive; for docker-archive the tag of archive_name
    digest: str | None = None  # docker, oci
    path: str | None = None  # oci, oci-archive, docker-archive
    archive_name: str | None = None  # docker-archive: the repo part of "repo:tag"
    archive_index: int | None = None  # docker-archive: ":@N"

    @property
    def is_registry(self) -> bool:
        return self.transport == "docker"

    @property
    def name(self) -> str:
        """``registry/repository`` for registry refs, the path otherwise."""
        if self.transport == "docker":
            return f"{self.registry}/{self.repository}"
        return self.path or ""

    def with_digest(self, digest: str) -> Reference:
        """The same reference pinned to ``digest`` (tag kept, as skopeo prints it)."""
        return dataclasses.replace(self, digest=digest)

    def __str__(self) -> str:
        if self.transport == "docker":
            s = f"docker://{self.registry}/{self.repository}"
            if self.tag:
                s += f":{self.tag}"
            if self.digest:
                s += f"@{self.digest}"
            return s
        s = f"{self.transport}:{self.path}"
        if self.transport == "docker-archive":
            if self.archive_name:
                s += f":{self.archive_name}:{self.tag or 'latest'}"
            elif self.archive_index is not None:
                s += f":@{self.archive_index}"
            return s
        if self.digest:
            return s + f"@{self.digest}"
        if self.tag:
            s += f":{self.tag}"
        return s


def is_repository_path(name: str) -> bool:
    """True when ``name`` is a repository path of the distribution grammar (``library/alpine``), ≤ 255 chars."""
    return len(name) <= _MAX_NAME and bool(_PATH_RE.match(name))


def is_tag(text: str) -> bool:
    """True when ``text`` is a tag of the OCI grammar (ASCII letters, digits, ``_ . -``; at most 128)."""
    return bool(_TAG_RE.match(text))


def is_docker_hub(host: str) -> bool:
    """True when ``host`` (any case, no scheme or path) is one of Docker Hub's names.  Cost: one set lookup."""
    return host.lower() in HUB_ALIASES


def _fail(text: str, why: str) -> InvalidReference:
    return InvalidReference(f"invalid image reference {text!r}: {why}", hint=_HINT)


def _check_tag(text: str, tag: str) -> str:
    if not _TAG_RE.match(tag):
        raise _fail(
            text, f"tag {tag!r} is not valid (letters, digits, _ . -; at most 128; not starting with . or -)"
        )
    return tag


def _check_digest(text: str, value: str) -> str:
    if not _digest.is_digest(value):
        raise _fail(text, f"digest {value!r} is not valid (expected sha256:<64 lower-case hex>)")
    return value


def parse_repository(text: str, name: str) -> tuple[str, str]:
    """Split ``[host[:port]/]path`` into ``(registry, repository)`` with the Docker Hub rules applied.

    ``text`` is the whole reference (for messages).  Raises :class:`InvalidReference`.
    """
    if not name:
        raise _fail(text, "the repository name is empty")
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        if not _DOMAIN_RE.match(first):
            raise _fail(text, f"registry host {first!r} is not a valid host[:port]")
        registry, path = first, rest
    else:
        registry, path = DOCKER_HUB, name
    if is_docker_hub(registry):
        registry = DOCKER_HUB
        if "/" not in path:
            path = f"library/{path}"
    if not path:
        raise _fail(text, "the repository name is empty")
    if path != path.lower():
        raise _fail(text, f"repository {path!r} must be lower case")
    if not _PATH_RE.match(path):
        raise _fail(
            text,
            f"repository {path!r} is not valid (lower-case components of a-z 0-9 separated by . _ __ - and /)",
        )
    if len(registry) + 1 + len(path) > _MAX_NAME:
        raise _fail(text, f"the name is longer than {_MAX_NAME} characters")
    return registry, path


def _parse_docker(text: str, body: str) -> Reference:
    if not body:
        raise _fail(text, "nothing after the transport")
    digest = None
    if "@" in body:
        body, _, digest = body.partition("@")
        _check_digest(text, digest)
    tag = None
    slash = body.rfind("/")
    colon = body.rfind(":")
    if colon > slash:
        body, tag = body[:colon], _check_tag(text, body[colon + 1 :])
    if ":" in body.rsplit("/", 1)[-1]:
        raise _fail(text, "more than one ':' after the repository (tags cannot contain ':')")
    registry, repository = parse_repository(text, body)
    return Reference("docker", registry=registry, repository=repository, tag=tag, digest=digest)


def _parse_oci(text: str, transport: Transport, body: str) -> Reference:
    if not body:
        raise _fail(text, f"{transport}: needs a path")
    digest = tag = None
    if "@" in body and transport == "oci":
        path, _, digest = body.rpartition("@")
        _check_digest(text, digest)
    else:
        # skopeo splits at the first ':'; a path containing ':' cannot be named this way
        path, _, tag_part = body.partition(":")
        if tag_part:
            tag = _check_tag(text, tag_part)
    if not path:
        raise _fail(text, f"{transport}: needs a path")
    return Reference(transport, path=path, tag=tag, digest=digest)


def _parse_docker_archive(text: str, body: str) -> Reference:
    path, _, spec = body.partition(":")
    if not path:
        raise _fail(text, "docker-archive: needs a file path")
    if not spec:
        return Reference("docker-archive", path=path)
    if spec.startswith("@"):
        index = parse_uint(spec[1:], max_digits=9)
        if index is None:
            raise _fail(text, f"docker-archive index {spec!r} must be @ followed by a number (ASCII digits)")
        return Reference("docker-archive", path=path, archive_index=index)
    if "@" in spec:
        raise _fail(text, "docker-archive: names an image as repo:tag or @index, not by digest")
    name, tag = spec, None
    slash, colon = spec.rfind("/"), spec.rfind(":")
    if colon > slash:
        name, tag = spec[:colon], _check_tag(text, spec[colon + 1 :])
    if ":" in name.rsplit("/", 1)[-1]:
        raise _fail(text, "more than one ':' in the docker-archive image name")
    parse_repository(text, name)  # validate only; the archive stores the name as written
    return Reference("docker-archive", path=path, archive_name=name, tag=tag or "latest")


_TRANSPORTS: tuple[Transport, ...] = ("docker-archive", "oci-archive", "oci", "docker")


def parse_reference(text: str) -> Reference:
    """Parse ``text`` into a :class:`Reference` (cost: string work only).

    Raises :class:`~ociinspect.errors.InvalidReference` with a one-line reason and a hint — also for a value
    that is not text (``None``, bytes, a number: the library's callers pass what they like).
    """
    if not isinstance(text, str):
        raise InvalidReference(
            f"invalid image reference: expected text, got {type(text).__name__}",
            hint="pass a reference as a string, e.g. 'registry.example/app:1.0' or 'oci:DIR:TAG'",
        )
    text = text.strip()
    if not text:
        raise _fail(text, "empty reference")
    for transport in _TRANSPORTS:
        prefix = transport + (":" if transport != "docker" else "://")
        if text.startswith(prefix):
            body = text[len(prefix) :]
            if transport == "docker":
                return _parse_docker(text, body)
            if transport == "docker-archive":
                return _parse_docker_archive(text, body)
            return _parse_oci(text, transport, body)
    if text.startswith("docker:"):
        raise _fail(text, "the registry transport is written docker:// (two slashes)")
    scheme = text.split(":", 1)[0]
    if "://" in text or (scheme in {"dir", "containers-storage", "docker-daemon", "http", "https"}):
        raise _fail(
            text, f"transport {scheme!r} is not supported (docker://, oci:, oci-archive:, docker-archive:)"
        )
    return _parse_docker(text, text)
