"""The policies sharing state through one Redis across real processes.

``rs.circuit_breaker``, ``rs.rate_limit`` and ``rs.ttl_cache`` with ``storage=<Redis>``, in
4 spawned interpreters that start together, many threads each: what the stores promise
(``test_redis_processes``) must hold through the policies that use them.

What the decorated functions did is counted in Redis itself (``INCR``), where every
process can add to it.
"""

from __future__ import annotations

import time
from multiprocessing.pool import Pool
from typing import Any

import pytest
import redis

import resilient_scan as rs
from resilient_scan.redis import RedisBackend
from tests.integrations.conftest import PROCESSES, in_threads, together

RESET = 0.3  # the breaker's reset timeout, shorter than together()'s 0.5 s to the start


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5)


def _busiest(times: list[float], window: float) -> int:
    """The most of *times* in any sliding *window* (each window starts at one of them)."""
    times = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= window:
            first += 1
        most = max(most, last - first + 1)
    return most


# -- tasks (they run in the worker processes) -------------------------------------------------


def call_half_open(
    start_at: float, url: str, namespace: str, threads: int
) -> tuple[int, list[str]]:
    """Every thread calls the breaker's function once, while the breaker is half-open.

    The trial (whichever call gets it) returns only once every other call of every process
    has been rejected, so a second trial would be seen, however slow the machine.
    """
    backend = RedisBackend(url, namespace=namespace)
    client = _client(url)
    others = PROCESSES * threads - 1

    @rs.circuit_breaker(fail_max=1, reset_timeout=RESET, name="api", storage=backend)
    def fetch() -> str:
        client.incr(f"{namespace}:trials")
        deadline = time.monotonic() + 10
        while int(client.get(f"{namespace}:rejected") or 0) < others:
            if time.monotonic() > deadline:
                break
            time.sleep(0.005)
        return "ran"

    def work() -> str:
        try:
            return fetch()
        except rs.CircuitOpenError:
            client.incr(f"{namespace}:rejected")
            return "rejected"

    return in_threads(start_at, work, threads)


def fail_until_open(start_at: float, url: str, namespace: str, calls: int) -> tuple[int, list[str]]:
    """*calls* calls of a function that always fails, through one shared breaker."""
    backend = RedisBackend(url, namespace=namespace)
    client = _client(url)

    @rs.circuit_breaker(fail_max=5, reset_timeout=60, name="api", storage=backend)
    def down() -> None:
        client.incr(f"{namespace}:requests")
        time.sleep(0.01)
        raise ConnectionError("HTTP 503")

    def work() -> list[str]:
        outcomes = []
        for _ in range(calls):
            try:
                down()
            except ConnectionError:  # noqa: PERF203 - the outcome is what is counted
                outcomes.append("failed")
            except rs.CircuitOpenError:
                outcomes.append("rejected")
        return outcomes

    pid, found = in_threads(start_at, work, 1)
    return pid, found[0]


def call_limited(
    start_at: float, url: str, namespace: str, rate: float, calls: int
) -> tuple[int, list[float]]:
    """4 threads each make *calls* calls through one shared rs.rate_limit; when they started."""
    backend = RedisBackend(url, namespace=namespace)
    limited = rs.rate_limit(rate, name="api", storage=backend)(time.time)

    def work() -> list[float]:
        return [limited() for _ in range(calls)]

    pid, found = in_threads(start_at, work, 4)
    return pid, [at for times in found for at in times]


def miss_together(start_at: float, url: str, namespace: str, threads: int) -> tuple[int, list[Any]]:
    """Every thread calls one cached function with the same key at once."""
    backend = RedisBackend(url, namespace=namespace)
    client = _client(url)

    @rs.ttl_cache(ttl=60, storage=backend)
    def quote(ticker: str) -> dict[str, Any]:
        client.incr(f"{namespace}:loads")
        time.sleep(0.1)
        return {"ticker": ticker, "price": 187.25}

    return in_threads(start_at, lambda: quote("AAPL"), threads)


# -- tests -----------------------------------------------------------------------------------


def test_one_half_open_trial_across_every_process_through_the_policy(
    pool: Pool, redis_url: str, namespace: str, raw: redis.Redis
):
    threads = 8
    breaker = rs.CircuitBreaker(
        fail_max=1,
        reset_timeout=RESET,
        name="api",
        storage=RedisBackend(redis_url, namespace=namespace),
    )
    with pytest.raises(ConnectionError):
        breaker.call(_fail)
    assert breaker.state == "open"
    verdicts = [
        v for found in together(pool, call_half_open, redis_url, namespace, threads) for v in found
    ]
    assert sorted(set(verdicts)) == ["ran", "rejected"]
    assert verdicts.count("ran") == 1
    assert verdicts.count("rejected") == PROCESSES * threads - 1
    assert raw.get(f"{namespace}:trials") == b"1"
    assert breaker.state == "closed"  # the trial's success closed it for every process


def _fail() -> None:
    raise ConnectionError("HTTP 503")


def test_a_shared_breaker_opens_after_fail_max_failures_from_all_processes_together(
    pool: Pool, redis_url: str, namespace: str, raw: redis.Redis
):
    calls = 10
    outcomes = together(pool, fail_until_open, redis_url, namespace, calls)
    requests = int(raw.get(f"{namespace}:requests") or 0)
    # 5 failures open it for everyone; a call already admitted in each other process when
    # it opens may still fail. A breaker per process would let 4 x 5 = 20 through.
    assert 5 <= requests <= 5 + PROCESSES - 1
    assert sum(found.count("failed") for found in outcomes) == requests
    assert all(found[-1] == "rejected" for found in outcomes)


def test_processes_sharing_rs_rate_limit_share_one_quota(
    pool: Pool, redis_url: str, namespace: str
):
    rate, calls = 50.0, 4  # 4 processes x 4 threads x 4 calls = 64 calls, 20 ms apart
    started = sorted(
        at
        for found in together(pool, call_limited, redis_url, namespace, rate, calls)
        for at in found
    )
    total = PROCESSES * 4 * calls
    assert len(started) == total
    # One quota: the 64 calls took 63 intervals (a quota per process: a quarter of that).
    # The first call may have started up to half an interval late.
    assert started[-1] - started[0] >= (total - 1) / rate - 0.5 / rate
    # And never more than the rate in a second, plus its edge and one late call.
    assert _busiest(started, 1.0) <= rate + 2


def test_misses_on_one_key_in_every_process_load_it_once_through_the_policy(
    pool: Pool, redis_url: str, namespace: str, raw: redis.Redis
):
    threads = 8
    values = [
        v for found in together(pool, miss_together, redis_url, namespace, threads) for v in found
    ]
    assert values == [{"ticker": "AAPL", "price": 187.25}] * (PROCESSES * threads)
    assert raw.get(f"{namespace}:loads") == b"1"
