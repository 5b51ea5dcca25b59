"""Human renderers (table and Markdown) — the only place where bytes become "12.3 MiB".

Sizes use IEC units (KiB, MiB, GiB: powers of 1024) everywhere, as the header of each table says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ociinspect.model.textsafe import markdown_cell, markdown_prose

__all__ = ["compare_text", "human_size", "inspect_text", "join_lines", "text_table", "vm_text"]

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


def _layer_size(layer: Mapping[str, Any]) -> str:
    """``"1.5 MiB (trailer)"``; an ambiguous figure lists its candidates: ``"unknown (ambiguous: 0.5 GiB or
    4.5 GiB)"``."""
    candidates = layer.get("uncompressed_size_candidates") or ()
    if candidates:
        shown = [human_size(c) for c in candidates[:4]] + (["…"] if len(candidates) > 4 else [])
        return f"unknown (ambiguous: {', '.join(shown[:-1])} or {shown[-1]})" if len(shown) > 1 else "unknown"
    return human_size(layer["uncompressed_size"]) + f" ({layer['uncompressed_size_source']})"


def text_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], markdown: bool) -> str:
    """A plain-text table, or a GitHub Markdown table whose every cell and header went through
    :func:`~ociinspect.model.textsafe.markdown_cell` (tabulate does not escape ``|``, ``<``, ``>``).  Every table and
    Markdown renderer uses this one function."""
    from tabulate import tabulate  # imported here: ~25 ms we only pay when printing a table

    if markdown:
        rows = [[None if c is None else markdown_cell(c) for c in row] for row in rows]
        headers = [markdown_cell(h) for h in headers]
    return tabulate(rows, headers=headers, tablefmt="github" if markdown else "simple", disable_numparse=True)


def join_lines(lines: Sequence[str], markdown: bool) -> str:
    """The output lines as one text; Markdown goes through :func:`~ociinspect.model.textsafe.markdown_prose` once
    (headings, notes and paragraphs escaped; table rows were escaped cell by cell)."""
    text = "\n".join(lines)
    return markdown_prose(text) if markdown else text


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 layer``, ``2 layers`` (``many``: an irregular plural)."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


#: human labels of the VM model's component keys (``components_mb`` in ``data/vm_profiles.toml``)
COMPONENT_LABELS = {
    "required_packages": "required packages",
    "vm_only_packages_cloud_kernel_grub_systemd_cloud_init_ssh": "VM-only packages (kernel, GRUB, systemd, "
    "cloud-init, SSH)",
    "initrd": "initramfs",
}


def component_label(key: str) -> str:
    """A VM-model component key as a label: from :data:`COMPONENT_LABELS`, else its words."""
    return COMPONENT_LABELS.get(key) or key.replace("_", " ")


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
    if unc is None and doc["is_artifact"]:  # even --exact cannot: an artifact's blobs are not tar layers
        unc_text = (
            "not applicable (an artifact: its blobs are not filesystem layers; compressed sizes counted)"
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
    if "referrers" in doc:  # registry images only
        n = doc["referrers"]
        summary.append(
            ("Referrers", "not known" if n is None else f"{n} (`ociinspect referrers` lists them)")
        )
    if doc.get("base_os"):
        o = doc["base_os"]
        summary.append(("Base OS", f"{o['pretty_name'] or o['id'] or 'none found'} ({o['evidence']})"))
    if doc.get("vm_equivalent"):
        v = doc["vm_equivalent"]
        summary.append(
            (
                "As a VM",
                f"~{human_size(v['vm_used_size'])} used [{human_size(v['vm_used_low'])}–{human_size(v['vm_used_high'])}], "
                f"{human_size(v['vm_download_size'])} download, {human_size(v['vm_disk_size'])} disk "
                f"({v['family']} profile; `ociinspect vm` explains)",
            )
        )
    rows = [
        (
            layer["index"],
            _short(layer["digest"]),
            layer["media_type"].rsplit("/", 1)[-1],
            human_size(layer["size"]),
            _layer_size(layer),
            _one_line(layer["created_by"]),
        )
        for layer in doc["layers"]
    ]
    out = []
    if markdown:
        out.append(f"### {doc['reference']}\n")
        out.append(text_table(summary, ["", ""], True))
    else:
        width = max(len(k) for k, _ in summary)
        out.extend(f"{k + ':':<{width + 1}} {v}" for k, v in summary)
    out.append("")
    out.append(
        text_table(
            rows, ["#", "digest", "type", "compressed", "uncompressed (source)", "created by"], markdown
        )
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
    return join_lines(out, markdown)


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}×"


def compare_text(doc: dict[str, Any], *, markdown: bool = False) -> str:
    """Shared/unique table per image, totals, common bases, shared layers and (optionally) the overlap matrix."""
    rows = [
        (
            i["reference"],
            i["layer_count"],
            human_size(i["total_size"]),
            human_size(i["shared_size"]),
            human_size(i["unique_size"]),
            *(
                ("n/a",) * 3
                if i.get("kind") == "artifact"
                else (
                    human_size(i["uncompressed_total_size"]),
                    human_size(i["uncompressed_shared_size"]),
                    human_size(i["uncompressed_unique_size"]),
                )
            ),
            "artifact"
            if i.get("kind") == "artifact"
            else (i["os"] or {}).get("pretty_name") or (i["os"] or {}).get("id") or "-",
            i["base"] or "-",
        )
        for i in doc["images"]
    ]
    headers = [
        "image",
        "layers",
        "size",
        "shared",
        "unique",
        "unpacked",
        "shared",
        "unique",
        "base OS",
        "base image",
    ]
    out = []
    if markdown:
        out.append("### Shared and unique bytes\n")
    out.append(text_table(rows, headers, markdown))
    logical, dedup = doc["logical_size"], doc["deduplicated_size"]
    saved = logical - dedup
    pct = f" ({100 * saved / logical:.0f}%)" if logical else ""
    out.append("")
    out.append(
        f"Stored once per blob: {human_size(dedup)} instead of {human_size(logical)} — sharing saves {human_size(saved)}{pct}."
    )
    if doc["uncompressed_logical_size"] is not None:
        out.append(
            f"Unpacked, by content: {human_size(doc['uncompressed_deduplicated_size'])} instead of "
            f"{human_size(doc['uncompressed_logical_size'])}."
        )
    elif doc.get("uncompressed_unknown"):
        out.append(
            f"Unpacked totals unknown ('?'): {plural(len(doc['uncompressed_unknown']), 'image')} with layers whose "
            "uncompressed size is unknown or ambiguous: rerun with --exact."
        )
    for i in doc["images"]:
        if i.get("kind") == "artifact":
            out.append(
                f"  {i['reference']}: an artifact ({i['artifact_type']}): its blobs are counted compressed; "
                "unpacked sizes not applicable (not filesystem layers)"
            )
        elif i.get("uncompressed_note"):
            out.append(f"  ? {i['reference']}: {i['uncompressed_note']}")
    if doc["bases"]:
        out.append("")
        out.append("Common bases:")
        for g in doc["bases"]:
            unc = (
                f", {human_size(g['uncompressed_saved_size'])} unpacked"
                if g["uncompressed_saved_size"] is not None
                else ""
            )
            out.append(
                f"  {len(g['images'])} images share base {g['label']} ({g['layers']} layer{'s' if g['layers'] != 1 else ''}, "
                f"{human_size(g['size'])}): {human_size(g['saved_size'])} saved{unc} [{g['source']}]"
            )
            if g["same_blobs"] < len(g["images"]):
                others = len(g["images"]) - g["same_blobs"]
                verb = "holds" if others == 1 else "hold"
                out.append(f"    {others} of them {verb} that content in other blobs (recompressed)")
    shared = [layer for layer in doc["layers"] if len(layer["used_by"]) > 1 or layer["same_content_as"]]
    if shared:
        out.append("")
        lrows = [
            (
                _short(layer["digest"]),
                human_size(layer["size"]),
                human_size(layer["uncompressed_size"]),
                len(layer["used_by"]),
                ", ".join(_short(d) for d in layer["same_content_as"]) or "-",
            )
            for layer in sorted(shared, key=lambda x: (-len(x["used_by"]), -x["size"]))
        ]
        out.append(
            text_table(lrows, ["shared layer", "size", "unpacked", "images", "same content as"], markdown)
        )
    if doc.get("options", {}).get("matrix"):
        refs = [i["reference"] for i in doc["images"]]
        short = [f"#{n + 1}" for n in range(len(refs))]
        cell: dict[tuple[str, str], str] = {}
        for p in doc["pairs"]:
            text = f"{human_size(p['shared_size'])} / {p['common_prefix_layers']}"
            cell[(p["a"], p["b"])] = cell[(p["b"], p["a"])] = text
        mrows = [(f"#{n + 1} {a}", *[cell.get((a, b), "—") for b in refs]) for n, a in enumerate(refs)]
        out.append("")
        out.append("Pairwise overlap (shared bytes / common leading layers):")
        out.append(text_table(mrows, ["", *short], markdown))
    out.append("")
    out.append(
        "Sizes in IEC units; compressed sizes count blobs by digest, unpacked sizes count content by diff_id."
    )
    return join_lines(out, markdown)


def _basis_text(basis: str | None) -> str:
    """How a container size was obtained, for the vm report's per-image lines."""
    if basis == "exact":
        return "; container size exact (streamed)"
    if basis == "cheap":
        return "; container size from gzip trailers / zstd headers (--exact streams)"
    return ""


def vm_text(doc: dict[str, Any], *, markdown: bool = False) -> str:
    """Each image as a VM, the fleet comparison, and the parameters with their sources."""
    rows = [
        (
            i["reference"],
            f"{i['os']['pretty_name'] or i['os']['id'] or 'none'} → {i['family']}",
            human_size(i["container_size"]),
            f"{human_size(i['vm_used_size'])} [{human_size(i['vm_used_low'])}–{human_size(i['vm_used_high'])}]",
            human_size(i["vm_download_size"]),
            human_size(i["vm_disk_size"]),
            _ratio(i["vm_used_size"] / i["container_size"] if i["container_size"] else None),
        )
        for i in doc["images"]
    ]
    rows += [  # no VM figures: the container size is unknown or ambiguous (the note below says why)
        (i["reference"], f"{i['os']['pretty_name'] or i['os']['id'] or 'none'} → {i['family']}", *["?"] * 5)
        for i in doc.get("unknown_images", ())
    ]
    out = []
    if markdown:
        out.append("### Container vs VM image\n")
    out.append(
        text_table(
            rows,
            ["image", "base OS → VM profile", "container", "VM used [range]", "VM download", "VM disk", "×"],
            markdown,
        )
    )
    for i in doc.get("unknown_images", ()):
        out.append(f"  ? {i['reference']}: no VM figures: {i['note']}")
    for a in doc.get("artifacts", ()):
        out.append(
            f"  {a['reference']}: an artifact ({a['artifact_type']}), not a container image: no VM figures; "
            f"{plural(a['blobs'], 'blob')}, {human_size(a['compressed_size'])} compressed; uncompressed not applicable"
        )
    f = doc["fleet"]
    if f:
        out.append("")
        if not f.get("complete", True):
            out.append(
                f"Fleet totals are PARTIAL: they leave out {plural(len(f['left_out']), 'image')} whose size is unknown "
                f"({', '.join(f['left_out'])}): rerun with --exact."
            )
        out.append(
            f"Fleet: {plural(f['containers'], 'container')} ({f['replicas']} × {plural(len(doc['images']), 'image')}) store "
            f"{human_size(f['containers_size'])} (layers once: {human_size(f['unique_layers_size'])}"
            f" + writable {human_size(f['writable_size'])}); as {plural(f['containers'], 'VM')}: "
            f"{human_size(f['vms_used_size'])} used [{human_size(f['vms_used_low'])}–{human_size(f['vms_used_high'])}], "
            f"{human_size(f['vms_disk_size'])} provisioned."
        )
        out.append(
            f"Ratio: {_ratio(f['ratio'])} used [{_ratio(f['ratio_low'])}–{_ratio(f['ratio_high'])}], "
            f"{_ratio(f['disk_ratio'])} provisioned."
        )
    p = doc["parameters"]
    out.append("")
    out.append(
        f"Model (docs/vm-model.md): VM used = VM OS + (container − base layers); download = used ÷ "
        f"{p['download_ratio']['central']} [{p['download_ratio']['low']}–{p['download_ratio']['high']}]; "
        f"disk = max(default disk, used × {1 + p['headroom']:.2f}). Parameters: {p['origin']}."
    )
    for i in doc["images"]:
        out.append(
            f"  {i['reference']}: base {human_size(i['base_size'])} ({i['base_size_source']}); os: {i['os']['evidence']}"
            + _basis_text(i.get("container_size_basis"))
        )
    for name, fam in p["families"].items():
        out.append(
            f"  {name}: {fam['label']}; VM OS {human_size(fam['vm_os']['central'])} "
            f"[{human_size(fam['vm_os']['low'])}–{human_size(fam['vm_os']['high'])}], disk {human_size(fam['disk'])} "
            f"({fam['disk_source']}); confidence {fam['confidence']}; {fam['derivation']}"
        )
        if fam["components"]:
            parts = ", ".join(f"{component_label(k)} {human_size(v)}" for k, v in fam["components"].items())
            out.append(f"    why a VM is bigger: {parts}; the rest is package metadata, logs and free space")
        for src in fam["sources"]:
            out.append(f"    source: {src}")
    out.append("")
    out.append("Sizes in IEC units (1 GiB = 1024³ bytes); VM figures are estimates with the stated ranges.")
    return join_lines(out, markdown)
