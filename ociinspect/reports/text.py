"""Human renderers (table and Markdown) — the only place where bytes become "12.3 MiB".

Sizes use IEC units (KiB, MiB, GiB: powers of 1024) everywhere, as the header of each table says.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["human_size", "inspect_text"]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(n: int | None) -> str:
    """``1536`` → ``"1.5 KiB"``; ``None`` → ``"?"``."""
    if n is None:
        return "?"
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _table(rows: Sequence[Sequence[Any]], headers: Sequence[str], markdown: bool) -> str:
    from tabulate import tabulate  # imported here: ~25 ms we only pay when printing a table

    return tabulate(rows, headers=headers, tablefmt="github" if markdown else "simple", disable_numparse=True)


def _short(digest: str | None) -> str:
    return digest.split(":", 1)[-1][:12] if digest else "-"


def _argv(value: list[str] | None) -> str:
    return " ".join(value) if value else "-"


def _platform(p: dict[str, Any] | None) -> str:
    if not p:
        return "-"
    s = f"{p['os']}/{p['architecture']}"
    return f"{s}/{p['variant']}" if p.get("variant") else s


def _one_line(text: str | None, width: int = 72) -> str:
    if not text:
        return "-"
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def inspect_text(doc: dict[str, Any], *, markdown: bool = False) -> str:
    """Summary and layer table of one ``inspect`` document."""
    if "error" in doc:
        err = doc["error"]
        return f"{doc['reference']}: error: {err['message']}" + (
            f"\n  hint: {err['hint']}" if err.get("hint") else ""
        )
    unc = doc["uncompressed_size"]
    known = [layer["uncompressed_size"] for layer in doc["layers"] if layer["uncompressed_size"] is not None]
    unc_text = (
        human_size(unc) if unc is not None else f"≥ {human_size(sum(known))} (some layers unknown: --exact)"
    )
    summary = [
        ("Reference", doc["reference"]),
        ("Digest", doc["digest"]),
        ("Media type", doc["media_type"]),
    ]
    if doc.get("index_digest"):
        summary.append(
            (
                "Index",
                f"{doc['index_digest']} ({len(doc['platforms'])} platforms: {', '.join(doc['platforms'])})",
            )
        )
    summary += [
        ("Platform", _platform(doc["platform"])),
        ("Created", doc["created"] or "-"),
    ]
    if doc["is_artifact"]:
        summary.append(("Artifact type", doc["artifact_type"] or "-"))
    else:
        summary += [
            ("Entrypoint", _argv(doc["entrypoint"])),
            ("Cmd", _argv(doc["cmd"])),
            ("User", doc["user"] or "(root)"),
        ]
    summary += [
        ("Config", doc["config_digest"]),
        ("Layers", str(doc["layer_count"])),
        ("Compressed", f"{human_size(doc['compressed_size'])} ({doc['compressed_size']} bytes)"),
        ("Uncompressed", unc_text + (f" ({unc} bytes)" if unc is not None else "")),
    ]
    rows = [
        (
            layer["index"],
            _short(layer["digest"]),
            layer["media_type"].rsplit("/", 1)[-1],
            human_size(layer["size"]),
            human_size(layer["uncompressed_size"]) + f" ({layer['uncompressed_size_source']})",
            _one_line(layer["created_by"]),
        )
        for layer in doc["layers"]
    ]
    out = []
    if markdown:
        out.append(f"### {doc['reference']}\n")
        out.append(_table(summary, ["", ""], True))
    else:
        width = max(len(k) for k, _ in summary)
        out.extend(f"{k + ':':<{width + 1}} {v}" for k, v in summary)
    out.append("")
    out.append(
        _table(rows, ["#", "digest", "type", "compressed", "uncompressed (source)", "created by"], markdown)
    )
    notes = [
        f"layer {layer['index']}: {layer['uncompressed_size_note']}"
        for layer in doc["layers"]
        if layer["uncompressed_size_note"]
    ]
    notes += doc["warnings"]
    if notes:
        out.append("")
        out.extend(f"note: {n}" for n in notes)
    out.append("")
    out.append("Sizes in IEC units (1 KiB = 1024 bytes).")
    return "\n".join(out)
