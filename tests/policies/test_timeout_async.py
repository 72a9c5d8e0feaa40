"""rs.timeout on coroutine functions: the awaited call is cancelled at its limit, for real."""

from __future__ import annotations

import asyncio
import time

import pytest

import resilient_scan as rs
from resilient_scan.instrumentation import CallAbandoned, TimeoutFired
from resilient_scan.testing import ApiSimulator, capture_events
from tests.policies import aio_http

LIMIT = 0.05
# A shared 2-core machine is noisy: a 50 ms timeout only has to fire before this.
FIRES_BEFORE = 1.0


def test_the_awaited_call_is_cancelled_at_its_limit_and_nothing_is_left_running():
    ended: list[str] = []

    @rs.timeout(LIMIT)
    async def slow() -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            ended.append("cancelled")
            raise
        return "woke up"

    async def main() -> float:
        started = time.monotonic()
        with pytest.raises(rs.ScanTimeout) as info:
            await slow()
        assert info.value.limit == LIMIT
        return time.monotonic() - started

    before = rs.abandoned_threads()
    with capture_events(TimeoutFired, CallAbandoned) as events:
        elapsed = asyncio.run(main())
    assert LIMIT - 0.01 <= elapsed < FIRES_BEFORE
    assert ended == ["cancelled"]  # cancelled inside the call, not left to finish
    assert rs.abandoned_threads() == before
    assert [(e.name, e.cancelled, e.limit) for e in events.of(TimeoutFired)] == [
        ("timeout.fired", True, LIMIT)
    ]


def test_returns_the_result_and_raises_the_call_exception_unchanged():
    error = LookupError("no such ticker")

    @rs.timeout(1)
    async def add(a: int, b: int = 0) -> int:
        await asyncio.sleep(0)
        return a + b

    @rs.timeout(1)
    async def fail() -> None:
        raise error

    async def main() -> None:
        assert await add(2, b=40) == 42
        with pytest.raises(LookupError) as info:
            await fail()
        assert info.value is error

    asyncio.run(main())


def test_time_remaining_inside_counts_down_to_the_limit_and_is_gone_after():
    seen: list[float | None] = []

    @rs.timeout(2)
    async def probe() -> None:
        seen.append(rs.time_remaining())
        await asyncio.sleep(0.01)
        seen.append(rs.time_remaining())

    async def main() -> None:
        await probe()
        seen.append(rs.time_remaining())

    asyncio.run(main())
    first, second, after = seen
    assert first is not None
    assert second is not None
    assert 1.0 < second < first <= 2.0
    assert after is None


def test_an_enclosing_deadline_that_ends_sooner_shortens_the_limit():
    @rs.timeout(30)
    async def slow() -> None:
        await asyncio.sleep(5)

    async def main() -> rs.ScanTimeout:
        with rs.deadline_after(LIMIT), pytest.raises(rs.ScanTimeout) as info:
            await slow()
        return info.value

    started = time.monotonic()
    error = asyncio.run(main())
    assert error.limit <= LIMIT
    assert time.monotonic() - started < FIRES_BEFORE


def test_a_cancellation_from_outside_propagates_and_is_not_a_timeout():
    @rs.timeout(30)
    async def slow(started: asyncio.Event) -> None:
        started.set()
        await asyncio.sleep(5)

    async def main() -> None:
        started = asyncio.Event()
        task = asyncio.create_task(slow(started))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The loop and this task carry on normally afterwards.
        await asyncio.sleep(0)

    with capture_events(TimeoutFired) as events:
        asyncio.run(main())
    assert events == []


def test_after_a_timeout_the_caller_task_is_not_left_cancelled():
    @rs.timeout(LIMIT)
    async def slow() -> None:
        await asyncio.sleep(5)

    async def main() -> str:
        with pytest.raises(rs.ScanTimeout):
            await slow()
        await asyncio.sleep(0.001)  # would raise CancelledError if the task stayed cancelled
        return "carried on"

    assert asyncio.run(main()) == "carried on"


def test_a_hanging_server_on_a_real_socket_is_given_up_on_at_the_limit():
    with ApiSimulator(latency_scale=0.0) as api:

        @rs.timeout(0.1)
        async def signals() -> aio_http.Response:
            return await aio_http.get(api.url, "/v1/altdata/signals")

        async def main() -> float:
            started = time.monotonic()
            with pytest.raises(rs.ScanTimeout):
                await signals()
            return time.monotonic() - started

        elapsed = asyncio.run(main())
        assert api.requests("/v1/altdata/signals") == 1
    assert 0.09 <= elapsed < FIRES_BEFORE + 0.1


def test_a_spent_enclosing_budget_does_not_start_the_call():
    calls: list[int] = []

    @rs.timeout(5)
    async def inner() -> None:
        calls.append(1)

    async def main() -> None:
        with rs.deadline_after(0.01):
            await asyncio.sleep(0.03)
            with pytest.raises(rs.ScanTimeout):
                await inner()

    asyncio.run(main())
    assert calls == []
