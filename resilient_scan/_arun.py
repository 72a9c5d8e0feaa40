"""One run of the executor on an event loop: async scanners as tasks, the others on threads.

Async scanners run as tasks of the running loop, each in a copy of the run's context, at
most ``max_tasks`` at once; at its limit a task is cancelled for real (status
``"timeout"``, nothing left running). Synchronous scanners of the same run go to daemon
threads, at most ``max_workers`` at once, exactly as in a run on threads (`_run`), and hand
their results back to the loop. One timer, set to the earliest deadline, keeps time for
all of them. Whoever takes a scanner's outcome first (the scanner returning, or the timer)
decides it, through an `_engine.Claim` or the thread's `_engine.Call`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import itertools
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import _config
from ._clock import is_system
from ._deadline import Deadline
from ._engine import Call, Claim
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


class _Slot:
    """A started scanner: an async one's task, or a sync one's call on a thread."""

    __slots__ = ("call", "claim", "job", "semaphore", "settled", "task")

    def __init__(self, job: ScanJob, semaphore: asyncio.Semaphore | None) -> None:
        self.job = job
        self.semaphore = semaphore
        self.claim = Claim()  # async scanners: the task returning, or the timer
        self.call: Call[Returned] | None = None  # sync scanners: the thread's call
        self.task: asyncio.Task[None] | None = None
        self.settled = False


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
        self._queues: list[deque[PlannedScanner]] = []
        self._running: dict[int, _Slot] = {}
        self._heap: list[tuple[float, int, _Slot]] = []
        self._order = itertools.count()
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
        lanes: list[tuple[deque[PlannedScanner], asyncio.Semaphore | None]]
        if not executor.concurrent:
            lanes = [(deque(runnable), asyncio.Semaphore(1))]
        else:
            tasks = deque(p for p in runnable if p.is_async)
            threads = deque(p for p in runnable if not p.is_async)
            lanes = [
                (
                    tasks,
                    None
                    if len(tasks) <= executor.max_tasks
                    else asyncio.Semaphore(executor.max_tasks),
                ),
                (
                    threads,
                    None
                    if len(threads) <= executor.max_workers
                    else asyncio.Semaphore(executor.max_workers),
                ),
            ]
        self._queues = [queue for queue, _ in lanes if queue]
        dispatchers = [
            self._context.run(loop.create_task, self._dispatch(queue, semaphore))
            for queue, semaphore in lanes
            if queue
        ]
        if self.deadline is not None:
            self._schedule(self.deadline.at)
        try:
            if self._done < self._expected:
                await self._finished
        except asyncio.CancelledError:
            self._abort()
            raise
        finally:
            self._stopped = True
            for dispatcher in dispatchers:
                dispatcher.cancel()
            if self._timer is not None:
                self._timer.cancel()
        return [result for result in self.results if result is not None]

    # -- starting -----------------------------------------------------------------------------

    async def _dispatch(
        self, queue: deque[PlannedScanner], semaphore: asyncio.Semaphore | None
    ) -> None:
        """Start the scanners of *queue* in order, as *semaphore* lets them."""
        while queue and not self._stopped:
            if semaphore is not None:
                await semaphore.acquire()
                if self._stopped or not queue:
                    semaphore.release()
                    return
            planned = queue.popleft()
            if planned.is_async:
                self._start_task(planned, semaphore)
            else:
                self._start_thread(planned, semaphore)

    def _job(self, planned: PlannedScanner, semaphore: asyncio.Semaphore | None) -> _Slot:
        started = self._clock.monotonic()
        deadline = Deadline(started + planned.timeout, self._clock).earliest(self.deadline)
        slot = _Slot(ScanJob(planned, self.state, self.options, started, deadline), semaphore)
        self._running[planned.index] = slot
        heapq.heappush(self._heap, (deadline.at, next(self._order), slot))
        if deadline.at < self._timer_at:
            self._schedule(deadline.at)
        return slot

    def _start_task(self, planned: PlannedScanner, semaphore: asyncio.Semaphore | None) -> None:
        slot = self._job(planned, semaphore)
        assert self._loop is not None  # noqa: S101 - set by execute
        slot.task = self._context.run(self._loop.create_task, self._drive(slot))

    async def _drive(self, slot: _Slot) -> None:
        """Run one async scanner in this task, and settle it unless the timer did."""
        job = slot.job
        returned: Returned | None = None
        error: BaseException | None = None
        try:
            returned = await job.ainvoke()
        except asyncio.CancelledError:
            if slot.claim.taken:
                return  # cancelled by the timer, which reported it as a timeout
            raise  # cancelled from outside: the run is being cancelled
        except BaseException as exc:
            error = exc
        if not slot.claim.take():
            job.late(error)  # it ignored its cancellation and finished after all
            return
        self._settle(slot, job.finish(returned, error))

    def _start_thread(self, planned: PlannedScanner, semaphore: asyncio.Semaphore | None) -> None:
        slot = self._job(planned, semaphore)
        job = slot.job
        call: Call[Returned] = Call(planned.name)
        slot.call = call
        context = self._context.copy()
        loop = self._loop
        assert loop is not None  # noqa: S101 - set by execute

        def work() -> None:
            call.run(context, job.invoke, (), {}, job.deadline)
            if call.result is None and call.error is None:  # abandoned by the timer
                context.run(job.late, None)
                return
            error, call.error = call.error, None
            result = context.run(job.finish, call.result, error)
            # RuntimeError: the loop is gone (the run was cancelled meanwhile).
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._settle, slot, result)

        try:
            (self.executor.pool or _config.default_pool()).submit(work)
        except Exception as exc:  # ThreadLimitError: the process has no thread to give
            slot.settled = True
            result = planned.unstarted(ScanStatus.ERROR, NO_THREAD_REASON, error=exc)
            report_finished(result, self.options)
            self._settle(slot, result)

    # -- settling -----------------------------------------------------------------------------

    def _settle(self, slot: _Slot, result: ScanResult) -> None:
        index = slot.job.planned.index
        if self.results[index] is not None:
            return
        slot.settled = True
        self._running.pop(index, None)
        if slot.semaphore is not None:
            slot.semaphore.release()
        self._record(index, result)

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
        while heap and (heap[0][2].settled or heap[0][0] <= now):
            _, _, slot = heapq.heappop(heap)
            if not slot.settled:
                self._time_out(slot)
        wake = heap[0][0] if heap else float("inf")
        if self.deadline is not None:
            wake = min(wake, self.deadline.at)
        if wake != float("inf"):
            self._schedule(wake)

    def _time_out(self, slot: _Slot, limit: float | None = None, why: str | None = None) -> None:
        job = slot.job
        extra: dict[str, Any] = {} if why is None else {"limit": limit, "why": why}
        if slot.call is not None:  # a thread: abandoned, as in a run on threads
            if not slot.call.abandon():
                return  # it returned just now: its result is on its way
            self.abandoned += 1
            self._settle(slot, job.timed_out(running=True, **extra))
            return
        if not slot.claim.take():
            return
        self._settle(slot, job.timed_out(running=False, **extra))
        assert slot.task is not None  # noqa: S101 - set when it started
        slot.task.cancel()

    def _stop(self, limit: float, why: str) -> None:
        """The run's deadline: cancel what has not started, time out what runs."""
        self._stopped = True
        for queue in self._queues:
            while queue:
                planned = queue.popleft()
                self._settle_unstarted(
                    planned, planned.unstarted(ScanStatus.CANCELLED, CANCELLED_REASON)
                )
        for slot in list(self._running.values()):
            self._time_out(slot, limit, why)

    def _abort(self) -> None:
        """The awaiting task was cancelled: stop everything this run started."""
        self._stopped = True
        for slot in list(self._running.values()):
            if slot.call is not None:
                slot.call.abandon()
            elif slot.claim.take() and slot.task is not None:
                slot.task.cancel()


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
