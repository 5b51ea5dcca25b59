"""Every SQL statement of the audit, behind named methods (the walker, the run readers and the report never
write SQL; the schema and its migrations live in :mod:`ociinspect.audit.db`).

Facts keyed by digest (manifests and their references, configs, blobs, ``facts`` such as ``os:``/``osfiles:``/
``waste:``, digest errors) are immutable and shared by every run; runs, shards, repositories and tags belong to
one run.  Cost: each method is one statement (or one transaction of a few), unless its docstring says otherwise.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ociinspect._version import __version__
from ociinspect.audit.db import AuditDB
from ociinspect.image.loader import ManifestFacts
from ociinspect.model.image import Descriptor, ImageConfig, IndexEntry, Platform, SizeEstimate, frozen_map

__all__ = ["BASE_DIGEST", "BASE_NAME", "AuditFacts", "now"]

BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"
_BATCH = 500  # digests per IN (…) query
_RUN_COLUMNS = "id, label, registry, scope, shards, status, started_at, finished_at, options"


def now() -> float:
    """Wall-clock seconds (the time stamps of the database)."""
    return time.time()


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), _BATCH):
        yield items[i : i + _BATCH]


def _platform(text: Any) -> Platform | None:
    if not text:
        return None
    try:
        return Platform.parse(str(text))
    except Exception:  # a stored platform is our own str(Platform); anything else is no platform
        return None


class AuditFacts:
    """The audit database spoken in named facts.  Thread-safe as :class:`AuditDB` is."""

    def __init__(self, db: AuditDB) -> None:
        self.db = db

    @property
    def shared(self) -> bool:
        """True when other workers write the same database at the same time (PostgreSQL)."""
        return self.db.dialect == "postgresql"

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        return self.db.transaction()

    # ------------------------------------------------------------------------------------------------ runs

    def unfinished_run_label(self, registry: str) -> str | None:
        rows = self.db.query(
            "SELECT label FROM runs WHERE registry = ? AND status <> 'complete' ORDER BY id DESC LIMIT 1",
            (registry,),
        )
        return str(rows[0][0]) if rows else None

    def find_run(self, registry: str, label: str) -> tuple[int, str, int] | None:
        """``(id, scope JSON, shard count)`` of run ``label`` of ``registry``."""
        rows = self.db.query(
            "SELECT id, scope, shards FROM runs WHERE registry = ? AND label = ?", (registry, label)
        )
        return (int(rows[0][0]), str(rows[0][1]), int(rows[0][2])) if rows else None

    def create_run(self, label: str, registry: str, scope: str, shards: int, options: str) -> None:
        """A new run; workers of one sharded audit start together: the first insert wins."""
        self.db.execute(
            "INSERT INTO runs (label, registry, scope, shards, status, started_at, options, tool_version) "
            "VALUES (?, ?, ?, ?, 'running', ?, ?, ?) ON CONFLICT (registry, label) DO NOTHING",
            (label, registry, scope, shards, now(), options, __version__),
        )

    def start_shard(self, run_id: int, shard: int) -> None:
        """Mark the run (unless complete) and this shard (unless complete) running."""
        self.db.execute(
            "UPDATE runs SET status = 'running', finished_at = NULL WHERE id = ? AND status <> 'complete'",
            (run_id,),
        )
        self.db.execute(
            "INSERT INTO run_shards (run_id, shard, status, started_at) VALUES (?, ?, 'running', ?) "
            "ON CONFLICT (run_id, shard) DO UPDATE SET status = CASE WHEN run_shards.status = 'complete' "
            "THEN 'complete' ELSE 'running' END",
            (run_id, shard, now()),
        )

    def finish_shard(self, run_id: int, shard: int, status: str, requests: int) -> str:
        """Record a shard's end (``complete`` becomes ``incomplete`` while transient failures remain) and the
        run's when every shard is complete; returns the shard's status.  One transaction."""
        with self.db.transaction():
            # shards finishing at once take turns (on SQLite BEGIN IMMEDIATE does): else each may count the
            # others before they commit, and none marks the run complete
            if self.shared:
                self.db.query("SELECT id FROM runs WHERE id = ? FOR UPDATE", (run_id,))
            if status == "complete" and self.retries_left(run_id, shard):
                status = "incomplete"
            self.db.execute(
                "UPDATE run_shards SET status = ?, finished_at = ?, requests = requests + ? "
                "WHERE run_id = ? AND shard = ?",
                (status, now(), requests, run_id, shard),
            )
            done = self.db.query(
                "SELECT COUNT(*) FROM run_shards WHERE run_id = ? AND status = 'complete'", (run_id,)
            )
            shards = self.db.query("SELECT shards FROM runs WHERE id = ?", (run_id,))
            if status == "complete" and int(done[0][0]) >= int(shards[0][0]):
                self.db.execute(
                    "UPDATE runs SET status = 'complete', finished_at = ? WHERE id = ?", (now(), run_id)
                )
            elif status != "complete":
                self.db.execute(
                    "UPDATE runs SET status = ? WHERE id = ? AND status <> 'complete'", (status, run_id)
                )
        return status

    def run_rows(self, registry: str | None = None) -> list[tuple[Any, ...]]:
        """Every run (``id, label, registry, scope, shards, status, started_at, finished_at, options``), newest
        first."""
        if registry:
            return self.db.query(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE registry = ? ORDER BY id DESC", (registry,)
            )
        return self.db.query(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY id DESC")

    def run_row(self, run_id: int | None, label: str) -> tuple[Any, ...] | None:
        """The run with id ``run_id``, else the newest with label ``label``."""
        rows: list[tuple[Any, ...]] = []
        if run_id is not None:
            rows = self.db.query(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
        if not rows:
            rows = self.db.query(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE label = ? ORDER BY id DESC", (label,)
            )
        return rows[0] if rows else None

    def shards(self, run_id: int) -> list[tuple[int, str, int]]:
        """``(shard, status, requests)`` of each shard of a run."""
        return [
            (int(s), str(st), int(r or 0))
            for s, st, r in self.db.query(
                "SELECT shard, status, requests FROM run_shards WHERE run_id = ?", (run_id,)
            )
        ]

    def run_counts(self) -> dict[int, tuple[int, int, int]]:
        """``run id → (repositories, tags, tags in error)``.  Cost: one query with correlated counts."""
        return {
            int(run_id): (int(n_repos), int(n_tags), int(n_errors))
            for run_id, n_repos, n_tags, n_errors in self.db.query(
                "SELECT r.id, (SELECT COUNT(*) FROM repositories p WHERE p.run_id = r.id), "
                "(SELECT COUNT(*) FROM tags t WHERE t.run_id = r.id), "
                "(SELECT COUNT(*) FROM tags t WHERE t.run_id = r.id AND t.status = 'error') FROM runs r"
            )
        }

    # ------------------------------------------------------------------------------------ repositories

    def catalog_done(self, run_id: int, shard: int) -> bool:
        rows = self.db.query(
            "SELECT catalog_done FROM run_shards WHERE run_id = ? AND shard = ?", (run_id, shard)
        )
        return bool(rows and rows[0][0])

    def add_repositories(self, run_id: int, shard: int, names: Sequence[str]) -> None:
        self.db.insert_rows(
            "INSERT INTO repositories (run_id, name, shard, status)",
            [(run_id, n, shard, "pending") for n in names],
            "ON CONFLICT DO NOTHING",
        )

    def set_catalog_done(self, run_id: int, shard: int) -> None:
        self.db.execute(
            "UPDATE run_shards SET catalog_done = 1 WHERE run_id = ? AND shard = ?", (run_id, shard)
        )

    def relist_retried_repositories(self, run_id: int, shard: int) -> None:
        """Repositories finished with transient tag failures are walked again (their failed tags only)."""
        self.db.execute(
            "UPDATE repositories SET status = 'listed' WHERE run_id = ? AND shard = ? AND status = 'done' "
            "AND name IN (SELECT repository FROM tags WHERE run_id = ? AND status = 'error' AND transient = 1)",
            (run_id, shard, run_id),
        )

    def repositories(self, run_id: int, shard: int) -> list[tuple[str, str]]:
        """``(name, status)`` of this shard's repositories, by name."""
        return [
            (str(n), str(s))
            for n, s in self.db.query(
                "SELECT name, status FROM repositories WHERE run_id = ? AND shard = ? ORDER BY name",
                (run_id, shard),
            )
        ]

    def repository_failed(self, run_id: int, name: str, status: str, error_type: str, error: str) -> None:
        self.db.execute(
            "UPDATE repositories SET status = ?, error_type = ?, error = ? WHERE run_id = ? AND name = ?",
            (status, error_type, error, run_id, name),
        )

    def repository_listed(self, run_id: int, name: str, tags: Sequence[str]) -> None:
        """Record a repository's tags (pending) and its tag count.  One transaction."""
        with self.db.transaction():
            if tags:
                self.db.insert_rows(
                    "INSERT INTO tags (run_id, repository, tag, status)",
                    [(run_id, name, t, "pending") for t in tags],
                    "ON CONFLICT DO NOTHING",
                )
            self.db.execute(
                "UPDATE repositories SET status = ?, tag_count = ? WHERE run_id = ? AND name = ?",
                ("listed" if tags else "done", len(tags), run_id, name),
            )

    def repository_done(self, run_id: int, name: str) -> None:
        self.db.execute(
            "UPDATE repositories SET status = 'done' WHERE run_id = ? AND name = ? AND status <> 'error'",
            (run_id, name),
        )

    # -------------------------------------------------------------------------------------------- tags

    def tags(self, run_id: int, repository: str) -> list[tuple[str, str, str | None, int]]:
        """``(tag, status, digest, transient)`` of one repository's tags in a run."""
        return [
            (str(t), str(s), str(d) if d else None, int(tr or 0))
            for t, s, d, tr in self.db.query(
                "SELECT tag, status, digest, transient FROM tags WHERE run_id = ? AND repository = ?",
                (run_id, repository),
            )
        ]

    def done_tag_counts(self, run_id: int, shard: int) -> tuple[int, int]:
        """``(tags, tags in error)`` of this shard's finished repositories."""
        rows = self.db.query(
            "SELECT COUNT(*), SUM(CASE WHEN t.status = 'error' THEN 1 ELSE 0 END) FROM tags t "
            "JOIN repositories r ON r.run_id = t.run_id AND r.name = t.repository "
            "WHERE t.run_id = ? AND r.shard = ? AND r.status = 'done'",
            (run_id, shard),
        )
        return int(rows[0][0] or 0), int(rows[0][1] or 0)

    def retries_left(self, run_id: int, shard: int) -> bool:
        """Transient failures remain in this shard (a resume would try them again)."""
        return bool(
            self.db.query(
                "SELECT 1 FROM tags t JOIN repositories r ON r.run_id = t.run_id AND r.name = t.repository "
                "WHERE t.run_id = ? AND r.shard = ? AND t.status = 'error' AND t.transient = 1 LIMIT 1",
                (run_id, shard),
            )
            or self.db.query(
                "SELECT 1 FROM repositories WHERE run_id = ? AND shard = ? AND status = 'retry' LIMIT 1",
                (run_id, shard),
            )
        )

    def previous_digests(self, registry: str, repository: str, run_id: int) -> dict[str, str]:
        """``tag → digest`` an earlier run of ``registry`` saw (the latest run wins)."""
        rows = self.db.query(
            "SELECT t.tag, t.digest FROM tags t JOIN runs r ON r.id = t.run_id WHERE r.registry = ? "
            "AND t.repository = ? AND t.run_id <> ? AND t.digest IS NOT NULL ORDER BY t.run_id",
            (registry, repository, run_id),
        )
        return {str(t): str(d) for t, d in rows}

    def tag_resolved(
        self,
        run_id: int,
        repository: str,
        tag: str,
        digest: str,
        media_type: str,
        size: int,
        *,
        done: bool = False,
    ) -> None:
        """What the tag points at; ``done``: and the tag is done (its manifest's facts are all stored), in the
        same statement (what :meth:`tag_done` writes)."""
        if done:
            self.db.execute(
                "UPDATE tags SET status = 'done', digest = ?, media_type = ?, manifest_size = ?, checked_at = ?, "
                "error_type = NULL, error = NULL, transient = 0 WHERE run_id = ? AND repository = ? AND tag = ?",
                (digest, media_type, size, now(), run_id, repository, tag),
            )
            return
        self.db.execute(
            "UPDATE tags SET status = 'resolved', digest = ?, media_type = ?, manifest_size = ?, "
            "checked_at = ? WHERE run_id = ? AND repository = ? AND tag = ?",
            (digest, media_type, size, now(), run_id, repository, tag),
        )

    def tag_failed(
        self,
        run_id: int,
        repository: str,
        tag: str,
        digest: str | None,
        error_type: str,
        error: str,
        transient: bool,
    ) -> None:
        self.db.execute(
            "UPDATE tags SET status = 'error', digest = COALESCE(?, digest), error_type = ?, error = ?, "
            "transient = ?, checked_at = ? WHERE run_id = ? AND repository = ? AND tag = ?",
            (digest, error_type, error, int(transient), now(), run_id, repository, tag),
        )

    def tag_done(self, run_id: int, repository: str, tag: str) -> None:
        self.db.execute(
            "UPDATE tags SET status = 'done', error_type = NULL, error = NULL, transient = 0 "
            "WHERE run_id = ? AND repository = ? AND tag = ?",
            (run_id, repository, tag),
        )

    # ------------------------------------------------------------------------------- facts by digest

    def complete_manifests(self, limit: int | None = None) -> set[str]:
        """The digests of complete manifests (at most ``limit`` + 1 of them: more means "too many to hold")."""
        sql = "SELECT digest FROM manifests WHERE complete = 1"
        return {
            str(r[0]) for r in self.db.query(sql + (f" LIMIT {int(limit) + 1}" if limit is not None else ""))
        }

    def is_complete(self, digest: str) -> bool:
        return bool(self.db.query("SELECT 1 FROM manifests WHERE digest = ? AND complete = 1", (digest,)))

    def set_complete(self, digest: str) -> None:
        self.db.execute("UPDATE manifests SET complete = 1 WHERE digest = ?", (digest,))

    def blob_digests(self, limit: int | None = None) -> set[str]:
        """The digests of stored blobs (at most ``limit`` + 1 of them: more means "too many to hold")."""
        sql = "SELECT digest FROM blobs"
        return {
            str(r[0]) for r in self.db.query(sql + (f" LIMIT {int(limit) + 1}" if limit is not None else ""))
        }

    def has_blob(self, digest: str) -> bool:
        return bool(self.db.query("SELECT 1 FROM blobs WHERE digest = ?", (digest,)))

    def put_blob(self, d: Descriptor, estimate: SizeEstimate, source: str | None = None) -> None:
        """A blob's size and uncompressed size (first writer wins)."""
        self.db.execute(
            "INSERT INTO blobs (digest, media_type, size, uncompressed_size, uncompressed_source, note, fetched_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING",
            (d.digest, d.media_type, d.size, estimate.value, source or estimate.source, estimate.note, now()),
        )

    def digest_errors(self) -> dict[str, tuple[str, str, int]]:
        """``digest → (error type, message, run id)`` of every digest that failed for good."""
        return {
            str(d): (str(t), str(m), int(r))
            for d, t, m, r in self.db.query("SELECT digest, error_type, error, run_id FROM digest_errors")
        }

    def put_digest_error(self, digest: str, error_type: str, error: str, run_id: int) -> None:
        self.db.execute(
            "INSERT INTO digest_errors (digest, error_type, error, run_id, seen_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (digest) DO UPDATE SET error_type = excluded.error_type, error = excluded.error, "
            "run_id = excluded.run_id, seen_at = excluded.seen_at",
            (digest, error_type, error, run_id, now()),
        )

    def get_fact(self, key: str) -> str | None:
        rows = self.db.query("SELECT value FROM facts WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def put_fact(self, key: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO facts (key, value, created_at) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING",
            (key, value, now()),
        )

    def put_facts(self, facts: Sequence[tuple[str, str]]) -> None:
        """Several ``(key, value)`` facts (first writer wins) in one statement."""
        t = now()
        self.db.insert_rows(
            "INSERT INTO facts (key, value, created_at)",
            [(key, value, t) for key, value in facts],
            "ON CONFLICT (key) DO NOTHING",
        )

    def put_manifest(self, facts: ManifestFacts) -> None:
        """One manifest's facts and references (first writer wins).  One transaction."""
        c = facts.config
        refs: list[tuple[Any, ...]] = [
            ("manifest", pos, e.descriptor.digest, e.descriptor.media_type, e.descriptor.size,
             str(e.descriptor.platform) if e.descriptor.platform else None, e.kind)
            for pos, e in enumerate(facts.entries)
        ]  # fmt: skip
        if c is not None:
            refs.append(("config", 0, c.digest, c.media_type, c.size, None, None))
        refs += [
            ("layer", pos, d.digest, d.media_type, d.size, None, None) for pos, d in enumerate(facts.layers)
        ]
        with self.db.transaction():
            inserted = self.db.query(
                "INSERT INTO manifests (digest, media_type, size, kind, config_digest, config_media_type, "
                "config_size, artifact_type, base_name, base_digest, complete, fetched_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?) ON CONFLICT (digest) DO NOTHING RETURNING digest",
                (
                    facts.digest,
                    facts.media_type,
                    facts.size,
                    facts.kind,
                    c.digest if c else None,
                    c.media_type if c else None,
                    c.size if c else None,
                    facts.artifact_type,
                    facts.annotations.get(BASE_NAME) or None,
                    facts.annotations.get(BASE_DIGEST) or None,
                    now(),
                ),
            )
            if inserted and refs:
                self.db.insert_rows(
                    "INSERT INTO manifest_refs (manifest, role, position, digest, media_type, size, platform, kind)",
                    [(facts.digest, *r) for r in refs],
                    "ON CONFLICT DO NOTHING",
                )

    def manifest(self, digest: str) -> ManifestFacts | None:
        """A stored manifest's facts, rebuilt from its row and references (annotations: the base image's
        only, as stored).  Cost: two queries."""
        rows = self.db.query(
            "SELECT media_type, size, kind, artifact_type, base_name, base_digest FROM manifests WHERE digest = ?",
            (digest,),
        )
        if not rows:
            return None
        media_type, size, kind, artifact_type, base_name, base_digest = rows[0]
        refs = self.db.query(
            "SELECT role, position, digest, media_type, size, platform, kind FROM manifest_refs "
            "WHERE manifest = ? ORDER BY role, position",
            (digest,),
        )
        entries, layers, config = [], [], None
        for role, _pos, d, mt, sz, platform, entry_kind in refs:
            desc = Descriptor(media_type=str(mt), digest=str(d), size=int(sz), platform=_platform(platform))
            if role == "manifest":
                entries.append(IndexEntry(desc, str(entry_kind or "unknown")))  # type: ignore[arg-type]
            elif role == "config":
                config = desc
            else:
                layers.append(desc)
        ann = {k: str(v) for k, v in ((BASE_NAME, base_name), (BASE_DIGEST, base_digest)) if v}
        return ManifestFacts(
            digest,
            str(media_type),
            int(size),
            str(kind),  # type: ignore[arg-type]
            entries=tuple(entries),
            config=config,
            layers=tuple(layers),
            artifact_type=str(artifact_type) if artifact_type else None,
            annotations=frozen_map(ann),
        )

    def config(self, digest: str) -> ImageConfig | None:
        """The stored facts of an image config (os, architecture, variant, created, diff_ids)."""
        rows = self.db.query(
            "SELECT created, os, architecture, variant, diff_ids FROM configs WHERE digest = ?", (digest,)
        )
        if not rows:
            return None
        created, os_, arch, variant, diff_ids = rows[0]
        return ImageConfig(
            os=os_, architecture=arch, variant=variant, created=created, diff_ids=tuple(json.loads(diff_ids))
        )

    def put_config(self, d: Descriptor, config: ImageConfig) -> None:
        """An image config's facts, and its blob row.  One transaction."""
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO configs (digest, created, os, architecture, variant, diff_ids, fetched_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING",
                (
                    d.digest,
                    config.created,
                    config.os,
                    config.architecture,
                    config.variant,
                    json.dumps(list(config.diff_ids)),
                    now(),
                ),
            )
            self.put_blob(d, SizeEstimate(None, "unknown", "image config"), "config")

    # ------------------------------------------------------------------------------- reading a run back

    def repository_rows(self, run_id: int) -> list[tuple[Any, ...]]:
        """``(name, status, tag_count, error_type, error)`` of a run's repositories."""
        return self.db.query(
            "SELECT name, status, tag_count, error_type, error FROM repositories WHERE run_id = ?", (run_id,)
        )

    def tag_rows(self, run_id: int) -> list[tuple[Any, ...]]:
        """``(repository, tag, status, digest, error_type, error)`` of a run's tags, by repository and tag."""
        return self.db.query(
            "SELECT repository, tag, status, digest, error_type, error FROM tags WHERE run_id = ? "
            "ORDER BY repository, tag",
            (run_id,),
        )

    def complete_manifest_rows(self, digests: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """``(digest, media_type, size, kind, base_name, base_digest)`` of the complete manifests among
        ``digests``.  Cost: one query per 500 digests."""
        for chunk in _chunks(digests):
            yield from self.db.query(
                "SELECT digest, media_type, size, kind, base_name, base_digest FROM manifests "
                f"WHERE complete = 1 AND digest IN ({_marks(len(chunk))})",
                chunk,
            )

    def ref_rows(self, digests: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """``(manifest, role, position, digest, media_type, size, platform, kind)`` of the manifests
        ``digests``.  Cost: one query per 500 digests."""
        for chunk in _chunks(digests):
            yield from self.db.query(
                "SELECT manifest, role, position, digest, media_type, size, platform, kind FROM manifest_refs "
                f"WHERE manifest IN ({_marks(len(chunk))}) ORDER BY manifest, role, position",
                chunk,
            )

    def blob_rows(self, digests: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """``(digest, size, uncompressed_size, uncompressed_source)``.  Cost: one query per 500 digests."""
        for chunk in _chunks(digests):
            yield from self.db.query(
                "SELECT digest, size, uncompressed_size, uncompressed_source FROM blobs "
                f"WHERE digest IN ({_marks(len(chunk))})",
                chunk,
            )

    def config_rows(self, digests: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """``(digest, created, os, architecture, variant, diff_ids JSON)``.  Cost: one query per 500 digests."""
        for chunk in _chunks(digests):
            yield from self.db.query(
                "SELECT digest, created, os, architecture, variant, diff_ids FROM configs "
                f"WHERE digest IN ({_marks(len(chunk))})",
                chunk,
            )

    def fact_rows(self, keys: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """``(key, value)`` of the facts ``keys``.  Cost: one query per 500 keys."""
        for chunk in _chunks(keys):
            yield from self.db.query(
                f"SELECT key, value FROM facts WHERE key IN ({_marks(len(chunk))})", chunk
            )
