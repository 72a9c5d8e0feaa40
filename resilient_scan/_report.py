"""What a run returns: one `ScanResult` per scanner and the `ScanReport` over them all."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


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
        max_workers: The limit on scanners running at once (1 in sequential mode).
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
        return [result for result in self.results if result.status in FAILED]

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
