"""Faults that once broke the executor (issue 7): each holds now, whatever the scanner does."""

from __future__ import annotations

import contextvars
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest
import structlog

import resilient_scan as rs
from resilient_scan import _config
from resilient_scan.instrumentation import Event, HookFactory, set_hooks
from resilient_scan.testing import FakeClock
from tests.executor.support import Found, hanging, returning

# -- 7.4: an exception that cannot be printed -------------------------------------------------


class Nasty(Exception):  # noqa: N818 - named for what it is
    """Its __str__ and __repr__ raise SystemExit: a BaseException, not an Exception."""

    def __str__(self) -> str:
        raise SystemExit("no str")

    def __repr__(self) -> str:
        raise SystemExit("no repr")


class Unprintable(Exception):  # noqa: N818 - named for what it is
    def __str__(self) -> str:
        raise RuntimeError("no str either")


@pytest.mark.parametrize("kind", [Nasty, Unprintable])
def test_an_exception_that_cannot_be_printed_is_an_error_at_once(kind: type[Exception]):
    def broken(state: Mapping[str, Any]) -> Found:
        raise kind

    before = rs.abandoned_threads()
    started = time.monotonic()
    report = rs.ScanExecutor(timeout_seconds=2.0).run([broken, returning("fine", {"ticker": "A"})])

    result = report.result("broken")
    assert result.status == "error"
    assert result.error == f"{kind.__name__}: <unprintable {kind.__name__}>"
    assert result.error_type == kind.__name__
    assert isinstance(result.exception, kind)
    assert time.monotonic() - started < 1.0  # at once, not at its 2 s limit
    assert rs.abandoned_threads() == before
    assert report.result("fine").status == "ok"


# -- 7.6: logging that raises never changes a report -------------------------------------------


def _assert_report_intact(report: rs.ScanReport) -> None:
    assert [r.status.value for r in report.results] == ["ok", "error"]
    assert [c["ticker"] for c in report.candidates] == ["A"]


def _two_scanners() -> list[Any]:
    def bad(state: Mapping[str, Any]) -> Found:
        raise ValueError("HTTP 500")

    return [returning("good", {"ticker": "A"}), bad]


def test_a_structlog_processor_that_raises_changes_no_report(capsys: pytest.CaptureFixture[str]):
    def broken_pipe(logger: Any, name: str, event: Any) -> Any:
        raise BrokenPipeError("the log pipe is gone")

    structlog.configure(processors=[broken_pipe], logger_factory=structlog.PrintLoggerFactory())

    _assert_report_intact(rs.ScanExecutor().run(_two_scanners()))
    assert "BrokenPipeError" in capsys.readouterr().err  # reported, once, on stderr


def test_a_hook_that_cannot_even_be_built_changes_no_report():
    def no_hook() -> Any:
        raise BrokenPipeError("the metrics sink is gone")

    set_hooks([HookFactory(no_hook)])

    _assert_report_intact(rs.ScanExecutor().run(_two_scanners()))


def test_a_hook_raising_a_base_exception_in_a_worker_changes_no_report():
    class Exits:
        def __call__(self, event: Any) -> None:
            raise SystemExit("a hook that exits")

    set_hooks([Exits()])

    _assert_report_intact(rs.ScanExecutor().run(_two_scanners()))


# -- 7.9: durations the standard library would refuse later -----------------------------------


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"timeout_seconds": 1e10}, "timeout_seconds"),
        ({"deadline_seconds": 1e12}, "deadline_seconds"),
        ({"scanners": {"slow": {"timeout_seconds": 1e10}}}, "scanners.slow.timeout_seconds"),
    ],
)
def test_durations_beyond_timeout_max_are_config_errors(settings: dict[str, Any], key: str):
    with pytest.raises(rs.ConfigError, match="TIMEOUT_MAX") as caught:
        rs.ScanExecutor(**settings)
    assert caught.value.key == key


# -- 7.10: raw errors instead of a ConfigError --------------------------------------------------


@pytest.mark.parametrize("hook", ["merge", "normalize", "construct"])
def test_a_hook_that_is_not_callable_is_a_config_error(hook: str):
    arguments: dict[str, Any] = {hook: 42}
    with pytest.raises(rs.ConfigError) as caught:
        rs.ScanExecutor(**arguments)
    assert caught.value.path == (hook,)


@pytest.mark.parametrize("hook", ["merge", "normalize"])
def test_none_for_merge_or_normalize_is_a_config_error(hook: str):
    arguments: dict[str, Any] = {hook: None}
    with pytest.raises(rs.ConfigError, match="callable") as caught:
        rs.ScanExecutor(**arguments)
    assert caught.value.path == (hook,)


@pytest.mark.parametrize("scanners", [returning("alone"), "market_movers", {"a": 1}, 42])
def test_scanners_must_be_an_iterable_of_scanners(scanners: Any):
    with pytest.raises(rs.ConfigError, match="must be an iterable of scanners") as caught:
        rs.ScanExecutor().run(scanners)
    assert caught.value.path == ("scanners",)


def test_a_state_that_is_not_a_mapping_is_rejected_before_anything_runs(calls: Any):
    def counted(state: Mapping[str, Any]) -> Found:
        calls.add()
        return []

    with pytest.raises(rs.ConfigError, match="state: must be a mapping"):
        rs.ScanExecutor().run([counted], [("ticker", "AAPL")])  # type: ignore[arg-type]
    assert calls.count == 0


# -- 7.12: one bad candidate ---------------------------------------------------------------------


def test_one_bad_candidate_is_dropped_alone():
    report = rs.ScanExecutor().run(
        [
            returning(
                "mixed",
                {"ticker": "MSFT", "priority": ["high"]},  # unhashable priority: repaired
                {"ticker": "AAPL", "priority": "high"},
                {"ticker": {"not": "a string"}},
            )
        ]
    )

    result = report.result("mixed")
    assert result.status == "ok"
    assert [(c["ticker"], c["priority"]) for c in result.candidates] == [
        ("MSFT", "unknown"),
        ("AAPL", "high"),
    ]
    assert result.dropped == 1


def test_a_candidate_the_normalizer_chokes_on_is_dropped_and_counted():
    class Hostile(dict[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:
            raise RuntimeError("hostile mapping")

    report = rs.ScanExecutor().run([returning("odd", Hostile(ticker="X"), {"ticker": "Y"})])

    result = report.result("odd")
    assert result.status == "ok"
    assert [c["ticker"] for c in result.candidates] == ["Y"]
    assert result.dropped == 1


# -- 7.13: a scanner that ran past its limit is a timeout, always -------------------------------


def test_a_scanner_that_returns_after_its_limit_is_a_timeout(clock: FakeClock, events: Any):
    def overran(state: Mapping[str, Any]) -> Found:
        clock.advance(31.0)  # 31 s pass inside the scanner, as in C code holding the GIL
        return [{"ticker": "LATE"}, {"ticker": "LATER"}]

    report = rs.ScanExecutor(timeout_seconds=30.0, clock=clock).run([overran])

    result = report.result("overran")
    assert result.status == "timeout"
    assert result.candidates == []
    assert report.candidates == []
    (dropped,) = events.named("scanner.late_result_dropped")
    assert (dropped.scanner, dropped.candidates, dropped.outcome) == ("overran", 2, "ok")


def test_a_scanner_that_returns_after_the_runs_deadline_is_a_timeout_of_that_deadline(
    clock: FakeClock,
):
    def overran(state: Mapping[str, Any]) -> Found:
        clock.advance(2.0)  # past the run's 1 s deadline, well within its own 30 s
        return [{"ticker": "LATE"}]

    report = rs.ScanExecutor(timeout_seconds=30.0, deadline_seconds=1.0, clock=clock).run([overran])

    result = report.result("overran")
    assert result.status == "timeout"
    assert result.timeout_seconds == 1.0
    assert result.error == "ScanTimeout: overran timed out after 1s (the run's deadline_seconds)"


def test_no_scanner_starts_after_the_runs_deadline(clock: FakeClock):
    ran: list[str] = []

    def first(state: Mapping[str, Any]) -> Found:
        clock.advance(2.0)  # the run's 1 s deadline passes while it runs
        return []

    def second(state: Mapping[str, Any]) -> Found:
        ran.append("second")
        return [{"ticker": "TOO_LATE"}]

    request = contextvars.ContextVar("request", default="none")
    seen: list[tuple[str, str | None, str]] = []

    def hook(event: Event) -> None:
        seen.append((event.name, getattr(event, "scanner", None), request.get()))

    set_hooks([hook])
    request.set("req-42")
    report = rs.ScanExecutor(
        timeout_seconds=30.0, deadline_seconds=1.0, max_workers=1, clock=clock
    ).run([first, second])

    assert ran == []
    assert report.result("second").status == "cancelled"
    assert report.candidates == []
    # Reported in the caller's context, as every other scanner is, and before the run ends.
    finished = [(name, scanner, req) for name, scanner, req in seen if name.endswith("finished")]
    assert finished[-1] == ("scan.finished", None, "req-42")
    assert ("scanner.finished", "second", "req-42") in finished


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="needs the GIL")
def test_a_scanner_holding_the_gil_past_its_limit_is_a_timeout_however_scheduled():
    # As C code that holds the GIL (a catastrophic regex, a huge power): the executor's timer
    # cannot run until the scanner lets go, and then the scanner has already returned.
    # A switch interval of 10 s makes a busy loop hold the GIL the same way, every time.
    def busy(state: Mapping[str, Any]) -> Found:
        end = time.perf_counter() + 0.2
        while time.perf_counter() < end:
            pass
        return [{"ticker": "LATE"}]

    interval = sys.getswitchinterval()
    sys.setswitchinterval(10.0)
    try:
        report = rs.ScanExecutor(timeout_seconds=0.05).run([busy])
    finally:
        sys.setswitchinterval(interval)

    assert report.result("busy").status == "timeout"
    assert report.candidates == []


# -- 7.14: threads run out -----------------------------------------------------------------------


def test_a_full_pool_makes_scanners_errors_not_a_raise(release: threading.Event):
    pool = rs.DaemonPool(max_threads=2)
    executor = rs.ScanExecutor(max_workers=4, timeout_seconds=0.05, pool=pool)
    scanners = [hanging(f"stuck{i}", release) for i in range(2)]
    first = executor.run(scanners)  # both threads are now stuck in abandoned scanners
    assert first.counts["timeout"] == 2

    second = executor.run([returning("later", {"ticker": "A"})])

    result = second.result("later")
    assert result.status == "error"
    assert result.error_type == "ThreadLimitError"
    assert result.error is not None
    assert "max_threads=2" in result.error
    assert "stuck" in result.error  # names the hung functions


def test_the_default_pool_at_its_bound_gives_errors_too(release: threading.Event):
    _config.RUNTIME.pool = rs.DaemonPool(max_threads=1)
    try:
        executor = rs.ScanExecutor(timeout_seconds=0.05)
        executor.run([hanging("stuck", release)])
        report = executor.run([returning("a", {"ticker": "A"}), returning("b", {"ticker": "B"})])
    finally:
        _config.RUNTIME.pool = None
    assert [r.status.value for r in report.results] == ["error", "error"]


def test_a_scanner_running_the_executor_without_end_hits_the_bound():
    pool = rs.DaemonPool(max_threads=16)
    executor = rs.ScanExecutor(timeout_seconds=5.0, pool=pool)
    inner_errors: list[str | None] = []

    def recurse(state: Mapping[str, Any]) -> Found:
        inner = executor.run([recurse], state).results[0]
        inner_errors.append(inner.error_type)
        return [{"ticker": "DEEP"}]

    report = executor.run([recurse])

    assert report.result("recurse").status == "ok"
    # The deepest run found no thread: its scanner is an error, and every level returned.
    assert inner_errors[0] == "ThreadLimitError"
    assert set(inner_errors[1:]) == {None}
    assert len(inner_errors) == 16  # one level per thread of the pool, then the bound
    assert pool.threads <= 16
