"""Daemon worker threads that can be abandoned, and the count of those that were.

`concurrent.futures.ThreadPoolExecutor` joins its workers at interpreter exit, so one call
that never returns holds the process open however the pool is shut down. Python threads
cannot be killed either. What can be done: run calls on daemon threads, give up waiting on a
call at its limit, count it as abandoned until it returns, and start a fresh thread for the
next call so capacity is not lost to it.
"""

from __future__ import annotations

import contextvars
import itertools
import os
import queue
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Generic, TypeVar

from ._logging import describe_error, log

T = TypeVar("T")

_IDLE_SECONDS = 30.0

_deadline: ContextVar[float | None] = ContextVar("resilient_scan_deadline", default=None)


def current_deadline() -> float | None:
    """Return the `time.monotonic` instant by which the running call must finish.

    Set inside a call run under `timeout` (or by the executor for each scanner); the
    innermost, earliest limit wins. ``None`` outside any limit.
    """
    return _deadline.get()


def time_remaining() -> float | None:
    """Return the seconds left before the running call's limit, or ``None`` without one.

    Use it for I/O timeouts inside a scanner, for example
    ``httpx.get(url, timeout=rs.time_remaining() or 10.0)``, so a request never outlives
    the attempt that made it. Never negative.
    """
    deadline = _deadline.get()
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())


def earliest_deadline(deadline: float) -> float:
    """Return *deadline*, or the current context's deadline if that comes first."""
    outer = _deadline.get()
    return deadline if outer is None or deadline < outer else outer


def set_deadline(deadline: float) -> contextvars.Token[float | None]:
    """Set the deadline of the calls made from here on (keeping an earlier one)."""
    return _deadline.set(earliest_deadline(deadline))


def reset_deadline(token: contextvars.Token[float | None]) -> None:
    """Undo `set_deadline`."""
    _deadline.reset(token)


class _Abandoned:
    """How many abandoned calls are still running."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._lock = threading.Lock()
        self.running = 0

    def add(self) -> int:
        with self._lock:
            self.running += 1
            return self.running

    def remove(self) -> None:
        with self._lock:
            self.running -= 1


ABANDONED = _Abandoned()


def abandoned_call_finished(name: str, ran_for: float, error: BaseException | None) -> None:
    """Count an abandoned call as returned, and say so in the log."""
    ABANDONED.remove()
    log.info(
        "timeout.abandoned_call_finished",
        function=name,
        ran_for=round(ran_for, 3),
        outcome="ok" if error is None else "error",
        error=None if error is None else describe_error(error),
        abandoned=ABANDONED.running,
    )


def abandoned_threads() -> int:
    """Return how many threads are still running a call that a timeout gave up on.

    Each such thread is a daemon: it cannot keep the interpreter from exiting, and it
    leaves the pool as soon as its call returns. A number that keeps growing means a
    dependency hangs without an I/O timeout of its own.
    """
    return ABANDONED.running


class Call(Generic[T]):
    """One call handed to a daemon worker: its outcome, and whether anyone still waits."""

    __slots__ = (
        "_done",
        "_lock",
        "abandoned",
        "error",
        "finished_at",
        "name",
        "result",
        "started_at",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self._done = threading.Event()
        self._lock = threading.Lock()
        self.abandoned = False
        self.result: T | None = None
        self.error: BaseException | None = None
        self.started_at = 0.0
        self.finished_at = 0.0

    def run(
        self,
        context: contextvars.Context,
        func: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        deadline: float | None,
    ) -> None:
        """Run *func* in *context*; called on the worker thread."""
        self.started_at = time.monotonic()
        try:
            self.result = context.run(_call_with_deadline, func, args, kwargs, deadline)
        except BaseException as exc:  # handed to the waiting thread
            self.error = exc
        self.finished_at = time.monotonic()
        with self._lock:
            abandoned = self.abandoned
            self._done.set()
        if abandoned:
            context.run(
                abandoned_call_finished, self.name, self.finished_at - self.started_at, self.error
            )
            # Nobody will read the outcome: drop it so the traceback's frames are freed.
            self.result = self.error = None

    def wait(self, seconds: float | None) -> bool:
        """Wait up to *seconds* for the call to finish; return whether it did."""
        return self._done.wait(seconds)

    def abandon(self) -> bool:
        """Stop waiting for the call; return False if it finished in the meantime."""
        with self._lock:
            if self._done.is_set():
                return False
            self.abandoned = True
        ABANDONED.add()
        return True

    def outcome(self) -> T:
        """Return the call's result or raise its exception (only after it finished)."""
        error = self.error
        if error is not None:
            self.error = None  # break the frame -> exception -> frame cycle
            raise error
        return self.result  # type: ignore[return-value]


def _call_with_deadline(
    func: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any], deadline: float | None
) -> T:
    if deadline is not None:
        set_deadline(deadline)
    return func(*args, **kwargs)


class _Worker(threading.Thread):
    def __init__(self, pool: DaemonPool, number: int) -> None:
        super().__init__(name=f"resilient_scan-{number}", daemon=True)
        self.pool = pool
        self.tasks: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()

    def run(self) -> None:
        pool = self.pool
        tasks = self.tasks
        while True:
            try:
                task = tasks.get(timeout=pool.idle_seconds)
            except queue.Empty:
                if pool.retire(self):
                    return
                # A caller took this worker off the idle list just now: its task is coming.
                task = tasks.get()
            try:
                task()
            except BaseException as exc:  # a bug in a task must not take the thread down
                log.error("worker.task_failed", error=describe_error(exc), exc_info=exc)
            del task
            pool.release(self)


class DaemonPool:
    """An elastic set of daemon threads: idle ones are reused, new ones start on demand.

    There is no upper bound here on purpose: callers bound their own concurrency (the
    executor's ``max_workers``), and a thread stuck in an abandoned call must not take
    capacity from the calls that follow.
    """

    def __init__(self, idle_seconds: float = _IDLE_SECONDS) -> None:
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._numbers = itertools.count(1)

    def submit(self, task: Callable[[], None]) -> None:
        """Run *task* on an idle worker, or on a new one if none is idle."""
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is None or not worker.is_alive():
            worker = _Worker(self, next(self._numbers))
            worker.tasks.put(task)
            worker.start()
        else:
            worker.tasks.put(task)

    def release(self, worker: _Worker) -> None:
        with self._lock:
            self._idle.append(worker)

    def retire(self, worker: _Worker) -> bool:
        with self._lock:
            if worker in self._idle:
                self._idle.remove(worker)
                return True
            return False

    def start_call(
        self,
        name: str,
        func: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        deadline: float | None,
    ) -> Call[T]:
        """Start ``func(*args, **kwargs)`` on a worker, in a copy of the caller's context."""
        call: Call[T] = Call(name)
        context = contextvars.copy_context()
        self.submit(lambda: call.run(context, func, args, kwargs, deadline))
        return call

    def forget_threads(self) -> None:
        """Drop every worker: after a fork, the child has none of the parent's threads."""
        self._lock = threading.Lock()
        self._idle = []


POOL = DaemonPool()


def _after_fork_in_child() -> None:
    # The child process has only the thread that forked: the parent's idle workers and its
    # abandoned calls do not exist there, and a task handed to one would never run.
    POOL.forget_threads()
    ABANDONED.reset()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)
