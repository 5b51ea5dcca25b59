"""Helpers for the reliability tests: an in-process CLI runner, a subprocess runner, the truth about fixtures."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fixtures.build import EXPECTED
from ociinspect.cli import main
from ociinspect.model import mediatypes

CREDENTIAL_VARS = ("DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME")


@dataclass(frozen=True)
class Isolated:
    """The directories a test's ociinspect may write to, and the environment for a subprocess."""

    home: Path
    cache: Path
    data: Path
    env: dict[str, str]


@dataclass(frozen=True)
class CliRun:
    """One CLI run: exit code, stdout, stderr, wall time in seconds."""

    code: int
    out: str
    err: str
    seconds: float

    @property
    def doc(self) -> Any:
        return json.loads(self.out)

    @property
    def error(self) -> dict[str, Any] | None:
        """The JSON error document of a single failed ref (``--format json``), else None."""
        try:
            doc = json.loads(self.out)
        except ValueError:
            return None
        error = doc.get("error") if isinstance(doc, dict) else None
        return error if isinstance(error, dict) else None

    @property
    def error_type(self) -> str | None:
        return str(self.error["type"]) if self.error else None

    def __str__(self) -> str:
        return f"exit {self.code} after {self.seconds:.2f} s\nstdout: {self.out[:2000]}\nstderr: {self.err[:2000]}"


def run_cli(*argv: str, stdin: str | None = None) -> CliRun:
    """``ociinspect ARGV`` in this process (fast; monkeypatches apply); stdin as given; logging restored."""
    logger = logging.getLogger("ociinspect")
    handlers, level = list(logger.handlers), logger.level
    out, err = io.StringIO(), io.StringIO()
    saved_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin or "")
    start = time.monotonic()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))
    finally:
        sys.stdin = saved_stdin
        logger.handlers[:] = handlers
        logger.setLevel(level)
    return CliRun(code, out.getvalue(), err.getvalue(), time.monotonic() - start)


def run_cli_process(*argv: str, env: dict[str, str], stdin: str | None = None, timeout: float = 60) -> CliRun:
    """``python -m ociinspect ARGV`` in a fresh process (real stdin, environment, logging and exit code)."""
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "ociinspect", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    return CliRun(done.returncode, done.stdout, done.stderr, time.monotonic() - start)


def inspect_json(proxy: Any, repo_tag: str, *options: str, stdin: str | None = None) -> CliRun:
    """``ociinspect inspect --no-os -f json [OPTIONS] PROXY/REPO:TAG`` in process."""
    return run_cli("inspect", "--no-os", "-f", "json", *options, proxy.ref(repo_tag), stdin=stdin)


def assert_image(doc: dict[str, Any], name: str, *, digest: str | None = None) -> None:
    """``doc`` (one ``inspect`` JSON object) describes fixture image ``name`` exactly: manifest digest, config,
    every layer's digest, compressed and uncompressed size, and the totals."""
    facts = EXPECTED[name]
    assert "error" not in doc, doc
    assert doc["digest"] == (digest or facts.manifest_digest)
    assert doc["compressed_size"] == facts.compressed_size
    assert doc["uncompressed_size"] == facts.uncompressed_size
    got = [(la["digest"], la["size"], la["uncompressed_size"]) for la in doc["layers"]]
    assert got == [(la.digest, la.size, la.uncompressed_size) for la in facts.layers]
    if digest is None:
        assert doc["config_digest"] == facts.config_digest


def requests_to(proxy: Any, pattern: str, method: str | None = "GET") -> int:
    """How many requests the proxy saw whose target contains ``pattern`` (and has ``method``)."""
    return sum(1 for s in proxy.requests if pattern in s.target and (method is None or s.method == method))


def secrets_in(paths: Sequence[Path], secrets: Sequence[bytes]) -> list[str]:
    """``"path: secret"`` for every file under ``paths`` that contains one of ``secrets`` (binary search)."""
    found = []
    for root in paths:
        for path in [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            found += [f"{path}: {s[:6]!r}…" for s in secrets if s and s in data]
    return found


@contextlib.contextmanager
def restored(obj: Any, attribute: str) -> Iterator[None]:
    """Put ``obj.attribute`` back after the block (for session-scoped fixtures that a test tweaks)."""
    value = getattr(obj, attribute)
    try:
        yield
    finally:
        setattr(obj, attribute, value)


def write_layout(root: Path, *, layers: list[bytes], index_levels: int = 0) -> Path:
    """``root/layout``: an OCI layout with one image of zstd ``layers`` (no diff_ids), under ``index_levels``
    indexes."""
    blobs = root / "layout" / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> dict[str, Any]:
        (blobs / _sha256(data)[7:]).write_bytes(data)
        return {"digest": _sha256(data), "size": len(data)}

    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": {"mediaType": mediatypes.OCI_CONFIG, **put(config.encode())},
        "layers": [{"mediaType": mediatypes.OCI_LAYER_ZSTD, **put(layer)} for layer in layers],
    }
    top = {"mediaType": mediatypes.OCI_MANIFEST, **put(json.dumps(manifest).encode())}
    for _ in range(index_levels):
        index = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": [top]}
        top = {"mediaType": mediatypes.OCI_INDEX, **put(json.dumps(index).encode())}
    (root / "layout" / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (root / "layout" / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))
    return root / "layout"


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
