"""A total deadline for one command: a fixed point on the monotonic clock, and the duration grammar.

``--timeout`` bounds each wait (one socket read, one connect); a :class:`Deadline` bounds the whole operation:
retries, redirects, token requests and bodies together.  The transport enforces it three ways (see
:class:`ociinspect.registry.transport.Transport`): every socket timeout is at most the time remaining, every
retry pause ends before it, and a watchdog timer shuts down every socket of the transport when it passes — so
a server that drips one byte per second cannot outlive it.

This module uses the standard library only.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import field

from ociinspect import errors
from ociinspect.model.record import record

__all__ = ["Deadline", "format_duration", "parse_duration"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# (strings compiled by re's cache when a duration is first parsed: most runs give none)
_PART_RE = r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)"
_DURATION_RE = r"(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h|d))+"
_NUMBER_RE = r"[0-9]+(?:\.[0-9]+)?"
_OFF = frozenset({"0", "none", "off", "never", "no"})
#: Longest duration accepted (a year): beyond it, the monotonic arithmetic is still fine, but it is a typo.
MAX_DURATION = 366 * 86400.0


def parse_duration(text: str) -> float | None:
    """``"90s"``, ``"5m"``, ``"1h30m"``, ``"1.5h"``, ``"500ms"`` or plain seconds (``"45"``) → seconds;
    ``"0"``, ``"none"``, ``"off"`` → None (no deadline).  ASCII digits only (``"²"`` is not a number).

    Raises :class:`ValueError` with a readable reason on anything else.  Cost: one regex match.
    """
    value = text.strip().lower()
    if value in _OFF:
        return None
    if re.fullmatch(_NUMBER_RE, value, re.ASCII):
        seconds = float(value)
    elif re.fullmatch(_DURATION_RE, value, re.ASCII):
        seconds = sum(float(n) * _UNITS[u] for n, u in re.findall(_PART_RE, value, re.ASCII))
    else:
        raise ValueError(f"{text!r} is not a duration (e.g. 90s, 5m, 1h30m; 0 or none for no limit)")
    if seconds == 0:
        return None
    if seconds > MAX_DURATION:
        raise ValueError(f"{text!r} is longer than a year; use 0 or none for no limit")
    return seconds


def format_duration(seconds: float) -> str:
    """``600`` → ``"10m"``, ``90`` → ``"1m30s"``, ``2.5`` → ``"2.5s"`` (for messages)."""
    if seconds < 60:
        return f"{seconds:g}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    out = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return out or "0s"


@record
class Deadline:
    """``budget`` seconds from its creation, on ``clock`` (monotonic; immutable, so shareable between threads).

    Cost of every method: one clock read.
    """

    budget: float
    expires_at: float
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    @classmethod
    def after(cls, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> Deadline:
        """A deadline ``seconds`` from now."""
        if seconds <= 0:
            raise ValueError("a deadline must be a positive number of seconds")
        return cls(seconds, clock() + seconds, clock)

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self.expires_at - self.clock()

    def elapsed(self) -> float:
        """Seconds since the deadline was set."""
        return self.budget - self.remaining()

    def expired(self, *, slack: float = 0.0) -> bool:
        """True once the deadline has passed (or is within ``slack`` seconds)."""
        return self.remaining() <= slack

    def cap(self, seconds: float) -> float:
        """``seconds`` or the time remaining, whichever is smaller (never below 1 ms: a socket timeout of 0
        would mean non-blocking)."""
        return max(0.001, min(seconds, self.remaining()))

    def error(self, what: str, doing: str, *, url: str | None = None) -> errors.DeadlineExceeded:
        """The typed error: ``"<what>: deadline 3s exceeded after 3.0s (<doing>)"``."""
        return errors.DeadlineExceeded(
            f"{what}: deadline {format_duration(self.budget)} exceeded after {self.elapsed():.1f}s ({doing})",
            hint="the registry or the network is too slow for the deadline: raise it (--deadline 30m) "
            "or disable it (--deadline 0)",
            url=url,
        )

    def check(self, what: str, doing: str, *, url: str | None = None) -> None:
        """Raise :meth:`error` when the deadline has passed."""
        if self.expired():
            raise self.error(what, doing, url=url)
