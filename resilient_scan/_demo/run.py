"""``resilient-scan demo``: every layer of resilient_scan at work against a simulated API.

The flow: start the API simulator; run eight scanners concurrently with a cold cache (live
lines as they finish, then a table); run them again (the cache answers, the open breaker
refuses at once); run the healthy ones concurrently and sequentially with fresh caches;
stop the simulator. Then each layer's effect is checked against what actually happened:
the events the layers logged and the requests the simulator counted. The exit status is 0
only when every effect was observed.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

import resilient_scan as rs

from .output import EventRecorder, candidate_lines, logging_for, result_table, short_error
from .scanners import HEALTHY, DemoScanners, build_scanners
from .settings import DemoSettings
from .._simulator import AS_OF, ApiSimulator

#: How long to wait, after the simulator stops, for abandoned threads to return.
_THREADS_END_WITHIN = 5.0
#: The event an abandoned call logs when it finally returns.
_RETURNED = "timeout.abandoned_call_finished"


@dataclass(frozen=True)
class Check:
    """One layer effect the demo looked for, and what it found."""

    layer: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """Return the check as JSON-ready data."""
        return {"layer": self.layer, "ok": self.ok, "detail": self.detail}


@dataclass
class _Observed:
    """Everything the checks read: reports, request counts, events, thread counts."""

    settings: DemoSettings
    scanners: DemoScanners
    run1: rs.ScanReport
    run2: rs.ScanReport
    concurrent: rs.ScanReport
    sequential: rs.ScanReport
    after_run1: dict[str, int]
    after_run2: dict[str, int]
    final_counts: dict[str, int]
    request_times: dict[str, list[float]]
    run1_events: list[dict[str, Any]]
    breaker_after_run1: str
    abandoned: int
    threads_ended: bool

    def path(self, scanner: str) -> str:
        return self.scanners.specs[scanner].path

    def requests_in_run2(self, scanner: str) -> int:
        path = self.path(scanner)
        return self.after_run2[path] - self.after_run1[path]


class _Printer:
    """Human text for the terminal; silent in JSON mode, where only JSON lines are written."""

    def __init__(self, out: TextIO, *, enabled: bool) -> None:
        self.out = out
        self.enabled = enabled

    def __call__(self, *lines: str) -> None:
        if self.enabled:
            for line in lines:
                print(line, file=self.out)
            self.out.flush()

    def section(self, title: str) -> None:
        self("", f"── {title} " + "─" * max(3, 72 - len(title)))


def run_demo(
    settings: DemoSettings | None = None, *, json_output: bool = False, out: TextIO | None = None
) -> int:
    """Run the demo; return 0 when every layer's effect was observed, else 1.

    Writes terminal text to *out* (default: `sys.stdout`), or JSON log lines and a final
    JSON summary line with *json_output*. Logging is configured with
    `rs.configure_logging` for the demo's duration and restored afterwards.
    """
    settings = settings or DemoSettings()
    stream = out if out is not None else sys.stdout
    recorder = EventRecorder()
    with logging_for("json" if json_output else "console", stream, recorder):
        return _Demo(settings, stream, recorder, json_output=json_output).run()


class _Demo:
    def __init__(
        self, settings: DemoSettings, out: TextIO, recorder: EventRecorder, *, json_output: bool
    ) -> None:
        self.settings = settings
        self.out = out
        self.recorder = recorder
        self.json_output = json_output
        self.say = _Printer(out, enabled=not json_output)

    def run(self) -> int:
        started = time.monotonic()
        observed, url = self.exercise()
        checks = evaluate(observed)
        duration = time.monotonic() - started
        failed = [check.layer for check in checks if not check.ok]
        if self.json_output:
            summary = _summary(observed, checks, url, duration)
            print(json.dumps(summary, default=str), file=self.out)
            self.out.flush()
        else:
            self.report_checks(observed, checks, duration)
        return 1 if failed else 0

    def exercise(self) -> tuple[_Observed, str]:
        settings, say = self.settings, self.say
        start = self.recorder.mark()
        state: dict[str, Any] = {"as_of": AS_OF, "tool_logs": []}
        simulator = ApiSimulator(
            latency_scale=settings.latency_scale,
            rate_limited_requests=settings.rate_limited_requests,
            retry_after=settings.retry_after,
            flaky_failures=settings.flaky_failures,
        )
        with simulator:
            url = simulator.url
            say(
                "resilient_scan demo",
                f"API simulator on {url}: {len(simulator.endpoints)} endpoints, one rate-limited"
                " (429), one flaky (500), one that hangs, one down for good (503).",
                "8 scanners call it over HTTP, each service through"
                " resilient(cache -> retry -> breaker -> attempt timeout).",
            )
            demo = build_scanners(url, settings)
            executor = rs.ScanExecutor.from_config(settings.config())

            say.section("Run 1: concurrent, cold cache")
            mark = self.recorder.mark()
            run1 = executor.run(demo.scanners, state)
            run1_events = self.recorder.since(mark)
            after_run1 = simulator.counts()
            breaker = demo.client_of("broken_scanner").breaker
            breaker_after_run1 = breaker.state if breaker is not None else "no breaker"
            say("", *result_table(run1), "", "Best candidates, merged across scanners:")
            say(*candidate_lines(run1))

            say.section("Run 2: the same scanners again (warm cache, open breaker)")
            run2 = executor.run(demo.scanners, state)
            after_run2 = simulator.counts()
            say("", *result_table(run2))

            say.section(f"Speed: the {len(HEALTHY)} healthy scanners, fresh caches")
            concurrent = self.compare(url, state, concurrent=True)
            sequential = self.compare(url, state, concurrent=False)
            say(
                "",
                f"  concurrent {concurrent.duration:.2f}s · sequential {sequential.duration:.2f}s",
            )
            # Counted from this demo's own reports: `rs.abandoned_threads()` is process-wide.
            abandoned = sum(r.abandoned for r in (run1, run2, concurrent, sequential))
            final_counts = simulator.counts()
            say("", "Stopping the simulator: its hanging requests get an answer now.")
            request_times = {
                spec.path: simulator.request_times(spec.path) for spec in demo.specs.values()
            }
        # The simulator has stopped: its hanging requests were answered, so the threads the
        # executor abandoned on them return now, each logging that it did.
        threads_ended = _wait_for(
            lambda: len(self.recorder.since(start, _RETURNED)) >= abandoned, _THREADS_END_WITHIN
        )
        observed = _Observed(
            settings=settings,
            scanners=demo,
            run1=run1,
            run2=run2,
            concurrent=concurrent,
            sequential=sequential,
            after_run1=after_run1,
            after_run2=after_run2,
            final_counts=final_counts,
            request_times=request_times,
            run1_events=run1_events,
            breaker_after_run1=breaker_after_run1,
            abandoned=abandoned,
            threads_ended=threads_ended,
        )
        return observed, url

    def compare(self, url: str, state: Mapping[str, Any], *, concurrent: bool) -> rs.ScanReport:
        """Run the healthy scanners with new clients (cold caches, closed breakers)."""
        settings = self.settings
        executor = rs.ScanExecutor(
            concurrent=concurrent,
            max_workers=settings.max_workers,
            timeout_seconds=settings.timeout_seconds,
        )
        return executor.run(build_scanners(url, settings).only(HEALTHY), state)

    def report_checks(self, observed: _Observed, checks: list[Check], duration: float) -> None:
        say = self.say
        say.section("What each layer did")
        width = max(len(check.layer) for check in checks)
        for check in checks:
            mark = "✓" if check.ok else "✗ NOT OBSERVED:"
            say(f"  {mark} {check.layer.ljust(width)}  {check.detail}")
        failed = [check.layer for check in checks if not check.ok]
        say("")
        if failed:
            say(f"Demo FAILED in {duration:.1f}s: not observed: {', '.join(failed)}.")
        else:
            say(
                f"Done in {duration:.1f}s: all {len(checks)} layer effects observed;"
                f" simulator stopped, {observed.abandoned} abandoned"
                f" thread{'s' if observed.abandoned != 1 else ''} returned."
            )


def _wait_for(predicate: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() >= deadline:
            return predicate()
        time.sleep(0.01)
    return True


# -- the checks ----------------------------------------------------------------------------


def evaluate(observed: _Observed) -> list[Check]:
    """Check each layer's effect against what happened; one `Check` per effect."""
    return [
        _check_retry_after(observed),
        _check_retry_500(observed),
        _check_breaker(observed),
        _check_cache(observed),
        _check_timeout(observed),
        _check_concurrency(observed),
    ]


def _scheduled(observed: _Observed, scanner: str) -> list[dict[str, Any]]:
    return [
        event
        for event in observed.run1_events
        if event.get("event") == "retry.scheduled" and event.get("scanner") == scanner
    ]


def _check_retry_after(observed: _Observed) -> Check:
    name = "news_sentiment"
    result = observed.run1.result(name)
    times = observed.request_times[observed.path(name)]
    promised = float(observed.settings.retry_after)
    waits = [event for event in _scheduled(observed, name) if event.get("retry_after")]
    gap = times[1] - times[0] if len(times) > 1 else 0.0
    # The server saw the retry at least Retry-After after the 429 (a sleep never ends
    # early; 10 ms allow for clock granularity).
    ok = (
        result.status == "ok"
        and result.attempts >= 2  # noqa: PLR2004
        and bool(waits)
        and waits[0].get("wait", 0) >= promised
        and gap >= promised - 0.01
    )
    if not waits:
        return Check("retry: 429", ok, f"{name}: no retry after an HTTP 429 was logged")
    return Check(
        "retry: 429",
        ok,
        f"{name}: HTTP 429, Retry-After: {waits[0]['retry_after']:g} → waited"
        f" {waits[0]['wait']:.2f}s (the server saw the retry {gap:.2f}s later)"
        f" → {result.status} on attempt {result.attempts}",
    )


def _check_retry_500(observed: _Observed) -> Check:
    name = "social_trending"
    result = observed.run1.result(name)
    failures = observed.settings.flaky_failures
    causes = [str(event.get("error")) for event in _scheduled(observed, name)]
    server_errors = sum("HTTP 500" in cause for cause in causes)
    ok = result.status == "ok" and server_errors >= failures and result.attempts == failures + 1
    return Check(
        "retry: 500",
        ok,
        f"{name}: {server_errors} x HTTP 500 → {result.status} on attempt {result.attempts}"
        f" ({observed.after_run1[observed.path(name)]} requests)",
    )


def _check_breaker(observed: _Observed) -> Check:
    name = "broken_scanner"
    first, second = observed.run1.result(name), observed.run2.result(name)
    path = observed.path(name)
    service = observed.scanners.specs[name].service
    opened = any(
        event.get("event") == "breaker.state_changed"
        and event.get("breaker") == service
        and event.get("to_state") == "open"
        for event in observed.run1_events
    )
    new_requests = observed.requests_in_run2(name)
    ok = (
        first.status == "error"
        and opened
        and observed.breaker_after_run1 == "open"
        and second.status == "circuit_open"
        and new_requests == 0
    )
    return Check(
        "breaker",
        ok,
        f"{name}: {observed.after_run1[path]} x {short_error(first.error or 'no error')}"
        f" → breaker {service!r} {observed.breaker_after_run1};"
        f" run 2: {second.status} in {second.duration * 1000:.1f}ms, {new_requests} requests",
    )


def _check_cache(observed: _Observed) -> Check:
    run1, run2 = observed.run1, observed.run2
    served = [
        name
        for name in HEALTHY
        if run1.result(name).status == "ok"
        and run2.result(name).status == "ok"
        and run2.result(name).cache_hits >= 1
        and len(run2.result(name).candidates) == len(run1.result(name).candidates)
        and observed.requests_in_run2(name) == 0
    ]
    new_requests = sum(observed.requests_in_run2(name) for name in HEALTHY)
    slowest1 = max(run1.result(name).duration for name in HEALTHY)
    slowest2 = max(run2.result(name).duration for name in HEALTHY)
    ok = len(served) == len(HEALTHY) and new_requests == 0
    return Check(
        "cache",
        ok,
        f"run 2: {len(served)}/{len(HEALTHY)} healthy scanners answered from the cache with"
        f" {new_requests} new requests; slowest {slowest1:.2f}s → {slowest2 * 1000:.1f}ms",
    )


def _check_timeout(observed: _Observed) -> Check:
    name = "slow_scanner"
    result = observed.run1.result(name)
    limit = observed.settings.slow_timeout_seconds
    others = max(r.duration for r in observed.run1.results if r.name != name)
    ok = (
        result.status == "timeout"
        and result.abandoned
        and limit * 0.9 <= result.duration < limit + 1.0
        # Not held up: run 1 ended with its other scanners, well inside the global limit.
        and observed.run1.duration < max(others, limit) + 1.0
        and observed.run1.abandoned >= 1
        and observed.abandoned >= 1
        and observed.threads_ended
    )
    threads = observed.abandoned
    ended = "all returned by" if observed.threads_ended else "NOT all returned after"
    return Check(
        "timeout",
        ok,
        f"{name}: timeout at {result.duration:.2f}s (limit {limit:g}s), its request still"
        f" hanging; run 1 done in {observed.run1.duration:.2f}s all the same;"
        f" {threads} abandoned thread{'s' if threads != 1 else ''}, {ended} shutdown",
    )


def _check_concurrency(observed: _Observed) -> Check:
    concurrent, sequential = observed.concurrent, observed.sequential
    healthy = all(r.status == "ok" for r in (*concurrent.results, *sequential.results))
    ok = healthy and concurrent.duration < sequential.duration
    ratio = sequential.duration / concurrent.duration if concurrent.duration > 0 else 0.0
    return Check(
        "concurrency",
        ok,
        f"{len(concurrent.results)} scanners, fresh caches: concurrent {concurrent.duration:.2f}s"
        f" vs sequential {sequential.duration:.2f}s ({ratio:.1f}x faster)"
        + ("" if healthy else "; some scanners failed, so the times do not compare"),
    )


# -- JSON summary --------------------------------------------------------------------------


def _brief(report: rs.ScanReport) -> dict[str, Any]:
    return {
        "duration": round(report.duration, 4),
        "mode": report.mode,
        "counts": report.counts,
        "candidates": len(report.candidates),
        "abandoned": report.abandoned,
        "results": [
            {
                "scanner": result.name,
                "status": result.status.value,
                "candidates": len(result.candidates),
                "attempts": result.attempts,
                "cache_hits": result.cache_hits,
                "duration": round(result.duration, 4),
                "error": result.error,
            }
            for result in report.results
        ],
    }


def _summary(observed: _Observed, checks: list[Check], url: str, duration: float) -> dict[str, Any]:
    return {
        "event": "demo.summary",
        "ok": all(check.ok for check in checks),
        "duration": round(duration, 3),
        "simulator": url,
        "requests": observed.final_counts,
        "runs": {
            "run1": _brief(observed.run1),
            "run2": _brief(observed.run2),
            "concurrent": _brief(observed.concurrent),
            "sequential": _brief(observed.sequential),
        },
        "top_candidates": observed.run1.candidates[:5],
        "abandoned_threads": observed.abandoned,
        "checks": [check.to_dict() for check in checks],
        "failed": [check.layer for check in checks if not check.ok],
    }


__all__ = ["Check", "DemoSettings", "evaluate", "run_demo"]
