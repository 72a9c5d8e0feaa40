"""One scanner on its own (the seam a distributed backend builds on, issue 13.4)."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Mapping
from typing import Any

import resilient_scan as rs
from resilient_scan._job import JobOptions, Reporting, run_scanner
from tests.executor.support import Found


def quotes(state: Mapping[str, Any]) -> Found:
    """A module-level scanner: it pickles by reference, as a backend would send it."""
    state["tool_logs"].append({"tool": "quote"})
    return [{"ticker": "aapl"}, {"ticker": ""}]


def test_a_planned_scanner_and_its_options_pickle():
    executor = rs.ScanExecutor(timeout_seconds=5.0)
    (planned,) = executor.plan([quotes])
    options = JobOptions(
        normalize=rs.normalize_candidate,
        tool_logs=rs.discovery.TOOL_LOGS,
        config=None,
        construct=None,
        run_id="r1",
        clock=executor.clock,
        run_started=executor.clock.monotonic(),
    )

    planned2, options2 = pickle.loads(pickle.dumps((planned, options)))  # noqa: S301 - ours

    result = run_scanner(planned2, {"tool_logs": []}, options2)
    assert result.status == "ok"
    assert [c["ticker"] for c in result.candidates] == ["AAPL"]
    assert result.dropped == 1
    assert result.tool_logs == [{"tool": "quote"}]


def test_run_scanner_times_out_and_abandons_the_thread(release: threading.Event):
    def hangs(state: Mapping[str, Any]) -> Found:
        release.wait()
        return []

    executor = rs.ScanExecutor(timeout_seconds=0.05)
    (planned,) = executor.plan([hangs])
    options = JobOptions(
        rs.normalize_candidate,
        None,
        None,
        None,
        "r2",
        executor.clock,
        executor.clock.monotonic(),
        Reporting.now(),
    )

    result = run_scanner(planned, {}, options)

    assert result.status == "timeout"
    assert result.abandoned


def test_run_scanner_reports_errors_as_results():
    def broken(state: Mapping[str, Any]) -> Found:
        raise KeyError("MSFT")

    executor = rs.ScanExecutor()
    (planned,) = executor.plan([broken])
    options = JobOptions(rs.normalize_candidate, None, None, None, "r3", executor.clock, 0.0)

    result = run_scanner(planned, {}, options)

    assert (result.status, result.error) == ("error", "KeyError: 'MSFT'")
