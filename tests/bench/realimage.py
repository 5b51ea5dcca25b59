"""A realistic multi-layer OCI image for benchmarks, built from real files and cached.

    python tests/bench/realimage.py            # build (or reuse) it; print the layout path and its layers
    python tests/bench/realimage.py --rebuild  # throw the cached copy away first

What it builds — an OCI image layout with one tag (``latest``), five gzip layers, ~480 MB uncompressed and
~205 MB compressed (figures from this machine):

====  ==========================================================================================  ========
layer what                                                                                        tar size
====  ==========================================================================================  ========
1     Debian bookworm rootfs from ``debootstrap --variant=minbase bookworm`` (mirror read from       204 MB
      ``/etc/apt/sources.list*``), apt lists and downloaded ``.deb`` files left in place
2     this interpreter's ``python3.X`` binary, ``libpython`` and stdlib (without ``test/`` and         157 MB
      ``site-packages/``) under ``/usr/local``
3     this host's ``/usr/share/doc``                                                                 113 MB
4     a clean-up: whiteouts ``.wh.doc``, ``.wh.ensurepip``, ``.wh.<pkg>.deb`` for every cached .deb,   0.1 MB
      an opaque ``/var/lib/apt/lists`` (``.wh..wh..opq``) — so the image carries ~200 MB of waste
5     an "application": requests, urllib3, idna, certifi, charset_normalizer, click, tabulate from      4 MB
      this interpreter's site-packages, plus ``/app/main.py``
====  ==========================================================================================  ========

Each layer is a tar streamed straight into gzip: entries sorted (parents first), mtime fixed to
``fixtures.build.MTIME``, uid/gid 0 with empty user/group names, PAX format; gzip with mtime 0, no file name,
level 6 (``gzip.GzipFile``). Device nodes, FIFOs, sockets and unreadable files are skipped (and counted). The
config carries ``rootfs.diff_ids`` and a ``history`` entry (``created_by``) per layer plus empty-layer ENV,
WORKDIR and CMD entries, as docker/buildkit write them.

If debootstrap cannot run here (not root, no network to the mirror, no binary even after ``apt-get install
debootstrap``), layer 1 falls back to a tar of this host's ``/etc``, ``/usr/bin``, ``/usr/sbin`` and
``/var/lib/dpkg`` and a loud WARNING says so (again on every cached use). ``OCIINSPECT_BENCH_BASE=host`` forces
the fallback; ``OCIINSPECT_BENCH_MIRROR=URL`` overrides the mirror.

Cache: ``${OCIINSPECT_BENCH_CACHE:-$HOME/.cache/ociinspect-bench}/real-<key>/`` holding ``layout/`` and
``facts.json``, where ``<key>`` hashes the recipe (this file's source, suite, variant, arch, mirror, base mode,
Python version and paths, gzip level, zlib version). Host files (``/usr/share/doc``, the stdlib) are not hashed:
``--rebuild`` after changing them. Building twice is not byte-identical (debootstrap writes dates and logs);
every figure a benchmark needs is recorded in ``facts.json`` at build time.

Cost (2 cores): about 30 s the first time (debootstrap ~23 s, while a second thread compresses layers 2, 3
and 5; layer 1 then takes ~5 s), ~700 MB of disk while building and ~210 MB afterwards; a cached load takes
well under 0.1 s.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import gzip
import hashlib
import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO, Protocol

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from fixtures.build import (  # noqa: E402
    CREATED,
    LAYER_GZIP,
    MTIME,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    PATH_ENV,
    REF_NAME,
    LayerFacts,
    canonical_json,
    descriptor,
    digest_of,
    history_entry,
)

__all__ = ["TAG", "RealImage", "build_real_image", "cache_root", "layer_facts", "load_real_image"]

TAG = "latest"
SUITE = "bookworm"
VARIANT = "minbase"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
GZIP_LEVEL = 6
DEBOOTSTRAP_TIMEOUT = 1800  # seconds
PY_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
PY_LIB = f"usr/local/lib/python{PY_VERSION}"
APP_PACKAGES = ("requests", "urllib3", "idna", "certifi", "charset_normalizer", "click", "tabulate")
HOST_FALLBACK_DIRS = ("/etc", "/usr/bin", "/usr/sbin", "/var/lib/dpkg")
USRMERGE_LINKS = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}
APP_MAIN = '''"""ociinspect benchmark image: a stand-in application."""

import requests

print(requests.__version__)
'''


def _say(message: str) -> None:
    print(f"realimage: {message}", file=sys.stderr, flush=True)


def _warn_loudly(message: str) -> None:
    bar = "!" * 100
    print(f"\n{bar}\nrealimage: WARNING: {message}\n{bar}\n", file=sys.stderr, flush=True)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


# ---------------------------------------------------------------- where things come from


def cache_root() -> Path:
    return Path(os.environ.get("OCIINSPECT_BENCH_CACHE") or Path.home() / ".cache" / "ociinspect-bench")


def debian_mirror(suite: str = SUITE) -> str:
    """The first non-security Debian mirror that apt is configured with for ``suite`` (deb822 ``.sources``
    files and one-line ``.list`` files), ``$OCIINSPECT_BENCH_MIRROR``, or deb.debian.org."""
    if os.environ.get("OCIINSPECT_BENCH_MIRROR"):
        return os.environ["OCIINSPECT_BENCH_MIRROR"]
    apt = Path("/etc/apt")
    files = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]
    files += sorted((apt / "sources.list.d").glob("*.sources"))
    for path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for uri, suites in _apt_entries(text, deb822=path.suffix == ".sources"):
            if suite in suites and "security" not in uri:
                return uri.rstrip("/")
    return DEFAULT_MIRROR


def _apt_entries(text: str, *, deb822: bool) -> Iterator[tuple[str, list[str]]]:
    lines = [line.split("#", 1)[0].rstrip() for line in text.splitlines()]
    if not deb822:
        for line in lines:
            words = [w for w in line.split() if not w.startswith("[") and not w.endswith("]")]
            if len(words) >= 3 and words[0] == "deb":
                yield words[1], [words[2]]
        return
    for stanza in "\n".join(lines).split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith((" ", "\t")):
                key, value = line.split(":", 1)
                fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes").lower() != "no":
            for uri in fields.get("uris", "").split():
                yield uri, fields.get("suites", "").split()


def _debian_arch() -> str:
    try:
        return subprocess.run(
            ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)


def _python_sources() -> dict[str, str]:
    paths = sysconfig.get_paths()
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    ldlibrary = sysconfig.get_config_var("INSTSONAME") or sysconfig.get_config_var("LDLIBRARY") or ""
    libpython = os.path.join(libdir, ldlibrary) if libdir and ldlibrary else ""
    return {
        "stdlib": paths["stdlib"],
        "purelib": paths["purelib"],
        "binary": os.path.realpath(sys.executable),
        "libpython": libpython if libpython.endswith(".so") or ".so." in libpython else "",
    }


def recipe(base_mode: str | None = None) -> dict[str, Any]:
    """Everything the cache key depends on."""
    base_mode = base_mode or os.environ.get("OCIINSPECT_BENCH_BASE", "debootstrap")
    return {
        "module_sha256": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
        "suite": SUITE,
        "variant": VARIANT,
        "arch": _debian_arch(),
        "mirror": debian_mirror(),
        "base": base_mode,
        "python": {"version": sys.version, **_python_sources()},
        "docs": "/usr/share/doc",
        "app_packages": list(APP_PACKAGES),
        "gzip_level": GZIP_LEVEL,
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
        "mtime": MTIME,
        "created": CREATED,
    }


# ---------------------------------------------------------------- one layer, streamed


class _Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


class _Tee:
    """A write-only file that hashes and counts what passes through to ``target``."""

    def __init__(self, target: _Writable) -> None:
        self.target = target
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        self.target.write(data)
        return len(data)

    def flush(self) -> None:
        pass

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


class LayerWriter:
    """Streams one layer: tar (sha256 = diff_id) → gzip (mtime 0, level 6) → sha256 = digest → blob file.

    Entries are written in the order they are added; :meth:`add_tree` walks sorted, parents first.
    """

    def __init__(self, blobs_dir: Path) -> None:
        self._blobs_dir = blobs_dir
        self._file: BinaryIO = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed in finish())
            dir=blobs_dir, prefix=".layer-", delete=False
        )
        self._blob = _Tee(self._file)
        self._gzip = gzip.GzipFile(
            filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=self._blob, mtime=0
        )
        self._tar_sink = _Tee(self._gzip)
        self.tar = tarfile.open(  # noqa: SIM115 (closed in finish())
            fileobj=self._tar_sink,  # type: ignore[arg-type]
            mode="w|",
            format=tarfile.PAX_FORMAT,
        )
        self.entries: list[str] = []
        self.file_bytes = 0
        self.skipped: list[str] = []
        self._added: set[str] = set()

    # -- entries

    def _normalize(self, info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime, info.uid, info.gid, info.uname, info.gname = MTIME, 0, 0, "", ""
        info.pax_headers = {}
        return info

    def _record(self, info: tarfile.TarInfo) -> None:
        self._added.add(info.name.rstrip("/"))
        self.entries.append(info.name.rstrip("/") + "/" if info.isdir() else info.name)
        if info.isreg():
            self.file_bytes += info.size

    def add_dir(self, arcname: str, mode: int = 0o755) -> None:
        if arcname in self._added:
            return
        info = self._normalize(tarfile.TarInfo(arcname))
        info.type, info.mode = tarfile.DIRTYPE, mode
        self.tar.addfile(info)
        self._record(info)

    def add_parents(self, arcname: str) -> None:
        parts = arcname.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            self.add_dir("/".join(parts[:i]))

    def add_file(self, arcname: str, data: bytes, mode: int = 0o644) -> None:
        self.add_parents(arcname)
        info = self._normalize(tarfile.TarInfo(arcname))
        info.size, info.mode = len(data), mode
        self.tar.addfile(info, _BytesReader(data))
        self._record(info)

    def add_symlink(self, arcname: str, target: str) -> None:
        self.add_parents(arcname)
        info = self._normalize(tarfile.TarInfo(arcname))
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
        self.tar.addfile(info)
        self._record(info)

    def add_whiteout(self, path: str) -> None:
        """Delete ``path`` (from lower layers): an empty ``DIR/.wh.NAME``."""
        parent, _, name = path.rpartition("/")
        self.add_file(f"{parent}/.wh.{name}" if parent else f".wh.{name}", b"")

    def add_opaque(self, directory: str) -> None:
        """Hide everything lower layers put in ``directory``: the directory plus ``.wh..wh..opq``."""
        self.add_parents(directory + "/x")
        self.add_file(f"{directory}/.wh..wh..opq", b"")

    def add_path(self, src: Path, arcname: str) -> os.stat_result | None:
        """Add one file, directory or symlink from disk; skip (and count) anything else or unreadable."""
        try:
            st = os.lstat(src)
        except OSError as exc:
            self.skipped.append(f"{arcname}: {exc.strerror}")
            return None
        if stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode):
            info = self.tar.gettarinfo(str(src), arcname)
            self.tar.addfile(self._normalize(info))
            self._record(info)
            return st
        if not stat.S_ISREG(st.st_mode):
            self.skipped.append(f"{arcname}: special file")
            return None
        try:
            handle = open(src, "rb")  # noqa: SIM115 (closed below; opened first so unreadable files are skipped)
        except OSError as exc:
            self.skipped.append(f"{arcname}: {exc.strerror}")
            return None
        with handle:
            info = self._normalize(self.tar.gettarinfo(arcname=arcname, fileobj=handle))
            self.tar.addfile(info, handle if info.isreg() else None)  # hard links carry no data
        self._record(info)
        return st

    def add_tree(self, src: Path, dest: str, exclude: Iterable[str] = ()) -> None:
        """Add directory ``src`` as ``dest`` ("" = the root), sorted, parents first, without ``exclude``
        (names directly inside ``src``). Symlinks are stored, never followed."""
        if dest:
            self.add_parents(dest)
            if self.add_path(src, dest) is None:
                return
        self._walk(src, dest, frozenset(exclude))

    def _walk(self, src: Path, dest: str, exclude: frozenset[str]) -> None:
        try:
            names = sorted(os.listdir(src))
        except OSError as exc:
            self.skipped.append(f"{dest or '/'}: {exc.strerror}")
            return
        for name in names:
            if name in exclude:
                continue
            arcname = f"{dest}/{name}" if dest else name
            st = self.add_path(src / name, arcname)
            if st is not None and stat.S_ISDIR(st.st_mode):
                self._walk(src / name, arcname, frozenset())

    # -- done

    def finish(self) -> LayerFacts:
        """Close the tar and the gzip member, move the blob to its digest; return what was written."""
        self.tar.close()
        self._gzip.close()
        self._file.close()
        target = self._blobs_dir / self._blob.digest.split(":", 1)[1]
        os.replace(self._file.name, target)
        size = self._tar_sink.size
        return LayerFacts(
            digest=self._blob.digest,
            media_type=LAYER_GZIP,
            size=self._blob.size,
            uncompressed_size=size,
            diff_id=self._tar_sink.digest,
            gzip_isize=size & 0xFFFFFFFF,
            entries=tuple(self.entries),
            file_bytes=self.file_bytes,
        )

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._file.close()
        with contextlib.suppress(OSError):
            os.unlink(self._file.name)


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._view, self._pos = memoryview(data), 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._view) if n < 0 else self._pos + n
        chunk = bytes(self._view[self._pos : end])
        self._pos += len(chunk)
        return chunk


# ---------------------------------------------------------------- the layers


@dataclass(frozen=True)
class _Layer:
    facts: LayerFacts
    created_by: str
    comment: str
    seconds: float
    skipped: int


def _write_layer(blobs_dir: Path, title: str, created_by: str, fill: Any, comment: str = "") -> _Layer:
    start = time.monotonic()
    writer = LayerWriter(blobs_dir)
    try:
        fill(writer)
        facts = writer.finish()
    except BaseException:
        writer.abort()
        raise
    seconds = time.monotonic() - start
    if writer.skipped:
        _say(f"{title}: skipped {len(writer.skipped)} special/unreadable entries, e.g. {writer.skipped[:3]}")
    _say(
        f"{title}: {_mb(facts.uncompressed_size)} tar -> {_mb(facts.size)} gzip, "
        f"{len(facts.entries)} entries, {seconds:.1f} s"
    )
    return _Layer(facts, created_by, comment, seconds, len(writer.skipped))


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return sorted(found, reverse=True)


def _remove_rootfs(rootfs: Path) -> None:
    """rm -rf a debootstrap target, after unmounting anything a failed debootstrap left mounted in it."""
    for point in _mounts_under(rootfs):
        subprocess.run(["umount", point], check=False, timeout=60)
    if left := _mounts_under(rootfs):
        raise RuntimeError(f"not removing {rootfs}: still mounted: {left}")
    shutil.rmtree(rootfs, ignore_errors=True)


def _debootstrap(rootfs: Path, mirror: str, arch: str, log_path: Path) -> str | None:
    """Run debootstrap into ``rootfs``; return ``None`` on success or why it could not be done."""
    if os.geteuid() != 0:
        return "not running as root"
    binary = shutil.which("debootstrap")
    if binary is None and shutil.which("apt-get"):
        _say("debootstrap not found: apt-get install -y debootstrap")
        with open(log_path, "ab") as log:
            subprocess.run(
                ["apt-get", "install", "-y", "debootstrap"], stdout=log, stderr=log, check=False, timeout=600
            )
        binary = shutil.which("debootstrap")
    if binary is None:
        return "debootstrap is not installed and apt-get could not install it"
    command = [binary, f"--variant={VARIANT}", f"--arch={arch}", SUITE, str(rootfs), mirror]
    _say(f"running {' '.join(command)} (log: {log_path})")
    start = time.monotonic()
    with open(log_path, "ab") as log:
        try:
            result = subprocess.run(command, stdout=log, stderr=log, check=False, timeout=DEBOOTSTRAP_TIMEOUT)
        except subprocess.TimeoutExpired:
            return f"debootstrap timed out after {DEBOOTSTRAP_TIMEOUT} s"
    if result.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-8:])
        return f"debootstrap exited with {result.returncode}; log tail:\n{tail}"
    _say(f"debootstrap done in {time.monotonic() - start:.1f} s")
    return None


def _base_layer(workdir: Path, blobs_dir: Path, rec: dict[str, Any]) -> tuple[_Layer, str]:
    """Layer 1 and how it was made ("debootstrap" or "host-fallback")."""
    rootfs = workdir / "rootfs"
    why = "forced by OCIINSPECT_BENCH_BASE=host" if rec["base"] == "host" else None
    if why is None:
        why = _debootstrap(rootfs, rec["mirror"], rec["arch"], workdir / "debootstrap.log")
    if why is None:
        try:
            layer = _write_layer(
                blobs_dir,
                "layer 1 (debootstrap rootfs)",
                f"/bin/sh -c #(nop) ADD file:rootfs.tar in / # debootstrap --variant={VARIANT} {SUITE} / "
                f"{rec['mirror']}",
                lambda w: w.add_tree(rootfs, ""),
                comment=f"Debian {SUITE} {VARIANT} rootfs",
            )
        finally:
            _remove_rootfs(rootfs)
        return layer, "debootstrap"
    if rootfs.exists():
        _remove_rootfs(rootfs)
    _warn_loudly(
        f"debootstrap could not be used ({why}).\nLayer 1 is a tar of this host's "
        f"{', '.join(HOST_FALLBACK_DIRS)} instead of a Debian {SUITE} {VARIANT} rootfs."
    )

    def fill(writer: LayerWriter) -> None:
        for name, target in sorted(USRMERGE_LINKS.items()):
            writer.add_symlink(name, target)
        for directory in HOST_FALLBACK_DIRS:
            writer.add_tree(Path(directory), directory.lstrip("/"))

    created_by = "/bin/sh -c #(nop) ADD file:host-dirs.tar in / # FALLBACK: " + " ".join(HOST_FALLBACK_DIRS)
    return _write_layer(blobs_dir, "layer 1 (HOST FALLBACK)", created_by, fill), "host-fallback"


def _python_layer(blobs_dir: Path, rec: dict[str, Any]) -> _Layer:
    py = rec["python"]

    def fill(writer: LayerWriter) -> None:
        binary = Path(py["binary"])
        writer.add_parents(f"usr/local/bin/{binary.name}")
        writer.add_symlink("usr/local/bin/python3", f"python{PY_VERSION}")
        writer.add_path(binary, f"usr/local/bin/python{PY_VERSION}")
        if py["libpython"] and Path(py["libpython"]).is_file():
            writer.add_parents(f"usr/local/lib/{Path(py['libpython']).name}")
            writer.add_path(Path(py["libpython"]), f"usr/local/lib/{Path(py['libpython']).name}")
        writer.add_tree(Path(py["stdlib"]), PY_LIB, exclude=("site-packages", "test"))

    return _write_layer(
        blobs_dir,
        "layer 2 (python stdlib)",
        f"COPY /usr/local/ /usr/local/ # buildkit (python{PY_VERSION}, stdlib without test/)",
        fill,
    )


def _docs_layer(blobs_dir: Path, rec: dict[str, Any]) -> _Layer:
    return _write_layer(
        blobs_dir,
        "layer 3 (/usr/share/doc)",
        "RUN /bin/sh -c apt-get update && apt-get install -y --no-install-recommends $DOC_PACKAGES # buildkit",
        lambda w: w.add_tree(Path(rec["docs"]), "usr/share/doc"),
        comment="this host's /usr/share/doc",
    )


def _cleanup_layer(blobs_dir: Path, base: LayerFacts) -> _Layer:
    archives = "var/cache/apt/archives/"
    debs = sorted(
        e
        for e in base.entries
        if e.startswith(archives) and e.endswith(".deb") and "/" not in e[len(archives) :]
    )

    def fill(writer: LayerWriter) -> None:
        # the order a tar of the upper dir would have: sorted paths, parents first
        writer.add_file("etc/ociinspect-bench-release", b"ociinspect benchmark image\n")
        writer.add_whiteout(f"{PY_LIB}/ensurepip")
        writer.add_whiteout("usr/share/doc")
        for deb in debs:
            writer.add_whiteout(deb)
        writer.add_opaque("var/lib/apt/lists")
        writer.add_dir("var/lib/apt/lists/partial", 0o700)

    return _write_layer(
        blobs_dir,
        "layer 4 (clean-up, whiteouts)",
        "RUN /bin/sh -c rm -rf /usr/share/doc /var/lib/apt/lists/* /var/cache/apt/archives/*.deb "
        f"/{PY_LIB}/ensurepip && echo 'ociinspect benchmark image' > /etc/ociinspect-bench-release # buildkit",
        fill,
    )


def _app_layer(blobs_dir: Path, rec: dict[str, Any]) -> _Layer:
    def fill(writer: LayerWriter) -> None:
        writer.add_file("app/main.py", APP_MAIN.encode())
        for name in sorted(rec["app_packages"]):
            spec = importlib.util.find_spec(name)
            if spec is None or spec.origin is None:
                writer.skipped.append(f"{name}: not importable here")
                continue
            origin = Path(spec.origin)
            if spec.submodule_search_locations:  # a package: copy its directory
                writer.add_tree(origin.parent, f"{PY_LIB}/site-packages/{origin.parent.name}")
            else:
                writer.add_parents(f"{PY_LIB}/site-packages/{origin.name}")
                writer.add_path(origin, f"{PY_LIB}/site-packages/{origin.name}")

    return _write_layer(
        blobs_dir,
        "layer 5 (app)",
        f"COPY . /app # buildkit (plus pip install {' '.join(APP_PACKAGES)})",
        fill,
    )


# ---------------------------------------------------------------- the image


@dataclass(frozen=True)
class RealImage:
    """The built image as recorded at build time (``facts.json``); nothing here comes from ociinspect."""

    layout: Path
    tag: str
    key: str
    base: str  # "debootstrap" or "host-fallback"
    mirror: str
    manifest_digest: str
    manifest_size: int
    config_digest: str
    config_size: int
    layers: tuple[LayerFacts, ...]
    created_by: tuple[str, ...]
    build_seconds: float
    cached: bool = False

    @property
    def reference(self) -> str:
        return f"oci:{self.layout}:{self.tag}"

    @property
    def compressed_size(self) -> int:
        return sum(layer.size for layer in self.layers)

    @property
    def uncompressed_size(self) -> int:
        return sum(layer.uncompressed_size for layer in self.layers)


def _build(workdir: Path, rec: dict[str, Any], key: str) -> RealImage:
    start = time.monotonic()
    layout = workdir / "layout"
    blobs_dir = layout / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True)
    # Two threads: debootstrap (a subprocess) and zlib/sha256 (which release the GIL) overlap with the rest.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="realimage") as pool:
        base_future = pool.submit(_base_layer, workdir, blobs_dir, rec)
        others: list[Future[_Layer]] = [
            pool.submit(_python_layer, blobs_dir, rec),
            pool.submit(_docs_layer, blobs_dir, rec),
            pool.submit(_app_layer, blobs_dir, rec),
        ]
        base, base_kind = base_future.result()
        cleanup = _cleanup_layer(blobs_dir, base.facts)
        python, docs, app = (f.result() for f in others)
    layers = [base, python, docs, cleanup, app]

    history = [history_entry(layers[0].created_by, comment=layers[0].comment or None)]
    history.append(history_entry('/bin/sh -c #(nop)  CMD ["bash"]', empty=True))
    history += [history_entry(layer.created_by, comment=layer.comment or None) for layer in layers[1:4]]
    history.append(history_entry("ENV LANG=C.UTF-8 # buildkit", empty=True))
    history.append(history_entry("WORKDIR /app # buildkit", empty=True))
    history.append(history_entry(layers[4].created_by))
    history.append(history_entry('CMD ["python3", "/app/main.py"] # buildkit', empty=True))
    config_doc = {
        "architecture": rec["arch"],
        "os": "linux",
        "created": CREATED,
        "config": {
            "Env": [PATH_ENV, "LANG=C.UTF-8"],
            "Cmd": ["python3", "/app/main.py"],
            "WorkingDir": "/app",
            "Labels": {"org.opencontainers.image.title": "ociinspect benchmark image", "base": base_kind},
        },
        "rootfs": {"type": "layers", "diff_ids": [layer.facts.diff_id for layer in layers]},
        "history": history,
    }
    config = canonical_json(config_doc)
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [
                {"mediaType": layer.facts.media_type, "digest": layer.facts.digest, "size": layer.facts.size}
                for layer in layers
            ],
        }
    )
    for data in (config, manifest):
        (blobs_dir / digest_of(data).split(":", 1)[1]).write_bytes(data)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{**descriptor(OCI_MANIFEST, manifest), "annotations": {REF_NAME: TAG}}],
    }
    (layout / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    (layout / "index.json").write_bytes(canonical_json(index))
    return RealImage(
        layout=layout,
        tag=TAG,
        key=key,
        base=base_kind,
        mirror=rec["mirror"],
        manifest_digest=digest_of(manifest),
        manifest_size=len(manifest),
        config_digest=digest_of(config),
        config_size=len(config),
        layers=tuple(layer.facts for layer in layers),
        created_by=tuple(layer.created_by for layer in layers),
        build_seconds=round(time.monotonic() - start, 1),
    )


def _save(image: RealImage, path: Path) -> None:
    doc = asdict(image)
    doc["layout"] = image.layout.name  # relative: the directory is renamed into place after the build
    doc["layers"] = [asdict(layer) for layer in image.layers]
    path.write_text(json.dumps(doc, indent=1) + "\n")


def _load(directory: Path) -> RealImage:
    doc = json.loads((directory / "facts.json").read_text())
    layers = tuple(
        LayerFacts(**{**layer, "entries": tuple(layer["entries"]), "annotations": dict(layer["annotations"])})
        for layer in doc.pop("layers")
    )
    doc.update(
        layout=directory / doc["layout"],
        layers=layers,
        created_by=tuple(doc["created_by"]),
        cached=True,
    )
    return RealImage(**doc)


def load_real_image(*, rebuild: bool = False) -> RealImage:
    """The cached image for the current recipe, building it first if needed (see the module docstring)."""
    rec = recipe()
    key = hashlib.sha256(canonical_json(rec)).hexdigest()[:16]
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"real-{key}"
    with open(root / f"real-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder per key; others wait, then reuse
        if rebuild and final.exists():
            shutil.rmtree(final)
        if (final / "facts.json").is_file():
            image = _load(final)
        else:
            _say(f"building {final} (recipe key {key}, base {rec['base']}, mirror {rec['mirror']})")
            workdir = Path(tempfile.mkdtemp(prefix=f"real-{key}.building-", dir=root))
            try:
                built = _build(workdir, rec, key)
                _save(built, workdir / "facts.json")
                if final.exists():
                    shutil.rmtree(final)
                os.replace(workdir, final)
            except BaseException:
                if (workdir / "rootfs").exists():
                    _remove_rootfs(workdir / "rootfs")
                shutil.rmtree(workdir, ignore_errors=True)
                raise
            image = _load(final)
            image = replace(image, cached=False)
            _say(
                f"built in {image.build_seconds:.1f} s: {len(image.layers)} layers, "
                f"{_mb(image.uncompressed_size)} uncompressed, {_mb(image.compressed_size)} compressed"
            )
    if image.base != "debootstrap":
        _warn_loudly(f"the cached benchmark image's layer 1 is a {image.base} (not a debootstrap rootfs)")
    return image


@functools.cache
def _cached_image() -> RealImage:
    return load_real_image()


def build_real_image() -> Path:
    """The OCI layout directory of the benchmark image (tag :data:`TAG`), built on first use."""
    return _cached_image().layout


def layer_facts() -> tuple[LayerFacts, ...]:
    """The image's layers as written: digest, blob size, tar size, diff_id, gzip ISIZE, tar entries."""
    return _cached_image().layers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build (or reuse) the realistic benchmark OCI image.")
    parser.add_argument(
        "--rebuild", action="store_true", help="discard the cached image for this recipe first"
    )
    args = parser.parse_args(argv)
    start = time.monotonic()
    image = load_real_image(rebuild=args.rebuild)
    how = "loaded from cache" if image.cached else "built"
    print(f"{image.reference}  ({how} in {time.monotonic() - start:.1f} s; base: {image.base})")
    print(f"manifest {image.manifest_digest}  config {image.config_digest}")
    for i, (layer, created_by) in enumerate(zip(image.layers, image.created_by, strict=True)):
        print(
            f"{i}  {layer.digest[7:19]}  {layer.size:>11}  {layer.uncompressed_size:>11}  "
            f"{len(layer.entries):>6} entries  {created_by[:70]}"
        )
    print(f"total        {image.compressed_size:>11}  {image.uncompressed_size:>11}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
