"""One output dispatch for every command: ``render(view, fmt, documents)``.

``view`` names what is shown (``"inspect"``, ``"compare"``, ``"vm"`` …), ``fmt`` the format (``table``,
``json``, ``markdown``, ``html``).  Documents are the JSON-ready dicts of :mod:`ociinspect.reports.data`; the
JSON form is exactly those documents (one object, or a list when several inputs were given), and every other
format is rendered from them, so formats cannot disagree.
"""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

from ociinspect.model.textsafe import escape_controls

__all__ = ["FORMATS", "VIEWS", "formats_for", "register", "render", "safe_text"]

FORMATS = ("table", "json", "markdown")

Renderer = Callable[[dict[str, Any]], str]

#: The one view table: view → format → ``"module:function"`` (a module of this package), or
#: ``"module:function:markdown"`` for a renderer called with ``markdown=True``.  A module is imported the first
#: time one of its views is rendered; nothing registers itself on import.  JSON is never listed: it is the
#: documents themselves (see :func:`render`).
VIEWS: dict[str, dict[str, str]] = {
    "inspect": {"table": "text:inspect_text", "markdown": "text:inspect_text:markdown"},
    "compare": {
        "table": "text:compare_text",
        "markdown": "text:compare_text:markdown",
        "html": "html:compare_html",
    },
    "vm": {"table": "text:vm_text", "markdown": "text:vm_text:markdown", "html": "html:vm_html"},
    "waste": {"table": "waste:waste_text", "markdown": "waste:waste_text:markdown"},
    "files": {"table": "waste:files_text", "markdown": "waste:files_text:markdown"},
    "diff": {"table": "diff:diff_text", "markdown": "diff:diff_text:markdown", "html": "diff:diff_html"},
    "check": {
        "text": "ci:check_text",
        "table": "ci:check_text",
        "markdown": "ci:check_markdown",
        "junit": "ci:check_junit",
        "sarif": "ci:check_sarif",
        "github": "ci:check_github",
        "gitlab": "ci:check_gitlab",
    },
    "audit": {
        "table": "audit:audit_text",
        "markdown": "audit:audit_text:markdown",
        "csv": "audit:audit_csv",
        "html": "audit:audit_html",
    },
    "audit-runs": {"table": "audit:runs_text", "markdown": "audit:runs_text:markdown"},
    "audit-diff": {"table": "audit:diff_text", "markdown": "audit:diff_text:markdown"},
}

_extra: dict[str, dict[str, Renderer]] = {}  # renderers added with register() (callers outside this package)
_loaded: dict[tuple[str, str], Renderer] = {}
_lock = threading.Lock()


def _renderer(view: str, fmt: str) -> Renderer:
    """The renderer of ``view`` in ``fmt``, importing its module on first use.  Cost: one import the first time
    a module's view is rendered, then a dict lookup.  Raises ``KeyError`` for a view or format not in the table
    (the CLI only offers :func:`formats_for`)."""
    added = _extra.get(view, {}).get(fmt)
    if added is not None:
        return added
    with _lock:
        found = _loaded.get((view, fmt))
        if found is None:
            module_name, _, rest = VIEWS[view][fmt].partition(":")
            function_name, _, flag = rest.partition(":")
            function = getattr(importlib.import_module(f"{__name__}.{module_name}"), function_name)
            found = _markdown(function) if flag == "markdown" else function
            _loaded[(view, fmt)] = found
        return found


def _markdown(function: Callable[..., str]) -> Renderer:
    def render_markdown(document: dict[str, Any]) -> str:
        return function(document, markdown=True)

    return render_markdown


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
    """Add a renderer from outside this package (a plug-in or a test); the package's own views are in
    :data:`VIEWS`, so nothing here needs calling for them."""
    _extra.setdefault(view, {})[fmt] = renderer


def formats_for(view: str) -> tuple[str, ...]:
    """The formats ``view`` can be rendered in (``json`` always first after ``table``).  Cost: no import."""
    known = [*VIEWS.get(view, {}), *_extra.get(view, {})]
    return ("table", "json", *dict.fromkeys(f for f in known if f not in ("table", "json")))


def render(view: str, fmt: str, documents: Sequence[dict[str, Any]], *, as_list: bool = False) -> str:
    """Render ``documents`` of ``view`` in ``fmt``; JSON gives a list when ``as_list`` or several documents."""
    if fmt == "json":
        payload: Any = list(documents) if as_list or len(documents) != 1 else documents[0]
        return json.dumps(payload, indent=2, sort_keys=False)
    renderer = _renderer(view, fmt)
    if fmt not in _SELF_ESCAPING:  # text for terminals and CI logs: no control character from the data
        documents = [_neutralised(d) for d in documents]
    sep = "\n\n" if fmt in ("markdown", "html") else "\n\n" + "─" * 80 + "\n\n"
    return sep.join(renderer(d) for d in documents)
