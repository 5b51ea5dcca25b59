"""The CI formats of ``ociinspect check``: JUnit validated against Jenkins' junit-10.xsd, SARIF against the SARIF
2.1.0 JSON schema (both vendored in tests/data/schemas), GitHub workflow commands, GitLab code quality, Markdown
and text — all rendered from one document with a pass, a warning, a failure, a skip and an unreadable image."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import xmlschema

from ociinspect.errors import NotFound
from ociinspect.policy.rules import Facts, Origin, Policy, RuleConfig, evaluate
from ociinspect.reports import render
from ociinspect.reports.ci import (
    check_document,
    check_github,
    check_gitlab,
    check_junit,
    check_markdown,
    check_sarif,
    check_text,
)
from tests.unit.test_checks import DIVE_LAYERS, f, image

SCHEMAS = Path(__file__).resolve().parents[1] / "data" / "schemas"


@pytest.fixture(scope="module")
def sarif_validator() -> jsonschema.Draft7Validator:
    schema = json.loads((SCHEMAS / "sarif-schema-2.1.0.json").read_text())
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def junit_schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(SCHEMAS / "junit-10.xsd"))


def make_doc(tmp_path: Path) -> dict[str, Any]:
    policy_file = tmp_path / ".ociinspect.toml"
    policy_file.write_text("[check]\n")
    at = Origin(".ociinspect.toml line 4", str(policy_file), 4)
    policy = Policy(source=str(policy_file), format="toml").merged(
        [
            RuleConfig("max-compressed-size", 10_000, origin=at, text="10kB"),  # 1500: pass
            RuleConfig("max-layers", 1, "warning", origin=Origin("--max-layers")),  # 2: warn
            RuleConfig("forbidden-paths", ("**/id_rsa",), origin=at),  # fail, with details
            RuleConfig("highest-wasted-bytes", None, origin=Origin("dive default")),  # skip
            RuleConfig("lowest-efficiency", 0.97, origin=at),  # 2575 / 2675 = 0.9626: fail
            RuleConfig("non-root-user", True),  # root: fail, no file location
        ]
    )
    layers = [*DIVE_LAYERS[:1], [*DIVE_LAYERS[1], f("root/.ssh/id_rsa", 1675)]]
    checks = [evaluate(policy, Facts(image((1000, 500), name='app "quoted" <&>'), layers=layers))]
    errors = [
        (
            "docker://registry.example.com/missing:1",
            NotFound("reading docker://…: manifest unknown", hint="check the tag"),
        )
    ]
    return check_document(policy, checks, errors, exit_code=3)


def test_document_counts(tmp_path: Path) -> None:
    doc = make_doc(tmp_path)
    statuses = [x["status"] for x in doc["images"][0]["findings"]]
    assert statuses == ["pass", "warn", "fail", "skip", "fail", "fail"]  # in the rules' order
    assert doc["summary"] == {"images": 1, "pass": 1, "warn": 1, "fail": 3, "skip": 1, "errors": 1}
    assert doc["status"] == "error" and doc["exit_code"] == 3
    json.dumps(doc, allow_nan=False)  # strict JSON: no NaN or Infinity anywhere


def test_junit_is_valid_and_has_one_testcase_per_rule(
    tmp_path: Path, junit_schema: xmlschema.XMLSchema
) -> None:
    xml = check_junit(make_doc(tmp_path))
    junit_schema.validate(xml)
    root = ET.fromstring(xml)
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [
        'oci:/x/app "quoted" <&>:latest (linux/amd64)',
        "docker://registry.example.com/missing:1",
    ]
    cases = suites[0].findall("testcase")
    assert [c.get("name") for c in cases] == [
        "max-compressed-size",
        "max-layers",
        "lowest-efficiency",
        "highest-wasted-bytes",
        "forbidden-paths",
        "non-root-user",
    ]
    assert [c[0].tag if len(c) else None for c in cases] == [
        "system-out",
        "system-out",
        "failure",
        "skipped",
        "failure",
        "failure",
    ]
    assert "/root/.ssh/id_rsa (layer 1; **/id_rsa)" in (cases[4][0].text or "")
    assert (suites[0].get("tests"), suites[0].get("failures"), suites[0].get("skipped")) == ("6", "3", "1")
    assert suites[1].find("testcase/error") is not None
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("7", "3", "1")


def test_junit_validation_can_fail(junit_schema: xmlschema.XMLSchema) -> None:
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        junit_schema.validate("<testsuites><testsuite name='x'><testcase/></testsuite></testsuites>")


def test_sarif_is_valid_with_one_result_per_failed_or_warned_rule(
    tmp_path: Path, sarif_validator: jsonschema.Draft7Validator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sarif = json.loads(check_sarif(make_doc(tmp_path)))
    sarif_validator.validate(sarif)
    run = sarif["runs"][0]
    results = run["results"]
    assert [(r["ruleId"], r["level"]) for r in results] == [
        ("max-layers", "warning"),
        ("lowest-efficiency", "error"),
        ("forbidden-paths", "error"),
        ("non-root-user", "error"),
    ]
    ids = [rule["id"] for rule in run["tool"]["driver"]["rules"]]
    assert all(ids[r["ruleIndex"]] == r["ruleId"] for r in results)
    located = results[2]["locations"][0]["physicalLocation"]
    assert located == {"artifactLocation": {"uri": ".ociinspect.toml"}, "region": {"startLine": 4}}
    assert "physicalLocation" not in results[0]["locations"][0]  # from a flag: no file to point at
    assert run["invocations"][0]["executionSuccessful"] is False
    assert run["invocations"][0]["toolExecutionNotifications"][0]["level"] == "error"


def test_sarif_validation_can_fail(sarif_validator: jsonschema.Draft7Validator) -> None:
    bad = {
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "x"}},
                "results": [{"ruleId": "r", "level": "fatal", "message": {"text": "m"}}],
            }
        ],
    }
    with pytest.raises(jsonschema.ValidationError):
        sarif_validator.validate(bad)


def test_github_annotations_escape_and_locate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    lines = check_github(make_doc(tmp_path)).splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == [
        "::warning",
        "::error",
        "::error",
        "::error",
        "::error",
    ]
    forbidden = lines[2]
    assert forbidden.startswith(
        "::error file=.ociinspect.toml,line=4,title=ociinspect check%3A forbidden-paths::"
    )
    assert (
        "%0A/root/.ssh/id_rsa (layer 1; **/id_rsa)" in forbidden
    )  # newlines escaped, details on their own lines
    assert lines[0].startswith("::warning title=ociinspect check%3A max-layers::")
    assert lines[-1].startswith(
        "::error title=ociinspect check%3A image unreadable::docker://registry.example.com/missing:1"
    )
    assert all("\n" not in line and "\r" not in line for line in lines)


def test_gitlab_code_quality(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    issues = json.loads(check_gitlab(make_doc(tmp_path)))
    required = {"description", "check_name", "fingerprint", "severity", "location"}
    assert all(
        required <= set(i) and i["location"]["path"] and i["location"]["lines"]["begin"] >= 1 for i in issues
    )
    assert [(i["check_name"], i["severity"]) for i in issues] == [
        ("max-layers", "minor"),
        ("lowest-efficiency", "major"),
        ("forbidden-paths", "major"),
        ("non-root-user", "major"),
        ("unreadable-image", "blocker"),
    ]
    assert issues[2]["location"] == {"path": ".ociinspect.toml", "lines": {"begin": 4}}
    assert len({i["fingerprint"] for i in issues}) == len(issues)
    again = json.loads(check_gitlab(make_doc(tmp_path)))
    assert [i["fingerprint"] for i in again] == [i["fingerprint"] for i in issues]  # stable across runs


def test_text_and_markdown(tmp_path: Path) -> None:
    doc = make_doc(tmp_path)
    text = check_text(doc)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert "FAIL lowest-efficiency efficiency 0.9626 (96.26 %) is below the lowest allowed 0.97" in lines
    assert "WARN max-layers 2 layers, more than the limit 1" in lines
    assert "SKIP highest-wasted-bytes disabled (dive default)" in lines
    assert "FAIL forbidden-paths 1 path(s) in the layers match a forbidden pattern" in lines
    assert "/root/.ssh/id_rsa (layer 1; **/id_rsa)" in lines
    assert "compressed size 1.5 KiB (1500 bytes) (limit 10kB = 9.8 KiB (10000 bytes))" in text
    assert "Layer contents: read for lowest-efficiency, forbidden-paths" in text
    assert text.rstrip().endswith("Result: ERROR  [pass:1 warn:1 fail:3 skip:1 errors:1]  exit 3")
    md = check_markdown(doc)
    assert "| ❌ | `lowest-efficiency` |" in md and "| ⚠️ | `max-layers` |" in md
    assert "- `forbidden-paths`: /root/.ssh/id_rsa (layer 1; **/id_rsa)" in md
    # the registry renders the same document in every format, JSON included
    assert json.loads(render("check", "json", [doc])) == doc
    assert render("check", "text", [doc]) == text


def test_fingerprints_survive_a_new_tag(tmp_path: Path) -> None:
    doc = make_doc(tmp_path)
    retagged = json.loads(json.dumps(doc).replace('app \\"quoted\\" <&>:latest', 'app \\"quoted\\" <&>:v2'))
    assert retagged != doc
    for render_fn in (check_gitlab, check_sarif):
        before, after = json.loads(render_fn(doc)), json.loads(render_fn(retagged))
        if render_fn is check_gitlab:
            assert [i["fingerprint"] for i in before] == [i["fingerprint"] for i in after]
        else:
            fp = [r["partialFingerprints"] for r in before["runs"][0]["results"]]
            assert fp == [r["partialFingerprints"] for r in after["runs"][0]["results"]]
