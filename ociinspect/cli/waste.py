"""``ociinspect waste``: dive's efficiency and wasted bytes, no daemon; its documents come from the cache when
they can (:func:`waste_of`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ociinspect.analyzers.waste import ANALYSIS_VERSION, analyze
from ociinspect.cli import cli
from ociinspect.cli.options import (
    emit,
    image_options,
    output_options,
    progress_bar,
    report_error,
    scan_options,
)
from ociinspect.errors import OciInspectError, UsageError
from ociinspect.model.image import Image
from ociinspect.reports.data import error_document
from ociinspect.reports.waste import analysis_document, dive_export, waste_document
from ociinspect.session import ReadContext, ScanSettings, each_image, exit_code, scan_layers

__all__ = ["waste_of"]

if TYPE_CHECKING:
    from ociinspect.sources.base import Source
    from ociinspect.store import Store


def _analysis_key(image: Image, hashed: bool) -> str:
    """The store key of an image's analysis: it depends only on the ordered layer digests (and the analyzer)."""
    text = "\n".join(
        [f"v{ANALYSIS_VERSION}", "hashed" if hashed else "plain", *(x.digest for x in image.layers)]
    )
    return "waste-analysis:sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _cached_document(image: Image, settings: ScanSettings, store: Store) -> dict[str, Any] | None:
    """The document from cached facts alone (no entry decoded, nothing analysed), when every layer's index and
    the analysis are in the store.  Cost: one small read per layer and one for the analysis."""
    opts = settings.options
    infos = []
    for layer in image.layers:
        info = store.get_scan(
            layer.digest, need_hash=opts.hash_files, allow_toc=opts.use_estargz_toc, entries=False
        )
        if info is None:
            return None
        infos.append(info)
    fact = store.get_fact(_analysis_key(image, all(i.hashed for i in infos)))
    if fact is None:
        return None
    try:
        return waste_document(image, infos, json.loads(fact))
    except (ValueError, KeyError, TypeError):
        return None  # an unreadable cached analysis: compute it again


def waste_of(
    source: Source, image: Image, settings: ScanSettings, store: Store | None, *, dive_json: bool = False
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The ``waste`` document of one image (and dive's export when ``dive_json``), from the cache when it can.

    Cost: warm — a few store reads; cold — :func:`scan_layers` plus :func:`ociinspect.analyzers.waste.analyze`.
    """
    if store is not None and not dive_json:
        cached = _cached_document(image, settings, store)
        if cached is not None:
            return cached, None
    scans = scan_layers(source, image, settings, store, progress_bar)
    hashed = all(s.hashed for s in scans)
    report = analyze([s.entries for s in scans], hashed=hashed)
    analysis = analysis_document(report)
    if store is not None:
        store.put_fact(_analysis_key(image, hashed), json.dumps(analysis, separators=(",", ":")))
    export = dive_export(image, scans, report) if dive_json else None
    return waste_document(image, scans, analysis), export


@cli.command()
@click.argument("refs", nargs=-1, required=True)
@click.option(
    "--top",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Inefficient and duplicate files listed in table/markdown output (0: all; JSON lists all).",
)
@click.option(
    "--json-dive",
    "json_dive",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write dive's --json export (one image) to FILE, for scripts that parse dive.",
)
@scan_options
@image_options
@output_options
def waste(
    refs: tuple[str, ...], top: int, json_dive: Path | None, scan: ScanSettings, read: ReadContext, fmt: str
) -> None:
    """Wasted space in an image, with dive's numbers: efficiency, wasted bytes, user wasted percent and the
    files stored in several layers — streamed from a registry, an OCI layout or an archive, no daemon needed.

    Also reported: bytes deleted by whiteouts, bytes overwritten, per-layer added/modified/removed counts,
    and (with --hash) files duplicated by content.  Layer indexes are cached by digest, so a second run
    reads nothing but the manifest and config.  eStargz layers are indexed from their table of contents.
    Definitions: docs/waste.md.

    \b
    Examples:
      ociinspect waste docker://localhost:5000/app:1.0
      ociinspect waste oci:build/layout:latest --hash --format json
      ociinspect waste docker-archive:app.tar --json-dive dive.json
    """
    docs: list[dict[str, Any]] = []
    errors: list[OciInspectError] = []
    exports: list[dict[str, Any]] = []
    for ref in refs:
        try:
            for doc, export in each_image(read, ref, scan, _waste_work(scan, json_dive is not None)):
                docs.append(doc)
                exports.extend([export] if export is not None else [])
        except OciInspectError as exc:
            errors.append(exc)
            report_error(exc)
            docs.append(error_document(ref, exc))
    _write_dive_export(json_dive, exports)
    if fmt != "json":
        docs = [{**d, "table_top": top} for d in docs if "error" not in d]
    code = exit_code(errors, read=len(refs) - len(errors))
    emit("waste", fmt, docs, code=code, as_list=len(refs) > 1 or read.all_platforms)


def _waste_work(
    scan: ScanSettings, dive_json: bool
) -> Callable[[Source, Image, Store | None], tuple[dict[str, Any], dict[str, Any] | None]]:
    return lambda src, image, store: waste_of(src, image, scan, store, dive_json=dive_json)


def _write_dive_export(path: Path | None, exports: list[dict[str, Any]]) -> None:
    """dive's ``--json`` export of the one image analysed, to ``path`` (``--json-dive``)."""
    if path is None or not exports:
        return
    if len(exports) != 1:
        raise UsageError(
            f"--json-dive writes one image, but {len(exports)} were analysed",
            hint="name one reference and one platform",
        )
    path.write_text(json.dumps(exports[0], indent=2) + "\n")
