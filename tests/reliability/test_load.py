"""Load under random faults (opt-in: ``pytest -m slow tests/reliability/test_load.py``).

A registry of its own holds 2,000 tags over 20 repositories (plus the seeds): tags pointing at a handful of
fixture images pushed by skopeo, one in ten pointing at a distinct manifest (the same image with an annotation,
so a digest of its own), and some tags of the multi-platform index. Everything goes through the fault proxy
adding a random fault to 5 % of the requests (5xx, 429 with and without Retry-After, resets, truncations, flipped
bytes, stalls longer and shorter than ``--timeout``, slow drips).

* ``inspect`` of all 2,000 refs in one CLI run: every ref is in the JSON list, in order, and is either exactly
  right (digest, compressed and uncompressed sizes of every layer) or an error entry — nothing lost, nothing
  wrong.
* ``audit scan`` of the whole registry (resumed when the walk stops), then ``audit report``: every tag is either
  read or listed in the errors, every image reported has exactly the size of the fixture it is, and a fault-free
  baseline audit finds exactly the expected images.

Each test prints its counts (what was right, what was reported, how long it took).
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from harness import seeding
from harness.endpoint import ProxyEndpoint, RegistryEndpoint
from harness.faultproxy import Corrupt, Drip, OneOf, Reset, Respond, Stall, Truncate
from harness.registry import start_registry

from fixtures.build import EXPECTED, ImageFacts
from ociinspect.model import mediatypes
from ociinspect.model.image import host_platform
from reliability.helpers import Isolated

pytestmark = [pytest.mark.slow, pytest.mark.registry, pytest.mark.timeout(1800)]

TAGS = 2000
REPOS = 20
FAULT_RATE = 0.05
SEEDS = ("base", "app1", "app2", "zstd", "plain", "history", "demo", "os-alpine", "multimember", "multi")
RANDOM_FAULTS = OneOf(
    (
        Respond(503),
        Respond(502),
        Respond(504),
        Respond(500),
        Respond(429, {"Retry-After": "0"}),
        Respond(429),
        Reset(after=2),
        Truncate(keep=2),
        Corrupt(),
        Stall(2.5),  # longer than --timeout 1: a Timeout error
        Stall(0.2),  # shorter: just slow
        Drip(64, 0.002),
    )
)


@dataclass(frozen=True)
class Tagged:
    """What one tag must show: the manifest ``inspect`` reports (the host platform's for an index), and facts."""

    repository: str
    tag: str
    name: str  # the fixture
    digest: str  # the tag's own manifest (the index for multi)
    image_digest: str  # the image manifest inspect reports
    facts: ImageFacts

    @property
    def repo_tag(self) -> str:
        return f"{self.repository}:{self.tag}"


@dataclass
class LoadRegistry:
    endpoint: RegistryEndpoint
    tags: list[Tagged]


def _host_child(facts: ImageFacts) -> ImageFacts:
    wanted = str(host_platform())
    return next(c for c in facts.children if c.platform in (wanted, wanted.removesuffix("/v8")))


def _blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


@pytest.fixture(scope="module")
def load_registry(
    tmp_path_factory: pytest.TempPathFactory, fixture_images: Any, skopeo: seeding.Skopeo
) -> Iterator[LoadRegistry]:
    """Seed with skopeo (the fixtures, to ``seed/<name>:latest``), then with plain HTTP: mount the blobs into
    ``load/r0..r19`` and PUT 2,000 tags — the fixture manifests' exact bytes, or one in ten an annotated
    variant (a distinct digest)."""
    registry = start_registry(tmp_path_factory.mktemp("load-registry"), "anon")
    try:
        endpoint = RegistryEndpoint(registry)
        for name in SEEDS:
            options = ["--all"] if name == "multi" else []
            skopeo.copy(f"oci:{fixture_images[name]}:latest", f"docker://{endpoint.ref(f'seed/{name}:latest')}",
                        *seeding.dest_options(), *options)  # fmt: skip
        tags = [
            Tagged(f"seed/{n}", "latest", n, EXPECTED[n].manifest_digest, _image_digest(n), _image_facts(n))
            for n in SEEDS
        ]
        session = requests.Session()
        for k in range(REPOS):
            for name in SEEDS:
                _mount(session, endpoint.url, f"load/r{k}", name, fixture_images[name])
        puts = []
        for i in range(TAGS):
            name = SEEDS[i % len(SEEDS)]
            repository, tag = f"load/r{i % REPOS}", f"t{i:04d}"
            facts = EXPECTED[name]
            data = _blob(fixture_images[name], facts.manifest_digest)
            if i % 10 == 3 and facts.media_type == mediatypes.OCI_MANIFEST:
                doc = json.loads(data)
                doc["annotations"] = {**doc.get("annotations", {}), "load.variant": str(i)}
                data = json.dumps(doc).encode()
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            image_digest = digest if name != "multi" else _host_child(facts).manifest_digest
            puts.append((repository, tag, data, facts.media_type))
            tags.append(Tagged(repository, tag, name, digest, image_digest, _image_facts(name)))
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda p: _put(endpoint.url, *p), puts))
        yield LoadRegistry(endpoint, tags)
    finally:
        registry.stop()


def _image_digest(name: str) -> str:
    facts = EXPECTED[name]
    return _host_child(facts).manifest_digest if facts.children else facts.manifest_digest


def _image_facts(name: str) -> ImageFacts:
    facts = EXPECTED[name]
    return _host_child(facts) if facts.children else facts


def _mount(session: requests.Session, url: str, repository: str, name: str, layout: Path) -> None:
    """Cross-repository mount of every blob (and child manifest) of fixture ``name`` into ``repository``."""
    facts = EXPECTED[name]
    for image in facts.children or (facts,):
        blobs = [image.config_digest, *(layer.digest for layer in image.layers)]
        for digest in blobs:
            r = session.post(
                f"{url}/v2/{repository}/blobs/uploads/?mount={digest}&from=seed/{name}", timeout=30
            )
            assert r.status_code == 201, (r.status_code, r.text)
        if facts.children:
            _put(
                url, repository, image.manifest_digest, _blob(layout, image.manifest_digest), image.media_type
            )


def _put(url: str, repository: str, reference: str, data: bytes, media_type: str) -> None:
    r = requests.put(
        f"{url}/v2/{repository}/manifests/{reference}",
        data=data,
        headers={"Content-Type": media_type},
        timeout=30,
    )
    assert r.status_code == 201, (r.status_code, r.text)


@pytest.fixture
def faulty(load_registry: LoadRegistry) -> Iterator[ProxyEndpoint]:
    proxy = ProxyEndpoint(load_registry.endpoint)
    proxy.start()
    proxy.rules.seed(7)
    proxy.rules.add(RANDOM_FAULTS, times=None, probability=FAULT_RATE)
    try:
        yield proxy
    finally:
        proxy.stop()


def _cli(*argv: str, env: dict[str, str], timeout: float = 1500) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ociinspect", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def _layers_of(facts: ImageFacts) -> list[tuple[str, int, int]]:
    return [(la.digest, la.size, la.uncompressed_size) for la in facts.layers]


def test_inspect_2000_images_through_random_faults(
    load_registry: LoadRegistry, faulty: Any, isolated: Isolated
) -> None:
    """Guards: under 5 % random faults, `inspect` of 2,000 refs loses none (one JSON entry per ref, in order)
    and gets none wrong (every success equals the fixture facts); failures are typed error entries."""
    refs = [faulty.ref(t.repo_tag) for t in load_registry.tags if t.repository.startswith("load/")]
    tagged = [t for t in load_registry.tags if t.repository.startswith("load/")]
    start = time.monotonic()
    done = _cli(
        "inspect", "--no-os", "-f", "json", "--timeout", "1", "--retries", "3", *refs, env=isolated.env
    )
    seconds = time.monotonic() - start
    docs = json.loads(done.stdout)
    assert len(docs) == len(refs) == TAGS, "an image was lost"
    errors: collections.Counter[str] = collections.Counter()
    right = 0
    for ref, expected, doc in zip(refs, tagged, docs, strict=True):
        assert doc["reference"].removeprefix("docker://") == ref
        if "error" in doc:
            assert doc["error"]["exit_code"] == 3, doc
            errors[doc["error"]["type"]] += 1
            continue
        got = (doc["digest"], doc["compressed_size"], doc["uncompressed_size"])
        want = (expected.image_digest, expected.facts.compressed_size, expected.facts.uncompressed_size)
        assert got == want, (ref, got, want)
        layers = [(la["digest"], la["size"], la["uncompressed_size"]) for la in doc["layers"]]
        assert layers == _layers_of(expected.facts), ref
        right += 1
    faults = collections.Counter(s.rule for s in faulty.requests if s.rule)
    print(
        f"\ninspect: {TAGS} refs in {seconds:.1f} s; {right} right, {sum(errors.values())} reported "
        f"({dict(errors)}), 0 lost, 0 wrong; {len(faulty.requests)} requests, {sum(faults.values())} faults "
        f"({dict(faults)}); exit {done.returncode}"
    )
    assert done.returncode == (4 if errors else 0)
    assert right >= 0.8 * TAGS, "retries should recover most faults"


def _audit(registry: str, db: Path, env: dict[str, str], run: str) -> tuple[dict[str, Any], int, float]:
    """``audit scan`` (resumed while it stops with exit 3, at most 5 times) and the JSON report."""
    start = time.monotonic()
    resumes = 0
    options = ["--db", str(db), "--run", run, "--no-os", "-q", "--timeout", "1", "--retries", "3"]
    done = _cli("audit", "scan", registry, *options, env=env)
    while done.returncode == 3 and resumes < 5:
        resumes += 1
        done = _cli("audit", "scan", registry, *options, "--resume", env=env)
    assert done.returncode in (0, 4), done.stderr[-3000:]
    seconds = time.monotonic() - start
    report = _cli("audit", "report", run, "--db", str(db), "-f", "json", "--top", "0", env=env)
    assert report.returncode == 0, report.stderr[-3000:]
    return json.loads(report.stdout), resumes, seconds


def _expected_images(tags: list[Tagged]) -> dict[str, tuple[int, int, int]]:
    """image digest -> (size: config + layers, uncompressed size, layers) for every runnable image the tags
    reach (every platform of an index: the audit expands them all)."""

    def figures(f: ImageFacts) -> tuple[int, int, int]:
        return (f.config_size or 0) + f.compressed_size, f.uncompressed_size, len(f.layers)

    out = {}
    for t in tags:
        out[t.image_digest] = figures(t.facts)
        for child in EXPECTED[t.name].children:
            if child.platform != "unknown/unknown":
                out[child.manifest_digest] = figures(child)
    return out


def _check_report(report: dict[str, Any], tags: list[Tagged], *, baseline: bool) -> dict[str, int]:
    """Nothing lost (every tag read or in the errors), nothing wrong (every image equals its fixture)."""
    expected = _expected_images(tags)
    failed_repos = {e["repository"] for e in report["errors"] if not e.get("tag")}  # e.g. tags/list failed
    in_failed_repos = sum(1 for t in tags if t.repository in failed_repos)
    assert report["tags"] + in_failed_repos == len(tags), ("a tag was lost", report["errors"][:5])
    failed = {(e["repository"], e["tag"]) for e in report["errors"] if e.get("tag")}
    failed |= {(t.repository, t.tag) for t in tags if t.repository in failed_repos}
    assert report["tags_read"] + len(failed) == len(tags), (report["tags_read"], len(failed))
    images = {i["digest"]: i for i in report["largest_images"] if i["kind"] == "image"}
    for digest, image in images.items():
        assert digest in expected, f"an image nobody tagged: {digest}"
        assert (image["size"], image["uncompressed_size"], image["layers"]) == expected[digest], image
    unread = {t.image_digest for t in tags} - set(images)
    for t in tags:  # an image missing from the report: every tag that reaches it failed
        if t.image_digest in unread:
            assert (t.repository, t.tag) in failed, t
    if baseline:
        assert not report["errors"] and set(images) == set(expected)
    return {"images": len(images), "failed_tags": len(failed), "failed_repos": len(failed_repos)}


def test_audit_of_the_registry_through_random_faults(
    load_registry: LoadRegistry, faulty: Any, isolated: Isolated, tmp_path: Path
) -> None:
    """Guards: an audit through 5 % random faults reports every tag as read or failed (none lost) and every image
    it reports with exactly its fixture's size — and agrees with a fault-free baseline audit where it read."""
    tags = load_registry.tags
    baseline, _, base_seconds = _audit(
        load_registry.endpoint.host, tmp_path / "base.sqlite3", isolated.env, "base"
    )
    base_counts = _check_report(baseline, tags, baseline=True)
    report, resumes, seconds = _audit(faulty.host, tmp_path / "faulty.sqlite3", isolated.env, "faulty")
    counts = _check_report(report, tags, baseline=False)
    faults = collections.Counter(s.rule for s in faulty.requests if s.rule)
    kinds = collections.Counter(e["type"] for e in report["errors"])
    print(
        f"\naudit baseline: {len(tags)} tags, {base_counts['images']} images in {base_seconds:.1f} s; "
        f"through faults: {seconds:.1f} s, {resumes} resume(s), {report['tags_read']} tags read, "
        f"{counts['failed_tags']} tags reported failed ({counts['failed_repos']} whole repositories; "
        f"{dict(kinds)}), 0 lost, 0 wrong; "
        f"{len(faulty.requests)} requests, {sum(faults.values())} faults ({dict(faults)})"
    )
    assert report["tags_read"] >= 0.8 * len(tags)
