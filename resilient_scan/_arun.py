"""One run of the executor on an event loop: async scanners as tasks, the others on threads.

Async scanners run as tasks of the running loop, each in a copy of the run's context, at
most ``max_tasks`` at once; at its limit a task is cancelled for real (status
``"timeout"``, nothing left running). Synchronous scanners of the same run go to daemon
threads, at most ``max_workers`` at once, exactly as in a run on threads (`_run`), and hand
their results back to the loop.

What a scanner costs here is what a big run of short async scanners pays for on top of a
bare ``asyncio.gather``, so each costs one object of the run (its `_Job`, which is also its
recorder) and one task, whose coroutine drives the scanner's own:

- no task or semaphore dispatches scanners: the run starts as many as its bounds allow,
  and each scanner that ends starts the next of its lane, right where it is settled;
- one timer keeps time for all of them: scanners are kept in buckets by deadline, and
  scanners started within the same millisecond share a deadline (each gets its full limit
  and at most a millisecond more), so a big run has a few buckets, not one per scanner;
- on the loop's one thread, a task's outcome is taken by whoever comes first (the scanner
  returning, or the timer) without a lock: a flag on the job decides it. A thread's
  outcome is decided by its `_engine.Call`, as in a run on threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import sys
import time
from collections import deque
from collections.abc import Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import _config
from ._clock import is_system
from ._config import DEADLINE
from ._deadline import Deadline
from ._engine import Call
from ._job import (
    FAKE_CLOCK_POLL,
    JobOptions,
    PlannedScanner,
    Returned,
    ScanJob,
    report_finished,
)
from ._report import ScanReport, ScanResult, ScanStatus
from ._run import CANCELLED_REASON, NO_THREAD_REASON

if TYPE_CHECKING:
    from ._executor import ScanExecutor

#: Scanners whose limits end within this many seconds of each other share one deadline,
#: the first's: started that close together, they started together. (On the system clock;
#: on a test's fake clock only equal limits are shared.)
DEADLINE_GRAIN = 0.001


class _Lane:
    """Scanners waiting to start, and how many of them may run at once."""

    __slots__ = ("bound", "queue", "running", "starting")

    def __init__(self, scanners: Sequence[PlannedScanner], bound: int) -> None:
        self.queue: deque[PlannedScanner] = deque(scanners)
        self.bound = bound
        self.running = 0
        # Set while `AsyncRun._start` fills the lane: a scanner settled meanwhile (no thread
        # to give, a task that ended at once) leaves the refill to that loop, not a new one.
        self.starting = False


class _Job(ScanJob):
    """A started scanner: an async one with its task, or a sync one with its thread's call."""

    __slots__ = ("call", "lane", "settled", "task")

    # Made by ScanJob's constructor; the run sets these four at once (see AsyncRun._start).
    call: Call[Returned] | None  # a sync scanner's call on its thread
    lane: _Lane
    settled: bool  # its outcome was taken (on the loop's thread: no lock needed)
    task: asyncio.Task[None] | None  # an async scanner's task


#: Whether a task takes its context as an argument (Python 3.11 and later).
_TASK_CONTEXT = sys.version_info >= (3, 11)

#: Scanners sharing one deadline: (its instant, order of making, the deadline, the scanners).
_Bucket = tuple[float, int, Deadline, list[_Job]]


class AsyncRun:
    """The bookkeeping of one run on an event loop."""

    def __init__(
        self,
        executor: ScanExecutor,
        plan: Sequence[PlannedScanner],
        state: Mapping[str, Any],
        options: JobOptions,
        *,
        deadline: Deadline | None,
        deadline_limit: float,
        deadline_why: str,
    ) -> None:
        self.executor = executor
        self.plan = plan
        self.state = state
        self.options = options
        self.deadline = deadline
        self.deadline_limit = deadline_limit
        self.deadline_why = deadline_why
        self.results: list[ScanResult | None] = [None] * len(plan)
        self.abandoned = 0
        self._clock = options.clock
        self._context = contextvars.copy_context()
        self._lanes: list[_Lane] = []
        # Started scanners in buckets by deadline, the earliest first.
        self._heap: list[_Bucket] = []
        self._last: _Bucket | None = None  # the newest bucket
        self._run_bucket: _Bucket | None = None  # scanners that end with the run's deadline
        self._buckets = 0
        self._grain = DEADLINE_GRAIN if is_system(self._clock) else 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._done = 0
        self._expected = 0
        self._stopped = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._finished: asyncio.Future[None] | None = None

    async def execute(self) -> list[ScanResult]:
        """Run the plan; return one result per planned scanner, in plan order."""
        loop = self._loop = asyncio.get_running_loop()
        self._finished = loop.create_future()
        runnable: list[PlannedScanner] = []
        for planned in self.plan:
            if planned.skip_reason is None:
                runnable.append(planned)
            else:
                self._settle_unstarted(
                    planned, planned.unstarted(ScanStatus.SKIPPED, planned.skip_reason)
                )
        self._expected = len(self.plan)
        executor = self.executor
        if not executor.concurrent:
            lanes = [_Lane(runnable, 1)]
        else:
            lanes = [
                _Lane([p for p in runnable if p.is_async], executor.max_tasks),
                _Lane([p for p in runnable if not p.is_async], executor.max_workers),
            ]
        self._lanes = [lane for lane in lanes if lane.queue]
        if self.deadline is not None:
            self._schedule(self.deadline.at)
        try:
            for lane in self._lanes:
                self._start(lane)
            if self._done < self._expected:
                await self._finished
        except asyncio.CancelledError:
            self._abort()
            raise
        finally:
            self._stopped = True
            if self._timer is not None:
                self._timer.cancel()
        return [result for result in self.results if result is not None]

    # -- starting -----------------------------------------------------------------------------

    def _start(self, lane: _Lane) -> None:
        """Start the next scanners of *lane*, in order, as far as its bound lets them."""
        if self.deadline is not None and self.deadline.expired and not self._stopped:
            # The loop was held past the run's deadline: nothing more starts.
            self._stop(self.deadline_limit, self.deadline_why)
            return
        queue = lane.queue
        now = time.monotonic if is_system(self._clock) else self._clock.monotonic
        state, options, grain = self.state, self.options, self._grain
        run_deadline = self.deadline
        spawn = self._spawn
        lane.starting = True
        try:
            while queue and lane.running < lane.bound and not self._stopped:
                planned = queue.popleft()
                lane.running += 1
                began = now()
                at = began + planned.timeout
                bucket = self._last
                if bucket is None or not bucket[0] - grain <= at <= bucket[0]:
                    bucket = self._bucket(at)
                job = _Job(planned, state, options, began, bucket[2])
                job.lane = lane
                job.settled = False
                job.call = job.task = None
                job.run_limited = run_deadline is not None and run_deadline.at < at
                bucket[3].append(job)
                if planned.is_async:
                    job.task = spawn(self._drive(job))
                else:
                    self._start_thread(job)
        finally:
            lane.starting = False

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A task for *coro*, in a copy of the run's context (not the ended scanner's)."""
        assert self._loop is not None  # noqa: S101 - set by execute
        if _TASK_CONTEXT:  # the copy given as the task's own: cheaper than entering it
            return self._loop.create_task(coro, context=self._context.copy())  # type: ignore[call-arg,unused-ignore]
        return self._context.run(self._loop.create_task, coro)

    def _bucket(self, at: float) -> _Bucket:
        """The bucket of a scanner whose limit ends at *at*, if not the newest one.

        A bucket's deadline is a grain after its first scanner's limit; a scanner whose
        limit ends at most a grain before it shares it (`_start` checks that first), so each
        gets its full limit and at most a grain more.
        """
        deadline = Deadline(at + self._grain, self._clock).earliest(self.deadline)
        if deadline is self.deadline:  # the run's deadline comes first
            if self._run_bucket is None:
                self._run_bucket = self._push(deadline)
            return self._run_bucket
        bucket = self._last = self._push(deadline)
        if deadline.at < self._timer_at:
            self._schedule(deadline.at)
        return bucket

    def _push(self, deadline: Deadline) -> _Bucket:
        self._buckets += 1
        bucket: _Bucket = (deadline.at, self._buckets, deadline, [])
        heapq.heappush(self._heap, bucket)
        return bucket

    async def _drive(self, job: _Job) -> None:
        """Run one async scanner in this task, and settle it unless the timer did."""
        DEADLINE.set(job.deadline)
        error: BaseException | None = None
        raw: Any = None
        try:
            scan = job.enter()
            raw = await scan(job.view)
        except asyncio.CancelledError:
            job.returned_at = job.options.clock.monotonic()
            if job.settled:
                return  # cancelled by the timer, which reported it as a timeout
            raise  # cancelled from outside: the run is being cancelled
        except BaseException as exc:
            error = exc
        job.returned_at = job.options.clock.monotonic()
        if job.settled:
            job.raw_count = len(raw) if isinstance(raw, list) else 0
            job.late(error)  # it ignored its cancellation and finished after all
            return
        self._settle(job, job.finish_with(raw, error))

    def _start_thread(self, job: _Job) -> None:
        planned = job.planned
        call: Call[Returned] = Call(planned.name)
        job.call = call
        context = self._context.copy()
        loop = self._loop
        assert loop is not None  # noqa: S101 - set by execute

        def work() -> None:
            if not call.run(context, job.invoke, (), {}, job.deadline):
                return  # timed out before a thread took it: reported, never started
            if call.result is None and call.error is None:  # abandoned by the timer
                context.run(job.late, None)
                return
            error, call.error = call.error, None
            result = context.run(job.finish, call.result, error)
            # RuntimeError: the loop is gone (the run was cancelled meanwhile).
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._settle, job, result)

        try:
            (self.executor.pool or _config.default_pool()).submit(work)
        except Exception as exc:  # ThreadLimitError: the process has no thread to give
            result = planned.unstarted(ScanStatus.ERROR, NO_THREAD_REASON, error=exc)
            report_finished(result, self.options)
            self._settle(job, result)

    # -- settling -----------------------------------------------------------------------------

    def _settle(self, job: _Job, result: ScanResult) -> None:
        index = job.planned.index
        if self.results[index] is not None:
            return
        job.settled = True
        job.task = None  # a finished task (its coroutine, its context) need not live on
        lane = job.lane
        lane.running -= 1
        self.results[index] = result  # _record, without its call: once per scanner
        self._done += 1
        if self._done >= self._expected:
            finished = self._finished
            if finished is not None and not finished.done():
                finished.set_result(None)
        elif lane.queue and not self._stopped and not lane.starting:
            self._start(lane)

    def _settle_unstarted(self, planned: PlannedScanner, result: ScanResult) -> None:
        report_finished(result, self.options)
        self._record(planned.index, result)

    def _record(self, index: int, result: ScanResult) -> None:
        self.results[index] = result
        self._done += 1
        finished = self._finished
        if self._done >= self._expected and finished is not None and not finished.done():
            finished.set_result(None)

    # -- keeping time -------------------------------------------------------------------------

    def _schedule(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        delay = max(0.0, at - self._clock.monotonic())
        if not is_system(self._clock):
            delay = min(delay, FAKE_CLOCK_POLL)
        assert self._loop is not None  # noqa: S101 - set by execute
        self._timer = self._loop.call_later(delay, self._expire)

    def _expire(self) -> None:
        """The timer: time out what passed its deadline, and set the timer again."""
        self._timer = None
        self._timer_at = float("inf")
        now = self._clock.monotonic()
        if self.deadline is not None and now >= self.deadline.at:
            self._stop(self.deadline_limit, self.deadline_why)
            return
        heap = self._heap
        while heap and heap[0][0] <= now:
            bucket = heapq.heappop(heap)
            if bucket is self._last:
                self._last = None
            for job in bucket[3]:
                if not job.settled:
                    self._time_out(job)
        wake = heap[0][0] if heap else float("inf")
        if self.deadline is not None:
            wake = min(wake, self.deadline.at)
        if wake != float("inf"):
            self._schedule(wake)

    def _time_out(self, job: _Job, limit: float | None = None, why: str | None = None) -> None:
        extra: dict[str, Any] = {} if why is None else {"limit": limit, "why": why}
        if job.call is not None:  # a thread: abandoned, as in a run on threads
            if not job.call.abandon():
                return  # it returned just now: its result is on its way
            self.abandoned += 1
            self._settle(job, job.timed_out(running=True, **extra))
            return
        task = job.task
        assert task is not None  # noqa: S101 - an async scanner's task, made as it started
        self._settle(job, job.timed_out(running=False, **extra))
        task.cancel()

    def _running(self) -> list[_Job]:
        return [job for bucket in self._heap for job in bucket[3] if not job.settled]

    def _stop(self, limit: float, why: str) -> None:
        """The run's deadline: cancel what has not started, time out what runs."""
        self._stopped = True
        for lane in self._lanes:
            while lane.queue:
                planned = lane.queue.popleft()
                self._settle_unstarted(
                    planned, planned.unstarted(ScanStatus.CANCELLED, CANCELLED_REASON)
                )
        for job in self._running():
            self._time_out(job, limit, why)

    def _abort(self) -> None:
        """The awaiting task was cancelled: stop everything this run started."""
        self._stopped = True
        for job in self._running():
            if job.call is not None:
                job.call.abandon()
            elif job.task is not None:
                job.settled = True
                job.task.cancel()


def run_in_loop(
    executor: ScanExecutor,
    plan: Sequence[PlannedScanner],
    state: Mapping[str, Any],
    run_id: str | None,
) -> ScanReport:
    """Run a plan with async scanners from synchronous code: on a loop of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        inside_a_loop = False
    else:
        inside_a_loop = True
    if not inside_a_loop:  # the usual case (called outside the handler: no chained error)
        return _run_loop(executor, plan, state, run_id)
    # Synchronous code called from inside a running loop: this thread is that loop's, so
    # the run gets a loop on a thread of its own.
    pool = executor.pool or _config.default_pool()
    call = pool.start_call(
        "ScanExecutor.run", _run_loop, (executor, plan, state, run_id), {}, deadline=None
    )
    while not call.wait(3600.0):
        pass
    return call.outcome()


def _run_loop(
    executor: ScanExecutor,
    plan: Sequence[PlannedScanner],
    state: Mapping[str, Any],
    run_id: str | None,
) -> ScanReport:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(executor._aexecute(plan, state, run_id, AsyncRun))  # noqa: SLF001
    finally:
        try:
            _finish_tasks(loop)
        finally:
            loop.close()


def _finish_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Let tasks cancelled at their limit end, briefly; then close the loop's generators."""
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.wait(pending, timeout=0.1))
    loop.run_until_complete(loop.shutdown_asyncgens())
