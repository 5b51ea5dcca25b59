"""One output dispatch for every command: ``render(view, fmt, documents)``.

``view`` names what is shown (``"inspect"`` …), ``fmt`` the format (``table``, ``json``, ``markdown``).
Documents are the JSON-ready dicts of :mod:`ociinspect.reports.data`; the JSON form is exactly those
documents (one object, or a list when several inputs were given).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from ociinspect.reports import text

__all__ = ["FORMATS", "render"]

FORMATS = ("table", "json", "markdown")

_TEXT_VIEWS: dict[str, Callable[..., str]] = {"inspect": text.inspect_text}


def render(view: str, fmt: str, documents: Sequence[dict[str, Any]], *, as_list: bool = False) -> str:
    """Render ``documents`` of ``view`` in ``fmt``; JSON gives a list when ``as_list`` or several documents."""
    if fmt == "json":
        payload: Any = list(documents) if as_list or len(documents) != 1 else documents[0]
        return json.dumps(payload, indent=2, sort_keys=False)
    renderer = _TEXT_VIEWS[view]
    sep = "\n\n" if fmt == "markdown" else "\n\n" + "─" * 80 + "\n\n"
    return sep.join(renderer(d, markdown=fmt == "markdown") for d in documents)
