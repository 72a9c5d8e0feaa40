"""rs.ttl_cache: successes only, expiry on the policy clock, one call per key under load."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor

import pytest

import resilient_scan as rs
from resilient_scan._storage import MISSING
from resilient_scan.testing import FakeClock
from tests.helpers import Calls

THREADS = 16


def test_a_second_call_with_the_same_arguments_is_a_hit(clock: FakeClock):
    counter = Calls()

    @rs.ttl_cache(ttl=60, clock=clock)
    def quote(symbol: str) -> str:
        counter.add(symbol)
        return f"{symbol}:{len(counter.items)}"

    assert quote("AAPL") == "AAPL:1"
    assert quote("AAPL") == "AAPL:1"
    assert quote("MSFT") == "MSFT:2"
    assert counter.items == ["AAPL", "MSFT"]


def test_a_none_result_is_cached_like_any_other_success(clock: FakeClock):
    counter = Calls()

    @rs.ttl_cache(ttl=60, clock=clock)
    def nothing() -> None:
        counter.add(None)

    nothing()
    nothing()
    assert len(counter.items) == 1


def test_an_entry_expires_after_its_ttl(clock: FakeClock):
    counter = Calls()

    @rs.ttl_cache(ttl=10, clock=clock)
    def quote(symbol: str) -> int:
        counter.add(symbol)
        return len(counter.items)

    assert quote("AAPL") == 1
    clock.advance(9.5)
    assert quote("AAPL") == 1
    clock.advance(1.0)
    assert quote("AAPL") == 2


def test_exceptions_are_never_cached(clock: FakeClock):
    outcomes: list[Exception | str] = [ConnectionError("down"), "up"]

    @rs.ttl_cache(ttl=60, clock=clock)
    def status() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    with pytest.raises(ConnectionError):
        status()
    assert status() == "up"
    assert status() == "up"
    assert outcomes == []


def test_concurrent_misses_on_one_key_run_the_body_once_and_share_its_value():
    counter = Calls()
    arrived = Calls()
    all_arrived = threading.Event()
    start_together = threading.Barrier(THREADS)

    def key(symbol: str) -> Hashable:
        # Each caller builds its key before it looks the key up.
        arrived.add(symbol)
        if len(arrived.items) == THREADS:
            all_arrived.set()
        return symbol

    @rs.ttl_cache(ttl=60, key=key)
    def quote(symbol: str) -> str:
        counter.add(symbol)
        all_arrived.wait(5.0)
        time.sleep(0.2)  # ample time for every caller to join the one running call
        return f"{symbol}-quote"

    def call(_: int) -> str:
        start_together.wait(timeout=10)
        return quote("AAPL")

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        values = list(pool.map(call, range(THREADS)))

    assert values == ["AAPL-quote"] * THREADS
    assert counter.items == ["AAPL"]
    info = quote.cache_info()
    assert (info.hits, info.misses) == (THREADS - 1, 1)


def test_when_the_one_call_fails_every_waiting_caller_gets_its_exception():
    counter = Calls()
    arrived = Calls()
    all_arrived = threading.Event()
    start_together = threading.Barrier(THREADS)

    def key(symbol: str) -> Hashable:
        arrived.add(symbol)
        if len(arrived.items) == THREADS:
            all_arrived.set()
        return symbol

    @rs.ttl_cache(ttl=60, key=key)
    def quote(symbol: str) -> str:
        counter.add(symbol)
        all_arrived.wait(5.0)
        time.sleep(0.2)
        raise ConnectionError("quote service down")

    def call(_: int) -> Exception | str:
        start_together.wait(timeout=10)
        try:
            return quote("AAPL")
        except ConnectionError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        outcomes = list(pool.map(call, range(THREADS)))

    assert all(isinstance(outcome, ConnectionError) for outcome in outcomes)
    assert counter.items == ["AAPL"]


def test_cache_info_counts_hits_misses_and_size(clock: FakeClock):
    @rs.ttl_cache(ttl=60, maxsize=8, clock=clock)
    def double(x: int) -> int:
        return 2 * x

    double(1)
    double(1)
    double(1)
    double(2)
    info = double.cache_info()
    assert (info.hits, info.misses, info.maxsize, info.currsize) == (2, 2, 8, 2)


def test_cache_clear_drops_entries_and_resets_the_counters(clock: FakeClock):
    counter = Calls()

    @rs.ttl_cache(ttl=60, clock=clock)
    def double(x: int) -> int:
        counter.add(x)
        return 2 * x

    double(1)
    double(1)
    double.cache_clear()
    info = double.cache_info()
    assert (info.hits, info.misses, info.currsize) == (0, 0, 0)
    double(1)
    assert counter.items == [1, 1]


def test_the_key_hook_decides_which_calls_share_an_entry(clock: FakeClock):
    counter = Calls()

    def by_symbol(symbol: str, *, request_id: str) -> Hashable:
        return symbol.upper()

    @rs.ttl_cache(ttl=60, key=by_symbol, clock=clock)
    def quote(symbol: str, *, request_id: str) -> str:
        counter.add(request_id)
        return f"{symbol.upper()} via {request_id}"

    assert quote("aapl", request_id="r1") == "AAPL via r1"
    assert quote("AAPL", request_id="r2") == "AAPL via r1"
    assert counter.items == ["r1"]


def test_an_unhashable_argument_raises_a_type_error_that_says_to_pass_key(clock: FakeClock):
    @rs.ttl_cache(ttl=60, clock=clock)
    def total(values: list[int]) -> int:
        return sum(values)

    with pytest.raises(TypeError, match="key="):
        total([1, 2, 3])


def test_maxsize_evicts_the_least_recently_used_entry(clock: FakeClock):
    counter = Calls()

    @rs.ttl_cache(ttl=60, maxsize=2, clock=clock)
    def double(x: int) -> int:
        counter.add(x)
        return 2 * x

    double(1)
    double(2)
    double(1)  # 1 is now more recently used than 2
    double(3)  # evicts 2
    assert double.cache_info().currsize == 2
    double(1)
    assert counter.items == [1, 2, 3]
    double(2)
    assert counter.items == [1, 2, 3, 2]


class DictStore:
    """A CacheStore kept in a plain dict, as a shared cache's client would be."""

    def __init__(self, *, fail_get: bool = False, fail_set: bool = False) -> None:
        self.data: dict[Hashable, object] = {}
        self.fail_get = fail_get
        self.fail_set = fail_set
        self.ttls: list[float] = []

    def get(self, key: Hashable) -> object:
        if self.fail_get:
            raise ConnectionError("cache server down")
        return self.data.get(key, MISSING)

    def set(self, key: Hashable, value: object, ttl: float) -> None:
        if self.fail_set:
            raise ConnectionError("cache server down")
        self.ttls.append(ttl)
        self.data[key] = value

    def clear(self) -> None:
        self.data.clear()

    def __len__(self) -> int:
        return len(self.data)


def test_a_custom_store_is_used_even_while_it_is_empty():
    store = DictStore()
    cached = rs.ttl_cache(ttl=60, storage=store)(lambda x: x * 2)
    assert cached(2) == 4
    assert store.data == {(2,): 4}
    assert store.ttls == [60.0]  # the policy's TTL goes to the store with the value
    assert cached(2) == 4
    assert cached.cache_info().hits == 1


@pytest.mark.parametrize("failing", ["get", "set"])
def test_a_failing_store_costs_the_caching_not_the_call(failing: str):
    store = DictStore(fail_get=failing == "get", fail_set=failing == "set")
    release = threading.Event()
    calls = []

    @rs.ttl_cache(ttl=60, storage=store)
    def slow(x: int) -> str:
        calls.append(x)
        release.wait(5)
        return f"value {x}"

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(slow, 1) for _ in range(4)]
        time.sleep(0.1)
        release.set()
        results = [future.result(timeout=10) for future in futures]
    # Every caller gets the real value, and concurrent misses still share one call.
    assert results == ["value 1"] * 4
    assert calls == [1]
