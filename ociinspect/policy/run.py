"""One ``check`` run below the command line: gather the facts the enabled rules need for each image, and evaluate.

:func:`gather` prints nothing: it returns the checks and the errors (each with the reference it concerns); the
caller reports them.  Costs: see :func:`gather`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ociinspect.errors import NotFound, OciInspectError, UsageError
from ociinspect.image.loader import LoadOptions
from ociinspect.model.entries import LayerScan
from ociinspect.model.image import Image
from ociinspect.policy.rules import (
    GROWTH_RULES,
    Facts,
    GrowthExplanation,
    ImageCheck,
    Policy,
    evaluate,
    explain_growth,
    growth_explanation,
)
from ociinspect.session import Progress, ReadContext, ScanSettings, diff_loaded, scan_loaded

__all__ = ["Errors", "explain", "gather"]

#: the errors of a run, each with the reference it concerns (an image, the baseline or an allowed base)
Errors = list[tuple[str, OciInspectError]]

_Cache = dict[tuple[str, str], Image | OciInspectError]


def _load_per_platform(
    read: ReadContext, reference: str, image: Image, cache: _Cache, policy: Policy
) -> Image | OciInspectError:
    """``reference`` loaded for ``image``'s platform, once per (reference, platform).  Cost: its manifests and
    config; the uncompressed-size trailers only when a rule needs sizes (a size rule, or growth on the
    uncompressed basis)."""
    key = (reference, str(image.platform))
    if key not in cache:
        options: LoadOptions = dataclasses.replace(
            read.options,
            platform=image.platform or read.options.platform,
            sizes=read.options.sizes if policy.needs("sizes") else "none",
        )
        try:
            cache[key] = read.session.load(reference, options)
        except OciInspectError as exc:
            cache[key] = exc
    return cache[key]


def _load(read: ReadContext, refs: Sequence[str], policy: Policy, errors: Errors) -> list[tuple[str, Image]]:
    """The container images ``refs`` name (artifacts are usage errors).  Cost: the manifests and configs, and
    the uncompressed-size trailers only when a size rule needs them."""
    options = dataclasses.replace(read.options, sizes=read.options.sizes if policy.needs("sizes") else "none")
    loaded: list[tuple[str, Image]] = []
    for r in read.session.load_many(list(refs), options, all_platforms=read.all_platforms):
        if r.error is not None:
            errors.append((r.reference, r.error))
        for image in r.images:
            if image.is_artifact:
                why = f"{r.reference}: {image.digest} is an artifact ({image.artifact_type}), not a container image"
                errors.append((r.reference, UsageError(why, hint="check reads container images only")))
            else:
                loaded.append((r.reference, image))
    return loaded


def _scan(
    read: ReadContext,
    loaded: list[tuple[str, Image]],
    policy: Policy,
    scan: ScanSettings,
    progress: Progress | None,
    errors: Errors,
) -> dict[str, list[LayerScan]]:
    """Layer indexes of the loaded images, by digest, when a content rule needs them (hashes when one needs
    those).  Cost: each layer streamed once or read from the cache; no manifest or config is read again."""
    scans: dict[str, list[LayerScan]] = {}
    if not policy.needs("content"):
        return scans
    hashing = scan.options.hash_files or policy.needs("hashes")
    settings = dataclasses.replace(scan, options=dataclasses.replace(scan.options, hash_files=hashing))
    for reference in dict.fromkeys(ref for ref, _ in loaded):
        images = [image for ref, image in loaded if ref == reference]
        try:
            for image, layer_scans in zip(
                images, scan_loaded(read, reference, images, settings, progress), strict=True
            ):
                scans[image.digest] = layer_scans
        except OciInspectError as exc:
            errors.append((reference, exc))
    return scans


def _facts(
    read: ReadContext,
    image: Image,
    policy: Policy,
    scans: dict[str, list[LayerScan]],
    cache: _Cache,
    errors: Errors,
) -> Facts | None:
    """What the rules need of ``image``: its layer contents, its baseline, the allowed bases; ``None`` when the
    baseline cannot be read (the error is recorded).  Cost: the baseline's and bases' manifests and configs."""
    facts = Facts(image)
    if image.digest in scans:
        layer_scans = scans[image.digest]
        facts = dataclasses.replace(
            facts,
            layers=[s.entries for s in layer_scans],
            hashed=all(s.hashed for s in layer_scans),
            layer_sizes=[s.uncompressed_size for s in layer_scans],
        )
    if policy.baseline and policy.needs("baseline"):
        found = _load_per_platform(read, policy.baseline, image, cache, policy)
        if isinstance(found, NotFound):
            note = f"baseline {policy.baseline} not found (first push?): growth not checked"
            facts = dataclasses.replace(facts, baseline_note=note)
        elif isinstance(found, OciInspectError):
            errors.append((policy.baseline, found.with_context("reading the baseline")))
            return None
        else:
            facts = dataclasses.replace(facts, baseline=found)
    allowed = policy.rules.get("allowed-base-images")
    if allowed is not None and allowed.enabled and not _has_base_annotations(image):
        bases = []
        assert isinstance(allowed.value, tuple)
        for entry in allowed.value:
            if entry.startswith(("sha256:", "sha512:")):
                continue  # a bare digest can only match the annotations
            base = _load_per_platform(read, entry, image, cache, policy)
            if isinstance(base, Image):
                bases.append(base)
            elif not isinstance(base, NotFound):
                errors.append((entry, base.with_context("reading an allowed base image")))
        facts = dataclasses.replace(facts, bases=bases)
    return facts


def gather(
    read: ReadContext,
    refs: Sequence[str],
    policy: Policy,
    scan: ScanSettings,
    *,
    progress: Progress | None = None,
) -> tuple[list[ImageCheck], Errors]:
    """Load the images (and what the enabled rules need: layer contents, the baseline, allowed bases) and
    evaluate the policy on each.  Returns the checks and the errors, in the order they were met; prints nothing.

    Cost: the manifests and configs (once); uncompressed-size trailers only for the size rules; each layer
    streamed once (or read from the cache) only for the content rules; the baseline's and bases' manifests and
    configs (once per platform).
    """
    errors: Errors = []
    loaded = _load(read, refs, policy, errors)
    scans = _scan(read, loaded, policy, scan, progress, errors)
    cache: _Cache = {}
    checks = []
    failed = {
        ref for ref, _ in errors
    }  # refs that failed to load or scan (not the baseline's later failures)
    for reference, image in loaded:
        if reference in failed:
            continue
        facts = _facts(read, image, policy, scans, cache, errors)
        if facts is not None:
            check = evaluate(policy, facts)
            if facts.baseline is not None and _growth_violated(check):
                explanation = explain(
                    read, (policy.baseline or "", facts.baseline), (reference, image), scan, scans
                )
                check = explain_growth(check, explanation)
            checks.append(check)
    return checks, errors


def _growth_violated(check: ImageCheck) -> bool:
    return any(f.rule in GROWTH_RULES and f.status in ("fail", "warn") for f in check.findings)


def explain(
    read: ReadContext,
    baseline: tuple[str, Image],
    image: tuple[str, Image],
    scan: ScanSettings,
    scans: dict[str, list[LayerScan]] | None = None,
    *,
    top: int = 5,
) -> GrowthExplanation:
    """Why ``image`` grew against ``baseline``: ``diff baseline image`` (:func:`ociinspect.session.diff_loaded`,
    the diff's read plan) summarised (:func:`~ociinspect.policy.rules.growth_explanation`).  Never raises an
    :class:`OciInspectError`: when the diff cannot be computed (a layer unreadable, the deadline …) the
    explanation says it is unavailable and why.

    Cost (paid only for a violated growth rule): the layers above the shared prefix of both images, each
    streamed once unless the layer cache (or ``scans``, the layers the content rules already read) holds its
    index; the shared prefix once, only when the result depends on it; no manifest or config again.
    """
    known = [s for layer_scans in (scans or {}).values() for s in layer_scans]
    try:
        diff, _ = diff_loaded(
            read, baseline, image, scan, depth=_EXPLAIN_DEPTH, scanned=known, labels=("baseline", "image")
        )
    except OciInspectError as exc:
        why = exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
        return GrowthExplanation(unavailable=why)
    return growth_explanation(diff, top)


#: levels of the growth tree an explanation looks at (deep enough for /usr/local/lib/python3.12/site-packages/x)
_EXPLAIN_DEPTH = 6


def _has_base_annotations(image: Image) -> bool:
    from ociinspect.analyzers.sharing import BASE_DIGEST, BASE_NAME

    return bool(image.annotations.get(BASE_NAME) or image.annotations.get(BASE_DIGEST))
