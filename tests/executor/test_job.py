"""What a backend sends to run scanners elsewhere pickles (issue 13.4)."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from typing import Any

import resilient_scan as rs
from resilient_scan._job import JobOptions
from tests.executor.support import Found


def quotes(state: Mapping[str, Any]) -> Found:
    """A module-level scanner: it pickles by reference, as a backend would send it."""
    state["tool_logs"].append({"tool": "quote"})
    return [{"ticker": "aapl"}, {"ticker": ""}]


def test_a_planned_scanner_and_its_options_pickle():
    executor = rs.ScanExecutor(timeout_seconds=5.0)
    (planned,) = executor._plan([quotes])
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

    # What a backend sends to another process arrives whole: a scanner that runs there
    # is the same scanner, with the same limit and run.
    assert planned2.target is quotes
    assert (planned2.name, planned2.timeout, planned2.index) == ("quotes", 5.0, 0)
    assert (options2.run_id, options2.normalize) == ("r1", rs.normalize_candidate)
    assert options2.tool_logs == rs.discovery.TOOL_LOGS
