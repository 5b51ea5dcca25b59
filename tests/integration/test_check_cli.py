"""``ociinspect check`` end to end: fixture images from OCI layouts, archives written by skopeo and a real
Distribution registry; policy discovery from the working directory; the growth budget against a second image;
exit codes 0/1/2/3 and ``--warn-only``; ``--report``/``--output``; GitHub Actions annotations and step summary.

Expected sizes come from ``fixtures/build.py``'s ``EXPECTED`` (facts recorded while the images were built).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from fixtures.build import EXPECTED
from ociinspect.cli import main

GROWTH = EXPECTED["app1"].compressed_size - EXPECTED["base"].compressed_size  # app1's own layer
BASE_NAME = "example.invalid/fixtures/base"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["check", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def findings(
    capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, dict[str, dict[str, Any]], dict[str, Any]]:
    code, out, err = run(capsys, *argv, "-f", "json", "--no-cache")
    doc = json.loads(out)
    assert doc["exit_code"] == code, err
    return code, {x["rule"]: x for x in doc["images"][0]["findings"]}, doc


@pytest.fixture
def layouts(
    fixture_images: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)  # no policy file around unless a test writes one
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return {name: f"oci:{path}:latest" for name, path in fixture_images.items() if name != "all"}


# ------------------------------------------------------------------------------------------ growth budget


@pytest.mark.parametrize(
    ("flag", "value", "status"),
    [
        ("--max-growth-bytes", str(GROWTH), "pass"),
        ("--max-growth-bytes", str(GROWTH - 1), "fail"),
        ("--max-growth-bytes", str(GROWTH + 1), "pass"),
        ("--max-growth-percent", repr(GROWTH * 100 / EXPECTED["base"].compressed_size), "pass"),
        ("--max-growth-percent", "2", "fail"),  # 218 / 9664 = 2.26 %
        ("--max-growth-percent", "2.3", "pass"),
    ],
)
def test_growth_budget_between_two_fixture_images(
    layouts: dict[str, str], capsys: pytest.CaptureFixture[str], flag: str, value: str, status: str
) -> None:
    code, got, _ = findings(capsys, layouts["app1"], "--baseline", layouts["base"], flag, value)
    rule = flag[2:]
    assert got[rule]["status"] == status
    if rule == "max-growth-bytes":
        assert got[rule]["measured"] == GROWTH
    assert code == (1 if status == "fail" else 0)


def test_growth_uncompressed_and_missing_baseline(
    layouts: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    unc = EXPECTED["app1"].uncompressed_size - EXPECTED["base"].uncompressed_size
    args = ("--baseline", layouts["base"], "--growth-basis", "uncompressed", "--max-growth-bytes")
    code, got, _ = findings(capsys, layouts["app1"], *args, str(unc))
    assert (code, got["max-growth-bytes"]["measured"]) == (0, unc)
    code, got, _ = findings(capsys, layouts["app1"], *args, str(unc - 1))
    assert code == 1
    # a baseline that does not exist yet (first push): growth is skipped and says why
    code, got, _ = findings(
        capsys,
        layouts["app1"],
        "--baseline",
        layouts["base"].replace(":latest", ":nope"),
        "--max-growth-bytes",
        "0",
    )
    assert code == 0 and got["max-growth-bytes"]["status"] == "skip"
    assert "not found (first push?)" in got["max-growth-bytes"]["message"]


# ------------------------------------------------------------------------------------------ rules on fixtures


def test_metadata_rules_on_fixtures(layouts: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "--required-label",
        "org.opencontainers.image.source",
        "--non-root-user",
        "--allowed-base-image",
        BASE_NAME,
        "--max-layers",
        "2",
        "--max-compressed-size",
        str(EXPECTED["app2"].compressed_size),
    ]
    code, got, _ = findings(capsys, layouts["app2"], *args)  # user 1000, labelled, on base
    assert code == 0 and {r: x["status"] for r, x in got.items()} == dict.fromkeys(
        ["max-compressed-size", "max-layers", "required-labels", "non-root-user", "allowed-base-images"],
        "pass",
    )
    code, got, _ = findings(capsys, layouts["app1"], *args)  # user root
    assert (
        code == 1
        and got["non-root-user"]["status"] == "fail"
        and "User is 'root'" in got["non-root-user"]["message"]
    )
    code, got, _ = findings(capsys, layouts["base"], *args)  # no labels, no user
    assert got["required-labels"]["details"] == ["org.opencontainers.image.source: missing"]
    assert got["non-root-user"]["status"] == "fail"


def test_base_by_layer_prefix(layouts: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    # app3 has no base annotations; its first layer is base's
    code, got, _ = findings(capsys, layouts["app3"], "--allowed-base-image", layouts["base"])
    assert code == 0 and got["allowed-base-images"]["subject"] == "layer prefix"
    code, got, _ = findings(capsys, layouts["app3"], "--allowed-base-image", layouts["base2"])
    assert code == 1 and "layers do not start with an allowed base" in got["allowed-base-images"]["message"]


def test_platforms_of_an_index(layouts: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, got, _ = findings(
        capsys, layouts["multi"], "--required-platform", "linux/arm64", "--allowed-platform", "linux/amd64"
    )
    assert code == 1
    assert got["required-platforms"]["status"] == "pass"
    assert got["allowed-platforms"]["details"] == [
        "linux/arm64/v8: not allowed"
    ]  # attestations are not platforms
    code, _, doc = findings(capsys, layouts["multi"], "--all-platforms", "--max-layers", "5")
    assert code == 0 and [i["platform"] for i in doc["images"]] == ["linux/amd64", "linux/arm64/v8"]


def test_content_rules_read_layers_only_when_enabled(
    layouts: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, got, doc = findings(capsys, layouts["app1"], "--max-layers", "5")
    assert doc["images"][0]["content_read"] is False and doc["policy"]["content_rules"] == []
    code, out, _ = run(capsys, layouts["app1"], "--max-layers", "5")
    assert "Layer contents: not read (no enabled rule needs them)" in out
    code, got, doc = findings(
        capsys, layouts["app1"], "--forbidden-path", "**/*.py", "--lowest-efficiency", "0.9"
    )
    assert doc["images"][0]["content_read"] is True and code == 1
    assert got["forbidden-paths"]["details"] == ["/app/app1.py (layer 1; **/*.py)"]
    assert got["lowest-efficiency"]["status"] == "pass" and got["lowest-efficiency"]["reads_content"] is True


def test_archives_written_by_skopeo(
    fixture_archives: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for ref in (
        f"docker-archive:{fixture_archives.docker['app1']}",
        f"oci-archive:{fixture_archives.oci['app1']}",
    ):
        code, got, _ = findings(
            capsys, ref, "--forbidden-path", "/app/**", "--max-layers", "2", "--highest-wasted-bytes", "0"
        )
        assert code == 1, ref
        assert got["forbidden-paths"]["measured"] == 2  # /app/app1.py and /app/VERSION
        assert got["highest-wasted-bytes"]["status"] == "pass" and got["max-layers"]["status"] == "pass"


# ------------------------------------------------------------------------------------------ policy files


def test_policy_discovered_from_the_working_directory(
    layouts: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.ociinspect.check]\nmax-layers = 1\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    monkeypatch.chdir(sub)
    code, out, _ = run(capsys, layouts["app1"])
    assert code == 1 and f"Policy: {tmp_path / 'pyproject.toml'} (pyproject)" in out
    (sub / ".dive-ci").write_text("rules:\n  lowestEfficiency: 0.99\n  highestUserWastedPercent: disabled\n")
    code, out, _ = run(capsys, layouts["app1"])
    assert (
        code == 0
        and "(dive)" in out
        and "note: rules.highestWastedBytes is not set: dive's default disabled applies" in out
    )
    code, out, _ = run(capsys, layouts["app1"], "--no-policy", "--max-layers", "3")
    assert code == 0 and "Policy: command-line flags" in out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[check]\nmax-layers = 3\nmax-layer = 3\n", r"line 3: [check] max-layer: unknown rule"),
        (
            '[check]\n\nmax-compressed-size = "20 megs"\n',
            "line 3: [check] max-compressed-size: '20 megs': unknown unit 'megs'",
        ),
        ("[check]\nmax-layers = -1\n", "line 2: [check] max-layers: -1 is negative"),
        ("[check\n", "is not valid TOML"),
    ],
)
def test_bad_policy_exits_2_naming_key_and_line(
    layouts: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, message: str
) -> None:
    (tmp_path / ".ociinspect.toml").write_text(text)
    code, out, err = run(capsys, layouts["app1"])
    assert code == 2 and out == ""
    first = err.splitlines()[0]
    assert first.startswith("ociinspect: error: policy ") and message in first


def test_usage_errors_exit_2(layouts: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, layouts["app1"])[0] == 2  # no policy, no flags: nothing to check
    code, _, err = run(capsys, layouts["app1"], "--max-compressed-size", "20 megabytes")
    assert code == 2 and "--max-compressed-size: '20 megabytes': unknown unit 'megabytes'" in err
    assert run(capsys, layouts["app1"], "--report", "pdf=x.pdf", "--max-layers", "1")[0] == 2
    code, _, err = run(capsys, layouts["artifact"], "--max-layers", "1")
    assert code == 2 and "is an artifact" in err


def test_unreadable_image_exits_3_even_with_warn_only(
    layouts: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = f"oci:{tmp_path / 'nothing'}:latest"
    code, out, err = run(capsys, missing, "--max-layers", "1", "--warn-only", "-f", "json")
    assert code == 3 and json.loads(out)["errors"][0]["reference"] == missing and "ociinspect: error:" in err
    code, _, _ = run(capsys, layouts["app1"], missing, "--max-layers", "5")
    assert code == 3  # one of two unreadable: the gate cannot pass


def test_warn_only_and_severity(layouts: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, layouts["app1"], "--max-layers", "1")[0] == 1
    code, out, _ = run(capsys, layouts["app1"], "--max-layers", "1", "--warn-only")
    assert code == 0 and "FAIL (--warn-only: not failing the build)" in out
    code, out, _ = run(capsys, layouts["app1"], "--max-layers", "1", "--severity", "max-layers=warning")
    assert code == 0 and "WARN  max-layers" in out


# ------------------------------------------------------------------------------------------ outputs


def test_reports_output_and_github(
    layouts: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    (tmp_path / ".ociinspect.toml").write_text(
        '[check]\nmax-layers = 1\nnon-root-user = { value = true, severity = "warning" }\n'
    )
    (tmp_path / "r").mkdir()
    code, out, err = run(
        capsys,
        layouts["app1"],
        "--report",
        "junit=r/check.xml",
        "--report",
        "sarif=check.sarif",
        "--report",
        "gitlab=gl.json",
        "--output",
        "check.txt",
    )
    assert code == 1 and out == ""
    assert "Result: FAIL" in (tmp_path / "check.txt").read_text()
    assert ET.parse(tmp_path / "r" / "check.xml").getroot().get("failures") == "1"
    sarif = json.loads((tmp_path / "check.sarif").read_text())
    assert [r["ruleId"] for r in sarif["runs"][0]["results"]] == ["max-layers", "non-root-user"]
    assert [i["severity"] for i in json.loads((tmp_path / "gl.json").read_text())] == ["major", "minor"]
    # GitHub: annotations on stderr (stdout keeps the chosen format), located in the policy file
    assert "::error file=.ociinspect.toml,line=2,title=ociinspect check%3A max-layers::" in err
    assert "::warning file=.ociinspect.toml,line=3,title=ociinspect check%3A non-root-user::" in err
    text = summary.read_text()
    assert text.startswith("# earlier step\n") and "### ociinspect check: ❌ fail" in text
    run(capsys, layouts["app2"], "--max-layers", "5")
    assert summary.read_text().count("### ociinspect check") == 2  # appended, not replaced
    code, out, err = run(capsys, layouts["app1"], "-f", "github")
    assert out.startswith("::error ") and "::error" not in err  # not twice


# ------------------------------------------------------------------------------------------ registry


@pytest.mark.registry
def test_registry_image_and_baseline(
    seeded_registry: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    app1, base = seeded_registry.refs["fixtures/app1:latest"], seeded_registry.refs["fixtures/base:latest"]
    args = ["--plain-http", "--baseline", base, "--max-growth-bytes"]
    code, got, _ = findings(capsys, app1, *args, str(GROWTH))
    assert code == 0 and got["max-growth-bytes"]["measured"] == GROWTH
    assert findings(capsys, app1, *args, str(GROWTH - 1))[0] == 1
    code, got, _ = findings(
        capsys, app1, "--plain-http", "--lowest-efficiency", "1", "--forbidden-path", "**/VERSION"
    )
    assert code == 1 and got["forbidden-paths"]["details"] == ["/app/VERSION (layer 1; **/VERSION)"]
    missing = seeded_registry.ref("fixtures/app1:no-such-tag")
    assert run(capsys, missing, "--plain-http", "--max-layers", "1")[0] == 3


# ------------------------------------------------------------------------------------------ issue 11


def test_a_failed_rule_is_not_hidden_by_an_unreadable_ref(
    layouts: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The one exit-code rule: a failed rule exits 1 even when another ref could not be read (it was 3)."""
    missing = f"oci:{tmp_path / 'nothing'}:latest"
    code, out, err = run(capsys, layouts["app1"], missing, "--max-layers", "1", "-f", "json")
    assert code == 1 and json.loads(out)["exit_code"] == 1
    assert json.loads(out)["errors"][0]["reference"] == missing and err.count("ociinspect: error:") == 1


def test_format_table_and_the_deprecated_text_alias(
    layouts: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`check` speaks the vocabulary of every command (`table`, the default); `text` still works, with a note."""
    table = run(capsys, layouts["app1"], "--max-layers", "5", "-f", "table")
    text = run(capsys, layouts["app1"], "--max-layers", "5", "-f", "text")
    default = run(capsys, layouts["app1"], "--max-layers", "5")
    assert table[0] == text[0] == default[0] == 0 and table[1] == text[1] == default[1]
    assert "--format text is deprecated" in text[2] and "deprecated" not in table[2]


def test_content_rules_read_manifest_and_config_once(
    layouts: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The content rules scan the images already loaded: one root manifest read per ref (it was two)."""
    from ociinspect.session import Session

    opened = Session.open
    roots: list[str] = []

    def counting(self: Session, reference: object) -> Any:
        src = opened(self, reference)  # type: ignore[arg-type]
        root = src.root

        def counted() -> Any:
            roots.append(str(reference))
            return root()

        monkeypatch.setattr(src, "root", counted)
        return src

    monkeypatch.setattr(Session, "open", counting)
    code, _, doc = findings(capsys, layouts["app1"], "--forbidden-path", "**/*.py")
    assert code == 1 and doc["images"][0]["content_read"] is True
    assert roots == [layouts["app1"]]


# ------------------------------------------------------------------------------------------ issue 13: why it grew

SCHEMAS = Path(__file__).resolve().parents[1] / "data" / "schemas"
#: app1 = base + one layer (COPY app1/ /) holding /app/app1.py (800 bytes) and /app/VERSION (6 bytes)
GROWN_DIR, GROWN_FILE = "+806 B /app/ (directory, 2 changed path(s))", "+800 B /app/app1.py (added)"


def _layer_reads(monkeypatch: pytest.MonkeyPatch, layers: set[str]) -> list[str]:
    """Every read of a layer blob (``open_blob``, ``blob``, ``blob_range``) of any source the session opens."""
    from ociinspect.session import Session

    opened = Session.open
    reads: list[str] = []

    def counting(self: Session, reference: object) -> Any:
        src = opened(self, reference)  # type: ignore[arg-type]
        for name in ("open_blob", "blob", "blob_range"):
            method = getattr(src, name)

            def counted(digest: str, *args: Any, _m: Any = method, **kwargs: Any) -> Any:
                if digest in layers:
                    reads.append(digest)
                return _m(digest, *args, **kwargs)

            monkeypatch.setattr(src, name, counted)
        return src

    monkeypatch.setattr(Session, "open", counting)
    return reads


def test_a_failed_growth_rule_names_the_grown_paths_in_every_format(
    layouts: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import jsonschema  # type: ignore[import-untyped]
    import xmlschema

    args = (
        layouts["app1"],
        "--baseline",
        layouts["base"],
        "--max-growth-bytes",
        str(GROWTH - 1),
        "--no-cache",
    )
    code, got, _ = findings(capsys, *args, "--max-growth-percent", "2")
    for rule in ("max-growth-bytes", "max-growth-percent"):  # the numbers stand; the diff is computed once
        assert got[rule]["status"] == "fail" and got[rule]["explanation"]["available"] is True
    assert code == 1 and got["max-growth-bytes"]["measured"] == GROWTH
    paths = got["max-growth-bytes"]["explanation"]["paths"]
    assert paths[:2] == [
        {"path": "/app", "delta": 806, "kind": "dir", "changed": 2},
        {"path": "/app/app1.py", "delta": 800, "kind": "added", "changed": 1},
    ]
    code, out, _ = run(
        capsys,
        *args,
        "--report",
        "junit=check.xml",
        "--report",
        "sarif=check.sarif",
        "--report",
        "markdown=check.md",
        "--report",
        "gitlab=gl.json",
    )
    assert code == 1
    failed = out.split("FAIL  max-growth-bytes", 1)[1]
    assert GROWN_DIR in failed and GROWN_FILE in failed  # the list under the failed rule
    assert GROWN_FILE in (tmp_path / "check.md").read_text()
    junit = (tmp_path / "check.xml").read_text()
    xmlschema.XMLSchema(str(SCHEMAS / "junit-10.xsd")).validate(tmp_path / "check.xml")
    failure = ET.fromstring(junit).find(".//failure")
    assert failure is not None and GROWN_DIR in (failure.get("message") or "")
    assert GROWN_FILE in (failure.text or "")
    sarif = json.loads((tmp_path / "check.sarif").read_text())
    jsonschema.Draft7Validator(json.loads((SCHEMAS / "sarif-schema-2.1.0.json").read_text())).validate(sarif)
    assert GROWN_FILE in sarif["runs"][0]["results"][0]["message"]["text"]
    assert GROWN_FILE in json.loads((tmp_path / "gl.json").read_text())[0]["description"]
    code, out, _ = run(capsys, *args, "-f", "github")
    assert code == 1 and out.startswith("::error ") and "%0A" + GROWN_FILE in out


def test_a_passing_growth_rule_reads_no_layer(
    layouts: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    layers = {x.digest for x in EXPECTED["app1"].layers} | {x.digest for x in EXPECTED["base"].layers}
    reads = _layer_reads(monkeypatch, layers)
    args = (layouts["app1"], "--baseline", layouts["base"], "--max-growth-bytes")
    code, got, _ = findings(capsys, *args, str(GROWTH))
    assert code == 0 and got["max-growth-bytes"]["explanation"] is None and reads == []
    code, got, _ = findings(capsys, *args, str(GROWTH - 1))  # violated: the diff reads app1's own layer
    assert code == 1 and reads and got["max-growth-bytes"]["explanation"]["available"]


def test_an_unavailable_explanation_never_hides_the_failure(
    fixture_images: dict[str, Path],
    layouts: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(fixture_images["app1"], broken)
    top = EXPECTED["app1"].layers[-1].digest
    (broken / "blobs" / "sha256" / top.split(":", 1)[1]).write_bytes(b"not the layer")
    args = (f"oci:{broken}:latest", "--baseline", layouts["base"], "--max-growth-bytes", str(GROWTH - 1))
    code, got, doc = findings(capsys, *args)
    finding = got["max-growth-bytes"]
    assert (code, finding["status"], finding["measured"]) == (1, "fail", GROWTH) and doc["errors"] == []
    assert finding["explanation"]["available"] is False and finding["explanation"]["unavailable"]
    code, out, _ = run(capsys, *args, "--no-cache")
    assert code == 1 and "FAIL  max-growth-bytes" in out and "explanation unavailable" in out
