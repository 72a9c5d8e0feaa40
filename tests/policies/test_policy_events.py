"""The structlog events each policy emits, with their documented field names and levels."""

from __future__ import annotations

import threading

import pytest
import structlog

import resilient_scan as rs
from resilient_scan.testing import FakeClock
from tests.helpers import Flaky, events_named, settle

RESET = 10.0

pytestmark = pytest.mark.usefixtures("structlog_defaults")


def test_retry_scheduled_names_the_attempt_the_wait_and_the_cause(clock: FakeClock):
    flaky = Flaky(failures=2)
    call = rs.retry(attempts=3, backoff=0.5, jitter=False, clock=clock)(flaky)
    with structlog.testing.capture_logs() as events:
        call()
    scheduled = events_named(events, "retry.scheduled")
    assert [(e["attempt"], e["wait"], e["error"]) for e in scheduled] == [
        (1, 0.5, "ValueError: boom 1"),
        (2, 1.0, "ValueError: boom 2"),
    ]
    assert {e["log_level"] for e in scheduled} == {"warning"}
    assert events_named(events, "retry.exhausted") == []


def test_retry_exhausted_is_logged_once_when_attempts_run_out(clock: FakeClock):
    flaky = Flaky(failures=100)
    call = rs.retry(attempts=3, backoff=0.5, jitter=False, clock=clock)(flaky)
    with structlog.testing.capture_logs() as events, pytest.raises(ValueError):
        call()
    exhausted = events_named(events, "retry.exhausted")
    assert len(exhausted) == 1
    assert exhausted[0]["attempts"] == 3
    assert exhausted[0]["reason"] == "attempts"
    assert exhausted[0]["error"] == "ValueError: boom 3"
    assert exhausted[0]["log_level"] == "warning"


def test_timeout_fired_names_the_limit_and_the_elapsed_time(release: threading.Event):

    @rs.timeout(0.1)
    def hang() -> None:
        release.wait(5.0)

    with structlog.testing.capture_logs() as events:
        try:
            with pytest.raises(rs.ScanTimeout):
                hang()
        finally:
            release.set()
        assert settle()  # the abandoned call returns and reports, into this capture
    fired = events_named(events, "timeout.fired")
    assert len(fired) == 1
    assert fired[0]["limit"] == 0.1
    assert 0.08 <= fired[0]["elapsed"] < 1.5
    assert fired[0]["function"].endswith("hang")
    assert fired[0]["log_level"] == "warning"
    (returned,) = events_named(events, "timeout.abandoned_call_finished")
    assert returned["function"].endswith("hang")


def test_breaker_state_changed_names_the_breaker_and_both_states(clock: FakeClock):
    flaky = Flaky(failures=1)
    call = rs.circuit_breaker(fail_max=1, reset_timeout=RESET, name="quotes", clock=clock)(flaky)
    with structlog.testing.capture_logs() as events:
        with pytest.raises(ValueError):
            call()
        clock.advance(RESET + 1)
        call()
    changes = events_named(events, "breaker.state_changed")
    assert [(e["breaker"], e["from_state"], e["to_state"]) for e in changes] == [
        ("quotes", "closed", "open"),
        ("quotes", "open", "half-open"),
        ("quotes", "half-open", "closed"),
    ]


def test_breaker_rejected_is_logged_for_each_rejected_call(clock: FakeClock):
    flaky = Flaky(failures=100)
    call = rs.circuit_breaker(fail_max=1, reset_timeout=RESET, name="quotes", clock=clock)(flaky)
    with pytest.raises(ValueError):
        call()
    with structlog.testing.capture_logs() as events:
        for _ in range(2):
            with pytest.raises(rs.CircuitOpenError):
                call()
    rejected = events_named(events, "breaker.rejected")
    assert len(rejected) == 2
    assert rejected[0]["breaker"] == "quotes"
    assert rejected[0]["state"] == "open"
    assert rejected[0]["retry_in"] == pytest.approx(RESET)


def test_cache_miss_load_and_hit_are_logged_at_debug_level(clock: FakeClock):
    @rs.ttl_cache(ttl=60, clock=clock)
    def double(x: int) -> int:
        return 2 * x

    with structlog.testing.capture_logs() as events:
        double(1)
        double(1)
    cache_events = [e for e in events if e["event"].startswith("cache.")]
    assert [(e["event"], e["log_level"]) for e in cache_events] == [
        ("cache.miss", "debug"),
        ("cache.loaded", "debug"),
        ("cache.hit", "debug"),
    ]
    assert all(e["function"].endswith("double") for e in cache_events)
