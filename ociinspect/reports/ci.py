"""``ociinspect check`` output: one JSON document, and every CI format rendered from it.

:func:`check_document` is the JSON contract (``schema_version`` 1, ``docs/ci.md``); the renderers below take that
document, so the formats cannot disagree:

* ``text`` — PASS/WARN/FAIL/SKIP/UNDECIDABLE per rule and image, with the measured value and the limit;
* ``markdown`` — the same as tables (what ``$GITHUB_STEP_SUMMARY`` gets);
* ``junit`` — JUnit XML, one ``<testsuite>`` per image and one ``<testcase>`` per rule (``<failure>`` for a failed
  rule, ``<skipped>`` for a disabled one, ``<system-out>`` carrying the warning of a rule with severity
  ``warning``); an image that could not be read is a testcase with ``<error>``;
* ``sarif`` — SARIF 2.1.0, one result per failed or warned rule (``level`` ``error``/``warning``), located at the
  rule's line in the policy file when it came from one;
* ``github`` — workflow commands (``::error``/``::warning``) that GitHub Actions turns into annotations;
* ``gitlab`` — GitLab code-quality JSON (``severity`` ``major`` for errors, ``minor`` for warnings).

Sizes are ``int`` bytes in the document; messages say them in IEC units and in bytes.  Renderers are pure.
"""

from __future__ import annotations

import hashlib
import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from ociinspect._version import __version__
from ociinspect.errors import OciInspectError
from ociinspect.model.textsafe import escape_controls, markdown_cell, markdown_code
from ociinspect.policy.rules import RULES, Finding, GrowthExplanation, ImageCheck, Origin, Policy
from ociinspect.reports.text import human_size

__all__ = [
    "FORMATS",
    "SCHEMA_VERSION",
    "check_document",
    "check_github",
    "check_gitlab",
    "check_junit",
    "check_markdown",
    "check_sarif",
    "check_text",
    "describe",
    "explanation_lines",
]

SCHEMA_VERSION = 1
#: ``--format`` choices of ``ociinspect check``, in the order ``--help`` lists them.
FORMATS = ("text", "json", "junit", "sarif", "github", "markdown", "gitlab")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

#: rules whose offending items are listed below the message (the others name them in the message)
_LISTED = ("forbidden-paths", "max-duplicate-bytes")
_LABEL = {
    "pass": "PASS",
    "warn": "WARN",
    "fail": "FAIL",
    "skip": "SKIP",
    "undecidable": "UNDECIDABLE",
    "error": "ERROR",
}
_ICON = {"pass": "✅", "warn": "⚠️", "fail": "❌", "skip": "⏭️", "undecidable": "❔", "error": "💥"}
#: a rule that could not be decided (a size it needs is unknown or ambiguous): the message starts with this
UNDECIDABLE = "not decidable"


# ------------------------------------------------------------------------------------------- wording


def _bytes(n: int | float | str | list[str] | None) -> str:
    if not isinstance(n, int):
        return str(n)
    sign = "-" if n < 0 else ""
    return f"{sign}{human_size(abs(n))} ({n} bytes)"


def _number(value: object) -> Any:
    """JSON-safe: NaN and infinities become the text Go prints for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    return value


def _ratio(value: object) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4f} ({value * 100:.2f} %)"
    return str(_number(value))


def limit_text(rule: str, limit: object, text: str | None = None) -> str:
    """The threshold as users read it: sizes in IEC units and bytes (and as written, ``20Mb``), ratios as
    written, percents with ``%``, lists comma-separated."""
    kind = RULES[rule].kind
    if limit is None:
        return "-"
    if kind == "bytes" and isinstance(limit, int):
        shown = _bytes(limit)
        return f"{text} = {shown}" if text and text.strip() != str(limit) else shown
    if kind == "percent":
        return f"{_number(limit)} %"
    if kind == "ratio":
        return text if text else str(_number(limit))
    if isinstance(limit, list | tuple):
        return ", ".join(str(x) for x in limit)
    return str(_number(limit))


def describe(f: Finding) -> str:
    """One sentence with the measured value (and the limit when violated) for a finding."""
    rule, m, limit = f.rule, f.measured, f.limit
    if f.status == "skip":
        if f.note and f.note != "disabled":
            return f.note
        return "disabled" + (f" ({f.origin.where})" if f.origin else "")
    if f.status == "undecidable":
        return f"{UNDECIDABLE}: {f.note or 'a size it needs is unknown: rerun with --exact'}"
    if m is None and f.note and rule != "allowed-base-images":
        return f"could not be measured: {f.note}"
    if f.subject == "at least" and f.note:  # decided on the known part of an image with unknown sizes
        return f"uncompressed size at least {_bytes(m)}, over the limit {limit_text(rule, limit, f.text)} ({f.note})"
    violated = f.status in ("fail", "warn")
    lim = limit_text(rule, limit, f.text)
    if rule in ("max-compressed-size", "max-uncompressed-size", "max-duplicate-bytes"):
        what = {
            "max-compressed-size": "compressed size",
            "max-uncompressed-size": "uncompressed size",
            "max-duplicate-bytes": "extra copies of identical files take",
        }[rule]
        return f"{what} {_bytes(m)}" + (f", over the limit {lim}" if violated else f" (limit {lim})")
    if rule == "max-layers":
        return f"{m} layers" + (f", more than the limit {lim}" if violated else f" (limit {lim})")
    if rule in ("max-layer-size", "max-layer-uncompressed-size"):
        what = "largest layer" if rule == "max-layer-size" else "largest unpacked layer"
        return (
            f"{what}: {f.subject}, {'at least ' if f.note else ''}{_bytes(m)}"
            + (f", over the limit {lim}" if violated else f" (limit {lim})")
            + (f" ({f.note})" if f.note else "")
        )
    if rule == "lowest-efficiency":
        return f"efficiency {_ratio(m)}" + (
            f" is below the lowest allowed {lim}" if violated else f" (lowest allowed {lim})"
        )
    if rule == "highest-wasted-bytes":
        return f"wasted bytes {_bytes(m)}" + (
            f", over the highest allowed {lim}" if violated else f" (highest allowed {lim})"
        )
    if rule == "highest-user-wasted-percent":
        return f"user wasted percent {_ratio(m)} = {f.subject}" + (
            f", over the highest allowed {lim}" if violated else f" (highest allowed {lim})"
        )
    if rule in ("max-growth-bytes", "max-growth-percent"):
        shown = (
            _bytes(m)
            if rule == "max-growth-bytes"
            else f"{_number(m) if not isinstance(m, float) else round(m, 2)} %"
        )
        verb = "shrank by" if isinstance(m, int | float) and m < 0 else "grew by"
        if isinstance(m, int | float) and m < 0:
            shown = _bytes(-m) if rule == "max-growth-bytes" else f"{round(-m, 2)} %"
        return f"{verb} {shown} against {f.subject}" + (
            f", over the budget {lim}" if violated else f" (budget {lim})"
        )
    items = limit if isinstance(limit, list) else []
    offered = m if isinstance(m, list) else []
    if rule == "forbidden-paths":
        if not violated:
            return f"no path in any layer matches the {len(items)} forbidden pattern(s)"
        return f"{m} path(s) in the layers match a forbidden pattern"
    if rule in ("required-labels", "required-annotations"):
        what = "label" if rule == "required-labels" else "annotation"
        if not violated:
            return f"all {len(items)} required {what}s are set"
        return f"required {what}s not set: " + ", ".join(f.details)
    if rule == "non-root-user":
        if not violated:
            return f"runs as user {m!r}"
        return "runs as root: " + (
            "User is not set, so the default root applies" if not m else f"User is {m!r}"
        )
    if rule == "allowed-base-images":
        if m is None:
            return f"no allowed base found: {f.note}"
        how = f" (from the {f.subject})" if f.subject else ""
        return f"base {m}{how}" + (f" is not one of the allowed bases: {lim}" if violated else " is allowed")
    if rule == "allowed-platforms":
        return (
            "platforms not allowed: " + ", ".join(d.split(":")[0] for d in f.details) + f" (allowed: {lim})"
            if violated
            else "every platform is allowed: " + ", ".join(offered)
        )
    if rule == "required-platforms":
        return (
            "required platforms missing: "
            + ", ".join(d.split(":")[0] for d in f.details)
            + " (offered: "
            + (", ".join(offered) or "none")
            + ")"
            if violated
            else "every required platform is offered: " + lim
        )
    return str(m)  # pragma: no cover - every rule is worded above


# ------------------------------------------------------------------------------------------- document


def _origin(o: Origin | None) -> dict[str, Any] | None:
    return None if o is None else {"where": o.where, "path": o.path, "line": o.line}


def _finding(f: Finding) -> dict[str, Any]:
    return {
        "rule": f.rule,
        "status": f.status,
        "severity": f.severity,
        "message": describe(f),
        "measured": _number(f.measured),
        "limit": _number(f.limit),
        "threshold": limit_text(f.rule, f.limit, f.text),
        "subject": f.subject,
        "details": list(f.details),
        "note": f.note,
        "reads_content": f.reads_content,
        "origin": _origin(f.origin),
        "explanation": _explanation(f.explanation),
    }


def _explanation(e: GrowthExplanation | None) -> dict[str, Any] | None:
    """A violated growth rule's explanation (``None`` for every other finding): see ``docs/ci.md``."""
    if e is None:
        return None
    return {
        "available": e.unavailable is None,
        "unavailable": e.unavailable,
        "files_delta": e.files_delta,
        "changed": e.changed,
        "layers": None
        if e.layers is None
        else {"shared": e.layers[0], "only_baseline": e.layers[1], "only_image": e.layers[2]},
        "added_layers_size": e.added_layers_size,
        "paths": [{"path": p.path, "delta": p.delta, "kind": p.kind, "changed": p.changed} for p in e.paths],
    }


def _signed(n: int) -> str:
    return ("+" if n > 0 else "-" if n < 0 else "") + human_size(abs(n))


def explanation_lines(f: dict[str, Any]) -> list[str]:
    """A finding's explanation as lines (empty when it has none): a heading, then one line per growing path
    (``+180.0 MiB /usr/lib/python3/ (directory, 12 changed paths)``), or why it is unavailable."""
    e = f.get("explanation")
    if not e:
        return []
    if not e["available"]:
        why = escape_controls(str(e["unavailable"]))
        return [f"why it grew: explanation unavailable ({why}); the numbers above stand"]
    head = "why it grew (diff against the baseline, uncompressed file bytes): "
    head += f"{e['changed']} changed path(s), net {_signed(e['files_delta'] or 0)}"
    layers = e["layers"]
    if layers is not None:
        head += (
            f"; layers: {layers['shared']} shared, {layers['only_baseline']} only in the baseline, "
            f"{layers['only_image']} only in the image ({human_size(e['added_layers_size'] or 0)} compressed)"
        )
    lines = [head]
    for p in e["paths"]:
        if p["kind"] == "dir":
            where = escape_controls(p["path"].rstrip("/") + "/")
            lines.append(f"{_signed(p['delta'])} {where} (directory, {p['changed']} changed path(s))")
        else:
            lines.append(
                f"{_signed(p['delta'])} {escape_controls(p['path'])} ({'added' if p['kind'] == 'added' else 'grown'})"
            )
    if not e["paths"]:
        lines.append("no file grew: the growth is in the layers (e.g. files rewritten, or compression)")
    return lines


def check_document(
    policy: Policy,
    checks: Sequence[ImageCheck],
    errors: Sequence[tuple[str, OciInspectError]] = (),
    *,
    warn_only: bool = False,
    exit_code: int = 0,
) -> dict[str, Any]:
    """The JSON document of one ``check`` run (schema_version 1)."""
    counts = {"pass": 0, "warn": 0, "fail": 0, "skip": 0, "undecidable": 0}
    for c in checks:
        for f in c.findings:
            counts[f.status] += 1
    if not counts["undecidable"]:
        del counts["undecidable"]  # the key appears only when a rule could not be decided
    if errors:
        status = "error"
    elif any(c.status == "fail" for c in checks):
        status = "fail"
    elif any(c.status == "undecidable" for c in checks):
        status = "undecidable"
    elif any(c.status == "warn" for c in checks):
        status = "warn"
    else:
        status = "pass"
    return {
        "schema_version": SCHEMA_VERSION,
        "status": status,
        "exit_code": exit_code,
        "warn_only": warn_only,
        "policy": {
            "source": policy.source,
            "format": policy.format,
            "baseline": policy.baseline,
            "growth_basis": policy.growth_basis,
            "content_rules": policy.content_rules(),
            "notes": list(policy.notes),
            "rules": [
                {
                    "rule": c.rule,
                    "enabled": c.enabled,
                    "threshold": _number(list(c.value) if isinstance(c.value, tuple) else c.value),
                    "text": c.text,
                    "severity": c.severity,
                    "origin": _origin(c.origin),
                }
                for c in policy.rules.values()
            ],
        },
        "images": [
            {
                "reference": c.reference,
                "digest": c.digest,
                "platform": c.platform,
                "status": c.status,
                "content_read": c.content_read,
                "findings": [_finding(f) for f in c.findings],
            }
            for c in checks
        ],
        "summary": {"images": len(checks), **counts, "errors": len(errors)},
        "errors": [
            {
                "reference": ref,
                "type": type(e).__name__,
                "message": e.message,
                "hint": e.hint,
                "exit_code": int(e.exit_code),
            }
            for ref, e in errors
        ],
    }


# ------------------------------------------------------------------------------------------- text


def _image_title(img: dict[str, Any]) -> str:
    return f"{img['reference']}  {img['digest'][:19]}…" + (f"  {img['platform']}" if img["platform"] else "")


def _contents_line(doc: dict[str, Any]) -> str:
    rules = doc["policy"]["content_rules"]
    if not rules:
        return "Layer contents: not read (no enabled rule needs them)"
    return "Layer contents: read for " + ", ".join(rules) + " (each layer streamed once, cached by digest)"


def _summary_line(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    parts = [f"{k}:{s[k]}" for k in ("pass", "warn", "fail", "skip", "undecidable", "errors") if s.get(k)]
    status = doc["status"].upper()
    if doc["status"] == "undecidable":
        status += " (a size a rule needs is unknown or ambiguous: rerun with --exact)"
    if doc["warn_only"] and doc["status"] in ("fail", "undecidable"):
        status += " (--warn-only: not failing the build)"
    return f"Result: {status}  [{' '.join(parts)}]  exit {doc['exit_code']}"


def _shown(path: str | None) -> str:
    """A policy path for people: relative to the working directory when it is below it."""
    if not path:
        return "command-line flags"
    uri = _uri(path)
    return uri if not uri.startswith("file:") else path


def check_text(doc: dict[str, Any]) -> str:
    """Human output: per image, one line per rule (status, rule, message), details indented below."""
    pol = doc["policy"]
    source = _shown(pol["source"])
    lines = [f"Policy: {source} ({pol['format']})", _contents_line(doc)]
    lines += [f"  note: {n}" for n in pol["notes"]]
    width = max([len(f["rule"]) for img in doc["images"] for f in img["findings"]] or [10])
    for img in doc["images"]:
        lines += ["", _image_title(img)]
        for f in img["findings"]:
            lines.append(f"  {_LABEL[f['status']]:<4}  {f['rule']:<{width}}  {f['message']}")
            if f["status"] in ("fail", "warn") and f["rule"] in _LISTED:
                lines += [f"          {' ' * width}  {d}" for d in f["details"][:20]]
                if len(f["details"]) > 20:
                    lines.append(f"          {' ' * width}  … {len(f['details']) - 20} more")
            why = explanation_lines(f)
            lines += [f"          {' ' * width}  {w}" for w in why[:1]]
            lines += [f"          {' ' * width}    {w}" for w in why[1:]]
    for err in doc["errors"]:
        lines += ["", f"{err['reference']}: ERROR {err['message']}"]
    lines += ["", _summary_line(doc)]
    return "\n".join(lines)


def _md(text: str) -> str:
    return markdown_cell(text)  # the one Markdown escaper: | < > \\ and controls


def check_markdown(doc: dict[str, Any]) -> str:
    """A Markdown summary (for ``$GITHUB_STEP_SUMMARY`` and merge-request comments)."""
    status = doc["status"]
    lines = [f"### ociinspect check: {_ICON[status]} {status}", ""]
    pol = doc["policy"]
    lines.append(f"Policy: {markdown_code(_shown(pol['source']))} ({pol['format']}) · {_contents_line(doc)}")
    for img in doc["images"]:
        lines += [
            "",
            f"#### {_ICON[img['status']]} {markdown_code(img['reference'])}"
            + (f" ({img['platform']})" if img["platform"] else ""),
            "",
        ]
        lines += ["| | rule | result | limit | severity |", "|---|---|---|---|---|"]
        for f in img["findings"]:
            lines.append(
                f"| {_ICON[f['status']]} | `{f['rule']}` | {_md(f['message'])} | {_md(f['threshold'])} | {f['severity']} |"
            )
        details = [
            (f["rule"], d)
            for f in img["findings"]
            if f["status"] in ("fail", "warn") and f["rule"] in _LISTED
            for d in f["details"]
        ]
        if details:
            lines += ["", "<details><summary>Details</summary>", ""]
            lines += [f"- `{rule}`: {_md(d)}" for rule, d in details[:50]]
            lines += ["", "</details>"]
        for f in img["findings"]:
            why = explanation_lines(f)
            if why:
                lines += ["", f"{_ICON[f['status']]} `{f['rule']}`: {_md(why[0])}", ""]
                lines += [f"- {_md(w)}" for w in why[1:]]
    for err in doc["errors"]:
        lines += [
            "",
            f"{_ICON['error']} {markdown_code(err['reference'])} could not be read: {_md(err['message'])}",
        ]
    lines += ["", _summary_line(doc)]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------- JUnit


def _with_details(f: dict[str, Any]) -> str:
    """The message, then the offending items one per line for the rules whose message does not name them."""
    return "\n".join([f["message"], *(f["details"] if f["rule"] in _LISTED else []), *explanation_lines(f)])


def _with_why(f: dict[str, Any]) -> str:
    """The message and, for an explained growth rule, its largest growing path (one line, for attributes and
    single-line fields)."""
    why = explanation_lines(f)
    if not why:
        return str(f["message"])
    return f"{f['message']}; " + (why[1] if len(why) > 1 and f["explanation"]["available"] else why[0])


def _undecided_error(f: dict[str, Any]) -> bool:
    return bool(f["status"] == "undecidable" and f["severity"] == "error")


def _undecided_warning(f: dict[str, Any]) -> bool:
    return bool(f["status"] == "undecidable" and f["severity"] != "error")


def check_junit(doc: dict[str, Any]) -> str:
    """JUnit XML (valid against Jenkins' junit-10.xsd): one testsuite per image, one testcase per rule.

    An undecidable rule is an ``<error type="undecidable">`` (severity error: the check could not be carried
    out) or ``<skipped>`` (severity warning)."""
    root = ET.Element("testsuites", name="ociinspect check")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for img in doc["images"]:
        title = img["reference"] + (f" ({img['platform']})" if img["platform"] else "")
        findings = img["findings"]
        suite = ET.SubElement(
            root,
            "testsuite",
            name=title,
            tests=str(len(findings)),
            failures=str(sum(f["status"] == "fail" for f in findings)),
            errors=str(sum(_undecided_error(f) for f in findings)),
            skipped=str(sum(f["status"] == "skip" or _undecided_warning(f) for f in findings)),
        )
        props = ET.SubElement(suite, "properties")
        for name, value in (
            ("reference", img["reference"]),
            ("digest", img["digest"]),
            ("platform", img["platform"] or ""),
            ("policy", doc["policy"]["source"] or "command-line flags"),
        ):
            ET.SubElement(props, "property", name=name, value=value)
        for f in findings:
            case = ET.SubElement(suite, "testcase", name=f["rule"], classname=title)
            body = _with_details(f)
            if f["status"] == "fail":
                ET.SubElement(case, "failure", type=f["rule"], message=_with_why(f)).text = body
            elif f["status"] == "skip" or _undecided_warning(f):
                ET.SubElement(case, "skipped", message=f["message"])
            elif f["status"] == "undecidable":  # severity error: the build must not pass silently
                ET.SubElement(case, "error", type="undecidable", message=f["message"]).text = body
            elif f["status"] == "warn":
                ET.SubElement(case, "system-out").text = f"WARNING ({f['rule']}, severity warning): {body}"
            else:
                ET.SubElement(case, "system-out").text = f["message"]
        totals["tests"] += len(findings)
        totals["failures"] += sum(f["status"] == "fail" for f in findings)
        totals["errors"] += sum(_undecided_error(f) for f in findings)
    for err in doc["errors"]:
        suite = ET.SubElement(root, "testsuite", name=err["reference"], tests="1", failures="0", errors="1")
        case = ET.SubElement(suite, "testcase", name="read image", classname=err["reference"])
        ET.SubElement(case, "error", type=err["type"], message=err["message"]).text = "\n".join(
            x for x in (err["message"], err["hint"] and f"hint: {err['hint']}") if x
        )
        totals["tests"] += 1
        totals["errors"] += 1
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


# ------------------------------------------------------------------------------------------- SARIF


def _fingerprint(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _stable(reference: str) -> str:
    """The image's name without tag or digest, so an issue keeps its fingerprint from one build to the next."""
    from ociinspect.model.reference import parse_reference

    try:
        return parse_reference(reference).name or reference
    except Exception:
        return reference


def check_sarif(doc: dict[str, Any]) -> str:
    """SARIF 2.1.0: every rule in ``tool.driver.rules``; one result per failed or warned rule and image, and per
    undecidable one (``kind: open``, ``level: none``: evaluated, but the information did not settle it)."""
    ids = list(RULES)
    rules = [
        {
            "id": spec.id,
            "name": "".join(w.capitalize() for w in spec.id.split("-")),
            "shortDescription": {"text": spec.title},
            "fullDescription": {"text": spec.title + (f" (dive's {spec.dive_key})" if spec.dive_key else "")},
            "defaultConfiguration": {"level": "error"},
            "properties": {
                "tags": ["container-image", *(["reads-layer-contents"] if spec.reads_content else [])]
            },
        }
        for spec in RULES.values()
    ]
    results: list[dict[str, Any]] = []
    for img in doc["images"]:
        for f in img["findings"]:
            if f["status"] not in ("fail", "warn", "undecidable"):
                continue
            result: dict[str, Any] = {
                "ruleId": f["rule"],
                "ruleIndex": ids.index(f["rule"]),
                # SARIF's kind "open": evaluated, but too little information to decide (level must be none)
                **(
                    {"kind": "open", "level": "none"}
                    if f["status"] == "undecidable"
                    else {"level": "error" if f["status"] == "fail" else "warning"}
                ),
                "message": {
                    "text": "\n".join([f"{img['reference']}: {f['message']}", *explanation_lines(f)])
                },
                "partialFingerprints": {
                    "ociinspectImageRule/v1": _fingerprint(
                        f["rule"], _stable(img["reference"]), img["platform"] or ""
                    )
                },
                "properties": {
                    "image": img["reference"],
                    "digest": img["digest"],
                    "platform": img["platform"],
                    "measured": f["measured"],
                    "limit": f["limit"],
                    "details": f["details"],
                    "explanation": f.get("explanation"),
                },
            }
            location: dict[str, Any] = {
                "logicalLocations": [
                    {
                        "name": img["reference"],
                        "fullyQualifiedName": f"{img['reference']}@{img['digest']}",
                        "kind": "module",
                    }
                ]
            }
            origin = f["origin"]
            if origin and origin["path"]:
                physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(origin["path"])}}
                if origin["line"]:
                    physical["region"] = {"startLine": origin["line"]}
                location["physicalLocation"] = physical
            result["locations"] = [location]
            results.append(result)
    notifications = [
        {
            "level": "error",
            "message": {"text": f"{e['reference']}: {e['message']}"},
            "descriptor": {"id": "unreadable-image"},
        }
        for e in doc["errors"]
    ]
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "ociinspect",
                "version": __version__,
                "semanticVersion": __version__,
                "rules": rules,
            }
        },
        "results": results,
        "invocations": [
            {
                "executionSuccessful": not doc["errors"],
                "exitCode": doc["exit_code"],
                "toolExecutionNotifications": notifications,
            }
        ],
    }
    return json.dumps({"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}, indent=2)


def _uri(path: str) -> str:
    """A policy path as a SARIF URI: relative to the working directory when below it, with ``/`` separators."""
    import os
    from pathlib import Path
    from urllib.parse import quote

    p = Path(path)
    try:
        p = p.resolve().relative_to(Path(os.getcwd()).resolve())
        return quote(p.as_posix())
    except ValueError:
        return p.resolve().as_uri()


# ------------------------------------------------------------------------------------------- GitHub


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def check_github(doc: dict[str, Any]) -> str:
    """GitHub Actions workflow commands: ``::error`` for failed rules, undecidable rules of severity error and
    unreadable images, ``::warning`` for warned (and undecidable warning) ones, located at the rule's line of the policy file when it came from one."""
    lines = []
    for img in doc["images"]:
        for f in img["findings"]:
            if f["status"] not in ("fail", "warn", "undecidable"):
                continue
            level = "error" if f["status"] == "fail" or _undecided_error(f) else "warning"
            props = []
            origin = f["origin"]
            if origin and origin["path"]:
                props.append(f"file={_escape_property(_uri(origin['path']))}")
                if origin["line"]:
                    props.append(f"line={origin['line']}")
            title = (
                "ociinspect check: "
                + f["rule"]
                + (f" ({UNDECIDABLE})" if f["status"] == "undecidable" else "")
            )
            props.append(f"title={_escape_property(title)}")
            message = f"{img['reference']}: {f['message']}"
            if f["rule"] in _LISTED and f["details"]:
                message += "\n" + "\n".join(f["details"][:20])
            message += "".join("\n" + w for w in explanation_lines(f))
            lines.append(f"::{level} {','.join(props)}::{_escape_data(message)}")
    for err in doc["errors"]:
        title = _escape_property("ociinspect check: image unreadable")
        lines.append(f"::error title={title}::{_escape_data(err['reference'] + ': ' + err['message'])}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- GitLab


def check_gitlab(doc: dict[str, Any]) -> str:
    """GitLab code-quality report: one issue per failed (``major``), warned (``minor``) or undecidable (``info``)
    rule and image;
    unreadable images are ``blocker`` issues.  ``location.path`` is the policy file when the rule came from one,
    else the image reference."""
    issues: list[dict[str, Any]] = []
    for img in doc["images"]:
        for f in img["findings"]:
            if f["status"] not in ("fail", "warn", "undecidable"):
                continue
            origin = f["origin"]
            path = _uri(origin["path"]) if origin and origin["path"] else img["reference"]
            issues.append(
                {
                    "type": "issue",
                    "check_name": f["rule"],
                    "description": f"{img['reference']}: {f['message']}"
                    + "".join(f"; {w}" for w in explanation_lines(f)),
                    "categories": [
                        "Performance"
                        if RULES[f["rule"]].kind in ("bytes", "count", "ratio", "percent")
                        else "Security"
                    ],
                    "severity": {"fail": "major", "warn": "minor"}.get(f["status"], "info"),
                    "fingerprint": _fingerprint(f["rule"], _stable(img["reference"]), img["platform"] or "")[
                        :32
                    ],
                    "location": {"path": path, "lines": {"begin": (origin or {}).get("line") or 1}},
                }
            )
    for err in doc["errors"]:
        issues.append(
            {
                "type": "issue",
                "check_name": "unreadable-image",
                "description": f"{err['reference']}: {err['message']}",
                "categories": ["Bug Risk"],
                "severity": "blocker",
                "fingerprint": _fingerprint("unreadable-image", _stable(err["reference"]))[:32],
                "location": {"path": err["reference"], "lines": {"begin": 1}},
            }
        )
    return json.dumps(issues, indent=2)
