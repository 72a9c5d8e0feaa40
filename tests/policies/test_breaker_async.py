"""rs.circuit_breaker on coroutine functions: async failures and timeouts count, one trial."""

from __future__ import annotations

import asyncio

import pytest

import resilient_scan as rs
from resilient_scan.testing import FakeClock

RESET = 10.0


class AsyncService:
    """A coroutine function whose next outcome the test sets."""

    def __init__(self) -> None:
        self.calls = 0
        self.error: BaseException | None = None
        self.hold: asyncio.Event | None = None
        self.entered: asyncio.Event | None = None

    async def __call__(self) -> str:
        self.calls += 1
        if self.entered is not None:
            self.entered.set()
        if self.hold is not None:
            await self.hold.wait()
        await asyncio.sleep(0)
        if self.error is not None:
            raise self.error
        return "ok"


def guarded(service: AsyncService, clock: FakeClock, fail_max: int = 2) -> rs.BreakerFunction:  # type: ignore[type-arg]
    return rs.circuit_breaker(fail_max=fail_max, reset_timeout=RESET, clock=clock)(service)


def test_async_failures_open_the_breaker_and_it_rejects_without_awaiting(clock: FakeClock):
    service = AsyncService()
    call = guarded(service, clock)

    async def main() -> None:
        service.error = ConnectionError("down")
        for _ in range(2):
            with pytest.raises(ConnectionError):
                await call()
        assert call.breaker.state == "open"
        with pytest.raises(rs.CircuitOpenError):
            await call()

    asyncio.run(main())
    assert service.calls == 2


def test_an_async_timeout_inside_counts_as_a_failure(clock: FakeClock):
    @rs.resilient(breaker={"fail_max": 1, "clock": clock}, timeout=0.02)
    async def slow() -> None:
        await asyncio.sleep(5)

    async def main() -> None:
        with pytest.raises(rs.ScanTimeout):
            await slow()
        with pytest.raises(rs.CircuitOpenError):
            await slow()

    asyncio.run(main())
    assert slow.breaker is not None
    assert slow.breaker.state == "open"


def test_half_open_admits_one_trial_among_concurrent_tasks(clock: FakeClock):
    service = AsyncService()
    call = guarded(service, clock, fail_max=1)

    async def main() -> list[str]:
        service.error = ConnectionError("down")
        with pytest.raises(ConnectionError):
            await call()
        service.error = None
        clock.advance(RESET + 1)
        service.hold, service.entered = asyncio.Event(), asyncio.Event()
        trial = asyncio.create_task(call())
        await service.entered.wait()
        others = await asyncio.gather(*(call() for _ in range(4)), return_exceptions=True)
        assert all(isinstance(other, rs.CircuitOpenError) for other in others)
        service.hold.set()
        return [await trial, call.breaker.state]

    assert asyncio.run(main()) == ["ok", "closed"]
    assert service.calls == 2


def test_a_trial_cancelled_from_outside_is_not_a_failure_and_frees_the_trial(clock: FakeClock):
    service = AsyncService()
    call = guarded(service, clock, fail_max=1)

    async def main() -> None:
        service.error = ConnectionError("down")
        with pytest.raises(ConnectionError):
            await call()
        service.error = None
        clock.advance(RESET + 1)
        service.hold, service.entered = asyncio.Event(), asyncio.Event()
        trial = asyncio.create_task(call())
        await service.entered.wait()
        trial.cancel()
        with pytest.raises(asyncio.CancelledError):
            await trial
        assert call.breaker.state == "half-open"  # no verdict: neither closed nor re-opened
        service.hold = service.entered = None
        assert await call() == "ok"  # the next call is the new trial
        assert call.breaker.state == "closed"

    asyncio.run(main())


def test_a_call_cancelled_from_outside_while_closed_is_not_counted(clock: FakeClock):
    service = AsyncService()
    call = guarded(service, clock, fail_max=1)

    async def main() -> None:
        service.hold, service.entered = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(call())
        await service.entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert call.breaker.state == "closed"
    assert call.breaker.failures == 0
