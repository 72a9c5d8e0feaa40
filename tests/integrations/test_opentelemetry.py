"""The OpenTelemetry hook, against the SDK's in-memory span exporter and metric reader.

Span links are checked across real threads: the run's span in the caller's context, each
scanner's on the thread that runs it, attempts inside, and the spans an application opens
inside a scanner under all of them.
"""

from __future__ import annotations

import contextvars
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import resilient_scan as rs
from resilient_scan._instrument import emit, wanted
from resilient_scan.instrumentation import (
    AttemptFinished,
    AttemptStarted,
    CallFinished,
    ScanFinished,
    ScannerFinished,
    ScannerStarted,
    ScanStarted,
    set_hooks,
)
from resilient_scan.opentelemetry import OpenTelemetryHook
from resilient_scan.testing import FakeClock
from tests.helpers import Flaky

SECRET = "hunter2"  # noqa: S105 - what the spans must not show


@dataclass
class Telemetry:
    """The SDK wired to memory, and the hook installed."""

    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    tracer: trace.Tracer  # the application's own tracer
    hook: OpenTelemetryHook

    def finished(self) -> dict[str, ReadableSpan]:
        found = {span.name: span for span in self.spans.get_finished_spans()}
        assert len(found) == len(self.spans.get_finished_spans()), "span names repeat"
        return found

    def points(self, name: str) -> list[Any]:
        """The data points of metric *name*, from a new collection."""
        return self.collect().get(name, [])

    def collect(self) -> dict[str, list[Any]]:
        """Every metric's data points from one collection (older SDKs report a histogram
        that did not change since the last collection with no points at all)."""
        data = self.metrics.get_metrics_data()
        assert data is not None
        points: dict[str, list[Any]] = {}
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    points.setdefault(metric.name, []).extend(metric.data.data_points)
        return points


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    hook = OpenTelemetryHook(tracer_provider=tracer_provider, meter_provider=meter_provider)
    set_hooks([hook])
    yield Telemetry(exporter, reader, tracer_provider.get_tracer("application"), hook)
    meter_provider.shutdown()
    tracer_provider.shutdown()


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    found: int = span.context.span_id
    return found


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    found: int = span.context.trace_id
    return found


def run_in_copy(context: contextvars.Context, body: Callable[[], None]) -> threading.Thread:
    """Run *body* in *context* on a new thread (as the executor runs a scanner)."""
    thread = threading.Thread(target=context.run, args=(body,))
    thread.start()
    return thread


# -- the protocol the executor and the policies follow -----------------------------------------


def test_spans_nest_run_scanner_attempt_application_across_threads(telemetry: Telemetry):
    emit(ScanStarted(2, "concurrent", 2, 30.0, None, run_id="run-1"))
    # The executor copies the caller's context for each scanner after ScanStarted.
    contexts = {name: contextvars.copy_context() for name in ("quotes", "news")}

    def scanner(name: str) -> Callable[[], None]:
        def body() -> None:
            emit(ScannerStarted(name, "momentum", run_id="run-1"))
            token = object()
            emit(AttemptStarted(f"fetch_{name}", 1, token))
            with telemetry.tracer.start_as_current_span(f"GET /{name}"):
                pass
            emit(AttemptFinished(f"fetch_{name}", 1, "ok", 0.01, token=token))
            with telemetry.tracer.start_as_current_span(f"parse {name}"):
                pass

        return body

    threads = [run_in_copy(contexts[name], scanner(name)) for name in contexts]
    for thread in threads:
        thread.join()
    for name in contexts:  # results are logged from the caller's thread
        emit(ScannerFinished(name, "momentum", "ok", 3, 0, 0.05, 1, None, None, run_id="run-1"))
    emit(ScanFinished(0.1, 1.9, 6, 0, 0, 0, {"ok": 2}, run_id="run-1"))

    spans = telemetry.finished()
    run = spans["scan"]
    assert run.parent is None
    assert run.attributes is not None
    assert run.attributes["resilient_scan.run_id"] == "run-1"
    assert run.attributes["resilient_scan.ok_count"] == 2
    for name in contexts:
        scanner_span = spans[f"scanner {name}"]
        attempt = spans[f"attempt fetch_{name}"]
        assert parent_of(scanner_span) == span_id(run)
        assert parent_of(attempt) == span_id(scanner_span)
        assert parent_of(spans[f"GET /{name}"]) == span_id(attempt)
        assert parent_of(spans[f"parse {name}"]) == span_id(scanner_span)
        assert scanner_span.attributes is not None
        assert scanner_span.attributes["resilient_scan.status"] == "ok"
        assert scanner_span.attributes["resilient_scan.pipeline"] == "momentum"
        assert scanner_span.status.status_code is StatusCode.UNSET
        assert {trace_id(s) for s in (run, scanner_span, attempt)} == {trace_id(run)}
    # The run's span was made current in the caller's context, and is no longer.
    assert not trace.get_current_span().get_span_context().is_valid


def test_a_scanner_that_timed_out_ends_failed_and_its_thread_keeps_its_span(
    telemetry: Telemetry,
):
    emit(ScanStarted(1, "concurrent", 1, 0.1, None, run_id="run-2"))
    context = contextvars.copy_context()
    started, go_on = threading.Event(), threading.Event()

    def hung() -> None:
        emit(ScannerStarted("slow", None, run_id="run-2"))
        started.set()
        go_on.wait(5)  # the caller gives up on it meanwhile
        with telemetry.tracer.start_as_current_span("late work"):
            pass

    thread = run_in_copy(context, hung)
    started.wait(5)
    emit(
        ScannerFinished(
            "slow",
            None,
            "timeout",
            0,
            0,
            0.1,
            1,
            "ScanTimeout",
            "ScanTimeout: slow timed out",
            timeout_seconds=0.1,
            run_id="run-2",
        )
    )
    emit(ScanFinished(0.1, 1.0, 0, 0, 1, 0, {"timeout": 1}, run_id="run-2"))
    go_on.set()
    thread.join()
    spans = telemetry.finished()
    slow = spans["scanner slow"]
    assert slow.status.status_code is StatusCode.ERROR
    assert slow.attributes is not None
    assert slow.attributes["error.type"] == "timeout"
    assert slow.attributes["resilient_scan.timeout_seconds"] == 0.1
    assert parent_of(spans["late work"]) == span_id(slow)


def test_a_failed_scanner_records_the_exception_redacted(telemetry: Telemetry):
    def connect() -> None:
        raise ConnectionError(f"GET https://api.example.com/q?apikey={SECRET} refused")

    try:
        connect()
    except ConnectionError as exc:
        error = exc
    emit(ScannerStarted("quotes", None))
    emit(
        ScannerFinished(
            "quotes",
            None,
            "error",
            0,
            0,
            0.1,
            1,
            "ConnectionError",
            "ConnectionError: refused",
            exception=error,
        )
    )
    span = telemetry.finished()["scanner quotes"]
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "ConnectionError"
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "ConnectionError"
    assert "apikey=***" in str(event.attributes["exception.message"])
    assert "Traceback (most recent call last)" in str(event.attributes["exception.stacktrace"])
    assert SECRET not in repr(span.to_json())
    # Started and finished in this context: what was current before is current again.
    assert not trace.get_current_span().get_span_context().is_valid


def test_failed_attempts_say_why(telemetry: Telemetry):
    for attempt, (outcome, exception) in enumerate(
        [("error", rs.ConfigError("k", f"token={SECRET}")), ("timeout", None)], start=1
    ):
        emit(AttemptStarted("fetch", attempt))
        emit(AttemptFinished("fetch", attempt, outcome, 0.1, "X", exception=exception))
    first, second = telemetry.spans.get_finished_spans()
    assert first.attributes is not None
    assert second.attributes is not None
    assert first.attributes["error.type"] == "resilient_scan._errors.ConfigError"
    assert first.attributes["resilient_scan.outcome"] == "error"
    assert second.attributes["error.type"] == "X"
    assert second.status.status_code is StatusCode.ERROR
    assert SECRET not in repr(first.to_json())


def test_nested_attempts_nest_and_unwind(telemetry: Telemetry):
    emit(AttemptStarted("outer", 1))
    emit(AttemptStarted("inner", 1))
    emit(AttemptFinished("inner", 1, "ok", 0.01))
    emit(AttemptStarted("inner", 2))
    emit(AttemptFinished("inner", 2, "ok", 0.01))
    emit(AttemptFinished("outer", 1, "ok", 0.02))
    assert not trace.get_current_span().get_span_context().is_valid
    by_name: dict[str, list[ReadableSpan]] = {}
    for span in telemetry.spans.get_finished_spans():
        by_name.setdefault(span.name, []).append(span)
    (outer,) = by_name["attempt outer"]
    assert [parent_of(span) for span in by_name["attempt inner"]] == [span_id(outer)] * 2


def test_a_scanner_that_never_started_gets_a_span_saying_so(telemetry: Telemetry):
    emit(ScanStarted(1, "concurrent", 1, 1.0, None))
    emit(
        ScannerFinished(
            "disabled",
            None,
            "skipped",
            0,
            0,
            0.0,
            0,
            None,
            None,
            reason="disabled by scanners.disabled.enabled",
        )
    )
    emit(ScanFinished(0.0, 1.0, 0, 0, 0, 0, {"skipped": 1}))
    spans = telemetry.finished()
    skipped = spans["scanner disabled"]
    assert parent_of(skipped) == span_id(spans["scan"])
    assert skipped.attributes is not None
    assert skipped.attributes["resilient_scan.status"] == "skipped"
    assert skipped.status.status_code is StatusCode.UNSET


# -- with the real executor and policies ---------------------------------------------------


def test_an_executor_run_has_a_span_and_one_span_per_scanner_under_it(telemetry: Telemetry):
    def steady(state: object) -> list[dict[str, str]]:
        return [{"ticker": "MSFT"}]

    def broken(state: object) -> list[dict[str, str]]:
        raise KeyError("MSFT")

    rs.ScanExecutor(max_workers=2).run([steady, broken])
    spans = telemetry.finished()
    run = spans["scan"]
    assert parent_of(spans["scanner steady"]) == span_id(run)
    assert parent_of(spans["scanner broken"]) == span_id(run)
    assert spans["scanner broken"].status.status_code is StatusCode.ERROR
    assert spans["scanner broken"].attributes["error.type"] == "KeyError"  # type: ignore[index]


def test_a_run_interrupted_after_its_start_ends_its_span_failed(telemetry: Telemetry):
    def steady(state: object) -> list[dict[str, str]]:
        return [{"ticker": "MSFT"}]

    def interrupted(results: object) -> list[dict[str, str]]:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rs.ScanExecutor(merge=interrupted).run([steady])

    run = telemetry.finished()["scan"]  # ended, not left open in the caller's context
    assert run.status.status_code is StatusCode.ERROR
    assert run.status.description == "KeyboardInterrupt"
    assert trace.get_current_span() is trace.INVALID_SPAN  # detached from the caller's context


def test_application_spans_nest_under_attempt_scanner_and_run_on_real_threads(
    telemetry: Telemetry,
):
    @rs.resilient(retry={"attempts": 2, "backoff": 0.01}, timeout=5)
    def fetch(ticker: str) -> int:
        with telemetry.tracer.start_as_current_span(f"GET {ticker}"):
            return 1

    def quotes(state: object) -> list[dict[str, str]]:
        fetch("MSFT")
        return [{"ticker": "MSFT"}]

    rs.ScanExecutor(max_workers=2).run([quotes])
    spans = telemetry.finished()
    attempt = next(name for name in spans if name.startswith("attempt "))
    assert parent_of(spans["GET MSFT"]) == span_id(spans[attempt])
    assert parent_of(spans[attempt]) == span_id(spans["scanner quotes"])
    assert parent_of(spans["scanner quotes"]) == span_id(spans["scan"])


# -- metrics ---------------------------------------------------------------------------------


def test_calls_are_counted_with_the_semantic_error_type(telemetry: Telemetry):
    emit(CallFinished("fetch", "ok", 0.01))
    emit(CallFinished("fetch", "error", 0.01, "ConnectionError"))
    emit(CallFinished("fetch", "error", 0.01, "ConnectionError"))
    points = {
        tuple(sorted(point.attributes.items())): point.value
        for point in telemetry.points("resilient_scan.calls")
    }
    assert points == {
        (("function", "fetch"), ("outcome", "ok")): 1,
        (("error.type", "ConnectionError"), ("function", "fetch"), ("outcome", "error")): 2,
    }


def test_retries_breaker_state_and_scanner_durations(telemetry: Telemetry, clock: FakeClock):
    call = rs.retry(attempts=3, backoff=0.1, clock=clock)(Flaky(failures=2))
    call()
    breaker = rs.circuit_breaker(fail_max=1, name="quotes-api", clock=clock)(Flaky(failures=9))
    with pytest.raises(ValueError):
        breaker()
    rs.ScanExecutor(max_workers=1).run([lambda state: []])
    collected = telemetry.collect()
    (retries,) = collected["resilient_scan.retries"]
    assert retries.value == 2
    assert retries.attributes["error.type"] == "ValueError"
    states = {
        point.attributes["state"]: point.value
        for point in collected["resilient_scan.breaker.state"]
        if point.attributes["breaker"] == "quotes-api"
    }
    assert states == {"closed": 0, "half-open": 0, "open": 1}
    (duration,) = collected["resilient_scan.scanner.duration"]
    assert duration.count == 1
    assert duration.attributes == {"scanner": "<lambda>", "status": "ok"}
    (abandoned,) = telemetry.points("resilient_scan.abandoned_threads")
    assert abandoned.value == rs.abandoned_threads()


# -- switching halves off ----------------------------------------------------------------------


def test_a_no_op_tracer_provider_turns_tracing_off_and_its_events_are_not_built():
    hook = OpenTelemetryHook(tracer_provider=trace.NoOpTracerProvider())
    set_hooks([hook])
    assert not hook.tracing
    assert not wanted(AttemptStarted)
    assert not wanted(ScannerStarted)
    assert wanted(CallFinished)  # the metrics still want it


def test_providers_of_the_wrong_kind_are_config_errors():
    with pytest.raises(rs.ConfigError) as caught:
        OpenTelemetryHook(tracer_provider=object())
    assert caught.value.path == ("tracer_provider",)
    with pytest.raises(rs.ConfigError) as caught:
        OpenTelemetryHook(meter_provider=TracerProvider())
    assert caught.value.path == ("meter_provider",)


GLOBAL_PROVIDERS = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from resilient_scan import instrumentation
from resilient_scan._instrument import emit
from resilient_scan.opentelemetry import OpenTelemetryHook

instrumentation.set_hooks([OpenTelemetryHook()])  # before the application sets a provider
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
emit(instrumentation.AttemptStarted("fetch", 1))
emit(instrumentation.AttemptFinished("fetch", 1, "ok", 0.01))
print([span.name for span in exporter.get_finished_spans()])
"""


def test_the_global_providers_are_looked_up_when_used():
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", GLOBAL_PROVIDERS],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['attempt fetch']"
