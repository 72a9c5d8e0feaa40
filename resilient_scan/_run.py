"""One run of the executor.

Workers pull the next scanner themselves, as a thread pool's workers do, so the caller's
thread is never a hop between one scanner and the next. The caller's thread keeps time: it
learns when each scanner starts, wakes at the earliest deadline, marks scanners that pass it
as timed out, abandons them, and starts a fresh worker in their place. An abandoned worker
stops pulling scanners once its scanner returns, so no more than ``workers`` scanners that
the run still waits for run at any time; abandoned ones may still be running beside them.
"""

from __future__ import annotations

import contextvars
import copy
import heapq
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import _config
from ._config import CURRENT_SCAN
from ._deadline import Deadline, enter
from ._engine import abandoned_call_returned
from ._errors import CircuitOpenError, ScanTimeout
from ._events import ScannerFinished
from ._instrument import emit, wanted
from ._report import Normalizer, ScanResult, ScanStatus
from ._scanner import ScannerInfo, scan_callable
from ._state import (
    DictView,
    ListView,
    appended_tool_logs,
    private_tool_logs,
    state_view,
    to_plain,
)
from ._stats import ScanRecorder
from ._text import describe_error, error_type


@dataclass(frozen=True)
class Planned:
    """A scanner of one run, with the settings that apply to it."""

    index: int
    item: Any
    info: ScannerInfo
    settings: Mapping[str, Any]
    timeout: float
    skip_reason: str | None
    #: What to call with the state, when known before the run (not for a class to build).
    call: Callable[[Any], Any] | None = None


class _Slot:
    """A started scanner: written by its worker, read by the caller's thread."""

    __slots__ = (
        "abandoned",
        "deadline",
        "error",
        "limit",
        "original_logs",
        "planned",
        "recorded",
        "result",
        "started",
        "stats",
        "tool_logs",
        "view",
    )

    def __init__(self, planned: Planned, started: float, deadline: float) -> None:
        self.planned = planned
        self.started = started
        self.deadline = deadline
        self.limit = planned.timeout  # the configured limit that fired, for messages
        self.abandoned = False  # the caller gave up on it (under the run's lock)
        self.recorded = False  # settled: its result is claimed (under the run's lock)
        self.result: ScanResult | None = None
        self.error: BaseException | None = None  # what it raised, for a late finish
        self.stats = ScanRecorder(planned.info.name, planned.info.pipeline, started=started)
        self.view: DictView | None = None
        self.original_logs: list[Any] | None = None
        self.tool_logs: list[Any] = []


class Run:
    """The bookkeeping of one `ScanExecutor.run`."""

    def __init__(
        self,
        plan: list[Planned],
        state: Mapping[str, Any],
        *,
        workers: int,
        deadline_seconds: float | None,
        normalize: Normalizer,
    ) -> None:
        self.plan = plan
        self.state = state
        self.workers = workers
        self.deadline_seconds = deadline_seconds
        self.deadline = None if deadline_seconds is None else time.monotonic() + deadline_seconds
        self.normalize = normalize
        self.results: list[ScanResult | None] = [None] * len(plan)
        self.tool_logs: list[list[Any]] = [[] for _ in plan]
        self._context = contextvars.copy_context()
        self._lock = threading.Lock()
        self._pending: deque[Planned] = deque()
        self._stopped = False
        self._slots: dict[int, _Slot] = {}
        self._started: list[_Slot] = []  # started since the caller last looked (under lock)
        self._wake_at: float | None = None  # when the caller will next wake (under lock)
        self._outstanding = 0  # started or pending scanners not yet settled (under lock)
        # Wakes the caller: a scanner settled (its index, to be logged), or one started that
        # must end sooner than the caller's next wake (None).
        self._wakeups: queue.SimpleQueue[int | None] = queue.SimpleQueue()

    # -- the caller's thread ------------------------------------------------------------------

    def execute(self) -> list[ScanResult]:
        """Run the plan; return one result per planned scanner, in plan order."""
        for planned in self.plan:
            if planned.skip_reason is None:
                self._pending.append(planned)
            else:
                self._record(planned, self._unstarted(planned, ScanStatus.SKIPPED))
        self._outstanding = len(self._pending)
        for _ in range(min(self.workers, self._outstanding)):
            _config.default_pool().submit(self._work)
        deadlines: list[tuple[float, int]] = []
        try:
            while True:
                settled, wake = self._next_wake(deadlines)
                if settled:
                    break
                wait = None if wake is None else wake - time.monotonic()
                try:
                    if wait is not None and wait <= 0:
                        raise queue.Empty  # noqa: TRY301 - one path for "time is up"
                    self._log_settled(self._wakeups.get(timeout=wait))
                except queue.Empty:
                    self._expire(deadlines)
            self._log_settled(None)
        finally:
            with self._lock:
                self._stopped = True  # on an interrupt too: start nothing more
        return [result for result in self.results if result is not None]

    def _log_settled(self, index: int | None) -> None:
        """Log the scanners workers settled: *index*, and any others already queued.

        Workers hand this over rather than log themselves: a worker is free for its next
        scanner sooner, and the logging happens while scanners wait on their services.
        """
        while True:
            if index is not None:
                slot = self._slots[index]
                assert slot.result is not None  # noqa: S101 - a settled slot has its result
                self._log(slot.result, slot)
            try:
                index = self._wakeups.get_nowait()
            except queue.Empty:
                return

    def _next_wake(self, deadlines: list[tuple[float, int]]) -> tuple[bool, float | None]:
        """Return whether every scanner settled, else when to wake next.

        The wake time is the earliest running deadline or the run's deadline.

        Workers settle their own scanners; this thread wakes to log them, at deadlines, and
        when a worker starts a scanner that must end before the wake time announced here
        (with one timeout for all, scanners started later end later, so that is rare).
        """
        with self._lock:
            if not self._outstanding:
                return True, None
            for slot in self._started:
                heapq.heappush(deadlines, (slot.deadline, slot.planned.index))
            self._started.clear()
            while deadlines and self._slots[deadlines[0][1]].recorded:
                heapq.heappop(deadlines)
            wake = deadlines[0][0] if deadlines else None
            if self.deadline is not None and (wake is None or self.deadline < wake):
                wake = self.deadline
            self._wake_at = wake
        return False, wake

    def _expire(self, deadlines: list[tuple[float, int]]) -> None:
        """Time out the scanners whose deadline has passed (all of them at the run's)."""
        now = time.monotonic()
        at_deadline = self.deadline is not None and now >= self.deadline
        cancelled: list[Planned] = []
        with self._lock:
            if at_deadline:
                self._stopped = True
                cancelled = list(self._pending)
                self._pending.clear()
                due = [slot for slot in self._slots.values() if not slot.recorded]
            else:
                due = []
                while deadlines and deadlines[0][0] <= now:
                    due.append(self._slots[heapq.heappop(deadlines)[1]])
            # Claimed here, under the lock: a scanner that returned first is its worker's.
            due = [slot for slot in due if not slot.recorded]
            for slot in due:
                slot.abandoned = slot.recorded = True
        for planned in cancelled:
            self._record(planned, self._unstarted(planned, ScanStatus.CANCELLED))
        for slot in due:
            self._abandon(slot, at_deadline=at_deadline)
        self._settle(len(cancelled) + len(due))

    def _settle(self, count: int) -> None:
        """Count *count* scanners as settled by the caller's thread."""
        if count:
            with self._lock:
                self._outstanding -= count

    def _abandon(self, slot: _Slot, *, at_deadline: bool) -> None:
        _config.abandoned_calls().add(slot.planned.info.name)
        with self._lock:
            replace = self._pending and not self._stopped
        if replace:
            _config.default_pool().submit(self._work)  # a fresh worker takes the hung one's place
        planned = slot.planned
        # Name the setting that fired, with its configured value.
        if at_deadline and self.deadline_seconds is not None:
            limit, why = self.deadline_seconds, "the run's deadline_seconds"
        else:
            limit, why = planned.timeout, "its timeout_seconds"
        slot.limit = limit
        self.tool_logs[planned.index] = _snapshot_tool_logs(slot, still_running=True)
        self._record(
            planned,
            ScanResult(
                name=planned.info.name,
                status=ScanStatus.TIMEOUT,
                error=f"ScanTimeout: {planned.info.name} timed out after {limit:g}s ({why})",
                duration=time.monotonic() - slot.started,
                pipeline=planned.info.pipeline,
                error_type="ScanTimeout",
                calls=slot.stats.snapshot(),
                timeline=slot.stats.timeline(),
                abandoned=True,
                timeout_seconds=limit,
            ),
            slot,
        )

    @staticmethod
    def _unstarted(planned: Planned, status: ScanStatus) -> ScanResult:
        reason = (
            planned.skip_reason
            if status is ScanStatus.SKIPPED
            else "the run's deadline passed before it started"
        )
        return ScanResult(
            name=planned.info.name, status=status, pipeline=planned.info.pipeline, reason=reason
        )

    def _record(self, planned: Planned, result: ScanResult, slot: _Slot | None = None) -> None:
        """Put *result* in the report and log it (on the caller's thread)."""
        self.results[planned.index] = result
        self._log(result, slot)

    def _log(self, result: ScanResult, slot: _Slot | None) -> None:
        if not wanted(ScannerFinished):
            return
        timeout = slot.limit if result.status is ScanStatus.TIMEOUT and slot is not None else None
        emit(
            ScannerFinished(
                result.name,
                result.pipeline,
                result.status.value,
                len(result.candidates),
                result.dropped,
                round(result.duration, 3),
                result.attempts,
                result.error_type,
                result.error,
                result.reason,
                timeout,
                result.degraded,
                traceback=result.traceback,
                exception=result.exception,
            )
        )

    # -- worker threads -----------------------------------------------------------------------

    def _work(self) -> None:
        """Run scanners until none are left, or until this worker's scanner is abandoned.

        Settling one scanner and taking the next happen under one acquisition of the lock:
        the lock is shared by every worker, so each acquisition saved counts.
        """
        previous: _Slot | None = None
        previous_context: contextvars.Context | None = None
        while True:
            with self._lock:
                abandoned = previous is not None and self._settle_locked(previous)
                if abandoned or self._stopped or not self._pending:
                    slot = None
                else:
                    planned = self._pending.popleft()
                    started = time.monotonic()
                    deadline = started + planned.timeout
                    if self.deadline is not None and self.deadline < deadline:
                        deadline = self.deadline
                    slot = self._slots[planned.index] = _Slot(planned, started, deadline)
                    self._started.append(slot)
                    wake_caller = self._wake_at is None or deadline < self._wake_at
            if abandoned:
                # The caller gave up on that scanner and started a worker in our place.
                assert previous is not None  # noqa: S101 - abandoned implies a previous one
                assert previous_context is not None  # noqa: S101
                previous_context.run(
                    abandoned_call_returned,
                    previous.planned.info.name,
                    time.monotonic() - previous.started,
                    previous.error,
                )
                return
            if slot is None:
                return
            if wake_caller:
                self._wakeups.put(None)
            context = self._context.copy()
            context.run(self._scan, slot)
            previous, previous_context = slot, context

    def _settle_locked(self, slot: _Slot) -> bool:
        """Settle a worker's finished scanner (lock held); return whether it was abandoned."""
        if slot.abandoned:
            return True  # settled already, as a timeout
        slot.recorded = True
        index = slot.planned.index
        self.results[index] = slot.result
        self.tool_logs[index] = slot.tool_logs
        # Queued before the count drops: the caller, seeing none outstanding, then finds
        # every index it has to log.
        self._wakeups.put(index)
        self._outstanding -= 1
        return False

    def _scan(self, slot: _Slot) -> None:
        """Run one scanner in its own context and leave its result on *slot*. Never raises."""
        planned = slot.planned
        name = planned.info.name
        enter(Deadline(slot.deadline))
        structlog = sys.modules.get("structlog")
        if structlog is not None:  # the application logs with structlog: bind the scanner
            structlog.contextvars.bind_contextvars(scanner=name, pipeline=planned.info.pipeline)
        CURRENT_SCAN.set(slot.stats)
        status, error, kind = ScanStatus.OK, None, None
        candidates: list[dict[str, Any]] = []
        dropped = 0
        try:
            view = slot.view = state_view(self.state)
            slot.original_logs = private_tool_logs(view, self.state)
            scan = planned.call or scan_callable(planned.item, planned.settings)
            raw = scan(view)
            if isinstance(raw, ListView):  # a list from the state, returned as it is
                raw = to_plain(raw)
            if isinstance(raw, list):
                candidates, dropped = _normalized(raw, name, self.normalize)
            else:
                status, kind = ScanStatus.ERROR, "TypeError"
                error = f"TypeError: scanner returned {type(raw).__name__}, expected a list"
            slot.tool_logs = appended_tool_logs(view, slot.original_logs)
        except BaseException as exc:  # any failure is this scanner's result
            slot.error = exc
            status, error = _failure_status(exc), describe_error(exc)
            kind = error_type(exc)
            if isinstance(exc, ScanTimeout):
                slot.limit = exc.limit  # its own attempt timeout fired
            candidates, dropped = [], 0
            slot.tool_logs = _snapshot_tool_logs(slot, still_running=False)
        slot.result = ScanResult(
            name=name,
            status=status,
            candidates=candidates,
            error=error,
            duration=time.monotonic() - slot.started,
            pipeline=planned.info.pipeline,
            dropped=dropped,
            error_type=kind,
            exception=slot.error,
            calls=slot.stats.snapshot(),
            timeline=slot.stats.timeline(),
            tool_logs=slot.tool_logs,
            timeout_seconds=planned.timeout,
        )


def _snapshot_tool_logs(slot: _Slot, *, still_running: bool) -> list[Any]:
    """What a failed or abandoned scanner added to its tool logs, or nothing.

    The thread of a scanner that is still running may change the entries while they are
    read and after: they are deep-copied then. Entries that cannot be read or copied are
    left out rather than let one scanner break the run.
    """
    if slot.view is None:
        return []
    try:
        entries = appended_tool_logs(slot.view, slot.original_logs)
        return copy.deepcopy(entries) if still_running else entries
    except Exception:
        return []


def _normalized(
    raw: list[Any], scanner: str, normalize: Callable[[object, str], dict[str, Any] | None]
) -> tuple[list[dict[str, Any]], int]:
    candidates = []
    for item in raw:
        # Plain data in the report: a candidate may hold views of the state.
        candidate = normalize(to_plain(item), scanner)
        if candidate is not None:
            candidates.append(candidate)
    return candidates, len(raw) - len(candidates)


def _failure_status(error: BaseException) -> ScanStatus:
    if isinstance(error, ScanTimeout):
        return ScanStatus.TIMEOUT
    if isinstance(error, CircuitOpenError):
        return ScanStatus.CIRCUIT_OPEN
    return ScanStatus.ERROR
