"""The CLI's log formatter (imports :mod:`logging` and :mod:`traceback`: only for ``-v`` and internal errors).

:class:`SafeFormatter` applies :func:`~ociinspect.model.textsafe.escape_controls` and
:func:`~ociinspect.model.textsafe.redact_secrets` to every line it writes.
"""

from __future__ import annotations

import logging
import traceback

from ociinspect.model.textsafe import escape_controls, redact_secrets

__all__ = ["SafeFormatter"]


def _safe(text: str) -> str:
    return escape_controls(redact_secrets(text))


class SafeFormatter(logging.Formatter):
    """The CLI's log formatter: the final message is one line with controls escaped and secrets redacted
    (:func:`escape_controls`, :func:`redact_secrets`); exception and stack text keep their own line breaks but
    each line is treated the same way, so a hostile exception message cannot forge a log line or drive the
    terminal.  Cost per record: the standard formatting plus one pass of each regex."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        out = _safe(self.formatMessage(record))
        tails: list[str] = []
        if record.exc_info and record.exc_info[1] is not None:
            tails.append(
                "\n".join(_exception_lines(traceback.TracebackException.from_exception(record.exc_info[1])))
            )
        elif record.exc_text:
            tails.append(_safe(record.exc_text))  # cached by another formatter: one escaped line
        if record.stack_info:
            tails.append("\n".join(_safe(line) for line in self.formatStack(record.stack_info).split("\n")))
        for tail in tails:
            out += "\n" + tail
        return out


def _exception_lines(te: traceback.TracebackException) -> list[str]:
    """A traceback whose frame lines keep their layout and whose exception text (message and notes, which may
    quote hostile values) is one escaped line: a newline in a message cannot forge a log line."""
    lines: list[str] = []
    if te.__cause__ is not None:
        lines += [*_exception_lines(te.__cause__), "", _CAUSE, ""]
    elif te.__context__ is not None and not te.__suppress_context__:
        lines += [*_exception_lines(te.__context__), "", _CONTEXT, ""]
    if te.stack:
        lines.append("Traceback (most recent call last):")
        lines += [_safe(line) for line in "".join(te.stack.format()).rstrip("\n").split("\n")]
    lines.append(_safe("".join(te.format_exception_only()).rstrip("\n")))
    return lines


_CAUSE = "The above exception was the direct cause of the following exception:"
_CONTEXT = "During handling of the above exception, another exception occurred:"
