"""The real-world corpus (tests/data/corpus, see its SOURCES.md): every valid image loads and reproduces the
published digests and sizes; every broken one gives a typed error."""

from __future__ import annotations

import zlib

import pytest

from ociinspect.errors import (
    DigestMismatch,
    InvalidImage,
    NotFound,
    OciInspectError,
    PlatformNotFound,
    UsageError,
)
from ociinspect.image.loader import LoadOptions
from ociinspect.model import mediatypes as mt
from ociinspect.model.image import Platform
from ociinspect.session import Session
from tests.corpus import corpus_path

STEREO = ("anchore__stereoscope", "pkg", "image", "oci", "testdata")
GGCR_TAR = ("google__go-containerregistry", "pkg", "v1", "tarball", "testdata")
GGCR_MUTATE = ("google__go-containerregistry", "pkg", "v1", "mutate", "testdata")
GGCR_LAYOUT = ("google__go-containerregistry", "pkg", "v1", "layout", "testdata")
DIVE = ("wagoodman__dive", ".data")


def load(ref: str, platform: str | None = None, sizes: str = "cheap"):  # type: ignore[no-untyped-def]
    with Session() as s:
        return s.load(ref, LoadOptions(platform=Platform.parse(platform) if platform else None, sizes=sizes))  # type: ignore[arg-type]


@pytest.mark.parametrize("platform", [None, "linux/amd64", "linux/arm64"])
def test_stereoscope_valid_oci_dir_any_platform(platform: str | None) -> None:
    img = load(f"oci:{corpus_path(*STEREO, 'valid_oci_dir')}", platform)
    assert img.digest == "sha256:c1ed04a3da941a5dd09b58b16c37f065557863d382ef97995ddac885a8452ebb"


@pytest.mark.parametrize(
    ("platform", "digest"),
    [
        ("linux/amd64", "sha256:e7c26a4b4d156fd9947ee82295b7b78acf7aa54b93b8f3e4b9f608179ffb20e8"),
        ("linux/arm64", "sha256:5ed07065bcbc6c52e3ad28526557d7b6833613fc79257b1a786de85e37c03b05"),
    ],
)
def test_stereoscope_multiplatform(platform: str, digest: str) -> None:
    img = load(f"oci:{corpus_path(*STEREO, 'multiplatform_oci_dir')}", platform)
    assert img.digest == digest
    assert str(img.platform) == platform
    assert img.index_media_type == mt.OCI_INDEX


def test_stereoscope_multiplatform_missing_platform() -> None:
    with pytest.raises(PlatformNotFound, match="linux/ppc64le") as exc:
        load(f"oci:{corpus_path(*STEREO, 'multiplatform_oci_dir')}", "linux/ppc64le")
    assert "linux/amd64" in str(exc.value) and exc.value.hint


@pytest.mark.parametrize(
    ("name", "error", "match"),
    [
        ("invalid_file", InvalidImage, "index.json is empty"),
        ("no_manifests", InvalidImage, "image manifest, not an index"),
        ("valid_manifest", DigestMismatch, "size mismatch"),
    ],
)
def test_stereoscope_broken_layouts(name: str, error: type[OciInspectError], match: str) -> None:
    with pytest.raises(error, match=match):
        load(f"oci:{corpus_path(*STEREO, name)}")


def test_stereoscope_oci_tar_equals_dir() -> None:
    a = load(f"oci-archive:{corpus_path(*STEREO, 'valid-oci.tar')}")
    b = load(f"oci:{corpus_path(*STEREO, 'valid_oci_dir')}")
    assert (a.digest, a.config_descriptor, a.layers) == (b.digest, b.config_descriptor, b.layers)


def test_ggcr_layout_index() -> None:
    root = corpus_path(*GGCR_LAYOUT, "test_index")
    img = load(f"oci:{root}@sha256:eebff607b1628d67459b0596643fc07de70d702eccf030f0bc7bb6fc2b278650")
    assert img.media_type == mt.OCI_MANIFEST
    assert (
        img.config_descriptor.digest
        == "sha256:6e0b05049ed9c17d02e1a55e80d6599dbfcce7f4f4b022e3c673e685789c470e"
    )
    assert img.layers[0].media_type == "application/vnd.docker.image.rootfs.diff.tar.gzip"


def test_ggcr_layout_nested_docker_list_reads_as_list() -> None:
    root = corpus_path(*GGCR_LAYOUT, "test_index")
    with (
        Session() as s,
        s.source(
            f"oci:{root}@sha256:2b29a2b8dea3af91ea7d0154be1da0c92d55ddd098540930fc8d3db7de377fdb"
        ) as src,
    ):
        raw = src.root()
    assert raw.media_type == mt.DOCKER_MANIFEST_LIST


def test_ggcr_layout_index_one_image_without_digest() -> None:
    img = load(f"oci:{corpus_path(*GGCR_LAYOUT, 'test_index_one_image')}")
    assert img.layers


def test_ggcr_layout_index_media_type() -> None:
    root = corpus_path(*GGCR_LAYOUT, "test_index_media_type")
    img = load(f"oci:{root}@sha256:b544f71ecd82372bc9a3c0dbef378abfd2734fe437df81ff6e242a0d720d8e3e")
    (layer,) = img.layers
    assert layer.media_type == "application/tar+gzip"
    # The one right size source, derived from the blob: one plain gzip member, nothing after it and no eStargz
    # TOC annotation, so the size is the trailer's ISIZE (a Range read of 4 bytes), equal to the tar's length.
    blob = corpus_path(
        *GGCR_LAYOUT, "test_index_media_type", "blobs", "sha256", layer.digest[7:]
    ).read_bytes()
    member = zlib.decompressobj(wbits=31)
    tar = member.decompress(blob)
    assert blob[:2] == b"\x1f\x8b" and member.eof and member.unused_data == b""
    assert not any("stargz" in key or "estargz" in key for key in layer.descriptor.annotations)
    assert layer.uncompressed.source == "trailer"
    assert layer.uncompressed.value == len(tar) == int.from_bytes(blob[-4:], "little") == 10240


def test_ggcr_tarball_test_image_1() -> None:
    img = load(f"docker-archive:{corpus_path(*GGCR_TAR, 'test_image_1.tar')}")
    assert len(img.layers) == 1 and len(img.history) == 1
    assert img.layers[0].uncompressed.source == "exact"
    assert img.layers[0].digest == img.layers[0].diff_id


@pytest.mark.parametrize(
    ("name", "error", "match"),
    [
        ("null_manifest.tar", InvalidImage, "does not list any image"),
        ("no_manifest.tar", InvalidImage, "no manifest.json"),
        ("test_bundle.tar", UsageError, "holds 2 images"),
        ("content.tar", InvalidImage, "no manifest.json"),
    ],
)
def test_ggcr_tarball_broken(name: str, error: type[OciInspectError], match: str) -> None:
    with pytest.raises(error, match=match) as exc:
        load(f"docker-archive:{corpus_path(*GGCR_TAR, name)}")
    assert exc.value.hint


@pytest.mark.parametrize(
    "tag",
    [
        "test_image_1",
        "test_image_2",
        "test_image_1:latest",
        "test_image_2:latest",
        "index.docker.io/library/test_image_1:latest",
    ],
)
def test_ggcr_bundle_with_tag(tag: str) -> None:
    img = load(f"docker-archive:{corpus_path(*GGCR_TAR, 'test_bundle.tar')}:{tag}")
    expected = "sha256:6e0b05" if "image_1" in tag else "sha256:930705"
    assert img.config_descriptor.digest.startswith(expected)


def test_ggcr_bundle_unknown_tag() -> None:
    with pytest.raises(NotFound, match="test_image_1"):
        load(f"docker-archive:{corpus_path(*GGCR_TAR, 'test_bundle.tar')}:nope:1")


def test_ggcr_docker25_save_format() -> None:
    img = load(f"docker-archive:{corpus_path(*GGCR_TAR, 'hello-world-v25.tar')}", sizes="exact")
    assert img.layers[0].digest == "sha256:12660636fe55438cc3ae7424da7ac56e845cdb52493ff9cf949c47a7f57f8b43"
    assert img.layers[0].media_type == mt.OCI_LAYER  # from LayerSources
    assert img.layers[0].uncompressed.value == 10752


def test_ggcr_symlinked_layer() -> None:
    img = load(
        f"docker-archive:{corpus_path(*GGCR_TAR, 'test_link.tar')}:bazel/v1/tarball:test_image_3",
        sizes="exact",
    )
    assert img.layers[0].diff_id == "sha256:8897395fd26dc44ad0e2a834335b33198cb41ac4d98dfddf58eced3853fa7b17"
    assert img.layers[0].uncompressed.value and img.layers[0].uncompressed.value > 0


def test_ggcr_empty_layer_history_aligned() -> None:
    img = load(f"docker-archive:{corpus_path(*GGCR_MUTATE, 'source_image_with_empty_layer_history.tar')}")
    assert len(img.history) == 2 and sum(h.empty_layer for h in img.history) == 1
    assert len(img.layers) == 1
    assert img.layers[0].history is not None and not img.layers[0].history.empty_layer
    assert not any("misaligned" in w for w in img.warnings)


@pytest.mark.parametrize(
    ("name", "layers"), [("whiteout_image.tar", 3), ("whiteout_dir.tar", 4), ("overwritten_file.tar", 3)]
)
def test_ggcr_mutate_archives_verify_exactly(name: str, layers: int) -> None:
    cheap = load(f"docker-archive:{corpus_path(*GGCR_MUTATE, name)}")
    exact = load(f"docker-archive:{corpus_path(*GGCR_MUTATE, name)}", sizes="exact")
    assert len(exact.layers) == layers
    assert [lyr.uncompressed.value for lyr in cheap.layers] == [
        lyr.uncompressed.value for lyr in exact.layers
    ]


DIVE_SIZES = {"uncompressed": 12800, "gzip": 4132, "estargz": 4496, "zstd": 4314}


@pytest.mark.parametrize("variant", sorted(DIVE_SIZES))
def test_dive_oci_variants(variant: str) -> None:
    img = load(f"oci-archive:{corpus_path(*DIVE, f'test-oci-{variant}-image.tar')}", "linux/arm64")
    (layer,) = img.layers
    assert layer.size == DIVE_SIZES[variant]
    expected_diff = (
        "sha256:2b3dbfdf131b60e153f6c11e1781c35dcaab001dde8f65c5efaad5813817800e"
        if variant == "estargz"
        else "sha256:356d5e7f4012d87cb1078ac1f480e90528eec4940ce45c50380321436db38758"
    )
    assert layer.diff_id == expected_diff
    assert layer.uncompressed.value == (14848 if variant == "estargz" else 12800)
    assert (
        layer.uncompressed.source
        == {"uncompressed": "exact", "gzip": "trailer", "zstd": "header", "estargz": "streamed"}[variant]
    )
    exact = load(
        f"oci-archive:{corpus_path(*DIVE, f'test-oci-{variant}-image.tar')}", "linux/arm64", sizes="exact"
    )
    assert exact.layers[0].uncompressed.value == layer.uncompressed.value  # and the diff_id was verified


def test_regclient_testrepo_tags_and_attestations() -> None:
    root = corpus_path("regclient__regclient", "testdata", "testrepo")
    img = load(f"oci:{root}:v1", "linux/amd64")
    kinds = {e.kind for e in img.index_entries}
    assert "attestation" in kinds  # unknown/unknown entries are listed, never picked
    assert img.platform == Platform("linux", "amd64")
    assert all(
        e.descriptor.platform is None or not e.descriptor.platform.is_unknown or e.kind == "attestation"
        for e in img.index_entries
    )


def test_regclient_artifact_is_described() -> None:
    root = corpus_path("regclient__regclient", "testdata", "testrepo")
    img = load(f"oci:{root}:a3")
    assert img.is_artifact and img.config is None
    assert len(img.layers) == 3
    assert {layer.uncompressed.source for layer in img.layers} == {"unknown"}
