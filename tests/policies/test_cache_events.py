"""rs.ttl_cache reports typed events, and counts its calls when it is the outermost layer."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Hashable
from typing import Any

import pytest

import resilient_scan as rs
from resilient_scan import _cache, _config
from resilient_scan._stats import ScanRecorder
from resilient_scan._storage import MISSING
from resilient_scan.instrumentation import (
    CacheHit,
    CacheLoaded,
    CacheLoadFailed,
    CacheMiss,
    CacheStoreFailed,
    CallFinished,
    set_hooks,
)
from resilient_scan.testing import CapturedEvents, FakeClock, capture_events


class SlowClockFunction:
    """A function that moves the fake clock while it runs, so durations can be checked."""

    def __init__(self, clock: FakeClock, seconds: float, fail: bool = False) -> None:
        self.clock = clock
        self.seconds = seconds
        self.fail = fail
        self.__qualname__ = "quote"

    def __call__(self, symbol: str) -> str:
        self.clock.advance(self.seconds)
        if self.fail:
            raise ConnectionError("quote service down")
        return f"{symbol}-quote"


def _cache_events(events: CapturedEvents) -> list[Any]:
    return [event for event in events if event.name.startswith(("cache.", "call."))]


def test_a_miss_then_a_hit_report_miss_loaded_and_hit(clock: FakeClock, events: CapturedEvents):
    quote = rs.ttl_cache(ttl=60, clock=clock)(SlowClockFunction(clock, 0.25))
    quote("AAPL")
    quote("AAPL")
    assert _cache_events(events) == [
        CacheMiss("quote", "quote"),
        CacheLoaded("quote", "quote", 0.25, stored=True),
        CallFinished("quote", "ok", 0.25),
        CacheHit("quote", "quote", coalesced=False),
        CallFinished("quote", "ok", 0.0),
    ]


def test_a_load_that_raises_reports_load_failed_and_the_call_as_an_error(
    clock: FakeClock, events: CapturedEvents
):
    quote = rs.ttl_cache(ttl=60, clock=clock)(SlowClockFunction(clock, 0.5, fail=True))
    with pytest.raises(ConnectionError):
        quote("AAPL")
    assert _cache_events(events) == [
        CacheMiss("quote", "quote"),
        CacheLoadFailed(
            "quote", "quote", 0.5, "ConnectionError", "ConnectionError: quote service down"
        ),
        CallFinished("quote", "error", 0.5, "ConnectionError"),
    ]


class FailingStore:
    """A store whose get and/or set raise, as a shared cache that is down does."""

    def __init__(self, *, fail_get: bool, fail_set: bool) -> None:
        self.fail_get = fail_get
        self.fail_set = fail_set
        self.data: dict[Hashable, object] = {}

    def get(self, key: Hashable) -> object:
        if self.fail_get:
            raise ConnectionError("cache server down")
        return self.data.get(key, MISSING)

    def set(self, key: Hashable, value: object, ttl: float) -> None:
        if self.fail_set:
            raise ConnectionError("cache server down")
        self.data[key] = value

    def clear(self) -> None:
        self.data.clear()

    def __len__(self) -> int:
        return len(self.data)


@pytest.mark.parametrize(("fail_get", "fail_set"), [(True, False), (False, True), (True, True)])
def test_a_failing_store_is_reported_and_the_call_still_answers(
    fail_get: bool, fail_set: bool, events: CapturedEvents
):
    quote = rs.ttl_cache(ttl=60, storage=FailingStore(fail_get=fail_get, fail_set=fail_set))(
        lambda symbol: f"{symbol}-quote"
    )
    assert quote("AAPL") == "AAPL-quote"
    failed = events.of(CacheStoreFailed)
    expected = [op for op, fails in (("get", fail_get), ("set", fail_set)) if fails]
    assert [event.operation for event in failed] == expected
    assert all(event.error == "ConnectionError: cache server down" for event in failed)
    loaded = events.of(CacheLoaded)
    assert [event.stored for event in loaded] == [not fail_set]


def test_no_cache_hit_event_is_built_when_nobody_wants_one(monkeypatch: pytest.MonkeyPatch):
    built: list[object] = []
    build = CacheHit.__init__

    def counting_init(self: CacheHit, *args: Any, **kwargs: Any) -> None:
        built.append(args)
        build(self, *args, **kwargs)

    monkeypatch.setattr(CacheHit, "__init__", counting_init)
    set_hooks([])
    quote = rs.ttl_cache(ttl=60)(lambda symbol: f"{symbol}-quote")
    quote("AAPL")
    quote("AAPL")
    assert built == []
    with capture_events(CacheHit) as events:  # someone listens: now it is built
        quote("AAPL")
    assert len(built) == 1
    assert len(events) == 1


def _in_scanner(recorder: ScanRecorder, call: Any) -> None:
    def run() -> None:
        _config.CURRENT_SCAN.set(recorder)
        call()

    contextvars.copy_context().run(run)


def test_inside_a_scanner_each_call_is_counted_once_failures_included(clock: FakeClock):
    outcomes: list[Exception | str] = [ConnectionError("down"), "up"]

    @rs.ttl_cache(ttl=60, clock=clock)
    def status(service: str) -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    recorder = ScanRecorder("scanner")

    def calls() -> None:
        with pytest.raises(ConnectionError):
            status("api")
        status("api")
        status("api")

    _in_scanner(recorder, calls)
    stats = recorder.snapshot()
    assert (stats.calls, stats.failed_calls) == (3, 1)
    assert (stats.cache_misses, stats.cache_hits) == (2, 1)


def test_wrap_without_boundary_counts_nothing_and_reports_no_call_finished(
    events: CapturedEvents,
):
    inner = rs.CachePolicy(ttl=60).wrap(lambda symbol: f"{symbol}-quote", boundary=False)
    recorder = ScanRecorder("scanner")
    _in_scanner(recorder, lambda: (inner("AAPL"), inner("AAPL")))
    stats = recorder.snapshot()
    assert stats.calls == 0  # the layer around it (resilient) counts the calls
    assert (stats.cache_misses, stats.cache_hits) == (1, 1)
    assert events.of(CallFinished) == []
    assert inner.cache_info().hits == 1


def test_a_waiter_past_its_deadline_finishes_as_a_timeout(
    events: CapturedEvents, release: threading.Event
):
    started = threading.Event()

    @rs.ttl_cache(ttl=60)
    def quote(symbol: str) -> str:
        started.set()
        release.wait(5.0)
        return f"{symbol}-quote"

    leader = threading.Thread(target=lambda: quote("AAPL"), daemon=True)
    leader.start()
    assert started.wait(5.0)
    with pytest.raises(rs.ScanTimeout), rs.deadline_after(0.01):
        quote("AAPL")
    release.set()
    leader.join(timeout=5)
    outcomes = [event.outcome for event in events.of(CallFinished)]
    assert outcomes == ["timeout", "ok"]


def test_the_cache_module_does_not_log():
    from resilient_scan import _cache_async, _cache_store  # noqa: PLC0415

    for module in (_cache, _cache_async, _cache_store):
        names = vars(module)
        assert "logging" not in names
        assert "structlog" not in names
        assert "log" not in names


@pytest.mark.parametrize("outermost", ["ttl_cache", "retry"])
def test_an_interrupted_call_is_reported_alike_whichever_policy_is_outermost(
    outermost: str, clock: FakeClock
):
    def interrupted() -> None:
        raise KeyboardInterrupt

    call: Callable[[], None]
    if outermost == "ttl_cache":
        call = rs.ttl_cache(ttl=60, clock=clock)(interrupted)
    else:
        call = rs.retry(attempts=2, clock=clock)(interrupted)
    with capture_events(CallFinished) as events, pytest.raises(KeyboardInterrupt):
        call()
    assert [(e.outcome, e.error_type) for e in events.of(CallFinished)] == [
        ("cancelled", "KeyboardInterrupt")
    ]
