"""fixtures/build.py is deterministic, its EXPECTED facts match the bytes on disk (checked with stdlib
decoders, not ociinspect), the committed fixtures/demo cannot drift, and skopeo reads every layout."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import struct
import subprocess
import tarfile
import zlib
from pathlib import Path
from typing import Any

import pytest
import zstandard

from fixtures import build
from fixtures.build import ALL_LAYOUT, COMPRESSOR_VERSIONS, EXPECTED, IMAGE_NAMES, ImageFacts, LayerFacts

REPO_ROOT = Path(__file__).resolve().parent.parent
COMMITTED_DEMO = REPO_ROOT / "fixtures" / "demo"


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _blob(layout: Path, digest: str) -> bytes:
    data = (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()
    assert _sha256(data) == digest, f"{layout}: blob {digest} does not hash to its name"
    return data


def _json(layout: Path, digest: str) -> dict[str, Any]:
    raw = _blob(layout, digest)
    value = json.loads(raw)
    assert build.canonical_json(value) == raw, "JSON must be sorted and compact"
    return dict(value)


def _decompress(blob: bytes, media_type: str) -> bytes:
    if media_type.endswith("+gzip"):
        return gzip.decompress(blob)  # reads every member
    if media_type.endswith("+zstd"):
        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob)).read()
    return blob


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build.build_all(tmp_path_factory.mktemp("build"))


def test_two_builds_are_byte_identical(tmp_path: Path) -> None:
    build.build_all(tmp_path / "one")
    build.build_all(tmp_path / "two")
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert one.keys() == two.keys()
    assert [name for name in one if one[name] != two[name]] == []
    assert len(one) > 40


def test_committed_demo_equals_a_fresh_build(tmp_path: Path) -> None:
    fresh = _files(build.build_image("demo", tmp_path / "demo"))
    committed = _files(COMMITTED_DEMO)
    hint = (
        f"fixtures/demo drifted from fixtures/build.py (compressors here: {COMPRESSOR_VERSIONS}); "
        "regenerate with: python fixtures/build.py --only demo fixtures/demo"
    )
    assert committed == fresh, hint
    assert sum(len(data) for data in committed.values()) < 512 * 1024


def test_rebuilding_into_an_old_layout_removes_stale_blobs(tmp_path: Path) -> None:
    layout = build.build_image("demo", tmp_path / "demo")
    stale = layout / "blobs" / "sha256" / ("0" * 64)
    stale.write_bytes(b"left over")
    build.build_image("demo", layout)
    assert not stale.exists()


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_index_json_tags_the_image(built: dict[str, Path], name: str) -> None:
    facts = EXPECTED[name]
    for layout, tag in ((built[name], "latest"), (built[ALL_LAYOUT], name)):
        index = json.loads((layout / "index.json").read_bytes())
        (entry,) = [
            m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == tag
        ]
        assert (entry["digest"], entry["size"], entry["mediaType"]) == (
            facts.manifest_digest,
            facts.manifest_size,
            facts.media_type,
        )
        assert json.loads((layout / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    assert facts.tags == ("latest",)


def _check_image(layout: Path, facts: ImageFacts) -> None:
    manifest = _json(layout, facts.manifest_digest)
    assert len(_blob(layout, facts.manifest_digest)) == facts.manifest_size
    assert manifest["config"]["digest"] == facts.config_digest
    assert manifest["config"]["mediaType"] == facts.config_media_type
    assert len(_blob(layout, manifest["config"]["digest"])) == manifest["config"]["size"] == facts.config_size
    assert [(d["digest"], d["mediaType"], d["size"]) for d in manifest["layers"]] == [
        (layer.digest, layer.media_type, layer.size) for layer in facts.layers
    ]
    for layer in facts.layers:
        _check_layer(layout, layer)
    if facts.config_media_type == build.OCI_CONFIG:
        config = _json(layout, manifest["config"]["digest"])
        assert config["rootfs"]["diff_ids"] == [layer.diff_id or layer.digest for layer in facts.layers]
        assert config.get("created", build.CREATED) == build.CREATED
        assert f"{config['os']}/{config['architecture']}" + (
            f"/{config['variant']}" if "variant" in config else ""
        ) == (facts.platform or "")


def _check_layer(layout: Path, layer: LayerFacts) -> None:
    blob = _blob(layout, layer.digest)
    assert len(blob) == layer.size
    if layer.diff_id is None:  # not a tar (in-toto statement, SBOM)
        assert layer.uncompressed_size == layer.size
        return
    tar = _decompress(blob, layer.media_type)
    assert len(tar) == layer.uncompressed_size
    assert _sha256(tar) == layer.diff_id
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        members = archive.getmembers()
    assert tuple(m.name + "/" if m.isdir() else m.name for m in members) == layer.entries
    assert sum(m.size for m in members if m.isreg()) == layer.file_bytes
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(build.MTIME, 0, 0, "", "")}
    names = [m.name for m in members]
    assert names == sorted(names, key=lambda n: n.split("/")), "entries must be sorted parents-first"
    if layer.media_type.endswith("+gzip"):
        assert blob[:10] == bytes([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 255]), "no name, mtime 0, OS 255"
        assert layer.gzip_isize == struct.unpack("<L", blob[-4:])[0]


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_expected_matches_the_files(built: dict[str, Path], name: str) -> None:
    facts = EXPECTED[name]
    for layout in (built[name], built[ALL_LAYOUT]):
        if facts.media_type == build.OCI_INDEX:
            index = _json(layout, facts.manifest_digest)
            assert [m["digest"] for m in index["manifests"]] == [c.manifest_digest for c in facts.children]
            for child in facts.children:
                _check_image(layout, child)
        else:
            _check_image(layout, facts)


def test_app_images_share_the_base_layer() -> None:
    base = EXPECTED["base"].layers[0]
    for name in ("app1", "app2", "demo"):
        assert EXPECTED[name].layers[0] == base
        assert len({layer.digest for layer in EXPECTED[name].layers}) == len(EXPECTED[name].layers)
    assert EXPECTED["app1"].layers[1] != EXPECTED["app2"].layers[1]
    for name in ("app1", "app2"):
        annotations = EXPECTED[name].annotations
        assert annotations["org.opencontainers.image.base.digest"] == EXPECTED["base"].manifest_digest


def test_app2_runs_as_user_1000(built: dict[str, Path]) -> None:
    config = _json(built["app2"], EXPECTED["app2"].config_digest or "")
    assert config["config"]["User"] == "1000"
    assert config["config"]["Labels"]["org.opencontainers.image.source"]


def test_history_has_interleaved_empty_layers() -> None:
    history = EXPECTED["history"].history
    assert [bool(h.get("empty_layer")) for h in history] == [True, False, True, False, True]
    assert len(EXPECTED["history"].layers) == 2


def test_multimember_isize_is_not_the_total() -> None:
    (layer,) = EXPECTED["multimember"].layers
    assert layer.gzip_isize is not None and layer.gzip_isize < layer.uncompressed_size


def test_multimember_really_has_two_members(built: dict[str, Path]) -> None:
    (layer,) = EXPECTED["multimember"].layers
    blob = _blob(built["multimember"], layer.digest)
    first_member = zlib.decompressobj(wbits=31)
    head = first_member.decompress(blob)
    assert first_member.eof and first_member.unused_data[:2] == b"\x1f\x8b", "a second member follows"
    assert len(head) < layer.uncompressed_size
    assert len(gzip.decompress(blob)) == layer.uncompressed_size


def test_zstd_frame_carries_the_content_size(built: dict[str, Path]) -> None:
    (layer,) = EXPECTED["zstd"].layers
    blob = _blob(built["zstd"], layer.digest)
    assert zstandard.frame_content_size(blob) == layer.uncompressed_size


def test_plain_layer_is_its_own_diff_id() -> None:
    (layer,) = EXPECTED["plain"].layers
    assert layer.media_type == build.LAYER_TAR
    assert layer.diff_id == layer.digest and layer.size == layer.uncompressed_size


def test_multi_index_has_platforms_and_attestation(built: dict[str, Path]) -> None:
    index = _json(built["multi"], EXPECTED["multi"].manifest_digest)
    platforms = [m["platform"] for m in index["manifests"]]
    assert platforms == [
        {"os": "linux", "architecture": "amd64"},
        {"os": "linux", "architecture": "arm64", "variant": "v8"},
        {"os": "unknown", "architecture": "unknown"},
    ]
    attestation = index["manifests"][2]
    assert attestation["annotations"] == {
        "vnd.docker.reference.type": "attestation-manifest",
        "vnd.docker.reference.digest": index["manifests"][0]["digest"],
    }
    assert EXPECTED["multi"].children[2].layers[0].media_type == "application/vnd.in-toto+json"
    noattest = EXPECTED["multi-noattest"].children
    assert [c.manifest_digest for c in noattest] == [
        c.manifest_digest for c in EXPECTED["multi"].children[:2]
    ]


def test_artifact_manifest(built: dict[str, Path]) -> None:
    facts = EXPECTED["artifact"]
    manifest = _json(built["artifact"], facts.manifest_digest)
    assert manifest["artifactType"] == facts.artifact_type == "application/vnd.example.sbom.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    assert _blob(built["artifact"], manifest["config"]["digest"]) == b"{}"
    assert manifest["layers"][0]["annotations"]["org.opencontainers.image.title"] == "sbom.spdx.json"
    index = json.loads((built["artifact"] / "index.json").read_bytes())
    assert index["manifests"][0]["artifactType"] == facts.artifact_type


def test_cli_writes_one_layout(tmp_path: Path) -> None:
    assert build.main(["--only", "plain", str(tmp_path / "p")]) == 0
    assert _files(tmp_path / "p") == _files(build.build_image("plain", tmp_path / "q"))


@pytest.mark.registry
@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_skopeo_reads_every_layout(built: dict[str, Path], name: str) -> None:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo not installed: run the README's test command, which installs it")
    facts = EXPECTED[name]
    expected = _blob(built[name], facts.manifest_digest)
    for ref in (f"oci:{built[name]}:latest", f"oci:{built[ALL_LAYOUT]}:{name}"):
        raw = subprocess.run(
            ["skopeo", "inspect", "--raw", ref], capture_output=True, check=True, timeout=60
        ).stdout
        assert raw == expected, ref
