"""Issue 10 §1: a ``check`` size rule whose size is unknown or ambiguous is *undecidable* in every CI format —
JUnit (validated against junit-10.xsd), SARIF (against the SARIF 2.1.0 schema, ``kind: open``), GitHub workflow
commands, GitLab code quality, Markdown and text — never a pass and never a fail on a guess."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import xmlschema

from ociinspect.model.image import SizeEstimate
from ociinspect.policy.rules import Facts, Policy, RuleConfig, Severity, evaluate, exit_code
from ociinspect.reports.ci import (
    check_document,
    check_github,
    check_gitlab,
    check_junit,
    check_markdown,
    check_sarif,
    check_text,
)
from tests.unit.test_checks import AMBIGUOUS, image, with_sizes

SCHEMAS = Path(__file__).resolve().parents[1] / "data" / "schemas"


def make_doc(severity: Severity = "error") -> dict[str, Any]:
    policy = Policy().merged(
        [
            RuleConfig("max-compressed-size", 10_000),  # 30: pass
            RuleConfig("max-uncompressed-size", 10**9, severity, text="1GB"),  # ambiguous: undecidable
        ]
    )
    img = with_sizes(image((10, 20)), [SizeEstimate(4000, "trailer"), AMBIGUOUS])
    checks = [evaluate(policy, Facts(img))]
    return check_document(policy, checks, exit_code=exit_code(checks, unreadable=False, warn_only=False))


def test_document_status_summary_and_exit_code() -> None:
    doc = make_doc()
    assert doc["status"] == "undecidable" and doc["exit_code"] == 4
    assert doc["summary"] == {
        "images": 1,
        "pass": 1,
        "warn": 0,
        "fail": 0,
        "skip": 0,
        "undecidable": 1,
        "errors": 0,
    }
    finding = doc["images"][0]["findings"][1]
    assert finding["status"] == "undecidable" and finding["measured"] is None
    assert finding["message"].startswith("not decidable: uncompressed size of layer(s) 1 unknown (ambiguous")
    assert finding["message"].endswith("rerun with --exact")
    warn = make_doc("warning")
    assert warn["status"] == "warn" and warn["exit_code"] == 0  # a warning-severity rule never gates


def test_text_and_markdown() -> None:
    doc = make_doc()
    text = check_text(doc)
    assert "  UNDECIDABLE  max-uncompressed-size  not decidable:" in text
    assert "Result: UNDECIDABLE" in text and "undecidable:1" in text and text.rstrip().endswith("exit 4")
    md = check_markdown(doc)
    assert "| ❔ | `max-uncompressed-size` | not decidable:" in md


def test_junit_is_an_error_for_severity_error_and_a_skip_for_warning() -> None:
    schema = xmlschema.XMLSchema(str(SCHEMAS / "junit-10.xsd"))
    xml = check_junit(make_doc())
    schema.validate(xml)
    root = ET.fromstring(xml)
    assert root.get("errors") == "1" and root.get("failures") == "0"
    case = root.find(".//testcase[@name='max-uncompressed-size']")
    assert case is not None
    error = case.find("error")
    assert (
        error is not None and error.get("type") == "undecidable" and "--exact" in (error.get("message") or "")
    )
    xml = check_junit(make_doc("warning"))
    schema.validate(xml)
    case = ET.fromstring(xml).find(".//testcase[@name='max-uncompressed-size']")
    assert case is not None and case.find("skipped") is not None and case.find("error") is None


def test_sarif_result_is_kind_open() -> None:
    schema = json.loads((SCHEMAS / "sarif-schema-2.1.0.json").read_text())
    sarif = json.loads(check_sarif(make_doc()))
    jsonschema.Draft7Validator(schema).validate(sarif)
    (result,) = sarif["runs"][0]["results"]
    assert (result["ruleId"], result["kind"], result["level"]) == ("max-uncompressed-size", "open", "none")
    assert "not decidable" in result["message"]["text"]
    assert sarif["runs"][0]["invocations"][0]["exitCode"] == 4


def test_github_and_gitlab() -> None:
    gh = check_github(make_doc())
    assert gh.startswith("::error ") and "max-uncompressed-size (not decidable)" in gh and "--exact" in gh
    assert check_github(make_doc("warning")).startswith("::warning ")
    (issue,) = json.loads(check_gitlab(make_doc()))
    assert issue["check_name"] == "max-uncompressed-size" and issue["severity"] == "info"
    assert "not decidable" in issue["description"]
