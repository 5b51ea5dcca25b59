"""One image, every source: layout, oci-archive, docker-archive and a real Distribution registry (pushed by
skopeo) give the same model; numbers match the facts the fixture builder recorded while writing the bytes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ociinspect.cli import main
from ociinspect.errors import NotFound, OciInspectError, PlatformNotFound
from ociinspect.image.loader import LoadOptions
from ociinspect.model import mediatypes as mt
from ociinspect.model.image import Image, Platform
from ociinspect.session import Session

pytestmark = [pytest.mark.registry, pytest.mark.timeout(120)]

IMAGES = ("base", "app1", "app2", "history", "zstd", "plain", "multimember", "demo")


def load(session: Session, ref: str, **kw: Any) -> Image:
    return session.load(ref, LoadOptions(**kw))


def essentials(img: Image) -> tuple[Any, ...]:
    """What every source must agree on for the same image (manifest bytes may differ for docker-archive)."""
    return (
        img.config_descriptor.digest,
        img.platform,
        [(lyr.diff_id, lyr.uncompressed.value, lyr.history) for lyr in img.layers],
        img.history,
        img.config,
    )


@pytest.fixture(scope="module")
def session(seeded_registry: Any) -> Any:
    with Session(seeded_registry.settings) as s:
        yield s


@pytest.mark.parametrize("name", IMAGES)
def test_same_model_from_every_source(
    name: str, session: Session, seeded_registry: Any, fixture_images: Any, fixture_archives: Any
) -> None:
    facts = fixture_images.expected[name]
    layout = load(session, f"oci:{fixture_images[name]}:latest")
    registry = load(session, f"docker://{seeded_registry.host}/fixtures/{name}:latest")
    oci_archive = load(session, f"oci-archive:{fixture_archives.oci[name]}:latest")
    assert layout.digest == facts.manifest_digest
    assert registry.digest == seeded_registry.digests[f"fixtures/{name}:latest"]  # what the registry serves
    assert registry.digest == layout.digest and registry.layers == layout.layers  # bytes travel unchanged
    if name == "plain":
        # skopeo 1.9 gzips uncompressed layers on the way into an oci-archive: new blob, same content
        assert oci_archive.digest != layout.digest
        assert oci_archive.layers[0].media_type == mt.OCI_LAYER_GZIP
    else:
        assert oci_archive.digest == layout.digest and oci_archive.layers == layout.layers
    assert essentials(layout) == essentials(registry) == essentials(oci_archive)
    # independent facts from the builder: compressed and uncompressed sizes, diff_ids
    assert [lyr.size for lyr in layout.layers] == [lf.size for lf in facts.layers]
    assert [lyr.diff_id for lyr in registry.layers] == [lf.diff_id for lf in facts.layers]
    assert [lyr.uncompressed.value for lyr in registry.layers] == [
        lf.uncompressed_size for lf in facts.layers
    ]
    if name in fixture_archives.docker:
        # skopeo stores docker-archive layers uncompressed: digests change, content (diff_id) and sizes must not
        archive = load(session, f"docker-archive:{fixture_archives.docker[name]}:fixtures/{name}:latest")
        assert essentials(archive) == essentials(layout)
        assert all(lyr.uncompressed.source == "exact" for lyr in archive.layers)


@pytest.mark.parametrize("name", IMAGES)
def test_exact_mode_agrees_through_the_registry(name: str, session: Session, seeded_registry: Any) -> None:
    ref = f"docker://{seeded_registry.host}/fixtures/{name}:latest"
    cheap, exact = load(session, ref), load(session, ref, sizes="exact")
    assert [lyr.uncompressed.value for lyr in cheap.layers] == [
        lyr.uncompressed.value for lyr in exact.layers
    ]
    assert {lyr.uncompressed.source for lyr in exact.layers} == {"streamed"}


def test_multimember_gzip_is_not_trusted_from_its_trailer(
    session: Session, seeded_registry: Any, fixture_images: Any
) -> None:
    (facts,) = fixture_images.expected["multimember"].layers
    img = load(session, f"docker://{seeded_registry.host}/fixtures/multimember:latest")
    (layer,) = img.layers
    assert facts.gzip_isize != facts.uncompressed_size  # the fixture really is a trap
    assert layer.uncompressed.value == facts.uncompressed_size
    assert layer.uncompressed.source == "streamed"


@pytest.mark.parametrize(
    ("platform", "child"),
    [("linux/amd64", "multi-amd64"), ("linux/arm64", "multi-arm64"), ("linux/arm64/v8", "multi-arm64")],
)
def test_index_platform_selection(
    platform: str, child: str, session: Session, seeded_registry: Any, fixture_images: Any
) -> None:
    multi = fixture_images.expected["multi"]
    want = next(c for c in multi.children if c.name == child)
    img = load(
        session, f"docker://{seeded_registry.host}/fixtures/multi:latest", platform=Platform.parse(platform)
    )
    assert img.digest == want.manifest_digest
    assert img.index_digest == multi.manifest_digest
    kinds = sorted(e.kind for e in img.index_entries)
    assert kinds == ["attestation", "image", "image"]
    assert [str(p) for p in img.platforms] == ["linux/amd64", "linux/arm64/v8"]


def test_index_unknown_platform(session: Session, seeded_registry: Any) -> None:
    with pytest.raises(PlatformNotFound, match="linux/s390x") as exc:
        load(
            session,
            f"docker://{seeded_registry.host}/fixtures/multi:latest",
            platform=Platform.parse("linux/s390x"),
        )
    assert "linux/amd64" in exc.value.message and "unknown" not in exc.value.message


def test_docker_v2s2_media_types(session: Session, seeded_registry: Any, fixture_images: Any) -> None:
    img = load(session, f"docker://{seeded_registry.host}/fixtures/app1:v2s2")
    assert img.media_type == mt.DOCKER_MANIFEST
    assert img.config_descriptor.media_type == mt.DOCKER_CONFIG
    assert {lyr.media_type for lyr in img.layers} == {mt.DOCKER_LAYER_GZIP}
    oci = load(session, f"docker://{seeded_registry.host}/fixtures/app1:latest")
    assert essentials(img) == essentials(oci)
    lst = load(
        session,
        f"docker://{seeded_registry.host}/fixtures/multi:v2s2",
        platform=Platform.parse("linux/arm64"),
    )
    assert lst.index_media_type == mt.DOCKER_MANIFEST_LIST


def test_artifact_is_described(session: Session, seeded_registry: Any, fixture_images: Any) -> None:
    facts = fixture_images.expected["artifact"]
    img = load(session, f"docker://{seeded_registry.host}/fixtures/artifact:latest")
    assert img.is_artifact and img.artifact_type == facts.artifact_type
    assert img.digest == facts.manifest_digest
    assert img.layers[0].uncompressed.source == "unknown"


def test_by_digest_and_missing_tag(session: Session, seeded_registry: Any, fixture_images: Any) -> None:
    digest = fixture_images.expected["base"].manifest_digest
    img = load(session, f"docker://{seeded_registry.host}/fixtures/base@{digest}")
    assert img.digest == digest
    with pytest.raises(NotFound) as exc:
        load(session, f"docker://{seeded_registry.host}/fixtures/base:nope")
    assert exc.value.exit_code == 3 and "nope" in exc.value.message


def test_cli_several_registry_refs_concurrently(
    capsys: pytest.CaptureFixture[str], seeded_registry: Any, fixture_images: Any
) -> None:
    refs = [f"{seeded_registry.host}/fixtures/{n}:latest" for n in ("base", "app1", "app2")]
    code = main(["inspect", *refs, "--plain-http", "-f", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    docs = json.loads(out)
    assert [d["digest"] for d in docs] == [
        fixture_images.expected[n].manifest_digest for n in ("base", "app1", "app2")
    ]
    # app1 and app2 share base's layer blob
    assert docs[0]["layers"][0]["digest"] == docs[1]["layers"][0]["digest"] == docs[2]["layers"][0]["digest"]


def test_loopback_registry_works_without_plain_http_flag(
    capsys: pytest.CaptureFixture[str], seeded_registry: Any
) -> None:
    code = main(["inspect", f"{seeded_registry.host}/fixtures/base:latest", "-f", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["layer_count"] == 1


def test_error_classes_stay_typed(session: Session, seeded_registry: Any) -> None:
    with pytest.raises(OciInspectError) as exc:
        load(session, f"docker://{seeded_registry.host}/no/such-repo:latest")
    assert exc.value.exit_code == 3
    assert exc.value.message.startswith(f"reading docker://{seeded_registry.host}/no/such-repo:latest")


# ------------------------------------------------------------------------------ compressed archives (issue 10 §4)


def _compress(src: Any, dst: Any, kind: str) -> None:
    import gzip
    import shutil

    if kind == "gzip":
        with open(src, "rb") as fin, gzip.open(dst, "wb", compresslevel=1) as fout:
            shutil.copyfileobj(fin, fout)
    else:
        import zstandard

        with open(src, "rb") as fin, open(dst, "wb") as fout:
            zstandard.ZstdCompressor().copy_stream(fin, fout)


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_compressed_docker_and_oci_archives_load_like_the_plain_ones(
    kind: str, session: Session, fixture_archives: Any, tmp_path: Any
) -> None:
    """`docker save | gzip` (and | zstd) is read, sniffed by magic bytes (the name says .bin), and gives the
    very same model as the plain archive; the temporary inflated copy is anonymous (nothing left in the temp
    dir)."""
    import os
    import tempfile

    before = set(os.listdir(tempfile.gettempdir()))
    for transport, archives, suffix in (
        ("docker-archive", fixture_archives.docker, ":fixtures/app1:latest"),
        ("oci-archive", fixture_archives.oci, ":latest"),
    ):
        packed = tmp_path / f"{transport}-app1.{kind}.bin"
        _compress(archives["app1"], packed, kind)
        plain = load(session, f"{transport}:{archives['app1']}{suffix}")
        inflated = load(session, f"{transport}:{packed}{suffix}")
        assert inflated.digest == plain.digest and inflated.layers == plain.layers
        assert essentials(inflated) == essentials(plain)
        assert inflated.reference != plain.reference  # really the compressed file
    leftovers = {n for n in set(os.listdir(tempfile.gettempdir())) - before if "ociinspect-archive" in n}
    assert not leftovers


def test_truncated_gzip_archive_is_a_typed_error(fixture_archives: Any, tmp_path: Any) -> None:
    packed = tmp_path / "app1.tar.gz"
    _compress(fixture_archives.docker["app1"], packed, "gzip")
    packed.write_bytes(packed.read_bytes()[:-100])
    code = main(["inspect", f"docker-archive:{packed}"])
    assert code == 3


def test_compressed_archive_over_the_cap_is_refused_clearly(
    fixture_archives: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ociinspect.sources import files

    monkeypatch.setattr(files, "MAX_INFLATED_ARCHIVE", 4096)
    packed = tmp_path / "app1.tar.gz"
    _compress(fixture_archives.docker["app1"], packed, "gzip")
    code = main(["inspect", f"docker-archive:{packed}"])
    err = capsys.readouterr().err
    assert code != 0 and "inflates to more than 4096 bytes" in err and "gunzip" in err
