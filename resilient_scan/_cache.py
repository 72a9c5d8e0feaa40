"""The TTL cache policy: successes only, and one call per key however many callers miss.

cachetools' ``cached(condition=...)`` coalesces concurrent misses too, but when the one call
fails, each waiting caller then runs the body again in turn: sixteen waiters on a failing
service make sixteen calls, one after another. Here waiters share the outcome of the one
call, failure included, and nothing but a success is stored.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, cast

import cachetools.keys

from . import _validate
from ._clock import SYSTEM_CLOCK, Clock
from ._errors import ScanTimeout
from ._logging import callable_name, debug_enabled, describe_error, log
from ._stats import record
from ._storage import MISSING, CacheStore, MemoryCacheStore
from ._threads import time_remaining

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


@dataclass(frozen=True)
class CacheInfo:
    """Counters of one cached function, as returned by ``cache_info()``."""

    hits: int
    misses: int
    maxsize: int
    currsize: int


class CachedFunction(Protocol[P, R_co]):
    """A function wrapped by `ttl_cache`: same signature, plus cache controls."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co:
        """Call through the cache."""
        ...

    def cache_clear(self) -> None:
        """Drop every cached result and reset the counters."""
        ...

    def cache_info(self) -> CacheInfo:
        """Return hits, misses, maxsize and current size."""
        ...


@dataclass(frozen=True, kw_only=True)
class CachePolicy:
    """Settings of the cache layer.

    Attributes:
        ttl: Seconds a successful result stays cached.
        maxsize: The most results kept; the least recently used go first.
        key: Builds the cache key from the call's arguments; the default is a hash key of
            all positional and keyword arguments, which must then be hashable.
        store: Where results live; by default a new in-memory `MemoryCacheStore` per
            decorated function.
        clock: Where time comes from (tests pass a fake clock).
    """

    ttl: float
    maxsize: int = 1024
    key: Callable[..., Hashable] | None = None
    store: CacheStore | None = field(default=None, repr=False, compare=False)
    clock: Clock = field(default=SYSTEM_CLOCK, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Validate and normalize the settings."""
        object.__setattr__(self, "ttl", _validate.seconds(self.ttl, "ttl_cache.ttl"))
        _validate.integer(self.maxsize, "ttl_cache.maxsize", minimum=1)
        _validate.callable_or_none(self.key, "ttl_cache.key")
        if self.store is not None and not isinstance(self.store, CacheStore):
            raise _validate.ConfigError(
                "ttl_cache.store", f"must have get, set, clear and len, got {self.store!r}"
            )

    def __call__(self, func: Callable[P, R]) -> CachedFunction[P, R]:
        """Wrap *func* in this cache."""
        _validate.decorated(func, "ttl_cache")
        store = self.store
        if store is None:  # not "or": an empty store is falsy, and every store starts empty
            store = MemoryCacheStore(ttl=self.ttl, maxsize=self.maxsize, clock=self.clock)
        return _Cached(func, store, self.key or cachetools.keys.hashkey, self.maxsize).wrapper()

    def describe(self) -> str:
        """Return a short description, as shown by ``resilient(...).describe()``."""
        return f"ttl_cache(ttl={self.ttl:g}s, maxsize={self.maxsize})"


class _Flight(Generic[R]):
    """The one running call for a key that other callers wait on."""

    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: R | None = None
        self.error: BaseException | None = None


class _Cached(Generic[P, R]):
    def __init__(
        self, func: Callable[P, R], store: CacheStore, key: Callable[..., Hashable], maxsize: int
    ) -> None:
        self.func = func
        self.name = callable_name(func)
        self.store = store
        self.key = key
        self.custom_key = key is not cachetools.keys.hashkey
        self.maxsize = maxsize
        self.lock = threading.Lock()
        self.flights: dict[Hashable, _Flight[R]] = {}
        self.hits = 0
        self.misses = 0

    def wrapper(self) -> CachedFunction[P, R]:
        store_get = self.store.get
        make_key = self.key
        lock = self.lock

        @functools.wraps(self.func)
        def call_with_cache(*args: P.args, **kwargs: P.kwargs) -> R:
            key = make_key(*args, **kwargs)
            try:
                value = store_get(key, MISSING)
            except TypeError as exc:  # an unhashable argument
                hint = (
                    "key= returned an unhashable key"
                    if self.custom_key
                    else "pass key= to derive a hashable key from the arguments"
                )
                raise TypeError(f"ttl_cache({self.name}): {exc}; {hint}") from exc
            except Exception as exc:  # a store that fails is a miss, not a failed call
                self.store_failed(exc)
                value = MISSING
            if value is not MISSING:
                with lock:
                    self.hits += 1
                self.announce_hit(coalesced=False)
                return cast("R", value)
            return self.miss(key, args, kwargs)

        wrapper = cast("Any", call_with_cache)
        wrapper.cache_clear = self.cache_clear
        wrapper.cache_info = self.cache_info
        return cast("CachedFunction[P, R]", wrapper)

    def miss(self, key: Hashable, args: Any, kwargs: Any) -> R:
        flight: _Flight[R] | None = None
        leader = False
        with self.lock:
            # Checked again under the lock: a call for this key may have stored its result
            # between the first look and now.
            try:
                value = self.store.get(key, MISSING)
            except Exception as exc:
                self.store_failed(exc)
                value = MISSING
            if value is not MISSING:
                self.hits += 1
            else:
                flight = self.flights.get(key)
                if flight is None:
                    flight = self.flights[key] = _Flight()
                    self.misses += 1
                    leader = True
        if flight is None:
            self.announce_hit(coalesced=False)
            return cast("R", value)
        if leader:
            return self.lead(key, flight, args, kwargs)
        return self.follow(flight)

    def lead(self, key: Hashable, flight: _Flight[R], args: Any, kwargs: Any) -> R:
        if debug_enabled():
            log.debug("cache.miss", function=self.name)
        try:
            value = self.func(*args, **kwargs)
        except BaseException as exc:
            flight.error = exc
            raise
        else:
            flight.value = value
            self._store(key, value)
            return value
        finally:
            with self.lock:
                del self.flights[key]
            flight.done.set()

    def follow(self, flight: _Flight[R]) -> R:
        # A caller with a deadline does not wait for the shared call past it.
        budget = time_remaining()
        waited_from = time.monotonic()
        if not flight.done.wait(budget):
            raise ScanTimeout(self.name, budget or 0.0, time.monotonic() - waited_from)
        if flight.error is not None:
            raise flight.error
        with self.lock:
            self.hits += 1
        self.announce_hit(coalesced=True)
        return cast("R", flight.value)

    def announce_hit(self, *, coalesced: bool) -> None:
        record(cache_hits=1)
        if debug_enabled():
            log.debug("cache.hit", function=self.name, coalesced=coalesced)

    def _store(self, key: Hashable, value: R) -> None:
        # A store that fails (a shared cache that is down) costs the caching, not the call.
        try:
            self.store.set(key, value)
        except Exception as exc:
            self.store_failed(exc)

    def store_failed(self, exc: Exception) -> None:
        log.warning("cache.store_failed", function=self.name, error=describe_error(exc))

    def cache_clear(self) -> None:
        self.store.clear()
        with self.lock:
            self.hits = self.misses = 0

    def cache_info(self) -> CacheInfo:
        with self.lock:
            hits, misses = self.hits, self.misses
        return CacheInfo(hits=hits, misses=misses, maxsize=self.maxsize, currsize=len(self.store))


def ttl_cache(
    *,
    ttl: float | timedelta,
    maxsize: int = 1024,
    key: Callable[..., Hashable] | None = None,
    store: CacheStore | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Callable[[Callable[P, R]], CachedFunction[P, R]]:
    """Cache the decorated function's successful results for *ttl* seconds.

    Exceptions are never cached. Concurrent calls that miss on the same key run the function
    once; the others wait and share its outcome (its exception too). The wrapper has
    ``cache_clear()`` and ``cache_info()``.

    Raises:
        ConfigError: for a bad setting, naming it.
    """
    return CachePolicy(
        ttl=_validate.seconds(ttl, "ttl_cache.ttl"),
        maxsize=maxsize,
        key=key,
        store=store,
        clock=clock,
    )
