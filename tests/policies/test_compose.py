"""rs.resilient: cache -> retry -> breaker -> timeout, in that order whatever the call order."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

import resilient_scan as rs
from resilient_scan._config import CURRENT_SCAN
from resilient_scan._stats import ScanRecorder
from resilient_scan.instrumentation import CallFinished, set_hooks
from resilient_scan.testing import ApiSimulator, CapturedEvents, FakeClock, capture_events
from tests.helpers import Flaky
from tests.policies import aio_http


def fetch() -> str:
    return "data"


def test_layers_are_composed_cache_retry_breaker_timeout_whatever_the_argument_order():
    wrapped = rs.resilient(timeout=1.0, breaker=True, retry=True, cache=60)(fetch)
    kinds = [type(layer) for layer in wrapped.layers]
    assert kinds == [rs.CachePolicy, rs.RetryPolicy, rs.BreakerPolicy, rs.TimeoutPolicy]
    described = wrapped.describe()
    positions = [
        described.index(part) for part in ("ttl_cache(", "retry(", "circuit_breaker(", "timeout(")
    ]
    assert positions == sorted(positions)
    assert described.endswith(" -> fetch")
    assert wrapped() == "data"


def test_a_cache_hit_answers_while_the_breaker_is_open(clock: FakeClock):
    calls: list[str] = []

    @rs.resilient(cache={"ttl": 60, "clock": clock}, breaker={"fail_max": 1, "clock": clock})
    def quote(symbol: str) -> str:
        calls.append(symbol)
        if symbol == "DOWN":
            raise ConnectionError("service down")
        return f"{symbol}-quote"

    assert quote("AAPL") == "AAPL-quote"
    with pytest.raises(ConnectionError):
        quote("DOWN")
    assert quote.breaker is not None
    assert quote.breaker.state == "open"
    with pytest.raises(rs.CircuitOpenError):
        quote("MSFT")
    assert quote("AAPL") == "AAPL-quote"
    assert calls == ["AAPL", "DOWN"]


def test_each_retry_attempt_is_seen_by_the_breaker_and_retries_stop_when_it_opens(
    clock: FakeClock,
):
    flaky = Flaky(failures=100)
    wrapped = rs.resilient(
        retry={"attempts": 5, "backoff": 0.1, "jitter": False, "clock": clock},
        breaker={"fail_max": 2, "clock": clock},
    )(flaky)
    with pytest.raises(rs.CircuitOpenError):
        wrapped()
    assert flaky.calls == 2
    assert wrapped.breaker is not None
    assert wrapped.breaker.state == "open"


def test_a_timed_out_attempt_counts_as_a_breaker_failure(
    clock: FakeClock, release: threading.Event
):

    def hang() -> str:
        release.wait(5.0)
        return "late"

    wrapped = rs.resilient(timeout=0.1, breaker={"fail_max": 1, "clock": clock})(hang)
    try:
        with pytest.raises(rs.ScanTimeout):
            wrapped()
    finally:
        release.set()
    assert wrapped.breaker is not None
    assert wrapped.breaker.state == "open"
    with pytest.raises(rs.CircuitOpenError):
        wrapped()


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"timeout": 1.5}, rs.TimeoutPolicy(seconds=1.5)),
        ({"timeout": timedelta(seconds=2)}, rs.TimeoutPolicy(seconds=2.0)),
        ({"timeout": {"seconds": 3}}, rs.TimeoutPolicy(seconds=3.0)),
        ({"cache": 30}, rs.CachePolicy(ttl=30.0)),
        ({"cache": {"ttl": 5, "maxsize": 10}}, rs.CachePolicy(ttl=5.0, maxsize=10)),
        ({"retry": True}, rs.RetryPolicy()),
        ({"retry": {"attempts": 2, "jitter": False}}, rs.RetryPolicy(attempts=2, jitter=False)),
        ({"breaker": True}, rs.BreakerPolicy()),
        ({"breaker": {"fail_max": 2}}, rs.BreakerPolicy(fail_max=2)),
    ],
    ids=[
        "timeout-number",
        "timeout-timedelta",
        "timeout-dict",
        "cache-number",
        "cache-dict",
        "retry-true",
        "retry-dict",
        "breaker-true",
        "breaker-dict",
    ],
)
def test_numbers_dicts_and_true_build_the_matching_policy(arguments: dict[str, Any], expected: Any):
    wrapped = rs.resilient(**arguments)(fetch)
    assert wrapped.layers == (expected,)
    assert wrapped() == "data"


def test_policy_objects_are_used_as_given():
    timeout = rs.TimeoutPolicy(seconds=1.0)
    retry = rs.RetryPolicy(attempts=2)
    cache = rs.CachePolicy(ttl=9)
    breaker = rs.BreakerPolicy(fail_max=3)
    wrapped = rs.resilient(timeout=timeout, retry=retry, cache=cache, breaker=breaker)(fetch)
    assert len(wrapped.layers) == 4
    assert all(
        layer is given
        for layer, given in zip(wrapped.layers, (cache, retry, breaker, timeout), strict=True)
    )


def test_a_circuit_breaker_object_is_shared_between_functions(clock: FakeClock):
    shared = rs.CircuitBreaker(fail_max=1, name="shared", clock=clock)
    failing = rs.resilient(breaker=shared)(Flaky(failures=100))
    healthy = rs.resilient(breaker=shared)(fetch)
    assert failing.breaker is shared
    with pytest.raises(ValueError):
        failing()
    with pytest.raises(rs.CircuitOpenError):
        healthy()


def test_none_leaves_every_layer_out_but_still_returns_a_wrapper():
    wrapped = rs.resilient(timeout=None, retry=None, cache=None, breaker=None)(fetch)
    assert wrapped.layers == ()
    assert wrapped.breaker is None
    assert wrapped.cache_info() is None
    assert wrapped is not fetch
    assert not hasattr(fetch, "layers")
    assert wrapped() == "data"
    assert wrapped.describe() == "fetch"


@pytest.mark.parametrize(
    ("layer", "settings", "unknown"),
    [
        ("timeout", {"secs": 1}, "secs"),
        ("retry", {"atempts": 3}, "atempts"),
        ("cache", {"ttl": 5, "max_size": 3}, "max_size"),
        ("breaker", {"failmax": 3}, "failmax"),
    ],
)
def test_an_unknown_dict_key_raises_config_error_naming_it(
    layer: str, settings: dict[str, Any], unknown: str
):
    arguments: dict[str, Any] = {layer: settings}
    with pytest.raises(rs.ConfigError) as info:
        rs.resilient(**arguments)
    assert unknown in str(info.value)


def test_timeout_true_is_rejected():
    with pytest.raises(rs.ConfigError) as info:
        rs.resilient(timeout=True)
    assert "timeout" in str(info.value)
    assert "True" in str(info.value)


def test_a_bad_value_in_a_layer_dict_is_named_with_its_full_path():
    with pytest.raises(rs.ConfigError, match=r"resilient\.retry\.attempts: .*got 0"):
        rs.resilient(retry={"attempts": 0})
    with pytest.raises(rs.ConfigError, match=r"resilient\.breaker\.fail_max: .*got -1"):
        rs.resilient(breaker={"fail_max": -1})


# -- the fast path and the layered path do the same ----------------------------------------


@pytest.fixture(params=["quiet", "observed"])
def listening(request: pytest.FixtureRequest) -> Iterator[CapturedEvents | None]:
    """Run a test with nobody listening (the fused fast path) and with a hook (the layers)."""
    if request.param == "quiet":
        set_hooks([])
        yield None
        return
    with capture_events() as events:
        yield events


def test_retry_and_breaker_behave_alike_on_both_paths(
    clock: FakeClock, listening: CapturedEvents | None
):
    flaky = Flaky(failures=2)
    call = rs.resilient(
        retry={"attempts": 3, "backoff": 0.5, "jitter": False, "clock": clock},
        breaker={"fail_max": 5, "clock": clock},
    )(flaky)
    assert call() == 3
    assert clock.sleeps == [0.5, 1.0]
    assert call.breaker is not None
    assert call.breaker.failures == 0  # the success reset the two failures
    trip_flaky = Flaky(failures=100)
    tripping = rs.resilient(
        retry={"attempts": 5, "backoff": 0.1, "jitter": False, "clock": clock},
        breaker={"fail_max": 2, "clock": clock},
    )(trip_flaky)
    with pytest.raises(rs.CircuitOpenError):
        tripping()
    assert trip_flaky.calls == 2
    if listening is not None:
        finished = listening.of(CallFinished)
        assert [(e.outcome, e.error_type) for e in finished] == [
            ("ok", None),
            ("circuit_open", "CircuitOpenError"),
        ]


class Interrupted(BaseException):
    """Like KeyboardInterrupt (not an Exception), without stopping the test run."""


def test_excluded_errors_and_base_exceptions_behave_alike_on_both_paths(
    clock: FakeClock, listening: CapturedEvents | None
):
    errors: list[BaseException] = [KeyError("no such ticker"), Interrupted()]

    def work() -> None:
        raise errors.pop(0)

    call = rs.resilient(
        retry={"on": ConnectionError, "clock": clock},
        breaker={"fail_max": 1, "exclude": KeyError, "clock": clock},
    )(work)
    with pytest.raises(KeyError):
        call()
    with pytest.raises(Interrupted):
        call()
    assert call.breaker is not None
    assert call.breaker.state == "closed"
    assert call.breaker.failures == 0


def test_an_async_stack_behaves_alike_on_both_paths(
    clock: FakeClock, listening: CapturedEvents | None
):
    calls = 0

    async def flaky() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        if calls <= 2:
            raise ConnectionError(f"reset {calls}")
        return calls

    call = rs.resilient(
        retry={"attempts": 3, "backoff": 0.5, "jitter": False, "clock": clock},
        breaker={"fail_max": 5, "clock": clock},
    )(flaky)
    assert asyncio.run(call()) == 3
    assert clock.sleeps == [0.5, 1.0]


# -- async, end to end -----------------------------------------------------------------------


def test_an_async_function_gets_every_layer_in_the_documented_order(clock: FakeClock):
    with ApiSimulator(latency_scale=0.0, flaky_failures=2) as api:

        @rs.resilient(
            retry={"attempts": 4, "backoff": 0.01, "jitter": False},
            breaker={"fail_max": 5, "clock": clock},
            rate_limit={"rate": 1000},
            timeout=2,
        )
        async def trending() -> aio_http.Response:
            assert rs.time_remaining() is not None  # inside the timeout layer
            return await aio_http.get(api.url, "/v1/social/trending")

        response = asyncio.run(trending())
        assert response.status == 200
        assert api.requests("/v1/social/trending") == 3
    kinds = [type(layer) for layer in trending.layers]
    assert kinds == [rs.RetryPolicy, rs.BreakerPolicy, rs.RateLimitPolicy, rs.TimeoutPolicy]


# -- counting calls per scanner ----------------------------------------------------------------


def test_each_call_is_counted_once_for_the_scanner_whatever_its_layers_and_attempts():
    flaky = Flaky(failures=1)
    quotes = rs.resilient(retry={"attempts": 2, "backoff": 0.001}, breaker=True, timeout=5)(flaky)
    failing = rs.retry(attempts=2, backoff=0.001)(Flaky(failures=100))
    limited = rs.rate_limit(1000)(fetch)

    def scan(state: object) -> list[dict[str, str]]:
        quotes()  # two attempts: one call
        quotes()
        with contextlib.suppress(ValueError):
            failing()  # two attempts, then fails: one failed call
        limited()
        return []

    report = rs.ScanExecutor(timeout_seconds=10).run([scan], {})
    stats = report.results[0].calls
    assert (stats.calls, stats.failed_calls, stats.retries) == (4, 1, 2)


def test_async_calls_are_counted_for_the_running_scanner():
    @rs.resilient(retry=True, breaker=True)
    async def fetch_async() -> str:
        return "ok"

    recorder = ScanRecorder("async-scanner")
    token = CURRENT_SCAN.set(recorder)
    try:
        asyncio.run(fetch_async())
        asyncio.run(fetch_async())
    finally:
        CURRENT_SCAN.reset(token)
    assert recorder.snapshot().calls == 2
    asyncio.run(fetch_async())  # outside a scanner: nothing counted
    assert recorder.snapshot().calls == 2


def test_an_empty_cache_table_is_a_config_error_naming_the_missing_ttl():
    with pytest.raises(rs.ConfigError) as info:
        rs.resilient(cache={})
    assert info.value.path == ("resilient", "cache", "ttl")


@pytest.mark.parametrize("layer", ["retry", "breaker", "rate_limit"])
@pytest.mark.parametrize("clock", [5, None, "system"], ids=["number", "None", "string"])
def test_a_clock_that_is_not_a_clock_is_a_config_error_naming_it(layer: str, clock: object):
    settings: dict[str, Any] = {"clock": clock}
    if layer == "rate_limit":
        settings["rate"] = 1
    with pytest.raises(rs.ConfigError) as info:
        rs.resilient(**{layer: settings})
    assert info.value.path == ("resilient", layer, "clock")


class CountsCalls:
    """A metrics-like hook: it takes call.finished, so calls are counted, attempts untraced."""

    events = (CallFinished,)

    def __call__(self, event: Any) -> None:
        pass


@pytest.mark.parametrize("hooks", ["none", "counting"])
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_the_error_a_retry_gives_up_on_is_the_last_one_unchained(asynchronous: bool, hooks: str):
    set_hooks([] if hooks == "none" else [CountsCalls()])
    calls = 0

    def fails() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError(f"attempt {calls}")

    async def fails_async() -> None:
        fails()

    # No wait between attempts: the retry runs straight on from the first failure.
    policy = rs.resilient(retry={"attempts": 3, "backoff": 0}, breaker=True)

    def call() -> None:
        if asynchronous:
            asyncio.run(policy(fails_async)())
        else:
            policy(fails)()

    with pytest.raises(ConnectionError) as caught:
        call()

    assert str(caught.value) == "attempt 3"
    # Not "during handling of the above exception": the first failure is not its context.
    assert caught.value.__context__ is None
