"""`fan_out`: concurrent calls inside a scanner, on the library's daemon workers.

A scanner that starts its own `ThreadPoolExecutor` loses what the executor gives it: its
deadline (`time_remaining` is None in the pool's threads), its log context (no ``scanner``
field), its statistics (retries in there are not counted), and a hung call holds the
process open at exit. `fan_out` runs the calls on the daemon pool instead, each in a copy of
the caller's context, so all of that carries over; at most *max_workers* at once; results
come back in input order.
"""

from __future__ import annotations

import contextvars
import queue
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, Literal, TypeVar, overload

from . import _config, _settings
from ._config import DEADLINE
from ._deadline import Deadline
from ._engine import Call, DaemonPool
from ._errors import ConfigError, ScanTimeout
from ._text import callable_name

T = TypeVar("T")
R = TypeVar("R")


@overload
def fan_out(
    func: Callable[[T], R],
    items: Iterable[T],
    *,
    max_workers: int = ...,
    timeout: float | timedelta | None = ...,
    return_exceptions: Literal[False] = ...,
    pool: DaemonPool | None = ...,
) -> list[R]: ...
@overload
def fan_out(
    func: Callable[[T], R],
    items: Iterable[T],
    *,
    max_workers: int = ...,
    timeout: float | timedelta | None = ...,
    return_exceptions: Literal[True],
    pool: DaemonPool | None = ...,
) -> list[R | BaseException]: ...
def fan_out(
    func: Callable[[T], R],
    items: Iterable[T],
    *,
    max_workers: int = 8,
    timeout: float | timedelta | None = None,
    return_exceptions: bool = False,
    pool: DaemonPool | None = None,
) -> list[R] | list[R | BaseException]:
    """Call ``func(item)`` for every item, up to *max_workers* at once; return results in order.

    Use it inside a scanner (or any code) that needs several calls at once, instead of a
    ``ThreadPoolExecutor`` of its own: each call runs on the library's daemon workers in a
    copy of the caller's context, so the scanner's deadline (`time_remaining`), its log
    context and its statistics (retries, failures, breakers) carry over, and a call that
    never returns cannot hold up the interpreter's exit.

    The calls share the caller's deadline, and *timeout* (seconds for all of them) ends
    them sooner: when it passes, calls still running are abandoned, calls not started never
    start, and `ScanTimeout` is raised. A call that raises stops new calls from starting;
    the others finish, and the first failure in input order is raised, unless
    *return_exceptions* puts exceptions in the result list in their place.

    Raises:
        ConfigError: for a bad *max_workers* or *timeout*, or a *func* that is not callable.
        ScanTimeout: when the deadline passes before every call returned.
    """
    _settings.function(func, ("fan_out", "func"))
    workers = _settings.integer(max_workers, ("fan_out", "max_workers"), minimum=1)
    limit = _settings.optional_seconds(timeout, ("fan_out", "timeout"))
    if pool is not None and not isinstance(pool, DaemonPool):
        raise ConfigError(("fan_out", "pool"), f"must be a DaemonPool, got {pool!r}")
    work = list(items)
    if not work:
        return []
    started = time.monotonic()
    deadline = DEADLINE.get()
    if limit is not None:
        deadline = Deadline(started + limit).earliest(deadline)
    return _FanOut(func, work, workers, deadline, pool or _config.default_pool()).run(
        return_exceptions=return_exceptions
    )


class _FanOut:
    """One `fan_out`: workers pull items; the caller waits for all, or the deadline."""

    def __init__(
        self,
        func: Callable[[Any], Any],
        items: list[Any],
        workers: int,
        deadline: Deadline | None,
        pool: DaemonPool,
    ) -> None:
        self.func = func
        self.name = callable_name(func)
        self.items = items
        self.workers = min(workers, len(items))
        self.deadline = deadline
        self.limit = 0.0 if deadline is None else deadline.remaining()
        self.pool = pool
        self.context = contextvars.copy_context()
        self.pending: deque[int] = deque(range(len(items)))
        self.calls: list[Call[Any] | None] = [None] * len(items)
        self.finished: queue.SimpleQueue[int] = queue.SimpleQueue()
        self.stopped = False
        self.fail_fast = True

    def run(self, *, return_exceptions: bool) -> list[Any]:
        self.fail_fast = not return_exceptions
        started = 0
        error: BaseException | None = None
        for _ in range(self.workers):
            try:
                self.pool.submit(self._work)
                started += 1
            except Exception as exc:  # noqa: PERF203 - ThreadLimitError, once
                error = exc
                break
        if not started:
            assert error is not None  # noqa: S101 - no worker means submit raised
            raise error
        outcomes: list[Any] = [None] * len(self.items)
        failed: dict[int, BaseException] = {}
        done = 0
        try:
            while done < len(self.items):
                left = None if self.deadline is None else self.deadline.remaining()
                try:
                    index = self.finished.get(timeout=left if left is None or left > 0 else 0)
                except queue.Empty:
                    self._give_up()
                    raise ScanTimeout(self.name, self.limit, self.limit) from None
                if index < 0:  # a worker could not run it: no call was made
                    done += 1
                    continue
                call = self.calls[index]
                assert call is not None  # noqa: S101 - set before it is reported
                try:
                    outcomes[index] = call.outcome()
                except BaseException as exc:
                    failed[index] = exc
                done += 1
        finally:
            self.stopped = True
        if failed and not return_exceptions:
            raise failed[min(failed)]
        for index, failure in failed.items():
            outcomes[index] = failure
        return outcomes

    def _stop_starting(self) -> None:
        """After a failure: the calls not started never start (each counted as done)."""
        while True:
            try:
                self.pending.popleft()
            except IndexError:
                return
            self.finished.put(-1)

    def _gave_up(self) -> bool:
        # A method, read after the call: the caller's thread sets the flag meanwhile.
        return self.stopped

    def _give_up(self) -> None:
        self.stopped = True
        self.pending.clear()
        for call in self.calls:
            if call is not None:
                call.abandon()  # counted as abandoned until it returns, if still running

    def _work(self) -> None:
        while not self.stopped:
            try:
                index = self.pending.popleft()
            except IndexError:
                return
            call: Call[Any] = Call(self.name)
            self.calls[index] = call
            ran = call.run(self.context.copy(), self.func, (self.items[index],), {}, self.deadline)
            if not ran or (call.result is None and call.error is None and self._gave_up()):
                return  # abandoned at the deadline (before it started, or while it ran)
            failed = call.error is not None
            self.finished.put(index)
            if failed and self.fail_fast:
                self._stop_starting()
