"""What a run returns: one `ScanResult` per scanner and the `ScanReport` over them all."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ._stats import CallStats, TimelineEntry


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


#: The statuses of a scanner that ran and failed.
FAILED = frozenset({ScanStatus.ERROR, ScanStatus.TIMEOUT, ScanStatus.CIRCUIT_OPEN})
#: The statuses of a scanner that never ran.
NOT_RUN = frozenset({ScanStatus.SKIPPED, ScanStatus.CANCELLED})

#: The statistics of a scanner in which no policy layer did anything.
NO_CALLS = CallStats()


@dataclass(frozen=True, init=False)
class ScanResult:
    """One scanner's outcome.

    Attributes:
        name: The scanner's name.
        status: How it ended (`ScanStatus`, equal to ``"ok"``, ``"error"``, ...).
        candidates: Its valid, normalized findings (empty unless ``"ok"``).
        error: ``"Type: message"`` for a failure (redacted, capped), else None.
        duration: Seconds it ran (0.0 if it never started).
        pipeline: Its pipeline, if it has one.
        dropped: Findings it returned that were invalid and dropped.
        abandoned: Whether it was still running when the executor gave up on it.
        reason: Why it was skipped or cancelled, when it was.
        error_type: The exception's class name for a failure (``"KeyError"``), else None.
        exception: The exception it raised, if it raised (not part of equality).
        traceback: That exception's traceback as text, without local variables.
        tool_logs: The entries it appended to the state's tool log, in order. For a scanner
            marked ``"timeout"``: those it had appended when it was marked, copied then.
        calls: What the policy layers saw inside it (`CallStats`).
        timeline: Moments of its run (retries, timeouts, cache hits...), for the report.
        started_at: When it started, in seconds after the run started (0.0 if it never did).
        timeout_seconds: The limit that applied to it (the one that fired, for a timeout).
    """

    name: str
    status: ScanStatus
    candidates: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    duration: float = 0.0
    pipeline: str | None = None
    dropped: int = 0
    abandoned: bool = False
    reason: str | None = None
    error_type: str | None = None
    exception: BaseException | None = field(default=None, repr=False, compare=False)
    traceback: str | None = field(default=None, repr=False, compare=False)
    tool_logs: list[Any] = field(default_factory=list)
    calls: CallStats = NO_CALLS
    timeline: tuple[TimelineEntry, ...] = field(default=(), repr=False, compare=False)
    started_at: float = field(default=0.0, compare=False)
    timeout_seconds: float | None = None

    def __init__(  # noqa: PLR0917 - positional, as the dataclass's own __init__ was
        self,
        name: str,
        status: ScanStatus,
        candidates: list[dict[str, Any]] | None = None,
        error: str | None = None,
        duration: float = 0.0,
        pipeline: str | None = None,
        dropped: int = 0,
        abandoned: bool = False,  # noqa: FBT001, FBT002 - a field, as the dataclass had it
        reason: str | None = None,
        error_type: str | None = None,
        exception: BaseException | None = None,
        traceback: str | None = None,
        tool_logs: list[Any] | None = None,
        calls: CallStats = NO_CALLS,
        timeline: tuple[TimelineEntry, ...] = (),
        started_at: float = 0.0,
        timeout_seconds: float | None = None,
    ) -> None:
        """Create a result; the fields are as documented above."""
        # The executor makes one per scanner: stored straight into the instance's dict,
        # which costs a fraction of the generated frozen __init__ (object.__setattr__ per
        # field). The class stays frozen: assigning a field raises.
        values = self.__dict__
        values["name"] = name
        values["status"] = status
        values["candidates"] = [] if candidates is None else candidates
        values["error"] = error
        values["duration"] = duration
        values["pipeline"] = pipeline
        values["dropped"] = dropped
        values["abandoned"] = abandoned
        values["reason"] = reason
        values["error_type"] = error_type
        values["exception"] = exception
        values["traceback"] = traceback
        values["tool_logs"] = [] if tool_logs is None else tool_logs
        values["calls"] = calls
        values["timeline"] = timeline
        values["started_at"] = started_at
        values["timeout_seconds"] = timeout_seconds

    @property
    def retries(self) -> int:
        """Retries its retry layers scheduled."""
        return self.calls.retries

    @property
    def cache_hits(self) -> int:
        """Calls its cache layers answered."""
        return self.calls.cache_hits

    @property
    def attempts(self) -> int:
        """How hard it tried: 1 for its run, plus every retry scheduled inside it.

        The executor runs a scanner once; the retries are those of the retry layers it
        called (all its calls together, as `retries`). 0 for a scanner that did not run.
        """
        if self.status in NOT_RUN:
            return 0
        return 1 + self.calls.retries

    @property
    def degraded(self) -> bool:
        """Whether it returned normally (``"ok"``) although calls inside it failed."""
        return self.status is ScanStatus.OK and self.calls.troubled

    @property
    def degraded_reason(self) -> str | None:
        """What failed inside a degraded scanner (``"9 failed calls, circuit x open"``)."""
        return self.calls.summary() if self.degraded else None

    @property
    def finished_at(self) -> float:
        """When it ended, in seconds after the run started."""
        return self.started_at + self.duration

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready data (see `ScanReport.to_json` for odd values)."""
        return {
            "name": self.name,
            "status": self.status.value,
            "pipeline": self.pipeline,
            "candidates": self.candidates,
            "error": self.error,
            "error_type": self.error_type,
            "duration": round(self.duration, 4),
            "started_at": round(self.started_at, 4),
            "dropped": self.dropped,
            "attempts": self.attempts,
            "cache_hits": self.cache_hits,
            "abandoned": self.abandoned,
            "reason": self.reason,
            "degraded": self.degraded,
            "degraded_reason": self.degraded_reason,
            "timeout_seconds": self.timeout_seconds,
            "calls": self.calls.to_dict(),
            "tool_logs": self.tool_logs,
            "timeline": [
                {"at": e.at, "kind": e.kind, "detail": e.detail, "duration": e.duration}
                for e in self.timeline
            ],
        }


#: Normalizes one raw finding for a scanner, or returns None to drop it as invalid.
Normalizer = Callable[[object, str], "dict[str, Any] | None"]
#: Merges the results (in scanner order) into the report's findings.
Merger = Callable[[Sequence[ScanResult]], "list[dict[str, Any]]"]


@dataclass(frozen=True)
class ScanReport:
    """The outcome of one `ScanExecutor.run`.

    Attributes:
        results: One `ScanResult` per scanner given, in the order given.
        candidates: The merged findings; the same whatever order scanners finished in,
            concurrent or sequential.
        tool_logs: Every entry scanners appended to the state's tool log, once each, in
            scanner order.
        duration: Wall seconds of the run.
        mode: ``"concurrent"`` or ``"sequential"``.
        max_workers: The limit on scanners running at once (1 in sequential mode).
        abandoned: Scanners of this run still running when the run returned.
        started_at: When the run started (wall-clock seconds since the epoch).
        run_id: An identifier of the run, also on its events.
        merge_error: Why the executor's ``merge`` hook failed (``"Type: message"``), or
            None. Then *candidates* holds every scanner's findings, unmerged, in scanner
            order: the hook's bug costs the merge, never a finding.
    """

    results: list[ScanResult]
    candidates: list[dict[str, Any]]
    tool_logs: list[Any]
    duration: float
    mode: str
    max_workers: int
    abandoned: int = 0
    started_at: float = 0.0
    run_id: str = ""
    merge_error: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        """Scanners per status, every status present (0 when none)."""
        counts = dict.fromkeys((status.value for status in ScanStatus), 0)
        for result in self.results:
            counts[result.status._value_] += 1  # the value, without Enum's descriptor
        return counts

    @property
    def speedup(self) -> float:
        """Sum of scanner durations divided by the wall time: the gain over back to back."""
        busy = sum(result.duration for result in self.results)
        return busy / self.duration if self.duration > 0 else 0.0

    @property
    def dropped(self) -> int:
        """Invalid findings dropped, over all scanners."""
        return sum(result.dropped for result in self.results)

    @property
    def failed(self) -> list[ScanResult]:
        """Results with status error, timeout or circuit_open."""
        return [result for result in self.results if result.status in FAILED]

    @property
    def degraded(self) -> list[ScanResult]:
        """Results that are ``"ok"`` although calls inside them failed."""
        return [result for result in self.results if result.degraded]

    def result(self, name: str) -> ScanResult:
        """Return the result of the scanner named *name*."""
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(f"no scanner named {name!r} in this report")

    def to_dict(self) -> dict[str, Any]:
        """Return the report as data (`to_json` makes any value in it valid JSON)."""
        return {
            "run_id": self.run_id,
            "started_at": self.started_at,
            "duration": round(self.duration, 4),
            "mode": self.mode,
            "max_workers": self.max_workers,
            "speedup": round(self.speedup, 2),
            "counts": self.counts,
            "dropped": self.dropped,
            "abandoned": self.abandoned,
            "degraded": [result.name for result in self.degraded],
            "results": [result.to_dict() for result in self.results],
            "candidates": self.candidates,
            "merge_error": self.merge_error,
            "tool_logs": self.tool_logs,
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """The report as JSON text, valid per RFC 8259 whatever the scanners put in it.

        NaN and infinities become null; values JSON cannot hold (self-references, objects
        whose ``__str__`` raises, integers too long to print) become placeholder strings.
        """
        from ._jsonsafe import dumps  # noqa: PLC0415 - only reports written as JSON need it

        return dumps(self.to_dict(), indent=indent)

    def to_html(self, *, title: str = "resilient_scan report") -> str:
        """One self-contained HTML page: a timeline of the scanners, counts, the findings.

        The page loads nothing from the network; open it in any browser.
        """
        from ._html import render_report  # noqa: PLC0415 - only reports shown as pages need it

        return render_report(self, title=title)
