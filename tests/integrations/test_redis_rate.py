"""The Redis rate store: GCRA in one script, on Redis's clock, one quota for all processes."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import redis

import resilient_scan as rs
from resilient_scan._storage import RateStore, Reservation
from resilient_scan.redis import RedisBackend, RedisRateStore

INTERVAL = 0.1  # 10 permits a second


def limiter_on(backend: RedisBackend, name: str | None = None) -> RedisRateStore:
    return backend.rate_store(name or f"r-{uuid.uuid4().hex[:8]}", rs.SystemClock())


def reserve(
    store: RateStore, *, burst: int = 1, max_wait: float = 10.0, now: float = 0.0
) -> Reservation:
    return store.reserve("api", now=now, interval=INTERVAL, burst=burst, max_wait=max_wait)


def test_the_store_is_a_rate_store(backend: RedisBackend):
    assert isinstance(limiter_on(backend), RateStore)


def test_a_burst_is_granted_at_once_then_permits_come_one_interval_apart(backend: RedisBackend):
    store = limiter_on(backend)
    waits, spans = [], []
    for _ in range(6):
        before = time.monotonic()
        waits.append(reserve(store, burst=3).wait)
        spans.append((before, time.monotonic()))
    assert waits[:3] == [0.0, 0.0, 0.0]
    # Each later permit is one interval after the one before, less the time that passed
    # between the two reservations on Redis's clock: somewhere between the calls' spans,
    # however long a loaded machine takes over each (plus 1 ms for the two clocks).
    for n in range(3, 6):
        least = spans[n][0] - spans[n - 1][1]
        most = spans[n][1] - spans[n - 1][0]
        gap = waits[n] - waits[n - 1] if n > 3 else waits[n]
        if n == 3:  # the first permit after the burst: one interval after the burst's first
            least, most = spans[3][0] - spans[0][1], spans[3][1] - spans[0][0]
        assert INTERVAL - most - 0.001 <= gap <= INTERVAL - least + 0.001


def test_a_permit_further_away_than_max_wait_is_not_granted_and_not_reserved(
    backend: RedisBackend,
):
    store = limiter_on(backend)
    assert reserve(store).granted
    refused = reserve(store, max_wait=0.05)
    assert not refused.granted
    assert 0.05 < refused.wait <= INTERVAL
    # Nothing was reserved: the next caller willing to wait gets the same slot.
    granted = reserve(store, max_wait=1.0)
    assert granted.granted
    assert granted.wait <= refused.wait


def test_keys_are_separate_quotas(backend: RedisBackend):
    store = limiter_on(backend)
    assert store.reserve("a", now=0, interval=INTERVAL, burst=1, max_wait=0).granted
    assert store.reserve("b", now=0, interval=INTERVAL, burst=1, max_wait=0).granted
    assert not store.reserve("a", now=0, interval=INTERVAL, burst=1, max_wait=0).granted


def test_process_clocks_do_not_matter_only_redis_time_does(redis_url: str, namespace: str):
    # Two "processes" whose clocks are a day apart still share one quota.
    early, late = (
        limiter_on(RedisBackend(redis_url, namespace=namespace), "api") for _ in range(2)
    )
    assert reserve(early, now=1_000_000.0).wait == 0.0
    second = reserve(late, now=1_086_400.0)
    assert 0.08 < second.wait <= INTERVAL
    third = reserve(early, now=1_000_000.0)
    assert 0.18 < third.wait <= 2 * INTERVAL


def test_many_threads_with_their_own_clients_share_one_quota(redis_url: str, namespace: str):
    stores = [limiter_on(RedisBackend(redis_url, namespace=namespace), "api") for _ in range(4)]
    barrier = threading.Barrier(16)
    waits: list[float] = []
    lock = threading.Lock()

    def take(store: RedisRateStore) -> None:
        barrier.wait()
        for _ in range(5):
            reservation = store.reserve("q", now=0, interval=0.01, burst=1, max_wait=10.0)
            assert reservation.granted
            with lock:
                waits.append(reservation.wait)

    threads = [threading.Thread(target=take, args=(stores[n % 4],)) for n in range(16)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = stores[0].reserve("q", now=0, interval=0.01, burst=1, max_wait=10.0)
    elapsed = time.monotonic() - started
    # Every one of the 80 permits was counted against the one quota: the 81st is 0.8 s
    # after the first, wherever the clients were (less the time since the first).
    assert len(waits) == 80
    assert 0.80 - elapsed - 0.005 <= after.wait <= 0.80
    assert 0.79 - elapsed - 0.005 <= max(waits) <= 0.79


def test_the_key_expires_once_it_stops_mattering(backend: RedisBackend, raw: redis.Redis):
    store = limiter_on(backend)
    reserve(store, burst=1)
    ttl = raw.pttl(store.prefix + "api")
    assert 0 < ttl <= 101
    time.sleep(0.15)
    assert raw.exists(store.prefix + "api") == 0


def test_a_fractional_interval_keeps_its_precision(backend: RedisBackend):
    store = limiter_on(backend)
    # 3 permits a second: 30 reservations must reach 10 s out, not drift by rounding.
    last = Reservation(granted=True, wait=0.0)
    for _ in range(31):
        last = store.reserve("api", now=0, interval=1 / 3, burst=1, max_wait=60)
    assert last.wait == pytest.approx(10.0, abs=0.05)


# -- through the policy: rs.rate_limit(storage=<Redis>) ---------------------------------------


def test_a_policy_with_no_deadline_and_no_max_wait_waits_for_its_permit(backend: RedisBackend):
    # No deadline and no max_wait: the caller may wait for ever (bounded, not infinite, on
    # the wire).
    call = rs.rate_limit(20, storage=backend, name="forever")(time.monotonic)
    started = [call() for _ in range(3)]
    assert started[2] - started[0] >= 0.1 - 0.005
