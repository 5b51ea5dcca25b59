"""Each rule stated once (issue 11): Docker Hub's names, manifest media-type sniffing, the manifest type, the
transient statuses, the user agent, the error types, the view table and the one in-memory source.

Each test holds every place that applies a rule against the one definition, so a second copy that drifts fails.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ociinspect import errors
from ociinspect._version import __version__
from ociinspect.audit.walker import _as_error
from ociinspect.cli.audit import parse_registry
from ociinspect.errors import (
    TRANSIENT_STATUSES,
    DatabaseError,
    DigestMismatch,
    ExitCode,
    LimitExceeded,
    NotFound,
    OciInspectError,
    RecordedError,
    RegistryError,
    error_type_name,
    is_transient,
)
from ociinspect.image.nesting import IndexChain, IndexNestingError, is_nesting_error
from ociinspect.model import digest as dg
from ociinspect.model import mediatypes as mt
from ociinspect.model.image import RawManifest
from ociinspect.model.reference import DOCKER_HUB, HUB_ALIASES, is_docker_hub, parse_reference
from ociinspect.registry import FetchedManifest, RegistrySettings, client, transport
from ociinspect.registry.credentials import registry_key
from ociinspect.reports import VIEWS, _renderer, formats_for
from ociinspect.sources.local import open_local
from ociinspect.sources.memory import MemorySource

PACKAGE = Path(__file__).resolve().parents[2] / "ociinspect"

# ------------------------------------------------------------------------------------------- Docker Hub


@pytest.mark.parametrize("alias", [*sorted(HUB_ALIASES), "Docker.IO", "REGISTRY.HUB.DOCKER.COM"])
def test_every_docker_hub_name_means_the_hub_everywhere(alias: str) -> None:
    assert is_docker_hub(alias)
    ref = parse_reference(f"{alias}/alpine:3")
    assert (ref.registry, ref.repository) == (DOCKER_HUB, "library/alpine")
    assert registry_key(alias) == registry_key(f"https://{alias}/v1/") == "docker.io"
    assert parse_registry(alias).registry == DOCKER_HUB


def test_a_name_like_the_hub_is_not_the_hub() -> None:
    for host in ("docker.io.example.com", "hub.docker.com", "mirror.gcr.io"):
        assert not is_docker_hub(host)
        assert registry_key(host) == host
        assert parse_registry(host).registry == host


# ------------------------------------------------------------------------------------- media-type sniffing

_MANIFEST = {"schemaVersion": 2, "config": {}, "layers": []}
_INDEX = {"schemaVersion": 2, "manifests": []}
_SIGNED_SCHEMA1 = {"schemaVersion": 1, "name": "x", "fsLayers": [], "signatures": []}

SNIFF_CASES: list[tuple[str | None, Any, str]] = [
    # (declared type, document, media type every source must report)
    ("application/json", _MANIFEST, mt.OCI_MANIFEST),  # generic: the document decides (the layout said json)
    ("text/plain", _INDEX, mt.OCI_INDEX),
    (None, _SIGNED_SCHEMA1, mt.DOCKER_SCHEMA1_SIGNED),  # the layout said unsigned schema1
    (None, {**_MANIFEST, "mediaType": mt.DOCKER_MANIFEST}, mt.DOCKER_MANIFEST),
    (mt.OCI_INDEX, _MANIFEST, mt.OCI_INDEX),  # a specific declared type wins; the loader checks the shape
    ("application/octet-stream", {"schemaVersion": 2}, "application/octet-stream"),
]


def _layout(tmp_path: Path, declared: str | None, data: bytes) -> str:
    digest = dg.compute(data)
    (tmp_path / "blobs" / "sha256").mkdir(parents=True)
    (tmp_path / "blobs" / "sha256" / digest.split(":", 1)[1]).write_bytes(data)
    entry: dict[str, Any] = {"digest": digest, "size": len(data)}
    if declared is not None:
        entry["mediaType"] = declared
    (tmp_path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (tmp_path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    return f"oci:{tmp_path}"


@pytest.mark.parametrize(("declared", "doc", "expected"), SNIFF_CASES)
def test_registry_layout_and_memory_sources_sniff_manifests_alike(
    tmp_path: Path, declared: str | None, doc: Any, expected: str
) -> None:
    data = json.dumps(doc).encode()
    assert mt.manifest_media_type(declared, data) == expected
    assert client._media_type(declared, data) == expected  # the registry's Content-Type
    if declared:
        assert client._media_type(f"{declared.upper()}; charset=utf-8", data) == expected
    memory = MemorySource(tags={"latest": data}, media_types={dg.compute(data): declared} if declared else {})
    assert memory.root().media_type == expected
    layout = open_local(parse_reference(_layout(tmp_path, declared, data)))
    try:
        assert layout.root().media_type == expected
    finally:
        layout.close()


def test_unparseable_manifest_keeps_its_declared_type() -> None:
    assert mt.manifest_media_type("", b"{nope") == "application/octet-stream"
    assert mt.manifest_media_type("application/json", b"[" * 100_000) == "application/json"


def test_the_registry_serves_the_sources_manifest_type() -> None:
    assert FetchedManifest is RawManifest


# ------------------------------------------------------------------------------- transient statuses, agent


def test_transient_statuses_are_defined_once() -> None:
    assert transport.RETRY_STATUSES is TRANSIENT_STATUSES  # the transport retries exactly what is transient
    assert {429, 502, 503, 504} == TRANSIENT_STATUSES
    for status in TRANSIENT_STATUSES:
        assert is_transient(RegistryError("x", status=status))
    for other in (None, 400, 404, 500, 501):
        assert not is_transient(RegistryError("x", status=other))
    assert is_transient(errors.ConnectionFailed("x")) and is_transient(errors.Timeout("x"))
    assert not is_transient(RecordedError("RateLimited", "recorded"))


def test_one_user_agent() -> None:
    assert f"ociinspect/{__version__}" == transport.USER_AGENT
    assert RegistrySettings().user_agent == transport.USER_AGENT


# ------------------------------------------------------------------------------------------- error types


def test_database_error_lives_in_the_error_tree() -> None:
    import ociinspect.audit

    assert issubclass(DatabaseError, OciInspectError)
    assert ociinspect.audit.DatabaseError is DatabaseError
    assert DatabaseError("x").exit_code == ExitCode.UNREADABLE


def test_an_internal_error_is_recorded_as_a_typed_value() -> None:
    err = _as_error(ValueError("bad\x1b[2Jvalue"), "reading team/app:1")
    assert isinstance(err, RecordedError)
    assert (err.type_name, err.exit_code) == ("ValueError", ExitCode.UNREADABLE)
    assert err.message == "reading team/app:1: internal error (ValueError: bad?[2Jvalue)"
    assert err.hint and "please report it" in err.hint
    assert error_type_name(err) == "ValueError" and not is_transient(err)
    assert error_type_name(DigestMismatch("x")) == "DigestMismatch"
    known = NotFound("x")
    assert _as_error(known, "y") is known


def test_index_nesting_is_a_type_not_a_mark() -> None:
    chain = IndexChain(limit=1).enter("sha256:" + "a" * 64, "walking")
    with pytest.raises(IndexNestingError) as info:
        chain.enter("sha256:" + "b" * 64, "walking")
    assert isinstance(info.value, LimitExceeded) and is_nesting_error(info.value)
    assert not is_nesting_error(LimitExceeded("too big"))


def test_no_module_sets_attributes_through_dunder_dict() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}:{node.lineno}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr == "__dict__"
    ]
    assert offenders == []


# ------------------------------------------------------------------------------------------- view table


def test_the_view_table_knows_every_view_without_imports() -> None:
    code = (
        "import sys\n"
        "from ociinspect.reports import formats_for, render\n"
        "print(formats_for('audit'), formats_for('check'), formats_for('diff'))\n"
        "print(sorted(m for m in sys.modules if m.startswith('ociinspect.reports.')))\n"
        "render('audit-runs', 'table', [{'runs': []}])\n"
        "print('ociinspect.reports.audit' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    formats, loaded, after = out.splitlines()
    assert formats == (
        "('table', 'json', 'markdown', 'csv', 'html') "
        "('table', 'json', 'text', 'markdown', 'junit', 'sarif', 'github', 'gitlab') "
        "('table', 'json', 'markdown', 'html')"
    )
    assert loaded == "[]"  # nothing imported until a view is rendered
    assert after == "True"


@pytest.mark.parametrize("view", sorted(VIEWS))
def test_every_view_in_the_table_resolves(view: str) -> None:
    for fmt in VIEWS[view]:
        assert callable(_renderer(view, fmt))
    assert formats_for(view)[:2] == ("table", "json")


def test_no_report_module_registers_on_import() -> None:
    calls = [
        f"{path.name}:{node.lineno}"
        for path in sorted((PACKAGE / "reports").glob("*.py"))
        for node in ast.parse(path.read_text()).body
        for call in ast.walk(node)
        if not isinstance(node, ast.FunctionDef | ast.ClassDef)
        and isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id == "register"
    ]
    assert calls == []


# ------------------------------------------------------------------------------------------ memory source


def test_memory_source_verifies_unless_told_to_lie() -> None:
    digest = dg.compute(b"the real content")
    honest = MemorySource({digest: b"planted"})
    with pytest.raises(DigestMismatch):
        honest.blob(digest, size=None, max_bytes=1 << 20)
    with pytest.raises(DigestMismatch), honest.open_blob(digest, size=None) as chunks:
        b"".join(chunks)
    liar = MemorySource({digest: b"planted"}, verify=False, chunk=3)
    assert liar.blob(digest, size=None, max_bytes=1 << 20) == b"planted"
    with liar.open_blob(digest, size=None) as chunks:
        assert list(chunks) == [b"pla", b"nte", b"d"]
    assert "verify=False" in repr(liar)
