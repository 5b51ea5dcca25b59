"""``ociinspect diff A B`` against the real loopback Distribution registry (images pushed by skopeo).

Cost: the blob bytes the registry sent (its access log) are those of the layers above the shared prefix only
(the base layer is never fetched whole: at most small Range reads for cheap sizes), the prefix once when the
result depends on it, and no layer at all with a warm cache.  Exit codes 0/1/2/3, ``--exit-zero``, the unknown
verdict (exit 1 and a --hash hint), and the four formats.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from waste_fixtures import content, d, f, gzip_layer, write_oci_layout

from ociinspect.cli import main

pytestmark = [pytest.mark.registry, pytest.mark.timeout(180)]

BASE = [d("usr"), d("usr/lib"), f("usr/lib/libbig.so", content("libbig", 400_000)), f("etc/hosts", b"x\n")]
V1 = [d("app"), f("app/main.py", b"print(1)\n"), f("app/data.bin", content("data1", 20_000))]
V2 = [d("app"), f("app/main.py", b"print(2)\n"), f("app/data.bin", content("data2", 50_000))]  # same paths
V3 = [*V1, f("usr/lib/extra.so", content("extra", 30_000))]  # adds a path the base may hold: prefix needed
V1_SAME_SIZE = [d("app"), f("app/main.py", b"print(9)\n"), f("app/data.bin", content("data1", 20_000))]
V1_REORDERED = [f("app/data.bin", content("data1", 20_000)), d("app"), f("app/main.py", b"print(1)\n")]

_ACCESS = re.compile(r'"(?P<method>\S+) (?P<uri>\S+) [^"]*" (?P<status>\d{3}) (?P<size>\d+|-)')


@pytest.fixture(scope="module")
def pushed(registry_anon: Any, skopeo: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from harness import seeding

    root = tmp_path_factory.mktemp("diff-registry")
    tops = {"v1": V1, "v2": V2, "v3": V3, "same-size": V1_SAME_SIZE, "reordered": V1_REORDERED}
    base = gzip_layer(BASE, "ADD base /")
    refs, layers = {}, {}
    for name, specs in tops.items():
        top = gzip_layer(specs, "COPY app /app")  # one history line: only the files differ
        layout = write_oci_layout(root / name, [base, top])
        target = registry_anon.ref(f"diff/app:{name}")
        skopeo.copy(layout, f"docker://{target}", *seeding.dest_options())
        refs[name] = f"docker://{target}"
        layers[name] = top
    return {"refs": refs, "base": base, "tops": layers}


def _digest(blob: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(blob).hexdigest()


def blob_reads(registry: Any, since: int) -> list[tuple[str, int, int]]:
    """``(digest, status, bytes sent)`` of every blob GET after line ``since`` of the registry's access log."""
    lines = Path(registry.registry.access_log_path).read_text(errors="replace").splitlines()[since:]
    out = []
    for line in lines:
        m = _ACCESS.search(line)
        if m and m["method"] == "GET" and "/blobs/" in m["uri"]:
            out.append(
                (m["uri"].rsplit("/", 1)[-1], int(m["status"]), int(m["size"]) if m["size"] != "-" else 0)
            )
    return out


def log_lines(registry: Any) -> int:
    return len(Path(registry.registry.access_log_path).read_text(errors="replace").splitlines())


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["diff", *args, "--plain-http"])
    out, err = capsys.readouterr()
    return code, out, err


def test_only_the_differing_layers_are_streamed(
    pushed: dict[str, Any], registry_anon: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refs, base, tops = pushed["refs"], pushed["base"], pushed["tops"]
    cache = str(tmp_path / "cache")
    before = log_lines(registry_anon)
    code, out, err = run(capsys, refs["v1"], refs["v2"], "--cache-dir", cache, "-f", "json")
    assert code == 1, err
    doc = json.loads(out)
    reads = blob_reads(registry_anon, before)
    whole = {dg: size for dg, status, size in reads if status == 200}
    top1, top2, base_digest = _digest(tops["v1"].blob), _digest(tops["v2"].blob), _digest(base.blob)
    # the two differing layers streamed once each, byte for byte; the 400 kB base never fetched whole
    assert whole.get(top1) == len(tops["v1"].blob) and whole.get(top2) == len(tops["v2"].blob)
    assert base_digest not in whole
    # the loader's cheap size of the base: per image one Range read of the gzip trailer and one of its 64 KiB head
    base_reads = [(status, size) for dg, status, size in reads if dg == base_digest]
    assert {status for status, _ in base_reads} == {206} and sum(size for _, size in base_reads) <= 2 * (
        65536 + 64
    )
    layer_bytes = sum(size for dg, _, size in reads if dg in (top1, top2, base_digest))
    assert layer_bytes < len(base.blob)  # a pull of both images would fetch the base at least once
    assert doc["prefix_read"] is False and doc["read"]["layers_skipped"] == 1
    assert doc["read"]["layers_streamed"] == 2 and doc["read"]["bytes_streamed"] == len(
        tops["v1"].blob
    ) + len(tops["v2"].blob)
    assert [c["path"] for c in doc["files"]["modified"]] == ["/app/data.bin"]
    assert [c["path"] for c in doc["files"]["unknown"]] == ["/app/main.py"]  # same size: --hash settles it
    # warm cache: no layer fetched at all
    before = log_lines(registry_anon)
    code, out, _ = run(capsys, refs["v1"], refs["v2"], "--cache-dir", cache, "-f", "json")
    assert code == 1 and json.loads(out)["read"]["layers_cached"] == 2
    assert not [r for r in blob_reads(registry_anon, before) if r[0] in (top1, top2) and r[1] == 200]


def test_the_shared_prefix_is_read_once_when_the_result_depends_on_it(
    pushed: dict[str, Any], registry_anon: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    refs, base = pushed["refs"], pushed["base"]
    before = log_lines(registry_anon)
    code, out, err = run(capsys, refs["v1"], refs["v3"], "--no-cache", "-f", "json")
    assert code == 1, err
    doc = json.loads(out)
    whole = [dg for dg, status, _ in blob_reads(registry_anon, before) if status == 200]
    assert whole.count(_digest(base.blob)) == 1 and doc["prefix_read"] is True
    assert [(c["path"], c["size"]) for c in doc["files"]["added"]] == [("/usr/lib/extra.so", 30_000)]


def test_exit_codes_and_the_unknown_verdict(
    pushed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    refs = pushed["refs"]
    code, out, err = run(capsys, refs["v1"], refs["v1"], "--no-cache")
    assert code == 0 and "identical" in out
    code, out, err = run(capsys, refs["v1"], refs["v2"], "--no-cache", "--exit-zero")
    assert code == 0 and "the images differ" in out
    # rewritten with the same size, mode and owner: not known without --hash (exit 1 and a hint), then settled
    code, out, err = run(capsys, refs["v1"], refs["same-size"], "--no-cache", "-f", "json")
    assert code == 1 and json.loads(out)["identical"] is None and "--hash" in err
    code, out, _ = run(capsys, refs["v1"], refs["same-size"], "--no-cache", "--hash", "-f", "json")
    doc = json.loads(out)
    assert code == 1 and doc["identical"] is False and doc["files"]["modified"][0]["changes"] == ["content"]
    # the same files written by a different layer: identical once hashed (exit 0)
    code, out, err = run(capsys, refs["v1"], refs["reordered"], "--no-cache", "--hash", "-f", "json")
    assert code == 0 and json.loads(out)["identical"] is True, err
    # bad usage and an unreadable image
    code, _, err = run(capsys, refs["v1"], refs["v2"], "--depth", "-1")
    assert code == 2
    code, out, err = run(capsys, refs["v1"], refs["v1"].replace(":v1", ":missing"), "--no-cache")
    assert code == 3 and out == "" and "B" in err and "Traceback" not in err


def test_formats(pushed: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    refs = pushed["refs"]
    code, out, _ = run(capsys, refs["v1"], refs["v2"], "--no-cache")
    assert (
        code == 1
        and re.search(r"\+29\.3 KiB +/app  \(1 changed\)", out)
        and "verdict: the images differ" in out
    )
    code, md, _ = run(capsys, refs["v1"], refs["v2"], "--no-cache", "-f", "markdown")
    assert md.startswith("## Diff:") and "| modified | /app/data.bin |" in md
    code, page, _ = run(capsys, refs["v1"], refs["v2"], "--no-cache", "-f", "html")
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "/app/data.bin" in page
    assert "src=" not in page and "href=" not in page  # self-contained
    code, out, _ = run(capsys, refs["v1"], refs["v2"], "--no-cache", "-f", "json", "--depth", "1")
    doc = json.loads(out)
    assert {"schema_version", "a", "b", "layers", "files", "size_delta", "growth", "config"} <= doc.keys()
    assert doc["size_delta"]["compressed"] == len(pushed["tops"]["v2"].blob) - len(pushed["tops"]["v1"].blob)
    assert doc["size_delta"]["uncompressed"] is not None and doc["growth"]["depth"] == 1
