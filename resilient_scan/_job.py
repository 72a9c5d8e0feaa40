"""One scanner, from its plan and the state to its `ScanResult`: the unit every run shares.

The executor plans a run once (`PlannedScanner`: what to call, its settings and limit),
runs each planned scanner as a `ScanJob`, and merges the results in plan order. Where a job
runs does not matter to planning or merging: on the executor's threads (`_run`), on an
event loop (`_arun`), or on another machine's threads (`resilient_scan.dask` sends the
planned scanners, plain data and importable callables, and runs them with `_run` there).

A job has three steps:

1. `ScanJob.invoke` (or, for an async scanner, `ScanJob.enter` and an await), in the
   scanner's own context, on the thread or task
   that runs it: the scanner's recorder and log context, its state view, its class built,
   ``scanner.started``, then the scanner itself. This step is timed: the scanner's limit
   covers it.
2. Whoever waits for it takes the outcome or gives up (an `_engine.Call`, or a task's
   cancellation). A scanner that returned after its deadline is ``"timeout"`` either way.
3. `ScanJob.finish`: the library's own work (checking and normalizing candidates, tool
   logs, statistics, events). Not timed: it is never charged to the scanner.
"""

from __future__ import annotations

import contextvars
import inspect
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from ._clock import Clock, SystemClock
from ._config import CURRENT_SCAN
from ._deadline import Deadline
from ._errors import CircuitOpenError, ScanTimeout
from ._events import (
    DEBUG,
    INFO,
    WARNING,
    Event,
    LateResultDropped,
    ScannerDegraded,
    ScannerFinished,
    ScannerStarted,
)
from ._instrument import emit_quietly, wanted_at
from ._report import FAILED, NO_CALLS, NOT_RUN, Normalizer, ScanResult, ScanStatus
from ._scanner import Construction, Constructor
from ._state import ATOMS as _ATOMS
from ._state import DictView, release_views, state_view, to_plain
from ._stats import CallStats, ScanRecorder, TimelineEntry
from ._text import describe_error, error_type, format_traceback


class LogCollector(Protocol):
    """Gathers what each scanner wrote to its state for the report (the ``tool_logs=`` hook).

    `resilient_scan.discovery.ToolLogs` is the default: what a scanner appended to
    ``state["tool_logs"]``.
    """

    def start(self, view: DictView) -> Any:
        """Note what *view* holds before the scanner runs; return it for `collect`."""
        ...

    def collect(self, view: DictView, started: Any, *, running: bool) -> list[Any]:
        """Return the scanner's entries (*running*: its thread may still change them)."""
        ...


@dataclass(slots=True)
class PlannedScanner:
    """One scanner of a run, with everything needed to run it, decided before any runs.

    Plain data plus the scanner itself (importable functions and classes pickle), so a
    backend can send it where the scanner runs. Treat it as read-only.

    Attributes:
        index: Its place in the run (results and merging follow it).
        name: Its name.
        pipeline: Its pipeline, if any.
        target: The function, object or class given.
        method: The method to call on an object or an instance of a class (``"scan"``);
            None for a function.
        construction: How to build it, for a class (None otherwise).
        settings: Its own table (``scanners.NAME``), for its class's constructor.
        timeout: Its limit in seconds, from the moment it starts.
        skip_reason: Why it does not run (disabled), or None.
        is_async: Whether calling it gives a coroutine.
    """

    index: int
    name: str
    pipeline: str | None
    target: Any
    method: str | None
    construction: Construction | None
    settings: Mapping[str, Any]
    timeout: float
    skip_reason: str | None = None
    is_async: bool = False

    def unstarted(
        self, status: ScanStatus, reason: str, *, error: BaseException | None = None
    ) -> ScanResult:
        """The result of this scanner when it never ran (skipped, cancelled, not startable)."""
        if error is None:
            return ScanResult(name=self.name, status=status, pipeline=self.pipeline, reason=reason)
        return ScanResult(
            name=self.name,
            status=status,
            pipeline=self.pipeline,
            reason=reason,
            error=safe_description(error),
            error_type=error_type(error),
            exception=error,
        )


@dataclass(frozen=True)
class Reporting:
    """Which per-scanner events reach a hook, at the levels they would have.

    Asked once per run, not once per scanner: a hook's level check (is the logger enabled
    for info?) costs as much as the rest of an emit site, and a run's scanners would all
    get the same answer. Hooks set during a run see its scanners' events from the next run.
    A backend that runs jobs in another process asks there (`Reporting.now`).
    """

    started: bool = True
    finished_ok: bool = True
    finished_failed: bool = True
    degraded: bool = True
    late: bool = True

    @classmethod
    def now(cls) -> Reporting:
        """What the hooks of this process want now."""
        return cls(
            started=wanted_at(ScannerStarted, DEBUG),
            finished_ok=wanted_at(ScannerFinished, INFO),
            finished_failed=wanted_at(ScannerFinished, WARNING),
            degraded=wanted_at(ScannerDegraded, WARNING),
            late=wanted_at(LateResultDropped, INFO),
        )

    def finished(self, result: ScanResult) -> bool:
        """Whether ``scanner.finished`` for *result* is wanted."""
        return self.finished_failed if result.status in FAILED else self.finished_ok


@dataclass(frozen=True)
class JobOptions:
    """What every scanner of one run shares.

    Attributes:
        normalize: Checks and normalizes one finding (None drops it).
        tool_logs: Gathers each scanner's log entries from its state, or None.
        config: The application config, for classes whose constructor takes it.
        construct: Builds scanner classes instead of the construction rule, or None.
        run_id: The run's identifier, on its events.
        clock: The clock that times scanners and deadlines.
        run_started: When the run started, on *clock*.
        reporting: Which scanner events anyone wants (asked once per run: see `Reporting`).
        deadline_limit: The seconds of the run's own deadline (`deadline_seconds`, or an
            enclosing one), for a scanner that passes it.
        deadline_why: Which deadline that is, in words.
    """

    normalize: Normalizer
    tool_logs: LogCollector | None
    config: Mapping[str, Any] | None
    construct: Constructor | None
    run_id: str
    clock: Clock
    run_started: float
    reporting: Reporting = field(default_factory=Reporting.now)
    deadline_limit: float = 0.0
    deadline_why: str = "the run's deadline_seconds"


_MATERIALIZING = threading.Lock()


class LazyRecorder(ScanRecorder):
    """A `ScanRecorder` that sets itself up on the first call or event it sees.

    Most scanners of a big run see no policy event at all; for them a recorder's lock,
    counters and timeline (and their snapshot) would be the largest part of what the
    executor spends on them. Until then it answers with empty statistics.
    """

    __slots__ = ("_ready",)

    def __init__(self, scanner: str, pipeline: str | None = None, *, run_id: str = "") -> None:
        """Note who records; set up nothing else yet."""
        self.scanner = scanner
        self.pipeline = pipeline
        self.run_id = run_id
        self.started = time.monotonic()
        self._ready = False

    def _set_up(self) -> None:
        with _MATERIALIZING:  # two threads of one scanner (a fan-out) may arrive together
            if not self._ready:
                ScanRecorder.__init__(
                    self, self.scanner, self.pipeline, run_id=self.run_id, started=self.started
                )
                self._ready = True

    def count_call(self, *, failed: bool) -> None:
        """Count one call (see `ScanRecorder.count_call`)."""
        if not self._ready:
            self._set_up()
        ScanRecorder.count_call(self, failed=failed)

    def observe(self, event: Event) -> None:
        """Count what *event* says happened (see `ScanRecorder.observe`)."""
        if not self._ready:
            self._set_up()
        ScanRecorder.observe(self, event)

    def snapshot(self) -> CallStats:
        """The counts so far (none, shared, when nothing happened)."""
        return ScanRecorder.snapshot(self) if self._ready else NO_CALLS

    def timeline(self) -> tuple[TimelineEntry, ...]:
        """The moments noted so far."""
        return ScanRecorder.timeline(self) if self._ready else ()


class Returned:
    """What a scanner returned: never None, so a finished call is told from an abandoned one."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value


class ScanJob(LazyRecorder):
    """One scanner being run: made when it starts, finished by whoever takes its outcome.

    A job is also its scanner's recorder (set up lazily, on the first policy event): the
    executor makes one object per scanner, not two. As a recorder, ``started`` is on
    `time.monotonic` (the timeline's origin); the job's own start is ``began``, on the run's
    clock.
    """

    __slots__ = (
        "began",
        "collected",
        "deadline",
        "logs",
        "options",
        "planned",
        "raw_count",
        "returned_at",
        "run_limited",
        "state",
        "view",
    )

    def __init__(
        self,
        planned: PlannedScanner,
        state: Mapping[str, Any],
        options: JobOptions,
        began: float,
        deadline: Deadline,
    ) -> None:
        # The recorder's part, without a call to its constructor: once per scanner.
        self.scanner = planned.name
        self.pipeline = planned.pipeline
        self.run_id = options.run_id
        self.started = began if type(options.clock) is SystemClock else time.monotonic()
        self._ready = False
        self.planned = planned
        self.state = state
        self.options = options
        self.began = began
        self.deadline = deadline
        self.view: DictView | None = None
        self.collected: Any = None
        self.logs: list[Any] | None = None  # its tool logs, once gathered
        self.returned_at: float | None = None
        self.raw_count = 0
        # Whether the run's deadline ends it before its own limit (set by the run).
        self.run_limited = False

    # -- 1. the timed part, in the scanner's own context -------------------------------------

    def enter(self) -> Callable[..., Any]:
        """Set up the scanner's context and return what to call with its state view.

        Called in the scanner's own context, where it runs (a worker thread, a task).
        """
        planned = self.planned
        options = self.options
        CURRENT_SCAN.set(self)
        if _BOUND:  # structlog's variables for the scanner, known: set them directly
            _BOUND[0].set(planned.name)
            _BOUND[1].set(planned.pipeline)
        elif "structlog" in sys.modules:  # the application logs with structlog: bind it
            bind_scanner(planned.name, planned.pipeline)
        view = self.view = state_view(self.state)
        collector = options.tool_logs
        if collector is not None:
            self.collected = collector.start(view)
        if planned.construction is None and planned.method is None:
            scan = planned.target  # a function: called as it is
        else:
            scan = self._callable()
        if options.reporting.started:
            emit_quietly(ScannerStarted(planned.name, planned.pipeline, options.run_id))
        return scan  # type: ignore[no-any-return]

    def _callable(self) -> Callable[..., Any]:
        planned = self.planned
        target = planned.target
        if planned.construction is not None:
            construct = self.options.construct
            if construct is not None:
                target = construct(target, planned.settings, self.options.config)
            else:
                target = planned.construction.build(target, planned.settings, self.options.config)
        if planned.method is None:
            return target  # type: ignore[no-any-return]
        return getattr(target, planned.method)  # type: ignore[no-any-return]

    def invoke(self) -> Returned:
        """Run the scanner (synchronously, on this thread); raise what it raised."""
        try:
            scan = self.enter()
            raw = scan(self.view)
            if type(raw) is not list and inspect.isawaitable(raw):  # a sync callable's coroutine
                raw = _await_here(raw)
        finally:
            self.returned_at = self.options.clock.monotonic()
        self.raw_count = len(raw) if isinstance(raw, list) else 0
        return Returned(raw)

    # -- 3. the untimed part ------------------------------------------------------------------

    def finish(self, returned: Returned | None, error: BaseException | None) -> ScanResult:
        """Turn the scanner's outcome into its result and report it. Never raises."""
        return self.finish_with(returned.value if returned is not None else None, error)

    def finish_with(self, raw: Any, error: BaseException | None) -> ScanResult:
        """`finish`, given what the scanner returned (*raw*) or raised (*error*)."""
        try:
            return self._finish(raw, error)
        except BaseException as broken:  # a bug here must not lose the scanner's slot
            return self._crashed(broken)
        finally:
            view = self.view
            if view is not None:  # _release(done=True), without its call
                view._seen.clear()  # noqa: SLF001 - see _release
                self.view = self.collected = None

    def detach(self) -> None:
        """Gather the tool logs of a scanner that returned, and let its state view go.

        Called right after its outcome was taken, where it ran: the view need not live on
        until the result is built (a run may hand many results over at once).
        """
        self.logs = self._tool_logs(running=False)
        self._release(done=True)

    def _release(self, *, done: bool) -> None:
        # The run keeps its jobs until it ends: their views of the state need not live on.
        # Views refer to each other through their registry; once the scanner is done with
        # them, clearing it lets them go at once rather than at the next cyclic collection
        # (which would otherwise find every finished scanner's copies still young).
        if done and self.view is not None:
            release_views(self.view)
        self.view = self.collected = None

    def _finish(self, raw: Any, error: BaseException | None) -> ScanResult:
        # The scan is over: the events below are the run's, not the scanner's statistics
        # (without this, every one of them would set up and feed its recorder).
        CURRENT_SCAN.set(None)
        planned = self.planned
        returned_at = self.returned_at
        if returned_at is None:
            returned_at = self.options.clock.monotonic()
        if returned_at > self.deadline.at:
            # It ran past its limit, and only returned because the timer could not act in
            # time (C code holding the GIL delays it): a timeout all the same.
            self.late(error)
            return self._returned_late(returned_at - self.began)
        duration = returned_at - self.began
        tool_logs = self.logs
        if tool_logs is None:
            collector = self.options.tool_logs
            if collector is None or self.view is None:
                tool_logs = []
            else:
                try:  # _tool_logs(running=False), without its call
                    tool_logs = collector.collect(self.view, self.collected, running=False)
                except Exception:  # a broken collector costs the entries, never the result
                    tool_logs = []
        calls = self.snapshot() if self._ready else NO_CALLS
        if error is not None:
            return self._report(
                ScanResult(
                    name=planned.name,
                    status=_failure_status(error),
                    error=safe_description(error),
                    duration=duration,
                    pipeline=planned.pipeline,
                    error_type=error_type(error),
                    exception=error,
                    traceback=safe_traceback(error),
                    tool_logs=tool_logs,
                    calls=calls,
                    timeline=self.timeline(),
                    started_at=self.began - self.options.run_started,
                    timeout_seconds=error.limit
                    if isinstance(error, ScanTimeout)
                    else planned.timeout,
                )
            )
        if not isinstance(raw, list):
            text = f"TypeError: scanner returned {type(raw).__name__}, expected a list"
            return self._report(
                ScanResult(
                    name=planned.name,
                    status=ScanStatus.ERROR,
                    error=text,
                    duration=duration,
                    pipeline=planned.pipeline,
                    error_type="TypeError",
                    tool_logs=tool_logs,
                    calls=calls,
                    timeline=self.timeline(),
                    started_at=self.began - self.options.run_started,
                    timeout_seconds=planned.timeout,
                )
            )
        options = self.options
        candidates = _normalized(raw, planned.name, options.normalize) if raw else []
        # The result of most scanners: positional, as ScanResult lists its fields.
        result = ScanResult(
            planned.name,
            ScanStatus.OK,
            candidates,
            None,
            duration,
            planned.pipeline,
            len(raw) - len(candidates),
            False,  # noqa: FBT003 - abandoned
            None,
            None,
            None,
            None,
            tool_logs,
            calls,
            self.timeline() if calls is not NO_CALLS else (),
            self.began - options.run_started,
            planned.timeout,
        )
        if calls is not NO_CALLS:
            return self._report(result)
        if options.reporting.finished_ok:  # nothing happened inside: not degraded
            report_finished(result, options)
        return result

    def _returned_late(self, duration: float) -> ScanResult:
        """The timeout of a scanner that returned past its deadline.

        Of whichever limit it passed: its own, or the run's when that came first.
        """
        if self.run_limited:
            options = self.options
            return self.timed_out(
                running=False,
                duration=duration,
                limit=options.deadline_limit,
                why=options.deadline_why,
            )
        return self.timed_out(running=False, duration=duration)

    def timed_out(
        self,
        *,
        running: bool,
        duration: float | None = None,
        limit: float | None = None,
        why: str = "its timeout_seconds",
    ) -> ScanResult:
        """The result of a scanner that passed its deadline, reported (never raises).

        *running*: its thread is still running it (abandoned), so its tool logs are copied.
        """
        try:
            planned = self.planned
            limit = planned.timeout if limit is None else limit
            if duration is None:
                duration = self.options.clock.monotonic() - self.began
            return self._report(
                ScanResult(
                    name=planned.name,
                    status=ScanStatus.TIMEOUT,
                    error=f"ScanTimeout: {planned.name} timed out after {limit:g}s ({why})",
                    duration=duration,
                    pipeline=planned.pipeline,
                    error_type="ScanTimeout",
                    tool_logs=self.logs
                    if self.logs is not None
                    else self._tool_logs(running=running),
                    calls=self.snapshot(),
                    timeline=self.timeline(),
                    abandoned=running,
                    started_at=self.began - self.options.run_started,
                    timeout_seconds=limit,
                ),
                timeout=limit,
            )
        except BaseException as broken:
            return self._crashed(broken)
        finally:
            self._release(done=not running)

    def late(self, error: BaseException | None) -> None:
        """Report that a scanner already given up on returned after all: its result is dropped."""
        if self.options.reporting.late:
            ran_for = (self.returned_at or self.options.clock.monotonic()) - self.began
            emit_quietly(
                LateResultDropped(
                    self.planned.name,
                    self.planned.pipeline,
                    round(ran_for, 3),
                    self.raw_count if error is None else 0,
                    "ok" if error is None else "error",
                    self.options.run_id,
                )
            )

    def _tool_logs(self, *, running: bool) -> list[Any]:
        collector = self.options.tool_logs
        if collector is None or self.view is None:
            return []
        try:
            return collector.collect(self.view, self.collected, running=running)
        except Exception:  # a broken collector costs the entries, never the result
            return []

    def _crashed(self, broken: BaseException) -> ScanResult:
        planned = self.planned
        return ScanResult(
            name=planned.name,
            status=ScanStatus.ERROR,
            error=f"resilient_scan failed to record this scanner: {safe_description(broken)}",
            pipeline=planned.pipeline,
            error_type=error_type(broken),
            exception=broken,
            started_at=self.began - self.options.run_started,
        )

    def _report(self, result: ScanResult, *, timeout: float | None = None) -> ScanResult:
        report_finished(result, self.options, timeout)
        return result


def report_finished(result: ScanResult, options: JobOptions, timeout: float | None = None) -> None:
    """Emit ``scanner.finished`` for *result*, and ``scanner.degraded`` if it is, as wanted.

    Wherever the scanner ran: on this process's threads, a loop, or a Dask worker.
    """
    status = result.status
    reporting = options.reporting
    finished = reporting.finished_failed if status in FAILED else reporting.finished_ok
    if not finished and not reporting.degraded:
        return
    calls = result.calls
    if calls is NO_CALLS:  # no policy event inside: no retry, not degraded
        attempts, degraded = (0 if status in NOT_RUN else 1), False
    else:
        attempts, degraded = result.attempts, result.degraded
    if finished:
        if timeout is None and status is ScanStatus.TIMEOUT:
            timeout = result.timeout_seconds  # the limit that fired (its own attempt timeout)
        emit_quietly(
            ScannerFinished(
                result.name,
                result.pipeline,
                status._value_,  # the value, without Enum's descriptor: once per scanner
                len(result.candidates),
                result.dropped,
                round(result.duration, 3),
                attempts,
                result.error_type,
                result.error,
                result.reason,
                timeout,
                degraded,
                options.run_id,
                result.traceback,
                result.exception,
            )
        )
    if degraded and reporting.degraded:
        emit_quietly(
            ScannerDegraded(
                result.name,
                result.pipeline,
                calls.failed_calls,
                calls.timeouts,
                calls.circuit_open,
                calls.open_breakers,
                calls.summary(),
                options.run_id,
            )
        )


#: structlog's context variables for ``scanner`` and ``pipeline``, once known.
_BOUND: list[contextvars.ContextVar[Any]] = []


def bind_scanner(scanner: str, pipeline: str | None) -> None:
    """Bind ``scanner`` and ``pipeline`` with `structlog.contextvars` in this context.

    The first time through `structlog.contextvars.bind_contextvars`; then straight through
    the variables it returned tokens for (structlog keeps one per key for good), which saves
    most of its cost on every scanner of a big run.
    """
    if _BOUND:
        scanner_var, pipeline_var = _BOUND
        scanner_var.set(scanner)
        pipeline_var.set(pipeline)
        return
    import structlog  # noqa: PLC0415 - imported already: checked by the caller

    tokens = structlog.contextvars.bind_contextvars(scanner=scanner, pipeline=pipeline)
    _BOUND[:] = [tokens["scanner"].var, tokens["pipeline"].var]


def _normalized(raw: list[Any], scanner: str, normalize: Normalizer) -> list[dict[str, Any]]:
    candidates: list[dict[str, Any]] = []
    append = candidates.append
    for item in raw:
        try:
            # Plain data in the report: a candidate may hold views of the state. (A flat
            # dict, the usual candidate, cannot: checked here at C speed.)
            if type(item) is not dict or not _ATOMS.issuperset(map(type, item.values())):
                item = to_plain(item)  # noqa: PLW2901 - the same finding, made plain
            candidate = normalize(item, scanner)
        except Exception:  # noqa: S112 - one bad candidate is dropped and counted on its own
            continue
        if candidate is not None:
            append(candidate)
    return candidates


def _failure_status(error: BaseException) -> ScanStatus:
    if isinstance(error, ScanTimeout):
        return ScanStatus.TIMEOUT
    if isinstance(error, CircuitOpenError):
        return ScanStatus.CIRCUIT_OPEN
    return ScanStatus.ERROR


def safe_description(error: BaseException) -> str:
    """``"Type: message"``; a placeholder when even describing it raises (a BaseException)."""
    try:
        return describe_error(error)
    except BaseException:
        name = type(error).__name__
        return f"{name}: <unprintable {name}>"


def safe_traceback(error: BaseException) -> str | None:
    """The traceback text of *error* (no locals), or None when it cannot be formatted."""
    try:
        return format_traceback(error)
    except BaseException:
        return None


def _await_here(awaitable: Awaitable[Any]) -> Any:
    """Run a coroutine returned by a sync callable to its end, on this (worker) thread."""
    import asyncio  # noqa: PLC0415 - only for this odd case; async support loads lazily

    async def wait() -> Any:
        return await awaitable

    return asyncio.run(wait())


#: How often a waiter re-reads a clock that is not the system's (a test's fake clock).
FAKE_CLOCK_POLL: Final = 0.005


__all__ = [
    "JobOptions",
    "LogCollector",
    "PlannedScanner",
    "Returned",
    "ScanJob",
    "report_finished",
    "safe_description",
]
