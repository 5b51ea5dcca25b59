"""One nesting rule for every walker of manifests (the loader, the audit; later referrers and diff).

An index may list indexes, which may list indexes …: a registry can serve a chain of any length, and a walker
that follows it by recursion dies at Python's recursion limit.  Every walker therefore carries an
:class:`IndexChain` (the indexes entered on the way from the root it was given) and calls :meth:`IndexChain.enter`
before it reads the children of an index.  Too deep (more than :data:`MAX_INDEX_DEPTH` indexes) or cyclic (an
index met again below itself) is an :class:`IndexNestingError` (a :class:`~ociinspect.errors.LimitExceeded`)
that :func:`is_nesting_error` recognises: it belongs to the path walked, not to the digest where it was met (the same index may be fine as a
root), so walkers that remember errors per digest must not remember these.

Cost: a tuple of at most :data:`MAX_INDEX_DEPTH` digests per step; no I/O.  Standard library and the error tree
only.
"""

from __future__ import annotations

from ociinspect.errors import LimitExceeded
from ociinspect.model.record import record

__all__ = ["MAX_INDEX_DEPTH", "IndexChain", "IndexNestingError", "is_nesting_error"]

#: Indexes that may be entered on one path from a root to an image (root included): 4 allows
#: index → index → index → index → image; buildx and every known tool write 1 (2 for an index of indexes).
MAX_INDEX_DEPTH = 4


class IndexNestingError(LimitExceeded):
    """Indexes nested too deep, or an index listed below itself: a property of the path walked, not of the
    digest where it was met (exit 3, as every :class:`~ociinspect.errors.LimitExceeded`)."""


def is_nesting_error(exc: BaseException) -> bool:
    """True for the errors :class:`IndexChain` raises (a property of the path, not of one digest)."""
    return isinstance(exc, IndexNestingError)


def _error(message: str) -> IndexNestingError:
    return IndexNestingError(
        message,
        hint="the registry holds an index chain no image tool writes; check how this tag was pushed",
    )


@record
class IndexChain:
    """The indexes entered so far on one path (root first).  Immutable: each step makes a new chain."""

    digests: tuple[str, ...] = ()
    limit: int = MAX_INDEX_DEPTH

    def __contains__(self, digest: object) -> bool:
        return digest in self.digests

    def __len__(self) -> int:
        return len(self.digests)

    def check(self, digest: str, what: str) -> None:
        """Raise when ``digest`` is already on the path (a cycle): call it before waiting on ``digest``."""
        if digest in self.digests:
            raise _error(
                f"{what}: index {digest} lists itself {len(self.digests) - self.digests.index(digest)} "
                "level(s) down (a cycle)"
            )

    def enter(self, digest: str, what: str) -> IndexChain:
        """The chain with index ``digest`` entered; raises when that makes it cyclic or deeper than ``limit``."""
        self.check(digest, what)
        if len(self.digests) >= self.limit:
            raise _error(f"{what}: indexes nested deeper than {self.limit} levels (a cycle?) at {digest}")
        return IndexChain((*self.digests, digest), self.limit)
