"""Costs that must not grow where they once did (issue 8.10); the figures are in benchmarks/."""

from __future__ import annotations

import threading
import time
import tracemalloc
from collections.abc import Mapping
from typing import Any

import resilient_scan as rs
from resilient_scan.testing import FakeClock
from tests.executor.support import Found


class Named:
    def __init__(self, name: str, candidates: list[dict[str, Any]]) -> None:
        self.name = name
        self.candidates = candidates


def test_merging_many_scanners_on_the_same_tickers_is_linear():
    # 5,000 scanners x 20 candidates on the same 20 tickers took 19 s when merging was
    # quadratic in repeated tickers; linear, it is a fraction of a second.
    results = [
        Named(
            f"s{i}", [{"ticker": f"T{t}", "priority": "low", "context": f"c{i}"} for t in range(20)]
        )
        for i in range(5000)
    ]

    started = time.perf_counter()
    merged = rs.merge_candidates(results)
    elapsed = time.perf_counter() - started

    assert len(merged) == 20
    assert len(merged[0]["all_sources"]) == 5000
    assert len(merged[0]["all_contexts"]) == 5000
    assert elapsed < 3.0


def test_existing_tool_log_entries_cost_no_memory_per_scanner():
    # 10,000 entries already in the state were once wrapped for every scanner: +356 MiB for
    # a run. A scanner now pays for what it appends.
    state = {"tool_logs": [{"tool": "earlier", "n": i, "payload": "x" * 50} for i in range(10_000)]}

    def appends(state: dict[str, Any]) -> Found:
        state["tool_logs"].append({"tool": "quote"})
        return []

    scanners = [rs.scanner(name=f"s{i}")(appends) for i in range(100)]
    executor = rs.ScanExecutor(max_workers=4)
    executor.run(scanners[:4], state)  # warm up threads and caches

    tracemalloc.start()
    try:
        report = executor.run(scanners, state)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert len(report.tool_logs) == 100
    assert len(state["tool_logs"]) == 10_000
    assert peak < 8 * 1024 * 1024  # 100 scanners; a copy of the entries each would be ~300 MB


def test_the_librarys_work_on_candidates_is_not_charged_to_the_scanner(clock: FakeClock):
    def slow_to_normalize(candidate: object, scanner: str) -> dict[str, Any] | None:
        clock.advance(10.0)  # our own work takes "long": the scanner's limit must not see it
        return rs.normalize_candidate(candidate, scanner)

    def many(state: Mapping[str, Any]) -> Found:
        return [{"ticker": f"T{i}"} for i in range(5)]

    executor = rs.ScanExecutor(timeout_seconds=1.0, clock=clock, normalize=slow_to_normalize)
    result = executor.run([many]).result("many")

    assert result.status == "ok"
    assert len(result.candidates) == 5
    assert result.duration < 1.0  # the scanner's own time


def test_many_candidates_returned_at_once_are_not_lost_to_the_timeout():
    # Checking and normalizing 100,000 candidates takes far longer than the scanner's limit;
    # the scanner itself returned them at once.
    found = [{"ticker": "t", "n": i} for i in range(100_000)]
    returned = threading.Event()

    def huge(state: Mapping[str, Any]) -> Found:
        returned.set()
        return found

    result = rs.ScanExecutor(timeout_seconds=0.05).run([huge]).result("huge")

    assert returned.is_set()
    assert result.status == "ok"
    assert len(result.candidates) == 100_000
