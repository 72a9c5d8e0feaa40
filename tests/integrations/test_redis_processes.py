"""The Redis stores shared by real processes: 4 interpreters (spawned), many threads each.

Each test hands the same task to 4 worker processes of one pool; the tasks start together
at a wall-clock instant (the processes are already up) and the threads inside each
start together behind a barrier. The same through the policies: ``test_redis_policies``.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from multiprocessing.pool import Pool
from typing import Any

import redis

import resilient_scan as rs
from resilient_scan._storage import MISSING
from resilient_scan.redis import RedisBackend, RedisBreakerStore
from tests.integrations.conftest import PROCESSES, together
from tests.integrations.conftest import in_threads as run_in_threads

THREADS = 8
NOW = 1_000_000.0
RESET = 1.0


def in_threads(start_at: float, work: Callable[[], Any]) -> tuple[int, list[Any]]:
    """Wait for *start_at*, then run *work* on THREADS threads at once; (pid, results)."""
    return run_in_threads(start_at, work, THREADS)


# -- tasks (they run in the worker processes) -------------------------------------------------


def breaker(url: str, namespace: str) -> RedisBreakerStore:
    return RedisBackend(url, namespace=namespace).breaker_store("api", rs.SystemClock())


def admit_at_once(start_at: float, url: str, namespace: str) -> tuple[int, list[str]]:
    store = breaker(url, namespace)
    return in_threads(
        start_at,
        lambda: store.admit(now=NOW + RESET + 0.5, reset_timeout=RESET, trial_lease=60).verdict,
    )


def fail_many(start_at: float, url: str, namespace: str, times: int) -> tuple[int, int]:
    store = breaker(url, namespace)

    def work() -> int:
        for _ in range(times):
            admission = store.admit(now=NOW, reset_timeout=RESET, trial_lease=60)
            store.record_failure(admission, now=NOW, fail_max=10**9)
        return times

    pid, done = in_threads(start_at, work)
    return pid, sum(done)


def load_once(start_at: float, url: str, namespace: str) -> tuple[int, list[Any]]:
    """Every thread wants one key: single flight through the store's lease."""
    backend = RedisBackend(url, namespace=namespace)
    cache = backend.cache_store("quotes", maxsize=10, clock=rs.SystemClock())

    def get() -> Any:
        while True:
            value = cache.get("AAPL")
            if value is not MISSING:
                return value
            token = cache.lease("AAPL", 10.0)
            if token is None:
                value = cache.wait_for("AAPL", 10.0)
                if value is not MISSING:
                    return value
                continue  # the loader gave up: take the lease ourselves
            try:
                backend.client.incr(f"{namespace}:loads")
                time.sleep(0.1)
                value = {"ticker": "AAPL", "price": 187.25}
                cache.set("AAPL", value, 60)
                return value
            finally:
                cache.release("AAPL", token)

    return in_threads(start_at, get)


def take_permits(start_at: float, url: str, namespace: str) -> tuple[int, list[float]]:
    store = RedisBackend(url, namespace=namespace).rate_store("api", rs.SystemClock())

    def work() -> float:
        reservation = store.reserve("quota", now=0.0, interval=0.01, burst=1, max_wait=10.0)
        assert reservation.granted
        return reservation.wait

    return in_threads(start_at, work)


def take_trial_and_die(url: str, namespace: str) -> None:
    store = breaker(url, namespace)
    admission = store.admit(now=NOW + RESET, reset_timeout=RESET, trial_lease=5.0)
    assert admission.verdict == "trial"
    os._exit(0)  # no outcome reported, no lease given back


# -- tests -----------------------------------------------------------------------------------


def open_breaker(url: str, namespace: str) -> RedisBreakerStore:
    store = breaker(url, namespace)
    admission = store.admit(now=NOW, reset_timeout=RESET, trial_lease=60)
    store.record_failure(admission, now=NOW, fail_max=1)
    return store


def test_one_half_open_trial_across_all_processes_and_threads(
    pool: Pool, redis_url: str, namespace: str
):
    open_breaker(redis_url, namespace)
    verdicts = [v for found in together(pool, admit_at_once, redis_url, namespace) for v in found]
    assert len(verdicts) == PROCESSES * THREADS
    assert verdicts.count("trial") == 1


def test_failures_counted_by_every_process_all_add_up(pool: Pool, redis_url: str, namespace: str):
    done = together(pool, fail_many, redis_url, namespace, 25)
    assert sum(done) == PROCESSES * THREADS * 25
    snapshot = breaker(redis_url, namespace).snapshot(now=NOW, reset_timeout=RESET)
    assert snapshot.failures == PROCESSES * THREADS * 25


def test_a_trial_held_by_a_process_that_died_is_given_again_after_its_lease(
    redis_url: str, namespace: str
):
    store = open_breaker(redis_url, namespace)
    holder = multiprocessing.get_context("spawn").Process(
        target=take_trial_and_die, args=(redis_url, namespace)
    )
    holder.start()
    holder.join(timeout=60)
    assert holder.exitcode == 0
    during = store.admit(now=NOW + RESET + 4.9, reset_timeout=RESET, trial_lease=5.0)
    assert (during.verdict, during.state) == ("rejected", "half-open")
    after = store.admit(now=NOW + RESET + 5.0, reset_timeout=RESET, trial_lease=5.0)
    assert after.verdict == "trial"


def test_many_misses_on_one_key_in_every_process_load_it_once(
    pool: Pool, redis_url: str, namespace: str, raw: redis.Redis
):
    values = [v for found in together(pool, load_once, redis_url, namespace) for v in found]
    assert values == [{"ticker": "AAPL", "price": 187.25}] * (PROCESSES * THREADS)
    assert raw.get(f"{namespace}:loads") == b"1"


def test_every_process_draws_from_one_quota(pool: Pool, redis_url: str, namespace: str):
    started = time.time()
    waits = sorted(w for found in together(pool, take_permits, redis_url, namespace) for w in found)
    after = RedisBackend(redis_url, namespace=namespace).rate_store("api", rs.SystemClock())
    next_one = after.reserve("quota", now=0.0, interval=0.01, burst=1, max_wait=10.0)
    took = time.time() - started - 0.5  # since the common start, at least
    # 32 permits 10 ms apart, wherever they were asked for: the 33rd is 0.32 s after the
    # first (less the time since the first).
    assert len(waits) == PROCESSES * THREADS
    assert 0.31 - took - 0.005 <= waits[-1] <= 0.31
    assert 0.32 - took - 0.005 <= next_one.wait <= 0.32
