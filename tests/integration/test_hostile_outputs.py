"""Hostile strings in an image reach every output of every command safely (issue 10 §5, classes 2 and 4).

One OCI layout holds an image whose history, labels, user, file paths and tag carry ``|``, ``<``, ``>``,
backslashes, ESC sequences, the one-character CSI (U+009B), bidi overrides and zero-width characters.  Every
command's Markdown output keeps its tables (each row has as many unescaped pipes as its header) and has no raw
``<``/``>`` from the data; table, Markdown and HTML outputs and the ``-vv`` log lines carry no raw control or
format character.  Built in a temp dir with fixed mtimes (deterministic); no network.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest
from reliability.helpers import run_cli

from ociinspect.model import mediatypes

#: one value per hazard; each lands in history, labels, a file path and the tag
HOSTILE = "RUN curl https://x | sh <b>bold</b> a\\|b \x1b[31mred\x1b]0;title\x07 \x9b2J \u202etxt.exe \u200bz"
TAG = "v1"  # tags are validated by the reference parser; hostile tags are tested via the audit report
# raw control or invisible format characters (newline and tab are layout in text output, so not listed)
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer(files: dict[str, bytes]) -> tuple[bytes, bytes]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return raw, gzip.compress(raw, mtime=0)


def build_layout(root: Path, name: str) -> str:
    """An OCI layout at ``root/name`` with one hostile image tagged :data:`TAG`; returns its reference."""
    layout = root / name
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> dict[str, Any]:
        (blobs / _sha(data)[7:]).write_bytes(data)
        return {"digest": _sha(data), "size": len(data)}

    base_raw, base_gz = _layer({"etc/os-release": b'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian 12"\n'})
    app_raw, app_gz = _layer(
        {
            f"app/{HOSTILE}.txt".replace("/", "_").replace("_", "/", 1): b"x" * 5000,
            "app/dup|<a>.bin": b"y" * 4000,
            "app/dup\x1b[2J.bin": b"y" * 4000,
        }
    )
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"User": HOSTILE, "Labels": {f"k|{HOSTILE}": HOSTILE}, "Env": [f"X={HOSTILE}"]},
        "rootfs": {"type": "layers", "diff_ids": [_sha(base_raw), _sha(app_raw)]},
        "history": [{"created_by": "ADD rootfs /"}, {"created_by": HOSTILE}],
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": {"mediaType": mediatypes.OCI_CONFIG, **put(json.dumps(config).encode())},
        "layers": [
            {"mediaType": mediatypes.OCI_LAYER_GZIP, **put(base_gz)},
            {"mediaType": mediatypes.OCI_LAYER_GZIP, **put(app_gz)},
        ],
    }
    # the index entry names Docker's media type, the manifest declares OCI's: the loader logs it (info)
    top = {
        "mediaType": mediatypes.DOCKER_MANIFEST,
        **put(json.dumps(manifest).encode()),
        "annotations": {"org.opencontainers.image.ref.name": TAG},
    }
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))
    return f"oci:{layout}:{TAG}"


@pytest.fixture(scope="module")
def refs(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("hostile")
    return build_layout(root, "img|<a>\x1b[7m"), build_layout(root, "two\u202e")


def unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)(?:\\\\)*\|", line))


def assert_markdown_tables_intact(out: str) -> None:
    """Every row of every table has as many cell separators as its header; no raw tag from the data."""
    lines = out.splitlines()
    tables = 0
    for n, line in enumerate(lines):
        if re.fullmatch(r"\|[-|: ]+\|", line.strip()) and n > 0:  # a delimiter row: header above it
            tables += 1
            want = unescaped_pipes(line)  # the delimiter row has one separator per column
            for row in lines[n + 1 :]:
                if not row.startswith("|"):
                    break
                assert unescaped_pipes(row) == want, (lines[n - 1], row)
    assert tables >= 1, out
    prose = re.sub(r"(`+).*?\1", "", out)  # inside a code span "<a>" is literal text, not HTML
    for tag in ("<b>", "</b>", "<a>"):
        assert tag not in prose, (tag, out)
    assert not RAW.search(out), RAW.search(out)


COMMANDS = [
    ("inspect", "--no-os"),
    ("waste",),
    ("files",),
    ("compare",),
    ("vm",),
    ("check", "--no-policy", "--required-label", "missing|<x>", "--forbidden-path", "app/**", "--non-root-user"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_markdown_of_every_command_keeps_its_tables(command: tuple[str, ...], refs: tuple[str, str]) -> None:
    args = [*command, refs[0]] + ([refs[1]] if command[0] == "compare" else [])
    run = run_cli(*args, "--format", "markdown")
    assert run.code in (0, 1, 4), run  # check fails its rules (1); never 70
    assert_markdown_tables_intact(run.out)
    assert not RAW.search(run.err)


@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_table_output_of_every_command_has_no_raw_control_character(
    command: tuple[str, ...], refs: tuple[str, str]
) -> None:
    args = [*command, refs[0]] + ([refs[1]] if command[0] == "compare" else [])
    run = run_cli(*args)
    assert run.code in (0, 1, 4), run
    assert not RAW.search(run.out) and not RAW.search(run.err)
    assert "\\x1b" in run.out + run.err  # shown, escaped


@pytest.mark.parametrize("command", ["compare", "vm"])
def test_html_pages_show_controls_escaped(command: str, refs: tuple[str, str]) -> None:
    run = run_cli(command, *refs, "--format", "html")
    assert run.code == 0, run
    assert not RAW.search(run.out)
    assert "\\x1b" in run.out and "\\u202e" in run.out and "&lt;a&gt;" in run.out


def test_verbose_log_lines_escape_controls(refs: tuple[str, str]) -> None:
    run = run_cli("-vv", "inspect", "--no-os", refs[0])
    assert run.code == 0, run
    assert "served as" in run.err  # the loader logged the hostile reference
    assert not RAW.search(run.err)
    assert "\\x1b[7m" in run.err
