"""Odd images and hostile servers against every command, the new ones first (manifest, config, digest, tags,
repos, blob, referrers, diff, files --cat/--extract): each case is one defect class found by driving the CLI as a
hostile server or image would — a typed one-line error with a hint and a documented exit code, never exit 70,
never a hang, never wrong numbers."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
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


# ------------------------------------------------------------------------------ tar headers tarfile chokes on


def _sparse(realsize: int, *, map_newline: bool = True) -> tuple[tarfile.TarInfo, bytes]:
    """A PAX GNU sparse 1.0 member: one 512-byte data block at offset 0 of a file of ``realsize`` bytes (the rest
    holes).  Without ``map_newline`` its sparse map has no newline: tarfile raises ValueError, not TarError."""
    sparse_map = b"1\n0\n512\n" if map_newline else b"1"
    sparse_map += b"\0" * (-len(sparse_map) % 512)
    ti = tarfile.TarInfo("sparse")
    ti.size = len(sparse_map) + 512 if map_newline else 0
    ti.pax_headers = {
        "GNU.sparse.major": "1",
        "GNU.sparse.minor": "0",
        "GNU.sparse.name": "sparse",
        "GNU.sparse.realsize": str(realsize),
    }
    ti.mtime = MTIME
    return ti, (sparse_map + b"D" * 512 if map_newline else b"")


def _sparse_layer(member: tuple[tarfile.TarInfo, bytes]) -> LayerBlob:
    ti, payload = member
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        tf.addfile(ti, io.BytesIO(payload))
    data = buf.getvalue()
    return LayerBlob(gz(data), LAYER_GZIP, sha256(data))


@pytest.mark.parametrize(
    "argv",
    [("files",), ("files", "--hash"), ("waste",), ("files", "--cat", "/sparse"), ("diff", "--hash")],
)
def test_a_tar_header_tarfile_rejects_with_valueerror_is_invalid_image(
    tmp_path: Path, argv: tuple[str, ...]
) -> None:
    """tarfile raises ValueError (not TarError) for a GNU sparse map without its newline: every tar reader
    (layer scan, extraction, archives, eStargz TOC) treats TAR_ERRORS alike.  Was exit 70 in every command."""
    ref = write_oci_layout(tmp_path / "img", [_sparse_layer(_sparse(5, map_newline=False))])
    other = write_oci_layout(tmp_path / "other", [gzip_layer([f("a", b"a")])])
    _one_error(run_cli(*argv, ref, *([other] if argv[0] == "diff" else []), "--no-cache"), 3)


def test_an_archive_whose_tar_header_tarfile_rejects_is_invalid_image(tmp_path: Path) -> None:
    path = tmp_path / "a.tar"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        tf.addfile(_sparse(5, map_newline=False)[0])
    _one_error(run_cli("manifest", f"docker-archive:{path}"), 3)


@pytest.mark.parametrize("argv", [("files", "--hash"), ("files", "--cat", "/sparse"), ("waste", "--hash")])
def test_a_sparse_file_claiming_a_petabyte_is_refused_before_expanding(
    tmp_path: Path, argv: tuple[str, ...]
) -> None:
    """A 1 KiB sparse member whose map declares 10^15 bytes of holes: hashing, --cat and --extract used to write
    zeros for ever (a hang, and a disk filled by --extract).  The logical bytes count against --max-uncompressed."""
    ref = write_oci_layout(tmp_path / "img", [_sparse_layer(_sparse(10**15))])
    run = run_cli(*argv, ref, "--no-cache")
    _one_error(run, 3)
    assert "sparse file 'sparse' claims 1000000000000000 bytes" in run.err, run
    out = tmp_path / "out"
    _one_error(run_cli("files", ref, "--no-cache", "--extract", "/sparse", "-o", str(out)), 3)
    assert not [p for p in out.rglob("*") if p.is_file()], "a failed read left a file in the output directory"


def test_a_small_sparse_file_is_read_with_its_holes(tmp_path: Path) -> None:
    ref = write_oci_layout(tmp_path / "img", [_sparse_layer(_sparse(4096))])
    run = run_cli("files", ref, "--no-cache", "--hash", "-f", "json")
    assert run.code == 0, run
    (entry,) = [e for e in run.doc["files"] if e["path"] == "/sparse"]
    assert entry["size"] == 4096


# --------------------------------------------------------------------------------------------- hints


def test_every_error_has_a_hint_line(tmp_path: Path) -> None:
    """Errors raised without a hint (70 raise sites: manifest shape, symlink loops, --layer …) get their class's
    default hint, so every error is the promised two lines.  Was: no hint line."""
    from ociinspect import errors

    for cls in (
        errors.InvalidImage,
        errors.NotFound,
        errors.DigestMismatch,
        errors.LimitExceeded,
        errors.RegistryError,
        errors.UsageError,
        errors.PolicyError,
        errors.DatabaseError,
    ):
        assert cls("x").hint, cls
    assert errors.InvalidImage("x", hint="mine").hint == "mine"
    ref = write_oci_layout(tmp_path / "img", [])
    _one_error(run_cli("files", ref, "--layer", "-1"), 2)
    loop = _gzip_tar([_link("a", "b"), _link("b", "a")])
    ref = write_oci_layout(tmp_path / "loop", [loop])
    _one_error(run_cli("files", ref, "--no-cache", "--cat", "/a"), 3)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "index.json").write_text("[1, 2]")
    (tmp_path / "bad" / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    _one_error(run_cli("manifest", f"oci:{tmp_path / 'bad'}"), 3)


def _link(name: str, target: str) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname = tarfile.SYMTYPE, target
    return ti


# ------------------------------------------------------------------------------- the library's arguments


def test_the_library_refuses_hostile_arguments_with_typed_errors(tmp_path: Path) -> None:
    """ociinspect.Session methods given wrong types: each a typed OciInspectError where the argument enters.  Were
    AttributeError/TypeError/ValueError/KeyError from deep inside (``s.waste(None)``, ``s.files(ref, top="x")``,
    ``s.check(ref, rules={"nope": 1})`` …), and ``s.compare("oci:DIR")`` read each character of the string as an
    image reference — from Docker Hub."""
    from ociinspect import Session, errors

    ref = write_oci_layout(tmp_path / "img", [gzip_layer([f("etc/a", b"aaaa")])])
    with Session() as s:
        calls: dict[str, Callable[[], object]] = {
            "waste(None)": lambda: s.waste(None),  # type: ignore[arg-type]
            "config(5)": lambda: s.config(5),  # type: ignore[arg-type]
            "digest(bytes)": lambda: s.digest(b"oci:/x"),  # type: ignore[arg-type]
            "tags(None)": lambda: s.tags(None),  # type: ignore[arg-type]
            "diff(ref, None)": lambda: s.diff(ref, None),  # type: ignore[arg-type]
            "compare(str)": lambda: s.compare(ref),
            "compare(bases=str)": lambda: s.compare([ref, "x\x07y"], bases=ref),
            "vm(None)": lambda: s.vm(None),  # type: ignore[arg-type]
            "vm(replicas='2')": lambda: s.vm(ref, replicas="2"),  # type: ignore[arg-type]
            "vm(writable_layer='x')": lambda: s.vm(ref, writable_layer="x"),  # type: ignore[arg-type]
            "files(layer='1')": lambda: s.files(ref, layer="1"),  # type: ignore[arg-type]
            "files(top='x')": lambda: s.files(ref, top="x"),  # type: ignore[arg-type]
            "files(path=5)": lambda: s.files(ref, path=5),  # type: ignore[arg-type]
            "waste(cache_dir=5)": lambda: s.waste(ref, cache_dir=5),  # type: ignore[arg-type]
            "diff(depth=-1)": lambda: s.diff(ref, ref, depth=-1),
            "check(rules unknown)": lambda: s.check(ref, rules={"nope": 1}),
            "check(rules list)": lambda: s.check(ref, rules=[("max-layers", 1)]),  # type: ignore[arg-type]
            "check(policy=5)": lambda: s.check(ref, policy=5),  # type: ignore[arg-type]
            "blob(None)": lambda: s.blob(ref, None, io.BytesIO()),  # type: ignore[arg-type]
        }
        for name, call in calls.items():
            with pytest.raises(errors.OciInspectError) as caught:
                call()
            assert caught.value.hint, name
            assert caught.value.exit_code in (2, 3), (name, caught.value)
        with pytest.raises(errors.UsageError, match="two or more images, 1 given"):
            s.compare(ref)  # one reference, not one per character


# ------------------------------------------------------------------------------- index platforms of wrong types


def test_an_index_platform_whose_variant_is_not_text_matches_no_platform(tmp_path: Path) -> None:
    """An index entry ``{"os": "linux", "architecture": "arm", "variant": ["v6"]}``: the variant of the wrong type
    was dropped, so the entry became plain ``linux/arm`` (= arm/v7) and ``--platform linux/arm/v7`` picked an
    arm/v6 image.  A platform with a variant (or os.version) that is not text is malformed: it matches nothing."""
    import hashlib
    import json

    ref = write_oci_layout(tmp_path / "img", [gzip_layer([f("etc/a", b"aaaa")])])
    layout = tmp_path / "img"
    index = json.loads((layout / "index.json").read_text())
    (manifest,) = index["manifests"]
    child = {k: manifest[k] for k in ("mediaType", "digest", "size")}
    inner = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{**child, "platform": {"os": "linux", "architecture": "arm", "variant": ["v6"]}}],
    }
    data = json.dumps(inner).encode()
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    manifest.update(mediaType=inner["mediaType"], digest=f"sha256:{digest}", size=len(data))
    (layout / "index.json").write_text(json.dumps(index))
    run = run_cli("inspect", ref, "--platform", "linux/arm/v7", "--no-os")
    _one_error(run, 3)
    assert "linux/arm/v7" in run.err, run


# ------------------------------------------------------------------------------------- archives on stdin


@pytest.mark.parametrize("data", [b"garbage " * 640, b"\x1f\x8b\x08\x00garbage"], ids=["not-a-tar", "bad-gzip"])
def test_an_unreadable_archive_on_stdin_is_named_as_stdin(data: bytes) -> None:
    """``docker-archive:-`` with garbage (or a broken gzip) on stdin: the error named the spooled temporary file
    (``'/tmp/ociinspect-stdin-….tar'``), a path the user never gave and that no longer exists."""
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "ociinspect", "inspect", "docker-archive:-"],
        input=data,
        capture_output=True,
        timeout=60,
    )
    err = run.stderr.decode()
    _one_error(CliRun(run.returncode, run.stdout.decode(), err, 0.0), 3)
    assert "ociinspect-stdin-" not in err and "'-' (standard input)" in err, err
