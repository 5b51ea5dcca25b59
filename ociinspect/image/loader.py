"""Bytes from a :class:`~ociinspect.sources.base.Source` → a verified, frozen :class:`~ociinspect.model.image.Image`.

The one place that parses manifests, indexes and configs.  It verifies every manifest and config against its
digest and descriptor size (sources verify what they serve; the loader checks sizes and the digest the
reference pinned), resolves an index to one platform (skipping ``unknown/unknown`` attestations), aligns history
with layers, refuses Docker schema1 with a clear message, describes artifacts instead of failing on them, and asks
:mod:`ociinspect.image.sizes` for every layer's uncompressed size (in parallel threads).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from ociinspect import threads
from ociinspect.errors import (
    DigestMismatch,
    InvalidImage,
    PlatformNotFound,
    UnsupportedMediaType,
    UsageError,
)
from ociinspect.image import sizes
from ociinspect.image.nesting import MAX_INDEX_DEPTH, IndexChain
from ociinspect.image.sizes import SizeFacts, SizeMode
from ociinspect.model import digest as _digest
from ociinspect.model import mediatypes as mt
from ociinspect.model.image import (
    Descriptor,
    HistoryEntry,
    Image,
    ImageConfig,
    IndexEntry,
    Layer,
    Platform,
    RawManifest,
    SizeEstimate,
    frozen_map,
    host_platform,
)
from ociinspect.model.logs import get_logger
from ociinspect.model.record import record
from ociinspect.sources.base import Source, parse_json

__all__ = [
    "MAX_CONFIG_BYTES",
    "LoadOptions",
    "ManifestFacts",
    "Resolution",
    "assemble_image",
    "index_entries",
    "load",
    "load_all_platforms",
    "manifest_facts",
    "parse_config",
    "parse_descriptor",
    "parse_manifest",
    "parse_platform",
    "resolve",
    "root_manifest",
]

log = get_logger(__name__)

MAX_CONFIG_BYTES = 8 * 1024 * 1024
ATTESTATION = "attestation-manifest"


@record(init=False)
class LoadOptions:
    """How to load an image.

    ``platform``: the platform to pick from an index (default: the host's Linux platform) — a
    :class:`~ociinspect.model.image.Platform` or its text (``"linux/arm64"``), normalised by
    :meth:`Platform.parse <ociinspect.model.image.Platform.parse>` as ``--platform`` is; malformed text is refused
    here, at construction, with a :class:`~ociinspect.errors.UsageError`.
    ``sizes``: ``"cheap"`` (trailers/headers, see :mod:`ociinspect.image.sizes`), ``"exact"`` (stream every layer),
    ``"none"`` (no blob reads).  ``max_uncompressed``: cap per streamed layer, bytes.
    """

    platform: Platform | None
    sizes: sizes.SizeMode
    max_uncompressed: int | None
    size_store: SizeFacts | None  # remembered verified sizes (None: no store)
    max_index_depth: int
    workers: int

    def __init__(
        self,
        platform: Platform | str | None = None,
        sizes: SizeMode = "cheap",
        max_uncompressed: int | None = None,
        size_store: SizeFacts | None = None,
        max_index_depth: int = MAX_INDEX_DEPTH,
        workers: int = 8,
    ) -> None:
        if isinstance(platform, str):
            platform = parse_platform(platform)
        elif platform is not None and not isinstance(platform, Platform):
            raise UsageError(
                f"LoadOptions: platform must be a Platform or text like 'linux/arm64', not {type(platform).__name__}"
            )
        for name, value in (
            ("platform", platform),
            ("sizes", sizes),
            ("max_uncompressed", max_uncompressed),
            ("size_store", size_store),
            ("max_index_depth", max_index_depth),
            ("workers", workers),
        ):
            object.__setattr__(self, name, value)


def parse_platform(text: str) -> Platform:
    """``text`` (``linux/arm64``, and whatever shorthands :meth:`Platform.parse` accepts) as a :class:`Platform`;
    malformed text is a :class:`~ociinspect.errors.UsageError` (exit 2) with a hint.  Cost: none (no I/O)."""
    try:
        return Platform.parse(text)
    except ValueError as exc:
        raise UsageError(
            str(exc), hint="write OS/ARCH[/VARIANT] or a shorthand, e.g. linux/arm64/v8, arm64 or amd64"
        ) from None


def _what(source: Source) -> str:
    return f"reading {source.reference}"


def parse_descriptor(obj: Any, what: str) -> Descriptor:
    """Validate and convert a JSON descriptor."""
    if not isinstance(obj, Mapping):
        raise InvalidImage(f"{what}: a descriptor is not a JSON object")
    media_type, digest, size = obj.get("mediaType"), obj.get("digest"), obj.get("size")
    if not isinstance(digest, str) or not _digest.is_digest(digest):
        raise InvalidImage(f"{what}: descriptor has an invalid digest {str(digest)[:80]!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidImage(f"{what}: descriptor {digest} has an invalid size {size!r}")
    if media_type is not None and not isinstance(media_type, str):
        raise InvalidImage(f"{what}: descriptor {digest} has an invalid mediaType")
    ann = obj.get("annotations")
    urls = obj.get("urls")
    artifact_type = obj.get("artifactType")
    return Descriptor(
        media_type=media_type or "",
        digest=digest,
        size=size,
        platform=Platform.from_json(obj.get("platform")),
        annotations=frozen_map(ann if isinstance(ann, Mapping) else None),
        artifact_type=artifact_type if isinstance(artifact_type, str) else None,
        urls=tuple(u for u in urls if isinstance(u, str)) if isinstance(urls, list) else (),
    )


def _kind(d: Descriptor) -> str:
    if d.annotations.get("vnd.docker.reference.type") == ATTESTATION or (
        d.platform and d.platform.is_unknown
    ):
        return "attestation"
    if mt.is_index(d.media_type):
        return "index"
    if d.artifact_type:
        return "artifact"
    if mt.is_manifest(d.media_type):
        return "image"
    return "unknown"


def parse_manifest(raw: RawManifest, what: str) -> tuple[str, dict[str, Any]]:
    """(media type, JSON object) of a manifest or index; refuses schema1 and non-manifests."""
    doc = parse_json(raw.data, what)
    if not isinstance(doc, dict):
        raise InvalidImage(f"{what}: the manifest is not a JSON object")
    media_type = raw.media_type
    declared = doc.get("mediaType")
    if mt.is_schema1(media_type) or doc.get("schemaVersion") == 1:
        raise UnsupportedMediaType(
            f"{what}: Docker schema1 manifests are not supported (deprecated since 2017)",
            hint="re-push the image as Docker schema2 or OCI, e.g. `skopeo copy --format v2s2 SRC DST`",
        )
    if isinstance(declared, str) and (mt.is_index(declared) or mt.is_manifest(declared)):
        if mt.is_index(media_type) or mt.is_manifest(media_type):
            if declared != media_type:  # the served/descriptor type wins, as in go-containerregistry
                log.info("%s: served as %s but declares %s", what, media_type, declared)
        else:
            media_type = declared
    if "manifests" in doc and not mt.is_manifest(media_type):
        return (media_type if mt.is_index(media_type) else mt.OCI_INDEX), doc
    if "config" in doc or "layers" in doc:
        return (media_type if mt.is_manifest(media_type) else mt.OCI_MANIFEST), doc
    raise UnsupportedMediaType(
        f"{what}: {media_type or 'unknown media type'} is neither an image manifest nor an index",
        hint="only OCI and Docker schema2 manifests and indexes can be inspected",
    )


def index_entries(doc: Mapping[str, Any], what: str) -> tuple[IndexEntry, ...]:
    """The manifests an index lists, classified (image, index, attestation, artifact, unknown)."""
    items = doc.get("manifests")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise InvalidImage(f"{what}: the index's manifests field is not a list")
    entries = []
    for item in items:
        d = parse_descriptor(item, what)
        entries.append(IndexEntry(d, _kind(d)))  # type: ignore[arg-type]
    return tuple(entries)


@record
class ManifestFacts:
    """What one manifest or index says, parsed by the loader's rules: the one reading of manifest bytes, used by
    the loader and by the audit (which stores these facts and rebuilds them from its database).

    ``kind``: ``"index"`` (``entries`` set), ``"image"`` (an image config and no ``artifactType``) or
    ``"artifact"``; ``config`` and ``layers`` for manifests.  ``size``: bytes of the manifest."""

    digest: str
    media_type: str
    size: int
    kind: Literal["index", "image", "artifact"]
    entries: tuple[IndexEntry, ...] = ()
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    artifact_type: str | None = None
    annotations: Mapping[str, str] = dataclasses.field(default_factory=lambda: frozen_map(None))
    subject: Descriptor | None = None


def manifest_facts(raw: RawManifest, what: str) -> ManifestFacts:
    """Parse one manifest or index (schema1 refused, descriptors validated).  Cost: one JSON parse; no I/O."""
    media_type, doc = parse_manifest(raw, what)
    ann = doc.get("annotations")
    annotations = frozen_map(ann if isinstance(ann, Mapping) else None)
    if mt.is_index(media_type):
        return ManifestFacts(
            raw.digest,
            media_type,
            len(raw.data),
            "index",
            entries=index_entries(doc, what),
            annotations=annotations,
        )
    config = parse_descriptor(doc.get("config"), f"{what}: config")
    layer_objs = doc.get("layers") or []
    if not isinstance(layer_objs, list):
        raise InvalidImage(f"{what}: the manifest's layers field is not a list")
    layers = tuple(parse_descriptor(o, f"{what}: layer {i}") for i, o in enumerate(layer_objs))
    artifact_type = doc.get("artifactType") if isinstance(doc.get("artifactType"), str) else None
    subject = (
        parse_descriptor(doc["subject"], f"{what}: subject") if isinstance(doc.get("subject"), dict) else None
    )
    kind: Literal["image", "artifact"] = (
        "image" if mt.is_image_config(config.media_type) and not artifact_type else "artifact"
    )
    return ManifestFacts(
        raw.digest,
        media_type,
        len(raw.data),
        kind,
        config=config,
        layers=layers,
        artifact_type=artifact_type,
        annotations=annotations,
        subject=subject,
    )


@record
class Resolution:
    """Where a walk down indexes ended: the image ``manifest`` chosen, the top ``index`` it was chosen from
    (``None`` when the reference named an image manifest), and ``raw``: the chosen manifest's bytes exactly as
    served, verified against the descriptor that named them (always set by :func:`resolve`)."""

    manifest: ManifestFacts
    index: ManifestFacts | None = None
    raw: RawManifest | None = None


def _pick(entries: Sequence[IndexEntry], wanted: Platform | None, what: str) -> IndexEntry:
    runnable = [e for e in entries if e.kind in ("image", "index", "unknown")]
    target = wanted or host_platform()
    matches = [e for e in runnable if e.descriptor.platform and e.descriptor.platform.matches(target)]
    if not matches and wanted is None and len(runnable) == 1:
        return runnable[0]  # a single-image index: use it whatever its platform, like crane
    if not matches:
        offered = sorted({str(e.descriptor.platform) for e in runnable if e.descriptor.platform})
        if not runnable:
            raise PlatformNotFound(
                f"{what}: the index lists no runnable image (only attestations or artifacts)"
            )
        raise PlatformNotFound(
            f"{what}: no {target} image in the index (it offers {', '.join(offered) or 'no platform'})",
            hint="choose one with --platform OS/ARCH[/VARIANT], or see them all with --all-platforms",
        )
    exact = [e for e in matches if e.descriptor.platform and e.descriptor.platform.variant == target.variant]
    return (exact or matches)[0]


def _child(source: Source, d: Descriptor, what: str) -> RawManifest:
    raw = source.manifest(d.digest)
    if raw.digest != d.digest:
        raise DigestMismatch(f"{what}: manifest {d.digest} was served as {raw.digest}")
    if len(raw.data) != d.size:
        raise DigestMismatch(
            f"{what}: manifest {d.digest} is {len(raw.data)} bytes, its descriptor says {d.size}"
        )
    return raw


def _strs(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return None


def parse_config(data: bytes, what: str) -> ImageConfig:
    """Parse an OCI/Docker image config (cost: JSON parse)."""
    doc = parse_json(data, what)
    if not isinstance(doc, dict):
        raise InvalidImage(f"{what}: the image config is not a JSON object")
    c = doc.get("config") if isinstance(doc.get("config"), dict) else {}
    assert isinstance(c, dict)
    rootfs = doc.get("rootfs") if isinstance(doc.get("rootfs"), dict) else {}
    assert isinstance(rootfs, dict)
    raw_ids = rootfs.get("diff_ids")
    diff_ids: list[Any] = raw_ids if isinstance(raw_ids, list) else []
    history = []
    raw_history = doc.get("history")
    for h in raw_history if isinstance(raw_history, list) else []:
        if isinstance(h, dict):
            history.append(
                HistoryEntry(
                    created=_opt_str(h.get("created")),
                    created_by=_opt_str(h.get("created_by")),
                    author=_opt_str(h.get("author")),
                    comment=_opt_str(h.get("comment")),
                    empty_layer=h.get("empty_layer") is True,
                )
            )
    ports = c.get("ExposedPorts")
    return ImageConfig(
        os=_opt_str(doc.get("os")),
        architecture=_opt_str(doc.get("architecture")),
        variant=_opt_str(doc.get("variant")),
        created=_opt_str(doc.get("created")),
        author=_opt_str(doc.get("author")),
        user=_opt_str(c.get("User")) or None,
        entrypoint=_strs(c.get("Entrypoint")),
        cmd=_strs(c.get("Cmd")),
        env=_strs(c.get("Env")) or (),
        working_dir=_opt_str(c.get("WorkingDir")) or None,
        labels=frozen_map(c.get("Labels") if isinstance(c.get("Labels"), dict) else None),
        exposed_ports=tuple(sorted(ports)) if isinstance(ports, dict) else (),
        stop_signal=_opt_str(c.get("StopSignal")),
        diff_ids=tuple(d for d in diff_ids if isinstance(d, str)),
        history=tuple(history),
    )


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _align_history(
    history: Sequence[HistoryEntry], n_layers: int
) -> tuple[list[HistoryEntry | None], list[str]]:
    """Pair each layer with the non-empty history entry that created it (in order)."""
    non_empty = [h for h in history if not h.empty_layer]
    warnings = []
    if history and len(non_empty) != n_layers:
        warnings.append(
            f"history has {len(non_empty)} non-empty entries for {n_layers} layers; created_by may be misaligned"
        )
    paired: list[HistoryEntry | None] = [
        non_empty[i] if i < len(non_empty) else None for i in range(n_layers)
    ]
    return paired, warnings


def _resolve(source: Source, options: LoadOptions, raw: RawManifest) -> Resolution:
    """Follow indexes down to one image manifest for the wanted platform."""
    what = _what(source)
    facts = manifest_facts(raw, what)
    top: ManifestFacts | None = None
    chain = IndexChain(limit=options.max_index_depth)  # the one nesting rule (ociinspect.image.nesting)
    while facts.kind == "index":
        chain = chain.enter(facts.digest, what)
        if top is None:
            top = facts
        if not facts.entries:
            raise InvalidImage(f"{what}: the index lists no manifests", hint="the image is empty or broken")
        chosen = _pick(facts.entries, options.platform, what)
        raw = _child(source, chosen.descriptor, what)
        facts = manifest_facts(raw, what)
    return Resolution(facts, top, raw)


def root_manifest(source: Source) -> RawManifest:
    """The manifest (or index) the source's reference names, exactly as served, checked against the reference's
    pinned digest when it has one (:class:`~ociinspect.errors.DigestMismatch`).  Cost: one manifest read."""
    root = source.root()
    ref = source.reference
    if ref.digest and root.digest != ref.digest:
        raise DigestMismatch(
            f"{_what(source)}: asked for {ref.digest}, got content with digest {root.digest}"
        )
    return root


def resolve(source: Source, options: LoadOptions | None = None) -> Resolution:
    """Walk from the manifest the reference names down to one image manifest, by the loader's rules: the platform
    pick (``options.platform``, default this host's Linux platform; attestations skipped; a single-image index
    used whatever its platform), the nesting limit (``options.max_index_depth``), each child verified against its
    descriptor's digest and size.  The result holds the chosen manifest's bytes (``raw``), its facts and the top
    index's.  Cost: one manifest read, + one per index level; no config or layer read.
    """
    return _resolve(source, options or LoadOptions(), root_manifest(source))


def load(
    source: Source, options: LoadOptions | None = None, *, on_chosen: Callable[[str], None] | None = None
) -> Image:
    """Load the image the source's reference names, for one platform.

    ``on_chosen``: called (in this thread, it must not raise) with the subject digest of the image — its top
    index's when it came from one, else its manifest's — as soon as its manifest is chosen and verified, before
    the config and the layers are read, so a caller can start its own requests about it meanwhile (``inspect``
    asks its referrers there).  Not called when the reference or the platform cannot be resolved.

    Cost: the manifest (and index) requests, one config blob, plus per layer what :func:`sizes.estimate`
    costs for ``options.sizes`` (by default one 8–18 byte Range read per compressed layer), the layers' reads
    in parallel with each other and with the config's.
    """
    options = options or LoadOptions()
    root = source.root()
    ref = source.reference
    if ref.digest and root.digest != ref.digest:
        raise DigestMismatch(
            f"{_what(source)}: asked for {ref.digest}, got content with digest {root.digest}"
        )
    resolved = _resolve(source, options, root)
    if on_chosen is not None:
        on_chosen((resolved.index or resolved.manifest).digest)
    image = _build(source, options, resolved)
    wanted = options.platform
    if wanted and image.index_digest is None and image.platform and not image.platform.matches(wanted):
        # a single-platform image is what the reference names: read it, and say it is not the platform asked
        note = f"--platform {wanted} asked, but the image is single-platform {image.platform}: read as it is"
        image = dataclasses.replace(image, warnings=(*image.warnings, note))
    return image


def load_all_platforms(
    source: Source, options: LoadOptions | None = None, *, on_chosen: Callable[[str], None] | None = None
) -> list[Image]:
    """Load every runnable platform of an index (attestations skipped); a single image gives a one-item list.

    ``on_chosen``: as :func:`load`'s, called once with the index's digest when it lists a runnable image
    (before their manifests are read).  Cost: that of :func:`load` once per platform.
    """
    options = options or LoadOptions()
    root = source.root()
    what = _what(source)
    top = manifest_facts(root, what)
    if top.kind != "index":
        return [load(source, options, on_chosen=on_chosen)]
    chosen = [e for e in top.entries if e.kind == "image"]
    if not chosen:
        raise PlatformNotFound(f"{what}: the index lists no runnable image (only attestations or artifacts)")
    if on_chosen is not None:
        on_chosen(top.digest)
    images = []
    for e in chosen:
        raw = _child(source, e.descriptor, what)
        opts = dataclasses.replace(options, platform=e.descriptor.platform)
        images.append(_build(source, opts, Resolution(manifest_facts(raw, what), top, raw)))
    return images


def _build(source: Source, options: LoadOptions, resolved: Resolution) -> Image:
    """Read the config and estimate the layers' sizes of the chosen manifest, then assemble the image.

    The layers' cheap size evidence (:func:`sizes.read_evidence`) does not depend on the config, so it is read
    in the worker threads while this thread reads the config; only what an untrusted figure needs (the
    diff_id, to verify a stream) waits for the config.  Errors are those of the serial order: the config's
    first, then the layers' in layer order."""
    what = _what(source)
    facts = resolved.manifest
    if facts.kind == "index" or facts.config is None:  # manifest_facts gives manifests a config
        raise InvalidImage(f"{what}: {facts.digest} is an index, not an image manifest")
    config_descriptor = facts.config

    def read_config() -> ImageConfig | None:
        if facts.kind != "image":
            return None
        data = source.blob(config_descriptor.digest, size=config_descriptor.size, max_bytes=MAX_CONFIG_BYTES)
        return parse_config(data, f"{what}: config {config_descriptor.digest}")

    config, estimates = _estimate_all(source, options, facts.layers, read_config)
    return assemble_image(
        str(source.reference),
        facts,
        config,
        estimates,
        index=resolved.index,
        platform=options.platform,
        warnings=source.warnings,
    )


def _diff_ids(config: ImageConfig | None, n_layers: int) -> list[str | None]:
    return [_diff_id(config, i) for i in range(n_layers)]


def _diff_id(config: ImageConfig | None, i: int) -> str | None:
    """Layer ``i``'s diff_id in ``config``, or None (no config, or fewer diff_ids than layers)."""
    ids = config.diff_ids if config else ()
    return ids[i] if i < len(ids) else None


def assemble_image(
    reference: str,
    facts: ManifestFacts,
    config: ImageConfig | None,
    estimates: Sequence[SizeEstimate],
    *,
    index: ManifestFacts | None = None,
    platform: Platform | None = None,
    warnings: Sequence[str] = (),
) -> Image:
    """The :class:`Image` of an image manifest's ``facts``, its parsed ``config`` (``None`` for an artifact's) and
    one size estimate per layer: history aligned with layers, diff_ids paired, the platform from the config
    (else ``platform`` when the image was picked from ``index``).  Used by the loader and by the audit.
    Cost: CPU only."""
    if facts.config is None:
        raise InvalidImage(f"manifest {facts.digest} is an index, not an image manifest")
    if len(estimates) != len(facts.layers):
        raise ValueError("one size estimate per layer")
    found: list[str] = list(warnings)
    history = config.history if config else ()
    paired, hw = _align_history(history, len(facts.layers))
    found += hw
    if config and len(config.diff_ids) != len(facts.layers):
        found.append(f"config lists {len(config.diff_ids)} diff_ids for {len(facts.layers)} layers")
    diff_ids = _diff_ids(config, len(facts.layers))
    layers = tuple(
        Layer(index=i, descriptor=d, diff_id=diff_ids[i], history=paired[i], uncompressed=estimates[i])
        for i, d in enumerate(facts.layers)
    )
    chosen = None
    if config and config.os and config.architecture:
        chosen = Platform(config.os, config.architecture, config.variant)
    elif platform and index is not None and index.entries:
        chosen = platform
    return Image(
        reference=reference,
        digest=facts.digest,
        media_type=facts.media_type,
        manifest_size=facts.size,
        platform=chosen,
        config_descriptor=facts.config,
        config=config,
        layers=layers,
        annotations=facts.annotations,
        artifact_type=facts.artifact_type or (None if facts.kind == "image" else facts.config.media_type),
        subject=facts.subject,
        index_digest=index.digest if index else None,
        index_media_type=index.media_type if index else None,
        index_entries=index.entries if index else (),
        history=history,
        warnings=tuple(found),
    )


def _reraise(exc: BaseException) -> SizeEstimate:
    raise exc


#: what :func:`_estimate_all` gives: the config (None for an artifact) and the layers' size estimates, in order
_Estimates = tuple[ImageConfig | None, list[SizeEstimate]]


def _estimate_all(
    source: Source,
    options: LoadOptions,
    layers: Sequence[Descriptor],
    read_config: Callable[[], ImageConfig | None],
) -> _Estimates:
    """``read_config()`` in this thread and every layer's size estimate, in a pool of at most
    ``options.workers`` threads (``"cheap"``: each layer's evidence read at once, while the config is read).

    Errors are raised in the serial order — the config's, then the first failing layer's — once every read
    started here has ended (the pending ones cancelled), so no request outlives the call.  On Ctrl-C
    (``KeyboardInterrupt``) a source that can (``interrupt()``: a registry's) cuts its requests short first.
    """

    def one(i: int, config: ImageConfig | None, evidence: sizes.Evidence | None = None) -> SizeEstimate:
        return sizes.estimate(
            source,
            layers[i],
            diff_id=_diff_id(config, i),
            mode=options.sizes,
            max_output=options.max_uncompressed,
            store=options.size_store,
            evidence=evidence,
        )

    ahead = options.sizes == "cheap" and (len(layers) > 1 or source.kind == "registry")
    if not layers or options.workers <= 1 or not (ahead or (len(layers) > 1 and options.sizes != "none")):
        config = read_config()
        return config, [one(i, config) for i in range(len(layers))]
    with threads.Pool(min(options.workers, len(layers))) as pool:
        try:
            if not ahead:  # "exact": every layer streamed, its diff_id verified
                config = read_config()
                streams = [pool.submit(one, i, config) for i in range(len(layers))]
                return config, [future.result() for future in streams]
            evidence = [pool.submit(sizes.read_evidence, source, d) for d in layers]
            config = read_config()
            settled: list[Callable[[], SizeEstimate]] = []
            for i, read in enumerate(evidence):
                try:
                    found = read.result()
                except Exception as exc:  # raised in its turn: an earlier layer's error comes first
                    settled.append(functools.partial(_reraise, exc))
                    continue
                if found.final:  # no diff_id needed, no request: here
                    settled.append(functools.partial(one, i, config, found))
                else:  # a stream may be needed (it verifies the diff_id): in parallel
                    settled.append(pool.submit(one, i, config, found).result)
            return config, [result() for result in settled]
        except BaseException as exc:
            if not isinstance(exc, Exception):  # Ctrl-C: the reads under way are cut short, not waited out
                interrupt = getattr(source, "interrupt", None)
                if interrupt is not None:
                    interrupt()
            pool.shutdown(wait=True, cancel_futures=True)  # the reads under way end first (each is bounded)
            raise
