"""The local store: a SQLite file of immutable, digest-keyed facts (today: layer file indexes).

A layer blob never changes under its digest, so its file index is computed once per machine and reused by
every later command.  Default location: ``$XDG_CACHE_HOME/ociinspect/store.sqlite3`` (``~/.cache/ociinspect``
when ``XDG_CACHE_HOME`` is unset); ``--cache-dir`` picks another directory, ``--no-cache`` none at all.

* Schema: a ``meta`` table holds ``schema_version``; :data:`MIGRATIONS` lists ``(version, statements)`` applied
  in order inside one transaction, so later features (audit runs, manifests) add tables by appending a
  migration.  A store written by a *newer* ociinspect is left untouched and not used (a warning is logged);
  a file that is not a SQLite database is moved aside and rebuilt.
* WAL journal (readers never block the writer), one connection per thread, ``busy_timeout`` 10 s.
* Layer entries are stored compactly: one row per layer, entries as zlib-compressed JSON arrays
  (about 15–25 bytes per entry).  A ``facts`` table holds other small digest-keyed facts as text
  (:meth:`Store.get_fact` / :meth:`Store.put_fact`, e.g. the OS files of a base layer, and the uncompressed
  size of every layer content streamed once, keyed by its diff_id: :meth:`Store.get_uncompressed_size`).
* Only digests, paths and sizes are stored: never references, registry names or credentials.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ociinspect._version import __version__
from ociinspect.model.logs import get_logger
from ociinspect.model.textsafe import parse_uint

if TYPE_CHECKING:
    from ociinspect.model.entries import EntryTable, IndexSource, LayerScan

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "STORE_FILE", "Store", "default_cache_dir"]

log = get_logger(__name__)

STORE_FILE = "store.sqlite3"
_SIZE_FACT = "usize:"  # + diff_id (sha256 of the uncompressed layer) -> its size in bytes

#: ``(version, statements)``: applied in order to bring a store from ``version - 1`` to ``version``.
MIGRATIONS: list[tuple[int, tuple[str, ...]]] = [
    (
        1,
        (
            """CREATE TABLE layer_scans (
                digest TEXT NOT NULL,
                index_source TEXT NOT NULL,
                hashed INTEGER NOT NULL,
                diff_id TEXT,
                uncompressed_size INTEGER,
                entry_count INTEGER NOT NULL,
                entries BLOB NOT NULL,
                warnings TEXT NOT NULL,
                scanned_at REAL NOT NULL,
                tool_version TEXT NOT NULL,
                PRIMARY KEY (digest, index_source)
            ) WITHOUT ROWID""",
            """CREATE TABLE facts (
                key TEXT PRIMARY KEY,
                value TEXT NOT NULL,
                created_at REAL NOT NULL
            ) WITHOUT ROWID""",
        ),
    ),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ociinspect``, or ``~/.cache/ociinspect`` (cost: reads the environment)."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
    return root / "ociinspect"


class _NewerSchema(Exception):
    pass


def _encode(scan: LayerScan) -> bytes:
    rows = [[e.path, e.typeflag, e.size, e.mode, e.uid, e.gid, e.linkname, e.sha256] for e in scan.entries]
    return zlib.compress(json.dumps(rows, separators=(",", ":"), ensure_ascii=False).encode("utf-8"), 6)


def _decode(blob: bytes) -> EntryTable:
    """The cached entries as a compact :class:`EntryTable`; a malformed row raises ``ValueError``/``TypeError``
    (the caller drops the cached index and the layer is scanned again)."""
    from ociinspect.model.entries import EntryTable  # the layer-index model: only for commands that scan

    rows = json.loads(zlib.decompress(blob).decode("utf-8"))
    table = EntryTable()
    for p, t, s, m, u, g, ln, h in rows:
        if not isinstance(p, str) or not isinstance(ln, str) or not (h is None or isinstance(h, str)):
            raise TypeError("a cached entry has a non-text path, link or hash")
        table.append(p, t, s, m, u, g, ln, h)
    return table


def _version(row: tuple[object, ...] | None) -> int:
    """The ``schema_version`` a ``meta`` row records (0: none); a value that is no number is a damaged store
    (:class:`sqlite3.DatabaseError` "malformed": moved aside and rebuilt, as an unreadable file is)."""
    if row is None:
        return 0
    version = parse_uint(str(row[0]))
    if version is None:
        raise sqlite3.DatabaseError(f"malformed schema_version {str(row[0])[:40]!r} in the store")
    return version


class Store:
    """The SQLite store at ``directory/store.sqlite3`` (created with mode 0700 on first use).

    Thread-safe: each thread gets its own connection.  Cost of opening: one ``stat`` and, the first time, the
    migrations; ``get_scan`` is one indexed read plus inflating the row (about 20 ms per 100 000 entries).
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.path = self.directory / STORE_FILE
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._ready = False
        self.disabled_reason: str | None = None

    def _open(self) -> sqlite3.Connection:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 10000")
        return conn

    def connect(self) -> sqlite3.Connection:
        """This thread's connection, migrated to :data:`SCHEMA_VERSION` (the first call sets the store up)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        with self._lock:
            conn = self._open() if self._ready else self._setup()
            self._connections.append(conn)
        self._local.conn = conn
        return conn

    def _setup(self) -> sqlite3.Connection:
        """Open the store, migrated to :data:`SCHEMA_VERSION` (a store already there: one read, no write lock),
        and return the connection."""
        try:
            conn = self._open()
            try:
                if self._current(conn) != SCHEMA_VERSION:
                    self._migrate(conn)
            except BaseException:
                conn.close()
                raise
        except sqlite3.DatabaseError as exc:
            if "not a database" not in str(exc) and "malformed" not in str(exc):
                raise
            aside = self.path.with_name(f"{STORE_FILE}.corrupt-{int(time.time())}")
            log.warning("store %s is unreadable (%s); moved to %s and rebuilt", self.path, exc, aside)
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(str(self.path) + suffix)
            os.replace(self.path, aside)
            conn = self._open()
            try:
                self._migrate(conn)
            except BaseException:
                conn.close()
                raise
        self._ready = True
        return conn

    @staticmethod
    def _current(conn: sqlite3.Connection) -> int | None:
        """The schema version recorded (``None``: no meta table yet); raises :class:`_NewerSchema` for a store
        written by a newer ociinspect."""
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return None
            raise
        current = _version(row)
        if current > SCHEMA_VERSION:
            raise _NewerSchema(current)
        return current

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            # read again under the write lock: another process may have migrated it meanwhile
            current = Store._current(conn) or 0
            for version, statements in MIGRATIONS:
                if version > current:
                    for statement in statements:
                        conn.execute(statement)
                    conn.execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                        (str(version),),
                    )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def _usable(self) -> Iterator[sqlite3.Connection | None]:
        """This thread's connection, or ``None`` when the store is disabled (newer schema, unwritable dir)."""
        if self.disabled_reason is not None:
            yield None
            return
        try:
            conn = self.connect()
        except _NewerSchema as exc:
            self.disabled_reason = (
                f"the cache at {self.path} was written by a newer ociinspect (schema {exc.args[0]}, "
                f"this one knows {SCHEMA_VERSION}); not using it"
            )
            log.warning("%s", self.disabled_reason)
            yield None
            return
        except (OSError, sqlite3.Error) as exc:
            self.disabled_reason = f"the cache at {self.path} cannot be used ({exc})"
            log.warning("%s", self.disabled_reason)
            yield None
            return
        yield conn

    def schema_version(self) -> int:
        """The schema version recorded in the store (cost: one read)."""
        with self._usable() as conn:
            if conn is None:
                return 0
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            return _version(row)

    def get_scan(
        self, digest: str, *, need_hash: bool = False, allow_toc: bool = True, entries: bool = True
    ) -> LayerScan | None:
        """The cached index of layer ``digest`` if one satisfies the request, else ``None``.

        A hashed scan satisfies a non-hashed request but not the reverse; an eStargz TOC index is used only
        when ``allow_toc``; a streamed index is preferred.  ``entries=False`` returns the scan's facts with an
        empty ``entries`` tuple (for reports that need no file list).  Cost: one indexed read, plus inflating and
        parsing the entries (about 30 ms per 10 000) unless ``entries=False``.
        """
        columns = "entries" if entries else "NULL"
        with self._usable() as conn:
            if conn is None:
                return None
            rows = conn.execute(
                f"SELECT index_source, hashed, diff_id, uncompressed_size, {columns}, warnings "
                "FROM layer_scans WHERE digest = ? ORDER BY index_source = 'stream' DESC",
                (digest,),
            ).fetchall()
        for index_source, hashed, diff_id, unc, blob, warnings in rows:
            if need_hash and not hashed:
                continue
            if index_source != "stream" and not allow_toc:
                continue
            source: IndexSource = "stream" if index_source == "stream" else "estargz-toc"
            try:
                decoded = _decode(blob) if entries else ()
                notes = tuple(str(w) for w in json.loads(warnings))
            except (ValueError, TypeError, zlib.error) as exc:
                log.warning("store: dropping unreadable cached index of %s (%s)", digest, exc)
                self.forget(digest)
                return None
            from ociinspect.model.entries import LayerScan

            return LayerScan(
                digest=digest,
                entries=decoded,
                index_source=source,
                hashed=bool(hashed),
                diff_id=diff_id,
                uncompressed_size=unc,
                warnings=notes,
                from_cache=True,
            )
        return None

    def put_scan(self, scan: LayerScan) -> None:
        """Store (or replace) a complete, verified layer index; a hashed index is never replaced by an unhashed
        one.  Cost: one zlib compress (~40 ms per 100 000 entries) and one write.  Never raises for cache trouble."""
        with self._usable() as conn:
            if conn is None:
                return
            try:
                existing = conn.execute(
                    "SELECT hashed FROM layer_scans WHERE digest = ? AND index_source = ?",
                    (scan.digest, scan.index_source),
                ).fetchone()
                if existing and existing[0] and not scan.hashed:
                    return  # keep the richer (hashed) index
                conn.execute(
                    "INSERT OR REPLACE INTO layer_scans (digest, index_source, hashed, diff_id, "
                    "uncompressed_size, entry_count, entries, warnings, scanned_at, tool_version) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        scan.digest,
                        scan.index_source,
                        int(scan.hashed),
                        scan.diff_id,
                        scan.uncompressed_size,
                        len(scan.entries),
                        _encode(scan),
                        json.dumps(list(scan.warnings)),
                        time.time(),
                        __version__,
                    ),
                )
            except sqlite3.Error as exc:
                log.warning("store: could not save the index of %s (%s)", scan.digest, exc)
        if scan.index_source == "stream" and scan.diff_id and scan.uncompressed_size is not None:
            self.put_uncompressed_size(scan.diff_id, scan.uncompressed_size)  # hashed while streaming: a fact

    def get_fact(self, key: str) -> str | None:
        """A small immutable fact stored under ``key`` (e.g. ``osfiles:<layer digest>``), or ``None``.

        Keys must name content by digest, so a fact never goes stale.  Cost: one indexed read.
        """
        with self._usable() as conn:
            if conn is None:
                return None
            row = conn.execute("SELECT value FROM facts WHERE key = ?", (key,)).fetchone()
            return str(row[0]) if row else None

    def put_fact(self, key: str, value: str) -> None:
        """Store a fact (JSON text, say) under a digest-derived ``key``.  Never raises for cache trouble."""
        with self._usable() as conn:
            if conn is None:
                return
            try:
                conn.execute(
                    "INSERT OR REPLACE INTO facts (key, value, created_at) VALUES (?, ?, ?)",
                    (key, value, time.time()),
                )
            except sqlite3.Error as exc:
                log.warning("store: could not save fact %s (%s)", key, exc)

    def get_uncompressed_size(self, diff_id: str) -> int | None:
        """The uncompressed size of the content whose sha256 is ``diff_id``, as counted by an earlier verified
        stream (``inspect --exact``, a small layer streamed by ``inspect``, ``waste``/``files``), else ``None``.
        Cost: one indexed read."""
        value = self.get_fact(_SIZE_FACT + diff_id)
        if value is None or not value.isascii() or not value.isdigit():
            return None  # a damaged fact is no fact
        return int(value)

    def put_uncompressed_size(self, diff_id: str, size: int) -> None:
        """Remember that the content whose sha256 is ``diff_id`` is ``size`` bytes long; call only with a digest
        computed over the whole content.  Cost: one write.  Never raises for cache trouble."""
        if diff_id.startswith("sha256:") and size >= 0:
            self.put_fact(_SIZE_FACT + diff_id, str(size))

    def forget(self, digest: str) -> None:
        """Delete every cached index of ``digest``."""
        with self._usable() as conn:
            if conn is not None:
                conn.execute("DELETE FROM layer_scans WHERE digest = ?", (digest,))

    def cached_digests(self) -> Sequence[str]:
        """Digests with a cached index (cost: one scan of the primary key)."""
        with self._usable() as conn:
            if conn is None:
                return []
            return [r[0] for r in conn.execute("SELECT DISTINCT digest FROM layer_scans ORDER BY digest")]

    def close(self) -> None:
        """Close every connection this store opened (from any thread)."""
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
            self._local = threading.local()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
