"""Wasted space in an image: dive's numbers, exactly, and a few of our own.  Pure functions, no I/O.

Input: one entry list per layer, bottom layer first (:class:`~ociinspect.content.scan.Entry`, tar order).

**dive's definitions** (wagoodman/dive ``dive/filetree/efficiency.go`` and ``dive/image/image.go``, 0.13.1),
reproduced node for node by :func:`dive_efficiency`:

* every layer is a tree built from its tar entries (intermediate directories without an entry of their own get
  an empty record: size 0, *not* a directory); a layer's size is the sum of its entries' tar header sizes;
* each layer's *leaf* nodes are visited depth-first in byte order; a leaf adds its size to its path's
  cumulative size; a whiteout leaf ``.wh.NAME`` counts under ``NAME`` with the size of everything below
  ``NAME`` in the stack of the lower layers if ``NAME`` is a directory there, else 0 — and if ``NAME`` is
  nowhere below, dive stops visiting that layer (it logs the error); opaque markers are ignored;
* paths seen in two or more layers are *inefficient*; ``wasted_bytes`` is the sum of their cumulative sizes;
* ``efficiency`` = Σ smallest size seen per path / Σ cumulative size per path (1.0 when the latter is 0);
* ``size_bytes`` sums all layer sizes, ``user_size_bytes`` all but the first layer, and
  ``user_wasted_ratio`` = ``wasted_bytes / user_size_bytes`` (dive's ``WastedUserPercent``; ``None`` where dive
  prints NaN, i.e. when the user size is 0).

**Ours** (OCI layer semantics: whiteouts and opaque markers apply to the layers below, a non-directory replacing
a directory removes its subtree):

* ``whiteout_deleted_bytes``: bytes of lower-layer files removed by whiteouts and opaque directories;
* ``overwritten_bytes``: bytes of lower-layer files replaced by an entry at the same path (or under a directory
  replaced by a non-directory);
* per layer, over non-directory entries: ``added`` (path absent below), ``modified`` (present below),
  ``removed`` (removed by this layer's whiteouts/opaque markers and not re-added), with their bytes;
* duplicates by content (needs hashes): regular files with the same sha256 and size > 0 appearing more than
  once across the image's layers (different paths, or the same path in different layers); each set wastes
  ``(copies - 1) × size``.

Costs: building the trees is O(entries); dive's stacked trees are built once per layer (dive rebuilds them
for every whiteout), so the whole analysis is O(entries × layers) in the worst case, ~0.3 s per 100 000 entries.

**Compact path** (issue 14): when no path of the image contains ``.wh.`` (no whiteout, opaque or AUFS name) and
no non-directory entry sits where some layer has entries below it, dive's trees and our flattened filesystem
reduce to set and dict operations over the layers' :class:`~ociinspect.model.entries.EntryTable` columns:
:func:`analyze` and :func:`dive_efficiency` then build no object per entry (~0.5 µs and ~100 bytes per entry,
transient) and give the same figures as the tree walk, which every other image takes.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterator, Sequence

from ociinspect.model.entries import WHITEOUT_PREFIX, Entry, EntryTable

__all__ = [
    "ANALYSIS_VERSION",
    "DiveEfficiency",
    "DuplicateSet",
    "FinalFile",
    "InefficientFile",
    "LayerChanges",
    "WasteReport",
    "analyze",
    "dive_efficiency",
    "dive_file_lists",
    "duplicates",
    "flatten",
    "layer_changes",
]

_DOUBLE_WHITEOUT = ".wh..wh."

#: Bumped whenever a result of :func:`analyze` changes for the same input, so cached analyses are not reused.
ANALYSIS_VERSION = 2  # 2: whiteouts and replacements reach below implicit directories


# --------------------------------------------------------------------------------------------- dive's trees


class _Node:
    """A node of a dive file tree.  ``info`` is the entry (``None``: dive's empty ``FileInfo{}``)."""

    __slots__ = ("children", "info", "name", "parent")

    def __init__(self, name: str, parent: _Node | None, info: Entry | None) -> None:
        self.name = name
        self.parent = parent
        self.info = info
        self.children: dict[str, _Node] = {}

    @property
    def size(self) -> int:
        return self.info.size if self.info is not None else 0

    @property
    def is_dir(self) -> bool:
        return self.info.is_dir if self.info is not None else False

    def path(self) -> str:
        """dive's ``FileNode.Path()``: ``/a/b/NAME`` with this node's own ``.wh.`` prefix removed."""
        names = [self.name[len(WHITEOUT_PREFIX) :] if self.name.startswith(WHITEOUT_PREFIX) else self.name]
        node = self.parent
        while node is not None and node.parent is not None:
            names.append(node.name)
            node = node.parent
        return "/" + "/".join(reversed(names))


def _add_path(root: _Node, names: Sequence[str], info: Entry | None) -> None:
    """dive's ``FileTree.AddPath``: create missing parents with empty records; never create ``.wh..wh.*``."""
    node = root
    last = len(names) - 1
    for idx, name in enumerate(names):
        child = node.children.get(name)
        if child is None:
            if name.startswith(_DOUBLE_WHITEOUT):
                return
            child = _Node(name, node, None)
            node.children[name] = child
        node = child
        if idx == last:
            node.info = info


def _get_node(root: _Node, path: str) -> _Node | None:
    node = root
    for name in path.split("/"):
        if name:
            child = node.children.get(name)
            if child is None:
                return None
            node = child
    return node


def _walk_child_first(node: _Node) -> Iterator[_Node]:
    """dive's ``VisitDepthChildFirst``: children in byte order, deepest first, the node itself last."""
    stack: list[tuple[_Node, bool]] = [(node, False)]
    while stack:
        current, expanded = stack.pop()
        if expanded:
            yield current
            continue
        stack.append((current, True))
        for name in sorted(current.children, reverse=True):
            stack.append((current.children[name], False))


def _build_tree(entries: Sequence[Entry]) -> _Node:
    root = _Node("", None, None)
    for e in entries:
        _add_path(root, e.path.split("/"), e)
    return root


def _stack(lower: _Node, upper: _Node) -> None:
    """dive's ``FileTree.Stack``: remove whiteout targets, add (and overwrite the records of) every other node.

    The plan is taken from ``upper`` before ``lower`` changes, so ``lower`` may be ``upper`` itself.
    """
    plan = [
        (node.path(), node.name.startswith(WHITEOUT_PREFIX), node.info) for node in _walk_child_first(upper)
    ]
    for path, is_whiteout, info in plan[:-1]:  # the last node visited is the root
        if is_whiteout:
            target = _get_node(lower, path)
            if target is not None and target.parent is not None:
                del target.parent.children[target.name]
        else:
            _add_path(lower, [n for n in path.split("/") if n], info)


def _subtree_size(node: _Node) -> int:
    total = 0
    stack = [node]
    while stack:
        n = stack.pop()
        total += n.size
        stack.extend(n.children.values())
    return total


@dataclasses.dataclass(frozen=True, slots=True)
class InefficientFile:
    """A path present in two or more layers: ``count`` layers, ``wasted_bytes`` = its cumulative size."""

    path: str
    count: int
    wasted_bytes: int


@dataclasses.dataclass(frozen=True, slots=True)
class DiveEfficiency:
    """dive's analysis of one image (see the module docstring); sizes in bytes.

    ``inefficient_files`` is sorted by wasted bytes, largest first (ties by path).  ``notes`` repeats what dive
    would log (a whiteout of a path absent from the layers below, which makes dive skip the rest of that layer).
    """

    layer_sizes: tuple[int, ...]
    size_bytes: int
    user_size_bytes: int
    wasted_bytes: int
    user_wasted_ratio: float | None
    efficiency: float
    inefficient_files: tuple[InefficientFile, ...]
    notes: tuple[str, ...] = ()


def dive_efficiency(layers: Sequence[Sequence[Entry]]) -> DiveEfficiency:
    """dive's efficiency, wasted bytes and inefficient files for ``layers`` (bottom first).

    Cost: O(entries); memory: one layer's tree plus the stack of the layers below (only when there are
    whiteouts) — or, on the compact path (module docstring), a dict of one layer's leaves.
    """
    plain = _plain_tables(layers)
    if plain is not None:
        return _dive_efficiency_columns(plain)
    return _dive_efficiency_trees(layers)


def _dive_efficiency_trees(layers: Sequence[Sequence[Entry]]) -> DiveEfficiency:
    """:func:`dive_efficiency` by building dive's trees node for node (any image)."""
    # dive needs, while visiting layer k, StackTreeRange(trees, 0, k-1): a copy of trees[0] stacked with
    # trees[0] … trees[k-1].  It is built incrementally, one layer tree alive at a time, and only when some
    # name could be a whiteout (dive's test: a name starting with ".wh.").
    # Stacking stops after the last layer that can hold one (no later lookup needs the stack).
    last_whiteout = max(
        (k for k, entries in enumerate(layers) if any(WHITEOUT_PREFIX in e.path for e in entries)), default=-1
    )
    # path -> [cumulative size, smallest size (-1: none yet), nodes seen], created before the size is known
    records: dict[str, list[int]] = {}
    notes: list[str] = []
    stacked: _Node | None = None
    for k, entries in enumerate(layers):
        tree = _build_tree(entries)
        below = tree if k == 0 else stacked  # for k = 0 dive looks in a copy of this very tree
        for node in _walk_child_first(tree):
            if node is tree or node.children:
                continue
            path = node.path()
            record = records.setdefault(path, [0, -1, 0])
            if node.name.startswith(WHITEOUT_PREFIX):
                previous = _get_node(below, path) if below is not None else None
                if previous is None:
                    # dive returns an error here, leaving this path's record at cumulative 0 / smallest -1
                    # (so it lowers the efficiency numerator by one) and visiting nothing more of this layer
                    notes.append(
                        f"layer {k}: whiteout of {path}, which no lower layer has; dive stops counting this layer here"
                    )
                    break
                size = _subtree_size(previous) if previous.is_dir else 0
            else:
                size = node.size
            record[0] += size
            if record[1] < 0 or size < record[1]:
                record[1] = size
            record[2] += 1
        if k < last_whiteout:
            if stacked is None:
                stacked = tree  # copy(trees[0]) + Stack(trees[0]): trees[0] is not needed any more, reuse it
            _stack(stacked, tree)
        del tree
    cumulative = {p: r[0] for p, r in records.items()}
    count = {p: r[2] for p, r in records.items()}
    discovered = sum(cumulative.values())
    efficiency = 1.0 if discovered == 0 else float(sum(r[1] for r in records.values())) / float(discovered)
    inefficient = sorted(
        (InefficientFile(p, n, cumulative[p]) for p, n in count.items() if n >= 2),
        key=lambda f: (-f.wasted_bytes, f.path),
    )
    sizes = tuple(sum(e.size for e in entries) for entries in layers)
    size_bytes = sum(sizes)
    user = size_bytes - sizes[0] if sizes else 0
    wasted = sum(f.wasted_bytes for f in inefficient)
    return DiveEfficiency(
        layer_sizes=sizes,
        size_bytes=size_bytes,
        user_size_bytes=user,
        wasted_bytes=wasted,
        user_wasted_ratio=float(wasted) / float(user) if user else None,
        efficiency=efficiency,
        inefficient_files=tuple(inefficient),
        notes=tuple(notes),
    )


def _go_file_mode(e: Entry) -> int:
    """Go's ``tar.Header.FileInfo().Mode()`` as a number (what dive's JSON export calls ``fileMode``)."""
    mode = e.mode & 0o777
    if e.mode & 0o4000:
        mode |= 1 << 23  # ModeSetuid
    if e.mode & 0o2000:
        mode |= 1 << 22  # ModeSetgid
    if e.mode & 0o1000:
        mode |= 1 << 20  # ModeSticky
    fmt = e.mode & 0o170000
    by_mode = {
        0o040000: 1 << 31,  # ModeDir
        0o010000: 1 << 25,  # ModeNamedPipe
        0o120000: 1 << 27,  # ModeSymlink
        0o060000: 1 << 26,  # ModeDevice
        0o020000: (1 << 26) | (1 << 21),  # ModeDevice | ModeCharDevice
        0o140000: 1 << 24,  # ModeSocket
    }
    by_type = {"2": 1 << 27, "3": (1 << 26) | (1 << 21), "4": 1 << 26, "5": 1 << 31, "6": 1 << 25}
    return mode | by_mode.get(fmt, 0) | by_type.get(e.typeflag, 0)


def dive_file_lists(layers: Sequence[Sequence[Entry]]) -> list[list[dict[str, object]]]:
    """Per layer, dive's export ``fileList``: every tree node child-first (implicit directories as empty
    records).  Cost: O(entries)."""
    out = []
    for entries in layers:
        tree = _build_tree(entries)
        files: list[dict[str, object]] = []
        for node in _walk_child_first(tree):
            if node is tree:
                continue
            e = node.info
            files.append(
                {
                    "path": e.path if e else "",
                    "typeFlag": ord(e.typeflag[0]) if e else 0,
                    "linkName": e.linkname if e else "",
                    "size": e.size if e else 0,
                    "fileMode": _go_file_mode(e) if e else 0,
                    "uid": e.uid if e else 0,
                    "gid": e.gid if e else 0,
                    "isDir": e.is_dir if e else False,
                }
            )
        out.append(files)
    return out


# --------------------------------------------------------------------------------------------- OCI semantics


@dataclasses.dataclass(frozen=True, slots=True)
class FinalFile:
    """A path of the flattened filesystem and the layer that last wrote it."""

    path: str
    layer: int
    entry: Entry


@dataclasses.dataclass(frozen=True, slots=True)
class LayerChanges:
    """What one layer changes, over non-directory entries (bytes are tar header sizes)."""

    index: int
    content_size: int
    entries: int
    added: int = 0
    modified: int = 0
    removed: int = 0
    added_bytes: int = 0
    modified_bytes: int = 0
    removed_bytes: int = 0
    whiteout_deleted_bytes: int = 0
    overwritten_bytes: int = 0
    #: ``(change, path, entry, layer)``: change is added/modified/removed; for removed, ``entry`` and ``layer``
    #: are the removed file and the layer that had written it
    changes: tuple[tuple[str, str, Entry, int], ...] = ()


class _FS:
    """The flattened filesystem while applying layers: path → (layer, entry), plus a children index."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[int, Entry]] = {}
        self.children: dict[str, set[str]] = defaultdict(set)

    def add(self, path: str, layer: int, entry: Entry) -> None:
        # link the path to its parent, and each *implicit* ancestor (a directory no layer wrote an entry for,
        # as in a layer holding ``a/b/c`` without ``a/`` or ``a/b/``) to its own, so that subtree() reaches
        # everything below a whited-out or replaced directory; stops at the first ancestor already linked
        node = path
        while node:
            parent = node.rpartition("/")[0]
            siblings = self.children[parent]
            if node in siblings:
                break
            siblings.add(node)
            node = parent
        self.files[path] = (layer, entry)

    def subtree(self, path: str) -> list[str]:
        """``path`` (when present) and every present path below it (through implicit directories too)."""
        out = [path] if path in self.files else []
        stack = [path]
        while stack:
            for child in self.children.get(stack.pop(), ()):
                if child in self.files:
                    out.append(child)
                stack.append(child)
        return out

    def has_below(self, path: str) -> bool:
        """True when some present path lies below ``path`` (an implicit directory is still a directory)."""
        return len(self.subtree(path)) > (1 if path in self.files else 0)

    def remove(self, paths: Sequence[str]) -> list[tuple[str, int, Entry]]:
        removed = []
        for p in paths:
            item = self.files.pop(p, None)
            if item is not None:
                removed.append((p, item[0], item[1]))
                self.children[p.rpartition("/")[0]].discard(p)
                self.children.pop(p, None)
        return removed


def _apply(layers: Sequence[Sequence[Entry]], *, keep_changes: bool = True) -> tuple[_FS, list[LayerChanges]]:
    fs = _FS()
    result = []
    for k, entries in enumerate(layers):
        lower = fs.files  # whiteouts apply to the layers below: decide against the state before this layer
        before = {p for e in entries if not e.whiteout for p in (e.path,) if p in lower}
        removed_now: dict[str, tuple[int, Entry]] = {}
        deleted_bytes = 0
        for e in entries:
            if e.whiteout in ("whiteout", "opaque"):
                target = e.target
                victims = fs.subtree(target)
                if e.whiteout == "opaque":
                    victims = [v for v in victims if v != target]
                for p, layer, old in fs.remove(victims):
                    if layer < k:
                        removed_now[p] = (layer, old)
                        deleted_bytes += old.size
        overwritten = 0
        changes: list[tuple[str, str, Entry, int]] = []
        counts = {"added": [0, 0], "modified": [0, 0], "removed": [0, 0]}
        for e in entries:
            if e.whiteout:
                continue
            current = fs.files.get(e.path)
            if current is not None and current[0] < k:
                old = current[1]
                if old.is_dir and not e.is_dir:
                    for _, layer, gone in fs.remove(fs.subtree(e.path)):
                        if layer < k:
                            overwritten += gone.size
                else:
                    overwritten += old.size
            elif current is None and not e.is_dir and fs.has_below(e.path):
                # a non-directory replacing an implicit directory removes what is below it, as an unpacker does
                for _, layer, gone in fs.remove(fs.subtree(e.path)):
                    if layer < k:
                        overwritten += gone.size
            fs.add(e.path, k, e)
            if e.is_dir:
                continue
            kind = "modified" if (e.path in before or e.path in removed_now) else "added"
            removed_now.pop(e.path, None)
            counts[kind][0] += 1
            counts[kind][1] += e.size
            if keep_changes:
                changes.append((kind, e.path, e, k))
        for p, (origin, old) in removed_now.items():
            if old.is_dir:
                continue
            counts["removed"][0] += 1
            counts["removed"][1] += old.size
            if keep_changes:
                changes.append(("removed", p, old, origin))
        result.append(
            LayerChanges(
                index=k,
                content_size=sum(e.size for e in entries),
                entries=len(entries),
                added=counts["added"][0],
                modified=counts["modified"][0],
                removed=counts["removed"][0],
                added_bytes=counts["added"][1],
                modified_bytes=counts["modified"][1],
                removed_bytes=counts["removed"][1],
                whiteout_deleted_bytes=deleted_bytes,
                overwritten_bytes=overwritten,
                changes=tuple(changes),
            )
        )
    return fs, result


def flatten(layers: Sequence[Sequence[Entry]]) -> list[FinalFile]:
    """The flattened filesystem (OCI semantics), sorted by path.  Cost: O(entries)."""
    fs, _ = _apply(layers)
    return [FinalFile(p, layer, e) for p, (layer, e) in sorted(fs.files.items())]


def layer_changes(layers: Sequence[Sequence[Entry]]) -> list[LayerChanges]:
    """Per-layer added/modified/removed counts and bytes (see the module docstring).  Cost: O(entries)."""
    return _apply(layers)[1]


@dataclasses.dataclass(frozen=True, slots=True)
class DuplicateSet:
    """Regular files with the same content: ``copies`` as ``(layer, path, in_final_filesystem)``."""

    sha256: str
    size: int
    copies: tuple[tuple[int, str, bool], ...]

    @property
    def wasted_bytes(self) -> int:
        return (len(self.copies) - 1) * self.size


def duplicates(
    layers: Sequence[Sequence[Entry]], final: Sequence[FinalFile] | None = None
) -> list[DuplicateSet]:
    """Content duplicates across the image (entries without ``sha256`` are ignored), most wasteful first.

    Cost: O(entries).
    """
    if final is None:
        final = flatten(layers)
    alive = {(f.layer, f.path) for f in final}
    groups: dict[tuple[str, int], list[tuple[int, str, bool]]] = defaultdict(list)
    for k, entries in enumerate(layers):
        for e in entries:
            if e.is_regular and e.size > 0 and e.sha256 and not e.whiteout:
                groups[(e.sha256, e.size)].append((k, e.path, (k, e.path) in alive))
    sets = [
        DuplicateSet(sha, size, tuple(copies)) for (sha, size), copies in groups.items() if len(copies) > 1
    ]
    sets.sort(key=lambda d: (-d.wasted_bytes, d.copies[0][1]))
    return sets


@dataclasses.dataclass(frozen=True, slots=True)
class WasteReport:
    """Everything ``ociinspect waste`` reports for one image (bytes everywhere)."""

    dive: DiveEfficiency
    layers: tuple[LayerChanges, ...]
    whiteout_deleted_bytes: int
    overwritten_bytes: int
    final_size_bytes: int
    final_files: int
    duplicates: tuple[DuplicateSet, ...] | None  # None when not every layer was hashed

    @property
    def duplicate_wasted_bytes(self) -> int | None:
        if self.duplicates is None:
            return None
        return sum(d.wasted_bytes for d in self.duplicates)


def analyze(layers: Sequence[Sequence[Entry]], *, hashed: bool = False) -> WasteReport:
    """The full waste analysis; ``hashed`` says the entries carry content hashes (duplicates need them).

    Cost: :func:`dive_efficiency` plus two O(entries) passes.
    """
    plain = _plain_tables(layers)
    if plain is not None:
        below = [_ancestors(t.paths) for t in plain]
        distinct: list[bool] = []
        dive = _dive_efficiency_columns(plain, below, distinct)
        if not hashed:
            applied = _apply_columns(plain, below, distinct)
            if applied is not None:
                changes, final_size, final_files = applied
                return WasteReport(
                    dive=dive,
                    layers=tuple(changes),
                    whiteout_deleted_bytes=0,
                    overwritten_bytes=sum(c.overwritten_bytes for c in changes),
                    final_size_bytes=final_size,
                    final_files=final_files,
                    duplicates=None,
                )
    else:
        dive = _dive_efficiency_trees(layers)  # first: its trees are freed before ours are built
    fs, changes = _apply(layers, keep_changes=False)  # the per-entry lists are for `files --layer`
    final = [FinalFile(p, layer, e) for p, (layer, e) in fs.files.items()]
    return WasteReport(
        dive=dive,
        layers=tuple(changes),
        whiteout_deleted_bytes=sum(c.whiteout_deleted_bytes for c in changes),
        overwritten_bytes=sum(c.overwritten_bytes for c in changes),
        final_size_bytes=sum(f.entry.size for f in final),
        final_files=sum(1 for f in final if not f.entry.is_dir),
        duplicates=tuple(duplicates(layers, final)) if hashed else None,
    )


# --------------------------------------------------------------------------------------------- compact path

_S_IFMT = 0o170000
_S_IFDIR = 0o040000
_DIR_TYPE = ord("5")


def _plain_tables(layers: Sequence[Sequence[Entry]]) -> list[EntryTable] | None:
    """The layers as :class:`EntryTable` s when the compact path applies to dive's analysis: no path contains
    ``.wh.`` and no number was too large for its column; else ``None``.  Lists and tuples of :class:`Entry` are
    converted (small inputs: tests, eStargz TOCs).  Cost: one substring test per path."""
    tables = []
    for layer in layers:
        if isinstance(layer, EntryTable):
            table = layer
        else:
            try:
                table = EntryTable.of(layer)
            except ValueError:  # a typeflag that is not one latin-1 character
                return None
        if table.big or any(WHITEOUT_PREFIX in p for p in table.paths):
            return None
        tables.append(table)
    return tables


def _ancestors(paths: Sequence[str]) -> set[str]:
    """Every proper ancestor (``a``, ``a/b`` for ``a/b/c``) of ``paths``, implicit ones included; the root
    (``""``) is left out.  Cost: one ``rpartition`` per path, plus one per new ancestor."""
    parents = {p.rpartition("/")[0] for p in paths}
    parents.discard("")
    out = set(parents)
    for d in parents:
        d = d.rpartition("/")[0]
        while d and d not in out:
            out.add(d)
            d = d.rpartition("/")[0]
    return out


def _dive_efficiency_columns(
    tables: Sequence[EntryTable],
    below: Sequence[set[str]] | None = None,
    distinct: list[bool] | None = None,
) -> DiveEfficiency:
    """:func:`dive_efficiency` for layers without ``.wh.`` names (:func:`_plain_tables`).

    Without whiteouts a layer's dive tree has exactly one node per distinct path plus its implicit ancestors,
    every implicit node has children, and a node is a leaf iff it is no path's ancestor; its size is that of
    the last entry with its path.  So a layer's leaves are ``dict(zip(paths, sizes))`` minus the ancestors, and
    the visiting order (which only matters for dive's early stop on a whiteout) is irrelevant.  Paths seen in
    one layer only need no record: their smallest and cumulative sizes are their size.  Cost: O(entries) in C
    mostly; memory: one layer's leaf dict, plus the leaves of all but the last layer (to find repeats).
    ``below``: each layer's :func:`_ancestors` when already known; ``distinct`` (when given) receives whether
    each layer's paths are all different.
    """
    once: dict[str, int] = {}  # path -> size, seen in one layer so far
    repeated: dict[str, list[int]] = {}  # path -> [cumulative, smallest, layers]
    discovered = 0
    smallest_total = 0  # of paths seen only in the last layer
    last = len(tables) - 1
    for k, table in enumerate(tables):
        leaves = dict(zip(table.paths, table.sizes, strict=True))
        if distinct is not None:
            distinct.append(len(leaves) == len(table.paths))
        for d in below[k] if below is not None else _ancestors(table.paths):
            leaves.pop(d, None)
        discovered += sum(leaves.values())
        if not once and not repeated:
            if k == last:
                smallest_total += sum(leaves.values())
            else:
                once = leaves
            continue
        for path, size in leaves.items():
            record = repeated.get(path)
            if record is not None:
                record[0] += size
                if size < record[1]:
                    record[1] = size
                record[2] += 1
                continue
            first = once.pop(path, None)
            if first is not None:
                repeated[path] = [first + size, min(first, size), 2]
            elif k == last:
                smallest_total += size
            else:
                once[path] = size
        del leaves
    smallest_total += sum(once.values()) + sum(r[1] for r in repeated.values())
    efficiency = 1.0 if discovered == 0 else float(smallest_total) / float(discovered)
    inefficient = sorted(
        (InefficientFile("/" + p, r[2], r[0]) for p, r in repeated.items()),
        key=lambda f: (-f.wasted_bytes, f.path),
    )
    sizes = tuple(t.content_size for t in tables)
    size_bytes = sum(sizes)
    user = size_bytes - sizes[0] if sizes else 0
    wasted = sum(f.wasted_bytes for f in inefficient)
    return DiveEfficiency(
        layer_sizes=sizes,
        size_bytes=size_bytes,
        user_size_bytes=user,
        wasted_bytes=wasted,
        user_wasted_ratio=float(wasted) / float(user) if user else None,
        efficiency=efficiency,
        inefficient_files=tuple(inefficient),
        notes=(),
    )


def _apply_columns(
    tables: Sequence[EntryTable], below: Sequence[set[str]], distinct: Sequence[bool]
) -> tuple[list[LayerChanges], int, int] | None:
    """:func:`_apply` (without the per-entry change lists) for layers :func:`_plain_tables` accepted, plus the
    flattened filesystem's size and file count; ``None`` when some non-directory entry sits at a path another
    entry lies below (a replaced directory: :func:`_apply` removes its subtree), which this path does not model.
    ``below``: each layer's :func:`_ancestors`; ``distinct``: whether each layer's paths are all different.

    Without whiteouts and subtree replacements nothing is ever removed: the flattened filesystem maps each path
    to its last entry, an entry overwrites the entry its path had from a lower layer, and a non-directory is
    *modified* when its path was present before its layer, else *added*.  Cost: O(entries), mostly in C;
    memory: a dict of the paths of all but the last layer to ints, and one byte per entry.
    """
    dirs = [t.dir_flags() for t in tables]
    everywhere_below: set[str] = set().union(*below)
    for table, flags in zip(tables, dirs, strict=True):
        clash = everywhere_below.intersection(table.paths)
        if clash and any(not flags[i] for i, p in enumerate(table.paths) if p in clash):
            return None
    del everywhere_below
    offsets = [0]
    for table in tables:
        offsets.append(offsets[-1] + len(table))
    sizes = tables[0].sizes[:0] if tables else EntryTable().sizes  # an empty array('q'), then every layer's
    for table in tables:
        sizes.extend(table.sizes)
    is_dir = b"".join(dirs)
    files: dict[str, int] = {}  # path -> global entry number (offsets[layer] + index)
    final_size = final_files = 0  # of the last layer, when it is not put in `files`
    result = []
    last = len(tables) - 1
    for k, table in enumerate(tables):
        paths = table.paths
        start = offsets[k]
        n = len(paths)
        before = set(filter(files.__contains__, paths)) if files else set()
        overwritten = added = modified = added_bytes = modified_bytes = 0
        if not before:  # nothing of this layer is below it: every non-directory is added
            flags = dirs[k]
            dir_bytes = 0
            i = flags.find(1)
            while i >= 0:
                dir_bytes += sizes[start + i]
                i = flags.find(1, i + 1)
            added = n - flags.count(1)
            added_bytes = table.content_size - dir_bytes
            if k == last and distinct[k]:  # each entry is final: no need to index them
                final_size, final_files = table.content_size, added
            else:
                files.update(zip(paths, range(start, start + n), strict=True))
        else:
            for i, path in enumerate(paths):
                current = files.get(path)
                if current is not None and current < start:
                    overwritten += sizes[current]
                files[path] = start + i
                if not is_dir[start + i]:
                    if path in before:
                        modified += 1
                        modified_bytes += sizes[start + i]
                    else:
                        added += 1
                        added_bytes += sizes[start + i]
        result.append(
            LayerChanges(
                index=k,
                content_size=table.content_size,
                entries=n,
                added=added,
                modified=modified,
                added_bytes=added_bytes,
                modified_bytes=modified_bytes,
                overwritten_bytes=overwritten,
            )
        )
    final_size += sum(sizes[g] for g in files.values())
    final_files += sum(1 for g in files.values() if not is_dir[g])
    return result, final_size, final_files
