"""dive's CI file (``.dive-ci``, YAML), read unchanged.

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

Cost: one small file parse.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ociinspect.errors import PolicyError
from ociinspect.policy.grammar import go_format_float, go_parse_float, go_parse_int, parse_bytes
from ociinspect.policy.rules import RULES, Origin, Policy, RuleConfig, Value
from ociinspect.policy.tomlfile import read_text
from ociinspect.policy.tomlfile import shown as shown_path

if TYPE_CHECKING:
    import yaml

__all__ = ["DIVE_DISABLED_MAIN", "DIVE_FILE", "compose", "read_dive", "yaml_module", "yaml_problem"]

DIVE_FILE = ".dive-ci"

#: dive's main branch ``isRuleDisabled``: these (trimmed, any case) disable a rule; dive 0.13.1 only ``disabled``.
DIVE_DISABLED_MAIN = frozenset({"", "disabled", "off", "false"})


def yaml_module() -> Any:
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
            number = go_parse_int(plain, unsigned=unsigned)
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


def yaml_problem(exc: BaseException) -> tuple[int | None, str]:
    """``(1-based line or None, what is wrong)`` of a PyYAML error, for one-line messages.  Cost: none."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    return (mark.line + 1 if mark is not None else None), problem


def compose(text: str) -> yaml.Node | None:
    """The first YAML document's node tree (PyYAML composer, with explicit scalar tags kept)."""
    module = yaml_module()

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
    module = yaml_module()
    seen: dict[str, int] = {}
    for key, _ in node.value:
        if key.tag == "tag:yaml.org,2002:merge":
            continue
        name = str(key.value)
        line = key.start_mark.line + 1
        if name in seen:
            raise PolicyError(
                f"policy {shown_path(path)} line {line}: {where}{name}: mapping key already defined at line {seen[name]}",
                hint="dive refuses a file with a repeated key; keep one",
            )
        seen[name] = line
    module.SafeLoader("").flatten_mapping(node)  # apply merge keys (<<: *anchor); later keys win
    last = {str(k.value): (k, v) for k, v in node.value}
    return list(last.values())


def read_dive(path: Path, text: str | None = None) -> Policy:
    """Read a dive CI file (``.dive-ci``) with dive's semantics (see the module docstring)."""
    module = yaml_module()
    text = read_text(path) if text is None else text
    try:
        root = compose(text)
    except module.YAMLError as exc:
        line, problem = yaml_problem(exc)
        at = f" line {line}" if line is not None else ""
        raise PolicyError(
            f"policy {shown_path(path)}{at} is not valid YAML: {problem}",
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
                f"policy {shown_path(path)} line {root.start_mark.line + 1}: the file is {what}, not a mapping of settings",
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
    module = yaml_module()
    if isinstance(value, module.ScalarNode) and value.value in _YAML_NULL and value.style is None:
        return
    if not isinstance(value, module.MappingNode):
        raise PolicyError(
            f"policy {shown_path(path)} line {key.start_mark.line + 1}: rules: must be a mapping of rule: value",
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
            f"policy {shown_path(path)} line {line}: {shown} {exc}",
            hint="write a single value, e.g. 0.9 or 20MB",
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
            f"policy {shown_path(path)} line {b.line}: rules.{b.key}: also given at line {a.line} "
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
            f"policy {shown_path(path)} line {chosen.line}: rules.{chosen.key}: invalid value {chosen.text!r}: {exc}",
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
