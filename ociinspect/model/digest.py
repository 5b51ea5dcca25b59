"""Content digests (``algorithm:hex``): parse, compute and verify.

Standard library only.  Supported algorithms: sha256 (the OCI default) and sha512.  Digest strings are kept
as plain ``str`` throughout ociinspect; this module is the one place that checks their grammar, and
:func:`new_hash` the one place that picks an implementation.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Protocol

from ociinspect.errors import DigestMismatch, InvalidReference

__all__ = [
    "ALGORITHMS",
    "DigestHasher",
    "Hash",
    "compute",
    "is_digest",
    "new_hash",
    "parse",
    "short",
    "verify",
]

ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^(sha256|sha512):([a-f0-9]+)$")


def is_digest(value: str) -> bool:
    """True when ``value`` is a well-formed digest of a supported algorithm (cost: a regex match)."""
    m = _DIGEST_RE.match(value)
    return bool(m) and len(m.group(2)) == ALGORITHMS[m.group(1)]  # type: ignore[union-attr]


def parse(value: str) -> tuple[str, str]:
    """Split ``algo:hex`` into its parts, raising :class:`InvalidReference` when malformed."""
    m = _DIGEST_RE.match(value) if isinstance(value, str) else None
    if not m or len(m.group(2)) != ALGORITHMS[m.group(1)]:
        raise InvalidReference(
            f"invalid digest {value!r}: expected sha256:<64 hex> or sha512:<128 hex>, lower case",
            hint="copy the digest exactly as `ociinspect inspect` or `skopeo inspect` prints it",
        )
    return m.group(1), m.group(2)


class Hash(Protocol):
    """What a hash object of :func:`new_hash` offers (``hashlib``'s and the interpreter's built-in ones)."""

    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...
    def hexdigest(self) -> str: ...


#: at most this many bytes are hashed by the interpreter's built-in sha256/sha512 while OpenSSL is not loaded
SMALL = 64 * 1024
_builtins: dict[str, Callable[[], Hash] | None] = {}


def _builtin(algorithm: str) -> Callable[[], Hash] | None:
    """The interpreter's own implementation of ``algorithm`` (``_sha2`` from Python 3.12, ``_sha256`` /
    ``_sha512`` before), or None when this build lacks it."""
    if algorithm not in _builtins:
        made = None
        for module, name in (("_sha2", algorithm), (f"_{algorithm}", algorithm)):
            try:
                made = getattr(__import__(module), name)
                break
            except (ImportError, AttributeError):
                continue
        _builtins[algorithm] = made
    return _builtins[algorithm]


def new_hash(algorithm: str = "sha256", *, size: int | None = None) -> Hash:
    """A new hash object for ``algorithm`` ("sha256" or "sha512") that will hash ``size`` bytes (None: unknown).

    OpenSSL's (:mod:`hashlib`) for anything large or of unknown size, or once it is loaded; the interpreter's
    built-in one for at most :data:`SMALL` bytes before that — a manifest or a config — because loading
    ``hashlib`` costs ~4 ms (libcrypto's start-up), more than a command that hashes only small documents spends
    hashing.  The digests are the same.  Cost: one object."""
    if size is not None and size <= SMALL and "_hashlib" not in sys.modules:
        made = _builtin(algorithm)
        if made is not None:
            return made()
    import hashlib  # (OpenSSL's: loaded here, once)

    h: Hash = hashlib.new(algorithm)
    return h


def compute(data: bytes, algorithm: str = "sha256") -> str:
    """Digest of ``data`` as ``algo:hex`` (cost: one pass over ``data``)."""
    h = new_hash(algorithm, size=len(data))
    h.update(data)
    return f"{algorithm}:{h.hexdigest()}"


def short(digest: str, length: int = 12) -> str:
    """The first ``length`` hex characters of a digest, for tables."""
    return digest.split(":", 1)[-1][:length]


def verify(data: bytes, digest: str, *, what: str, size: int | None = None) -> None:
    """Raise :class:`DigestMismatch` unless ``data`` has ``digest`` (and ``size`` bytes, when given)."""
    if size is not None and len(data) != size:
        raise DigestMismatch(
            f"{what}: size mismatch: descriptor says {size} bytes, got {len(data)}",
            hint="the source is corrupt or was modified; fetch it again",
        )
    algorithm, _ = parse(digest)
    actual = compute(data, algorithm)
    if actual != digest:
        raise DigestMismatch(
            f"{what}: digest mismatch: expected {digest}, got {actual}",
            hint="the source is corrupt, or a proxy altered the content; fetch it again",
        )


class DigestHasher:
    """Incremental hasher that counts bytes and checks the final digest (for streamed blobs)."""

    def __init__(self, digest: str, *, what: str, size: int | None = None) -> None:
        self.expected = digest
        self.algorithm, _ = parse(digest)
        self._h = new_hash(self.algorithm, size=size)
        self.what = what
        self.size = size
        self.count = 0

    def update(self, chunk: bytes) -> None:
        self._h.update(chunk)
        self.count += len(chunk)

    def check(self) -> None:
        """Raise :class:`DigestMismatch` unless everything hashed so far has the expected digest and size."""
        if self.size is not None and self.count != self.size:
            raise DigestMismatch(
                f"{self.what}: size mismatch: expected {self.size} bytes, got {self.count}",
                hint="the transfer was truncated or the source is corrupt; try again",
            )
        actual = f"{self.algorithm}:{self._h.hexdigest()}"
        if actual != self.expected:
            raise DigestMismatch(
                f"{self.what}: digest mismatch: expected {self.expected}, got {actual}",
                hint="the source is corrupt, or a proxy altered the content; fetch it again",
            )
