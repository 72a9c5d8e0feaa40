"""The one engine for running calls on threads that may be abandoned.

`concurrent.futures.ThreadPoolExecutor` joins its workers at interpreter exit, so one call
that never returns holds the process open however the pool is shut down, and Python threads
cannot be killed. What can be done: run calls on daemon threads, stop waiting for a call at
its limit, count it as abandoned until it returns, and start a fresh thread for the next
call so capacity is not lost to it. The timeout layer and the executor both work this way,
through `DaemonPool`, `Claim` and `AbandonedCalls`.

A `DaemonPool` has a bound, ``max_threads``: a process whose calls hang without I/O
timeouts would otherwise start threads until the operating system refuses
(``RuntimeError: can't start new thread``), and then nothing works. At the bound, with no
idle thread, new calls fail at once with `ThreadLimitError`, naming the hung functions.
"""

from __future__ import annotations

import _thread
import contextvars
import itertools
import queue
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from . import _config
from ._config import DEADLINE
from ._deadline import Deadline
from ._errors import ThreadLimitError

T = TypeVar("T")

#: Seconds an idle worker waits for a task before it ends.
IDLE_SECONDS = 30.0
#: The default bound on a pool's threads, busy, idle and abandoned together.
MAX_THREADS = 1024


class AbandonedCalls:
    """The abandoned calls still running, by function name (one registry per process)."""

    __slots__ = ("_counts", "_lock", "running")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self.running = 0

    def add(self, name: str) -> int:
        """Count one more abandoned call of *name*; return how many are running."""
        with self._lock:
            self._counts[name] += 1
            self.running += 1
            return self.running

    def remove(self, name: str) -> int:
        """Count one abandoned call of *name* as returned; return how many still run."""
        with self._lock:
            left = self._counts[name] - 1
            if left > 0:
                self._counts[name] = left
            else:
                self._counts.pop(name, None)
            self.running = max(0, self.running - 1)
            return self.running

    def hung(self) -> list[tuple[str, int]]:
        """The functions of abandoned calls still running, with counts, most first."""
        with self._lock:
            return self._counts.most_common()


def abandoned_threads() -> int:
    """Return how many threads are still running a call that a timeout gave up on.

    Each such thread is a daemon: it cannot keep the interpreter from exiting, and it
    returns to its pool as soon as its call returns. A number that keeps growing means a
    dependency hangs without an I/O timeout of its own; past the pool's ``max_threads``,
    new calls fail with `ThreadLimitError`.
    """
    abandoned = _config.RUNTIME.abandoned
    return 0 if abandoned is None else abandoned.running


def abandoned_call_returned(name: str, ran_for: float, error: BaseException | None) -> None:
    """Count an abandoned call of *name* as returned, and report it."""
    running = _config.abandoned_calls().remove(name)
    from ._events import AbandonedCallFinished  # noqa: PLC0415 - events import this module
    from ._instrument import emit, wanted  # noqa: PLC0415

    if wanted(AbandonedCallFinished):
        emit(AbandonedCallFinished.of(name, ran_for, error, running))


class Claim:
    """Decides, once, whether a call's outcome is taken by its waiter or left behind.

    Both sides race to `take` the one token: the worker when the call returns, the waiter
    when it gives up. ``list.pop`` is atomic, so exactly one wins with no lock at all.
    """

    __slots__ = ("_token",)

    def __init__(self) -> None:
        self._token = [True]

    def take(self) -> bool:
        """Take the token; False if the other side already did."""
        try:
            self._token.pop()
        except IndexError:
            return False
        return True

    @property
    def taken(self) -> bool:
        """Whether either side took the token."""
        return not self._token


class Call(Generic[T]):
    """One call handed to a daemon worker: its outcome, and whether anyone still waits."""

    __slots__ = ("_claim", "_done", "error", "finished_at", "name", "result", "started_at")

    def __init__(self, name: str) -> None:
        self.name = name
        self._done = _thread.allocate_lock()  # held until the outcome may be read
        self._done.acquire()
        self._claim = Claim()
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
        deadline: Deadline | None,
    ) -> bool:
        """Run *func* in *context* under *deadline*; called on the worker thread.

        Returns False, running nothing, when the call was abandoned before it started (its
        deadline passed while it waited for a thread): nobody will read its outcome.
        """
        if self._claim.taken:
            _config.abandoned_calls().remove(self.name)  # counted when it was abandoned
            return False
        self.started_at = time.monotonic()
        try:
            self.result = context.run(_call_with_deadline, func, args, kwargs, deadline)
        except BaseException as exc:  # handed to the waiting thread
            self.error = exc
        self.finished_at = time.monotonic()
        if self._claim.take():
            self._done.release()
            return True
        # Abandoned: nobody will read the outcome. Report it, then free its frames.
        context.run(
            abandoned_call_returned, self.name, self.finished_at - self.started_at, self.error
        )
        self.result = self.error = None
        return True

    def wait(self, seconds: float) -> bool:
        """Wait up to *seconds* for the call to finish; return whether it did."""
        return (
            self._done.acquire(timeout=seconds)
            if seconds > 0
            else self._done.acquire(blocking=False)
        )

    def abandon(self) -> bool:
        """Stop waiting for the call; False if it finished in the meantime.

        After False the outcome is ready to read (the worker releases it at once).
        """
        # Counted before the claim is taken: once it is, the worker may return and count
        # the call out at once, and an add after that remove would never be undone.
        abandoned = _config.abandoned_calls()
        abandoned.add(self.name)
        if self._claim.take():
            return True
        abandoned.remove(self.name)
        self._done.acquire()
        return False

    def outcome(self) -> T:
        """Return the call's result or raise its exception (only after it finished)."""
        error = self.error
        if error is not None:
            self.error = None  # break the frame -> exception -> frame cycle
            raise error
        return self.result  # type: ignore[return-value]


def _call_with_deadline(
    func: Callable[..., T],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    deadline: Deadline | None,
) -> T:
    if deadline is not None:
        DEADLINE.set(deadline)
    return func(*args, **kwargs)


class _Worker(threading.Thread):
    def __init__(self, pool: DaemonPool, number: int) -> None:
        super().__init__(name=f"resilient_scan-{number}", daemon=True)
        self.pool = pool
        self.tasks: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()

    def run(self) -> None:
        pool = self.pool
        tasks = self.tasks
        try:
            while True:
                try:
                    task = tasks.get(timeout=pool.idle_seconds)
                except queue.Empty:
                    if pool._retire(self):  # noqa: SLF001 - the pool's own worker
                        return
                    # A caller took this worker off the idle list just now: its task is coming.
                    task = tasks.get()
                try:
                    task()
                except BaseException as exc:  # a bug in a task must not take the thread down
                    _task_failed(exc)
                del task
                pool._release(self)  # noqa: SLF001
        finally:
            pool._exited(self)  # noqa: SLF001


def _task_failed(exc: BaseException) -> None:
    try:
        from ._events import WorkerTaskFailed  # noqa: PLC0415 - events import this module
        from ._instrument import emit  # noqa: PLC0415

        emit(WorkerTaskFailed.of(exc))
    except Exception:  # noqa: S110 - reporting must not take the worker down either
        pass


_POOLS: weakref.WeakSet[DaemonPool] = weakref.WeakSet()


class DaemonPool:
    """An elastic, bounded set of daemon threads: idle ones are reused, new ones start on demand.

    Callers bound their own concurrency (the executor's ``max_workers``); the pool bounds
    the whole: at most *max_threads* threads at once, counting those stuck in abandoned
    calls. A thread stuck in an abandoned call does not take capacity from the calls that
    follow until that bound; past it, `submit` raises `ThreadLimitError`.

    Args:
        max_threads: The most threads alive at once.
        idle_seconds: How long an idle thread waits for work before it ends.
    """

    def __init__(
        self, *, max_threads: int = MAX_THREADS, idle_seconds: float = IDLE_SECONDS
    ) -> None:
        """Create an empty pool; threads start with the first calls."""
        from ._settings import integer, seconds  # noqa: PLC0415 - settings import the clock

        self.max_threads = integer(max_threads, ("DaemonPool", "max_threads"), minimum=1)
        self.idle_seconds = seconds(idle_seconds, ("DaemonPool", "idle_seconds"))
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._alive = 0
        self._numbers = itertools.count(1)
        _POOLS.add(self)

    def __repr__(self) -> str:
        """Show the bound and the threads."""
        return (
            f"DaemonPool(max_threads={self.max_threads}, threads={self._alive},"
            f" idle={len(self._idle)})"
        )

    @property
    def threads(self) -> int:
        """Threads alive now: busy, idle and abandoned."""
        return self._alive

    def submit(self, task: Callable[[], object]) -> None:
        """Run *task* on an idle worker, or on a new one if none is idle.

        Raises:
            ThreadLimitError: when the pool has *max_threads* threads and none is idle.
        """
        # The idle list is taken from and given back to without the pool's lock: `list.pop`,
        # `append` and `remove` are atomic, and each worker is on it at most once. Every
        # thread on it is alive: a worker leaves it before it ends (`_retire`, `_exited`),
        # and a forked child starts with an empty one. The lock guards the thread count.
        try:
            worker: _Worker | None = self._idle.pop()
        except IndexError:
            worker = None
            with self._lock:
                if self._alive >= self.max_threads:
                    raise ThreadLimitError(
                        self.max_threads, _config.abandoned_calls().hung()
                    ) from None
                self._alive += 1
        if worker is not None:
            worker.tasks.put(task)
            return
        worker = _Worker(self, next(self._numbers))
        worker.tasks.put(task)
        try:
            worker.start()
        except RuntimeError:
            # The operating system refused a thread: below our bound, but still a limit.
            with self._lock:
                self._alive -= 1
            raise ThreadLimitError(self._alive, _config.abandoned_calls().hung()) from None

    def start_call(
        self,
        name: str,
        func: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        deadline: Deadline | None,
    ) -> Call[T]:
        """Start ``func(*args, **kwargs)`` on a worker, in a copy of the caller's context."""
        call: Call[T] = Call(name)
        context = contextvars.copy_context()
        self.submit(lambda: call.run(context, func, args, kwargs, deadline))
        return call

    def _release(self, worker: _Worker) -> None:
        self._idle.append(worker)

    def _retire(self, worker: _Worker) -> bool:
        """Take an idle *worker* off the list; False if a caller took it first."""
        try:
            self._idle.remove(worker)
        except ValueError:
            return False
        return True

    def _exited(self, worker: _Worker) -> None:
        self._retire(worker)  # in case it ended some other way than retiring
        with self._lock:
            self._alive -= 1

    def _forget_threads(self) -> None:
        """After a fork: the child has none of the parent's threads, and a fresh lock."""
        self._lock = threading.Lock()
        self._idle = []
        self._alive = 0


def _forget_threads_in_child() -> None:
    for pool in list(_POOLS):
        pool._forget_threads()  # noqa: SLF001 - this module's own pools


_config.on_fork_in_child(_forget_threads_in_child)
