"""Helpers for testing code that uses resilient_scan: no backoff sleeps, a fake clock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ._clock import WAITS

__all__ = ["FakeClock", "no_waits"]


@contextmanager
def no_waits() -> Iterator[None]:
    """Within this block, retry backoff does not sleep (in every thread).

    Retries still happen and are counted and logged with the wait they would have made;
    only the sleeping is skipped, so tests of retrying code run at full speed.
    """
    WAITS.push()
    try:
        yield
    finally:
        WAITS.pop()


class FakeClock:
    """A clock for tests: time moves only when told to, or when something sleeps on it.

    Pass it as ``clock=`` to `retry`, `ttl_cache` and `circuit_breaker` to test TTL expiry,
    reset timeouts and retry budgets without waiting.
    """

    def __init__(self, start: float = 1_000_000.0) -> None:
        """Start the clock at *start* seconds (both monotonic and wall time)."""
        self._lock = threading.Lock()
        self._now = start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        """Return the current fake time."""
        with self._lock:
            return self._now

    def time(self) -> float:
        """Return the current fake time as wall-clock seconds since the epoch."""
        return self.monotonic()

    def sleep(self, seconds: float) -> None:
        """Record the sleep and move time forward by *seconds*, at once."""
        with self._lock:
            self.sleeps.append(seconds)
            self._now += seconds

    def advance(self, seconds: float) -> None:
        """Move time forward by *seconds*."""
        with self._lock:
            self._now += seconds
