"""Helpers for testing code that uses resilient_scan.

- `no_waits`: retry backoff and rate-limit waits do not sleep.
- `FakeClock`: time that moves only when told to.
- `capture_events`: the typed events a block of code emitted.
- `ApiSimulator`: an HTTP API on 127.0.0.1 with slow, rate-limited, flaky, hanging and dead
  endpoints, to run scanners against (the demo and the examples use it).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from . import _config
from ._events import Event
from ._instrument import add_hook, remove_hook

if TYPE_CHECKING:
    from ._simulator import ENDPOINTS, ApiSimulator, Endpoint

__all__ = [
    "ENDPOINTS",
    "ApiSimulator",
    "CapturedEvents",
    "Endpoint",
    "FakeClock",
    "capture_events",
    "no_waits",
]


@contextmanager
def no_waits() -> Iterator[None]:
    """Within this block, retry backoff and rate-limit waits do not sleep (in every thread).

    Retries still happen and are counted and reported with the wait they would have made;
    only the sleeping is skipped, so tests of retrying code run at full speed.
    """
    _config.WAITS.push()
    try:
        yield
    finally:
        _config.WAITS.pop()


class FakeClock:
    """A clock for tests: time moves only when told to, or when something sleeps on it.

    Pass it as ``clock=`` to `retry`, `ttl_cache`, `circuit_breaker`, `rate_limit` and the
    executor to test TTL expiry, reset timeouts and retry budgets without waiting.
    """

    def __init__(self, start: float = 1_000_000.0) -> None:
        """Start the clock at *start* seconds (both monotonic and wall time)."""
        self._lock = threading.Lock()
        self._now = start
        self.sleeps: list[float] = []

    def __repr__(self) -> str:
        """Show the current time."""
        return f"FakeClock({self._now!r})"

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


class CapturedEvents(list[Event]):
    """The events captured by `capture_events`, in the order they were emitted."""

    def named(self, name: str) -> list[Event]:
        """The captured events called *name* (e.g. ``"retry.scheduled"``)."""
        return [event for event in self if event.name == name]

    def of(self, kind: type[Any]) -> list[Any]:
        """The captured events of class *kind*."""
        return [event for event in self if isinstance(event, kind)]


@contextmanager
def capture_events(*kinds: type[Event]) -> Iterator[CapturedEvents]:
    """Capture the typed events emitted (in any thread) while the block runs.

    With *kinds*, only events of those classes. The other hooks keep working meanwhile:

        with capture_events(RetryScheduled) as events:
            fetch()
        assert [e.attempt for e in events] == [1, 2]
    """
    captured = CapturedEvents()
    lock = threading.Lock()

    class _Capture:
        events = kinds or None

        def __call__(self, event: Event) -> None:
            with lock:
                captured.append(event)

        def __repr__(self) -> str:
            return "capture_events()"

    hook = _Capture()
    add_hook(hook)
    try:
        yield captured
    finally:
        remove_hook(hook)


def __getattr__(name: str) -> Any:
    # The simulator pulls in http.server: loaded only when a test asks for it.
    if name in ("ApiSimulator", "Endpoint", "ENDPOINTS"):
        from . import _simulator  # noqa: PLC0415

        return getattr(_simulator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
