"""rs.ttl_cache on a store shared by several processes: a lease so one process loads a key.

`SharedDictStore` plays the shared store (Redis, in production); each "process" is a
separate cached wrapper of the same function, with its own loads in flight, as separate
processes would have.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import pytest

import resilient_scan as rs
from resilient_scan._storage import MISSING, SharedCacheStore
from resilient_scan.instrumentation import CacheStoreFailed
from resilient_scan.testing import CapturedEvents
from tests.helpers import Calls

PROCESSES = 4
THREADS = 4


class SharedDictStore:
    """A `SharedCacheStore` in memory: entries (JSON only, as a real codec), leases, waits."""

    def __init__(self, *, fail: frozenset[str] = frozenset()) -> None:
        self.data: dict[Hashable, Any] = {}
        self.leases: dict[Hashable, tuple[str, float]] = {}
        self.fail = fail
        self.operations: list[str] = []
        self._changed = threading.Condition()
        self._tokens = itertools.count(1)

    def _check(self, operation: str) -> None:
        self.operations.append(operation)
        if operation in self.fail:
            raise ConnectionError(f"shared cache down ({operation})")

    def get(self, key: Hashable) -> Any:
        self._check("get")
        with self._changed:
            return self.data.get(key, MISSING)

    def set(self, key: Hashable, value: Any, ttl: float) -> None:
        self._check("set")
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise rs.CacheEncodeError("shared", str(exc)) from exc
        with self._changed:
            self.data[key] = value
            self._changed.notify_all()

    def clear(self) -> None:
        with self._changed:
            self.data.clear()

    def __len__(self) -> int:
        with self._changed:
            return len(self.data)

    def lease(self, key: Hashable, seconds: float) -> str | None:
        self._check("lease")
        with self._changed:
            holder = self.leases.get(key)
            if holder is not None and holder[1] > time.monotonic():
                return None
            token = f"token-{next(self._tokens)}"
            self.leases[key] = (token, time.monotonic() + seconds)
            return token

    def release(self, key: Hashable, token: str) -> None:
        self._check("release")
        with self._changed:
            if self.leases.get(key, ("", 0.0))[0] == token:
                del self.leases[key]
                self._changed.notify_all()

    def wait_for(self, key: Hashable, timeout: float) -> Any:
        self._check("wait_for")
        with self._changed:
            # The value, or the lease gone without one (that load failed): stop waiting.
            self._changed.wait_for(lambda: key in self.data or key not in self.leases, timeout)
            return self.data.get(key, MISSING)


def test_the_test_store_is_a_shared_cache_store():
    assert isinstance(SharedDictStore(), SharedCacheStore)


def _processes(
    store: SharedDictStore, body: Callable[[str], Any], **settings: Any
) -> list[Callable[[str], Any]]:
    return [rs.ttl_cache(ttl=60, storage=store, **settings)(body) for _ in range(PROCESSES)]


def _all_at_once(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    outcomes: list[Any] = [None] * len(calls)
    start_together = threading.Barrier(len(calls))

    def run(index: int) -> None:
        start_together.wait(timeout=5)
        try:
            outcomes[index] = calls[index]()
        except Exception as exc:  # the test looks at what each got
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return outcomes


def test_one_process_loads_a_key_while_the_others_wait_for_its_value():
    store = SharedDictStore()
    loads = Calls()

    def quote(symbol: str) -> str:
        loads.add(symbol)
        time.sleep(0.1)  # long enough for every caller of every process to be waiting
        return f"{symbol}-quote"

    processes = _processes(store, quote)
    calls = [lambda p=p: p("AAPL") for p in processes for _ in range(THREADS)]
    outcomes = _all_at_once(calls)
    assert outcomes == ["AAPL-quote"] * (PROCESSES * THREADS)
    assert loads.count == 1
    assert store.leases == {}  # given back after the load
    # Each process but the loader waited for the value once, not once per thread.
    assert store.operations.count("wait_for") == PROCESSES - 1


def test_when_the_lease_holder_never_stores_the_others_load_after_the_lease():
    store = SharedDictStore()
    assert store.lease(("AAPL",), 60.0) is not None  # a process that died holding the lease
    loads = Calls()

    @rs.ttl_cache(ttl=60, storage=store, lease=0.05)
    def quote(symbol: str) -> str:
        loads.add(symbol)
        return f"{symbol}-quote"

    began = time.monotonic()
    assert quote("AAPL") == "AAPL-quote"
    assert time.monotonic() - began >= 0.05
    assert loads.items == ["AAPL"]


def test_a_waiter_for_another_process_stops_at_its_deadline():
    store = SharedDictStore()
    assert store.lease(("AAPL",), 60.0) is not None
    quote = rs.ttl_cache(ttl=60, storage=store)(lambda symbol: f"{symbol}-quote")
    began = time.monotonic()
    with pytest.raises(rs.ScanTimeout), rs.deadline_after(0.03):
        quote("AAPL")
    assert time.monotonic() - began < 2.0


def test_a_failed_load_gives_the_lease_back_so_the_next_call_loads_at_once():
    store = SharedDictStore()
    outcomes: list[Exception | str] = [ConnectionError("down"), "up"]

    def status(service: str) -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    first, second = _processes(store, status)[:2]
    with pytest.raises(ConnectionError):
        first("api")
    assert store.leases == {}
    assert second("api") == "up"
    assert "wait_for" not in store.operations


def test_a_value_the_store_cannot_encode_is_an_error_for_every_caller_of_that_load():
    store = SharedDictStore()
    calls = Calls()

    def snapshot(symbol: str) -> object:
        calls.add(symbol)
        time.sleep(0.05)
        return {symbol, "not JSON"}  # a set: the JSON codec refuses it

    cached = rs.ttl_cache(ttl=60, storage=store)(snapshot)
    outcomes = _all_at_once([lambda: cached("AAPL") for _ in range(THREADS)])
    assert all(isinstance(outcome, rs.CacheEncodeError) for outcome in outcomes)
    assert calls.count == 1
    assert store.data == {}
    assert store.leases == {}


@pytest.mark.parametrize("operation", ["get", "set", "lease", "release", "wait_for"])
def test_a_shared_store_that_fails_costs_the_caching_not_the_call(
    operation: str, events: CapturedEvents
):
    store = SharedDictStore(fail=frozenset({operation}))
    if operation == "wait_for":
        assert store.lease(("AAPL",), 0.05) is not None  # so that the call must wait
    quote = rs.ttl_cache(ttl=60, storage=store)(lambda symbol: f"{symbol}-quote")
    assert quote("AAPL") == "AAPL-quote"
    failed = events.of(CacheStoreFailed)
    assert operation in [event.operation for event in failed]
    assert all(event.error_type == "ConnectionError" for event in failed)


def test_coroutines_of_several_processes_load_a_key_once():
    store = SharedDictStore()
    loads = Calls()

    async def quote(symbol: str) -> str:
        loads.add(symbol)
        await asyncio.sleep(0.05)
        return f"{symbol}-quote"

    processes = [rs.ttl_cache(ttl=60, storage=store)(quote) for _ in range(PROCESSES)]

    async def main() -> list[Any]:
        return await asyncio.gather(
            *(process("AAPL") for process in processes for _ in range(THREADS))
        )

    assert asyncio.run(main()) == ["AAPL-quote"] * (PROCESSES * THREADS)
    assert loads.count == 1
    assert "wait_for" not in store.operations  # coroutines look now and then, never block


def test_a_coroutine_waiting_for_another_process_stops_at_its_deadline():
    store = SharedDictStore()
    assert store.lease(("AAPL",), 60.0) is not None  # another process is loading, for long

    @rs.ttl_cache(ttl=60, storage=store)
    async def quote(symbol: str) -> str:
        return f"{symbol}-quote"

    async def main() -> float:
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(rs.ScanTimeout), rs.deadline_after(0.03):
            await quote("AAPL")
        return loop.time() - began

    assert asyncio.run(main()) < 1.0
