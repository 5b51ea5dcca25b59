"""Issue 11: one exit-code rule, one emit(), one format vocabulary, one size grammar, commands that read as a page."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import click
import pytest

from ociinspect.errors import ExitCode, InvalidImage, NotFound, UsageError
from ociinspect.session import exit_code

ROOT = Path(__file__).resolve().parents[2] / "ociinspect"
USAGE, UNREADABLE, PARTIAL = ExitCode.USAGE, ExitCode.UNREADABLE, ExitCode.PARTIAL


@pytest.mark.parametrize(
    ("errors", "read", "kw", "code"),
    [
        ([], 2, {}, ExitCode.OK),
        ([NotFound("x")], 1, {}, PARTIAL),  # some read, some not
        ([NotFound("x")], 0, {}, UNREADABLE),  # nothing read: the error's code
        ([NotFound("x"), ExitCode.PARTIAL], 0, {}, PARTIAL),  # the largest
        ([NotFound("x"), UsageError("u")], 0, {}, USAGE),  # bad usage first
        ([NotFound("x")], 1, {"gate": True}, UNREADABLE),  # a gate cannot pass what it did not read
        ([NotFound("x")], 1, {"gate": True, "failed": True}, ExitCode.CHECK_FAILED),  # never hidden
        ([InvalidImage("x")], 0, {"failed": True}, ExitCode.CHECK_FAILED),
        ([], 1, {"undecidable": True}, PARTIAL),
        ([], 1, {"undecidable": True, "failed": True}, ExitCode.CHECK_FAILED),
    ],
)
def test_one_exit_code_rule(errors: list[object], read: int, kw: dict[str, bool], code: ExitCode) -> None:
    assert exit_code(errors, read=read, **kw) == code  # type: ignore[arg-type]


def test_one_size_grammar_for_every_size_flag() -> None:
    """`--max-uncompressed 2G` is 2·10⁹ bytes as in policies and dive (it was 2 GiB); 2GiB is 2·2³⁰."""
    from ociinspect.cli.options import SIZE
    from ociinspect.policy.grammar import parse_size

    for text, value in [
        ("2G", 2 * 10**9),
        ("2GB", 2 * 10**9),
        ("2GiB", 2 << 30),
        ("2Gi", 2 << 30),
        ("1000", 1000),
    ]:
        assert SIZE.convert(text, None, None) == value == parse_size(text)
    with pytest.raises(click.BadParameter, match="unknown unit"):
        SIZE.convert("2 gigs", None, None)


def test_emit_prints_each_warning_once_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    from ociinspect.cli.options import emit

    docs: list[dict[str, Any]] = [
        {"error": {"type": "NotFound"}, "reference": "a"},
        {"reference": "b", "warnings": ["w", "w"]},
    ]
    with pytest.raises(SystemExit) as exit_info:
        emit("inspect", "json", docs, code=4, warnings=["b: w"])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 4 and '"NotFound"' in out
    assert err.splitlines() == ["ociinspect: warning: b: w"]


def _command_bodies() -> dict[str, int]:
    """Lines of each click command function of the commands issue 11 names, docstring excluded."""
    out: dict[str, int] = {}
    for name in ("inspect", "waste", "files", "compare", "vm", "check"):
        tree = ast.parse((ROOT / "cli" / f"{name}.py").read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == name:
                body = node.body[1:] if isinstance(node.body[0], ast.Expr) else node.body
                out[name] = (body[-1].end_lineno or 0) - body[0].lineno + 1
    return out


def test_commands_read_as_a_page() -> None:
    bodies = _command_bodies()
    assert set(bodies) == {"inspect", "waste", "files", "compare", "vm", "check"}
    assert {k: v for k, v in bodies.items() if v > 25} == {}
