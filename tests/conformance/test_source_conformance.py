"""Every source holds the same invariants (tests/conformance/validate.py, after go-containerregistry's
``validate.Image``): the registry (real loopback Distribution, images pushed by skopeo), OCI layout, oci-archive,
docker-archive, the in-memory source and the audit's repository source; plus the real-world corpus' valid images.
The validator itself is shown to catch sources that lie."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ociinspect.errors import DigestMismatch, NotFound, RangeNotSupported
from ociinspect.session import Session
from ociinspect.sources.memory import MemorySource
from tests.conformance.validate import ABSENT, Checked, ConformanceError, validate_source
from tests.corpus import corpus_path

#: fixture images covering an index with an attestation, zstd, uncompressed, multi-member gzip and empty layers
NAMES = ("app1", "multi", "zstd", "plain", "multimember", "history")
DOCKER_NAMES = ("app1", "plain", "multimember", "history")  # skopeo writes no docker-archive of multi or zstd


def validated(ref: str, session: Session | None = None, **kw: Any) -> Checked:
    with contextlib.ExitStack() as stack:
        s = session or stack.enter_context(Session())
        src = stack.enter_context(s.source(ref))
        return validate_source(src, **kw)


def memory_from_layout(layout: Path, **kw: Any) -> MemorySource:
    """Every blob of an OCI layout held in memory, tag ``latest`` → the index.json entry tagged latest."""
    blobs = {f"sha256:{p.name}": p.read_bytes() for p in (layout / "blobs" / "sha256").iterdir()}
    index = json.loads((layout / "index.json").read_bytes())
    tags = {
        m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
        for m in index["manifests"]
        if "org.opencontainers.image.ref.name" in m.get("annotations", {})
    }
    return MemorySource(blobs, tags=tags, **kw)


# ------------------------------------------------------------------------------------ local sources (no registry)


@pytest.mark.parametrize("name", NAMES)
def test_layout(name: str, fixture_images: Any) -> None:
    checked = validated(f"oci:{fixture_images[name]}:latest")
    facts = fixture_images.expected[name]
    assert checked.manifests[0] == facts.manifest_digest
    assert checked.diff_ids >= (2 if name == "multi" else len(facts.layers))
    assert checked.ranges > 0 and not checked.ranges_refused


@pytest.mark.parametrize("name", NAMES)
def test_memory(name: str, fixture_images: Any) -> None:
    src = memory_from_layout(fixture_images[name])
    checked = validate_source(src)
    assert checked.manifests[0] == fixture_images.expected[name].manifest_digest
    assert src.reads.blobs == checked.blobs  # each blob read whole once, in the order listed
    assert src.reads.streams == checked.blobs and src.reads.streamed_bytes == src.reads.blob_bytes


def test_memory_refusing_range(fixture_images: Any) -> None:
    src = memory_from_layout(fixture_images["app1"], ranges=False)
    with pytest.raises(ConformanceError, match="Range 0-0 refused"):
        validate_source(src)
    checked = validate_source(src, ranges_optional=True)
    assert checked.ranges == 0 and checked.ranges_refused == checked.blobs and src.reads.ranges == []


DIVE = ("wagoodman__dive", ".data")
STEREO = ("anchore__stereoscope", "pkg", "image", "oci", "testdata")
GGCR = ("google__go-containerregistry", "pkg", "v1")


@pytest.mark.parametrize(
    ("ref", "manifests", "blobs", "diff_ids"),
    [
        *[
            (("oci-archive", *DIVE, f"test-oci-{v}-image.tar"), 1, 2, 1)
            for v in ("uncompressed", "gzip", "zstd")
        ],
        (("oci-archive", *DIVE, "test-oci-estargz-image.tar"), 1, 2, 1),
        (("oci", *STEREO, "valid_oci_dir"), 1, 2, 1),
        (("oci", *STEREO, "multiplatform_oci_dir"), 3, 4, 2),  # the index and two images
        (("docker-archive", *GGCR, "tarball", "testdata", "test_image_1.tar"), 1, 2, 1),
        (("docker-archive", *GGCR, "mutate", "testdata", "whiteout_dir.tar"), 1, 5, 4),
    ],
    ids=lambda v: v[-1] if isinstance(v, tuple) else None,
)
def test_corpus(ref: tuple[str, ...], manifests: int, blobs: int, diff_ids: int) -> None:
    transport, *parts = ref
    checked = validated(f"{transport}:{corpus_path(*parts)}")
    assert (len(checked.manifests), len(checked.blobs), checked.diff_ids) == (manifests, blobs, diff_ids)
    assert checked.ranges > 0 and checked.absent_checks == 4


# ------------------------------------------------------------------- registry, archives and the audit's source


@pytest.fixture(scope="module")
def session(seeded_registry: Any) -> Iterator[Session]:
    with Session(seeded_registry.settings) as s:
        yield s


@pytest.mark.registry
@pytest.mark.parametrize("name", NAMES)
def test_registry(name: str, session: Session, seeded_registry: Any) -> None:
    checked = validated(f"docker://{seeded_registry.host}/fixtures/{name}:latest", session)
    assert checked.manifests[0] == seeded_registry.digests[f"fixtures/{name}:latest"]
    assert checked.ranges > 0 and checked.diff_ids > 0


@pytest.mark.registry
@pytest.mark.parametrize("name", NAMES)
def test_oci_archive(name: str, fixture_archives: Any) -> None:
    checked = validated(f"oci-archive:{fixture_archives.oci[name]}:latest")
    assert checked.diff_ids > 0 and checked.ranges > 0


@pytest.mark.registry
@pytest.mark.parametrize("name", DOCKER_NAMES)
def test_docker_archive(name: str, fixture_archives: Any, fixture_images: Any) -> None:
    checked = validated(f"docker-archive:{fixture_archives.docker[name]}:fixtures/{name}:latest")
    assert checked.diff_ids == len(fixture_images.expected[name].layers)


@pytest.mark.registry
@pytest.mark.parametrize("name", NAMES)
def test_audit_source(name: str, seeded_registry: Any, tmp_path: Path) -> None:
    from ociinspect.audit import AuditDB, AuditOptions, Scope, Walker, open_run

    with Session(seeded_registry.settings) as s, AuditDB(tmp_path / "audit.sqlite3") as db:
        scope = Scope(seeded_registry.host)
        run_id, _label = open_run(db, scope, AuditOptions())
        walker = Walker(db, s.client, run_id, scope)
        src = walker.source(f"fixtures/{name}", "latest")  # the shared registry source, paced and counted
        digest = seeded_registry.digests[f"fixtures/{name}:latest"]
        checked = validate_source(src)
    assert checked.manifests[0] == digest and checked.diff_ids > 0
    assert walker.counters.fetched_manifests >= 1 and walker.counters.requests >= walker.counters.fetched_blobs


# ------------------------------------------------------------------------------- the validator catches liars


class OffByOneRange(MemorySource):
    def blob_range(self, digest: str, start: int, end: int) -> bytes:
        return super().blob_range(digest, start, end + 1)


class TruncatedStream(MemorySource):
    @contextlib.contextmanager
    def open_blob(self, digest: str, *, size: int | None) -> Iterator[Iterator[bytes]]:
        yield iter((self.blobs[digest][:-1],))


class EmptyForAbsent(MemorySource):
    def blob(self, digest: str, *, size: int | None, max_bytes: int) -> bytes:
        return b"" if digest == ABSENT else super().blob(digest, size=size, max_bytes=max_bytes)


@pytest.mark.parametrize(
    ("liar", "match"),
    [
        (OffByOneRange, "is not that slice"),
        (TruncatedStream, "the stream .* differs"),
        (EmptyForAbsent, r"blob\(\) of an absent digest returned"),
    ],
)
def test_validator_catches(liar: type[MemorySource], match: str, fixture_images: Any) -> None:
    honest = memory_from_layout(fixture_images["app1"])
    with pytest.raises(ConformanceError, match=match):
        validate_source(liar(honest.blobs, tags=honest.tags))


def test_validator_catches_a_wrong_diff_id(fixture_images: Any) -> None:
    src = memory_from_layout(fixture_images["app1"])
    manifest = json.loads(src.blobs[src.tags["latest"]])
    config = json.loads(src.blobs[manifest["config"]["digest"]])
    config["rootfs"]["diff_ids"][0] = ABSENT
    data = json.dumps(config).encode()
    manifest["config"].update(digest=src.add(data), size=len(data))
    src.tags["latest"] = src.add(json.dumps(manifest).encode())
    with pytest.raises(
        ConformanceError, match="layer 0 of .*: uncompressed sha256 .*, config says " + ABSENT
    ):
        validate_source(src)


# --------------------------------------------------------------------------------- the memory source's knobs


def test_memory_source_errors_and_counters() -> None:
    src = MemorySource([b"hello"], tags={"v1": b'{"schemaVersion": 2, "manifests": []}'})
    digest = src.add(b"hello")
    assert src.blob_range(digest, 1, 3) == b"ell" and src.reads.ranges == [(digest, 1, 3)]
    assert src.reads.range_bytes == 3 and src.reads.blobs == []
    with pytest.raises(NotFound, match="no tag 'latest' is held in memory \\(tags: v1\\)"):
        src.root()
    src.blobs[ABSENT] = b"not what the digest says"
    with pytest.raises(DigestMismatch, match="digest mismatch"):
        src.blob(ABSENT, size=None, max_bytes=100)
    with pytest.raises(DigestMismatch, match="size mismatch"), src.open_blob(digest, size=4) as chunks:
        b"".join(chunks)
    refusing = MemorySource(ranges=False)
    with pytest.raises(RangeNotSupported, match="refuses Range"):
        refusing.blob_range(refusing.add(b"x"), 0, 0)
    typed = MemorySource(reference="oci:/m:v1")
    typed.tags["v1"] = typed.add(b"{}", "application/vnd.docker.distribution.manifest.v2+json")
    assert (
        typed.root().media_type == "application/vnd.docker.distribution.manifest.v2+json"
    )  # as Content-Type
