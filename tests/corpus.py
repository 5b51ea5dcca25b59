"""Where the real-world corpus lives: ``tests/data/corpus`` in this repository (see its SOURCES.md).

``OCIINSPECT_CORPUS`` points the tests at another copy. A missing corpus file is a test failure, never a skip: a
user's clone holds the whole corpus.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CORPUS = Path(os.environ.get("OCIINSPECT_CORPUS", Path(__file__).resolve().parent / "data" / "corpus"))


def corpus_path(*parts: str) -> Path:
    """A path inside the corpus (a stat call, no read); fails the test, naming the path, when it is absent."""
    path = CORPUS.joinpath(*parts)
    if not path.exists():
        pytest.fail(
            f"corpus file missing: {path} (the corpus is tests/data/corpus; OCIINSPECT_CORPUS overrides it)"
        )
    return path
