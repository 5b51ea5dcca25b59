"""Shared and unique bytes across a set of images, common layer prefixes, and base-image attribution.

Pure functions over :class:`~ociinspect.model.image.Image` values (no I/O).  Definitions (``docs/sharing.md``):

* Compressed figures count **blobs by digest**, each once per image, as a registry stores them.  An image's
  ``total_size`` is the sum of its distinct layer blobs; ``shared_size`` the part whose blobs other images in the
  set also use; ``unique_size = total_size - shared_size``.  Config blobs are not counted.
* Uncompressed figures count **content by diff_id**: the same tar compressed differently (different digest,
  same diff_id) is the same content, and is reported as such (``same_content_as``).  They are ``None`` when a
  layer's uncompressed size is unknown or ambiguous (``ImageShare.uncompressed_note`` says which layers, with the
  candidates, and that ``--exact`` settles it), and so is every total that would contain such a size.
* An OCI artifact (SBOM, signature …) is listed with ``kind = "artifact"``: its blobs count in the compressed
  figures (a registry stores them), but they are not filesystem layers, so its uncompressed figures are ``None``
  (not applicable) and it is left out of the uncompressed totals.
* ``logical_size`` sums every image's ``total_size``; ``deduplicated_size`` counts each distinct blob once.
* A base of an image is an image (from the set, from ``bases``, or named by the
  ``org.opencontainers.image.base.name``/``.digest`` annotations) whose layers' diff_ids are a prefix of the image's.
  Images without a known base are grouped by their longest common layer prefix.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from ociinspect.analyzers.vm import unknown_sizes
from ociinspect.model.image import Image, Layer
from ociinspect.model.record import record

__all__ = ["BaseGroup", "ImageShare", "LayerUse", "PairOverlap", "SharingReport", "analyze", "common_prefix"]

BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"


@record
class LayerUse:
    """One distinct layer blob and the images (references) that use it."""

    digest: str
    diff_id: str | None
    size: int
    uncompressed_size: int | None
    used_by: tuple[str, ...]
    same_content_as: tuple[str, ...] = ()  # other blob digests with the same diff_id (recompressed copies)


@record
class ImageShare:
    """Per-image totals; sizes in bytes."""

    reference: str
    digest: str
    total_size: int
    shared_size: int
    unique_size: int
    uncompressed_total_size: int | None
    uncompressed_shared_size: int | None
    uncompressed_unique_size: int | None
    layer_count: int
    base: str | None  # the attributed base's label, if any
    kind: str = "image"  # "image" or "artifact" (uncompressed figures not applicable)
    artifact_type: str | None = None
    uncompressed_note: str | None = None  # why the uncompressed figures are None


@record
class PairOverlap:
    """Two images: their longest common layer prefix (by content) and all bytes they share (by blob)."""

    a: str
    b: str
    common_prefix_layers: int
    common_prefix_size: int
    common_prefix_uncompressed_size: int | None
    shared_size: int


@record
class BaseGroup:
    """Images that share one base: the base's layers are stored once instead of ``len(images)`` times."""

    label: str
    source: str  # "annotation", "base", "set" or "prefix"
    digest: str | None
    layers: int
    size: int
    uncompressed_size: int | None
    images: tuple[str, ...]
    same_blobs: int  # how many of the images hold the base's layers as the very same blobs (by digest)

    @property
    def saved(self) -> int:
        """Compressed bytes a registry saves by storing the base's blobs once: ``(same_blobs - 1) * size``."""
        return max(0, self.same_blobs - 1) * self.size

    @property
    def uncompressed_saved(self) -> int | None:
        return (
            None if self.uncompressed_size is None else max(0, len(self.images) - 1) * self.uncompressed_size
        )


@record
class SharingReport:
    """Which images share which layers and bases, and the logical and deduplicated sizes (bytes)."""

    images: tuple[ImageShare, ...]
    layers: tuple[LayerUse, ...]
    pairs: tuple[PairOverlap, ...]
    bases: tuple[BaseGroup, ...]
    logical_size: int
    deduplicated_size: int
    uncompressed_logical_size: int | None
    uncompressed_deduplicated_size: int | None

    @property
    def uncompressed_unknown(self) -> tuple[str, ...]:
        """References of the images (not artifacts) whose uncompressed size is unknown or ambiguous: every
        uncompressed total that would include them is ``None``."""
        return tuple(
            s.reference for s in self.images if s.kind == "image" and s.uncompressed_total_size is None
        )


def _distinct(layers: Sequence[Layer]) -> list[Layer]:
    seen: set[str] = set()
    out = []
    for layer in layers:
        if layer.digest not in seen:
            seen.add(layer.digest)
            out.append(layer)
    return out


def _content_key(layer: Layer) -> str:
    return layer.diff_id or layer.digest


def _sum(values: Sequence[int | None]) -> int | None:
    if any(v is None for v in values):
        return None
    return sum(v for v in values if v is not None)


def common_prefix(a: Image, b: Image) -> int:
    """How many leading layers two images have in common, by content (diff_id, else digest)."""
    n = 0
    for x, y in zip(a.layers, b.layers, strict=False):
        if _content_key(x) != _content_key(y):
            break
        n += 1
    return n


def _prefix_sizes(image: Image, n: int) -> tuple[int, int | None]:
    layers = _distinct(image.layers[:n])
    return sum(lyr.size for lyr in layers), _sum([lyr.uncompressed.value for lyr in layers])


def _is_base(base: Image, image: Image) -> bool:
    return 0 < len(base.layers) < len(image.layers) and common_prefix(base, image) == len(base.layers)


@record
class _Attribution:
    """An image's base: its key, label, where it was found, and the shared prefix's length."""

    key: str  # the base's digest when the base image is known, else its name
    label: str
    source: str
    base: Image | None
    layers: int  # length of the shared prefix


def _attribute(images: Sequence[Image], bases: Sequence[Image]) -> dict[int, _Attribution]:
    """image index -> its base: named by annotations, else the longest known image whose layers prefix it."""
    by_digest = {img.digest: img for img in (*bases, *images)}
    out: dict[int, _Attribution] = {}
    for i, img in enumerate(images):
        name, digest = img.annotations.get(BASE_NAME), img.annotations.get(BASE_DIGEST)
        known = by_digest.get(digest or "")
        if known is not None and known is not img and _is_base(known, img):
            out[i] = _Attribution(
                known.digest, name or known.reference, "annotation", known, len(known.layers)
            )
            continue
        if name or digest:
            label = f"{name}@{digest}" if name and digest else (name or digest or "")
            out[i] = _Attribution(label, label, "annotation", None, 0)
            continue
        candidates = [(b, "base") for b in bases if _is_base(b, img)]
        candidates += [(o, "set") for j, o in enumerate(images) if j != i and _is_base(o, img)]
        if candidates:
            best, source = max(candidates, key=lambda c: len(c[0].layers))
            out[i] = _Attribution(best.digest, best.reference, source, best, len(best.layers))
    return out


def analyze(images: Sequence[Image], *, bases: Sequence[Image] = ()) -> SharingReport:
    """Sharing figures for ``images`` (see the module docstring).  Cost: O(images × layers), plus O(images²)
    for the pairwise overlaps."""
    refs = [img.reference for img in images]
    blob_users: dict[str, list[str]] = defaultdict(list)
    content_users: dict[str, list[str]] = defaultdict(list)
    blobs: dict[str, Layer] = {}
    digests_by_content: dict[str, set[str]] = defaultdict(set)
    for img in images:
        distinct = _distinct(img.layers)
        for layer in distinct:
            blob_users[layer.digest].append(img.reference)
            blobs.setdefault(layer.digest, layer)
            digests_by_content[_content_key(layer)].add(layer.digest)
        for key in {_content_key(layer) for layer in distinct}:
            content_users[key].append(img.reference)

    image_content = {_content_key(lyr) for img in images if not img.is_artifact for lyr in img.layers}
    shares = []
    attribution = _attribute(images, bases)
    for i, img in enumerate(images):
        distinct = _distinct(img.layers)
        total = sum(lyr.size for lyr in distinct)
        shared = sum(lyr.size for lyr in distinct if len(blob_users[lyr.digest]) > 1)
        by_content = {_content_key(lyr): lyr for lyr in distinct}
        if img.is_artifact:
            u_total = u_shared = None
            note: str | None = "artifact: its blobs are not filesystem layers (uncompressed not applicable)"
        else:
            u_total = _sum([lyr.uncompressed.value for lyr in by_content.values()])
            u_shared = _sum(
                [lyr.uncompressed.value for k, lyr in by_content.items() if len(content_users[k]) > 1]
            )
            note = unknown_sizes(img)
        shares.append(
            ImageShare(
                reference=img.reference,
                digest=img.digest,
                total_size=total,
                shared_size=shared,
                unique_size=total - shared,
                uncompressed_total_size=u_total,
                uncompressed_shared_size=u_shared,
                uncompressed_unique_size=None if u_total is None or u_shared is None else u_total - u_shared,
                layer_count=len(img.layers),
                base=attribution[i].label if i in attribution else None,
                kind="artifact" if img.is_artifact else "image",
                artifact_type=(img.artifact_type or img.config_descriptor.media_type)
                if img.is_artifact
                else None,
                uncompressed_note=note,
            )
        )

    layers = tuple(
        LayerUse(
            digest=d,
            diff_id=layer.diff_id,
            size=layer.size,
            uncompressed_size=layer.uncompressed.value,
            used_by=tuple(blob_users[d]),
            same_content_as=tuple(sorted(digests_by_content[_content_key(layer)] - {d})),
        )
        for d, layer in blobs.items()
    )
    pairs = []
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            a, b = images[i], images[j]
            n = common_prefix(a, b)
            size, usize = _prefix_sizes(a, n)
            a_blobs = {lyr.digest: lyr.size for lyr in a.layers}
            shared = sum(size for d, size in a_blobs.items() if d in {lyr.digest for lyr in b.layers})
            pairs.append(PairOverlap(refs[i], refs[j], n, size, usize, shared))

    return SharingReport(
        images=tuple(shares),
        layers=layers,
        pairs=tuple(pairs),
        bases=_groups(images, attribution),
        logical_size=sum(s.total_size for s in shares),
        deduplicated_size=sum(layer.size for layer in blobs.values()),
        uncompressed_logical_size=_sum([s.uncompressed_total_size for s in shares if s.kind == "image"]),
        uncompressed_deduplicated_size=_sum(
            [
                blobs[min(ds)].uncompressed.value
                for key, ds in digests_by_content.items()
                if key in image_content
            ]
        ),
    )


def _groups(images: Sequence[Image], attribution: dict[int, _Attribution]) -> tuple[BaseGroup, ...]:
    by_key: dict[str, list[int]] = defaultdict(list)
    for i, a in attribution.items():
        by_key[a.key].append(i)
    out = []
    for members in by_key.values():
        firsts = [attribution[i] for i in members]
        named = next((a for a in firsts if a.source == "annotation"), firsts[0])
        base = firsts[0].base
        group = [images[i] for i in members]
        if base is not None and any(img is base for img in images):
            group.insert(0, base)  # the base image in the set stores the same layers too
        n = firsts[0].layers
        size, usize = _prefix_sizes(base, n) if base is not None else (0, None)
        base_blobs = [lyr.digest for lyr in base.layers] if base is not None else []
        out.append(
            BaseGroup(
                label=named.label,
                source=named.source,
                digest=base.digest if base else None,
                layers=n,
                size=size,
                uncompressed_size=usize,
                images=tuple(img.reference for img in group),
                same_blobs=sum(1 for img in group if [lyr.digest for lyr in img.layers[:n]] == base_blobs),
            )
        )
    # images with no attributed base: group by the longest common prefix of those sharing a first layer
    loose: dict[str, list[Image]] = defaultdict(list)
    attributed_bases = {a.base.digest for a in attribution.values() if a.base is not None}
    for i, img in enumerate(images):
        if i not in attribution and img.layers and img.digest not in attributed_bases:
            loose[_content_key(img.layers[0])].append(img)
    for group in loose.values():
        if len(group) < 2:
            continue
        n = min(common_prefix(group[0], m) for m in group[1:])
        size, usize = _prefix_sizes(group[0], n)
        first_blobs = [lyr.digest for lyr in group[0].layers[:n]]
        out.append(
            BaseGroup(
                label=f"common base ({n} layer{'s' if n != 1 else ''} up to {group[0].layers[n - 1].digest[:19]}…)",
                source="prefix",
                digest=None,
                layers=n,
                size=size,
                uncompressed_size=usize,
                images=tuple(m.reference for m in group),
                same_blobs=sum(1 for m in group if [lyr.digest for lyr in m.layers[:n]] == first_blobs),
            )
        )
    return tuple(sorted(out, key=lambda g: (-len(g.images), g.label)))
