"""Benchmark of issue 2: ``ociinspect inspect`` against skopeo on a realistic image, measured in one run.

    python tests/bench/bench_inspect.py                 # 7 timed runs of everything after one warm-up
    python tests/bench/bench_inspect.py --source HEAD   # benchmark a committed revision, not the work tree
    python tests/bench/bench_inspect.py --strict        # also exit 1 when a timing target is missed

What happens:

1. :mod:`realimage` builds (or reuses) the ~480 MB, 5-layer image (debootstrap bookworm minbase + 4 layers).
2. A Distribution registry is started on loopback (``tests/harness/registry.py``, mode ``anon``, access log on)
   and the image is pushed with ``skopeo copy --preserve-digests oci:LAYOUT:latest docker://HOST/bench/real:latest``.
3. Measured (median/min/max of ``--runs`` runs each, after one warm-up run):

   a. ``python -m ociinspect inspect REF -f json`` (and the installed ``ociinspect`` script) vs
      ``skopeo inspect --tls-verify=false docker://REF``;
   b. the true unpacked size: ociinspect's ``uncompressed_size`` vs ``skopeo copy docker://REF dir:TMP`` +
      ``gunzip -c LAYER | wc -c`` per layer; bytes transferred by each, from the registry's access log
      (Apache combined format: status and response size per request);
   c. ``ociinspect inspect --exact`` (streams and verifies every layer), for reference;
   d. where the ``inspect`` time goes: interpreter start-up, imports, HTTP (in-process timings), and
      ``python -X importtime`` of the CLI.

Checks (exit 1 when one fails): every layer's and the total uncompressed size equal ``gunzip | wc -c`` and the
tar size written by :mod:`realimage`, to the byte (``--exact`` too); at most 64 KiB + 8 B of blob data per layer
read by ``inspect`` (a gzip layer's head and trailer); the served manifest digest is the built one. Targets (FAIL printed, exit 0 unless ``--strict``):
``inspect`` ≥ 50× faster than the skopeo + gunzip pipeline; one ``inspect`` ≤ 180 ms (median).

Issue 14, targets 3 and 4 (``--only issue14`` runs just these, without the real image; the default runs both
parts): on the committed demo image (``fixtures/demo``, 3 gzip layers), whole processes measured in pairs (A B A B
…, one warm-up each, the ratio taken pair by pair; wall and CPU from ``os.wait4``):

   e. ``inspect oci:fixtures/demo:latest -f json`` (local layout; target ≤ 120 ms, median) — paired with
      ``python -c pass`` for the interpreter's own share;
   f. ``inspect docker://HOST/many/demo:t00 -f json`` (loopback registry; target ≤ 130 ms) paired with
      ``skopeo inspect``;
   g. 50 refs (``many/demo:t00`` … ``t49``, one image under 50 tags) in one ``inspect -f json`` call paired with a
      shell loop of 50 ``skopeo inspect`` (target ≤ 0.35×, median of the pair ratios), with the requests the
      call made (registry access log: 50 manifests + one read of each distinct blob expected).

ociinspect runs from ``--source`` (default: this work tree) through ``PYTHONPATH``, from a neutral working
directory, so neither the current directory nor a stale editable install decides what is measured.

Cost: ~1 minute with a cached image (the skopeo + gunzip pipeline dominates: ~3 s a run), plus the image build
the first time (~30-70 s). Needs ``docker-registry``, ``skopeo``, ``gunzip``, ``wc``, and root for debootstrap.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parents[1]
for _path in (str(REPO_ROOT), str(REPO_ROOT / "tests")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from harness.registry import RunningRegistry, start_registry  # noqa: E402

from bench.realimage import RealImage, load_real_image  # noqa: E402

INSPECT_TARGET_S = 0.180
LOCAL_TARGET_S = 0.120  # issue 14, target 3
LOOPBACK_TARGET_S = 0.130  # issue 14, target 3
MANY_RATIO_TARGET = 0.35  # issue 14, target 4: 50 refs in one call / a skopeo inspect loop
MANY_REFS = 50
MANY_REPOSITORY = "many/demo"
DEMO_LAYOUT = REPO_ROOT / "fixtures" / "demo"
SPEEDUP_TARGET = 50.0
# a gzip layer's cheap size reads: the 64 KiB head and the 8-byte trailer (docs/sizes.md; was 1 KiB before the
# head became the evidence that makes a trailer trustworthy)
BLOB_BYTES_PER_LAYER_TARGET = 64 * 1024 + 8
REPOSITORY = "bench/real"
REQUIRED_TOOLS = ("docker-registry", "skopeo", "gunzip", "wc", "git")

_ACCESS_LINE = re.compile(
    r'^(?P<remote>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<method>\S+) (?P<uri>\S+) [^"]*" '
    r'(?P<status>\d{3}) (?P<size>\d+|-)(?: "(?P<referer>[^"]*)" "(?P<agent>[^"]*)")?'
)
_BLOB_URI = re.compile(r"^/v2/(?P<repo>.+)/blobs/(?P<digest>sha256:[0-9a-f]{64})$")


class BenchError(RuntimeError):
    """A command failed or the setup could not be completed."""


# ---------------------------------------------------------------- the registry's access log


@dataclass(frozen=True)
class Request:
    method: str
    uri: str
    status: int
    size: int  # response body bytes as logged ("-" = 0)
    agent: str

    @property
    def blob_digest(self) -> str | None:
        match = _BLOB_URI.match(self.uri.split("?", 1)[0])
        return match["digest"] if match else None


class AccessLog:
    """Distribution's access log (stdout of the registry): one line per completed response."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def offset(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def since(
        self, offset: int, *, at_least: int = 1, settle: float = 0.1, deadline: float = 5.0
    ) -> list[Request]:
        """Requests logged after byte ``offset``. The registry writes a line when it has sent the response,
        which can be a moment after the client has exited: wait until ``at_least`` lines are there and the
        count has not changed for ``settle`` seconds."""
        end = time.monotonic() + deadline
        previous: list[Request] | None = None
        while True:
            current = self._read(offset)
            if previous is not None and len(current) == len(previous) and len(current) >= at_least:
                return current
            if time.monotonic() > end:
                return current
            previous = current
            time.sleep(settle)

    def _read(self, offset: int) -> list[Request]:
        with open(self.path, "rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        requests = []
        for line in text.splitlines(keepends=True):
            match = _ACCESS_LINE.match(line) if line.endswith("\n") else None
            if match:
                size = 0 if match["size"] == "-" else int(match["size"])
                requests.append(
                    Request(match["method"], match["uri"], int(match["status"]), size, match["agent"] or "")
                )
        return requests


@dataclass
class Traffic:
    """What one client run fetched: per-layer blob bytes and request counts, and the total."""

    requests: list[Request]
    layer_digests: Sequence[str]

    @property
    def total_bytes(self) -> int:
        return sum(r.size for r in self.requests)

    def layer_bytes(self, digest: str) -> int:
        return sum(r.size for r in self.requests if r.blob_digest == digest and r.method == "GET")

    def layer_requests(self, digest: str) -> int:
        return sum(1 for r in self.requests if r.blob_digest == digest)

    @property
    def all_layer_bytes(self) -> int:
        return sum(self.layer_bytes(d) for d in self.layer_digests)


# ---------------------------------------------------------------- timing


@dataclass
class Timing:
    label: str
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)


def run(argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    """Run a command to completion; return its stdout; raise :class:`BenchError` with stderr on failure."""
    result = subprocess.run(list(argv), capture_output=True, text=True, env=env, cwd=cwd, timeout=900)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-6:])
        raise BenchError(f"{' '.join(argv)} exited with {result.returncode}:\n{tail}")
    return result.stdout


def measure(
    label: str,
    once: Callable[[], Any],
    *,
    runs: int,
    after: Callable[[Any], None] | None = None,
    cleanup: Callable[[Any], None] | None = None,
) -> tuple[Timing, list[Any]]:
    """One warm-up call, then ``runs`` timed calls of ``once``. Untimed: ``after`` sees each timed result,
    ``cleanup`` every result (warm-up included)."""
    warm = once()
    if cleanup is not None:
        cleanup(warm)
    timing, results = Timing(label), []
    for _ in range(runs):
        start = time.perf_counter()
        result = once()
        timing.samples.append(time.perf_counter() - start)
        if after is not None:
            after(result)
        if cleanup is not None:
            cleanup(result)
        results.append(result)
    return timing, results


# ---------------------------------------------------------------- what is measured


@dataclass
class Context:
    image: RealImage
    registry: RunningRegistry
    access: AccessLog
    workdir: Path
    env: dict[str, str]  # PYTHONPATH -> the ociinspect source under test
    runs: int

    @property
    def ref(self) -> str:
        return f"{self.registry.host}/{REPOSITORY}:{self.image.tag}"

    @property
    def layer_digests(self) -> list[str]:
        return [layer.digest for layer in self.image.layers]

    def python(self, *args: str) -> list[str]:
        return [sys.executable, *args]


def prepare_source(spec: str, workdir: Path) -> tuple[Path, str]:
    """The directory holding the ``ociinspect`` package to benchmark, and a description of it."""
    head = run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"]).strip()
    if spec == "worktree":
        dirty = run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "ociinspect"]).strip()
        state = "with uncommitted changes in ociinspect/" if dirty else "clean"
        return REPO_ROOT, f"work tree {REPO_ROOT} (HEAD {head}, {state})"
    rev = run(["git", "-C", str(REPO_ROOT), "rev-parse", "--verify", f"{spec}^{{commit}}"]).strip()
    target = workdir / "src"
    target.mkdir()
    archive = workdir / "src.tar"
    with open(archive, "wb") as out:
        subprocess.run(["git", "-C", str(REPO_ROOT), "archive", rev, "ociinspect"], stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    archive.unlink()
    return target, f"git {rev[:10]} ({spec}), exported to {target}"


def ociinspect_env(source: Path, workdir: Path) -> dict[str, str]:
    """The environment every measured Python runs in: ``source`` first on ``PYTHONPATH``, and bytecode
    cached under ``workdir/pycache`` (``PYTHONPYCACHEPREFIX``) even if ``PYTHONDONTWRITEBYTECODE`` is set
    here, as ``pip install`` byte-compiles an installed package. Without that, every run compiles the
    package from source (~30 ms here)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(source), env.get("PYTHONPATH", "")) if p)
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["XDG_CACHE_HOME"] = str(workdir / "xdg-cache")  # our own store: the first inspect starts cold
    return env


def check_console_script(ctx: Context, warnings: list[str]) -> str | None:
    """The installed ``ociinspect`` script, if it runs the source under test (with our PYTHONPATH).
    Also records whether it works *without* PYTHONPATH, i.e. as a user would run it."""
    script = shutil.which("ociinspect")
    if script is None:
        warnings.append("no `ociinspect` console script on PATH (pip install . installs it)")
        return None
    bare = subprocess.run([script, "--version"], capture_output=True, text=True, cwd=ctx.workdir, timeout=60)
    if bare.returncode != 0:
        last = (bare.stderr.strip().splitlines() or ["?"])[-1]
        warnings.append(
            f"the installed `ociinspect` script fails outside the repo without PYTHONPATH: {last!r} "
            "(stale editable install? rerun `python -m pip install -e .`); timed here with PYTHONPATH set"
        )
    try:
        run([script, "--version"], env=ctx.env, cwd=ctx.workdir)
    except BenchError as exc:
        warnings.append(f"the `ociinspect` script does not run even with PYTHONPATH: {exc}")
        return None
    return script


def push(ctx: Context) -> float:
    start = time.perf_counter()
    run(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            "--preserve-digests",
            f"oci:{ctx.image.layout}:{ctx.image.tag}",
            f"docker://{ctx.ref}",
        ]
    )
    return time.perf_counter() - start


def ociinspect_inspect(ctx: Context, argv0: Sequence[str], *extra: str) -> Callable[[], dict[str, Any]]:
    def once() -> dict[str, Any]:
        offset = ctx.access.offset()
        out = run([*argv0, "inspect", ctx.ref, "-f", "json", *extra], env=ctx.env, cwd=ctx.workdir)
        return {"doc": json.loads(out), "offset": offset}

    return once


def skopeo_inspect(ctx: Context) -> Callable[[], dict[str, Any]]:
    def once() -> dict[str, Any]:
        out = run(["skopeo", "inspect", "--tls-verify=false", f"docker://{ctx.ref}"], cwd=ctx.workdir)
        return json.loads(out)

    return once


def skopeo_copy_gunzip(ctx: Context) -> Callable[[], dict[str, Any]]:
    """The daemonless alternative: download every blob, then ``gunzip -c | wc -c`` each layer in turn."""
    counter = iter(range(1_000_000))

    def once() -> dict[str, Any]:
        offset = ctx.access.offset()
        dest = ctx.workdir / f"alt-{next(counter)}"
        start = time.perf_counter()
        run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{ctx.ref}", f"dir:{dest}"])
        copied = time.perf_counter()
        manifest = json.loads((dest / "manifest.json").read_text())
        sizes: dict[str, int] = {}
        for layer in manifest["layers"]:
            blob = dest / layer["digest"].split(":", 1)[1]
            gunzip = subprocess.Popen(["gunzip", "-c", str(blob)], stdout=subprocess.PIPE)
            wc = subprocess.run(["wc", "-c"], stdin=gunzip.stdout, capture_output=True, text=True, check=True)
            assert gunzip.stdout is not None
            gunzip.stdout.close()
            if gunzip.wait() != 0:
                raise BenchError(f"gunzip -c {blob} failed")
            sizes[layer["digest"]] = int(wc.stdout.split()[0])
        end = time.perf_counter()
        return {
            "sizes": sizes,
            "offset": offset,
            "dest": dest,
            "copy": copied - start,
            "gunzip": end - copied,
        }

    return once


SPLIT_SCRIPT = r"""
import json, sys, time
ref, runs = sys.argv[1], int(sys.argv[2])
t0 = time.perf_counter()
import ociinspect.cli
t1 = time.perf_counter()
import ociinspect.registry, ociinspect.sources.registry
t2 = time.perf_counter()
from ociinspect import Session
from ociinspect.registry import HostSettings, RegistrySettings

def loads(settings):
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        with Session(settings) as session:
            session.load(ref)
        out.append(time.perf_counter() - start)
    return out

first = loads(None)[0]
print(json.dumps({
    "cli_imports": t1 - t0,
    "registry_imports": t2 - t1,
    "first_load": first,
    "loads": loads(None),
    "loads_plain_http": loads(RegistrySettings(default=HostSettings(plain_http=True))),
}))
"""

# One CLI run with wall-clock stamps (time.time(), comparable across processes): script start, after
# `import ociinspect.cli`, after main() (stdout captured, as a pipe would); the parent stamps spawn and exit.
PHASES_SCRIPT = r"""
import contextlib, gc, io, sys, time
t0 = time.time()
import ociinspect.cli
t1 = time.time()
with contextlib.redirect_stdout(io.StringIO()):
    code = ociinspect.cli.main(sys.argv[2:])
t2 = time.time()
if sys.argv[1] == "freeze":
    gc.freeze()
sys.stderr.write(f"\nPHASES {t0} {t1} {t2} {code}\n")
"""


def split(ctx: Context) -> dict[str, Any]:
    out = run(ctx.python("-c", SPLIT_SCRIPT, ctx.ref, str(ctx.runs)), env=ctx.env, cwd=ctx.workdir)
    return dict(json.loads(out))


def phases(ctx: Context, *, freeze: bool, runs: int) -> dict[str, float]:
    """Median seconds of: start-up (spawn → first line), CLI imports, main(), exit (main() → reaped)."""
    samples: list[tuple[float, float, float, float, float]] = []
    argv = ctx.python("-c", PHASES_SCRIPT, "freeze" if freeze else "-", "inspect", ctx.ref, "-f", "json")
    for i in range(runs + 1):
        spawned = time.time()
        result = subprocess.run(
            argv, capture_output=True, text=True, env=ctx.env, cwd=ctx.workdir, timeout=120
        )
        reaped = time.time()
        stamps = [line for line in result.stderr.splitlines() if line.startswith("PHASES ")]
        if not stamps or stamps[-1].split()[-1] != "0":
            raise BenchError(f"phase run failed: {result.stderr.strip()[-500:]}")
        t0, t1, t2 = (float(x) for x in stamps[-1].split()[1:4])
        if i:  # the first is a warm-up
            samples.append((t0 - spawned, t1 - t0, t2 - t1, reaped - t2, reaped - spawned))
    names = ("startup", "cli_imports", "main", "exit", "total")
    return {name: statistics.median(s[k] for s in samples) for k, name in enumerate(names)}


def importtime_top(ctx: Context, *args: str, n: int = 12) -> list[str]:
    """The ``n`` slowest imports (by cumulative µs) of ``python -X importtime -m ociinspect ARGS``."""
    result = subprocess.run(
        ctx.python("-X", "importtime", "-m", "ociinspect", *args),
        capture_output=True,
        text=True,
        env=ctx.env,
        cwd=ctx.workdir,
        timeout=120,
    )
    rows = [line for line in result.stderr.splitlines() if line.startswith("import time:") and "|" in line]
    rows = [r for r in rows if r.split("|")[1].strip().isdigit()]
    return sorted(rows, key=lambda r: int(r.split("|")[1]))[-n:]


# ---------------------------------------------------------------- report


@dataclass
class Verdicts:
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    correctness_failed: bool = False
    targets_failed: bool = False

    def check(self, what: str, measured: str, target: str, ok: bool) -> None:
        """A correctness check: a failure makes the benchmark exit 1."""
        self.rows.append((what, measured, target, "PASS" if ok else "FAIL"))
        self.correctness_failed |= not ok

    def target(self, what: str, measured: str, target: str, ok: bool) -> None:
        """A timing target: a miss exits 1 only with --strict."""
        self.rows.append((what, measured, target, "PASS" if ok else "FAIL (target)"))
        self.targets_failed |= not ok


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]
    align = align or "l" * len(headers)

    def fmt(row: Sequence[str]) -> str:
        cells = [
            str(c).rjust(w) if a == "r" else str(c).ljust(w)
            for c, w, a in zip(row, widths, align, strict=True)
        ]
        return "  ".join(cells).rstrip()

    return "\n".join([fmt(headers), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)])


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def _bytes(n: int) -> str:
    return f"{n:,}"


# ---------------------------------------------------------------- issue 14, targets 3 and 4


@dataclass
class Paired:
    """Two commands run in turn (A B A B …) after one warm-up each: wall and CPU seconds of each whole process
    (``os.wait4``: the process and the children it waited for), and the ratio A/B pair by pair."""

    a: str
    b: str
    wall_a: list[float] = field(default_factory=list)
    wall_b: list[float] = field(default_factory=list)
    cpu_a: list[float] = field(default_factory=list)
    cpu_b: list[float] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [x / y for x, y in zip(self.wall_a, self.wall_b, strict=True)]


def _timed(argv: Sequence[str], env: dict[str, str] | None, cwd: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one whole process; its output is discarded, a failure is a :class:`BenchError`."""
    start = time.perf_counter()
    proc = subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(argv)[:200]} exited with {proc.returncode}: {err.decode()[-400:]}")
    return wall, usage.ru_utime + usage.ru_stime


def paired(
    label_a: str,
    argv_a: Sequence[str],
    label_b: str,
    argv_b: Sequence[str],
    *,
    runs: int,
    env: dict[str, str],
    cwd: Path,
) -> Paired:
    result = Paired(label_a, label_b)
    _timed(argv_a, env, cwd)
    _timed(argv_b, env, cwd)
    for _ in range(runs):
        for argv, walls, cpus in (
            (argv_a, result.wall_a, result.cpu_a),
            (argv_b, result.wall_b, result.cpu_b),
        ):
            wall, cpu = _timed(argv, env, cwd)
            walls.append(wall)
            cpus.append(cpu)
    return result


def push_many(registry: RunningRegistry, tags: int) -> list[str]:
    """The demo layout pushed as ``many/demo:t00`` (skopeo, digests preserved), then its manifest put under
    ``tags - 1`` more tags; the references, in order."""
    first = f"{registry.host}/{MANY_REPOSITORY}:t00"
    run(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            "--preserve-digests",
            f"oci:{DEMO_LAYOUT}:latest",
            f"docker://{first}",
        ]
    )
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    url = f"{registry.url}/v2/{MANY_REPOSITORY}/manifests"
    with urllib.request.urlopen(urllib.request.Request(f"{url}/t00", headers=accept), timeout=30) as r:
        body, content_type = r.read(), r.headers["Content-Type"]
    for i in range(1, tags):
        put = urllib.request.Request(
            f"{url}/t{i:02d}", data=body, method="PUT", headers={"Content-Type": content_type}
        )
        urllib.request.urlopen(put, timeout=30).close()
    return [f"{registry.host}/{MANY_REPOSITORY}:t{i:02d}" for i in range(tags)]


@dataclass
class Issue14:
    local: Paired
    loopback: Paired
    many: Paired
    many_requests: list[Request]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]


def measure_issue14(
    registry: RunningRegistry, access: AccessLog, env: dict[str, str], workdir: Path, runs: int
) -> Issue14:
    load_before = os.getloadavg()
    refs = push_many(registry, MANY_REFS)
    py_m = [sys.executable, "-m", "ociinspect"]
    local = paired(
        "ociinspect inspect oci:fixtures/demo:latest -f json",
        [*py_m, "inspect", f"oci:{DEMO_LAYOUT}:latest", "-f", "json"],
        "python -c pass",
        [sys.executable, "-c", "pass"],
        runs=runs,
        env=env,
        cwd=workdir,
    )
    loopback = paired(
        "ociinspect inspect docker://…/many/demo:t00 -f json",
        [*py_m, "inspect", f"docker://{refs[0]}", "-f", "json"],
        "skopeo inspect docker://…/many/demo:t00",
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{refs[0]}"],
        runs=runs,
        env=env,
        cwd=workdir,
    )
    loop = "; ".join(f"skopeo inspect --tls-verify=false docker://{ref} >/dev/null || exit 1" for ref in refs)
    ours = [*py_m, "inspect", "-f", "json", *(f"docker://{ref}" for ref in refs)]
    many = paired(
        f"ociinspect inspect -f json with {MANY_REFS} refs (one image, {MANY_REFS} tags)",
        ours,
        f"a shell loop of {MANY_REFS} skopeo inspect",
        ["sh", "-c", loop],
        runs=runs,
        env=env,
        cwd=workdir,
    )
    offset = access.offset()  # one more run alone, for its requests in the access log
    _timed(ours, env, workdir)
    requests = access.since(offset, at_least=MANY_REFS)
    return Issue14(local, loopback, many, requests, load_before, os.getloadavg())


def _row(label: str, walls: Sequence[float], cpus: Sequence[float]) -> list[str]:
    return [
        label,
        _ms(statistics.median(walls)),
        _ms(min(walls)),
        _ms(max(walls)),
        _ms(statistics.median(cpus)),
    ]


def report_issue14(m: Issue14, verdicts: Verdicts, runs: int) -> None:
    load = " → ".join(f"{x[0]:.2f}" for x in (m.load_before, m.load_after))
    print(
        f"\nissue 14, targets 3 and 4 — demo image (fixtures/demo, 3 gzip layers); {runs} pairs after one "
        f"warm-up each, A and B in turn; whole processes (wall; CPU = user + system from os.wait4); "
        f"load average {load} (1 min)\n"
    )
    rows = []
    for pair in (m.local, m.loopback, m.many):
        rows.append(_row(pair.a, pair.wall_a, pair.cpu_a))
        rows.append(_row(pair.b, pair.wall_b, pair.cpu_b))
    print(_table(["command", "median ms", "min ms", "max ms", "CPU median ms"], rows, "lrrrr"))
    print(
        "\nratios A/B of wall time, pair by pair (median, min–max): "
        + "; ".join(
            f"{p.a.split(' -f')[0]} / {p.b}: {statistics.median(p.ratios):.2f}× "
            f"({min(p.ratios):.2f}–{max(p.ratios):.2f})"
            for p in (m.local, m.loopback, m.many)
        )
    )
    manifests = sum(1 for r in m.many_requests if "/manifests/" in r.uri)
    blobs = [r.blob_digest for r in m.many_requests if r.blob_digest]
    print(
        f"requests of one {MANY_REFS}-ref inspect (registry access log): {len(m.many_requests)} in all, "
        f"{manifests} manifest GETs, {len(blobs)} blob GETs of {len(set(blobs))} distinct blobs"
    )
    local = statistics.median(m.local.wall_a)
    verdicts.target(
        "issue 14: one inspect, local layout (median wall)",
        f"{_ms(local)} ms",
        f"≤ {_ms(LOCAL_TARGET_S)} ms",
        local <= LOCAL_TARGET_S,
    )
    loopback = statistics.median(m.loopback.wall_a)
    verdicts.target(
        "issue 14: one inspect, loopback registry (median wall)",
        f"{_ms(loopback)} ms",
        f"≤ {_ms(LOOPBACK_TARGET_S)} ms",
        loopback <= LOOPBACK_TARGET_S,
    )
    ratio = statistics.median(m.many.ratios)
    verdicts.target(
        f"issue 14: {MANY_REFS} refs in one inspect / skopeo inspect loop (median of pair ratios)",
        f"{ratio:.2f}×",
        f"≤ {MANY_RATIO_TARGET:.2f}×",
        ratio <= MANY_RATIO_TARGET,
    )
    verdicts.check(
        f"issue 14: {MANY_REFS} refs read each distinct blob once",
        f"{len(blobs)} blob GETs, {len(set(blobs))} distinct",
        "at most 2 per blob (head + trailer)",
        all(blobs.count(d) <= 2 for d in set(blobs)),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per measurement (default 7; ≥ 7)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a timing target is missed too")
    parser.add_argument(
        "--source",
        default="worktree",
        help="ociinspect to benchmark: 'worktree' (default) or a git revision (exported with git archive)",
    )
    parser.add_argument(
        "--rebuild-image", action="store_true", help="rebuild the cached benchmark image first"
    )
    parser.add_argument("--keep", action="store_true", help="keep the registry's work directory (printed)")
    parser.add_argument(
        "--only",
        choices=("all", "issue2", "issue14"),
        default="all",
        help="issue2: the real image only; issue14: the demo image's targets 3 and 4 only (no real image)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be ≥ 1")
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        print(f"bench_inspect: missing tools: {', '.join(missing)} (tests/run.sh installs the first two)")
        return 2

    started = time.perf_counter()
    warnings: list[str] = []
    if args.runs < 7:
        warnings.append(f"--runs {args.runs}: fewer than the 7 runs the benchmark is specified with")
    image_start = time.perf_counter()
    image = load_real_image(rebuild=args.rebuild_image) if args.only != "issue14" else None
    image_seconds = time.perf_counter() - image_start
    workdir = Path(tempfile.mkdtemp(prefix="ociinspect-bench-"))
    registry = start_registry(workdir / "registry", "anon", access_log=True)
    try:
        source, source_text = prepare_source(args.source, workdir)
        assert registry.access_log_path is not None
        access, env = AccessLog(registry.access_log_path), ociinspect_env(source, workdir)
        imported = run(
            [sys.executable, "-c", "import ociinspect; print(ociinspect.__file__)"], env=env, cwd=workdir
        )
        if not imported.strip().startswith(str(source)):
            raise BenchError(f"PYTHONPATH={source} imports ociinspect from {imported.strip()}")
        header = [
            f"\nociinspect benchmark (issues 2 and 14) — {time.strftime('%Y-%m-%d %H:%M:%S')}, "
            f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {run(['skopeo', '--version']).strip()}, "
            f"load average {os.getloadavg()[0]:.2f} (timings are noisy while other work shares the CPUs)",
            f"ociinspect under test: {source_text}",
        ]
        if image is None:
            print("\n".join(header))
            verdicts = Verdicts()
            report_issue14(measure_issue14(registry, access, env, workdir, args.runs), verdicts, args.runs)
            return _finish(verdicts, warnings, started, args)
        how = "cached" if image.cached else f"built in {image.build_seconds:.1f} s"
        header.append(
            f"image: {image.reference} — {len(image.layers)} gzip layers, {_bytes(image.uncompressed_size)} B "
            f"uncompressed, {_bytes(image.compressed_size)} B compressed; base: {image.base}; {how} "
            f"(load {image_seconds:.1f} s)"
        )
        ctx = Context(image=image, registry=registry, access=access, workdir=workdir, env=env, runs=args.runs)
        return _bench(ctx, args, header, warnings, started)
    except BenchError as exc:
        print(f"bench_inspect: error: {exc}")
        return 1
    finally:
        registry.stop()
        if args.keep:
            print(f"(kept {workdir})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class Measurements:
    push_seconds: float
    served_digest: str
    timings: list[Timing]
    inspect: Timing  # python -m ociinspect inspect -f json
    skopeo_inspect: Timing
    alternative: Timing  # skopeo copy + gunzip | wc -c
    inspect_docs: list[dict[str, Any]]
    exact_docs: list[dict[str, Any]]
    alt_results: list[dict[str, Any]]
    traffic: list[Traffic]  # one per timed inspect run
    alt_traffic: list[Traffic]  # one per timed alternative run
    python_pass: Timing
    python_bare: Timing
    version: Timing
    inproc: dict[str, Any]
    phase: dict[str, float]
    phase_frozen: dict[str, float]
    imports_version: list[str]
    imports_inspect: list[str]
    cold_seconds: float  # the first inspect, empty store (reads the base layer up to /etc/os-release)
    cold_traffic: Traffic
    cold_os: dict[str, Any]


def measure_all(ctx: Context, warnings: list[str]) -> Measurements:
    runs, digests = ctx.runs, ctx.layer_digests
    push_seconds = push(ctx)
    served = skopeo_inspect(ctx)()

    # a. inspect wall time: ociinspect (python -m, console script, --plain-http) vs skopeo inspect
    traffic: list[Traffic] = []

    def record(result: dict[str, Any]) -> None:
        traffic.append(Traffic(ctx.access.since(result["offset"], at_least=2 + len(digests)), digests))

    py_m = ctx.python("-m", "ociinspect")
    # the very first inspect, cold store: it also reads the base layer up to /etc/os-release (then cached)
    start = time.perf_counter()
    cold = ociinspect_inspect(ctx, py_m)()
    cold_seconds = time.perf_counter() - start
    cold_traffic = Traffic(ctx.access.since(cold["offset"], at_least=2 + len(digests)), digests)
    t_inspect, inspect_docs = measure(
        "python -m ociinspect inspect -f json", ociinspect_inspect(ctx, py_m), runs=runs, after=record
    )
    timings = [t_inspect]
    script = check_console_script(ctx, warnings)
    if script:
        label = "ociinspect inspect -f json (console script)"
        timings.append(measure(label, ociinspect_inspect(ctx, [script]), runs=runs)[0])
    label = "python -m ociinspect inspect -f json --plain-http"
    timings.append(measure(label, ociinspect_inspect(ctx, py_m, "--plain-http"), runs=runs)[0])
    label = "python -m ociinspect inspect -f json --no-os"
    timings.append(measure(label, ociinspect_inspect(ctx, py_m, "--no-os"), runs=runs)[0])
    t_skopeo, _ = measure("skopeo inspect", skopeo_inspect(ctx), runs=runs)
    timings.append(t_skopeo)

    # b. the true unpacked size the daemonless way
    alt_traffic: list[Traffic] = []

    def record_alt(result: dict[str, Any]) -> None:
        alt_traffic.append(Traffic(ctx.access.since(result["offset"], at_least=2 + len(digests)), digests))

    def remove_download(result: dict[str, Any]) -> None:
        shutil.rmtree(result["dest"], ignore_errors=True)

    t_alt, alt_results = measure(
        "skopeo copy dir: + gunzip -c | wc -c per layer",
        skopeo_copy_gunzip(ctx),
        runs=runs,
        after=record_alt,
        cleanup=remove_download,
    )
    timings.append(t_alt)

    # c. --exact
    label = "python -m ociinspect inspect -f json --exact"
    t_exact, exact_docs = measure(label, ociinspect_inspect(ctx, py_m, "--exact"), runs=runs)
    timings.append(t_exact)

    # d. where the time goes
    t_pass, _ = measure("python -c pass", lambda: run(ctx.python("-c", "pass"), env=ctx.env), runs=runs)
    t_bare, _ = measure("python -I -S -c pass", lambda: run(ctx.python("-I", "-S", "-c", "pass")), runs=runs)
    t_version, _ = measure(
        "python -m ociinspect --version",
        lambda: run([*py_m, "--version"], env=ctx.env, cwd=ctx.workdir),
        runs=runs,
    )
    return Measurements(
        push_seconds=push_seconds,
        served_digest=served.get("Digest", "?"),
        timings=timings,
        inspect=t_inspect,
        skopeo_inspect=t_skopeo,
        alternative=t_alt,
        inspect_docs=[r["doc"] for r in inspect_docs],
        exact_docs=[r["doc"] for r in exact_docs],
        alt_results=alt_results,
        traffic=traffic,
        alt_traffic=alt_traffic,
        cold_seconds=cold_seconds,
        cold_traffic=cold_traffic,
        cold_os=cold["doc"].get("base_os") or {},
        python_pass=t_pass,
        python_bare=t_bare,
        version=t_version,
        inproc=split(ctx),
        phase=phases(ctx, freeze=False, runs=runs),
        phase_frozen=phases(ctx, freeze=True, runs=runs),
        imports_version=importtime_top(ctx, "--version"),
        imports_inspect=importtime_top(ctx, "inspect", ctx.ref, "-f", "json"),
    )


def verify(image: RealImage, m: Measurements) -> tuple[Verdicts, list[list[str]]]:
    """The checks and targets, and the per-layer table rows."""
    verdicts = Verdicts()
    verdicts.check(
        "served manifest digest = built",
        m.served_digest[:19],
        image.manifest_digest[:19],
        m.served_digest == image.manifest_digest,
    )
    ours = {layer["digest"]: layer for layer in m.inspect_docs[-1]["layers"]}
    exact = {layer["digest"]: layer for layer in m.exact_docs[-1]["layers"]}
    gunzip_sizes: dict[str, int] = m.alt_results[-1]["sizes"]
    rows, all_equal = [], True
    for i, layer in enumerate(image.layers):
        mine, streamed = ours.get(layer.digest, {}), exact.get(layer.digest, {})
        gz = gunzip_sizes.get(layer.digest)
        equal = (
            mine.get("uncompressed_size")
            == gz
            == layer.uncompressed_size
            == streamed.get("uncompressed_size")
        )
        all_equal &= equal
        read = max(t.layer_bytes(layer.digest) for t in m.traffic)
        requests = max(t.layer_requests(layer.digest) for t in m.traffic)
        rows.append(
            [
                str(i),
                layer.digest[7:19],
                _bytes(layer.size),
                f"{_bytes(mine.get('uncompressed_size') or 0)} ({mine.get('uncompressed_size_source')})",
                _bytes(gz or 0),
                _bytes(streamed.get("uncompressed_size") or 0),
                _bytes(layer.uncompressed_size),
                "yes" if equal else "NO",
                f"{read} B / {requests} req",
            ]
        )
    verdicts.check(
        f"uncompressed size per layer ({len(image.layers)}) = gunzip | wc -c",
        "all equal" if all_equal else "DIFFER",
        "equal to the byte",
        all_equal,
    )
    totals = (
        m.inspect_docs[-1]["uncompressed_size"],
        sum(gunzip_sizes.values()),
        m.exact_docs[-1]["uncompressed_size"],
    )
    verdicts.check(
        "total uncompressed = sum of gunzip | wc -c",
        _bytes(totals[0] or 0),
        _bytes(totals[1]),
        totals[0] == totals[1] == totals[2] == image.uncompressed_size,
    )
    first = [layer["uncompressed_size"] for layer in m.inspect_docs[0]["layers"]]
    stable = all([layer["uncompressed_size"] for layer in d["layers"]] == first for d in m.inspect_docs)
    stable &= all(r["sizes"] == gunzip_sizes for r in m.alt_results)
    verdicts.check("same figures in every run", "yes" if stable else "NO", "yes", stable)
    max_read = max(t.layer_bytes(d) for t in m.traffic for d in t.layer_digests)
    verdicts.check(
        "blob data per layer read by inspect (max)",
        f"{max_read} B",
        f"≤ {BLOB_BYTES_PER_LAYER_TARGET} B",
        max_read <= BLOB_BYTES_PER_LAYER_TARGET,
    )
    speedup = m.alternative.median / m.inspect.median
    verdicts.target(
        "speed-up vs skopeo copy + gunzip (medians)",
        f"{speedup:,.0f}×",
        f"≥ {SPEEDUP_TARGET:.0f}×",
        speedup >= SPEEDUP_TARGET,
    )
    verdicts.target(
        "one inspect, wall (median, python -m)",
        f"{_ms(m.inspect.median)} ms",
        f"≤ {_ms(INSPECT_TARGET_S)} ms",
        m.inspect.median <= INSPECT_TARGET_S,
    )
    return verdicts, rows


def report(ctx: Context, m: Measurements, layer_rows: list[list[str]], header: list[str]) -> None:
    image, runs = ctx.image, ctx.runs
    print("\n".join(header))
    print(
        f"registry: Distribution (docker-registry) at {ctx.registry.host}, anon, loopback; "
        f"push {m.push_seconds:.1f} s; ref {ctx.ref}"
    )
    print(
        f"each timing: {runs} runs after 1 warm-up, wall clock of the whole command (subprocess); "
        "Python bytecode cached (PYTHONPYCACHEPREFIX) as for an installed package\n"
    )
    print(
        _table(
            ["command", "median ms", "min ms", "max ms"],
            [[t.label, _ms(t.median), _ms(t.min), _ms(t.max)] for t in m.timings],
            "lrrr",
        )
    )
    print(
        f"\nociinspect inspect vs skopeo inspect: {m.inspect.median / m.skopeo_inspect.median:.1f}× skopeo's "
        f"time (median {_ms(m.inspect.median)} vs {_ms(m.skopeo_inspect.median)} ms)"
    )

    print("\nuncompressed size per layer, to the byte")
    headers = ["#", "layer", "compressed", "ociinspect (source)", "gunzip|wc -c", "--exact", "built tar"]
    print(_table([*headers, "equal", "inspect read"], layer_rows, "llrrrrrll"))
    gunzip_total = sum(m.alt_results[-1]["sizes"].values())
    print(
        f"total: ociinspect {_bytes(m.inspect_docs[-1]['uncompressed_size'] or 0)}, gunzip|wc -c "
        f"{_bytes(gunzip_total)}, --exact {_bytes(m.exact_docs[-1]['uncompressed_size'] or 0)}, "
        f"built {_bytes(image.uncompressed_size)}"
    )

    ot, at = m.traffic[-1], m.alt_traffic[-1]
    print("\nbytes transferred (registry access log, one run)")
    print(
        _table(
            ["client", "requests", "layer blob bytes", "all bytes", "time (median)"],
            [
                [
                    "ociinspect inspect",
                    str(len(ot.requests)),
                    _bytes(ot.all_layer_bytes),
                    _bytes(ot.total_bytes),
                    f"{_ms(m.inspect.median)} ms",
                ],
                [
                    "skopeo copy + gunzip|wc -c",
                    str(len(at.requests)),
                    _bytes(at.all_layer_bytes),
                    _bytes(at.total_bytes),
                    f"{_ms(m.alternative.median)} ms",
                ],
            ],
            "lrrrr",
        )
    )
    speedup = m.alternative.median / m.inspect.median
    print(f"ratio: {at.total_bytes / max(ot.total_bytes, 1):,.0f}× fewer bytes, {speedup:,.0f}× faster")
    ct = m.cold_traffic
    base = ct.layer_digests[0]
    print(
        f"first inspect with an empty store: {_ms(m.cold_seconds)} ms, {len(ct.requests)} requests, "
        f"{_bytes(ct.layer_bytes(base))} B of the base layer streamed to find the OS "
        f"({m.cold_os.get('pretty_name')!s}, {m.cold_os.get('evidence')!s}); later runs read it from the store"
    )
    copy_s = statistics.median(r["copy"] for r in m.alt_results)
    gunzip_s = statistics.median(r["gunzip"] for r in m.alt_results)
    print(
        f"the alternative's parts (medians): skopeo copy {_ms(copy_s)} ms "
        f"({at.all_layer_bytes / copy_s / 1e6:,.0f} MB/s over loopback), gunzip -c | wc -c {_ms(gunzip_s)} ms"
    )
    loads, plain = m.inproc["loads"], m.inproc["loads_plain_http"]
    link_s = at.all_layer_bytes / 125e6
    print(
        f"for comparison, not targets: as a library (Session().load() in a running process, "
        f"{_ms(statistics.median(loads))} ms) the speed-up is {m.alternative.median / statistics.median(loads):,.0f}×; "
        f"over a 1 Gbit/s link the alternative's download alone would take ≥ {link_s:.1f} s "
        f"(≥ {(link_s + gunzip_s) / m.inspect.median:,.0f}× with this inspect time)"
    )

    print(
        f"\nwhere one `python -m ociinspect inspect -f json` goes (medians of {runs} runs; a stamped run is a"
    )
    print("`python -c` script calling ociinspect.cli.main(), with time.time() taken between the phases)")
    phase, frozen, inproc = m.phase, m.phase_frozen, m.inproc
    rows = [
        ["interpreter start-up", _ms(phase["startup"]), "spawn → first line of the script"],
        ["  cf. bare interpreter, start + exit", _ms(m.python_bare.median), "python -I -S -c pass"],
        ["  cf. with site (.pth files here), start + exit", _ms(m.python_pass.median), "python -c pass"],
        ["import ociinspect.cli (click, ociinspect core)", _ms(phase["cli_imports"]), "stamped"],
        ["main(['inspect', REF, '-f', 'json'])", _ms(phase["main"]), "stamped"],
        ["  import ociinspect.registry (requests, urllib3…)", _ms(inproc["registry_imports"]), "in-process"],
        [
            "  Session().load(REF): loopback https→http probe",
            _ms(statistics.median(loads)),
            f"in-process, {len(loads)} runs, min {_ms(min(loads))}",
        ],
        [
            "  Session().load(REF) with plain_http=True",
            _ms(statistics.median(plain)),
            f"in-process, {len(plain)} runs, min {_ms(min(plain))}",
        ],
        ["interpreter exit (module teardown, final GC)", _ms(phase["exit"]), "main() returned → reaped"],
        ["  … with gc.freeze() before exit", _ms(frozen["exit"]), "same, stamped run with gc.freeze()"],
        ["= stamped run, total", _ms(phase["total"]), "spawn → reaped"],
        ["  … with gc.freeze() before exit", _ms(frozen["total"]), "spawn → reaped"],
        ["python -m ociinspect --version", _ms(m.version.median), "subprocess"],
        ["python -m ociinspect inspect -f json", _ms(m.inspect.median), "subprocess (table above)"],
    ]
    print(_table(["part", "ms", "measured as"], rows, "lrl"))
    print("\npython -X importtime -m ociinspect --version (slowest by cumulative µs)")
    print("\n".join(m.imports_version))
    print("\npython -X importtime -m ociinspect inspect REF -f json (slowest by cumulative µs)")
    print("\n".join(m.imports_inspect))


def _bench(
    ctx: Context, args: argparse.Namespace, header: list[str], warnings: list[str], started: float
) -> int:
    measurements = measure_all(ctx, warnings)
    verdicts, layer_rows = verify(ctx.image, measurements)
    report(ctx, measurements, layer_rows, header)
    if args.only == "all":
        m14 = measure_issue14(ctx.registry, ctx.access, ctx.env, ctx.workdir, ctx.runs)
        report_issue14(m14, verdicts, ctx.runs)
    return _finish(verdicts, warnings, started, args)


def _finish(verdicts: Verdicts, warnings: list[str], started: float, args: argparse.Namespace) -> int:
    print("\nresults")
    print(_table(["check / target", "measured", "target", "result"], verdicts.rows))
    for warning in warnings:
        print(f"warning: {warning}")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"\nbenchmark wall time {time.perf_counter() - started:.0f} s; load average now {load} (1, 5, 15 min)"
    )
    if verdicts.correctness_failed:
        print("FAIL: a correctness check failed")
        return 1
    if verdicts.targets_failed:
        print(
            "some targets missed" + (" (--strict: exit 1)" if args.strict else " (exit 0; --strict to fail)")
        )
        return 1 if args.strict else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
