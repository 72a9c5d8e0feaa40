"""The metrics the Prometheus and OpenTelemetry hooks keep, defined once for both.

Each `Metric` has a Prometheus name (``resilient_scan_calls_total``) and an OpenTelemetry
name (``resilient_scan.calls``) chosen so that OpenTelemetry's Prometheus exporter produces
the same series as the Prometheus hook: same names, same labels (``error_type`` is the
OpenTelemetry attribute ``error.type``).

Labels are bounded: names of functions, breakers, caches, limiters and scanners (which the
code defines), statuses and outcomes (small fixed sets), exception class names. Never a
ticker, a candidate, an argument or an error message.

`observations` turns an event into the updates it makes: ``(metric, label values, value)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from ._events import (
    BackendUnavailable,
    BreakerRejected,
    BreakerStateChanged,
    CacheHit,
    CacheLoadFailed,
    CacheMiss,
    CacheStoreFailed,
    CallFinished,
    Event,
    RateLimitRejected,
    RateLimitWaited,
    RetryExhausted,
    RetryScheduled,
    ScanFinished,
    ScannerDegraded,
    ScannerFinished,
    TimeoutFired,
)

Kind = Literal["counter", "gauge", "histogram"]

#: The namespace (Prometheus prefix, OpenTelemetry meter and name prefix) by default.
NAMESPACE: Final = "resilient_scan"

#: Buckets of the duration histograms, in seconds: from a cached call to a stuck scanner.
DURATION_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)

#: The states a breaker's state gauge has one series for.
BREAKER_STATES: Final = ("closed", "half-open", "open")


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: cheap dict keys
class Metric:
    """One metric, as both hooks export it.

    Attributes:
        name: The Prometheus name after the namespace, without the ``_total`` that
            counters get (``calls`` is ``resilient_scan_calls_total``).
        otel_name: The OpenTelemetry instrument name after the namespace (``calls``).
        kind: ``counter``, ``gauge`` or ``histogram``.
        unit: The OpenTelemetry unit (``s``, or an annotation such as ``{call}``).
        labels: The label names, in order (Prometheus); the same attribute names in
            OpenTelemetry, except ``error_type``, which is ``error.type``.
        description: What it counts or measures.
        source: What feeds it: the event classes, or a description.
    """

    name: str
    otel_name: str
    kind: Kind
    unit: str
    labels: tuple[str, ...]
    description: str
    source: tuple[type[Event], ...] | str

    def prometheus_name(self, namespace: str = NAMESPACE) -> str:
        """The name of its series in the exposition (counters end in ``_total``)."""
        suffix = "_total" if self.kind == "counter" else ""
        return f"{namespace}_{self.name}{suffix}" if namespace else f"{self.name}{suffix}"

    def full_otel_name(self, namespace: str = NAMESPACE) -> str:
        """The OpenTelemetry instrument name (``resilient_scan.calls``)."""
        return f"{namespace}.{self.otel_name}" if namespace else self.otel_name

    def attribute_names(self) -> tuple[str, ...]:
        """The OpenTelemetry attribute names of its labels."""
        return tuple(otel_attribute(label) for label in self.labels)


def otel_attribute(label: str) -> str:
    """The OpenTelemetry attribute name for a label (``error_type`` is ``error.type``)."""
    return "error.type" if label == "error_type" else label


CALLS: Final = Metric(
    "calls",
    "calls",
    "counter",
    "{call}",
    ("function", "outcome", "error_type"),
    "Calls through policy-wrapped functions, after every layer, by outcome (ok, error,"
    " timeout, circuit_open, rate_limited) and exception class (empty when ok).",
    (CallFinished,),
)
RETRIES: Final = Metric(
    "retries",
    "retries",
    "counter",
    "{retry}",
    ("function", "error_type"),
    "Retries scheduled: attempts that failed and were followed by another, by the exception"
    " class of the failed attempt.",
    (RetryScheduled,),
)
RETRIES_EXHAUSTED: Final = Metric(
    "retries_exhausted",
    "retries.exhausted",
    "counter",
    "{call}",
    ("function", "reason"),
    "Calls whose retrying gave up, by reason (attempts, budget, deadline, retry_after,"
    " not_retryable).",
    (RetryExhausted,),
)
TIMEOUTS: Final = Metric(
    "timeouts",
    "timeouts",
    "counter",
    "{timeout}",
    ("function",),
    "Calls that passed their time limit (the caller got ScanTimeout).",
    (TimeoutFired,),
)
ABANDONED_THREADS: Final = Metric(
    "abandoned_threads",
    "abandoned_threads",
    "gauge",
    "{thread}",
    (),
    "Threads still running a call nobody waits for any more (timed out), read when scraped.",
    "resilient_scan.abandoned_threads()",
)
BREAKER_REJECTIONS: Final = Metric(
    "breaker_rejections",
    "breaker.rejections",
    "counter",
    "{call}",
    ("breaker",),
    "Calls a circuit breaker refused without running them.",
    (BreakerRejected,),
)
BREAKER_STATE_CHANGES: Final = Metric(
    "breaker_state_changes",
    "breaker.state_changes",
    "counter",
    "{change}",
    ("breaker", "to_state"),
    "Moves of a circuit breaker into a state (closed, half-open, open).",
    (BreakerStateChanged,),
)
BREAKER_STATE: Final = Metric(
    "breaker_state",
    "breaker.state",
    "gauge",
    "1",
    ("breaker", "state"),
    "1 for the state each circuit breaker is in, 0 for the other two (closed, half-open,"
    " open); a breaker appears once it has changed state or rejected a call.",
    (BreakerStateChanged, BreakerRejected),
)
CACHE_HITS: Final = Metric(
    "cache_hits",
    "cache.hits",
    "counter",
    "{call}",
    ("cache",),
    "Calls answered from a cache (waiting for a concurrent load of the same key included).",
    (CacheHit,),
)
CACHE_MISSES: Final = Metric(
    "cache_misses",
    "cache.misses",
    "counter",
    "{call}",
    ("cache",),
    "Calls that found nothing cached and loaded.",
    (CacheMiss,),
)
CACHE_LOAD_FAILURES: Final = Metric(
    "cache_load_failures",
    "cache.load_failures",
    "counter",
    "{call}",
    ("cache", "error_type"),
    "Cache loads that raised (nothing was stored).",
    (CacheLoadFailed,),
)
CACHE_STORE_ERRORS: Final = Metric(
    "cache_store_errors",
    "cache.store_errors",
    "counter",
    "{error}",
    ("cache", "operation"),
    "Failures of a cache's store to answer or to keep a result (the call went on uncached).",
    (CacheStoreFailed,),
)
RATE_LIMIT_WAITS: Final = Metric(
    "rate_limit_waits",
    "rate_limit.waits",
    "counter",
    "{call}",
    ("limiter",),
    "Calls that waited for a rate-limit permit.",
    (RateLimitWaited,),
)
RATE_LIMIT_WAIT: Final = Metric(
    "rate_limit_wait_seconds",
    "rate_limit.wait",
    "counter",
    "s",
    ("limiter",),
    "Seconds spent waiting for rate-limit permits.",
    (RateLimitWaited,),
)
RATE_LIMIT_REJECTIONS: Final = Metric(
    "rate_limit_rejections",
    "rate_limit.rejections",
    "counter",
    "{call}",
    ("limiter",),
    "Calls refused for want of a rate-limit permit in time (RateLimitExceeded).",
    (RateLimitRejected,),
)
BACKEND_FAILURES: Final = Metric(
    "backend_failures",
    "backend.failures",
    "counter",
    "{error}",
    ("backend", "layer", "operation"),
    "Failures of a shared-state backend (Redis); the layer fell back meanwhile.",
    (BackendUnavailable,),
)
SCANNER_DURATION: Final = Metric(
    "scanner_duration_seconds",
    "scanner.duration",
    "histogram",
    "s",
    ("scanner", "status"),
    "How long each scanner ran, by status (ok, error, timeout, circuit_open, skipped,"
    " cancelled); its count is the number of scanner results.",
    (ScannerFinished,),
)
SCANNERS_DEGRADED: Final = Metric(
    "scanners_degraded",
    "scanners.degraded",
    "counter",
    "{scanner}",
    ("scanner",),
    "Scanners that returned normally although calls inside them failed.",
    (ScannerDegraded,),
)
SCAN_DURATION: Final = Metric(
    "scan_duration_seconds",
    "scan.duration",
    "histogram",
    "s",
    (),
    "How long each run of the executor took.",
    (ScanFinished,),
)

#: Every metric, in the order the docs list them.
METRICS: Final = (
    CALLS,
    RETRIES,
    RETRIES_EXHAUSTED,
    TIMEOUTS,
    ABANDONED_THREADS,
    BREAKER_REJECTIONS,
    BREAKER_STATE_CHANGES,
    BREAKER_STATE,
    CACHE_HITS,
    CACHE_MISSES,
    CACHE_LOAD_FAILURES,
    CACHE_STORE_ERRORS,
    RATE_LIMIT_WAITS,
    RATE_LIMIT_WAIT,
    RATE_LIMIT_REJECTIONS,
    BACKEND_FAILURES,
    SCANNER_DURATION,
    SCANNERS_DEGRADED,
    SCAN_DURATION,
)

#: One update of a metric: the metric, its label values (in `Metric.labels` order), and
#: the amount to add (counter), the value to set (gauge) or to observe (histogram).
Observation = tuple[Metric, tuple[str, ...], float]


def _breaker_state(breaker: str, state: str) -> tuple[Observation, ...]:
    return tuple(
        (BREAKER_STATE, (breaker, each), 1.0 if each == state else 0.0) for each in BREAKER_STATES
    )


def _state_changed(event: BreakerStateChanged) -> tuple[Observation, ...]:
    change: Observation = (BREAKER_STATE_CHANGES, (event.breaker, event.to_state), 1.0)
    return (change, *_breaker_state(event.breaker, event.to_state))


def _rejected(event: BreakerRejected) -> tuple[Observation, ...]:
    return (
        (BREAKER_REJECTIONS, (event.breaker,), 1.0),
        *_breaker_state(event.breaker, event.state),
    )


def _waited(event: RateLimitWaited) -> tuple[Observation, ...]:
    return (
        (RATE_LIMIT_WAITS, (event.limiter,), 1.0),
        (RATE_LIMIT_WAIT, (event.limiter,), event.wait),
    )


def _call(e: CallFinished) -> tuple[Observation, ...]:
    return ((CALLS, (e.function, e.outcome, e.error_type or ""), 1.0),)


def _retry(e: RetryScheduled) -> tuple[Observation, ...]:
    return ((RETRIES, (e.function, e.error_type or ""), 1.0),)


def _gave_up(e: RetryExhausted) -> tuple[Observation, ...]:
    return ((RETRIES_EXHAUSTED, (e.function, e.reason), 1.0),)


def _timeout(e: TimeoutFired) -> tuple[Observation, ...]:
    return ((TIMEOUTS, (e.function,), 1.0),)


def _hit(e: CacheHit) -> tuple[Observation, ...]:
    return ((CACHE_HITS, (e.cache,), 1.0),)


def _miss(e: CacheMiss) -> tuple[Observation, ...]:
    return ((CACHE_MISSES, (e.cache,), 1.0),)


def _load_failed(e: CacheLoadFailed) -> tuple[Observation, ...]:
    return ((CACHE_LOAD_FAILURES, (e.cache, e.error_type or ""), 1.0),)


def _store_failed(e: CacheStoreFailed) -> tuple[Observation, ...]:
    return ((CACHE_STORE_ERRORS, (e.cache, e.operation), 1.0),)


def _refused(e: RateLimitRejected) -> tuple[Observation, ...]:
    return ((RATE_LIMIT_REJECTIONS, (e.limiter,), 1.0),)


def _backend(e: BackendUnavailable) -> tuple[Observation, ...]:
    return ((BACKEND_FAILURES, (e.backend, e.layer, e.operation), 1.0),)


def _scanner(e: ScannerFinished) -> tuple[Observation, ...]:
    return ((SCANNER_DURATION, (e.scanner, e.status), e.duration),)


def _degraded(e: ScannerDegraded) -> tuple[Observation, ...]:
    return ((SCANNERS_DEGRADED, (e.scanner,), 1.0),)


def _scan(e: ScanFinished) -> tuple[Observation, ...]:
    return ((SCAN_DURATION, (), e.duration),)


# One function per event class; each returns a tuple of tuples (cheap to make).
_OBSERVERS: Final[dict[type[Event], Callable[[Any], tuple[Observation, ...]]]] = {
    CallFinished: _call,
    RetryScheduled: _retry,
    RetryExhausted: _gave_up,
    TimeoutFired: _timeout,
    BreakerRejected: _rejected,
    BreakerStateChanged: _state_changed,
    CacheHit: _hit,
    CacheMiss: _miss,
    CacheLoadFailed: _load_failed,
    CacheStoreFailed: _store_failed,
    RateLimitWaited: _waited,
    RateLimitRejected: _refused,
    BackendUnavailable: _backend,
    ScannerFinished: _scanner,
    ScannerDegraded: _degraded,
    ScanFinished: _scan,
}

#: The event classes that feed some metric.
METRIC_EVENTS: Final = frozenset(_OBSERVERS)


def observations(event: Event) -> tuple[Observation, ...]:
    """The metric updates *event* makes (none for events no metric counts)."""
    observe = _OBSERVERS.get(type(event))
    return () if observe is None else observe(event)


def observer(event_type: type[Event]) -> Callable[[Any], tuple[Observation, ...]] | None:
    """The function that turns events of *event_type* into updates (None: no metric)."""
    return _OBSERVERS.get(event_type)
