"""OpenTelemetry traces and metrics for resilient_scan (extra ``opentelemetry``).

    from resilient_scan import instrumentation
    from resilient_scan.opentelemetry import OpenTelemetryHook

    instrumentation.add_hook(OpenTelemetryHook())  # the global tracer and meter providers

Spans: one per executor run (``scan``), one per scanner under it (``scanner <name>``), one
per attempt of a retried call under whatever span is current (``attempt <function>``).
Each span is made current where its work runs: the run's in the caller's context, the
scanner's in the scanner's own context on the thread that runs it, the attempt's around
the attempt. So spans your code opens inside a scanner (an HTTP client's, say) nest under
that scanner's span, and under the attempt's inside a retried call, on whatever thread
the library runs them. Failures set the span's status to error, ``error.type`` to the
exception's qualified class name (or to ``timeout`` / ``circuit_open`` when there is no
exception), and add an ``exception`` event whose message and stack trace are redacted and
capped, with no local variables.

Metrics: the same as the Prometheus hook's (`resilient_scan._metrics.METRICS`), through a
meter, named ``resilient_scan.calls``, ... so that OpenTelemetry's Prometheus exporter
gives the same series.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable
from contextvars import Token
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Span, Status, StatusCode

from ._engine import abandoned_threads
from ._errors import ConfigError
from ._events import (
    AttemptFinished,
    AttemptStarted,
    CallFinished,
    Event,
    ScanFinished,
    ScannerFinished,
    ScannerStarted,
    ScanStarted,
)
from ._metrics import (
    ABANDONED_THREADS,
    BREAKER_STATE,
    BREAKER_STATES,
    CALLS,
    DURATION_BUCKETS,
    METRIC_EVENTS,
    METRICS,
    NAMESPACE,
    Metric,
    observer,
)
from ._text import (
    cap,
    describe_error,
    error_message,
    format_traceback,
    qualified_error_type,
    redact,
)

__all__ = ["SPAN_EVENTS", "OpenTelemetryHook"]

#: The events that open and close spans.
SPAN_EVENTS: Final = frozenset(
    {ScanStarted, ScanFinished, ScannerStarted, ScannerFinished, AttemptStarted, AttemptFinished}
)

#: Scanner statuses that mark a scanner's span as failed.
FAILED_STATUSES: Final = frozenset({"error", "timeout", "circuit_open"})

# Keys of the values this hook puts in the OpenTelemetry context next to the span.
_RUN_KEY: Final = otel_context.create_key("resilient_scan.run")
_ATTEMPT_KEY: Final = otel_context.create_key("resilient_scan.attempt")


class _Current:
    """A span made current by this hook, with the token that undoes it."""

    __slots__ = ("label", "span", "token")

    def __init__(self, span: Span, label: object) -> None:
        self.span = span
        self.label = label
        self.token: Token[Context] | None = None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("resilient-scan")
    except PackageNotFoundError:  # a source tree that is not installed
        return "0+unknown"


def _attributes(metric: Metric, labels: tuple[str, ...]) -> dict[str, str]:
    # An empty value means "not applicable" (no error type on a call that succeeded).
    return {
        name: value for name, value in zip(metric.attribute_names(), labels, strict=True) if value
    }


def _changes_nothing(span: Span) -> bool:
    """Whether making *span* current would change nothing (a no-op tracer's span)."""
    return not span.is_recording() and (
        span.get_span_context() == trace.get_current_span().get_span_context()
    )


def _record_failure(
    span: Span, kind: str, description: str | None, exception: BaseException | None
) -> None:
    """Mark *span* failed, per the semantic conventions, with redacted texts."""
    error_kind = qualified_error_type(exception) if exception is not None else kind
    span.set_attribute("error.type", error_kind)
    if exception is not None:
        span.add_event(
            "exception",
            {
                "exception.type": error_kind,
                "exception.message": cap(redact(error_message(exception))),
                "exception.stacktrace": format_traceback(exception),
            },
        )
    text = None if description is None else cap(redact(description))
    span.set_status(Status(StatusCode.ERROR, text))


class OpenTelemetryHook:
    """Spans for runs, scanners and attempts, and the metrics, through OpenTelemetry.

    With no providers given, the global ones are used, looked up when used, so the
    application may set them after creating the hook. A `NoOpTracerProvider` (or
    `NoOpMeterProvider`) given here turns that half off: the hook then does not even ask
    for the events only it would need.
    """

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        """Trace through *tracer_provider* and measure through *meter_provider*."""
        for key, provider, kind in (
            ("tracer_provider", tracer_provider, trace.TracerProvider),
            ("meter_provider", meter_provider, metrics.MeterProvider),
        ):
            if provider is not None and not isinstance(provider, kind):
                raise ConfigError((key,), f"must be a {kind.__name__}, got {provider!r}")
        version = _version()
        self._tracer = trace.get_tracer(NAMESPACE, version, tracer_provider)
        self._meter = metrics.get_meter(NAMESPACE, version, meter_provider)
        self.tracing = not isinstance(tracer_provider, trace.NoOpTracerProvider)
        self.metering = not isinstance(meter_provider, metrics.NoOpMeterProvider)
        wanted: set[type[Event]] = set()
        if self.tracing:
            wanted |= SPAN_EVENTS
        if self.metering:
            wanted |= METRIC_EVENTS
        self.events: Collection[type[Event]] = frozenset(wanted)

        self._lock = threading.Lock()
        # Scanner spans by (run id, scanner): started on the scanner's thread, ended by
        # its result, which may come from another thread (a scanner that timed out).
        self._scanners: dict[tuple[str, str], list[tuple[Span, Token[Context]]]] = {}
        self._runs: dict[str, Span] = {}
        self._breakers: dict[str, str] = {}
        self._instruments: dict[Metric, Callable[[float, dict[str, str]], None]] = {}
        self._attribute_sets: dict[Metric, dict[tuple[str, ...], dict[str, str]]] = {}
        if self.metering:
            self._create_instruments()
            self._calls = self._attribute_sets[CALLS]
            self._count_call = self._instruments[CALLS]

        self._handlers = self._route()

    def _route(self) -> dict[type[Event], tuple[Callable[[Any], None], ...]]:
        """The handlers of each event type this hook takes."""
        handlers: dict[type[Event], list[Callable[[Any], None]]] = {}
        if self.tracing:
            spans: dict[type[Event], Callable[[Any], None]] = {
                ScanStarted: self._scan_started,
                ScanFinished: self._scan_finished,
                ScannerStarted: self._scanner_started,
                ScannerFinished: self._scanner_finished,
                AttemptStarted: self._attempt_started,
                AttemptFinished: self._attempt_finished,
            }
            for event_type, handler in spans.items():
                handlers.setdefault(event_type, []).append(handler)
        if self.metering:
            for event_type in METRIC_EVENTS:
                if event_type is not CallFinished:  # handled in __call__ itself
                    handlers.setdefault(event_type, []).append(self._measure)
        return {event_type: tuple(each) for event_type, each in handlers.items()}

    def __repr__(self) -> str:
        """Say which halves are on."""
        return f"OpenTelemetryHook(tracing={self.tracing}, metering={self.metering})"

    def __call__(self, event: Event) -> None:
        """Open or close a span, or update the metrics, as *event* says."""
        if type(event) is CallFinished and self.metering:  # once per call: kept short
            key = (event.function, event.outcome, event.error_type or "")
            attributes = self._calls.get(key)
            if attributes is None:
                attributes = self._calls[key] = _attributes(CALLS, key)
            self._count_call(1, attributes)
            return
        for handler in self._handlers.get(type(event), ()):
            handler(event)

    # -- metrics ------------------------------------------------------------------------------

    def _create_instruments(self) -> None:
        meter = self._meter
        for metric in METRICS:
            name = metric.full_otel_name()
            if metric is ABANDONED_THREADS:
                meter.create_observable_gauge(
                    name, [_observe_abandoned], metric.unit, metric.description
                )
            elif metric is BREAKER_STATE:
                meter.create_observable_gauge(
                    name, [self._observe_breakers], metric.unit, metric.description
                )
            elif metric.kind == "counter":
                self._instruments[metric] = meter.create_counter(
                    name, metric.unit, metric.description
                ).add
            elif metric.kind == "histogram":
                try:
                    histogram = meter.create_histogram(
                        name,
                        metric.unit,
                        metric.description,
                        explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
                    )
                except TypeError:  # opentelemetry-api before 1.23 takes no advice
                    histogram = meter.create_histogram(name, metric.unit, metric.description)
                self._instruments[metric] = histogram.record
            self._attribute_sets[metric] = {}

    def _measure(self, event: Event) -> None:
        observe = observer(type(event))
        if observe is None:
            return
        for metric, labels, value in observe(event):
            if metric is BREAKER_STATE:
                if value:
                    self._breakers[labels[0]] = labels[1]
                continue
            known = self._attribute_sets[metric]
            attributes = known.get(labels)
            if attributes is None:
                attributes = known[labels] = _attributes(metric, labels)
            self._instruments[metric](value, attributes)

    def _observe_breakers(self, _options: CallbackOptions) -> Iterable[Observation]:
        for breaker, state in list(self._breakers.items()):
            for each in BREAKER_STATES:
                value = 1 if each == state else 0
                yield Observation(value, {"breaker": breaker, "state": each})

    # -- spans --------------------------------------------------------------------------------

    def _make_current(self, span: Span, key: str, label: object) -> None:
        current = _Current(span, label)
        ctx = otel_context.set_value(key, current, trace.set_span_in_context(span))
        current.token = otel_context.attach(ctx)

    @staticmethod
    def _undo(current: _Current) -> None:
        if current.token is not None:
            otel_context.detach(current.token)

    def _scan_started(self, event: ScanStarted) -> None:
        attributes: dict[str, Any] = {
            "resilient_scan.scanners": event.scanners,
            "resilient_scan.mode": event.mode,
            "resilient_scan.max_workers": event.max_workers,
            "resilient_scan.timeout_seconds": event.timeout_seconds,
        }
        if event.deadline_seconds is not None:
            attributes["resilient_scan.deadline_seconds"] = event.deadline_seconds
        if event.run_id:
            attributes["resilient_scan.run_id"] = event.run_id
        span = self._tracer.start_span("scan", attributes=attributes)
        if event.run_id:
            with self._lock:
                self._runs[event.run_id] = span
        self._make_current(span, _RUN_KEY, event.run_id)

    def _scan_finished(self, event: ScanFinished) -> None:
        current = otel_context.get_value(_RUN_KEY)
        if not isinstance(current, _Current):
            return
        if event.run_id:
            with self._lock:
                self._runs.pop(event.run_id, None)
        span = current.span
        span.set_attributes(
            {
                "resilient_scan.candidates": event.candidates,
                "resilient_scan.dropped": event.dropped,
                "resilient_scan.abandoned": event.abandoned,
                "resilient_scan.degraded": event.degraded,
                **{f"resilient_scan.{status}_count": n for status, n in event.counts.items()},
            }
        )
        if event.interrupted:  # the run raised instead of returning its report
            span.set_status(Status(StatusCode.ERROR, event.interrupted))
        span.end()
        self._undo(current)

    def _scanner_started(self, event: ScannerStarted) -> None:
        parent = None
        if otel_context.get_value(_RUN_KEY) is None and event.run_id:
            # The scanner's context was copied before its run's span was made current:
            # find the run by its id instead.
            with self._lock:
                run = self._runs.get(event.run_id)
            if run is not None:
                parent = trace.set_span_in_context(run)
        span = self._tracer.start_span(
            f"scanner {event.scanner}", parent, attributes=_scanner_attributes(event)
        )
        if _changes_nothing(span):
            return
        # Not undone where the result comes from another thread: the executor runs each
        # scanner in a context of its own, discarded when the scanner returns (or
        # abandoned with it).
        token = otel_context.attach(trace.set_span_in_context(span))
        with self._lock:
            self._scanners.setdefault((event.run_id, event.scanner), []).append((span, token))

    def _scanner_finished(self, event: ScannerFinished) -> None:
        key = (event.run_id, event.scanner)
        with self._lock:
            started = self._scanners.get(key)
            span, token = started.pop(0) if started else (None, None)
            if started == []:
                del self._scanners[key]
        if span is None:  # never started (skipped, cancelled): a span that says so
            span = self._tracer.start_span(
                f"scanner {event.scanner}", attributes=_scanner_attributes(event)
            )
        elif token is not None and trace.get_current_span() is span:
            # The result comes from the scanner's own context (it ran where it was
            # called): make current again what was current before it.
            otel_context.detach(token)
        attributes: dict[str, Any] = {
            "resilient_scan.status": event.status,
            "resilient_scan.candidates": event.candidates,
            "resilient_scan.dropped": event.dropped,
            "resilient_scan.attempts": event.attempts,
            "resilient_scan.degraded": event.degraded,
        }
        if event.reason is not None:
            attributes["resilient_scan.reason"] = cap(event.reason)
        if event.timeout_seconds is not None:
            attributes["resilient_scan.timeout_seconds"] = event.timeout_seconds
        span.set_attributes(attributes)
        if event.status in FAILED_STATUSES:
            exception = event.exception if event.status == "error" else None
            _record_failure(span, event.status, event.error or event.status, exception)
        span.end()

    def _attempt_started(self, event: AttemptStarted) -> None:
        span = self._tracer.start_span(
            f"attempt {event.function}",
            attributes={
                "resilient_scan.function": event.function,
                "resilient_scan.attempt": event.attempt,
            },
        )
        if not _changes_nothing(span):
            self._make_current(span, _ATTEMPT_KEY, (event.function, event.attempt))

    def _attempt_finished(self, event: AttemptFinished) -> None:
        current = otel_context.get_value(_ATTEMPT_KEY)
        if not isinstance(current, _Current) or current.label != (event.function, event.attempt):
            return
        span = current.span
        span.set_attribute("resilient_scan.outcome", event.outcome)
        if event.outcome != "ok":
            exception = event.exception if event.outcome == "error" else None
            description = describe_error(exception) if exception is not None else event.outcome
            _record_failure(span, event.error_type or event.outcome, description, exception)
        span.end()
        self._undo(current)


def _scanner_attributes(event: ScannerStarted | ScannerFinished) -> dict[str, str]:
    attributes = {"resilient_scan.scanner": event.scanner}
    if event.pipeline:
        attributes["resilient_scan.pipeline"] = event.pipeline
    if event.run_id:
        attributes["resilient_scan.run_id"] = event.run_id
    return attributes


def _observe_abandoned(_options: CallbackOptions) -> Iterable[Observation]:
    yield Observation(abandoned_threads())
