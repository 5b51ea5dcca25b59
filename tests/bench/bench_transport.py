"""Benchmark of the registry transport (issue 14, targets 3 and 5): the CPU one body-less request costs and the
time importing the registry client takes, this work tree against a baseline revision (default ``940b96e``, the
last one on ``requests``/``urllib3``), measured in the same run.

Each measurement is a fresh process with the tree under test first on ``PYTHONPATH``; A and B alternate, pair by
pair.  The server is a loopback :class:`harness.fakeserver.FakeServer` in a process of its own (its CPU is not
counted).  Usage::

    python tests/bench/bench_transport.py                       # 5 pairs, 3000 requests each
    python tests/bench/bench_transport.py --baseline HEAD~3 --pairs 9 --requests 5000
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import subprocess, sys, time
server = subprocess.Popen([sys.executable, "-c", '''
import sys, time
sys.path.insert(0, sys.argv[1])
from harness.fakeserver import FakeServer, Reply
s = FakeServer(lambda r: Reply(200, {"Content-Type": "application/json"}, b"{}"))
print(s.host, flush=True)
time.sleep(3600)
''', sys.argv[2]], stdout=subprocess.PIPE, text=True)
try:
    host = server.stdout.readline().strip()
    start = time.perf_counter()
    from ociinspect.registry import HostSettings, RegistryClient, RegistrySettings
    imported = time.perf_counter() - start
    n = int(sys.argv[1])
    with RegistryClient(RegistrySettings(default=HostSettings(plain_http=True))) as client:
        client.ping(host)
        cpu = time.process_time()
        for _ in range(n):
            client.ping(host)
        cpu = time.process_time() - cpu
    print(imported, cpu / n)
finally:
    server.kill()
"""


def export(rev: str, into: Path) -> Path:
    """``ociinspect/`` of ``rev`` (git archive) under ``into``; returns the directory to put on PYTHONPATH."""
    archive = into / "src.tar"
    with open(archive, "wb") as out:
        subprocess.run(["git", "-C", str(REPO_ROOT), "archive", rev, "ociinspect"], stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def one(source: Path, requests: int, pycache: Path) -> tuple[float, float]:
    """(import seconds, CPU seconds per request) of one fresh process running ``source``'s client (bytecode
    cached under ``pycache``, as an installed package's is)."""
    env = dict(os.environ, PYTHONPATH=str(source), PYTHONPYCACHEPREFIX=str(pycache))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(requests), str(REPO_ROOT / "tests")],
        cwd=pycache,  # no ociinspect/ here: ``-c`` puts the working directory first on sys.path
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    imported, per_request = done.stdout.split()
    return float(imported), float(per_request)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--baseline", default="940b96e", help="git revision to compare with (default 940b96e)"
    )
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ociinspect-bench-transport-") as tmp:
        base = export(args.baseline, Path(tmp))
        results: dict[str, list[tuple[float, float]]] = {"baseline": [], "work tree": []}
        pycache = Path(tmp) / "pycache"
        pycache.mkdir()
        one(base, 100, pycache), one(REPO_ROOT, 100, pycache)  # warm-up: bytecode caches
        for _ in range(args.pairs):
            results["baseline"].append(one(base, args.requests, pycache))
            results["work tree"].append(one(REPO_ROOT, args.requests, pycache))
    print(
        f"registry transport, {args.pairs} pairs of {args.requests} body-less requests; baseline "
        f"{args.baseline}; load average {load[0]:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    for name, rows in results.items():
        imports = statistics.median(r[0] for r in rows) * 1000
        cpu = statistics.median(r[1] for r in rows) * 1000
        print(f"  {name:10}  import {imports:7.1f} ms   CPU per request {cpu:.3f} ms")
    ratios = [w[1] / b[1] for b, w in zip(results["baseline"], results["work tree"], strict=True)]
    imports = [w[0] / b[0] for b, w in zip(results["baseline"], results["work tree"], strict=True)]
    print(
        f"  ratio work tree / baseline: CPU per request {statistics.median(ratios):.2f}x "
        f"({min(ratios):.2f}-{max(ratios):.2f}), import {statistics.median(imports):.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
