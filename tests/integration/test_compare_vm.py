"""compare and vm end to end: the same set via layout, archives and a real registry gives the same numbers; base
OS detection per family; partial failures; the HTML report renders in headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from harness.browser import CHROMIUM_FLAGS, chromium_executable

from ociinspect.cli import main

pytestmark = [pytest.mark.registry, pytest.mark.timeout(180)]

SET = ("base", "app1", "app2", "app3", "rebased", "recompressed")
OS_CASES = {
    "base": ("debian", "debian", "12"),
    "os-ubuntu": ("ubuntu", "ubuntu", "24.04"),
    "os-alpine": ("alpine", "alpine", "3.20.3"),
    "os-fedora": ("fedora", "fedora", "40"),
    "os-distroless": ("debian", "debian-minimal", "12"),
    "os-scratch": (None, "static", None),
}


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = main([*argv, "-f", "json"])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


def refs_for(kind: str, names: tuple[str, ...], seeded: Any, images: Any, archives: Any) -> list[str]:
    if kind == "layout":
        return [f"oci:{images[n]}:latest" for n in names]
    if kind == "oci-archive":
        return [f"oci-archive:{archives.oci[n]}:latest" for n in names]
    if kind == "docker-archive":
        return [f"docker-archive:{archives.docker[n]}:fixtures/{n}:latest" for n in names]
    return [f"docker://{seeded.host}/fixtures/{n}:latest" for n in names]


def numbers(doc: dict[str, Any], *keys: str) -> list[tuple[Any, ...]]:
    return [tuple(i[k] for k in keys) for i in doc["images"]]


COMPRESSED = ("total_size", "shared_size", "unique_size")
UNPACKED = ("uncompressed_total_size", "uncompressed_shared_size", "uncompressed_unique_size")


def test_same_set_same_numbers_from_every_source(
    capsys: pytest.CaptureFixture[str], seeded_registry: Any, fixture_images: Any, fixture_archives: Any
) -> None:
    docs = {}
    for kind in ("layout", "oci-archive", "registry", "docker-archive"):
        code, doc, err = run_json(
            capsys, "compare", *refs_for(kind, SET, seeded_registry, fixture_images, fixture_archives)
        )
        assert code == 0, err
        docs[kind] = doc
    # compressed figures: the blobs travel unchanged into the registry and the oci-archive
    assert (
        numbers(docs["layout"], *COMPRESSED)
        == numbers(docs["oci-archive"], *COMPRESSED)
        == numbers(docs["registry"], *COMPRESSED)
    )
    assert docs["layout"]["deduplicated_size"] == docs["registry"]["deduplicated_size"]
    # unpacked figures are the same everywhere, docker-archive (whose layers skopeo stores uncompressed) included
    assert len({tuple(numbers(d, *UNPACKED)) for d in docs.values()}) == 1
    assert len({d["uncompressed_deduplicated_size"] for d in docs.values()}) == 1
    # in a docker-archive the recompressed base is byte-identical to base's, so the archive shares it as a blob
    by_ref = {i["reference"].rsplit("/", 1)[-1]: i for i in docs["docker-archive"]["images"]}
    assert by_ref["recompressed:latest"]["unique_size"] == 0
    assert [len(g["images"]) for g in docs["registry"]["bases"]][:1] == [5]


@pytest.mark.parametrize("name", sorted(OS_CASES))
@pytest.mark.parametrize("kind", ["layout", "registry"])
def test_base_os_detection(
    name: str,
    kind: str,
    capsys: pytest.CaptureFixture[str],
    seeded_registry: Any,
    fixture_images: Any,
    fixture_archives: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # a cold cache: really read the layer
    (ref,) = refs_for(kind, (name,), seeded_registry, fixture_images, fixture_archives)
    code, doc, err = run_json(capsys, "inspect", ref)
    assert code == 0, err
    os_id, family, version = OS_CASES[name]
    assert (doc["base_os"]["id"], doc["base_os"]["family"], doc["base_os"]["version_id"]) == (
        os_id,
        family,
        version,
    )
    assert doc["vm_equivalent"]["family"] == family
    # the second look comes from the cache (same answer)
    code, again, _ = run_json(capsys, "inspect", ref)
    assert again["base_os"] == doc["base_os"]


def test_vm_json_contract_and_fleet(
    capsys: pytest.CaptureFixture[str], seeded_registry: Any, fixture_images: Any
) -> None:
    refs = [f"docker://{seeded_registry.host}/fixtures/{n}:latest" for n in ("app1", "app2", "os-alpine")]
    code, doc, err = run_json(capsys, "vm", *refs, "--replicas", "20")
    assert code == 0, err
    assert doc["schema_version"] == 1
    for img in doc["images"]:
        assert {
            "reference",
            "os",
            "container_size",
            "vm_used_size",
            "vm_used_low",
            "vm_used_high",
            "vm_disk_size",
            "vm_download_size",
        } <= img.keys()
        assert {"id", "version_id"} <= img["os"].keys()
        assert img["vm_used_low"] <= img["vm_used_size"] <= img["vm_used_high"]
    f = doc["fleet"]
    assert {"replicas", "containers_size", "vms_used_size", "ratio"} <= f.keys()
    assert f["replicas"] == 20 and f["containers"] == 60
    # containers: each distinct layer once; app1 and app2 share base's layer
    facts = fixture_images.expected
    layers = {
        lf.diff_id: lf.uncompressed_size for n in ("app1", "app2", "os-alpine") for lf in facts[n].layers
    }
    assert f["containers_size"] == sum(layers.values())
    assert f["vms_used_size"] == 20 * sum(i["vm_used_size"] for i in doc["images"])
    assert f["ratio"] == pytest.approx(f["vms_used_size"] / f["containers_size"])


@pytest.mark.parametrize("command", ["compare", "vm"])
def test_one_bad_ref_among_many(
    command: str, capsys: pytest.CaptureFixture[str], seeded_registry: Any
) -> None:
    refs = [
        f"docker://{seeded_registry.host}/fixtures/app1:latest",
        f"docker://{seeded_registry.host}/fixtures/nope:latest",
        f"docker://{seeded_registry.host}/fixtures/app2:latest",
    ]
    code, doc, err = run_json(capsys, command, *refs)
    assert code == 4
    assert len(doc["images"]) == 2
    assert [e["reference"] for e in doc["errors"]] == [refs[1]]
    assert err.count("ociinspect: error:") == 1 and "fixtures/nope" in err


def test_all_refs_bad_is_exit_3(capsys: pytest.CaptureFixture[str], seeded_registry: Any) -> None:
    code, _, err = run_json(
        capsys, "compare", f"docker://{seeded_registry.host}/fixtures/nope:latest", "oci:/does/not/exist"
    )
    assert code == 3 and err.count("ociinspect: error:") == 2


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_executable()


def render_in_chromium(exe: str, page: Path, tmp_path: Path) -> tuple[str, Path]:
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [exe, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    )
    shot = tmp_path / f"{page.stem}.png"
    subprocess.run(
        [exe, *flags, f"--screenshot={shot}", "--window-size=1200,900", page.as_uri()],
        capture_output=True,
        timeout=120,
    )
    return dom.stdout, shot


@pytest.mark.parametrize("command", ["compare", "vm"])
def test_html_report_renders_in_headless_chromium(
    command: str, chromium: str, seeded_registry: Any, tmp_path: Path
) -> None:
    refs = [f"docker://{seeded_registry.host}/fixtures/{n}:latest" for n in SET]
    r = subprocess.run(
        [sys.executable, "-m", "ociinspect", command, *refs, "-f", "html"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    html = r.stdout
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html
    # no external resource; the only URLs are links (the images' source label, the model's citations)
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert " src=" not in html and "<link" not in html and "url(" not in html
    assert html.count("https://") == html.count('<a href="https://') * 2
    assert "<script" not in html
    page = tmp_path / f"{command}.html"
    page.write_text(html)
    dom, shot = render_in_chromium(chromium, page, tmp_path)
    assert dom.count("<rect") >= len(SET)  # the bars survived parsing
    assert "fixtures/app1:latest" in dom
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000  # a real picture, not a blank page
    if (keep := Path("/tmp/ociinspect-screens")).is_dir():  # for a human to look at
        shutil.copy(shot, keep / shot.name)


# ------------------------------------------------------------------------------ issue 10 §3


@pytest.fixture
def no_cheap_streaming(monkeypatch: pytest.MonkeyPatch, fixture_images: Any) -> None:
    """The multimember fixture's layer as the cheap methods see a hostile layer: ambiguous (two candidate
    sizes), as sizes.py reports e.g. a wrapped gzip trailer; ``--exact`` still streams it."""
    from ociinspect.image import sizes
    from ociinspect.model.image import SizeEstimate

    (layer,) = fixture_images.expected["multimember"].layers
    real = sizes.estimate

    def estimate(source: Any, desc: Any, **kw: Any) -> SizeEstimate:
        if desc.digest == layer.digest and kw.get("mode") != "exact":
            return SizeEstimate(None, "unknown", "ambiguous", candidates=(layer.uncompressed_size, 2**32))
        return real(source, desc, **kw)

    monkeypatch.setattr(sizes, "estimate", estimate)


def test_vm_with_unknown_sizes_analyses_the_rest_and_exits_4(
    capsys: pytest.CaptureFixture[str], fixture_images: Any, no_cheap_streaming: None
) -> None:
    refs = [f"oci:{fixture_images['app1']}:latest", f"oci:{fixture_images['multimember']}:latest"]
    code, doc, err = run_json(capsys, "vm", *refs)
    assert code == 4 and "--vm-profile" not in err and "no VM figures" in err and "--exact" in err
    assert [i["reference"] for i in doc["images"]] == [refs[0]]
    (unknown,) = doc["unknown_images"]
    assert unknown["reference"] == refs[1] and "layer(s) 0" in unknown["note"]
    assert doc["fleet"]["complete"] is False and doc["fleet"]["left_out"] == [refs[1]]
    code, doc, _ = run_json(capsys, "vm", "--exact", *refs)
    assert code == 0 and not doc["unknown_images"] and doc["fleet"]["complete"] is True
    assert {i["container_size_basis"] for i in doc["images"]} == {"exact"}
    facts = fixture_images.expected["multimember"]
    assert doc["images"][1]["container_size"] == sum(lf.uncompressed_size for lf in facts.layers)
    for fmt in ("table", "markdown", "html"):
        assert main(["vm", *refs, "-f", fmt]) == 4
        out = capsys.readouterr().out
        assert ("PARTIAL" in out or "Partial fleet" in out) and refs[1] in out


def test_compare_marks_unknown_totals_and_exact_settles_them(
    capsys: pytest.CaptureFixture[str], fixture_images: Any, no_cheap_streaming: None
) -> None:
    refs = [f"oci:{fixture_images['app1']}:latest", f"oci:{fixture_images['multimember']}:latest"]
    code, doc, _ = run_json(capsys, "compare", *refs)
    assert code == 0 and doc["uncompressed_logical_size"] is None and doc["uncompressed_unknown"] == [refs[1]]
    assert "--exact" in doc["images"][1]["uncompressed_note"]
    assert main(["compare", *refs]) == 0
    assert "Unpacked totals unknown" in capsys.readouterr().out
    code, doc, _ = run_json(capsys, "compare", "--exact", *refs)
    assert code == 0 and doc["uncompressed_unknown"] == [] and doc["uncompressed_logical_size"] is not None


@pytest.mark.parametrize("where", ["registry", "layout"])
def test_artifacts_are_described_not_modelled(
    where: str, capsys: pytest.CaptureFixture[str], seeded_registry: Any, fixture_images: Any
) -> None:
    """fixtures/artifact (an SBOM pushed by oras-py to the real registry, and the local layout): vm, compare
    and inspect call it an artifact, read none of its blobs for an OS, and --exact says what it counts."""
    art = (
        f"docker://{seeded_registry.host}/fixtures/artifact:latest"
        if where == "registry"
        else f"oci:{fixture_images['artifact']}:latest"
    )
    app = f"oci:{fixture_images['app1']}:latest"
    facts = fixture_images.expected["artifact"]
    code, doc, _ = run_json(capsys, "vm", "--exact", app, art)
    assert code == 0 and [i["reference"] for i in doc["images"]] == [app]
    (a,) = doc["artifacts"]
    assert a["artifact_type"] == facts.artifact_type and a["uncompressed_size"] is None
    assert a["compressed_size"] == sum(lf.size for lf in facts.layers) and "not applicable" in a["note"]
    code, doc, _ = run_json(capsys, "compare", "--exact", app, art)
    assert code == 0
    row = doc["images"][1]
    assert row["kind"] == "artifact" and row["uncompressed_total_size"] is None
    assert row["os"]["evidence"] == "an artifact, not a container image: no OS detection"
    assert doc["uncompressed_unknown"] == [] and doc["uncompressed_logical_size"] is not None
    assert main(["inspect", "--exact", art]) == 0
    out = capsys.readouterr().out
    assert "Uncompressed:  not applicable" in out and "no OS detection" in out
