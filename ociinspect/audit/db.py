"""The audit database: SQLite (default) or PostgreSQL, one schema, versioned migrations.

Default location: ``$XDG_DATA_HOME/ociinspect/audit.sqlite3`` (``~/.local/share/ociinspect``): audit runs are
*data* the user keeps, unlike the cache of :mod:`ociinspect.store`.  ``--db PATH`` picks another SQLite file;
``--db postgresql://user@host/db`` a PostgreSQL database shared by several workers (``--shard K/N``), through
``psycopg`` 3 (``pip install 'ociinspect[postgres]'``).

Migrations follow :mod:`ociinspect.store`: a ``meta`` table holds ``schema_version``; :data:`MIGRATIONS` lists
``(version, statements)`` applied in order inside one transaction (PostgreSQL: under an advisory lock, so
workers starting together migrate once).  A database written by a *newer* ociinspect is refused (exit 2), not
modified.  The tables are documented for plain SQL in ``docs/audit.md``.

Every write is its own short transaction, committed before the next request is sent, so an interrupted audit
(Ctrl-C, ``kill -9``, network loss) keeps every fact it fetched.  SQLite runs in WAL mode with
``synchronous=NORMAL`` (a committed transaction survives the death of the process).  The handle is
thread-safe: statements are serialised by a lock (one connection), which is far below the cost of a request.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from ociinspect.errors import DatabaseError, UsageError
from ociinspect.model.logs import get_logger
from ociinspect.model.textsafe import REDACTED, escape_controls, parse_uint, redact_secrets

__all__ = ["DB_FILE", "MIGRATIONS", "SCHEMA_VERSION", "AuditDB", "default_db_path"]

log = get_logger(__name__)

DB_FILE = "audit.sqlite3"
Dialect = Literal["sqlite", "postgresql"]
_ADVISORY_KEY = 0x6F63_6961  # "ocia": serialises migrations across PostgreSQL workers


# DDL uses {id} (auto-increment primary key), {real} (double) and {blob}; see _ddl().
MIGRATIONS: list[tuple[int, tuple[str, ...]]] = [
    (
        1,
        (
            """CREATE TABLE runs (
                id {id},
                label TEXT NOT NULL,
                registry TEXT NOT NULL,
                scope TEXT NOT NULL,
                shards INTEGER NOT NULL,
                status TEXT NOT NULL,
                started_at {real} NOT NULL,
                finished_at {real},
                options TEXT NOT NULL,
                tool_version TEXT NOT NULL,
                UNIQUE (registry, label)
            )""",
            """CREATE TABLE run_shards (
                run_id BIGINT NOT NULL,
                shard INTEGER NOT NULL,
                status TEXT NOT NULL,
                catalog_done INTEGER NOT NULL DEFAULT 0,
                started_at {real} NOT NULL,
                finished_at {real},
                requests BIGINT NOT NULL DEFAULT 0,
                worker TEXT,
                PRIMARY KEY (run_id, shard)
            )""",
            """CREATE TABLE repositories (
                run_id BIGINT NOT NULL,
                name TEXT NOT NULL,
                shard INTEGER NOT NULL,
                status TEXT NOT NULL,
                tag_count INTEGER,
                error_type TEXT,
                error TEXT,
                PRIMARY KEY (run_id, name)
            )""",
            """CREATE TABLE tags (
                run_id BIGINT NOT NULL,
                repository TEXT NOT NULL,
                tag TEXT NOT NULL,
                status TEXT NOT NULL,
                digest TEXT,
                media_type TEXT,
                manifest_size BIGINT,
                error_type TEXT,
                error TEXT,
                transient INTEGER NOT NULL DEFAULT 0,
                checked_at {real},
                PRIMARY KEY (run_id, repository, tag)
            )""",
            "CREATE INDEX tags_by_name ON tags (repository, tag, run_id)",
            """CREATE TABLE manifests (
                digest TEXT PRIMARY KEY,
                media_type TEXT NOT NULL,
                size BIGINT NOT NULL,
                kind TEXT NOT NULL,
                config_digest TEXT,
                config_media_type TEXT,
                config_size BIGINT,
                artifact_type TEXT,
                base_name TEXT,
                base_digest TEXT,
                complete INTEGER NOT NULL DEFAULT 0,
                fetched_at {real} NOT NULL
            )""",
            """CREATE TABLE manifest_refs (
                manifest TEXT NOT NULL,
                role TEXT NOT NULL,
                position INTEGER NOT NULL,
                digest TEXT NOT NULL,
                media_type TEXT NOT NULL,
                size BIGINT NOT NULL,
                platform TEXT,
                kind TEXT,
                PRIMARY KEY (manifest, role, position)
            )""",
            "CREATE INDEX manifest_refs_by_digest ON manifest_refs (digest)",
            """CREATE TABLE blobs (
                digest TEXT PRIMARY KEY,
                media_type TEXT NOT NULL,
                size BIGINT NOT NULL,
                uncompressed_size BIGINT,
                uncompressed_source TEXT NOT NULL,
                note TEXT,
                fetched_at {real} NOT NULL
            )""",
            """CREATE TABLE configs (
                digest TEXT PRIMARY KEY,
                created TEXT,
                os TEXT,
                architecture TEXT,
                variant TEXT,
                diff_ids TEXT NOT NULL,
                fetched_at {real} NOT NULL
            )""",
            """CREATE TABLE facts (
                key TEXT PRIMARY KEY,
                value TEXT NOT NULL,
                created_at {real} NOT NULL
            )""",
            """CREATE TABLE digest_errors (
                digest TEXT PRIMARY KEY,
                error_type TEXT NOT NULL,
                error TEXT NOT NULL,
                run_id BIGINT NOT NULL,
                seen_at {real} NOT NULL
            )""",
        ),
    ),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]

_TYPES: dict[Dialect, dict[str, str]] = {
    "sqlite": {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "real": "REAL", "blob": "BLOB"},
    "postgresql": {
        "id": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        "real": "DOUBLE PRECISION",
        "blob": "BYTEA",
    },
}


def _ddl(statement: str, dialect: Dialect) -> str:
    return statement.format(**_TYPES[dialect])


def default_db_path() -> Path:
    """``$XDG_DATA_HOME/ociinspect/audit.sqlite3`` or ``~/.local/share/ociinspect/audit.sqlite3`` (no I/O)."""
    base = os.environ.get("XDG_DATA_HOME", "").strip()
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".local" / "share"
    return root / "ociinspect" / DB_FILE


def is_postgres_url(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def _redact(target: str) -> str:
    """A database target without its password, in every form (``user:pass@``, ``?password=``, libpq
    ``password=…``), for messages and reports: :func:`ociinspect.model.textsafe.redact_secrets`."""
    return redact_secrets(target)


def _scrub(message: str, target: str) -> str:
    """A driver's error ``message`` with the password of ``target`` removed even where the driver quotes it in a
    form :func:`redact_secrets` does not recognise (libpq echoes bad connection strings back)."""
    secrets: list[str] = []
    with contextlib.suppress(Exception):
        from psycopg.conninfo import conninfo_to_dict

        secrets += [str(v) for k, v in conninfo_to_dict(target).items() if "password" in k and v]
    if "://" in target and "@" in target:
        creds = target.split("://", 1)[1].rsplit("@", 1)[0]
        if ":" in creds:
            password = creds.split(":", 1)[1]
            secrets += [password, urllib.parse.unquote(password)]
    for secret in sorted({x for x in secrets if len(x) >= 2}, key=len, reverse=True):
        message = message.replace(secret, REDACTED)
    return redact_secrets(message)


class AuditDB:
    """An open audit database.  ``execute``/``query`` take SQL with ``?`` placeholders on both backends.

    Thread-safe (statements serialised by one lock).  Use as a context manager, or :meth:`close`.
    """

    def __init__(self, target: str | os.PathLike[str] | None = None) -> None:
        text = os.fspath(target) if target is not None else str(default_db_path())
        self.target = text
        self.display = _redact(text)
        self.dialect: Dialect = "postgresql" if is_postgres_url(text) else "sqlite"
        self._lock = threading.RLock()
        self._errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
        self._conn: Any = (
            self._connect_postgres(text) if self.dialect == "postgresql" else self._connect_sqlite(text)
        )
        self._in_tx = False
        try:
            self._migrate()
        except BaseException:
            self.close()
            raise

    # ---------------------------------------------------------------------------------------- connecting

    def _connect_sqlite(self, path: str) -> sqlite3.Connection:
        p = Path(path)
        try:
            p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            conn = sqlite3.connect(p, timeout=30.0, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = OFF")
            # a 16 MiB page cache (default 2 MiB) and a checkpoint every ~16 MiB of WAL (default 4 MiB): the
            # hot pages of a large audit stay in memory and are copied back less often (−30 % commit CPU)
            conn.execute("PRAGMA cache_size = -16384")
            conn.execute("PRAGMA wal_autocheckpoint = 4000")
        except (OSError, sqlite3.Error) as exc:
            raise DatabaseError(
                f"opening the audit database {_redact(path)}: {exc}",
                hint="check the --db path and that its directory is writable",
            ) from None
        return conn

    def _connect_postgres(self, url: str) -> Any:
        try:
            import psycopg
        except ImportError:
            raise UsageError(
                f"--db {self.display}: PostgreSQL needs the psycopg package",
                hint="pip install 'ociinspect[postgres]'",
            ) from None
        self._errors = (sqlite3.Error, psycopg.Error)
        try:
            return psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DatabaseError(
                f"connecting to the audit database {self.display}: {_scrub(first, url)}",
                hint="check the URL, that the server runs and that this user may connect",
            ) from None

    def _migrate(self) -> None:
        with self.transaction():
            if self.dialect == "postgresql":
                self._raw("SELECT pg_advisory_xact_lock(?)", (_ADVISORY_KEY,))
            self._raw("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)", ())
            rows = self._raw("SELECT value FROM meta WHERE key = 'schema_version'", ())
            current = self._version(rows)
            if current > SCHEMA_VERSION:
                raise UsageError(
                    f"the audit database {self.display} was written by a newer ociinspect (schema {current}, "
                    f"this one knows {SCHEMA_VERSION})",
                    hint="upgrade ociinspect, or use another --db",
                )
            for version, statements in MIGRATIONS:
                if version > current:
                    for statement in statements:
                        self._raw(_ddl(statement, self.dialect), ())
                    self._raw("DELETE FROM meta WHERE key = 'schema_version'", ())
                    self._raw("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(version),))

    # ------------------------------------------------------------------------------------------- queries

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgresql" else sql

    def _error(self, exc: BaseException) -> DatabaseError:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return DatabaseError(
            f"audit database {self.display}: {type(exc).__name__}: {first}",
            hint="is the database writable and not corrupt? (-vv shows the statement)",
        )

    def _raw(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            cur = self._conn.execute(self._sql(sql), tuple(params))
            if cur.description is None:
                return []
            return [tuple(r) for r in cur.fetchall()]
        except self._errors as exc:
            raise self._error(exc) from exc

    def _write(self, sql: str, params: Sequence[Any]) -> None:
        """One statement whose rows (if any) are not wanted: no result list built (the audit's hot path)."""
        try:
            self._conn.execute(self._sql(sql), params)
        except self._errors as exc:
            raise self._error(exc) from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement and return its rows (cost: one round trip to the database)."""
        with self._lock:
            return self._raw(sql, params)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement (in the current transaction, or on its own)."""
        with self._lock:
            self._write(sql, params)

    def insert_rows(self, head: str, rows: Sequence[Sequence[Any]], tail: str = "") -> None:
        """``head VALUES (…), (…), … tail`` for every row of ``rows`` (all of one width), a few hundred
        parameters per statement: one statement instead of one per row (``executemany`` steps once per row, and
        each step hands the interpreter lock over).  Cost: ⌈rows × width / 900⌉ statements, in the current
        transaction or one of its own when there are several."""
        if not rows:
            return
        width = len(rows[0])
        per = max(1, 900 // width)
        group = "(" + ", ".join("?" * width) + ")"
        with self.transaction() if len(rows) > per else self._lock:
            for i in range(0, len(rows), per):
                chunk = rows[i : i + per]
                params = [v for row in chunk for v in row]
                self._write(f"{head} VALUES {', '.join([group] * len(chunk))} {tail}".rstrip(), params)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction (nested calls join the outer one); holds the lock until it commits."""
        with self._lock:
            if self._in_tx:
                yield
                return
            self._in_tx = True
            try:
                if self.dialect == "sqlite":
                    self._write("BEGIN IMMEDIATE", ())
                    try:
                        yield
                    except BaseException:
                        self._conn.execute("ROLLBACK")
                        raise
                    self._write("COMMIT", ())
                else:
                    with self._conn.transaction():
                        yield
            finally:
                self._in_tx = False

    def insert_id(self, sql: str, params: Sequence[Any]) -> int:
        """An ``INSERT … RETURNING id``; returns the id."""
        rows = self.query(sql + " RETURNING id", params)
        return int(rows[0][0])

    def schema_version(self) -> int:
        return self._version(self.query("SELECT value FROM meta WHERE key = 'schema_version'"))

    def _version(self, rows: Sequence[Sequence[Any]]) -> int:
        """The ``schema_version`` the ``meta`` rows record (0: none); raises :class:`DatabaseError` for a value
        that is no number (a damaged database)."""
        if not rows:
            return 0
        version = parse_uint(str(rows[0][0]))
        if version is None:
            raise DatabaseError(
                f"audit database {self.display}: its schema_version {escape_controls(str(rows[0][0])[:40])!r} "
                "is not a number",
                hint="the database is damaged; use another --db (or restore it from a backup)",
            )
        return version

    def close(self) -> None:
        with self._lock, contextlib.suppress(Exception):
            self._conn.close()

    def __enter__(self) -> AuditDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
