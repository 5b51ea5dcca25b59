"""``ociinspect audit`` against a real Distribution registry seeded with 212 repositories (842 tags).

The registry holds small images on three shared bases (OCI and Docker schema2 manifests, OCI indexes and Docker
manifest lists, an OCI artifact), fixture images pushed with skopeo and oras-py (independent clients), and two
broken repositories (a corrupted manifest, a deleted config blob).  Checked:

* the report's numbers equal those recomputed from the registry's storage directory (tests/audit_fixtures.py);
* ``kill -9`` in the middle, then ``--resume``: the same report, and no request answered twice (counted at a
  fault proxy that stalls every request before the kill, so nothing is in flight unrecorded);
* a re-audit of the unchanged registry costs at most one request per tag (registry access log);
* three shards into one real PostgreSQL server give the same report as one worker;
* the HTML report renders in headless Chromium; runs, diff and the error paths of the CLI.
"""

from __future__ import annotations

import concurrent.futures
import json
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from audit_fixtures import Pusher, break_repositories, build_image, corpus, expected_from_storage
from harness import seeding
from harness.browser import CHROMIUM_FLAGS, chromium_executable
from harness.faultproxy import FaultProxy, Rewrite, Stall
from harness.postgres import running_postgres
from harness.registry import RunningRegistry, free_port, start_registry

from fixtures.build import EXPECTED

pytestmark = [pytest.mark.registry, pytest.mark.timeout(240)]

N_REPOS = 200
SKOPEO_IMAGES = ("base", "app1", "app2", "zstd", "plain", "multimember", "demo", "os-alpine")


def cli(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ociinspect", *argv], capture_output=True, text=True, timeout=timeout
    )


def report_json(db: str, run: str | None = None) -> dict[str, Any]:
    r = cli("audit", "report", *([run] if run else []), "--db", db, "-f", "json", "--top", "0")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def comparable(doc: dict[str, Any], host: tuple[str, str] | None = None) -> dict[str, Any]:
    """A report without what differs between runs of the same content (the run record itself; with ``host``,
    the registry's name as seen through a proxy)."""
    if host is not None:
        doc = json.loads(json.dumps(doc).replace(*host))
    return {k: v for k, v in doc.items() if k != "run"}


# ----------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def audit_registry(
    tmp_path_factory: pytest.TempPathFactory, fixture_images: Any, skopeo: seeding.Skopeo
) -> Iterator[tuple[RunningRegistry, dict[str, Any]]]:
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry not installed: run the README's test command, which installs it")
    registry = start_registry(tmp_path_factory.mktemp("audit-registry"), "anon", access_log=True)
    try:
        pusher = Pusher(registry.url)
        pusher.push_all(list(corpus(N_REPOS)))
        keep = seeding.dest_options()
        jobs = [
            (f"oci:{fixture_images[n]}:latest", f"docker://{registry.host}/fixtures/{n}:latest", keep)
            for n in SKOPEO_IMAGES
        ]
        jobs += [
            (
                f"oci:{fixture_images['multi']}:latest",
                f"docker://{registry.host}/fixtures/multi:latest",
                [*keep, "--all"],
            ),
            (
                f"oci:{fixture_images['app1']}:latest",
                f"docker://{registry.host}/fixtures/app1:v2s2",
                [*seeding.dest_options(preserve_digests=False), "--format", "v2s2"],
            ),
        ]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            for f in [pool.submit(skopeo.copy, src, dst, *opts) for src, dst, opts in jobs]:
                f.result()
        seeding.oras_push_manifest(
            registry.host,
            "fixtures/artifact:latest",
            fixture_images["artifact"],
            EXPECTED["artifact"].manifest_digest,
        )
        broken = break_repositories(pusher, registry.data_dir)
        expected = expected_from_storage(registry.data_dir)
        assert expected["broken"] == set(broken)
        yield registry, expected
    finally:
        registry.stop()


@pytest.fixture(scope="module")
def full_run(
    audit_registry: tuple[RunningRegistry, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """One uninterrupted audit into SQLite: its database, report, requests and output."""
    registry, _ = audit_registry
    db = str(tmp_path_factory.mktemp("audit-db") / "audit.sqlite3")
    before = len(registry.access_log())
    started = time.monotonic()
    r = cli("audit", "scan", registry.host, "--plain-http", "--db", db)
    elapsed = time.monotonic() - started
    return {
        "db": db,
        "result": r,
        "requests": registry.access_log()[before:],
        "elapsed": elapsed,
        "report": report_json(db),
    }


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A private PostgreSQL cluster (Debian's postgresql) on a free loopback port; stopped by its PID."""
    with running_postgres(max_connections=50) as (port, _):
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"


def createdb(url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + "/" + name


# ------------------------------------------------------------------------------------------------- tests


def test_report_numbers_equal_the_registry_storage(
    full_run: dict[str, Any], audit_registry: tuple[RunningRegistry, dict[str, Any]]
) -> None:
    _, expected = audit_registry
    r = full_run["result"]
    assert r.returncode == 4, r.stderr  # two broken repositories: partial failure, documented exit code
    doc = full_run["report"]
    assert expected["repositories"] >= 200 and expected["tags"] >= 800
    for key in ("repositories", "tags", "tags_read", "images", "logical_size", "deduplicated_size"):
        assert doc[key] == expected[key], key
    got = {
        r["name"]: {"stored_size": r["stored_size"], "unique_size": r["unique_size"]} for r in doc["repos"]
    }
    assert got == expected["repos"]
    assert sum(r["unique_size"] for r in doc["repos"]) <= doc["deduplicated_size"]
    # the JSON contract
    assert doc["schema_version"] == 1 and doc["registry"] == full_run["result"].args[5]
    assert {"run", "repos", "top_shared_layers"} <= doc.keys()
    assert {"name", "tags", "unique_size", "shared_size"} <= doc["repos"][0].keys()
    assert {"digest", "size", "images"} <= doc["top_shared_layers"][0].keys()
    # the broken repositories are errors, named, with their cause
    errors = {(e["repository"], e["tag"]): e for e in doc["errors"]}
    assert set(errors) == {("broken/corrupt", "1"), ("broken/noconfig", "1")}
    assert errors[("broken/noconfig", "1")]["type"] == "RegistryNotFound"
    assert "HTTP 500" in errors[("broken/corrupt", "1")]["message"]
    assert {r["name"]: r["errors"] for r in doc["repos"]}["broken/corrupt"] == 1
    # sharing, bases, kinds, platforms, media types
    kinds = doc["images_by_kind"]
    assert kinds["artifact"] >= 2 and kinds["attestation"] == 1 and kinds["image"] > 500
    top = doc["top_shared_layers"][0]
    assert top["images"] > 100 and top["base"]["source"] == "image"
    assert {s["base"]["tag"] for s in doc["top_shared_layers"][:3]} == {
        "base/debian:12",
        "base/alpine:3.20",
        "base/ubuntu:24.04",
    }
    assert doc["multi_arch"]["platforms"]["linux/arm64/v8"] >= 40
    assert doc["multi_arch"]["index_tags"] >= 80
    assert doc["stale_tag_count"] > 0 and doc["stale_reclaimable_size"] > 0
    assert doc["vm"]["fleet"]["ratio"] > 1 and set(doc["vm"]["families"]) >= {"debian", "alpine", "ubuntu"}
    assert doc["uncompressed_deduplicated_size"] > doc["deduplicated_size"] * 0.9


def test_each_digest_is_fetched_once(full_run: dict[str, Any]) -> None:
    gets = Counter(
        (e.uri, e.status == 206) for e in full_run["requests"] if e.method == "GET" and "sha256:" in e.uri
    )
    # a blob is read at most once whole (a stream, or a small blob) and, for a gzip layer's cheap size, by two
    # Range reads (the 8-byte trailer and the 64 KiB head: docs/sizes.md) — never more, never twice per audit
    ranged = [n for (_, partial), n in gets.items() if partial]
    whole = [n for (_, partial), n in gets.items() if not partial]
    assert gets and max(whole, default=1) == 1 and max(ranged, default=0) <= 2
    by_tag = Counter(e.uri for e in full_run["requests"] if "/manifests/" in e.uri and "sha256:" not in e.uri)
    assert max(by_tag.values()) == 1


def test_reaudit_of_an_unchanged_registry_costs_one_request_per_tag(
    full_run: dict[str, Any], audit_registry: tuple[RunningRegistry, dict[str, Any]], tmp_path: Path
) -> None:
    registry, expected = audit_registry
    db = tmp_path / "reaudit.sqlite3"
    shutil.copy(full_run["db"], db)
    before = len(registry.access_log())
    r = cli("audit", "scan", registry.host, "--plain-http", "--db", str(db))
    assert r.returncode == 4, r.stderr
    log = registry.access_log()[before:]
    per_tag = [e for e in log if "/manifests/" in e.uri or "/blobs/" in e.uri]
    heads = [e for e in per_tag if e.method == "HEAD"]
    tags = expected["tags"]
    print(
        f"re-audit: {len(log)} requests in all ({len(log) / tags:.2f} per tag), "
        f"{len(per_tag)} manifest/blob requests for {tags} tags, {len(heads)} HEADs"
    )
    assert len(per_tag) <= tags
    assert len(heads) >= tags - 2  # the two broken tags had no digest to check: one GET each
    assert len(log) <= tags + expected["repositories"] + 3  # + one tags/list per repository, catalog, ping
    assert comparable(report_json(str(db))) == comparable(full_run["report"])


def test_kill_9_then_resume_gives_the_same_report_and_fetches_nothing_twice(
    full_run: dict[str, Any], audit_registry: tuple[RunningRegistry, dict[str, Any]], tmp_path: Path
) -> None:
    registry, _ = audit_registry
    proxy = FaultProxy(registry.host).start()
    db = str(tmp_path / "killed.sqlite3")
    try:
        scan = [
            sys.executable,
            "-m",
            "ociinspect",
            "audit",
            "scan",
            proxy.host,
            "--plain-http",
            "--db",
            db,
            "-j",
            "4",
            "--timeout",
            "120",
        ]
        process = subprocess.Popen(scan, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(proxy.requests) < 1200 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.01)
        assert process.poll() is None, "the audit finished before it could be killed"
        proxy.rules.add(Stall(120), times=None)  # from now on nothing is answered
        # wait until nothing moves: every worker is blocked on a stalled request, or waits for one that is (two
        # tags of one digest), so none is between an answer and its commit.  --timeout 120: no read timeout here.
        deadline = time.monotonic() + 60
        quiet_since, seen = time.monotonic(), len(proxy.requests)
        while time.monotonic() < deadline:
            stalled_now = sum(1 for s in list(proxy.requests) if s.rule == "Stall")
            if stalled_now >= 4 or (stalled_now and time.monotonic() - quiet_since > 2.0):
                break
            time.sleep(0.05)
            if len(proxy.requests) != seen:
                quiet_since, seen = time.monotonic(), len(proxy.requests)
        time.sleep(0.3)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        first = [s for s in proxy.requests if s.rule is None]
        stalled = [s for s in proxy.requests if s.rule == "Stall"]
        assert stalled, "nothing was in flight at the kill"
        proxy.rules.clear()
        mark = len(proxy.requests)
        r = cli("audit", "scan", proxy.host, "--plain-http", "--db", db, "--resume")
        assert r.returncode == 4, r.stderr
        second = [s for s in proxy.requests[mark:] if s.rule is None]
    finally:
        proxy.stop()
    answered = Counter((s.method, s.target, s.headers.get("range")) for s in first + second)
    twice = {k: n for k, n in answered.items() if n > 1 and k[1] != "/v2/"}  # each process pings the registry
    print(
        f"kill -9 after {len(first)} answered requests ({len(stalled)} in flight); resume: {len(second)} more; "
        f"uninterrupted run: {len(full_run['requests'])}"
    )
    assert not twice
    assert len(first) + len(second) <= len(full_run["requests"]) + 2
    resumed = report_json(db)
    assert resumed["run"]["status"] == "complete"
    assert comparable(resumed, (proxy.host, registry.host)) == comparable(full_run["report"])


def test_docker_hub_rate_limit_headers_slow_the_walk_then_stop_it_resumably(
    audit_registry: tuple[RunningRegistry, dict[str, Any]], tmp_path: Path
) -> None:
    registry, _ = audit_registry
    proxy = FaultProxy(registry.host).start()
    db, reference_db = str(tmp_path / "limited.sqlite3"), str(tmp_path / "reference.sqlite3")
    scope = f"{proxy.host}/team0/"  # ~30 repositories
    try:
        r = cli("audit", "scan", scope, "--plain-http", "--db", reference_db, "-q")
        assert r.returncode == 0, r.stderr
        mark = len(proxy.requests)
        # Docker Hub's headers on manifest answers: 12 left in a 1 s window (below the low-water mark: the walk
        # spreads them out), then 3 left (at the --reserve of 5: the walk stops before the limit)
        header = "ratelimit-remaining"
        proxy.rules.add(Rewrite(header, ".*", "12;w=1", add=True), method="GET", path="/manifests/", times=15)
        proxy.rules.add(
            Rewrite(header, ".*", "3;w=1", add=True), method="GET", path="/manifests/", times=None
        )
        started = time.monotonic()
        r = cli("audit", "scan", scope, "--plain-http", "--db", db, "--reserve", "5", "-j", "4")
        elapsed = time.monotonic() - started
        assert r.returncode == 3, r.stderr
        assert "rate limit is nearly used up" in r.stderr and "--resume" in r.stderr
        manifest_gets = [s for s in proxy.requests[mark:] if s.method == "GET" and "/manifests/" in s.path]
        assert 16 <= len(manifest_gets) <= 16 + 8  # the ones in flight when the reserve was seen
        assert elapsed > 15 / 7 * 0.8  # 15 requests spaced 1 s / (12 - 5) apart
        proxy.rules.clear()
        r = cli("audit", "scan", scope, "--plain-http", "--db", db, "--resume")
        assert r.returncode == 0, r.stderr
    finally:
        proxy.stop()
    resumed, reference = report_json(db), report_json(reference_db)
    assert resumed["tags"] > 100 and resumed["error_count"] == 0
    assert comparable(resumed) == comparable(reference)


def test_three_shards_into_postgresql_equal_one_worker(
    full_run: dict[str, Any], audit_registry: tuple[RunningRegistry, dict[str, Any]], postgres: str
) -> None:
    registry, _ = audit_registry
    sharded = createdb(postgres, "shards")
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ociinspect",
                "audit",
                "scan",
                registry.host,
                "--plain-http",
                "--db",
                sharded,
                "--run",
                "nightly",
                "--shard",
                f"{k}/3",
                "-q",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(3)
    ]
    outputs = [w.communicate(timeout=180) for w in workers]
    assert [w.returncode for w in workers].count(0) >= 1 and all(w.returncode in (0, 4) for w in workers), (
        outputs
    )
    merged = report_json(sharded, "nightly")
    assert merged["run"]["shards"] == 3 and merged["run"]["shards_complete"] == 3
    assert merged["run"]["status"] == "complete"
    assert comparable(merged) == comparable(full_run["report"])
    # each shard audited a disjoint slice
    import psycopg

    with psycopg.connect(sharded) as conn:
        rows = conn.execute(
            "SELECT shard, COUNT(*) FROM repositories GROUP BY shard ORDER BY shard"
        ).fetchall()
    assert (
        len(rows) == 3 and all(n > 40 for _, n in rows) and sum(n for _, n in rows) == merged["repositories"]
    )


def test_html_report_renders_in_headless_chromium(full_run: dict[str, Any], tmp_path: Path) -> None:
    exe = chromium_executable()
    r = cli("audit", "report", "--db", full_run["db"], "-f", "html")
    assert r.returncode == 0, r.stderr
    html = r.stdout
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    page = tmp_path / "audit.html"
    page.write_text(html)
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [exe, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    )
    shot = tmp_path / "audit.png"
    subprocess.run(
        [exe, *flags, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()],
        capture_output=True,
        timeout=120,
    )
    assert (
        dom.stdout.count("<rect") >= 20 + 5
    )  # repository bars and the shared-layer ranking survived parsing
    assert "Most shared layers" in dom.stdout and "broken/corrupt" in dom.stdout
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    if (keep := Path("/tmp/ociinspect-screens")).is_dir():
        shutil.copy(shot, keep / shot.name)


def test_runs_and_diff_show_new_moved_and_removed_tags(tmp_path: Path) -> None:
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry not installed: run the README's test command, which installs it")
    registry = start_registry(tmp_path / "reg", "anon")
    try:
        pusher = Pusher(registry.url)
        pusher.push_all(list(corpus(4)))
        db = str(tmp_path / "a.sqlite3")
        assert cli("audit", "scan", registry.host, "--plain-http", "--db", db, "-q").returncode == 0
        pusher.push("team0/svc00000", "2.0", build_image("new", "debian", extra_size=30_000))
        pusher.push("team1/svc00001", "latest", build_image("moved", "alpine"))
        pusher.push("extra/repo", "1", build_image("extra", "alpine"))
        r = cli("audit", "scan", registry.host, "--plain-http", "--db", db)
        assert r.returncode == 0 and "run 2" in r.stderr, r.stderr
    finally:
        registry.stop()
    runs = json.loads(cli("audit", "runs", "--db", db, "-f", "json").stdout)
    assert [(r["id"], r["status"], r["tags"]) for r in runs["runs"]] == [
        (2, "complete", 20),
        (1, "complete", 18),
    ]
    r = cli("audit", "diff", "1", "2", "--db", db, "-f", "json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert [(t["repository"], t["tag"]) for t in d["added_tags"]] == [
        ("extra/repo", "1"),
        ("team0/svc00000", "2.0"),
    ]
    assert [(t["repository"], t["tag"]) for t in d["changed_tags"]] == [("team1/svc00001", "latest")]
    assert d["removed_tags"] == []
    assert d["growth"]["deduplicated_size"]["growth"] > 30_000
    assert {r["name"]: r["status"] for r in d["repos"]}["extra/repo"] == "added"
    table = cli("audit", "diff", "1", "2", "--db", db)
    assert table.returncode == 0 and "Tags added (2)" in table.stdout
    for fmt in ("table", "markdown", "csv"):
        out = cli("audit", "report", "--db", db, "-f", fmt)
        assert out.returncode == 0 and "team0/svc00000" in out.stdout, (fmt, out.stderr)


def test_cli_errors_are_one_line_with_a_hint(tmp_path: Path) -> None:
    missing = cli("audit", "report", "--db", str(tmp_path / "none.sqlite3"))
    assert missing.returncode == 2 and "no audit database" in missing.stderr and "hint:" in missing.stderr
    assert cli("audit", "scan", "127.0.0.1:1", "--shard", "1/3", "--db", str(tmp_path / "x")).returncode == 2
    bad = cli("audit", "scan", "127.0.0.1:1", "--shard", "3/3", "--run", "x", "--db", str(tmp_path / "x"))
    assert bad.returncode == 2 and "0 <= K < N" in bad.stderr
    down = cli(
        "audit",
        "scan",
        f"127.0.0.1:{free_port()}",
        "--plain-http",
        "--db",
        str(tmp_path / "d.sqlite3"),
        "--retries",
        "0",
        "-q",
    )
    assert down.returncode == 3 and "refused" in down.stderr and "Traceback" not in down.stderr
    assert len([ln for ln in down.stderr.splitlines() if ln.startswith("ociinspect: error")]) == 1
    nothing = cli("audit", "scan", "127.0.0.1:1", "--resume", "--db", str(tmp_path / "d.sqlite3"))
    assert nothing.returncode == 2 and "no unfinished audit" in nothing.stderr
    unknown = cli("audit", "report", "nope", "--db", str(tmp_path / "d.sqlite3"))
    assert unknown.returncode == 2 and "no audit run 'nope'" in unknown.stderr


def test_deep_waste_scan_matches_the_waste_command(
    tmp_path: Path, fixture_images: Any, skopeo: seeding.Skopeo, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry not installed: run the README's test command, which installs it")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the layer-index cache shared with `waste`
    registry = start_registry(tmp_path / "reg", "anon", access_log=True)
    try:
        for name in ("demo", "app1"):
            skopeo.copy(
                f"oci:{fixture_images[name]}:latest",
                f"docker://{registry.host}/deep/{name}:latest",
                *seeding.dest_options(),
            )
        db = str(tmp_path / "deep.sqlite3")
        r = cli("audit", "scan", registry.host, "--plain-http", "--db", db, "--deep", "-q")
        assert r.returncode == 0, r.stderr
        doc = report_json(db)
        waste = cli("waste", f"docker://{registry.host}/deep/demo:latest", "--plain-http", "-f", "json")
        assert waste.returncode == 0, waste.stderr
        expected = json.loads(waste.stdout)
        before = len(registry.access_log())
        again = cli("audit", "scan", registry.host, "--plain-http", "--db", db, "--deep", "-q")
        assert again.returncode == 0 and all("/blobs/" not in e.uri for e in registry.access_log()[before:])
    finally:
        registry.stop()
    assert doc["deep"] is True
    wasted = {i["tags"][0]: i["waste"] for i in doc["most_wasted"]}
    assert set(wasted) == {"deep/demo:latest", "deep/app1:latest"}
    assert wasted["deep/demo:latest"]["wasted_bytes"] == expected["wasted_bytes"] > 0
    assert wasted["deep/demo:latest"]["efficiency"] == pytest.approx(expected["efficiency"])
    assert doc["most_wasted"][0]["tags"] == ["deep/demo:latest"]


def test_shards_finishing_at_once_on_postgresql_still_complete_the_run(
    postgres: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shard 0 counts the complete shards and stops before its commit; shard 1 finishes meanwhile.  Each used to
    count only itself and the run stayed 'running' with every shard complete (seen once in the three-shard test)."""
    import threading

    from ociinspect.audit import AuditDB
    from ociinspect.audit.facts import AuditFacts

    url = createdb(postgres, "finish_race")
    with AuditDB(url) as a, AuditDB(url) as b:
        fa, fb = AuditFacts(a), AuditFacts(b)
        fa.create_run("r", "reg.example", "{}", 2, "{}")
        found = fa.find_run("reg.example", "r")
        assert found is not None
        run_id = found[0]
        fa.start_shard(run_id, 0)
        fb.start_shard(run_id, 1)
        counted, go = threading.Event(), threading.Event()
        query = a.query

        def pausing(sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
            rows = query(sql, params)
            if "COUNT(*) FROM run_shards" in sql:
                counted.set()
                go.wait(60)
            return rows

        monkeypatch.setattr(a, "query", pausing)
        first = threading.Thread(target=fa.finish_shard, args=(run_id, 0, "complete", 0))
        first.start()
        assert counted.wait(60)
        second = threading.Thread(target=fb.finish_shard, args=(run_id, 1, "complete", 0))
        second.start()
        # it waits for shard 0's commit now (before: it finished at once, counting only itself)
        second.join(1.0)
        go.set()
        first.join()
        second.join()
        row = fa.run_row(run_id, "r")
        assert row is not None and row[5] == "complete"
        assert sorted(s for _, s, _ in fa.shards(run_id)) == ["complete", "complete"]
