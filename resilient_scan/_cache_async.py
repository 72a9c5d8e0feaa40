"""The TTL cache on coroutine functions: single flight across the tasks of an event loop.

The cache's state (`resilient_scan._cache.Cache`: store, counters, generation) is the same
as for synchronous functions; what differs is how callers wait. Loads in flight are kept
per event loop, keyed ``(loop, key)``: the tasks of one loop share one load, and a loop
never awaits another loop's primitives, so the same cached function may be awaited from
several event loops in several threads at once (each loop then loads a key once).

- A waiter awaits an `asyncio.Event` made by the first waiter, never the leader's task or
  future, so a waiter that is cancelled cancels nothing else.
- A leader that is cancelled (or interrupted by any `BaseException` that is not an
  `Exception`) hands nothing to its waiters: they wake, and one of them loads instead. A
  `CancelledError` is never cached, nor shared.
- A waiter waits no longer than its deadline (`time_remaining`), then raises `ScanTimeout`.
- A re-entrant call (the loading task awaiting the same key again) raises
  `ResilientScanError` instead of waiting for itself.

asyncio is imported here, and this module only when a coroutine function is decorated.
Outside an asyncio event loop (Trio), calls are cached but concurrent misses are not
coalesced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any, cast

import anyio

from . import _deadline
from ._cache import AGAIN, MAX_LOOKS, POLL_SECONDS, Cache, Flight, Held
from ._calls import finish_call
from ._clock import is_system
from ._config import CURRENT_SCAN
from ._errors import ScanTimeout
from ._events import CacheHit, CallFinished
from ._instrument import emit, wanted
from ._storage import MISSING

#: Between looks at a shared store while another process loads a key (seconds, doubling).
SHARED_POLL_FIRST = 0.005
SHARED_POLL_MAX = 0.1


def async_wrapper(cache: Cache[Any], *, boundary: bool) -> Callable[..., Any]:
    """The coroutine function that calls through *cache* (see the module's docstring)."""
    cached_call = _cached_call(cache)
    return _boundary(cache, cached_call) if boundary else cached_call


def _cached_call(cache: Cache[Any]) -> Callable[..., Any]:
    name = cache.name
    make_key = cache.make_key
    store_get = cache.store.get
    bump_hit = cache.hits.bump

    async def cached_call(*args: Any, **kwargs: Any) -> Any:
        key = make_key(*args, **kwargs)
        seen = cache.completed
        try:
            value = store_get(key)
        except Exception as exc:
            value = cache.lookup_failed(exc)
        if value is not MISSING:
            bump_hit()
            if wanted(CacheHit):
                emit(CacheHit(name, name))
            return value
        return await _miss(cache, key, seen, args, kwargs)

    return cached_call


def _boundary(cache: Cache[Any], cached_call: Callable[..., Any]) -> Callable[..., Any]:
    async def call_at_boundary(*args: Any, **kwargs: Any) -> Any:
        if CURRENT_SCAN.get() is None and not wanted(CallFinished):
            return await cached_call(*args, **kwargs)
        started = cache.clock.monotonic()
        try:
            result = await cached_call(*args, **kwargs)
        except BaseException as exc:  # a cancellation is counted, never as a failure
            finish_call(cache.name, started, cache.clock, exc)
            raise
        finish_call(cache.name, started, cache.clock, None)
        return result

    return call_at_boundary


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # another async library (Trio): no asyncio primitives to share
        return None


async def _miss(
    cache: Cache[Any], key: Hashable, seen: int, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    loop = _running_loop()
    if loop is None:
        return await _load_alone(cache, key, args, kwargs)
    task = asyncio.current_task()
    flight_key = (loop, key)
    looks = 1
    while True:
        with cache.lock:
            flight = cache.flights.get(flight_key)
            leads = flight is None and (cache.completed == seen or looks > MAX_LOOKS)
            if leads:
                flight = cache.flights[flight_key] = Flight(task, cache.generation)
                if not cache.shared:
                    cache.misses += 1
            seen = cache.completed
        if leads:
            assert flight is not None  # noqa: S101 - made just above
            return await _lead(cache, key, flight_key, flight, (args, kwargs))
        if flight is None:
            looks += 1
            value = cache.lookup(key)
            if value is not MISSING:
                cache.hit(coalesced=False)
                return value
            continue
        outcome = await _follow(cache, flight, task)
        if outcome is not AGAIN:
            return outcome


async def _lead(
    cache: Cache[Any],
    key: Hashable,
    flight_key: Hashable,
    flight: Flight,
    arguments: tuple[tuple[Any, ...], dict[str, Any]],
) -> Any:
    args, kwargs = arguments
    lease: str | None = None
    try:
        if cache.shared:
            lease, value = await _lease_or_wait(cache, key)
            if value is not MISSING:
                flight.value, flight.ok = value, True
                cache.hit(coalesced=True)
                return value
        started = cache.loading(counted=not cache.shared)
        try:
            value = await cache.func(*args, **kwargs)
        except BaseException as exc:
            cache.load_failed(flight, exc, started)
            raise
        cache.settle(key, flight, value, started)
        return value
    finally:
        if lease is not None:
            cache.release(key, lease)
        cache.land(flight_key, flight)


async def _load_alone(
    cache: Cache[Any], key: Hashable, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """A miss outside asyncio: load and store, without coalescing."""
    flight = Flight(None, cache.generation)
    started = cache.loading(counted=False)
    try:
        value = await cache.func(*args, **kwargs)
    except BaseException as exc:
        cache.load_failed(flight, exc, started)
        raise
    cache.settle(key, flight, value, started)
    return value


async def _follow(cache: Cache[Any], flight: Flight, task: object) -> Any:
    if task is not None and flight.owner is task:
        raise cache.reentry_error()
    with cache.lock:
        waiter = None
        if not flight.finished:
            waiter = flight.waiter
            if waiter is None:
                waiter = flight.waiter = asyncio.Event()
    if waiter is not None:
        await _wait(cache, cast("asyncio.Event", waiter))
    outcome = flight.outcome()
    if outcome is not AGAIN:
        cache.hit(coalesced=True)
    return outcome


async def _wait(cache: Cache[Any], waiter: asyncio.Event) -> None:
    """Await *waiter*, no longer than the caller's deadline; `ScanTimeout` past it.

    Waiting never cancels or disturbs the load: a waiter that is cancelled only stops
    waiting.
    """
    deadline = _deadline.current()
    if deadline is None:
        await waiter.wait()
        return
    budget = deadline.remaining()
    started = cache.clock.monotonic()
    if is_system(deadline.clock):
        done = await _wait_for(waiter, budget)
    else:
        done = await _wait_for(waiter, min(budget, POLL_SECONDS))
        while not done and not deadline.expired:
            done = await _wait_for(waiter, min(deadline.remaining(), POLL_SECONDS))
    if not done:
        raise ScanTimeout(cache.name, budget, cache.clock.monotonic() - started)


async def _wait_for(waiter: asyncio.Event, seconds: float) -> bool:
    if waiter.is_set():
        return True
    if seconds <= 0:
        return False
    # anyio's scope, not asyncio.wait_for: before Python 3.12, wait_for drops a cancellation
    # from outside that lands in the step the waited-for event is set.
    with anyio.move_on_after(seconds):
        await waiter.wait()
    return waiter.is_set()


async def _lease_or_wait(cache: Cache[Any], key: Hashable) -> tuple[str | None, Any]:
    """`Cache.lease_or_wait` without blocking the loop: look at the store now and then.

    The store's ``wait_for`` blocks its thread, so a coroutine polls ``get`` instead (every
    5 ms, doubling up to 100 ms), and tries the lease again in between: when the process
    that held it is done without a value (its load failed, or it died and the lease
    expired), this one takes the lease and loads.
    """
    token = cache.take_lease(key)
    if not isinstance(token, Held):
        return token, MISSING
    deadline = _deadline.current()
    wait = cache.policy.lease if deadline is None else min(deadline.remaining(), cache.policy.lease)
    clock = cache.clock
    started = clock.monotonic()
    pause = SHARED_POLL_FIRST
    while True:
        left = wait - (clock.monotonic() - started)
        if deadline is not None:
            left = min(left, deadline.remaining())
        if left <= 0:
            break
        await asyncio.sleep(min(pause, left))
        pause = min(pause * 2, SHARED_POLL_MAX)
        value = cache.lookup(key)
        if value is not MISSING:
            return None, value
        token = cache.take_lease(key)
        if not isinstance(token, Held):
            return token, MISSING
    cache.check_deadline(deadline, wait, started)
    return None, MISSING
