"""What the executor reports (issues 8.5, 8.9, 10): events, their context, and the results."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import signal
import threading
import traceback
from collections.abc import Mapping
from typing import Any

import pytest
import structlog

import resilient_scan as rs
from resilient_scan.instrumentation import (
    Event,
    LateResultDropped,
    MergeFailed,
    ScanFinished,
    ScannerDegraded,
    ScannerFinished,
    ScannerStarted,
    ScanStarted,
    set_hooks,
)
from resilient_scan.testing import CapturedEvents, FakeClock
from tests.executor.support import Found, returning, stalling
from tests.helpers import capture_with_contextvars, events_named, wait_until

RUN_SPAN: contextvars.ContextVar[str | None] = contextvars.ContextVar("run_span", default=None)


class TracingHook:
    """Like a tracing hook: opens a "span" on scan.started, in the context it is emitted in."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None, int, str | None]] = []
        self.lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        if isinstance(event, ScanStarted):
            RUN_SPAN.set(f"run-{event.run_id}")
        scanner = getattr(event, "scanner", None)
        with self.lock:
            self.seen.append((event.name, scanner, threading.get_ident(), RUN_SPAN.get()))


def test_scan_started_comes_before_the_scanners_context_is_copied():
    hook = TracingHook()
    set_hooks([hook])
    inside: list[str | None] = []

    def scanner(state: Mapping[str, Any]) -> Found:
        inside.append(RUN_SPAN.get())
        return []

    report = rs.ScanExecutor().run([scanner], run_id="r1")

    assert report.run_id == "r1"
    assert inside == ["run-r1"]  # the run's "span" is the scanners' parent
    assert [name for name, *_ in hook.seen] == [
        "scan.started",
        "scanner.started",
        "scanner.finished",
        "scan.finished",
    ]


def test_scanner_started_is_emitted_on_the_scanners_thread_in_its_context():
    hook = TracingHook()
    set_hooks([hook])
    threads: dict[str, int] = {}
    bound: dict[str, Any] = {}

    class BoundScanner:
        """Records the structlog context bound when each scanner.finished is emitted."""

        events = (ScannerFinished,)

        def __call__(self, event: Any) -> None:
            bound[event.scanner] = structlog.contextvars.get_contextvars().get("scanner")

    rs.instrumentation.add_hook(BoundScanner())

    def make(name: str) -> Any:
        @rs.scanner(name=name)
        def scan(state: Mapping[str, Any]) -> Found:
            threads[name] = threading.get_ident()
            return []

        return scan

    rs.ScanExecutor(max_workers=3).run([make("a"), make("b"), make("c")])

    started = {
        scanner: thread for name, scanner, thread, _ in hook.seen if name == "scanner.started"
    }
    assert started == threads
    assert threading.get_ident() not in threads.values()
    # scanner.finished is reported in each scanner's own context (by the run's thread).
    assert bound == {"a": "a", "b": "b", "c": "c"}


def test_an_error_result_keeps_its_exception_and_a_traceback_without_locals(events: CapturedEvents):
    def buggy(state: Mapping[str, Any]) -> Found:
        secret_api_key = "sk-live-123"  # noqa: S105, F841 - a local that must not be logged
        prices: dict[str, float] = {}
        return [{"ticker": "X", "price": prices["MSFT"]}]

    result = rs.ScanExecutor().run([buggy]).result("buggy")

    assert result.status == "error"
    assert result.error == "KeyError: 'MSFT'"
    assert result.error_type == "KeyError"
    assert isinstance(result.exception, KeyError)
    assert result.traceback is not None
    assert "KeyError: 'MSFT'" in result.traceback
    assert 'prices["MSFT"]' in result.traceback  # the line, with the frame it is in
    assert "sk-live-123" not in result.traceback
    assert traceback.format_exception(result.exception)  # the real exception, traceback and all
    (finished,) = [e for e in events.of(ScannerFinished) if e.scanner == "buggy"]
    assert (finished.error_type, finished.error) == ("KeyError", "KeyError: 'MSFT'")
    assert finished.traceback == result.traceback
    assert finished.exception is result.exception
    assert finished.severity == logging.WARNING


def test_a_scanner_that_swallowed_failures_is_degraded_everywhere(events: CapturedEvents):
    @rs.circuit_breaker(fail_max=2, name="options-api")
    def fetch_flow() -> list[Any]:
        raise ConnectionError("options API down")

    def options_flow(state: Mapping[str, Any]) -> Found:
        for _ in range(3):
            # The seed's scanners catch everything and return [].
            with contextlib.suppress(Exception):
                fetch_flow()
        return []

    report = rs.ScanExecutor().run([options_flow])

    result = report.result("options_flow")
    assert result.status == "ok"
    assert result.calls.circuit_open == 1
    assert result.calls.open_breakers == ("options-api",)
    assert result.degraded
    assert result.degraded_reason is not None
    assert "circuit options-api open" in result.degraded_reason
    assert report.degraded == [result]
    assert report.to_dict()["results"][0]["degraded"] is True
    (finished,) = events.of(ScannerFinished)
    assert finished.degraded is True
    (degraded,) = events.of(ScannerDegraded)
    assert degraded.scanner == "options_flow"
    assert degraded.open_breakers == ("options-api",)
    assert degraded.summary == result.degraded_reason
    (scan,) = events.of(ScanFinished)
    assert scan.degraded == 1


def test_retries_inside_a_scanner_are_on_its_result():
    attempts: list[int] = []

    @rs.retry(attempts=3, backoff=0.001, on=ConnectionError)
    def quote() -> float:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("reset")
        return 1.0

    def priced(state: Mapping[str, Any]) -> Found:
        return [{"ticker": "P", "price": quote()}]

    with rs.testing.no_waits():
        result = rs.ScanExecutor().run([priced]).result("priced")

    assert result.calls.retries == 2
    assert result.attempts == 3
    assert [entry.kind for entry in result.timeline] == ["retry", "retry"]


def test_scanner_events_carry_the_run_id_and_the_applications_bound_one_wins():
    structlog.contextvars.bind_contextvars(run_id="premarket-2025-06-13")
    try:
        with rs.testing.capture_events(ScannerFinished, ScanStarted) as captured:
            report = rs.ScanExecutor().run([returning("a", {"ticker": "A"})])
    finally:
        structlog.contextvars.unbind_contextvars("run_id")

    assert report.run_id == "premarket-2025-06-13"
    run_ids = {e.run_id for e in captured.of(ScannerFinished)} | {
        e.run_id for e in captured.of(ScanStarted)
    }
    assert run_ids == {"premarket-2025-06-13"}


def test_without_a_bound_run_id_each_run_gets_its_own():
    executor = rs.ScanExecutor()

    first, second = executor.run([]), executor.run([])

    assert first.run_id
    assert first.run_id != second.run_id


def test_structlog_context_carries_the_scanner_inside_it():
    def logs(state: Mapping[str, Any]) -> Found:
        structlog.get_logger("app").info("app.fetched")
        return []

    with capture_with_contextvars() as logs_seen:
        rs.ScanExecutor().run([rs.scanner(name="logger", pipeline="news")(logs)])

    (fetched,) = events_named(logs_seen, "app.fetched")
    assert (fetched["scanner"], fetched["pipeline"]) == ("logger", "news")


def test_a_late_result_is_reported_with_its_candidate_count(
    release: threading.Event, clock: FakeClock, events: CapturedEvents
):
    executor = rs.ScanExecutor(timeout_seconds=1.0, clock=clock)

    report = executor.run([stalling("slow", clock, 2.0, release)])
    assert report.result("slow").status == "timeout"
    release.set()

    assert wait_until(lambda: bool(events.of(LateResultDropped)))
    (late,) = events.of(LateResultDropped)
    assert (late.scanner, late.candidates, late.outcome) == ("slow", 1, "ok")
    assert late.run_id == report.run_id


@pytest.mark.parametrize("level", [logging.INFO, logging.WARNING])
def test_scanner_finished_is_not_built_for_a_logger_that_would_drop_it(
    level: int, caplog: pytest.LogCaptureFixture
):
    structlog.reset_defaults()  # standard logging takes the events
    built: list[str] = []
    original = ScannerFinished.__init__

    def counting(self: ScannerFinished, *args: Any, **kwargs: Any) -> None:
        built.append(args[0])
        original(self, *args, **kwargs)

    caplog.set_level(level, logger="resilient_scan")
    ScannerFinished.__init__ = counting  # type: ignore[method-assign]
    try:
        rs.ScanExecutor().run([returning("fine", {"ticker": "A"})])
    finally:
        ScannerFinished.__init__ = original  # type: ignore[method-assign]

    assert built == (["fine"] if level == logging.INFO else [])


def test_scanner_started_is_a_debug_event_with_its_scanner(events: CapturedEvents):
    rs.ScanExecutor().run([returning("a", pipeline="p")])

    (started,) = events.of(ScannerStarted)
    assert (started.scanner, started.pipeline, started.severity) == ("a", "p", logging.DEBUG)


def test_a_timeout_reports_the_limit_that_fired(release: threading.Event, events: CapturedEvents):
    @rs.timeout(0.02)
    def fetch() -> None:
        release.wait()

    def own_limit(state: Mapping[str, Any]) -> Found:
        fetch()
        return []

    rs.ScanExecutor(timeout_seconds=30.0).run([own_limit])

    (finished,) = events.of(ScannerFinished)
    assert (finished.status, finished.timeout_seconds) == ("timeout", 0.02)


# -- a run that ends another way -------------------------------------------------------------


def test_a_merge_hook_that_raises_costs_the_merge_and_no_finding(events: CapturedEvents):
    def broken_merge(results: Any) -> list[dict[str, Any]]:
        raise ValueError("merge bug")

    report = rs.ScanExecutor(merge=broken_merge).run(
        [returning("a", {"ticker": "AAA"}), returning("b", {"ticker": "BBB"}, {"ticker": "AAA"})]
    )

    assert [c["ticker"] for c in report.candidates] == ["AAA", "BBB", "AAA"]
    assert report.merge_error == "ValueError: merge bug"
    assert report.to_dict()["merge_error"] == "ValueError: merge bug"
    assert [r.status for r in report.results] == ["ok", "ok"]
    (failed,) = events.of(MergeFailed)
    assert (failed.error_type, failed.run_id) == ("ValueError", report.run_id)
    (scan,) = events.of(ScanFinished)
    assert scan.candidates == 3
    assert scan.interrupted == ""


class Stop(BaseException):
    """Like KeyboardInterrupt, raised where the run cannot turn it into a result."""


def test_a_run_interrupted_after_it_started_still_reports_its_end(events: CapturedEvents):
    def interrupted_merge(results: Any) -> list[dict[str, Any]]:
        raise Stop

    with pytest.raises(Stop):
        rs.ScanExecutor(merge=interrupted_merge).run([returning("a", {"ticker": "AAA"})])

    # What a run's start set up (a tracing hook's span) is ended by this event.
    (scan,) = events.of(ScanFinished)
    assert scan.interrupted == "Stop"
    assert scan.counts["ok"] == 1
    assert scan.fields()["interrupted"] == "Stop"


def test_a_cancelled_arun_reports_its_end_and_cancels_its_scanners(events: CapturedEvents):
    started = asyncio.Event()
    cancelled: list[str] = []

    async def slow(state: Mapping[str, Any]) -> Found:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append("slow")
            raise
        return []

    async def main() -> None:
        task = asyncio.create_task(rs.ScanExecutor().arun([slow]))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())

    assert cancelled == ["slow"]
    (scan,) = events.of(ScanFinished)
    assert scan.interrupted == "CancelledError"


def test_a_run_interrupted_by_ctrl_c_still_reports_its_end(
    events: CapturedEvents, release: threading.Event
):
    def waits(state: Mapping[str, Any]) -> Found:
        release.wait(5.0)
        return []

    # Ctrl-C while the caller waits for its scanners: the interrupt lands in the main thread.
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            rs.ScanExecutor(timeout_seconds=10).run([waits])
    finally:
        timer.cancel()
        release.set()

    (scan,) = events.of(ScanFinished)
    assert scan.interrupted == "KeyboardInterrupt"
