"""The waste analyzer's tree walk as it was before the column analysis (issue 14, at 963decd): the oracle the
column analysis of :mod:`ociinspect.analyzers.waste` is checked against in ``tests/unit/test_waste_columns.py``.

Frozen on purpose (do not "fix" it to follow the analyzer): dive's trees node for node (``_Node`` per tree node,
``_stack`` as dive's ``FileTree.Stack``) and the OCI flattening with one :class:`Entry` per tar entry.  The tree
nodes themselves (``_Node``, ``_build_tree``, ``_walk_child_first``) are the analyzer's: it still builds them for
``--json-dive`` (:func:`~ociinspect.analyzers.waste.dive_file_lists`), which the dive equality tests pin too.  The dive
equality tests (tests/integration/test_waste_dive.py) pinned these functions to dive 0.13.1's numbers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from ociinspect.analyzers.waste import (  # dive's tree nodes: the analyzer still builds them for --json-dive
    DiveEfficiency,
    DuplicateSet,
    FinalFile,
    InefficientFile,
    LayerChanges,
    _add_path,
    _build_tree,
    _Node,
    _walk_child_first,
)
from ociinspect.model.entries import WHITEOUT_PREFIX, Entry


def _get_node(root: _Node, path: str) -> _Node | None:
    node = root
    for name in path.split("/"):
        if name:
            child = node.children.get(name)
            if child is None:
                return None
            node = child
    return node


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


def tree_duplicates(
    layers: Sequence[Sequence[Entry]], final: Sequence[FinalFile] | None = None
) -> list[DuplicateSet]:
    """Content duplicates across the image (entries without ``sha256`` are ignored), most wasteful first.

    Cost: O(entries).
    """
    if final is None:
        fs, _ = _apply(layers)
        final = [FinalFile(q, layer, e) for q, (layer, e) in sorted(fs.files.items())]
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
