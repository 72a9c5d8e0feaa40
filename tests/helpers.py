"""Helpers shared by the tests: polling, counting, failing callables, log capture, servers."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import structlog
from structlog.typing import EventDict

import resilient_scan as rs
from resilient_scan import _config, _engine


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll *predicate* until it is true or *timeout* seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return predicate()
        time.sleep(0.002)
    return True


def calls_running() -> int:
    """Calls running now on the threads of every `DaemonPool`, abandoned ones included."""
    return sum(
        max(0, pool.threads - len(pool._idle))  # the pools' own bookkeeping
        for pool in list(_engine._POOLS)
    )


def settle(timeout: float = 5.0) -> bool:
    """Wait until no call runs on a pool's thread and none is counted as abandoned.

    An abandoned call reports its end (``timeout.abandoned_call_finished``, a scanner's
    ``scanner.late_result_dropped``) from its own thread, *after* it stopped counting in
    `resilient_scan.abandoned_threads`; the thread goes back to its pool's idle list only
    once those reports are out. So waiting for idle threads, not for the count, is what
    keeps a test's late reports out of the next test's output and captures.
    """
    return wait_until(lambda: rs.abandoned_threads() == 0 and calls_running() == 0, timeout)


def hung_calls() -> str:
    """The abandoned calls still running, by function, for a failure message."""
    hung = _config.abandoned_calls().hung()
    running = calls_running()
    listed = ", ".join(f"{name} x{count}" for name, count in hung) or "none abandoned"
    return f"{listed}; {running} pool thread(s) busy"


@contextmanager
def structlog_kept() -> Iterator[None]:
    """Put structlog's configuration back as it was, *unconfigured* included.

    ``structlog.configure(**structlog.get_config())`` on an unconfigured structlog marks it
    configured: the library's default hook then prints every later event to stdout.
    """
    configured = structlog.is_configured()
    saved = structlog.get_config()
    saved["processors"] = list(saved["processors"])
    try:
        yield
    finally:
        structlog.reset_defaults()
        if configured:
            structlog.configure(**saved)


class Calls:
    """A thread-safe record of calls: how many, and with what."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[Any] = []

    def add(self, item: Any = None) -> None:
        """Record one call (with *item*)."""
        with self._lock:
            self.items.append(item)

    bump = add

    @property
    def count(self) -> int:
        """How many calls were recorded."""
        with self._lock:
            return len(self.items)

    value = count


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


@contextmanager
def capture_with_contextvars() -> Iterator[list[EventDict]]:
    """`structlog.testing.capture_logs` with bound contextvars merged into each event.

    (``capture_logs(processors=...)`` does this from structlog 25.5 on; the project supports
    older versions, so the processors are swapped in place here.)
    """
    capture = structlog.testing.LogCapture()
    processors = structlog.get_config()["processors"]
    saved = list(processors)
    # As capture_logs does: the same list, edited in place, so loggers bound before see it.
    processors[:] = [structlog.contextvars.merge_contextvars, capture]
    structlog.configure(processors=processors)
    try:
        yield capture.entries
    finally:
        processors[:] = saved
        structlog.configure(processors=processors)


def events_named(events: list[EventDict], name: str, **fields: Any) -> list[EventDict]:
    """The captured log events called *name* whose fields include *fields*."""
    return [
        event
        for event in events
        if event["event"] == name and all(event.get(k) == v for k, v in fields.items())
    ]


def require_server(what: str, available: bool, how: str) -> None:
    """Skip a test when a server it needs is missing, with a clear reason; fail under CI.

    CI (``CI=true``) installs and starts every server the tests need, so there a missing
    one is a broken setup, never a reason to skip.
    """
    if available:
        return
    message = f"{what} is not available: {how}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: the CI script must provide it)")
    pytest.skip(message)
