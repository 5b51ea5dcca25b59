"""The everyday verbs against the real loopback Distribution registry and every local source, with skopeo as the
independent oracle: ``manifest`` bytes = ``skopeo inspect --raw``, ``config`` = ``skopeo inspect --config --raw``,
``tags`` = ``skopeo list-tags``, ``digest`` = skopeo's Digest (and one HEAD request); ``blob`` verified (a corrupted
blob leaves no file, exit 3); ``referrers`` through the tag-schema fallback (Distribution 2.8 has no referrers
API); archives piped on stdin."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from harness.faultproxy import Corrupt, Respond

from ociinspect.cli import main

pytestmark = [pytest.mark.registry, pytest.mark.timeout(180)]

SINGLE = ("base", "app1", "zstd", "plain", "demo", "artifact")


def skopeo_out(skopeo: Any, *args: str) -> bytes:
    """skopeo's stdout as bytes (never the user's credentials: the harness's empty auth file)."""
    command = ["skopeo", *args[:1], "--authfile", str(skopeo.auth_file), *args[1:]]
    done = subprocess.run(command, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


def run_bytes(capsysbinary: pytest.CaptureFixture[bytes], *argv: str) -> tuple[int, bytes, str]:
    code = main(list(argv))
    out, err = capsysbinary.readouterr()
    return code, out, err.decode(errors="replace")


def reg(seeded: Any, repo_tag: str) -> str:
    return f"docker://{seeded.host}/{repo_tag}"


@pytest.mark.parametrize("name", SINGLE)
def test_manifest_and_config_equal_skopeo(
    name: str, seeded_registry: Any, skopeo: Any, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    ref = reg(seeded_registry, f"fixtures/{name}:latest")
    code, out, _ = run_bytes(capsysbinary, "manifest", ref)
    assert code == 0
    assert out == skopeo_out(skopeo, "inspect", "--tls-verify=false", "--raw", ref)
    if name != "artifact":  # skopeo --config refuses an artifact's empty config
        code, out, _ = run_bytes(capsysbinary, "config", ref)
        assert code == 0
        assert out == skopeo_out(skopeo, "inspect", "--tls-verify=false", "--config", "--raw", ref)


def test_index_platform_and_digest_of_a_multi_platform_image(
    seeded_registry: Any, skopeo: Any, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    ref = reg(seeded_registry, "fixtures/multi:latest")
    index_bytes = skopeo_out(skopeo, "inspect", "--tls-verify=false", "--raw", ref)
    code, out, _ = run_bytes(capsysbinary, "manifest", "--index", ref)
    assert code == 0 and out == index_bytes
    index = json.loads(index_bytes)
    for entry in index["manifests"]:
        p = entry.get("platform", {})
        if p.get("os") != "linux" or p.get("architecture") == "unknown":
            continue
        platform = f"linux/{p['architecture']}" + (f"/{p['variant']}" if p.get("variant") else "")
        child = f"docker://{seeded_registry.host}/fixtures/multi@{entry['digest']}"
        code, out, _ = run_bytes(capsysbinary, "manifest", "--platform", platform, ref)
        assert code == 0
        assert out == skopeo_out(skopeo, "inspect", "--tls-verify=false", "--raw", child)
        code, out, _ = run_bytes(capsysbinary, "config", "--platform", platform, ref)
        assert out == skopeo_out(skopeo, "inspect", "--tls-verify=false", "--config", "--raw", child)
        code, out, _ = run_bytes(capsysbinary, "digest", "--platform", platform, ref)
        assert code == 0 and out.decode().strip() == entry["digest"]
    # the digest REF names (the index's, the one to pin) is skopeo's
    skopeo_digest = skopeo_out(skopeo, "inspect", "--tls-verify=false", "--format", "{{.Digest}}", ref)
    code, out, _ = run_bytes(capsysbinary, "digest", ref)
    assert (
        code == 0
        and out.strip()
        == skopeo_digest.strip()
        == b"sha256:" + hashlib.sha256(index_bytes).hexdigest().encode()
    )


@pytest.mark.parametrize("repo_tag", ["fixtures/app1:latest", "fixtures/app1:v2s2", "fixtures/multi:latest"])
def test_digest_is_skopeos_in_one_head_request(
    repo_tag: str, seeded_registry: Any, skopeo: Any, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    ref = reg(seeded_registry, repo_tag)
    expected = skopeo_out(skopeo, "inspect", "--tls-verify=false", "--format", "{{.Digest}}", ref).strip()
    before = len(seeded_registry.access_log())
    code, out, _ = run_bytes(capsysbinary, "digest", ref, "--plain-http")
    seen = seeded_registry.access_log()[before:]
    assert code == 0 and out.strip() == expected
    repo = repo_tag.split(":")[0]
    assert [(e.method, e.uri) for e in seen] == [("HEAD", f"/v2/{repo}/manifests/{repo_tag.split(':')[1]}")]


def test_tags_equal_skopeo_list_tags(
    seeded_registry: Any, skopeo: Any, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    for repo in ("fixtures/app1", "fixtures/multi", "fixtures/base"):
        listed = json.loads(
            skopeo_out(skopeo, "list-tags", "--tls-verify=false", f"docker://{seeded_registry.host}/{repo}")
        )["Tags"]
        code, out, _ = run_bytes(capsysbinary, "tags", f"{seeded_registry.host}/{repo}", "-f", "json")
        assert code == 0 and json.loads(out) == listed
        code, out, _ = run_bytes(capsysbinary, "tags", f"docker://{seeded_registry.host}/{repo}")
        assert code == 0 and out.decode().splitlines() == listed


def test_repos_lists_the_catalog(seeded_registry: Any, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    catalog = requests.get(f"{seeded_registry.url}/v2/_catalog?n=1000", timeout=10).json()["repositories"]
    code, out, _ = run_bytes(capsysbinary, "repos", seeded_registry.host, "-f", "json")
    assert code == 0 and json.loads(out) == catalog and "fixtures/app1" in catalog


def test_repos_refused_by_a_token_registry(
    registry_token: Any, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """alice may pull but not list the catalog: one typed error with the hint, not an empty list."""
    code, out, err = run_bytes(capsysbinary, "repos", registry_token.host)
    assert code == 3 and out == b""
    assert "does not offer its catalog" in err and "hint:" in err and "ociinspect tags" in err


def blob_digests(seeded: Any, repo_tag: str) -> list[tuple[str, int]]:
    repo, tag = repo_tag.split(":")
    doc = requests.get(
        f"{seeded.url}/v2/{repo}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=10,
    ).json()
    return [(d["digest"], d["size"]) for d in [doc["config"], *doc["layers"]]]


def test_blob_streams_verified_bytes(
    seeded_registry: Any, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    ref = reg(seeded_registry, "fixtures/app1:latest")
    for digest, size in blob_digests(seeded_registry, "fixtures/app1:latest"):
        target = tmp_path / "blob.bin"
        code, out, _ = run_bytes(capsysbinary, "blob", ref, digest, "-o", str(target))
        assert code == 0 and out == b""
        data = target.read_bytes()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == digest and len(data) == size
        code, out, _ = run_bytes(capsysbinary, "blob", ref, digest)
        assert code == 0 and out == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blob.bin"]  # no temporary file left


def test_corrupted_blob_leaves_no_file_and_exits_3(
    fault_proxy: Any, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    digest, _ = max(blob_digests(fault_proxy.upstream_endpoint, "fixtures/app1:latest"), key=lambda d: d[1])
    fault_proxy.rules.add(Corrupt(), method="GET", path=f"/blobs/{digest}", times=None)
    target = tmp_path / "layer.tar.gz"
    code, _, err = run_bytes(
        capsysbinary, "blob", f"docker://{fault_proxy.host}/fixtures/app1:latest", digest, "-o", str(target)
    )
    assert code == 3 and "digest mismatch" in err
    assert list(tmp_path.iterdir()) == []  # neither FILE nor its temporary file


def push_referrer(seeded: Any, repo: str, subject_tag: str) -> tuple[str, dict[str, Any]]:
    """An SBOM-like artifact whose manifest has a ``subject``, pushed by plain HTTP PUTs (as oras does when the
    registry has no referrers API): its blobs, its manifest, and the ``sha256-<hex>`` fallback index."""
    base = seeded.url
    head = requests.head(
        f"{base}/v2/{repo}/manifests/{subject_tag}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=10,
    )
    subject: dict[str, Any] = {
        "mediaType": head.headers["Content-Type"],
        "digest": head.headers["Docker-Content-Digest"],
        "size": int(head.headers["Content-Length"]),
    }

    def put_blob(data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        start = requests.post(f"{base}/v2/{repo}/blobs/uploads/", timeout=10)
        location = requests.compat.urljoin(base, start.headers["Location"])
        sep = "&" if "?" in location else "?"
        done = requests.put(f"{location}{sep}digest={digest}", data=data, timeout=10)
        assert done.status_code == 201, done.text
        return digest

    empty, sbom = b"{}", b'{"spdxVersion": "SPDX-2.3"}'
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": put_blob(empty), "size": 2},
        "layers": [{"mediaType": "application/spdx+json", "digest": put_blob(sbom), "size": len(sbom)}],
        "subject": subject,
        "annotations": {"org.example.kind": "sbom"},
    }
    raw = json.dumps(manifest).encode()
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    ct = {"Content-Type": manifest["mediaType"]}
    assert (
        requests.put(f"{base}/v2/{repo}/manifests/{digest}", data=raw, headers=ct, timeout=10).status_code
        == 201
    )
    descriptor = {
        "mediaType": manifest["mediaType"],
        "digest": digest,
        "size": len(raw),
        "artifactType": "application/spdx+json",
        "annotations": {"org.example.kind": "sbom"},
    }
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [descriptor],
        }
    ).encode()
    fallback = "sha256-" + subject["digest"].split(":", 1)[1]
    ict = {"Content-Type": "application/vnd.oci.image.index.v1+json"}
    put = requests.put(f"{base}/v2/{repo}/manifests/{fallback}", data=index, headers=ict, timeout=10)
    assert put.status_code == 201, put.text
    return subject["digest"], descriptor


def test_referrers_through_the_tag_schema(
    seeded_registry: Any, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    subject, descriptor = push_referrer(seeded_registry, "fixtures/history", "latest")
    ref = reg(seeded_registry, "fixtures/history:latest")
    code, out, _ = run_bytes(capsysbinary, "referrers", ref, "-f", "json")
    assert code == 0 and json.loads(out) == [descriptor]
    code, out, _ = run_bytes(
        capsysbinary, "referrers", ref, "--artifact-type", "application/x-other", "-f", "json"
    )
    assert code == 0 and json.loads(out) == []
    code, out, _ = run_bytes(
        capsysbinary, "referrers", reg(seeded_registry, "fixtures/base:latest"), "-f", "json"
    )
    assert code == 0 and json.loads(out) == []  # neither an API nor a fallback tag: none
    code, out, _ = run_bytes(capsysbinary, "inspect", ref, "-f", "json", "--no-os")
    assert code == 0 and json.loads(out)["referrers"] == 1
    code, out, _ = run_bytes(capsysbinary, "inspect", ref, "--no-os")
    assert "Referrers:" in out.decode() and subject.startswith("sha256:")


def test_local_sources_equal_skopeo(
    fixture_images: Any, fixture_archives: Any, skopeo: Any, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    refs = [
        f"oci:{fixture_images['app1']}:latest",
        f"oci-archive:{fixture_archives.oci['app1']}:latest",
        f"docker-archive:{fixture_archives.docker['app1']}",
    ]
    for ref in refs:
        raw = skopeo_out(skopeo, "inspect", "--raw", ref)
        code, out, err = run_bytes(capsysbinary, "manifest", ref)
        assert code == 0, err
        code, config, _ = run_bytes(capsysbinary, "config", ref)
        assert code == 0 and config == skopeo_out(skopeo, "inspect", "--config", "--raw", ref)
        code, digest, _ = run_bytes(capsysbinary, "digest", ref)
        assert code == 0 and digest.strip().decode() == "sha256:" + hashlib.sha256(out).hexdigest()
        if not ref.startswith("docker-archive:"):
            assert out == raw, ref
            expected = skopeo_out(skopeo, "inspect", "--format", "{{.Digest}}", ref).strip()
            assert digest.strip() == expected, ref
        else:
            # both synthesize a Docker schema2 manifest from manifest.json: the same config and layers (digests,
            # sizes); skopeo labels the uncompressed layers ".tar.gzip", ours say ".tar" (so the bytes differ)
            ours, theirs = json.loads(out), json.loads(raw)
            assert ours["config"] == theirs["config"]
            assert [(d["digest"], d["size"]) for d in ours["layers"]] == [
                (d["digest"], d["size"]) for d in theirs["layers"]
            ]
            assert {d["mediaType"] for d in ours["layers"]} == {
                "application/vnd.docker.image.rootfs.diff.tar"
            }
    code, out, _ = run_bytes(capsysbinary, "referrers", refs[0])
    assert code == 2  # a registry feature
    code, out, _ = run_bytes(capsysbinary, "inspect", refs[0], "-f", "json", "--no-os")
    assert code == 0 and "referrers" not in json.loads(out)  # no count (and no request) for local images


def test_docker_archive_piped_on_stdin(fixture_archives: Any, fixture_images: Any, tmp_path: Path) -> None:
    archive = fixture_archives.docker["app1"]
    spool = tmp_path / "tmp"
    spool.mkdir()
    env = dict(os.environ, TMPDIR=str(spool))
    from_file = subprocess.run(
        [sys.executable, "-m", "ociinspect", "inspect", f"docker-archive:{archive}", "-f", "json", "--no-os"],
        capture_output=True,
        timeout=120,
        check=False,
        env=env,
    )
    with archive.open("rb") as stdin:
        piped = subprocess.run(
            [sys.executable, "-m", "ociinspect", "inspect", "docker-archive:-", "-f", "json", "--no-os"],
            stdin=stdin,
            capture_output=True,
            timeout=120,
            check=False,
            env=env,
        )
    assert from_file.returncode == 0 and piped.returncode == 0, piped.stderr
    a, b = json.loads(from_file.stdout), json.loads(piped.stdout)
    assert b["digest"] == a["digest"] and b["layers"] == a["layers"] and b["reference"] == "docker-archive:-"
    assert list(spool.iterdir()) == []  # the spooled copy is gone
    with (fixture_archives.oci["app1"]).open("rb") as stdin:
        piped = subprocess.run(
            [sys.executable, "-m", "ociinspect", "digest", "oci-archive:-:latest"],
            stdin=stdin,
            capture_output=True,
            timeout=120,
            check=False,
            env=env,
        )
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.decode().strip() == fixture_images.expected["app1"].manifest_digest
    assert list(spool.iterdir()) == []


def test_inspect_says_not_known_when_the_referrers_request_fails(
    fault_proxy: Any, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """A failing referrers request never fails inspect: the count is null (JSON) / "not known", with a warning."""
    fault_proxy.rules.add(Respond(500), path="/referrers/", times=None)
    ref = f"docker://{fault_proxy.host}/fixtures/app1:latest"
    code, out, err = run_bytes(capsysbinary, "inspect", ref, "-f", "json", "--no-os", "--retries", "0")
    doc = json.loads(out)
    assert code == 0 and doc["referrers"] is None and doc["digest"]
    assert "referrers not known" in err and "HTTP 500" in err
    code, out, _ = run_bytes(capsysbinary, "inspect", ref, "--no-os", "--retries", "0")
    assert code == 0 and "Referrers:" in out.decode() and "not known" in out.decode()
