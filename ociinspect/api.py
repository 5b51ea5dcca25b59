"""The public library: :class:`Session`, with one method per command's analysis (docs/library.md).

``ociinspect.Session`` is :class:`ociinspect.session.Session` (opening references, loading images, the registry
client) plus the analyses every command runs — ``waste``, ``files``, ``compare``, ``vm``, ``check``, ``diff`` —
and the everyday reads — ``manifest``, ``config``, ``digest``, ``tags``, ``repositories``, ``referrers``,
``blob``.  Each method calls the code its command calls (:func:`ociinspect.session.scan_reference`, the
analyzers, :func:`ociinspect.policy.run.gather`, :mod:`ociinspect.verbs`, ``ociinspect diff``'s reader) — there
is no second pipeline — and returns a frozen value whose ``to_json()`` is the document ``--format json`` prints
(without the ``error`` entries: the library raises the first error instead).

This module sits at the top of the flow (docs/architecture.md, layer 10, beside ``cli/``), because the JSON
documents come from ``reports/``.  Nothing is printed; progress is off.  Sizes are ``int`` bytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ociinspect import session as _session
from ociinspect.errors import OciInspectError, UsageError
from ociinspect.image.loader import LoadOptions, parse_platform
from ociinspect.model.entries import LayerScan
from ociinspect.model.image import Image, Platform, RawManifest
from ociinspect.model.osinfo import OsInfo
from ociinspect.model.record import record
from ociinspect.model.reference import Reference

if TYPE_CHECKING:
    from ociinspect.analyzers.diff import ImageDiff
    from ociinspect.analyzers.sharing import SharingReport
    from ociinspect.analyzers.vm import FleetEstimate, VmEstimate, VmParameters
    from ociinspect.analyzers.waste import WasteReport
    from ociinspect.policy.rules import ImageCheck, Policy
    from ociinspect.verbs import Referrer

__all__ = ["CheckResult", "CompareResult", "FilesResult", "Session", "VmResult", "WasteResult"]


@record
class WasteResult:
    """``waste`` of one image: the image, its layer indexes and dive's figures (:class:`WasteReport`, bytes)."""

    image: Image
    scans: tuple[LayerScan, ...]
    report: WasteReport

    def to_json(self) -> dict[str, Any]:
        """The document ``ociinspect waste --format json`` prints for this image."""
        from ociinspect.reports.waste import analysis_document, waste_document

        return waste_document(self.image, self.scans, analysis_document(self.report))


@record
class FilesResult:
    """``files`` of one image: its layer indexes and the listing asked for (largest files of the final
    filesystem, or what ``layer`` adds, modifies and removes)."""

    image: Image
    scans: tuple[LayerScan, ...]
    layer: int | None = None  # 0-based index into image.layers, or None: the final filesystem
    top: int = 20  # 0: everything
    path: str | None = None  # a directory (/usr/share) or a glob ('/usr/lib/*.so*')
    sort: str = "size"  # or "path"

    def to_json(self) -> dict[str, Any]:
        """The document ``ociinspect files --format json`` prints (same ``--layer/--top/--path/--sort``)."""
        from ociinspect.reports.waste import files_document

        return files_document(
            self.image, self.scans, layer=self.layer, top=self.top, path_filter=self.path, sort=self.sort
        )


@record
class CompareResult:
    """``compare``: shared and unique bytes across images (:class:`SharingReport`) and each image's base OS
    (by reference; empty with ``with_os=False``)."""

    report: SharingReport
    os: Mapping[str, OsInfo]

    def to_json(self) -> dict[str, Any]:
        """The document ``ociinspect compare --format json`` prints (without ``options``)."""
        from ociinspect.reports.data import compare_document

        return compare_document(self.report, os_by_ref=dict(self.os))


@record
class VmResult:
    """``vm``: each image as a VM (``estimates``), the fleet (``None`` when no image has figures), the model's
    parameters, the images without figures (``unknown``: image, OS, why) and the artifacts left out."""

    estimates: tuple[VmEstimate, ...]
    fleet: FleetEstimate | None
    params: VmParameters
    bases: tuple[str, ...]
    unknown: tuple[tuple[Image, OsInfo, str], ...]
    artifacts: tuple[Image, ...]

    def to_json(self) -> dict[str, Any]:
        """The document ``ociinspect vm --format json`` prints."""
        from ociinspect.reports.data import vm_document

        return vm_document(
            self.estimates,
            self.fleet,
            self.params,
            bases=self.bases,
            unknown=self.unknown,
            artifacts=self.artifacts,
        )


@record
class CheckResult:
    """``check``: the policy applied, one :class:`ImageCheck` per image read, the errors met (reference, error:
    a baseline or an allowed base that could not be read) and the exit code ``ociinspect check`` would return."""

    policy: Policy
    checks: tuple[ImageCheck, ...]
    errors: tuple[tuple[str, OciInspectError], ...]
    exit_code: int

    @property
    def passed(self) -> bool:
        """True when the exit code is 0 (no rule of severity ``error`` failed or was undecidable)."""
        return self.exit_code == 0

    def to_json(self) -> dict[str, Any]:
        """The document ``ociinspect check --format json`` prints."""
        from ociinspect.reports.ci import check_document

        return check_document(self.policy, self.checks, self.errors, exit_code=self.exit_code)


def _platform(platform: Platform | str | None) -> Platform | None:
    return parse_platform(platform) if isinstance(platform, str) else platform


def _whole(what: str, value: object, minimum: int | None) -> int:
    """``value`` when it is an ``int`` (not a bool) ≥ ``minimum`` (``None``: any), else :class:`UsageError` (cost:
    none): the library's numeric arguments are checked where they enter, not where a comparison raises TypeError."""
    if not isinstance(value, int) or isinstance(value, bool) or (minimum is not None and value < minimum):
        at_least = "" if minimum is None else f" ≥ {minimum}"
        raise UsageError(f"{what}={value!r} is not a whole number{at_least}", hint=f"pass {what} as an int")
    return value


def _refs(what: str, refs: Sequence[str] | str) -> list[str]:
    """A list of references from one reference or a sequence of them (never a str's characters)."""
    if isinstance(refs, str):
        return [refs]
    if not isinstance(refs, Sequence):
        raise UsageError(f"{what}: expected a reference or a list of references, got {type(refs).__name__}")
    return list(refs)


def _path(what: str, value: object) -> Path | None:
    if value is None or isinstance(value, Path):
        return value
    if isinstance(value, str):
        return Path(value)
    raise UsageError(f"{what}={value!r} is not a path", hint=f"pass {what} as a str or pathlib.Path")


class Session(_session.Session):
    """A :class:`ociinspect.session.Session` (same constructor: ``username=``, ``password=``, ``authfile=``,
    ``insecure=``, ``ca_file=``, ``plain_http=``, ``deadline=`` …) with one method per command.

    Image methods take ``platform`` (a :class:`Platform` or ``"linux/arm64"``; default: this host's Linux
    platform, as the CLI) and read one platform.  Layer-reading methods take ``cache_dir`` (the digest-keyed layer
    index cache, as ``--cache-dir``; default ``None``: no cache, nothing written to disk).  Errors are raised,
    typed (:class:`~ociinspect.errors.OciInspectError`, with ``hint`` and ``exit_code``).
    """

    def _read(self, platform: Platform | str | None, sizes: str = "cheap") -> _session.ReadContext:
        options = LoadOptions(platform=_platform(platform), sizes="exact" if sizes == "exact" else "cheap")
        return _session.ReadContext(self, options, all_platforms=False)

    @staticmethod
    def _scan(hash_files: bool, cache_dir: str | Path | None) -> _session.ScanSettings:
        from ociinspect.content.scan import ScanOptions

        return _session.ScanSettings(ScanOptions(hash_files=hash_files), _path("cache_dir", cache_dir))

    def _scanned(
        self,
        ref: str,
        platform: Platform | str | None,
        hash_files: bool,
        cache_dir: str | Path | None,
        what: str,
    ) -> tuple[Image, list[LayerScan]]:
        read, settings = self._read(platform), self._scan(hash_files, cache_dir)
        found = _session.each_image(
            read,
            ref,
            settings,
            lambda src, image, store: (image, _session.scan_layers(src, image, settings, store)),
            what=what,
        )
        return found[0]

    # ---- analyses ---------------------------------------------------------------------------------------------

    def waste(
        self,
        ref: str,
        *,
        hash_files: bool = False,
        platform: Platform | str | None = None,
        cache_dir: str | Path | None = None,
    ) -> WasteResult:
        """Wasted space in one image, with dive's numbers (``ociinspect waste``; definitions: docs/waste.md).

        ``hash_files`` hashes every file (finds duplicates by content: ``report.duplicates``).  Cost: the
        manifest and config reads, then each layer streamed once (compressed bytes; eStargz: two Range reads),
        none with a warm ``cache_dir``.  Figures in bytes; ``report.dive.efficiency`` a ratio 0–1.

        Example: ``s.waste("oci:fixtures/demo:latest", hash_files=True).report.dive.wasted_bytes`` (docs/library.md).
        """
        from ociinspect.analyzers.waste import analyze

        image, scans = self._scanned(ref, platform, hash_files, cache_dir, "waste")
        report = analyze([s.entries for s in scans], hashed=all(s.hashed for s in scans))
        return WasteResult(image, tuple(scans), report)

    def files(
        self,
        ref: str,
        layer: int | None = None,
        *,
        top: int | None = None,
        path: str | None = None,
        sort: str = "size",
        platform: Platform | str | None = None,
        cache_dir: str | Path | None = None,
    ) -> FilesResult:
        """The files of one image (``ociinspect files``): the ``top`` largest of its final filesystem (default
        20), or with ``layer`` (0 the base, -1 the top) what that layer adds, modifies and removes (default: all).

        ``path`` keeps paths under a directory or matching a glob; ``sort`` is ``"size"`` or ``"path"``.  Cost:
        that of :meth:`waste` (each layer streamed once, none with a warm cache); sizes in bytes.

        Example: ``s.files("oci:fixtures/demo:latest", layer=-1).to_json()["files"]`` (docs/library.md).
        """
        if sort not in ("size", "path"):
            raise UsageError(f"files: sort={sort!r} is not 'size' or 'path'")
        if path is not None and not isinstance(path, str):
            raise UsageError(
                f"files: path={path!r} is not text", hint="pass a directory or a glob, e.g. '/usr/lib'"
            )
        if top is not None:
            _whole("files: top", top, 0)
        if layer is not None:
            _whole("files: layer", layer, None)
        image, scans = self._scanned(ref, platform, False, cache_dir, "files")
        index = None
        if layer is not None:
            count = len(image.layers)
            if not -count <= layer < count:
                raise UsageError(
                    f"layer {layer}: the image has {count} layers (0 … {count - 1}, or -1 … -{count})"
                )
            index = layer % count
        limit = top if top is not None else (20 if index is None else 0)
        return FilesResult(image, tuple(scans), index, limit, path, sort)

    def compare(
        self,
        refs: Sequence[str],
        *,
        bases: Sequence[str] = (),
        with_os: bool = True,
        exact: bool = False,
        platform: Platform | str | None = None,
    ) -> CompareResult:
        """Shared and unique bytes across two or more images (``ociinspect compare``; docs/sharing.md).

        ``bases`` are candidate base images; ``with_os`` finds each image's base OS (a partial read of its base
        layer); ``exact`` streams every layer when cheap uncompressed sizes are unknown.  The first reference
        that cannot be read raises its error.  Cost: per image the manifest, config and one 8–18 byte Range read
        per layer (cheap sizes), refs read concurrently.  Sizes in bytes (``None``: not known, with the reason).

        Example: ``s.compare(["oci:L:app1", "oci:L:app2"]).report.deduplicated_size`` (docs/library.md).
        """
        refs = _refs("compare", refs)
        bases = _refs("compare: bases", bases)
        if len(refs) < 2:
            raise UsageError(f"compare needs two or more images, {len(refs)} given", hint="name another ref")
        from ociinspect.analyzers.sharing import analyze

        results = self._load_all(refs, platform, exact, with_os=with_os)
        base_results = self._load_all(list(bases), platform, exact) if bases else []
        images = [img for r in results for img in r.images]
        os_by_ref = {img.reference: info for r in results for img, info in zip(r.images, r.os, strict=False)}
        report = analyze(images, bases=[img for r in base_results for img in r.images])
        return CompareResult(report, os_by_ref)

    def _load_all(
        self, refs: list[str], platform: Platform | str | None, exact: bool, *, with_os: bool = False
    ) -> list[_session.LoadResult]:
        read = self._read(platform, "exact" if exact else "cheap")
        results = self.load_many(refs, read.options, with_os=with_os)
        for r in results:
            if r.error is not None:
                raise r.error
        return results

    def vm(
        self,
        refs: Sequence[str] | str,
        *,
        replicas: int = 1,
        profile: str | Path | None = None,
        writable_layer: int | None = None,
        exact: bool = False,
        platform: Platform | str | None = None,
    ) -> VmResult:
        """What the same workloads would weigh as VM images (``ociinspect vm``; the model: docs/vm-model.md).

        ``replicas`` containers per image in the fleet; ``profile`` a VM-profile TOML overriding the bundled
        model; ``writable_layer`` bytes per container.  An image whose uncompressed size is not known gets no
        figures (``unknown``, with why; ``exact=True`` streams the layers).  Cost: as :meth:`compare` with the
        base OS (a partial read of each base layer, cached by digest in this session).  Figures in bytes.

        Example: ``s.vm("oci:fixtures/demo:latest", replicas=50).fleet`` (docs/library.md).
        """
        _whole("vm: replicas", replicas, 1)
        if writable_layer is not None:
            _whole("vm: writable_layer", writable_layer, 0)
        from ociinspect.analyzers.vm import analyse_fleet
        from ociinspect.analyzers.vm_profiles import load_parameters

        params = load_parameters(None if profile is None else str(profile))
        if writable_layer is not None:
            params = dataclasses.replace(params, writable_layer=writable_layer)
        results = self._load_all(_refs("vm", refs), platform, exact, with_os=True)
        pairs = [(img, info) for r in results for img, info in zip(r.images, r.os, strict=False)]
        got = analyse_fleet(pairs, params, replicas=replicas, rerun="exact=True")
        return VmResult(got.estimates, got.fleet, params, got.bases, got.unknown, got.artifacts)

    def check(
        self,
        refs: Sequence[str] | str,
        *,
        policy: Policy | str | Path | None = None,
        rules: Mapping[str, object] | None = None,
        baseline: str | None = None,
        exact: bool = False,
        platform: Platform | str | None = None,
        cache_dir: str | Path | None = None,
    ) -> CheckResult:
        """Check images against a policy (``ociinspect check``; rules: docs/policy.md).

        ``policy``: a :class:`~ociinspect.policy.rules.Policy`, or the path of a ``.ociinspect.toml``,
        ``pyproject.toml`` or dive ``.dive-ci`` file (never searched for: ``None`` means only ``rules``);
        ``rules`` maps rule ids to values as the flags give them (``{"max-layers": 10,
        "max-compressed-size": "200MB"}``); ``baseline`` an image to measure growth against.  An image that
        cannot be read raises its error.  Cost: manifests and configs once; size trailers only for size rules;
        each layer streamed once only for content rules.  The result's ``exit_code`` follows docs/cli.md.

        Example: ``s.check("oci:fixtures/demo:latest", rules={"max-layers": 2}).exit_code`` → 1.
        """
        from ociinspect.policy.files import load_policy
        from ociinspect.policy.flags import with_flags
        from ociinspect.policy.rules import Policy, exit_code
        from ociinspect.policy.run import gather

        if not isinstance(policy, Policy):
            where = _path("check: policy", policy)
            policy = Policy() if where is None else load_policy(where, search_from=Path.cwd())
        if rules is not None and not isinstance(rules, Mapping):
            raise UsageError(f"check: rules must map rule ids to values, got {type(rules).__name__}")
        if rules or baseline is not None:
            policy = with_flags(policy, dict(rules or {}), baseline=baseline)
        names = _refs("check", refs)
        read = self._read(platform, "exact" if exact else "cheap")
        checks, errors = gather(read, names, policy, self._scan(False, cache_dir))
        for ref, error in errors:
            if ref in names:
                raise error
        code = exit_code(checks, errors=[e for _, e in errors], warn_only=False)
        return CheckResult(policy, tuple(checks), tuple(errors), int(code))

    def diff(
        self,
        a: str,
        b: str,
        *,
        hash_files: bool = False,
        depth: int = 3,
        platform: Platform | str | None = None,
        cache_dir: str | Path | None = None,
    ) -> ImageDiff:
        """What changed from image ``a`` to image ``b`` (``ociinspect diff``; docs/diff.md): layers, size deltas,
        files added/removed/modified, where it grew (``depth`` levels), config changes.  ``identical`` is
        ``None`` when rewritten files could not be compared without ``hash_files``.

        Cost: both manifests and configs; the layers above the shared base of each image streamed once (none with
        a warm cache); the shared base only when needed.  Sizes in bytes.

        Example: ``s.diff("oci:L:app1", "oci:L:app2").files.added`` (docs/library.md).
        """
        from ociinspect.session import diff_references

        _whole("diff: depth", depth, 0)
        read = self._read(platform)
        result, _ = diff_references(read, a, b, self._scan(hash_files, cache_dir), depth=depth)
        return result

    # ---- everyday reads ---------------------------------------------------------------------------------------

    def manifest(
        self, ref: str | Reference, *, platform: Platform | str | None = None, index: bool = False
    ) -> RawManifest:
        """The manifest bytes exactly as served (``.data``), digest-verified (``ociinspect manifest``).  An index
        resolves to ``platform``'s manifest unless ``index=True``.  Cost: one manifest read + one per index
        level (:func:`ociinspect.verbs.manifest`)."""
        from ociinspect import verbs

        return verbs.manifest(self, ref, _platform(platform), index)

    def config(self, ref: str | Reference, *, platform: Platform | str | None = None) -> bytes:
        """The config blob's bytes, verified (``ociinspect config``).  Cost: :meth:`manifest` + one blob read of
        at most 8 MiB (:func:`ociinspect.verbs.config`)."""
        from ociinspect import verbs

        return verbs.config(self, ref, _platform(platform))

    def digest(self, ref: str | Reference, *, platform: Platform | str | None = None) -> str:
        """The digest of the manifest (or index) ``ref`` names (``ociinspect digest``).  Cost: one HEAD on a
        registry that sends ``Docker-Content-Digest``; one manifest read locally (:func:`ociinspect.verbs.digest`)."""
        from ociinspect import verbs

        return verbs.digest(self, ref, _platform(platform))

    def tags(self, repo: str) -> list[str]:
        """The tags of a registry repository (``HOST/REPO``) or an OCI layout (``oci:DIR``), as ``ociinspect
        tags``.  Cost: one GET per page; one read of index.json locally (:func:`ociinspect.verbs.tags`)."""
        from ociinspect import verbs

        return verbs.tags(self, repo)

    def repositories(self, registry: str) -> list[str]:
        """The registry's catalog (``ociinspect repos``).  Cost: one GET per page of up to 1000 names
        (:func:`ociinspect.verbs.repositories`)."""
        from ociinspect import verbs

        return verbs.repositories(self, registry)

    def referrers(self, ref: str | Reference, *, artifact_type: str | None = None) -> list[Referrer]:
        """The OCI 1.1 referrers (signatures, SBOMs, attestations) of the manifest ``ref`` names; each has
        ``to_json()``.  Registry references only.  Cost: one HEAD + one GET per page (+ one manifest GET on
        registries without the referrers API) (:func:`ociinspect.verbs.referrers`)."""
        from ociinspect import verbs

        return verbs.referrers(self, ref, artifact_type)

    def blob(self, ref: str | Reference, digest: str, out: BinaryIO) -> int:
        """Stream blob ``digest`` into ``out``, verified after the last chunk; returns its size in bytes.  Cost:
        one blob GET or local read, never held whole (:func:`ociinspect.verbs.blob`)."""
        from ociinspect import verbs

        return verbs.blob(self, ref, digest, out)
