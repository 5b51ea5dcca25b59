"""The everyday verbs against a scripted fake registry: what Distribution cannot be made to do (tag pagination
with ``n``, a referrers API, a catalog switched off, a HEAD without Docker-Content-Digest), plus usage errors."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from harness.fakeserver import FakeServer, Reply, Req

from ociinspect import verbs
from ociinspect.cli import main
from ociinspect.errors import AuthError, RegistryNotFound, UsageError
from ociinspect.model.reference import parse_reference
from ociinspect.registry import HostSettings, RegistrySettings
from ociinspect.session import Session
from ociinspect.sources import stdin as stdin_source

pytestmark = pytest.mark.timeout(60)

SUBJECT = "sha256:" + "a" * 64
SIG = {
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": "sha256:" + "1" * 64,
    "size": 700,
    "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
    "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
}
SBOM = {
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": "sha256:" + "2" * 64,
    "size": 800,
    "artifactType": "application/spdx+json",
}
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": SUBJECT, "size": 2},
        "layers": [],
    }
).encode()
MANIFEST_DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[Req], Reply]], FakeServer]]:
    servers: list[FakeServer] = []

    def start(app: Callable[[Req], Reply]) -> FakeServer:
        server = FakeServer(app)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def session() -> Session:
    return Session(RegistrySettings(default=HostSettings(plain_http=True), retries=0))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def paged_tags(req: Req) -> Reply:
    """Three pages of two tags, linked relatively; ``n`` is honoured (unlike Distribution 2.8)."""
    url = urlsplit(req.path)
    query = parse_qs(url.query)
    start = int(query.get("last", ["0"])[0])
    names = [f"t{i}" for i in range(start, min(start + 2, 6))]
    headers = {"Content-Type": "application/json"}
    if start + 2 < 6:
        headers["Link"] = f'<{url.path}?n=2&last={start + 2}>; rel="next"'
    return Reply(200, headers, json.dumps({"name": "team/app", "tags": names}).encode())


def test_tags_follow_every_page(serve: Any, capsys: pytest.CaptureFixture[str]) -> None:
    server = serve(paged_tags)
    with session() as s:
        assert verbs.tags(s, f"{server.host}/team/app") == ["t0", "t1", "t2", "t3", "t4", "t5"]
    assert len(server.requests) == 3
    code, out, _ = run(capsys, "tags", f"{server.host}/team/app", "--plain-http", "-f", "json")
    assert code == 0 and json.loads(out) == ["t0", "t1", "t2", "t3", "t4", "t5"]
    code, out, _ = run(capsys, "tags", f"docker://{server.host}/team/app", "--plain-http")
    assert code == 0 and out.splitlines() == ["t0", "t1", "t2", "t3", "t4", "t5"]


def test_tags_refuse_an_image_reference(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "tags", "localhost:5000/team/app:1.0")
    assert code == 2 and out == ""
    assert "names an image" in err and "hint: drop the tag" in err


def test_tags_of_a_hostile_registry_are_escaped(serve: Any, capsys: pytest.CaptureFixture[str]) -> None:
    body = json.dumps({"tags": ["ok", "evil\x1b]0;pwned\x07"]}).encode()
    server = serve(lambda req: Reply(200, {"Content-Type": "application/json"}, body))
    code, out, _ = run(capsys, "tags", f"{server.host}/team/app", "--plain-http")
    assert code == 0 and "\x1b" not in out and "\\x1b" in out


@pytest.mark.parametrize("status", [401, 403, 404])
def test_repos_where_the_catalog_is_off(serve: Any, capsys: pytest.CaptureFixture[str], status: int) -> None:
    server = serve(lambda req: Reply(status, {"Content-Type": "application/json"}, b'{"errors": []}'))
    with session() as s, pytest.raises((AuthError, RegistryNotFound)) as info:
        verbs.repositories(s, server.host)
    assert "does not offer its catalog" in str(info.value) and "ociinspect tags" in (info.value.hint or "")
    code, out, err = run(capsys, "repos", server.host, "--plain-http")
    assert code == 3 and out == ""
    assert "does not offer its catalog" in err and "hint:" in err and "Traceback" not in err


def test_repos_paginated(serve: Any, capsys: pytest.CaptureFixture[str]) -> None:
    def app(req: Req) -> Reply:
        if "last=" in req.path:
            return Reply(200, {}, json.dumps({"repositories": ["c/d"]}).encode())
        link = '</v2/_catalog?n=1000&last=a%2Fb>; rel="next"'
        return Reply(200, {"Link": link}, json.dumps({"repositories": ["a/b"]}).encode())

    server = serve(app)
    code, out, _ = run(capsys, "repos", server.host, "--plain-http", "-f", "json")
    assert code == 0 and json.loads(out) == ["a/b", "c/d"]


def test_repos_takes_a_host(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "repos", "localhost:5000/team/app")
    assert code == 2 and "registry host" in err


def referrers_api(calls: list[str]) -> Callable[[Req], Reply]:
    """A registry with the referrers API that ignores the artifactType filter (allowed by the spec)."""

    def app(req: Req) -> Reply:
        calls.append(req.path)
        if req.path.startswith(f"/v2/team/app/referrers/{SUBJECT}"):
            index: dict[str, Any] = {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
            }
            index["manifests"] = [SIG, SBOM]
            return Reply(
                200, {"Content-Type": "application/vnd.oci.image.index.v1+json"}, json.dumps(index).encode()
            )
        return Reply(404)

    return app


def test_referrers_api(serve: Any, capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[str] = []
    server = serve(referrers_api(calls))
    ref = f"docker://{server.host}/team/app@{SUBJECT}"
    with session() as s:
        found = verbs.referrers(s, ref)
        assert [r.digest for r in found] == [SIG["digest"], SBOM["digest"]]
        assert found[0].artifact_type == SIG["artifactType"] and found[0].size == 700
        assert dict(found[0].annotations) == SIG["annotations"]
        sboms = verbs.referrers(s, ref, "application/spdx+json")
    assert [r.digest for r in sboms] == [SBOM["digest"]]  # filtered here when the registry did not
    assert calls[-1].endswith("?artifactType=application%2Fspdx%2Bjson")
    assert not any("/manifests/" in c for c in calls)  # pinned by digest, API present: no fallback, no HEAD
    code, out, _ = run(capsys, "referrers", ref, "--plain-http", "-f", "json")
    assert code == 0
    assert json.loads(out) == [
        {**SIG, "annotations": SIG["annotations"]},
        {**SBOM, "annotations": {}},
    ]
    code, out, _ = run(capsys, "referrers", ref, "--plain-http")
    assert code == 0 and "application/spdx+json" in out and "700 B" in out


def test_referrers_fall_back_to_the_tag_schema(serve: Any) -> None:
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [SBOM]}
    ).encode()
    calls: list[str] = []

    def app(req: Req) -> Reply:
        calls.append(req.path)
        if req.path == f"/v2/team/app/manifests/sha256-{'a' * 64}":
            return Reply(200, {"Content-Type": "application/vnd.oci.image.index.v1+json"}, index)
        return Reply(404)

    server = serve(app)
    with session() as s:
        found = verbs.referrers(s, f"{server.host}/team/app@{SUBJECT}")
    assert [r.artifact_type for r in found] == ["application/spdx+json"]
    assert calls == [f"/v2/team/app/referrers/{SUBJECT}", f"/v2/team/app/manifests/sha256-{'a' * 64}"]


def test_digest_head_without_digest_header_falls_back_to_get(serve: Any) -> None:
    def app(req: Req) -> Reply:
        headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
        if req.method == "HEAD":
            return Reply(200, {**headers, "Content-Length": str(len(MANIFEST))}, b"")
        return Reply(200, headers, MANIFEST)

    server = serve(app)
    with session() as s:
        assert verbs.digest(s, f"{server.host}/team/app:1.0") == MANIFEST_DIGEST
    assert [r.method for r in server.requests] == ["HEAD", "GET"]


def test_digest_is_one_head_when_the_registry_sends_it(serve: Any) -> None:
    headers = {
        "Content-Type": "application/vnd.oci.image.manifest.v1+json",
        "Docker-Content-Digest": MANIFEST_DIGEST,
    }
    server = serve(
        lambda req: Reply(
            200, {**headers, "Content-Length": str(len(MANIFEST))}, b"" if req.method == "HEAD" else MANIFEST
        )
    )
    with session() as s:
        assert verbs.digest(s, f"{server.host}/team/app:1.0") == MANIFEST_DIGEST
    assert [r.method for r in server.requests] == ["HEAD"]


def test_referrers_and_platform_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    code, _, err = run(capsys, "manifest", "--index", "--platform", "linux/arm64", f"oci:{tmp_path}")
    assert code == 2 and "exclude each other" in err
    code, _, err = run(capsys, "blob", f"oci:{tmp_path}", "sha256:nothex")
    assert code == 2 and "invalid digest" in err


def test_stdin_is_read_once_and_spooled_to_a_removed_file(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stdin_source, "_used", False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    class FakeStdin:
        buffer = io.BytesIO(b"x" * 3000)

    monkeypatch.setattr(sys, "stdin", FakeStdin)
    seen: list[bytes] = []

    def opener(ref: Any) -> Any:
        with open(ref.path, "rb") as f:
            seen.append(f.read())

        class Opened:
            reference = ref

        return Opened()

    ref = parse_reference("docker-archive:-")
    source = stdin_source.open_stdin_archive(ref, opener)
    assert seen == [b"x" * 3000] and source.reference == ref
    assert list(tmp_path.iterdir()) == []  # the spooled file's name is gone
    with pytest.raises(UsageError, match="already read"):
        stdin_source.open_stdin_archive(ref, opener)
