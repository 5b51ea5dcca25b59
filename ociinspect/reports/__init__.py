"""One output dispatch for every command: ``render(view, fmt, documents)``.

``view`` names what is shown (``"inspect"``, ``"compare"``, ``"vm"`` …), ``fmt`` the format (``table``,
``json``, ``markdown``, ``html``).  Documents are the JSON-ready dicts of :mod:`ociinspect.reports.data`; the
JSON form is exactly those documents (one object, or a list when several inputs were given), and every other
format is rendered from them, so formats cannot disagree.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from ociinspect.model.textsafe import escape_controls
from ociinspect.reports import html, text

__all__ = ["FORMATS", "formats_for", "register", "render", "safe_text"]

FORMATS = ("table", "json", "markdown")

Renderer = Callable[[dict[str, Any]], str]

# view -> format -> renderer of one document
_VIEWS: dict[str, dict[str, Renderer]] = {
    "inspect": {
        "table": text.inspect_text,
        "markdown": lambda d: text.inspect_text(d, markdown=True),
    },
    "compare": {
        "table": text.compare_text,
        "markdown": lambda d: text.compare_text(d, markdown=True),
        "html": html.compare_html,
    },
    "vm": {
        "table": text.vm_text,
        "markdown": lambda d: text.vm_text(d, markdown=True),
        "html": html.vm_html,
    },
}


#: formats that escape control characters themselves (JSON strings, HTML text is inert)
_SELF_ESCAPING = frozenset({"json", "sarif", "html"})


def safe_text(text: str) -> str:
    """``text`` with control characters written as ``\\xNN`` / ``\\uNNNN``.

    Strings in images (labels, history, tags, file names, error messages quoting them) come from strangers: an
    ESC sequence must not drive the user's terminal (title, clipboard, hidden text) and a newline must not forge
    an output line.  The one implementation is :func:`ociinspect.model.textsafe.escape_controls` (C0/C1 controls and
    invisible Unicode format characters).  Cost: one regex pass.
    """
    return escape_controls(text)


def _neutralised(value: Any) -> Any:
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return {_neutralised(k): _neutralised(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_neutralised(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_neutralised(v) for v in value)
    return value


def register(view: str, fmt: str, renderer: Renderer) -> None:
    """Add a renderer (used by command modules that bring their own views)."""
    _VIEWS.setdefault(view, {})[fmt] = renderer


def formats_for(view: str) -> tuple[str, ...]:
    """The formats ``view`` can be rendered in (``json`` always first after ``table``)."""
    return ("table", "json", *[f for f in _VIEWS.get(view, {}) if f not in ("table", "json")])


def render(view: str, fmt: str, documents: Sequence[dict[str, Any]], *, as_list: bool = False) -> str:
    """Render ``documents`` of ``view`` in ``fmt``; JSON gives a list when ``as_list`` or several documents."""
    if fmt == "json":
        payload: Any = list(documents) if as_list or len(documents) != 1 else documents[0]
        return json.dumps(payload, indent=2, sort_keys=False)
    renderer = _VIEWS[view][fmt]
    if fmt not in _SELF_ESCAPING:  # text for terminals and CI logs: no control character from the data
        documents = [_neutralised(d) for d in documents]
    sep = "\n\n" if fmt in ("markdown", "html") else "\n\n" + "─" * 80 + "\n\n"
    return sep.join(renderer(d) for d in documents)
