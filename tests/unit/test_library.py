"""The library (issue 12): ``ociinspect.Session``'s entry points, its conveniences, ``LoadOptions(platform=str)``,
the loader's public ``resolve``, the public face (``__all__``), and docs/library.md run as a doctest."""

from __future__ import annotations

import ast
import base64
import dataclasses
import doctest
import inspect
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import ociinspect
from ociinspect.api import Session as ApiSession
from ociinspect.cli import cli
from ociinspect.errors import UsageError
from ociinspect.image.loader import LoadOptions, resolve
from ociinspect.model.image import Platform
from ociinspect.session import Session as BaseSession

ROOT = Path(__file__).resolve().parents[2]
DEMO = "oci:fixtures/demo:latest"


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the bundled image is named relative to the repository


def _python_blocks(markdown: str) -> str:
    """The ```python blocks of a Markdown page, each followed by a blank line (doctest ends an example's expected
    output there, not at the closing fence); other lines become blank so line numbers in reports stay right."""
    out, inside = [], False
    for line in markdown.splitlines():
        if line.strip() == "```python":
            inside = True
            out.append("")
        elif inside and line.strip() == "```":
            inside = False
            out.append("")
        else:
            out.append(line if inside else "")
    return "\n".join(out) + "\n"


def test_library_md_runs(fixture_images: dict[str, Path]) -> None:
    """Every example of docs/library.md runs and prints what the page says."""
    path = ROOT / "docs" / "library.md"
    test = doctest.DocTestParser().get_doctest(
        _python_blocks(path.read_text(encoding="utf-8")),
        {"FIXTURES": str(fixture_images["all"].parent)},
        "docs/library.md",
        str(path),
        0,
    )
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted >= 25
    assert result.failed == 0, "docs/library.md: an example printed something else (see the output above)"


def test_all_is_sorted_importable_and_documented() -> None:
    names = ociinspect.__all__
    assert names == sorted(names)
    for name in names:
        value = getattr(ociinspect, name)
        if name != "__version__":
            assert (inspect.getdoc(value) or "").strip(), f"{name} has no docstring"
    assert ociinspect.Session is ApiSession and issubclass(ApiSession, BaseSession)


ENTRY_POINTS = [
    "waste",
    "files",
    "compare",
    "vm",
    "check",
    "diff",
    "manifest",
    "config",
    "digest",
    "tags",
    "repositories",
    "referrers",
    "blob",
]


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_every_entry_point_is_typed_and_states_its_cost(name: str) -> None:
    method = getattr(ociinspect.Session, name)
    doc = inspect.getdoc(method) or ""
    assert "cost" in doc.lower(), f"Session.{name} does not state its cost"
    assert "return" in inspect.get_annotations(method)
    assert all(
        p.annotation is not inspect.Parameter.empty
        for p in inspect.signature(method).parameters.values()
        if p.name != "self"
    )


def test_load_options_takes_a_platform_text() -> None:
    assert LoadOptions(platform="linux/arm64").platform == Platform("linux", "arm64")
    assert LoadOptions(platform="Linux/AArch64").platform == Platform(
        "linux", "arm64"
    )  # normalised as --platform
    replaced = dataclasses.replace(LoadOptions(), platform="linux/amd64", sizes="exact")  # type: ignore[arg-type]
    assert replaced.platform == Platform("linux", "amd64") and replaced.sizes == "exact"
    with pytest.raises(UsageError, match="not os/arch") as info:
        LoadOptions(platform="linux/")
    assert info.value.hint and int(info.value.exit_code) == 2
    with pytest.raises(UsageError, match="must be a Platform"):
        LoadOptions(platform=42)  # type: ignore[arg-type]


def test_session_conveniences_build_the_settings(tmp_path: Path) -> None:
    s = BaseSession(insecure=True, plain_http=False, deadline=30)
    assert s._settings is not None and s._settings.default.insecure and s._settings.deadline is not None
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert BaseSession(ca_file=ca)._settings.default.ca_file == str(ca)  # type: ignore[union-attr]
    with pytest.raises(UsageError, match="not a file"):
        BaseSession(ca_file=tmp_path / "missing.pem")
    from ociinspect.registry import RegistrySettings

    with pytest.raises(UsageError, match="not both"):
        BaseSession(RegistrySettings(), insecure=True)


def test_session_password_is_never_shown_and_goes_to_one_registry() -> None:
    s = ociinspect.Session(username="bot", password="s3cret-pw", registry="reg.example.com")
    assert "s3cret-pw" not in repr(s) and "s3cret-pw" not in str(vars(s))
    creds = s._credentials
    assert creds is not None
    found = creds.for_registry("reg.example.com")
    assert found is not None and found.username == "bot" and found.password == "s3cret-pw"
    assert "s3cret-pw" not in repr(found)
    with pytest.raises(UsageError, match=r"not for other\.example\.com"):
        creds.for_registry("other.example.com")
    first = ociinspect.Session(username="bot", password="pw")._credentials  # bound on first use
    assert first is not None and first.for_registry("a.example.com") is not None
    with pytest.raises(UsageError):
        first.for_registry("b.example.com")
    with pytest.raises(UsageError, match="go together"):
        ociinspect.Session(username="bot")


def test_session_authfile(tmp_path: Path) -> None:
    auth = tmp_path / "auth.json"
    token = base64.b64encode(b"alice:pw1").decode()
    auth.write_text(json.dumps({"auths": {"reg.example.com": {"auth": token}}}))
    creds = ociinspect.Session(authfile=auth)._credentials
    assert creds is not None
    found = creds.for_registry("reg.example.com")
    assert found is not None and (found.username, found.password) == ("alice", "pw1")
    with pytest.raises(UsageError, match="authfile"):
        ociinspect.Session(authfile=tmp_path / "none.json")


def test_resolve_is_public_and_verbs_use_no_private_loader_name() -> None:
    with BaseSession() as s, s.source(DEMO) as src:
        resolution = resolve(src)
    assert resolution.raw is not None and resolution.raw.digest == resolution.manifest.digest
    tree = ast.parse((ROOT / "ociinspect" / "verbs.py").read_text())
    private = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ociinspect")
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert private == []


def _cli_json(*args: str) -> object:
    result = CliRunner().invoke(cli, [*args, "--format", "json", "--no-cache"])
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def test_the_library_and_the_cli_give_the_same_documents() -> None:
    """No second pipeline: the library's to_json() is what the command prints."""
    with ociinspect.Session() as s:
        assert s.waste(DEMO).to_json() == _cli_json("waste", DEMO)
        assert s.files(DEMO, layer=-1).to_json() == _cli_json("files", DEMO, "--layer", "-1")
        assert s.files(DEMO, top=5, sort="path").to_json() == _cli_json(
            "files", DEMO, "--top", "5", "--sort", "path"
        )


def test_analyses_refuse_bad_arguments() -> None:
    with ociinspect.Session() as s:
        with pytest.raises(UsageError, match="two or more"):
            s.compare([DEMO])
        with pytest.raises(UsageError, match="3 layers"):
            s.files(DEMO, layer=3)
        with pytest.raises(UsageError, match="replicas"):
            s.vm(DEMO, replicas=0)
