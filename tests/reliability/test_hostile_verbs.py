"""Odd images and hostile servers against every command, the new ones first (manifest, config, digest, tags,
repos, blob, referrers, diff, files --cat/--extract): each case is one defect class found by driving the CLI as a
hostile server or image would — a typed one-line error with a hint and a documented exit code, never exit 70,
never a hang, never wrong numbers."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from waste_fixtures import LAYER_GZIP, MTIME, LayerBlob, f, gz, gzip_layer, sha256, write_oci_layout

from reliability.helpers import CliRun, run_cli

pytestmark = pytest.mark.timeout(120)


def _tar(members: list[tarfile.TarInfo]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti in members:
            ti.mtime = MTIME
            tf.addfile(ti, io.BytesIO(b"\0" * ti.size) if ti.isreg() else None)
    return buf.getvalue()


def _gzip_tar(members: list[tarfile.TarInfo]) -> LayerBlob:
    data = _tar(members)
    return LayerBlob(gz(data), LAYER_GZIP, sha256(data))


def _one_error(run: CliRun, code: int) -> None:
    """Exit ``code``, one ``ociinspect: error:`` line and a ``hint:`` line, no traceback."""
    assert run.code == code, run
    lines = run.err.strip().splitlines()
    assert [line for line in lines if line.startswith("ociinspect: error:")], run
    assert any(line.strip().startswith("hint:") for line in lines), run
    assert "Traceback" not in run.err and "internal error" not in run.err, run


# ------------------------------------------------------------------------------------------------- diff


def test_diff_of_images_without_a_shared_layer_is_a_diff_not_an_internal_error(tmp_path: Path) -> None:
    """Two images sharing no bottom layer (an empty shared prefix) where the diff depends on the prefix: the
    empty prefix needs no scan.  Was exit 70 (ValueError: pass the prefix's scans) for every such pair."""
    a = write_oci_layout(tmp_path / "a", [gzip_layer([f("etc/a", b"aaaa")])])
    b = write_oci_layout(tmp_path / "b", [gzip_layer([f("etc/b", b"bbbbbbbb")]), gzip_layer([f("x", b"x")])])
    run = run_cli("diff", a, b, "-f", "json", "--no-cache")
    assert run.code == 1, run
    doc = run.doc
    assert sorted(c["path"] for c in doc["files"]["added"]) == ["/etc/b", "/x"]
    assert [c["path"] for c in doc["files"]["removed"]] == ["/etc/a"]
    empty = write_oci_layout(tmp_path / "e", [])
    run = run_cli("diff", empty, a, "-f", "json", "--no-cache")
    assert run.code == 1 and [c["path"] for c in run.doc["files"]["added"]] == ["/etc/a"], run
