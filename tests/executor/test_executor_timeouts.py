"""Executor timeouts: per scanner from its start, the run deadline, hung and abandoned scanners."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import resilient_scan as rs
from tests.helpers import wait_until

Found = list[dict[str, Any]]

# Shared 2-core machines are noisy: a run only has to return within its limit plus this.
MARGIN = 1.5
SCRIPTS = Path(__file__).parent / "scripts"


class Counter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def bump(self) -> None:
        with self._lock:
            self.value += 1


def hanging(name: str, release: threading.Event, started: Counter | None = None) -> Any:
    """A scanner that waits "forever" (until the test's teardown sets *release*)."""

    @rs.scanner(name=name)
    def scan(state: Mapping[str, Any]) -> Found:
        if started is not None:
            started.bump()
        release.wait()
        return [{"ticker": "LATE"}]

    return scan


def sleeping(name: str, seconds: float, ran: Counter | None = None) -> Any:
    @rs.scanner(name=name)
    def scan(state: Mapping[str, Any]) -> Found:
        if ran is not None:
            ran.bump()
        time.sleep(seconds)
        return [{"ticker": name}]

    return scan


@pytest.mark.parametrize("concurrent", [True, False])
def test_a_scanner_waiting_forever_is_marked_timeout_and_run_returns(
    release: threading.Event, concurrent: bool
):
    scanners = [hanging("forever", release), sleeping("fine", 0.0)]
    limit = 0.3

    started = time.monotonic()
    report = rs.ScanExecutor(concurrent=concurrent, timeout_seconds=limit).run(scanners, {})
    elapsed = time.monotonic() - started

    assert elapsed < limit + MARGIN
    forever = report.result("forever")
    assert forever.status == "timeout"
    assert forever.error is not None
    assert "ScanTimeout" in forever.error
    assert forever.candidates == []
    assert forever.abandoned
    assert forever.duration >= limit - 0.05
    assert report.result("fine").status == "ok"
    assert report.abandoned == 1


@pytest.mark.parametrize("concurrent", [True, False])
def test_the_timeout_counts_from_each_scanners_start_not_from_the_queue(concurrent: bool):
    # One worker, four scanners of 0.25 s under a 0.6 s timeout: the last ones wait in the
    # queue for up to 0.75 s, which must not count against them.
    scanners = [sleeping(f"q{i}", 0.25) for i in range(4)]

    report = rs.ScanExecutor(concurrent=concurrent, max_workers=1, timeout_seconds=0.6).run(
        scanners, {}
    )

    assert [r.status for r in report.results] == ["ok"] * 4
    assert report.duration >= 4 * 0.25
    assert all(r.duration < 0.6 for r in report.results)


def test_a_fresh_worker_replaces_a_hung_one(release: threading.Event):
    scanners = [hanging("stuck", release), sleeping("next", 0.0), sleeping("after", 0.0)]

    started = time.monotonic()
    report = rs.ScanExecutor(max_workers=1, timeout_seconds=0.3).run(scanners, {})

    assert time.monotonic() - started < 0.3 + MARGIN
    assert [r.status for r in report.results] == ["timeout", "ok", "ok"]
    assert report.result("next").candidates[0]["ticker"] == "NEXT"


def test_several_hung_scanners_all_return_within_one_timeout_given_workers(
    release: threading.Event,
):
    scanners = [hanging(f"h{i}", release) for i in range(4)] + [sleeping("ok", 0.0)]

    started = time.monotonic()
    report = rs.ScanExecutor(max_workers=5, timeout_seconds=0.3).run(scanners, {})

    assert time.monotonic() - started < 0.3 + MARGIN
    assert report.counts["timeout"] == 4
    assert report.counts["ok"] == 1


def test_per_scanner_timeout_override_applies_only_to_that_scanner(release: threading.Event):
    executor = rs.ScanExecutor(timeout_seconds=0.3, scanners={"patient": {"timeout_seconds": 5.0}})
    scanners = [sleeping("patient", 0.6), hanging("impatient", release)]

    report = executor.run(scanners, {})

    assert report.result("patient").status == "ok"
    assert report.result("impatient").status == "timeout"


def test_report_abandoned_counts_hung_scanners_until_they_return(release: threading.Event):
    scanners = [hanging("a1", release), hanging("a2", release), sleeping("fine", 0.0)]

    report = rs.ScanExecutor(timeout_seconds=0.3).run(scanners, {})

    assert report.abandoned == 2
    assert [r.abandoned for r in report.results] == [True, True, False]
    during = rs.abandoned_threads()
    assert during >= 2
    release.set()
    assert wait_until(lambda: rs.abandoned_threads() <= during - 2)


def test_a_late_result_of_an_abandoned_scanner_is_not_reported(release: threading.Event):
    report = rs.ScanExecutor(timeout_seconds=0.2).run([hanging("late", release)], {})
    release.set()

    assert report.result("late").status == "timeout"
    assert report.candidates == []


# -- the run's deadline ----------------------------------------------------------------------


def test_deadline_times_out_running_scanners_and_cancels_the_rest(release: threading.Event):
    started_count = Counter()
    ran = Counter()
    scanners = [
        hanging("running", release, started_count),
        sleeping("queued1", 0.0, ran),
        sleeping("queued2", 0.0, ran),
    ]
    executor = rs.ScanExecutor(max_workers=1, timeout_seconds=30.0, deadline_seconds=0.4)

    started = time.monotonic()
    report = executor.run(scanners, {})
    elapsed = time.monotonic() - started

    assert elapsed < 0.4 + MARGIN
    assert [r.status for r in report.results] == ["timeout", "cancelled", "cancelled"]
    assert started_count.value == 1
    assert ran.value == 0, "a cancelled scanner's body ran"
    for cancelled in report.results[1:]:
        assert cancelled.duration == 0.0
        assert cancelled.candidates == []
        assert cancelled.attempts == 0
    assert report.counts["cancelled"] == 2
    assert report.abandoned == 1
    # Cancelled bodies stay unrun after the run, too.
    time.sleep(0.1)
    assert ran.value == 0


def test_deadline_in_sequential_mode(release: threading.Event):
    ran = Counter()
    scanners = [
        sleeping("first", 0.0, ran),
        hanging("second", release),
        sleeping("third", 0.0, ran),
    ]
    executor = rs.ScanExecutor(concurrent=False, timeout_seconds=30.0, deadline_seconds=0.3)

    report = executor.run(scanners, {})

    assert [r.status for r in report.results] == ["ok", "timeout", "cancelled"]
    assert ran.value == 1


def test_a_deadline_that_is_not_reached_changes_nothing():
    scanners = [sleeping(f"s{i}", 0.05) for i in range(3)]

    report = rs.ScanExecutor(max_workers=1, deadline_seconds=10.0).run(scanners, {})

    assert [r.status for r in report.results] == ["ok"] * 3


def test_the_earlier_of_deadline_and_timeout_wins(release: threading.Event):
    executor = rs.ScanExecutor(timeout_seconds=0.2, deadline_seconds=10.0)

    started = time.monotonic()
    report = executor.run([hanging("h", release)], {})

    assert time.monotonic() - started < 0.2 + MARGIN
    assert report.result("h").status == "timeout"


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


def test_a_timeout_at_the_runs_deadline_says_so(release: threading.Event):
    # Whether the scanner's own limit or the run's deadline stopped it decides which setting
    # to raise: the error names the one that fired, with its configured value.
    executor = rs.ScanExecutor(timeout_seconds=30.0, deadline_seconds=0.3)

    report = executor.run([hanging("cut_off", release)], {})

    error = report.result("cut_off").error
    assert error is not None
    assert "deadline" in error
    assert "0.3s" in error
    assert "30s" not in error


def test_a_timeout_at_the_scanners_limit_says_so(release: threading.Event):
    executor = rs.ScanExecutor(timeout_seconds=0.3, deadline_seconds=30.0)

    report = executor.run([hanging("too_slow", release)], {})

    error = report.result("too_slow").error
    assert error is not None
    assert "0.3s" in error
    assert "deadline" not in error


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
