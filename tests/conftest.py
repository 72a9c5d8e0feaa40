"""Fixtures shared by every test: a fresh runtime, fake time, hung calls that end, captures."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import structlog

import resilient_scan as rs
from resilient_scan import _config
from resilient_scan.instrumentation import set_hooks
from resilient_scan.testing import CapturedEvents, FakeClock, capture_events
from tests.helpers import Calls


@pytest.fixture(autouse=True)
def _fresh_runtime() -> Iterator[None]:
    """Each test starts with the default hooks, redaction on, waits enabled, no stray config.

    Tests that configure structlog (the CLI's) put the previous configuration back.
    """
    configured = structlog.is_configured()
    saved = structlog.get_config()
    set_hooks(None)
    rs.set_redaction(True)
    yield
    set_hooks(None)
    rs.set_redaction(True)
    _config.WAITS.reset()
    if configured:
        structlog.configure(**saved)
    else:
        # configure() would leave structlog "configured", and the default log hook would
        # then route every later test's events to structlog instead of standard logging.
        structlog.reset_defaults()


@pytest.fixture
def structlog_defaults() -> Iterator[None]:
    """Run with structlog's default configuration (debug passes), restoring the one before."""
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
def calls() -> Calls:
    """A fresh thread-safe call recorder."""
    return Calls()


@pytest.fixture
def events() -> Iterator[CapturedEvents]:
    """The typed events emitted while the test runs."""
    with capture_events() as captured:
        yield captured


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An Event that hung calls wait on: set at teardown, which then waits for them to end.

    So no abandoned call of this test is still running, or still logging, when the next
    test starts.
    """
    event = threading.Event()
    before = rs.abandoned_threads()
    yield event
    event.set()
    deadline = time.monotonic() + 5.0
    while rs.abandoned_threads() > before and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(0.01)  # the last one reports just after it stops counting
