"""One run of the executor on threads.

Workers pull the next scanner themselves, as a thread pool's workers do, so the caller's
thread is never a hop between one scanner and the next, and they share no lock: the queue
is a deque, and each scanner's outcome is decided by its `_engine.Call` (worker and waiter
race for one claim). A worker that took its scanner's outcome hands it to the caller's
thread and pulls the next scanner at once.

The caller's thread finishes what workers hand over (checks and normalizes candidates,
gathers tool logs, reports the result), in the scanner's own context: one thread doing the
library's work, as the plain pattern's collecting loop does, rather than every worker
contending for the GIL. It also keeps time: it learns when scanners start, wakes at the
earliest deadline, abandons a scanner that passed it (the engine counts the abandoned call)
and starts a fresh worker in its place. An abandoned worker stops pulling scanners once its
scanner returns, so no more than ``workers`` scanners that the run still waits for run at
once.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import queue
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from ._clock import is_system
from ._deadline import Deadline
from ._engine import Call, DaemonPool
from ._job import FAKE_CLOCK_POLL, JobOptions, PlannedScanner, Returned, ScanJob, report_finished
from ._report import ScanResult, ScanStatus

#: Reasons given on results.
CANCELLED_REASON = "the run's deadline passed before it started"
NO_THREAD_REASON = "no thread to run it on"


class _Slot:
    """A started scanner: its job and the call whose claim decides who takes its outcome."""

    __slots__ = ("call", "context", "job", "settled")

    def __init__(self, job: ScanJob, call: Call[Returned], context: contextvars.Context) -> None:
        self.job = job
        self.call = call
        self.context = context  # the scanner's own: it is finished in it
        self.settled = False  # its worker took the outcome (read by the caller, lazily)


class ThreadRun:
    """The bookkeeping of one run on threads."""

    def __init__(
        self,
        plan: Sequence[PlannedScanner],
        state: Mapping[str, Any],
        options: JobOptions,
        *,
        workers: int,
        pool: DaemonPool,
        deadline: Deadline | None,
        deadline_limit: float = 0.0,
        deadline_why: str = "the run's deadline_seconds",
    ) -> None:
        self.plan = plan
        self.state = state
        self.options = options
        self.workers = workers
        self.pool = pool
        self.deadline = deadline
        self.deadline_limit = deadline_limit
        self.deadline_why = deadline_why
        self.results: list[ScanResult | None] = [None] * len(plan)
        self._context = contextvars.copy_context()
        self._clock = options.clock
        self._pending: deque[PlannedScanner] = deque()
        self._started: deque[_Slot] = deque()
        self._done: list[int] = []  # indexes settled (appended by whoever settles them)
        self._expected = 0
        self._stopped = False
        self._wake_at = float("-inf")  # the caller's next wake, on the clock (-inf: awake)
        # To the caller: a slot whose outcome a worker took, or None (a scanner started that
        # must end before the caller next wakes, or a worker is gone).
        self._handed: queue.SimpleQueue[_Slot | None] = queue.SimpleQueue()
        self._workers_lock = threading.Lock()  # guards _live only (rare: start, abandon, exit)
        self._live = 0  # workers of this run that still pull scanners
        self.abandoned = 0

    # -- the caller's thread ------------------------------------------------------------------

    def execute(self) -> list[ScanResult]:
        """Run the plan; return one result per planned scanner, in plan order."""
        for planned in self.plan:
            if planned.skip_reason is None:
                self._pending.append(planned)
            else:
                self._settle_here(
                    planned, planned.unstarted(ScanStatus.SKIPPED, planned.skip_reason)
                )
        self._expected = len(self._done) + len(self._pending)
        for _ in range(min(self.workers, len(self._pending))):
            if not self._start_worker():
                break
        heap: list[tuple[float, int, _Slot]] = []
        order = itertools.count()
        try:
            while len(self._done) < self._expected:
                self._wait(heap, order)
                self._expire(heap)
        finally:
            self._stopped = True  # on an interrupt too: start nothing more
        return [result for result in self.results if result is not None]

    def _wait(self, heap: list[tuple[float, int, _Slot]], order: itertools.count[int]) -> None:
        """Finish what workers handed over; else sleep until that or the earliest deadline."""
        wake = self._next_wake(heap, order)
        if len(self._done) >= self._expected:
            return
        left = wake - self._clock.monotonic()
        handed: _Slot | None = None
        if left > 0:
            if not is_system(self._clock):
                left = min(left, FAKE_CLOCK_POLL)
            with contextlib.suppress(queue.Empty):
                handed = self._handed.get(timeout=min(left, 3600.0))
        self._wake_at = float("-inf")
        # Several may be queued: finish them all before looking at the clock again.
        with contextlib.suppress(queue.Empty):
            while True:
                if handed is not None:
                    self._finish(handed)
                handed = self._handed.get_nowait()

    def _finish(self, slot: _Slot) -> None:
        """Finish a scanner whose worker took its outcome, in the scanner's context."""
        call = slot.call
        error, call.error = call.error, None
        result = slot.context.run(slot.job.finish, call.result, error)
        call.result = None
        index = slot.job.planned.index
        self.results[index] = result
        self._done.append(index)

    def _next_wake(
        self, heap: list[tuple[float, int, _Slot]], order: itertools.count[int]
    ) -> float:
        """Note the scanners started since the last look; announce and return the next wake."""
        while True:
            while self._started:
                slot = self._started.popleft()
                heapq.heappush(heap, (slot.job.deadline.at, next(order), slot))
            while heap and heap[0][2].settled:
                heapq.heappop(heap)
            wake = heap[0][0] if heap else float("inf")
            if self.deadline is not None and self.deadline.at < wake:
                wake = self.deadline.at
            self._wake_at = wake
            if not self._started:  # a worker that starts a scanner now compares with wake
                return wake

    def _expire(self, heap: list[tuple[float, int, _Slot]]) -> None:
        """Time out the scanners past their deadline (all of them at the run's)."""
        now = self._clock.monotonic()
        if self.deadline is not None and now >= self.deadline.at:
            self._stopped = True
            while self._pending:
                try:
                    planned = self._pending.popleft()
                except IndexError:  # a worker took the last one meanwhile
                    break
                self._settle_here(
                    planned, planned.unstarted(ScanStatus.CANCELLED, CANCELLED_REASON)
                )
            running = [slot for _, _, slot in heap]
            while self._started:
                running.append(self._started.popleft())
            heap.clear()
            for slot in running:
                self._abandon(slot, limit=self.deadline_limit, why=self.deadline_why)
            return
        while heap and heap[0][0] <= now:
            _, _, slot = heapq.heappop(heap)
            self._abandon(slot)

    def _abandon(self, slot: _Slot, *, limit: float | None = None, why: str | None = None) -> None:
        if slot.settled or not slot.call.abandon():
            return  # it returned in time: its worker settles it
        self.abandoned += 1
        with self._workers_lock:
            self._live -= 1
        job = slot.job
        if why is None:
            result = job.timed_out(running=True)
        else:
            result = job.timed_out(running=True, limit=limit, why=why)
        self.results[job.planned.index] = result
        self._done.append(job.planned.index)
        if self._pending and not self._stopped:
            self._start_worker()  # a fresh worker takes the hung one's place

    def _settle_here(self, planned: PlannedScanner, result: ScanResult) -> None:
        """Report a result that did not come from a worker's scanner, and record it.

        Reported first: once it is recorded, the caller may end the run.
        """
        report_finished(result, self.options)
        self.results[planned.index] = result
        self._done.append(planned.index)

    def _start_worker(self) -> bool:
        """Start one more worker; if the pool has no thread, fail what no worker will run."""
        with self._workers_lock:
            self._live += 1
        try:
            self.pool.submit(self._work)
        except Exception as exc:  # ThreadLimitError: no thread to give
            with self._workers_lock:
                self._live -= 1
                orphaned = self._live <= 0
            if orphaned:
                self._fail_pending(exc)
            return False
        return True

    def _fail_pending(self, error: BaseException) -> None:
        """No worker is left to run them: they are ``"error"``, with the pool's reason."""
        while True:
            try:
                planned = self._pending.popleft()
            except IndexError:
                return
            result = planned.unstarted(ScanStatus.ERROR, NO_THREAD_REASON, error=error)
            self._settle_here(planned, result)

    # -- worker threads -----------------------------------------------------------------------

    def _work(self) -> None:
        """Run scanners until none are left, or until this worker's scanner is abandoned."""
        keep_going = True
        try:
            while keep_going and not self._stopped:
                try:
                    planned = self._pending.popleft()
                except IndexError:
                    break
                keep_going = self._run_one(planned)
        finally:
            if keep_going:  # an abandoned worker was already counted out
                with self._workers_lock:
                    self._live -= 1

    def _run_one(self, planned: PlannedScanner) -> bool:
        """Run one scanner on this thread; False if the caller gave up on it meanwhile."""
        clock = self._clock
        started = clock.monotonic()
        deadline = Deadline(started + planned.timeout, clock)
        if self.deadline is not None:
            deadline = deadline.earliest(self.deadline)
        if self._stopped or (self.deadline is not None and self.deadline.expired):
            # The run's deadline passed while this worker took it: cancelled, not started,
            # and reported in the run's context, as the caller reports the others.
            result = planned.unstarted(ScanStatus.CANCELLED, CANCELLED_REASON)
            self._context.copy().run(self._settle_here, planned, result)
            return True
        job = ScanJob(planned, self.state, self.options, started, deadline)
        job.run_limited = deadline is self.deadline
        call: Call[Returned] = Call(planned.name)
        context = self._context.copy()
        slot = _Slot(job, call, context)
        self._started.append(slot)
        if deadline.at < self._wake_at:
            self._handed.put(None)  # it must end before the caller next looks
        if not call.run(context, job.invoke, (), {}, deadline):
            return False  # abandoned before it started: reported as a timeout, never run
        if call.result is None and call.error is None:
            # Abandoned: the caller reported it as a timeout and started a worker in our
            # place; the engine has counted the call as returned.
            context.run(job.late, None)
            return False
        slot.settled = True
        job.detach()
        self._handed.put(slot)
        return True
