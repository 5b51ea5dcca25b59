"""``ociinspect waste``, and the scan options and helpers it shares with ``ociinspect files``."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ociinspect.analyzers.waste import ANALYSIS_VERSION, analyze
from ociinspect.cli import cli
from ociinspect.cli.options import ReadContext, image_options, output_options, report_error
from ociinspect.content.scan import DEFAULT_MAX_UNCOMPRESSED, ScanOptions, scan_image
from ociinspect.errors import ExitCode, OciInspectError, UsageError
from ociinspect.image.loader import load, load_all_platforms
from ociinspect.model.entries import LayerScan
from ociinspect.model.image import Image
from ociinspect.reports import render, safe_text
from ociinspect.reports.data import error_document
from ociinspect.reports.waste import analysis_document, dive_export, waste_document
from ociinspect.store import Store

__all__ = [
    "ScanSettings",
    "each_image",
    "raise_exit",
    "scan_layers",
    "scan_options",
    "scan_reference",
    "waste_of",
]

if TYPE_CHECKING:
    from ociinspect.sources.base import Source

F = TypeVar("F", bound=Callable[..., Any])
_T = TypeVar("_T")

#: Images smaller than this (compressed bytes to scan) get no progress bar: they take well under a second.
PROGRESS_MIN_BYTES = 64 << 20

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)b?\s*$", re.IGNORECASE)


class _SizeType(click.ParamType):  # type: ignore[type-arg]
    """Bytes, with an optional unit: ``512MiB``, ``2G`` (= GiB), ``1.5GB`` (decimal), ``1000000``."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        m = _SIZE.match(str(value))
        if not m:
            self.fail(f"{value!r} is not a size such as 512MiB, 2GiB or 1000000", param, ctx)
        number, unit, binary = m.groups()
        power = "kmgtp".find(unit.lower()) + 1 if unit else 0
        base = 1000 if (unit and not binary and str(value).strip().lower().endswith("b")) else 1024
        return int(float(number) * base**power)


@dataclasses.dataclass(frozen=True)
class ScanSettings:
    """The scan options of a command line, and where the cache lives (``None``: no cache)."""

    options: ScanOptions
    cache_dir: Path | None

    def store(self) -> Store | None:
        return Store(self.cache_dir) if self.cache_dir is not None else None


def scan_options(func: F) -> F:
    """``--hash``, ``--cache-dir``, ``--no-cache``, ``--max-uncompressed``, ``--workers``, ``--no-estargz``;
    the command receives ``scan: ScanSettings``."""

    @click.option("--hash", "hash_files", is_flag=True, help="Hash every file's content (finds duplicates).")
    @click.option(
        "--cache-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Directory of the layer-index cache (default: $XDG_CACHE_HOME/ociinspect).",
    )
    @click.option("--no-cache", is_flag=True, help="Neither read nor write the layer-index cache.")
    @click.option(
        "--max-uncompressed",
        type=_SizeType(),
        default=DEFAULT_MAX_UNCOMPRESSED,
        show_default="64GiB",
        help="Refuse a layer that inflates past SIZE bytes (decompression bombs).",
    )
    @click.option(
        "--workers", type=click.IntRange(1, 32), default=4, show_default=True, help="Layers scanned at once."
    )
    @click.option(
        "--no-estargz",
        is_flag=True,
        help="Stream eStargz layers too, instead of reading their table of contents with Range requests.",
    )
    @functools.wraps(func)
    def wrapper(
        *args: Any,
        hash_files: bool,
        cache_dir: Path | None,
        no_cache: bool,
        max_uncompressed: int,
        workers: int,
        no_estargz: bool,
        **kwargs: Any,
    ) -> Any:
        if no_cache and cache_dir is not None:
            raise UsageError("--cache-dir and --no-cache contradict each other")
        from ociinspect.store import default_cache_dir

        settings = ScanSettings(
            ScanOptions(
                hash_files=hash_files,
                max_uncompressed=max_uncompressed,
                workers=workers,
                use_estargz_toc=not no_estargz,
            ),
            None if no_cache else (cache_dir or default_cache_dir()),
        )
        return func(*args, scan=settings, **kwargs)

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr for long scans, only when stderr is a terminal."""
    if total < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr, show_pos=False) as bar:
        yield bar.update


def each_image(
    read: ReadContext,
    reference: str,
    settings: ScanSettings,
    work: Callable[[Source, Image, Store | None], _T],
) -> list[_T]:
    """Load the image(s) ``reference`` names (one, or every platform) and call ``work`` on each, with the open
    source and the store (``None`` with ``--no-cache``).  Errors carry the reference.  Cost: the manifest and
    config reads, plus what ``work`` does."""
    options = dataclasses.replace(read.options, sizes="none")
    store = settings.store()
    out = []
    try:
        with read.session.source(reference) as src:
            try:
                images = load_all_platforms(src, options) if read.all_platforms else [load(src, options)]
                for image in images:
                    if image.is_artifact:
                        raise UsageError(
                            f"{image.digest} is an artifact ({image.artifact_type}), not a container image",
                            hint="waste and files read container images only",
                        )
                    out.append(work(src, image, store))
            except OciInspectError as exc:
                raise exc.with_context(f"reading {src.reference}") from None
    finally:
        if store is not None:
            store.close()
    return out


def scan_layers(source: Source, image: Image, settings: ScanSettings, store: Store | None) -> list[LayerScan]:
    """Index every layer of ``image`` through the cache, with a progress bar on a terminal.  Cost: per layer
    nothing (cached), two Range reads (eStargz) or one streamed read of the blob."""
    total = sum(layer.size for layer in image.layers)
    with _progress(total, f"scanning {len(image.layers)} layers") as progress:
        return scan_image(source, image, settings.options, cache=store, progress=progress)


def scan_reference(
    read: ReadContext, reference: str, settings: ScanSettings
) -> list[tuple[Image, list[LayerScan]]]:
    """Every image ``reference`` names with its layer indexes (see :func:`each_image`, :func:`scan_layers`)."""
    return each_image(
        read, reference, settings, lambda src, image, store: (image, scan_layers(src, image, settings, store))
    )


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
    scans = scan_layers(source, image, settings, store)
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
    exports = []
    want_export = json_dive is not None
    for ref in refs:
        try:
            results = each_image(
                read,
                ref,
                scan,
                lambda src, image, store: waste_of(src, image, scan, store, dive_json=want_export),
            )
            for doc, export in results:
                docs.append(doc)
                if export is not None:
                    exports.append(export)
        except OciInspectError as exc:
            errors.append(exc)
            report_error(exc)
            docs.append(error_document(ref, exc))
    if json_dive is not None and exports:
        if len(exports) != 1:
            raise UsageError(
                f"--json-dive writes one image, but {len(exports)} were analysed",
                hint="name one reference and one platform",
            )
        json_dive.write_text(json.dumps(exports[0], indent=2) + "\n")
    shown = docs if fmt == "json" else [{**d, "table_top": top} for d in docs if "error" not in d]
    if shown:
        click.echo(render("waste", fmt, shown, as_list=len(refs) > 1 or read.all_platforms))
    for d in docs:
        for w in d.get("warnings", ()):
            click.echo(safe_text(f"ociinspect: warning: {d['reference']}: {w}"), err=True)
    raise_exit(errors, len(refs))


def raise_exit(errors: list[OciInspectError], inputs: int) -> None:
    """Exit 4 when some inputs failed, the (largest) error's code when all did, else return."""
    if not errors:
        return
    if len(errors) < inputs:
        raise SystemExit(int(ExitCode.PARTIAL))
    raise SystemExit(max(int(e.exit_code) for e in errors))
