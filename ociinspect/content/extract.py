"""One file (or tree) out of an image without pulling it: ``files REF --cat PATH`` and ``--extract PATH… -o DIR``.

**What is read.**  A path's final version is in the top-most layer that holds it, unless a layer above hides it
(a whiteout of it or of a parent, an opaque marker of a parent, a non-directory written over a parent).  Layers
are looked at from the top down and the walk stops at that layer (or at the hiding one: then the path is not in
the image).  A layer's index comes from the layer cache (:class:`~ociinspect.store.Store`) when it holds it —
then nothing is streamed to decide — else the layer is streamed once, which indexes it (and stores the index) and
keeps the bytes of the wanted files on the way.  Contents come from one streamed read of the layer that holds
them.  Every stream is read to its end so the source verifies the blob digest, and the diff_id is checked,
*before* any byte is written out.  Extracting a directory looks at every layer's index (any layer may hold a
file below it) and streams the layers holding its files.

**Symlinks.**  Symlinks in the parents of a path, and for ``--cat`` the path itself, are followed *inside the
image* (an absolute target starts at the image root, ``..`` stops at the root; never the host's filesystem;
40 links at most).  ``--extract`` writes symlinks as symlinks, never writes through a symlink (one already in
``DIR`` or one it wrote), never outside ``DIR``, and refuses output names with ``..`` or an absolute path.
Hardlinks are written as copies of their target's bytes; devices and fifos are skipped (reported).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ociinspect.content import compression
from ociinspect.content.scan import (
    ScanCache,
    ScanOptions,
    _entry_from,
    _ForwardReader,
    _layer_what,
    _members,
    sparse_content,
)
from ociinspect.errors import DigestMismatch, InvalidImage, NotFound, OciInspectError, UsageError
from ociinspect.model.entries import Entry, LayerScan, normalise_path
from ociinspect.model.record import record

if TYPE_CHECKING:
    from ociinspect.model.image import Image
    from ociinspect.sources.base import Source

__all__ = ["MAX_SYMLINKS", "ExtractResult", "ImageFiles", "image_path"]

#: symlinks followed while resolving one path (Linux's limit), then :class:`InvalidImage`
MAX_SYMLINKS = 40


def image_path(text: str) -> str:
    """A path as the user names it in the image (``/etc/os-release``, ``etc/os-release``), normalised without a
    leading ``/``.  ``..`` that climbs above the root is refused (:class:`UsageError`)."""
    path, _, escapes = normalise_path(text if text.startswith("/") else "/" + text)
    _, _, climbs = normalise_path(text.lstrip("/"))
    if escapes or climbs:
        raise UsageError(
            f"{text!r} climbs out of the image root", hint="name a path inside the image, e.g. /etc/hosts"
        )
    return path


@dataclasses.dataclass(slots=True)
class _Index:
    """One layer's entries by path, the paths its whiteouts remove and the directories it makes opaque."""

    entries: dict[str, Entry]
    whiteouts: set[str]
    opaque: set[str]
    parents: set[str]  # every directory some entry of the layer lies below (explicit or implicit)

    @classmethod
    def of(cls, entries: Sequence[Entry]) -> _Index:
        index = cls({}, set(), set(), set())
        for e in entries:
            index.parents.update(_ancestors(e.path))
            if e.whiteout == "whiteout":
                index.whiteouts.add(e.target)
            elif e.whiteout == "opaque":
                index.opaque.add(e.target)
            elif not e.whiteout:
                index.entries[e.path] = e
        return index


@record
class ExtractResult:
    """What ``extract`` wrote (paths relative to the output directory) and what it skipped, and why."""

    written: tuple[str, ...]
    skipped: tuple[str, ...]


def _ancestors(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:n]) for n in range(1, len(parts))]


class ImageFiles:
    """Lookups in an image's final filesystem, reading as few layers as possible (see the module docstring).

    ``streamed`` lists the layer indexes streamed so far (the cost).  Wanted files' bytes are spooled to a
    private temporary directory removed by :meth:`close`.
    """

    def __init__(
        self,
        source: Source,
        image: Image,
        *,
        cache: ScanCache | None = None,
        options: ScanOptions | None = None,
    ) -> None:
        self.source = source
        self.image = image
        self.cache = cache
        self.options = options or ScanOptions()
        self.streamed: list[int] = []
        self._index: dict[int, _Index] = {}
        self._want: set[str] = set()
        self._want_trees: set[str] = set()
        self._captured: dict[tuple[int, str], Path] = {}
        self._spool = Path(tempfile.mkdtemp(prefix="ociinspect-extract-"))

    def close(self) -> None:
        shutil.rmtree(self._spool, ignore_errors=True)

    def __enter__(self) -> ImageFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------------------------------- layers

    def want(self, path: str, *, tree: bool = False) -> None:
        """Keep the bytes of ``path`` (and with ``tree`` of every file below it) in every layer streamed from now."""
        (self._want_trees if tree else self._want).add(path)

    def _wanted(self, path: str) -> bool:
        return path in self._want or any(path.startswith(t + "/") or t == "" for t in self._want_trees)

    def _layer(self, i: int) -> _Index:
        if i not in self._index:
            layer = self.image.layers[i]
            scan = None
            if self.cache is not None:
                scan = self.cache.get_scan(
                    layer.digest, need_hash=False, allow_toc=self.options.use_estargz_toc
                )
            if scan is None:
                scan = self._stream(i)
            self._index[i] = _Index.of(scan.entries)
        return self._index[i]

    def _stream(self, i: int) -> LayerScan:
        """Stream layer ``i`` once: index it, spool the wanted regular files, verify digest and diff_id.
        Cost: the whole blob read, inflated; the spooled bytes written to a temporary directory."""
        layer = self.image.layers[i]
        what = _layer_what(layer)
        entries: list[Entry] = []
        absolute: list[str] = []
        captured: dict[str, Path] = {}
        cap = self.options.max_uncompressed
        budget = None if cap is None else [cap]  # the logical bytes sparse files may still expand to
        try:
            with self.source.open_blob(layer.digest, size=layer.size) as chunks:
                inflated = compression.decompress(chunks, what=what, max_output=self.options.max_uncompressed)
                reader = _ForwardReader(iter(inflated), what)
                for tf, ti in _members(reader, what):
                    entry = _entry_from(ti, what, absolute)
                    if entry is None:
                        continue
                    entries.append(entry)
                    if entry.is_regular and not entry.whiteout and self._wanted(entry.path):
                        captured[entry.path] = self._spool_member(
                            tf, ti, reader, what, i, len(entries), budget
                        )
                reader.drain()
        except OciInspectError as exc:
            raise exc.with_context(what) from None
        diff_id = f"sha256:{reader.hasher.hexdigest()}"
        if layer.diff_id and layer.diff_id.startswith("sha256:") and layer.diff_id != diff_id:
            raise DigestMismatch(
                f"{what}: uncompressed content is {diff_id}, but the config's diff_id is {layer.diff_id}",
                hint="the image is corrupt or its config does not belong to these layers",
            )
        self.streamed.append(i)
        for path, spooled in captured.items():
            self._captured[(i, path)] = spooled
        scan = LayerScan(
            digest=layer.digest,
            entries=tuple(entries),
            index_source="stream",
            hashed=False,
            diff_id=diff_id,
            uncompressed_size=reader.total,
        )
        if self.cache is not None:
            self.cache.put_scan(scan)
        return scan

    def _spool_member(
        self,
        tf: tarfile.TarFile,
        ti: tarfile.TarInfo,
        reader: _ForwardReader,
        what: str,
        i: int,
        n: int,
        budget: list[int] | None,
    ) -> Path:
        target = self._spool / f"{i}-{n}"
        with open(target, "wb") as out:
            if ti.sparse is not None:
                for block in sparse_content(tf, ti, what, budget):
                    out.write(block)
            else:
                reader.seek(ti.offset_data)
                if reader.skip(ti.size, out.write) != ti.size:
                    raise InvalidImage(
                        f"{what}: truncated tar stream inside {ti.name!r}", hint="fetch the blob again"
                    )
        return target

    # ------------------------------------------------------------------------------------- lookups

    def lookup(
        self, path: str, *, top: int | None = None, implicit: bool = False
    ) -> tuple[int, Entry] | None:
        """The final entry at the literal ``path`` (no symlink followed) among layers ``0..top`` and the layer
        holding it; ``None`` when no layer has it or a layer above it hides it.  With ``implicit``, a layer that
        holds entries below ``path`` without an entry for ``path`` itself decides too (an implicit directory).
        Cost: layers from the top down to the one that decides, each indexed once (cache, else one stream)."""
        ancestors = _ancestors(path)
        start = len(self.image.layers) - 1 if top is None else top
        for i in range(start, -1, -1):
            index = self._layer(i)
            entry = index.entries.get(path)
            if entry is not None:
                return i, entry
            if implicit and path in index.parents:
                return i, Entry(path, "5", 0, 0o40755, 0, 0)
            if path in index.whiteouts or any(a in index.whiteouts or a in index.opaque for a in ancestors):
                return None
            if any((x := index.entries.get(a)) is not None and not x.is_dir for a in ancestors):
                return None
        return None

    def resolve(self, path: str, *, follow_last: bool = True) -> tuple[str, int, Entry] | None:
        """``(real path, layer, entry)`` of ``path`` with the symlinks of its parents (and of itself with
        ``follow_last``) followed inside the image; ``None`` when it is not in the image.  A parent without an
        entry of its own counts as an implicit directory.  Raises :class:`InvalidImage` after
        :data:`MAX_SYMLINKS` links, :class:`UsageError` for the root."""
        parts = [p for p in path.split("/") if p]
        done: list[str] = []
        hops = 0
        found: tuple[int, Entry] | None = None
        while parts:
            name = parts.pop(0)
            if name == ".":
                continue
            if name == "..":
                if done:
                    done.pop()
                found = None
                continue
            current = "/".join([*done, name])
            found = self.lookup(current, implicit=True)
            if found is None:
                if not parts:
                    return None
                done.append(name)  # implicit directory (a tar may omit parents); the final lookup decides
                continue
            entry = found[1]
            if entry.type == "symlink" and (parts or follow_last):
                hops += 1
                if hops > MAX_SYMLINKS:
                    raise InvalidImage(f"/{path}: more than {MAX_SYMLINKS} levels of symbolic links")
                target = entry.linkname
                if target.startswith("/"):
                    done = []
                parts = [p for p in target.split("/") if p] + parts
                found = None
                continue
            if parts and not entry.is_dir:
                return None
            done.append(name)
        if not done:
            raise UsageError("the image root is a directory", hint="use --extract / -o DIR for a whole tree")
        if found is None:
            found = self.lookup("/".join(done), implicit=True)
            if found is None:
                return None
        return "/".join(done), found[0], found[1]

    def _content_path(self, layer: int, path: str, entry: Entry, hops: int = 0) -> Path:
        """The spooled bytes of a regular file (or a hardlink's target) held by ``layer``.  Cost: nothing when
        kept while indexing, else one more stream of that layer."""
        if entry.type == "hardlink":
            target, _, _ = normalise_path(entry.linkname)
            found = self.lookup(target, top=layer)
            if found is None or hops >= MAX_SYMLINKS:
                raise InvalidImage(f"/{path}: hardlink to /{target}, which is not a file of the image")
            return self._content_path(found[0], target, found[1], hops + 1)
        if not entry.is_regular:
            raise UsageError(f"/{path} is a {entry.type}, not a regular file")
        if (layer, path) not in self._captured:
            self.want(path)
            self._stream(layer)
        return self._captured[(layer, path)]

    def open(self, path: str) -> IO[bytes]:
        """The final bytes of the file at ``path`` (symlinks followed inside the image), verified.
        Raises :class:`NotFound` (exit 3, with a hint) when the image does not have it."""
        self.want(path)
        resolved = self.resolve(path)
        if resolved is None:
            raise NotFound(
                f"/{path} is not in the image {self.image.reference}",
                hint=f"list what is there: ociinspect files {self.image.reference} --path /{path.rpartition('/')[0]}",
            )
        real, layer, entry = resolved
        if entry.is_dir:
            raise UsageError(f"/{path} is a directory", hint="use --extract PATH -o DIR for a tree")
        return open(self._content_path(layer, real, entry), "rb")

    # ------------------------------------------------------------------------------------- extract

    def _tree(self, root: str) -> Iterator[tuple[str, int, Entry]]:
        """The final entries strictly below directory ``root``, sorted by path.  Cost: every layer's index."""
        below = root + "/" if root else ""
        candidates: set[str] = set()
        for i in range(len(self.image.layers)):
            candidates.update(p for p in self._layer(i).entries if p.startswith(below) and p != root)
        for p in sorted(candidates):
            found = self.lookup(p)
            if found is not None:
                yield p, found[0], found[1]

    def extract(self, paths: list[str], outdir: Path) -> ExtractResult:
        """Write each of ``paths`` (files, symlinks, directory trees) under ``outdir`` at its image path.
        Never writes through a symlink or outside ``outdir`` (:class:`InvalidImage` names the offending entry).
        Cost: see the module docstring."""
        for p in paths:
            self.want(p, tree=True)
        outdir.mkdir(parents=True, exist_ok=True)
        written: list[str] = []
        skipped: list[str] = []
        for path in paths:
            if path == "":  # the whole image
                items = [(p, i, e, p) for p, i, e in self._tree("")]
                self._write(items, outdir, written, skipped)
                continue
            resolved = self.resolve(path, follow_last=False)
            if resolved is None:
                raise NotFound(
                    f"/{path} is not in the image {self.image.reference}",
                    hint=f"list what is there: ociinspect files {self.image.reference} --path /{path.rpartition('/')[0]}",
                )
            real, layer, entry = resolved
            items = [(path, layer, entry, real)]
            if entry.is_dir:
                items += [(path + p[len(real) :], i, e, p) for p, i, e in self._tree(real)]
            self._write(items, outdir, written, skipped)
        return ExtractResult(tuple(written), tuple(skipped))

    def _write(
        self, items: list[tuple[str, int, Entry, str]], outdir: Path, written: list[str], skipped: list[str]
    ) -> None:
        """Write ``(output name, layer, entry, image path)`` items under ``outdir``, parents first."""
        for name, i, e, src in items:
            dest = _safe_dest(outdir, name)
            if e.is_dir:
                _mkdir(dest)
            elif e.type == "symlink":
                _refuse_existing(dest, name)
                os.symlink(e.linkname, dest)
            elif e.is_regular or e.type == "hardlink":
                _refuse_existing(dest, name, allow_file=True)
                # the bytes are read and verified first: a failed read writes nothing
                content = self._content_path(i, src, e)
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as out, open(content, "rb") as data:
                    shutil.copyfileobj(data, out, 1 << 20)
                os.chmod(dest, e.permissions & 0o777, follow_symlinks=False)
            else:
                skipped.append(f"/{name} ({e.type}: not written)")
                continue
            written.append(name)


def _safe_dest(outdir: Path, name: str) -> Path:
    """``outdir/name`` after checking that ``name`` is relative without ``..`` and that no parent below
    ``outdir`` is a symlink (parents are created as real directories)."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise UsageError(f"refusing output name {name!r}: absolute, empty or with '..'")
    current = outdir
    for part in parts[:-1]:
        current = current / part
        _mkdir(current)
    return current / parts[-1]


def _mkdir(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        os.mkdir(path, 0o755)
        return
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidImage(
            f"refusing to write below {path}: it is a {'symlink' if stat.S_ISLNK(st.st_mode) else 'non-directory'}",
            hint="an entry of the image (or a file already in the output directory) would redirect the write",
        )


def _refuse_existing(dest: Path, name: str, *, allow_file: bool = False) -> None:
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        return
    if allow_file and stat.S_ISREG(st.st_mode):
        return
    raise InvalidImage(
        f"refusing to write /{name}: {dest} already exists", hint="extract into an empty directory"
    )
