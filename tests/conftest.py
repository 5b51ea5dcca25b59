"""Shared pytest fixtures: fixture images, real Distribution registries (4 modes), archives, fault proxy.

Session-scoped: ``fixture_images``, ``fixture_archives``, ``registry_anon``, ``registry_basic``,
``registry_tls``, ``registry_token``, ``seeded_registry``. Function-scoped: ``fault_proxy``, ``cdn``.
Everything listens on 127.0.0.1 only and every process started here is stopped by its own PID.
See ``tests/harness/README.md`` for what is in each registry.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
for _path in (str(REPO_ROOT), str(TESTS_DIR)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from harness import seeding  # noqa: E402
from harness.endpoint import ProxyEndpoint, RegistryEndpoint  # noqa: E402
from harness.faultproxy import FaultProxy, start_cdn  # noqa: E402
from harness.registry import RunningRegistry, start_registry  # noqa: E402

from fixtures.build import EXPECTED, ImageFacts, build_all  # noqa: E402

MISSING_REGISTRY = "docker-registry not installed: run the README's test command, which installs it"
MISSING_SKOPEO = "skopeo not installed: run the README's test command, which installs it"

# Images pushed by skopeo to the anonymous registry as fixtures/<name>:latest.
SHARING_IMAGES = ("app3", "base2", "rebased", "recompressed")
OS_IMAGES = ("os-ubuntu", "os-alpine", "os-fedora", "os-distroless", "os-scratch")
SEEDED_LATEST = (
    "base",
    "app1",
    "app2",
    "history",
    "zstd",
    "plain",
    "multimember",
    "demo",
    *SHARING_IMAGES,
    *OS_IMAGES,
)
# Archives: docker-archive cannot hold zstd layers or artifacts (skopeo refuses to convert them).
DOCKER_ARCHIVE_IMAGES = (
    "base",
    "app1",
    "app2",
    "history",
    "plain",
    "multimember",
    "multi",
    "demo",
    *SHARING_IMAGES,
    *OS_IMAGES,
)
OCI_ARCHIVE_IMAGES = (*DOCKER_ARCHIVE_IMAGES, "zstd", "artifact")


def _require(*tools: str) -> None:
    reasons = {"docker-registry": MISSING_REGISTRY, "skopeo": MISSING_SKOPEO}
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(reasons[tool])


class FixtureImages(dict[str, Path]):
    """name -> OCI layout directory (``"all"`` included); ``.expected`` = ``fixtures.build.EXPECTED``."""

    expected: dict[str, ImageFacts] = EXPECTED


@dataclass
class FixtureArchives:
    """Archives written by skopeo from the layouts: ``docker[name]`` (docker-archive, repo tag
    ``fixtures/<name>:latest``) and ``oci[name]`` (oci-archive, tag ``latest``; ``multi`` with --all).
    ``skipped`` says which images have no archive of a kind and why. skopeo rewrites on the way: docker-archive
    layers are stored uncompressed (``<diff_id>.tar``, new digests), and the oci-archive of ``plain`` has
    its uncompressed layer gzipped (new layer and manifest digests, same diff_id); every other oci-archive
    keeps the layout's digests."""

    docker: dict[str, Path] = field(default_factory=dict)
    oci: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="session")
def harness_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("harness")


@pytest.fixture(scope="session")
def fixture_images(tmp_path_factory: pytest.TempPathFactory) -> FixtureImages:
    return FixtureImages(build_all(tmp_path_factory.mktemp("images")))


@pytest.fixture(scope="session")
def skopeo(harness_dir: Path) -> seeding.Skopeo:
    _require("skopeo")
    return seeding.Skopeo(harness_dir / "skopeo")


@pytest.fixture(scope="session")
def fixture_archives(
    fixture_images: FixtureImages, skopeo: seeding.Skopeo, tmp_path_factory: pytest.TempPathFactory
) -> FixtureArchives:
    out = tmp_path_factory.mktemp("archives")
    archives = FixtureArchives()
    for name in DOCKER_ARCHIVE_IMAGES:
        path = out / f"{name}.docker.tar"
        skopeo.copy(f"oci:{fixture_images[name]}:latest", f"docker-archive:{path}:fixtures/{name}:latest")
        archives.docker[name] = path
    for name in OCI_ARCHIVE_IMAGES:
        path = out / f"{name}.oci.tar"
        options = ["--all"] if name == "multi" else []
        skopeo.copy(f"oci:{fixture_images[name]}:latest", f"oci-archive:{path}:latest", *options)
        archives.oci[name] = path
    archives.skipped = {
        "docker:zstd": "skopeo: zstd compression is not supported for docker images",
        "docker:artifact": "skopeo: unsupported image-specific operation on artifact (empty config)",
        "docker:multi": "docker-archive holds one platform: the linux/amd64 image of the index",
    }
    return archives


@contextlib.contextmanager
def _running(harness_dir: Path, mode: str) -> Iterator[RunningRegistry]:
    _require("docker-registry")
    registry = start_registry(harness_dir / mode, mode, access_log=True)
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture(scope="session")
def registry_anon(harness_dir: Path) -> Iterator[RegistryEndpoint]:
    """Anonymous registry, empty (``seeded_registry`` is the same registry with images in it)."""
    with _running(harness_dir, "anon") as registry:
        yield RegistryEndpoint(registry)


@pytest.fixture(scope="session")
def registry_basic(
    harness_dir: Path, fixture_images: FixtureImages, skopeo: seeding.Skopeo
) -> Iterator[RegistryEndpoint]:
    """htpasswd (bcrypt) registry, user testuser/testpass, holding ``private/app1:latest``."""
    with _running(harness_dir, "basic") as registry:
        endpoint = RegistryEndpoint(registry)
        creds = (registry.username or "", registry.password or "")
        _push(
            skopeo, endpoint, fixture_images, "app1", "private/app1:latest", seeding.dest_options(creds=creds)
        )
        yield endpoint


@pytest.fixture(scope="session")
def registry_tls(
    harness_dir: Path, fixture_images: FixtureImages, skopeo: seeding.Skopeo
) -> Iterator[RegistryEndpoint]:
    """TLS registry (test CA in ``.ca_file``), anonymous, holding ``secure/app1:latest``."""
    with _running(harness_dir, "tls") as registry:
        endpoint = RegistryEndpoint(registry)
        assert registry.ca_file is not None
        cert_dir = seeding.cert_dir_for(registry.ca_file, registry.workdir)
        options = seeding.dest_options(tls_verify=True, cert_dir=cert_dir)
        _push(skopeo, endpoint, fixture_images, "app1", "secure/app1:latest", options)
        yield endpoint


@pytest.fixture(scope="session")
def registry_token(
    harness_dir: Path, fixture_images: FixtureImages, skopeo: seeding.Skopeo
) -> Iterator[RegistryEndpoint]:
    """Token-auth registry with its issuer (``.issuer``). ``.username``/``.password`` = alice/alicepass (pull
    on team/* and public/*); "pusher"/"pushpass" may push anywhere; anonymous clients may pull public/*.
    Holds team/app1:latest, team/app2:latest and public/base:latest."""
    with _running(harness_dir, "token") as registry:
        registry.username, registry.password = "alice", "alicepass"
        endpoint = RegistryEndpoint(registry)
        options = seeding.dest_options(creds=("pusher", "pushpass"))
        for name, repo_tag in (
            ("app1", "team/app1:latest"),
            ("app2", "team/app2:latest"),
            ("base", "public/base:latest"),
        ):
            _push(skopeo, endpoint, fixture_images, name, repo_tag, options)
        assert registry.issuer is not None
        registry.issuer.clear()  # tests see only their own token requests
        yield endpoint


def _push(
    skopeo: seeding.Skopeo,
    endpoint: RegistryEndpoint,
    images: FixtureImages,
    name: str,
    repo_tag: str,
    options: list[str],
) -> None:
    skopeo.copy(f"oci:{images[name]}:latest", f"docker://{endpoint.ref(repo_tag)}", *options)
    endpoint.refs[repo_tag] = endpoint.ref(repo_tag)


@pytest.fixture(scope="session")
def seeded_registry(
    registry_anon: RegistryEndpoint, fixture_images: FixtureImages, skopeo: seeding.Skopeo
) -> RegistryEndpoint:
    """The anonymous registry with every fixture pushed (``refs``: "repo:tag" -> "HOST/repo:tag"):

    * skopeo: ``fixtures/<name>:latest`` for base, app1, app2, history, zstd, plain, multimember, demo;
      ``fixtures/multi:latest`` (--all: the OCI index with the attestation entry);
      ``fixtures/app1:v2s2`` (--format v2s2); ``fixtures/multi:v2s2`` (--all --format v2s2, made from the
      ``multi-noattest`` layout because skopeo cannot convert the in-toto attestation layer);
    * oras-py: ``fixtures/artifact:latest`` (blobs via ``upload_blob``, the exact manifest bytes via PUT).

    ``digests`` holds what the registry serves for each ref (v2s2 refs differ from ``EXPECTED``).
    """
    endpoint = RegistryEndpoint(registry_anon.registry)
    keep, convert = seeding.dest_options(), seeding.dest_options(preserve_digests=False)
    jobs = [(name, f"fixtures/{name}:latest", keep) for name in SEEDED_LATEST]
    jobs += [
        ("multi", "fixtures/multi:latest", [*keep, "--all"]),
        ("app1", "fixtures/app1:v2s2", [*convert, "--format", "v2s2"]),
        ("multi-noattest", "fixtures/multi:v2s2", [*convert, "--all", "--format", "v2s2"]),
    ]
    for name, repo_tag, options in jobs:
        _push(skopeo, endpoint, fixture_images, name, repo_tag, options)
    artifact = EXPECTED["artifact"].manifest_digest
    seeding.oras_push_manifest(
        endpoint.host, "fixtures/artifact:latest", fixture_images["artifact"], artifact
    )
    endpoint.refs["fixtures/artifact:latest"] = endpoint.ref("fixtures/artifact:latest")
    for repo_tag in endpoint.refs:
        endpoint.digests[repo_tag] = seeding.served_digest(endpoint.url, *seeding.split_ref(repo_tag))
    return endpoint


@pytest.fixture
def fault_proxy(seeded_registry: RegistryEndpoint) -> Iterator[ProxyEndpoint]:
    """A fresh fault-injecting proxy in front of ``seeded_registry`` (no rules, empty request log);
    stopped, rules cleared, after the test."""
    proxy = ProxyEndpoint(seeded_registry).start()
    try:
        yield proxy
    finally:
        proxy.clear()
        proxy.stop()


@pytest.fixture
def cdn(seeded_registry: RegistryEndpoint) -> Iterator[FaultProxy]:
    """A second loopback server ("CDN") serving the seeded registry's content and recording what it
    received; point a ``Redirect(cdn.url + "{target}")`` rule at it."""
    server = start_cdn(seeded_registry.host)
    try:
        yield server
    finally:
        server.stop()
