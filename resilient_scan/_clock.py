"""Time as the policies see it: injectable, so tests can use a fake clock."""

from __future__ import annotations

import time as _time
from typing import Protocol, runtime_checkable

from ._config import WAITS


@runtime_checkable
class Clock(Protocol):
    """The three readings of time that the policies use.

    Pass an object with these methods as ``clock=`` to a policy or the executor to control
    its time in tests (see `resilient_scan.testing.FakeClock`).
    """

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (durations, TTLs, budgets)."""
        ...

    def time(self) -> float:
        """Wall-clock seconds since the epoch (state shared across processes)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait *seconds* (retry backoff, rate-limit waits)."""
        ...


class SystemClock:
    """The real clock: `time.monotonic`, `time.time` and `time.sleep`."""

    __slots__ = ()

    monotonic = staticmethod(_time.monotonic)
    time = staticmethod(_time.time)
    sleep = staticmethod(_time.sleep)

    def __repr__(self) -> str:
        """Return ``SystemClock()``."""
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()


def is_system(clock: Clock) -> bool:
    """Whether *clock* reads real time (so real waits and thread timeouts apply)."""
    return type(clock) is SystemClock


def backoff_sleep(clock: Clock, seconds: float) -> None:
    """Sleep *seconds* on *clock* unless waits are disabled for testing."""
    if seconds > 0 and not WAITS.disabled:
        clock.sleep(seconds)


async def backoff_sleep_async(clock: Clock, seconds: float) -> None:
    """Await *seconds* on *clock* without blocking the event loop (unless waits are off).

    A fake clock moves at once (its ``sleep`` returns immediately); the loop still gets a
    turn, as after a real sleep.
    """
    import anyio  # noqa: PLC0415 - async support is loaded when async code first needs it

    if seconds > 0 and not WAITS.disabled:
        if is_system(clock):
            await anyio.sleep(seconds)
            return
        clock.sleep(seconds)
    await anyio.lowlevel.checkpoint()
