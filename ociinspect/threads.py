"""Worker threads for the library's concurrent reads: a small pool and its futures.

Why not :mod:`concurrent.futures`: importing it imports :mod:`logging` (with ``traceback``, ``linecache``,
``tokenize``, ``string``: ~5 ms at every start of a command, a twentieth of an ``inspect``), and the library
needs only this much of it.  What is kept of its behaviour: :meth:`Pool.submit` returns a :class:`Future` whose
:meth:`~Future.result` returns the call's value or raises what the call raised; a worker thread is started only
when no idle one can take the call (``max_workers`` at most) and ends at :meth:`Pool.shutdown`; a call not yet
started can be cancelled (its ``result()`` then raises :class:`CancelledError`); :func:`as_completed` yields
futures as they finish.  Cost: one lock and one condition per pool, one event per future.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["CancelledError", "Future", "Pool", "as_completed"]

_T = TypeVar("_T")


class CancelledError(Exception):
    """The call was cancelled before it started."""


class Future(Generic[_T]):
    """The outcome of one call made by a :class:`Pool` (thread-safe)."""

    __slots__ = ("_callbacks", "_error", "_event", "_lock", "_result", "_state")

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._state = "pending"  # pending → running → done, or pending → cancelled
        self._result: Any = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[Future[_T]], None]] = []

    def result(self) -> _T:
        """The call's value, once it has ended (waits); raises what the call raised, or :class:`CancelledError`."""
        self._event.wait()
        if self._state == "cancelled":
            raise CancelledError()
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[no-any-return]

    def exception(self) -> BaseException | None:
        """What the call raised (``None``: it returned), once it has ended (waits)."""
        self._event.wait()
        if self._state == "cancelled":
            raise CancelledError()
        return self._error

    def done(self) -> bool:
        """True once the call has ended or was cancelled."""
        return self._event.is_set()

    def cancel(self) -> bool:
        """Cancel the call unless it has started; True when it is (now) cancelled."""
        with self._lock:
            if self._state == "pending":
                self._state = "cancelled"
            elif self._state != "cancelled":
                return False
        self._finish()
        return True

    def add_done_callback(self, fn: Callable[[Future[_T]], None]) -> None:
        """Call ``fn(self)`` when the call ends (at once when it has)."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(fn)
                return
        fn(self)

    def _start(self) -> bool:
        with self._lock:
            if self._state != "pending":
                return False
            self._state = "running"
            return True

    def _set(self, result: Any, error: BaseException | None) -> None:
        with self._lock:
            self._result, self._error, self._state = result, error, "done"
        self._finish()

    def _finish(self) -> None:
        with self._lock:
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            fn(self)


class Pool:
    """Up to ``max_workers`` threads running submitted calls in order.  ``daemon`` threads do not hold the
    interpreter at exit (for a pool that lives as long as the process).  A context manager: leaving it waits for
    every call submitted (:meth:`shutdown`)."""

    def __init__(self, max_workers: int, name: str = "ociinspect", *, daemon: bool = False) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._max = max_workers
        self._name = name
        self._daemon = daemon
        self._cond = threading.Condition(threading.Lock())
        self._calls: collections.deque[
            tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]
        ] = collections.deque()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._closed = False

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        """Run ``fn(*args, **kwargs)`` on a worker; its :class:`Future`.  Raises RuntimeError after
        :meth:`shutdown`."""
        future: Future[_T] = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("cannot submit to a pool that was shut down")
            self._calls.append((future, fn, args, kwargs))
            if self._idle > len(self._calls) - 1:
                self._cond.notify()
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
        while True:
            with self._cond:
                while not self._calls and not self._closed:
                    self._idle += 1
                    try:
                        self._cond.wait()
                    finally:
                        self._idle -= 1
                if not self._calls:
                    return
                future, fn, args, kwargs = self._calls.popleft()
            if not future._start():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                future._set(None, exc)
            else:
                future._set(result, None)
            del future, fn, args, kwargs  # (a finished call's objects are not held until the next one)

    def shutdown(self, *, wait: bool = True, cancel_futures: bool = False) -> None:
        """No more calls; with ``cancel_futures`` the ones not started are cancelled; with ``wait``, returns when
        every worker has ended (after the calls left)."""
        with self._cond:
            self._closed = True
            dropped = list(self._calls) if cancel_futures else []
            if cancel_futures:
                self._calls.clear()
            self._cond.notify_all()
            threads = list(self._threads)
        for future, _fn, _args, _kwargs in dropped:
            future.cancel()
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
    import queue

    ended: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()
    pending = list(futures)
    for future in pending:
        future.add_done_callback(ended.put)
    for _ in pending:
        yield ended.get()
