"""Module loggers that cost nothing until something uses :mod:`logging`.

Importing :mod:`logging` brings ``traceback``, ``linecache``, ``tokenize`` and ``string`` (~5 ms at every start of
a command) while the library is silent by default: ``log = get_logger(__name__)`` gives a :class:`Log` with the
methods the library calls (``debug``, ``info``, ``warning``, ``error``, ``exception``, ``isEnabledFor``).  While
:mod:`logging` has not been imported — by the CLI for ``-v``, by an application that configures logging, by any
other library — nobody can have configured a handler for these records, and a call returns at once.  Once it
has, each call goes to the real ``logging.getLogger(name)`` (records name the caller, not this module), and the
``ociinspect`` logger gets its :class:`logging.NullHandler` then, as a library's logger should: without
configuration nothing is printed.  Cost per call: one dictionary lookup while logging is unused.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["DEBUG", "INFO", "Log", "get_logger"]

#: the standard levels (the numbers :mod:`logging` uses), for ``isEnabledFor`` without importing it
DEBUG, INFO, WARNING = 10, 20, 30

_ROOTS = ("ociinspect", "oras")


class Log:
    """A stand-in for ``logging.getLogger(name)`` that imports nothing (see the module's text)."""

    __slots__ = ("_logger", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._logger: Any = None

    def _real(self) -> Any:
        logger = self._logger
        if logger is None:
            logging = sys.modules.get("logging")
            if logging is None:
                return None
            for root in _ROOTS:  # a library's loggers stay silent unless configured (idempotent)
                named = logging.getLogger(root)
                if not any(isinstance(h, logging.NullHandler) for h in named.handlers):
                    named.addHandler(logging.NullHandler())
            logger = self._logger = logging.getLogger(self.name)
        return logger

    def isEnabledFor(self, level: int) -> bool:
        logger = self._real()
        return logger is not None and bool(logger.isEnabledFor(level))

    def _log(self, method: str, msg: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        logger = self._real()
        if logger is not None:
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 2  # the caller's file and line, not ours
            getattr(logger, method)(msg, *args, **kwargs)

    def debug(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._log("debug", msg, args, kwargs)

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._log("info", msg, args, kwargs)

    def warning(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._log("warning", msg, args, kwargs)

    def error(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._log("error", msg, args, kwargs)

    def exception(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._log("exception", msg, args, kwargs)


def get_logger(name: str) -> Log:
    """The :class:`Log` for ``name`` (a dotted logger name, e.g. ``__name__``)."""
    return Log(name)
