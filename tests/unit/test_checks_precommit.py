"""The pre-commit hook this repository ships (``.pre-commit-hooks.yaml``) runs ``ociinspect check`` on push."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

MANIFEST = Path(__file__).resolve().parents[2] / ".pre-commit-hooks.yaml"


def test_hook_manifest() -> None:
    hooks = yaml.safe_load(MANIFEST.read_text())
    assert [h["id"] for h in hooks] == ["ociinspect-check"]
    hook = hooks[0]
    assert hook["entry"] == "ociinspect check" and hook["language"] == "python"
    assert hook["pass_filenames"] is False and hook["always_run"] is True  # the image is not a staged file
    assert "pre-push" in hook["stages"]


def test_hook_manifest_is_valid_for_pre_commit() -> None:
    clientlib = pytest.importorskip(
        "pre_commit.clientlib", reason="pre-commit is not installed (pip install pre-commit)"
    )
    hooks = clientlib.load_manifest(str(MANIFEST))
    assert hooks[0]["id"] == "ociinspect-check"


def test_entry_point_exists() -> None:
    from importlib.metadata import entry_points

    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("ociinspect") == "ociinspect.cli:run"
