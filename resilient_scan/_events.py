"""The typed events every layer and the executor emit: small frozen objects, one per happening.

Policies and the executor never log; they build one of these and hand it to
`resilient_scan._instrument.emit`, which passes it to the registered hooks (structlog,
standard logging, Prometheus, OpenTelemetry, your own). Each event has a stable ``name``
(the log event name, e.g. ``"retry.scheduled"``), a ``level`` (a `logging` level), and
flat fields with consistent names across events:

- who: ``function`` (the decorated function's qualified name), ``breaker``, ``cache``,
  ``limiter``, ``scanner`` (and ``pipeline``);
- what went wrong: ``error_type`` (the exception's class name) and ``error``
  (``"Type: message"``, redacted and capped), kept apart so logs can group by type;
- durations in seconds (``duration``, ``elapsed``, ``wait``, ``limit``, ``ran_for``).

The ``exception`` field, where present, carries the exception object for hooks that record
it (OpenTelemetry, tracebacks); it is never rendered as a field.

Events are built on hot paths (a ``call.finished`` per call through a policy while a metrics
hook listens), so each class writes its own ``__init__``: it stores the fields straight into
the instance's dict, where the one `dataclasses` generates for a frozen class calls
``object.__setattr__`` per field (which costs about as much as the rest of an event put
together). They stay frozen dataclasses all the same: assigning a field raises
`dataclasses.FrozenInstanceError`, and the signature is the fields, in order, with their
defaults (a test checks both).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ._text import describe_error, error_type

DEBUG, INFO, WARNING, ERROR = logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR

#: Every event class, by name (filled in as the classes are defined).
EVENT_TYPES: dict[str, type[Event]] = {}


def _error_fields(exc: BaseException | None) -> tuple[str | None, str | None]:
    if exc is None:
        return None, None
    return error_type(exc), describe_error(exc)


@dataclass(frozen=True)
class Event:
    """Base of every event."""

    name: ClassVar[str] = "event"
    level: ClassVar[int] = INFO

    def __init_subclass__(cls) -> None:
        """Register the event class by name."""
        if cls.name != "event" and "name" in cls.__dict__:
            EVENT_TYPES[cls.name] = cls

    @property
    def severity(self) -> int:
        """This event's level (some events are louder for some values)."""
        return self.level

    def fields(self) -> dict[str, Any]:
        """The event's fields as a flat mapping, as logs render them."""
        # The instance's dict holds exactly its fields, in order (it is frozen).
        rendered = self.__dict__.copy()
        rendered.pop("exception", None)
        return rendered


# -- retry -----------------------------------------------------------------------------------


@dataclass(frozen=True, init=False)
class RetryScheduled(Event):
    """An attempt failed and another is coming after *wait* seconds."""

    name: ClassVar[str] = "retry.scheduled"
    level: ClassVar[int] = WARNING
    function: str
    attempt: int  # the attempt that failed, from 1
    wait: float
    error_type: str | None
    error: str | None
    retry_after: float | None  # what the server asked for, if it said
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    def __init__(  # noqa: PLR0917
        self,
        function: str,
        attempt: int,
        wait: float,
        error_type: str | None,
        error: str | None,
        retry_after: float | None,
        exception: BaseException | None = None,
    ) -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["function"] = function
        values["attempt"] = attempt
        values["wait"] = wait
        values["error_type"] = error_type
        values["error"] = error
        values["retry_after"] = retry_after
        values["exception"] = exception


@dataclass(frozen=True, init=False)
class RetryExhausted(Event):
    """Retrying gave up: the last exception goes to the caller.

    ``reason``: ``attempts`` (all made), ``budget`` (the next wait would pass ``total``),
    ``deadline`` (it would pass an enclosing deadline), ``retry_after`` (the server asked
    for a wait longer than ``max_backoff`` or the budget), ``not_retryable``.
    """

    name: ClassVar[str] = "retry.exhausted"
    level: ClassVar[int] = WARNING
    function: str
    attempts: int
    reason: str
    error_type: str | None
    error: str | None
    elapsed: float
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    def __init__(  # noqa: PLR0917
        self,
        function: str,
        attempts: int,
        reason: str,
        error_type: str | None,
        error: str | None,
        elapsed: float,
        exception: BaseException | None = None,
    ) -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["function"] = function
        values["attempts"] = attempts
        values["reason"] = reason
        values["error_type"] = error_type
        values["error"] = error
        values["elapsed"] = elapsed
        values["exception"] = exception


@dataclass(frozen=True, init=False)
class AttemptStarted(Event):
    """One attempt of a call through a retry layer begins (for tracing; not logged)."""

    name: ClassVar[str] = "attempt.started"
    level: ClassVar[int] = DEBUG
    function: str
    attempt: int
    token: object = field(default=None, repr=False, compare=False)

    def __init__(
        self,
        function: str,
        attempt: int,
        token: object = None,
    ) -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["function"] = function
        values["attempt"] = attempt
        values["token"] = token


@dataclass(frozen=True, init=False)
class AttemptFinished(Event):
    """One attempt ended: ``outcome`` is ``ok``, ``error``, ``timeout`` or ``circuit_open``."""

    name: ClassVar[str] = "attempt.finished"
    level: ClassVar[int] = DEBUG
    function: str
    attempt: int
    outcome: str
    duration: float
    error_type: str | None = None
    token: object = field(default=None, repr=False, compare=False)
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    def __init__(  # noqa: PLR0917
        self,
        function: str,
        attempt: int,
        outcome: str,
        duration: float,
        error_type: str | None = None,
        token: object = None,
        exception: BaseException | None = None,
    ) -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["function"] = function
        values["attempt"] = attempt
        values["outcome"] = outcome
        values["duration"] = duration
        values["error_type"] = error_type
        values["token"] = token
        values["exception"] = exception


@dataclass(frozen=True, init=False)
class CallFinished(Event):
    """A call through a policy (or `resilient`) returned or raised, after every layer.

    ``outcome``: ``ok``, ``error``, ``timeout``, ``circuit_open`` or ``rate_limited``.
    """

    name: ClassVar[str] = "call.finished"
    level: ClassVar[int] = DEBUG
    function: str
    outcome: str
    duration: float
    error_type: str | None = None

    def __init__(
        self,
        function: str,
        outcome: str,
        duration: float,
        error_type: str | None = None,
    ) -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["function"] = function
        values["outcome"] = outcome
        values["duration"] = duration
        values["error_type"] = error_type


# -- timeout ---------------------------------------------------------------------------------


@dataclass(frozen=True, init=False)
class TimeoutFired(Event):
    """A call passed its limit: the caller got `ScanTimeout`.

    ``abandoned``: abandoned calls now running in the process (a thread could not be
    stopped); ``cancelled`` is true for an awaited call, which was cancelled instead.
    """

    name: ClassVar[str] = "timeout.fired"
    level: ClassVar[int] = WARNING
    function: str
    limit: float
    elapsed: float
    abandoned: int
    cancelled: bool = False

    def __init__(
        self,
        function: str,
        limit: float,
        elapsed: float,
        abandoned: int,
        cancelled: bool = False,  # noqa: FBT001, FBT002 - a field
    ) -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["function"] = function
        values["limit"] = limit
        values["elapsed"] = elapsed
        values["abandoned"] = abandoned
        values["cancelled"] = cancelled


@dataclass(frozen=True, init=False)
class CallAbandoned(Event):
    """A thread was left running a call nobody waits for any more."""

    name: ClassVar[str] = "timeout.call_abandoned"
    level: ClassVar[int] = INFO
    function: str
    abandoned: int

    def __init__(
        self,
        function: str,
        abandoned: int,
    ) -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["function"] = function
        values["abandoned"] = abandoned


@dataclass(frozen=True, init=False)
class AbandonedCallFinished(Event):
    """An abandoned call returned at last; its thread is free again."""

    name: ClassVar[str] = "timeout.abandoned_call_finished"
    level: ClassVar[int] = INFO
    function: str
    ran_for: float
    outcome: str
    error_type: str | None
    error: str | None
    abandoned: int

    def __init__(  # noqa: PLR0917
        self,
        function: str,
        ran_for: float,
        outcome: str,
        error_type: str | None,
        error: str | None,
        abandoned: int,
    ) -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["function"] = function
        values["ran_for"] = ran_for
        values["outcome"] = outcome
        values["error_type"] = error_type
        values["error"] = error
        values["abandoned"] = abandoned

    @classmethod
    def of(
        cls, function: str, ran_for: float, exc: BaseException | None, abandoned: int
    ) -> AbandonedCallFinished:
        """Build the event for a call of *function* that ran *ran_for* seconds."""
        kind, text = _error_fields(exc)
        outcome = "ok" if exc is None else "error"
        return cls(function, round(ran_for, 3), outcome, kind, text, abandoned)


# -- circuit breaker -------------------------------------------------------------------------


@dataclass(frozen=True, init=False)
class BreakerStateChanged(Event):
    """A breaker moved between ``closed``, ``open`` and ``half-open`` (warning when opening)."""

    name: ClassVar[str] = "breaker.state_changed"
    level: ClassVar[int] = INFO
    breaker: str
    from_state: str | None
    to_state: str
    failures: int

    def __init__(
        self,
        breaker: str,
        from_state: str | None,
        to_state: str,
        failures: int,
    ) -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["breaker"] = breaker
        values["from_state"] = from_state
        values["to_state"] = to_state
        values["failures"] = failures

    @property
    def severity(self) -> int:
        """Warning when the breaker opens, info otherwise."""
        return WARNING if self.to_state == "open" else INFO


@dataclass(frozen=True, init=False)
class BreakerRejected(Event):
    """A breaker refused a call without running it."""

    name: ClassVar[str] = "breaker.rejected"
    level: ClassVar[int] = INFO
    breaker: str
    state: str
    retry_in: float

    def __init__(
        self,
        breaker: str,
        state: str,
        retry_in: float,
    ) -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["breaker"] = breaker
        values["state"] = state
        values["retry_in"] = retry_in


# -- cache -----------------------------------------------------------------------------------


@dataclass(frozen=True, init=False)
class CacheHit(Event):
    """A cached result answered the call (``coalesced``: it waited for a concurrent load)."""

    name: ClassVar[str] = "cache.hit"
    level: ClassVar[int] = DEBUG
    cache: str
    function: str
    coalesced: bool = False

    def __init__(
        self,
        cache: str,
        function: str,
        coalesced: bool = False,  # noqa: FBT001, FBT002 - a field
    ) -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["cache"] = cache
        values["function"] = function
        values["coalesced"] = coalesced


@dataclass(frozen=True, init=False)
class CacheMiss(Event):
    """No cached result: this call loads one."""

    name: ClassVar[str] = "cache.miss"
    level: ClassVar[int] = DEBUG
    cache: str
    function: str

    def __init__(
        self,
        cache: str,
        function: str,
    ) -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["cache"] = cache
        values["function"] = function


@dataclass(frozen=True, init=False)
class CacheLoaded(Event):
    """A load succeeded and its result was stored."""

    name: ClassVar[str] = "cache.loaded"
    level: ClassVar[int] = DEBUG
    cache: str
    function: str
    duration: float
    stored: bool = True  # False when a cache_clear() during the load made it stale

    def __init__(
        self,
        cache: str,
        function: str,
        duration: float,
        stored: bool = True,  # noqa: FBT001, FBT002 - a field
    ) -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["cache"] = cache
        values["function"] = function
        values["duration"] = duration
        values["stored"] = stored


@dataclass(frozen=True, init=False)
class CacheLoadFailed(Event):
    """A load raised: nothing is stored, and its waiters get the exception."""

    name: ClassVar[str] = "cache.load_failed"
    level: ClassVar[int] = INFO
    cache: str
    function: str
    duration: float
    error_type: str | None
    error: str | None

    def __init__(
        self,
        cache: str,
        function: str,
        duration: float,
        error_type: str | None,
        error: str | None,
    ) -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["cache"] = cache
        values["function"] = function
        values["duration"] = duration
        values["error_type"] = error_type
        values["error"] = error


@dataclass(frozen=True, init=False)
class CacheStoreFailed(Event):
    """The cache's store failed to answer or to keep a result: the call went on uncached."""

    name: ClassVar[str] = "cache.store_failed"
    level: ClassVar[int] = WARNING
    cache: str
    function: str
    operation: str
    error_type: str | None
    error: str | None

    def __init__(
        self,
        cache: str,
        function: str,
        operation: str,
        error_type: str | None,
        error: str | None,
    ) -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["cache"] = cache
        values["function"] = function
        values["operation"] = operation
        values["error_type"] = error_type
        values["error"] = error


# -- rate limiter ----------------------------------------------------------------------------


@dataclass(frozen=True, init=False)
class RateLimitWaited(Event):
    """A call waited *wait* seconds for a permit."""

    name: ClassVar[str] = "rate_limit.waited"
    level: ClassVar[int] = DEBUG
    limiter: str
    function: str
    wait: float

    def __init__(
        self,
        limiter: str,
        function: str,
        wait: float,
    ) -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["limiter"] = limiter
        values["function"] = function
        values["wait"] = wait


@dataclass(frozen=True, init=False)
class RateLimitRejected(Event):
    """No permit within the time the caller had: it got `RateLimitExceeded`."""

    name: ClassVar[str] = "rate_limit.rejected"
    level: ClassVar[int] = WARNING
    limiter: str
    function: str
    wait: float
    available: float

    def __init__(
        self,
        limiter: str,
        function: str,
        wait: float,
        available: float,
    ) -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["limiter"] = limiter
        values["function"] = function
        values["wait"] = wait
        values["available"] = available


# -- shared state backends -------------------------------------------------------------------


@dataclass(frozen=True, init=False)
class BackendUnavailable(Event):
    """A shared-state backend (Redis) failed; the layer fell back as documented.

    ``fallback``: what the layer does meanwhile (``local_state``, ``call_through``,
    ``fail_open``, ``fail_closed``).
    """

    name: ClassVar[str] = "backend.unavailable"
    level: ClassVar[int] = WARNING
    backend: str
    layer: str
    operation: str
    fallback: str
    error_type: str | None
    error: str | None

    def __init__(  # noqa: PLR0917
        self,
        backend: str,
        layer: str,
        operation: str,
        fallback: str,
        error_type: str | None,
        error: str | None,
    ) -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["backend"] = backend
        values["layer"] = layer
        values["operation"] = operation
        values["fallback"] = fallback
        values["error_type"] = error_type
        values["error"] = error


@dataclass(frozen=True, init=False)
class BackendRecovered(Event):
    """A backend that was unavailable answers again; the layer uses it again."""

    name: ClassVar[str] = "backend.recovered"
    level: ClassVar[int] = INFO
    backend: str
    layer: str
    down_for: float

    def __init__(
        self,
        backend: str,
        layer: str,
        down_for: float,
    ) -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["backend"] = backend
        values["layer"] = layer
        values["down_for"] = down_for


# -- user code that raised where it must not ------------------------------------------------


@dataclass(frozen=True, init=False)
class PredicateFailed(Event):
    """A user function judging an exception raised (``where``: e.g. ``retry.on``).

    The caller still gets the original exception, with this error attached as a note.
    """

    name: ClassVar[str] = "policy.predicate_failed"
    level: ClassVar[int] = ERROR
    where: str
    function: str
    original_error_type: str
    error_type: str | None
    error: str | None
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    def __init__(  # noqa: PLR0917
        self,
        where: str,
        function: str,
        original_error_type: str,
        error_type: str | None,
        error: str | None,
        exception: BaseException | None = None,
    ) -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["where"] = where
        values["function"] = function
        values["original_error_type"] = original_error_type
        values["error_type"] = error_type
        values["error"] = error
        values["exception"] = exception

    @classmethod
    def of(
        cls, *, where: str, function: str, original: BaseException, broken: BaseException
    ) -> PredicateFailed:
        """Build the event for *broken*, raised while judging *original*."""
        kind, text = _error_fields(broken)
        return cls(where, function, error_type(original), kind, text, broken)


@dataclass(frozen=True, init=False)
class WorkerTaskFailed(Event):
    """A bug in resilient_scan itself: a task crashed its worker thread (which carries on)."""

    name: ClassVar[str] = "worker.task_failed"
    level: ClassVar[int] = ERROR
    error_type: str | None
    error: str | None
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    def __init__(
        self,
        error_type: str | None,
        error: str | None,
        exception: BaseException | None = None,
    ) -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["error_type"] = error_type
        values["error"] = error
        values["exception"] = exception

    @classmethod
    def of(cls, exc: BaseException) -> WorkerTaskFailed:
        """Build the event for *exc*."""
        kind, text = _error_fields(exc)
        return cls(kind, text, exc)


# -- the executor ----------------------------------------------------------------------------


@dataclass(frozen=True, init=False)
class ScanStarted(Event):
    """A run of the executor begins."""

    name: ClassVar[str] = "scan.started"
    level: ClassVar[int] = INFO
    scanners: int
    mode: str
    max_workers: int
    timeout_seconds: float
    deadline_seconds: float | None
    run_id: str = ""

    def __init__(  # noqa: PLR0917
        self,
        scanners: int,
        mode: str,
        max_workers: int,
        timeout_seconds: float,
        deadline_seconds: float | None,
        run_id: str = "",
    ) -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["scanners"] = scanners
        values["mode"] = mode
        values["max_workers"] = max_workers
        values["timeout_seconds"] = timeout_seconds
        values["deadline_seconds"] = deadline_seconds
        values["run_id"] = run_id


@dataclass(frozen=True, init=False)
class ScanFinished(Event):
    """A run ended. ``counts`` renders as ``<status>_count`` fields (``ok_count``, ...).

    ``interrupted`` names what ended it early (``"KeyboardInterrupt"``, a cancellation, a
    bug), or is empty. When it is set the run returned no report, and the counts are of the
    scanners it had settled.
    """

    name: ClassVar[str] = "scan.finished"
    level: ClassVar[int] = INFO
    duration: float
    speedup: float
    candidates: int
    dropped: int
    abandoned: int
    degraded: int
    counts: Mapping[str, int]
    run_id: str = ""
    interrupted: str = ""

    def __init__(  # noqa: PLR0917
        self,
        duration: float,
        speedup: float,
        candidates: int,
        dropped: int,
        abandoned: int,
        degraded: int,
        counts: Mapping[str, int],
        run_id: str = "",
        interrupted: str = "",
    ) -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["duration"] = duration
        values["speedup"] = speedup
        values["candidates"] = candidates
        values["dropped"] = dropped
        values["abandoned"] = abandoned
        values["degraded"] = degraded
        values["counts"] = counts
        values["run_id"] = run_id
        values["interrupted"] = interrupted

    def fields(self) -> dict[str, Any]:
        """Flat fields: a bare ``error`` count would clash with messages in log indexes."""
        rendered: dict[str, Any] = {
            "duration": self.duration,
            "speedup": self.speedup,
            "candidates": self.candidates,
            "dropped": self.dropped,
            "abandoned": self.abandoned,
            "degraded": self.degraded,
        }
        rendered.update((f"{status}_count", count) for status, count in self.counts.items())
        rendered["run_id"] = self.run_id
        if self.interrupted:
            rendered["interrupted"] = self.interrupted
        return rendered


@dataclass(frozen=True, init=False)
class ScannerStarted(Event):
    """A scanner starts running (emitted in the scanner's own context)."""

    name: ClassVar[str] = "scanner.started"
    level: ClassVar[int] = DEBUG
    scanner: str
    pipeline: str | None
    run_id: str = ""

    def __init__(
        self,
        scanner: str,
        pipeline: str | None,
        run_id: str = "",
    ) -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["scanner"] = scanner
        values["pipeline"] = pipeline
        values["run_id"] = run_id


@dataclass(frozen=True, init=False)
class ScannerFinished(Event):
    """A scanner's outcome (warning for ``error``, ``timeout``, ``circuit_open``).

    ``traceback`` (error results only) is the formatted traceback, without local variables.
    """

    name: ClassVar[str] = "scanner.finished"
    level: ClassVar[int] = INFO
    scanner: str
    pipeline: str | None
    status: str
    candidates: int
    dropped: int
    duration: float
    attempts: int
    error_type: str | None
    error: str | None
    reason: str | None = None
    timeout_seconds: float | None = None
    degraded: bool = False
    run_id: str = ""
    traceback: str | None = field(default=None, repr=False)
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    def __init__(  # noqa: PLR0917
        self,
        scanner: str,
        pipeline: str | None,
        status: str,
        candidates: int,
        dropped: int,
        duration: float,
        attempts: int,
        error_type: str | None,
        error: str | None,
        reason: str | None = None,
        timeout_seconds: float | None = None,
        degraded: bool = False,  # noqa: FBT001, FBT002 - a field
        run_id: str = "",
        traceback: str | None = None,
        exception: BaseException | None = None,
    ) -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["scanner"] = scanner
        values["pipeline"] = pipeline
        values["status"] = status
        values["candidates"] = candidates
        values["dropped"] = dropped
        values["duration"] = duration
        values["attempts"] = attempts
        values["error_type"] = error_type
        values["error"] = error
        values["reason"] = reason
        values["timeout_seconds"] = timeout_seconds
        values["degraded"] = degraded
        values["run_id"] = run_id
        values["traceback"] = traceback
        values["exception"] = exception

    @property
    def severity(self) -> int:
        """Warning for a scanner that failed, info otherwise."""
        return WARNING if self.status in ("error", "timeout", "circuit_open") else INFO


@dataclass(frozen=True, init=False)
class ScannerDegraded(Event):
    """A scanner returned normally although calls inside it failed (it swallowed them)."""

    name: ClassVar[str] = "scanner.degraded"
    level: ClassVar[int] = WARNING
    scanner: str
    pipeline: str | None
    failed_calls: int
    timeouts: int
    circuit_open: int
    open_breakers: tuple[str, ...]
    summary: str
    run_id: str = ""

    def __init__(  # noqa: PLR0917
        self,
        scanner: str,
        pipeline: str | None,
        failed_calls: int,
        timeouts: int,
        circuit_open: int,
        open_breakers: tuple[str, ...],
        summary: str,
        run_id: str = "",
    ) -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["scanner"] = scanner
        values["pipeline"] = pipeline
        values["failed_calls"] = failed_calls
        values["timeouts"] = timeouts
        values["circuit_open"] = circuit_open
        values["open_breakers"] = open_breakers
        values["summary"] = summary
        values["run_id"] = run_id


@dataclass(frozen=True, init=False)
class LateResultDropped(Event):
    """A scanner already marked ``timeout`` returned after all; its result is dropped."""

    name: ClassVar[str] = "scanner.late_result_dropped"
    level: ClassVar[int] = INFO
    scanner: str
    pipeline: str | None
    ran_for: float
    candidates: int
    outcome: str
    run_id: str = ""

    def __init__(  # noqa: PLR0917
        self,
        scanner: str,
        pipeline: str | None,
        ran_for: float,
        candidates: int,
        outcome: str,
        run_id: str = "",
    ) -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["scanner"] = scanner
        values["pipeline"] = pipeline
        values["ran_for"] = ran_for
        values["candidates"] = candidates
        values["outcome"] = outcome
        values["run_id"] = run_id


@dataclass(frozen=True, init=False)
class ConfigUnmatched(Event):
    """A ``scanners.NAME`` or ``pipelines.NAME`` table matches no scanner of the run."""

    name: ClassVar[str] = "config.unmatched"
    level: ClassVar[int] = WARNING
    key: str
    close_matches: tuple[str, ...]

    def __init__(
        self,
        key: str,
        close_matches: tuple[str, ...],
    ) -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["key"] = key
        values["close_matches"] = close_matches


@dataclass(frozen=True, init=False)
class MergeFailed(Event):
    """The executor's ``merge`` hook raised: the report keeps every finding, unmerged."""

    name: ClassVar[str] = "scan.merge_failed"
    level: ClassVar[int] = ERROR
    error: str
    error_type: str
    run_id: str = ""

    def __init__(self, error: str, error_type: str, run_id: str = "") -> None:
        """Store the fields (see the class); it stays frozen."""
        values = self.__dict__  # see the module's docstring
        values["error"] = error
        values["error_type"] = error_type
        values["run_id"] = run_id
