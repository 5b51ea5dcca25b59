"""Issue 14, target 3: ``inspect`` of a registry image asks for the config, every layer's size evidence (gzip
head and trailer Range reads) and the referrers at once, as soon as the manifest is known — not config, then
layers, then referrers — with the same requests and the same output.

No timing: the proxy holds the config's answer until every layer range request and the referrers request have
reached it (at most ``WAIT_S``: a bound, not a measure); the serial code sent none of them before the config's
answer, so there the wait runs out and the test fails.
"""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from harness.faultproxy import Stall

from ociinspect.cli import main
from ociinspect.image.sizes import HEAD_BYTES

pytestmark = [pytest.mark.registry, pytest.mark.timeout(180)]

WAIT_S = 20.0
REPO_ROOT = Path(__file__).resolve().parents[2]


def _seen(proxy: Any, condition: Callable[[list[Any]], bool]) -> bool:
    """Whether ``condition(the requests the proxy received)`` came true within ``WAIT_S`` (polled)."""
    end = time.monotonic() + WAIT_S
    while not condition(list(proxy.requests)):
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def _inspect(capsysbinary: pytest.CaptureFixture[bytes], *argv: str) -> tuple[int, bytes, str]:
    code = main(["inspect", *argv])
    out, err = capsysbinary.readouterr()
    return code, out, err.decode(errors="replace")


def _evidence_ranges(doc: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(blob path suffix, Range header) of every size-evidence read of the image's layers."""
    wanted = set()
    for layer in doc["layers"]:
        digest, size = layer["digest"], layer["size"]
        if size <= HEAD_BYTES:
            wanted.add((digest, f"bytes=0-{size - 1}"))
        else:
            wanted |= {(digest, f"bytes=0-{HEAD_BYTES - 1}"), (digest, f"bytes={size - 8}-{size - 1}")}
    return wanted


class _Hold:
    """Holds the proxy's forwarding of requests whose target matches ``held`` until ``ready(seen)`` is true of
    the requests received so far (at most ``WAIT_S``); ``met`` says, per held request, whether it came true."""

    def __init__(self, proxy: Any, monkeypatch: pytest.MonkeyPatch, held: str, ready: Any) -> None:
        self.proxy, self.held, self.ready = proxy, re.compile(held), ready
        self.cond = threading.Condition()
        self.met: list[bool] = []
        record, forward = proxy.record, proxy.forward

        def recording(seen: Any) -> None:
            record(seen)
            with self.cond:
                self.cond.notify_all()

        def holding(method: str, target: str, headers: Mapping[str, str], body: bytes) -> Any:
            if self.held.search(target):
                with self.cond:
                    self.met.append(self.cond.wait_for(lambda: self.ready(list(proxy.requests)), WAIT_S))
            return forward(method, target, headers, body)

        monkeypatch.setattr(proxy, "record", recording)
        monkeypatch.setattr(proxy, "forward", holding)


def test_config_ranges_and_referrers_are_in_flight_together(
    fault_proxy: Any, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = f"docker://{fault_proxy.host}/fixtures/demo:latest"
    code, expected, err = _inspect(capsysbinary, ref, "-f", "json")  # unhindered
    assert code == 0, err
    doc = json.loads(expected)
    unhindered = collections.Counter(
        (s.method, s.target, s.headers.get("range")) for s in fault_proxy.requests
    )
    fault_proxy.clear()

    wanted = _evidence_ranges(doc)
    assert len(wanted) == 4  # the demo's 3 layers: one above 64 KiB (head + trailer), two whole small reads

    def ready(seen: list[Any]) -> bool:
        ranges = {(s.path.rsplit("/", 1)[-1], s.headers.get("range")) for s in seen}
        return wanted <= ranges and any("/referrers/" in s.target for s in seen)

    hold = _Hold(fault_proxy, monkeypatch, rf"/blobs/{re.escape(doc['config_digest'])}$", ready)
    code, out, err = _inspect(capsysbinary, ref, "-f", "json")
    assert code == 0, err
    assert hold.met == [True]  # the serial code: [False], after the wait ran out
    assert out == expected  # the same document, byte for byte
    again = collections.Counter((s.method, s.target, s.headers.get("range")) for s in fault_proxy.requests)
    assert again == unhindered  # the same requests, none more


def test_ctrl_c_while_the_config_and_ranges_hang_exits_at_once(fault_proxy: Any) -> None:
    """Ctrl-C while the registry holds every blob answer (the config in the main thread, the ranges in the
    workers): exit 130 at once — the requests in flight are cut short, not waited out to the read timeout
    (~30 s), which the old code did for hung ranges (and, overlapped, would now do for a hung config too)."""
    fault_proxy.rules.add(Stall(120), path="/blobs/", times=None)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    ref = f"docker://{fault_proxy.host}/fixtures/demo:latest"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ociinspect", "inspect", ref, "-f", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=REPO_ROOT,
    )
    try:
        # the config and the 4 evidence ranges are all held
        assert _seen(fault_proxy, lambda seen: sum(1 for s in seen if "/blobs/" in s.target) == 5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=WAIT_S)  # a bound: the old code took the ~30 s read timeout
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert err.decode().strip().splitlines()[-1] == "ociinspect: aborted"
