"""Policy files for ``ociinspect check``: where they are found, how they are read, what is refused.

Three formats (``docs/policy.md``):

* ``.ociinspect.toml`` with a ``[check]`` table, or ``pyproject.toml`` with ``[tool.ociinspect.check]``;
  strict: an unknown key, a wrong unit, a negative threshold is a :class:`~ociinspect.errors.PolicyError`
  (exit 2) naming the key and its line;
* dive's CI file (``.dive-ci``, YAML), read unchanged, with dive 0.13.1's semantics (below).

Discovery (no ``--policy``): from the working directory upwards, the first ``.ociinspect.toml``, or
``pyproject.toml`` that has a ``[tool.ociinspect]`` table; in the working directory itself a ``.dive-ci`` comes
after those two (dive only looks there).

**dive's CI file, exactly as dive 0.13.1 reads it** (``cmd/root.go``, ``cmd/ci.go``, ``runtime/ci/rule.go``;
viper over ``gopkg.in/yaml.v3``; every point below was also checked against the dive 0.13.1 binary):

* the rules are ``rules.lowestEfficiency``, ``rules.highestWastedBytes``, ``rules.highestUserWastedPercent``;
  keys are case-insensitive; a missing or null (``~``, empty) rule takes dive's default: ``0.9``,
  ``disabled``, ``0.1``;
* a value is first decoded as YAML 1.2 (yaml.v3: ``0x10`` and ``020`` are integers 16 and 16, ``1_400`` is
  1400, ``1e3`` is the float 1000, ``FALSE`` a boolean) and then turned back into text the way Go's
  ``cast.ToString`` does (floats with ``strconv.FormatFloat(f, 'f', -1, 64)``); quoted values stay as written;
* only the exact text ``disabled`` disables a rule; ratios are parsed with Go's ``strconv.ParseFloat``
  (:func:`go_parse_float`: ``.5``, ``1e-1``, ``0x1p-1``, ``0.9_5``, ``NaN`` are accepted) and must be within
  0–1 (NaN passes that check and then never fails, as in dive); sizes are parsed with go-humanize 1.0.1's
  ``ParseBytes`` (:func:`parse_bytes`);
* a value dive calls ``MISCONFIGURED`` (exit 1, "CI Misconfigured") is a policy error here (exit 2), naming
  the key and its line.

dive's newer configuration keys are read too: ``rules.lowest-efficiency`` (also the older
``lowest-efficiency-threshold``), ``rules.highest-wasted-bytes``, ``rules.highest-user-wasted-percent``; for
those, as in dive's main branch (``cmd/dive/cli/internal/command/ci/rules.go``), ``""``, ``disabled``, ``off``
and ``false`` (any case) disable a rule, and a camelCase key wins over its kebab-case twin.  Other keys (``ci``,
``plugins`` …) are ignored, as dive ignores them, with a note.

Costs: reading a policy is a few file stats per directory up to the root and one small file parse.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import tomllib
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ociinspect.errors import PolicyError
from ociinspect.model.image import Platform
from ociinspect.model.textsafe import parse_uint
from ociinspect.policy.rules import RULES, Origin, Policy, RuleConfig, Severity, Value, compile_glob

if TYPE_CHECKING:
    import yaml

__all__ = [
    "DIVE_DISABLED_MAIN",
    "DIVE_FILE",
    "LIST_FLAGS",
    "POLICY_FILE",
    "SIZE_UNITS",
    "did_you_mean",
    "discover",
    "go_format_float",
    "go_parse_float",
    "load_policy",
    "locate_toml",
    "parse_bytes",
    "parse_value",
    "read_dive",
    "read_toml",
    "with_flags",
]

POLICY_FILE = ".ociinspect.toml"
#: the command-line flag of each list rule: singular and repeatable (``--forbidden-path GLOB``), with its metavar
LIST_FLAGS: Mapping[str, tuple[str, str]] = {
    "forbidden-paths": ("--forbidden-path", "GLOB"),
    "required-labels": ("--required-label", "KEY"),
    "required-annotations": ("--required-annotation", "KEY"),
    "allowed-base-images": ("--allowed-base-image", "REF|DIGEST"),
    "allowed-platforms": ("--allowed-platform", "OS/ARCH[/VARIANT]"),
    "required-platforms": ("--required-platform", "OS/ARCH[/VARIANT]"),
}
PYPROJECT = "pyproject.toml"
DIVE_FILE = ".dive-ci"

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

#: dive's main branch ``isRuleDisabled``: these (trimmed, any case) disable a rule; dive 0.13.1 only ``disabled``.
DIVE_DISABLED_MAIN = frozenset({"", "disabled", "off", "false"})

_UNITS_HINT = "sizes are bytes or a number with a unit: B, kB/KB/k, MB/Mb/M, GB, TB (×1000) or KiB/Ki, MiB/Mi, GiB (×1024)"


# ============================================================================ Go's number parsing


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


def _go_parse_int(s: str, *, unsigned: bool) -> int | None:
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


# ============================================================================ values

Disabled = Literal["disabled"]


def _size_value(text: str) -> int:
    """A size for our own files and flags: :func:`parse_bytes`, with clearer messages for common mistakes."""
    stripped = text.strip()
    if stripped.startswith("-"):
        raise ValueError(f"{text!r} is negative; {_UNITS_HINT}")
    try:
        return parse_bytes(stripped)
    except ValueError as exc:
        if str(exc).startswith("unhandled size name"):
            unit = stripped.lstrip("0123456789., ")
            raise ValueError(f"{text!r}: unknown unit {unit!r}; {_UNITS_HINT}") from None
        raise ValueError(f"{text!r} is not a size; {_UNITS_HINT}") from None


def _ratio_value(text: str) -> float:
    try:
        value = go_parse_float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number; write a ratio between 0 and 1, e.g. 0.95") from None
    if value < 0 or value > 1:  # NaN passes, as in dive
        raise ValueError(f"{text!r} is outside the allowed range 0–1 (a ratio: 0.95, not 95)")
    return value


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
            return _size_value(value)
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 0:
                raise ValueError(f"{value} is negative: a size must be ≥ 0 bytes")
            return value
        raise ValueError(f"{value!r} is not a size; {_UNITS_HINT}")
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
            return _ratio_value(value.strip())
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


# ============================================================================ TOML

_TABLE_KEYS = ("value", "threshold", "severity", "enabled")
_SETTINGS = ("baseline", "growth-basis")


def did_you_mean(key: str, choices: Sequence[str], *, known: str = "known keys") -> str:
    """A hint for an unknown ``key`` of a TOML file: ``did you mean X?`` for the closest of ``choices``, else
    ``{known}: a, b, …``.  Shared by the policy files and ``--vm-profile`` files."""
    close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
    return f"did you mean {close[0]}?" if close else f"{known}: " + ", ".join(choices)


def _suggest(key: str, choices: Sequence[str]) -> str:
    camel = {spec.dive_key: spec.id for spec in RULES.values() if spec.dive_key}
    if key in camel:
        return f"dive's {key} is {camel[key]} here"
    close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
    return did_you_mean(key, choices) if close else "known rules: " + ", ".join(RULES)


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


def _shown(path: Path) -> str:
    """A policy path for messages: relative to the working directory when below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PolicyError(
            f"reading policy {_shown(path)}: {exc.strerror or exc}", hint="check the path given to --policy"
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(
            f"policy {_shown(path)} is not a TOML or YAML text file (byte {exc.start} is not UTF-8)",
            hint="a policy is .ociinspect.toml, pyproject.toml or dive's .dive-ci (YAML)",
        ) from None


def read_toml(path: Path, text: str | None = None, *, pyproject: bool | None = None) -> Policy:
    """Read ``.ociinspect.toml`` (``[check]``) or ``pyproject.toml`` (``[tool.ociinspect.check]``) strictly."""
    text = _read_text(path) if text is None else text
    is_pyproject = path.name == PYPROJECT if pyproject is None else pyproject
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(
            f"policy {_shown(path)} is not valid TOML: {exc}", hint="see docs/policy.md for the format"
        ) from None
    table: list[str] = ["tool", "ociinspect", "check"] if is_pyproject else ["check"]

    def fail(key: str, why: str, hint: str | None = None, where: Sequence[str] = table) -> PolicyError:
        line = locate_toml(text, where, key)
        at = f" line {line}" if line else ""
        return PolicyError(f"policy {_shown(path)}{at}: [{'.'.join(where)}] {key}: {why}", hint=hint)

    if is_pyproject:
        tool = data.get("tool", {}).get("ociinspect", {})
        if not isinstance(tool, dict):
            raise fail("ociinspect", "must be a table", where=["tool"])
        for key in tool:
            if key != "check":
                raise fail(
                    key, "unknown key", "the policy goes in [tool.ociinspect.check]", ["tool", "ociinspect"]
                )
        section = tool.get("check", {})
    else:
        for key in data:
            if key != "check":
                raise fail(key, "unknown table", "the rules go in a [check] table", [])
        section = data.get("check", {})
    if not isinstance(section, dict):
        raise fail(table[-1], "must be a table", where=table[:-1])

    rules: list[RuleConfig] = []
    settings: dict[str, Any] = {}
    for key, raw in section.items():
        if key in _SETTINGS:
            settings[key] = raw
            continue
        if key not in RULES:
            raise fail(key, "unknown rule", _suggest(key, [*RULES, *_SETTINGS]))
        line = locate_toml(text, table, key)
        origin = Origin(f"{path.name}{f' line {line}' if line else ''}", str(path), line)
        rules.append(_toml_rule(key, raw, origin, lambda why, hint=None, k=key: fail(k, why, hint)))

    baseline = settings.get("baseline")
    if baseline is not None and (not isinstance(baseline, str) or not baseline.strip()):
        raise fail("baseline", 'must be an image reference, e.g. "docker://registry.example.com/app:prod"')
    basis = settings.get("growth-basis", "compressed")
    if basis not in ("compressed", "uncompressed"):
        raise fail("growth-basis", f'must be "compressed" or "uncompressed", got {basis!r}')
    return Policy(
        rules={},
        source=str(path),
        format="pyproject" if is_pyproject else "toml",
        baseline=baseline.strip() if isinstance(baseline, str) else None,
        growth_basis=basis,
    ).merged(rules)


def _toml_rule(key: str, raw: object, origin: Origin, fail: Callable[..., PolicyError]) -> RuleConfig:
    severity: Severity = "error"
    value = raw
    enabled = True
    if isinstance(raw, dict):
        for k in raw:
            if k not in _TABLE_KEYS:
                return _raise(fail(f"unknown key {k!r} (a rule table takes value, severity, enabled)"))
        if "value" in raw and "threshold" in raw:
            return _raise(fail("give value or threshold, not both"))
        if "value" not in raw and "threshold" not in raw:
            return _raise(fail('missing value (e.g. { value = ..., severity = "warning" })'))
        value = raw.get("value", raw.get("threshold"))
        sev = raw.get("severity", "error")
        if sev not in ("error", "warning"):
            return _raise(fail(f'severity must be "error" or "warning", got {sev!r}'))
        severity = sev
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            return _raise(fail("enabled must be true or false"))
    try:
        parsed = parse_value(key, value)
    except ValueError as exc:
        return _raise(fail(str(exc)))
    text = value if isinstance(value, str) else None
    return RuleConfig(key, parsed if enabled else None, severity, origin, text)


def _raise(exc: PolicyError) -> RuleConfig:
    raise exc


# ============================================================================ dive's YAML


def _yaml_module() -> Any:
    try:
        import yaml as module
    except ImportError:  # pragma: no cover - PyYAML is a dependency
        raise PolicyError(
            "reading a dive CI file needs PyYAML", hint="pip install pyyaml (a dependency of ociinspect)"
        ) from None
    return module


@dataclasses.dataclass(frozen=True)
class _DiveValue:
    key: str  # as written
    text: str | None  # Go's string of the value; None for null (dive then uses its default)
    line: int
    camel: bool


_YAML_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_YAML_NULL = frozenset({"", "~", "null", "Null", "NULL"})
_YAML_TRUE = frozenset({"true", "True", "TRUE"})
_YAML_FALSE = frozenset({"false", "False", "FALSE"})
_YAML_SPECIAL = {
    **{k: "NaN" for k in (".nan", ".NaN", ".NAN")},
    **{k: "+Inf" for k in (".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF")},
    **{k: "-Inf" for k in ("-.inf", "-.Inf", "-.INF")},
}
_STR_TAG = "tag:yaml.org,2002:str"


def _yaml_v3_text(node: yaml.Node) -> str | None:
    """What ``viper.GetString`` returns for a YAML value: yaml.v3 decodes the scalar, ``cast.ToString`` turns it
    back into text.  ``None`` for null.  Raises ``ValueError`` for a mapping or a list (dive: misconfigured)."""
    import yaml as module

    if not isinstance(node, module.ScalarNode):
        kind = "a mapping" if isinstance(node, module.MappingNode) else "a list"
        raise ValueError(f"is {kind}, not a value")
    value: str = node.value
    explicit = getattr(node, "explicit_tag", None)
    if node.style in ("'", '"', "|", ">") or explicit == _STR_TAG:
        return value
    if explicit == "tag:yaml.org,2002:null":
        return None
    if value in _YAML_NULL:
        return None
    if value in _YAML_TRUE:
        return "true"
    if value in _YAML_FALSE:
        return "false"
    if value in _YAML_SPECIAL:
        return _YAML_SPECIAL[value]
    first = value[:1]
    if first and first in "+-0123456789":
        plain = value.replace("_", "")
        for unsigned in (False, True):
            number = _go_parse_int(plain, unsigned=unsigned)
            if number is not None:
                return str(number)
        if _YAML_FLOAT.match(plain):
            try:
                return go_format_float(go_parse_float(plain))
            except ValueError:
                return value
    elif first == ".":
        try:
            return go_format_float(go_parse_float(value))
        except ValueError:
            return value
    return value


def _compose(text: str) -> yaml.Node | None:
    """The first YAML document's node tree (PyYAML composer, with explicit scalar tags kept)."""
    module = _yaml_module()

    class Loader(module.SafeLoader):  # type: ignore[misc,name-defined]
        def compose_scalar_node(self, anchor: str | None) -> Any:
            event = self.peek_event()
            node = super().compose_scalar_node(anchor)
            node.explicit_tag = event.tag if event.tag not in (None, "!") else None
            return node

    loader = Loader(text)
    try:
        node: yaml.Node | None = loader.get_node() if loader.check_node() else None
        return node
    finally:
        loader.dispose()


_DIVE_RULES = {spec.dive_key.lower(): spec.id for spec in RULES.values() if spec.dive_key}
_DIVE_KEBAB = {
    "lowest-efficiency": "lowest-efficiency",
    "lowest-efficiency-threshold": "lowest-efficiency",
    "highest-wasted-bytes": "highest-wasted-bytes",
    "highest-user-wasted-percent": "highest-user-wasted-percent",
}


def _mapping_items(node: yaml.Node, path: Path, where: str) -> list[tuple[yaml.Node, yaml.Node]]:
    """A mapping's (key, value) pairs with merge keys applied; duplicate keys are an error (yaml.v3)."""
    module = _yaml_module()
    seen: dict[str, int] = {}
    for key, _ in node.value:
        if key.tag == "tag:yaml.org,2002:merge":
            continue
        name = str(key.value)
        line = key.start_mark.line + 1
        if name in seen:
            raise PolicyError(
                f"policy {_shown(path)} line {line}: {where}{name}: mapping key already defined at line {seen[name]}",
                hint="dive refuses a file with a repeated key; keep one",
            )
        seen[name] = line
    module.SafeLoader("").flatten_mapping(node)  # apply merge keys (<<: *anchor); later keys win
    last = {str(k.value): (k, v) for k, v in node.value}
    return list(last.values())


def read_dive(path: Path, text: str | None = None) -> Policy:
    """Read a dive CI file (``.dive-ci``) with dive's semantics (see the module docstring)."""
    module = _yaml_module()
    text = _read_text(path) if text is None else text
    try:
        root = _compose(text)
    except module.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PolicyError(
            f"policy {_shown(path)}{at} is not valid YAML: {problem}",
            hint="dive's CI file is YAML: rules:\\n  lowestEfficiency: 0.9",
        ) from None
    notes: list[str] = []
    if text.count("\n---") and root is not None:
        notes.append("only the first YAML document is read, as dive does")
    found: dict[str, list[_DiveValue]] = {}
    if root is not None and not (isinstance(root, module.ScalarNode) and root.value in _YAML_NULL):
        if not isinstance(root, module.MappingNode):
            what = "a list" if isinstance(root, module.SequenceNode) else "a single value"
            raise PolicyError(
                f"policy {_shown(path)} line {root.start_mark.line + 1}: the file is {what}, not a mapping of settings",
                hint="dive's CI file looks like: rules:\\n  lowestEfficiency: 0.9",
            )
        for key, value in _mapping_items(root, path, ""):
            name = str(key.value)
            low = name.lower()
            if low == "rules":
                _dive_rules(path, key, value, found, notes)
            elif low.startswith("rules."):
                _dive_rule(path, name[6:], name, key, value, found, notes)
            else:
                notes.append(f"{name} (line {key.start_mark.line + 1}) is not a rule: ignored, as dive does")
    configs = []
    for spec in RULES.values():
        if spec.dive_key is None:
            continue
        configs.append(_dive_config(path, spec.id, found.get(spec.id, []), notes))
    return Policy(rules={}, source=str(path), format="dive", notes=tuple(notes)).merged(configs)


def _dive_rules(
    path: Path, key: yaml.Node, value: yaml.Node, found: dict[str, list[_DiveValue]], notes: list[str]
) -> None:
    module = _yaml_module()
    if isinstance(value, module.ScalarNode) and value.value in _YAML_NULL and value.style is None:
        return
    if not isinstance(value, module.MappingNode):
        raise PolicyError(
            f"policy {_shown(path)} line {key.start_mark.line + 1}: rules: must be a mapping of rule: value",
            hint="dive's CI file looks like: rules:\\n  lowestEfficiency: 0.9 (dive calls this misconfigured)",
        )
    for k, v in _mapping_items(value, path, "rules."):
        _dive_rule(path, str(k.value), f"rules.{k.value}", k, v, found, notes)


def _dive_rule(
    path: Path,
    name: str,
    shown: str,
    key: yaml.Node,
    value: yaml.Node,
    found: dict[str, list[_DiveValue]],
    notes: list[str],
) -> None:
    low = name.lower()
    line = key.start_mark.line + 1
    rule = _DIVE_RULES.get(low) or _DIVE_KEBAB.get(low)
    if rule is None:
        notes.append(f"{shown} (line {line}) is not one of dive's rules: ignored, as dive does")
        return
    try:
        text = _yaml_v3_text(value)
    except ValueError as exc:
        raise PolicyError(
            f"policy {_shown(path)} line {line}: {shown} {exc}", hint="write a single value, e.g. 0.9 or 20MB"
        ) from None
    found.setdefault(rule, []).append(_DiveValue(name, text, line, low in _DIVE_RULES))


def _dive_config(path: Path, rule: str, values: list[_DiveValue], notes: list[str]) -> RuleConfig:
    spec = RULES[rule]
    assert spec.dive_key is not None and spec.dive_default is not None
    camel = [v for v in values if v.camel]
    kebab = [v for v in values if not v.camel]
    if len(camel) > 1:
        a, b = camel[0], camel[1]
        raise PolicyError(
            f"policy {_shown(path)} line {b.line}: rules.{b.key}: also given at line {a.line} "
            "(dive compares keys case-insensitively and would pick one at random)",
            hint="keep one of them",
        )
    kebab.sort(key=lambda v: v.key.lower() != "lowest-efficiency")  # the newer name first
    if len(kebab) > 1:
        notes.append(f"rules.{kebab[1].key} (line {kebab[1].line}) is overridden by rules.{kebab[0].key}")
    chosen = camel[0] if camel else (kebab[0] if kebab else None)
    if chosen is not None and camel and kebab:
        notes.append(
            f"rules.{kebab[0].key} (line {kebab[0].line}) is overridden by rules.{camel[0].key}, as in dive"
        )
    if chosen is None or chosen.text is None:
        why = "not set" if chosen is None else f"null at line {chosen.line}"
        notes.append(f"rules.{spec.dive_key} is {why}: dive's default {spec.dive_default} applies")
        origin = Origin(f"dive default ({spec.dive_key} {why})", str(path), chosen.line if chosen else None)
        text = spec.dive_default
        return RuleConfig(rule, _dive_value(rule, text, True), "error", origin, text)
    origin = Origin(f"{path.name} line {chosen.line}", str(path), chosen.line)
    try:
        parsed = _dive_value(rule, chosen.text, chosen.camel)
    except ValueError as exc:
        raise PolicyError(
            f"policy {_shown(path)} line {chosen.line}: rules.{chosen.key}: invalid value {chosen.text!r}: {exc}",
            hint="dive reports this rule as MISCONFIGURED; "
            + (
                "sizes: 20MB, 20Mb, 20MiB, 1024 …"
                if spec.kind == "bytes"
                else "a ratio between 0 and 1, e.g. 0.9"
            ),
        ) from None
    return RuleConfig(rule, parsed, "error", origin, chosen.text)


def _dive_value(rule: str, text: str, camel: bool) -> Value | None:
    """A dive threshold: ``disabled`` (0.13.1: exact; main-branch keys: :data:`DIVE_DISABLED_MAIN`), else
    ``ParseBytes`` for wasted bytes, ``ParseFloat`` within 0–1 for the ratios."""
    if text == "disabled" or (not camel and text.strip().lower() in DIVE_DISABLED_MAIN):
        return None
    if RULES[rule].kind == "bytes":
        return parse_bytes(text)
    value = go_parse_float(text)
    if value < 0 or value > 1:
        raise ValueError(f"{RULES[rule].dive_key} config value is outside allowed range (0-1)")
    return value


# ============================================================================ discovery


def _has_tool_table(path: Path) -> bool:
    text = _read_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(
            f"{_shown(path)} is not valid TOML: {exc}", hint="fix it, or pass --policy FILE"
        ) from None
    tool = data.get("tool")
    return isinstance(tool, dict) and "ociinspect" in tool


def discover(start: Path) -> Path | None:
    """The policy file for a check run from ``start`` (see the module docstring); ``None`` when there is none.
    Cost: up to three ``stat`` calls per directory up to the root, and a parse of each ``pyproject.toml`` met."""
    start = start.resolve()
    for directory in (start, *start.parents):
        candidate = directory / POLICY_FILE
        if candidate.is_file():
            return candidate
        candidate = directory / PYPROJECT
        if candidate.is_file() and _has_tool_table(candidate):
            return candidate
        if directory == start and (directory / DIVE_FILE).is_file():
            return directory / DIVE_FILE
    return None


def _sniff(path: Path, text: str) -> Policy:
    """A file whose name does not say its format: TOML if it parses as TOML, else dive's YAML."""
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as toml_error:
        module = _yaml_module()
        try:
            _compose(text)
        except module.YAMLError as yaml_error:
            mark = getattr(yaml_error, "problem_mark", None)
            at = f"line {mark.line + 1}: " if mark is not None else ""
            problem = getattr(yaml_error, "problem", None) or str(yaml_error).splitlines()[0]
            raise PolicyError(
                f"policy {_shown(path)} is neither TOML ({toml_error}) nor YAML ({at}{problem})",
                hint="a policy is .ociinspect.toml ([check] table), pyproject.toml or dive's .dive-ci (YAML)",
            ) from None
        return read_dive(path, text)
    return read_toml(path, text, pyproject=path.name == PYPROJECT)


def load_policy(path: Path | None, *, search_from: Path) -> Policy:
    """Read the policy at ``path``, or the one :func:`discover` finds from ``search_from``; an empty policy
    (no rules) when there is none.  Raises :class:`PolicyError` (exit 2) naming the key and line."""
    if path is None:
        found = discover(search_from)
        if found is None:
            return Policy()
        path = found
    if not path.exists():
        raise PolicyError(f"policy {_shown(path)} does not exist", hint="check the path given to --policy")
    if path.is_dir():
        raise PolicyError(
            f"policy {_shown(path)} is a directory", hint="name the file: --policy DIR/.ociinspect.toml"
        )
    text = _read_text(path)
    name = path.name.lower()
    if name.endswith(".toml"):
        return read_toml(path, text, pyproject=name == PYPROJECT)
    if name.endswith((".yaml", ".yml")) or name.startswith(".dive"):
        return read_dive(path, text)
    return _sniff(path, text)


# ============================================================================ command-line flags


def with_flags(
    policy: Policy,
    flags: Mapping[str, object],
    *,
    disabled: Sequence[str] = (),
    severities: Sequence[tuple[str, str]] = (),
    baseline: str | None = None,
    growth_basis: str | None = None,
) -> Policy:
    """``policy`` with the command line applied: a rule flag replaces the rule's threshold (its severity is
    kept), ``--disable`` turns rules off, ``--severity RULE=LEVEL`` changes a severity.  Raises
    :class:`PolicyError` for a bad value, and when no rule at all is left to check."""
    overrides = []
    for rule, raw in flags.items():
        flag = LIST_FLAGS[rule][0] if rule in LIST_FLAGS else f"--{rule}"
        try:
            value = parse_value(rule, raw)
        except ValueError as exc:
            raise PolicyError(f"{flag}: {exc}", hint=f"see ociinspect check --help ({flag})") from None
        current = policy.rules.get(rule)
        severity: Severity = current.severity if current is not None else "error"
        overrides.append(
            RuleConfig(rule, value, severity, Origin(flag), raw if isinstance(raw, str) else None)
        )
    for rule in disabled:
        current = policy.rules.get(rule)
        severity = current.severity if current is not None else "error"
        overrides.append(RuleConfig(rule, None, severity, Origin(f"--disable {rule}")))
    if growth_basis not in (None, "compressed", "uncompressed"):
        raise PolicyError(f"--growth-basis {growth_basis}: must be compressed or uncompressed")
    result = policy.merged(
        overrides,
        baseline=baseline or policy.baseline,
        growth_basis=growth_basis or policy.growth_basis,
        format=policy.format if policy.source else "flags",
    )
    for rule, level in severities:
        if rule not in result.rules:
            raise PolicyError(
                f"--severity {rule}={level}: {rule} is not configured",
                hint=f"set it in the policy or with its flag, e.g. --{rule} …",
            )
        result = result.with_severity(rule, "warning" if level == "warning" else "error")
    if not result.rules:
        raise PolicyError(
            "no rules to check: no policy file was found and no rule flag was given",
            hint="create .ociinspect.toml with a [check] table (docs/policy.md), keep dive's .dive-ci here, "
            "or pass rules as flags, e.g. --max-compressed-size 200MB",
        )
    return result
