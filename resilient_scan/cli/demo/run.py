"""``resilient-scan demo``: every layer of resilient_scan at work against a simulated API.

The flow: start the API simulator; run eight scanners concurrently with a cold cache (live
lines as they finish, then a table); run them again (the cache answers, the open breaker
refuses at once); run the healthy ones concurrently and sequentially with fresh caches;
stop the simulator. Then say what each layer did, from the reports, the typed events the
layers emitted and the requests the simulator counted, and write the first run's report
page. The demo shows; the tests (``tests/cli/test_demo.py``) check that each effect
really happened.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

from resilient_scan import _simulator
from resilient_scan._console import Glyphs
from resilient_scan._events import AbandonedCallFinished, BreakerStateChanged, Event, RetryScheduled
from resilient_scan._executor import ScanExecutor
from resilient_scan._jsonsafe import dumps
from resilient_scan._report import ScanReport
from resilient_scan.cli._metrics import serving_metrics
from resilient_scan.cli._output import Output, candidate_lines, result_table
from resilient_scan.cli._progress import Presenter
from resilient_scan.cli._run import check_writable, write_file
from resilient_scan.cli._session import json_logs, presented
from resilient_scan.testing import CapturedEvents, capture_events

from .scanners import HEALTHY, DemoScanners, build_scanners
from .settings import DemoSettings

__all__ = ["DEFAULT_PAGE", "DemoRun", "demo_command", "run_demo"]

#: Where the demo writes its report page unless told otherwise.
DEFAULT_PAGE: Final = Path(tempfile.gettempdir()) / "resilient-scan-demo.html"
#: How long to wait, after the simulator stops, for abandoned threads to return.
_THREADS_END_WITHIN: Final = 5.0


@dataclass
class DemoRun:
    """Everything one demo run did: its reports, the requests served, the events emitted.

    Attributes:
        settings: The settings it ran with.
        url: The simulator's address.
        scanners: The scanners of runs 1 and 2 (their clients hold the breakers).
        run1: Eight scanners, concurrently, cold caches.
        run2: The same scanners again: warm caches, an open breaker.
        concurrent: The healthy scanners with fresh clients, concurrently.
        sequential: The same, one by one.
        requests_after_run1: Requests per endpoint path after run 1.
        requests_after_run2: The same after run 2.
        requests: The same when the simulator stopped.
        request_times: When each endpoint received its requests (`time.monotonic`).
        events: Every typed event of the demo, in order.
        run1_events: Those emitted during run 1.
        breaker_after_run1: The state of broken_scanner's breaker after run 1.
        abandoned: Threads the executor abandoned over the four runs.
        threads_ended: Whether they all returned once the simulator stopped.
        page: The report page written (None in JSON mode without ``--html``).
        duration: Seconds the demo took.
    """

    settings: DemoSettings
    url: str
    scanners: DemoScanners
    run1: ScanReport
    run2: ScanReport
    concurrent: ScanReport
    sequential: ScanReport
    requests_after_run1: dict[str, int]
    requests_after_run2: dict[str, int]
    requests: dict[str, int]
    request_times: dict[str, list[float]]
    events: CapturedEvents
    run1_events: list[Event]
    breaker_after_run1: str
    abandoned: int
    threads_ended: bool
    page: Path | None = None
    duration: float = 0.0

    def path(self, scanner: str) -> str:
        """The endpoint path the scanner named *scanner* calls."""
        return self.scanners.specs[scanner].path

    def requests_in_run2(self, scanner: str) -> int:
        """Requests the scanner named *scanner* made in run 2."""
        path = self.path(scanner)
        return self.requests_after_run2[path] - self.requests_after_run1[path]

    def retries_of(self, scanner: str) -> list[RetryScheduled]:
        """The retries scheduled inside *scanner* in run 1 (by the service it calls)."""
        function = f"{self.scanners.specs[scanner].service}.get"
        return [
            event
            for event in self.run1_events
            if isinstance(event, RetryScheduled) and event.function.endswith(function)
        ]


def demo_command(args: argparse.Namespace, *, stdout: TextIO) -> int:
    """``resilient-scan demo``: run it and return 0.

    Raises:
        CliError: if the report page cannot be written (checked before the demo runs).
    """
    settings = DemoSettings.quick() if args.quick else DemoSettings()
    page = args.html if args.html is not None else (None if args.json else str(DEFAULT_PAGE))
    with serving_metrics(args.metrics, sys.stderr):
        run_demo(settings, json_output=args.json, out=stdout, page=page)
    return 0


def run_demo(
    settings: DemoSettings | None = None,
    *,
    json_output: bool = False,
    out: TextIO | None = None,
    page: str | Path | None = None,
) -> DemoRun:
    """Run the demo; return what it did.

    Writes terminal text to *out* (default: `sys.stdout`), or JSON log lines and a final
    JSON summary line with *json_output*; writes run 1's report page to *page*. Logging
    and hooks are set up for the demo's duration and restored afterwards.
    """
    settings = settings or DemoSettings()
    output = Output(out if out is not None else sys.stdout)
    page_file = check_writable(None if page is None else str(page), "report page")
    started = time.monotonic()
    with capture_events() as events:
        showing = json_logs(output) if json_output else presented(output, Presenter(output))  # type: ignore[arg-type]
        with showing:
            demo = _Demo(settings, output, events, quiet=json_output).exercise()
    if page_file is not None:
        title = "resilient-scan demo: run 1 (concurrent, cold cache)"
        write_file(page_file, demo.run1.to_html(title=title), "report page")
        demo.page = page_file
    demo.duration = time.monotonic() - started
    if json_output:
        output.block([dumps(_summary(demo), indent=None)])
    else:
        _tell(output, demo)
    return demo


class _Demo:
    def __init__(
        self, settings: DemoSettings, output: Output, events: CapturedEvents, *, quiet: bool
    ) -> None:
        self.settings = settings
        self.output = output
        self.events = events
        self.quiet = quiet

    def say(self, *lines: str) -> None:
        if not self.quiet:
            self.output.line(*lines)

    def block(self, lines: list[str]) -> None:
        if not self.quiet:
            self.output.block(lines)

    def section(self, title: str) -> None:
        self.output.check()  # between runs: stop early once nobody reads the output
        self.say("", self.output.style.rule(title))

    def exercise(self) -> DemoRun:
        settings, glyphs = self.settings, self.output.style.glyphs
        state: dict[str, Any] = {"as_of": _simulator.AS_OF, "tool_logs": []}
        simulator = _simulator.ApiSimulator(
            latency_scale=settings.latency_scale,
            rate_limited_requests=settings.rate_limited_requests,
            retry_after=settings.retry_after,
            flaky_failures=settings.flaky_failures,
        )
        arrow = glyphs["arrow"]
        with simulator:
            url = simulator.url
            self.say(
                "resilient_scan demo",
                f"API simulator on {url}: {len(simulator.endpoints)} endpoints, one rate-limited"
                " (429), one flaky (500), one that hangs, one down for good (503).",
                "8 scanners call it over HTTP, each service through"
                f" resilient(cache {arrow} retry {arrow} breaker {arrow} attempt timeout).",
            )
            demo = build_scanners(url, settings)
            executor = ScanExecutor.from_config(settings.config())

            self.section("Run 1: concurrent, cold cache")
            mark = len(self.events)
            run1 = executor.run(demo.scanners, state)
            run1_events = list(self.events[mark:])
            after_run1 = simulator.counts()
            breaker = demo.client_of("broken_scanner").breaker
            breaker_after_run1 = breaker.state if breaker is not None else "no breaker"
            style = self.output.style
            self.block(["", *result_table(run1, style)])
            self.block(
                ["", "Best candidates, merged across scanners:", *candidate_lines(run1, style)]
            )

            self.section("Run 2: the same scanners again (warm cache, open breaker)")
            run2 = executor.run(demo.scanners, state)
            after_run2 = simulator.counts()
            self.block(["", *result_table(run2, style)])

            self.section(f"Speed: the {len(HEALTHY)} healthy scanners, fresh caches")
            concurrent = self.compare(url, state, concurrent=True)
            sequential = self.compare(url, state, concurrent=False)
            self.say(
                "",
                f"  concurrent {concurrent.duration:.2f}s {glyphs['dot']}"
                f" sequential {sequential.duration:.2f}s",
            )
            # Counted from this demo's own reports: `abandoned_threads()` is process-wide.
            abandoned = sum(r.abandoned for r in (run1, run2, concurrent, sequential))
            final_counts = simulator.counts()
            self.say("", "Stopping the simulator: its hanging requests get an answer now.")
            request_times = {
                spec.path: simulator.request_times(spec.path) for spec in demo.specs.values()
            }
        # The simulator has stopped: its hanging requests were answered, so the threads the
        # executor abandoned on them return now, each with an event saying so.
        threads_ended = _wait_for(
            lambda: len(self.events.of(AbandonedCallFinished)) >= abandoned, _THREADS_END_WITHIN
        )
        return DemoRun(
            settings=settings,
            url=url,
            scanners=demo,
            run1=run1,
            run2=run2,
            concurrent=concurrent,
            sequential=sequential,
            requests_after_run1=after_run1,
            requests_after_run2=after_run2,
            requests=final_counts,
            request_times=request_times,
            events=self.events,
            run1_events=run1_events,
            breaker_after_run1=breaker_after_run1,
            abandoned=abandoned,
            threads_ended=threads_ended,
        )

    def compare(self, url: str, state: Mapping[str, Any], *, concurrent: bool) -> ScanReport:
        """Run the healthy scanners with new clients (cold caches, closed breakers)."""
        settings = self.settings
        executor = ScanExecutor(
            concurrent=concurrent,
            max_workers=settings.max_workers,
            timeout_seconds=settings.timeout_seconds,
        )
        return executor.run(build_scanners(url, settings).only(HEALTHY), state)


def _wait_for(predicate: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() >= deadline:
            return predicate()
        time.sleep(0.01)
    return True


# -- what happened, in words ----------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f}s"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def story(demo: DemoRun, glyphs: Glyphs) -> list[tuple[str, str, str]]:
    """What each layer did, as (mark, layer, what happened) lines; no verdicts."""
    return [
        (glyphs["retry"], "retry", _retry_after(demo, glyphs)),
        (glyphs["retry"], "retry", _retry_500(demo, glyphs)),
        (glyphs["breaker"], "breaker", _breaker(demo, glyphs)),
        (glyphs["ok"], "cache", _cache(demo, glyphs)),
        (glyphs["timeout"], "timeout", _timeout(demo)),
        (glyphs["running"], "concurrency", _concurrency(demo)),
    ]


def _retry_after(demo: DemoRun, glyphs: Glyphs) -> str:
    name, arrow = "news_sentiment", glyphs["arrow"]
    result = demo.run1.result(name)
    waits = [event for event in demo.retries_of(name) if event.retry_after is not None]
    if not waits:
        return f"{name}: no HTTP 429 this time"
    server = demo.request_times[demo.path(name)]
    gap = server[1] - server[0] if len(server) > 1 else 0.0
    return (
        f"{name}: HTTP 429 with Retry-After: {waits[0].retry_after:g} {arrow} waited"
        f" {waits[0].wait:.2f}s (the server saw the retry {gap:.2f}s later) {arrow}"
        f" {result.status} on attempt {result.attempts}"
    )


def _retry_500(demo: DemoRun, glyphs: Glyphs) -> str:
    name = "social_trending"
    result = demo.run1.result(name)
    server_errors = sum("HTTP 500" in str(event.error) for event in demo.retries_of(name))
    requests = _plural(demo.requests_after_run1[demo.path(name)], "request")
    return (
        f"{name}: {server_errors} {glyphs['times']} HTTP 500 {glyphs['arrow']} {result.status}"
        f" on attempt {result.attempts} ({requests})"
    )


def _breaker(demo: DemoRun, glyphs: Glyphs) -> str:
    name = "broken_scanner"
    first, second = demo.run1.result(name), demo.run2.result(name)
    service = demo.scanners.specs[name].service
    return (
        f"{name}: {demo.requests_after_run1[demo.path(name)]} {glyphs['times']} HTTP 503"
        f" {glyphs['arrow']} breaker {service} {demo.breaker_after_run1}; run 2:"
        f" {second.status} in {_ms(second.duration)},"
        f" {_plural(demo.requests_in_run2(name), 'request')} (run 1: {first.status})"
    )


def _cache(demo: DemoRun, glyphs: Glyphs) -> str:
    served = [
        scanner
        for scanner in HEALTHY
        if demo.run2.result(scanner).cache_hits and not demo.requests_in_run2(scanner)
    ]
    new_requests = sum(demo.requests_in_run2(scanner) for scanner in HEALTHY)
    slowest1 = max(demo.run1.result(scanner).duration for scanner in HEALTHY)
    slowest2 = max(demo.run2.result(scanner).duration for scanner in HEALTHY)
    return (
        f"run 2: {len(served)} of {len(HEALTHY)} healthy scanners answered from the cache,"
        f" {_plural(new_requests, 'new request')}; slowest {_ms(slowest1)} {glyphs['arrow']}"
        f" {_ms(slowest2)}"
    )


def _timeout(demo: DemoRun) -> str:
    name = "slow_scanner"
    result = demo.run1.result(name)
    ended = "all returned" if demo.threads_ended else "not all returned"
    threads = _plural(demo.abandoned, "abandoned thread")
    return (
        f"{name}: {result.status} at {result.duration:.2f}s (limit"
        f" {demo.settings.slow_timeout_seconds:g}s) while its request hung; run 1 done in"
        f" {demo.run1.duration:.2f}s all the same; {threads}, {ended} once the simulator"
        " stopped"
    )


def _concurrency(demo: DemoRun) -> str:
    concurrent, sequential = demo.concurrent, demo.sequential
    ratio = sequential.duration / concurrent.duration if concurrent.duration > 0 else 0.0
    if ratio >= 1.1:  # noqa: PLR2004 - below that, no speed-up worth claiming
        verdict = f"{ratio:.1f}x faster"
    elif ratio and ratio <= 0.9:  # noqa: PLR2004
        verdict = f"slower this time ({1 / ratio:.1f}x)"
    else:
        verdict = "about as fast"
    return (
        f"{_plural(len(concurrent.results), 'scanner')}: concurrent"
        f" {concurrent.duration:.2f}s, sequential {sequential.duration:.2f}s: {verdict}"
    )


def _tell(output: Output, demo: DemoRun) -> None:
    style = output.style
    told = story(demo, style.glyphs)
    width = max(len(layer) for _, layer, _ in told)
    lines = ["", style.rule("What each layer did")]
    lines.extend(f"  {mark} {layer.ljust(width)}  {text}" for mark, layer, text in told)
    if demo.page is not None:
        lines += ["", f"Report page of run 1: {demo.page} (open it in a browser)"]
    lines += ["", f"Done in {demo.duration:.1f}s."]
    output.line(*lines)


def _brief(report: ScanReport) -> dict[str, Any]:
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


def _summary(demo: DemoRun) -> dict[str, Any]:
    opened = [
        event.breaker
        for event in demo.run1_events
        if isinstance(event, BreakerStateChanged) and event.to_state == "open"
    ]
    return {
        "event": "demo.summary",
        "duration": round(demo.duration, 3),
        "simulator": demo.url,
        "requests": demo.requests,
        "runs": {
            "run1": _brief(demo.run1),
            "run2": _brief(demo.run2),
            "concurrent": _brief(demo.concurrent),
            "sequential": _brief(demo.sequential),
        },
        "breakers_opened": opened,
        "top_candidates": demo.run1.candidates[:5],
        "abandoned_threads": demo.abandoned,
        "abandoned_threads_returned": demo.threads_ended,
        "report_page": None if demo.page is None else str(demo.page),
        "story": [{"layer": layer, "what": text} for _, layer, text in story(demo, _ASCII)],
    }


_ASCII: Final = Glyphs.for_encoding("ascii")
