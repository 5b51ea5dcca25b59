"""Text helpers for strict TOML files (policies, ``--vm-profile``): where a key is written, and a hint for an
unknown key.  Standard library only; cost: one pass over the file's lines per call."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

__all__ = ["did_you_mean", "locate_toml"]


def did_you_mean(key: str, choices: Sequence[str], *, known: str = "known keys") -> str:
    """A hint for an unknown ``key`` of a TOML file: ``did you mean X?`` for the closest of ``choices``, else
    ``{known}: a, b, …``.  Shared by the policy files and ``--vm-profile`` files."""
    close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
    return f"did you mean {close[0]}?" if close else f"{known}: " + ", ".join(choices)


def _toml_header(line: str) -> list[str] | None:
    m = re.match(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$", line)
    if not m:
        return None
    return [p.strip().strip("\"'") for p in m.group(1).split(".")]


def locate_toml(text: str, table: Sequence[str], key: str) -> int | None:
    """The 1-based line where ``key`` of ``table`` is defined in TOML ``text`` (``key = …`` under ``[table]``,
    a ``[table.key]`` header, or a dotted ``table.key = …``); ``None`` when it cannot be found."""
    current: list[str] = []
    key_re = re.compile(rf"^\s*([\"']?){re.escape(key)}\1\s*=")
    for number, line in enumerate(text.splitlines(), 1):
        header = _toml_header(line)
        if header is not None:
            current = header
            if header == [*table, key]:
                return number
            continue
        if current == list(table) and key_re.match(line):
            return number
        for i in range(len(table)):
            prefix = [*table[i:], key]
            if current == list(table[:i]) and re.match(
                r"^\s*" + r"\s*\.\s*".join(re.escape(p) for p in prefix) + r"\s*=", line
            ):
                return number
    return None
