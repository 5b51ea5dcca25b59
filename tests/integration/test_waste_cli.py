"""``ociinspect waste`` and ``ociinspect files`` end to end on local images: the JSON contract with hand-computed
numbers, every format, the cache, the dive export, and bad input (one clear error, nothing written outside the
cache)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from waste_fixtures import (
    WASTE_LAYERS,
    LayerBlob,
    estargz_layer,
    f,
    gz,
    gzip_layer,
    plain_layer,
    sha256,
    tar_bytes,
    write_docker_archive,
    write_oci_layout,
    zstd_layer,
)

from ociinspect.cli import main
from ociinspect.store import STORE_FILE

WASTE_KEYS = {
    "schema_version",
    "digest",
    "size_bytes",
    "user_size_bytes",
    "wasted_bytes",
    "user_wasted_percent",
    "efficiency",
    "inefficient_files",
    "layers",
}
LAYER_KEYS = {"digest", "content_size", "added", "modified", "removed"}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("waste-images")
    return {
        "gzip": write_oci_layout(root / "gzip", [gzip_layer(s) for s in WASTE_LAYERS]),
        "zstd": write_oci_layout(root / "zstd", [zstd_layer(s) for s in WASTE_LAYERS]),
        "plain": write_oci_layout(root / "plain", [plain_layer(s) for s in WASTE_LAYERS]),
        "estargz": write_oci_layout(root / "estargz", [estargz_layer(s) for s in WASTE_LAYERS]),
        "docker": write_docker_archive(root / "waste.tar", [tar_bytes(s) for s in WASTE_LAYERS]),
    }


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "ociinspect"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def waste_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, err = run(capsys, "waste", *argv, "-f", "json")
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


@pytest.mark.parametrize("kind", ["gzip", "zstd", "plain", "estargz", "docker"])
def test_json_contract_and_numbers(
    kind: str, images: dict[str, str], cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = waste_json(capsys, images[kind])
    assert doc.keys() >= WASTE_KEYS
    assert doc["schema_version"] == 1
    # the hand-computed numbers of tests/unit/test_waste.py::test_worked_example_dive_numbers
    assert (doc["size_bytes"], doc["user_size_bytes"], doc["wasted_bytes"]) == (3850, 1350, 1400)
    assert doc["efficiency"] == 2950 / 4250
    assert doc["user_wasted_percent"] == pytest.approx(1400 / 1350 * 100)
    assert doc["user_wasted_ratio"] == 1400 / 1350
    assert doc["inefficient_files"] == [
        {"path": "/bin/tool", "count": 2, "wasted_bytes": 1000},
        {"path": "/data/a", "count": 2, "wasted_bytes": 200},
        {"path": "/etc/config", "count": 2, "wasted_bytes": 200},
    ]
    assert (doc["whiteout_deleted_bytes"], doc["overwritten_bytes"]) == (2100, 100)
    for layer in doc["layers"]:
        assert layer.keys() >= LAYER_KEYS
    assert [(x["content_size"], x["added"], x["modified"], x["removed"]) for x in doc["layers"]] == [
        (2500, 8, 0, 0),
        (1100, 1, 1, 0),
        (200, 1, 0, 3),
        (50, 1, 0, 3),
    ]
    expected_source = "estargz-toc" if kind == "estargz" else "stream"
    assert {x["index_source"] for x in doc["layers"]} == {expected_source}
    assert all(x["diff_id_verified"] for x in doc["layers"]) is (kind != "estargz")
    # the eStargz TOC records every file's digest: duplicates come for free
    assert doc["hashed"] is (kind == "estargz")
    assert doc["duplicate_wasted_bytes"] == (1300 if kind == "estargz" else None)


def test_hash_finds_duplicates(
    images: dict[str, str], cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = waste_json(capsys, images["gzip"], "--hash")
    assert doc["hashed"] is True and doc["duplicate_wasted_bytes"] == 1300
    top = doc["duplicate_files"][0]
    assert top["sha256"] == sha256(WASTE_LAYERS[0][1].data)[7:]
    assert top["copies"] == [
        {"layer": 0, "path": "/bin/tool", "in_final": False},
        {"layer": 1, "path": "/opt/copy-of-tool", "in_final": True},
    ]


def test_cache_second_run_reads_no_layer(
    images: dict[str, str], cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = waste_json(capsys, images["gzip"])
    assert not any(x["from_cache"] for x in first["layers"])
    assert (cache / STORE_FILE).is_file()
    layout = Path(images["gzip"].split(":")[1])
    for x in first["layers"]:  # make the layer blobs unreadable: a second run must not need them
        (layout / "blobs" / "sha256" / x["digest"][7:]).rename(layout / f"moved-{x['digest'][7:]}")
    try:
        second = waste_json(capsys, images["gzip"])
    finally:
        for x in first["layers"]:
            (layout / f"moved-{x['digest'][7:]}").rename(layout / "blobs" / "sha256" / x["digest"][7:])
    assert all(x["from_cache"] for x in second["layers"])
    assert {k: v for k, v in second.items() if k != "layers"} == {
        k: v for k, v in first.items() if k != "layers"
    }


def test_warm_run_reuses_the_cached_analysis(
    images: dict[str, str], cache: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import ociinspect.cli.waste as command
    import ociinspect.content.scan as scanning

    first = waste_json(capsys, images["zstd"])

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the analysis should come from the cache")

    with monkeypatch.context() as patched:
        patched.setattr(command, "analyze", refuse)
        patched.setattr(scanning, "scan_image", refuse)
        second = waste_json(capsys, images["zstd"])
    assert second["layers"] == [{**x, "from_cache": True} for x in first["layers"]]
    assert {k: v for k, v in second.items() if k != "layers"} == {
        k: v for k, v in first.items() if k != "layers"
    }
    # --hash needs hashed indexes: a new scan and a new analysis (with duplicates)
    hashed = waste_json(capsys, images["zstd"], "--hash")
    assert hashed["duplicate_wasted_bytes"] == 1300 and not any(x["from_cache"] for x in hashed["layers"])
    # a damaged cached analysis is recomputed, not trusted
    from ociinspect.store import Store

    with Store(cache) as store:
        store.connect().execute("UPDATE facts SET value = '{broken'")
    again = waste_json(capsys, images["zstd"])
    assert again["wasted_bytes"] == 1400 and again["duplicate_wasted_bytes"] == 1300  # hashed indexes reused


def test_no_cache_and_cache_dir(
    images: dict[str, str], cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    waste_json(capsys, images["plain"], "--no-cache")
    assert not cache.exists()
    waste_json(capsys, images["plain"], "--cache-dir", str(tmp_path / "mine"))
    assert (tmp_path / "mine" / STORE_FILE).is_file() and not cache.exists()
    code, _, err = run(capsys, "waste", images["plain"], "--no-cache", "--cache-dir", str(tmp_path))
    assert code == 2 and "contradict" in err


def test_table_and_markdown(images: dict[str, str], cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "waste", images["gzip"])
    assert code == 0 and err == ""  # no progress bar when stderr is not a terminal
    assert "Efficiency:           69.4118 %" in out
    assert "Wasted bytes:         1.4 KiB (1400 bytes)" in out
    assert "User wasted percent:  103.7037 %" in out
    assert "/bin/tool" in out and "IEC units" in out
    code, out, _ = run(capsys, "waste", images["gzip"], "-f", "markdown", "--top", "1")
    assert code == 0 and out.startswith("### ") and "| 2       | 1000 B         | /bin/tool   |" in out
    assert "/etc/config" not in out.split("Inefficient files")[1]


def test_json_dive_export(
    images: dict[str, str], cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "dive.json"
    code, _, err = run(capsys, "waste", images["docker"], "--json-dive", str(target))
    assert code == 0, err
    export = json.loads(target.read_text())
    assert export.keys() == {"layer", "image"}
    assert export["image"] == {
        "sizeBytes": 3850,
        "inefficientBytes": 1400,
        "efficiencyScore": 2950 / 4250,
        "fileReference": [
            {"count": 2, "sizeBytes": 1000, "file": "/bin/tool"},
            {"count": 2, "sizeBytes": 200, "file": "/data/a"},
            {"count": 2, "sizeBytes": 200, "file": "/etc/config"},
        ],
    }
    assert [(x["index"], x["sizeBytes"], x["command"]) for x in export["layer"]] == [
        (0, 2500, "layer 0"),
        (1, 1100, "layer 1"),
        (2, 200, "layer 2"),
        (3, 50, "layer 3"),
    ]
    assert {"path", "typeFlag", "linkName", "size", "fileMode", "uid", "gid", "isDir"} == set(
        export["layer"][0]["fileList"][0]
    )


def test_files_largest_layer_and_path(
    images: dict[str, str], cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "files", images["gzip"], "-f", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert [(x["path"], x["size"], x["layer"]) for x in doc["files"]] == [
        ("/opt/copy-of-tool", 1000, 1),
        ("/data/b", 300, 0),
        ("/srv/a", 200, 2),
        ("/etc/config", 100, 1),
        ("/lib/new.so", 50, 3),
    ]
    assert doc["files"][3]["mode"] == "0600"
    code, out, _ = run(capsys, "files", images["gzip"], "--layer", "2", "-f", "json", "--sort", "path")
    doc = json.loads(out)
    assert [(x["change"], x["path"], x["layer"]) for x in doc["files"]] == [
        ("removed", "/bin/tool", 0),
        ("removed", "/data/a", 0),
        ("removed", "/data/sub/c", 0),
        ("added", "/srv/a", 2),
    ]
    code, out, _ = run(capsys, "files", images["gzip"], "--path", "/data", "--top", "0", "-f", "json")
    assert [x["path"] for x in json.loads(out)["files"]] == ["/data/b"]
    code, out, _ = run(capsys, "files", images["gzip"], "--path", "*.so", "-f", "json")
    assert [x["path"] for x in json.loads(out)["files"]] == ["/lib/new.so"]
    code, out, _ = run(capsys, "files", images["gzip"], "--layer", "-1")
    assert code == 0 and "removed" in out and "/lib/libx.so" in out
    code, _, err = run(capsys, "files", images["gzip"], "--layer", "4")
    assert code == 2 and "--layer 4: the image has 4 layers" in err


# ------------------------------------------------------------------------------------------------ bad input


def tree(root: Path, skip: Path) -> set[str]:
    return {str(p) for p in root.rglob("*") if skip not in p.parents and p != skip}


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """cwd and HOME in tmp_path; yields tmp_path.  Checks afterwards that only the cache changed."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    yield tmp_path


def bad_layout(
    root: Path, blob: bytes, diff_id: str, media_type: str = "application/vnd.oci.image.layer.v1.tar+gzip"
) -> str:
    good = gzip_layer([f("ok", b"fine")])
    return write_oci_layout(root, [good, LayerBlob(blob, media_type, diff_id)])


def expect_error(
    capsys: pytest.CaptureFixture[str], sandbox: Path, ref: str, pattern: str, *extra: str
) -> str:
    before = tree(sandbox, sandbox / "xdg")
    code, out, err = run(capsys, "waste", ref, *extra)
    assert code == 3, (out, err)
    lines = err.strip().splitlines()
    assert lines[0].startswith("ociinspect: error: reading oci:") and "layer 1 (" in lines[0], err
    assert pattern in lines[0], err
    assert len(lines) == 2 and lines[1].startswith("  hint: "), err
    assert "Traceback" not in err and out == ""
    assert tree(sandbox, sandbox / "xdg") == before  # nothing written outside the cache
    return err


def test_truncated_gzip(sandbox: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tar_bytes([f("big", os.urandom(100_000))])
    blob = gz(data)[:-200]
    ref = bad_layout(sandbox / "img", blob, sha256(data))
    expect_error(capsys, sandbox, ref, "truncated gzip stream")


def test_wrong_digest(sandbox: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tar_bytes([f("a", b"x" * 1000)])
    blob = gz(data)
    ref = bad_layout(sandbox / "img", blob, sha256(data))
    path = sandbox / "img" / "blobs" / "sha256" / sha256(blob)[7:]
    tampered = bytearray(blob)
    tampered[4] ^= 0xFF  # the gzip header's MTIME: no gzip checksum covers it, only the digest can tell
    path.write_bytes(bytes(tampered))
    expect_error(capsys, sandbox, ref, "digest mismatch")


def test_parent_paths(sandbox: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("../../etc/cron.d/evil")
        ti.size = 1
        tf.addfile(ti, io.BytesIO(b"x"))
    ref = bad_layout(sandbox / "img", gz(buf.getvalue()), sha256(buf.getvalue()))
    expect_error(capsys, sandbox, ref, "points outside the image root")


def test_absolute_paths_are_a_warning(sandbox: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("/etc/abs")
        ti.size = 3
        tf.addfile(ti, io.BytesIO(b"abc"))
    ref = bad_layout(sandbox / "img", gz(buf.getvalue()), sha256(buf.getvalue()))
    code, out, err = run(capsys, "waste", ref, "-f", "json")
    assert code == 0
    assert "warning" in err and "absolute path ('/etc/abs')" in err
    assert any("absolute path" in w for w in json.loads(out)["warnings"])


def test_not_a_tar(sandbox: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = os.urandom(5000)
    ref = bad_layout(sandbox / "img", gz(data), sha256(data))
    expect_error(capsys, sandbox, ref, "not a tar archive")


def test_decompression_bomb(sandbox: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tar_bytes([f("zeros", bytes(50 << 20))])
    blob = gz(data)
    assert len(blob) < 100_000
    ref = bad_layout(sandbox / "img", blob, sha256(data))
    expect_error(
        capsys, sandbox, ref, "decompresses to more than 1048576 bytes", "--max-uncompressed", "1MiB"
    )
    code, _, err = run(capsys, "waste", ref, "--max-uncompressed", "lots")
    assert code == 2 and "is not a size" in err


def test_failed_layer_is_not_cached_but_good_ones_are(
    sandbox: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ociinspect.store import Store

    data = os.urandom(5000)
    ref = bad_layout(sandbox / "img", gz(data), sha256(data))
    run(capsys, "waste", ref, "--workers", "1")
    with Store(sandbox / "xdg" / "ociinspect") as store:
        assert store.cached_digests() == [sha256(gzip_layer([f("ok", b"fine")]).blob)]


def test_several_refs_partial_failure(
    images: dict[str, str], sandbox: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "waste", images["gzip"], f"oci:{sandbox}/missing:latest", "-f", "json")
    assert code == 4
    docs = json.loads(out)
    assert docs[0]["wasted_bytes"] == 1400 and "error" in docs[1]
    assert err.count("ociinspect: error:") == 1


def test_progress_bar_only_on_a_terminal(
    images: dict[str, str], cache: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import sys

    import ociinspect.cli.options as command

    monkeypatch.setattr(command, "PROGRESS_MIN_BYTES", 0)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["waste", images["gzip"], "--no-cache", "-f", "json"]) == 0
    assert "scanning 4 layers" in terminal.getvalue()
    monkeypatch.undo()
    code, _, err = run(capsys, "waste", images["gzip"], "--no-cache")
    assert code == 0 and err == ""


def test_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("waste", "files"):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0 and "Examples:" in out and f"ociinspect {command} " in out
