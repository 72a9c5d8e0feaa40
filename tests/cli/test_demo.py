"""`resilient-scan demo` end to end (quick settings): what it shows, and that each layer's
effect really happened (the demo itself only tells; these tests check)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import structlog

from resilient_scan.cli.demo import HEALTHY, DemoRun, DemoSettings, run_demo
from resilient_scan.instrumentation import BreakerStateChanged, RetryScheduled, get_hooks
from resilient_scan.testing import ApiSimulator
from tests.cli.support import clean_env
from tests.helpers import structlog_kept

TIMES = "\u00d7"  # the multiplication sign
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoRun, str]]:
    """One quick demo run, shared by the tests that read what it did (it takes 2.5 s)."""
    saved = structlog.get_config()
    out = io.StringIO()
    page = tmp_path_factory.mktemp("demo") / "report.html"
    hooks = [type(hook) for hook in get_hooks()]
    with structlog_kept():
        run = run_demo(DemoSettings.quick(), out=out, page=page)
        RESTORED.extend(
            [
                (saved["processors"], structlog.get_config()["processors"]),
                (hooks, [type(hook) for hook in get_hooks()]),
            ]
        )
        yield run, out.getvalue()


RESTORED: list[tuple[object, object]] = []


# -- what each layer did ------------------------------------------------------------------------


def test_retry_waited_for_retry_after(demo):
    run, _ = demo
    result = run.run1.result("news_sentiment")
    waits = [event for event in run.retries_of("news_sentiment") if event.retry_after]
    times = run.request_times[run.path("news_sentiment")]

    assert result.status == "ok"
    assert result.attempts == 2
    assert waits[0].retry_after == 1.0
    assert waits[0].wait >= 1.0
    # The server saw the retry at least Retry-After after the 429 (10 ms for the clock).
    assert times[1] - times[0] >= 1.0 - 0.01


def test_retry_got_past_the_http_500s(demo):
    run, _ = demo
    result = run.run1.result("social_trending")
    errors = [event.error for event in run.retries_of("social_trending")]

    assert result.status == "ok"
    assert result.attempts == run.settings.flaky_failures + 1
    assert sum("HTTP 500" in str(error) for error in errors) == run.settings.flaky_failures


def test_the_breaker_opened_and_run_2_made_no_request(demo):
    run, _ = demo
    opened = [
        event
        for event in run.run1_events
        if isinstance(event, BreakerStateChanged) and event.to_state == "open"
    ]

    assert run.run1.result("broken_scanner").status == "error"
    assert [event.breaker for event in opened] == ["options-flow"]
    assert run.breaker_after_run1 == "open"
    assert run.run2.result("broken_scanner").status == "circuit_open"
    assert run.requests_in_run2("broken_scanner") == 0
    assert run.requests["/v1/options/flow"] == run.settings.attempts  # run 1's, none after


def test_run_2_was_answered_from_the_cache(demo):
    run, _ = demo
    for name in HEALTHY:
        first, second = run.run1.result(name), run.run2.result(name)
        assert second.status == "ok", name
        assert second.cache_hits >= 1, name
        assert len(second.candidates) == len(first.candidates), name
        assert run.requests_in_run2(name) == 0, name


def test_the_hung_scanner_timed_out_without_holding_up_the_run(demo):
    run, _ = demo
    result = run.run1.result("slow_scanner")
    limit = run.settings.slow_timeout_seconds
    others = max(r.duration for r in run.run1.results if r.name != "slow_scanner")

    assert result.status == "timeout"
    assert result.abandoned
    assert limit * 0.9 <= result.duration < limit + 1.0
    assert run.run1.duration < max(others, limit) + 1.0
    assert run.run1.abandoned >= 1
    assert run.threads_ended  # its thread returned once the simulator stopped


def test_concurrent_was_faster_than_sequential(demo):
    run, _ = demo
    assert all(r.status == "ok" for r in (*run.concurrent.results, *run.sequential.results))
    assert run.concurrent.duration < run.sequential.duration


def test_the_events_are_typed(demo):
    run, _ = demo
    assert run.events.of(RetryScheduled)
    assert all(not isinstance(event, dict) for event in run.events)


# -- what it shows ----------------------------------------------------------------------------


def test_the_demo_tells_what_happened(demo):
    run, out = demo
    # Live lines from the events, then the table.
    assert "Running 8 scanners concurrently (max 8 workers)..." in out
    assert "✓ market_movers: 6 candidates" in out
    assert "⚠ broken_scanner: ApiError: HTTP 503 Service Unavailable" in out
    assert "↻ news_sentiment: ApiError: HTTP 429 Too Many Requests, retry 1 in" in out
    assert "(Retry-After: 1s)" in out
    assert "⊘ breaker options-flow: closed → open" in out
    assert "✗ broken_scanner: gave up after 3 attempts: ApiError: HTTP 503" in out
    assert "(attempts)" not in out
    assert "⊘ broken_scanner: circuit open, not called" in out
    assert "⏱ slow_scanner: timeout after 0.5s" in out
    assert "thread abandoned" in out
    assert "from cache" in out
    assert "Running 6 scanners sequentially..." in out
    for column in ("scanner", "status", "candidates", "attempts", "duration"):
        assert column in out
    # What each layer did: told, not judged.
    told = out[out.index("What each layer did") :]
    assert "retry        news_sentiment: HTTP 429 with Retry-After: 1 → waited" in told
    assert f"retry        social_trending: 2 {TIMES} HTTP 500 → ok on attempt 3" in told
    assert f"breaker      broken_scanner: 3 {TIMES} HTTP 503 → breaker options-flow open" in told
    assert "cache        run 2: 6 of 6 healthy scanners answered from the cache, 0 new" in told
    assert "timeout      slow_scanner: timeout at 0.5" in told
    assert "concurrency  6 scanners: concurrent" in told
    assert "NOT OBSERVED" not in out
    assert f"Report page of run 1: {run.page} (open it in a browser)" in out


def test_the_demo_writes_the_report_page_of_run_1(demo):
    run, _ = demo
    assert run.page is not None
    page = run.page.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    for result in run.run1.results:
        assert f'class="row" data-scanner="{result.name}" data-status="{result.status}"' in page


def test_the_demo_restores_logging_and_hooks(demo):
    assert RESTORED
    for before, after in RESTORED:
        assert after == before


def test_demo_json_mode_writes_json_lines():
    # Quicker than --quick: no 429 to wait a whole second for.
    settings = replace(DemoSettings.quick(), rate_limited_requests=0, latency_scale=0.05)
    out = io.StringIO()
    run_demo(settings, json_output=True, out=out)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is JSON
    events = [record["event"] for record in records]

    assert events.count("scan.started") == 4  # run 1, run 2, concurrent, sequential
    finished = {r["scanner"] for r in records if r["event"] == "scanner.finished"}
    assert {"market_movers", "news_sentiment", "slow_scanner", "broken_scanner"} <= finished
    retries = [r for r in records if r["event"] == "retry.scheduled"]
    assert {r["scanner"] for r in retries} == {"social_trending", "broken_scanner"}

    summary = records[-1]
    assert summary["event"] == "demo.summary"
    assert summary["breakers_opened"] == ["options-flow"]
    assert summary["report_page"] is None  # none unless asked for, in JSON mode
    assert {entry["layer"] for entry in summary["story"]} == {
        "retry",
        "breaker",
        "cache",
        "timeout",
        "concurrency",
    }
    run2 = {r["scanner"]: r for r in summary["runs"]["run2"]["results"]}
    assert run2["broken_scanner"]["status"] == "circuit_open"
    assert run2["market_movers"]["cache_hits"] == 1
    assert summary["requests"]["/v1/options/flow"] == 3  # run 1's attempts, none after


@pytest.mark.parametrize(
    ("option", "first_line"), [("--quick", b"resilient_scan demo\n"), ("--json", b'{"scanners": 8')]
)
def test_demo_piped_into_head_exits_quietly(tmp_path: Path, option: str, first_line: bytes):
    # 7.16: `resilient-scan demo | head -1` printed a BrokenPipeError traceback.
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and command
        [sys.executable, "-m", "resilient_scan.cli", "demo", "--quick", option, "--html", "p.html"],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    with process:
        assert process.stdout is not None
        assert process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()
        err = process.stderr.read()
        status = process.wait(timeout=60)
    assert first.startswith(first_line)
    assert err == b""
    assert status == 141


# -- the simulator (public, in resilient_scan.testing) -------------------------------------------


def _get(url: str, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    try:
        with OPENER.open(url, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


def test_simulator_answers_like_the_services_it_stands_for():
    with ApiSimulator(latency_scale=0.01, rate_limited_requests=1, flaky_failures=1) as api:
        status, headers, _ = _get(api.url + "/v1/news/sentiment")
        assert (status, headers["Retry-After"]) == (429, "1")
        status, _, body = _get(api.url + "/v1/news/sentiment")
        assert status == 200
        assert json.loads(body)["articles"][0]["symbol"] == "AAPL"

        assert _get(api.url + "/v1/social/trending")[0] == 500
        assert _get(api.url + "/v1/social/trending")[0] == 200
        assert _get(api.url + "/v1/options/flow")[0] == 503
        assert _get(api.url + "/v1/options/flow?as_of=today")[0] == 503
        assert _get(api.url + "/nope")[0] == 404

        assert api.requests("/v1/news/sentiment") == 2
        assert api.counts()["/v1/options/flow"] == 2
        times = api.request_times("/v1/social/trending")
        assert len(times) == 2
        assert times[0] <= times[1]


def test_hanging_endpoint_answers_when_the_simulator_stops():
    outcome: list[int] = []
    api = ApiSimulator().start()
    client = threading.Thread(
        target=lambda: outcome.append(_get(api.url + "/v1/altdata/signals", timeout=30)[0])
    )
    client.start()
    client.join(0.3)
    assert client.is_alive()  # still hanging
    api.stop()
    client.join(5.0)
    assert outcome == [503]
    with pytest.raises(RuntimeError, match="not running"):
        _ = api.url
