"""Which policy a ``check`` run reads: discovery from the working directory upwards, and the reader by format.

Discovery (no ``--policy``): from the working directory upwards, the first ``.ociinspect.toml``, or
``pyproject.toml`` that has a ``[tool.ociinspect]`` table; in the working directory itself a ``.dive-ci`` comes
after those two (dive only looks there).  The formats: :mod:`ociinspect.policy.tomlfile` (ours, strict) and
:mod:`ociinspect.policy.dive` (dive's, read unchanged); ``docs/policy.md``.

Costs: a few file stats per directory up to the root and one small file parse.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from ociinspect.errors import PolicyError
from ociinspect.policy.dive import DIVE_FILE, compose, read_dive, yaml_module, yaml_problem
from ociinspect.policy.rules import Policy
from ociinspect.policy.tomlfile import POLICY_FILE, PYPROJECT, read_text, read_toml, shown
from ociinspect.policy.values import parse_value  # re-exported: tests/unit/test_textsafe.py imports it here

__all__ = ["discover", "load_policy", "parse_value"]


def _has_tool_table(path: Path) -> bool:
    text = read_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(
            f"{shown(path)} is not valid TOML: {exc}", hint="fix it, or pass --policy FILE"
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
        module = yaml_module()
        try:
            compose(text)
        except module.YAMLError as yaml_error:
            line, problem = yaml_problem(yaml_error)
            at = f"line {line}: " if line is not None else ""
            raise PolicyError(
                f"policy {shown(path)} is neither TOML ({toml_error}) nor YAML ({at}{problem})",
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
        raise PolicyError(f"policy {shown(path)} does not exist", hint="check the path given to --policy")
    if path.is_dir():
        raise PolicyError(
            f"policy {shown(path)} is a directory", hint="name the file: --policy DIR/.ociinspect.toml"
        )
    text = read_text(path)
    name = path.name.lower()
    if name.endswith(".toml"):
        return read_toml(path, text, pyproject=name == PYPROJECT)
    if name.endswith((".yaml", ".yml")) or name.startswith(".dive"):
        return read_dive(path, text)
    return _sniff(path, text)
