"""The audit report, the run diff and the run list as JSON-ready documents: pure aggregation, no I/O.

Definitions (``docs/audit.md``; they extend ``docs/sharing.md`` to a whole registry):

* An **image** is a manifest that is not an index, reachable from a tag that was read completely (indexes are
  expanded per platform; buildx attestations and OCI artifacts are images of their own ``kind``, since the
  registry stores their blobs too).  Images are counted once per digest, wherever they are tagged.
* An image's **size** is the sum of its distinct blobs: the config and the layers (compressed, as stored).
  ``logical_size`` sums the sizes of all images; ``deduplicated_size`` counts each distinct blob once: what
  the registry stores for these tags (manifests themselves excluded).
* Per repository: ``stored_size`` = its distinct blobs; ``unique_size`` = those no other repository uses;
  ``shared_size = stored_size − unique_size``.  Σ unique + distinct shared blobs = ``deduplicated_size``.
* A shared layer's **base** is the image (tag) whose layers are exactly the prefix of its users' layers that
  ends with it (the smallest such image), else the base named by the users' ``org.opencontainers.image.base.*``
  annotations.  ``saved_size = (images − 1) × size``: what storing the layer once saves.
* **Stale** tags point at images created (config ``created``) more than ``stale_days`` days before ``now``;
  ``stale_reclaimable_size`` is the bytes of blobs used only by images that only stale tags point at.
"""

from __future__ import annotations

import datetime
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from ociinspect.analyzers.vm import VmParameters, estimate_fleet, estimate_for
from ociinspect.audit.runs import RunData, RunInfo
from ociinspect.errors import LimitExceeded
from ociinspect.image.nesting import IndexChain
from ociinspect.model import mediatypes
from ociinspect.model.image import Descriptor, Image, ImageConfig, Layer, SizeEstimate, SizeSource
from ociinspect.model.osinfo import OsInfo

__all__ = ["SCHEMA_VERSION", "build_diff", "build_report", "runs_document"]

SCHEMA_VERSION = 1
_USED_BY_CAP = 20


def _parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


class _Walk:
    """The images reachable from the run's readable tags."""

    def __init__(self, data: RunData) -> None:
        self.data = data
        # image digest -> kind ("image", "attestation", "artifact"), platform
        self.images: dict[str, tuple[str, str | None]] = {}
        self.image_tags: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self.tag_images: dict[tuple[str, str], list[str]] = {}
        self.tag_platforms: dict[tuple[str, str], list[str]] = {}
        self.tag_is_index: dict[tuple[str, str], bool] = {}
        for repo, tag, status, digest, _, _ in data.tags:
            if status != "done" or not digest or digest not in data.manifests:
                continue
            found: list[str] = []
            platforms: list[str] = []
            self._expand(digest, "image", None, found, platforms, IndexChain())
            key = (repo, tag)
            self.tag_images[key] = found
            self.tag_platforms[key] = platforms
            self.tag_is_index[key] = data.manifests[digest][2] == "index"
            for d in found:
                self.image_tags[d].append(key)

    def _expand(
        self,
        digest: str,
        kind: str,
        platform: str | None,
        out: list[str],
        platforms: list[str],
        chain: IndexChain,
    ) -> None:
        m = self.data.manifests.get(digest)
        if m is None:
            return
        if m[2] == "index":
            try:
                inner = chain.enter(digest, "report")  # the walker's nesting rule (it refused deeper tags)
            except LimitExceeded:
                return
            for role, _pos, child, _mt, _size, child_platform, child_kind in self.data.refs.get(digest, []):
                if role == "manifest":
                    self._expand(child, child_kind or "image", child_platform, out, platforms, inner)
            return
        final = "artifact" if m[2] == "artifact" else ("attestation" if kind == "attestation" else "image")
        if platform is None and final == "image":
            cfg = self.config_of(digest)
            if cfg and cfg[1] and cfg[2]:
                platform = f"{cfg[1]}/{cfg[2]}" + (f"/{cfg[3]}" if cfg[3] else "")
        self.images.setdefault(digest, (final, platform))
        if digest not in out:
            out.append(digest)
        if final == "image" and platform:
            platforms.append(platform)

    def config_of(
        self, digest: str
    ) -> tuple[str | None, str | None, str | None, str | None, tuple[str, ...]] | None:
        for role, _pos, d, *_ in self.data.refs.get(digest, []):
            if role == "config":
                return self.data.configs.get(d)
        return None

    def blobs_of(self, digest: str) -> dict[str, int]:
        """distinct blob digest -> size (config and layers)."""
        return {
            d: size for role, _p, d, _mt, size, *_ in self.data.refs.get(digest, []) if role != "manifest"
        }

    def layers_of(self, digest: str) -> list[tuple[str, str, int]]:
        return [
            (d, mt, size) for role, _p, d, mt, size, *_ in self.data.refs.get(digest, []) if role == "layer"
        ]


def _uncompressed(data: RunData, layers: Iterable[tuple[str, str, int]]) -> int | None:
    """Unpacked size of the filesystem layers (others, e.g. attestation statements, are not unpacked); None
    when one of them is unknown (one image: no lower bound is given, the totals give one)."""
    total = 0
    for d, media_type, _size in {x[0]: x for x in layers}.values():
        if not mediatypes.is_layer(media_type):
            continue
        b = data.blobs.get(d)
        if b is None or b[1] is None:
            return None
        total += b[1]
    return total


_SOURCES: dict[str, SizeSource] = {s: s for s in ("exact", "trailer", "header", "toc", "streamed", "store")}


def _scannable(layers: Sequence[tuple[str, str, int]]) -> bool:
    """An image the ``--deep`` scan reads: at least one layer, every layer a tar (as the walker decides)."""
    return bool(layers) and all(
        mediatypes.is_layer(mt) and mediatypes.compression_of(mt) != "unknown" for _d, mt, _s in layers
    )


def _ref(key: tuple[str, str]) -> str:
    return f"{key[0]}:{key[1]}"


def build_report(
    data: RunData,
    *,
    now: datetime.datetime | None = None,
    stale_days: int = 180,
    top: int = 20,
    vm_params: VmParameters | None = None,
) -> dict[str, Any]:
    """The ``audit report`` document (schema_version 1) for one run.  Cost: O(images × layers) in memory."""
    now = now or datetime.datetime.now(datetime.UTC)
    walk = _Walk(data)
    images = walk.images
    image_size: dict[str, int] = {d: sum(walk.blobs_of(d).values()) for d in images}
    blob_size: dict[str, int] = {}
    blob_images: dict[str, list[str]] = defaultdict(list)
    for d in images:
        for b, size in walk.blobs_of(d).items():
            blob_size[b] = size
            blob_images[b].append(d)
    logical = sum(image_size.values())
    dedup = sum(blob_size.values())
    # uncompressed, by content (diff_id when known, else digest), layers only.  A layer whose size is unknown
    # (never read, or ambiguous: source "unknown") is left out and counted: the totals are then lower bounds.
    content: dict[str, int | None] = {}
    unc_logical = 0
    unknown_blobs: set[str] = set()
    for d in images:
        cfg = walk.config_of(d)
        diff_ids = cfg[4] if cfg else ()
        seen: set[str] = set()  # a layer listed twice in one image is unpacked once
        for i, (b, media_type, _size) in enumerate(walk.layers_of(d)):
            if not mediatypes.is_layer(media_type):
                continue
            value = data.blobs.get(b, (0, None, "unknown"))[1]
            if value is None:
                unknown_blobs.add(b)
            if b not in seen:
                seen.add(b)
                unc_logical += value or 0
            content.setdefault(diff_ids[i] if i < len(diff_ids) else b, value)
    unc_dedup = sum(v or 0 for v in content.values())
    scannable = [d for d, (kind, _p) in images.items() if kind == "image" and _scannable(walk.layers_of(d))]

    # repositories
    repo_images: dict[str, set[str]] = defaultdict(set)
    for key, tag_found in walk.tag_images.items():
        repo_images[key[0]].update(tag_found)
    blob_repos: dict[str, set[str]] = defaultdict(set)
    for repo, in_repo in repo_images.items():
        for d in in_repo:
            for b in walk.blobs_of(d):
                blob_repos[b].add(repo)
    tag_counts = Counter(r for r, *_ in data.tags)
    tag_errors: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for repo, tag, status, digest, etype, err in data.tags:
        if status != "done":
            tag_errors[repo].append(
                {
                    "repository": repo,
                    "tag": tag,
                    "digest": digest,
                    "type": etype or "Unfinished",
                    "message": err or f"not read ({status})",
                }
            )
    # counted once, not once per repository (that was quadratic: > 80 s for 100k images)
    multi_arch_tags: dict[str, int] = {}
    for (repo_name, _tag), is_index in walk.tag_is_index.items():
        if is_index:
            multi_arch_tags[repo_name] = multi_arch_tags.get(repo_name, 0) + 1
    repos_out: list[dict[str, Any]] = []
    for name in sorted(data.repos):
        status, _count, etype, err = data.repos[name]
        found = repo_images.get(name, set())
        stored_blobs = {b for d in found for b in walk.blobs_of(d)}
        stored = sum(blob_size[b] for b in stored_blobs)
        unique = sum(blob_size[b] for b in stored_blobs if len(blob_repos[b]) == 1)
        errors = len(tag_errors.get(name, [])) + (1 if status in ("error", "retry") else 0)
        repos_out.append(
            {
                "name": name,
                "tags": tag_counts.get(name, 0),
                "images": len(found),
                "logical_size": sum(image_size[d] for d in found),
                "stored_size": stored,
                "unique_size": unique,
                "shared_size": stored - unique,
                "multi_arch_tags": multi_arch_tags.get(name, 0),
                "errors": errors,
                "status": status,
            }
        )
        if status in ("error", "retry"):
            tag_errors[name].insert(
                0,
                {
                    "repository": name,
                    "tag": None,
                    "digest": None,
                    "type": etype or "Error",
                    "message": err or "listing tags failed",
                },
            )
    repos_out.sort(key=lambda r: (-r["stored_size"], r["name"]))

    # shared layers and their bases
    by_layers: dict[tuple[str, ...], str] = {}
    for d, (kind, _p) in sorted(images.items()):
        chain = tuple(b for b, _, _ in walk.layers_of(d))
        if kind == "image" and chain:
            prev = by_layers.get(chain)
            if prev is None or len(walk.image_tags[d]) > len(walk.image_tags[prev]):
                by_layers[chain] = d
    layer_digests = {b for d in images for b, _, _ in walk.layers_of(d)}
    shared = [b for b in layer_digests if len(blob_images[b]) > 1]
    shared.sort(key=lambda b: (-(len(blob_images[b]) - 1) * blob_size[b], b))
    top_layers = []
    for b in shared[: top if top > 0 else None]:
        users = blob_images[b]
        base = _base_of(b, users, walk, by_layers, data)
        refs = sorted({_ref(k) for d in users for k in walk.image_tags[d]})
        top_layers.append(
            {
                "digest": b,
                "size": blob_size[b],
                "uncompressed_size": data.blobs.get(b, (0, None, ""))[1],
                "images": len(users),
                "repositories": len(blob_repos[b]),
                "saved_size": (len(users) - 1) * blob_size[b],
                "base": base,
                "used_by": refs[:_USED_BY_CAP],
                "used_by_total": len(refs),
            }
        )

    # largest images, most wasted
    def image_doc(d: str) -> dict[str, Any]:
        kind, platform = images[d]
        keys = walk.image_tags[d]
        return {
            "digest": d,
            "kind": kind,
            "platform": platform,
            "tags": sorted(_ref(k) for k in keys)[:_USED_BY_CAP],
            "size": image_size[d],
            "uncompressed_size": _uncompressed(data, walk.layers_of(d)),
            "layers": len(walk.layers_of(d)),
        }

    cap = top if top > 0 else None
    largest = [image_doc(d) for d in sorted(images, key=lambda d: (-image_size[d], d))[:cap]]
    wasted = sorted(
        (d for d in images if d in data.waste),
        key=lambda d: (-int(data.waste[d].get("wasted_bytes") or 0), d),
    )
    most_wasted = [image_doc(d) | {"waste": data.waste[d]} for d in wasted[:cap]]

    # stale tags
    cutoff = now - datetime.timedelta(days=stale_days)
    stale_keys: set[tuple[str, str]] = set()
    stale_rows: list[dict[str, Any]] = []
    for key, tagged in walk.tag_images.items():
        created = [
            c for c in (_parse_time((walk.config_of(d) or (None,))[0]) for d in tagged) if c is not None
        ]
        if created and max(created) < cutoff:
            stale_keys.add(key)
            newest = max(created)
            stale_rows.append(
                {
                    "repository": key[0],
                    "tag": key[1],
                    "created": newest.isoformat().replace("+00:00", "Z"),
                    "age_days": (now - newest).days,
                }
            )
    stale_rows.sort(key=lambda r: (-r["age_days"], r["repository"], r["tag"]))
    stale_images = {
        d for d in images if walk.image_tags[d] and all(k in stale_keys for k in walk.image_tags[d])
    }
    reclaimable = sum(size for b, size in blob_size.items() if all(d in stale_images for d in blob_images[b]))

    # multi-arch coverage
    platform_tags: Counter[str] = Counter()
    for plats in walk.tag_platforms.values():
        for p in set(plats):
            platform_tags[p] += 1
    index_tags = sum(1 for v in walk.tag_is_index.values() if v)
    multi_arch = {
        "index_tags": index_tags,
        "single_tags": len(walk.tag_is_index) - index_tags,
        "platforms": dict(sorted(platform_tags.items(), key=lambda kv: (-kv[1], kv[0]))),
        "repositories_with_index": sum(1 for r in repos_out if r["multi_arch_tags"]),
    }

    kinds = Counter(kind for kind, _ in images.values())
    errors_flat = [e for name in sorted(tag_errors) for e in tag_errors[name]]
    return {
        "schema_version": SCHEMA_VERSION,
        "run": data.run.to_json(),
        "registry": data.run.registry,
        "repositories": len(data.repos),
        "tags": len(data.tags),
        "tags_read": len(walk.tag_images),
        "images": len(images),
        "images_by_kind": dict(sorted(kinds.items())),
        "blobs": len(blob_size),
        "logical_size": logical,
        "deduplicated_size": dedup,
        "saved_size": logical - dedup,
        "uncompressed_logical_size": unc_logical,
        "uncompressed_deduplicated_size": unc_dedup,
        "uncompressed_unknown_layers": len(unknown_blobs),
        "repos": repos_out,
        "top_shared_layers": top_layers,
        "largest_images": largest,
        "most_wasted": most_wasted,
        "deep": bool(data.run.options.get("deep")),
        "waste_figures": {"images": sum(1 for d in scannable if d in data.waste), "of": len(scannable)},
        "stale_days": stale_days,
        "stale_tags": stale_rows[:cap],
        "stale_tag_count": len(stale_rows),
        "stale_reclaimable_size": reclaimable,
        "multi_arch": multi_arch,
        "vm": _vm(data, walk, vm_params) if vm_params is not None else None,
        "errors": errors_flat,
        "error_count": len(errors_flat),
        "top": top,
    }


def _base_of(
    layer: str, users: Sequence[str], walk: _Walk, by_layers: dict[tuple[str, ...], str], data: RunData
) -> dict[str, Any] | None:
    best: str | None = None
    for d in users[:200]:
        chain = [b for b, _, _ in walk.layers_of(d)]
        if layer not in chain:
            continue
        prefix = tuple(chain[: chain.index(layer) + 1])
        candidate = by_layers.get(prefix)
        if candidate is not None and (
            best is None or len(walk.layers_of(candidate)) < len(walk.layers_of(best))
        ):
            best = candidate
    if best is not None:
        tags = sorted(_ref(k) for k in walk.image_tags[best])
        return {
            "image": best,
            "tag": tags[0] if tags else None,
            "source": "image",
            "layers": len(walk.layers_of(best)),
        }
    names = Counter(data.manifests[d][3] for d in users if data.manifests.get(d) and data.manifests[d][3])
    if names:
        name, _ = names.most_common(1)[0]
        return {"image": None, "tag": name, "source": "annotation", "layers": None}
    return None


def _vm(data: RunData, walk: _Walk, params: VmParameters) -> dict[str, Any]:
    """Every runnable image (each platform) as one container vs one VM, through the VM model."""
    built: list[Image] = []
    estimates = []
    skipped = 0
    for d, (kind, _platform) in sorted(walk.images.items()):
        if kind != "image":
            continue
        cfg = walk.config_of(d)
        diff_ids = cfg[4] if cfg else ()
        layers = []
        for i, (b, mt, size) in enumerate(walk.layers_of(d)):
            unc = data.blobs.get(b, (size, None, "unknown"))
            layers.append(
                Layer(
                    index=i,
                    descriptor=Descriptor(mt, b, size),
                    diff_id=diff_ids[i] if i < len(diff_ids) else None,
                    history=None,
                    uncompressed=SizeEstimate(
                        unc[1], _SOURCES.get(unc[2], "exact") if unc[1] is not None else "unknown"
                    ),
                )
            )
        image = Image(
            reference=(_ref(walk.image_tags[d][0]) if walk.image_tags[d] else d),
            digest=d,
            media_type="",
            manifest_size=0,
            platform=None,
            config_descriptor=Descriptor("", "", 0),
            config=ImageConfig(os=cfg[1] if cfg else None),
            layers=tuple(layers),
        )
        doc = data.os.get(d)
        info = (
            OsInfo(
                doc.get("id"),
                doc.get("version_id"),
                doc.get("pretty_name"),
                str(doc.get("family") or params.fallback_family),
                str(doc.get("evidence") or ""),
                doc.get("layer_index"),
            )
            if doc
            else OsInfo(None, None, None, params.fallback_family, "base OS not detected (--no-os)", None)
        )
        estimate = estimate_for(image, info, params)
        if estimate is None:
            skipped += 1
            continue
        built.append(image)
        estimates.append(estimate)
    families = Counter(e.profile.family for e in estimates)
    if not built:
        return {
            "images": 0,
            "skipped_unknown_size": skipped,
            "families": {},
            "fleet": None,
            "parameters": params.origin,
        }
    fleet = estimate_fleet(built, estimates, params)
    return {
        "images": len(built),
        "skipped_unknown_size": skipped,
        "families": dict(sorted(families.items(), key=lambda kv: (-kv[1], kv[0]))),
        "fleet": fleet.to_json(),
        "parameters": params.origin,
    }


def build_diff(a: RunData, b: RunData, report_a: dict[str, Any], report_b: dict[str, Any]) -> dict[str, Any]:
    """What changed from run ``a`` to run ``b``: tags added, removed and moved, and size growth."""
    ta = {(r, t): d for r, t, _s, d, _e, _m in a.tags}
    tb = {(r, t): d for r, t, _s, d, _e, _m in b.tags}
    added = [{"repository": r, "tag": t, "digest": tb[(r, t)]} for r, t in sorted(tb.keys() - ta.keys())]
    removed = [{"repository": r, "tag": t, "digest": ta[(r, t)]} for r, t in sorted(ta.keys() - tb.keys())]
    changed = [
        {"repository": r, "tag": t, "from": ta[(r, t)], "to": tb[(r, t)]}
        for r, t in sorted(ta.keys() & tb.keys())
        if ta[(r, t)] != tb[(r, t)]
    ]
    ra = {r["name"]: r for r in report_a["repos"]}
    rb = {r["name"]: r for r in report_b["repos"]}
    repos = []
    for name in sorted(ra.keys() | rb.keys()):
        before = ra.get(name, {}).get("stored_size", 0)
        after = rb.get(name, {}).get("stored_size", 0)
        tags_before = ra.get(name, {}).get("tags", 0)
        tags_after = rb.get(name, {}).get("tags", 0)
        if before != after or tags_before != tags_after or (name in ra) != (name in rb):
            repos.append(
                {
                    "name": name,
                    "from_size": before,
                    "to_size": after,
                    "growth": after - before,
                    "from_tags": tags_before,
                    "to_tags": tags_after,
                    "status": "added" if name not in ra else "removed" if name not in rb else "changed",
                }
            )
    repos.sort(key=lambda r: (-abs(r["growth"]), r["name"]))

    def growth(key: str) -> dict[str, Any]:
        x, y = report_a.get(key), report_b.get(key)
        return {"from": x, "to": y, "growth": (y - x) if isinstance(x, int) and isinstance(y, int) else None}

    return {
        "schema_version": SCHEMA_VERSION,
        "from": a.run.to_json(),
        "to": b.run.to_json(),
        "added_tags": added,
        "removed_tags": removed,
        "changed_tags": changed,
        "growth": {
            k: growth(k) for k in ("tags", "images", "logical_size", "deduplicated_size", "repositories")
        },
        "repos": repos,
    }


def runs_document(runs: Sequence[RunInfo], counts: dict[int, tuple[int, int, int]]) -> dict[str, Any]:
    """``audit runs``: every run with its repository, tag and error counts (``counts``: id → the three)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "runs": [
            r.to_json()
            | dict(zip(("repositories", "tags", "errors"), counts.get(r.id, (0, 0, 0)), strict=True))
            for r in runs
        ],
    }
