"""The log hooks: standard logging when structlog is not configured, structlog when it is.

What they write is safe: redacted tracebacks without local variables, values that cannot
forge a line; and a logger that fails never changes an outcome.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
import structlog

import resilient_scan as rs
from resilient_scan import _loghooks
from resilient_scan._instrument import emit, wanted
from resilient_scan.instrumentation import (
    BreakerRejected,
    CacheHit,
    LoggingHook,
    LogHook,
    RetryScheduled,
    ScannerFinished,
    StructlogHook,
    WorkerTaskFailed,
    get_hooks,
    set_hooks,
)
from resilient_scan.testing import FakeClock
from tests.helpers import Flaky, events_named

SECRET = "s3cr3t-k3y"  # noqa: S105 - the secret the logs must not show
LEAKY_ERROR = f"GET https://api.example.com/quote?symbol=MSFT&apikey={SECRET} failed"


def leaky_scanner(state: object) -> list[dict[str, str]]:
    password = SECRET  # a local variable: it must never reach a log
    raise ConnectionError(f"{LEAKY_ERROR}; password={password}")


class ListHandler(logging.Handler):
    """Keeps the records it handles."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """The ``resilient_scan`` logger with its level restored afterwards; structlog unset."""
    structlog.reset_defaults()  # the conftest puts the configuration back afterwards
    logger = logging.getLogger("resilient_scan")
    level, propagate = logger.level, logger.propagate
    yield logger
    logger.setLevel(level)
    logger.propagate = propagate


@pytest.fixture
def records(logger: logging.Logger) -> Iterator[list[logging.LogRecord]]:
    """Records of the ``resilient_scan`` logger at every level, structlog unconfigured."""
    handler = ListHandler()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # kept here, not printed by pytest's capture
    yield handler.records
    logger.removeHandler(handler)


def formatted(record: logging.LogRecord) -> str:
    return logging.Formatter("%(levelname)s %(name)s %(message)s").format(record)


# -- standard logging ------------------------------------------------------------------------


def test_without_structlog_configured_the_default_hook_logs_through_standard_logging(
    records: list[logging.LogRecord], clock: FakeClock
):
    call = rs.retry(attempts=2, backoff=0.5, jitter=False, clock=clock)(Flaky(failures=1))
    call()
    (record,) = [r for r in records if r.msg == "%s" and "retry.scheduled" in r.getMessage()]
    assert record.name == "resilient_scan"
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("retry.scheduled function=")
    assert "attempt=1 wait=0.5 error_type=ValueError error='ValueError: boom 1'" in (
        record.getMessage()
    )
    # The fields are on the record for structured handlers.
    assert record.event == "retry.scheduled"  # type: ignore[attr-defined]
    assert record.attempt == 1  # type: ignore[attr-defined]
    assert record.fields["error_type"] == "ValueError"  # type: ignore[attr-defined]


def test_events_inside_a_scanner_name_the_scanner(
    records: list[logging.LogRecord], clock: FakeClock
):
    call = rs.retry(attempts=2, backoff=0.5, clock=clock)(Flaky(failures=1))

    @rs.scanner(pipeline="momentum")
    def quotes(state: object) -> list[dict[str, str]]:
        call()
        return []

    rs.ScanExecutor(max_workers=1).run([quotes])
    (record,) = [r for r in records if getattr(r, "event", None) == "retry.scheduled"]
    assert record.scanner == "quotes"  # type: ignore[attr-defined]
    assert record.pipeline == "momentum"  # type: ignore[attr-defined]
    assert " scanner=quotes pipeline=momentum" in record.getMessage()


def test_every_level_maps_to_the_same_logging_level(records: list[logging.LogRecord]):
    set_hooks([LoggingHook()])
    emit(CacheHit("quotes", "fetch"))
    emit(BreakerRejected("quotes", "open", 3.0))
    emit(RetryScheduled("fetch", 1, 0.5, "ValueError", "ValueError: boom", None))
    emit(WorkerTaskFailed.of(RuntimeError("bug")))
    assert [(r.levelno, r.event) for r in records] == [  # type: ignore[attr-defined]
        (logging.DEBUG, "cache.hit"),
        (logging.INFO, "breaker.rejected"),
        (logging.WARNING, "retry.scheduled"),
        (logging.ERROR, "worker.task_failed"),
    ]


def test_a_scanner_error_is_logged_with_a_redacted_traceback_and_no_locals(
    records: list[logging.LogRecord],
):
    rs.ScanExecutor(max_workers=1).run([leaky_scanner])
    (record,) = [r for r in records if getattr(r, "event", None) == "scanner.finished"]
    text = formatted(record)
    assert record.levelno == logging.WARNING
    assert "Traceback (most recent call last)" in text
    assert "in leaky_scanner" in text
    assert "ConnectionError: GET https://api.example.com/quote?symbol=MSFT&apikey=***" in text
    assert SECRET not in text
    assert record.exc_info is None  # a formatter would print the unredacted message


def test_with_redaction_off_the_record_carries_the_exception_itself(
    records: list[logging.LogRecord],
):
    rs.set_redaction(False)
    rs.ScanExecutor(max_workers=1).run([leaky_scanner])
    (record,) = [r for r in records if getattr(r, "event", None) == "scanner.finished"]
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ConnectionError)
    assert SECRET in formatted(record)


def test_values_with_control_characters_cannot_forge_a_log_line(
    records: list[logging.LogRecord],
):
    set_hooks([LoggingHook()])
    forged = "evil\nscanner.finished\x1b[2J"
    emit(ScannerFinished(forged, None, "ok", 1, 0, 0.1, 1, None, None))
    emit(ScannerFinished("a\rb", "p=q", "ok", 1, 0, 0.1, 1, None, None))
    first, second = (r.getMessage() for r in records)
    assert "\n" not in first
    assert "\x1b" not in first
    assert "scanner='evil\\nscanner.finished\\x1b[2J'" in first
    assert "scanner='a\\rb' pipeline='p=q'" in second


def test_long_error_texts_are_capped_once(records: list[logging.LogRecord]):
    set_hooks([LoggingHook()])
    rs.ScanExecutor(max_workers=1).run([lambda state: _raise(ValueError("x" * 10_000))])
    (record,) = [r for r in records if getattr(r, "event", None) == "scanner.finished"]
    error = record.fields["error"]  # type: ignore[attr-defined]
    assert error.endswith("chars)")
    assert error.count("… (+") == 1
    assert len(error) < 2100


def _raise(exc: Exception) -> list[dict[str, str]]:
    raise exc


def test_logging_level_gates_which_events_are_built(logger: logging.Logger):
    logger.setLevel(logging.WARNING)
    assert isinstance(get_hooks()[0], LogHook)
    assert wanted(RetryScheduled)
    assert not wanted(BreakerRejected)
    assert not wanted(CacheHit)
    logger.setLevel(logging.DEBUG)
    assert wanted(CacheHit)


# -- structlog ----------------------------------------------------------------------------------


def test_with_structlog_configured_the_default_hook_logs_through_structlog(clock: FakeClock):
    call = rs.retry(attempts=2, backoff=0.5, jitter=False, clock=clock)(Flaky(failures=1))
    with structlog.testing.capture_logs() as logs:
        call()
    (event,) = events_named(logs, "retry.scheduled")
    assert event["log_level"] == "warning"
    assert event["attempt"] == 1
    assert event["error"] == "ValueError: boom 1"


def test_structlog_gets_a_redacted_traceback_field_and_no_exc_info():
    with structlog.testing.capture_logs() as logs:
        rs.ScanExecutor(max_workers=1).run([leaky_scanner])
    (event,) = events_named(logs, "scanner.finished")
    assert "exc_info" not in event
    assert "Traceback (most recent call last)" in event["traceback"]
    assert "apikey=***" in event["traceback"]
    assert SECRET not in repr(event)


def test_structlog_hook_follows_a_filtering_bound_logger_level():
    hook = StructlogHook()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    assert not hook.enabled_for(logging.INFO)
    assert hook.enabled_for(logging.WARNING)
    set_hooks([hook])
    assert not wanted(BreakerRejected)
    assert wanted(RetryScheduled)


def test_a_structlog_processor_that_raises_changes_no_outcome(
    capsys: pytest.CaptureFixture[str], clock: FakeClock
):
    def broken_sink(logger: object, method: str, event_dict: MutableMapping[str, Any]) -> str:
        raise BrokenPipeError(32, "Broken pipe")

    structlog.configure(processors=[broken_sink])
    flaky = Flaky(failures=2)
    call = rs.retry(attempts=3, backoff=0.1, clock=clock)(flaky)
    assert call() == 3
    report = rs.ScanExecutor(max_workers=2).run([leaky_scanner, lambda state: []])
    assert [result.status for result in report.results] == ["error", "ok"]
    err = capsys.readouterr().err
    assert err.count("resilient_scan: instrumentation hook LogHook() raised") == 1
    assert "BrokenPipeError" in err


def test_a_logging_handler_that_raises_changes_no_outcome(
    capsys: pytest.CaptureFixture[str], clock: FakeClock, logger: logging.Logger
):
    class Broken(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            raise BrokenPipeError(32, "Broken pipe")

        def handle(self, record: logging.LogRecord) -> bool:  # skips handleError
            self.emit(record)
            return True

    handler = Broken()
    logger.addHandler(handler)
    try:
        call = rs.circuit_breaker(fail_max=1, name="quotes", clock=clock)(Flaky(failures=5))
        with pytest.raises(ValueError):
            call()
        assert call.breaker.state == "open"
        with pytest.raises(rs.CircuitOpenError):
            call()
    finally:
        logger.removeHandler(handler)
    assert capsys.readouterr().err.count("instrumentation hook LogHook() raised") == 1


# -- a process with no configuration at all (issue 8.8) --------------------------------------

SCRIPT = textwrap.dedent(
    """
    import logging, sys
    SETUP

    import resilient_scan as rs
    from resilient_scan.testing import no_waits

    calls = {"n": 0}

    @rs.resilient(retry={"attempts": 2, "backoff": 0.01}, cache=60)
    def quote(ticker):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("reset by peer")
        return 1.0

    def steady(state):
        quote("MSFT")
        quote("MSFT")  # a cache hit: a debug event
        return [{"ticker": "MSFT"}]

    def broken(state):
        raise KeyError("MSFT")

    with no_waits():
        report = rs.ScanExecutor(max_workers=2).run([steady, broken])
    assert [r.status for r in report.results] == ["ok", "error"], report.results
    """
)


def run_script(setup: str) -> subprocess.CompletedProcess[str]:
    code = SCRIPT.replace("SETUP", setup)
    return subprocess.run(  # noqa: S603 - our own script, run by this interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_with_no_logging_configuration_nothing_reaches_stdout():
    done = run_script("")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    # Python's last-resort handler shows warnings and errors on stderr, nothing below.
    assert "retry.scheduled function=quote attempt=1" in done.stderr
    assert "scanner.finished scanner=broken" in done.stderr
    assert "KeyError: 'MSFT'" in done.stderr
    assert "scan.started" not in done.stderr
    assert "cache.hit" not in done.stderr


def test_with_basic_config_the_application_s_level_and_format_apply():
    done = run_script(
        'logging.basicConfig(level=logging.INFO, format="%(levelname)s|%(name)s|%(message)s")'
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert any(line.startswith("INFO|resilient_scan|scan.started scanners=2") for line in lines)
    assert any(
        line.startswith("WARNING|resilient_scan|retry.scheduled function=quote") for line in lines
    )
    assert any(
        line.startswith("WARNING|resilient_scan|scanner.finished scanner=broken") for line in lines
    )
    assert any(
        line.startswith("INFO|resilient_scan|scanner.finished scanner=steady") for line in lines
    )
    assert "Traceback (most recent call last)" in done.stderr
    assert "cache.hit" not in done.stderr  # debug: below the application's level


def test_structlog_imported_but_not_configured_still_goes_through_standard_logging():
    # structlog's own defaults print to stdout: an application that merely imports it
    # (through another library) must not get our events there.
    done = run_script(
        "import structlog\n"
        'logging.basicConfig(level=logging.DEBUG, format="%(levelname)s|%(message)s")'
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "DEBUG|cache.hit cache=" in done.stderr
    assert "WARNING|scanner.finished scanner=broken" in done.stderr


def test_a_structlog_that_keeps_its_configuration_elsewhere_is_asked_publicly(
    monkeypatch: pytest.MonkeyPatch,
):
    class Moved:  # a later structlog, say, whose config object has other names
        is_configured = True

    monkeypatch.setattr(structlog._config, "_CONFIG", Moved())
    found = _loghooks._Structlog()
    assert found.loaded()
    assert found.config is None  # the fast paths stand down
