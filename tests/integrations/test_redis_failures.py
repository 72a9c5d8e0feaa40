"""Redis failing: each layer falls back as documented, says so once, and comes back by itself.

Every test here runs its own redis-server, and kills (SIGKILL), pauses (SIGSTOP) and
restarts it while policies are in use.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import redis

import resilient_scan as rs
from resilient_scan.instrumentation import (
    BackendRecovered,
    BackendUnavailable,
    RateLimitRejected,
)
from resilient_scan.redis import RateLimitFallback, RedisBackend
from resilient_scan.testing import CapturedEvents, capture_events
from tests.helpers import wait_until
from tests.integrations.conftest import CountingFactory, RedisServer

PROBE = 0.05
TIMEOUT = 0.2


def backend_on(server: RedisServer, **options: Any) -> RedisBackend:
    options.setdefault("probe_interval", PROBE)
    options.setdefault("timeout", TIMEOUT)
    return RedisBackend(server.url, namespace="failures", **options)


def outages(events: CapturedEvents) -> dict[str, list[tuple[str, str]]]:
    """Per layer: ("unavailable", fallback) and ("recovered", "") in the order they came."""
    seen: dict[str, list[tuple[str, str]]] = {}
    for event in events:
        if isinstance(event, BackendUnavailable):
            seen.setdefault(event.layer, []).append(("unavailable", event.fallback))
        elif isinstance(event, BackendRecovered):
            seen.setdefault(event.layer, []).append(("recovered", ""))
    return seen


class Loop:
    """Threads calling *call* in a loop until stopped; every outcome is kept."""

    def __init__(self, call: Callable[[int], object], threads: int = 4) -> None:
        self.call = call
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.results: list[tuple[int, object]] = []
        self.errors: list[BaseException] = []
        self.slowest = 0.0
        self.threads = [
            threading.Thread(target=self.run, args=(n,), daemon=True) for n in range(threads)
        ]

    def run(self, worker: int) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            argument = worker * 1_000_000 + n % 50
            started = time.monotonic()
            try:
                result = self.call(argument)
            except BaseException as exc:  # every failure is the test's finding
                with self.lock:
                    self.errors.append(exc)
                return
            took = time.monotonic() - started
            with self.lock:
                self.results.append((argument, result))
                self.slowest = max(self.slowest, took)
            time.sleep(0.001)

    def __enter__(self) -> Loop:  # noqa: PYI034 - not subclassed
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)

    def count(self) -> int:
        with self.lock:
            return len(self.results)

    def run_for(self, seconds: float) -> None:
        """Let the loop make calls for *seconds* (and at least a few)."""
        before = self.count()
        time.sleep(seconds)
        assert wait_until(lambda: self.count() > before + 10)


def test_policies_keep_answering_while_redis_is_killed_and_restarted(redis_server: RedisServer):
    backend = backend_on(redis_server)

    @rs.resilient(
        cache={"ttl": 60, "storage": backend},
        breaker={"fail_max": 3, "storage": backend, "name": "api"},
        rate_limit={"rate": 10_000, "burst": 100, "storage": backend, "name": "api"},
    )
    def fetch(n: int) -> dict[str, int]:
        return {"n": n}

    with capture_events(BackendUnavailable, BackendRecovered) as events, Loop(fetch) as loop:
        loop.run_for(0.2)
        redis_server.stop()
        loop.run_for(0.3)
        redis_server.start()
        assert wait_until(lambda: len(events.of(BackendRecovered)) == 3, timeout=5)
        loop.run_for(0.2)

    assert loop.errors == []
    assert all(result == {"n": n} for n, result in loop.results)
    assert outages(events) == {
        "breaker": [("unavailable", "local_state"), ("recovered", "")],
        "cache": [("unavailable", "call_through"), ("recovered", "")],
        "rate_limit": [("unavailable", "fail_open"), ("recovered", "")],
    }
    unavailable = events.of(BackendUnavailable)[0]
    assert unavailable.backend == f"redis://127.0.0.1:{redis_server.port}/0"
    assert unavailable.error_type in {"ConnectionError", "TimeoutError"}
    # Back on Redis: what the calls after the restart cached is in the new server.
    client = redis.Redis.from_url(redis_server.url)
    assert list(client.scan_iter(match="failures:cache:*"))
    client.close()


def test_a_paused_redis_costs_a_call_at_most_its_timeout(redis_server: RedisServer):
    backend = backend_on(redis_server, probe_interval=0.5)

    @rs.circuit_breaker(storage=backend, name="api")
    def fetch(n: int) -> int:
        return n

    with capture_events(BackendUnavailable, BackendRecovered) as events, Loop(fetch) as loop:
        loop.run_for(0.1)
        redis_server.pause()
        try:
            loop.run_for(1.2)  # two probes at least, each waits out the timeout
        finally:
            redis_server.resume()
        assert wait_until(lambda: len(events.of(BackendRecovered)) == 1, timeout=5)
        loop.run_for(0.1)

    assert loop.errors == []
    # Bounded by the timeout (plus scheduling on a busy machine), not by redis-py's 5 s.
    assert TIMEOUT <= loop.slowest < TIMEOUT + 0.5
    assert outages(events) == {"breaker": [("unavailable", "local_state"), ("recovered", "")]}
    assert events.of(BackendUnavailable)[0].error_type == "TimeoutError"


def test_while_redis_is_down_it_is_tried_at_most_once_per_probe_interval(
    redis_server: RedisServer, counting_client: CountingFactory
):
    client, log = counting_client(
        redis_server.url, socket_connect_timeout=0.2, socket_timeout=0.2, retry=None
    )
    backend = RedisBackend(client, namespace="failures", probe_interval=0.1)
    call = rs.circuit_breaker(storage=backend, name="api")(lambda n: n)
    assert call(1) == 1
    redis_server.stop()
    connects_before = log.connects
    with Loop(call) as loop:
        time.sleep(0.55)
    attempts = log.connects - connects_before
    assert loop.errors == []
    assert loop.count() > 100
    # The 4 threads' first calls fail together, then one probe per 0.1 s: 4 + 5 or 6
    # tries in 0.55 s, for hundreds of calls.
    assert 5 <= attempts <= 4 + 7


def test_the_breaker_opens_on_local_state_while_redis_is_down(redis_server: RedisServer):
    backend = backend_on(redis_server)
    breaker = rs.CircuitBreaker(fail_max=2, reset_timeout=60, name="api", storage=backend)

    @breaker
    def down() -> None:
        raise ConnectionError("HTTP 503")

    redis_server.stop()
    with capture_events(BackendUnavailable) as events:
        for _ in range(2):
            with pytest.raises(ConnectionError):
                down()
        with pytest.raises(rs.CircuitOpenError):
            down()
    assert breaker.state == "open"
    assert [(e.layer, e.fallback) for e in events.of(BackendUnavailable)] == [
        ("breaker", "local_state")
    ]
    redis_server.start()
    time.sleep(PROBE)
    # Redis answers again (with a fresh, empty state): its state is the breaker's again.
    assert wait_until(lambda: breaker.state == "closed", timeout=5)


@pytest.mark.parametrize(
    ("fallback", "granted", "event_fallback"),
    [("open", True, "fail_open"), ("closed", False, "fail_closed"), ("local", True, "local_state")],
)
def test_the_rate_limiter_fails_open_or_closed_as_configured(
    redis_server: RedisServer, fallback: RateLimitFallback, granted: bool, event_fallback: str
):
    backend = backend_on(redis_server, rate_limit_fallback=fallback)
    store = backend.rate_store("api", rs.SystemClock())
    redis_server.stop()
    with capture_events(BackendUnavailable) as events:
        first = store.reserve("k", now=100.0, interval=1.0, burst=1, max_wait=0.5)
        second = store.reserve("k", now=100.0, interval=1.0, burst=1, max_wait=0.5)
    assert first.granted is granted
    assert [(e.layer, e.fallback) for e in events.of(BackendUnavailable)] == [
        ("rate_limit", event_fallback)
    ]
    if fallback == "open":
        assert second == first
    elif fallback == "closed":
        assert not second.granted
        assert 0 < second.wait <= PROBE
    else:  # this process alone applies the limit, on its own clock
        assert not second.granted
        assert second.wait == pytest.approx(1.0)


def test_rs_rate_limit_fails_open_or_closed_or_limits_locally_as_configured(
    redis_server: RedisServer, calls: Any
):
    def limited(fallback: RateLimitFallback) -> Callable[[], None]:
        backend = backend_on(redis_server, rate_limit_fallback=fallback, probe_interval=30)
        return rs.rate_limit(1, max_wait=0.5, storage=backend, name=fallback)(calls.add)

    open_, closed, local = limited("open"), limited("closed"), limited("local")
    redis_server.stop()
    with capture_events(BackendUnavailable) as events:
        started = time.monotonic()
        for _ in range(3):
            open_()  # every call at once, though the quota is 1 a second
        assert calls.count == 3
        with pytest.raises(rs.RateLimitExceeded) as refused:
            closed()  # no permit until Redis answers (the next probe is 30 s away)
        assert calls.count == 3
        local()  # this process's own quota: 1 a second
        with pytest.raises(rs.RateLimitExceeded) as over:
            local()
        assert time.monotonic() - started < 1.0  # none of them waited for Redis
    assert calls.count == 4
    assert refused.value.wait > 0.5
    assert over.value.wait == pytest.approx(1.0, abs=0.1)
    assert [(e.layer, e.fallback) for e in events.of(BackendUnavailable)] == [
        ("rate_limit", "fail_open"),
        ("rate_limit", "fail_closed"),
        ("rate_limit", "local_state"),
    ]


def test_the_cache_calls_through_while_redis_is_down_and_caches_again_after(
    redis_server: RedisServer, calls: Any
):
    backend = backend_on(redis_server)

    @rs.ttl_cache(ttl=60, storage=backend)
    def quote(ticker: str) -> str:
        calls.add(ticker)
        return ticker.lower()

    assert quote("AAPL") == "aapl"
    assert quote("AAPL") == "aapl"
    assert calls.count == 1
    redis_server.stop()
    with capture_events() as events:
        assert [quote("AAPL") for _ in range(3)] == ["aapl"] * 3
    assert calls.count == 4  # every call went through
    assert [(e.layer, e.fallback) for e in events.of(BackendUnavailable)] == [
        ("cache", "call_through")
    ]
    assert events.named("cache.store_failed") == []  # the store fell back quietly, once
    redis_server.start()
    time.sleep(PROBE * 2)
    assert quote("MSFT") == "msft"  # the probe: back on Redis
    assert quote("MSFT") == "msft"
    assert calls.count == 5


def test_cache_clear_says_when_redis_is_down(redis_server: RedisServer):
    backend = backend_on(redis_server)
    cache = backend.cache_store("f", maxsize=10, clock=rs.SystemClock())
    redis_server.stop()
    with pytest.raises(ConnectionError, match="Redis is unavailable, its entries were not cleared"):
        cache.clear()
    assert len(cache) == 0


def _scanners(
    quote: Callable[[str, int], dict[str, Any]], tickers: list[str], calls: int
) -> list[Callable[[Mapping[str, Any]], list[dict[str, Any]]]]:
    def make_scanner(ticker: str) -> Callable[[Mapping[str, Any]], list[dict[str, Any]]]:
        def scan(state: Mapping[str, Any]) -> list[dict[str, Any]]:
            found = [quote(ticker, n) for n in range(calls)]
            assert [f["n"] for f in found] == list(range(calls))
            return [{"ticker": ticker, "context": f"{len(found)} quotes"}]

        scan.__name__ = f"scan_{ticker.lower()}"
        return scan

    return [make_scanner(t) for t in tickers]


TICKERS = ["AAPL", "MSFT", "NVDA", "AMZN", "META", "TSLA", "AMD", "INTC"]


def _run_while_redis_dies(
    redis_server: RedisServer, scanners: list[Any], down_at: float, up_at: float
) -> tuple[rs.ScanReport, CapturedEvents]:
    killer = threading.Timer(down_at, redis_server.stop)
    restarter = threading.Timer(up_at, redis_server.start)
    killer.start()
    restarter.start()
    try:
        with capture_events(BackendUnavailable, BackendRecovered) as events:
            report = rs.ScanExecutor(max_workers=8, timeout_seconds=20).run(scanners, {})
    finally:
        killer.join()
        restarter.join()
    return report, events


def test_a_scan_run_loses_no_result_when_redis_dies_mid_run(redis_server: RedisServer):
    calls = 100
    backend = backend_on(redis_server)

    @rs.resilient(
        cache={"ttl": 60, "storage": backend},
        breaker={"fail_max": 3, "storage": backend, "name": "quotes"},
        rate_limit={"rate": 2_000, "burst": 50, "storage": backend, "name": "quotes"},
    )
    def quote(ticker: str, n: int) -> dict[str, Any]:
        time.sleep(0.005)
        return {"ticker": ticker, "n": n}

    report, events = _run_while_redis_dies(
        redis_server, _scanners(quote, TICKERS, calls), 0.1, 0.25
    )
    assert [r.status for r in report.results] == ["ok"] * 8
    assert sorted(c["ticker"] for c in report.candidates) == sorted(TICKERS)
    assert {c["context"] for c in report.candidates} == {f"{calls} quotes"}
    # Redis really died and came back while the scanners ran, once for each layer.
    assert outages(events) == {
        "breaker": [("unavailable", "local_state"), ("recovered", "")],
        "cache": [("unavailable", "call_through"), ("recovered", "")],
        "rate_limit": [("unavailable", "fail_open"), ("recovered", "")],
    }


def test_a_limiter_that_fails_closed_holds_calls_back_and_a_retry_loses_no_result(
    redis_server: RedisServer,
):
    calls = 40
    backend = backend_on(redis_server, rate_limit_fallback="closed")

    @rs.resilient(
        retry={"attempts": 100, "backoff": 0.01, "total": 10},
        rate_limit={"rate": 2_000, "burst": 50, "storage": backend, "name": "quotes"},
    )
    def quote(ticker: str, n: int) -> dict[str, Any]:
        time.sleep(0.005)
        return {"ticker": ticker, "n": n}

    with capture_events(RateLimitRejected) as refused:
        report, events = _run_while_redis_dies(
            redis_server, _scanners(quote, TICKERS, calls), 0.05, 0.3
        )
    assert [r.status for r in report.results] == ["ok"] * 8
    assert {c["context"] for c in report.candidates} == {f"{calls} quotes"}
    assert outages(events) == {
        "rate_limit": [("unavailable", "fail_closed"), ("recovered", "")],
    }
    # While Redis was down, calls were refused (and retried after the probe interval).
    refusals = refused.of(RateLimitRejected)
    assert refusals
    assert all(0 < e.wait <= PROBE for e in refusals)
