"""rs.rate_limit: a request rate with a burst, waits bounded by deadlines, shared quotas."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import resilient_scan as rs
from resilient_scan.instrumentation import RateLimitRejected, RateLimitWaited, RetryExhausted
from resilient_scan.testing import FakeClock, capture_events
from tests.helpers import Flaky


def ok(*args: object) -> str:
    return "ok"


class CountingRateStore:
    """A `RateStore` that counts reservations, keeping its quotas in memory."""

    def __init__(self) -> None:
        self.inner = rs.MemoryRateStore()
        self.reserved = 0

    def reserve(self, key: str, **kwargs: Any) -> Any:
        self.reserved += 1
        return self.inner.reserve(key, **kwargs)


def test_calls_go_at_once_up_to_the_burst_then_evenly_spaced(clock: FakeClock):
    call = rs.rate_limit(10, burst=3, clock=clock)(ok)
    for _ in range(6):
        assert call() == "ok"
    assert clock.sleeps == pytest.approx([0.1, 0.1, 0.1])


def test_a_quiet_spell_refills_the_burst(clock: FakeClock):
    call = rs.rate_limit(10, burst=2, clock=clock)(ok)
    for _ in range(4):
        call()
    sleeps = len(clock.sleeps)
    clock.advance(1.0)
    call()
    call()
    assert len(clock.sleeps) == sleeps
    call()
    assert clock.sleeps[-1] == pytest.approx(0.1)


def test_rate_per_a_longer_period(clock: FakeClock):
    call = rs.rate_limit(rate=3, per=60, clock=clock)(ok)
    for _ in range(3):
        call()
    assert clock.sleeps == pytest.approx([20.0, 20.0])


def test_a_permit_further_away_than_the_deadline_fails_at_once_and_spends_nothing(
    clock: FakeClock,
):
    call = rs.rate_limit(1, clock=clock)(ok)
    call()
    with (
        capture_events(RateLimitRejected) as events,
        rs.deadline_after(0.5, clock=clock),
        pytest.raises(rs.RateLimitExceeded) as info,
    ):
        call()
    assert info.value.wait == pytest.approx(1.0)
    assert info.value.available == pytest.approx(0.5)
    assert clock.sleeps == []  # failed without waiting first
    assert [(e.wait, e.available) for e in events.of(RateLimitRejected)] == [(1.0, 0.5)]
    call()  # nothing was reserved by the rejected call: the next permit is still 1 s away
    assert clock.sleeps == pytest.approx([1.0])


def test_max_wait_bounds_the_wait(clock: FakeClock):
    call = rs.rate_limit(2, max_wait=0.25, clock=clock)(ok)
    call()
    with pytest.raises(rs.RateLimitExceeded) as info:
        call()
    assert info.value.wait == pytest.approx(0.5)
    assert info.value.available == 0.25
    clock.advance(0.3)
    call()
    assert clock.sleeps == pytest.approx([0.2])


def test_max_wait_zero_never_waits(clock: FakeClock):
    call = rs.rate_limit(5, burst=2, max_wait=0, clock=clock)(ok)
    call()
    call()
    with pytest.raises(rs.RateLimitExceeded):
        call()
    assert clock.sleeps == []


def test_limiters_with_one_name_share_one_quota(clock: FakeClock, request: pytest.FixtureRequest):
    name = f"quotes-api {request.node.name}"
    quotes = rs.rate_limit(1, name=name, clock=clock)(ok)
    news = rs.rate_limit(1, name=name, clock=clock)(ok)
    alone = rs.rate_limit(1, clock=clock)(ok)
    quotes()
    news()  # the same quota: waits for the next permit
    alone()  # a quota of its own
    assert clock.sleeps == pytest.approx([1.0])
    assert quotes.limiter.name == name


def test_key_gives_each_value_a_quota_of_its_own(clock: FakeClock):
    @rs.rate_limit(1, key=lambda host, path: host, clock=clock)
    def fetch(host: str, path: str) -> str:
        return f"{host}{path}"

    fetch("a.example", "/1")
    fetch("b.example", "/1")
    assert clock.sleeps == []
    with capture_events(RateLimitWaited) as events:
        fetch("a.example", "/2")
    assert clock.sleeps == pytest.approx([1.0])
    assert [e.limiter for e in events.of(RateLimitWaited)] == [f"{fetch.limiter.name}[a.example]"]


def test_a_key_function_that_raises_says_which_limiter_it_belongs_to(clock: FakeClock):
    @rs.rate_limit(1, name="feeds", key=lambda item: item["host"], clock=clock)
    def fetch(item: dict[str, str]) -> str:
        return "ok"

    with pytest.raises(KeyError) as info:
        fetch({})
    notes = getattr(info.value, "__notes__", [])
    assert any("'feeds'" in note and "key=" in note for note in notes), notes


def test_a_shared_limiter_object_decorates_several_functions(clock: FakeClock):
    limiter = rs.RateLimiter(1, clock=clock)
    first, second = limiter(ok), limiter(ok)
    first()
    second()
    assert first.limiter is limiter
    assert clock.sleeps == pytest.approx([1.0])


def test_acquire_waits_for_a_permit_and_returns_the_wait(clock: FakeClock):
    limiter = rs.RateLimiter(4, clock=clock)
    assert limiter.acquire() == 0.0
    assert limiter.acquire() == pytest.approx(0.25)


def test_threads_never_get_permits_ahead_of_the_schedule():
    rate, threads, per_thread = 200.0, 8, 5
    interval = 1 / rate
    call = rs.rate_limit(rate)(time.monotonic)

    def work(_: int) -> list[float]:
        return [call() for _ in range(per_thread)]

    with ThreadPoolExecutor(threads) as pool:
        times = sorted(t for batch in pool.map(work, range(threads)) for t in batch)
    assert len(times) == threads * per_thread
    first = times[0]
    # The i-th permit is due i intervals after the first; a thread may wake late, never early.
    for index, at in enumerate(times):
        assert at - first >= index * interval - 0.002, (index, at - first)


class OversleepingClock(FakeClock):
    """A fake clock whose sleeps overshoot by the given seconds, in turn (then none)."""

    def __init__(self, *overshoots: float) -> None:
        super().__init__()
        self.overshoots = list(overshoots)

    def sleep(self, seconds: float) -> None:
        extra = self.overshoots.pop(0) if self.overshoots else 0.0
        super().sleep(seconds + extra)


def starts_on(clock: FakeClock) -> tuple[list[float], Callable[[], None]]:
    """A function that notes when each call of it started, on *clock*."""
    started: list[float] = []
    return started, lambda: started.append(clock.monotonic() - 1_000_000.0)


def test_a_caller_that_wakes_late_gives_its_permit_up_instead_of_crowding_the_next():
    clock = OversleepingClock(0.06)  # the first wait ends 60 ms late: more than half of 100 ms
    started, note = starts_on(clock)
    call = rs.rate_limit(10, clock=clock)(note)
    with capture_events(RateLimitWaited) as events:
        for _ in range(3):
            call()
    # Sent at 0.16 s, its permit would have gone 40 ms before the next one (due at 0.2 s).
    # Given up, the late caller reserves the next free permit (0.2 s), and the one after
    # waits its interval.
    assert started == pytest.approx([0.0, 0.2, 0.3])
    assert all(b - a >= 0.1 - 1e-9 for a, b in itertools.pairwise(started))
    assert [e.wait for e in events.of(RateLimitWaited)] == pytest.approx([0.14, 0.1])


class HeldUpStore:
    """A memory `RateStore` whose answer to the *held*-th reservation comes *by* s late."""

    def __init__(self, clock: FakeClock, held: int, by: float) -> None:
        self.inner = rs.MemoryRateStore()
        self.clock, self.held, self.by = clock, held, by
        self.reserved = 0

    def reserve(self, key: str, **kwargs: Any) -> Any:
        self.reserved += 1
        answer = self.inner.reserve(key, **kwargs)
        if self.reserved == self.held:
            self.clock.advance(self.by)  # the answer was computed, then held up on its way
        return answer


def test_a_caller_held_up_on_its_way_back_from_the_store_is_late_too(clock: FakeClock):
    store = HeldUpStore(clock, held=2, by=0.06)
    started, note = starts_on(clock)
    call = rs.rate_limit(10, storage=store, clock=clock)(note)
    for _ in range(3):
        call()
    # The second permit was due at 0.1 s; its answer arrived at 0.06 s, and sleeping the
    # wait it named from then would start the call at 0.16 s, next to the third.
    assert started == pytest.approx([0.0, 0.2, 0.3])
    assert store.reserved == 4


def test_a_caller_late_twice_in_a_row_uses_its_second_permit_so_it_is_never_stopped():
    clock = OversleepingClock(0.06, 0.06)
    started, note = starts_on(clock)
    call = rs.rate_limit(10, clock=clock)(note)
    for _ in range(3):
        call()
    assert started == pytest.approx([0.0, 0.26, 0.3])


def test_a_caller_late_within_half_an_interval_keeps_its_permit():
    store = CountingRateStore()
    late = OversleepingClock(0.04)
    started, note = starts_on(late)
    call = rs.rate_limit(10, storage=store, clock=late)(note)
    call()
    call()
    assert started == pytest.approx([0.0, 0.14])
    assert store.reserved == 2


@pytest.mark.parametrize(("overshoot", "reservations"), [(0.0018, 2), (0.0022, 3)])
def test_for_short_intervals_the_margin_is_two_milliseconds(overshoot: float, reservations: int):
    store = CountingRateStore()
    clock = OversleepingClock(overshoot)
    call = rs.rate_limit(2000, storage=store, clock=clock)(ok)  # 0.5 ms apart
    call()
    call()
    assert store.reserved == reservations


def test_a_late_caller_whose_deadline_cannot_cover_the_next_permit_fails_without_calling():
    clock = OversleepingClock(0.06)
    started, note = starts_on(clock)
    call = rs.rate_limit(10, clock=clock)(note)
    call()
    with (
        capture_events(RateLimitRejected) as events,
        rs.deadline_after(0.18, clock=clock),
        pytest.raises(rs.RateLimitExceeded) as info,
    ):
        call()
    assert started == [0.0]
    # Woke at 0.16 s: the next permit is due at 0.2 s, 0.02 s were left.
    assert info.value.wait == pytest.approx(0.04)
    assert info.value.available == pytest.approx(0.02)
    assert len(events.of(RateLimitRejected)) == 1


def test_an_async_caller_that_wakes_late_gives_its_permit_up_too():
    clock = OversleepingClock(0.06)
    started, note = starts_on(clock)

    @rs.rate_limit(10, clock=clock)
    async def fetch() -> None:
        note()

    async def main() -> None:
        for _ in range(3):
            await fetch()

    asyncio.run(main())
    assert started == pytest.approx([0.0, 0.2, 0.3])


def test_acquire_returns_the_seconds_waited_including_after_waking_late():
    limiter = rs.RateLimiter(10, clock=OversleepingClock(0.06))
    assert limiter.acquire() == 0.0
    assert limiter.acquire() == pytest.approx(0.14)


def test_an_async_caller_waits_without_blocking_the_event_loop():
    call = rs.rate_limit(20)(asyncio.sleep)  # one permit every 50 ms
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    async def main() -> float:
        task = asyncio.create_task(ticker())
        started = time.monotonic()
        for _ in range(3):
            await call(0)
        task.cancel()
        return time.monotonic() - started

    elapsed = asyncio.run(main())
    assert elapsed >= 0.095
    assert ticks >= 5


def test_an_async_caller_past_its_deadline_fails_at_once(clock: FakeClock):
    @rs.rate_limit(1, clock=clock)
    async def fetch() -> str:
        return "ok"

    async def main() -> None:
        await fetch()
        with rs.deadline_after(0.5, clock=clock), pytest.raises(rs.RateLimitExceeded):
            await fetch()

    asyncio.run(main())
    assert clock.sleeps == []


def test_no_waits_skips_the_sleeping_not_the_accounting():
    call = rs.rate_limit(1)(ok)
    started = time.monotonic()
    with capture_events(RateLimitWaited) as events, rs.testing.no_waits():
        for _ in range(3):
            call()
    assert time.monotonic() - started < 0.5
    assert [round(e.wait) for e in events.of(RateLimitWaited)] == [1, 2]


def test_a_rate_store_given_as_storage_holds_the_quota(clock: FakeClock):
    store = CountingRateStore()
    call = rs.rate_limit(1, storage=store, clock=clock)(ok)
    call()
    call()
    assert store.reserved == 2
    assert clock.sleeps == pytest.approx([1.0])


@pytest.mark.parametrize(
    ("build", "key"),
    [
        (lambda: rs.rate_limit(0), ("rate_limit", "rate")),
        (lambda: rs.rate_limit(-1), ("rate_limit", "rate")),
        (lambda: rs.rate_limit(True), ("rate_limit", "rate")),
        (lambda: rs.rate_limit(1e-320), ("rate_limit", "rate")),
        (lambda: rs.rate_limit(1, per=0), ("rate_limit", "per")),
        (lambda: rs.rate_limit(1, burst=0), ("rate_limit", "burst")),
        (lambda: rs.rate_limit(1, max_wait=-1), ("rate_limit", "max_wait")),
        (lambda: rs.rate_limit(1, key=3), ("rate_limit", "key")),  # type: ignore[arg-type]
        (lambda: rs.rate_limit(1, storage={}), ("rate_limit", "storage")),
        (lambda: rs.rate_limit(1, clock=5), ("rate_limit", "clock")),  # type: ignore[arg-type]
        (lambda: rs.rate_limit(1, clock=None), ("rate_limit", "clock")),  # type: ignore[arg-type]
        (lambda: rs.resilient(rate_limit={"burst": 2}), ("resilient", "rate_limit", "rate")),
        (lambda: rs.resilient(rate_limit=-3), ("resilient", "rate_limit", "rate")),
        (
            lambda: rs.resilient(rate_limit={"rate": 1, "brust": 2}),
            ("resilient", "rate_limit", "brust"),
        ),
    ],
    ids=[
        "zero rate",
        "negative rate",
        "bool rate",
        "rate so small the interval overflows",
        "zero period",
        "zero burst",
        "negative max_wait",
        "key not callable",
        "storage not a store",
        "clock a number",
        "clock None",
        "resilient without rate",
        "resilient negative rate",
        "resilient typo",
    ],
)
def test_bad_settings_are_config_errors_naming_the_key(
    build: Callable[[], object], key: tuple[str, ...]
):
    with pytest.raises(rs.ConfigError) as info:
        build()
    assert info.value.path == key


# -- in resilient(): between the breaker and the timeout -------------------------------------


def test_a_call_the_open_breaker_rejects_spends_no_permit(clock: FakeClock):
    store = CountingRateStore()
    flaky = Flaky(failures=100)
    call = rs.resilient(
        breaker={"fail_max": 1, "clock": clock},
        rate_limit={"rate": 100, "storage": store, "clock": clock},
    )(flaky)
    with pytest.raises(ValueError):
        call()
    for _ in range(3):
        with pytest.raises(rs.CircuitOpenError):
            call()
    assert store.reserved == 1
    assert flaky.calls == 1


def test_each_retry_attempt_spends_one_permit(clock: FakeClock):
    store = CountingRateStore()
    flaky = Flaky(failures=2)
    call = rs.resilient(
        retry={"attempts": 3, "backoff": 0.01, "jitter": False, "clock": clock},
        rate_limit={"rate": 100, "storage": store, "clock": clock},
    )(flaky)
    assert call() == 3
    assert store.reserved == 3


def test_a_refused_permit_is_no_breaker_failure_and_retry_waits_as_the_limiter_says(
    clock: FakeClock,
):
    call = rs.resilient(
        retry={"attempts": 2, "backoff": 0.01, "jitter": False, "clock": clock},
        breaker={"fail_max": 1, "clock": clock},
        rate_limit={"rate": 1, "max_wait": 0, "clock": clock},
    )(ok)
    assert call() == "ok"
    assert call() == "ok"  # refused at first, then retried once the permit was due
    assert clock.sleeps == pytest.approx([1.0])
    assert call.breaker is not None
    assert call.breaker.state == "closed"
    assert call.breaker.failures == 0
    assert call.limiter is not None
    assert call.describe().split(" -> ")[2] == "rate_limit(1/1s, burst=1, max_wait=0s)"


def test_a_retry_budget_around_the_limiter_bounds_the_wait_for_a_permit(clock: FakeClock):
    call = rs.resilient(
        retry={"attempts": 3, "total": 0.5, "clock": clock},
        rate_limit={"rate": 1, "clock": clock},
    )(ok)
    call()
    with capture_events(RetryExhausted) as events, pytest.raises(rs.RateLimitExceeded) as info:
        call()
    assert info.value.wait == pytest.approx(1.0)
    assert info.value.available == pytest.approx(0.5)
    assert clock.sleeps == []  # neither the limiter nor the retry waited for what cannot come
    assert [e.reason for e in events.of(RetryExhausted)] == ["retry_after"]


def test_a_caller_that_wakes_late_still_waits_no_longer_than_max_wait():
    limiter: rs.RateLimiter

    class BusyClock(FakeClock):
        """Too busy to wake on time: the first sleep overshoots by 0.6 s, while another
        caller reserves the next permit."""

        first = True

        def sleep(self, seconds: float) -> None:
            if self.first:
                self.first = False
                limiter.reserve()  # the other caller
                super().sleep(seconds + 0.6)
            else:
                super().sleep(seconds)

    clock = BusyClock()
    limiter = rs.RateLimiter(1, per=1, max_wait=2, clock=clock)  # 1 permit a second
    limiter.reserve()  # the permit due now is taken
    started = clock.monotonic()

    # Its permit (1 s away) went by while it slept 1.6 s; the next free one is 1.4 s
    # further: 3 s in all, past max_wait=2. It gives up at once instead of waiting on.
    with pytest.raises(rs.RateLimitExceeded):
        limiter.acquire()
    assert clock.monotonic() - started == pytest.approx(1.6)
