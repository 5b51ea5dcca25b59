"""ociinspect/threads.py: the worker pool behaves as the part of concurrent.futures the library used."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ociinspect import threads


def test_results_errors_and_order() -> None:
    def f(x: int) -> int:
        if x == 3:
            raise ValueError("three")
        return x * 2

    with threads.Pool(3, "t") as pool:
        futures = [pool.submit(f, i) for i in range(6)]
        assert [fu.result() for fu in futures if fu is not futures[3]] == [0, 2, 4, 8, 10]
        with pytest.raises(ValueError, match="three"):
            futures[3].result()
        assert isinstance(futures[3].exception(), ValueError) and futures[0].exception() is None
        assert pool.map(lambda x: x + 1, range(5)) == [1, 2, 3, 4, 5]
        assert pool.submit(lambda *, k: k, k=7).result() == 7


def test_no_more_threads_than_asked_and_idle_ones_are_reused() -> None:
    names: set[str] = set()
    gate = threading.Event()

    def hold() -> None:
        names.add(threading.current_thread().name)
        gate.wait(5)

    with threads.Pool(2, "cap") as pool:
        futures = [pool.submit(hold) for _ in range(6)]
        time.sleep(0.05)
        gate.set()
        for fu in futures:
            fu.result()
        for _ in range(20):  # one call at a time: the idle workers take them, no new thread
            pool.submit(names.add, threading.current_thread().name).result()
    assert {n for n in names if n.startswith("cap")} <= {"cap_0", "cap_1"}
    assert len(pool._threads) == 2


def test_shutdown_cancels_what_has_not_started_and_waits_for_the_rest() -> None:
    started = threading.Event()
    release = threading.Event()
    pool = threads.Pool(1)
    running = pool.submit(lambda: (started.set(), release.wait(5))[1])
    queued = pool.submit(lambda: "never")
    assert started.wait(5)
    release.set()
    pool.shutdown(wait=True, cancel_futures=True)
    assert running.result() is True
    assert queued.done() and queued.cancel() is True  # (cancelled already: stays cancelled)
    with pytest.raises(threads.CancelledError):
        queued.result()
    with pytest.raises(RuntimeError):
        pool.submit(lambda: 1)
    assert all(not t.is_alive() for t in pool._threads)


def test_cancel_only_before_start_and_callbacks_fire_once() -> None:
    seen: list[object] = []
    with threads.Pool(1) as pool:
        fu = pool.submit(lambda: 5)
        assert fu.result() == 5
        assert fu.cancel() is False
        fu.add_done_callback(seen.append)  # already done: called at once
    assert seen == [fu]


def test_as_completed_yields_in_the_order_calls_end() -> None:
    gates = [threading.Event() for _ in range(3)]
    with threads.Pool(3) as pool:
        futures = [pool.submit(lambda i=i: (gates[i].wait(5), i)[1]) for i in range(3)]
        order = []
        gates[2].set()
        it = threads.as_completed(futures)
        order.append(next(it).result())
        gates[0].set()
        order.append(next(it).result())
        gates[1].set()
        order.append(next(it).result())
    assert order == [2, 0, 1]


def test_a_daemon_pool_does_not_hold_the_interpreter_at_exit() -> None:
    code = (
        "import threading\n"
        "from ociinspect import threads\n"
        "pool = threads.Pool(2, daemon=True)\n"
        "print(pool.submit(lambda: 41 + 1).result())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == "42"


def test_the_pool_imports_neither_concurrent_futures_nor_logging() -> None:
    code = "import sys\nfrom ociinspect import threads\nprint('logging' in sys.modules, 'concurrent.futures' in sys.modules)"
    root = str(Path(__file__).resolve().parents[2])
    out = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PYTHONPATH": root},
    )
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_shutting_down_twice_with_cancel_still_ends_every_worker() -> None:
    gate = threading.Event()
    pool = threads.Pool(2)
    held = [pool.submit(gate.wait, 5) for _ in range(2)]
    waiting = pool.submit(lambda: "late")
    pool.shutdown(wait=False)
    pool.shutdown(wait=False, cancel_futures=True)  # drains the first call's end marks: they are put back
    gate.set()
    pool.shutdown(wait=True)
    assert [f.result() for f in held] == [True, True]
    with pytest.raises(threads.CancelledError):
        waiting.result()
    assert all(not t.is_alive() for t in pool._threads)
