"""Worker threads for the library's concurrent reads: a small pool and its futures.

Why not :mod:`concurrent.futures`: importing it imports :mod:`logging` (with ``traceback``, ``linecache``,
``tokenize``, ``string``: ~5 ms at every start of a command, a twentieth of an ``inspect``), and the library
needs only this much of it.  What is kept of its behaviour: :meth:`Pool.submit` returns a :class:`Future` whose
:meth:`~Future.result` returns the call's value or raises what the call raised; a worker thread is started only
when no idle one can take the call (``max_workers`` at most) and ends at :meth:`Pool.shutdown`; a call not yet
started can be cancelled (its ``result()`` then raises :class:`CancelledError`); :func:`as_completed` yields
futures as they finish.  Cost: one lock and one C queue per pool, two locks per future.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["CancelledError", "Future", "Pool", "as_completed"]

_T = TypeVar("_T")


class CancelledError(Exception):
    """The call was cancelled before it started."""


_ENDED = ("done", "cancelled")


class Future(Generic[_T]):
    """The outcome of one call made by a :class:`Pool` (thread-safe).  Cost: two locks (C objects) per future; a
    waiter blocks on one of them (no :class:`threading.Event`, whose condition is made in Python)."""

    __slots__ = ("_callbacks", "_ended", "_error", "_lock", "_result", "_state")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ended = threading.Lock()
        self._ended.acquire()  # released once the call has ended or was cancelled
        self._state = "pending"  # pending → running → done, or pending → cancelled
        self._result: Any = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[Future[_T]], None]] = []

    def _wait(self) -> None:
        if self._state not in _ENDED:
            self._ended.acquire()  # (interruptible: Ctrl-C reaches a waiting main thread)
            self._ended.release()

    def result(self) -> _T:
        """The call's value, once it has ended (waits); raises what the call raised, or :class:`CancelledError`."""
        self._wait()
        if self._state == "cancelled":
            raise CancelledError()
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[no-any-return]

    def exception(self) -> BaseException | None:
        """What the call raised (``None``: it returned), once it has ended (waits)."""
        self._wait()
        if self._state == "cancelled":
            raise CancelledError()
        return self._error

    def done(self) -> bool:
        """True once the call has ended or was cancelled."""
        return self._state in _ENDED

    def cancel(self) -> bool:
        """Cancel the call unless it has started; True when it is (now) cancelled."""
        with self._lock:
            if self._state == "cancelled":
                return True
            if self._state != "pending":
                return False
        self._end(None, None, "cancelled")
        return True

    def add_done_callback(self, fn: Callable[[Future[_T]], None]) -> None:
        """Call ``fn(self)`` when the call ends (at once when it has)."""
        with self._lock:
            if self._state not in _ENDED:
                self._callbacks.append(fn)
                return
        fn(self)

    def _start(self) -> bool:
        with self._lock:
            if self._state != "pending":
                return False
            self._state = "running"
            return True

    def _end(self, result: Any, error: BaseException | None, state: str = "done") -> None:
        with self._lock:
            if self._state in _ENDED:
                return
            self._result, self._error, self._state = result, error, state
            callbacks, self._callbacks = self._callbacks, []
        self._ended.release()
        for fn in callbacks:
            fn(self)


class Pool:
    """Up to ``max_workers`` threads running submitted calls in order.  ``daemon`` threads do not hold the
    interpreter at exit (for a pool that lives as long as the process).  A context manager: leaving it waits for
    every call submitted (:meth:`shutdown`).  Cost per call: one C queue hand-over, one lock."""

    def __init__(self, max_workers: int, name: str = "ociinspect", *, daemon: bool = False) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._max = max_workers
        self._name = name
        self._daemon = daemon
        self._lock = threading.Lock()
        self._calls: queue.SimpleQueue[
            tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]] | None
        ] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # workers done with their last call and not yet handed a new one
        self._closed = False

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        """Run ``fn(*args, **kwargs)`` on a worker; its :class:`Future`.  Raises RuntimeError after
        :meth:`shutdown`."""
        future: Future[_T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit to a pool that was shut down")
            self._calls.put((future, fn, args, kwargs))
            if self._idle:
                self._idle -= 1  # an idle worker will take it
            elif len(self._threads) < self._max:
                worker = threading.Thread(
                    target=self._work, name=f"{self._name}_{len(self._threads)}", daemon=self._daemon
                )
                self._threads.append(worker)
                worker.start()
        return future

    def map(self, fn: Callable[..., _T], items: Iterable[Any]) -> list[_T]:
        """``[fn(item) for item in items]`` run on the workers, in order; the first failure (in order) is raised
        once every call has ended."""
        futures = [self.submit(fn, item) for item in items]
        return [future.result() for future in futures]

    def _work(self) -> None:
        calls = self._calls
        while True:
            call = calls.get()
            if call is None:
                return
            future, fn, args, kwargs = call
            if future._start():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    future._end(None, exc)
                else:
                    future._end(result, None)
            del call, future, fn, args, kwargs  # (a finished call's objects are not held until the next one)
            with self._lock:
                self._idle += 1

    def shutdown(self, *, wait: bool = True, cancel_futures: bool = False) -> None:
        """No more calls; with ``cancel_futures`` the ones not started are cancelled; with ``wait``, returns when
        every worker has ended (after the calls left)."""
        with self._lock:
            first = not self._closed
            self._closed = True
            threads = list(self._threads)
        marks = len(threads) if first else 0  # one end mark per worker, after the calls left
        if cancel_futures:
            while True:
                try:
                    call = self._calls.get_nowait()
                except queue.Empty:
                    break
                if call is None:
                    marks += 1  # an earlier shutdown's mark: put back
                else:
                    call[0].cancel()
        for _ in range(marks):
            self._calls.put(None)
        if wait:
            for worker in threads:
                if worker is not threading.current_thread():
                    worker.join()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown(wait=True)


def as_completed(futures: Iterable[Future[Any]]) -> Iterator[Future[Any]]:
    """The ``futures`` in the order they end (cost: one queue)."""
    ended: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()
    pending = list(futures)
    for future in pending:
        future.add_done_callback(ended.put)
    for _ in pending:
        yield ended.get()
