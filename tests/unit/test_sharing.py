"""Sharing analysis on the fixture sharing set, with every number recomputed by hand from the builder's facts."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.build import EXPECTED, build_all
from ociinspect.analyzers.sharing import analyze, common_prefix
from ociinspect.image.loader import LoadOptions
from ociinspect.model.image import Image
from ociinspect.session import Session

SET = ("base", "app1", "app2", "app3", "rebased", "recompressed")


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_all(tmp_path_factory.mktemp("sharing"))


def load_set(layouts: dict[str, Path], names: tuple[str, ...] = SET) -> list[Image]:
    with Session() as s:
        return [s.load(f"oci:{layouts[n]}:latest", LoadOptions()) for n in names]


def facts(name: str, i: int):  # type: ignore[no-untyped-def]
    return EXPECTED[name].layers[i]


def test_per_image_shared_and_unique(layouts: dict[str, Path]) -> None:
    B, A1, A2, A3 = facts("base", 0), facts("app1", 1), facts("app2", 1), facts("app3", 1)
    B2, R = facts("rebased", 0), facts("recompressed", 0)
    assert R.digest != B.digest and R.diff_id == B.diff_id  # the fixture really is recompressed
    report = analyze(load_set(layouts))
    got = {s.reference.split("/")[-1]: s for s in report.images}
    expect = {  # (total, shared, unique) compressed, by blob digest
        "base:latest": (B.size, B.size, 0),
        "app1:latest": (B.size + A1.size, B.size, A1.size),
        "app2:latest": (B.size + A2.size, B.size, A2.size),
        "app3:latest": (B.size + A3.size, B.size + A3.size, 0),
        "rebased:latest": (B2.size + A3.size, A3.size, B2.size),
        "recompressed:latest": (R.size + A3.size, A3.size, R.size),
    }
    assert {k: (v.total_size, v.shared_size, v.unique_size) for k, v in got.items()} == expect
    # uncompressed, by content: the recompressed base is the same content as base's
    u = {
        k: (v.uncompressed_total_size, v.uncompressed_shared_size, v.uncompressed_unique_size)
        for k, v in got.items()
    }
    assert u["recompressed:latest"] == (B.uncompressed_size + A3.uncompressed_size,) * 2 + (0,)
    assert u["rebased:latest"] == (
        B2.uncompressed_size + A3.uncompressed_size,
        A3.uncompressed_size,
        B2.uncompressed_size,
    )
    assert report.deduplicated_size == sum(x.size for x in (B, A1, A2, A3, B2, R))
    assert report.logical_size == sum(t for t, _, _ in expect.values())
    assert report.uncompressed_deduplicated_size == sum(x.uncompressed_size for x in (B, A1, A2, A3, B2))


def test_layers_used_by_and_same_content(layouts: dict[str, Path]) -> None:
    report = analyze(load_set(layouts))
    by_digest = {layer.digest: layer for layer in report.layers}
    B, R, A3 = facts("base", 0), facts("recompressed", 0), facts("app3", 1)
    assert len(by_digest[B.digest].used_by) == 4
    assert len(by_digest[A3.digest].used_by) == 3
    assert by_digest[B.digest].same_content_as == (R.digest,)
    assert by_digest[R.digest].same_content_as == (B.digest,)
    assert len(report.layers) == 6


def test_common_prefixes(layouts: dict[str, Path]) -> None:
    imgs = dict(zip(SET, load_set(layouts), strict=True))
    assert common_prefix(imgs["app1"], imgs["app2"]) == 1
    assert common_prefix(imgs["app3"], imgs["recompressed"]) == 2  # by content: same tars all the way
    assert common_prefix(imgs["app3"], imgs["rebased"]) == 0  # same top layer, different base: no prefix
    report = analyze(list(imgs.values()))
    pair = next(p for p in report.pairs if p.a.endswith("app3:latest") and p.b.endswith("rebased:latest"))
    assert (pair.common_prefix_layers, pair.shared_size) == (0, facts("app3", 1).size)


def test_base_attribution_and_savings(layouts: dict[str, Path]) -> None:
    report = analyze(load_set(layouts))
    (group,) = [g for g in report.bases if g.digest == EXPECTED["base"].manifest_digest]
    names = sorted(r.split("/")[-1] for r in group.images)
    assert names == ["app1:latest", "app2:latest", "app3:latest", "base:latest", "recompressed:latest"]
    assert group.source == "annotation" and group.label == "example.invalid/fixtures/base:latest"
    B = facts("base", 0)
    assert group.same_blobs == 4  # recompressed holds the same content in another blob
    assert group.saved == 3 * B.size
    assert group.uncompressed_saved == 4 * B.uncompressed_size
    assert all(
        s.base is None for s in report.images if s.reference.endswith(("base:latest", "rebased:latest"))
    )


def test_explicit_base_list(layouts: dict[str, Path]) -> None:
    with Session() as s:
        base2 = s.load(f"oci:{layouts['base2']}:latest")
    report = analyze(load_set(layouts, ("rebased", "app3")), bases=[base2])
    share = {s.reference.split("/")[-1]: s.base for s in report.images}
    assert share["rebased:latest"] == base2.reference
    assert share["app3:latest"] is None


def test_unknown_uncompressed_size_propagates_as_none(layouts: dict[str, Path]) -> None:
    with Session() as s:
        imgs = [s.load(f"oci:{layouts[n]}:latest", LoadOptions(sizes="none")) for n in ("app1", "app2")]
    report = analyze(imgs)
    assert all(x.uncompressed_total_size is None for x in report.images)
    assert report.uncompressed_deduplicated_size is None
    assert report.deduplicated_size == facts("base", 0).size + facts("app1", 1).size + facts("app2", 1).size
