"""The scanner executor: many scanners at once, none able to hold up or break the others."""

from __future__ import annotations

import queue
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

import structlog

from . import _validate
from ._candidates import PRIORITIES, merge_candidates, normalize_candidate
from ._errors import CircuitOpenError, ConfigError, ScanTimeout
from ._logging import describe_error, log
from ._scanner import ScannerInfo, ScannerLike, ScannerRegistry, scan_callable, scanner_info
from ._state import DictView, appended_tool_logs, private_tool_logs, state_view
from ._stats import CallStats, current_stats
from ._threads import POOL, Call


class ScanStatus(str, Enum):
    """How a scanner's run ended. Compares equal to its string value (``"ok"``, ...)."""

    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    CIRCUIT_OPEN = "circuit_open"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        """Return the plain value, e.g. ``"ok"``."""
        return self.value


#: Normalizes one raw candidate for a scanner, or returns None to drop it as invalid.
Normalizer = Callable[[object, str], "dict[str, Any] | None"]
#: Merges the results (in scanner order) into the report's candidates.
Merger = Callable[[Sequence["ScanResult"]], "list[dict[str, Any]]"]


@dataclass(frozen=True)
class ScanResult:
    """One scanner's outcome.

    Attributes:
        name: The scanner's name.
        status: How it ended (`ScanStatus`, equal to ``"ok"``, ``"error"``, ...).
        candidates: Its valid, normalized candidates (empty unless ``"ok"``).
        error: ``"Type: message"`` for a failure, else None.
        duration: Seconds it ran (0.0 if it never started).
        pipeline: Its pipeline, if it has one.
        dropped: Candidates it returned that were invalid and dropped.
        retries: Retries its retry layers scheduled.
        cache_hits: Calls its cache layers answered.
        abandoned: Whether it was still running when the executor gave up on it.
        reason: Why it was skipped or cancelled, when it was.
    """

    name: str
    status: ScanStatus
    candidates: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    duration: float = 0.0
    pipeline: str | None = None
    dropped: int = 0
    retries: int = 0
    cache_hits: int = 0
    abandoned: bool = False
    reason: str | None = None

    @property
    def attempts(self) -> int:
        """Calls made: 1 plus retries for a scanner that ran, 0 for one that did not."""
        if self.status in (ScanStatus.SKIPPED, ScanStatus.CANCELLED):
            return 0
        return 1 + self.retries

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready data."""
        return {
            "name": self.name,
            "status": self.status.value,
            "pipeline": self.pipeline,
            "candidates": self.candidates,
            "error": self.error,
            "duration": round(self.duration, 4),
            "dropped": self.dropped,
            "attempts": self.attempts,
            "cache_hits": self.cache_hits,
            "abandoned": self.abandoned,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ScanReport:
    """The outcome of one `ScanExecutor.run`.

    Attributes:
        results: One `ScanResult` per scanner given, in the order given.
        candidates: The merged candidates, ordered by priority then ticker; the same whatever
            order scanners finished in, concurrent or sequential.
        tool_logs: Every entry scanners appended to ``state["tool_logs"]``, once each, in
            scanner order.
        duration: Wall seconds of the run.
        mode: ``"concurrent"`` or ``"sequential"``.
        max_workers: The most scanners that ran at once.
        abandoned: Scanners of this run still running when the run returned.
    """

    results: list[ScanResult]
    candidates: list[dict[str, Any]]
    tool_logs: list[Any]
    duration: float
    mode: str
    max_workers: int
    abandoned: int = 0

    @property
    def counts(self) -> dict[str, int]:
        """Scanners per status, every status present (0 when none)."""
        counts = dict.fromkeys((status.value for status in ScanStatus), 0)
        for result in self.results:
            counts[result.status.value] += 1
        return counts

    @property
    def speedup(self) -> float:
        """Sum of scanner durations divided by the wall time: the gain over back to back."""
        busy = sum(result.duration for result in self.results)
        return busy / self.duration if self.duration > 0 else 0.0

    @property
    def dropped(self) -> int:
        """Invalid candidates dropped, over all scanners."""
        return sum(result.dropped for result in self.results)

    @property
    def failed(self) -> list[ScanResult]:
        """Results with status error, timeout or circuit_open."""
        bad = (ScanStatus.ERROR, ScanStatus.TIMEOUT, ScanStatus.CIRCUIT_OPEN)
        return [result for result in self.results if result.status in bad]

    def result(self, name: str) -> ScanResult:
        """Return the result of the scanner named *name*."""
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(f"no scanner named {name!r} in this report")

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {
            "duration": round(self.duration, 4),
            "mode": self.mode,
            "max_workers": self.max_workers,
            "speedup": round(self.speedup, 2),
            "counts": self.counts,
            "dropped": self.dropped,
            "abandoned": self.abandoned,
            "results": [result.to_dict() for result in self.results],
            "candidates": self.candidates,
            "tool_logs": self.tool_logs,
        }


_EXECUTION_KEYS = ("concurrent", "max_workers", "timeout_seconds", "deadline_seconds")


def _settings_of(
    value: object, where: str, checks: Mapping[str, Callable[[object, str], object]]
) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(where, f"must be a table of settings, got {value!r}")
    settings = dict(value)
    for key, check in checks.items():
        if key in settings:
            settings[key] = check(settings[key], f"{where}.{key}")
    return settings


_SCANNER_CHECKS: Mapping[str, Callable[[object, str], object]] = {
    "enabled": _validate.boolean,
    "timeout_seconds": _validate.seconds,
}
_PIPELINE_CHECKS: Mapping[str, Callable[[object, str], object]] = {"enabled": _validate.boolean}


@dataclass(frozen=True)
class _Planned:
    index: int
    item: Any
    info: ScannerInfo
    settings: Mapping[str, Any]
    timeout: float
    skip_reason: str | None


@dataclass
class _Running:
    planned: _Planned
    call: Call[_Output]
    view: DictView
    tool_logs: list[Any] | None
    stats: CallStats
    started: float
    deadline: float


@dataclass(frozen=True)
class _Output:
    candidates: list[dict[str, Any]]
    dropped: int
    error: str | None = None


@dataclass(frozen=True)
class ScanExecutor:
    """Runs scanners on daemon worker threads and collects one report.

    Attributes:
        concurrent: Run up to *max_workers* scanners at once; False runs them one by one,
            each still watched by its timeout.
        max_workers: The most scanners running at once.
        timeout_seconds: Each scanner's limit, counted from the moment it starts (time queued
            for a worker does not count). At the limit it is marked ``"timeout"`` and the run
            goes on without it.
        deadline_seconds: A limit for the whole run: scanners still running then are marked
            ``"timeout"``, those not started are ``"cancelled"`` and never run.
        scanners: Per-scanner settings by name: ``enabled``, ``timeout_seconds``, and
            anything else, handed to a scanner class's constructor.
        pipelines: Per-pipeline settings by name: ``enabled``.
        normalize: Checks and normalizes one candidate (default `normalize_candidate`).
        merge: Merges the results' candidates (default `merge_candidates`).
    """

    concurrent: bool = True
    max_workers: int = 8
    timeout_seconds: float = 30.0
    deadline_seconds: float | None = None
    scanners: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    pipelines: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    normalize: Normalizer = field(default=normalize_candidate, repr=False)
    merge: Merger = field(default=merge_candidates, repr=False)

    def __post_init__(self) -> None:
        """Validate every setting, naming the bad key."""
        _validate.boolean(self.concurrent, "concurrent")
        _validate.integer(self.max_workers, "max_workers", minimum=1)
        set_ = object.__setattr__
        set_(self, "timeout_seconds", _validate.seconds(self.timeout_seconds, "timeout_seconds"))
        if self.deadline_seconds is not None:
            set_(
                self,
                "deadline_seconds",
                _validate.seconds(self.deadline_seconds, "deadline_seconds"),
            )
        scanners = _settings_of(self.scanners, "scanners", {})
        pipelines = _settings_of(self.pipelines, "pipelines", {})
        set_(
            self,
            "scanners",
            MappingProxyType(
                {
                    name: _settings_of(value, f"scanners.{name}", _SCANNER_CHECKS)
                    for name, value in scanners.items()
                }
            ),
        )
        set_(
            self,
            "pipelines",
            MappingProxyType(
                {
                    name: _settings_of(value, f"pipelines.{name}", _PIPELINE_CHECKS)
                    for name, value in pipelines.items()
                }
            ),
        )
        _validate.callable_or_none(self.normalize, "normalize")
        _validate.callable_or_none(self.merge, "merge")

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **overrides: Any) -> ScanExecutor:
        """Build an executor from a config in the established shape.

        Either the whole application config ``{"discovery": {"scanner_execution": {...},
        "scanners": {NAME: {...}}, "pipelines": {NAME: {...}}}}`` or just
        ``{"scanner_execution": {...}}``. Keyword *overrides* (``normalize=``, ...) are
        passed on.

        Raises:
            ConfigError: naming the full key path of a bad or unknown value, e.g.
                ``discovery.scanner_execution.max_workers: must be an integer >= 1, got 0``.
        """
        if not isinstance(config, Mapping):
            raise ConfigError("config", f"must be a mapping, got {config!r}")
        if "discovery" in config:
            root, prefix = config["discovery"], "discovery."
            if not isinstance(root, Mapping):
                raise ConfigError("discovery", f"must be a table of settings, got {root!r}")
        elif "scanner_execution" in config:
            root, prefix = config, ""
        else:
            raise ConfigError("config", "expected a 'discovery' or 'scanner_execution' table")
        execution = root.get("scanner_execution", {})
        where = f"{prefix}scanner_execution"
        if not isinstance(execution, Mapping):
            raise ConfigError(where, f"must be a table of settings, got {execution!r}")
        _validate.reject_unknown(execution, _EXECUTION_KEYS, where)
        scanners = root.get("scanners", {})
        pipelines = root.get("pipelines", {})
        try:
            return cls(**execution, scanners=scanners, pipelines=pipelines, **overrides)
        except ConfigError as exc:
            section = where if exc.key in _EXECUTION_KEYS else prefix.rstrip(".")
            key = f"{section}.{exc.key}" if section else exc.key
            raise ConfigError(key, exc.problem) from None

    # -- running ----------------------------------------------------------------------------

    def run(
        self,
        scanners: Iterable[ScannerLike] | ScannerRegistry,
        state: Mapping[str, Any] | None = None,
    ) -> ScanReport:
        """Run *scanners* on *state* and return the report.

        Each scanner gets its own copy-on-write view of *state*: it sees the state as the
        caller passed it, never another scanner's changes, and the caller's state is never
        changed. A scanner that hangs is marked ``"timeout"`` at its limit and abandoned on
        its daemon thread; the run goes on with a fresh thread.

        Raises:
            ConfigError: before anything runs, if a scanner is not a scanner or two scanners
                share a name.
        """
        state = {} if state is None else state
        plan = self._plan(scanners)
        mode = "concurrent" if self.concurrent else "sequential"
        workers = self.max_workers if self.concurrent else 1
        started = time.monotonic()
        log.info(
            "scan.started",
            scanners=len(plan),
            mode=mode,
            max_workers=workers,
            timeout_seconds=self.timeout_seconds,
            deadline_seconds=self.deadline_seconds,
        )
        run = _Run(self, plan, state, workers, started)
        results = run.execute()
        abandoned = sum(result.abandoned for result in results)
        report = ScanReport(
            results=results,
            candidates=self.merge(results),
            tool_logs=[entry for log_entries in run.tool_logs for entry in log_entries],
            duration=time.monotonic() - started,
            mode=mode,
            max_workers=workers,
            abandoned=abandoned,
        )
        log.info(
            "scan.finished",
            duration=round(report.duration, 3),
            speedup=round(report.speedup, 2),
            candidates=len(report.candidates),
            dropped=report.dropped,
            abandoned=abandoned,
            **report.counts,
        )
        return report

    def _plan(self, scanners: Iterable[ScannerLike] | ScannerRegistry) -> list[_Planned]:
        plan: list[_Planned] = []
        seen: set[str] = set()
        for index, item in enumerate(scanners):
            info = scanner_info(item)
            if info.name in seen:
                raise ConfigError(f"scanners.{info.name}", "two scanners in this run share it")
            seen.add(info.name)
            settings = self.scanners.get(info.name, {})
            pipeline = self.pipelines.get(info.pipeline, {}) if info.pipeline else {}
            skip = None
            if settings.get("enabled") is False:
                skip = f"disabled by scanners.{info.name}.enabled"
            elif pipeline.get("enabled") is False:
                skip = f"pipeline {info.pipeline} disabled by pipelines.{info.pipeline}.enabled"
            elif not info.enabled and settings.get("enabled") is not True:
                skip = "disabled by its scanner(enabled=False)"
            timeout = settings.get("timeout_seconds", self.timeout_seconds)
            plan.append(_Planned(index, item, info, settings, timeout, skip))
        return plan


class _Run:
    """The bookkeeping of one run; lives on the caller's thread."""

    def __init__(
        self,
        executor: ScanExecutor,
        plan: list[_Planned],
        state: Mapping[str, Any],
        workers: int,
        started: float,
    ) -> None:
        self.executor = executor
        self.plan = plan
        self.state = state
        self.workers = workers
        self.deadline = (
            None if executor.deadline_seconds is None else started + executor.deadline_seconds
        )
        self.results: list[ScanResult | None] = [None] * len(plan)
        self.tool_logs: list[list[Any]] = [[] for _ in plan]
        self.finished: queue.SimpleQueue[int] = queue.SimpleQueue()

    def execute(self) -> list[ScanResult]:
        pending: deque[_Planned] = deque()
        for planned in self.plan:
            if planned.skip_reason is None:
                pending.append(planned)
            else:
                self.record(
                    planned,
                    ScanResult(
                        planned.info.name,
                        ScanStatus.SKIPPED,
                        pipeline=planned.info.pipeline,
                        reason=planned.skip_reason,
                    ),
                )
        running: dict[int, _Running] = {}
        while pending or running:
            if self.deadline is not None and time.monotonic() >= self.deadline:
                self.stop_at_deadline(pending, running)
                break
            while pending and len(running) < self.workers:
                planned = pending.popleft()
                running[planned.index] = self.start(planned)
            wake = min(entry.deadline for entry in running.values())
            try:
                index = self.finished.get(timeout=max(0.0, wake - time.monotonic()))
            except queue.Empty:
                now = time.monotonic()
                for index, entry in list(running.items()):
                    if entry.deadline <= now:
                        del running[index]
                        self.expire(entry, "its timeout")
                continue
            finished = running.pop(index, None)
            if finished is not None:
                self.complete(finished)
        return [result for result in self.results if result is not None]

    def start(self, planned: _Planned) -> _Running:
        view = state_view(self.state)
        original_logs = private_tool_logs(view, self.state)
        stats = CallStats()
        started = time.monotonic()
        deadline = started + planned.timeout
        if self.deadline is not None:
            deadline = min(deadline, self.deadline)
        index = planned.index
        finished = self.finished
        call = POOL.start_call(
            planned.info.name,
            _scan,
            (planned, view, stats, self.executor.normalize),
            {},
            deadline=deadline,
            on_done=lambda: finished.put(index),
        )
        return _Running(planned, call, view, original_logs, stats, started, deadline)

    def complete(self, entry: _Running) -> None:
        call = entry.call
        duration = call.finished_at - call.started_at
        error = call.error
        output = call.result
        candidates: list[dict[str, Any]] = []
        dropped = 0
        message: str | None
        if error is not None:
            status, message = _failure_status(error), describe_error(error)
        elif output is None or output.error is not None:
            status, message = ScanStatus.ERROR, output.error if output else "no result"
        else:
            status, message = ScanStatus.OK, None
            candidates, dropped = output.candidates, output.dropped
        call.error = call.result = None
        self.tool_logs[entry.planned.index] = appended_tool_logs(entry.view, entry.tool_logs)
        self.record(
            entry.planned,
            self.result_of(
                entry,
                status,
                duration=duration,
                error=message,
                candidates=candidates,
                dropped=dropped,
            ),
        )

    def expire(self, entry: _Running, why: str) -> None:
        if not entry.call.abandon():
            self.complete(entry)  # it finished just as its time ran out
            return
        limit = entry.deadline - entry.started
        duration = time.monotonic() - entry.started
        message = f"ScanTimeout: {entry.planned.info.name} timed out after {limit:g}s ({why})"
        self.tool_logs[entry.planned.index] = appended_tool_logs(entry.view, entry.tool_logs)
        result = self.result_of(
            entry, ScanStatus.TIMEOUT, duration=duration, error=message, candidates=[], dropped=0
        )
        self.record(entry.planned, ScanResult(**{**result.__dict__, "abandoned": True}))

    def stop_at_deadline(self, pending: deque[_Planned], running: dict[int, _Running]) -> None:
        for entry in running.values():
            self.expire(entry, "the run's deadline")
        for planned in pending:
            self.record(
                planned,
                ScanResult(
                    planned.info.name,
                    ScanStatus.CANCELLED,
                    pipeline=planned.info.pipeline,
                    reason="the run's deadline passed before it started",
                ),
            )

    @staticmethod
    def result_of(
        entry: _Running,
        status: ScanStatus,
        *,
        duration: float,
        error: str | None,
        candidates: list[dict[str, Any]],
        dropped: int,
    ) -> ScanResult:
        stats = entry.stats
        return ScanResult(
            name=entry.planned.info.name,
            status=status,
            candidates=candidates,
            error=error,
            duration=duration,
            pipeline=entry.planned.info.pipeline,
            dropped=dropped,
            retries=stats.retries,
            cache_hits=stats.cache_hits,
        )

    def record(self, planned: _Planned, result: ScanResult) -> None:
        self.results[planned.index] = result
        failed = result.status in (ScanStatus.ERROR, ScanStatus.TIMEOUT, ScanStatus.CIRCUIT_OPEN)
        (log.warning if failed else log.info)(
            "scanner.finished",
            scanner=result.name,
            pipeline=result.pipeline,
            status=result.status.value,
            candidates=len(result.candidates),
            dropped=result.dropped,
            duration=round(result.duration, 3),
            attempts=result.attempts,
            error=result.error,
            reason=result.reason,
            timeout_seconds=planned.timeout if result.status is ScanStatus.TIMEOUT else None,
        )


def _failure_status(error: BaseException) -> ScanStatus:
    if isinstance(error, ScanTimeout):
        return ScanStatus.TIMEOUT
    if isinstance(error, CircuitOpenError):
        return ScanStatus.CIRCUIT_OPEN
    return ScanStatus.ERROR


def _scan(planned: _Planned, view: DictView, stats: CallStats, normalize: Normalizer) -> _Output:
    """Run one scanner; on its worker thread, in its own context."""
    structlog.contextvars.bind_contextvars(
        scanner=planned.info.name, pipeline=planned.info.pipeline
    )
    current_stats.set(stats)
    raw = scan_callable(planned.item, planned.settings)(view)
    if not isinstance(raw, list):
        return _Output([], 0, f"TypeError: scanner returned {type(raw).__name__}, expected a list")
    name = planned.info.name
    candidates = []
    for item in raw:
        candidate = normalize(item, name)
        if candidate is not None:
            candidates.append(candidate)
    return _Output(candidates, len(raw) - len(candidates))


__all__ = ["PRIORITIES", "ScanExecutor", "ScanReport", "ScanResult", "ScanStatus"]
