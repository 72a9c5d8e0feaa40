"""Time as the policies see it: injectable, so tests can use a fake clock."""

from __future__ import annotations

import threading
import time as _time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """The three readings of time that the policies use.

    Pass an object with these methods as ``clock=`` to a policy to control its time in tests
    (see `resilient_scan.testing.FakeClock`).
    """

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (durations, TTLs, budgets)."""
        ...

    def time(self) -> float:
        """Wall-clock seconds since the epoch (state shared across processes)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait *seconds* (retry backoff)."""
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


class _WaitSwitch:
    """Process-wide switch behind `resilient_scan.testing.no_waits`.

    Process-wide on purpose: the executor and the timeout layer run calls on other threads,
    and a test that disables waits means all of them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0

    @property
    def disabled(self) -> bool:
        return self._depth > 0

    def push(self) -> None:
        with self._lock:
            self._depth += 1

    def pop(self) -> None:
        with self._lock:
            self._depth -= 1


WAITS = _WaitSwitch()


def backoff_sleep(clock: Clock, seconds: float) -> None:
    """Sleep *seconds* on *clock* unless waits are disabled for testing."""
    if seconds > 0 and not WAITS.disabled:
        clock.sleep(seconds)
