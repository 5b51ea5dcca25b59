"""Documents and renderers for ``ociinspect waste`` and ``ociinspect files``.

``waste_document`` is the JSON contract of ``waste`` (schema_version 1, see ``docs/waste.md``); ``dive_export``
is dive's ``--json`` export shape (for scripts that already parse dive); ``files_document`` serves ``files``.
The table and Markdown renderers are listed in :data:`ociinspect.reports.VIEWS`.  Sizes are
``int`` bytes in documents; the text renderers print IEC units (KiB, MiB) and say so.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

from ociinspect.analyzers.waste import WasteReport, dive_file_lists, largest_files, layer_files
from ociinspect.model.entries import Entry, LayerScan
from ociinspect.model.image import Image
from ociinspect.reports.text import human_size, join_lines, plural, text_table

__all__ = [
    "SCHEMA_VERSION",
    "analysis_document",
    "dive_export",
    "files_document",
    "files_text",
    "match_path",
    "waste_document",
    "waste_text",
]

SCHEMA_VERSION = 1


def _created_by(image: Image, index: int) -> str | None:
    layer = image.layers[index]
    return layer.history.created_by if layer.history else None


def _percent(ratio: float | None) -> float | None:
    return None if ratio is None else ratio * 100.0


_LAYER_CHANGE_KEYS = (
    "content_size",
    "entries",
    "added",
    "modified",
    "removed",
    "added_bytes",
    "modified_bytes",
    "removed_bytes",
    "whiteout_deleted_bytes",
    "overwritten_bytes",
)


def analysis_document(report: WasteReport) -> dict[str, Any]:
    """The parts of a ``waste`` document that depend only on the layers' contents (JSON-ready).

    A pure function of the ordered layer digests (and :data:`~ociinspect.analyzers.waste.ANALYSIS_VERSION`), so
    it can be cached by them; :func:`waste_document` adds what belongs to one image and one run.
    """
    dive = report.dive
    return {
        "size_bytes": dive.size_bytes,
        "user_size_bytes": dive.user_size_bytes,
        "wasted_bytes": dive.wasted_bytes,
        "user_wasted_percent": _percent(dive.user_wasted_ratio),
        "user_wasted_ratio": dive.user_wasted_ratio,
        "efficiency": dive.efficiency,
        "inefficient_files": [
            {"path": f.path, "count": f.count, "wasted_bytes": f.wasted_bytes} for f in dive.inefficient_files
        ],
        "whiteout_deleted_bytes": report.whiteout_deleted_bytes,
        "overwritten_bytes": report.overwritten_bytes,
        "final_size_bytes": report.final_size_bytes,
        "final_files": report.final_files,
        "hashed": report.duplicates is not None,
        "duplicate_wasted_bytes": report.duplicate_wasted_bytes,
        "duplicate_files": None
        if report.duplicates is None
        else [
            {
                "sha256": d.sha256,
                "size": d.size,
                "count": len(d.copies),
                "wasted_bytes": d.wasted_bytes,
                "copies": [{"layer": k, "path": "/" + p, "in_final": alive} for k, p, alive in d.copies],
            }
            for d in report.duplicates
        ],
        "layer_changes": [{key: getattr(c, key) for key in _LAYER_CHANGE_KEYS} for c in report.layers],
        "dive_notes": list(dive.notes),
    }


def waste_document(image: Image, scans: Sequence[LayerScan], analysis: dict[str, Any]) -> dict[str, Any]:
    """The ``waste`` JSON document for one image (schema_version 1): ``analysis`` (from
    :func:`analysis_document`, possibly cached) plus the image's identity, layer descriptors and scan facts.
    ``scans`` may carry no entries (cached metadata only)."""
    warnings = list(image.warnings)
    for layer, scan in zip(image.layers, scans, strict=True):
        warnings.extend(f"layer {layer.index}: {w}" for w in scan.warnings)
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "reference": image.reference,
        "digest": image.digest,
        "platform": image.platform.to_json() if image.platform else None,
    }
    doc.update((k, v) for k, v in analysis.items() if k not in ("layer_changes", "dive_notes"))
    doc["layers"] = [
        {
            "index": layer.index,
            "digest": layer.digest,
            "media_type": layer.media_type,
            "diff_id": layer.diff_id,
            "compressed_size": layer.size,
            "uncompressed_size": scan.uncompressed_size,
            **changes,
            "index_source": scan.index_source,
            "diff_id_verified": scan.diff_id is not None and scan.diff_id == layer.diff_id,
            "from_cache": scan.from_cache,
            "created_by": _created_by(image, layer.index),
        }
        for layer, scan, changes in zip(image.layers, scans, analysis["layer_changes"], strict=True)
    ]
    doc["dive_notes"] = list(analysis["dive_notes"])
    doc["warnings"] = warnings
    return doc


def dive_export(image: Image, scans: Sequence[LayerScan], report: WasteReport) -> dict[str, Any]:
    """dive's ``--json`` export (0.13.1): ``layer`` (index, id, digestId, sizeBytes, command, fileList) and
    ``image`` (sizeBytes, inefficientBytes, efficiencyScore, fileReference[{count, sizeBytes, file}]).

    ``id`` is the layer blob's hex digest (dive prints the archive member's directory), ``digestId`` the diff_id.
    """
    lists = dive_file_lists([s.entries for s in scans])
    layers = []
    for layer, scan, size, files in zip(image.layers, scans, report.dive.layer_sizes, lists, strict=True):
        command = _created_by(image, layer.index)
        command = command.removeprefix("/bin/sh -c ") if command is not None else "(missing)"
        layers.append(
            {
                "index": layer.index,
                "id": layer.digest.split(":", 1)[-1],
                "digestId": layer.diff_id or scan.diff_id or "",
                "sizeBytes": size,
                "command": command,
                "fileList": files,
            }
        )
    return {
        "layer": layers,
        "image": {
            "sizeBytes": report.dive.size_bytes,
            "inefficientBytes": report.dive.wasted_bytes,
            "efficiencyScore": report.dive.efficiency,
            "fileReference": [
                {"count": f.count, "sizeBytes": f.wasted_bytes, "file": f.path}
                for f in report.dive.inefficient_files
            ],
        },
    }


def match_path(pattern: str | None, path: str) -> bool:
    """``--path``: a glob (``/usr/lib/*.so*``) matched against ``/path``, or, without glob characters, a file
    or directory prefix (``/usr/share`` matches ``/usr/share`` and everything under it)."""
    if not pattern:
        return True
    full = "/" + path
    pat = pattern if pattern.startswith("/") else "/" + pattern
    if any(c in pat for c in "*?["):
        return fnmatch.fnmatchcase(full, pat)
    pat = pat.rstrip("/") or "/"
    return pat == "/" or full == pat or full.startswith(pat + "/")


def _file(e: Entry, layer: int, change: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "path": "/" + e.path,
        "size": e.size,
        "type": e.type,
        "mode": f"{e.permissions:04o}",
        "uid": e.uid,
        "gid": e.gid,
        "linkname": e.linkname or None,
        "layer": layer,
        "sha256": e.sha256,
    }
    if change is not None:
        doc = {"change": change, **doc}
    return doc


def files_document(
    image: Image,
    scans: Sequence[LayerScan],
    *,
    layer: int | None = None,
    top: int | None = None,
    path_filter: str | None = None,
    sort: str = "size",
) -> dict[str, Any]:
    """The ``files`` document: the largest files of the flattened filesystem, or (``layer``) what that layer
    adds, modifies and removes.  ``top`` = 0 or ``None`` lists everything.  Cost: O(entries)."""
    entries = [s.entries for s in scans]
    rows: list[dict[str, Any]]
    keep = (lambda path: match_path(path_filter, path)) if path_filter else None
    if layer is None:  # over the layer index's columns: an Entry only for the files listed
        final, total, total_bytes = largest_files(entries, top=top or None, by=sort, keep=keep)
        rows = [_file(f.entry, f.layer) for f in final]
        view = "largest"
    else:
        changes, total, total_bytes = layer_files(entries, layer, top=top or None, by=sort, keep=keep)
        rows = [_file(e, origin, kind) for kind, _path, e, origin in changes]
        view = "layer"
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "reference": image.reference,
        "digest": image.digest,
        "view": view,
        "layer": layer,
        "path_filter": path_filter,
        "matched_files": total,
        "matched_bytes": total_bytes,
        "hashed": all(s.hashed for s in scans),
        "index_sources": sorted({s.index_source for s in scans}),
        "files": rows,
    }
    if layer is not None:
        lay = image.layers[layer]
        doc["layer_digest"] = lay.digest
        doc["created_by"] = _created_by(image, layer)
    return doc


# --------------------------------------------------------------------------------------------- text


def _table(rows: Sequence[Sequence[Any]], headers: Sequence[str], markdown: bool) -> str:
    return text_table(rows, headers, markdown)  # the one table renderer: escapes Markdown cells


def _one_line(text: str | None, width: int = 60) -> str:
    if not text:
        return "-"
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _summary(pairs: Sequence[tuple[str, str]], markdown: bool) -> list[str]:
    if markdown:
        return [_table(pairs, ["", ""], True)]
    width = max(len(k) for k, _ in pairs)
    return [f"{k + ':':<{width + 1}} {v}" for k, v in pairs]


def _bytes(n: int | None) -> str:
    return "?" if n is None else f"{human_size(n)} ({n} bytes)"


def waste_text(doc: dict[str, Any], *, markdown: bool = False) -> str:
    """Summary, layer table and inefficient-files table of one ``waste`` document.

    ``doc["table_top"]`` (set by the CLI's ``--top`` for text formats only; default 20, 0 = all) limits the
    file tables; the JSON document always lists every file.
    """
    top = int(doc.get("table_top", 20))
    if "error" in doc:
        err = doc["error"]
        return f"{doc['reference']}: error: {err['message']}"
    pct = doc["user_wasted_percent"]
    pairs = [
        ("Reference", doc["reference"]),
        ("Digest", doc["digest"]),
        ("Efficiency", f"{doc['efficiency'] * 100:.4f} %"),
        ("Wasted bytes", _bytes(doc["wasted_bytes"])),
        ("User wasted percent", "NaN (no user layers)" if pct is None else f"{pct:.4f} %"),
        ("Image size", _bytes(doc["size_bytes"])),
        ("User size", f"{_bytes(doc['user_size_bytes'])} (all layers but the first)"),
        ("Deleted by whiteouts", _bytes(doc["whiteout_deleted_bytes"])),
        ("Overwritten", _bytes(doc["overwritten_bytes"])),
        (
            "Duplicate content",
            _bytes(doc["duplicate_wasted_bytes"]) if doc["hashed"] else "not computed (use --hash)",
        ),
        ("Final filesystem", f"{_bytes(doc['final_size_bytes'])} in {doc['final_files']} files"),
    ]
    out = [f"### {doc['reference']}", ""] if markdown else []
    out += _summary(pairs, markdown)
    out.append("")
    layer_rows = [
        (
            lay["index"],
            lay["digest"].split(":", 1)[-1][:12],
            human_size(lay["content_size"]),
            lay["added"],
            lay["modified"],
            lay["removed"],
            human_size(lay["whiteout_deleted_bytes"] + lay["overwritten_bytes"]),
            lay["index_source"] + (" (cached)" if lay["from_cache"] else ""),
            _one_line(lay["created_by"]),
        )
        for lay in doc["layers"]
    ]
    out.append(
        _table(
            layer_rows,
            ["#", "digest", "content", "added", "modified", "removed", "hidden below", "index", "created by"],
            markdown,
        )
    )
    out.append("")
    files = doc["inefficient_files"]
    shown = files[:top] if top else files
    out.append(
        f"Inefficient files ({len(files)}{', top ' + str(len(shown)) if len(shown) < len(files) else ''}):"
    )
    if markdown:
        out.append("")
    if shown:
        out.append(
            _table(
                [(f["count"], human_size(f["wasted_bytes"]), f["path"]) for f in shown],
                ["count", "wasted space", "file path"],
                markdown,
            )
        )
    else:
        out.append("No file is stored in more than one layer.")
    dups = doc["duplicate_files"]
    if dups:
        out.append("")
        out.append(f"Duplicate files by content ({len(dups)} sets):")
        if markdown:
            out.append("")
        rows = [
            (
                d["count"],
                human_size(d["size"]),
                human_size(d["wasted_bytes"]),
                ", ".join(f"{c['path']}@{c['layer']}" for c in d["copies"][:3])
                + (" …" if d["count"] > 3 else ""),
            )
            for d in (dups[:top] if top else dups)
        ]
        out.append(_table(rows, ["copies", "size", "wasted", "paths (@layer)"], markdown))
    notes = [f"dive: {n}" for n in doc["dive_notes"]] + doc["warnings"]
    if notes:
        out.append("")
        out.extend(f"note: {n}" for n in notes)
    out.append("")
    out.append(
        "Efficiency, wasted bytes and user wasted percent use dive's definitions (docs/waste.md). "
        "Sizes in IEC units (1 KiB = 1024 bytes)."
    )
    return join_lines(out, markdown)


def _no_files(doc: dict[str, Any]) -> str:
    """The sentence an empty ``files`` listing prints instead of a table."""
    if doc["view"] == "layer":
        return "The layer changes no file" + (" matching the filter." if doc["path_filter"] else ".")
    return "No file matches the filter." if doc["path_filter"] else "The image holds no file."


def files_text(doc: dict[str, Any], *, markdown: bool = False) -> str:
    """The file list of one ``files`` document."""
    if "error" in doc:
        return f"{doc['reference']}: error: {doc['error']['message']}"
    if doc["view"] == "layer":
        title = f"Layer {doc['layer']} ({doc['layer_digest'].split(':', 1)[-1][:12]}) of {doc['reference']}: "
        title += plural(doc["matched_files"], "change")
        if doc.get("created_by"):
            title += f" — {_one_line(doc['created_by'], 80)}"
    else:
        title = (
            f"Largest files of {doc['reference']}: {plural(doc['matched_files'], 'file')}, "
            f"{human_size(doc['matched_bytes'])}"
        )
    if doc["path_filter"]:
        title += f" (matching {doc['path_filter']})"
    out = [("### " if markdown else "") + title, ""]
    with_change = doc["view"] == "layer"
    rows = []
    for r in doc["files"]:
        path = r["path"] + (f" → {r['linkname']}" if r["linkname"] else "")
        row = [human_size(r["size"]), r["type"], r["mode"], f"{r['uid']}:{r['gid']}", r["layer"], path]
        rows.append(([r["change"]] if with_change else []) + row)
    headers = (["change"] if with_change else []) + ["size", "type", "mode", "uid:gid", "layer", "path"]
    out.append(_table(rows, headers, markdown) if rows else _no_files(doc))
    if len(doc["files"]) < doc["matched_files"]:
        out.append("")
        out.append(f"({doc['matched_files'] - len(doc['files'])} more: raise --top, or --top 0 for all)")
    out.append("")
    out.append("Sizes in IEC units (1 KiB = 1024 bytes).")
    return join_lines(out, markdown)
