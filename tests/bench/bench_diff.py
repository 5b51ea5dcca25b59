"""Benchmark of issue 13: ``ociinspect diff A B`` of two registry images that share a base vs ``skopeo copy`` of
both to local dirs + unpack + ``diff -r``, as a ratio from one run.

    python tests/bench/bench_diff.py              # 3 paired runs (farm-bench) after one warm-up
    python tests/bench/bench_diff.py --runs 5 --scenario add

What happens:

1. :mod:`realimage` builds (or reuses) the ~480 MB, 5-layer image (A).  B is A with its top (application) layer
   replaced by a new one (the same files with ``/app/main.py`` rewritten; ``--scenario add``: plus a new 2 MiB
   file): four shared layers (~205 MB compressed), one differing layer on each side.  ``rewrite``: the prefix
   cannot change the result and is never read; ``add``: whether the new path is *added* or *modified* depends on
   the base, so the prefix is read once (cold cache; free with a warm one).
2. A Distribution registry on loopback (``tests/harness/registry.py``); both images pushed with skopeo
   (untimed).
3. Timed with ``farm-bench`` (whole processes, wall/cpu/peak RSS, A and B in turn, ratio pair by pair):

   a. ``ociinspect diff docker://A docker://B --no-cache --exit-zero -f json`` (cold: no layer cache);
   b. ``sh baseline.sh``: ``skopeo copy docker://A dir:…`` and the same for B, ``tar -xzf`` of each image's
      layers in manifest order into a fresh root (whiteouts not applied: less work than a real unpacker), then
      ``diff -r -q`` of the two roots.

Before timing, one ``ociinspect diff`` run is checked: exactly the two differing layers are fetched whole
(registry access log) and the result lists the new file.  Needs ``docker-registry``, ``skopeo``, ``farm-bench``,
``tar``, ``diff``, ``jq``.  Cost: ~2-5 minutes (the baseline dominates) plus the image build the first time.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parents[1]
for _path in (str(REPO_ROOT), str(REPO_ROOT / "tests")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from harness.registry import start_registry  # noqa: E402

from bench.realimage import load_real_image  # noqa: E402

REQUIRED_TOOLS = ("docker-registry", "skopeo", "farm-bench", "tar", "diff", "jq")


def _put(blobs: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return f"sha256:{digest}"


def make_b(a_layout: Path, tag: str, out: Path, *, add: bool) -> Path:
    """An OCI layout of B: A's blobs (hardlinked), A's top layer replaced by a new application layer: the same
    files with ``/app/main.py`` rewritten, plus (``add``) a new 2 MiB ``/app/model-v2.bin``."""
    shutil.copytree(a_layout, out, copy_function=os.link)
    blobs = out / "blobs" / "sha256"
    index = json.loads((out / "index.json").read_text())
    desc = next(
        m
        for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag
    )
    manifest = json.loads((blobs / desc["digest"][7:]).read_bytes())
    config = json.loads((blobs / manifest["config"]["digest"][7:]).read_bytes())
    top = manifest["layers"][-1]
    with gzip.open(blobs / top["digest"][7:]) as old, tarfile.open(fileobj=old, mode="r|") as src:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as dst:
            for m in src:
                data = src.extractfile(m).read() if m.isreg() else None  # type: ignore[union-attr]
                if m.name.lstrip("./") == "app/main.py" and data is not None:
                    data = data + b"\n# v2\n"
                    m.size = len(data)
                dst.addfile(m, io.BytesIO(data) if data is not None else None)
            if add:
                extra = tarfile.TarInfo("app/model-v2.bin")
                payload = hashlib.sha256(b"v2").digest() * ((2 << 20) // 32)
                extra.size, extra.mode = len(payload), 0o644
                dst.addfile(extra, io.BytesIO(payload))
    tar = buf.getvalue()
    blob = gzip.compress(tar, compresslevel=6, mtime=0)
    manifest["layers"][-1] = {**top, "digest": _put(blobs, blob), "size": len(blob)}
    config["rootfs"]["diff_ids"][-1] = "sha256:" + hashlib.sha256(tar).hexdigest()
    cbytes = json.dumps(config).encode()
    manifest["config"] = {**manifest["config"], "digest": _put(blobs, cbytes), "size": len(cbytes)}
    mbytes = json.dumps(manifest).encode()
    desc = {**desc, "digest": _put(blobs, mbytes), "size": len(mbytes)}
    (out / "index.json").unlink()
    (out / "index.json").write_text(json.dumps({**index, "manifests": [desc]}))
    return out


BASELINE = """#!/bin/sh
# skopeo copy of both images + unpack (tar, layers in manifest order) + diff -r
set -e
W="$1"; A="$2"; B="$3"; P="$4"
rm -rf "$W/a" "$W/b" "$W/root-a" "$W/root-b"
skopeo --policy "$P" copy --quiet --src-tls-verify=false "$A" "dir:$W/a"
skopeo --policy "$P" copy --quiet --src-tls-verify=false "$B" "dir:$W/b"
for s in a b; do
  mkdir -p "$W/root-$s"
  for d in $(jq -r '.layers[].digest' "$W/$s/manifest.json" | cut -d: -f2); do
    tar -xzf "$W/$s/$d" -C "$W/root-$s" --no-same-owner --no-same-permissions 2>/dev/null || true
  done
done
diff -r -q --no-dereference "$W/root-a" "$W/root-b" > "$W/diff-r.txt" || true
"""


def run(cmd: Sequence[str], **kw: object) -> str:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=3600, **kw)  # type: ignore[call-overload]
    if proc.returncode not in (0, 1):
        raise SystemExit(
            f"bench_diff: {' '.join(cmd[:3])} … failed ({proc.returncode}): {proc.stderr[-2000:]}"
        )
    return str(proc.stdout)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3, help="paired timed runs (default 3)")
    parser.add_argument(
        "--scenario",
        choices=("rewrite", "add"),
        default="rewrite",
        help="rewrite: B rewrites A's application files (the shared prefix is not read); add: B also adds a "
        "file, so the result depends on the prefix and it is read once (cold cache)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (printed)")
    args = parser.parse_args(argv)
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        print(f"bench_diff: missing tools: {', '.join(missing)}")
        return 2
    image = load_real_image()
    workdir = Path(tempfile.mkdtemp(prefix="ociinspect-bench-diff-"))
    registry = start_registry(workdir / "registry", "anon", access_log=True)
    try:
        policy = workdir / "policy.json"
        policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
        b_layout = make_b(image.layout, image.tag, workdir / "b-layout", add=args.scenario == "add")
        refs = {}
        for name, layout in (("a", image.layout), ("b", b_layout)):
            refs[name] = f"docker://{registry.host}/bench/diff:{name}"
            run(["skopeo", "--policy", str(policy), "copy", "--quiet", "--dest-tls-verify=false",
                 "--preserve-digests", f"oci:{layout}:{image.tag}" if name == "a" else f"oci:{layout}",
                 refs[name]])  # fmt: skip
        env = {**os.environ, "XDG_CACHE_HOME": str(workdir / "xdg"), "PYTHONPATH": str(REPO_ROOT)}
        ours = [
            "ociinspect",
            "diff",
            refs["a"],
            refs["b"],
            "--plain-http",
            "--no-cache",
            "--exit-zero",
            "-f",
            "json",
        ]
        assert registry.access_log_path is not None
        before = len(registry.access_log_path.read_text().splitlines())
        doc = json.loads(run(ours, env=env))
        lines = registry.access_log_path.read_text().splitlines()[before:]
        whole = [ln for ln in lines if "/blobs/sha256:" in ln and '" 200 ' in ln and '"GET ' in ln]
        fetched = sum(int(m.group(1)) for ln in whole if (m := re.search(r'" 200 (\d+)', ln)))
        print(f"ociinspect diff: shared layers {len(doc['layers']['shared'])}, only A {len(doc['layers']['only_a'])}, "
              f"only B {len(doc['layers']['only_b'])}; prefix read: {doc['prefix_read']}; "
              f"added {[c['path'] for c in doc['files']['added']]}; size_delta {doc['size_delta']}")  # fmt: skip
        print(f"blobs fetched whole: {len(whole)} (configs, differing layers, the prefix if read), {fetched} bytes; "
              f"image A compressed {sum(x.size for x in image.layers)} bytes")  # fmt: skip
        script = workdir / "baseline.sh"
        script.write_text(BASELINE)
        baseline = f"sh {script} {workdir} {refs['a']} {refs['b']} {policy}"
        ociinspect = shutil.which("ociinspect") or "ociinspect"
        cmd = ["farm-bench", "-n", str(args.runs), "--timeout", "1800", "--vs", baseline, "--",
               "env", f"XDG_CACHE_HOME={workdir / 'xdg'}", ociinspect, *ours[1:]]  # fmt: skip
        print("$ " + " ".join(cmd))
        print(run(cmd))
        return 0
    finally:
        registry.stop()
        if args.keep:
            print(f"(kept {workdir})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
