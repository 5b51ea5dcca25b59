"""Policy files: our TOML (strict, errors name the key and the line), dive's ``.dive-ci`` (dive 0.13.1's
semantics), discovery, command-line flags, and the Go parsers behind dive's values.

Expected values come from Go's and go-humanize's documented behaviour and from runs of the dive 0.13.1 binary on
the same strings (``tests/integration/test_check_dive.py`` repeats the dive-facing ones against the binary).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ociinspect.errors import PolicyError
from ociinspect.model.tomltext import locate_toml
from ociinspect.policy.dive import read_dive
from ociinspect.policy.files import discover, load_policy
from ociinspect.policy.flags import with_flags
from ociinspect.policy.grammar import go_format_float, go_parse_float, parse_bytes
from ociinspect.policy.rules import RULES
from ociinspect.policy.values import parse_value
from tests.corpus import corpus_path

# ------------------------------------------------------------------------------------------ Go's parsers

FLOATS = [
    ("0.5", 0.5),
    (".5", 0.5),
    ("5.", 5.0),
    ("+.69", 0.69),
    ("-0.1", -0.1),
    ("1e-1", 0.1),
    ("1E+2", 100.0),
    ("0x1p-1", 0.5),
    ("0x.8p0", 0.5),
    ("0X1.8P1", 3.0),
    ("0.6_9", 0.69),
    ("1_000.5", 1000.5),
    ("inf", math.inf),
    ("+Inf", math.inf),
    ("-infinity", -math.inf),
    ("1e-400", 0.0),
]
BAD_FLOATS = [
    "",
    ".",
    " 1",
    "1 ",
    "0_.5",
    "_1",
    "1_",
    "+nan",
    "infin",
    "0x1",
    "0x1.8",
    "1e",
    "1e+",
    "1..2",
    "1e400",
    "0b1",
    "١",
]


@pytest.mark.parametrize(("text", "value"), FLOATS)
def test_go_parse_float(text: str, value: float) -> None:
    assert go_parse_float(text) == value


@pytest.mark.parametrize("text", ["nan", "NaN", "NAN"])
def test_go_parse_float_nan(text: str) -> None:
    assert math.isnan(go_parse_float(text))


@pytest.mark.parametrize("text", BAD_FLOATS)
def test_go_parse_float_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"strconv\.ParseFloat"):
        go_parse_float(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1000.0, "1000"),
        (0.1, "0.1"),
        (1e21, "1000000000000000000000"),
        (1e-7, "0.0000001"),
        (-0.0, "-0"),
        (math.nan, "NaN"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (0.6941176470588235, "0.6941176470588235"),
    ],
)
def test_go_format_float(value: float, text: str) -> None:
    assert go_format_float(value) == text


#: go-humanize 1.0.1 ParseBytes; the spellings of the issue ("20Mb" vs "20MB" vs "20MiB") first
SIZES = [
    ("20MB", 20_000_000),
    ("20Mb", 20_000_000),
    ("20mb", 20_000_000),
    ("20M", 20_000_000),
    ("20 MB", 20_000_000),
    ("20MiB", 20_971_520),
    ("20Mi", 20_971_520),
    ("20mib", 20_971_520),
    ("1400", 1400),
    ("1400B", 1400),
    ("1400 b", 1400),
    ("1400 ", 1400),
    ("1.4KB", 1400),
    ("1.4k", 1400),
    ("1.399KB", 1399),
    ("1,399", 1399),
    ("1,024 KiB", 1024 * 1024),
    (".5K", 500),
    ("1.3671875KiB", 1400),
    ("2KiB", 2048),
    ("1Ki", 1024),
    ("1GB", 10**9),
    ("1GiB", 2**30),
    ("1TB", 10**12),
    ("1PiB", 2**50),
    ("1EB", 10**18),
    ("1400.9", 1400),
    ("0", 0),
]
BAD_SIZES = [
    (" 1400", "invalid syntax"),  # a leading space: no number
    ("-5MB", "invalid syntax"),  # no sign
    ("1400bytes", "unhandled size name: bytes"),
    ("20 megabytes", "unhandled size name: megabytes"),
    ("1400i", "unhandled size name: i"),
    ("1e3", "unhandled size name: e3"),  # an exponent is not a number here (the YAML float 1e3 is, see below)
    ("18446744073709551615", "too large"),
    ("16EiB", "too large"),
    ("MB", "invalid syntax"),
]


@pytest.mark.parametrize(("text", "value"), SIZES)
def test_parse_bytes(text: str, value: int) -> None:
    assert parse_bytes(text) == value


@pytest.mark.parametrize(("text", "error"), BAD_SIZES)
def test_parse_bytes_refuses(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_bytes(text)


# ------------------------------------------------------------------------------------------ dive's file


def dive(tmp_path: Path, text: str, name: str = ".dive-ci") -> dict[str, object]:
    path = tmp_path / name
    path.write_text(text)
    policy = read_dive(path)
    return {rule: cfg.value for rule, cfg in policy.rules.items()}


def rules(lowest: object = 0.9, wasted: object = None, user: object = 0.1) -> dict[str, object]:
    return {"lowest-efficiency": lowest, "highest-wasted-bytes": wasted, "highest-user-wasted-percent": user}


def test_the_corpus_dive_ci_reads_as_dive_reads_it() -> None:
    policy = read_dive(corpus_path("wagoodman__dive", ".data", ".dive-ci"))
    assert {r: c.value for r, c in policy.rules.items()} == rules(0.95, 20_000_000, 0.5)
    assert policy.rules["highest-wasted-bytes"].text == "20Mb"
    assert policy.rules["lowest-efficiency"].origin.line == 7  # type: ignore[union-attr]
    assert any("plugins" in n for n in policy.notes) and any("plugin1/rule1" in n for n in policy.notes)


# value as written under rules.highestWastedBytes -> threshold (None: disabled) or the error; checked against
# the dive 0.13.1 binary (see test_check_dive.py)
DIVE_WASTED = [
    ("20Mb", 20_000_000),
    ("20MiB", 20_971_520),
    ("1,399", 1399),
    ('"1,399"', 1399),
    ("0x10", 16),
    ("02570", 1400),
    ("1_400", 1400),
    ("1.4e3", 1400),
    ("1e3", 1000),
    ("1400 B", 1400),
    ('"1400 "', 1400),
    ("disabled", None),
    ("~", None),
    ("null", None),
    ("", None),
    ('""', "error"),
    ('"disabled"', None),
    ("Disabled", "error"),
    ("off", "error"),
    ("FALSE", "error"),
    ('" 1400"', "error"),
    ("-5", "error"),
    ("1400bytes", "error"),
    ('"1e3"', "error"),
    ("1e21", "error"),
    ("18446744073709551615", "error"),
    ("[1400]", "error"),
    ("{a: 1}", "error"),
]


@pytest.mark.parametrize(("written", "expected"), DIVE_WASTED)
def test_dive_wasted_bytes_values(tmp_path: Path, written: str, expected: object) -> None:
    text = f"rules:\n  highestWastedBytes: {written}\n"
    if expected == "error":
        with pytest.raises(PolicyError, match=r"line 2: rules.highestWastedBytes"):
            dive(tmp_path, text)
    else:
        assert dive(tmp_path, text)["highest-wasted-bytes"] == expected


DIVE_RATIOS = [
    ("0.95", 0.95),
    (".69", 0.69),
    ('"+.69"', 0.69),
    ("1e-1", 0.1),
    ('"0.6_9"', 0.69),
    ("0x0.8p0", 0.5),
    ("0b1", 1.0),
    ("0o1", 1.0),
    ("0", 0.0),
    ("1", 1.0),
    ('"1."', 1.0),
    ("~", 0.9),
    ("null", 0.9),
    ("", 0.9),
    ("disabled", None),
    ("Disabled", "error"),
    ("DISABLED", "error"),
    ("off", "error"),
    ('"false"', "error"),
    ("true", "error"),
    ("1.5", "error"),
    ("-0.1", "error"),
    ("inf", "error"),
    ('"+nan"', "error"),
    ('"0_.5"', "error"),
    ('"0.5 "', "error"),
    ('"."', "error"),
]


@pytest.mark.parametrize(("written", "expected"), DIVE_RATIOS)
def test_dive_lowest_efficiency_values(tmp_path: Path, written: str, expected: object) -> None:
    text = f"rules:\n  lowestEfficiency: {written}\n"
    if expected == "error":
        with pytest.raises(PolicyError, match=r"line 2: rules.lowestEfficiency"):
            dive(tmp_path, text)
    else:
        assert dive(tmp_path, text)["lowest-efficiency"] == expected


@pytest.mark.parametrize("written", ["nan", '"NaN"', ".nan"])
def test_dive_nan_threshold_is_accepted(tmp_path: Path, written: str) -> None:
    assert math.isnan(
        dive(tmp_path, f"rules:\n  highestUserWastedPercent: {written}\n")["highest-user-wasted-percent"]  # type: ignore[arg-type]
    )


def test_dive_defaults_and_structure(tmp_path: Path) -> None:
    assert dive(tmp_path, "") == rules()  # an empty file: dive's defaults
    assert dive(tmp_path, "# nothing\nci: true\n") == rules()
    assert dive(tmp_path, "rules:\n") == rules()
    assert dive(tmp_path, "Rules:\n  LowestEfficiency: 0.5\n") == rules(0.5)  # viper: keys in any case
    assert dive(tmp_path, "rules.lowestEfficiency: 0.5\n") == rules(0.5)  # viper: a dotted key
    assert dive(tmp_path, "x: &a 0.5\nrules:\n  lowestEfficiency: *a\n") == rules(0.5)
    assert dive(tmp_path, "rules:\n  lowestEfficiency: !!str 0.5\n") == rules(0.5)
    base = "base: &b\n  lowestEfficiency: 0.3\n  highestWastedBytes: 1KB\nrules:\n  <<: *b\n  lowestEfficiency: 0.4\n"
    assert dive(tmp_path, base) == rules(0.4, 1000)  # merge keys, later keys win
    doc = dive(tmp_path, "rules:\n  lowestEfficiency: 0.5\n---\nrules:\n  lowestEfficiency: 0.99\n")
    assert doc == rules(0.5)  # the first document, as dive


def test_dive_kebab_keys_of_dives_newer_config(tmp_path: Path) -> None:
    text = "ci: true\nrules:\n  lowest-efficiency-threshold: '0.10'\n  highest-wasted-bytes: '20MB'\n  highest-user-wasted-percent: '0.90'\n"
    assert dive(tmp_path, text) == rules(0.1, 20_000_000, 0.9)
    assert dive(tmp_path, "rules:\n  lowest-efficiency: 0.3\n  lowest-efficiency-threshold: 0.2\n") == rules(
        0.3
    )
    # dive's main branch disables with "", disabled, off, false in any case; camelCase wins over kebab-case
    assert dive(tmp_path, "rules:\n  highest-user-wasted-percent: Off\n  lowest-efficiency: ''\n") == rules(
        None, None, None
    )
    policy = read_dive(_write(tmp_path, "rules:\n  lowest-efficiency: 0.2\n  lowestEfficiency: 0.7\n"))
    assert policy.rules["lowest-efficiency"].value == 0.7
    assert any("overridden by rules.lowestEfficiency" in n for n in policy.notes)


def _write(tmp_path: Path, text: str, name: str = ".dive-ci") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "rules:\n  lowestEfficiency: 0.5\n  lowestEfficiency: 0.9\n",
            r"line 3: rules.lowestEfficiency: mapping key already defined at line 2",
        ),
        (
            "rules:\n  lowestEfficiency: 0.5\n  lowestefficiency: 0.9\n",
            r"line 3: rules.lowestefficiency: also given at line 2",
        ),
        ("rules: 5\n", r"line 1: rules: must be a mapping"),
        ("rules:\n  - lowestEfficiency: 0.5\n", r"line 1: rules: must be a mapping"),
        ("rules: [\n", r"line 2 is not valid YAML"),
        ("rules:\n\tlowestEfficiency: 0.5\n", r"line 2 is not valid YAML"),
        ("- a\n- b\n", r"line 1: the file is a list"),
        ("just some words\n", r"line 1: the file is a single value"),
        (
            "rules:\n  highestUserWastedPercent: 2\n",
            r"line 2: rules.highestUserWastedPercent: invalid value '2'",
        ),
    ],
)
def test_dive_bad_files(tmp_path: Path, text: str, error: str) -> None:
    with pytest.raises(PolicyError, match=error):
        dive(tmp_path, text)


# ------------------------------------------------------------------------------------------ our TOML

FULL = """\
# a policy with every rule
[check]
max-compressed-size = "250MB"
max-uncompressed-size = 1073741824
max-layers = { value = 30, severity = "warning" }
max-layer-size = "100MiB"
max-layer-uncompressed-size = "disabled"
lowest-efficiency = 0.95
highest-wasted-bytes = "20Mb"
highest-user-wasted-percent = 0.1
max-duplicate-bytes = "1MB"
max-growth-bytes = "10MB"
max-growth-percent = 5
forbidden-paths = ["**/*.pem", "**/id_rsa", "**/.env", "/root/.cache/**"]
required-labels = ["org.opencontainers.image.source"]
required-annotations = ["org.opencontainers.image.revision"]
non-root-user = true
allowed-base-images = ["docker.io/library/debian:12", "sha256:%s"]
allowed-platforms = ["linux/amd64", "linux/arm64"]
baseline = "registry.example.com/app:prod"
growth-basis = "uncompressed"

[check.required-platforms]
value = ["linux/amd64"]
severity = "warning"
""" % ("a" * 64)


def test_full_policy(tmp_path: Path) -> None:
    path = _write(tmp_path, FULL, ".ociinspect.toml")
    policy = load_policy(path, search_from=tmp_path)
    assert policy.format == "toml" and policy.baseline == "registry.example.com/app:prod"
    assert policy.growth_basis == "uncompressed"
    values = {r: c.value for r, c in policy.rules.items()}
    assert list(values) == list(RULES)  # every rule, in RULES order
    assert values["max-compressed-size"] == 250_000_000
    assert values["max-layer-size"] == 100 * 2**20
    assert values["max-layer-uncompressed-size"] is None
    assert values["highest-wasted-bytes"] == 20_000_000
    assert values["max-growth-percent"] == 5.0
    assert values["non-root-user"] is True
    assert policy.rules["max-layers"].severity == "warning"
    assert policy.rules["required-platforms"].severity == "warning"
    assert policy.rules["max-layers"].origin.line == 5  # type: ignore[union-attr]
    assert policy.rules["required-platforms"].origin.line == 23  # type: ignore[union-attr]
    assert policy.content_rules() == [
        "lowest-efficiency",
        "highest-wasted-bytes",
        "highest-user-wasted-percent",
        "max-duplicate-bytes",
        "forbidden-paths",
    ]


def test_pyproject(tmp_path: Path) -> None:
    path = _write(
        tmp_path, '[project]\nname = "x"\n\n[tool.ociinspect.check]\nmax-layers = 3\n', "pyproject.toml"
    )
    policy = load_policy(path, search_from=tmp_path)
    assert policy.format == "pyproject" and policy.rules["max-layers"].value == 3
    assert policy.rules["max-layers"].origin.line == 5  # type: ignore[union-attr]
    with pytest.raises(PolicyError, match=r"line 4: \[tool.ociinspect\] chek: unknown key"):
        load_policy(
            _write(
                tmp_path,
                '[project]\nname = "x"\n\n[tool.ociinspect.chek]\nmax-layers = 3\n',
                "pyproject.toml",
            ),
            search_from=tmp_path,
        )


BAD_TOML = [
    ("[check]\nmax-layer = 3\n", r"line 2: \[check\] max-layer: unknown rule", "did you mean max-layers"),
    (
        "[check]\nlowestEfficiency = 0.9\n",
        r"line 2: \[check\] lowestEfficiency: unknown rule",
        "lowest-efficiency here",
    ),
    ('[check]\n\nmax-compressed-size = "20 megabytes"\n', r"line 3: .*unknown unit 'megabytes'", "MiB"),
    ('[check]\nmax-compressed-size = "20Mbit"\n', r"line 2: .*unknown unit 'Mbit'", None),
    ("[check]\nmax-compressed-size = -1\n", r"line 2: .*-1 is negative", None),
    ('[check]\nmax-compressed-size = "-5MB"\n', r"line 2: .*'-5MB' is negative", None),
    ("[check]\nmax-layers = -3\n", r"line 2: .*-3 is negative", None),
    ("[check]\nmax-layers = 2.5\n", r"line 2: .*not a whole number", None),
    ("[check]\nmax-growth-percent = -5\n", r"line 2: .*negative", None),
    ("[check]\nlowest-efficiency = -0.1\n", r"line 2: .*outside the allowed range 0–1", None),
    (
        "[check]\nlowest-efficiency = 95\n",
        r"line 2: .*outside the allowed range 0–1 \(a ratio: 0.95, not 95\)",
        None,
    ),
    ("[check]\nhighest-user-wasted-percent = true\n", r"line 2: .*not a ratio", None),
    ('[check]\nnon-root-user = "yes please"\n', r"line 2: .*not true or false", None),
    ('[check]\nforbidden-paths = "**/*.pem"\n', r"line 2: .*not a list", None),
    ('[check]\nforbidden-paths = ["/a[b"]\n', r"line 2: .*closing", None),
    ('[check]\nallowed-platforms = ["linux"]\n', r"line 2: .*os/arch", None),
    ('[check]\nmax-layers = { value = 3, severity = "fatal" }\n', r"line 2: .*severity must be", None),
    ("[check]\nmax-layers = { limit = 3 }\n", r"line 2: .*unknown key 'limit'", None),
    ('[check.max-layers]\nseverity = "warning"\n', r"line 1: .*missing value", None),
    ('[check]\ngrowth-basis = "both"\n', r"line 2: .*growth-basis", None),
    ("[chek]\nmax-layers = 3\n", r"line 1: \[\] chek: unknown table", None),
    ("[check]\nmax-layers = 3\nmax-layers = 4\n", r"not valid TOML: .*line 3", None),
    ("rules:\n  lowestEfficiency: 0.9\n", r"not valid TOML: .*line 1", None),
]


@pytest.mark.parametrize(("text", "error", "hint"), BAD_TOML)
def test_bad_toml(tmp_path: Path, text: str, error: str, hint: str | None) -> None:
    with pytest.raises(PolicyError, match=error) as info:
        load_policy(_write(tmp_path, text, ".ociinspect.toml"), search_from=tmp_path)
    assert "\n" not in info.value.message
    if hint:
        assert hint in (info.value.hint or "") or hint in info.value.message


def test_not_toml_nor_yaml(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"neither TOML \(.*line 1.*\) nor YAML \(line 2: .*\)"):
        load_policy(_write(tmp_path, "[check\nkey: [\n", "policy.conf"), search_from=tmp_path)
    with pytest.raises(PolicyError, match="not UTF-8"):
        path = tmp_path / "policy.bin"
        path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
        load_policy(path, search_from=tmp_path)
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(tmp_path / "missing.toml", search_from=tmp_path)
    # a file without a telling name is sniffed: TOML first, then dive's YAML
    assert (
        load_policy(_write(tmp_path, "[check]\nmax-layers = 3\n", "policy"), search_from=tmp_path).format
        == "toml"
    )
    assert (
        load_policy(_write(tmp_path, "rules:\n  lowestEfficiency: 0.5\n", "ci"), search_from=tmp_path).format
        == "dive"
    )


def test_locate_toml() -> None:
    text = '[tool.other]\nmax-layers = 1\n[tool.ociinspect.check]\n"max-layers" = 2\n[tool.ociinspect.check.forbidden-paths]\nvalue = []\n'
    assert locate_toml(text, ["tool", "ociinspect", "check"], "max-layers") == 4
    assert locate_toml(text, ["tool", "ociinspect", "check"], "forbidden-paths") == 5
    assert locate_toml("check.max-layers = 3\n", ["check"], "max-layers") == 1
    assert locate_toml("[check]\n", ["check"], "max-layers") is None


# ------------------------------------------------------------------------------------------ discovery


def test_discovery(tmp_path: Path) -> None:
    root, child = tmp_path / "repo", tmp_path / "repo" / "svc" / "app"
    child.mkdir(parents=True)
    assert discover(child) is None
    (tmp_path / "repo" / "svc" / ".dive-ci").write_text("rules:\n  lowestEfficiency: 0.5\n")
    assert discover(child) is None  # dive only reads .dive-ci from the working directory
    (root / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert discover(child) is None  # a pyproject.toml without [tool.ociinspect] is not a policy
    (root / "pyproject.toml").write_text("[tool.ociinspect.check]\nmax-layers = 3\n")
    assert discover(child) == (root / "pyproject.toml").resolve()
    (root / "svc" / ".ociinspect.toml").write_text("[check]\nmax-layers = 4\n")
    assert discover(child) == (root / "svc" / ".ociinspect.toml").resolve()
    (child / ".dive-ci").write_text("rules:\n  lowestEfficiency: 0.5\n")
    assert discover(child) == (child / ".dive-ci").resolve()  # in the working directory itself
    (child / ".ociinspect.toml").write_text("[check]\nmax-layers = 5\n")
    assert discover(child) == (child / ".ociinspect.toml").resolve()  # ours first in the same directory
    assert load_policy(None, search_from=child).rules["max-layers"].value == 5


# ------------------------------------------------------------------------------------------ flags


def test_flags_override_and_keep_severity(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[check]\nmax-layers = { value = 3, severity = "warning" }\nmax-compressed-size = "1MB"\n',
        ".ociinspect.toml",
    )
    policy = with_flags(
        load_policy(path, search_from=tmp_path),
        {"max-layers": "5", "forbidden-paths": ["**/*.pem"], "non-root-user": True},
        disabled=["max-compressed-size"],
        severities=[("forbidden-paths", "warning")],
        baseline="registry.example.com/app:prod",
    )
    assert policy.rules["max-layers"].value == 5 and policy.rules["max-layers"].severity == "warning"
    assert policy.rules["max-layers"].origin.where == "--max-layers"  # type: ignore[union-attr]
    assert policy.rules["forbidden-paths"].origin.where == "--forbidden-path"  # type: ignore[union-attr]
    assert policy.rules["forbidden-paths"].severity == "warning"
    assert policy.rules["max-compressed-size"].value is None
    assert policy.baseline == "registry.example.com/app:prod"


@pytest.mark.parametrize(
    ("flags", "severities", "error"),
    [
        ({}, [], "no rules to check"),
        ({"max-layers": "-3"}, [], r"--max-layers: .*not a whole number"),
        ({"highest-wasted-bytes": "20 megabytes"}, [], r"--highest-wasted-bytes: .*unknown unit"),
        ({"lowest-efficiency": "95"}, [], r"--lowest-efficiency: .*0–1"),
        (
            {"max-layers": "3"},
            [("max-layer-size", "warning")],
            r"--severity max-layer-size=warning: .*not configured",
        ),
    ],
)
def test_bad_flags(flags: dict[str, object], severities: list[tuple[str, str]], error: str) -> None:
    from ociinspect.policy.rules import Policy

    with pytest.raises(PolicyError, match=error):
        with_flags(Policy(), flags, severities=severities)


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        ("max-layers", "7", 7),
        ("max-compressed-size", "20MiB", 20 * 2**20),
        ("lowest-efficiency", "0.9", 0.9),
        ("lowest-efficiency", "off", None),
        ("max-growth-percent", "12.5%", 12.5),
        ("non-root-user", "false", False),
    ],
)
def test_parse_value(rule: str, value: object, expected: object) -> None:
    assert parse_value(rule, value) == expected


# ------------------------------------------------------------------------------ module split (issue 11)


def test_policy_modules_are_split_by_what_they_are() -> None:
    """Grammars, TOML files, dive's YAML, discovery and flags live in their own modules; the grammar module and
    the TOML text helpers (model/tomltext.py, used by analyzers/vm_profiles.py) import nothing of policy/."""
    import ast
    import importlib

    for name in ("grammar", "values", "tomlfile", "dive", "files", "flags", "run"):
        importlib.import_module(f"ociinspect.policy.{name}")
    root = Path(__file__).resolve().parents[2] / "ociinspect"
    for rel in ("policy/grammar.py", "model/tomltext.py"):
        tree = ast.parse((root / rel).read_text(encoding="utf-8"))
        imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [m for m in imported if m.startswith("ociinspect")], rel
    assert len((root / "policy/files.py").read_text(encoding="utf-8").splitlines()) < 150
