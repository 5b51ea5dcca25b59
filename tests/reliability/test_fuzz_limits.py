"""Bounded memory and bounded work under hostile input: the caps behind the fuzz property, measured.

Each test builds the worst case for one cap — a decompression bomb, an oversized manifest or index.json, indexes
nested past the depth cap, a tar header that asks for a gigabyte, more tar entries than allowed — and checks
that ociinspect stops with the typed error *and* that the Python heap did not grow past a small bound
(``tracemalloc`` peak), so the cap is enforced before the bytes are held, not after.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard
from harness.faultproxy import Respond

from ociinspect import errors
from ociinspect.content import compression, scan
from ociinspect.image.loader import LoadOptions
from ociinspect.model import mediatypes
from ociinspect.session import Session
from reliability.fuzz_targets import _sha
from reliability.helpers import run_cli, write_layout

MiB = 1 << 20


def peak_of(work: Callable[[], object]) -> tuple[BaseException | None, float]:
    """(the exception ``work`` raised or None, peak traced heap in MiB while it ran)."""
    tracemalloc.start()
    raised: BaseException | None = None
    try:
        work()
    except Exception as exc:
        raised = exc
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return raised, peak / MiB


def _drain(pieces: Iterator[bytes]) -> None:
    for _ in pieces:  # keep nothing: only what the code under test holds is measured
        pass


def _chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """64 MiB of zeros as one gzip member (~64 KiB)."""
    co = zlib.compressobj(1, zlib.DEFLATED, 31)
    zeros = b"\0" * MiB
    return b"".join([*(co.compress(zeros) for _ in range(64)), co.flush()])


@pytest.fixture(scope="module")
def zstd_bomb() -> bytes:
    """1 GiB of zeros as one zstd frame without a content size (~32 KiB)."""
    out = io.BytesIO()
    with zstandard.ZstdCompressor(level=1, write_content_size=False).stream_writer(out, closefd=False) as w:
        zeros = b"\0" * MiB
        for _ in range(1024):
            w.write(zeros)
    return out.getvalue()


def test_gzip_bomb_stops_at_the_cap_in_little_memory(gzip_bomb: bytes) -> None:
    """Guards: inflating stops just past `max_output` (LimitExceeded) holding about one 1 MiB output chunk."""
    start = time.perf_counter()
    raised, peak = peak_of(
        lambda: _drain(compression.decompress(_chunks(gzip_bomb), what="bomb", max_output=8 * MiB))
    )
    assert isinstance(raised, errors.LimitExceeded), raised
    assert peak < 8, f"{peak:.1f} MiB"
    assert time.perf_counter() - start < 2


def test_zstd_bomb_stops_at_the_cap_with_memory_bounded_by_one_feed(zstd_bomb: bytes) -> None:
    """Guards: a 1 GiB zstd bomb stops at the cap. Memory is bounded by one decompress call — 2 KiB of input
    can be 512 RLE blocks, 64 MiB of output (ociinspect.content.compression._ZSTD_FEED) — whatever the cap: the bound
    is 64 MiB per stream, not the cap (docs/security.md)."""
    raised, peak = peak_of(
        lambda: _drain(compression.decompress(_chunks(zstd_bomb), what="bomb", max_output=8 * MiB))
    )
    assert isinstance(raised, errors.LimitExceeded), raised
    assert peak < 80, f"{peak:.1f} MiB"


def test_bomb_layer_with_exact_respects_max_uncompressed(tmp_path: Path, zstd_bomb: bytes) -> None:
    """Guards: `--exact` through the loader (digest checked, diff_id hashing) honours `max_uncompressed`."""
    layout = write_layout(tmp_path, layers=[zstd_bomb])
    options = LoadOptions(sizes="exact", max_uncompressed=16 * MiB, workers=1)
    with Session() as session:
        raised, peak = peak_of(lambda: session.load(f"oci:{layout}", options))
    assert isinstance(raised, errors.LimitExceeded), raised
    assert peak < 80, f"{peak:.1f} MiB"


@pytest.mark.registry
def test_oversized_manifest_from_a_registry_is_refused_unread(fault_proxy: Any) -> None:
    """Guards: a 64 MiB "manifest" is refused from its Content-Length (4 MiB cap), without reading it."""
    body = b"{" + b" " * (64 * MiB) + b"}"
    fault_proxy.rules.add(Respond(200, {"Content-Type": mediatypes.OCI_MANIFEST}, body), path="/manifests/")
    with Session(fault_proxy.settings) as session:
        raised, peak = peak_of(lambda: session.load(fault_proxy.ref("fixtures/base:latest")))
    assert isinstance(raised, errors.LimitExceeded), raised
    assert peak < 8, f"{peak:.1f} MiB"


@pytest.mark.parametrize("what", ["index.json", "manifest"])
def test_oversized_json_in_a_layout_is_refused_unread(tmp_path: Path, what: str) -> None:
    """Guards: a 64 MiB index.json or manifest blob in a layout is refused from its size (4 MiB cap)."""
    big = b"{" + b" " * (64 * MiB) + b"}"
    layout = write_layout(tmp_path, layers=[])
    if what == "index.json":
        (layout / "index.json").write_bytes(big)
    else:
        (layout / "blobs" / "sha256" / _sha(big)[7:]).write_bytes(big)
        entry = {"mediaType": mediatypes.OCI_MANIFEST, "digest": _sha(big), "size": len(big)}
        (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    with Session() as session:
        raised, peak = peak_of(lambda: session.load(f"oci:{layout}"))
    assert isinstance(raised, errors.LimitExceeded), raised
    assert peak < 8, f"{peak:.1f} MiB"


@pytest.mark.parametrize(("depth", "ok"), [(4, True), (5, False), (50, False)])
def test_index_nesting_is_capped(tmp_path: Path, depth: int, ok: bool) -> None:
    """Guards: indexes nested deeper than `max_index_depth` (4) are LimitExceeded, exit 3; 4 levels load."""
    layout = write_layout(tmp_path, layers=[], index_levels=depth)
    run = run_cli("inspect", "--no-os", "-f", "json", f"oci:{layout}")
    if ok:
        assert run.code == 0, run
    else:
        assert run.code == 3 and run.error_type == "LimitExceeded" and "nested deeper" in run.err, run


def test_tar_header_asking_for_a_gigabyte_is_refused_unread() -> None:
    """Guards: a PAX header whose size field says 1 GiB is refused (16 MiB header cap), nothing allocated."""
    block = bytearray(512)
    block[0:9] = b"PaxHeader"
    block[100:108] = b"0000644\0"
    block[124:136] = b"%011o\0" % (1 << 30)
    block[156:157] = b"x"
    block[257:263] = b"ustar\0"
    block[263:265] = b"00"
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    data = bytes(block) + b"30 path=" + b"a" * 1000
    raised, peak = peak_of(lambda: scan.scan_tar_stream(iter([data]), what="tar"))
    assert isinstance(raised, errors.LimitExceeded), raised
    assert peak < 8, f"{peak:.1f} MiB"


def test_tar_entry_count_is_capped() -> None:
    """Guards: a layer with more entries than `max_entries` is LimitExceeded (a billion empty files is cheap
    to compress and expensive to index)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for i in range(200):
            tf.addfile(tarfile.TarInfo(f"f{i}"))
    with pytest.raises(errors.LimitExceeded):
        scan.scan_tar_stream(iter([buf.getvalue()]), what="tar", max_entries=100)
