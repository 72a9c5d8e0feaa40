"""What the policy layers did inside one scanner: counted from their events.

The executor puts a fresh `ScanRecorder` into the context of each scanner it runs
(`resilient_scan._config.CURRENT_SCAN`). The context follows the scanner's work into the
threads the library starts, so every event a layer emits inside the scanner reaches the
recorder (see `resilient_scan._instrument.emit`), besides the hooks. Calls are counted by
the outermost policy wrapper of each call (`count_call`). Outside the executor there is
no recorder, and all of this costs one context-variable read.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import ClassVar

from ._events import (
    BreakerRejected,
    BreakerStateChanged,
    CacheHit,
    CacheMiss,
    Event,
    RateLimitRejected,
    RateLimitWaited,
    RetryExhausted,
    RetryScheduled,
    TimeoutFired,
)

#: The most timeline entries kept per scanner (a scanner may make thousands of calls).
TIMELINE_LIMIT = 200


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One moment in a scanner's run, for the report's timeline.

    Attributes:
        at: Seconds since the scanner started.
        kind: ``retry``, ``gave_up``, ``timeout``, ``circuit_open``, ``breaker_open``,
            ``cache_hit``, ``rate_limit``.
        detail: A short description.
        duration: How long it lasted, where that means something (a retry's wait).
    """

    at: float
    kind: str
    detail: str
    duration: float = 0.0


@dataclass(frozen=True, slots=True)
class CallStats:
    """What the policy layers saw inside one scanner.

    Attributes:
        calls: Calls through policy-wrapped functions (each counted once, by its outermost
            layer).
        failed_calls: Those that raised to the scanner after every layer (retries
            included), whether or not the scanner caught the exception.
        retries: Retries scheduled.
        timeouts: Attempts that passed their timeout.
        circuit_open: Calls a circuit breaker rejected.
        cache_hits: Calls answered from a cache.
        cache_misses: Calls that had to load.
        rate_limited: Calls that waited for a rate-limit permit.
        rate_limit_rejections: Calls refused for want of a permit in time.
        open_breakers: Breakers seen open (rejecting or just tripped), in order seen.
    """

    calls: int = 0
    failed_calls: int = 0
    retries: int = 0
    timeouts: int = 0
    circuit_open: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    rate_limited: int = 0
    rate_limit_rejections: int = 0
    open_breakers: tuple[str, ...] = ()

    @property
    def troubled(self) -> bool:
        """Whether any call failed outright, or a breaker refused one."""
        return bool(self.failed_calls or self.circuit_open or self.rate_limit_rejections)

    def summary(self) -> str:
        """``"9 failed calls, circuit options-api open"``: what went wrong, in words."""
        parts = []
        if self.failed_calls:
            parts.append(_count(self.failed_calls, "failed call"))
        if self.timeouts:
            parts.append(_count(self.timeouts, "timeout"))
        if self.circuit_open and not self.open_breakers:
            parts.append(_count(self.circuit_open, "call rejected by an open circuit"))
        if self.rate_limit_rejections:
            parts.append(_count(self.rate_limit_rejections, "call refused by a rate limit"))
        parts.extend(f"circuit {name} open" for name in self.open_breakers)
        return ", ".join(parts)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready data."""
        return {
            "calls": self.calls,
            "failed_calls": self.failed_calls,
            "retries": self.retries,
            "timeouts": self.timeouts,
            "circuit_open": self.circuit_open,
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
            "rate_limited": self.rate_limited,
            "rate_limit_rejections": self.rate_limit_rejections,
            "open_breakers": list(self.open_breakers),
        }


def _count(number: int, noun: str) -> str:
    if number == 1:
        return f"1 {noun}"
    head, _, tail = noun.partition(" ")
    return f"{number} {head}s{' ' + tail if tail else ''}" if tail else f"{number} {noun}s"


class ScanRecorder:
    """The live counters of one running scanner (thread-safe: scanners may fan out)."""

    #: The event types it counts or notes: inside a scanner, no other event is built for
    #: its sake (an attempt's events, say, are built only when a hook takes them).
    events: ClassVar[frozenset[type[Event]]] = frozenset(
        {
            BreakerRejected,
            BreakerStateChanged,
            CacheHit,
            CacheMiss,
            RateLimitRejected,
            RateLimitWaited,
            RetryExhausted,
            RetryScheduled,
            TimeoutFired,
        }
    )

    __slots__ = (
        "_breakers",
        "_counts",
        "_lock",
        "_timeline",
        "pipeline",
        "run_id",
        "scanner",
        "started",
    )

    def __init__(
        self,
        scanner: str,
        pipeline: str | None = None,
        *,
        run_id: str = "",
        started: float | None = None,
    ) -> None:
        """Start recording for *scanner*, whose run began at *started* (`time.monotonic`)."""
        self.scanner = scanner
        self.pipeline = pipeline
        self.run_id = run_id
        self.started = time.monotonic() if started is None else started
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(
            (
                "calls",
                "failed_calls",
                "retries",
                "timeouts",
                "circuit_open",
                "cache_hits",
                "cache_misses",
                "rate_limited",
                "rate_limit_rejections",
            ),
            0,
        )
        self._breakers: dict[str, None] = {}
        self._timeline: list[TimelineEntry] = []

    def count_call(self, *, failed: bool) -> None:
        """Count one call through a policy-wrapped function (by its outermost layer)."""
        with self._lock:
            self._counts["calls"] += 1
            if failed:
                self._counts["failed_calls"] += 1

    def observe(self, event: Event) -> None:
        """Count what *event* says happened, and note it on the timeline."""
        with self._lock:
            self._observe(event)

    def _observe(self, event: Event) -> None:  # noqa: C901 - one branch per event type
        counts = self._counts
        if isinstance(event, CacheHit):
            counts["cache_hits"] += 1
            self._note("cache_hit", f"{event.function}: from the cache")
        elif isinstance(event, CacheMiss):
            counts["cache_misses"] += 1
        elif isinstance(event, RetryScheduled):
            counts["retries"] += 1
            detail = f"{event.function}: attempt {event.attempt} failed ({event.error})"
            self._note("retry", f"{detail}, retry in {event.wait:.2f}s", event.wait)
        elif isinstance(event, RetryExhausted):
            plural = "s" if event.attempts != 1 else ""
            detail = f"gave up after {event.attempts} attempt{plural} ({event.error})"
            self._note("gave_up", f"{event.function}: {detail}")
        elif isinstance(event, TimeoutFired):
            counts["timeouts"] += 1
            self._note("timeout", f"{event.function}: timed out after {event.limit:g}s")
        elif isinstance(event, BreakerRejected):
            counts["circuit_open"] += 1
            self._breakers[event.breaker] = None
            self._note("circuit_open", f"breaker {event.breaker} {event.state}: call not made")
        elif isinstance(event, BreakerStateChanged):
            if event.to_state == "open":
                self._breakers[event.breaker] = None
            detail = f"breaker {event.breaker}: {event.from_state} → {event.to_state}"
            self._note("breaker_" + event.to_state.replace("-", "_"), detail)
        elif isinstance(event, RateLimitWaited):
            counts["rate_limited"] += 1
            detail = f"{event.limiter}: waited {event.wait:.2f}s for a permit"
            self._note("rate_limit", detail, event.wait)
        elif isinstance(event, RateLimitRejected):
            counts["rate_limit_rejections"] += 1
            self._note("rate_limit", f"{event.limiter}: no permit within {event.available:.2f}s")

    def _note(self, kind: str, detail: str, duration: float = 0.0) -> None:
        if len(self._timeline) < TIMELINE_LIMIT:
            at = time.monotonic() - self.started
            self._timeline.append(TimelineEntry(round(at, 4), kind, detail, round(duration, 4)))

    def snapshot(self) -> CallStats:
        """The counts so far."""
        with self._lock:
            return CallStats(**self._counts, open_breakers=tuple(self._breakers))

    def timeline(self) -> tuple[TimelineEntry, ...]:
        """The moments noted so far, in order."""
        with self._lock:
            return tuple(self._timeline)


def count_call(*, failed: bool) -> None:
    """Count a call for the running scanner, if a scanner is running (else nothing)."""
    from ._config import CURRENT_SCAN  # noqa: PLC0415 - a hot path imports it directly

    recorder = CURRENT_SCAN.get()
    if recorder is not None:
        recorder.count_call(failed=failed)
