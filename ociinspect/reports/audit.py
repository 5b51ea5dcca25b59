"""Renderers of the audit documents (:mod:`ociinspect.audit.report`): table, Markdown, CSV and HTML.

Listed in :data:`ociinspect.reports.VIEWS` for the views ``audit`` (table, markdown, csv, html), ``audit-runs`` and ``audit-diff``
(table, markdown).  JSON is the document itself (see ``docs/audit.md``).  Sizes in documents are ``int`` bytes;
text and HTML print IEC units (KiB, MiB, GiB) and say so.
"""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Sequence
from typing import Any

from ociinspect.model.textsafe import csv_cell
from ociinspect.reports.html import (
    SHARED,
    UNIQUE,
    bar_chart,
    esc,
    html_table,
    legend,
    page,
    scale_note,
    stacked_bars,
)
from ociinspect.reports.text import human_size, join_lines, text_table

__all__ = ["CSV_COLUMNS", "audit_csv", "audit_html", "audit_text", "diff_text", "runs_text"]

CSV_COLUMNS = (
    "repository",
    "tags",
    "images",
    "logical_size",
    "stored_size",
    "unique_size",
    "shared_size",
    "multi_arch_tags",
    "errors",
    "status",
)


REPO_HEADERS = ["repository", "tags", "images", "stored", "unique", "shared", "multi-arch", "errors"]


def _repo_rows(repos: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The per-repository table's rows (sizes humanised), shared by the text and HTML renderers."""
    return [
        (
            r["name"],
            r["tags"],
            r["images"],
            human_size(r["stored_size"]),
            human_size(r["unique_size"]),
            human_size(r["shared_size"]),
            r["multi_arch_tags"],
            r["errors"],
        )
        for r in repos
    ]


def _short(digest: str | None) -> str:
    return digest.split(":", 1)[-1][:12] if digest else "-"


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def _cap(rows: Sequence[Any], top: int) -> Sequence[Any]:
    return rows if top <= 0 else rows[:top]


def _base(layer: dict[str, Any]) -> str:
    b = layer.get("base")
    if not b:
        return "-"
    return str(b.get("tag") or _short(b.get("image")))


def _unpacked(doc: dict[str, Any]) -> str:
    """The unpacked totals; lower bounds marked "≥ … (N layers unknown)" when some layer sizes are unknown."""
    unknown = int(doc.get("uncompressed_unknown_layers") or 0)
    at_least = "≥ " if unknown else ""
    text = (
        f"{at_least}{human_size(doc['uncompressed_logical_size'])} logical, "
        f"{at_least}{human_size(doc['uncompressed_deduplicated_size'])} deduplicated"
    )
    if unknown:
        text += f" ({unknown} layer{'s' if unknown != 1 else ''} unknown)"
    return text


def _summary(doc: dict[str, Any]) -> list[tuple[str, str]]:
    run = doc["run"]
    kinds = ", ".join(f"{n} {k}" for k, n in doc["images_by_kind"].items()) or "none"
    lines = [
        ("Registry", f"{doc['registry']}{'/' + run['prefix'] if run.get('prefix') else ''}"),
        (
            "Run",
            f"{run['id']} ({run['label']}), {run['status']}, shards {run['shards_complete']}/{run['shards']}, "
            f"{run['requests']} requests, started {_when(run['started_at'])}",
        ),
        ("Repositories", str(doc["repositories"])),
        ("Tags", f"{doc['tags']} ({doc['tags_read']} read, {doc['error_count']} errors)"),
        ("Images", f"{doc['images']} ({kinds}), {doc['blobs']} distinct blobs"),
        (
            "Logical size",
            f"{human_size(doc['logical_size'])} ({doc['logical_size']} bytes): every image on its own",
        ),
        (
            "Stored",
            f"{human_size(doc['deduplicated_size'])} ({doc['deduplicated_size']} bytes): each blob once",
        ),
        (
            "Saved by sharing",
            f"{human_size(doc['saved_size'])} ({_pct(doc['saved_size'], doc['logical_size'])})",
        ),
        ("Unpacked", _unpacked(doc)),
        (
            "Stale",
            f"{doc['stale_tag_count']} tags older than {doc['stale_days']} days; "
            f"{human_size(doc['stale_reclaimable_size'])} used only by them",
        ),
    ]
    waste = doc.get("waste_figures") or {}
    if doc.get("deep") or waste.get("images"):
        lines.append(
            (
                "Waste (--deep)",
                f"waste figures: {waste.get('images', 0)} of {waste.get('of', 0)} images "
                "(attestations and artifacts are listed, not scanned)",
            )
        )
    ma = doc["multi_arch"]
    plats = ", ".join(f"{p} {n}" for p, n in list(ma["platforms"].items())[:6]) or "-"
    lines.append(
        ("Multi-arch", f"{ma['index_tags']} index tags, {ma['single_tags']} single; platforms: {plats}")
    )
    vm = doc.get("vm")
    if vm and vm.get("fleet"):
        f = vm["fleet"]
        ratio = (
            "n/a"
            if f["ratio"] is None
            else f"{f['ratio']:,.1f}× ({f['ratio_low']:,.1f}–{f['ratio_high']:,.1f}×)"
        )
        lines.append(
            (
                "VM equivalent",
                f"{f['containers']} containers store {human_size(f['containers_size'])}; "
                f"as VMs {human_size(f['vms_used_size'])} used: {ratio}",
            )
        )
    return lines


def audit_text(doc: dict[str, Any], *, markdown: bool = False) -> str:
    """The audit report as text tables (or GitHub Markdown)."""
    top = int(doc.get("top", 20))
    out: list[str] = []
    if markdown:
        out.append(f"## Registry audit: {doc['registry']}\n")
        out += [f"- **{k}:** {v}" for k, v in _summary(doc)]
    else:
        width = max(len(k) for k, _ in _summary(doc))
        out += [f"{k + ':':<{width + 2}}{v}" for k, v in _summary(doc)]
    out.append("\nSizes in IEC units (1 MiB = 1024² bytes), compressed as stored unless marked unpacked.")

    def section(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            out.append(f"\n{'### ' if markdown else ''}{title}\n")
            out.append(text_table(rows, headers, markdown))

    section(
        f"Repositories by stored size ({min(len(doc['repos']), top) if top else len(doc['repos'])} of {len(doc['repos'])})",
        REPO_HEADERS,
        _repo_rows(_cap(doc["repos"], top)),
    )
    section(
        "Most shared layers",
        ["layer", "size", "images", "repos", "saved", "base"],
        [
            (
                _short(s["digest"]),
                human_size(s["size"]),
                s["images"],
                s["repositories"],
                human_size(s["saved_size"]),
                _base(s),
            )
            for s in doc["top_shared_layers"]
        ],
    )
    section(
        "Largest images",
        ["image", "tag", "platform", "size", "unpacked", "layers"],
        [
            (
                _short(i["digest"]),
                (i["tags"] or ["-"])[0],
                i["platform"] or i["kind"],
                human_size(i["size"]),
                human_size(i["uncompressed_size"]),
                i["layers"],
            )
            for i in doc["largest_images"]
        ],
    )
    if doc.get("deep"):
        section(
            "Most wasted (--deep)",
            ["image", "tag", "wasted", "efficiency"],
            [
                (
                    _short(i["digest"]),
                    (i["tags"] or ["-"])[0],
                    human_size(i["waste"].get("wasted_bytes")),
                    f"{100 * (i['waste'].get('efficiency') or 0):.1f}%",
                )
                for i in doc["most_wasted"]
            ],
        )
    section(
        f"Stale tags (created more than {doc['stale_days']} days ago)",
        ["repository", "tag", "created", "age (days)"],
        [(s["repository"], s["tag"], s["created"], s["age_days"]) for s in doc["stale_tags"]],
    )
    section(
        f"Errors ({doc['error_count']})",
        ["repository", "tag", "error", "message"],
        [
            (e["repository"], e["tag"] or "(listing)", e["type"], e["message"][:100])
            for e in _cap(doc["errors"], top)
        ],
    )
    return join_lines(out, markdown)


def audit_csv(doc: dict[str, Any]) -> str:
    """One row per repository (sizes in bytes), for spreadsheets: :data:`CSV_COLUMNS`."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in doc["repos"]:
        w.writerow(
            csv_cell(c)  # no cell a spreadsheet would run as a formula
            for c in [
                r["name"],
                r["tags"],
                r["images"],
                r["logical_size"],
                r["stored_size"],
                r["unique_size"],
                r["shared_size"],
                r["multi_arch_tags"],
                r["errors"],
                r["status"],
            ]
        )
    return buf.getvalue().rstrip("\n")


def audit_html(doc: dict[str, Any]) -> str:
    """One self-contained page: summary, stored bytes per repository (unique vs shared), the shared-layer
    ranking (bytes saved), and the tables.  Inline SVG, no scripts, no network."""
    top = int(doc.get("top", 20)) or len(doc["repos"])
    repos = doc["repos"][:top]
    parts = [
        f'<p><span class="big">{esc(human_size(doc["deduplicated_size"]))}</span> stored for {doc["images"]} images '
        f"in {doc['repositories']} repositories ({doc['tags']} tags) that weigh {esc(human_size(doc['logical_size']))} "
        f"one by one: sharing saves {esc(human_size(doc['saved_size']))}.</p>",
        "<ul>" + "".join(f"<li><b>{esc(k)}:</b> {esc(v)}</li>" for k, v in _summary(doc)) + "</ul>",
        f"<h2>Stored bytes per repository (top {len(repos)})</h2>",
        legend((UNIQUE, "unique to the repository"), (SHARED, "shared with other repositories")),
        stacked_bars(
            [
                (r["name"], [(r["unique_size"], UNIQUE, "unique"), (r["shared_size"], SHARED, "shared")])
                for r in repos
            ],
            title="stored bytes per repository",
        ),
        scale_note(),
        html_table(
            REPO_HEADERS,
            _repo_rows(repos),
        ),
    ]
    layers = doc["top_shared_layers"]
    if layers:
        parts += [
            "<h2>Most shared layers (bytes saved by storing them once)</h2>",
            bar_chart(
                [
                    (
                        f"{_short(s['digest'])} · {_base(s)}",
                        [(s["saved_size"], SHARED, f"{s['images']} images, saved")],
                    )
                    for s in layers
                ],
                title="shared-layer ranking",
            ),
            html_table(
                ["base · layer", "size", "images", "repositories", "saved", "used by (first 3)"],
                [
                    (
                        f"{_base(s)} · {_short(s['digest'])}",
                        human_size(s["size"]),
                        s["images"],
                        s["repositories"],
                        human_size(s["saved_size"]),
                        ", ".join(s["used_by"][:3]) + (" …" if s["used_by_total"] > 3 else ""),
                    )
                    for s in layers
                ],
            ),
        ]
    if doc["largest_images"]:
        parts += [
            "<h2>Largest images</h2>",
            html_table(
                ["tag · image", "platform", "size", "unpacked", "layers"],
                [
                    (
                        f"{(i['tags'] or ['-'])[0]} · {_short(i['digest'])}",
                        i["platform"] or i["kind"],
                        human_size(i["size"]),
                        human_size(i["uncompressed_size"]),
                        i["layers"],
                    )
                    for i in doc["largest_images"]
                ],
            ),
        ]
    if doc.get("deep") and doc["most_wasted"]:
        parts += [
            "<h2>Most wasted (--deep)</h2>",
            html_table(
                ["tag · image", "wasted", "efficiency"],
                [
                    (
                        f"{(i['tags'] or ['-'])[0]} · {_short(i['digest'])}",
                        human_size(i["waste"].get("wasted_bytes")),
                        f"{100 * (i['waste'].get('efficiency') or 0):.1f}%",
                    )
                    for i in doc["most_wasted"]
                ],
            ),
        ]
    ma = doc["multi_arch"]
    if ma["platforms"]:
        parts += [
            "<h2>Multi-arch coverage (tags offering each platform)</h2>",
            bar_chart(
                [(p, [(n, SHARED, "tags")]) for p, n in ma["platforms"].items()],
                title="platforms",
                value_text=lambda n: f"{n} tag{'s' if n != 1 else ''}",
            ),
        ]
    if doc["stale_tags"]:
        parts += [
            f"<h2>Stale tags ({doc['stale_tag_count']}, created more than {doc['stale_days']} days ago)</h2>",
            html_table(
                ["repository", "tag", "created", "age (days)"],
                [(s["repository"], s["tag"], s["created"], s["age_days"]) for s in doc["stale_tags"]],
            ),
        ]
    if doc["errors"]:
        parts += [
            f"<h2>Errors ({doc['error_count']})</h2>",
            html_table(
                ["repository", "tag", "error", "message"],
                [
                    (e["repository"], e["tag"] or "(listing)", e["type"], e["message"])
                    for e in doc["errors"][:top]
                ],
            ),
        ]
    run = doc["run"]
    scope = f"{doc['registry']}{'/' + run['prefix'] if run.get('prefix') else ''}"
    covers = (
        f"registry {scope}, run {run['id']} ({run['label']}, {run['status']}, started {_when(run['started_at'])}): "
        f"{doc['repositories']} repositories, {doc['tags']} tags, {doc['images']} images"
    )
    return page(f"ociinspect audit: {doc['registry']}", "\n".join(parts), covers=covers)


def runs_text(doc: dict[str, Any], *, markdown: bool = False) -> str:
    """``audit runs`` as a table."""
    rows = [
        (
            r["id"],
            r["label"],
            r["registry"] + ("/" + r["prefix"] if r["prefix"] else ""),
            r["status"],
            f"{r['shards_complete']}/{r['shards']}",
            r["repositories"],
            r["tags"],
            r["errors"],
            r["requests"],
            _when(r["started_at"]),
            _when(r["finished_at"]),
        )
        for r in doc["runs"]
    ]
    if not rows:
        return "no audit runs"
    return text_table(
        rows,
        [
            "run",
            "label",
            "registry",
            "status",
            "shards",
            "repos",
            "tags",
            "errors",
            "requests",
            "started",
            "finished",
        ],
        markdown,
    )


def diff_text(doc: dict[str, Any], *, markdown: bool = False) -> str:
    """``audit diff`` as text: growth, then tags added/removed/moved and repositories that changed."""
    a, b = doc["from"], doc["to"]
    out = [
        f"{'## ' if markdown else ''}Audit diff: run {a['id']} ({a['label']}) → run {b['id']} ({b['label']})",
        "",
    ]
    rows = []
    for key, g in doc["growth"].items():
        sized = key.endswith("_size")
        fmt = human_size if sized else str
        delta = g["growth"]
        sign = "+" if delta is not None and delta >= 0 else "-"
        rows.append((key, fmt(g["from"]), fmt(g["to"]), "?" if delta is None else f"{sign}{fmt(abs(delta))}"))
    out.append(text_table(rows, ["", "from", "to", "growth"], markdown))
    for title, items, cols in (
        ("Tags added", doc["added_tags"], ("repository", "tag", "digest")),
        ("Tags removed", doc["removed_tags"], ("repository", "tag", "digest")),
        ("Tags moved", doc["changed_tags"], ("repository", "tag", "from", "to")),
    ):
        out.append(f"\n{'### ' if markdown else ''}{title} ({len(items)})")
        if items:
            out.append(
                text_table(
                    [
                        [i[c] if c not in ("digest", "from", "to") else _short(i[c]) for c in cols]
                        for i in items[:200]
                    ],
                    cols,
                    markdown,
                )
            )
    if doc["repos"]:
        out.append(f"\n{'### ' if markdown else ''}Repositories that changed ({len(doc['repos'])})")
        out.append(
            text_table(
                [
                    (
                        r["name"],
                        r["status"],
                        human_size(r["from_size"]),
                        human_size(r["to_size"]),
                        ("+" if r["growth"] >= 0 else "-") + human_size(abs(r["growth"])),
                        f"{r['from_tags']}→{r['to_tags']}",
                    )
                    for r in doc["repos"][:200]
                ],
                ["repository", "", "from", "to", "growth", "tags"],
                markdown,
            )
        )
    out.append("\nSizes in IEC units (1 MiB = 1024² bytes).")
    return join_lines(out, markdown)
