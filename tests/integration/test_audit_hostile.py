"""``audit scan`` on what real registries hold and on hostile ones (issue 10 §2, issue 15 "Depth" and "One hostile
value"), against a real loopback Distribution registry seeded with raw HTTP PUTs (tests/audit_fixtures.py):

* a buildx-style index (amd64 + arm64 + two in-toto attestation manifests): ``--deep`` gives both images waste
  figures and lists the attestations, no error;
* ``--deep`` on a database that already holds the manifests scans the images never scanned;
* index chains 50 and 400 levels deep are those tags' errors (one nesting rule), the other repositories are
  reported, exit 4 (not 70);
* a repository served with a hostile header value (Content-Length "²", through a forwarding fake server) is that
  repository's error; ``--resume`` gets past it without asking for it again.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from audit_fixtures import Pusher, build_buildx_index, build_image, index_chain
from harness.fakeserver import FakeServer, Reply, Req
from harness.registry import RunningRegistry, start_registry

pytestmark = [pytest.mark.registry, pytest.mark.timeout(240)]


def cli(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ociinspect", *argv], capture_output=True, text=True, timeout=timeout
    )


def report_json(db: str) -> dict[str, Any]:
    r = cli("audit", "report", "--db", db, "-f", "json", "--top", "0")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningRegistry, dict[str, Any]]]:
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry not installed: run the README's test command, which installs it")
    reg = start_registry(tmp_path_factory.mktemp("hostile-registry"), "anon")
    try:
        pusher = Pusher(reg.url)
        buildx = build_buildx_index("bx/app")
        pusher.push("bx/app", "latest", buildx)
        for name in ("one", "two"):
            pusher.push(f"ok/{name}", "1", build_image(f"ok/{name}", "debian", extra_size=5000))
        pusher.push("hostile/cl", "1", build_image("hostile/cl", "alpine"))
        pusher.push("flaky/x", "1", build_image("flaky/x", "alpine"))
        pusher.chain("nest/deep50", "1", index_chain(50, "deep50"))
        pusher.chain("nest/deep400", "1", index_chain(400, "deep400"))
        pusher.chain("nest/ok3", "1", index_chain(3, "ok3"))  # within the cap of 4: read
        yield reg, {"buildx": buildx}
    finally:
        reg.stop()


def test_deep_on_a_buildx_index_scans_both_images_and_lists_the_attestations(
    registry: tuple[RunningRegistry, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg, built = registry
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    db = str(tmp_path / "bx.sqlite3")
    r = cli("audit", "scan", f"{reg.host}/bx/", "--plain-http", "--db", db, "--deep", "-q")
    assert r.returncode == 0, r.stderr
    doc = report_json(db)
    assert doc["error_count"] == 0 and doc["tags_read"] == 1
    assert doc["images_by_kind"] == {"attestation": 2, "image": 2}
    images = [c.digest for c in built["buildx"].children[:2]]
    wasted = {i["digest"]: i for i in doc["most_wasted"]}
    assert set(wasted) == set(images)
    assert {wasted[d]["platform"] for d in images} == {"linux/amd64", "linux/arm64/v8"}
    assert all(wasted[d]["waste"]["size_bytes"] > 0 for d in images)
    assert doc["waste_figures"] == {"images": 2, "of": 2}
    listed = {i["digest"]: i["kind"] for i in doc["largest_images"]}
    assert sorted(listed.values()) == ["attestation", "attestation", "image", "image"]
    text = cli("audit", "report", "--db", db)
    assert "waste figures: 2 of 2 images" in text.stdout, text.stdout


def test_deep_on_a_database_that_holds_the_manifests_scans_them(
    registry: tuple[RunningRegistry, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg, _ = registry
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    db = str(tmp_path / "known.sqlite3")
    scope = f"{reg.host}/ok/"
    assert cli("audit", "scan", scope, "--plain-http", "--db", db, "-q").returncode == 0
    before = report_json(db)
    assert before["most_wasted"] == [] and before["waste_figures"] == {"images": 0, "of": 2}
    r = cli("audit", "scan", scope, "--plain-http", "--db", db, "--deep", "-q")
    assert r.returncode == 0, r.stderr
    after = report_json(db)
    assert after["deep"] is True and after["waste_figures"] == {"images": 2, "of": 2}
    assert {i["tags"][0] for i in after["most_wasted"]} == {"ok/one:1", "ok/two:1"}


def test_index_chains_deeper_than_the_cap_are_those_tags_errors(
    registry: tuple[RunningRegistry, dict[str, Any]], tmp_path: Path
) -> None:
    reg, _ = registry
    db = str(tmp_path / "nest.sqlite3")
    r = cli("audit", "scan", reg.host, "--plain-http", "--db", db, "-q")
    assert r.returncode == 4, r.stderr  # partial, never 70
    assert "Traceback" not in r.stderr
    doc = report_json(db)
    errors = {e["repository"]: e for e in doc["errors"]}
    assert set(errors) == {"nest/deep50", "nest/deep400"}
    for e in errors.values():
        assert e["type"] == "LimitExceeded" and "nested deeper than 4 levels" in e["message"], e
    read = {r["name"] for r in doc["repos"] if r["images"]}
    assert {"nest/ok3", "ok/one", "ok/two", "bx/app", "hostile/cl", "flaky/x"} <= read
    # a re-audit gives the same errors (they belong to the path, and are not remembered under a digest)
    again = cli("audit", "scan", reg.host, "--plain-http", "--db", db, "-q")
    assert again.returncode == 4, again.stderr
    assert {e["repository"] for e in report_json(db)["errors"]} == {"nest/deep50", "nest/deep400"}


class Forwarder:
    """A fake registry in front of the real one: forwards every request, except that the manifests of
    ``hostile/cl`` and the tag list of ``hostile/list`` come with the header ``Content-Length: ²`` (a Unicode digit, which ``str.isdigit``
    accepts and ``int`` refuses) and a body of JSON nested 100 000 deep (past Python's recursion limit), and
    manifests of ``flaky/*`` answer 503 while ``flaky`` is set."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.flaky = True
        self.session = requests.Session()
        self.server = FakeServer(self.app)

    def app(self, req: Req) -> Reply:
        if "/manifests/" in req.path and req.path.startswith("/v2/flaky/") and self.flaky:
            return Reply(503, {"Content-Type": "text/plain"}, b"down")
        keep = {k: v for k, v in req.headers.items() if k in ("accept", "range", "content-type")}
        up = self.session.request(
            req.method,
            self.upstream + req.path,
            headers=keep,
            data=req.body,
            timeout=30,
            allow_redirects=False,
        )
        drop = {"content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding"}
        headers = {k: v for k, v in up.headers.items() if k.lower() not in drop}
        if req.method == "HEAD" and "Content-Length" in up.headers:
            headers["Content-Length"] = up.headers["Content-Length"]
        if req.path.startswith(("/v2/hostile/cl/manifests/", "/v2/hostile/list/tags/list")):
            headers = {
                "Content-Type": headers.get("Content-Type", "application/json"),
                "Content-Length": "\u00b2",
                "Connection": "close",  # the body then ends where the connection does
            }
            return Reply(200, headers, b"[" * 100_000)
        return Reply(up.status_code, headers, up.content)


def test_a_hostile_header_value_is_one_repository_error_and_resume_gets_past_it(
    registry: tuple[RunningRegistry, dict[str, Any]], tmp_path: Path
) -> None:
    reg, _ = registry
    fwd = Forwarder(reg.url)
    db = str(tmp_path / "hostile.sqlite3")
    repos = [
        "--repo",
        "hostile/cl",
        "--repo",
        "hostile/list",
        "--repo",
        "ok/one",
        "--repo",
        "flaky/x",
        "--repo",
        "ok/two",
    ]
    scan = ["audit", "scan", fwd.server.host, "--plain-http", "--db", db, "--retries", "0", "-q", *repos]
    try:
        first = cli(*scan)
        assert first.returncode == 4, first.stderr
        assert "Traceback" not in first.stderr
        doc = report_json(db)
        assert doc["run"]["status"] == "incomplete"  # flaky/x failed transiently: resumable
        assert {r["name"] for r in doc["repos"] if r["images"]} == {"ok/one", "ok/two"}
        errors = {e["repository"]: e for e in doc["errors"]}
        assert set(errors) == {"hostile/cl", "hostile/list", "flaky/x"}
        assert (
            errors["hostile/cl"]["tag"] == "1" and errors["hostile/list"]["tag"] is None
        )  # a tag; a listing
        for e in (errors["hostile/cl"], errors["hostile/list"]):
            assert e["type"] not in ("Unfinished", "Error") and e["message"], e
        fwd.flaky = False
        mark = len(fwd.server.requests)
        resumed = cli(*scan, "--resume")
        assert resumed.returncode == 4, resumed.stderr  # the hostile tag is still an error, not retried
        asked = [q.path for q in fwd.server.requests[mark:]]
        assert not [p for p in asked if p.startswith("/v2/hostile/")], asked
        assert any(p.startswith("/v2/flaky/") for p in asked)
    finally:
        fwd.server.close()
    doc = report_json(db)
    assert doc["run"]["status"] == "complete"
    assert [e["repository"] for e in doc["errors"]] == ["hostile/cl", "hostile/list"]
    assert {r["name"] for r in doc["repos"] if r["images"]} == {"ok/one", "ok/two", "flaky/x"}
