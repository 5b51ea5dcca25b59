"""``ociinspect inspect``."""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ociinspect import threads, verbs
from ociinspect.cli import cli
from ociinspect.cli.options import emit, image_options, jobs, load_for_command, output_options, report_error
from ociinspect.errors import OciInspectError
from ociinspect.model.image import Image
from ociinspect.model.reference import Reference
from ociinspect.reports.data import error_document, inspect_document
from ociinspect.session import ReadContext, exit_code

if TYPE_CHECKING:
    from ociinspect.analyzers.vm import VmParameters
    from ociinspect.model.osinfo import OsInfo

_T = TypeVar("_T")


@cli.command()
@click.argument("refs", nargs=-1, required=True)
@click.option(
    "--exact",
    is_flag=True,
    help="Stream every layer to count its uncompressed bytes (verifies digests and diff_ids).",
)
@click.option(
    "--os/--no-os",
    "with_os",
    default=True,
    show_default=True,
    help="Find the base OS and its VM equivalent (reads the start of the base layer once; cached by digest).",
)
@image_options
@output_options
def inspect(refs: tuple[str, ...], exact: bool, with_os: bool, read: ReadContext, fmt: str) -> None:
    """Show an image's digest, platform, config and layers with compressed and uncompressed sizes.

    REFS are image references: docker://HOST/REPO[:TAG][@DIGEST] (or a bare NAME), oci:DIR[:TAG|@DIGEST],
    oci-archive:FILE[:TAG], docker-archive:FILE[:REPO:TAG]. Several refs are read concurrently.

    Uncompressed sizes come from the gzip trailer / zstd header (a few bytes per layer); each says its
    source. --exact streams the layers instead. The base OS comes from /etc/os-release in the base layer
    (read only up to that file, then cached), with a one-line VM equivalent (see `ociinspect vm`).

    \b
    Examples:
      ociinspect inspect oci:fixtures/demo:latest
      ociinspect inspect docker://localhost:5000/app:1.0 --platform linux/arm64 -f json
    """
    if exact:
        read.options = dataclasses.replace(read.options, sizes="exact")
    with _Background(jobs()) as background:
        tail = _Tail(read, background, with_os=with_os)
        # errors reported in order below
        results = load_for_command(read, refs, with_os=with_os, report=False, on_chosen=tail.start)
        vm_params, counts, failures = tail.collect()
    docs = []
    for r in results:
        if r.error:
            report_error(r.error)
            docs.append(error_document(r.reference, r.error))
        for img, info in itertools.zip_longest(r.images, r.os):
            docs.append(_document(read, img, info, vm_params, counts, failures))
    errors = [r.error for r in results if r.error]
    code = exit_code(errors, read=len(results) - len(errors))
    emit("inspect", fmt, docs, code=code, as_list=len(refs) > 1 or read.all_platforms)


def _vm_parameters() -> VmParameters:
    """The VM model's parameters, with :mod:`ociinspect.analyzers.vm` (for :func:`_document`) and the base-OS
    reader (for every image read) imported.  Cost: ~5–10 ms of imports and TOML parsing (run in a background
    thread while the registry answers)."""
    from ociinspect.analyzers import vm  # noqa: F401  (imported here, off the main thread's path)
    from ociinspect.analyzers.vm_profiles import load_parameters
    from ociinspect.content import osdetect  # noqa: F401

    return load_parameters()


class _Background:
    """A thread pool created on first use (``workers`` threads at most), waited for on exit."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._pool: threads.Pool | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., _T], *args: Any) -> threads.Future[_T]:
        with self._lock:
            if self._pool is None:
                self._pool = threads.Pool(self._workers, "ociinspect-inspect")
            return self._pool.submit(fn, *args)

    def __enter__(self) -> _Background:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _document(
    read: ReadContext,
    img: Image,
    info: OsInfo | None,
    params: VmParameters | None,
    counts: dict[str, int],
    failures: dict[str, OciInspectError],
) -> dict[str, Any]:
    """The ``inspect`` document of one image: its figures, base OS and VM line, and its referrer count
    (``None`` with a warning when the registry could not say).  Cost: no request (counts are fetched before)."""
    vm = None
    if info is not None and params is not None:
        from ociinspect.analyzers.vm import estimate_for

        vm = estimate_for(img, info, params)
    doc = inspect_document(img, os=info, vm=vm)
    failed = failures.get(img.index_digest or img.digest)
    if failed is not None:
        doc["referrers"] = None
        doc["warnings"] = [*doc.get("warnings", ()), f"referrers not known: {failed.message}"]
        return doc
    count = verbs.image_referrer_count(read.session, img, counts)  # local: None; registry: from ``counts``
    if count is not None:
        doc["referrers"] = count
    return doc


class _Tail:
    """What ``inspect`` adds to the images, in background threads instead of after every image and its OS:

    - the referrer count of every registry image's top manifest (its index when it came from one), by subject
      digest, asked from the loader's worker threads (:meth:`start`) as soon as the image's manifest is chosen
      — before its config and layers are read — so it runs while they are read, the base OS is looked for and
      the other refs are read: one request per distinct subject (+ one manifest GET on registries without the
      referrers API), ``-j`` in flight at once; local images: no request, and none for a reference whose
      manifest or platform could not be resolved (an image whose config or layers then fail had it asked: its
      count is not shown);
    - the VM model's parameters (~5-10 ms of imports and TOML parsing, CPU only) when the base OS is asked for,
      from the start, so they fill the waits for the registry's answers.
    """

    def __init__(self, read: ReadContext, background: _Background, *, with_os: bool) -> None:
        self._read = read
        self._background = background
        self._lock = threading.Lock()
        self._asked: dict[str, threads.Future[int]] = {}
        # read at once: imports and parsing (CPU) that fill the waits for the registry's answers
        self._params = background.submit(_vm_parameters) if with_os else None

    def start(self, reference: Reference, subject: str) -> None:
        """Ask the count of ``subject`` (an image's subject digest in ``reference``'s repository) unless asked
        already.  Cost: no request in this thread."""
        if not reference.is_registry:
            return
        with self._lock:
            if subject not in self._asked:
                self._asked[subject] = self._background.submit(
                    verbs.referrer_count, self._read.session, reference, subject
                )

    def collect(self) -> tuple[VmParameters | None, dict[str, int], dict[str, OciInspectError]]:
        """Wait for everything started: the VM parameters (``None`` when the base OS was not asked for), and
        the referrer counts and failures by subject digest."""
        counts: dict[str, int] = {}
        failures: dict[str, OciInspectError] = {}
        with self._lock:
            asked, params = list(self._asked.items()), self._params
        for subject, future in asked:
            try:
                count = future.result()
            except OciInspectError as exc:
                failures[subject] = exc
                continue
            counts[subject] = count
        return (params.result() if params is not None else None), counts, failures
