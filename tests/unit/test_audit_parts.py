"""Unit tests of the audit: database migrations, shards, pacing, run bookkeeping, the report's arithmetic
(hand-computed), renderers, and the registry client's response observers."""

from __future__ import annotations

import datetime
import hashlib
import http.server
import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests
from harness.quiet import QuietHTTPServer

from ociinspect.analyzers.vm_profiles import load_parameters
from ociinspect.audit import AuditDB, AuditOptions, Pacer, Scope, ShardSpec, open_run
from ociinspect.audit.db import SCHEMA_VERSION, default_db_path
from ociinspect.audit.images import Once as _Once
from ociinspect.audit.report import build_diff, build_report
from ociinspect.audit.runs import RunData, RunInfo
from ociinspect.cli.audit import parse_registry, progress_line
from ociinspect.errors import (
    ConnectionFailed,
    DatabaseError,
    RateLimited,
    RegistryError,
    UsageError,
    is_transient,
)
from ociinspect.reports.audit import CSV_COLUMNS, audit_csv, audit_html, audit_text

# ---------------------------------------------------------------------------------------------- database


def test_fresh_database_is_migrated_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "a.sqlite3"
    with AuditDB(path) as db:
        assert db.schema_version() == SCHEMA_VERSION == 1
        tables = {r[0] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {
            "runs",
            "run_shards",
            "repositories",
            "tags",
            "manifests",
            "manifest_refs",
            "blobs",
            "configs",
            "facts",
            "digest_errors",
            "meta",
        } <= tables
        assert db.query("PRAGMA journal_mode")[0][0] == "wal"
    with AuditDB(path) as db:  # reopening migrates nothing twice
        assert db.schema_version() == 1


def test_a_newer_schema_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite3"
    AuditDB(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(UsageError, match="newer ociinspect"):
        AuditDB(path)
    assert sqlite3.connect(path).execute("SELECT value FROM meta").fetchone()[0] == "99"


@pytest.mark.parametrize("value", ["abc", "1.5", "\x1b[2J9"])
def test_a_schema_version_that_is_no_number_is_a_damaged_database(tmp_path: Path, value: str) -> None:
    """(``int()`` of it raised ValueError: an internal error, exit 70.)"""
    path = tmp_path / "a.sqlite3"
    AuditDB(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (value,))
    conn.commit()
    conn.close()
    with pytest.raises(DatabaseError, match="is not a number") as raised:
        AuditDB(path)
    assert "\x1b" not in raised.value.message and "another --db" in (raised.value.hint or "")


def test_default_path_is_in_the_xdg_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_db_path() == tmp_path / "ociinspect" / "audit.sqlite3"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    assert default_db_path() == Path.home() / ".local" / "share" / "ociinspect" / "audit.sqlite3"


def test_postgres_without_driver_or_server_is_a_clear_error() -> None:
    from ociinspect.errors import DatabaseError

    with pytest.raises((DatabaseError, UsageError)) as info:
        AuditDB("postgresql://nobody:secret@127.0.0.1:1/none")
    assert "secret" not in str(info.value) and info.value.hint


def test_runs_are_created_joined_and_resumed(tmp_path: Path) -> None:
    with AuditDB(tmp_path / "a.sqlite3") as db:
        scope = Scope("reg.example:5000", prefix="team/")
        first, label = open_run(db, scope, AuditOptions(), label="nightly", shard=ShardSpec(0, 3))
        again, _ = open_run(db, scope, AuditOptions(), label="nightly", shard=ShardSpec(2, 3))
        assert first == again and label == "nightly"
        assert len(db.query("SELECT * FROM run_shards WHERE run_id = ?", (first,))) == 2
        with pytest.raises(UsageError, match="3 shards"):
            open_run(db, scope, AuditOptions(), label="nightly", shard=ShardSpec(0, 2))
        with pytest.raises(UsageError, match="another scope"):
            open_run(db, Scope("reg.example:5000"), AuditOptions(), label="nightly", shard=ShardSpec(0, 3))
        resumed, resumed_label = open_run(db, scope, AuditOptions(), resume=True, shard=ShardSpec(0, 3))
        assert (resumed, resumed_label) == (first, "nightly")
        with pytest.raises(UsageError, match="no unfinished audit"):
            open_run(db, Scope("other:1"), AuditOptions(), resume=True)
        fresh, fresh_label = open_run(db, Scope("other:1"), AuditOptions())
        assert fresh != first and fresh_label.endswith("Z")


# ------------------------------------------------------------------------------------------------ shards


def test_shards_partition_every_repository_exactly_once() -> None:
    names = [f"team{i % 7}/svc{i}" for i in range(3000)]
    shards = [ShardSpec(k, 3) for k in range(3)]
    owners = [[s.index for s in shards if s.owns(n)] for n in names]
    assert all(len(o) == 1 for o in owners)
    sizes = [sum(1 for o in owners if o == [k]) for k in range(3)]
    assert min(sizes) > 900  # balanced
    assert ShardSpec(0, 1).owns("anything")
    # deterministic: the first 16 hex digits of sha256(name), mod N
    h = int(hashlib.sha256(b"library/alpine").hexdigest()[:16], 16)
    assert [ShardSpec(k, 3).owns("library/alpine") for k in range(3)] == [h % 3 == k for k in range(3)]


@pytest.mark.parametrize("text", ["3/3", "1", "a/b", "-1/3", "0/0", "1/3/4"])
def test_bad_shard_specs_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="K/N"):
        ShardSpec.parse(text)


# ------------------------------------------------------------------------------------------------ pacing


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _observed(headers: dict[str, str]) -> tuple[int, Mapping[str, str]]:
    """(status, headers) as the registry client's observer passes them."""
    r = _response(headers)
    return r.status_code, r.headers


def _response(headers: dict[str, str]) -> requests.Response:
    r = requests.Response()
    r.status_code = 200
    r.headers.update(headers)
    return r


def test_max_rps_spaces_requests() -> None:
    t = FakeTime()
    pacer = Pacer(10, clock=t.clock, sleep=t.sleep)
    for _ in range(5):
        pacer.wait()
    assert t.slept == pytest.approx([0.1] * 4)


def test_docker_hub_ratelimit_headers_slow_down_then_stop_at_the_reserve() -> None:
    t = FakeTime()
    pacer = Pacer(0, concurrency=4, reserve=5, max_pause=30, clock=t.clock, sleep=t.sleep)
    pacer.observe(
        "GET", "u", *_observed({"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "76;w=21600"})
    )
    assert (pacer.limit, pacer.remaining, pacer.window) == (100, 76, 21600)
    pacer.wait()
    pacer.wait()
    assert t.slept == []  # plenty left: full speed
    pacer.observe("GET", "u", *_observed({"ratelimit-remaining": "9;w=60"}))
    assert pacer.spacing() == pytest.approx(60 / (9 - 5))  # the rest spread over the window
    pacer.observe("GET", "u", *_observed({"ratelimit-remaining": "5;w=21600"}))
    with pytest.raises(RateLimited, match="nearly used up") as info:
        pacer.wait()
    assert "--resume" in (info.value.hint or "")
    pacer.observe("GET", "u", *_observed({"ratelimit-remaining": "garbage"}))
    assert pacer.remaining == 5


def test_transient_errors() -> None:
    assert is_transient(ConnectionFailed("x"))
    assert is_transient(RegistryError("x", status=503))
    assert not is_transient(RegistryError("x", status=500))
    assert not is_transient(RegistryError("x", status=404))


def test_single_flight_runs_the_work_once_and_shares_its_failure() -> None:
    once = _Once()
    calls: list[int] = []
    done = threading.Event()
    gate = threading.Barrier(8)

    def work() -> None:
        calls.append(1)
        done.wait(0.2)

    def one() -> None:
        gate.wait()
        once.run("k", lambda: bool(calls) and done.is_set(), work)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for th in threads:
        th.start()
    done.set()
    for th in threads:
        th.join()
    assert len(calls) == 1

    def fail() -> None:
        raise ConnectionFailed("down")

    with pytest.raises(ConnectionFailed):
        once.run("f", lambda: False, fail)
    with pytest.raises(ConnectionFailed):  # the failure is shared, not retried
        once.run("f", lambda: False, lambda: None)


# ------------------------------------------------------------------------------------------------- cli bits


@pytest.mark.parametrize(
    ("text", "registry", "prefix"),
    [
        ("127.0.0.1:5000", "127.0.0.1:5000", ""),
        ("registry.example.com/team/", "registry.example.com", "team/"),
        ("https://Registry.Example.com/team/sub", "registry.example.com", "team/sub/"),
        ("docker.io/library/", "registry-1.docker.io", "library/"),
        ("docker://index.docker.io", "registry-1.docker.io", ""),
    ],
)
def test_registry_argument(text: str, registry: str, prefix: str) -> None:
    scope = parse_registry(text)
    assert (scope.registry, scope.prefix) == (registry, prefix)
    assert scope.wants(prefix + "x") and (not prefix or not scope.wants("zzz/x"))


def test_repo_names_are_qualified_by_the_prefix_and_the_hub_rule() -> None:
    from ociinspect.cli.audit import _qualify

    assert _qualify(parse_registry("docker.io"), "alpine") == "library/alpine"
    assert _qualify(parse_registry("docker.io"), "bitnami/redis") == "bitnami/redis"
    assert _qualify(parse_registry("reg.example/team/"), "api") == "team/api"
    assert _qualify(parse_registry("reg.example/team/"), "team/web") == "team/web"


def test_progress_line_shows_done_remaining_rate_and_eta() -> None:
    snap = {
        "repos_done": 10,
        "repos_total": 20,
        "repos_listed": 20,
        "tags_done": 100,
        "tags_total": 300,
        "tag_errors": 2,
        "manifests": 120,
        "requests": 400,
        "elapsed": 10.0,
        "catalog_done": True,
    }
    line = progress_line(snap)
    assert "repos 10/20" in line and "tags 100/300 (200 left, 2 failed)" in line
    assert "10 tags/s" in line and "ETA 0m20s" in line
    assert "ETA ?" in progress_line(snap | {"catalog_done": False})
    # half the repositories listed: the tag total is extrapolated
    early = progress_line(snap | {"repos_listed": 10})
    assert "tags 100/~600 (~500 left" in early and "ETA ~0m50s" in early


# ------------------------------------------------------------------------------------------- the report


def D(name: str) -> str:
    return "sha256:" + name.ljust(64, "0")


OCI_M = "application/vnd.oci.image.manifest.v1+json"
GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
CFG = "application/vnd.oci.image.config.v1+json"


def _run_info(run_id: int = 1) -> RunInfo:
    return RunInfo(
        run_id,
        f"r{run_id}",
        "reg:5000",
        {"prefix": ""},
        1,
        "complete",
        0.0,
        1.0,
        {0: "complete"},
        42,
        {"deep": False},
    )


def sample_data(run_id: int = 1) -> RunData:
    """base (layer B 1000) tagged base:1; app1 = B + A1 (100), tagged app:1 and app:latest; app2 = B + A2 (200)
    in repo other (old); an index in repo multi with amd64 (B + A3 300) and arm64 (B2 400); a broken tag."""
    manifests: dict[str, tuple[str, int, str, str | None, str | None]] = {
        D("base"): (OCI_M, 10, "image", None, None),
        D("app1"): (OCI_M, 11, "image", None, None),
        D("app2"): (OCI_M, 12, "image", None, None),
        D("idx"): ("application/vnd.oci.image.index.v1+json", 13, "index", None, None),
        D("amd"): (OCI_M, 14, "image", None, None),
        D("arm"): (OCI_M, 15, "image", None, None),
    }

    def image(cfg: str, cfg_size: int, *layers: tuple[str, int]) -> list[Any]:
        return [("config", 0, D(cfg), CFG, cfg_size, None, None)] + [
            ("layer", i, D(n), GZ, size, None, None) for i, (n, size) in enumerate(layers)
        ]

    refs = {
        D("base"): image("cbase", 10, ("B", 1000)),
        D("app1"): image("capp1", 11, ("B", 1000), ("A1", 100)),
        D("app2"): image("capp2", 12, ("B", 1000), ("A2", 200)),
        D("amd"): image("camd", 13, ("B", 1000), ("A3", 300)),
        D("arm"): image("carm", 14, ("B2", 400)),
        D("idx"): [
            ("manifest", 0, D("amd"), OCI_M, 14, "linux/amd64", "image"),
            ("manifest", 1, D("arm"), OCI_M, 15, "linux/arm64/v8", "image"),
        ],
    }
    blobs: dict[str, tuple[int, int | None, str]] = {
        D(n): (s, s * 3, "trailer")
        for n, s in (("B", 1000), ("A1", 100), ("A2", 200), ("A3", 300), ("B2", 400))
    }
    recent, old = "2026-11-01T00:00:00Z", "2020-01-01T00:00:00Z"
    configs: dict[str, tuple[str | None, str | None, str | None, str | None, tuple[str, ...]]] = {
        D("cbase"): (recent, "linux", "amd64", None, (D("uB"),)),
        D("capp1"): (recent, "linux", "amd64", None, (D("uB"), D("uA1"))),
        D("capp2"): (old, "linux", "amd64", None, (D("uB"), D("uA2"))),
        D("camd"): (recent, "linux", "amd64", None, (D("uB"), D("uA3"))),
        D("carm"): (recent, "linux", "arm64", "v8", (D("uB2"),)),
    }
    tags = [
        ("base", "1", "done", D("base"), None, None),
        ("app", "1", "done", D("app1"), None, None),
        ("app", "latest", "done", D("app1"), None, None),
        ("other", "1", "done", D("app2"), None, None),
        ("multi", "1", "done", D("idx"), None, None),
        ("broken", "1", "error", None, "DigestMismatch", "bad"),
    ]
    repos: dict[str, tuple[str, int | None, str | None, str | None]] = {
        n: ("done", None, None, None) for n in ("base", "app", "other", "multi", "broken")
    }
    os_fact = {
        "id": "debian",
        "version_id": "12",
        "pretty_name": "Debian",
        "family": "debian",
        "evidence": "etc/os-release in layer 0",
        "layer_index": 0,
    }
    return RunData(
        _run_info(run_id),
        repos,
        tags,
        manifests,
        refs,
        blobs,
        configs,
        {d: os_fact for d in (D("base"), D("app1"), D("app2"), D("amd"))},
        {},
    )


NOW = datetime.datetime(2026, 11, 28, tzinfo=datetime.UTC)


def test_report_arithmetic_by_hand() -> None:
    doc = build_report(sample_data(), now=NOW, stale_days=180, vm_params=load_parameters())
    # images: base 1010, app1 1111, app2 1212, amd 1313, arm 414 (config + layers)
    assert doc["images"] == 5 and doc["tags"] == 6 and doc["tags_read"] == 5 and doc["repositories"] == 5
    assert doc["logical_size"] == 1010 + 1111 + 1212 + 1313 + 414
    # distinct blobs: B, A1, A2, A3, B2 and five configs
    assert doc["deduplicated_size"] == 1000 + 100 + 200 + 300 + 400 + (10 + 11 + 12 + 13 + 14)
    assert doc["uncompressed_deduplicated_size"] == 3 * (1000 + 100 + 200 + 300 + 400)
    repos = {r["name"]: r for r in doc["repos"]}
    assert repos["app"] == repos["app"] | {
        "tags": 2,
        "images": 1,
        "stored_size": 1111,
        "unique_size": 111,
        "shared_size": 1000,
    }
    assert (
        repos["multi"]["stored_size"] == 1000 + 300 + 400 + 13 + 14 and repos["multi"]["unique_size"] == 727
    )
    assert repos["multi"]["multi_arch_tags"] == 1
    assert sum(r["unique_size"] for r in doc["repos"]) + 1000 == doc["deduplicated_size"]  # B is shared
    top = doc["top_shared_layers"]
    assert [(t["digest"], t["images"], t["repositories"], t["saved_size"]) for t in top] == [
        (D("B"), 4, 4, 3000)
    ]
    assert top[0]["base"] == {"image": D("base"), "tag": "base:1", "source": "image", "layers": 1}
    assert top[0]["used_by"] == ["app:1", "app:latest", "base:1", "multi:1", "other:1"]
    assert [i["digest"] for i in doc["largest_images"]][:2] == [D("amd"), D("app2")]
    assert [(s["repository"], s["tag"]) for s in doc["stale_tags"]] == [("other", "1")]
    assert doc["stale_reclaimable_size"] == 200 + 12  # A2 and app2's config; B is used by fresh images too
    assert doc["multi_arch"]["platforms"] == {"linux/amd64": 5, "linux/arm64/v8": 1}  # tags offering each
    assert doc["multi_arch"]["index_tags"] == 1
    assert [(e["repository"], e["type"]) for e in doc["errors"]] == [("broken", "DigestMismatch")]
    assert doc["vm"]["images"] == 5 and doc["vm"]["families"] == {"debian": 4, "static": 1}
    assert doc["vm"]["fleet"]["containers_size"] == 3 * (1000 + 100 + 200 + 300 + 400)


def test_diff_of_two_runs() -> None:
    a = sample_data(1)
    b = sample_data(2)
    b.tags = [t for t in b.tags if t[:2] != ("other", "1")] + [("app", "2", "done", D("app2"), None, None)]
    b.tags = [
        ("app", "latest", "done", D("base"), None, None) if t[:2] == ("app", "latest") else t for t in b.tags
    ]
    ra, rb = build_report(a, now=NOW), build_report(b, now=NOW)
    d = build_diff(a, b, ra, rb)
    assert [(t["repository"], t["tag"]) for t in d["added_tags"]] == [("app", "2")]
    assert [(t["repository"], t["tag"]) for t in d["removed_tags"]] == [("other", "1")]
    assert [(t["repository"], t["tag"], t["to"]) for t in d["changed_tags"]] == [("app", "latest", D("base"))]
    assert d["growth"]["tags"] == {"from": 6, "to": 6, "growth": 0}
    changed = {r["name"]: r for r in d["repos"]}
    assert changed["other"]["to_size"] == 0 and changed["app"]["growth"] > 0


def test_renderers() -> None:
    doc = build_report(sample_data(), now=NOW, vm_params=load_parameters())
    rows = audit_csv(doc).splitlines()
    assert rows[0] == ",".join(CSV_COLUMNS) and len(rows) == 1 + 5
    assert any(r.startswith("app,2,1,1111,1111,111,1000,") for r in rows)
    text = audit_text(doc)
    assert "Stored:" in text and f"({doc['deduplicated_size']} bytes)" in text and "base:1" in text
    assert audit_text(doc, markdown=True).startswith("## Registry audit")
    html = audit_html(doc)
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html and "<script" not in html
    assert "Most shared layers" in html and "base:1" in html
    evil = build_report(sample_data(), now=NOW)
    evil["repos"][0]["name"] = "<img src=x onerror=alert(1)>"
    assert "<img src=x" not in audit_html(evil)


# ------------------------------------------------------------------------------ registry client observers


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("ratelimit-limit", "100;w=21600")
        self.send_header("ratelimit-remaining", "7;w=21600")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = QuietHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_client_observers_see_every_response(server: str) -> None:
    from ociinspect.registry import HostSettings, RegistryClient, RegistrySettings

    seen: list[tuple[str, str, int]] = []
    pacer = Pacer(0, concurrency=2)
    with RegistryClient(RegistrySettings(default=HostSettings(plain_http=True))) as client:
        client.add_observer(lambda m, u, status, headers: seen.append((m, u, status)))
        client.add_observer(pacer.observe)
        client.ping(server)
        client.list_tags(server, "a/b")
    assert [(m, u.split(server, 1)[1], s) for m, u, s in seen] == [
        ("GET", "/v2/", 200),
        ("GET", "/v2/a/b/tags/list", 200),
    ]
    assert (pacer.remaining, pacer.limit) == (7, 100)
    assert json.dumps(seen)  # plain values


class _ProxyHandler(_Handler):
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _ProxyHandler.seen.append(self.path)
        super().do_GET()


def test_transport_honours_the_proxy_environment_read_once_per_origin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """requests' per-request environment scan is replaced by one lookup per origin (RegistryClient change made
    for the audit): HTTP_PROXY and NO_PROXY still apply."""
    from ociinspect.errors import ConnectionFailed as Failed
    from ociinspect.registry import HostSettings, RegistryClient, RegistrySettings

    httpd = QuietHTTPServer(("127.0.0.1", 0), _ProxyHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{httpd.server_address[1]}")
        monkeypatch.setenv("NO_PROXY", "direct.invalid")
        _ProxyHandler.seen.clear()
        with RegistryClient(RegistrySettings(default=HostSettings(plain_http=True))) as client:
            client.ping("registry.invalid:5000")  # only reachable through the proxy (.invalid never resolves)
            client.ping("registry.invalid:5000")
            with pytest.raises(Failed):
                client.ping("direct.invalid:5000")  # NO_PROXY: a direct connection, which cannot resolve
        assert _ProxyHandler.seen == ["http://registry.invalid:5000/v2/"] * 2
    finally:
        httpd.shutdown()
        httpd.server_close()


# ------------------------------------------------------------------------ bounds: nesting, hostile values


def test_one_nesting_rule_caps_depth_and_refuses_cycles() -> None:
    from ociinspect.errors import LimitExceeded
    from ociinspect.image.nesting import MAX_INDEX_DEPTH, IndexChain, is_nesting_error

    chain = IndexChain()
    for i in range(MAX_INDEX_DEPTH):
        chain = chain.enter(D(f"i{i}"), "walk")
    assert len(chain) == MAX_INDEX_DEPTH and D("i0") in chain
    with pytest.raises(LimitExceeded, match="nested deeper than 4 levels") as deep:
        chain.enter(D("i9"), "walk")
    assert is_nesting_error(deep.value) and deep.value.hint
    with pytest.raises(LimitExceeded, match="a cycle") as cycle:
        IndexChain().enter(D("a"), "walk").enter(D("b"), "walk").check(D("a"), "walk")
    assert is_nesting_error(cycle.value)
    assert not is_nesting_error(LimitExceeded("a manifest over 4 MiB"))


def test_report_totals_with_unknown_layers_are_lower_bounds_and_say_so() -> None:
    data = sample_data()
    data.blobs[D("A2")] = (200, None, "unknown")  # e.g. an ambiguous gzip trailer
    doc = build_report(data, now=NOW)
    assert doc["uncompressed_unknown_layers"] == 1
    assert doc["uncompressed_deduplicated_size"] == 3 * (1000 + 100 + 300 + 400)  # A2 left out: a lower bound
    assert doc["uncompressed_logical_size"] == 3 * (1000 + (1000 + 100) + 1000 + (1000 + 300) + 400)
    assert [i["uncompressed_size"] for i in doc["largest_images"] if i["digest"] == D("app2")] == [None]
    text = audit_text(doc)
    line = next(ln for ln in text.splitlines() if ln.startswith("Unpacked:"))
    assert line.count("≥ ") == 2 and "(1 layer unknown)" in line
    assert "(1 layer unknown)" in audit_html(doc)
    known = build_report(sample_data(), now=NOW)
    assert known["uncompressed_unknown_layers"] == 0 and "≥" not in audit_text(known)


def test_waste_figures_count_scannable_images_only() -> None:
    data = sample_data()
    data.waste[D("app1")] = {"wasted_bytes": 5, "efficiency": 0.9}
    data.refs[D("idx")].append(("manifest", 2, D("att"), OCI_M, 16, "unknown/unknown", "attestation"))
    data.manifests[D("att")] = (OCI_M, 16, "image", None, None)
    data.refs[D("att")] = [
        ("config", 0, D("catt"), CFG, 9, None, None),
        ("layer", 0, D("stmt"), "application/vnd.in-toto+json", 50, None, None),
    ]
    doc = build_report(data, now=NOW)
    assert doc["images_by_kind"] == {"attestation": 1, "image": 5}
    assert doc["waste_figures"] == {"images": 1, "of": 5}
    assert "waste figures: 1 of 5 images" in audit_text(doc)


def test_any_exception_of_one_tag_or_repository_is_recorded_and_the_walk_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker boundary: a RecursionError in one tag and a ValueError listing one repository (what a hostile
    value used to raise through the registry client) are those items' errors; the other tags are read."""
    from types import SimpleNamespace

    from ociinspect.audit.walker import Walker

    def manifest(tag: str) -> bytes:
        return json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_M,
                "config": {"mediaType": CFG, "digest": D("c"), "size": 2},
                "layers": [],
                "annotations": {"tag": tag},
            }
        ).encode()

    class Client:
        def add_observer(self, observer: Any) -> None:
            pass

        def catalog(self, registry: str, *, page_size: int) -> Iterator[str]:
            return iter(["a/one", "b/two", "c/bad"])

        def list_tags(self, registry: str, repository: str) -> list[str]:
            if repository == "c/bad":
                raise ValueError("invalid literal for int() with base 10: '\u00b2'")
            return ["1", "2"]

        def get_manifest(self, registry: str, repository: str, reference: str, *, max_bytes: int) -> Any:
            data = manifest(f"{repository}:{reference}")
            return SimpleNamespace(
                data=data, media_type=OCI_M, digest="sha256:" + hashlib.sha256(data).hexdigest()
            )

    bad = "sha256:" + hashlib.sha256(manifest("a/one:2")).hexdigest()

    def ensure_manifest(self: Walker, source: Any, digest: str, *args: Any, **kw: Any) -> None:
        if digest == bad:
            raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(Walker, "ensure_manifest", ensure_manifest)
    scope = Scope("reg:5000")
    with AuditDB(tmp_path / "a.sqlite3") as db:
        run_id, _ = open_run(db, scope, AuditOptions())
        counters = Walker(db, Client(), run_id, scope, options=AuditOptions(concurrency=2)).run()  # type: ignore[arg-type]
        tags = {
            (r, t): (s, e) for r, t, s, e in db.query("SELECT repository, tag, status, error_type FROM tags")
        }
        repos = {n: (s, e) for n, s, e in db.query("SELECT name, status, error_type FROM repositories")}
        message = db.query("SELECT error FROM tags WHERE status = 'error'")[0][0]
    assert tags == {
        ("a/one", "1"): ("done", None),
        ("a/one", "2"): ("error", "RecursionError"),
        ("b/two", "1"): ("done", None),
        ("b/two", "2"): ("done", None),
    }
    assert "internal error (RecursionError" in message
    assert repos["c/bad"] == ("error", "ValueError") and repos["b/two"][0] == "done"
    assert counters.tag_errors == 1 and counters.repo_errors == 1


# ------------------------------------------------------- the audit reads through the shared loader and sources


class _Hooks:
    def __init__(self) -> None:
        self.requests = 0

    def before_request(self) -> None:
        self.requests += 1

    def fetched(self, *, manifests: int = 0, blobs: int = 0) -> None:
        pass

    def facts_from_small_blob(self, reference: Any, layer: Any, data: bytes) -> None:
        raise AssertionError("small blobs are off in this test")


class _Sizes:
    def __init__(self, known: dict[str, int]) -> None:
        self.known = known

    def get_uncompressed_size(self, diff_id: str) -> int | None:
        return self.known.get(diff_id)

    def put_uncompressed_size(self, diff_id: str, size: int) -> None:
        self.known[diff_id] = size


def _audited(tmp_path: Path, store: _Sizes | None) -> tuple[Any, Any, str, bytes]:
    from ociinspect.audit.facts import AuditFacts
    from ociinspect.audit.images import Depth, ImageFacts
    from ociinspect.audit.source import AuditSource
    from ociinspect.sources.memory import MemorySource

    mem = MemorySource(kind="registry", reference="docker://reg.example/team/app:v1")
    layer = mem.add(b"not gzip!")  # too small to be gzip: its cheap size is not trusted
    diff_id = layer  # read as it is (no gzip magic), the content is the blob itself
    config = mem.add(
        json.dumps({"os": "linux", "architecture": "amd64", "rootfs": {"diff_ids": [diff_id]}}).encode()
    )
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_M,
            "config": {"mediaType": CFG, "digest": config, "size": len(mem.blobs[config])},
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": 9}
            ],
        }
    ).encode()
    mem.tags["v1"] = mem.add(manifest)
    db = AuditDB(tmp_path / f"a{id(store)}.sqlite3")
    run_id, _ = open_run(db, Scope("reg.example"), AuditOptions())
    images = ImageFacts(AuditFacts(db), Depth(run_id, detect_os=False, small_blob=0, size_store=store))
    source = AuditSource(mem, _Hooks(), small_blob=0)
    assert images.ensure_manifest(source, mem.tags["v1"], source.root())
    return db, images, layer, manifest


def test_the_audit_reuses_a_size_the_store_knows_by_diff_id(tmp_path: Path) -> None:
    """Issue 10's leftover: the audit passes its store to the size estimates (a deep scan's size is reused)."""
    unpacked = "sha256:" + hashlib.sha256(b"not gzip!").hexdigest()
    db, _, layer, _ = _audited(tmp_path, _Sizes({unpacked: 12345}))
    with db:
        assert db.query(
            "SELECT uncompressed_size, uncompressed_source FROM blobs WHERE digest = ?", (layer,)
        ) == [(12345, "store")]
    db, _, layer, _ = _audited(tmp_path, None)
    with db:
        assert db.query(
            "SELECT uncompressed_size, uncompressed_source FROM blobs WHERE digest = ?", (layer,)
        ) == [(9, "streamed")]  # without the store: one streamed read


def test_the_audit_image_is_assembled_by_the_loader_with_its_real_manifest_facts(tmp_path: Path) -> None:
    """No hand-built Image: media type and manifest size are the manifest's, also when read back from the
    database (a resumed or --deep audit)."""
    from ociinspect.audit.source import AuditSource
    from ociinspect.image.loader import manifest_facts
    from ociinspect.model.image import RawManifest
    from ociinspect.sources.memory import MemorySource

    db, images, _, manifest = _audited(tmp_path, None)
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    with db:
        stored = images.facts.manifest(digest)
        assert stored == manifest_facts(RawManifest(manifest, OCI_M, digest), "m")
        image = images._image_of(AuditSource(MemorySource(kind="registry"), _Hooks(), small_blob=0), stored)
    assert (image.media_type, image.manifest_size, image.digest) == (OCI_M, len(manifest), digest)
    assert image.platform is not None and str(image.platform) == "linux/amd64"
    assert image.layers[0].diff_id == "sha256:" + hashlib.sha256(b"not gzip!").hexdigest()
