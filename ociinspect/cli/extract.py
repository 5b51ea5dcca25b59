"""``ociinspect files REF --cat PATH`` and ``--extract PATH… -o DIR``: the command-line side of
:mod:`ociinspect.content.extract` (used by :mod:`ociinspect.cli.files`)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ociinspect.content.extract import ImageFiles, image_path
from ociinspect.errors import UsageError
from ociinspect.reports import safe_text
from ociinspect.session import ReadContext, ScanSettings, each_image

if TYPE_CHECKING:
    from ociinspect.model.image import Image
    from ociinspect.sources.base import Source
    from ociinspect.store import Store

__all__ = ["cat_or_extract"]


def cat_or_extract(
    read: ReadContext,
    ref: str,
    scan: ScanSettings,
    *,
    cat: str | None,
    extract: tuple[str, ...],
    outdir: Path | None,
) -> None:
    """``--cat``: the file's final bytes on stdout, exactly (written only once the layer holding it was read
    whole and verified).  ``--extract``: the paths written under ``outdir``; a summary on stderr.  Cost: the
    layers from the top down to the one holding each path (none when the layer cache knows them), plus the
    layers holding the bytes — see :mod:`ociinspect.content.extract`."""
    if cat is not None and extract:
        raise UsageError(
            "--cat and --extract go separately", hint="--cat PATH for stdout, --extract PATH -o DIR"
        )
    if extract and outdir is None:
        raise UsageError("--extract needs -o DIR (the directory to write into)")
    if read.all_platforms:
        raise UsageError("--cat/--extract read one platform", hint="pick it with --platform OS/ARCH")
    wanted = [image_path(p) for p in ((cat,) if cat is not None else extract)]

    def work(src: Source, image: Image, store: Store | None) -> None:
        with ImageFiles(src, image, cache=store, options=scan.options) as files:
            if cat is not None:
                with files.open(wanted[0]) as data:
                    out = click.get_binary_stream("stdout")
                    shutil.copyfileobj(data, out, 1 << 20)
                    out.flush()
                return
            assert outdir is not None
            result = files.extract(wanted, outdir)
            for line in result.skipped:
                click.echo(f"ociinspect: skipped {safe_text(line)}", err=True)
            click.echo(
                f"ociinspect: wrote {len(result.written)} entries under {safe_text(str(outdir))} "
                f"(streamed {len(files.streamed)} of {len(image.layers)} layers)",
                err=True,
            )

    each_image(read, ref, scan, work, what="files --cat/--extract")
