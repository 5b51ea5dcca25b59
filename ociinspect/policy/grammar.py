"""The number and size grammars of policies and command lines: Go's ``strconv`` and go-humanize's ``ParseBytes``.

Every size on an ``ociinspect`` command line and in a policy file is read by :func:`parse_size` (go-humanize
1.0.1's ``ParseBytes``, which dive uses): ``2G`` and ``2GB`` are 2·10⁹ bytes, ``2GiB`` and ``2Gi`` are 2·2³⁰
(``docs/cli.md``, "Sizes").  dive's ratios are Go's ``strconv.ParseFloat`` (:func:`go_parse_float`).
Standard library only; every function is pure and costs one pass over its text.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping
from decimal import Decimal

__all__ = [
    "SIZE_UNITS",
    "UNITS_HINT",
    "go_format_float",
    "go_parse_float",
    "go_parse_int",
    "parse_bytes",
    "parse_ratio",
    "parse_size",
]

#: go-humanize 1.0.1 ``bytesSizeTable``: the unit spellings ``ParseBytes`` accepts (compared lower-cased,
#: after the number and optional spaces).  Decimal (SI) without ``i``, binary (IEC) with it; ``b`` is bytes,
#: never bits, so ``20Mb`` = ``20MB`` = ``20m`` = 20 000 000 and ``20MiB`` = ``20mi`` = 20 971 520.
SIZE_UNITS: Mapping[str, int] = {
    "b": 1,
    "": 1,
    "kib": 1 << 10,
    "ki": 1 << 10,
    "kb": 10**3,
    "k": 10**3,
    "mib": 1 << 20,
    "mi": 1 << 20,
    "mb": 10**6,
    "m": 10**6,
    "gib": 1 << 30,
    "gi": 1 << 30,
    "gb": 10**9,
    "g": 10**9,
    "tib": 1 << 40,
    "ti": 1 << 40,
    "tb": 10**12,
    "t": 10**12,
    "pib": 1 << 50,
    "pi": 1 << 50,
    "pb": 10**15,
    "p": 10**15,
    "eib": 1 << 60,
    "ei": 1 << 60,
    "eb": 10**18,
    "e": 10**18,
}


UNITS_HINT = "sizes are bytes or a number with a unit: B, kB/KB/k, MB/Mb/M, GB, TB (×1000) or KiB/Ki, MiB/Mi, GiB (×1024)"


def _underscore_ok(s: str) -> bool:
    """Go ``strconv.underscoreOK``: underscores only between digits (or after a base prefix)."""
    saw = "^"
    i = 0
    if s[:1] in ("+", "-"):
        s = s[1:]
    hexa = False
    if len(s) >= 2 and s[0] == "0" and s[1].lower() in "box":
        i = 2
        saw = "0"
        hexa = s[1].lower() == "x"
    while i < len(s):
        c = s[i]
        if "0" <= c <= "9" or (hexa and "a" <= c.lower() <= "f"):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        else:
            if saw == "_":
                return False
            saw = "!"
        i += 1
    return saw != "_"


def _special(s: str) -> float | None:
    """Go ``strconv.special`` over the whole string: ``[+-]inf``, ``[+-]infinity``, ``nan`` (any case)."""
    low = s.lower()
    sign = -1.0 if low.startswith("-") else 1.0
    body = low[1:] if low[:1] in ("+", "-") else low
    if body in ("inf", "infinity"):
        return math.copysign(math.inf, sign)
    if low == "nan":
        return math.nan
    return None


def go_parse_float(s: str) -> float:
    """Go's ``strconv.ParseFloat(s, 64)``: decimal or hexadecimal (``0x1.8p1``) floats with an optional sign,
    underscores between digits, ``inf``/``infinity``/``nan`` in any case (no sign on ``nan``); nothing else, not
    even spaces.  Raises ``ValueError`` with Go's message (``invalid syntax``, ``value out of range``)."""
    special = _special(s)
    if special is not None:
        return special
    bad = ValueError(f'strconv.ParseFloat: parsing "{s}": invalid syntax')
    i = 0
    n = len(s)
    if i < n and s[i] in "+-":
        i += 1
    base, exp_char = 10, "e"
    if i + 2 < n and s[i] == "0" and s[i + 1] in "xX":
        base, exp_char = 16, "p"
        i += 2
    underscores = sawdot = sawdigits = False
    while i < n:
        c = s[i]
        if c == "_":
            underscores = True
        elif c == ".":
            if sawdot:
                break
            sawdot = True
        elif "0" <= c <= "9" or (base == 16 and "a" <= c.lower() <= "f"):
            sawdigits = True
        else:
            break
        i += 1
    if not sawdigits:
        raise bad
    has_exp = False
    if i < n and s[i].lower() == exp_char:
        i += 1
        if i < n and s[i] in "+-":
            i += 1
        if i >= n or not ("0" <= s[i] <= "9"):
            raise bad
        while i < n and ("0" <= s[i] <= "9" or s[i] == "_"):
            underscores = underscores or s[i] == "_"
            i += 1
        has_exp = True
    if base == 16 and not has_exp:
        raise bad
    if i != n or (underscores and not _underscore_ok(s)):
        raise bad
    text = s.replace("_", "")
    try:
        value = float.fromhex(text) if base == 16 else float(text)
    except OverflowError:
        raise ValueError(f'strconv.ParseFloat: parsing "{s}": value out of range') from None
    if math.isinf(value):
        raise ValueError(f'strconv.ParseFloat: parsing "{s}": value out of range')
    return value


def go_parse_int(s: str, *, unsigned: bool) -> int | None:
    """Go ``strconv.ParseInt(s, 0, 64)`` / ``ParseUint(s, 0, 64)`` (no underscores: yaml.v3 removed them);
    ``None`` when Go would fail."""
    if not s:
        return None
    sign = 1
    if s[0] in "+-":
        if unsigned:
            return None
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    base = 10
    if s[:1] == "0":
        if len(s) >= 3 and s[1] in "bB":
            base, s = 2, s[2:]
        elif len(s) >= 3 and s[1] in "oO":
            base, s = 8, s[2:]
        elif len(s) >= 3 and s[1] in "xX":
            base, s = 16, s[2:]
        else:
            base, s = 8, s[1:]
    if not s and base == 8:
        return 0
    digits = "0123456789abcdef"[:base]
    if not s or any(c.lower() not in digits for c in s):
        return None
    value = sign * int(s, base)
    if unsigned:
        return value if value < (1 << 64) else None
    return value if -(1 << 63) <= value < (1 << 63) else None


def go_format_float(f: float) -> str:
    """Go's ``strconv.FormatFloat(f, 'f', -1, 64)``: the shortest digits that round-trip, never an exponent;
    ``NaN``, ``+Inf``, ``-Inf``."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    text = format(Decimal(repr(f)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def parse_bytes(text: str) -> int:
    """go-humanize 1.0.1 ``ParseBytes``, which dive uses for ``highestWastedBytes``.

    The longest prefix of (Unicode) digits, ``.`` and ``,`` is the number (commas removed, then parsed by
    :func:`go_parse_float`), the rest, trimmed and lower-cased, a unit of :data:`SIZE_UNITS`; the product is
    truncated to an integer and must be below 2⁶⁴.  So ``20MB``, ``20Mb``, ``20 mb``, ``20M`` are 20 000 000,
    ``20MiB`` and ``20Mi`` 20 971 520, ``1,024`` 1024; a sign, a leading space or ``bytes`` is an error.
    Raises ``ValueError`` with go-humanize's message.
    """
    end = 0
    for c in text:
        if not (unicodedata.category(c) == "Nd" or c in ".,"):
            break
        end += 1
    number = text[:end].replace(",", "")
    if not number.isascii():
        raise ValueError(f'strconv.ParseFloat: parsing "{number}": invalid syntax')
    value = go_parse_float(number)
    unit = text[end:].strip().lower()
    if unit not in SIZE_UNITS:
        raise ValueError(f"unhandled size name: {unit}")
    value *= SIZE_UNITS[unit]
    if value >= float(2**64):
        raise ValueError(f"too large: {text}")
    return int(value)


def parse_size(text: str) -> int:
    """A size for our own files and flags: :func:`parse_bytes`, with clearer messages for common mistakes."""
    stripped = text.strip()
    if stripped.startswith("-"):
        raise ValueError(f"{text!r} is negative; {UNITS_HINT}")
    try:
        return parse_bytes(stripped)
    except ValueError as exc:
        if str(exc).startswith("unhandled size name"):
            unit = stripped.lstrip("0123456789., ")
            raise ValueError(f"{text!r}: unknown unit {unit!r}; {UNITS_HINT}") from None
        raise ValueError(f"{text!r} is not a size; {UNITS_HINT}") from None


def parse_ratio(text: str) -> float:
    try:
        value = go_parse_float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number; write a ratio between 0 and 1, e.g. 0.95") from None
    if value < 0 or value > 1:  # NaN passes, as in dive
        raise ValueError(f"{text!r} is outside the allowed range 0–1 (a ratio: 0.95, not 95)")
    return value
