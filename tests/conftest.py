"""Helpers shared by the policy tests: polling, log capture with context, failing callables."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import structlog
from structlog.typing import EventDict

import resilient_scan as rs
from resilient_scan.testing import FakeClock


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll *predicate* until it is true or *timeout* seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return predicate()
        time.sleep(0.005)
    return True


@contextmanager
def capture_with_contextvars() -> Iterator[list[EventDict]]:
    """Like `structlog.testing.capture_logs`, but merging bound contextvars into each event."""
    capture = structlog.testing.LogCapture()
    processors = structlog.get_config()["processors"]
    saved = list(processors)
    processors.clear()
    processors.extend([structlog.contextvars.merge_contextvars, capture])
    structlog.configure(processors=processors)
    try:
        yield capture.entries
    finally:
        processors.clear()
        processors.extend(saved)
        structlog.configure(processors=processors)


def events_named(events: list[EventDict], name: str) -> list[EventDict]:
    """Return the captured events called *name*, in order."""
    return [event for event in events if event["event"] == name]


class Flaky:
    """A callable that raises for its first *failures* calls, then returns its call number.

    Thread-safe; every exception it raised is kept in ``raised``, in order.
    """

    def __init__(
        self,
        failures: int,
        make_error: Callable[[int], Exception] = lambda n: ValueError(f"boom {n}"),
    ) -> None:
        self.failures = failures
        self.make_error = make_error
        self.calls = 0
        self.raised: list[Exception] = []
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            self.calls += 1
            number = self.calls
            if number <= self.failures:
                error = self.make_error(number)
                self.raised.append(error)
            else:
                return number
        raise error


@pytest.fixture
def structlog_defaults() -> Iterator[None]:
    """Run with structlog's default configuration (debug passes), restoring the one before.

    Other tests may configure structlog (a CLI test, say); these must not depend on that.
    """
    saved = structlog.get_config()
    structlog.reset_defaults()
    try:
        yield
    finally:
        structlog.configure(**saved)


@pytest.fixture
def clock() -> FakeClock:
    """A fresh fake clock."""
    return FakeClock()


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An Event that hung scanners wait on; set at teardown so their threads end."""
    event = threading.Event()
    before = rs.abandoned_threads()
    yield event
    event.set()
    # Let the abandoned threads finish (and log) while this test's output is still captured.
    deadline = time.monotonic() + 2.0
    while rs.abandoned_threads() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.02)  # the last one logs just after it stops counting
