"""Regression tests for bugs found while building the reliability harness (issue 7), one section per bug.

Each test failed before its fix (the commit that adds the test also fixes the bug).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest
import zstandard
from harness.endpoint import ProxyEndpoint
from harness.faultproxy import FaultProxy, Reset, Respond, Rewrite, Truncate

from fixtures.build import EXPECTED
from ociinspect import errors
from ociinspect.content import estargz, scan
from ociinspect.registry import HostSettings, RegistryClient, RegistrySettings
from ociinspect.session import Session
from reliability.helpers import run_cli, write_layout

BASE = EXPECTED["base"]
LAYER = BASE.layers[0]

# ------------------------------------------------ 1. a body that breaks off was not retried (registry client)
# docs/cli.md: "--retries N: retries after the first attempt on connection errors". A reset or a truncated body
# *after* the response headers (the usual shape of a flaky proxy or LB) raised ConnectionFailed at once, so one
# hiccup failed a CI job. Manifests, whole blobs and Range reads are now fetched again, like a reset before the
# answer; read timeouts still are not retried, and layer streams are not restarted.


@pytest.mark.registry
@pytest.mark.parametrize("fault", [Reset(after=2), Truncate(keep=2)], ids=["reset", "truncate"])
@pytest.mark.parametrize("call", ["manifest", "blob", "range"])
def test_body_broken_off_once_is_fetched_again(fault_proxy: Any, fault: Reset | Truncate, call: str) -> None:
    path = "/manifests/latest" if call == "manifest" else f"/blobs/{LAYER.digest}"
    fault_proxy.rules.add(fault, method="GET", path=path, times=1)
    settings = RegistrySettings(default=HostSettings(plain_http=True), retries=1, backoff=0.01)
    with RegistryClient(settings) as client:
        if call == "manifest":
            assert (
                client.get_manifest(fault_proxy.host, "fixtures/base", "latest").digest
                == BASE.manifest_digest
            )
        elif call == "blob":
            data = client.get_blob(fault_proxy.host, "fixtures/base", LAYER.digest, max_bytes=1 << 20)
            assert len(data) == LAYER.size
        else:
            tail, total = client.get_blob_range(fault_proxy.host, "fixtures/base", LAYER.digest, suffix=4)
            assert int.from_bytes(tail, "little") == LAYER.gzip_isize and total == LAYER.size
    assert sum(1 for s in fault_proxy.requests if path in s.target) == 2


# ------------------------------------- 2. JSON nested deeper than the recursion limit crashed (exit 70)
# json.loads raises RecursionError (not ValueError) for e.g. 100k '['. Seven places caught only ValueError, so a
# hostile registry (error body, manifest sniffing, tag/catalog page, token answer) or image (layout manifest
# without mediaType, docker-archive config, eStargz TOC) made ociinspect exit 70 "internal error" instead of 3.
# Found by tests/reliability/fuzz_targets.py (hostile_json_bytes).

DEEP = b"[" * 100_000


@pytest.mark.registry
@pytest.mark.parametrize(
    ("path", "status", "headers", "error"),
    [
        ("/manifests/latest", 404, {"Content-Type": "application/json"}, errors.RegistryNotFound),
        ("/manifests/latest", 200, {"Content-Type": "application/json"}, errors.InvalidImage),
        ("/tags/list", 200, {"Content-Type": "application/json"}, errors.RegistryError),
    ],
    ids=["error-body", "manifest-sniffing", "tag-page"],
)
def test_deep_json_from_a_registry_is_a_typed_error(
    fault_proxy: Any, path: str, status: int, headers: dict[str, str], error: type[Exception]
) -> None:
    fault_proxy.rules.add(Respond(status, headers, DEEP), method="GET", path=path, times=None)
    with Session(fault_proxy.settings) as session, pytest.raises(error):
        if path == "/tags/list":
            session.client.list_tags(fault_proxy.host, "fixtures/base")
        else:
            session.load(fault_proxy.ref("fixtures/base:latest"))


@pytest.mark.registry
def test_deep_json_from_a_token_service_is_an_auth_error(registry_token: Any) -> None:
    realm = FaultProxy(registry_token.issuer.url.removeprefix("http://")).start()
    proxy = ProxyEndpoint(registry_token)
    proxy.start()
    try:
        proxy.rules.add(
            Rewrite("WWW-Authenticate", re.escape(registry_token.issuer.url), realm.url), times=None
        )
        realm.rules.add(Respond(200, {"Content-Type": "application/json"}, DEEP), path="/token", times=None)
        with Session(proxy.settings) as session, pytest.raises(errors.AuthError, match="holds no token"):
            session.load(proxy.ref("public/base:latest"))
    finally:
        proxy.stop()
        realm.stop()


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_deep_json_manifest_in_a_layout_is_invalid_image(tmp_path: Path) -> None:
    (tmp_path / "blobs" / "sha256").mkdir(parents=True)
    (tmp_path / "blobs" / "sha256" / _sha(DEEP)[7:]).write_bytes(DEEP)
    (tmp_path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    entry = {"digest": _sha(DEEP), "size": len(DEEP)}  # no mediaType: the type is sniffed from the JSON
    (tmp_path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    with Session() as session, pytest.raises(errors.InvalidImage):
        session.load(f"oci:{tmp_path}")


def test_deep_json_config_in_a_docker_archive_is_invalid_image(tmp_path: Path) -> None:
    path = tmp_path / "deep.tar"
    manifest = json.dumps([{"Config": "cfg.json", "RepoTags": ["a:b"], "Layers": []}]).encode()
    with tarfile.open(path, "w") as tf:
        for name, data in (("manifest.json", manifest), ("cfg.json", DEEP)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    with Session() as session, pytest.raises(errors.InvalidImage):
        session.load(f"docker-archive:{path}")


def test_deep_json_estargz_toc_is_invalid_image() -> None:
    with pytest.raises(errors.InvalidImage):
        estargz.parse_toc(DEEP, "layer 0")


# --------------------------- 3. hostile docker-archive RepoTags crashed (exit 70) or failed as bad usage (exit 2)
# `RepoTags: true` (any non-list) raised TypeError while selecting an image or listing tags; a tag that does not
# parse as a docker reference (upper case, empty) in *any* entry made naming an image by repo:tag fail with
# InvalidReference (exit 2: "bad usage") although the user's reference was fine. Non-list RepoTags now count as
# no tags and unparsable tags are skipped. Found by the issue-7 fuzzers (docker_archives).


def _docker_archive(path: Path, entries: list[dict[str, Any]]) -> str:
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    )
    with tarfile.open(path, "w") as tf:
        for name, data in (("manifest.json", json.dumps(entries).encode()), ("cfg.json", config.encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return f"docker-archive:{path}"


@pytest.mark.parametrize("odd", [True, 7, "a:b", {"x": 1}, ["Upper:Case"], [""], [":"]])
def test_docker_archive_with_odd_repo_tags(tmp_path: Path, odd: Any) -> None:
    ref = _docker_archive(
        tmp_path / "odd.tar",
        [
            {"Config": "cfg.json", "RepoTags": odd, "Layers": []},
            {"Config": "cfg.json", "RepoTags": ["a:b"], "Layers": []},
        ],
    )
    run = run_cli("inspect", "--no-os", "-f", "json", ref + ":a:b")
    assert run.code == 0, run
    run = run_cli("inspect", "--no-os", "-f", "json", ref)
    assert run.code == 2 and "name one" in run.err, run  # two images: the user must choose (a usage error)


# ----------------------------------- 4. a malformed digest in a layout's index.json was a usage error (exit 2)
# `"digest": "sha256:../../etc/passwd"` in index.json raised InvalidReference from the digest parser: exit 2,
# "bad usage", for what is a corrupt layout (docs/cli.md: exit 3). Such entries are now malformed entries.


def test_layout_with_a_malformed_digest_is_invalid_image(tmp_path: Path) -> None:
    (tmp_path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    entry = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:../../etc/passwd"}
    (tmp_path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry | {"size": 2}]}))
    run = run_cli("inspect", "--no-os", "-f", "json", f"oci:{tmp_path}")
    assert run.code == 3 and run.error_type == "InvalidImage", run


# ----------------------------- 5. terminal escape injection: image metadata was printed raw to the terminal
# Labels, Cmd, history, tags and file names come from whoever built the image. Table/Markdown output and error
# lines printed them raw, so `\x1b]0;…\x07` (window title), `\x1b]52;c;…\x07` (clipboard), `\x1b[8m` (hidden
# text) or a newline followed by a fake "Digest:" line reached the user's terminal — the class of kubectl's
# CVE-2021-25743. Text formats and stderr lines now show control characters as \xNN; JSON keeps the exact data.

EVIL = "\x1b]0;PWNED\x07\x1b]52;c;ZWNobyBoaQ==\x07\x1b[8mhidden\x9b31m\u202eevil\r\nDigest:       sha256:fake"


def test_control_characters_from_an_image_never_reach_the_terminal(tmp_path: Path) -> None:
    config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": {"Cmd": [EVIL], "Labels": {EVIL: EVIL}, "Env": [f"A={EVIL}"], "User": EVIL},
        "history": [{"created_by": EVIL}],
    }
    path = tmp_path / "evil.tar"
    entries = [{"Config": "cfg.json", "RepoTags": ["a:b"], "Layers": []}]
    with tarfile.open(path, "w") as tf:
        for name, data in (("manifest.json", json.dumps(entries)), ("cfg.json", json.dumps(config))):
            info = tarfile.TarInfo(name)
            info.size = len(data.encode())
            tf.addfile(info, io.BytesIO(data.encode()))
    for fmt in ("table", "markdown"):
        run = run_cli("inspect", "--no-os", "-f", fmt, f"docker-archive:{path}")
        assert run.code == 0, run
        text = run.out + run.err
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]", text), repr(text)
        # Markdown escapes the backslash of the \xNN form once more (it renders as \x1b): compare as rendered
        shown = text.replace("\\\\", "\\") if fmt == "markdown" else text
        assert "\\x1b]0;PWNED\\x07" in shown and "sha256:fake" in shown
        forged = [line for line in run.out.splitlines() if "sha256:fake" in line and "Digest" in line[:12]]
        assert not forged, forged  # the newline in the data did not start a line of its own
    run = run_cli("inspect", "--no-os", "-f", "json", f"docker-archive:{path}")
    assert run.doc["cmd"] == [EVIL]  # JSON carries the exact value (escaped by JSON itself)
    bad = _docker_archive(
        tmp_path / "two.tar", [*entries, {"Config": "cfg.json", "RepoTags": [EVIL], "Layers": []}]
    )
    run = run_cli("inspect", "--no-os", bad)  # the error line quotes the archive's tags
    assert run.code == 2 and "\\x1b]0;PWNED" in run.err, run
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", run.err.replace("\n", "")), repr(run.err)


# ------------------------------------------- 6. a negative tar entry size gave negative waste/content numbers
# GNU base-256 numbers can be negative. tarfile accepts a directory whose size field is -10**9 (it does not skip
# data for directories), and ociinspect summed it: `waste` reported a layer content_size of -999999997 bytes.
# A negative size is now a corrupt layer (InvalidImage), as in Go's archive/tar. Found by the tar-header fuzzer.


def _tar_with_negative_dir_size() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        directory = tarfile.TarInfo("etc/")
        directory.type = tarfile.DIRTYPE
        tf.addfile(directory)
        info = tarfile.TarInfo("etc/b")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
    data = bytearray(buf.getvalue())
    data[124:136] = b"\xff" + ((-(10**9)) % (1 << 88)).to_bytes(11, "big")  # base-256, negative
    data[148:156] = b" " * 8
    data[148:156] = b"%06o\0 " % sum(data[:512])
    return bytes(data)


def test_negative_tar_entry_size_is_invalid_image(tmp_path: Path) -> None:
    tar = _tar_with_negative_dir_size()
    with pytest.raises(errors.InvalidImage, match="negative size"):
        scan.scan_tar_stream(iter([tar]), what="layer 0")
    layer = gzip.compress(tar, mtime=0)
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [_sha(tar)]}}
    )
    blobs = tmp_path / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for data in (layer, config.encode()):
        (blobs / _sha(data)[7:]).write_bytes(data)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _sha(config.encode()),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _sha(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    (blobs / _sha(manifest)[7:]).write_bytes(manifest)
    entry = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": _sha(manifest),
        "size": len(manifest),
    }
    (tmp_path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    (tmp_path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    run = run_cli("waste", "--no-cache", "-f", "json", f"oci:{tmp_path}")
    assert run.code == 3 and "negative size" in run.err, run


# ------------------------------- 7. a small zstd bomb made a cheap `inspect` inflate gigabytes (CPU DoS in CI)
# A layer whose cheap figure cannot be trusted (zstd frame without a content size, multi-member gzip) is streamed
# when it is at most 1 MiB — with no limit on what it inflates to. zstd compresses zeros 32768:1, so a 1 MiB layer
# is 32 GiB: `ociinspect inspect` (default mode, no --exact) spent ~7 s per 4 GiB, i.e. about a minute per such
# layer. Streaming in cheap mode now stops at 256 MiB and reports the size unknown ("use --exact").


def test_small_bomb_layer_is_unknown_in_cheap_mode_not_minutes_of_cpu(tmp_path: Path) -> None:
    out = io.BytesIO()
    with zstandard.ZstdCompressor(level=3, write_content_size=False).stream_writer(out, closefd=False) as w:
        zeros = b"\0" * (16 << 20)
        for _ in range(64):
            w.write(zeros)
    bomb = out.getvalue() * 4  # 4 frames of 1 GiB of zeros: 4 GiB from ~130 KB
    layout = write_layout(tmp_path, layers=[bomb])
    run = run_cli("inspect", "--no-os", "-f", "json", f"oci:{layout}")
    assert run.code == 0, run
    (layer,) = run.doc["layers"]
    assert layer["uncompressed_size"] is None and layer["uncompressed_size_source"] == "unknown", layer
    assert "--exact" in layer["uncompressed_size_note"]
    assert run.seconds < 4, run.seconds  # ~0.5 s for 256 MiB; 7+ s before the fix
