"""Hostile values, one class at a time (issue 10 §5): each helper of ``ociinspect.model.textsafe`` and every parser or
renderer that must use it, tested with several members of the class — not one example."""

from __future__ import annotations

import csv
import io
import logging
import re
import sys
from pathlib import Path

import pytest

from ociinspect.audit import AuditDB, Pacer
from ociinspect.audit.runs import resolve_run
from ociinspect.errors import InvalidReference, UsageError
from ociinspect.model.logformat import SafeFormatter
from ociinspect.model.osinfo import identify
from ociinspect.model.reference import parse_reference
from ociinspect.model.textsafe import (
    csv_cell,
    escape_controls,
    markdown_cell,
    parse_uint,
    redact_secrets,
)
from ociinspect.policy.files import parse_value
from ociinspect.policy.rules import is_root_user
from ociinspect.registry.client import _CONTENT_RANGE_RE
from ociinspect.registry.transport import _retry_after, content_length
from ociinspect.reports import render
from ociinspect.reports.html import esc
from ociinspect.reports.text import text_table
from tests.unit.test_audit_parts import _observed, _response

# ------------------------------------------------------------------------------------- class 1: numbers

#: look like numbers to str.isdigit() or int(), but are not ASCII digits (or are too long)
NOT_ASCII_NUMBERS = [
    "²",  # superscript two: isdigit() True, int() raises
    "³⁴",
    "١٢",  # Arabic-Indic: int() gives 12
    "٠",
    "۳",  # Extended Arabic-Indic
    "१२",  # Devanagari
    "１２",  # full-width
    "𝟙𝟚",  # mathematical bold digits
    "1_000",  # int() accepts separators
    "+1",
    "-1",
    "0x10",
    "1e3",
    "1.0",
    "12\u200b",  # zero-width space after the digits
    "\u202e12",
    "",
    " ",
    "1" * 21,  # longer than any size we read
]


@pytest.mark.parametrize("text", NOT_ASCII_NUMBERS)
def test_parse_uint_accepts_ascii_digits_only(text: str) -> None:
    assert parse_uint(text) is None


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("12", 12), (" 7\t", 7), ("1" * 20, int("1" * 20))])
def test_parse_uint_reads_ascii_digits(text: str, value: int) -> None:
    assert parse_uint(text) == value


@pytest.mark.parametrize("text", NOT_ASCII_NUMBERS)
def test_http_number_headers_ignore_non_ascii_digits(text: str) -> None:
    """Content-Length and Retry-After: a hostile value is ignored (None), never a crash or a wrong number."""
    assert content_length(_response({"Content-Length": text})) is None
    assert _retry_after(_response({"Retry-After": text})) is None
    assert content_length(_response({"Content-Length": "42"})) == 42
    assert _retry_after(_response({"Retry-After": "3"})) == 3.0


@pytest.mark.parametrize("text", ["١٠;w=٦٠", "١٠", "²", "1_0"])
def test_ratelimit_headers_with_non_ascii_digits_are_ignored(text: str) -> None:
    pacer = Pacer(0, concurrency=1, reserve=5, max_pause=30)
    pacer.observe("GET", "u", *_observed({"ratelimit-remaining": text, "ratelimit-limit": text}))
    assert pacer.remaining is None and pacer.limit is None


def test_content_range_needs_ascii_digits() -> None:
    assert _CONTENT_RANGE_RE.match("bytes 0-9/10")
    for text in ("bytes ٠-٩/١٠", "bytes 0-9/١٠", "bytes ０-9/10"):
        assert _CONTENT_RANGE_RE.match(text) is None


@pytest.mark.parametrize("user", ["²", "٠", "٠:0", "０", "0_0", "𝟘", "-0", "+0"])
def test_config_user_with_non_ascii_digits_is_not_uid_0_and_never_crashes(user: str) -> None:
    assert is_root_user(user) is False


@pytest.mark.parametrize("index", ["²", "١", "1_0", "+1", "１"])
def test_docker_archive_index_needs_ascii_digits(index: str) -> None:
    with pytest.raises(InvalidReference):
        parse_reference(f"docker-archive:/tmp/x.tar:@{index}")
    assert parse_reference("docker-archive:/tmp/x.tar:@1").archive_index == 1


@pytest.mark.parametrize("value", ["²", "١٢", "1_0", "１"])
def test_policy_counts_need_ascii_digits(value: str) -> None:
    with pytest.raises(ValueError, match="not a whole number"):
        parse_value("max-layers", value)
    assert parse_value("max-layers", " 12 ") == 12


@pytest.mark.parametrize("run_id", ["²", "١", "٣", "1_0"])
def test_audit_run_ids_need_ascii_digits(tmp_path: Path, run_id: str) -> None:
    with AuditDB(tmp_path / "a.sqlite3") as db, pytest.raises(UsageError, match="no audit run"):
        resolve_run(db, run_id)


@pytest.mark.parametrize("version", ["²", "١٢.1", "１２"])
def test_os_release_numbers_need_ascii_digits(version: str) -> None:
    info = identify({"etc/debian_version": version.encode()})
    assert info.version_id is None


# ----------------------------------------------------------------------------- class 4: control characters

CONTROLS = ["\x1b[2J", "\x1b]0;pwned\x07", "\x9b31m", "\x00", "\r", "\n", "\x7f", "\u202e", "\u200b", "\ufeff",
            "\u2066", "\u2028", "\U000e0041"]  # fmt: skip
RAW_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff\U000e0000-\U000e007f]"
)


@pytest.mark.parametrize("char", CONTROLS)
def test_escape_controls_leaves_no_control_or_format_character(char: str) -> None:
    out = escape_controls(f"a{char}b")
    assert not RAW_CONTROL.search(out) and "\n" not in out
    assert out.startswith("a\\") and out.endswith("b")


@pytest.mark.parametrize("char", CONTROLS)
def test_html_shows_controls_escaped(char: str) -> None:
    out = esc(f"<x>{char}")
    assert out.startswith("&lt;x&gt;\\") and not RAW_CONTROL.search(out) and "\n" not in out


def test_the_log_formatter_escapes_controls_and_redacts_in_message_and_exception() -> None:
    formatter = SafeFormatter("%(levelname)s %(name)s: %(message)s")
    try:
        raise ValueError("bad \x1b[31mvalue\nFORGED line; postgresql://u:hunter2@db/x")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "ociinspect.t",
        logging.INFO,
        __file__,
        1,
        "label %s\u202e %s",
        ("\x1b]0;t\x07", "password=s3cret"),
        exc_info,
    )
    out = formatter.format(record)
    assert not RAW_CONTROL.search(out)
    assert "hunter2" not in out and "s3cret" not in out
    assert out.splitlines()[0].startswith("INFO ociinspect.t: label \\x1b]0;t\\x07\\u202e password=REDACTED")
    assert not any(line.startswith("FORGED") for line in out.splitlines())


# -------------------------------------------------------------------------------------- class 2: Markdown

HOSTILE_CELLS = [
    "RUN curl https://x | sh",
    "a||b",
    "<script>alert(1)</script>",
    "a\\|b",  # a backslash before a pipe must not un-escape it
    "trailing\\",
    "x\ny| z",
    "|",
    "\x1b[31m|red",
]


def unescaped_pipes(line: str) -> int:
    """Pipes a GitHub table splits on: those not preceded by an odd number of backslashes."""
    return len(re.findall(r"(?<!\\)(?:\\\\)*\|", line))


def test_markdown_tables_keep_their_structure_with_hostile_cells() -> None:
    rows = [(n, v, v) for n, v in enumerate(HOSTILE_CELLS)]
    out = text_table(rows, ["#", "a|b", "<c>"], True)
    lines = out.splitlines()
    assert len(lines) == 2 + len(HOSTILE_CELLS)
    assert {unescaped_pipes(line) for line in lines} == {4}
    assert "<" not in out and ">" not in out and "\x1b" not in out


@pytest.mark.parametrize("value", HOSTILE_CELLS)
def test_markdown_cell(value: str) -> None:
    cell = markdown_cell(value)
    assert unescaped_pipes(cell) == 0 and "<" not in cell and ">" not in cell and "\n" not in cell


# ------------------------------------------------------------------------------------------- class 3: CSV


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", '=HYPERLINK("http://x")'])
def test_csv_cells_that_a_spreadsheet_would_evaluate_are_neutralised(value: str) -> None:
    assert csv_cell(value) == "'" + value
    assert csv_cell("app") == "app" and csv_cell(-1) == -1


def test_audit_csv_neutralises_every_text_cell() -> None:
    doc = {
        "repos": [
            {
                "name": name,
                "tags": 1,
                "images": 1,
                "logical_size": 1,
                "stored_size": 1,
                "unique_size": 1,
                "shared_size": 0,
                "multi_arch_tags": 0,
                "errors": 0,
                "status": status,
            }
            for name, status in [("=cmd|'/c calc'!A1", "ok"), ("+x", "-y"), ("@z", "=1"), ("\tq", "ok")]
        ]
    }
    rows = list(csv.reader(io.StringIO(render("audit", "csv", [doc]))))
    assert all(len(r) == len(rows[0]) for r in rows)
    for r in rows[1:]:
        assert r[0][:1] not in ("=", "+", "-", "@", "\t", "\r") and r[-1][:1] not in ("=", "+", "-", "@")


# -------------------------------------------------------------------------------------- class 5: secrets


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("postgresql://audit:hunter2@db.example/audit", "hunter2"),
        ("postgres://audit:p@ss:w0rd@db:5432/audit?sslmode=require", "w0rd"),
        ("postgresql://db.example/audit?password=hunter2&sslmode=require", "hunter2"),
        ("postgresql://db/audit?sslmode=require&password=hunter2", "hunter2"),
        ("postgresql://db/audit?sslpassword=hunter2", "hunter2"),
        ("host=db user=audit password=hunter2 dbname=audit", "hunter2"),
        ("host=db password = 'hunter 2' dbname=audit", "hunter 2"),
        ("host=db PASSWORD=hunter2", "hunter2"),
        ("error: could not connect to postgresql://u:hunter2@h/db: refused", "hunter2"),
    ],
)
def test_database_urls_are_redacted_in_every_form(text: str, secret: str) -> None:
    out = redact_secrets(text)
    assert secret not in out and "REDACTED" in out


def test_redaction_keeps_what_is_not_secret() -> None:
    assert (
        redact_secrets("postgresql://audit@db/audit?sslmode=require")
        == "postgresql://audit@db/audit?sslmode=require"
    )
    assert redact_secrets("/var/lib/audit.sqlite3") == "/var/lib/audit.sqlite3"


@pytest.mark.parametrize(
    "target", ["host=db password=hunter2", "postgresql://u:hunter2@nowhere.invalid/db", "x?password=hunter2"]
)
def test_audit_database_messages_never_show_the_password(tmp_path: Path, target: str) -> None:
    """A target that is not a URL is taken as an SQLite path: the error quoting it is redacted too."""
    from ociinspect.audit.db import _redact

    assert "hunter2" not in _redact(target)


# ------------------------------------------------------------------ the audit report: every format at once

HOSTILE_NAME = "team/app|<b>x</b>\x1b[31m\u202e=cmd"


def _hostile_audit_doc() -> dict[str, object]:
    from test_audit_parts import NOW, sample_data

    from ociinspect.analyzers.vm_profiles import load_parameters
    from ociinspect.audit.report import build_report

    doc = build_report(sample_data(), now=NOW, vm_params=load_parameters())
    doc["registry"] = "reg|<i>\x1b]0;t\x07"
    for r in doc["repos"]:
        r["name"] = "=" + HOSTILE_NAME + r["name"]
    for e in doc["errors"]:
        e["repository"], e["tag"], e["message"] = HOSTILE_NAME, "v|<1>", "bad | <script>\x1b[2J\nFORGED"
    for s in doc["stale_tags"]:
        s["repository"], s["tag"] = HOSTILE_NAME, "t|<2>\u200b"
    return doc


def test_audit_report_markdown_table_html_and_csv_with_hostile_names() -> None:
    doc = _hostile_audit_doc()
    md = render("audit", "markdown", [doc])
    tables = [b for b in md.split("\n\n") if b.startswith("|")]
    assert tables and all(len({unescaped_pipes(row) for row in t.splitlines()}) == 1 for t in tables), tables
    assert "<b>" not in md and "<script>" not in md and "<i>" not in md and not RAW_CONTROL.search(md)
    assert not any(line.startswith("FORGED") for line in md.splitlines())
    table = render("audit", "table", [doc])
    assert not RAW_CONTROL.search(table) and "\\x1b" in table
    page = render("audit", "html", [doc])
    assert not RAW_CONTROL.search(page) and "<b>x" not in page and "\\x1b" in page
    rows = list(csv.reader(io.StringIO(render("audit", "csv", [doc]))))
    assert {len(r) for r in rows} == {len(rows[0])}
    assert all(r[0].startswith("'=") for r in rows[1:]) and not RAW_CONTROL.search(str(rows))


def test_audit_runs_and_diff_markdown_with_hostile_labels() -> None:
    label = "nightly|<b>\x1b[1m"
    run = {
        "id": 1, "label": label, "registry": "reg|<x>", "prefix": "p|q", "status": "complete", "shards": 1,
        "shards_complete": 1, "repositories": 1, "tags": 1, "errors": 0, "requests": 3,
        "started_at": 0.0, "finished_at": 1.0,
    }  # fmt: skip
    md = render("audit-runs", "markdown", [{"runs": [run]}])
    lines = md.splitlines()
    assert len({unescaped_pipes(line) for line in lines}) == 1 and "<b>" not in md and "<x>" not in md
    assert not RAW_CONTROL.search(md)


@pytest.mark.parametrize("value", ["²", "١٢٣", "1_000", "１０", "+5", "12\u200b"])
def test_estargz_uncompressed_size_annotation_needs_ascii_digits(value: str) -> None:
    """A hostile ``io.containers.estargz.uncompressed-size`` is "not known" — never a crash or a wrong size."""
    import dataclasses

    from waste_fixtures import MemorySource, estargz_layer, f, model_layer

    from ociinspect.content.estargz import UNCOMPRESSED_SIZE_ANNOTATION
    from ociinspect.content.scan import scan_layer

    lb = estargz_layer([f("a", b"x" * 100)])
    hostile = dataclasses.replace(lb, annotations={**lb.annotations, UNCOMPRESSED_SIZE_ANNOTATION: value})
    assert scan_layer(MemorySource([lb.blob]), model_layer(0, hostile)).uncompressed_size is None
    honest = dataclasses.replace(lb, annotations={**lb.annotations, UNCOMPRESSED_SIZE_ANNOTATION: "4096"})
    assert scan_layer(MemorySource([lb.blob]), model_layer(0, honest)).uncompressed_size == 4096
