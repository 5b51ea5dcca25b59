"""What changed between two images: layers, final filesystems, where it grew, config.  Pure functions, no I/O.

The flow for ``ociinspect diff A B`` (the command stays thin)::

    plan = layers_to_read(a, b)                                  # which layers differ (no I/O)
    sa = scan_image(src_a, a, opts, cache=store, layers=plan.only_a)
    sb = scan_image(src_b, b, opts, cache=store, layers=plan.only_b)
    prefix = scan_image(src_a, a, opts, cache=store, layers=plan.prefix) if prefix_needed(sa, sb) else None
    result = diff_images(a, b, sa, sb, prefix, depth=3)          # frozen ImageDiff; result.to_json()

**Layers.**  The *shared prefix* is the longest run of bottom layers that are identical at the same positions:
the same blob digest, or the same diff_id (the same tar, compressed differently: listed again under
``recompressed``).  Everything above it is ``only_a`` / ``only_b``.

**Cost rule** (what must be read).  The final filesystems are ``prefix + suffix_a`` and ``prefix + suffix_b``.
The suffixes are always read (scan or layer cache).  The prefix is read *once* (from either image, the layer
cache first) and only when the result can depend on it: :func:`prefix_needed` is False when every path either
suffix writes or removes has a fate fixed by *both* suffixes (written, or removed by a whiteout / opaque marker)
— e.g. a rebuild that rewrote the same files — and True otherwise (a path written on one side only is *added*
or *modified* depending on what the prefix holds; a whiteout on one side removes whatever the prefix has there).
When it is False the prefix is never read, so a diff costs the differing layers only.  It assumes a well-formed
prefix (nothing below a non-directory), which every unpacker needs anyway.

**Files.**  Final trees are built by :func:`ociinspect.analyzers.waste.flatten` (OCI whiteouts, opaque
directories, a non-directory replacing a directory).  Paths are reported with a leading ``/``.  A path in both
trees is *modified* when its type, size, permission bits (``mode & 0o7777``), uid, gid, link target (symlinks and
hardlinks) or content differs.  Content: with sha256 on both sides, equal hashes mean equal bytes (a rewritten
but identical file is not modified); different sizes mean different bytes; entries from layers with the same
digest or diff_id are the same bytes.  Otherwise (a regular file rewritten by a differing layer with the same
size, permissions and owner, no hashes) the content is *unknown*: such paths are listed under ``files.unknown``,
never under ``modified`` (run with ``--hash`` to settle them).  Hardlinks are compared by their target path (the
bytes are compared at the target).  Device numbers, mtimes and xattrs are not indexed, hence not compared.

**Growth.**  Per directory, the byte delta of the changed non-directory paths below it (tar header sizes, bytes),
as a ``du``-style tree to ``depth`` levels, children largest absolute delta first.

**Sizes.**  ``size_delta.compressed`` = Σ B layer blob sizes − Σ A layer blob sizes (exact).
``size_delta.uncompressed`` is the difference of the layers outside the shared prefix (the prefix cancels out);
it is ``None`` with a reason when one of those layers' uncompressed size is not known (neither the loader's
estimate nor a streamed scan knows it) — never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ociinspect.analyzers.waste import flatten
from ociinspect.model.entries import Entry, LayerScan
from ociinspect.model.image import HistoryEntry, Image, ImageConfig, Layer
from ociinspect.model.record import record

__all__ = [
    "SCHEMA_VERSION",
    "ConfigDiff",
    "FileChange",
    "FileDiff",
    "GrowthNode",
    "ImageDiff",
    "LayerDiff",
    "ReadPlan",
    "SizeDelta",
    "diff_configs",
    "diff_images",
    "diff_layers",
    "diff_trees",
    "growth_tree",
    "layers_to_read",
    "prefix_needed",
]

#: ``schema_version`` of :meth:`ImageDiff.to_json` (bumped when a key changes meaning or disappears).
SCHEMA_VERSION = 1


# ------------------------------------------------------------------------------------------------ layers


def _same_layer(x: Layer, y: Layer) -> bool:
    """Same bytes once uncompressed: the same blob digest, or the same (sha256) diff_id."""
    return x.digest == y.digest or (bool(x.diff_id) and x.diff_id == y.diff_id)


@record
class ReadPlan:
    """Which layers a diff reads.  ``shared``: the number of identical bottom layers; ``only_a`` / ``only_b``:
    the indexes above them in each image (always read); :attr:`prefix`: the shared layers' indexes (read once,
    only when :func:`prefix_needed` says so)."""

    shared: int
    only_a: tuple[int, ...]
    only_b: tuple[int, ...]

    @property
    def prefix(self) -> tuple[int, ...]:
        return tuple(range(self.shared))


def layers_to_read(a: Image, b: Image) -> ReadPlan:
    """The shared prefix (same digest or diff_id at the same positions from the bottom) and the two differing
    suffixes.  Cost: O(layers), no I/O."""
    shared = 0
    for x, y in zip(a.layers, b.layers, strict=False):
        if not _same_layer(x, y):
            break
        shared += 1
    return ReadPlan(shared, tuple(range(shared, len(a.layers))), tuple(range(shared, len(b.layers))))


@record
class SizeDelta:
    """B − A in bytes.  ``uncompressed`` is ``None`` when not known; ``uncompressed_note`` then says why."""

    compressed: int
    uncompressed: int | None
    uncompressed_note: str | None = None


@record
class LayerDiff:
    """Layers compared position by position from the bottom (see the module docstring)."""

    shared: tuple[Layer, ...]  # A's layers of the shared prefix
    only_a: tuple[Layer, ...]
    only_b: tuple[Layer, ...]
    recompressed: tuple[tuple[Layer, Layer], ...]  # (A's, B's): same diff_id, different blob
    size_delta: SizeDelta


def _uncompressed(layer: Layer, scan: LayerScan | None, side: str) -> tuple[int | None, str | None]:
    if layer.uncompressed.value is not None:
        return layer.uncompressed.value, None
    if scan is not None and scan.uncompressed_size is not None:
        return scan.uncompressed_size, None
    why = layer.uncompressed.note or "not known without reading it"
    if layer.uncompressed.candidates:
        why += f" (candidates: {', '.join(str(c) for c in layer.uncompressed.candidates)})"
    return None, f"uncompressed size of layer {layer.index} of {side} unknown: {why}"


def diff_layers(
    a: Image,
    b: Image,
    suffix_a: Sequence[LayerScan] = (),
    suffix_b: Sequence[LayerScan] = (),
) -> LayerDiff:
    """Shared / only-A / only-B / recompressed layers and the size deltas.  The suffix scans (optional) supply
    streamed uncompressed sizes the loader did not know.  Cost: O(layers)."""
    plan = layers_to_read(a, b)
    scans_a = dict(zip(plan.only_a, suffix_a, strict=False))
    scans_b = dict(zip(plan.only_b, suffix_b, strict=False))
    total = 0
    notes: list[str] = []
    for side, image, scans, sign in (("A", a, scans_a, -1), ("B", b, scans_b, 1)):
        for i in plan.only_a if side == "A" else plan.only_b:
            value, note = _uncompressed(image.layers[i], scans.get(i), side)
            if value is None:
                notes.append(note or "")
            else:
                total += sign * value
    pairs = list(zip(a.layers[: plan.shared], b.layers[: plan.shared], strict=True))
    return LayerDiff(
        shared=tuple(x for x, _ in pairs),
        only_a=tuple(a.layers[i] for i in plan.only_a),
        only_b=tuple(b.layers[i] for i in plan.only_b),
        recompressed=tuple((x, y) for x, y in pairs if x.digest != y.digest),
        size_delta=SizeDelta(
            compressed=b.compressed_size - a.compressed_size,
            uncompressed=None if notes else total,
            uncompressed_note="; ".join(notes) if notes else None,
        ),
    )


# ------------------------------------------------------------------------------------ what to read


def _footprint(layers: Sequence[Sequence[Entry]]) -> tuple[set[str], list[tuple[str, bool]], bool]:
    """A suffix's effect on whatever lies below it: the paths it defines (its own final tree), the regions it
    removes (``(root, inclusive)``: a whiteout removes its target and below; an opaque marker, and a
    non-directory written over what may be a directory, remove what is below), and whether a layer names a path
    twice (then the rule gives up: the prefix is needed)."""
    defined = {f.path for f in flatten(layers)}
    removed: list[tuple[str, bool]] = []
    twice = False
    for entries in layers:
        seen: set[str] = set()
        for e in entries:
            if e.whiteout == "whiteout":
                removed.append((e.target, True))
            elif e.whiteout == "opaque":
                removed.append((e.target, False))
            elif not e.whiteout:
                twice = twice or e.path in seen
                seen.add(e.path)
                if not e.is_dir:
                    removed.append((e.path, False))
    return defined, removed, twice


def _under(path: str, root: str, inclusive: bool) -> bool:
    if root == "":
        return inclusive or path != ""
    return (inclusive and path == root) or path.startswith(root + "/")


def _covered(path: str, removed: Sequence[tuple[str, bool]]) -> bool:
    """``path`` lies in a region that ``removed`` removes."""
    return any(_under(path, root, incl) for root, incl in removed)


def _region_covered(root: str, inclusive: bool, removed: Sequence[tuple[str, bool]]) -> bool:
    """Every path of the region (``root`` and below, or only below when not ``inclusive``) lies inside one
    region of ``removed``."""
    for other, other_incl in removed:
        if other_incl and _under(root, other, True):
            return True
        if not other_incl and (_under(root, other, False) or (root == other and not inclusive)):
            return True
    return False


def prefix_needed(suffix_a: Sequence[LayerScan], suffix_b: Sequence[LayerScan]) -> bool:
    """True when the diff of ``prefix + suffix_a`` and ``prefix + suffix_b`` can depend on the prefix, i.e. the
    shared prefix's scans must be read (once, from the layer cache when it holds them).

    False when every path that one suffix defines or removes has a fate fixed by the other suffix too (defined
    there, or inside a region it removes: below a whiteout, an opaque marker or a non-directory it writes) —
    then both images show the prefix through the same holes and the prefix cannot change the result.  Assumes
    a well-formed prefix (nothing below a non-directory); a suffix layer naming one path twice makes it True.  Cost: O(entries × removal roots) over
    the suffixes' entries, no I/O.
    """
    if not suffix_a and not suffix_b:
        return False
    fa = _footprint([s.entries for s in suffix_a])
    fb = _footprint([s.entries for s in suffix_b])
    if fa[2] or fb[2]:
        return True
    for (defined, removed, _), (o_defined, o_removed, _) in ((fa, fb), (fb, fa)):
        for path in defined:
            if path not in o_defined and not _covered(path, o_removed):
                return True
        for root, incl in removed:
            if not _region_covered(root, incl, o_removed):
                return True
    return False


# ------------------------------------------------------------------------------------------------ files


@record
class FileChange:
    """One path of the diff (``path`` with a leading ``/``).  ``a`` / ``b`` are the final entries (``None``:
    absent on that side).  ``changes`` names what differs: ``type``, ``size``, ``mode``, ``uid``, ``gid``,
    ``link``, ``content``; ``content`` is ``True`` (differs), ``False`` (same bytes) or ``None`` (not known, or
    not a regular file on both sides)."""

    path: str
    a: Entry | None
    b: Entry | None
    changes: tuple[str, ...] = ()
    content: bool | None = None

    @property
    def size_a(self) -> int:
        return self.a.size if self.a is not None and not self.a.is_dir else 0

    @property
    def size_b(self) -> int:
        return self.b.size if self.b is not None and not self.b.is_dir else 0

    @property
    def delta(self) -> int:
        """Bytes B − A (tar header sizes; directories count 0)."""
        return self.size_b - self.size_a


@record
class FileDiff:
    """Final filesystems compared, each list sorted by path.  ``unknown``: same type, size, permissions, owner,
    rewritten by a differing layer, content not comparable without hashes."""

    added: tuple[FileChange, ...]
    removed: tuple[FileChange, ...]
    modified: tuple[FileChange, ...]
    unknown: tuple[FileChange, ...]

    @property
    def changed(self) -> tuple[FileChange, ...]:
        """Every path whose bytes or metadata differ (added, removed, modified), sorted by path."""
        return tuple(sorted((*self.added, *self.removed, *self.modified), key=lambda c: c.path))


def _content(ea: Entry, eb: Entry, same_source: bool) -> bool | None:
    if not (ea.is_regular and eb.is_regular):
        return None
    if ea.size != eb.size:
        return True
    if same_source or ea.size == 0:
        return False
    if ea.sha256 and eb.sha256:
        return ea.sha256 != eb.sha256
    return None


def _compare(path: str, ea: Entry, eb: Entry, same_source: bool) -> FileChange:
    changes = []
    if ea.type != eb.type:
        changes.append("type")
    if (0 if ea.is_dir else ea.size) != (0 if eb.is_dir else eb.size):
        changes.append("size")
    if ea.permissions != eb.permissions:
        changes.append("mode")
    if ea.uid != eb.uid:
        changes.append("uid")
    if ea.gid != eb.gid:
        changes.append("gid")
    links = ("symlink", "hardlink")
    if (ea.type in links or eb.type in links) and ea.linkname != eb.linkname:
        changes.append("link")
    content = _content(ea, eb, same_source)
    if content:
        changes.append("content")
    return FileChange("/" + path, ea, eb, tuple(changes), content)


def diff_trees(
    layers_a: Sequence[Sequence[Entry]],
    layers_b: Sequence[Sequence[Entry]],
    *,
    same_layers: frozenset[tuple[int, int]] = frozenset(),
) -> FileDiff:
    """Compare the final filesystems of two layer stacks (entry lists, bottom first).

    ``same_layers``: ``(i, j)`` pairs where A's layer ``i`` and B's layer ``j`` hold the same bytes (same digest
    or diff_id), so a file both finals take from them is unchanged without hashes.  Cost: two
    :func:`~ociinspect.analyzers.waste.flatten` passes, O(entries).
    """
    final_a = {f.path: f for f in flatten(layers_a) if f.path}
    final_b = {f.path: f for f in flatten(layers_b) if f.path}
    added, removed, modified, unknown = [], [], [], []
    for path in sorted(final_a.keys() | final_b.keys()):
        fa, fb = final_a.get(path), final_b.get(path)
        if fa is None and fb is not None:
            added.append(FileChange("/" + path, None, fb.entry))
        elif fb is None and fa is not None:
            removed.append(FileChange("/" + path, fa.entry, None))
        elif fa is not None and fb is not None:
            change = _compare(path, fa.entry, fb.entry, (fa.layer, fb.layer) in same_layers)
            if change.changes:
                modified.append(change)
            elif change.content is None and fa.entry.is_regular:
                unknown.append(change)
    return FileDiff(tuple(added), tuple(removed), tuple(modified), tuple(unknown))


# ------------------------------------------------------------------------------------------------ growth


@record
class GrowthNode:
    """A directory of the ``du``-style growth tree: the changed non-directory paths below it weigh ``bytes_a``
    in A and ``bytes_b`` in B (bytes); ``delta`` = ``bytes_b − bytes_a``; ``changed`` counts them."""

    path: str
    bytes_a: int
    bytes_b: int
    changed: int
    children: tuple[GrowthNode, ...] = ()

    @property
    def delta(self) -> int:
        return self.bytes_b - self.bytes_a


def growth_tree(files: FileDiff, depth: int = 3) -> GrowthNode:
    """Byte deltas aggregated per directory, ``depth`` levels below ``/`` (0: the root only); directories
    without a changed path below are left out; children sorted by absolute delta, largest first, then path.
    Cost: O(changed paths × depth)."""
    if depth < 0:
        raise ValueError(f"depth must be 0 or more, not {depth}")
    sums: dict[str, list[int]] = {}
    for change in files.changed:
        if (change.a is None or change.a.is_dir) and (change.b is None or change.b.is_dir):
            continue
        parts = change.path.strip("/").split("/")[:-1]
        for level in range(min(len(parts), depth) + 1):
            key = "/" + "/".join(parts[:level])
            acc = sums.setdefault(key, [0, 0, 0])
            acc[0] += change.size_a
            acc[1] += change.size_b
            acc[2] += 1

    def node(path: str) -> GrowthNode:
        acc = sums.get(path, [0, 0, 0])
        prefix = path.rstrip("/") + "/"
        kids = [node(p) for p in sums if p != path and p.startswith(prefix) and "/" not in p[len(prefix) :]]
        kids.sort(key=lambda n: (-abs(n.delta), n.path))
        return GrowthNode(path, acc[0], acc[1], acc[2], tuple(kids))

    return node("/")


# ------------------------------------------------------------------------------------------------ config


def _env(env: Sequence[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for item in env:
        name, eq, value = item.partition("=")
        out[name] = value if eq else None
    return out


def _map_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "added": {k: b[k] for k in sorted(b.keys() - a.keys())},
        "removed": {k: a[k] for k in sorted(a.keys() - b.keys())},
        "changed": {k: {"a": a[k], "b": b[k]} for k in sorted(a.keys() & b.keys()) if a[k] != b[k]},
    }


def _history_line(h: HistoryEntry) -> str:
    return (h.created_by or h.comment or "").strip()


@record
class ConfigDiff:
    """Config and manifest-annotation differences.  ``scalars``: ``field → (a, b)`` for the fields that differ
    (``user``, ``working_dir``, ``entrypoint``, ``cmd``, ``stop_signal``, ``os``, ``architecture``, ``variant``);
    ``env`` / ``labels`` / ``annotations``: ``{"added", "removed", "changed"}``; ``history_common``: history
    lines both share at the bottom, then A's remaining lines (``history_removed``) and B's (``history_added``)."""

    scalars: Mapping[str, tuple[Any, Any]]
    env: Mapping[str, Any]
    exposed_ports_added: tuple[str, ...]
    exposed_ports_removed: tuple[str, ...]
    labels: Mapping[str, Any]
    annotations: Mapping[str, Any]
    history_common: int
    history_removed: tuple[str, ...]
    history_added: tuple[str, ...]

    @property
    def identical(self) -> bool:
        return not (
            self.scalars
            or any(self.env.values())
            or self.exposed_ports_added
            or self.exposed_ports_removed
            or any(self.labels.values())
            or any(self.annotations.values())
            or self.history_removed
            or self.history_added
        )

    def to_json(self) -> dict[str, Any]:
        return {
            **{
                name: ({"a": _jsonable(va), "b": _jsonable(vb)} if name in self.scalars else None)
                for name in _SCALARS
                for va, vb in (self.scalars.get(name, (None, None)),)
            },
            "env": dict(self.env),
            "exposed_ports": {
                "added": list(self.exposed_ports_added),
                "removed": list(self.exposed_ports_removed),
            },
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "history": {
                "common": self.history_common,
                "removed": list(self.history_removed),
                "added": list(self.history_added),
            },
        }


_SCALARS = ("user", "working_dir", "entrypoint", "cmd", "stop_signal", "os", "architecture", "variant")


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def diff_configs(a: Image, b: Image) -> ConfigDiff:
    """Config differences (an artifact without an image config counts as an empty config) plus the
    manifests' annotations (the ``org.opencontainers.image.base.*`` ones among them).  Cost: O(config size)."""
    ca, cb = a.config or ImageConfig(), b.config or ImageConfig()
    scalars = {
        name: (getattr(ca, name), getattr(cb, name))
        for name in _SCALARS
        if getattr(ca, name) != getattr(cb, name)
    }
    ha = [_history_line(h) for h in (a.history or ca.history)]
    hb = [_history_line(h) for h in (b.history or cb.history)]
    common = 0
    while common < min(len(ha), len(hb)) and ha[common] == hb[common]:
        common += 1
    ports_a, ports_b = set(ca.exposed_ports), set(cb.exposed_ports)
    return ConfigDiff(
        scalars=scalars,
        env=_map_diff(_env(ca.env), _env(cb.env)),
        exposed_ports_added=tuple(sorted(ports_b - ports_a)),
        exposed_ports_removed=tuple(sorted(ports_a - ports_b)),
        labels=_map_diff(ca.labels, cb.labels),
        annotations=_map_diff(a.annotations, b.annotations),
        history_common=common,
        history_removed=tuple(ha[common:]),
        history_added=tuple(hb[common:]),
    )


# ------------------------------------------------------------------------------------------------ result


def _layer_json(layer: Layer) -> dict[str, Any]:
    return {
        "index": layer.index,
        "digest": layer.digest,
        "diff_id": layer.diff_id,
        "media_type": layer.media_type,
        "size": layer.size,
        "uncompressed": layer.uncompressed.value,
        "created_by": layer.history.created_by if layer.history else None,
    }


def _entry_json(e: Entry | None) -> dict[str, Any] | None:
    if e is None:
        return None
    return {
        "type": e.type,
        "size": 0 if e.is_dir else e.size,
        "mode": f"{e.permissions:04o}",
        "uid": e.uid,
        "gid": e.gid,
        "link": e.linkname or None,
        "sha256": e.sha256,
    }


def _growth_json(n: GrowthNode) -> dict[str, Any]:
    return {
        "path": n.path,
        "delta": n.delta,
        "bytes_a": n.bytes_a,
        "bytes_b": n.bytes_b,
        "changed": n.changed,
        "children": [_growth_json(c) for c in n.children],
    }


@record
class ImageDiff:
    """Everything ``ociinspect diff`` reports (bytes everywhere); :meth:`to_json` is the documented contract."""

    a: Image
    b: Image
    layers: LayerDiff
    files: FileDiff
    growth: GrowthNode
    config: ConfigDiff
    depth: int
    prefix_read: bool
    notes: tuple[str, ...] = ()

    @property
    def identical(self) -> bool | None:
        """True: the final filesystems (as compared: type, size, permissions, owner, link target, content) and
        the configs are equal — layer digests may still differ (they are listed); False: something differs;
        None: nothing is known to differ but some files' contents could not be compared (no hashes)."""
        if self.files.added or self.files.removed or self.files.modified or not self.config.identical:
            return False
        return None if self.files.unknown else True

    def to_json(self) -> dict[str, Any]:
        """The JSON document of ``docs/diff.md`` (``schema_version`` 1).  Cost: O(changed paths)."""

        def side(image: Image) -> dict[str, Any]:
            return {
                "reference": image.reference,
                "digest": image.digest,
                "platform": str(image.platform) if image.platform else None,
                "layers": len(image.layers),
            }

        def change(c: FileChange) -> dict[str, Any]:
            out: dict[str, Any] = {"path": c.path, "size_a": c.size_a, "size_b": c.size_b, "delta": c.delta}
            out["changes"] = list(c.changes)
            out["content"] = c.content
            out["a"], out["b"] = _entry_json(c.a), _entry_json(c.b)
            return out

        def one(c: FileChange, e: Entry | None) -> dict[str, Any]:
            assert e is not None
            return {"path": c.path, "size": 0 if e.is_dir else e.size} | (_entry_json(e) or {})

        ld = self.layers
        return {
            "schema_version": SCHEMA_VERSION,
            "identical": self.identical,
            "a": side(self.a),
            "b": side(self.b),
            "layers": {
                "shared": [_layer_json(x) for x in ld.shared],
                "only_a": [_layer_json(x) for x in ld.only_a],
                "only_b": [_layer_json(x) for x in ld.only_b],
                "recompressed": [
                    {
                        "index": x.index,
                        "diff_id": x.diff_id,
                        "digest_a": x.digest,
                        "digest_b": y.digest,
                        "size_a": x.size,
                        "size_b": y.size,
                    }
                    for x, y in ld.recompressed
                ],
            },
            "files": {
                "added": [one(c, c.b) for c in self.files.added],
                "removed": [one(c, c.a) for c in self.files.removed],
                "modified": [change(c) for c in self.files.modified],
                "unknown": [one(c, c.b) for c in self.files.unknown],
            },
            "size_delta": {
                "compressed": ld.size_delta.compressed,
                "uncompressed": ld.size_delta.uncompressed,
                "uncompressed_note": ld.size_delta.uncompressed_note,
                "files": self.growth.delta,
            },
            "growth": {"depth": self.depth, "tree": _growth_json(self.growth)},
            "config": self.config.to_json(),
            "prefix_read": self.prefix_read,
            "notes": list(self.notes),
        }


def diff_images(
    a: Image,
    b: Image,
    suffix_a: Sequence[LayerScan],
    suffix_b: Sequence[LayerScan],
    prefix: Sequence[LayerScan] | None = None,
    *,
    depth: int = 3,
) -> ImageDiff:
    """Compare two loaded images from the scans of their differing layers.

    ``suffix_a`` / ``suffix_b``: the scans of ``layers_to_read(a, b).only_a`` / ``.only_b``, in that order;
    ``prefix``: the scans of the shared prefix (from either image), required when
    ``prefix_needed(suffix_a, suffix_b)`` and the prefix has layers — ``ValueError`` otherwise, as for scans that
    do not match the plan.
    Cost: O(entries read) — see the module docstring for what must be read.
    """
    plan = layers_to_read(a, b)
    if len(suffix_a) != len(plan.only_a) or len(suffix_b) != len(plan.only_b):
        raise ValueError(
            f"diff needs {len(plan.only_a)} scans of A and {len(plan.only_b)} of B above the {plan.shared} shared "
            f"layers, got {len(suffix_a)} and {len(suffix_b)}"
        )
    for scans, image, indexes in ((suffix_a, a, plan.only_a), (suffix_b, b, plan.only_b)):
        for scan, i in zip(scans, indexes, strict=True):
            if scan.digest != image.layers[i].digest:
                raise ValueError(f"scan of {scan.digest} given for layer {i} ({image.layers[i].digest})")
    needed = prefix_needed(suffix_a, suffix_b)
    if prefix is not None and len(prefix) != plan.shared:
        raise ValueError(f"the shared prefix has {plan.shared} layers, got {len(prefix)} scans")
    if needed and prefix is None and plan.shared:  # a prefix of no layers is known without a scan
        raise ValueError("the layers above the shared prefix depend on it: pass the prefix's scans")
    if prefix is not None:
        for i, scan in enumerate(prefix):
            if scan.digest not in (a.layers[i].digest, b.layers[i].digest):
                raise ValueError(f"scan of {scan.digest} given for shared layer {i}")
    base = [s.entries for s in prefix] if prefix is not None else []
    offset = 0 if prefix is not None else plan.shared  # layer index in the stacks → index in the image
    same = {(i, i) for i in range(plan.shared)} if prefix is not None else set()
    for i in plan.only_a:
        for j in plan.only_b:
            if _same_layer(a.layers[i], b.layers[j]):
                same.add((i - offset, j - offset))
    files = diff_trees(
        [*base, *(s.entries for s in suffix_a)],
        [*base, *(s.entries for s in suffix_b)],
        same_layers=frozenset(same),
    )
    notes = []
    if files.unknown:
        notes.append(
            f"{len(files.unknown)} file(s) rewritten with the same size, mode and owner: content not compared "
            "without hashes (use --hash)"
        )
    return ImageDiff(
        a=a,
        b=b,
        layers=diff_layers(a, b, suffix_a, suffix_b),
        files=files,
        growth=growth_tree(files, depth),
        config=diff_configs(a, b),
        depth=depth,
        prefix_read=prefix is not None,
        notes=tuple(notes),
    )
