"""Layer indexes and waste on the real-world corpus (tests/data/corpus, see its SOURCES.md).

* dive's four OCI variants of one image (uncompressed / gzip / estargz / zstd layers) give identical file
  indexes; the streamed diff_ids are the ones SOURCES.md lists (the eStargz tar is longer: 14848 bytes, because
  its TOC entry ``stargz.index.json`` follows the end-of-archive blocks — no tar reader lists it, and the TOC does
  not list itself).
* go-containerregistry's mutate fixtures give what its tests expect of the flattened filesystem (whiteout_image:
  no foo.txt; whiteout_dir: no file named foo; overwritten_file: foo.txt is no longer the 'foo' file), and waste
  numbers computed by hand from their tar listings.
"""

from __future__ import annotations

import pytest

from ociinspect.analyzers.waste import analyze, flatten
from ociinspect.content.scan import ScanOptions, scan_image
from ociinspect.image.loader import LoadOptions
from ociinspect.model.entries import LayerScan
from ociinspect.model.image import Platform
from ociinspect.session import Session
from tests.corpus import corpus_path

DIVE = ("wagoodman__dive", ".data")
GGCR_MUTATE = ("google__go-containerregistry", "pkg", "v1", "mutate", "testdata")
README_DIFF_ID = "sha256:356d5e7f4012d87cb1078ac1f480e90528eec4940ce45c50380321436db38758"
ESTARGZ_DIFF_ID = "sha256:2b3dbfdf131b60e153f6c11e1781c35dcaab001dde8f65c5efaad5813817800e"


def scans(ref: str, options: ScanOptions | None = None, platform: str | None = None) -> list[LayerScan]:
    with Session() as session, session.source(ref) as src:
        from ociinspect.image.loader import load

        image = load(src, LoadOptions(platform=Platform.parse(platform) if platform else None, sizes="none"))
        return scan_image(src, image, options or ScanOptions())


def dive_variant(variant: str, options: ScanOptions | None = None) -> list[LayerScan]:
    path = corpus_path(*DIVE, f"test-oci-{variant}-image.tar")
    return scans(f"oci-archive:{path}", options, "linux/arm64")


@pytest.mark.parametrize("variant", ["uncompressed", "gzip", "zstd"])
def test_dive_variants_stream_to_the_same_index(variant: str) -> None:
    (layer,) = dive_variant(variant, ScanOptions(hash_files=True))
    assert layer.index_source == "stream" and layer.diff_id == README_DIFF_ID
    assert layer.uncompressed_size == 12800
    assert [(e.path, e.type, e.size, e.permissions, e.uid, e.gid) for e in layer.entries] == [
        ("README.md", "file", 11189, 0o644, 0, 0)
    ]
    reference = dive_variant("uncompressed", ScanOptions(hash_files=True))[0]
    assert layer.entries == reference.entries  # content hash included


def test_dive_estargz_toc_and_stream_agree_with_the_other_variants() -> None:
    reference = dive_variant("uncompressed", ScanOptions(hash_files=True))[0].entries
    (toc,) = dive_variant("estargz")
    assert toc.index_source == "estargz-toc" and toc.diff_id is None and toc.uncompressed_size == 14848
    (streamed,) = dive_variant("estargz", ScanOptions(use_estargz_toc=False, hash_files=True))
    assert streamed.index_source == "stream" and streamed.diff_id == ESTARGZ_DIFF_ID
    assert streamed.uncompressed_size == 14848
    assert toc.entries == streamed.entries == reference


@pytest.mark.parametrize("variant", ["uncompressed", "gzip", "estargz", "zstd"])
def test_dive_variants_waste(variant: str) -> None:
    dive = analyze([s.entries for s in dive_variant(variant)]).dive
    assert (dive.size_bytes, dive.user_size_bytes, dive.wasted_bytes, dive.efficiency) == (11189, 0, 0, 1.0)
    assert dive.user_wasted_ratio is None  # dive prints NaN


def ggcr(name: str) -> list[LayerScan]:
    return scans(f"docker-archive:{corpus_path(*GGCR_MUTATE, name)}")


def test_ggcr_whiteout_image() -> None:
    layers = [s.entries for s in ggcr("whiteout_image.tar")]
    assert len(layers) == 3
    final = [x.path for x in flatten(layers)]
    assert "foo.txt" not in final and final == ["bar.txt"]
    report = analyze(layers)
    # L0: bar.txt 4, foo.txt 4; L1: .wh.foo.txt; L2: empty.  /foo.txt is in two layers (4 + 0).
    assert (report.dive.size_bytes, report.dive.wasted_bytes, report.dive.efficiency) == (8, 4, 4 / 8)
    assert report.dive.user_wasted_ratio is None  # the user layers hold 0 bytes
    assert report.whiteout_deleted_bytes == 4 and report.layers[1].removed == 1


def test_ggcr_whiteout_dir() -> None:
    layers = [s.entries for s in ggcr("whiteout_dir.tar")]
    assert len(layers) == 4
    final = [x.path for x in flatten(layers)]
    assert not any(p.rsplit("/", 1)[-1] == "foo" for p in final)
    assert final == ["a", "a/baz", "b", "b/bar"]
    report = analyze(layers)
    assert (report.dive.wasted_bytes, report.dive.efficiency) == (0, 1.0)  # every file is empty
    assert [(c.added, c.modified, c.removed) for c in report.layers] == [
        (1, 0, 0),
        (1, 0, 0),
        (0, 0, 1),
        (1, 0, 0),
    ]


def test_ggcr_overwritten_file() -> None:
    layers = [s.entries for s in ggcr("overwritten_file.tar")]
    final = {x.path: x.entry for x in flatten(layers)}
    assert final["foo.txt"].type == "symlink" and final["foo.txt"].linkname == "bar.txt"
    assert final["bar.txt"].size == 4
    report = analyze(layers)
    # /foo.txt: a 4-byte file in L0, a symlink (0) in L1
    assert (report.dive.wasted_bytes, report.dive.efficiency, report.overwritten_bytes) == (4, 4 / 8, 4)
    assert report.layers[1].modified == 1
