"""Fuzz targets and hypothesis strategies for hostile input, shared by the short runs in the normal suite
(``tests/reliability/test_fuzz_*.py``) and the opt-in long run (``tests/bench/fuzz_long.py``).

The property, for every target: the code under test returns a valid result or raises a typed
:class:`~ociinspect.errors.OciInspectError` — never another exception, never a hang (:func:`deadline`), and
where the input is honest, never a wrong number (checked against an independent computation: ``gzip``,
``zstandard``, ``hashlib``).  Each ``*_case`` function runs one case and asserts the invariants; :class:`Tally`
counts cases and outcomes per target.

Targets: references (:func:`reference_case`), manifests and indexes — nesting, cycles, lies — through an
in-memory :class:`~ociinspect.sources.memory.MemorySource` (:func:`image_case`), configs (:func:`config_case`), docker-archive
``manifest.json`` and OCI layout ``index.json`` written to a tmp dir (:func:`archive_case`, :func:`layout_case`),
tar headers (:func:`tar_case`), gzip/zstd streams (:func:`compression_case`); hostile text — Unicode digits,
format and control characters — in number headers (:func:`header_case`), in names and tags
(:func:`hostile_references`), and in config values, file names and paths rendered by every output format
(:func:`render_case`).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import signal
import tarfile
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests
import zstandard
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from ociinspect.audit import Pacer
from ociinspect.content import compression, scan
from ociinspect.errors import LimitExceeded, OciInspectError
from ociinspect.image.loader import LoadOptions, load, load_all_platforms, parse_config
from ociinspect.model import digest as digests
from ociinspect.model import mediatypes
from ociinspect.model.image import Image, RawManifest
from ociinspect.model.reference import parse_reference
from ociinspect.policy.rules import is_root_user
from ociinspect.registry.transport import _retry_after, content_length
from ociinspect.sources.local import open_local
from ociinspect.sources.memory import MemorySource

#: a case that runs longer than this (seconds) is a hang
CASE_DEADLINE = 10.0
#: decompression cap used by the image targets (bytes per layer)
MAX_UNCOMPRESSED = 1 << 20


class Hang(BaseException):
    """A fuzz case ran past its deadline."""


@contextlib.contextmanager
def deadline(seconds: float = CASE_DEADLINE) -> Iterator[None]:
    """Raise :class:`Hang` inside the block if it runs longer than ``seconds`` (SIGALRM; main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise Hang(f"fuzz case still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclasses.dataclass
class Tally:
    """Cases run and outcomes (``ok`` or the OciInspectError class name) of one target."""

    name: str
    cases: int = 0
    seconds: float = 0.0
    outcomes: Counter[str] = dataclasses.field(default_factory=Counter)

    def run(self, case: Callable[[], object]) -> str:
        """Run one case under :func:`deadline`; typed errors are outcomes, anything else propagates."""
        start = time.perf_counter()
        self.cases += 1
        try:
            with deadline():
                case()
            outcome = "ok"
        except OciInspectError as exc:
            outcome = type(exc).__name__
        finally:
            self.seconds += time.perf_counter() - start
        self.outcomes[outcome] += 1
        return outcome

    def summary(self) -> str:
        top = ", ".join(f"{k} {v}" for k, v in self.outcomes.most_common())
        return f"{self.name}: {self.cases} cases in {self.seconds:.1f} s ({top})"


TALLIES: dict[str, Tally] = {}


def tally(name: str) -> Tally:
    return TALLIES.setdefault(name, Tally(name))


# ------------------------------------------------------------------------------------------ JSON values

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def deep_json(depth: int, opener: str = "[") -> bytes:
    """``[[[…]]]`` or ``{"a":{"a":…}}`` nested ``depth`` deep (recursion-limit bait)."""
    if opener == "[":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"{}" + b"}" * depth


hostile_json_bytes = st.one_of(
    st.binary(max_size=64),
    st.integers(min_value=900, max_value=200_000).map(deep_json),
    st.integers(min_value=900, max_value=200_000).map(lambda d: deep_json(d, "{")),
    st.sampled_from([b"", b" ", b"null", b"[]", b"{}", b'"x"', b"1e999", b"\xff\xfe{}", b'{"a":1,"a":2}']),
)


def to_bytes(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


# --------------------------------------------------------------------------------------------- references

_HOSTS = st.sampled_from(
    [
        "localhost",
        "localhost:5000",
        "127.0.0.1:5000",
        "[::1]:5000",
        "[::1",
        "docker.io",
        "index.docker.io",
        "registry-1.docker.io",
        "registry.example.com",
        "Registry.Example.COM:443",
        "a-b.c",
        "-bad.com",
        "x..y",
        "ghcr.io:99999",
        "host:port",
    ]
)
_COMPONENTS = st.from_regex(r"[a-z0-9]{1,4}(?:(?:[._]|__|-+)[a-z0-9]{1,4}){0,2}", fullmatch=True) | st.text(
    max_size=6
)
_TAGS = st.one_of(
    st.from_regex(r"[\w][\w.-]{0,10}", fullmatch=True),
    st.text(max_size=10),
    st.just("t" * 128),
    st.just("t" * 129),
)
_DIGESTS = st.one_of(
    st.sampled_from(
        ["sha256:" + "a" * 64, "sha256:" + "A" * 64, "sha512:" + "0" * 128, "sha256:abc", "md5:00", "sha256:"]
    ),
    st.text(max_size=70),
)
_PREFIXES = st.sampled_from(
    ["", "docker://", "docker:", "oci:", "oci-archive:", "docker-archive:", "http://", "dir:", "DOCKER://"]
)


@st.composite
def references(draw: st.DrawFn) -> str:
    """Strings shaped like image references, right and wrong, plus arbitrary text."""
    if rarely(draw, 4):
        return draw(st.text(max_size=80))
    prefix = draw(_PREFIXES)
    parts = []
    if draw(st.booleans()):
        parts.append(draw(_HOSTS))
    parts += draw(st.lists(_COMPONENTS, min_size=1, max_size=4))
    text = prefix + "/".join(parts)
    if draw(st.booleans()):
        text += ":" + draw(_TAGS)
    if draw(st.booleans()):
        text += "@" + draw(_DIGESTS)
    if prefix == "docker-archive:" and draw(st.booleans()):
        text += draw(st.sampled_from([":@0", ":@-1", ":@x", ":repo:tag", ":Repo", ":a:b:c", ":"]))
    if rarely(draw, 9):
        text = (
            draw(st.sampled_from([" ", "\t", "\n", "\x00"])) + text + draw(st.sampled_from(["", " ", "\n"]))
        )
    return text


def reference_case(text: str) -> None:
    """``parse_reference`` gives a Reference that prints to a string parsing back to the same value, or
    InvalidReference."""
    ref = parse_reference(text)
    printed = str(ref)
    if printed != printed.strip():
        return  # a path ending in whitespace ("docker-archive:x\r:"): the parser strips what surrounds a reference
    again = parse_reference(printed)
    assert again == ref, (text, printed, again)


# ------------------------------------------------------------------------------------------- blobs, tars


_NAMES = st.one_of(
    st.from_regex(r"[a-z]{1,8}(/[a-z]{1,8}){0,2}/?", fullmatch=True),
    st.sampled_from(
        [
            "./",
            ".",
            "/etc/passwd",
            "../escape",
            "a/../../escape",
            "a/./b//c",
            ".wh.gone",
            "dir/.wh..wh..opq",
            ".wh..wh.plnk",
            "x" * 150,
            "d/" * 60 + "f",
            "ünïcödé/名前",
            "nul\x00byte",
            "back\\slash",
        ]
    ),
    st.text(min_size=1, max_size=20),
)
_TYPES = st.sampled_from(
    [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE, tarfile.CHRTYPE]
)


@st.composite
def tar_archives(draw: st.DrawFn) -> bytes:
    """A well-formed tar (ustar, GNU or PAX) with odd but legal members: long names, links out of the root,
    whiteouts, unicode, PAX records, large uid/mtime."""
    buf = io.BytesIO()
    fmt = draw(st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]))
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape") as tf:
        for _ in range(draw(st.integers(0, 4))):
            info = tarfile.TarInfo(draw(_NAMES))
            info.type = draw(_TYPES)
            info.mode = draw(st.integers(0, 0o7777))
            info.uid = draw(st.sampled_from([0, 1000, 2**21, 2**40]))
            info.mtime = draw(st.sampled_from([0, 1_700_000_000, 2**33]))
            content = b""
            if info.type == tarfile.REGTYPE:
                content = draw(st.binary(max_size=700))
                info.size = len(content)
            if info.type in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = draw(_NAMES)
            if fmt == tarfile.PAX_FORMAT and draw(st.booleans()):
                info.pax_headers = {
                    draw(st.sampled_from(["comment", "path", "size", "x"])): draw(st.text(max_size=9))
                }
            try:
                tf.addfile(info, io.BytesIO(content) if content else None)
            except (ValueError, UnicodeError, tarfile.TarError):
                continue  # not representable in this format: skip the member
    return buf.getvalue()


_HEADER_FIELDS = [
    (0, 100),
    (100, 8),
    (108, 8),
    (116, 8),
    (124, 12),
    (136, 12),
    (148, 8),
    (156, 1),
    (157, 100),
]
_HEADER_FIELDS += [(257, 6), (263, 2), (265, 32), (297, 32), (329, 8), (337, 8), (345, 155)]
_FIELD_VALUES = st.one_of(
    st.binary(max_size=12),
    st.sampled_from(
        [
            b"77777777777\0",
            b"\x80" + b"\xff" * 11,
            b"\xff" * 12,
            b"-1\0",
            b"0000000\0",
            b"ustar\0",
            b"ustar  \0",
        ]
    ),
    st.sampled_from([b"L", b"K", b"x", b"g", b"S", b"7", b"V", b"M", b"\0", b"Z"]),
)


def _checksum(header: bytearray) -> None:
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)


@st.composite
def mutated_tars(draw: st.DrawFn) -> tuple[bytes, bool]:
    """``(data, mutated)``: a tar from :func:`tar_archives`, often with header fields overwritten (checksum
    usually fixed so that the header is parsed), truncated, extended or replaced by noise."""
    data = draw(tar_archives())
    how = draw(st.sampled_from(["none", "field", "field", "field", "truncate", "append", "noise"]))
    if how == "none" or not data:
        return data, False
    if how == "noise":
        return draw(st.binary(max_size=2048)), True
    if how == "truncate":
        return data[: draw(st.integers(0, len(data)))], True
    if how == "append":
        return data + draw(st.binary(min_size=1, max_size=1024)), True
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        block = draw(st.integers(0, max(0, len(buf) // 512 - 1))) * 512
        start, width = draw(st.sampled_from(_HEADER_FIELDS))
        value = draw(_FIELD_VALUES)[:width]
        buf[block + start : block + start + len(value)] = value
        if not rarely(draw, 4) and len(buf) >= block + 512:
            header = buf[block : block + 512]
            _checksum(header)
            buf[block : block + 512] = header
    return bytes(buf), True


@st.composite
def chunkings(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut into pieces at random points (empty pieces included)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    pieces, last = [], 0
    for cut in [*cuts, len(data)]:
        pieces.append(data[last:cut])
        last = cut
    return pieces


def tar_case(data: bytes, pieces: list[bytes], mutated: bool, hash_files: bool, max_entries: int) -> None:
    """``scan_tar_stream`` indexes the tar or raises a typed error; for an intact tar its stream digest and
    byte count are the real ones and there are no more entries than members."""
    entries, stream_digest, count, _warnings = scan.scan_tar_stream(
        iter(pieces), what="fuzz tar", hash_files=hash_files, max_entries=max_entries
    )
    assert all(isinstance(e, scan.Entry) and e.size >= 0 for e in entries)
    assert count == len(data) and stream_digest == digests.compute(data)
    if not mutated:
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            assert len(entries) <= len(tf.getmembers())


# ----------------------------------------------------------------------------------- gzip / zstd streams


def gzip_member(data: bytes, level: int = 6) -> bytes:
    return gzip.compress(data, compresslevel=level, mtime=0)


def zstd_frame(data: bytes, level: int = 3, content_size: bool = True) -> bytes:
    return zstandard.ZstdCompressor(level=level, write_content_size=content_size).compress(data)


_PAYLOADS = st.one_of(
    st.binary(max_size=3000),
    st.tuples(st.binary(min_size=1, max_size=4), st.integers(1, 20_000)).map(lambda t: t[0] * t[1]),
)


@st.composite
def compressed_streams(draw: st.DrawFn) -> tuple[bytes, bytes | None]:
    """``(blob, expected output or None when mutated)``: gzip members / zstd frames (1–3 concatenated),
    plain data, then often damaged: bytes flipped, truncated, junk appended, magic + noise."""
    kind = draw(st.sampled_from(["gzip", "zstd", "none"]))
    payloads = draw(st.lists(_PAYLOADS, min_size=1, max_size=3))
    if kind == "gzip":
        blob = b"".join(gzip_member(p, draw(st.integers(0, 9))) for p in payloads)
        if rarely(draw, 5):
            blob += b"\0" * draw(st.integers(1, 1024))  # padding after the last member is tolerated
    elif kind == "zstd":
        blob = b"".join(zstd_frame(p, draw(st.integers(1, 5)), draw(st.booleans())) for p in payloads)
    else:
        payloads = payloads[:1]
        blob = payloads[0]
        if blob.startswith((compression.GZIP_MAGIC, compression.ZSTD_MAGIC)):
            return blob, None  # "plain" data that sniffs as compressed: whatever comes out, no expectation
    expected: bytes | None = b"".join(payloads)
    how = draw(st.sampled_from(["none", "none", "flip", "truncate", "append", "magic"]))
    if how == "flip" and blob:
        buf = bytearray(blob)
        for _ in range(draw(st.integers(1, 4))):
            buf[draw(st.integers(0, len(buf) - 1))] ^= draw(st.integers(1, 255))
        blob, expected = bytes(buf), None
    elif how == "truncate":
        blob, expected = blob[: draw(st.integers(0, max(0, len(blob) - 1)))], None
    elif how == "append":
        blob, expected = blob + draw(st.binary(min_size=1, max_size=64)), None
    elif how == "magic":
        magic = compression.GZIP_MAGIC if kind == "gzip" else compression.ZSTD_MAGIC
        blob, expected = magic + draw(st.binary(max_size=200)), None
    return blob, expected


def compression_case(pieces: list[bytes], expected: bytes | None, cap: int | None) -> None:
    """``decompress`` yields the original bytes of an intact stream (or LimitExceeded past ``cap``); damaged
    streams give output or a typed error, never another exception."""
    try:
        out = b"".join(compression.decompress(iter(pieces), what="fuzz blob", max_output=cap))
    except LimitExceeded:
        if expected is not None:
            assert cap is not None and len(expected) > cap
        raise
    if cap is not None:
        assert len(out) <= cap
    if expected is not None:
        assert out == expected


# ---------------------------------------------------------------------------------------------- configs

_CONFIG_KEYS = ["os", "architecture", "variant", "created", "author", "config", "rootfs", "history"]
_INNER_KEYS = ["User", "Entrypoint", "Cmd", "Env", "WorkingDir", "Labels", "ExposedPorts", "StopSignal"]


@st.composite
def config_documents(draw: st.DrawFn) -> bytes:
    """Image configs: right-shaped with wrong-typed values, arbitrary JSON, or hostile bytes."""
    shape = draw(st.sampled_from(["config"] * 4 + ["hostile", "json"]))
    if shape == "hostile":
        return draw(hostile_json_bytes)
    if shape == "json":
        return to_bytes(draw(json_values))
    doc: dict[str, Any] = {k: draw(json_values) for k in draw(st.sets(st.sampled_from(_CONFIG_KEYS)))}
    if draw(st.booleans()):
        doc["config"] = {k: draw(json_values) for k in draw(st.sets(st.sampled_from(_INNER_KEYS)))}
    if draw(st.booleans()):
        doc["rootfs"] = {
            "type": "layers",
            "diff_ids": draw(st.lists(st.one_of(st.text(max_size=8), json_values), max_size=3)),
        }
    if draw(st.booleans()):
        entry = st.dictionaries(
            st.sampled_from(["created", "created_by", "author", "comment", "empty_layer"]),
            json_values,
            max_size=5,
        )
        doc["history"] = draw(st.lists(entry | json_values, max_size=4))
    return to_bytes(doc)


def config_case(data: bytes) -> None:
    config = parse_config(data, "fuzz config")
    assert all(isinstance(d, str) for d in config.diff_ids)
    assert all(isinstance(e, str) for e in config.env)
    assert all(isinstance(v, str) for v in config.labels.values())


# ------------------------------------------------------------------------------- images via a fake source


def true_size(blob: bytes) -> int | None:
    """Uncompressed size of a layer blob, computed independently of ociinspect (None when not decodable)."""
    try:
        if blob.startswith(compression.GZIP_MAGIC):
            return len(gzip.decompress(blob))
        if blob.startswith(compression.ZSTD_MAGIC):
            reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob), read_across_frames=True)
            return len(reader.read())
    except (OSError, EOFError, zstandard.ZstdError):
        return None
    return len(blob)


_LAYER_TYPES = [
    mediatypes.OCI_LAYER,
    mediatypes.OCI_LAYER_GZIP,
    mediatypes.OCI_LAYER_ZSTD,
    mediatypes.DOCKER_LAYER_GZIP,
    mediatypes.DOCKER_FOREIGN_LAYER,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.in-toto+json",
    "text/plain",
    "",
]
_MANIFEST_TYPES = [mediatypes.OCI_MANIFEST, mediatypes.DOCKER_MANIFEST, mediatypes.OCI_INDEX]
_MANIFEST_TYPES += [mediatypes.DOCKER_MANIFEST_LIST, mediatypes.DOCKER_SCHEMA1, "application/json", "", "x/y"]
_PLATFORMS = st.one_of(
    st.sampled_from(
        [
            {"os": "linux", "architecture": "amd64"},
            {"os": "linux", "architecture": "arm64", "variant": "v8"},
            {"os": "unknown", "architecture": "unknown"},
            {"os": "windows", "architecture": "amd64", "os.version": "10.0"},
        ]
    ),
    json_values,
)
_ANNOTATIONS = st.one_of(
    st.just({}),
    st.just({"containerd.io/snapshot/stargz/toc.digest": "sha256:" + "0" * 64}),
    st.just({"vnd.docker.reference.type": "attestation-manifest"}),
    st.dictionaries(st.text(max_size=6), json_values, max_size=2),
)


def rarely(draw: st.DrawFn, odds: int) -> bool:
    """True about once in ``odds + 1`` draws (hypothesis favours the first choices, so False comes first)."""
    return bool(draw(st.sampled_from([False] * odds + [True])))


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@st.composite
def _layer_blobs(draw: st.DrawFn) -> tuple[bytes, bytes | None, bool]:
    """``(blob, uncompressed tar or None, single member/frame)``."""
    tar = draw(tar_archives())
    kind = draw(st.sampled_from(["gzip", "gzip", "zstd", "plain", "multi", "junk", "bomb"]))
    if kind == "gzip":
        return gzip_member(tar), tar, True
    if kind == "zstd":
        return zstd_frame(tar, content_size=draw(st.booleans())), tar, True
    if kind == "plain":
        return tar, tar, True
    if kind == "multi":
        cut = draw(st.integers(0, len(tar)))
        return gzip_member(tar[:cut]) + gzip_member(tar[cut:]), tar, False
    if kind == "bomb":  # decompresses past MAX_UNCOMPRESSED
        return zstd_frame(b"\0" * (MAX_UNCOMPRESSED + 512 * draw(st.integers(1, 64)))), None, True
    return draw(st.binary(max_size=300)), None, False


def _mutate(draw: st.DrawFn, doc: dict[str, Any]) -> dict[str, Any]:
    """Often return ``doc`` unchanged; otherwise replace, drop or add one field (one level deep)."""
    how = draw(st.sampled_from(["keep"] * 4 + ["replace", "drop", "add"]))
    if how == "keep" or not doc:
        return doc
    doc = dict(doc)
    key = draw(st.sampled_from(sorted(doc)))
    if how == "replace":
        doc[key] = draw(json_values)
    elif how == "drop":
        del doc[key]
    else:
        doc[draw(st.text(max_size=8))] = draw(json_values)
    return doc


@dataclasses.dataclass
class ImageCase:
    """A fake source plus what is known to be true about its blobs."""

    source: MemorySource
    #: blob digest -> (uncompressed size, cheap figure trustworthy, real blob size)
    truth: dict[str, tuple[int | None, bool, int]]
    mode: str
    all_platforms: bool

    def __repr__(self) -> str:
        root = self.source.blobs[self.source.tags["latest"]]
        return f"ImageCase({self.source!r}, root={root[:300]!r}, mode={self.mode}, all_platforms={self.all_platforms})"


@st.composite
def image_cases(draw: st.DrawFn) -> ImageCase:
    """An image (manifest, config, 0–3 layers of every compression, some hostile) below 0–6 levels of
    indexes, with descriptors sometimes wrong (size, digest, media type, platform), sometimes a lying source
    whose top index lists itself (a cycle)."""
    blobs: dict[str, bytes] = {}
    truth: dict[str, tuple[int | None, bool, int]] = {}
    layer_descs, diff_ids = [], []
    for _ in range(draw(st.integers(0, 3))):
        blob, tar, single = draw(_layer_blobs())
        digest = _sha(blob)
        if not rarely(draw, 9):
            blobs[digest] = blob  # else: missing blob
        truth[digest] = (true_size(blob), single, len(blob))
        size = len(blob) if not rarely(draw, 7) else draw(st.integers(0, 2**40))
        desc = {"mediaType": draw(st.sampled_from(_LAYER_TYPES)), "digest": digest, "size": size}
        if rarely(draw, 4):
            desc["annotations"] = draw(_ANNOTATIONS)
        layer_descs.append(_mutate(draw, desc))
        diff_ids.append(_sha(tar) if tar is not None and not rarely(draw, 5) else draw(_DIGESTS))
    config_doc: dict[str, Any] = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "fuzz"}] * draw(st.integers(0, 4)),
    }
    config = to_bytes(_mutate(draw, config_doc)) if not rarely(draw, 6) else draw(config_documents())
    blobs[_sha(config)] = config
    config_desc = _mutate(
        draw,
        {
            "mediaType": draw(
                st.sampled_from([mediatypes.OCI_CONFIG, mediatypes.DOCKER_CONFIG, mediatypes.OCI_EMPTY])
            ),
            "digest": _sha(config),
            "size": len(config),
        },
    )
    manifest_doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": draw(st.sampled_from(_MANIFEST_TYPES[:2])),
        "config": config_desc,
        "layers": layer_descs,
    }
    if rarely(draw, 5):
        manifest_doc["artifactType"] = draw(st.sampled_from(["application/vnd.example+json", 7]))
    if rarely(draw, 5):
        manifest_doc["subject"] = draw(st.one_of(json_values, st.just({"digest": _sha(b"x"), "size": 1})))
    data = to_bytes(_mutate(draw, manifest_doc)) if not rarely(draw, 8) else draw(hostile_json_bytes)
    manifests: dict[str, RawManifest] = {}
    raw = RawManifest(
        data, draw(st.sampled_from([manifest_doc["mediaType"]] * 4 + _MANIFEST_TYPES)), _sha(data)
    )
    manifests[raw.digest] = raw
    for _ in range(draw(st.integers(0, 6)) if draw(st.booleans()) else 0):
        entry = {"mediaType": raw.media_type, "digest": raw.digest, "size": len(raw.data)}
        entries = [_mutate(draw, entry | {"platform": draw(_PLATFORMS)})]
        entries += draw(
            st.lists(st.fixed_dictionaries({"digest": _DIGESTS, "size": st.integers(-1, 9)}), max_size=2)
        )
        if draw(st.booleans()):
            entries.reverse()
        index = to_bytes({"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": entries})
        raw = RawManifest(
            index, draw(st.sampled_from([mediatypes.OCI_INDEX] * 4 + _MANIFEST_TYPES)), _sha(index)
        )
        manifests[raw.digest] = raw
    honest = not rarely(draw, 5)
    if not honest and draw(st.booleans()):  # a cycle: an index that lists its own (claimed) digest
        claimed, size = _sha(b"cycle"), 0
        for _ in range(3):  # the entry's size is the length of the document that contains it
            entry = {"mediaType": mediatypes.OCI_INDEX, "digest": claimed, "size": size, "platform": {}}
            index = to_bytes({"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": [entry]})
            size = len(index)
        raw = RawManifest(index, mediatypes.OCI_INDEX, claimed)
        manifests[claimed] = raw
    source = memory_source(
        raw, manifests, blobs, honest=honest, chunk=draw(st.sampled_from([1, 7, 512, 65536]))
    )
    return ImageCase(source, truth, draw(st.sampled_from(["cheap", "exact", "none"])), draw(st.booleans()))


def memory_source(
    root: RawManifest,
    manifests: dict[str, RawManifest],
    blobs: dict[str, bytes],
    *,
    honest: bool = True,
    chunk: int = 4096,
) -> MemorySource:
    """A :class:`MemorySource` serving ``root`` (tag ``latest``), ``manifests`` with their media types, and
    ``blobs``.  Honest by default (verifies what it serves, like the real sources); ``honest=False`` serves
    whatever is stored under a digest — a lying registry, the only way to build an index that lists itself."""
    content = dict(blobs)
    media_types = {}
    for raw in (*manifests.values(), root):
        content[raw.digest] = raw.data
        media_types[raw.digest] = raw.media_type
    return MemorySource(
        content,
        tags={"latest": root.digest},
        media_types=media_types,
        reference="oci:/fuzz:latest",
        verify=honest,
        chunk=chunk,
    )


def image_case(case: ImageCase) -> None:
    """The loader builds images or raises a typed error; from an honest source, every streamed or exact
    figure is the true one, totals add up, and index nesting never exceeds the cap."""
    options = LoadOptions(sizes=case.mode, workers=1, max_uncompressed=MAX_UNCOMPRESSED, max_index_depth=4)  # type: ignore[arg-type]
    images = load_all_platforms(case.source, options) if case.all_platforms else [load(case.source, options)]
    for image in images:
        _check_image(image, case)


def _check_image(image: Image, case: ImageCase) -> None:
    assert digests.is_digest(image.digest)
    assert image.compressed_size == sum(layer.size for layer in image.layers)
    for layer in image.layers:
        value, source = layer.uncompressed.value, layer.uncompressed.source
        assert source in ("exact", "trailer", "header", "streamed", "unknown", "toc"), source
        assert value is None or value >= 0
        if not case.source.verify or layer.digest not in case.truth:
            continue
        true_value, trustworthy, blob_size = case.truth[layer.digest]
        if source == "streamed":  # the blob was verified (digest and size) on the way
            assert value == true_value, (layer, true_value)
        # a trailer/header is read where the descriptor says the blob ends: a descriptor that lies about the
        # size (or a crafted trailer) gives an unverified figure — documented in docs/security.md
        if (
            source in ("trailer", "header")
            and trustworthy
            and layer.size == blob_size
            and true_value is not None
        ):
            assert value == true_value, (layer, true_value)


# ----------------------------------------------------------------------- archives and layouts on disk


_workdirs: list[Path] = []


def workdir() -> Path:
    """A scratch directory for the on-disk targets: ``$OCIINSPECT_FUZZ_WORKDIR`` (owned by the caller), or one
    made on first use and removed at exit or by :func:`cleanup_workdir`."""
    given = os.environ.get("OCIINSPECT_FUZZ_WORKDIR")
    if given:
        return Path(given)
    if not _workdirs:
        _workdirs.append(Path(tempfile.mkdtemp(prefix="ociinspect-fuzz-")))
        atexit.register(cleanup_workdir)
    return _workdirs[0]


def cleanup_workdir() -> None:
    """Remove the scratch directory made by :func:`workdir` (process pools do not run ``atexit``)."""
    while _workdirs:
        shutil.rmtree(_workdirs.pop(), ignore_errors=True)


@st.composite
def docker_archives(draw: st.DrawFn) -> tuple[dict[str, bytes], str]:
    """``(members, reference spec)``: a docker-save tar whose ``manifest.json`` is hostile — wrong types,
    missing or escaping paths, odd RepoTags/LayerSources — next to real config and layer members. Weighted
    towards well-formed entries, so that selection, config and layer code is reached too."""
    tar = draw(tar_archives())
    layer = draw(st.sampled_from([tar, gzip_member(tar), zstd_frame(tar), b"", b"junk"]))
    config = to_bytes(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [_sha(tar)]}}
    )
    if rarely(draw, 5):
        config = draw(config_documents())
    members = {"cfg.json": config, "l1/layer.tar": layer, f"blobs/sha256/{_sha(layer)[7:]}": layer}
    layer_paths = ["l1/layer.tar", f"blobs/sha256/{_sha(layer)[7:]}"]
    paths = st.sampled_from([*layer_paths * 3, "cfg.json", "missing", "../x", "/etc/passwd", ""])
    entry: dict[str, Any] = {
        "Config": draw(st.sampled_from(["cfg.json"] * 4 + ["missing", "../cfg.json", "l1/layer.tar"])),
        "RepoTags": draw(
            st.sampled_from([["fixtures/x:latest"]] * 3 + [[]])
            | st.lists(st.text(max_size=12), max_size=2)
            | json_values
        ),
        "Layers": draw(st.lists(paths, min_size=1, max_size=3) | st.lists(paths, max_size=3) | json_values),
    }
    if rarely(draw, 4):
        entry["LayerSources"] = draw(json_values)
    shape = draw(st.sampled_from(["entries"] * 8 + ["hostile", "json"]))
    if shape == "hostile":
        manifest = draw(hostile_json_bytes)
    elif shape == "json":
        manifest = to_bytes(draw(json_values))
    else:
        manifest = to_bytes([_mutate(draw, entry) for _ in range(draw(st.sampled_from([1, 1, 1, 2])))])
    members["manifest.json"] = manifest
    if rarely(draw, 9):
        members["repositories"] = b"{}"
    spec = draw(st.sampled_from(["", "", ":fixtures/x:latest", ":@0", ":@1", ":other:tag"]))
    return members, spec


def _write_tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def archive_case(members: dict[str, bytes], spec: str, mode: str) -> None:
    """A docker-archive opens and loads, or fails with a typed error."""
    path = workdir() / "fuzz.docker.tar"
    _write_tar(path, members)
    source = open_local(parse_reference(f"docker-archive:{path}{spec}"))
    try:
        image = load(source, LoadOptions(sizes=mode, workers=1, max_uncompressed=MAX_UNCOMPRESSED))  # type: ignore[arg-type]
        assert image.compressed_size == sum(layer.size for layer in image.layers)
    finally:
        source.close()


@st.composite
def layouts(draw: st.DrawFn) -> tuple[dict[str, bytes], str]:
    """``(files, reference suffix)``: an OCI layout whose ``index.json`` is hostile, next to real blobs.
    Weighted towards well-formed entries, so that manifest and config code is reached too."""
    config = to_bytes({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
    manifest = to_bytes(
        {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_MANIFEST,
            "config": {"mediaType": mediatypes.OCI_CONFIG, "digest": _sha(config), "size": len(config)},
            "layers": [],
        }
    )
    files = {f"blobs/sha256/{_sha(b)[7:]}": b for b in (config, manifest)}
    if rarely(draw, 5):
        deep = draw(hostile_json_bytes)
        files[f"blobs/sha256/{_sha(deep)[7:]}"] = deep
        manifest = deep
    good = _sha(manifest)
    entry: dict[str, Any] = {
        "mediaType": draw(st.sampled_from([mediatypes.OCI_MANIFEST] * 3 + [None, 5, "x"])),
        "digest": draw(st.sampled_from([good] * 5 + [_sha(b"missing"), "sha256:../../etc"]) | _DIGESTS),
        "size": draw(st.sampled_from([len(manifest)] * 3 + [0, -1, "1"])),
        "annotations": draw(
            st.sampled_from([{"org.opencontainers.image.ref.name": "latest"}] * 3 + [{}, None, [1]])
            | json_values
        ),
    }
    if draw(st.booleans()):
        entry["platform"] = draw(_PLATFORMS)
    shape = draw(st.sampled_from(["entries"] * 8 + ["hostile", "json"]))
    if shape == "hostile":
        index = draw(hostile_json_bytes)
    elif shape == "json":
        index = to_bytes(draw(json_values))
    else:
        count = draw(st.sampled_from([1, 1, 1, 2, 0]))
        index = to_bytes({"schemaVersion": 2, "manifests": [_mutate(draw, entry) for _ in range(count)]})
    files["index.json"] = index
    files["oci-layout"] = b'{"imageLayoutVersion": "1.0.0"}'
    suffix = draw(st.sampled_from(["", "", ":latest", ":other", "@" + good]))
    return files, suffix


def layout_case(files: dict[str, bytes], suffix: str) -> None:
    """An OCI layout directory loads, or fails with a typed error."""
    root = Path(tempfile.mkdtemp(dir=workdir()))
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    source = open_local(parse_reference(f"oci:{root}{suffix}"))
    try:
        load(source, LoadOptions(workers=1, max_uncompressed=MAX_UNCOMPRESSED))
    finally:
        source.close()
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------------- settings and cases


def short_settings(max_examples: int) -> settings:
    """Hypothesis settings for the normal suite: deterministic, no example database, our own deadline."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


@st.composite
def tar_inputs(draw: st.DrawFn) -> tuple[bytes, list[bytes], bool, bool, int]:
    data, mutated = draw(mutated_tars())
    return data, draw(chunkings(data)), mutated, draw(st.booleans()), draw(st.sampled_from([1, 3, 1000]))


@st.composite
def compression_inputs(draw: st.DrawFn) -> tuple[list[bytes], bytes | None, int | None]:
    blob, expected = draw(compressed_streams())
    return draw(chunkings(blob)), expected, draw(st.sampled_from([None, None, 100, 4096, 50_000]))


def run_tar(args: tuple[bytes, list[bytes], bool, bool, int]) -> str:
    return tally("tar headers").run(lambda: tar_case(*args))


def run_compression(args: tuple[list[bytes], bytes | None, int | None]) -> str:
    return tally("gzip/zstd").run(lambda: compression_case(*args))


# ------------------------------------------------- hostile text: digits, format and control characters

#: characters that look like digits or are invisible, plus every character that has a meaning in our outputs
HOSTILE_CHARS = (
    "²³¹١٢٣٠۳१२０１９𝟙𝟘"  # Unicode digits: str.isdigit() is True, int() accepts some
    "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029\ufeff\u00ad"
    "\x00\x01\x07\x08\t\n\r\x1b\x7f\x85\x9b"  # C0, DEL, C1 (NEL, CSI)
    "|<>\\`*_[]&=+-@;, "  # Markdown, HTML, CSV and header syntax
)
hostile_texts = st.text(
    alphabet=st.sampled_from(HOSTILE_CHARS) | st.sampled_from("0123456789") | st.characters(codec="utf-8"),
    max_size=24,
)
# raw control or invisible format characters; newline and tab are layout in text outputs, checked separately
RAW_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff]"
)


def header_case(value: str) -> None:
    """Number headers (Content-Length, Retry-After, RateLimit-*, Content-Range) read ASCII digits or nothing."""
    response = requests.Response()
    response.status_code = 200
    response.headers.update(
        {
            "Content-Length": value,
            "Retry-After": value,
            "ratelimit-remaining": value,
            "ratelimit-limit": value,
        }
    )
    ascii_number = value.strip(" \t\r\n")
    plain = ascii_number.isascii() and ascii_number.isdigit() and len(ascii_number) <= 20
    length = content_length(response)
    assert length == (int(ascii_number) if plain else None), (value, length)
    delay = _retry_after(response)
    assert delay is None or (
        delay >= 0 and (plain or not any(c.isdigit() and not c.isascii() for c in value))
    )
    pacer = Pacer(0, concurrency=1, reserve=5, max_pause=30)
    pacer.observe("GET", "u", response.status_code, response.headers)
    assert pacer.remaining is None or (isinstance(pacer.remaining, int) and value.lstrip(" \t")[:1].isascii())
    assert is_root_user(value) in (True, False)


@st.composite
def hostile_headers(draw: st.DrawFn) -> str:
    """Header values: ASCII numbers with hostile characters around or inside them, or hostile text."""
    number = draw(st.sampled_from(["", "0", "12", "300", "9" * 21]))
    text = draw(hostile_texts)
    return draw(st.sampled_from([number + text, text + number, text, number, number[:1] + text + number[1:]]))


@st.composite
def hostile_references(draw: st.DrawFn) -> str:
    """References whose names and tags carry hostile characters (a typed InvalidReference or a value)."""
    name = draw(st.from_regex(r"[a-z]{1,6}", fullmatch=True))
    inject = draw(hostile_texts)
    where = draw(st.sampled_from(["name", "tag", "host", "archive"]))
    if where == "name":
        return f"docker://r.example/{name}{inject}:v1"
    if where == "tag":
        return f"docker://r.example/{name}:v{inject}"
    if where == "host":
        return f"docker://r{inject}.example/{name}"
    return f"docker-archive:/tmp/{name}.tar:@{inject}"


@dataclasses.dataclass
class HostileImage:
    """An image whose config values, file names and layout directory name are hostile text."""

    user: str
    env: list[str]
    labels: dict[str, str]
    history: list[str]
    files: list[str]
    directory: str


_safe_names = hostile_texts.map(lambda s: s.replace("\x00", "").replace("/", "_").strip(" ") or "f")


@st.composite
def hostile_images(draw: st.DrawFn) -> HostileImage:
    return HostileImage(
        user=draw(hostile_texts),
        env=[f"K={draw(hostile_texts)}" for _ in range(draw(st.integers(0, 2)))],
        labels=draw(st.dictionaries(hostile_texts, hostile_texts, max_size=3)),
        history=draw(st.lists(hostile_texts, min_size=1, max_size=2)),
        files=draw(st.lists(_safe_names, min_size=1, max_size=3, unique=True)),
        directory=draw(_safe_names).replace(":", "_").replace("@", "_")[:40] or "d",
    )


def _write_hostile_layout(case: HostileImage) -> str:
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for n, name in enumerate(case.files):
            info = tarfile.TarInfo(f"app/{name}")
            info.size, info.mtime = n + 1, 1_700_000_000
            tar.addfile(info, io.BytesIO(b"x" * (n + 1)))
    raw = layer.getvalue()
    blob = gzip.compress(raw, mtime=0)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"User": case.user, "Env": case.env, "Labels": case.labels},
        "rootfs": {"type": "layers", "diff_ids": [_sha(raw)]},
        "history": [{"created_by": h} for h in case.history],
    }
    root = workdir() / "hostile" / hashlib.sha256(repr(case).encode()).hexdigest()[:16] / case.directory
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> dict[str, Any]:
        (blobs / _sha(data)[7:]).write_bytes(data)
        return {"digest": _sha(data), "size": len(data)}

    manifest = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": {"mediaType": mediatypes.OCI_CONFIG, **put(json.dumps(config).encode())},
        "layers": [{"mediaType": mediatypes.OCI_LAYER_GZIP, **put(blob)}],
    }
    top = {
        "mediaType": mediatypes.OCI_MANIFEST,
        **put(json.dumps(manifest).encode()),
        "annotations": {"org.opencontainers.image.ref.name": "v1"},
    }
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))
    return f"oci:{root}:v1"


def _pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)(?:\\\\)*\|", line))


def assert_markdown_structure(out: str) -> None:
    """Each Markdown table row has as many unescaped pipes as its delimiter row; no raw tag opener from data."""
    lines = out.splitlines()
    for n, line in enumerate(lines):
        if re.fullmatch(r"\|[-|: ]+\|", line.strip()):
            want = _pipes(line)
            for row in lines[n + 1 :]:
                if not row.startswith("|"):
                    break
                assert _pipes(row) == want, (line, row)
    assert "<" not in re.sub(r"(`+).*?\1", "", out).replace("<details>", "").replace(
        "</details>", ""
    ).replace("<summary>", "").replace("</summary>", ""), out


def render_case(case: HostileImage) -> None:
    """inspect, waste and files (table, Markdown), compare (HTML) and check (Markdown) on a hostile image: a
    typed outcome (never exit 70), no raw control character in any output, Markdown tables keep their shape."""
    from reliability.helpers import run_cli

    ref = _write_hostile_layout(case)
    runs = [
        (run_cli("inspect", "--no-os", ref), "table"),
        (run_cli("inspect", "--no-os", ref, "-f", "markdown"), "markdown"),
        (run_cli("waste", ref, "-f", "markdown"), "markdown"),
        (run_cli("files", ref, "-f", "markdown"), "markdown"),
        (run_cli("compare", ref, ref, "-f", "html"), "html"),
        (
            run_cli(
                "check", "--no-policy", "--non-root-user", "--required-label", "x", ref, "-f", "markdown"
            ),
            "md",
        ),
    ]
    for run, fmt in runs:
        assert run.code in (0, 1, 2, 3, 4), run
        assert not RAW_CONTROL.search(run.out) and not RAW_CONTROL.search(run.err), (fmt, run)
        if fmt in ("markdown", "md") and run.code in (0, 1, 4):
            assert_markdown_structure(run.out)


def run_headers(value: str) -> str:
    return tally("hostile headers").run(lambda: header_case(value))


def run_render(case: HostileImage) -> str:
    return tally("hostile renders").run(lambda: render_case(case))
