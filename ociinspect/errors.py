"""One exception tree for ociinspect.

Every failure the library can meet is raised as a subclass of :class:`OciInspectError`.  Third-party
exceptions (``requests``, ``json``, ``tarfile``, ``zlib`` …) are translated where they enter the library, so
callers only ever catch this tree.  Each error carries:

* ``message`` – one line: what was being done and why it failed;
* ``hint`` – optional, what to try next (the CLI prints it as a second line);
* ``exit_code`` – the documented process exit code class (see :class:`ExitCode` and ``docs/cli.md``).

This module uses the standard library only.
"""

from __future__ import annotations

import enum

__all__ = [
    "TRANSIENT_STATUSES",
    "AuthError",
    "ConnectionFailed",
    "DatabaseError",
    "DeadlineExceeded",
    "DigestMismatch",
    "ExitCode",
    "InvalidImage",
    "InvalidReference",
    "LimitExceeded",
    "NotFound",
    "OciInspectError",
    "PartialFailure",
    "PlatformNotFound",
    "PolicyError",
    "RangeNotSupported",
    "RateLimited",
    "RecordedError",
    "RegistryError",
    "RegistryNotFound",
    "SourceError",
    "TLSFailure",
    "Timeout",
    "UnsupportedMediaType",
    "UsageError",
    "error_type_name",
    "is_transient",
]


class ExitCode(enum.IntEnum):
    """Process exit codes, documented in ``docs/cli.md``."""

    OK = 0
    CHECK_FAILED = 1  # a policy rule failed (``check``)
    USAGE = 2  # bad usage, bad reference, bad policy
    UNREADABLE = 3  # the image could not be read
    PARTIAL = 4  # several refs: some worked, some failed
    INTERRUPTED = 130  # Ctrl-C
    INTERNAL = 70  # a bug in ociinspect (EX_SOFTWARE)


class OciInspectError(Exception):
    """Base of every error ociinspect raises on purpose."""

    exit_code: ExitCode = ExitCode.UNREADABLE
    #: The hint of an error raised without one: every error a user sees says what to try (``hint:``).
    default_hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def __str__(self) -> str:
        return self.message

    def with_context(self, what: str) -> OciInspectError:
        """Prefix ``what`` (e.g. ``"reading docker://x/y:z"``) to the message and return ``self``."""
        if not self.message.startswith(what):
            self.message = f"{what}: {self.message}"
            self.args = (self.message,)
        return self


class UsageError(OciInspectError):
    """The command line or its inputs are wrong (exit 2)."""

    default_hint = "see `ociinspect COMMAND --help` for what the command takes"

    exit_code = ExitCode.USAGE


class InvalidReference(UsageError):
    """An image reference does not parse."""


class PolicyError(UsageError):
    """A policy file or rule threshold is invalid."""

    default_hint = "docs/policy.md lists every rule and the values it takes"


class SourceError(OciInspectError):
    """An image source could not be read (exit 3)."""


class NotFound(SourceError):
    """A manifest, blob, tag, repository or file does not exist."""

    default_hint = "check the reference: name, tag, digest or path"


class InvalidImage(SourceError):
    """The bytes were read but do not form a valid image (bad JSON, missing field, broken layout/archive)."""

    default_hint = (
        "the image is malformed (a broken builder or copy, or a hostile source): "
        "rebuild or re-push it; `ociinspect manifest REF` shows what was served"
    )


class UnsupportedMediaType(InvalidImage):
    """A manifest or layer has a media type ociinspect cannot read (e.g. Docker schema1)."""


class PlatformNotFound(InvalidImage):
    """An index has no manifest for the requested platform."""

    default_hint = "`ociinspect manifest --index REF` shows the platforms the index offers"


class DigestMismatch(SourceError):
    """Content does not match the digest (or size) that names it."""

    default_hint = (
        "the bytes were altered (a broken registry, proxy or copy): fetch again, "
        "and do not trust this source if it repeats"
    )


class LimitExceeded(SourceError):
    """A safety cap was hit (manifest size, index depth, decompressed size)."""

    default_hint = "the input is hostile or unusually large; docs/security.md lists the caps"


class RegistryError(SourceError):
    """A registry answered with an error, or could not be reached."""

    default_hint = (
        "check the registry address and that it speaks the OCI distribution API; -vv logs every request"
    )

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        status: int | None = None,
        code: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.code = code
        self.url = url


class RegistryNotFound(NotFound, RegistryError):
    """A registry answered 404: a :class:`NotFound` that also carries ``status``, ``code`` (e.g.
    ``MANIFEST_UNKNOWN``) and ``url`` like every :class:`RegistryError`."""


class AuthError(RegistryError):
    """401/403, or a token could not be obtained."""


class RateLimited(RegistryError):
    """429 Too Many Requests, still refused after the allowed retries."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class RangeNotSupported(RegistryError):
    """The server ignored or refused a Range request (callers fall back to streaming)."""


class ConnectionFailed(RegistryError):
    """DNS failure, connection refused, reset."""


class TLSFailure(RegistryError):
    """TLS handshake or certificate verification failed."""


class Timeout(RegistryError):
    """No answer (or no bytes) within the configured timeout."""


class DeadlineExceeded(Timeout):
    """The command's total deadline (``--deadline``) passed while a request, a retry pause or a body was in
    flight (exit 3; 4 when other references of the same command were read)."""


class DatabaseError(OciInspectError):
    """The audit database cannot be opened, migrated or written (exit 3)."""

    default_hint = "check the database path or URL, and that it may be written"


class RecordedError(OciInspectError):
    """An error as it was recorded (an audit database row, a worker's result): the name of its original type,
    its message, its hint and its exit code, as a typed value instead of attributes stuck on an exception.

    ``type_name`` is what the record says (``"DigestMismatch"``, or ``"ValueError"`` for an internal error met
    on a hostile value); :func:`error_type_name` reads it back.  Such an error is never transient (see
    :func:`is_transient`): transient errors are not recorded.
    """

    def __init__(
        self,
        type_name: str,
        message: str,
        *,
        hint: str | None = None,
        exit_code: ExitCode = ExitCode.UNREADABLE,
    ) -> None:
        super().__init__(message, hint=hint)
        self.type_name = type_name
        self.exit_code = exit_code


class PartialFailure(OciInspectError):
    """Several inputs were processed; some failed (exit 4). ``errors`` maps input to error."""

    exit_code = ExitCode.PARTIAL

    def __init__(self, message: str, *, errors: dict[str, OciInspectError]) -> None:
        super().__init__(message)
        self.errors = errors


#: HTTP statuses that may go away by themselves (rate limit, an overloaded gateway, a registry still starting):
#: the transport retries them and the audit never records them as facts.  500 is the content's fault, not here.
TRANSIENT_STATUSES: frozenset[int] = frozenset({429, 502, 503, 504})

_TRANSIENT_TYPES = (ConnectionFailed, Timeout, RateLimited)


def is_transient(exc: BaseException) -> bool:
    """True for errors that may go away by themselves (network, overload, rate limit): a connection failure,
    a timeout, a rate limit, or a registry error whose status is in :data:`TRANSIENT_STATUSES`.  Cost: O(1)."""
    if isinstance(exc, _TRANSIENT_TYPES):
        return True
    return isinstance(exc, RegistryError) and exc.status in TRANSIENT_STATUSES


def error_type_name(exc: BaseException) -> str:
    """The public type name of ``exc`` (what JSON documents and the audit record): a :class:`RecordedError`'s
    original ``type_name``, else the nearest class of this module's tree (``"NotFound"``, ``"DigestMismatch"`` …) —
    a refinement defined elsewhere for internal dispatch, like the nesting rule's ``IndexNestingError``, reports
    its public parent (``"LimitExceeded"``).  Cost: O(depth of the class tree)."""
    if isinstance(exc, RecordedError):
        return exc.type_name
    for cls in type(exc).__mro__:
        if cls.__module__ == __name__:
            return cls.__name__
    return type(exc).__name__
