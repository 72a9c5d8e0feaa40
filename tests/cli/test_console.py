"""The console renderer and configure_logging: familiar lines for terminals, JSON for machines."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import structlog

import resilient_scan as rs

Found = list[dict[str, Any]]


@pytest.fixture(autouse=True)
def restore_structlog() -> Iterator[None]:
    """configure_logging changes structlog's global configuration: put it back."""
    saved = structlog.get_config()
    saved["processors"] = list(saved["processors"])
    yield
    structlog.reset_defaults()
    structlog.configure(**saved)


def render(**event: Any) -> Any:
    return rs.ScanConsoleRenderer()(None, "info", event)


# -- the renderer -----------------------------------------------------------------------------


def test_the_started_line():
    line = render(event="scan.started", scanners=8, mode="concurrent", max_workers=8)

    assert line == "Running 8 scanners concurrently (max 8 workers)..."


def test_the_started_line_in_sequential_mode():
    line = render(event="scan.started", scanners=3, mode="sequential", max_workers=1)

    assert line.startswith("Running 3 scanners sequentially")


def test_the_ok_line():
    line = render(
        event="scanner.finished", scanner="market_movers", status="ok", candidates=10, dropped=0
    )

    assert line == "✓ market_movers: 10 candidates"


def test_the_timeout_line():
    line = render(
        event="scanner.finished",
        scanner="slow_scanner",
        status="timeout",
        timeout_seconds=30.0,
        error="ScanTimeout: slow_scanner timed out after 30s (its timeout)",
    )

    assert line == "⏱️ slow_scanner: timeout after 30s"


def test_the_error_line():
    line = render(
        event="scanner.finished",
        scanner="broken_scanner",
        status="error",
        error="HTTPError: HTTP 500 error",
    )

    assert line == "⚠️ broken_scanner: HTTP 500 error"


@pytest.mark.parametrize("status", ["circuit_open", "skipped", "cancelled"])
def test_other_statuses_name_the_scanner_and_the_status(status: str):
    line = render(event="scanner.finished", scanner="news", status=status, reason="why")

    assert "news" in line
    assert line.split(":")[0].endswith("news")


def test_the_summary_line():
    line = render(
        event="scan.finished",
        duration=42.0,
        speedup=3.2,
        candidates=57,
        ok_count=6,
        error_count=1,
        timeout_count=1,
        circuit_open_count=0,
        skipped_count=0,
        cancelled_count=0,
        abandoned=1,
    )

    assert "6 ok" in line
    assert "1 error" in line
    assert "1 timeout" in line
    assert "57 candidates" in line
    assert "42s" in line
    assert "0 skipped" not in line


def test_other_events_go_to_the_fallback():
    def fallback(logger: Any, method: str, event: Any) -> str:
        return f"fallback:{event['event']}"

    renderer = rs.ScanConsoleRenderer(fallback)

    assert renderer(None, "info", {"event": "retry.scheduled"}) == "fallback:retry.scheduled"


# -- a real run through configure_logging -----------------------------------------------------


def scanners_for_the_console(release: threading.Event) -> list[Any]:
    def market_movers(state: Mapping[str, Any]) -> Found:
        return [{"ticker": f"T{i}"} for i in range(10)]

    def slow_scanner(state: Mapping[str, Any]) -> Found:
        release.wait()
        return []

    def broken_scanner(state: Mapping[str, Any]) -> Found:
        raise RuntimeError("HTTP 500 error")

    return [market_movers, slow_scanner, broken_scanner]


def test_console_format_prints_the_familiar_lines(release: threading.Event):
    stream = io.StringIO()
    rs.configure_logging(format="console", stream=stream)

    rs.ScanExecutor(max_workers=8, timeout_seconds=0.3).run(scanners_for_the_console(release), {})

    lines = stream.getvalue().splitlines()
    assert "Running 3 scanners concurrently (max 8 workers)..." in lines
    assert "✓ market_movers: 10 candidates" in lines
    assert "⏱️ slow_scanner: timeout after 0.3s" in lines
    assert "⚠️ broken_scanner: HTTP 500 error" in lines
    (summary,) = [line for line in lines if line.startswith("Done in")]
    assert "1 ok" in summary
    assert "1 timeout" in summary
    assert "1 error" in summary


def test_json_format_prints_one_object_per_line(release: threading.Event):
    stream = io.StringIO()
    rs.configure_logging(format="json", stream=stream)

    rs.ScanExecutor(timeout_seconds=0.3).run(scanners_for_the_console(release), {})

    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    (started,) = [e for e in events if e["event"] == "scan.started"]
    assert started["scanners"] == 3
    assert started["mode"] == "concurrent"
    assert started["max_workers"] == 8
    assert "timestamp" in started
    assert started["level"] == "info"
    finished = {e["scanner"]: e for e in events if e["event"] == "scanner.finished"}
    assert finished["market_movers"]["status"] == "ok"
    assert finished["market_movers"]["candidates"] == 10
    assert finished["slow_scanner"]["status"] == "timeout"
    assert finished["slow_scanner"]["level"] == "warning"
    assert finished["broken_scanner"]["status"] == "error"
    assert "HTTP 500 error" in finished["broken_scanner"]["error"]
    (done,) = [e for e in events if e["event"] == "scan.finished"]
    assert (done["ok_count"], done["timeout_count"], done["error_count"]) == (1, 1, 1)


def test_json_lines_carry_the_scanner_name_of_policy_events():
    stream = io.StringIO()
    rs.configure_logging(format="json", stream=stream)
    failures: list[int] = []

    @rs.scanner(name="json_retrying")
    @rs.retry(attempts=2, backoff=0.01, on=ConnectionError)
    def retrying(state: Mapping[str, Any]) -> Found:
        if not failures:
            failures.append(1)
            raise ConnectionError("reset")
        return []

    with rs.testing.no_waits():
        rs.ScanExecutor().run([retrying], {})

    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    (scheduled,) = [e for e in events if e["event"] == "retry.scheduled"]
    assert scheduled["scanner"] == "json_retrying"


def test_a_level_filters_events():
    stream = io.StringIO()
    rs.configure_logging(format="json", level="warning", stream=stream)

    def quiet(state: Mapping[str, Any]) -> Found:
        return []

    def loud(state: Mapping[str, Any]) -> Found:
        raise ValueError("bad")

    rs.ScanExecutor().run([quiet, loud], {})

    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e.get("scanner") for e in events if e["event"] == "scanner.finished"] == ["loud"]
    assert not [e for e in events if e["event"] in ("scan.started", "scan.finished")]


def test_loggers_are_not_cached_so_capture_logs_still_works():
    rs.configure_logging(format="json", stream=io.StringIO())

    def after_configure(state: Mapping[str, Any]) -> Found:
        return []

    with structlog.testing.capture_logs() as events:
        rs.ScanExecutor().run([after_configure], {})

    assert [e["scanner"] for e in events if e["event"] == "scanner.finished"] == ["after_configure"]


@pytest.mark.parametrize("bad", [{"format": "xml"}, {"format": ""}, {"level": "verbose"}])
def test_bad_format_or_level_is_a_config_error(bad: dict[str, Any]):
    before = structlog.get_config()["processors"]

    with pytest.raises(rs.ConfigError) as caught:
        rs.configure_logging(stream=io.StringIO(), **bad)

    assert next(iter(bad)) in str(caught.value)
    assert structlog.get_config()["processors"] is before, "configuration changed anyway"


def test_auto_picks_json_for_a_stream_that_is_not_a_terminal():
    stream = io.StringIO()
    rs.configure_logging(stream=stream)

    structlog.get_logger().info("hello", answer=42)

    event = json.loads(stream.getvalue())
    assert event.pop("timestamp").endswith("Z")
    assert event == {"event": "hello", "answer": 42, "level": "info"}


def test_the_timeout_line_shows_the_limit_that_fired(release: threading.Event):
    # The scanner's own rs.timeout(0.1) fired, or the run's 0.2 s deadline did: neither took
    # the executor's 30 s, and a line saying "timeout after 30s" sends people the wrong way.
    @rs.timeout(0.1)
    def inner_limit(state: Mapping[str, Any]) -> Found:
        release.wait()
        return []

    def run_deadline(state: Mapping[str, Any]) -> Found:
        release.wait()
        return []

    stream = io.StringIO()
    rs.configure_logging(format="console", stream=stream)

    rs.ScanExecutor(timeout_seconds=30.0).run([inner_limit], {})
    rs.ScanExecutor(timeout_seconds=30.0, deadline_seconds=0.2).run([run_deadline], {})

    lines = stream.getvalue().splitlines()
    assert "⏱️ inner_limit: timeout after 0.1s" in lines
    assert "⏱️ run_deadline: timeout after 0.2s" in lines
