"""Fixtures for the reliability tests.

Every test here runs with ``HOME``, ``XDG_CACHE_HOME`` and ``XDG_DATA_HOME`` in its own tmp directory and without
docker/podman credential files, so nothing leaks in from the machine and what ociinspect writes can be searched.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reliability.helpers import CREDENTIAL_VARS, Isolated


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Isolated:
    home, cache, data = tmp_path / "home", tmp_path / "cache", tmp_path / "data"
    for directory in (home, cache, data):
        directory.mkdir()
    for key in CREDENTIAL_VARS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARS}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(cache), XDG_DATA_HOME=str(data))
    return Isolated(home, cache, data, env)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` here are opt-in: skipped (with that reason) unless ``-m`` selects ``slow``."""
    markexpr = config.getoption("markexpr") or ""
    if "slow" in markexpr and "not slow" not in markexpr:
        return
    skip = pytest.mark.skip(reason="opt-in load test: run it with `pytest -m slow tests/reliability`")
    here = Path(__file__).parent
    for item in items:
        if "slow" in item.keywords and here in Path(str(item.fspath)).parents:
            item.add_marker(skip)
