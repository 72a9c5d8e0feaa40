"""`resilient-scan demo` end to end (quick settings), and its API simulator."""

from __future__ import annotations

import io
import json
import threading
import urllib.error
import urllib.request
from dataclasses import replace

import pytest
import structlog

from resilient_scan._cli import main
from resilient_scan._demo import ApiSimulator, DemoSettings, run_demo

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(autouse=True)
def _restore_structlog():
    yield
    structlog.reset_defaults()


def _get(url: str, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    try:
        with OPENER.open(url, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


# -- the demo ------------------------------------------------------------------------------


def test_demo_shows_every_layer_at_work(capsys):
    before = structlog.get_config()["processors"]
    assert main(["demo", "--quick"]) == 0
    out = capsys.readouterr().out

    # Live progress from the executor, then the summary table.
    assert "Running 8 scanners concurrently (max 8 workers)..." in out
    assert "✓ market_movers: 6 candidates" in out
    assert "⚠️ broken_scanner: HTTP 503 Service Unavailable" in out
    for column in ("scanner", "status", "candidates", "attempts", "duration"):
        assert column in out
    # Retry after a 429, waiting for its Retry-After.
    assert "↻ news_sentiment: HTTP 429 Too Many Requests, retry 1 in" in out
    assert "(Retry-After: 1s)" in out
    assert "✓ retry: 429" in out
    assert "→ ok on attempt 2" in out
    # Retry past the flaky 500s.
    assert "✓ retry: 500   social_trending: 2 x HTTP 500 → ok on attempt 3" in out
    # The breaker opens in run 1; run 2 does not call the service.
    assert "⛔ breaker options-flow: closed → open" in out
    assert "⛔ broken_scanner: circuit open, not called" in out
    assert "✓ breaker" in out
    assert "run 2: circuit_open in" in out
    assert ", 0 requests" in out
    # Run 2 answered from the cache.
    assert "from cache" in out
    assert "✓ cache        run 2: 6/6 healthy scanners answered from the cache with 0 new" in out
    # The hung scanner times out; its thread is abandoned and returns at shutdown.
    assert "⏱️ slow_scanner: timeout after 0.5s" in out
    assert "thread abandoned" in out
    assert "✓ timeout" in out
    assert "all returned by shutdown" in out
    # Concurrent vs sequential.
    assert "Running 6 scanners sequentially..." in out
    assert "✓ concurrency" in out
    assert "faster)" in out
    assert "all 6 layer effects observed" in out
    assert "NOT OBSERVED" not in out
    # The demo restores the application's logging configuration.
    assert structlog.get_config()["processors"] == before


def test_demo_json_mode_writes_json_lines(capsys):
    assert main(["demo", "--quick", "--json"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is JSON
    events = [record["event"] for record in records]

    assert events.count("scan.started") == 4  # run 1, run 2, concurrent, sequential
    finished = {r["scanner"] for r in records if r["event"] == "scanner.finished"}
    assert {"market_movers", "news_sentiment", "slow_scanner", "broken_scanner"} <= finished
    retries = [r for r in records if r["event"] == "retry.scheduled"]
    assert any(r["scanner"] == "news_sentiment" and r["retry_after"] == 1.0 for r in retries)
    assert any(r["event"] == "breaker.state_changed" and r["to_state"] == "open" for r in records)

    summary = records[-1]
    assert summary["event"] == "demo.summary"
    assert summary["ok"] is True
    assert summary["failed"] == []
    assert {check["layer"] for check in summary["checks"]} == {
        "retry: 429",
        "retry: 500",
        "breaker",
        "cache",
        "timeout",
        "concurrency",
    }
    run2 = {r["scanner"]: r for r in summary["runs"]["run2"]["results"]}
    assert run2["broken_scanner"]["status"] == "circuit_open"
    assert run2["market_movers"]["cache_hits"] == 1
    assert summary["requests"]["/v1/options/flow"] == 3  # run 1's attempts, none after


def test_demo_fails_and_says_which_effect_was_not_observed():
    # Without a rate-limited request there is no 429 to retry after.
    settings = replace(DemoSettings.quick(), rate_limited_requests=0)
    out = io.StringIO()
    assert run_demo(settings, out=out) == 1
    text = out.getvalue()
    assert "✗ NOT OBSERVED: retry: 429" in text
    assert "Demo FAILED" in text
    assert "not observed: retry: 429" in text
    assert "✓ breaker" in text  # the others were still observed


# -- the simulator -------------------------------------------------------------------------


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
