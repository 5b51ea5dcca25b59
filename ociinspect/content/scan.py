"""Layer scanner: stream each layer once and index its tar entries, never writing the image to disk.

A layer blob is read from any :class:`~ociinspect.sources.base.Source` (``open_blob``: the source verifies the
blob digest when the stream ends), inflated by :func:`ociinspect.content.compression.decompress` (gzip via isal, zstd,
plain tar; bounded by ``max_uncompressed``), hashed on the way (the diff_id is checked against the config) and
parsed with :mod:`tarfile`, which handles PAX and GNU long names and sparse files.  Memory is one chunk plus
the entry list; nothing is extracted.

eStargz layers (``containerd.io/snapshot/stargz/toc.digest`` annotation) are indexed from their table of
contents instead, read with two Range requests (footer, then TOC) and verified against the annotation — see
:mod:`ociinspect.content.estargz`.

Path rules (documented in ``docs/waste.md``): entry names are normalised (no leading ``./`` or ``/``, no
trailing ``/``, ``.`` components and doubled slashes removed).  An *absolute* name (``/etc/passwd``) is read
relative to the root, as Docker and containerd extract it, and reported in the scan's warnings.  A name or a
hardlink target that climbs *out* of the root (``../x``, ``a/../../x``) is an error
(:class:`~ociinspect.errors.InvalidImage`): Docker refuses to extract such a layer ("breakout").

Whiteouts are kept as entries (``.wh.NAME`` removes ``NAME`` of the layers below, ``.wh..wh..opq`` makes its
directory opaque); :mod:`ociinspect.analyzers.waste` applies them.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import logging
import tarfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

from ociinspect.content import compression
from ociinspect.errors import DigestMismatch, InvalidImage, LimitExceeded, OciInspectError
from ociinspect.model import digest as _digest
from ociinspect.model.entries import Entry, LayerScan, clean_text, normalise_path, whiteout_kind

if TYPE_CHECKING:
    from ociinspect.model.image import Image, Layer
    from ociinspect.sources.base import Source

__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "DEFAULT_MAX_UNCOMPRESSED",
    "ScanCache",
    "ScanOptions",
    "read_files",
    "scan_image",
    "scan_layer",
    "scan_tar_stream",
]

log = logging.getLogger(__name__)


#: Default cap on one layer's uncompressed bytes (``--max-uncompressed``): 64 GiB.
DEFAULT_MAX_UNCOMPRESSED = 64 << 30
#: Default cap on entries per layer: an index of five million entries needs about 1.5 GiB of memory.
DEFAULT_MAX_ENTRIES = 5_000_000
#: Largest single read tarfile may ask for (PAX / GNU long-name headers are read whole).
_MAX_HEADER_READ = 16 << 20
_BLOCK = 512
_ZERO_BLOCK = bytes(_BLOCK)


@dataclasses.dataclass(frozen=True, slots=True)
class ScanOptions:
    """How to scan.  ``hash_files``: sha256 of every regular file's content (one more hash pass over the
    uncompressed bytes).  ``max_uncompressed``: bytes per layer before :class:`LimitExceeded` (``None``: no cap).
    ``use_estargz_toc``: index eStargz layers from their TOC (two Range reads) instead of streaming them.
    ``workers``: layers scanned in parallel (threads)."""

    hash_files: bool = False
    max_uncompressed: int | None = DEFAULT_MAX_UNCOMPRESSED
    max_entries: int = DEFAULT_MAX_ENTRIES
    use_estargz_toc: bool = True
    workers: int = 4


class ScanCache(Protocol):
    """What :func:`scan_image` needs from a cache (implemented by :class:`ociinspect.store.Store`)."""

    def get_scan(self, digest: str, *, need_hash: bool, allow_toc: bool) -> LayerScan | None: ...

    def put_scan(self, scan: LayerScan) -> None: ...


# ------------------------------------------------------------------------------------------------ tar stream


class _ForwardReader:
    """A forward-only file object over an iterator of byte chunks, for :class:`tarfile.TarFile`.

    Every byte pulled from the iterator is hashed (sha256: the diff_id) and counted.  ``seek`` only moves
    forward (skipping is reading); ``read`` of more than 16 MiB at once is refused (tarfile reads PAX and GNU
    long-name headers whole, so a hostile header cannot make us allocate gigabytes).

    Why not ``tarfile.open(mode="r|")``: its ``_Stream`` re-copies the rest of its buffer on every 512-byte
    header read, which is quadratic with large buffers and slow with small ones; this reader keeps the single
    forward pass and slices chunks without copying them more than once.
    """

    def __init__(self, chunks: Iterator[bytes], what: str) -> None:
        self._it = chunks
        self._buf = b""
        self._off = 0
        self._pos = 0
        self.what = what
        self.hasher = hashlib.sha256()
        self.total = 0
        self.last_block_pos = -1
        self.last_block = b""

    def _fill(self) -> bool:
        for chunk in self._it:
            if chunk:
                self.hasher.update(chunk)
                self.total += len(chunk)
                self._buf = chunk
                self._off = 0
                return True
        self._buf = b""
        self._off = 0
        return False

    def tell(self) -> int:
        return self._pos

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            raise InvalidImage(f"{self.what}: unbounded read of the tar stream")
        if size > _MAX_HEADER_READ:
            raise LimitExceeded(
                f"{self.what}: a tar header asks for {size} bytes (over {_MAX_HEADER_READ})",
                hint="the layer is corrupt or hostile",
            )
        start = self._pos
        avail = len(self._buf) - self._off
        if size <= avail:
            data = self._buf[self._off : self._off + size]
            self._off += size
        else:
            parts = [self._buf[self._off :]] if avail else []
            need = size - avail
            while need > 0 and self._fill():
                take = min(need, len(self._buf))
                parts.append(self._buf[:take])
                self._off = take
                need -= take
            data = b"".join(parts)
        self._pos += len(data)
        if size == _BLOCK:
            self.last_block_pos, self.last_block = start, data
        return data

    def skip(self, count: int, sink: Callable[[memoryview], object] | None = None) -> int:
        """Move ``count`` bytes forward, feeding them to ``sink`` (e.g. a hasher's update) without copies."""
        left = count
        while left > 0:
            avail = len(self._buf) - self._off
            if avail == 0:
                if not self._fill():
                    break
                continue
            take = min(left, avail)
            if sink is not None:
                sink(memoryview(self._buf)[self._off : self._off + take])
            self._off += take
            left -= take
        moved = count - left
        self._pos += moved
        return moved

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence != 0 or pos < self._pos:
            raise InvalidImage(f"{self.what}: the tar stream would have to be read backwards")
        self.skip(pos - self._pos)
        return self._pos

    def drain(self) -> None:
        """Read (and hash) everything left: the source verifies the blob digest only at the very end."""
        self._off = len(self._buf)
        while self._fill():
            self._off = len(self._buf)


def _entry_from(ti: tarfile.TarInfo, what: str, absolute: list[str]) -> Entry | None:
    name = clean_text(ti.name)
    path, was_absolute, escapes = normalise_path(name)
    if escapes:
        raise InvalidImage(
            f"{what}: entry {name!r} points outside the image root",
            hint="Docker refuses to extract such a layer (path breakout); rebuild it with a sane tar",
        )
    if ti.size < 0:  # GNU base-256 can encode one; Go's archive/tar (Docker, dive) refuses it too
        raise InvalidImage(
            f"{what}: entry {name!r} has a negative size ({ti.size})", hint="the layer is corrupt or hostile"
        )
    if not path:
        return None  # the root directory itself ("./")
    if was_absolute:
        absolute.append(name)
    typeflag = ti.type.decode("latin-1") if ti.type else "0"
    if typeflag == "\0":
        typeflag = "0"
    linkname = clean_text(ti.linkname) if ti.linkname else ""
    if typeflag == "1":
        _, _, link_escapes = normalise_path(linkname)
        if link_escapes:
            raise InvalidImage(
                f"{what}: hardlink {name!r} points outside the image root ({linkname!r})",
                hint="Docker refuses to extract such a layer (path breakout); rebuild it with a sane tar",
            )
    return Entry(
        path,
        typeflag,
        int(ti.size),
        int(ti.mode),
        int(ti.uid),
        int(ti.gid),
        linkname,
        None,
        whiteout_kind(path),
    )


def _members(reader: _ForwardReader, what: str) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    """The members of the tar ``reader`` delivers, with tarfile's errors translated and the end checked
    (a truncated or corrupt stream raises :class:`InvalidImage` naming ``what``).  Memory: one member."""
    try:
        try:
            tf = tarfile.TarFile(
                fileobj=cast(Any, reader), mode="r", encoding="utf-8", errors="surrogateescape"
            )
        except tarfile.ReadError as exc:
            if reader.total == 0:
                return  # an empty stream is an empty layer (Go's archive/tar agrees)
            raise InvalidImage(
                f"{what}: not a tar archive ({exc})",
                hint="the layer's content is not a tar stream (wrong media type or corrupt blob)",
            ) from None
        ti: tarfile.TarInfo | None = tf.next()
        while ti is not None:
            tf.members.clear()  # type: ignore[attr-defined]  # ours is compact; tarfile's holds every TarInfo
            yield tf, ti
            ti = tf.next()
        _check_end(tf, reader, what)
    except tarfile.TarError as exc:
        raise InvalidImage(
            f"{what}: corrupt or truncated tar stream ({exc})", hint="the blob is damaged; fetch it again"
        ) from None
    except EOFError:
        raise InvalidImage(
            f"{what}: truncated tar stream", hint="the blob is incomplete; fetch it again"
        ) from None


def scan_tar_stream(
    data: Iterable[bytes],
    *,
    what: str,
    hash_files: bool = False,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> tuple[list[Entry], str, int, list[str]]:
    """Index an *uncompressed* tar given as chunks: ``(entries, "sha256:…" of the stream, byte count, warnings)``.

    Reads the stream to its very end (so a source verifies its digest).  Cost: one pass; CPU: sha256 of the
    stream (plus one more sha256 of file contents with ``hash_files``); memory: one chunk plus the entries.
    Raises :class:`InvalidImage` for a stream that is not a tar, is truncated or corrupt, or escapes the root.
    """
    reader = _ForwardReader(iter(data), what)
    entries: list[Entry] = []
    warnings: list[str] = []
    absolute: list[str] = []
    for tf, ti in _members(reader, what):
        entry = _entry_from(ti, what, absolute)
        if entry is None:
            continue
        if hash_files and entry.is_regular:
            entry = _with_hash(entry, _hash_member(tf, ti, reader, what))
        entries.append(entry)
        if len(entries) > max_entries:
            raise LimitExceeded(
                f"{what}: more than {max_entries} tar entries", hint="the layer is hostile or unusually large"
            )
    reader.drain()
    if absolute:
        shown = ", ".join(repr(a) for a in absolute[:3]) + (" …" if len(absolute) > 3 else "")
        warnings.append(
            f"{len(absolute)} entr{'y' if len(absolute) == 1 else 'ies'} with an absolute path ({shown}), "
            "read relative to the image root as Docker extracts them"
        )
    return entries, f"sha256:{reader.hasher.hexdigest()}", reader.total, warnings


def _with_hash(e: Entry, sha256: str) -> Entry:
    return Entry(e.path, e.typeflag, e.size, e.mode, e.uid, e.gid, e.linkname, sha256, e.whiteout)


def _hash_member(tf: tarfile.TarFile, ti: tarfile.TarInfo, reader: _ForwardReader, what: str) -> str:
    h = hashlib.sha256()
    if ti.sparse is not None:  # sparse: let tarfile rebuild the logical content (holes are zeros)
        f = tf.extractfile(ti)
        assert f is not None
        while block := f.read(1 << 20):
            h.update(block)
        return h.hexdigest()
    reader.seek(ti.offset_data)
    if reader.skip(ti.size, h.update) != ti.size:
        raise InvalidImage(f"{what}: truncated tar stream inside {ti.name!r}", hint="fetch the blob again")
    return h.hexdigest()


def _check_end(tf: tarfile.TarFile, reader: _ForwardReader, what: str) -> None:
    """tarfile silently stops at an unreadable header past the first one; Go's archive/tar (dive, Docker) does
    not.  Accept only a clean end: no more data, or a zero block (the end-of-archive marker)."""
    end = tf.offset
    if reader.last_block_pos == end:
        block = reader.last_block
    else:
        if reader.tell() > end:
            raise InvalidImage(f"{what}: inconsistent tar stream position")
        reader.seek(end)
        block = reader.read(_BLOCK)
    if not block or block == _ZERO_BLOCK:
        return
    if len(block) < _BLOCK:
        raise InvalidImage(
            f"{what}: truncated tar stream (a {len(block)}-byte partial header at offset {end})",
            hint="the blob is incomplete; fetch it again",
        )
    raise InvalidImage(
        f"{what}: corrupt tar header at offset {end}", hint="the blob is damaged; fetch it again"
    )


# ------------------------------------------------------------------------------------------------ layers


def _layer_what(layer: Layer) -> str:
    return f"layer {layer.index} ({_digest.short(layer.digest)})"


def scan_layer(
    source: Source,
    layer: Layer,
    options: ScanOptions | None = None,
    *,
    progress: Callable[[int], None] | None = None,
) -> LayerScan:
    """Index one layer.

    eStargz layers (with ``options.use_estargz_toc``) cost two Range reads (51-byte footer, then the TOC's
    compressed bytes); every other layer is streamed once: the whole blob is read, inflated, its digest and
    diff_id verified.  ``progress`` receives compressed byte counts as they are read.  Errors name the layer.
    """
    options = options or ScanOptions()
    what = _layer_what(layer)
    try:
        return _scan_layer(source, layer, options, what, progress)
    except (
        OciInspectError
    ) as exc:  # source errors (digest, network) do not know which layer they were reading
        raise exc.with_context(what) from None


def _scan_layer(
    source: Source,
    layer: Layer,
    options: ScanOptions,
    what: str,
    progress: Callable[[int], None] | None,
) -> LayerScan:
    if options.use_estargz_toc:
        from ociinspect.content import estargz

        if estargz.is_estargz(layer.descriptor):
            try:
                scan = estargz.scan_toc(source, layer.descriptor, what=what)
            except estargz.TOCUnavailable as exc:
                log.info("%s: %s; streaming the layer instead", what, exc)
            else:
                if progress is not None:
                    progress(layer.size)
                return scan
    with source.open_blob(layer.digest, size=layer.size) as chunks:

        def counted() -> Iterator[bytes]:
            for chunk in chunks:
                if progress is not None:
                    progress(len(chunk))
                yield chunk

        inflated = compression.decompress(counted(), what=what, max_output=options.max_uncompressed)
        entries, diff_id, total, warnings = scan_tar_stream(
            inflated, what=what, hash_files=options.hash_files, max_entries=options.max_entries
        )
    if layer.diff_id and layer.diff_id.startswith("sha256:") and layer.diff_id != diff_id:
        raise DigestMismatch(
            f"{what}: uncompressed content is {diff_id}, but the config's diff_id is {layer.diff_id}",
            hint="the image is corrupt or its config does not belong to these layers",
        )
    return LayerScan(
        digest=layer.digest,
        entries=tuple(entries),
        index_source="stream",
        hashed=options.hash_files,
        diff_id=diff_id,
        uncompressed_size=total,
        warnings=tuple(warnings),
    )


def read_files(
    source: Source,
    layer: Layer,
    paths: Sequence[str],
    *,
    markers: Sequence[str] = (),
    scope: str | None = None,
    max_file_bytes: int = 1 << 20,
    max_uncompressed: int | None = DEFAULT_MAX_UNCOMPRESSED,
) -> tuple[dict[str, bytes], frozenset[str]]:
    """The contents of the regular files at ``paths`` in one layer, and which ``markers`` are present.

    Paths are normalised (``etc/os-release``, no leading ``/``); a marker is present when an entry has that
    path or lies below it.  Files over ``max_file_bytes`` are skipped.  Cost: a *partial* stream of the layer —
    reading stops right after ``paths[0]`` (the most authoritative file) has been read; or, with ``scope``
    (a directory such as ``"etc"``), as soon as the stream has left that directory after having found some of
    ``paths`` (every common image builder writes entries in lexical order, so the directory is contiguous);
    otherwise at the end of the layer.  The blob digest and diff_id are verified only when the whole layer was
    read.  Errors name the layer (:class:`InvalidImage`, :class:`LimitExceeded`).
    """
    what = _layer_what(layer)
    wanted = set(paths)
    found: dict[str, bytes] = {}
    present: set[str] = set()
    prefixes = [(m, m + "/") for m in markers]
    complete = False
    with source.open_blob(layer.digest, size=layer.size) as chunks:
        inflated = compression.decompress(chunks, what=what, max_output=max_uncompressed)
        reader = _ForwardReader(iter(inflated), what)
        for _tf, ti in _members(reader, what):
            path, _, escapes = normalise_path(clean_text(ti.name))
            if escapes:
                raise InvalidImage(f"{what}: entry {ti.name!r} points outside the image root")
            for marker, below in prefixes:
                if path == marker or path.startswith(below):
                    present.add(marker)
            if (
                scope is not None
                and found
                and path != scope
                and not path.startswith(scope + "/")
                and path > scope
            ):
                break  # left the scope directory with something found: the rest of the layer can't be in it
            if path in wanted and ti.isreg() and ti.sparse is None and ti.size <= max_file_bytes:
                reader.seek(ti.offset_data)
                found[path] = reader.read(ti.size)
                if paths and path == paths[0]:
                    break
        else:
            reader.drain()
            complete = True
    if complete and layer.diff_id and layer.diff_id.startswith("sha256:"):
        diff_id = f"sha256:{reader.hasher.hexdigest()}"
        if diff_id != layer.diff_id:
            raise DigestMismatch(
                f"{what}: uncompressed content is {diff_id}, but the config's diff_id is {layer.diff_id}",
                hint="the image is corrupt or its config does not belong to these layers",
            )
    return found, frozenset(present)


def scan_image(
    source: Source,
    image: Image,
    options: ScanOptions | None = None,
    *,
    cache: ScanCache | None = None,
    progress: Callable[[int], None] | None = None,
    layers: Sequence[int] | None = None,
) -> list[LayerScan]:
    """Index every layer of ``image`` (or those at the indexes in ``layers``), in layer order.

    Layers found in ``cache`` (a hashed scan satisfies a non-hashed request, not the reverse) cost nothing;
    the others are scanned in parallel threads (``options.workers``) and stored in the cache once complete and
    verified.  ``progress`` receives compressed byte counts (cached layers count at once).  The first error
    cancels the layers not yet started and is raised with its layer named.
    """
    options = options or ScanOptions()
    wanted = [image.layers[i] for i in layers] if layers is not None else list(image.layers)
    results: dict[int, LayerScan] = {}
    todo = []
    for layer in wanted:
        cached = None
        if cache is not None:
            cached = cache.get_scan(
                layer.digest, need_hash=options.hash_files, allow_toc=options.use_estargz_toc
            )
        if cached is not None:
            results[layer.index] = cached
            if progress is not None:
                progress(layer.size)
        else:
            todo.append(layer)
    lock = threading.Lock()

    def locked_progress(n: int) -> None:
        if progress is not None:
            with lock:
                progress(n)

    def one(layer: Layer) -> LayerScan:
        scan = scan_layer(source, layer, options, progress=locked_progress if progress else None)
        if cache is not None:
            cache.put_scan(scan)
        return scan

    if len(todo) <= 1 or options.workers <= 1:
        for layer in todo:
            results[layer.index] = one(layer)
    else:
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(options.workers, len(todo))) as pool:
            futures = {pool.submit(one, layer): layer for layer in todo}
            try:
                for future in concurrent.futures.as_completed(futures):
                    results[futures[future].index] = future.result()
            except OciInspectError:
                for f in futures:
                    f.cancel()
                raise
    return [results[layer.index] for layer in wanted]
