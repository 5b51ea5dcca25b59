"""Benchmark of issue 14, target 5: ``ociinspect audit scan`` of a synthetic registry of 10 000 … 100 000 images.

    python tests/bench/bench_audit_scale.py                          # 10 000 images
    python tests/bench/bench_audit_scale.py --images 10000,100000    # both, and how each figure grows
    python tests/bench/bench_audit_scale.py --strict                 # exit 1 when a target is missed
    python tests/bench/bench_audit_scale.py --profile out.prof       # cProfile the audit (first size only)

The registry is not the bottleneck: a separate process answers the Distribution API from memory with a small
asyncio HTTP/1.1 server (keep-alive; ``/v2/``, ``/v2/_catalog`` with ``Link`` pagination, ``tags/list``,
manifests by tag and by digest with ``Docker-Content-Digest``, GET and HEAD, blobs with ``Range``).  Its content
is real: every manifest, config and layer is the bytes its digest names (the audit verifies them), layers are
gzip tars.  Image ``i`` (5 tags per repository, 4 images per repository: ``latest`` repeats the newest) is an
OCI or Docker manifest with a config of its own, one of 12 shared base layers (6 of them above 64 KiB: their sizes
come from a Range read of the gzip trailer, their OS from a partial read) and one layer of its own (small: read
whole and verified).  One image in 50 is an index of two platform images (amd64, arm64).

Measured per size, with the audit as a child process (``python -m ociinspect audit scan HOST --plain-http -q``
into a fresh SQLite file): wall time, images/s, the audit's own CPU seconds (``wait4``) per image, its peak RSS
(``VmHWM`` sampled every 20 ms), the database size, the server's requests and CPU; then the re-audit of the
unchanged registry (requests per tag).  ``uptime``'s load is printed with each figure: the machine is shared.

Targets (FAIL printed; exit 1 with ``--strict``): our CPU ≤ 1.5 ms per image; peak RSS ≤ 200 MB; re-audit ≤ 1
manifest/blob request per tag; from the smallest to the largest size, CPU per image, RSS per image and database
bytes per image grow by at most 1.25× (linear or better).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import io
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parents[1]
#: the directory whose ociinspect/ package the audit runs (``--source``)
SOURCE = [REPO_ROOT]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
TAGS_PER_REPO = 5  # 4 images and ``latest``
INDEX_EVERY = 50  # one image in 50 is an index of two platform images

# ------------------------------------------------------------------------------------------- the content


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _cjson(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def _tar(files: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1, mtime=0)


class Content:
    """The whole registry in memory: ``repos`` (sorted), ``tags[repo] → {tag: digest}``, ``manifests[digest] →
    (media type, bytes)``, ``blobs[digest] → bytes``, and ``images`` (manifests that are not indexes)."""

    def __init__(self, n_images: int) -> None:
        self.tags: dict[str, dict[str, str]] = {}
        self.manifests: dict[str, tuple[str, bytes]] = {}
        self.blobs: dict[str, bytes] = {}
        self.images = 0
        self.bases = [self._base(k) for k in range(12)]
        i = 0
        r = 0
        while self.images < n_images:
            repo = f"team{r % 97:02d}/app{r:06d}"
            tags: dict[str, str] = {}
            for v in range(TAGS_PER_REPO - 1):
                if self.images >= n_images:
                    break
                tags[f"v{v}"] = self._tag(i)
                i += 1
            if tags:
                tags["latest"] = tags[max(tags)]
                self.tags[repo] = tags
            r += 1
        self.repos = sorted(self.tags)

    def _base(self, k: int) -> tuple[str, int, str]:
        os_id = ("debian", "alpine", "ubuntu")[k % 3]
        release = f'ID={os_id}\nVERSION_ID="{k}"\nPRETTY_NAME="{os_id} {k}"\n'.encode()
        pad = random.Random(k).randbytes(20_000 if k % 2 else 150_000)  # half above 64 KiB compressed
        tar = _tar([("etc/os-release", release), (f"usr/lib/base{k}.bin", pad)])
        blob = _gz(tar)
        d = _digest(blob)
        self.blobs[d] = blob
        return d, len(blob), _digest(tar)

    def _image(self, i: int, arch: str) -> str:
        base, base_size, base_diff = self.bases[i % len(self.bases)]
        tar = _tar([(f"app/{i}-{arch}.txt", f"image {i} {arch}\n".encode())])
        own = _gz(tar)
        own_d = _digest(own)
        self.blobs[own_d] = own
        docker = i % 3 == 0
        config = _cjson(
            {
                "architecture": arch,
                "os": "linux",
                "created": f"20{20 + i % 7}-0{1 + i % 9}-01T00:00:00Z",
                "config": {"Cmd": ["/app"], "Env": [f"IMAGE={i}"]},
                "rootfs": {"type": "layers", "diff_ids": [base_diff, _digest(tar)]},
                "history": [{"created_by": "base"}, {"created_by": f"COPY app {i}"}],
            }
        )
        config_d = _digest(config)
        self.blobs[config_d] = config
        layer_mt = DOCKER_LAYER if docker else OCI_LAYER
        manifest = _cjson(
            {
                "schemaVersion": 2,
                "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
                "config": {
                    "mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
                    "digest": config_d,
                    "size": len(config),
                },
                "layers": [
                    {"mediaType": layer_mt, "digest": base, "size": base_size},
                    {"mediaType": layer_mt, "digest": own_d, "size": len(own)},
                ],
            }
        )
        d = _digest(manifest)
        self.manifests[d] = (DOCKER_MANIFEST if docker else OCI_MANIFEST, manifest)
        self.images += 1
        return d

    def _tag(self, i: int) -> str:
        if i % INDEX_EVERY != INDEX_EVERY - 1:
            return self._image(i, "amd64")
        children = []
        for arch in ("amd64", "arm64"):
            d = self._image(i, arch)
            children.append(
                {
                    "mediaType": self.manifests[d][0],
                    "digest": d,
                    "size": len(self.manifests[d][1]),
                    "platform": {"os": "linux", "architecture": arch},
                }
            )
        index = _cjson({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children})
        d = _digest(index)
        self.manifests[d] = (OCI_INDEX, index)
        return d


# --------------------------------------------------------------------------------------------- the server


class _Http(asyncio.Protocol):
    """A minimal HTTP/1.1 server (keep-alive, GET/HEAD, no request bodies) answering from :class:`Content`."""

    content: Content
    stats: dict[str, int]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buf = b""
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buf = self.buf[:end].decode("latin-1"), self.buf[end + 4 :]
            lines = head.split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            self.stats["requests"] += 1
            status, hdrs, body = self.answer(method, target, headers)
            out = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}"]
            out += [f"{k}: {v}" for k, v in hdrs.items()]
            self.transport.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))
            if method != "HEAD":
                self.transport.write(body)

    def answer(self, method: str, target: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        url = urllib.parse.urlsplit(target)
        path, query = url.path, urllib.parse.parse_qs(url.query)
        c = self.content
        json_ct = {"Content-Type": "application/json"}
        if path in ("/v2/", "/v2"):
            return 200, json_ct, b"{}"
        if path == "/_bench/stats":
            return 200, json_ct, json.dumps(self.stats).encode()
        if path == "/v2/_catalog":
            n = int(query.get("n", ["100"])[0])
            last = query.get("last", [""])[0]
            import bisect

            start = bisect.bisect_right(c.repos, last) if last else 0
            page = c.repos[start : start + n]
            hdrs = dict(json_ct)
            if start + n < len(c.repos):
                hdrs["Link"] = f'</v2/_catalog?last={urllib.parse.quote(page[-1])}&n={n}>; rel="next"'
            return 200, hdrs, json.dumps({"repositories": page}).encode()
        parts = path[len("/v2/") :].rsplit("/", 2)
        if len(parts) != 3:
            return 404, json_ct, b'{"errors":[{"code":"NOT_FOUND"}]}'
        repo, kind, ref = parts
        if path.endswith("/tags/list"):
            name = path[len("/v2/") : -len("/tags/list")]
            if name not in c.tags:
                return 404, json_ct, b'{"errors":[{"code":"NAME_UNKNOWN"}]}'
            return 200, json_ct, json.dumps({"name": name, "tags": sorted(c.tags[name])}).encode()
        if repo not in c.tags:
            return 404, json_ct, b'{"errors":[{"code":"NAME_UNKNOWN"}]}'
        if kind == "manifests":
            self.stats["manifests"] += 1
            digest = ref if ref.startswith("sha256:") else c.tags[repo].get(ref)
            if digest is None or digest not in c.manifests:
                return 404, json_ct, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}'
            mt, data = c.manifests[digest]
            return 200, {"Content-Type": mt, "Docker-Content-Digest": digest}, data
        if kind == "blobs":
            self.stats["blobs"] += 1
            blob = c.blobs.get(ref)
            if blob is None:
                return 404, json_ct, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}'
            hdrs = {"Content-Type": "application/octet-stream", "Docker-Content-Digest": ref}
            rng = headers.get("range", "")
            if rng.startswith("bytes="):
                lo, _, hi = rng[6:].partition("-")
                if lo == "":
                    first, final = max(0, len(blob) - int(hi)), len(blob) - 1
                else:
                    first, final = int(lo), min(len(blob) - 1, int(hi) if hi else len(blob) - 1)
                hdrs["Content-Range"] = f"bytes {first}-{final}/{len(blob)}"
                return 206, hdrs, blob[first : final + 1]
            return 200, hdrs, blob
        return 404, json_ct, b'{"errors":[{"code":"UNSUPPORTED"}]}'


def serve(n_images: int, port_file: Path) -> None:
    """Build the content, listen on 127.0.0.1:0, write ``port images`` to ``port_file``, serve until SIGTERM."""
    content = Content(n_images)
    stats = {"requests": 0, "manifests": 0, "blobs": 0}
    _Http.content, _Http.stats = content, stats

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Http, "127.0.0.1", 0, backlog=256)
        port = server.sockets[0].getsockname()[1]
        tmp = port_file.with_suffix(".tmp")
        tmp.write_text(f"{port} {content.images} {sum(len(t) for t in content.tags.values())}")
        tmp.rename(port_file)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        server.close()

    asyncio.run(main())


# ---------------------------------------------------------------------------------------------- measuring


def _hwm(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _python_pass_ms(runs: int = 7) -> float:
    """Median CPU (user + system, ``wait4``) of ``python -c pass`` in ms: the machine's speed at this moment, for
    reading an absolute CPU figure against another run's (this shared machine's speed moves by a third)."""
    cpus = []
    for _ in range(runs):
        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        _, _, usage = os.wait4(proc.pid, 0)
        cpus.append((usage.ru_utime + usage.ru_stime) * 1000)
    return round(statistics.median(cpus), 1)


def _stats(port: int) -> dict[str, int]:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /_bench/stats HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"}" not in data:
            data += s.recv(4096)
    return dict(json.loads(data.split(b"\r\n\r\n", 1)[1]))


def run_audit(
    port: int,
    db: str,
    concurrency: int,
    server_pid: int,
    profile: str | None,
    shards: int = 1,
    label: str = "",
) -> dict[str, Any]:
    """One ``audit scan`` (``shards`` > 1: that many workers at once, ``--shard K/N --run LABEL``) as child
    processes: wall, peak RSS (the largest worker's), CPU of every worker (wait4) and of the server."""
    env = {**os.environ, "PYTHONPATH": str(SOURCE[0])}
    prefix = [sys.executable, "-m", "cProfile", "-o", profile, "-m"] if profile else [sys.executable, "-m"]
    cmd = [*prefix, "ociinspect", "audit", "scan", f"127.0.0.1:{port}", "--plain-http", "--db", db]
    cmd += ["-q", "-j", str(concurrency)]
    if shards > 1:
        cmd += ["--run", label]
    server_cpu = _cpu(server_pid)
    before = _stats(port)
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            cmd + (["--shard", f"{k}/{shards}"] if shards > 1 else []),
            env=env,
            cwd=SOURCE[0],  # ``-m`` puts the working directory first on sys.path
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for k in range(shards)
    ]
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], *(_hwm(p.pid) for p in procs))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu = 0.0
    for proc in procs:
        assert proc.stderr is not None
        err = proc.stderr.read().decode(errors="replace")
        _, status, usage = os.wait4(proc.pid, 0)
        cpu += usage.ru_utime + usage.ru_stime
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise SystemExit(f"audit failed ({code}): {err[-2000:]}")
    done.set()
    sampler.join()
    elapsed = time.monotonic() - started
    after = _stats(port)
    return {
        "seconds": elapsed,
        "peak_rss": peak[0],
        "cpu": cpu,
        "server_cpu": _cpu(server_pid) - server_cpu,
        "requests": after["requests"] - before["requests"] - 1,  # the stats request itself
        "manifest_blob_requests": after["manifests"] + after["blobs"] - before["manifests"] - before["blobs"],
        "load": _load(),
    }


def _fresh_db(work: Path, n: int, postgres: str | None) -> tuple[str, Any]:
    """A new database for one size: a SQLite file in ``work``, or a new database on the ``postgres`` server
    (``bench_audit_<n>_<pid>``).  Returns its target and a function giving its size in bytes."""
    if not postgres:
        path = work / f"audit-{n}.sqlite3"
        return str(path), lambda: sum(p.stat().st_size for p in work.glob(f"audit-{n}.sqlite3*"))
    import psycopg

    name = f"bench_audit_{n}_{os.getpid()}"
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    target = postgres.rsplit("/", 1)[0] + "/" + name

    def size() -> int:
        with psycopg.connect(target) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
            return int(row[0]) if row else 0

    return target, size


def measure(
    n: int, work: Path, concurrency: int, profile: str | None, postgres: str | None = None, shards: int = 1
) -> dict[str, Any]:
    port_file = work / f"port-{n}"
    t = time.monotonic()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(n), "--port-file", str(port_file)],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        while not port_file.exists():
            if server.poll() is not None:
                raise SystemExit("the synthetic registry did not start")
            time.sleep(0.1)
        port_s, images_s, tags_s = port_file.read_text().split()
        port, images, tags = int(port_s), int(images_s), int(tags_s)
        build = time.monotonic() - t
        db, db_size = _fresh_db(work, n, postgres)
        first = run_audit(port, db, concurrency, server.pid, profile, shards, "first")
        db_bytes = db_size()
        again = run_audit(port, db, concurrency, server.pid, None, shards, "again")
        report = subprocess.run(
            [
                sys.executable,
                "-m",
                "ociinspect",
                "audit",
                "report",
                "--db",
                db,
                "-f",
                "json",
                "--top",
                "1",
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        doc = json.loads(report.stdout)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    if doc["images"] != images or doc["tags_read"] != tags or doc["error_count"]:
        raise SystemExit(
            f"the audit's report disagrees with the registry: {doc['images']} images (expected {images}), "
            f"{doc['tags_read']} tags read (expected {tags}), {doc['error_count']} errors"
        )
    return {
        "database": "postgresql" if postgres else "sqlite",
        "shards": shards,
        "images": images,
        "tags": tags,
        "repositories": doc["repositories"],
        "build_seconds": round(build, 1),
        "seconds": round(first["seconds"], 2),
        "images_per_s": round(images / first["seconds"], 1),
        "cpu_s": round(first["cpu"], 2),
        "cpu_ms_per_image": round(1000 * first["cpu"] / images, 3),
        "server_cpu_s": round(first["server_cpu"], 2),
        "requests": first["requests"],
        "requests_per_image": round(first["requests"] / images, 3),
        "peak_rss_mb": round(first["peak_rss"] / 2**20, 1),
        "db_mb": round(db_bytes / 2**20, 1),
        "db_bytes_per_image": round(db_bytes / images),
        "load": first["load"],
        "reaudit": {
            "seconds": round(again["seconds"], 2),
            "tags_per_s": round(tags / again["seconds"], 1),
            "cpu_ms_per_tag": round(1000 * again["cpu"] / tags, 3),
            "requests_per_tag": round(again["requests"] / tags, 3),
            "manifest_blob_requests_per_tag": round(again["manifest_blob_requests"] / tags, 3),
            "peak_rss_mb": round(again["peak_rss"] / 2**20, 1),
            "load": again["load"],
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", default="10000", help="comma-separated sizes (images)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--strict", action="store_true")
    parser.add_argument("--profile", help="cProfile output file for the first size's audit")
    parser.add_argument(
        "--source",
        type=Path,
        default=REPO_ROOT,
        help="directory holding the ociinspect/ package the audit runs (default: this checkout); e.g. "
        "`git archive REV ociinspect | tar -x -C DIR` for a paired comparison with an older revision",
    )
    parser.add_argument("--postgres", help="postgresql://… server URL: audit into a new database there")
    parser.add_argument(
        "--shards", type=int, default=1, help="workers at once (--shard K/N), with --postgres"
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    SOURCE[0] = args.source.resolve()
    if args.serve:
        serve(args.serve, args.port_file)
        return 0
    sizes = [int(x) for x in args.images.split(",")]
    work = Path(tempfile.mkdtemp(prefix="ociinspect-bench-audit-scale-"))
    results = []
    speed = [_python_pass_ms()]
    try:
        for k, n in enumerate(sizes):
            profile = args.profile if k == 0 else None
            results.append(measure(n, work, args.concurrency, profile, args.postgres, args.shards))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    speed.append(_python_pass_ms())
    fails = []
    for r in results:
        if r["cpu_ms_per_image"] > 1.5:
            fails.append(f"{r['images']} images: {r['cpu_ms_per_image']} ms CPU per image > 1.5")
        if r["peak_rss_mb"] > 200:
            fails.append(f"{r['images']} images: peak RSS {r['peak_rss_mb']} MB > 200")
        if r["reaudit"]["manifest_blob_requests_per_tag"] > 1.0:
            fails.append(
                f"{r['images']} images: re-audit {r['reaudit']['manifest_blob_requests_per_tag']} > 1/tag"
            )
    growth: dict[str, float] = {}
    if len(results) > 1:
        a, b = results[0], results[-1]
        growth = {
            "images": round(b["images"] / a["images"], 2),
            "cpu_per_image": round(b["cpu_ms_per_image"] / a["cpu_ms_per_image"], 3),
            "seconds_per_image": round((b["seconds"] / b["images"]) / (a["seconds"] / a["images"]), 3),
            "rss": round(b["peak_rss_mb"] / a["peak_rss_mb"], 3),
            "db_bytes_per_image": round(b["db_bytes_per_image"] / a["db_bytes_per_image"], 3),
        }
        for key in ("cpu_per_image", "db_bytes_per_image"):
            if growth[key] > 1.25:
                fails.append(
                    f"{key} grew {growth[key]}× from {a['images']} to {b['images']} images (> 1.25×)"
                )
        if growth["rss"] > growth["images"]:
            fails.append(f"peak RSS grew {growth['rss']}×, faster than the images ({growth['images']}×)")
    out = {
        "cores": os.cpu_count(),
        "concurrency": args.concurrency,
        "python_pass_cpu_ms": speed,
        "sizes": results,
        "growth": growth,
    }
    out["fails"] = fails
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(
            f"# bench_audit_scale ({out['cores']} cores, -j {args.concurrency}, {args.shards} worker(s) at once; "
            "load = 1/5/15-min averages)\n"
        )
        print(
            f"machine speed: `python -c pass` {speed[0]} ms of CPU before, {speed[1]} ms after (median of 7; "
            "compare absolute CPU figures of two runs at the same speed)\n"
        )
        print(
            "| images | tags | wall s | images/s | our CPU s | ms CPU/image | registry CPU s | requests/image "
            "| peak RSS | database | load |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in results:
            print(
                f"| {r['images']} | {r['tags']} | {r['seconds']} | {r['images_per_s']} | {r['cpu_s']} | "
                f"{r['cpu_ms_per_image']} | {r['server_cpu_s']} | {r['requests_per_image']} | {r['peak_rss_mb']} MB | "
                f"{r['db_mb']} MB {r['database']} ({r['db_bytes_per_image']} B/image) | {r['load']} |"
            )
        print(
            "\n| re-audit (unchanged) | wall s | tags/s | ms CPU/tag | requests/tag | manifest+blob/tag | peak RSS "
            "| load |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for r in results:
            q = r["reaudit"]
            print(
                f"| {r['images']} images | {q['seconds']} | {q['tags_per_s']} | {q['cpu_ms_per_tag']} | "
                f"{q['requests_per_tag']} | {q['manifest_blob_requests_per_tag']} | {q['peak_rss_mb']} MB | "
                f"{q['load']} |"
            )
        if growth:
            print(f"\ngrowth from the smallest to the largest size: {json.dumps(growth)}")
        for f in fails:
            print(f"FAIL: {f}")
        if not fails:
            print("PASS: every target met")
    return 1 if fails and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
