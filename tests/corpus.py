"""Where the shared real-world corpus lives (read in place, never copied into the repository)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CORPUS = Path(os.environ.get("OCIINSPECT_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus"))


def corpus_path(*parts: str) -> Path:
    """A path inside the corpus; skips the test (with the reason) when the corpus is not beside the checkout."""
    path = CORPUS.joinpath(*parts)
    if not CORPUS.is_dir():
        pytest.skip(f"the shared corpus is not at {CORPUS} (set OCIINSPECT_CORPUS to its location)")
    if not path.exists():
        pytest.fail(f"corpus file missing: {path}")
    return path
