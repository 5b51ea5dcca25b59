"""Self-contained HTML reports: one file, inline CSS and SVG charts, no scripts, no network.

Rendered from the same JSON documents as every other format.  All text from images (references, labels) is
escaped; the only links are http(s) URLs that pass :func:`safe_url`.  Every page says when it was generated
(UTC, ISO 8601), by which ociinspect version, and which refs it covers (:func:`page`).

Layout rules (checked in headless Chromium at 1280 and 390 CSS px, ``tests/integration/test_html_pages.py``):
the page never scrolls sideways — text wraps anywhere, tables wrap their cells and sit in a wrapper that scrolls
only as the last resort, and charts are HTML grids of per-row SVG bars drawn in percent of their track.  A bar
is never drawn thinner than :data:`MIN_BAR_PCT` % of its track, and its exact figure is printed next to it, so
one dominating image (2 GB among 50 MB) leaves the others visible.
"""

from __future__ import annotations

import datetime
import html
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ociinspect._version import __version__
from ociinspect.model.textsafe import escape_controls
from ociinspect.reports.text import human_size

__all__ = [
    "MIN_BAR_PCT",
    "MIN_PART_PCT",
    "bar_chart",
    "compare_html",
    "esc",
    "generated_now",
    "html_table",
    "legend",
    "link",
    "linkify",
    "page",
    "safe_url",
    "scale_note",
    "stacked_bars",
    "vm_html",
]

_CSS = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2733;padding:0 1rem;overflow-wrap:anywhere}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d8dee6;padding-bottom:.2rem}
a{color:#1f5f99}
.tw{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{border-bottom:1px solid #e5e9ef;padding:.3rem .5rem;text-align:right;white-space:nowrap}
td{overflow-wrap:normal}th{background:#f4f6f9;white-space:normal;overflow-wrap:normal}
th:first-child,td:first-child{text-align:left;white-space:normal;overflow-wrap:anywhere;min-width:8rem}
td.w{white-space:normal;overflow-wrap:anywhere;text-align:left}
.muted{color:#5b6775;font-size:.9em}.legend span{display:inline-block;margin-right:1.2rem}
.sw{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:-.1em;border-radius:2px}
.big{font-size:1.3rem;font-weight:600}
.meta{color:#5b6775;font-size:.9em;margin-top:0}.refs{margin:.3rem 0 1rem;padding-left:2rem}.refs li{margin:.1rem 0}
.refs code,td code{font-size:.85em;color:#5b6775}
.chart{display:grid;grid-template-columns:minmax(6rem,17rem) minmax(0,1fr) max-content;gap:.15rem .6rem;align-items:center;margin:.6rem 0}
.chart .lbl{font-size:.9em}.chart .grp{grid-column:1/-1;font-weight:600;font-size:.9em;margin-top:.35rem}
.chart .val{font-size:.85em;white-space:nowrap;font-variant-numeric:tabular-nums}
.chart svg{display:block;width:100%;height:18px;overflow:visible}
@media (max-width:640px){
body{margin:1rem auto;padding:0 .6rem}
.tw table,.tw tbody,.tw tr{display:block;width:100%}.tw thead{display:none}
.tw tr{border:1px solid #e5e9ef;border-radius:4px;margin:.4rem 0;padding:.2rem .5rem}
.tw td{display:flex;justify-content:space-between;gap:.8rem;border:0;padding:.1rem 0;white-space:normal;text-align:right;overflow-wrap:anywhere}
.tw td::before{content:attr(data-h);color:#5b6775;text-align:left;flex:none;max-width:40%}
.tw td:first-child{display:block;font-weight:600;min-width:0;text-align:left}.tw td:first-child::before{content:none}
.chart{grid-template-columns:minmax(0,1fr) max-content}.chart .lbl{grid-column:1/-1;margin-top:.2rem}
.chart.g{grid-template-columns:minmax(3.5rem,max-content) minmax(0,1fr) max-content}.chart.g .lbl{grid-column:auto;margin-top:0}
}
"""
SHARED, UNIQUE, CONTAINER, VM, RANGE = "#3b82c4", "#f2a541", "#3b82c4", "#c4473b", "#7d2a22"

#: the narrowest a non-zero bar is drawn, in percent of its track (its exact figure is printed beside it)
MIN_BAR_PCT = 3.0
#: the narrowest a non-zero part of a stacked bar is drawn, in percent of its track
MIN_PART_PCT = 2.0

_URL_IN_TEXT = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
_URL_MAX = 2048


def esc(value: object) -> str:
    """``value`` as inert HTML text with control and invisible format characters (ESC, U+009B, U+202E …) shown
    as ``\\xNN``/``\\uNNNN`` (:func:`~ociinspect.model.textsafe.escape_controls`): a page saved and later ``cat``-ed,
    or a label that reorders text in the browser, shows what the value really holds.  Every value on every page
    goes through this one function."""
    return html.escape(escape_controls(str(value)), quote=True)


def safe_url(value: object) -> str | None:
    """``value`` if it is a URL a page may link to, else ``None``: a string of at most 2048 characters, scheme
    ``http`` or ``https`` (any other scheme — ``javascript:``, ``data:``, ``file:`` — is never a link), a host,
    and no whitespace, control or invisible format character.  Values come from images and are hostile; the
    result is still escaped by :func:`link`.  Cost: one parse."""
    if not isinstance(value, str) or not value or len(value) > _URL_MAX:
        return None
    if escape_controls(value) != value or any(c.isspace() for c in value) or "\\" in value:
        return None
    try:
        parts = urllib.parse.urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    return value


def link(url: object, text: object | None = None) -> str:
    """An ``<a>`` to ``url`` when :func:`safe_url` accepts it (``rel="noopener noreferrer nofollow"``), else
    ``text`` (or ``url``) as escaped plain text."""
    label = url if text is None else text
    ok = safe_url(url)
    if ok is None:
        return esc(label)
    return f'<a href="{esc(ok)}" rel="noopener noreferrer nofollow">{esc(label)}</a>'


def linkify(text: object) -> str:
    """``text`` escaped, with each http(s) URL inside it made a :func:`link` (trailing ``.,;:)`` left out of
    the URL).  Cost: one regex pass."""
    raw, out, pos = str(text), [], 0
    for m in _URL_IN_TEXT.finditer(raw):
        url = m.group(0).rstrip(".,;:)]")
        out.append(esc(raw[pos : m.start()]))
        out.append(link(url))
        pos = m.start() + len(url)
    out.append(esc(raw[pos:]))
    return "".join(out)


def generated_now() -> str:
    """The current UTC time as ISO 8601 to the second (``2026-11-28T10:15:00Z``): a page's generation time."""
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    return now.isoformat().replace("+00:00", "Z")


def _refs_block(refs: Sequence[str], sources: Mapping[str, object], notes: Mapping[str, str]) -> str:
    items = []
    for ref in refs:
        extra = ""
        if (src := sources.get(ref)) is not None and safe_url(src):
            extra += f" · source: {link(src)}"
        if ref in notes:
            extra += f' <span class="muted">({esc(notes[ref])})</span>'
        items.append(f"<li><span>{esc(ref)}</span>{extra}</li>")
    return f'<ol class="refs">{"".join(items)}</ol>' if items else ""


def page(
    title: str,
    body: str,
    *,
    refs: Sequence[str] = (),
    sources: Mapping[str, object] | None = None,
    notes: Mapping[str, str] | None = None,
    covers: str | None = None,
    generated_at: str | None = None,
) -> str:
    """A complete HTML document (UTF-8, no external resources, no script).

    Under the title: the generation time (``generated_at``, default :func:`generated_now`, UTC ISO 8601), the
    ociinspect version, and what the page covers — ``covers`` (a sentence) and/or ``refs``, listed numbered, each
    with its ``sources[ref]`` linked when that is an http(s) URL and ``notes[ref]`` (e.g. "failed") beside it.
    Cost: linear in the size of ``body``."""
    when = generated_at or generated_now()
    what = covers if covers is not None else f"{len(refs)} ref{'s' if len(refs) != 1 else ''}"
    meta = (
        f'<p class="meta">Generated <time datetime="{esc(when)}">{esc(when)}</time> (UTC) by ociinspect '
        f'<span class="version">{esc(__version__)}</span> · covers {esc(what)}</p>'
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{esc(title)}</title>'
        f"<style>{_CSS}</style></head><body>\n<h1>{esc(title)}</h1>\n{meta}\n"
        f"{_refs_block(refs, sources or {}, notes or {})}\n{body}\n"
        f'<p class="muted">Generated by ociinspect {esc(__version__)} at {esc(when)}. '
        "Sizes in IEC units (1 MiB = 1024² bytes).</p></body></html>\n"
    )


def _label(text: str, width: int = 64) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def _pct(value: int, top: int) -> float:
    """``value`` as percent of ``top``, never below :data:`MIN_BAR_PCT` unless it is 0."""
    if value <= 0:
        return 0.0
    return min(100.0, max(100.0 * value / top, MIN_BAR_PCT))


def _bar_svg(title: str, rects: Sequence[tuple[float, float, str, str]]) -> str:
    """One bar track: ``rects`` are ``(x %, width %, colour, tooltip)``."""
    body = "".join(
        f'<rect x="{x:.2f}%" y="2" width="{w:.2f}%" height="14" fill="{c}"><title>{esc(t)}</title></rect>'
        for x, w, c, t in rects
    )
    return f'<svg role="img" aria-label="{esc(title)}" xmlns="http://www.w3.org/2000/svg">{body}</svg>'


def stacked_bars(
    rows: Sequence[tuple[str, Sequence[tuple[int, str, str]]]], *, title: str, split: bool = False
) -> str:
    """Horizontal stacked bars: each row is ``(label, [(bytes, colour, part name), …])``, its total printed
    beside it.

    Linear (default): a row's length is its total against the largest total, never below :data:`MIN_BAR_PCT` %
    of the track.  ``split``: every row fills the track (its own 100 %), so one dominating row cannot squeeze the
    others.  Within a row the parts share its length in proportion, each non-zero part at least
    :data:`MIN_PART_PCT` % of the track.  Cost: linear in the parts."""
    top = max((sum(v for v, _, _ in parts) for _, parts in rows), default=0) or 1
    out = [f'<div class="chart" role="group" aria-label="{esc(title)}">']
    for label, parts in rows:
        total = sum(v for v, _, _ in parts if v > 0)
        length = (100.0 if total else 0.0) if split else _pct(total, top)
        shown = [(v, c, n) for v, c, n in parts if v > 0]
        widths = [max(length * v / total, MIN_PART_PCT) for v, _, _ in shown]
        if sum(widths) > 100.0:  # the minimum widths made the row too long: take it from the widest part
            widest = max(range(len(widths)), key=widths.__getitem__)
            widths[widest] -= sum(widths) - 100.0
        rects, x = [], 0.0
        for (value, colour, name), w in zip(shown, widths, strict=True):
            share = f" ({100 * value / total:.0f} %)" if split else ""
            rects.append((x, w, colour, f"{name}: {human_size(value)}{share}"))
            x += w
        out.append(
            f'<div class="lbl" title="{esc(label)}">{esc(_label(label))}</div>'
            f"{_bar_svg(f'{label}: {human_size(total)}', rects)}"
            f'<div class="val">{esc(human_size(total))}</div>'
        )
    out.append("</div>")
    return "".join(out)


def bar_chart(
    groups: Sequence[tuple[str, Sequence[tuple[int, str, str]]]],
    *,
    title: str,
    value_text: Callable[[int], str] = human_size,
) -> str:
    """Side-by-side bars per group (``(label, [(value, colour, name), …])``), on one linear scale against the
    largest value, each non-zero bar at least :data:`MIN_BAR_PCT` % of its track, its name and exact figure
    (``value_text``, IEC sizes by default) printed beside it.  Cost: linear in the bars."""
    top = max((v for _, bars in groups for v, _, _ in bars), default=0) or 1
    out = [f'<div class="chart g" role="group" aria-label="{esc(title)}">']
    for label, bars in groups:
        out.append(f'<div class="grp" title="{esc(label)}">{esc(_label(label))}</div>')
        for value, colour, name in bars:
            w = _pct(value, top)
            figure = value_text(value)
            out.append(
                f'<div class="lbl">{esc(name)}</div>'
                f"{_bar_svg(f'{label} {name}: {figure}', [(0.0, w, colour, f'{name}: {figure}')] if w else [])}"
                f'<div class="val">{esc(figure)}</div>'
            )
    out.append("</div>")
    return "".join(out)


def legend(*items: tuple[str, str]) -> str:
    spans = "".join(f'<span><i class="sw" style="background:{c}"></i>{esc(n)}</span>' for c, n in items)
    return f'<p class="legend">{spans}</p>'


def _td(value: object, header: str) -> str:
    """A cell; long text (over 24 characters: references, OS names, messages) may wrap anywhere.  ``header``
    labels the cell when a narrow screen shows each row as a card."""
    text = str(value)
    cls = ' class="w"' if len(text) > 24 else ""
    return f'<td{cls} data-h="{esc(header)}">{esc(text)}</td>'


def html_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A table whose long cells wrap, inside a wrapper that scrolls sideways only if it still cannot fit; on a
    narrow screen (≤ 640 px) each row is shown as a card of ``header: value`` lines."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(_td(c, h) for c, h in zip(row, [*headers, *[""] * len(row)], strict=False)) + "</tr>"
        for row in rows
    )
    return f'<div class="tw"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _coverage(images: Sequence[dict[str, Any]], doc: dict[str, Any]) -> dict[str, Any]:
    """:func:`page`'s ``refs``/``sources``/``notes`` for a document listing ``images`` (and failed refs under
    ``errors``): each image's ``source`` (its ``org.opencontainers.image.source``, when the document has it)."""
    refs = [str(i["reference"]) for i in images]
    notes = {
        str(e["reference"]): f"not read: {e.get('type', 'error')}"
        for e in doc.get("errors", ())
        if "reference" in e
    }
    return {
        "refs": [*refs, *[r for r in notes if r not in refs]],
        "sources": {str(i["reference"]): i.get("source") for i in images if i.get("source")},
        "notes": notes,
    }


def scale_note() -> str:
    """The sentence under a linear chart saying that tiny bars are drawn at :data:`MIN_BAR_PCT` %."""
    return (
        f'<p class="muted">Bars share one linear scale; a bar below {MIN_BAR_PCT:g} % of the longest is drawn at '
        f"{MIN_BAR_PCT:g} % so it stays visible — the figure printed beside each bar is exact.</p>"
    )


def compare_html(doc: dict[str, Any]) -> str:
    """The ``compare`` report: a stacked bar per image (shared vs unique), totals, bases and the matrix."""
    imgs = doc["images"]
    logical, dedup = doc["logical_size"], doc["deduplicated_size"]
    parts = [
        f'<p><span class="big">{esc(human_size(dedup))}</span> stored for {len(imgs)} images that weigh '
        f"{esc(human_size(logical))} one by one: sharing saves {esc(human_size(logical - dedup))}.</p>",
        "<h2>Shared and unique bytes per image (compressed, as a registry stores them)</h2>",
        legend((SHARED, "shared with another image"), (UNIQUE, "unique to this image")),
        stacked_bars(
            [
                (i["reference"], [(i["shared_size"], SHARED, "shared"), (i["unique_size"], UNIQUE, "unique")])
                for i in imgs
            ],
            title="shared vs unique bytes per image",
            split=True,
        ),
        '<p class="muted">Each bar is one image\'s own bytes (100 %), split into shared and unique, so a large '
        "image cannot hide the split of a small one; the figure beside it is the image's size.</p>",
        html_table(
            ["image", "layers", "size", "shared", "unique", "unpacked", "unpacked shared", "base"],
            [
                (
                    i["reference"],
                    i["layer_count"],
                    human_size(i["total_size"]),
                    human_size(i["shared_size"]),
                    human_size(i["unique_size"]),
                    human_size(i["uncompressed_total_size"]),
                    human_size(i["uncompressed_shared_size"]),
                    i["base"] or "-",
                )
                for i in imgs
            ],
        ),
    ]
    if doc.get("uncompressed_unknown"):
        parts.append(
            "<p><b>Unpacked totals unknown ('?'):</b> "
            + "; ".join(
                f"{esc(i['reference'])}: {esc(i['uncompressed_note'])}"
                for i in imgs
                if i.get("kind") != "artifact" and i.get("uncompressed_note")
            )
            + "</p>"
        )
    for i in imgs:
        if i.get("kind") == "artifact":
            parts.append(
                f'<p class="muted">{esc(i["reference"])}: an artifact ({esc(i["artifact_type"])}): its blobs '
                "are counted compressed; unpacked sizes not applicable.</p>"
            )
    if doc["bases"]:
        parts.append("<h2>Common bases</h2><ul>")
        for g in doc["bases"]:
            parts.append(
                f"<li>{len(g['images'])} images share base <b>{esc(g['label'])}</b> ({g['layers']} layer{'s' if g['layers'] != 1 else ''}, "
                f"{esc(human_size(g['size']))}): {esc(human_size(g['saved_size']))} saved</li>"
            )
        parts.append("</ul>")
    if doc["pairs"]:
        refs = [i["reference"] for i in imgs]
        cell = {}
        for p in doc["pairs"]:
            cell[(p["a"], p["b"])] = cell[(p["b"], p["a"])] = (
                f"{human_size(p['shared_size'])} / {p['common_prefix_layers']}"
            )
        parts.append('<h2>Pairwise overlap</h2><p class="muted">shared bytes / common leading layers</p>')
        parts.append(
            html_table(
                ["", *[f"#{n + 1}" for n in range(len(refs))]],
                [(f"#{n + 1} {a}", *[cell.get((a, b), "—") for b in refs]) for n, a in enumerate(refs)],
            )
        )
    return page("ociinspect compare", "\n".join(parts), **_coverage(imgs, doc))


def vm_html(doc: dict[str, Any]) -> str:
    """The ``vm`` report: container vs VM per image and for the fleet, with the model's parameters."""
    imgs, f = doc["images"], doc["fleet"]
    parts = []
    if f and not f.get("complete", True):
        parts.append(
            f"<p><b>Partial fleet totals:</b> they leave out {len(f['left_out'])} image(s) whose uncompressed size "
            f"is unknown ({esc(', '.join(f['left_out']))}): rerun with --exact.</p>"
        )
    if f:
        ratio = "n/a" if f["ratio"] is None else f"{f['ratio']:,.1f}×"
        parts.append(
            f'<p><span class="big">{esc(ratio)}</span> — {f["containers"]} containers store {esc(human_size(f["containers_size"]))}; '
            f"as VMs they would use {esc(human_size(f['vms_used_size']))} "
            f"({esc(human_size(f['vms_used_low']))}–{esc(human_size(f['vms_used_high']))}) and provision "
            f"{esc(human_size(f['vms_disk_size']))}.</p>"
        )
        parts.append("<h2>Fleet</h2>")
        parts.append(
            legend(
                (CONTAINER, "containers (layers stored once)"),
                (VM, "VMs (one OS copy each)"),
                (RANGE, "VMs, provisioned disk"),
            )
        )
        parts.append(
            bar_chart(
                [
                    (
                        f"{f['containers']} × workload",
                        [
                            (f["containers_size"], CONTAINER, "containers"),
                            (f["vms_used_size"], VM, "VMs used"),
                            (f["vms_disk_size"], RANGE, "VMs provisioned"),
                        ],
                    )
                ],
                title="fleet: containers vs VMs",
            )
        )
    parts.append("<h2>Each image</h2>")
    parts.append(
        bar_chart(
            [
                (
                    i["reference"],
                    [(i["container_size"], CONTAINER, "container"), (i["vm_used_size"], VM, "VM used")],
                )
                for i in imgs
            ],
            title="container vs VM per image",
        )
    )
    parts.append(scale_note())
    parts.append(
        html_table(
            ["image", "base OS", "VM profile", "container", "VM used", "range", "VM download", "VM disk"],
            [
                (
                    i["reference"],
                    i["os"]["pretty_name"] or i["os"]["id"] or "none",
                    i["family_label"],
                    human_size(i["container_size"]),
                    human_size(i["vm_used_size"]),
                    f"{human_size(i['vm_used_low'])}–{human_size(i['vm_used_high'])}",
                    human_size(i["vm_download_size"]),
                    human_size(i["vm_disk_size"]),
                )
                for i in imgs
            ]
            + [
                (
                    i["reference"],
                    i["os"]["pretty_name"] or i["os"]["id"] or "none",
                    i["family"],
                    "? (unknown)",
                    *["?"] * 4,
                )
                for i in doc.get("unknown_images", ())
            ],
        )
    )
    for i in doc.get("unknown_images", ()):
        parts.append(f'<p class="muted">{esc(i["reference"])}: no VM figures: {esc(i["note"])}</p>')
    if doc.get("artifacts"):
        parts.append("<h2>Artifacts (not modelled)</h2>")
        parts.append(
            html_table(
                ["artifact", "type", "blobs", "compressed", "uncompressed"],
                [
                    (
                        a["reference"],
                        a["artifact_type"],
                        a["blobs"],
                        human_size(a["compressed_size"]),
                        "not applicable",
                    )
                    for a in doc["artifacts"]
                ],
            )
        )
    p = doc["parameters"]
    parts.append("<h2>Model and sources</h2>")
    parts.append(
        "<p>VM used = VM OS + (container − base layers); download = used ÷ "
        f"{esc(p['download_ratio']['central'])}; disk = max(default disk, used × {1 + p['headroom']:.2f}). "
        f"Parameters: {linkify(p['origin'])}. See docs/vm-model.md.</p><ul>"
    )
    for name, fam in p["families"].items():
        srcs = "; ".join(linkify(s) for s in fam["sources"])
        parts.append(
            f'<li><b>{esc(name)}</b> ({esc(fam["label"])}): {linkify(fam["derivation"])}. <span class="muted">Sources: {srcs}</span></li>'
        )
    parts.append("</ul>")
    covered = [*imgs, *doc.get("unknown_images", ()), *doc.get("artifacts", ())]
    return page("ociinspect vm", "\n".join(parts), **_coverage(covered, doc))
