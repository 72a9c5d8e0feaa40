"""rs.ScanExecutor: statuses, scanner shapes, the report, the concurrency bound and the events."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest
from structlog.typing import EventDict

import resilient_scan as rs
from tests.executor.support import MARGIN, Found, Gauge
from tests.helpers import Calls, capture_with_contextvars


def capture() -> Any:
    """Capture events with the context that structlog.contextvars binds merged in."""
    return capture_with_contextvars()


def named(events: list[EventDict], name: str, **fields: Any) -> list[EventDict]:
    """The events called *name* whose fields include *fields*."""
    return [
        event
        for event in events
        if event["event"] == name and all(event.get(k) == v for k, v in fields.items())
    ]


# -- statuses ---------------------------------------------------------------------------------


def test_a_scanner_returning_candidates_is_ok():
    def market_movers(state: Mapping[str, Any]) -> Found:
        return [{"ticker": "aapl"}, {"ticker": "msft", "priority": "high"}]

    report = rs.ScanExecutor().run([market_movers], {})

    result = report.result("market_movers")
    assert result.status == "ok"
    assert result.status is rs.ScanStatus.OK
    assert result.error is None
    assert [c["ticker"] for c in result.candidates] == ["AAPL", "MSFT"]


def test_a_scanner_that_raises_is_error_with_type_and_message():
    def broken(state: Mapping[str, Any]) -> Found:
        raise RuntimeError("HTTP 500 error")

    result = rs.ScanExecutor().run([broken], {}).result("broken")

    assert result.status == "error"
    assert result.error is not None
    assert "RuntimeError" in result.error
    assert "HTTP 500 error" in result.error
    assert result.candidates == []


@pytest.mark.parametrize("returned", [None, {"ticker": "AAPL"}, ("AAPL",), "AAPL", 42])
def test_a_scanner_returning_a_non_list_is_error(returned: object):
    def odd(state: Mapping[str, Any]) -> Any:
        return returned

    result = rs.ScanExecutor().run([odd], {}).result("odd")

    assert result.status == "error"
    assert result.error is not None
    assert type(returned).__name__ in result.error
    assert result.candidates == []


def test_circuit_open_error_from_a_scanner_is_circuit_open():
    def guarded(state: Mapping[str, Any]) -> Found:
        raise rs.CircuitOpenError("news_api", 12.0)

    result = rs.ScanExecutor().run([guarded], {}).result("guarded")

    assert result.status == "circuit_open"
    assert result.error is not None
    assert "CircuitOpenError" in result.error


def test_a_real_open_breaker_makes_the_next_run_circuit_open():
    calls = Calls()

    @rs.scanner(name="flaky_api")
    @rs.resilient(breaker={"fail_max": 1, "reset_timeout": 60.0})
    def flaky_api(state: Mapping[str, Any]) -> Found:
        calls.add()
        raise ConnectionError("refused")

    executor = rs.ScanExecutor()
    first = executor.run([flaky_api], {}).result("flaky_api")
    second = executor.run([flaky_api], {}).result("flaky_api")

    assert first.status == "error"
    assert second.status == "circuit_open"
    assert calls.count == 1, "an open breaker must not call the scanner"


def test_scan_timeout_from_the_scanners_own_timeout_layer_is_timeout(release: threading.Event):
    @rs.timeout(0.1)
    def slow_api(state: Mapping[str, Any]) -> Found:
        release.wait()
        return []

    started = time.monotonic()
    result = rs.ScanExecutor(timeout_seconds=30.0).run([slow_api], {}).result("slow_api")

    assert result.status == "timeout"
    assert result.error is not None
    assert "ScanTimeout" in result.error
    assert not result.abandoned, "the scanner itself returned (its inner call was abandoned)"
    assert time.monotonic() - started < 0.1 + MARGIN


def test_a_disabled_scanner_is_skipped_and_never_called():
    calls = Calls()

    @rs.scanner(enabled=False)
    def dormant(state: Mapping[str, Any]) -> Found:
        calls.add()
        return []

    result = rs.ScanExecutor().run([dormant], {}).result("dormant")

    assert result.status == "skipped"
    assert result.reason
    assert result.duration == 0.0
    assert calls.count == 0


def test_a_disabled_scanner_class_is_never_instantiated():
    built = Calls()

    class Dormant:
        name = "dormant"

        def __init__(self, settings: Mapping[str, Any]) -> None:
            built.add()

        def scan(self, state: Mapping[str, Any]) -> Found:
            return []

    executor = rs.ScanExecutor(scanners={"dormant": {"enabled": False}})
    report = executor.run([Dormant], {})

    assert report.result("dormant").status == "skipped"
    assert built.count == 0


def test_a_scanner_class_whose_constructor_raises_is_error_and_the_others_run():
    class NeedsApiKey:
        name = "needs_api_key"

        def __init__(self, settings: Mapping[str, Any]) -> None:
            raise KeyError("API_KEY")

        def scan(self, state: Mapping[str, Any]) -> Found:
            return []

    def healthy(state: Mapping[str, Any]) -> Found:
        return [{"ticker": "IBM"}]

    scanners: list[Any] = [NeedsApiKey, healthy]
    report = rs.ScanExecutor().run(scanners, {})

    broken = report.result("needs_api_key")
    assert broken.status == "error"
    assert broken.error is not None
    assert "KeyError" in broken.error
    assert "API_KEY" in broken.error
    assert report.result("healthy").status == "ok"
    assert report.result("healthy").candidates[0]["ticker"] == "IBM"


def test_ok_with_zero_candidates_means_it_found_none():
    def quiet(state: Mapping[str, Any]) -> Found:
        return []

    result = rs.ScanExecutor().run([quiet], {}).result("quiet")

    assert result.status == "ok"
    assert result.candidates == []
    assert result.dropped == 0
    assert result.error is None


def test_ok_stays_ok_when_some_candidates_are_invalid():
    def sloppy(state: Mapping[str, Any]) -> list[Any]:
        return [{"ticker": "aapl"}, "MSFT", {"ticker": ""}, {"context": "no ticker"}, None]

    report = rs.ScanExecutor().run([sloppy], {})
    result = report.result("sloppy")

    assert result.status == "ok"
    assert result.dropped == 4
    assert [c["ticker"] for c in result.candidates] == ["AAPL"]
    assert report.dropped == 4


def test_every_status_in_one_run(release: threading.Event):
    def ok(state: Mapping[str, Any]) -> Found:
        return [{"ticker": "A"}]

    def error(state: Mapping[str, Any]) -> Found:
        raise ValueError("bad")

    def circuit(state: Mapping[str, Any]) -> Found:
        raise rs.CircuitOpenError("b", 1.0)

    def hung(state: Mapping[str, Any]) -> Found:
        release.wait()
        return []

    @rs.scanner(enabled=False)
    def off(state: Mapping[str, Any]) -> Found:
        return []

    executor = rs.ScanExecutor(timeout_seconds=30.0, scanners={"hung": {"timeout_seconds": 0.05}})
    report = executor.run([ok, error, circuit, hung, off], {})

    assert [r.status for r in report.results] == [
        "ok",
        "error",
        "circuit_open",
        "timeout",
        "skipped",
    ]
    assert report.counts == {
        "ok": 1,
        "error": 1,
        "timeout": 1,
        "circuit_open": 1,
        "skipped": 1,
        "cancelled": 0,
    }
    assert [r.name for r in report.failed] == ["error", "circuit", "hung"]


# -- the report -------------------------------------------------------------------------------


def sleeper(name: str, seconds: float, ticker: str | None = None) -> Any:
    @rs.scanner(name=name)
    def scan(state: Mapping[str, Any]) -> Found:
        time.sleep(seconds)
        return [{"ticker": ticker or name}]

    return scan


def test_results_come_in_the_order_given_not_the_finishing_order():
    scanners = [sleeper("slowest", 0.03), sleeper("middle", 0.015), sleeper("fastest", 0.0)]

    report = rs.ScanExecutor().run(scanners, {})

    assert [r.name for r in report.results] == ["slowest", "middle", "fastest"]
    assert all(r.status == "ok" for r in report.results)


def test_parallel_sleeps_give_a_speedup_and_a_wall_duration():
    scanners = [sleeper(f"s{i}", 0.08) for i in range(4)]

    report = rs.ScanExecutor(max_workers=4).run(scanners, {})

    assert report.mode == "concurrent"
    assert report.max_workers == 4
    assert 0.08 <= report.duration < 0.08 * 4
    assert all(r.duration >= 0.079 for r in report.results)
    assert report.speedup > 1.2
    assert report.speedup == pytest.approx(
        sum(r.duration for r in report.results) / report.duration
    )


def test_sequential_mode_runs_one_at_a_time():
    scanners = [sleeper(f"s{i}", 0.02) for i in range(3)]

    report = rs.ScanExecutor(concurrent=False).run(scanners, {})

    assert report.mode == "sequential"
    assert report.max_workers == 1
    assert report.duration >= 0.06
    assert report.speedup <= 1.05


def test_report_to_dict_is_json_ready(release: threading.Event):
    def ok(state: Mapping[str, Any]) -> Found:
        state["tool_logs"].append({"tool": "quote", "ticker": "AAPL"})
        return [{"ticker": "aapl", "priority": "high", "context": "gap up", "volume": 3}]

    def hung(state: Mapping[str, Any]) -> Found:
        release.wait()
        return []

    def broken(state: Mapping[str, Any]) -> Found:
        raise RuntimeError("HTTP 500 error")

    executor = rs.ScanExecutor(scanners={"hung": {"timeout_seconds": 0.05}})
    report = executor.run([ok, hung, broken], {"tool_logs": []})

    data = json.loads(json.dumps(report.to_dict()))
    assert data["counts"]["ok"] == 1
    assert data["counts"]["timeout"] == 1
    assert data["counts"]["error"] == 1
    assert data["abandoned"] == 1
    assert data["mode"] == "concurrent"
    assert [r["name"] for r in data["results"]] == ["ok", "hung", "broken"]
    assert [r["status"] for r in data["results"]] == ["ok", "timeout", "error"]
    assert data["candidates"][0]["ticker"] == "AAPL"
    assert data["candidates"][0]["all_sources"] == ["ok"]
    assert data["tool_logs"] == [{"tool": "quote", "ticker": "AAPL"}]
    assert isinstance(data["duration"], float)
    assert isinstance(data["speedup"], float)


def test_result_by_name_and_an_unknown_name():
    def known(state: Mapping[str, Any]) -> Found:
        return []

    report = rs.ScanExecutor().run([known], {})

    assert report.result("known").name == "known"
    with pytest.raises(KeyError, match="nobody"):
        report.result("nobody")


def test_an_empty_run_is_an_empty_report():
    report = rs.ScanExecutor().run([], {})

    assert report.results == []
    assert report.candidates == []
    assert report.tool_logs == []
    assert report.failed == []
    assert set(report.counts.values()) == {0}


def test_state_may_be_omitted():
    def reads_nothing(state: Mapping[str, Any]) -> Found:
        assert len(state) == 0
        return []

    assert rs.ScanExecutor().run([reads_nothing]).result("reads_nothing").status == "ok"


def test_a_registry_can_be_run_directly():
    registry = rs.ScannerRegistry()

    @registry.register
    def one(state: Mapping[str, Any]) -> Found:
        return [{"ticker": "ONE"}]

    @registry.register(name="two", pipeline="momentum")
    def second(state: Mapping[str, Any]) -> Found:
        return [{"ticker": "TWO"}]

    report = rs.ScanExecutor().run(registry, {})

    assert [(r.name, r.pipeline, r.status) for r in report.results] == [
        ("one", None, "ok"),
        ("two", "momentum", "ok"),
    ]


# -- concurrency ------------------------------------------------------------------------------


def gauged(name: str, gauge: Gauge, seconds: float) -> Any:
    @rs.scanner(name=name)
    def scan(state: Mapping[str, Any]) -> Found:
        gauge.enter()
        try:
            time.sleep(seconds)
        finally:
            gauge.leave()
        return []

    return scan


@pytest.mark.parametrize("max_workers", [1, 3])
def test_never_more_than_max_workers_bodies_at_once(max_workers: int):
    gauge = Gauge()
    scanners = [gauged(f"g{i}", gauge, 0.01) for i in range(10)]

    report = rs.ScanExecutor(max_workers=max_workers).run(scanners, {})

    assert report.counts["ok"] == 10
    assert gauge.peak <= max_workers
    assert gauge.peak >= min(max_workers, 2), "the scanners did not run concurrently at all"


def test_sequential_mode_never_overlaps_bodies():
    gauge = Gauge()
    scanners = [gauged(f"g{i}", gauge, 0.005) for i in range(5)]

    rs.ScanExecutor(concurrent=False, max_workers=8).run(scanners, {})

    assert gauge.peak == 1


def test_all_max_workers_run_together():
    # Four scanners that each wait until all four are inside: only a run that really starts
    # max_workers bodies at once can finish them all ok.
    barrier = threading.Barrier(4)

    def meet(name: str) -> Any:
        @rs.scanner(name=name)
        def scan(state: Mapping[str, Any]) -> Found:
            barrier.wait(timeout=5.0)
            return []

        return scan

    report = rs.ScanExecutor(max_workers=4).run([meet(f"m{i}") for i in range(4)], {})

    assert report.counts["ok"] == 4


def test_time_remaining_inside_a_scanner_reflects_its_timeout():
    seen: list[float | None] = []

    def measures(state: Mapping[str, Any]) -> Found:
        seen.append(rs.time_remaining())
        return []

    rs.ScanExecutor(timeout_seconds=5.0).run([measures], {})

    assert len(seen) == 1
    remaining = seen[0]
    assert remaining is not None
    assert 0.0 < remaining <= 5.0


def test_retries_are_counted_in_the_result():
    failures = Calls()

    @rs.retry(attempts=3, backoff=0.01, on=ConnectionError)
    def flaky(state: Mapping[str, Any]) -> Found:
        if failures.count < 2:
            failures.add()
            raise ConnectionError("reset")
        return [{"ticker": "AAPL"}]

    with rs.testing.no_waits():
        result = rs.ScanExecutor().run([flaky], {}).result("flaky")

    assert result.status == "ok"
    assert result.retries == 2
    assert result.attempts == 3


# -- events -----------------------------------------------------------------------------------


def test_run_and_scanner_events(release: threading.Event):
    def ev_ok(state: Mapping[str, Any]) -> list[Any]:
        return [{"ticker": "A"}, {"ticker": "B"}, "junk"]

    def ev_broken(state: Mapping[str, Any]) -> Found:
        raise RuntimeError("HTTP 500 error")

    def ev_hung(state: Mapping[str, Any]) -> Found:
        release.wait()
        return []

    @rs.scanner(pipeline="momentum", enabled=False)
    def ev_off(state: Mapping[str, Any]) -> Found:
        return []

    with capture() as events:
        rs.ScanExecutor(max_workers=3, scanners={"ev_hung": {"timeout_seconds": 0.05}}).run(
            [ev_ok, ev_broken, ev_hung, ev_off], {}
        )

    (started,) = named(events, "scan.started", scanners=4)
    assert started["mode"] == "concurrent"
    assert started["max_workers"] == 3

    finished = {
        event["scanner"]: event
        for event in named(events, "scanner.finished")
        if event["scanner"].startswith("ev_")
    }
    assert set(finished) == {"ev_ok", "ev_broken", "ev_hung", "ev_off"}
    for name in finished:
        assert len(named(events, "scanner.finished", scanner=name)) == 1, name
    for event in finished.values():
        for key in ("scanner", "pipeline", "status", "candidates", "dropped", "duration", "error"):
            assert key in event, (event["scanner"], key)

    assert finished["ev_ok"]["status"] == "ok"
    assert finished["ev_ok"]["candidates"] == 2
    assert finished["ev_ok"]["dropped"] == 1
    assert finished["ev_ok"]["error"] is None
    assert finished["ev_broken"]["status"] == "error"
    assert "HTTP 500 error" in finished["ev_broken"]["error"]
    assert finished["ev_hung"]["status"] == "timeout"
    assert finished["ev_hung"]["error"]
    assert finished["ev_off"]["status"] == "skipped"
    assert finished["ev_off"]["pipeline"] == "momentum"

    (done,) = [
        e for e in named(events, "scan.finished") if e.get("ok_count") == 1 and e["timeout_count"]
    ]
    assert done["error_count"] == 1
    assert done["timeout_count"] == 1
    assert done["skipped_count"] == 1
    assert done["cancelled_count"] == 0
    assert done["duration"] > 0
    assert "speedup" in done


def test_policy_events_inside_a_scanner_carry_its_name():
    failures = Calls()

    @rs.scanner(name="retrying_scanner")
    @rs.retry(attempts=3, backoff=0.01, on=ConnectionError)
    def retrying(state: Mapping[str, Any]) -> Found:
        if failures.count < 2:
            failures.add()
            raise ConnectionError("reset")
        return []

    with rs.testing.no_waits(), capture() as events:
        rs.ScanExecutor().run([retrying], {})

    scheduled = named(events, "retry.scheduled")
    assert len(scheduled) == 2
    assert all(event.get("scanner") == "retrying_scanner" for event in scheduled)


def test_breaker_events_inside_a_scanner_carry_its_name():
    @rs.scanner(name="breaking_scanner")
    @rs.circuit_breaker(fail_max=1, reset_timeout=60.0)
    def breaking(state: Mapping[str, Any]) -> Found:
        raise ConnectionError("refused")

    executor = rs.ScanExecutor()
    with capture() as events:
        first = executor.run([breaking], {}).result("breaking_scanner")
        second = executor.run([breaking], {}).result("breaking_scanner")

    assert (first.status, second.status) == ("error", "circuit_open")
    changed = named(events, "breaker.state_changed")
    rejected = named(events, "breaker.rejected")
    assert changed
    assert len(rejected) == 1
    assert all(e.get("scanner") == "breaking_scanner" for e in [*changed, *rejected])


def test_inner_timeout_events_carry_the_scanner_name_from_every_thread(release: threading.Event):
    @rs.timeout(0.1)
    def fetch() -> str:
        release.wait()
        return "late"

    @rs.scanner(name="timing_out_scanner", pipeline="news")
    def timing_out(state: Mapping[str, Any]) -> Found:
        fetch()
        return []

    with capture() as events:
        report = rs.ScanExecutor().run([timing_out], {})
        assert report.result("timing_out_scanner").status == "timeout"
        release.set()  # the abandoned fetch returns now and logs from its own thread
        deadline = time.monotonic() + 5.0
        while (
            not named(events, "timeout.abandoned_call_finished", scanner="timing_out_scanner")
            and time.monotonic() < deadline
        ):
            time.sleep(0.01)

    fired = named(events, "timeout.fired", scanner="timing_out_scanner")
    assert len(fired) == 1
    assert fired[0]["pipeline"] == "news"
    late = named(events, "timeout.abandoned_call_finished", scanner="timing_out_scanner")
    assert len(late) == 1
