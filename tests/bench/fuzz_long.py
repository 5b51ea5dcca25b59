"""The opt-in long fuzz run of issue 7: ≥ 100,000 hypothesis cases over every hostile-input target of
``tests/reliability/fuzz_targets.py``, and optionally coverage-guided atheris (libFuzzer) runs.

    python tests/bench/fuzz_long.py                      # 100k hypothesis cases, 2 processes
    python tests/bench/fuzz_long.py --cases 20000 --jobs 1 --seed 7
    python tests/bench/fuzz_long.py --atheris 50000      # + 50k libFuzzer runs per atheris target

Prints, per target, the cases run, the time and the outcomes (``ok`` or the typed error class), the falsifying
example of any property failure, the peak RSS, and one total line; exits 1 if any target failed. The same
property as the short runs: a valid result or a typed ``OciInspectError``, never another exception, never a case
longer than ``CASE_DEADLINE`` seconds, correct numbers where the input is honest.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1]
for _path in (str(TESTS.parent), str(TESTS)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

#: share of the total per target (references and configs are cheap; archives write a tar per case)
WEIGHTS = {
    "references": 0.25,
    "configs": 0.15,
    "tar headers": 0.15,
    "gzip/zstd": 0.15,
    "manifests/indexes": 0.16,
    "docker-archive": 0.07,
    "oci layout": 0.07,
}


def _hypothesis_target(name: str) -> tuple[Any, Callable[[Any], object]]:
    """(strategy, one-case function) of a target."""
    from hypothesis import strategies as st
    from reliability import fuzz_targets as ft

    table: dict[str, tuple[Any, Callable[[Any], object]]] = {
        "references": (ft.references(), ft.reference_case),
        "configs": (ft.config_documents(), ft.config_case),
        "tar headers": (ft.tar_inputs(), lambda args: ft.tar_case(*args)),
        "gzip/zstd": (ft.compression_inputs(), lambda args: ft.compression_case(*args)),
        "manifests/indexes": (ft.image_cases(), ft.image_case),
        "docker-archive": (
            st.tuples(ft.docker_archives(), st.sampled_from(["cheap", "exact"])),
            lambda args: ft.archive_case(args[0][0], args[0][1], args[1]),
        ),
        "oci layout": (ft.layouts(), lambda args: ft.layout_case(*args)),
    }
    return table[name]


def run_hypothesis(name: str, cases: int, seed: int) -> dict[str, Any]:
    """Run ``cases`` hypothesis examples of one target; never raises (a failure is reported in the result)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hypothesis_seed
    from reliability import fuzz_targets as ft

    strategy, case = _hypothesis_target(name)
    tally = ft.tally(name)
    failure = None

    @hypothesis_seed(seed)
    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def fuzz(value: Any) -> None:
        tally.run(lambda: case(value))

    start = time.perf_counter()
    try:
        fuzz()
    except BaseException:  # hypothesis re-raises the falsifying example: report it, run the next target
        failure = traceback.format_exc(limit=-8)
    finally:
        ft.cleanup_workdir()
    return {
        "name": name,
        "engine": "hypothesis",
        "cases": tally.cases,
        "seconds": time.perf_counter() - start,
        "outcomes": dict(tally.outcomes),
        "failure": failure,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


# ------------------------------------------------------------------------------------------------ atheris

ATHERIS_TARGETS = ("references", "configs", "manifests", "tar headers", "gzip/zstd", "docker-archive")


def atheris_main(target: str, libfuzzer_args: list[str]) -> None:
    """Run one target under atheris (this process is taken over by libFuzzer, which exits it)."""
    import atheris

    with atheris.instrument_imports(include=["ociinspect"]):
        from ociinspect.content import compression, scan
        from ociinspect.errors import OciInspectError
        from ociinspect.image.loader import LoadOptions, load, parse_config
        from ociinspect.model.image import RawManifest
        from ociinspect.model.reference import parse_reference
        from ociinspect.sources.local import open_local
    from reliability import fuzz_targets as ft

    workdir = ft.workdir()  # $OCIINSPECT_FUZZ_WORKDIR, set by run_atheris

    def one(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        if target == "references":
            parse_reference(fdp.ConsumeUnicodeNoSurrogates(200))
        elif target == "configs":
            parse_config(data, "atheris config")
        elif target == "manifests":
            media_type = ("application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
                          "application/json", "")[fdp.ConsumeIntInRange(0, 3)]  # fmt: skip
            body = fdp.ConsumeBytes(fdp.remaining_bytes())
            root = RawManifest(body, media_type, ft._sha(body))
            source = ft.memory_source(root, {root.digest: root}, {}, honest=True)
            load(source, LoadOptions(sizes="none", workers=1))
        elif target == "tar headers":
            scan.scan_tar_stream(iter([data]), what="atheris tar", hash_files=True, max_entries=1000)
        elif target == "gzip/zstd":
            for _ in compression.decompress(iter([data]), what="atheris blob", max_output=1 << 20):
                pass
        elif target == "docker-archive":
            path = workdir / "atheris.docker.tar"
            ft._write_tar(path, {"manifest.json": data, "cfg.json": b"{}", "l.tar": b""})
            archive = open_local(parse_reference(f"docker-archive:{path}"))
            try:
                load(archive, LoadOptions(workers=1))
            finally:
                archive.close()

    def test_one_input(data: bytes) -> None:
        try:
            with ft.deadline():
                one(data)
        except OciInspectError:
            pass

    atheris.Setup([sys.argv[0], *libfuzzer_args], test_one_input)
    atheris.Fuzz()


def _seed_corpus(target: str, directory: Path) -> None:
    """Valid inputs to start libFuzzer from (it mutates them)."""
    import gzip

    from reliability import fuzz_targets as ft

    directory.mkdir(parents=True, exist_ok=True)
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name in ("etc/os-release", "usr/bin/x", "a/.wh.b"):
            info = tarfile.TarInfo(name)
            info.size = 3
            tf.addfile(info, io.BytesIO(b"abc"))
    tar = buf.getvalue()
    seeds = {
        "references": [
            b"docker://localhost:5000/a/b:c@sha256:" + b"a" * 64,
            b"oci:/x:y",
            b"docker-archive:a.tar:r:t",
        ],
        "configs": [
            b'{"os":"linux","architecture":"amd64","rootfs":{"diff_ids":["sha256:x"]},"history":[{}]}'
        ],
        "manifests": [
            b'{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'
            + b"0" * 64
            + b'","size":2},"layers":[]}',
            b'{"schemaVersion":2,"manifests":[{"digest":"sha256:'
            + b"0" * 64
            + b'","size":1,"platform":{}}]}',
        ],
        "tar headers": [tar],
        "gzip/zstd": [gzip.compress(tar, mtime=0), ft.zstd_frame(tar)],
        "docker-archive": [b'[{"Config":"cfg.json","RepoTags":["a:b"],"Layers":["l.tar"]}]'],
    }
    for i, seed in enumerate(seeds[target]):
        (directory / f"seed{i}").write_bytes(seed)


def run_atheris(target: str, runs: int, seed: int, workdir: Path) -> dict[str, Any]:
    corpus = workdir / re.sub(r"\W+", "_", target)
    _seed_corpus(target, corpus)
    args = [
        sys.executable,
        __file__,
        "--atheris-target",
        target,
        "--",
        f"-runs={runs}",
        f"-seed={seed}",
        "-max_len=65536",
        "-rss_limit_mb=2048",
        "-timeout=20",
        "-print_final_stats=1",
        f"-artifact_prefix={workdir}/",  # a crashing input is written there, not into the repository
        str(corpus),
    ]
    start = time.perf_counter()
    env = {**os.environ, "OCIINSPECT_FUZZ_WORKDIR": str(workdir)}
    done = subprocess.run(args, capture_output=True, text=True, check=False, env=env)
    log = done.stdout + done.stderr
    match = re.search(r"Done (\d+) runs", log) or re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
    rss = re.search(r"stat::peak_rss_mb:\s*(\d+)", log)
    return {
        "name": target,
        "engine": "atheris",
        "cases": int(match.group(1)) if match else 0,
        "seconds": time.perf_counter() - start,
        "outcomes": {},
        "failure": None if done.returncode == 0 else log[-4000:],
        "max_rss_mib": float(rss.group(1)) if rss else 0.0,
    }


# -------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cases", type=int, default=100_000, help="hypothesis cases in total (default 100000)"
    )
    parser.add_argument("--seed", type=int, default=None, help="hypothesis/libFuzzer seed (default: random)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="processes (default 2)")
    parser.add_argument("--target", action="append", help="only these targets (repeatable)")
    parser.add_argument(
        "--atheris", type=int, default=0, metavar="RUNS", help="also RUNS libFuzzer runs per target"
    )
    parser.add_argument("--atheris-target", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.atheris_target:
        atheris_main(args.atheris_target, [a for a in rest if a != "--"])
        return 0
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    targets = args.target or list(WEIGHTS)
    total_weight = sum(WEIGHTS[t] for t in targets)
    plan = [(t, max(1, math.ceil(args.cases * WEIGHTS[t] / total_weight))) for t in targets]
    print(f"fuzz_long: {sum(n for _, n in plan)} hypothesis cases over {len(plan)} targets, seed {seed}, "
          f"{args.jobs} process(es)", flush=True)  # fmt: skip
    start = time.perf_counter()
    results: list[dict[str, Any]] = []
    with concurrent.futures.ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_hypothesis, name, n, seed) for name, n in plan]
        for future in concurrent.futures.as_completed(futures):
            results.append(future.result())
            _print(results[-1])
    if args.atheris:
        import tempfile

        workdir = Path(tempfile.mkdtemp(prefix="ociinspect-atheris-"))
        for target in ATHERIS_TARGETS:
            results.append(run_atheris(target, args.atheris, seed, workdir))
            _print(results[-1])
        if any(r["failure"] for r in results if r["engine"] == "atheris"):
            print(f"atheris corpora and crashing inputs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    failed = [r for r in results if r["failure"]]
    for engine in ("hypothesis", "atheris"):
        rows = [r for r in results if r["engine"] == engine]
        if rows:
            print(f"TOTAL {engine}: {sum(r['cases'] for r in rows)} cases, "
                  f"{sum(1 for r in rows if r['failure'])} target(s) failed")  # fmt: skip
    print(f"TOTAL: {sum(r['cases'] for r in results)} cases in {time.perf_counter() - start:.0f} s wall, "
          f"peak RSS {max(r['max_rss_mib'] for r in results):.0f} MiB per process, "
          f"{'FAILED: ' + ', '.join(r['name'] for r in failed) if failed else 'no failure'}")  # fmt: skip
    return 1 if failed else 0


def _print(result: dict[str, Any]) -> None:
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(result["outcomes"].items(), key=lambda kv: -kv[1]))
    status = "FAILED" if result["failure"] else "ok"
    print(f"  [{result['engine']}] {result['name']}: {result['cases']} cases in {result['seconds']:.0f} s, "
          f"peak RSS {result['max_rss_mib']:.0f} MiB — {status}" + (f" ({outcomes})" if outcomes else ""),
          flush=True)  # fmt: skip
    if result["failure"]:
        lines = result["failure"].splitlines()[-60:]
        print("\n".join(line if len(line) <= 400 else line[:400] + " …" for line in lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
