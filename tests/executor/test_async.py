"""Async scanners (issue 11.2): on a real event loop, alone and mixed with sync scanners."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import pytest
import structlog

import resilient_scan as rs
from resilient_scan._arun import DEADLINE_GRAIN
from resilient_scan.instrumentation import LateResultDropped, ScannerStarted
from resilient_scan.testing import ApiSimulator, CapturedEvents
from tests.executor.support import MARGIN, Found, Gauge, returning
from tests.helpers import capture_with_contextvars, events_named, wait_until


def finding(name: str, *tickers: str, pause: float = 0.0, pipeline: str | None = None) -> Any:
    @rs.scanner(name=name, pipeline=pipeline)
    async def scan(state: Mapping[str, Any]) -> Found:
        await asyncio.sleep(pause)
        return [{"ticker": ticker, "context": name} for ticker in tickers]

    return scan


class Hung:
    """An async scanner that never returns, and notes whether it was cancelled."""

    def __init__(self, name: str = "hung") -> None:
        self.name = name
        self.cancelled = threading.Event()

    async def scan(self, state: Mapping[str, Any]) -> Found:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return []


def test_arun_runs_async_scanners_on_the_running_loop():
    loops: list[asyncio.AbstractEventLoop] = []

    async def where(state: Mapping[str, Any]) -> Found:
        loops.append(asyncio.get_running_loop())
        return [{"ticker": "LOOP"}]

    async def main() -> tuple[rs.ScanReport, asyncio.AbstractEventLoop]:
        report = await rs.ScanExecutor().arun([where, finding("other", "LOOP", "B")])
        return report, asyncio.get_running_loop()

    report, loop = asyncio.run(main())

    assert loops == [loop]
    assert [r.status for r in report.results] == ["ok", "ok"]
    (loop_candidate,) = [c for c in report.candidates if c["ticker"] == "LOOP"]
    assert loop_candidate["all_sources"] == ["where", "other"]


def test_run_accepts_async_scanners_from_sync_code():
    report = rs.ScanExecutor().run([finding("a", "A", pause=0.01), returning("b", {"ticker": "B"})])

    assert [r.status for r in report.results] == ["ok", "ok"]
    assert [c["ticker"] for c in report.candidates] == ["A", "B"]


def test_a_mixed_run_reports_as_a_sync_one_would():
    state: dict[str, Any] = {"config": {"limit": 1}, "tool_logs": []}

    async def async_writer(state: dict[str, Any]) -> Found:
        state["config"]["limit"] = 99
        state["tool_logs"].append({"by": "async_writer"})
        return [{"ticker": "NVDA", "priority": "high"}]

    def sync_reader(state: dict[str, Any]) -> Found:
        time.sleep(0.02)
        state["tool_logs"].append({"by": "sync_reader"})
        return [{"ticker": "NVDA", "context": str(state["config"]["limit"])}]

    async def async_reader(state: dict[str, Any]) -> Found:
        await asyncio.sleep(0.02)
        return [{"ticker": "AMD", "context": str(state["config"]["limit"])}]

    mixed = rs.ScanExecutor().run([async_writer, sync_reader, async_reader], state)

    assert [r.status for r in mixed.results] == ["ok", "ok", "ok"]
    assert state == {"config": {"limit": 1}, "tool_logs": []}  # the caller's state is untouched
    assert [c["context"] for c in mixed.result("sync_reader").candidates] == ["1"]
    assert [c["context"] for c in mixed.result("async_reader").candidates] == ["1"]
    assert mixed.tool_logs == [{"by": "async_writer"}, {"by": "sync_reader"}]
    (nvda,) = [c for c in mixed.candidates if c["ticker"] == "NVDA"]
    assert nvda["all_sources"] == ["async_writer", "sync_reader"]
    assert nvda["priority"] == "high"


def test_an_async_scanner_past_its_limit_is_cancelled_and_leaves_no_thread():
    hung = Hung()
    before = rs.abandoned_threads()

    started = time.monotonic()
    report = rs.ScanExecutor(timeout_seconds=0.05).run([hung, finding("fine", "F")])
    elapsed = time.monotonic() - started

    result = report.result("hung")
    assert result.status == "timeout"
    assert result.error == "ScanTimeout: hung timed out after 0.05s (its timeout_seconds)"
    assert not result.abandoned
    assert report.abandoned == 0
    assert hung.cancelled.is_set()  # cancelled for real, not abandoned
    assert rs.abandoned_threads() == before
    assert elapsed < 0.05 + MARGIN
    assert report.result("fine").status == "ok"


def test_the_run_deadline_cancels_what_runs_and_what_waits():
    hung = Hung()
    ran: list[str] = []

    async def later(state: Mapping[str, Any]) -> Found:
        ran.append("later")
        return []

    executor = rs.ScanExecutor(max_tasks=1, timeout_seconds=30, deadline_seconds=0.05)
    report = executor.run([hung, later])

    assert [r.status for r in report.results] == ["timeout", "cancelled"]
    assert "deadline_seconds" in (report.result("hung").error or "")
    assert hung.cancelled.is_set()
    assert ran == []


def test_max_tasks_bounds_the_async_scanners_running_at_once():
    gauge = Gauge()

    def gauged(name: str) -> Any:
        @rs.scanner(name=name)
        async def scan(state: Mapping[str, Any]) -> Found:
            gauge.enter()
            await asyncio.sleep(0.005)
            gauge.leave()
            return []

        return scan

    report = rs.ScanExecutor(max_tasks=3).run([gauged(f"g{i}") for i in range(12)])

    assert report.counts["ok"] == 12
    assert gauge.peak == 3


def test_sequential_mode_runs_sync_and_async_scanners_one_at_a_time():
    gauge = Gauge()

    def sync_one(name: str) -> Any:
        @rs.scanner(name=name)
        def scan(state: Mapping[str, Any]) -> Found:
            gauge.enter()
            time.sleep(0.005)
            gauge.leave()
            return [{"ticker": name}]

        return scan

    def async_one(name: str) -> Any:
        @rs.scanner(name=name)
        async def scan(state: Mapping[str, Any]) -> Found:
            gauge.enter()
            await asyncio.sleep(0.005)
            gauge.leave()
            return [{"ticker": name}]

        return scan

    scanners = [sync_one("s1"), async_one("a1"), sync_one("s2"), async_one("a2")]
    report = rs.ScanExecutor(concurrent=False, timeout_seconds=5).run(scanners)

    assert [r.status for r in report.results] == ["ok"] * 4
    assert gauge.peak == 1
    assert report.mode == "sequential"


def test_sequential_mode_times_out_an_async_scanner_too():
    report = rs.ScanExecutor(concurrent=False, timeout_seconds=0.05).run(
        [Hung(), finding("b", "B")]
    )

    assert [r.status for r in report.results] == ["timeout", "ok"]


def test_cancelling_the_awaiting_task_cancels_the_scanners_and_propagates():
    hung = Hung()

    async def main() -> None:
        task = asyncio.create_task(rs.ScanExecutor(timeout_seconds=30).arun([hung]))
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())

    assert hung.cancelled.is_set()


def test_a_scanner_that_ignores_its_cancellation_is_still_a_timeout(events: CapturedEvents):
    async def stubborn(state: Mapping[str, Any]) -> Found:
        with contextlib.suppress(asyncio.CancelledError):  # swallows it, returns after all
            await asyncio.sleep(3600)
        return [{"ticker": "LATE"}]

    report = rs.ScanExecutor(timeout_seconds=0.05).run([stubborn])

    assert report.result("stubborn").status == "timeout"
    assert report.candidates == []
    assert wait_until(lambda: bool(events.of(LateResultDropped)))
    assert events.of(LateResultDropped)[0].candidates == 1


def test_time_remaining_and_log_context_inside_an_async_scanner():
    seen: list[float | None] = []

    async def looks(state: Mapping[str, Any]) -> Found:
        seen.append(rs.time_remaining())
        structlog.get_logger("app").info("app.async")
        return []

    with capture_with_contextvars() as logs:
        rs.ScanExecutor(timeout_seconds=5).run([rs.scanner(name="looker", pipeline="news")(looks)])

    assert seen[0] is not None
    # Its limit, and at most the grain by which scanners started together share a deadline.
    assert 4.5 < seen[0] <= 5 + DEADLINE_GRAIN
    (logged,) = events_named(logs, "app.async")
    assert (logged["scanner"], logged["pipeline"]) == ("looker", "news")


def test_scanner_started_is_emitted_inside_the_scanners_task(events: CapturedEvents):
    tasks: dict[str, asyncio.Task[Any] | None] = {}

    class Hook:
        events = (ScannerStarted,)

        def __call__(self, event: Any) -> None:
            tasks[event.scanner] = asyncio.current_task()

    rs.instrumentation.add_hook(Hook())
    inside: dict[str, asyncio.Task[Any] | None] = {}

    async def where(state: Mapping[str, Any]) -> Found:
        inside["where"] = asyncio.current_task()
        return []

    rs.ScanExecutor().run([where])

    assert tasks["where"] is not None
    assert tasks == inside


def test_an_async_scanner_class_is_built_and_its_scan_awaited():
    class Async:
        name = "async_class"

        def __init__(self, settings: Mapping[str, Any]) -> None:
            self.limit = settings["limit"]

        async def scan(self, state: Mapping[str, Any]) -> Found:
            await asyncio.sleep(0)
            return [{"ticker": f"T{i}"} for i in range(self.limit)]

    executor = rs.ScanExecutor(scanners={"async_class": {"limit": 3}})
    result = executor.run([Async]).result("async_class")

    assert result.status == "ok"
    assert len(result.candidates) == 3


def test_run_called_from_sync_code_inside_a_running_loop():
    async def main() -> rs.ScanReport:
        # An async application calling a sync helper that runs the executor.
        return rs.ScanExecutor().run([finding("inside", "I")])

    report = asyncio.run(main())

    assert report.result("inside").status == "ok"


# -- real sockets --------------------------------------------------------------------------------


async def get_json(base: str, path: str) -> dict[str, Any]:
    """A minimal HTTP/1.0 GET on asyncio streams."""
    url = urlsplit(base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {url.hostname}\r\n\r\n".encode())
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    if status != 200:
        raise ConnectionError(f"HTTP {status} from {path}")
    answer: dict[str, Any] = json.loads(body)
    return answer


def test_async_scanners_against_a_local_api():
    with ApiSimulator(latency_scale=0.02) as api:

        async def movers(state: Mapping[str, Any]) -> Found:
            data = await get_json(api.url, "/v1/market/movers")
            return [{"ticker": row["symbol"]} for row in data["movers"]]

        async def alt_data(state: Mapping[str, Any]) -> Found:
            await get_json(api.url, "/v1/altdata/signals")  # never answers
            return []

        async def options(state: Mapping[str, Any]) -> Found:
            await get_json(api.url, "/v1/options/flow")  # HTTP 503
            return []

        report = rs.ScanExecutor(timeout_seconds=0.3).run([movers, alt_data, options])

        assert api.requests("/v1/market/movers") == 1
        assert api.requests("/v1/altdata/signals") == 1

    assert [r.status.value for r in report.results] == ["ok", "timeout", "error"]
    assert "NVDA" in [c["ticker"] for c in report.result("movers").candidates]
    assert report.result("options").error == "ConnectionError: HTTP 503 from /v1/options/flow"
    assert report.abandoned == 0


# -- starting, deadlines and limits in the loop ------------------------------------------------


def test_a_pool_without_a_thread_fails_every_sync_scanner_of_an_async_run(
    release: threading.Event, events: CapturedEvents
):
    pool = rs.DaemonPool(max_threads=1)
    pool.submit(release.wait)  # its one thread is busy

    async def quick(state: Mapping[str, Any]) -> Found:
        return []

    def sync_scanner(i: int) -> Any:
        def scan(state: Mapping[str, Any]) -> Found:
            return []

        scan.__name__ = f"sync_{i}"
        return scan

    # Hundreds of them: each one failed must not start the next in a nested call.
    scanners = [quick, *(sync_scanner(i) for i in range(600))]
    report = asyncio.run(rs.ScanExecutor(pool=pool, max_workers=4).arun(scanners))

    assert report.counts["ok"] == 1
    assert report.counts["error"] == 600
    assert {r.reason for r in report.results if r.status == "error"} == {"no thread to run it on"}


def test_async_scanners_started_together_each_get_their_own_limit():
    async def blocks(state: Mapping[str, Any]) -> Found:
        time.sleep(0.15)  # noqa: ASYNC251 - holds the loop: it returns before the timer acts
        return []

    def named(name: str) -> Any:
        async def scan(state: Mapping[str, Any]) -> Found:
            return await blocks(state)

        scan.__name__ = name
        return scan

    report = rs.ScanExecutor(timeout_seconds=0.05).run([named("s1"), named("s2"), named("s3")])

    for result in report.results:
        assert result.status == "timeout"
        assert result.timeout_seconds == 0.05
        assert (
            result.error
            == f"ScanTimeout: {result.name} timed out after 0.05s (its timeout_seconds)"
        )


def test_no_async_scanner_starts_after_the_runs_deadline():
    ran: list[str] = []

    async def first(state: Mapping[str, Any]) -> Found:
        time.sleep(0.2)  # noqa: ASYNC251 - holds the loop past the run's 0.1 s deadline
        return []

    async def second(state: Mapping[str, Any]) -> Found:
        ran.append("second")
        return [{"ticker": "LATE"}]

    report = rs.ScanExecutor(concurrent=False, deadline_seconds=0.1, timeout_seconds=5).run(
        [first, second]
    )

    assert ran == []
    assert report.result("first").status == "timeout"
    assert report.result("second").status == "cancelled"
