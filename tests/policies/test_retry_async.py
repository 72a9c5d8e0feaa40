"""rs.retry on coroutine functions: same decisions, waits that never block the event loop."""

from __future__ import annotations

import asyncio
import time

import pytest

import resilient_scan as rs
from resilient_scan.instrumentation import RetryExhausted, RetryScheduled
from resilient_scan.testing import ApiSimulator, FakeClock, capture_events
from tests.policies import aio_http


class AsyncFlaky:
    """A coroutine function that raises for its first *failures* calls."""

    def __init__(self, failures: int, error: type[BaseException] = ConnectionError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(self) -> int:
        self.calls += 1
        await asyncio.sleep(0)
        if self.calls <= self.failures:
            raise self.error(f"attempt {self.calls}")
        return self.calls


def test_retries_a_coroutine_function_and_returns_its_result(clock: FakeClock):
    flaky = AsyncFlaky(failures=2)
    call = rs.retry(attempts=3, backoff=0.5, jitter=False, clock=clock)(flaky)
    assert asyncio.run(call()) == 3
    assert clock.sleeps == [0.5, 1.0]


def test_when_exhausted_the_last_exception_is_reraised(clock: FakeClock):
    flaky = AsyncFlaky(failures=100)
    call = rs.retry(attempts=3, jitter=False, clock=clock)(flaky)
    with (
        capture_events(RetryExhausted) as events,
        pytest.raises(ConnectionError, match="attempt 3"),
    ):
        asyncio.run(call())
    assert flaky.calls == 3
    assert [(e.reason, e.attempts) for e in events.of(RetryExhausted)] == [("attempts", 3)]


def test_backoff_waits_without_blocking_the_event_loop():
    flaky = AsyncFlaky(failures=2)
    call = rs.retry(attempts=3, backoff=0.05, jitter=False)(flaky)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    async def main() -> int:
        task = asyncio.create_task(ticker())
        try:
            return await call()
        finally:
            task.cancel()

    started = time.monotonic()
    assert asyncio.run(main()) == 3
    elapsed = time.monotonic() - started
    assert elapsed >= 0.14  # waited 0.05 + 0.1 for real
    assert ticks >= 5  # the loop kept running other tasks meanwhile


def test_the_total_budget_stops_before_a_wait_that_would_pass_it(clock: FakeClock):
    flaky = AsyncFlaky(failures=100)
    call = rs.retry(attempts=10, backoff=1.0, jitter=False, total=4.5, clock=clock)(flaky)
    with capture_events(RetryExhausted) as events, pytest.raises(ConnectionError):
        asyncio.run(call())
    assert clock.sleeps == [1.0, 2.0]  # the next wait, 4, would end at t=7
    assert [e.reason for e in events.of(RetryExhausted)] == ["budget"]


def test_an_enclosing_deadline_stops_the_retries(clock: FakeClock):
    flaky = AsyncFlaky(failures=100)
    call = rs.retry(attempts=10, backoff=1.0, jitter=False, clock=clock)(flaky)

    async def main() -> None:
        with rs.deadline_after(2.5, clock=clock):
            await call()

    with capture_events(RetryExhausted) as events, pytest.raises(ConnectionError):
        asyncio.run(main())
    assert clock.sleeps == [1.0]
    assert [e.reason for e in events.of(RetryExhausted)] == ["deadline"]


def test_a_cancellation_from_outside_during_a_backoff_wait_is_never_retried():
    flaky = AsyncFlaky(failures=100)
    call = rs.retry(attempts=10, backoff=5.0, jitter=False)(flaky)

    async def main() -> None:
        task = asyncio.create_task(call())
        await asyncio.sleep(0.02)  # the first attempt failed: now in its 5 s backoff wait
        assert flaky.calls == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with capture_events(RetryScheduled, RetryExhausted) as events:
        asyncio.run(main())
    assert flaky.calls == 1
    assert [e.name for e in events] == ["retry.scheduled"]


@pytest.mark.parametrize("on", [Exception, BaseException], ids=["Exception", "BaseException"])
def test_a_cancelled_error_raised_by_the_call_is_never_retried(clock: FakeClock, on: type):
    flaky = AsyncFlaky(failures=100, error=asyncio.CancelledError)
    call = rs.retry(attempts=5, on=on, clock=clock)(flaky)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(call())
    assert flaky.calls == 1


def test_a_server_retry_after_on_a_real_socket_sets_the_wait(clock: FakeClock):
    with ApiSimulator(latency_scale=0.0, rate_limited_requests=2, retry_after=7) as api:

        @rs.retry(attempts=3, backoff=0.01, clock=clock)
        async def news() -> aio_http.Response:
            return await aio_http.get(api.url, "/v1/news/sentiment")

        response = asyncio.run(news())
        assert response.status == 200
        assert api.requests("/v1/news/sentiment") == 3
    assert clock.sleeps == [7.0, 7.0]


def test_describe_is_the_same_for_sync_and_async_functions():
    policy = rs.retry(attempts=4, total=9)

    def sync() -> None: ...

    async def coroutine() -> None: ...

    for func in (sync, coroutine):
        wrapped = rs.resilient(retry=policy)(func)
        assert wrapped.describe() == f"{policy.describe()} -> {func.__qualname__}"
