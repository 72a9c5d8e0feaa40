"""rs.fan_out (issue 8.6): concurrent calls inside a scanner, with what the scanner has."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest
import structlog

import resilient_scan as rs
from tests.executor.support import Found, Gauge
from tests.helpers import capture_with_contextvars, events_named


def test_results_come_back_in_input_order():
    def slow_first(n: int) -> int:
        time.sleep(0.02 if n == 0 else 0.0)
        return n * n

    assert rs.fan_out(slow_first, range(6), max_workers=3) == [0, 1, 4, 9, 16, 25]


def test_no_more_than_max_workers_calls_at_once():
    gauge = Gauge()

    def work(n: int) -> int:
        gauge.enter()
        time.sleep(0.005)
        gauge.leave()
        return n

    assert rs.fan_out(work, range(12), max_workers=3) == list(range(12))
    assert gauge.peak == 3


def test_inside_a_scanner_the_deadline_log_context_and_stats_carry_over():
    remaining: list[float | None] = []
    threads: set[int] = set()

    @rs.retry(attempts=2, backoff=0.001, on=ConnectionError)
    def quote(ticker: str) -> dict[str, Any]:
        remaining.append(rs.time_remaining())
        threads.add(threading.get_ident())
        structlog.get_logger("app").info("app.quote", ticker=ticker)
        if ticker == "BAD" and len([r for r in remaining if r is not None]) < 4:
            raise ConnectionError("reset")
        return {"ticker": ticker, "context": "quoted"}

    def quotes(state: Mapping[str, Any]) -> Found:
        return rs.fan_out(quote, ["AAPL", "MSFT", "BAD"], max_workers=3)

    with rs.testing.no_waits(), capture_with_contextvars() as logs:
        result = (
            rs.ScanExecutor(timeout_seconds=5)
            .run([rs.scanner(name="fan", pipeline="p")(quotes)])
            .result("fan")
        )

    assert result.status == "ok"
    assert [c["ticker"] for c in result.candidates] == ["AAPL", "MSFT", "BAD"]
    assert all(r is not None and 0 < r <= 5 for r in remaining)  # the scanner's deadline
    assert threading.get_ident() not in threads
    assert result.calls.retries == 1  # counted on the scanner, from the fan-out's threads
    logged = events_named(logs, "app.quote")
    assert len(logged) == 4
    assert {(event["scanner"], event["pipeline"]) for event in logged} == {("fan", "p")}


def test_the_first_failure_in_input_order_is_raised_after_the_others_finish():
    finished: list[int] = []
    all_started = threading.Barrier(4)

    def work(n: int) -> int:
        all_started.wait(timeout=5)
        if n in (1, 3):
            raise ValueError(f"bad {n}")
        time.sleep(0.01)
        finished.append(n)
        return n

    with pytest.raises(ValueError, match="bad 1"):
        rs.fan_out(work, range(4), max_workers=4)
    assert sorted(finished) == [0, 2]


def test_a_failure_stops_calls_from_starting():
    started: list[int] = []

    def work(n: int) -> int:
        started.append(n)
        raise ValueError(str(n))

    with pytest.raises(ValueError, match="0"):
        rs.fan_out(work, range(20), max_workers=1)
    assert started == [0]


def test_return_exceptions_puts_them_in_place():
    def work(n: int) -> int:
        if n == 1:
            raise KeyError("one")
        return n

    results = rs.fan_out(work, range(3), return_exceptions=True)

    assert results[0] == 0
    assert isinstance(results[1], KeyError)
    assert results[2] == 2


def test_at_its_timeout_it_raises_and_abandons_the_hung_calls(release: threading.Event):
    before = rs.abandoned_threads()
    started: list[int] = []

    def work(n: int) -> int:
        started.append(n)
        if n == 0:
            release.wait()
        return n

    begun = time.monotonic()
    with pytest.raises(rs.ScanTimeout):
        rs.fan_out(work, range(5), max_workers=1, timeout=0.05)

    assert time.monotonic() - begun < 1.0
    assert started == [0]  # those not started never start
    assert rs.abandoned_threads() == before + 1


def test_inside_a_scanner_its_deadline_bounds_the_fan_out(release: threading.Event):
    def hang(n: int) -> int:
        release.wait()
        return n

    def fans(state: Mapping[str, Any]) -> Found:
        rs.fan_out(hang, range(3))
        return []

    result = rs.ScanExecutor(timeout_seconds=0.05).run([fans]).result("fans")

    assert result.status == "timeout"


def test_nothing_to_do_and_bad_arguments():
    assert rs.fan_out(str, []) == []
    with pytest.raises(rs.ConfigError, match="max_workers"):
        rs.fan_out(str, [1], max_workers=0)
    with pytest.raises(rs.ConfigError, match="timeout"):
        rs.fan_out(str, [1], timeout=-1)
    with pytest.raises(rs.ConfigError, match="func"):
        rs.fan_out(42, [1])  # type: ignore[call-overload]
