"""``model.digest.new_hash``: the interpreter's built-in sha256/sha512 for small documents while OpenSSL's
``hashlib`` is not loaded, hashlib's otherwise — the same digests either way."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ociinspect.errors import DigestMismatch
from ociinspect.model import digest


@given(st.binary(max_size=3000), st.sampled_from(["sha256", "sha512"]), st.integers(1, 700))
def test_digests_are_hashlibs_whichever_implementation(data: bytes, algorithm: str, piece: int) -> None:
    expected = f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
    assert digest.compute(data, algorithm) == expected
    builtin = digest._builtin(algorithm)
    assert (
        builtin is not None
    )  # (this interpreter has them; new_hash falls back to hashlib when one lacks them)
    for h in (builtin(), digest.new_hash(algorithm, size=len(data)), digest.new_hash(algorithm)):
        for i in range(0, len(data), piece):
            h.update(data[i : i + piece])
        assert f"{algorithm}:{h.hexdigest()}" == expected
    checker = digest.DigestHasher(expected, what="blob", size=len(data))
    checker.update(data)
    checker.check()
    wrong = digest.DigestHasher(expected, what="blob", size=len(data))
    wrong.update(data + b"x")
    with pytest.raises(DigestMismatch):
        wrong.check()


def _in_fresh_interpreter(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


def test_small_documents_do_not_load_openssl_large_or_unknown_sizes_do() -> None:
    small = _in_fresh_interpreter(
        "import sys\n"
        "from ociinspect.model import digest\n"
        "digest.verify(b'{}', digest.compute(b'{}'), what='manifest', size=2)\n"
        "h = digest.DigestHasher(digest.compute(b'x' * 65536), what='blob', size=65536)\n"
        "h.update(b'x' * 65536); h.check()\n"
        "print('_hashlib' in sys.modules, type(h._h).__module__)"
    )
    assert small == "False _sha256" or small.startswith("False _sha2")
    for sizes in ("size=65537", "size=None"):
        large = _in_fresh_interpreter(
            "import sys\n"
            "from ociinspect.model import digest\n"
            f"h = digest.new_hash('sha256', {sizes})\n"
            "print('_hashlib' in sys.modules, type(h).__name__)"
        )
        assert large == "True HASH"


def test_once_openssl_is_loaded_it_hashes_small_documents_too() -> None:
    out = _in_fresh_interpreter(
        "import hashlib\nfrom ociinspect.model import digest\nprint(type(digest.new_hash('sha256', size=10)).__name__)"
    )
    assert out == "HASH"
