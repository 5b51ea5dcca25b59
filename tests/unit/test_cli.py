"""The command line on local sources: formats, the JSON contract, exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ociinspect.cli import main
from tests.corpus import corpus_path

JSON_KEYS = {
    "schema_version",
    "reference",
    "digest",
    "media_type",
    "platform",
    "config_digest",
    "compressed_size",
    "uncompressed_size",
    "layers",
}
LAYER_KEYS = {
    "digest",
    "media_type",
    "size",
    "uncompressed_size",
    "uncompressed_size_source",
    "diff_id",
    "created_by",
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def dive_ref(variant: str = "gzip") -> str:
    return f"oci-archive:{corpus_path('wagoodman__dive', '.data', f'test-oci-{variant}-image.tar')}"


def test_inspect_json_contract(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "inspect", dive_ref(), "--platform", "linux/arm64", "-f", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc.keys() >= JSON_KEYS
    assert doc["schema_version"] == 1
    assert doc["platform"] == {"os": "linux", "architecture": "arm64", "variant": None}
    assert doc["compressed_size"] == 4132 and doc["uncompressed_size"] == 12800
    (layer,) = doc["layers"]
    assert layer.keys() >= LAYER_KEYS
    assert layer["uncompressed_size_source"] == "trailer"
    assert isinstance(layer["size"], int)
    assert err == ""


def test_inspect_table_and_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", dive_ref("zstd"))
    assert code == 0
    assert "Uncompressed: 12.5 KiB (12800 bytes)" in out
    assert "(header)" in out and "COPY README.md" in out
    code, md, _ = run(capsys, "inspect", dive_ref("zstd"), "--format", "markdown")
    assert code == 0 and md.startswith("### oci-archive:") and "| digest" in md


def test_several_refs_give_a_list_and_partial_exit(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "inspect", dive_ref("gzip"), "oci:/does/not/exist", "-f", "json")
    assert code == 4
    docs = json.loads(out)
    assert [("error" in d) for d in docs] == [False, True]
    assert docs[1]["error"]["type"] == "NotFound" and docs[1]["error"]["exit_code"] == 3
    assert err.count("ociinspect: error:") == 1 and "hint:" in err


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (["inspect", "a/b:t:u"], 2, "more than one ':'"),
        (["inspect", "oci:/does/not/exist"], 3, "does not exist"),
        (["inspect", "x", "--platform", "linux"], 2, "os/arch"),
        (["inspect", "x", "--password", "hunter2"], 2, "refusing --password"),
        (["inspect", "x", "--username", "u"], 2, "go together"),
        (["inspect"], 2, "Missing argument"),
        (["nosuchcommand"], 2, "No such command"),
    ],
)
def test_errors_are_one_line_with_exit_codes(
    capsys: pytest.CaptureFixture[str], argv: list[str], code: int, needle: str
) -> None:
    got, out, err = run(capsys, *argv)
    assert got == code
    assert needle in err
    assert "Traceback" not in err and out == ""
    assert "hunter2" not in err


def test_all_platforms(capsys: pytest.CaptureFixture[str]) -> None:
    ref = f"oci:{corpus_path('anchore__stereoscope', 'pkg', 'image', 'oci', 'testdata', 'multiplatform_oci_dir')}"
    code, out, _ = run(capsys, "inspect", ref, "--all-platforms", "-f", "json")
    assert code == 0
    docs = json.loads(out)
    assert sorted(d["platform"]["architecture"] for d in docs) == ["amd64", "arm64"]
    assert len({d["index_digest"] for d in docs}) == 1


def test_exact_matches_cheap(capsys: pytest.CaptureFixture[str]) -> None:
    _, cheap, _ = run(capsys, "inspect", dive_ref("gzip"), "-f", "json")
    _, exact, _ = run(capsys, "inspect", dive_ref("gzip"), "-f", "json", "--exact")
    a, b = json.loads(cheap), json.loads(exact)
    assert a["uncompressed_size"] == b["uncompressed_size"]
    assert b["layers"][0]["uncompressed_size_source"] == "streamed"


def test_python_dash_m_and_version() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "ociinspect", "--version"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and r.stdout.startswith("ociinspect, version ")
    r = subprocess.run(
        [sys.executable, "-m", "ociinspect", "inspect", "Bad/Name"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "lower case" in r.stderr and "Traceback" not in r.stderr
