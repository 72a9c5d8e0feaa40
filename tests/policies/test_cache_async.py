"""rs.ttl_cache on coroutine functions: a real event loop, a real socket on 127.0.0.1."""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

import resilient_scan as rs
from resilient_scan.instrumentation import CacheHit, CacheLoaded, CacheMiss
from resilient_scan.testing import ApiSimulator, CapturedEvents, Endpoint

QUOTE = "/v1/quote"
SLOW = "/v1/slow-quote"
DOWN = "/v1/down"
TASKS = 20


@pytest.fixture(scope="module")
def api() -> Iterator[ApiSimulator]:
    endpoints = (
        Endpoint(QUOTE, "quotes", 0.05, "ok", {"symbol": "AAPL", "price": 196.5}),
        Endpoint(SLOW, "quotes", 0.15, "ok", {"symbol": "AAPL", "price": 196.5}),
        Endpoint(DOWN, "quotes", 0.05, "down", {}),
    )
    with ApiSimulator(endpoints=endpoints) as simulator:
        yield simulator


class HTTPStatusError(Exception):
    """A response that is not 200."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


async def get_json(base_url: str, path: str) -> dict[str, Any]:
    """GET *path* over a plain asyncio socket (HTTP/1.0: the server closes when done)."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    if status != 200:
        raise HTTPStatusError(status)
    return dict(json.loads(body))


def cached_fetch(api: ApiSimulator, **settings: Any) -> Any:
    @rs.ttl_cache(ttl=60, **settings)
    async def fetch(path: str) -> dict[str, Any]:
        return await get_json(api.url, path)

    return fetch


async def until(predicate: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out waiting"
        await asyncio.sleep(0.002)


async def settle() -> None:
    """Let every ready task run until it waits on something."""
    for _ in range(3):
        await asyncio.sleep(0)


def test_the_wrapper_of_a_coroutine_function_is_a_coroutine_function(api: ApiSimulator):
    fetch = cached_fetch(api)
    assert inspect.iscoroutinefunction(fetch)
    assert fetch.__name__ == "fetch"


def test_an_awaited_result_is_cached_and_awaited_again_from_the_cache(
    api: ApiSimulator, events: CapturedEvents
):
    fetch = cached_fetch(api)
    before = api.requests(QUOTE)

    async def main() -> list[dict[str, Any]]:
        return [await fetch(QUOTE), await fetch(QUOTE), await fetch(QUOTE)]

    results = asyncio.run(main())
    assert results == [{"symbol": "AAPL", "price": 196.5}] * 3
    assert api.requests(QUOTE) - before == 1
    info = fetch.cache_info()
    assert (info.hits, info.misses, info.currsize) == (2, 1, 1)
    assert [
        type(event) for event in events if isinstance(event, (CacheMiss, CacheLoaded, CacheHit))
    ] == [
        CacheMiss,
        CacheLoaded,
        CacheHit,
        CacheHit,
    ]


def test_concurrent_tasks_missing_on_one_key_make_one_request(api: ApiSimulator):
    fetch = cached_fetch(api)
    before = api.requests(QUOTE)

    async def one_task() -> dict[str, Any]:
        return dict(await fetch(QUOTE))

    async def main() -> list[dict[str, Any]]:
        return await asyncio.gather(*(one_task() for _ in range(TASKS)))

    results = asyncio.run(main())
    assert results == [{"symbol": "AAPL", "price": 196.5}] * TASKS
    assert api.requests(QUOTE) - before == 1
    info = fetch.cache_info()
    assert (info.hits, info.misses) == (TASKS - 1, 1)


def test_a_failed_load_is_shared_by_its_waiters_and_never_cached(api: ApiSimulator):
    fetch = cached_fetch(api)
    before = api.requests(DOWN)

    async def main() -> list[Any]:
        first = await asyncio.gather(*(fetch(DOWN) for _ in range(5)), return_exceptions=True)
        second = await asyncio.gather(fetch(DOWN), return_exceptions=True)
        return [*first, *second]

    outcomes = asyncio.run(main())
    assert all(isinstance(outcome, HTTPStatusError) for outcome in outcomes)
    assert {outcome.status for outcome in outcomes} == {503}
    assert api.requests(DOWN) - before == 2  # one shared load, then one more: nothing cached


def test_a_cancelled_leader_neither_cancels_nor_poisons_its_waiters(api: ApiSimulator):
    fetch = cached_fetch(api)
    before = api.requests(SLOW)

    async def main() -> tuple[Any, list[Any]]:
        leader = asyncio.create_task(fetch(SLOW))
        await until(lambda: api.requests(SLOW) - before == 1)  # the leader's request is out
        waiters = [asyncio.create_task(fetch(SLOW)) for _ in range(5)]
        await settle()  # every waiter now waits on the leader's load
        leader.cancel()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        leader_outcome = await asyncio.gather(leader, return_exceptions=True)
        return leader_outcome[0], results

    leader_outcome, results = asyncio.run(main())
    assert isinstance(leader_outcome, asyncio.CancelledError)
    assert results == [{"symbol": "AAPL", "price": 196.5}] * 5
    assert api.requests(SLOW) - before == 2  # the cancelled load, and one a waiter made
    assert fetch.cache_info().currsize == 1


def test_a_cancelled_waiter_leaves_the_load_and_the_other_waiters_alone(api: ApiSimulator):
    fetch = cached_fetch(api)
    before = api.requests(SLOW)

    async def main() -> tuple[Any, list[Any]]:
        leader = asyncio.create_task(fetch(SLOW))
        await until(lambda: api.requests(SLOW) - before == 1)
        quitter = asyncio.create_task(fetch(SLOW))
        others = [asyncio.create_task(fetch(SLOW)) for _ in range(3)]
        await settle()
        quitter.cancel()
        results = await asyncio.gather(leader, *others, return_exceptions=True)
        quit_outcome = await asyncio.gather(quitter, return_exceptions=True)
        return quit_outcome[0], results

    quit_outcome, results = asyncio.run(main())
    assert isinstance(quit_outcome, asyncio.CancelledError)
    assert results == [{"symbol": "AAPL", "price": 196.5}] * 4
    assert api.requests(SLOW) - before == 1


def test_a_waiter_waits_no_longer_than_its_deadline(api: ApiSimulator):
    fetch = cached_fetch(api)

    async def impatient() -> Any:
        with rs.deadline_after(0.02):
            return await fetch(SLOW)

    async def main() -> tuple[Any, bool, Any]:
        leader = asyncio.create_task(fetch(SLOW))
        await settle()
        waited = await asyncio.gather(impatient(), return_exceptions=True)
        loading_still = not leader.done()
        return waited[0], loading_still, await leader

    waited, loading_still, loaded = asyncio.run(main())
    assert isinstance(waited, rs.ScanTimeout)
    assert loading_still  # the waiter left at its deadline, not when the load ended
    assert loaded == {"symbol": "AAPL", "price": 196.5}


def test_a_task_awaiting_its_own_key_while_loading_it_gets_a_clear_error():
    @rs.ttl_cache(ttl=60)
    async def quote(symbol: str) -> str:
        return await quote(symbol)

    async def main() -> Any:
        return await asyncio.wait_for(quote("AAPL"), timeout=5.0)

    with pytest.raises(rs.ResilientScanError, match="same key"):
        asyncio.run(main())


def test_several_event_loops_in_threads_share_the_cache_safely(api: ApiSimulator):
    fetch = cached_fetch(api)
    before = api.requests(SLOW)
    loops = 3
    start_together = threading.Barrier(loops)
    outcomes: list[Any] = []
    lock = threading.Lock()

    def one_loop() -> None:
        async def main() -> list[Any]:
            return await asyncio.gather(*(fetch(SLOW) for _ in range(10)), return_exceptions=True)

        start_together.wait(timeout=5)
        results = asyncio.run(main())
        with lock:
            outcomes.extend(results)

    threads = [threading.Thread(target=one_loop, daemon=True) for _ in range(loops)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert outcomes == [{"symbol": "AAPL", "price": 196.5}] * (10 * loops)
    assert 1 <= api.requests(SLOW) - before <= loops  # at most one load per loop


def test_cache_clear_works_between_awaits(api: ApiSimulator):
    fetch = cached_fetch(api)
    before = api.requests(QUOTE)

    async def main() -> None:
        await fetch(QUOTE)
        fetch.cache_clear()
        await fetch(QUOTE)

    asyncio.run(main())
    assert api.requests(QUOTE) - before == 2
    assert fetch.cache_info().misses == 1  # counted since the clear


def test_a_waiter_with_a_deadline_cancelled_as_the_load_lands_is_cancelled():
    # asyncio.wait_for before Python 3.12 returned the value and dropped such a cancel.
    gate: asyncio.Event | None = None

    @rs.ttl_cache(ttl=60)
    async def load(key: int) -> str:
        assert gate is not None
        await gate.wait()
        return "value"

    async def waiter() -> str:
        with rs.deadline_after(10):  # a deadline: the waiter waits with a time limit
            return await load(1)

    async def main() -> None:
        nonlocal gate
        gate = asyncio.Event()
        leader = asyncio.create_task(load(1))
        await asyncio.sleep(0)
        follower = asyncio.create_task(waiter())
        await asyncio.sleep(0.01)  # the follower waits on the leader's load
        gate.set()
        await asyncio.sleep(0)  # the leader lands: the follower's event is set ...
        follower.cancel()  # ... and the follower is cancelled from outside, in that step
        with pytest.raises(asyncio.CancelledError):
            await follower
        assert await leader == "value"

    asyncio.run(main())
