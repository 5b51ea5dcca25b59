"""Issue 14, target 4: 50 refs to one image in one session cost 50 manifest requests plus one read of each
distinct blob (the real Distribution registry's access log counts them), and a digest held by two repositories
is asked of each (no cross-repository answer)."""

from __future__ import annotations

import collections
import json
import shutil
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from harness import seeding
from harness.registry import AccessEntry, RunningRegistry, start_registry

from ociinspect.cli import main
from ociinspect.image.loader import LoadOptions
from ociinspect.session import Session

pytestmark = [pytest.mark.registry, pytest.mark.timeout(180)]

TAGS = [f"t{i:02d}" for i in range(50)]


@pytest.fixture(scope="module")
def many(
    tmp_path_factory: pytest.TempPathFactory, fixture_images: Any, skopeo: seeding.Skopeo
) -> Iterator[RunningRegistry]:
    """A registry of its own (a clean access log) holding the demo image as ``many/demo:t00..t49`` and as
    ``other/demo:latest`` (the same blobs in a second repository)."""
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry not installed: run the README's test command, which installs it")
    registry = start_registry(tmp_path_factory.mktemp("many-registry"), "anon", access_log=True)
    try:
        layout = f"oci:{fixture_images['demo']}:latest"
        for dest in ("many/demo:t00", "other/demo:latest"):
            skopeo.copy(layout, f"docker://{registry.host}/{dest}", *seeding.dest_options())
        accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
        get = urllib.request.Request(f"{registry.url}/v2/many/demo/manifests/t00", headers=accept)
        with urllib.request.urlopen(get, timeout=30) as r:
            body, content_type = r.read(), r.headers["Content-Type"]
        for tag in TAGS[1:]:
            put = urllib.request.Request(
                f"{registry.url}/v2/many/demo/manifests/{tag}",
                data=body,
                method="PUT",
                headers={"Content-Type": content_type},
            )
            urllib.request.urlopen(put, timeout=30).close()
        yield registry
    finally:
        registry.stop()


def _demo(fixture_images: Any) -> tuple[str, list[tuple[str, int]]]:
    """The demo image's config digest and (layer digest, size) list, from its layout."""
    layout = fixture_images["demo"]
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"].split(":", 1)[1]
    manifest = json.loads((layout / "blobs" / "sha256" / digest).read_text())
    return manifest["config"]["digest"], [(x["digest"], x["size"]) for x in manifest["layers"]]


def _requests(registry: RunningRegistry, before: int) -> list[AccessEntry]:
    """The access log's lines after the first ``before``.  Distribution writes a line once it has sent the
    response, which can be a moment after the client has read it: read until two reads 0.2 s apart agree
    (at most ~5 s)."""
    entries = registry.access_log()[before:]
    for _ in range(25):
        time.sleep(0.2)
        again = registry.access_log()[before:]
        if len(again) == len(entries):
            break
        entries = again
    # 404s only where inspect expects them: no referrers API, no sha256-<hex> fallback tag
    assert all(
        200 <= e.status < 300 or "referrers" in e.uri or "/manifests/sha256-" in e.uri for e in entries
    )
    return entries


def test_fifty_refs_cost_fifty_manifests_and_each_blob_once(
    many: RunningRegistry, fixture_images: Any
) -> None:
    config, layers = _demo(fixture_images)
    # the blob reads of one image: its config, and per gzip layer the 64 KiB head and 8-byte trailer, or the
    # whole blob in one range read when it is ≤ 64 KiB (docs/sizes.md)
    expected_blobs = collections.Counter({config: 1})
    for digest, size in layers:
        expected_blobs[digest] = 2 if size > 64 * 1024 else 1
    refs = [f"docker://{many.host}/many/demo:{tag}" for tag in TAGS]
    before = len(many.access_log())
    with Session(plain_http=True) as session:
        results = session.load_many(refs, LoadOptions(), workers=8)
    assert [r.error for r in results] == [None] * 50
    images = [r.images[0] for r in results]
    assert [str(i.reference) for i in images] == refs
    assert all(i.layers == images[0].layers and i.config == images[0].config for i in images)
    assert all(layer.uncompressed.source == "trailer" for layer in images[0].layers)
    entries = _requests(many, before)
    manifests = [e.uri for e in entries if "/manifests/" in e.uri]
    blobs = collections.Counter(e.uri.rsplit("/", 1)[1] for e in entries if "/blobs/" in e.uri)
    assert sorted(manifests) == [f"/v2/many/demo/manifests/{tag}" for tag in TAGS]
    assert blobs == expected_blobs  # old code: 50 times each
    assert {e.uri for e in entries} - set(manifests) - {f"/v2/many/demo/blobs/{d}" for d in blobs} <= {"/v2/"}


def test_the_cli_reads_each_blob_once_too(
    many: RunningRegistry, fixture_images: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole ``inspect`` (base OS found from the base layer with an empty store, referrers counted): the
    base layer's OS files are read once for all 50 refs, not once per ref."""
    config, layers = _demo(fixture_images)
    refs = [f"docker://{many.host}/many/demo:{tag}" for tag in TAGS]
    before = len(many.access_log())
    out = tmp_path / "out.json"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # an empty store
    code = main(["inspect", "--plain-http", "-f", "json", "-o", str(out), *refs])
    assert code == 0
    docs = json.loads(out.read_text())
    assert len(docs) == 50 and len({json.dumps({**d, "reference": None}, sort_keys=True) for d in docs}) == 1
    entries = _requests(many, before)
    blobs = collections.Counter(e.uri.rsplit("/", 1)[1] for e in entries if "/blobs/" in e.uri)
    assert blobs[config] == 1
    assert all(blobs[d] <= 3 for d, _ in layers)  # size reads (≤ 2) + the base layer's OS files (1)
    assert sum(1 for e in entries if "/manifests/t" in e.uri) == 50


def test_two_repositories_holding_a_digest_are_each_asked(many: RunningRegistry, fixture_images: Any) -> None:
    config, layers = _demo(fixture_images)
    before = len(many.access_log())
    with Session(plain_http=True) as session:
        a = session.load(f"docker://{many.host}/many/demo:t00")
        b = session.load(f"docker://{many.host}/other/demo:latest")
        again = session.load(f"docker://{many.host}/other/demo:latest")
    assert a.layers == b.layers == again.layers
    entries = _requests(many, before)
    for repository in ("many/demo", "other/demo"):
        asked = collections.Counter(
            e.uri.rsplit("/", 1)[1] for e in entries if e.uri.startswith(f"/v2/{repository}/blobs/")
        )
        assert asked[config] == 1, repository  # each repository served its own config, once
        assert set(asked) == {config, *(d for d, _ in layers)}, repository
