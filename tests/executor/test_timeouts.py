"""Executor timeouts: per scanner from its start, the run deadline, hung and abandoned scanners.

Most tests run the executor on a fake clock: scanners "take" time by moving it, so limits
are exact and the tests take milliseconds, however loaded the machine is. A few keep real
time, where real threads and waits are the point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import resilient_scan as rs
from resilient_scan.testing import FakeClock
from tests.executor.support import MARGIN, hanging, sleeping, stalling, taking
from tests.helpers import Calls, settle, wait_until

SCRIPTS = Path(__file__).parent / "scripts"


@pytest.mark.parametrize("concurrent", [True, False])
def test_a_scanner_waiting_forever_is_marked_timeout_and_the_run_goes_on(
    release: threading.Event, clock: FakeClock, concurrent: bool
):
    executor = rs.ScanExecutor(concurrent=concurrent, timeout_seconds=30.0, clock=clock)
    fine_done = threading.Event()
    scanners = [
        stalling("forever", clock, 31.0, release, after=fine_done if concurrent else None),
        taking("fine", clock, 1.0, done=fine_done),
    ]

    report = executor.run(scanners)

    forever = report.result("forever")
    assert forever.status == "timeout"
    assert forever.error == "ScanTimeout: forever timed out after 30s (its timeout_seconds)"
    assert forever.error_type == "ScanTimeout"
    assert forever.timeout_seconds == 30.0
    assert forever.candidates == []
    assert forever.abandoned
    assert forever.duration >= 30.0
    assert report.result("fine").status == "ok"
    assert report.abandoned == 1


def test_a_hung_scanner_on_real_time_returns_at_its_limit(release: threading.Event):
    started = time.monotonic()
    report = rs.ScanExecutor(timeout_seconds=0.05).run([hanging("forever", release)])

    assert time.monotonic() - started < 0.05 + MARGIN
    assert report.result("forever").status == "timeout"
    assert report.result("forever").duration >= 0.05


@pytest.mark.parametrize("concurrent", [True, False])
def test_the_timeout_counts_from_each_scanners_start_not_from_the_queue(
    clock: FakeClock, concurrent: bool
):
    # One worker, four scanners of 25 s under a 30 s limit: the last ones wait in the queue
    # for 75 s, which must not count against them.
    scanners = [taking(f"q{i}", clock, 25.0) for i in range(4)]
    executor = rs.ScanExecutor(
        concurrent=concurrent, max_workers=1, timeout_seconds=30.0, clock=clock
    )

    report = executor.run(scanners)

    assert [r.status for r in report.results] == ["ok"] * 4
    assert [r.started_at for r in report.results] == [0.0, 25.0, 50.0, 75.0]
    assert [r.duration for r in report.results] == [25.0] * 4
    assert report.duration == 100.0


def test_a_fresh_worker_replaces_a_hung_one(release: threading.Event, clock: FakeClock):
    scanners = [
        stalling("stuck", clock, 31.0, release),
        taking("next", clock, 1.0),
        taking("after", clock, 1.0),
    ]

    report = rs.ScanExecutor(max_workers=1, timeout_seconds=30.0, clock=clock).run(scanners)

    assert [r.status for r in report.results] == ["timeout", "ok", "ok"]
    assert report.result("next").candidates[0]["ticker"] == "NEXT"


def test_several_hung_scanners_time_out_together_given_workers(release: threading.Event):
    scanners = [hanging(f"h{i}", release) for i in range(4)] + [sleeping("ok", 0.0)]

    started = time.monotonic()
    report = rs.ScanExecutor(max_workers=5, timeout_seconds=0.05).run(scanners)

    assert time.monotonic() - started < 0.05 + MARGIN
    assert report.counts["timeout"] == 4
    assert report.counts["ok"] == 1


def test_a_per_scanner_timeout_applies_only_to_that_scanner(
    release: threading.Event, clock: FakeClock
):
    executor = rs.ScanExecutor(
        timeout_seconds=3.0, scanners={"patient": {"timeout_seconds": 50.0}}, clock=clock
    )
    patient_done = threading.Event()
    scanners = [
        taking("patient", clock, 6.0, done=patient_done),
        stalling("impatient", clock, 4.0, release, after=patient_done),
    ]

    report = executor.run(scanners)

    assert report.result("patient").status == "ok"
    assert report.result("impatient").status == "timeout"


def test_report_abandoned_counts_hung_scanners_until_they_return(
    release: threading.Event, clock: FakeClock
):
    fine_done = threading.Event()
    scanners = [
        stalling("a1", clock, 31.0, release, after=fine_done),
        stalling("a2", clock, 31.0, release, after=fine_done),
        taking("fine", clock, 0.0, done=fine_done),
    ]

    report = rs.ScanExecutor(timeout_seconds=30.0, clock=clock).run(scanners)

    assert report.abandoned == 2
    assert [r.abandoned for r in report.results] == [True, True, False]
    during = rs.abandoned_threads()
    assert during >= 2
    release.set()
    assert settle()
    assert rs.abandoned_threads() == during - 2


def test_a_late_result_of_an_abandoned_scanner_is_not_reported(
    release: threading.Event, clock: FakeClock
):
    report = rs.ScanExecutor(timeout_seconds=30.0, clock=clock).run(
        [stalling("late", clock, 31.0, release)]
    )
    release.set()

    assert report.result("late").status == "timeout"
    assert report.candidates == []


# -- the run's deadline ----------------------------------------------------------------------


def test_deadline_times_out_running_scanners_and_cancels_the_rest(
    release: threading.Event, clock: FakeClock
):
    ran = Calls()
    scanners = [
        stalling("running", clock, 41.0, release),
        taking("queued1", clock, 0.0, ran),
        taking("queued2", clock, 0.0, ran),
    ]
    executor = rs.ScanExecutor(
        max_workers=1, timeout_seconds=300.0, deadline_seconds=40.0, clock=clock
    )

    report = executor.run(scanners)

    assert [r.status for r in report.results] == ["timeout", "cancelled", "cancelled"]
    assert ran.count == 0, "a cancelled scanner's body ran"
    for cancelled in report.results[1:]:
        assert cancelled.duration == 0.0
        assert cancelled.candidates == []
        assert cancelled.attempts == 0
        assert cancelled.reason == "the run's deadline passed before it started"
    assert report.counts["cancelled"] == 2
    assert report.abandoned == 1
    release.set()  # cancelled bodies stay unrun after the run, too
    assert settle()
    assert ran.count == 0


def test_deadline_in_sequential_mode(release: threading.Event, clock: FakeClock):
    ran = Calls()
    scanners = [
        taking("first", clock, 1.0, ran),
        stalling("second", clock, 40.0, release),
        taking("third", clock, 0.0, ran),
    ]
    executor = rs.ScanExecutor(
        concurrent=False, timeout_seconds=300.0, deadline_seconds=30.0, clock=clock
    )

    report = executor.run(scanners)

    assert [r.status for r in report.results] == ["ok", "timeout", "cancelled"]
    assert ran.items == ["first"]


def test_a_deadline_on_real_time(release: threading.Event):
    executor = rs.ScanExecutor(max_workers=1, timeout_seconds=30.0, deadline_seconds=0.05)

    started = time.monotonic()
    report = executor.run([hanging("running", release), sleeping("queued", 0.0)])

    assert time.monotonic() - started < 0.05 + MARGIN
    assert [r.status for r in report.results] == ["timeout", "cancelled"]


def test_a_deadline_that_is_not_reached_changes_nothing(clock: FakeClock):
    scanners = [taking(f"s{i}", clock, 2.0) for i in range(3)]

    report = rs.ScanExecutor(max_workers=1, deadline_seconds=10.0, clock=clock).run(scanners)

    assert [r.status for r in report.results] == ["ok"] * 3


def test_the_earlier_of_deadline_and_timeout_wins(release: threading.Event, clock: FakeClock):
    executor = rs.ScanExecutor(timeout_seconds=2.0, deadline_seconds=10.0, clock=clock)

    report = executor.run([stalling("h", clock, 3.0, release)])

    assert report.result("h").status == "timeout"
    assert report.result("h").timeout_seconds == 2.0


def test_a_timeout_at_the_runs_deadline_says_so(release: threading.Event, clock: FakeClock):
    # Whether the scanner's own limit or the run's deadline stopped it decides which setting
    # to raise: the error names the one that fired, with its configured value.
    executor = rs.ScanExecutor(timeout_seconds=30.0, deadline_seconds=0.3, clock=clock)

    report = executor.run([stalling("cut_off", clock, 1.0, release)])

    result = report.result("cut_off")
    assert result.error == "ScanTimeout: cut_off timed out after 0.3s (the run's deadline_seconds)"
    assert result.timeout_seconds == 0.3


def test_a_timeout_at_the_scanners_limit_says_so(release: threading.Event, clock: FakeClock):
    executor = rs.ScanExecutor(timeout_seconds=0.3, deadline_seconds=30.0, clock=clock)

    report = executor.run([stalling("too_slow", clock, 1.0, release)])

    assert report.result("too_slow").error == (
        "ScanTimeout: too_slow timed out after 0.3s (its timeout_seconds)"
    )


def test_a_run_inside_a_scanner_ends_by_that_scanners_deadline(release: threading.Event):
    inner_reports: list[rs.ScanReport] = []

    def outer(state: object) -> list[dict[str, str]]:
        inner_reports.append(rs.ScanExecutor(timeout_seconds=30.0).run([hanging("inner", release)]))
        return []

    rs.ScanExecutor(timeout_seconds=0.05).run([outer])

    assert wait_until(lambda: bool(inner_reports))
    inner = inner_reports[0].result("inner")
    assert inner.status == "timeout"
    assert inner.error is not None
    assert "an enclosing deadline" in inner.error


def test_scan_timeout_raised_by_the_scanner_itself_is_its_timeout(release: threading.Event):
    @rs.timeout(0.02)
    def fetch() -> str:
        release.wait()
        return "late"

    def uses_a_timeout(state: object) -> list[dict[str, str]]:
        fetch()
        return []

    result = rs.ScanExecutor(timeout_seconds=30.0).run([uses_a_timeout]).result("uses_a_timeout")

    assert result.status == "timeout"
    assert result.timeout_seconds == 0.02
    assert not result.abandoned  # the scanner returned; its inner call is abandoned


def test_an_injected_pool_runs_the_scanners():
    pool = rs.DaemonPool(max_threads=4)

    report = rs.ScanExecutor(max_workers=3, pool=pool).run(
        [sleeping(f"s{i}", 0.0) for i in range(6)]
    )

    assert report.counts["ok"] == 6
    assert 1 <= pool.threads <= 3


def test_a_pool_that_is_not_a_pool_is_a_config_error():
    with pytest.raises(rs.ConfigError) as caught:
        rs.ScanExecutor(pool=object())  # type: ignore[arg-type]
    assert caught.value.path == ("pool",)


# -- the interpreter's exit ------------------------------------------------------------------


def test_the_interpreter_exits_promptly_with_hung_scanners():
    script = SCRIPTS / "hung_scanner_exit.py"
    root = Path(__file__).resolve().parents[2]
    # The child imports this checkout's package, as the tests do.
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)

    started = time.monotonic()
    done = subprocess.run(  # noqa: S603 - our own script, run by this interpreter
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=root,
        env={**os.environ, "PYTHONPATH": path},
    )
    wall = time.monotonic() - started

    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["statuses"] == ["timeout", "timeout", "ok"]
    assert outcome["abandoned"] == 1
    assert outcome["returned_after"] < 0.5 + MARGIN
    # The hung scanners sleep 60 s; the process (interpreter start and imports included)
    # must be gone long before that.
    assert wall < 15.0, f"the process took {wall:.1f}s to exit"


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX only")
def test_a_forked_child_runs_scanners_and_timeouts_with_threads_of_its_own():
    # A prefork server (gunicorn, celery) forks after the parent used the library: the
    # child must not hand work to the parent's worker threads, which it does not have.
    result = subprocess.run(  # noqa: S603 - this repository's own script
        [sys.executable, str(SCRIPTS / "fork_child.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "ok ok 0"
