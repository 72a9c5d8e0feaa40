"""Fixtures shared by every test: a fresh runtime, fake time, hung calls that end, captures."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
import structlog

import resilient_scan as rs
from resilient_scan import _config
from resilient_scan.instrumentation import set_hooks
from resilient_scan.testing import CapturedEvents, FakeClock, capture_events
from tests.helpers import Calls, hung_calls, settle

#: How long a test's teardown waits for calls still running before it fails the test. A
#: test that ends its calls itself never waits here: only threads on their way back to
#: their pool (microseconds, however loaded the machine) are waited for.
STRAGGLERS_SECONDS = 5.0


@pytest.fixture(autouse=True)
def _no_call_outlives_its_test() -> Iterator[None]:
    """Fail a test that leaves a call running on a pool thread when it and its fixtures end.

    Such a call reports its end later, into another test's output, captures and abandoned
    count. A test that abandons calls ends them (the `release` fixture) and waits for them
    (`tests.helpers.settle`). Checked after every other fixture of the test has ended.
    """
    inherited = not settle(STRAGGLERS_SECONDS)  # a failed test before may have left some
    yield
    if inherited:
        return
    abandoned = rs.abandoned_threads()
    if not settle(STRAGGLERS_SECONDS):
        pytest.fail(
            f"calls of this test were still running {STRAGGLERS_SECONDS}s after it: {hung_calls()}"
        )
    if abandoned:
        pytest.fail(
            f"{abandoned} call(s) this test abandoned were still running when it ended (they"
            " ended later, reporting into whatever ran next): end them and wait for them"
            " with the `release` fixture or tests.helpers.settle()"
        )


@pytest.fixture(autouse=True)
def _fresh_runtime() -> Iterator[None]:
    """Each test starts with the default hooks, redaction on, waits enabled, no stray config.

    Tests that configure structlog (the CLI's) or standard logging put the previous
    configuration back; this puts it back whatever they do.
    """
    configured = structlog.is_configured()
    saved = structlog.get_config()
    logs = _logging_state()
    message_limit = _config.RUNTIME.message_limit
    set_hooks(None)
    rs.set_redaction(True)
    yield
    set_hooks(None)
    rs.set_redaction(True)
    _config.RUNTIME.message_limit = message_limit
    _config.WAITS.reset()
    _restore_logging(logs)
    if configured:
        structlog.configure(**saved)
    else:
        # configure() would leave structlog "configured", and the default log hook would
        # then route every later test's events to structlog instead of standard logging.
        structlog.reset_defaults()


_LoggingState = list[tuple[logging.Logger, list[logging.Handler], int, bool]]


def _logging_state() -> _LoggingState:
    loggers = [logging.getLogger(), logging.getLogger("resilient_scan")]
    return [(log, list(log.handlers), log.level, log.propagate) for log in loggers]


def _restore_logging(state: _LoggingState) -> None:
    for log, handlers, level, propagate in state:
        log.handlers[:] = handlers
        log.setLevel(level)
        log.propagate = propagate


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

    So no abandoned call of this test is still running, or still reporting, when the next
    test starts (`tests.helpers.settle`).
    """
    event = threading.Event()
    yield event
    event.set()
    assert settle(), f"calls still running after their release: {hung_calls()}"
