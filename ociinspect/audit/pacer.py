"""Politeness for the audit: a request-rate cap and Docker Hub's rate-limit headers.

The :class:`Pacer` is an observer of the registry client (it reads ``ratelimit-limit`` and
``ratelimit-remaining`` from every response, any status) and a gate the walker passes before each request.
429 and ``Retry-After`` are handled by the transport's retries; the pacer keeps the walk from getting there.
Thread-safe; no I/O; cost per request: one lock and at most one sleep.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping

from ociinspect.errors import RateLimited

__all__ = ["Pacer"]

# ASCII digits only ("١٠" or "1_0" is no number), each ending at ";", "," or the end
_RATELIMIT_RE = re.compile(r"^\s*(\d{1,18})\s*(?:;\s*w\s*=\s*(\d{1,18})\s*)?(?=[;,]|$)", re.ASCII)


class Pacer:
    """Politeness: a token bucket of ``max_rps`` requests per second (0: no cap), and Docker Hub's rate-limit
    headers (``ratelimit-remaining: 76;w=21600``).  Below a low-water mark the walk spreads the remaining
    requests over the window (capped at ``max_pause`` s between requests); at ``reserve`` or below it stops with
    :class:`RateLimited` so the run can be resumed once the window has passed.  Thread-safe; no I/O."""

    def __init__(
        self,
        max_rps: float = 0.0,
        *,
        concurrency: int = 8,
        reserve: int = 0,
        max_pause: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.max_rps = max_rps
        self.concurrency = concurrency
        self.reserve = reserve
        self.max_pause = max_pause
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._next = 0.0  # earliest time of the next request
        self.remaining: int | None = None
        self.limit: int | None = None
        self.window: int | None = None

    def spacing(self) -> float:
        """Seconds to leave between two requests now (0: none)."""
        gap = 1.0 / self.max_rps if self.max_rps > 0 else 0.0
        if self.remaining is not None and self.window:
            low_water = max(4 * self.concurrency, (self.limit or 0) // 10)
            if self.remaining < low_water:
                gap = max(gap, min(self.max_pause, self.window / max(1, self.remaining - self.reserve)))
        return gap

    def exhausted(self) -> bool:
        """True when the registry's remaining requests are at or below the reserve."""
        return self.remaining is not None and self.remaining <= self.reserve

    def wait(self) -> None:
        """Block until the next request may be sent; raise :class:`RateLimited` when the reserve is reached."""
        if self.exhausted():
            raise RateLimited(
                f"the registry's rate limit is nearly used up ({self.remaining} of {self.limit} requests left "
                f"per {self.window} s window); stopping before it is exhausted",
                hint="resume later with `ociinspect audit scan … --resume`, or log in for a higher limit",
            )
        gap = self.spacing()
        if gap <= 0:
            return
        with self._lock:
            now = self._clock()
            at = max(now, self._next)
            self._next = at + gap
        if at > now:
            self._sleep(at - now)

    def observe(self, method: str, url: str, status: int, headers: Mapping[str, str]) -> None:
        """Read ``ratelimit-limit`` / ``ratelimit-remaining`` from a response (any status); ``headers`` is
        case-insensitive (the registry client's observer)."""
        remaining = headers.get("ratelimit-remaining")
        if remaining is None:
            return
        m = _RATELIMIT_RE.match(remaining)
        if not m:
            return
        limit = _RATELIMIT_RE.match(headers.get("ratelimit-limit", ""))
        with self._lock:
            self.remaining = int(m.group(1))
            self.window = int(m.group(2)) if m.group(2) else (self.window or 21600)
            if limit:
                self.limit = int(limit.group(1))
