"""``files REF --cat PATH`` and ``--extract PATH… -o DIR`` (:mod:`ociinspect.content.extract`).

Truth: every regular file of the final filesystem, as an independent tarfile-based reference unpacker sees it
(OCI whiteouts, opaque directories, symlinks resolved inside the image), equals ``--cat`` byte for byte.  Cost:
only the layers from the top down to the one holding the path are streamed, none to decide with a warm layer
cache.  Hostile layers (``../`` members, a symlink out of the root then a file through it) write nothing outside
the output directory.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from waste_fixtures import Spec, content, d, f, gzip_layer, hard, opq, sym, wh, write_oci_layout

from ociinspect.cli import main
from ociinspect.content.extract import ImageFiles
from ociinspect.image.loader import LoadOptions, load
from ociinspect.session import Session
from ociinspect.store import Store

BIG = content("big", 300_000)

LAYERS: list[list[Spec]] = [
    [
        d("etc"),
        f("etc/os-release", b'ID=demo\nVERSION_ID="1"\n'),
        f("etc/hosts", b"127.0.0.1 localhost\n"),
        d("usr"),
        d("usr/lib"),
        f("usr/lib/a.so", content("a.so", 5000), mode=0o755),
        f("usr/lib/gone.so", b"gone"),
        sym("lib", "usr/lib"),
        d("data"),
        f("data/old", b"old data"),
        f("big.bin", BIG),
    ],
    [
        f("etc/hosts", b"127.0.0.1 localhost\n10.0.0.1 db\n"),
        wh("usr/lib/gone.so"),
        opq("data"),
        f("data/new", b"new data"),
        sym("etc/alias", "/etc/hosts"),
        sym("etc/climb", "../../../../etc/os-release"),
    ],
    [
        d("app"),
        f("app/main.py", b"print('hi')\n"),
        hard("app/main-link.py", "app/main.py"),
        sym("app/loop1", "loop2"),
        sym("app/loop2", "loop1"),
    ],
]


# ------------------------------------------------------------------------------------- reference unpacker


def _clean(name: str) -> str:
    return "/".join(p for p in name.split("/") if p not in ("", "."))


def reference_tree(tars: Sequence[bytes]) -> dict[str, tuple[str, bytes | str]]:
    """path → ("file", bytes) | ("symlink", target) | ("dir", ""), layers applied in order with OCI whiteouts
    (each layer's whiteouts before its entries); hardlinks copy their target's bytes."""
    fs: dict[str, tuple[str, bytes | str]] = {}

    def drop(path: str, keep_self: bool = False) -> None:
        for p in list(fs):
            if p.startswith(path + "/") or (p == path and not keep_self):
                del fs[p]

    for data in tars:
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            members = tf.getmembers()
            for m in members:
                head, _, base = _clean(m.name).rpartition("/")
                if base == ".wh..wh..opq":
                    drop(head, keep_self=True)
                elif base.startswith(".wh."):
                    drop(f"{head}/{base[4:]}" if head else base[4:])
            for m in members:
                name = _clean(m.name)
                if name.rpartition("/")[2].startswith(".wh."):
                    continue
                if m.isdir():
                    fs[name] = ("dir", "")
                    continue
                drop(name)
                if m.isreg():
                    fobj = tf.extractfile(m)
                    assert fobj is not None
                    fs[name] = ("file", fobj.read())
                elif m.issym():
                    fs[name] = ("symlink", m.linkname)
                elif m.islnk():
                    fs[name] = fs[_clean(m.linkname)]
    return fs


def reference_cat(fs: dict[str, tuple[str, bytes | str]], path: str) -> bytes | None:
    """Resolve ``path`` inside the reference tree (symlinks followed, ``..`` stops at the root)."""
    parts, hops = path.split("/"), 0
    done: list[str] = []
    while parts:
        name = parts.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            if done:
                done.pop()
            continue
        node = fs.get("/".join([*done, name]))
        if node is not None and node[0] == "symlink":
            hops += 1
            if hops > 40:
                return None
            target = str(node[1])
            done = [] if target.startswith("/") else done
            parts = target.split("/") + parts
            continue
        done.append(name)
    node = fs.get("/".join(done))
    return node[1] if node is not None and node[0] == "file" and isinstance(node[1], bytes) else None


# ---------------------------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def image_ref(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, tuple[str, bytes | str]]]:
    blobs = [gzip_layer(specs) for specs in LAYERS]
    ref = write_oci_layout(tmp_path_factory.mktemp("cat") / "layout", blobs)
    tars = [tarfile_bytes(specs) for specs in LAYERS]
    return ref, reference_tree(tars)


def tarfile_bytes(specs: Sequence[Spec]) -> bytes:
    from waste_fixtures import tar_bytes

    return bytes(tar_bytes(specs))


def cat(capsysbinary: pytest.CaptureFixture[bytes], ref: str, path: str) -> tuple[int, bytes, bytes]:
    code = main(["files", ref, "--no-cache", "--cat", path])
    out, err = capsysbinary.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------------------------ tests


def test_cat_equals_the_reference_unpacker_byte_for_byte(
    image_ref: tuple[str, dict[str, tuple[str, bytes | str]]], capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    ref, fs = image_ref
    paths = [p for p, node in fs.items() if node[0] in ("file", "symlink")] + ["lib/a.so", "etc/climb"]
    checked = 0
    for path in sorted(paths):
        expected = reference_cat(fs, path)
        code, out, err = cat(capsysbinary, ref, "/" + path)
        if path == "lib":  # a symlink to a directory
            assert code == 2 and b"is a directory" in err
        elif expected is None:
            assert code == 3, (path, err)
        else:
            assert (code, out) == (0, expected), (path, err)
            checked += 1
    assert checked >= 9  # files, symlinks through /lib and /etc, a hardlink, a 300 kB file
    assert reference_cat(fs, "etc/climb") == b'ID=demo\nVERSION_ID="1"\n'  # '..' stops at the image root


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/usr/lib/gone.so", "whiteout"),
        ("/data/old", "opaque directory"),
        ("/app/loop1", "symlink loop"),
        ("/nothing/here", "absent"),
    ],
)
def test_cat_of_a_hidden_or_absent_path_is_not_in_the_image(
    image_ref: tuple[str, dict[str, tuple[str, bytes | str]]],
    capsysbinary: pytest.CaptureFixture[bytes],
    path: str,
    why: str,
) -> None:
    code, out, err = cat(capsysbinary, image_ref[0], path)
    assert code == 3 and out == b"", why
    assert b"error:" in err and b"Traceback" not in err


def test_cat_refuses_a_path_climbing_out(
    image_ref: tuple[str, dict[str, tuple[str, bytes | str]]], capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    code, out, err = cat(capsysbinary, image_ref[0], "../etc/hosts")
    assert code == 2 and out == b"" and b"climbs out" in err


def _files(ref: str, store: Store | None) -> tuple[Session, ImageFiles]:
    session = Session()
    src = session.open(ref)
    image = load(src, LoadOptions())
    return session, ImageFiles(src, image, cache=store)


def test_only_the_layers_down_to_the_holder_are_streamed_and_none_with_a_warm_cache(
    image_ref: tuple[str, dict[str, tuple[str, bytes | str]]], tmp_path: Path
) -> None:
    ref = image_ref[0]
    session, files = _files(ref, None)
    with session, files:
        assert files.open("app/main.py").read() == b"print('hi')\n"
        assert files.streamed == [2]  # the top layer holds it: nothing else read
    session, files = _files(ref, None)
    with session, files:
        assert files.open("etc/hosts").read().endswith(b"db\n")
        assert files.streamed == [2, 1]  # stops at layer 1: layer 0's older /etc/hosts never read
    with Store(tmp_path / "cache") as store:
        session, files = _files(ref, store)
        with session, files:
            assert files.open("big.bin").read() == BIG
            assert files.streamed == [2, 1, 0]
        session, files = _files(ref, store)  # warm: the index picks layer 0 without streaming the others
        with session, files:
            assert files.open("big.bin").read() == BIG
            assert files.streamed == [0]


def test_extract_writes_files_trees_and_symlinks_as_symlinks(
    image_ref: tuple[str, dict[str, tuple[str, bytes | str]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref, fs = image_ref
    out = tmp_path / "out"
    code = main(["files", ref, "--no-cache", "--extract", "/etc", "--extract", "/app", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    for path, node in fs.items():
        if not path.startswith(("etc/", "app/")):
            continue
        dest = out / path
        if node[0] == "file":
            assert dest.read_bytes() == node[1] and not dest.is_symlink()
        elif node[0] == "symlink":
            assert dest.is_symlink() and os.readlink(dest) == node[1]
    assert (out / "app" / "main-link.py").read_bytes() == b"print('hi')\n"
    assert not (out / "data").exists()


def _hostile_layout(root: Path, layers: list[list[Spec]]) -> str:
    return str(write_oci_layout(root, [gzip_layer(specs) for specs in layers]))


def test_hostile_layers_cannot_write_outside_the_output_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = tmp_path / "host-secret"
    secret.write_bytes(b"host secret")
    through = _hostile_layout(
        tmp_path / "through",
        [
            [sym("esc", str(outside)), sym("up", "../../../../.."), sym("leak", str(secret))],
            [f("esc/pwned", b"x"), f("up/tmp/pwned2", b"y")],
        ],
    )
    climbing = _hostile_layout(tmp_path / "climb", [[f("ok", b"1"), f("../pwned3", b"z")]])
    for ref in (through, climbing):
        out = tmp_path / "out"
        code = main(["files", ref, "--no-cache", "--extract", "/", "-o", str(out)])
        err = capsys.readouterr().err
        assert code == 3 and "Traceback" not in err, err
        assert list(outside.iterdir()) == []
        assert not (tmp_path / "pwned3").exists() and not Path("/tmp/pwned2").exists()
        for p in out.rglob("*"):  # what was written stays a symlink or lies inside out/
            assert p.is_symlink() or p.resolve().is_relative_to(out.resolve())
    # --cat of a symlink to a host path resolves inside the image: not the host's file
    code = main(["files", through, "--no-cache", "--cat", "/leak"])
    out_text, err = capsys.readouterr()
    assert code == 3 and "host secret" not in out_text
