"""``ociinspect waste`` straight from a real Distribution registry (images pushed by skopeo): the same numbers
as from the layout, eStargz indexed with Range requests only, a warm cache that fetches no blob, and no
credential in the cache."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from waste_fixtures import WASTE_LAYERS, estargz_layer, gzip_layer, write_oci_layout

from ociinspect.cli import main

pytestmark = [pytest.mark.registry, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def pushed(registry_anon: Any, skopeo: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from harness import seeding

    root = tmp_path_factory.mktemp("waste-registry")
    layouts = {
        "gzip": write_oci_layout(root / "gzip", [gzip_layer(s) for s in WASTE_LAYERS]),
        "estargz": write_oci_layout(root / "estargz", [estargz_layer(s) for s in WASTE_LAYERS]),
    }
    refs = {}
    for name, layout in layouts.items():
        target = registry_anon.ref(f"waste/{name}:latest")
        skopeo.copy(layout, f"docker://{target}", *seeding.dest_options())
        refs[name] = target
    return refs


def waste(capsys: pytest.CaptureFixture[str], ref: str, *extra: str) -> dict[str, Any]:
    code = main(["waste", ref, "--plain-http", "-f", "json", *extra])
    out, err = capsys.readouterr()
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


def blob_gets(registry: Any, since: int) -> list[Any]:
    return [e for e in registry.access_log()[since:] if e.method == "GET" and "/blobs/" in e.uri]


def test_streamed_from_the_registry(
    pushed: dict[str, str], registry_anon: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    before = len(registry_anon.access_log())
    doc = waste(capsys, pushed["gzip"], "--cache-dir", str(cache))
    assert (doc["wasted_bytes"], doc["efficiency"], doc["size_bytes"]) == (1400, 2950 / 4250, 3850)
    assert all(x["index_source"] == "stream" and x["diff_id_verified"] for x in doc["layers"])
    gets = blob_gets(registry_anon, before)
    assert sum(1 for e in gets if e.status == 200) == 5  # config + 4 layers, each once
    # warm cache: manifest and config only
    before = len(registry_anon.access_log())
    again = waste(capsys, pushed["gzip"], "--cache-dir", str(cache))
    assert all(x["from_cache"] for x in again["layers"]) and again["wasted_bytes"] == 1400
    assert len(blob_gets(registry_anon, before)) == 1  # the config blob


def test_estargz_with_range_requests_only(
    pushed: dict[str, str], registry_anon: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    before = len(registry_anon.access_log())
    doc = waste(capsys, pushed["estargz"], "--no-cache")
    assert {x["index_source"] for x in doc["layers"]} == {"estargz-toc"}
    assert (doc["wasted_bytes"], doc["efficiency"], doc["duplicate_wasted_bytes"]) == (
        1400,
        2950 / 4250,
        1300,
    )
    layer_digests = {x["digest"] for x in doc["layers"]}
    layer_gets = [e for e in blob_gets(registry_anon, before) if e.uri.rsplit("/", 1)[-1] in layer_digests]
    assert len(layer_gets) == 8 and {e.status for e in layer_gets} == {206}  # footer + TOC per layer


def test_no_credentials_in_the_cache(registry_basic: Any, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    ref = f"{registry_basic.host}/private/app1:latest"
    done = subprocess.run(
        [sys.executable, "-m", "ociinspect", "waste", ref, "-u", registry_basic.username, "--password-stdin",
         "--cache-dir", str(cache), "-f", "json"],
        input=registry_basic.password + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["layers"]
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        for secret in (registry_basic.password, registry_basic.username, registry_basic.host, "private/app1"):
            assert secret.encode() not in data, (path, secret)
