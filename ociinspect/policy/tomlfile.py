"""Our strict TOML policy files: ``.ociinspect.toml`` (``[check]``) and ``pyproject.toml``
(``[tool.ociinspect.check]``).  An unknown key, a wrong unit, a negative threshold is a
:class:`~ociinspect.errors.PolicyError` (exit 2) naming the key and its line.  Cost: one small file parse.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ociinspect.errors import PolicyError
from ociinspect.model.tomltext import did_you_mean, locate_toml
from ociinspect.policy.rules import RULES, Origin, Policy, RuleConfig, Severity
from ociinspect.policy.values import parse_value

__all__ = ["POLICY_FILE", "PYPROJECT", "read_text", "read_toml", "shown"]

POLICY_FILE = ".ociinspect.toml"
PYPROJECT = "pyproject.toml"

_TABLE_KEYS = ("value", "threshold", "severity", "enabled")
_SETTINGS = ("baseline", "growth-basis")


def _suggest(key: str, choices: Sequence[str]) -> str:
    camel = {spec.dive_key: spec.id for spec in RULES.values() if spec.dive_key}
    if key in camel:
        return f"dive's {key} is {camel[key]} here"
    close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
    return did_you_mean(key, choices) if close else "known rules: " + ", ".join(RULES)


def shown(path: Path) -> str:
    """A policy path for messages: relative to the working directory when below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PolicyError(
            f"reading policy {shown(path)}: {exc.strerror or exc}", hint="check the path given to --policy"
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(
            f"policy {shown(path)} is not a TOML or YAML text file (byte {exc.start} is not UTF-8)",
            hint="a policy is .ociinspect.toml, pyproject.toml or dive's .dive-ci (YAML)",
        ) from None


def read_toml(path: Path, text: str | None = None, *, pyproject: bool | None = None) -> Policy:
    """Read ``.ociinspect.toml`` (``[check]``) or ``pyproject.toml`` (``[tool.ociinspect.check]``) strictly."""
    text = read_text(path) if text is None else text
    is_pyproject = path.name == PYPROJECT if pyproject is None else pyproject
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(
            f"policy {shown(path)} is not valid TOML: {exc}", hint="see docs/policy.md for the format"
        ) from None
    table: list[str] = ["tool", "ociinspect", "check"] if is_pyproject else ["check"]

    def fail(key: str, why: str, hint: str | None = None, where: Sequence[str] = table) -> PolicyError:
        line = locate_toml(text, where, key)
        at = f" line {line}" if line else ""
        return PolicyError(f"policy {shown(path)}{at}: [{'.'.join(where)}] {key}: {why}", hint=hint)

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
