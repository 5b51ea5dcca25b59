"""Start-up guard (issue 14, target 3): what ``ociinspect inspect`` of a local image imports.

No timing here: each test runs the command line in a fresh interpreter (``python -c``), then prints the modules
it imported; a module that only registry work, another command or another format needs must not be among them.
A failure names the module and the chain that imported it (``python -X importtime`` shows the cost).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "fixtures" / "demo"

#: the HTTP stack and the registry client: local sources never need them
NETWORK = ("requests", "urllib3", "certifi", "charset_normalizer", "idna", "ssl", "http.client")
NETWORK_OURS = (
    "ociinspect.registry.client",
    "ociinspect.registry.transport",
    "ociinspect.registry.auth",
    "ociinspect.sources.registry",
)
#: what `inspect` never uses: the library API, other commands' analyzers, policy, the other report modules
NOT_FOR_INSPECT = (
    "ociinspect.api",
    "ociinspect.analyzers.sharing",
    "ociinspect.analyzers.waste",
    "ociinspect.analyzers.diff",
    "ociinspect.policy.grammar",
    "ociinspect.policy.rules",
    "ociinspect.reports.ci",
    "ociinspect.reports.html",
    "ociinspect.reports.waste",
    "ociinspect.reports.audit",
    "ociinspect.audit",
    "ociinspect.cli.raw",
    "ociinspect.cli.waste",
    "decimal",
    "subprocess",
    # the library's loggers and pool need neither (ociinspect/model/logs.py, ociinspect/threads.py): ~5 ms
    "logging",
    "concurrent.futures",
    "traceback",
)

#: OpenSSL's hashes: ~4 ms to load libcrypto.  Manifests and configs are hashed by the interpreter's own
#: (ociinspect/model/digest.py: new_hash); only a layer streamed whole (the base OS's first search, before it is
#: cached) needs them
OPENSSL = ("hashlib", "_hashlib")

#: what reading a tar archive or writing a report file needs (``docker-archive:``, ``--output``), not a layout
#: directory's ``inspect`` to stdout
ARCHIVE_ONLY = ("tarfile", "tempfile", "shutil")
#: what inflating a layer needs (``content/compression.py`` loads it at the first inflate): not a cached run
INFLATE_ONLY = ("isal",)

_PROBE = """
import io, json, sys, contextlib
from ociinspect.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main({argv!r})
json.dump({{"code": code, "modules": sorted(sys.modules), "stdout": out.getvalue()}}, sys.stderr)
"""


def _python(
    code: str, *, cwd: Path = REPO, cache: Path | None = None, check: bool = True
) -> CompletedProcess[str]:
    """``python -c code`` in a fresh interpreter with this tree on ``PYTHONPATH`` (and ``cache`` as the XDG cache)."""
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    if cache is not None:
        env["XDG_CACHE_HOME"] = str(cache)
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=check,
    )


def _probe_report(code: str, tmp_path: Path) -> dict[str, Any]:
    """Run a probe (cwd and XDG cache in ``tmp_path``) that ends by writing a JSON report as its last stderr line."""
    done = _python(code, cwd=tmp_path, cache=tmp_path / "cache", check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    report: dict[str, Any] = json.loads(done.stderr.strip().splitlines()[-1])
    return report


def _imports_of(*argv: str, tmp_path: Path) -> tuple[set[str], str]:
    """Run ``main(argv)`` in a fresh interpreter (cwd and XDG cache in ``tmp_path``); the modules it imported
    and its stdout.  Site-packages ``.pth`` files may import things before us: those are subtracted (what a bare
    ``python -c pass`` has imported)."""
    baseline = _python(
        "import sys, json; print(json.dumps(sorted(sys.modules)))", cwd=tmp_path, cache=tmp_path / "cache"
    )
    report = _probe_report(_PROBE.format(argv=list(argv)), tmp_path)
    assert report["code"] == 0, report
    preloaded = set(json.loads(baseline.stdout))
    return set(report["modules"]) - preloaded, report["stdout"]


def _offenders(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


@pytest.mark.parametrize("fmt", ["json", "table"])
def test_local_inspect_imports_no_network_stack(tmp_path: Path, fmt: str) -> None:
    modules, stdout = _imports_of("inspect", f"oci:{DEMO}:latest", "-f", fmt, tmp_path=tmp_path)
    assert "sha256:" in stdout  # it did read the image
    assert _offenders(modules, NETWORK + NETWORK_OURS) == []
    assert _offenders(modules, NOT_FOR_INSPECT) == []
    again, _ = _imports_of("inspect", f"oci:{DEMO}:latest", "-f", fmt, tmp_path=tmp_path)  # base OS cached
    if (
        fmt == "json"
    ):  # (the table's tabulate imports importlib.metadata, and with it email, hmac and hashlib)
        assert _offenders(again, OPENSSL) == []
        # a layout directory is no archive, and no report file is written: ~5 ms of imports
        assert _offenders(again, ARCHIVE_ONLY + INFLATE_ONLY) == []


def test_local_inspect_json_imports_no_table_renderer(tmp_path: Path) -> None:
    modules, stdout = _imports_of("inspect", f"oci:{DEMO}:latest", "-f", "json", tmp_path=tmp_path)
    assert json.loads(stdout)["layers"]
    assert _offenders(modules, ("tabulate", "wcwidth", "ociinspect.reports.text")) == []


def test_local_inspect_no_os_imports_no_scanner_or_vm_model(tmp_path: Path) -> None:
    """``--no-os`` reads no layer bytes: neither the layer scanner nor the VM model nor the OS model is imported
    (with the base OS asked for, a background thread imports them while the image is read)."""
    modules, _ = _imports_of("inspect", f"oci:{DEMO}:latest", "--no-os", "-f", "json", tmp_path=tmp_path)
    unused = (
        "ociinspect.content.scan",
        "ociinspect.analyzers",
        "tomllib",
        "ociinspect.model.osinfo",
        "shlex",
    )
    assert _offenders(modules, unused) == []


def test_inspect_with_the_base_os_cached_imports_no_layer_scanner(tmp_path: Path) -> None:
    """The base OS found once is cached by layer digest: a second ``inspect`` reads it from the cache and never
    imports the layer scanner (~4 ms), while the first one (a cache miss) did."""
    first, stdout = _imports_of("inspect", f"oci:{DEMO}:latest", "-f", "json", tmp_path=tmp_path)
    again, stdout_again = _imports_of("inspect", f"oci:{DEMO}:latest", "-f", "json", tmp_path=tmp_path)
    assert json.loads(stdout_again)["base_os"] == json.loads(stdout)["base_os"] is not None
    assert "ociinspect.content.scan" in first
    assert _offenders(again, ("ociinspect.content.scan",)) == []


def test_version_imports_no_library(tmp_path: Path) -> None:
    modules, stdout = _imports_of("--version", tmp_path=tmp_path)
    assert "ociinspect" in stdout
    assert _offenders(modules, (*NETWORK, "ociinspect.session", "ociinspect.image", "ociinspect.store")) == []


def test_library_import_is_lazy() -> None:
    """``import ociinspect`` imports the version and the errors; each public name on first use, the same
    object as its home module's."""
    code = (
        "import sys, ociinspect\n"
        "heavy = [m for m in sys.modules if m.startswith(('ociinspect.api', 'ociinspect.session', 'requests'))]\n"
        "from ociinspect import Session, Image, LoadOptions, parse_reference\n"
        "import ociinspect.api, ociinspect.model.image\n"
        "assert Session is ociinspect.api.Session and Image is ociinspect.model.image.Image\n"
        "assert 'Session' in dir(ociinspect)\n"
        "print(heavy, 'requests' in sys.modules)\n"
    )
    assert _python(code).stdout.strip() == "[] False"


def test_registry_package_settings_without_requests() -> None:
    """The CLI builds :class:`RegistrySettings`, a :class:`Deadline` and a credential resolver for every
    command; none of them imports the HTTP stack — only :class:`RegistryClient` does (and the transport uses the
    very same settings classes), and that is the transport's own HTTP/1.1 framing: never ``requests``,
    ``urllib3`` or ``charset_normalizer`` (~100 ms of imports), nor :mod:`http.client` (with :mod:`email` and
    :mod:`ssl`, ~10–15 ms; issue 14)."""
    code = (
        "import sys\n"
        "preloaded = set(sys.modules)  # what this environment's .pth files import (certifi, here)\n"
        "from ociinspect.registry import CredentialResolver, Deadline, HostSettings, RegistrySettings\n"
        "RegistrySettings(default=HostSettings(plain_http=True)); CredentialResolver(); Deadline.after(1.0)\n"
        "before = 'ociinspect.registry.transport' in sys.modules\n"
        "from ociinspect.registry import RegistryClient\n"
        "from ociinspect.registry import transport\n"
        "stack = ('requests', 'urllib3', 'charset_normalizer', 'idna', 'certifi', 'http.client', 'email', 'ssl')\n"
        "heavy = [m for m in stack if m in set(sys.modules) - preloaded]\n"
        "print(before, 'ociinspect.registry.transport' in sys.modules, transport.RegistrySettings is RegistrySettings, heavy)\n"
    )
    assert _python(code).stdout.split() == ["False", "True", "True", "[]"]


#: what a loopback (plain HTTP) registry `inspect` must not import since the transport has its own HTTP/1.1
#: client (issue 14, target 3: ~100 ms of imports for requests, ~10-15 ms for http.client with email and ssl);
#: and the "idna" codec, which a host name given to getaddrinfo as str costs
REQUESTS_STACK = (
    "requests",
    "urllib3",
    "charset_normalizer",
    "idna",
    "encodings.idna",
    "stringprep",
    "http.client",
    "ssl",
)


@pytest.mark.registry
@pytest.mark.parametrize("fmt", ["json", "table"])
def test_registry_inspect_imports_only_what_it_uses(seeded_registry: Any, tmp_path: Path, fmt: str) -> None:
    """``inspect docker://127.0.0.1:PORT/…`` (the benchmark's command): the registry client on
    own HTTP/1.1 framing without requests/urllib3/charset_normalizer/idna, nor http.client/email/ssl (plain
    HTTP needs no TLS), and none of the modules ``inspect``
    never uses (the library API, other commands' analyzers, policy, other report formats)."""
    ref = f"docker://{seeded_registry.host}/fixtures/demo:latest"
    modules, stdout = _imports_of("inspect", ref, "--format", fmt, tmp_path=tmp_path)
    assert "sha256:" in stdout  # it did read the image
    assert "ociinspect.registry.transport" in modules and "ociinspect.registry.http11" in modules
    assert _offenders(modules, REQUESTS_STACK) == []
    assert _offenders(modules, NOT_FOR_INSPECT) == []
    # run again: the base OS is now cached, and reading it needs no layer-index model
    again, _ = _imports_of("inspect", ref, "--format", fmt, tmp_path=tmp_path)
    assert "ociinspect.model.entries" in modules
    assert _offenders(again, ("ociinspect.model.entries",)) == []
    if fmt == "json":  # (tabulate imports importlib.metadata, and that the email package, hmac and hashlib)
        assert _offenders(again, OPENSSL) == []
        assert _offenders(modules, ("tabulate", "wcwidth", "ociinspect.reports.text", "email")) == []
        # plain HTTP: the C socket type (_socket) only (the table's tabulate brings email.utils, and with it socket)
        assert _offenders(modules, ("socket", "selectors")) == []


def test_a_valid_command_line_imports_no_difflib(tmp_path: Path) -> None:
    """``difflib`` (the did-you-mean of a misspelt command or option) is imported only for a misspelt one —
    not for a short option such as ``-f``, which click first looks up as a long option (old code: imported by
    our CLI module, and by click for every short option given)."""
    argv = ("inspect", f"oci:{DEMO}:latest", "-f", "json", "-j", "2", "-q")
    modules, stdout = _imports_of(*argv, tmp_path=tmp_path)
    assert json.loads(stdout)["layers"]
    assert _offenders(modules, ("difflib",)) == []


_GC_PROBE = """
import gc, json, runpy, sys
seen = []
def note(phase, info):
    if phase == "start" and "ociinspect.cli" in sys.modules:  # from the CLI's import on
        seen.append("ociinspect.cli.inspect" in sys.modules)
gc.callbacks.append(note)
sys.argv = ["ociinspect", *{argv!r}]
try:
    runpy.run_module("ociinspect", run_name="__main__", alter_sys=True)
finally:
    print(json.dumps({{"before": seen.count(False), "after": seen.count(True), "enabled": gc.isenabled()}}),
          file=sys.stderr)
"""


def test_start_up_runs_without_garbage_collections(tmp_path: Path) -> None:
    """``python -m ociinspect``: no cyclic garbage collection from the CLI's import until the command's module is
    imported (those imports make ~10 collections otherwise; ~35 in the whole start-up), then the collector is on again for the command's work.  Library
    callers of ``main`` keep their collector as it is (the probe of the other tests runs ``main``)."""
    argv = ["inspect", f"oci:{DEMO}:latest", "--format", "json", "-o", str(tmp_path / "out.json")]
    report = _probe_report(_GC_PROBE.format(argv=argv), tmp_path)
    assert report["before"] == 0  # old code: 10
    assert report["enabled"]
    assert json.loads((tmp_path / "out.json").read_text())["layers"]
    code = "import gc, ociinspect.cli as c; c.main(['--version']); print(gc.isenabled())"
    assert _python(code).stdout.split()[-1] == "True"


def test_the_builtin_vm_profiles_are_read_without_importlib_resources() -> None:
    """The VM model's built-in parameters are read from the package's directory: ``importlib.resources`` (with
    ``zipfile``, ~4-6 ms) is not imported for them — checked with ``-S``, where no site ``.pth`` file can have
    imported it first; and the file read is the one ``importlib.resources`` gives."""
    code = (
        "import sys\n"
        "from ociinspect.analyzers import vm_profiles\n"
        "text = vm_profiles._builtin_text()\n"
        "print('importlib.resources' in sys.modules, 'zipfile' in sys.modules)\n"
        "from importlib import resources\n"
        "print(text == resources.files('ociinspect').joinpath('data/vm_profiles.json').read_text(encoding='utf-8'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        cwd=REPO,
        timeout=120,
        check=True,
    )
    assert done.stdout.split() == ["False", "False", "True"]


_REGENERATE = (
    "python -c \"import json, tomllib, pathlib; d = pathlib.Path('ociinspect/data'); "
    "(d / 'vm_profiles.json').write_text(json.dumps(tomllib.loads((d / 'vm_profiles.toml')"
    ".read_text(encoding='utf-8')), indent=1, ensure_ascii=False) + '\\n', encoding='utf-8')\""
)


def test_the_builtin_vm_profiles_json_is_this_file() -> None:
    """``data/vm_profiles.json`` (what ``inspect`` reads: no tomllib) is the parsed ``data/vm_profiles.toml``."""
    import tomllib

    from ociinspect.analyzers import vm_profiles

    toml = tomllib.loads(vm_profiles._builtin_text("vm_profiles.toml"))
    assert json.loads(vm_profiles._builtin_text()) == toml, (
        f"regenerate the JSON from the TOML: {_REGENERATE}"
    )


def test_a_user_profile_is_toml_and_the_builtin_needs_no_tomllib(tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text("[global]\nheadroom = 0.5\n", encoding="utf-8")
    code = (
        "import sys\n"
        "from ociinspect.analyzers import vm_profiles\n"
        "builtin = vm_profiles.load_parameters()\n"
        "print('tomllib' in sys.modules, builtin.headroom)\n"
        f"print(vm_profiles.load_parameters({str(profile)!r}).headroom, 'tomllib' in sys.modules)\n"
    )
    assert _python(code).stdout.split() == ["False", "0.3", "0.5", "True"]


def test_the_builtin_vm_profiles_fall_back_to_importlib_resources(monkeypatch: pytest.MonkeyPatch) -> None:
    """A package that is not a plain directory (a zip): the file cannot be opened, the resource API reads it."""
    from ociinspect.analyzers import vm_profiles

    expected = vm_profiles._builtin_text()
    monkeypatch.setattr(vm_profiles.os.path, "abspath", lambda _p: "/nonexistent/ociinspect/analyzers/x.py")
    assert vm_profiles._builtin_text() == expected
    assert vm_profiles.load_parameters().profiles
