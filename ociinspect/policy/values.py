"""A rule's threshold from our TOML files or a command-line flag: :func:`parse_value` (one pass, no I/O)."""

from __future__ import annotations

import math
from typing import Literal

from ociinspect.model.image import Platform
from ociinspect.model.textsafe import parse_uint
from ociinspect.policy.grammar import UNITS_HINT, go_parse_float, parse_ratio, parse_size
from ociinspect.policy.rules import RULES, Value, compile_glob

__all__ = ["parse_value"]

Disabled = Literal["disabled"]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_value(rule: str, value: object) -> Value | None:
    """A threshold for ``rule`` from our TOML or a command-line flag (strings as typed on the command line).

    Returns ``None`` for "disabled" (``disabled``, ``off``, ``false``, any case).  Raises ``ValueError`` with a
    one-line reason.  Sizes: :func:`parse_bytes` (dive's spellings); ratios: 0–1; percents: ≥ 0; counts: whole
    numbers ≥ 0; lists: strings (globs must compile, platforms parse, bases are digests or references).
    """
    kind = RULES[rule].kind
    if isinstance(value, str) and value.strip().lower() in ("disabled", "off", "false") and kind != "flag":
        return None
    if kind == "bytes":
        if isinstance(value, str):
            return parse_size(value)
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 0:
                raise ValueError(f"{value} is negative: a size must be ≥ 0 bytes")
            return value
        raise ValueError(f"{value!r} is not a size; {UNITS_HINT}")
    if kind == "count":
        if isinstance(value, str) and (count := parse_uint(value)) is not None:
            return count
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 0:
                raise ValueError(f"{value} is negative: a count must be ≥ 0")
            return value
        raise ValueError(f"{value!r} is not a whole number ≥ 0")
    if kind == "ratio":
        if isinstance(value, str):
            return parse_ratio(value.strip())
        if _is_number(value):
            assert isinstance(value, int | float)
            if not (0 <= value <= 1):
                raise ValueError(f"{value!r} is outside the allowed range 0–1 (a ratio: 0.95, not 95)")
            return float(value)
        raise ValueError(f"{value!r} is not a ratio between 0 and 1")
    if kind == "percent":
        number: object = value
        if isinstance(value, str):
            try:
                number = go_parse_float(value.strip().removesuffix("%").strip())
            except ValueError:
                raise ValueError(f"{value!r} is not a percentage such as 10 or 12.5") from None
        if not _is_number(number) or not math.isfinite(float(number)):  # type: ignore[arg-type]
            raise ValueError(f"{value!r} is not a percentage such as 10 or 12.5")
        assert isinstance(number, int | float)
        if number < 0:
            raise ValueError(f"{value!r} is negative: a growth budget must be ≥ 0 %")
        return float(number)
    if kind == "flag":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.strip().lower() in ("true", "yes", "1")
        raise ValueError(f"{value!r} is not true or false")
    if not isinstance(value, list | tuple) or not all(isinstance(x, str) and x.strip() for x in value):
        raise ValueError(f'{value!r} is not a list of non-empty strings, e.g. ["a", "b"]')
    out = tuple(str(x).strip() for x in value)
    for item in out:
        _check_item(kind, item)
    return out


def _check_item(kind: str, item: str) -> None:
    if kind == "paths":
        compile_glob(item)
    elif kind == "platforms":
        Platform.parse(item)
    elif kind == "bases":
        from ociinspect.model import digest as _digest
        from ociinspect.model.reference import parse_reference

        if ":" in item and _digest.is_digest(item):
            return
        try:
            parse_reference(item)
        except Exception as exc:
            raise ValueError(f"{item!r} is neither a digest nor an image reference: {exc}") from None
