"""The Prometheus hook, scraped over HTTP from a real prometheus_client endpoint on 127.0.0.1.

The exposition text is parsed with prometheus_client's own parser.
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import resilient_scan as rs
from resilient_scan import _metrics
from resilient_scan._instrument import emit
from resilient_scan.instrumentation import (
    CallFinished,
    RateLimitRejected,
    RateLimitWaited,
    get_hooks,
    set_hooks,
)
from resilient_scan.prometheus import MetricsServer, PrometheusHook, start_metrics_server
from resilient_scan.testing import FakeClock
from tests.helpers import Flaky, wait_until


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    """A metrics endpoint on a free port, with its own registry and the hook installed."""
    set_hooks([])
    with start_metrics_server(0, registry=CollectorRegistry()) as running:
        yield running


def scrape(server: MetricsServer) -> str:
    with urllib.request.urlopen(server.url, timeout=5) as response:  # noqa: S310 - 127.0.0.1
        assert response.status == 200
        text: str = response.read().decode()
        return text


def value(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample *name* whose labels include *labels* (None: no such sample)."""
    found = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) <= 1, f"{name} {labels} matches {len(found)} samples"
    return found[0] if found else None


def test_the_server_listens_on_localhost_and_installs_one_hook(server: MetricsServer):
    assert server.url.startswith("http://127.0.0.1:")
    assert server.url.endswith("/metrics")
    assert [type(hook) for hook in get_hooks()] == [PrometheusHook]
    assert "# TYPE resilient_scan_calls_total counter" in scrape(server)


def test_calls_are_counted_by_function_outcome_and_error_type(server: MetricsServer):
    emit(CallFinished("fetch_quote", "ok", 0.01))
    emit(CallFinished("fetch_quote", "ok", 0.01))
    emit(CallFinished("fetch_quote", "error", 0.02, "ConnectionError"))
    emit(CallFinished("fetch_news", "timeout", 1.0, "ScanTimeout"))
    text = scrape(server)
    calls = "resilient_scan_calls_total"
    assert value(text, calls, function="fetch_quote", outcome="ok", error_type="") == 2
    assert (
        value(text, calls, function="fetch_quote", outcome="error", error_type="ConnectionError")
        == 1
    )
    assert value(text, calls, function="fetch_news", outcome="timeout") == 1


def test_calls_through_resilient_are_counted(server: MetricsServer):
    @rs.resilient(retry=True, breaker=True)
    def fetch_quote(ticker: str) -> float:
        return 1.0

    fetch_quote("MSFT")
    assert value(scrape(server), "resilient_scan_calls_total", outcome="ok") == 1


def test_retries_and_give_ups_are_counted_by_function(server: MetricsServer, clock: FakeClock):
    call = rs.retry(attempts=3, backoff=0.1, clock=clock)(Flaky(failures=2))
    call()
    always = rs.retry(attempts=2, backoff=0.1, clock=clock)(Flaky(failures=100))
    with pytest.raises(ValueError):
        always()
    text = scrape(server)
    assert value(text, "resilient_scan_retries_total", error_type="ValueError") == 3
    assert value(text, "resilient_scan_retries_exhausted_total", reason="attempts") == 1


def test_timeouts_and_abandoned_threads(server: MetricsServer, release: threading.Event):
    @rs.timeout(0.05)
    def hang() -> None:
        release.wait(10)

    before = rs.abandoned_threads()
    with pytest.raises(rs.ScanTimeout):
        hang()
    text = scrape(server)
    assert value(text, "resilient_scan_timeouts_total", function=hang.__qualname__) == 1
    assert value(text, "resilient_scan_abandoned_threads") == before + 1
    release.set()
    assert wait_until(lambda: value(scrape(server), "resilient_scan_abandoned_threads") == before)


def test_breaker_state_and_rejections(server: MetricsServer, clock: FakeClock):
    call = rs.circuit_breaker(fail_max=1, reset_timeout=10.0, name="quotes-api", clock=clock)(
        Flaky(failures=1)
    )
    with pytest.raises(ValueError):
        call()
    with pytest.raises(rs.CircuitOpenError):
        call()
    text = scrape(server)
    state = "resilient_scan_breaker_state"
    assert value(text, state, breaker="quotes-api", state="open") == 1
    assert value(text, state, breaker="quotes-api", state="closed") == 0
    assert value(text, state, breaker="quotes-api", state="half-open") == 0
    assert value(text, "resilient_scan_breaker_rejections_total", breaker="quotes-api") == 1
    changes = "resilient_scan_breaker_state_changes_total"
    assert value(text, changes, breaker="quotes-api", to_state="open") == 1
    clock.advance(11.0)
    call()  # the half-open trial succeeds: closed again
    text = scrape(server)
    assert value(text, state, breaker="quotes-api", state="closed") == 1
    assert value(text, state, breaker="quotes-api", state="open") == 0
    assert value(text, changes, breaker="quotes-api", to_state="closed") == 1


def test_cache_hits_and_misses_by_cache_never_by_key(server: MetricsServer):
    def fetch(ticker: str) -> float:
        return 1.0

    quote = rs.ttl_cache(ttl=60)(fetch)
    quote("ZZTOP")
    quote("ZZTOP")
    quote("YYZ")
    text = scrape(server)
    cache = fetch.__qualname__
    assert value(text, "resilient_scan_cache_hits_total", cache=cache) == 1
    assert value(text, "resilient_scan_cache_misses_total", cache=cache) == 2
    assert "ZZTOP" not in text
    assert "YYZ" not in text


def test_rate_limit_waits_and_rejections(server: MetricsServer):
    emit(RateLimitWaited("news-api", "fetch_news", 0.25))
    emit(RateLimitWaited("news-api", "fetch_news", 0.5))
    emit(RateLimitRejected("news-api", "fetch_news", 2.0, 0.1))
    text = scrape(server)
    assert value(text, "resilient_scan_rate_limit_waits_total", limiter="news-api") == 2
    assert value(text, "resilient_scan_rate_limit_wait_seconds_total", limiter="news-api") == 0.75
    assert value(text, "resilient_scan_rate_limit_rejections_total", limiter="news-api") == 1


def test_scanner_durations_by_status_and_run_durations(server: MetricsServer):
    def steady(state: object) -> list[dict[str, str]]:
        return [{"ticker": "NVDA", "context": "secret sauce"}]

    def broken(state: object) -> list[dict[str, str]]:
        raise ValueError("boom: apikey=hunter2")

    rs.ScanExecutor(max_workers=2).run([steady, broken])
    text = scrape(server)
    duration = "resilient_scan_scanner_duration_seconds"
    assert value(text, f"{duration}_count", scanner="steady", status="ok") == 1
    assert value(text, f"{duration}_count", scanner="broken", status="error") == 1
    assert value(text, f"{duration}_bucket", scanner="steady", status="ok", le="+Inf") == 1
    assert value(text, "resilient_scan_scan_duration_seconds_count") == 1
    # Labels carry names and statuses: no ticker, candidate or error message.
    for leaked in ("NVDA", "secret sauce", "boom", "hunter2"):
        assert leaked not in text


def test_every_series_follows_the_metric_table(server: MetricsServer, clock: FakeClock):
    # Feed every metric, then check names, types and label names against the table.
    call = rs.retry(attempts=2, backoff=0.1, clock=clock)(Flaky(failures=5))
    with pytest.raises(ValueError):
        call()
    emit(CallFinished("f", "ok", 0.1))
    rs.ScanExecutor(max_workers=1).run([lambda state: []])
    families = {family.name: family for family in text_string_to_metric_families(scrape(server))}
    for metric in _metrics.METRICS:
        name = metric.prometheus_name().removesuffix("_total")
        family = families[name]
        assert family.type == metric.kind
        assert family.documentation == metric.description
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == set(metric.labels), sample
    for family in families.values():
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples), family.name
        if family.type == "histogram":
            assert family.name.endswith("_seconds")


def test_a_custom_namespace_prefixes_every_metric():
    registry = CollectorRegistry()
    hook = PrometheusHook(registry, namespace="scanner_app")
    set_hooks([hook])
    emit(CallFinished("f", "ok", 0.1))
    assert (
        registry.get_sample_value(
            "scanner_app_calls_total", {"function": "f", "outcome": "ok", "error_type": ""}
        )
        == 1
    )


def test_two_hooks_on_one_registry_share_its_metrics():
    registry = CollectorRegistry()
    first, second = PrometheusHook(registry), PrometheusHook(registry)
    set_hooks([first])
    emit(CallFinished("f", "ok", 0.1))
    set_hooks([second])
    emit(CallFinished("f", "ok", 0.1))
    labels = {"function": "f", "outcome": "ok", "error_type": ""}
    assert registry.get_sample_value("resilient_scan_calls_total", labels) == 2


def test_a_second_server_on_the_same_registry_reuses_the_installed_hook():
    set_hooks([])
    registry = CollectorRegistry()
    with start_metrics_server(0, registry=registry) as first:
        with start_metrics_server(0, registry=registry) as second:
            assert second.hook is first.hook
            assert len(get_hooks()) == 1
        assert len(get_hooks()) == 1  # the second did not install it: it leaves it
    assert get_hooks() == ()  # the first installed it: closing removes it


def test_closing_the_server_stops_serving(server: MetricsServer):
    url = server.url
    server.close()
    with pytest.raises(OSError, match=r"Connection refused"):
        urllib.request.urlopen(url, timeout=2)  # noqa: S310 - 127.0.0.1


@pytest.mark.parametrize("port", [-1, 65536, "9464", 1.5, True])
def test_a_bad_port_is_a_config_error_naming_it(port: object):
    with pytest.raises(rs.ConfigError) as caught:
        start_metrics_server(port)  # type: ignore[arg-type]
    assert caught.value.path == ("port",)
