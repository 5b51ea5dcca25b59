"""Renderers of ``ociinspect diff``: table, Markdown (for a pull-request comment) and one self-contained HTML page.

Every renderer reads the JSON document of :meth:`ociinspect.analyzers.diff.ImageDiff.to_json` (plus the command's
``read`` and ``options`` keys), so the formats cannot disagree.  The renderers are listed in
:data:`ociinspect.reports.VIEWS`.  Sizes are int bytes in the document and IEC units (KiB, MiB) here;
an unknown figure is shown as ``?`` with its reason.  No I/O.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ociinspect.reports.html import esc, html_table, legend, page, stacked_bars
from ociinspect.reports.text import human_size, join_lines, text_table

__all__ = ["diff_html", "diff_text", "signed_size"]

#: rows per file list in the table and Markdown views when the command gives no ``--top``
DEFAULT_TOP = 30


def signed_size(n: int | None) -> str:
    """``+1.5 KiB`` / ``-20 B`` / ``0 B``; ``None`` → ``?``."""
    if n is None:
        return "?"
    if n == 0:
        return "0 B"
    return ("+" if n > 0 else "-") + human_size(abs(n))


def _short(digest: str | None) -> str:
    return digest.split(":", 1)[-1][:12] if digest else "-"


def _verdict(doc: dict[str, Any]) -> str:
    identical = doc.get("identical")
    if identical is True:
        return "identical: same files and config (layer digests may differ, listed above)"
    if identical is False:
        return "the images differ"
    return (
        "not known to differ, but some file contents were not compared (same size, mode and owner, no hashes): "
        "rerun with --hash"
    )


def _change_rows(doc: dict[str, Any], top: int) -> tuple[list[list[Any]], int]:
    files = doc["files"]
    rows: list[tuple[int, list[Any]]] = []
    for c in files["added"]:
        rows.append(
            (c["size"], ["added", c["path"], "-", human_size(c["size"]), signed_size(c["size"]), c["type"]])
        )
    for c in files["removed"]:
        rows.append(
            (
                -c["size"],
                ["removed", c["path"], human_size(c["size"]), "-", signed_size(-c["size"]), c["type"]],
            )
        )
    for c in files["modified"]:
        what = ", ".join(c["changes"])
        a, b = c.get("a") or {}, c.get("b") or {}
        if "type" in c["changes"]:
            what = f"type {a.get('type')} → {b.get('type')}" + (
                ", " + ", ".join(x for x in c["changes"] if x != "type") if len(c["changes"]) > 1 else ""
            )
        elif "mode" in c["changes"]:
            what += f" ({a.get('mode')} → {b.get('mode')})"
        elif "link" in c["changes"]:
            what += f" ({a.get('link')} → {b.get('link')})"
        rows.append(
            (
                c["delta"],
                [
                    "modified",
                    c["path"],
                    human_size(c["size_a"]),
                    human_size(c["size_b"]),
                    signed_size(c["delta"]),
                    what,
                ],
            )
        )
    rows.sort(key=lambda r: (-abs(r[0]), r[1][1]))
    total = len(rows)
    shown = rows if top == 0 else rows[:top]
    return [r for _, r in shown], total


def _growth_lines(node: dict[str, Any], indent: int = 0) -> list[str]:
    line = f"{signed_size(node['delta']):>11}  {'  ' * indent}{node['path']}  ({node['changed']} changed)"
    out = [line]
    for child in node["children"]:
        out.extend(_growth_lines(child, indent + 1))
    return out


def _layer_rows(doc: dict[str, Any]) -> list[list[Any]]:
    layers = doc["layers"]
    rows: list[list[Any]] = []
    for side, key in (("shared", "shared"), ("only A", "only_a"), ("only B", "only_b")):
        for x in layers[key]:
            rows.append(
                [
                    side,
                    x["index"],
                    _short(x["digest"]),
                    human_size(x["size"]),
                    human_size(x["uncompressed"]),
                    _one_line(x.get("created_by") or ""),
                ]
            )
    return rows


def _one_line(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _value(value: Any) -> str:
    """A config value as text: JSON for lists and absent values (``null``), the string itself otherwise."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _config_lines(config: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for name, value in config.items():
        if name in ("env", "labels", "annotations"):
            for k, v in value["added"].items():
                out.append(f"{name} + {k}={v}")
            for k, v in value["removed"].items():
                out.append(f"{name} - {k}={v}")
            for k, v in value["changed"].items():
                out.append(f"{name} ~ {k}: {v['a']} → {v['b']}")
        elif name == "exposed_ports":
            out.extend(f"exposed port + {p}" for p in value["added"])
            out.extend(f"exposed port - {p}" for p in value["removed"])
        elif name == "history":
            out.extend(f"history - {_one_line(h, 100)}" for h in value["removed"])
            out.extend(f"history + {_one_line(h, 100)}" for h in value["added"])
        elif value is not None:
            out.append(f"{name}: {_value(value['a'])} → {_value(value['b'])}")
    return out


def diff_text(doc: dict[str, Any], *, markdown: bool = False) -> str:
    """The table view (``markdown``: GitHub Markdown for a PR comment, every cell escaped).  Cost: O(changes)."""
    top = int(doc.get("options", {}).get("top", DEFAULT_TOP))
    a, b, sd = doc["a"], doc["b"], doc["size_delta"]
    h = "## " if markdown else ""
    h3 = "### " if markdown else ""
    lines = [
        f"{h}Diff: {a['reference']} → {b['reference']}",
        "",
        text_table(
            [
                ["A", a["reference"], a["digest"], a.get("platform") or "-", a["layers"]],
                ["B", b["reference"], b["digest"], b.get("platform") or "-", b["layers"]],
            ],
            ["", "reference", "digest", "platform", "layers"],
            markdown,
        ),
        "",
    ]
    unc = signed_size(sd["uncompressed"])
    if sd["uncompressed"] is None:
        unc += f" (not known: {sd.get('uncompressed_note')})"
    layers = doc["layers"]
    lines += [
        f"{h3}Size",
        "",
        text_table(
            [
                ["compressed (blobs)", signed_size(sd["compressed"])],
                ["uncompressed (layers)", unc],
                ["files (changed paths)", signed_size(sd["files"])],
            ],
            ["B − A", "delta"],
            markdown,
        ),
        "",
        f"{h3}Layers: {len(layers['shared'])} shared, {len(layers['only_a'])} only in A, "
        f"{len(layers['only_b'])} only in B, {len(layers['recompressed'])} recompressed",
        "",
    ]
    rows = _layer_rows(doc)
    if rows:
        lines += [text_table(rows, ["", "#", "digest", "size", "unpacked", "created by"], markdown), ""]
    for r in layers["recompressed"]:
        lines.append(
            f"- layer {r['index']} recompressed: same diff_id {_short(r['diff_id'])}, blob "
            f"{_short(r['digest_a'])} ({human_size(r['size_a'])}) → {_short(r['digest_b'])} ({human_size(r['size_b'])})"
        )
    files = doc["files"]
    lines += [
        "",
        f"{h3}Files: {len(files['added'])} added, {len(files['removed'])} removed, {len(files['modified'])} "
        f"modified" + (f", {len(files['unknown'])} content not compared" if files["unknown"] else ""),
        "",
    ]
    change_rows, total = _change_rows(doc, top)
    if change_rows:
        lines.append(text_table(change_rows, ["change", "path", "A", "B", "delta", "what"], markdown))
        if total > len(change_rows):
            lines.append(
                f"… {total - len(change_rows)} more (largest first; --top 0 or --format json for all)"
            )
        lines.append("")
    if files["unknown"]:
        shown = files["unknown"][: top or None]
        lines.append(
            "Content not compared (rerun with --hash): "
            + ", ".join(c["path"] for c in shown)
            + (" …" if len(shown) < len(files["unknown"]) else "")
        )
        lines.append("")
    growth = doc["growth"]
    lines.append(f"{h3}Where it grew (depth {growth['depth']})")
    lines.append("")
    tree = _growth_lines(growth["tree"])
    lines += [*(["```"] if markdown else []), *tree, *(["```"] if markdown else [])]
    lines.append("")
    config = _config_lines(doc["config"])
    lines.append(f"{h3}Config: " + ("no change" if not config else f"{len(config)} change(s)"))
    if config:
        lines.append("")
        lines += [f"- {c}" if markdown else f"  {c}" for c in config]
    lines.append("")
    for note in doc.get("notes", []):
        lines.append(f"note: {note}")
    read = doc.get("read")
    if read:
        lines.append(
            f"read: {read['layers_streamed']} layer(s) streamed ({human_size(read['bytes_streamed'])} compressed), "
            f"{read['layers_cached']} from the cache, {read['layers_skipped']} shared layer(s) not read"
        )
    lines.append(f"verdict: {_verdict(doc)}")
    return join_lines(lines, markdown)


def _growth_html(node: dict[str, Any], scale: int) -> str:
    width = 0 if not scale else round(200 * abs(node["delta"]) / scale)
    colour = "#c4473b" if node["delta"] > 0 else "#3b9c5a"
    bar = f'<span class="sw" style="width:{max(width, 1)}px;background:{colour}"></span>'
    kids = "".join(_growth_html(c, scale) for c in node["children"])
    body = (
        f"<li>{bar}<b>{esc(signed_size(node['delta']))}</b> {esc(node['path'])} "
        f'<span class="muted">({esc(node["changed"])} changed; A {esc(human_size(node["bytes_a"]))}, '
        f"B {esc(human_size(node['bytes_b']))})</span>"
    )
    return body + (f"<ul>{kids}</ul>" if kids else "") + "</li>"


def diff_html(doc: dict[str, Any]) -> str:
    """One self-contained HTML page: summary, layer bars (shared / only A / only B), growth tree, file changes,
    config changes.  Every value goes through :func:`ociinspect.reports.html.esc`.  Cost: O(changes)."""
    a, b, sd, layers = doc["a"], doc["b"], doc["size_delta"], doc["layers"]
    shared = sum(x["size"] for x in layers["shared"])
    shared_b = shared + sum(r["size_b"] - r["size_a"] for r in layers["recompressed"])
    bars = stacked_bars(
        [
            (
                f"A {a['reference']}",
                [
                    (shared, "#3b82c4", "shared layers"),
                    (sum(x["size"] for x in layers["only_a"]), "#f2a541", "only in A"),
                ],
            ),
            (
                f"B {b['reference']}",
                [
                    (shared_b, "#3b82c4", "shared layers"),
                    (sum(x["size"] for x in layers["only_b"]), "#c4473b", "only in B"),
                ],
            ),
        ],
        title="compressed layer bytes",
    )
    unc = signed_size(sd["uncompressed"])
    if sd["uncompressed"] is None:
        unc += f" (not known: {sd.get('uncompressed_note')})"
    top = int(doc.get("options", {}).get("top", DEFAULT_TOP))
    change_rows, total = _change_rows(doc, top)
    config = _config_lines(doc["config"])
    tree = doc["growth"]["tree"]
    scale = max([abs(tree["delta"]), *(abs(c["delta"]) for c in tree["children"])])
    body = [
        html_table(
            ["", "reference", "digest", "platform", "layers"],
            [
                ["A", a["reference"], a["digest"], a.get("platform") or "-", a["layers"]],
                ["B", b["reference"], b["digest"], b.get("platform") or "-", b["layers"]],
            ],
        ),
        f'<p class="big">{esc(_verdict(doc))}</p>',
        html_table(
            ["B − A", "delta"],
            [
                ["compressed (blobs)", signed_size(sd["compressed"])],
                ["uncompressed (layers)", unc],
                ["files (changed paths)", signed_size(sd["files"])],
            ],
        ),
        "<h2>Layers</h2>",
        legend(("#3b82c4", "shared"), ("#f2a541", "only in A"), ("#c4473b", "only in B")),
        bars,
        html_table(["", "#", "digest", "size", "unpacked", "created by"], _layer_rows(doc)),
        f"<h2>Where it grew (depth {esc(doc['growth']['depth'])})</h2>",
        f'<ul class="growth">{_growth_html(tree, scale)}</ul>',
        f"<h2>Files ({esc(total)} changed)</h2>",
        html_table(["change", "path", "A", "B", "delta", "what"], change_rows),
    ]
    if total > len(change_rows):
        body.append(f'<p class="muted">… {esc(total - len(change_rows))} more (--top 0 or JSON for all)</p>')
    if doc["files"]["unknown"]:
        body.append(
            "<p>Content not compared (rerun with --hash): "
            + esc(", ".join(c["path"] for c in doc["files"]["unknown"]))
            + "</p>"
        )
    body.append("<h2>Config</h2>")
    body.append(_list(config) if config else "<p>no change</p>")
    if doc.get("notes"):
        body.append(_list(doc["notes"]))
    return page(f"ociinspect diff: {a['reference']} → {b['reference']}", "\n".join(body))


def _list(items: Sequence[str]) -> str:
    return "<ul>" + "".join(f"<li>{esc(x)}</li>" for x in items) + "</ul>"
