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
from typing import Any, ClassVar, Generic, ParamSpec, Protocol, TypeVar, cast

import cachetools
import cachetools.keys

from . import _deadline, _settings
from ._clock import SYSTEM_CLOCK, Clock
from ._errors import ConfigError, ScanTimeout
from ._events import CacheHit, CacheMiss, CacheStoreFailed
from ._instrument import emit, wanted
from ._policy import Policy
from ._settings import Seconds
from ._storage import MISSING, CacheStore, backend_for
from ._text import callable_name, describe_error, error_type

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


class MemoryCacheStore:
    """A `CacheStore` in this process: a cachetools `TTLCache` behind a lock.

    `TTLCache` is not thread-safe by itself.
    """

    def __init__(self, *, ttl: float, maxsize: int, clock: Clock = SYSTEM_CLOCK) -> None:
        """Create a store of up to *maxsize* entries that live *ttl* seconds on *clock*."""
        self._lock = threading.Lock()
        self._cache: cachetools.TTLCache[Hashable, Any] = cachetools.TTLCache(
            maxsize=maxsize, ttl=ttl, timer=clock.monotonic
        )

    def get(self, key: Hashable) -> Any:
        """Return the live value stored under *key*, or `MISSING`."""
        with self._lock:
            return self._cache.get(key, MISSING)

    def set(self, key: Hashable, value: Any, ttl: float) -> None:  # noqa: ARG002 - one TTL per store
        """Store *value* under *key* until the store's TTL passes."""
        with self._lock:
            self._cache[key] = value

    def clear(self) -> None:
        """Remove every entry."""
        with self._lock:
            self._cache.clear()

    def __len__(self) -> int:
        """Return the number of live entries."""
        with self._lock:
            self._cache.expire()
            return len(self._cache)


@dataclass(frozen=True, init=False)
class CachePolicy(Policy):
    """Cache the decorated function's successful results for *ttl* seconds.

    Exceptions are never cached. Concurrent calls that miss on the same key run the function
    once; the others wait and share its outcome (its exception too). The wrapper has
    ``cache_clear()`` and ``cache_info()``.

    Attributes:
        ttl: Seconds a successful result stays cached.
        maxsize: The most results kept.
        key: Builds the cache key from the call's arguments (default: all of them).
        storage: Where results live (default: this process's memory).
        clock: Where time comes from (tests pass a fake clock).

    Raises:
        ConfigError: for a bad setting, naming it.
    """

    kind: ClassVar[str] = "ttl_cache"
    shorthand_field: ClassVar[str | None] = "ttl"

    ttl: float
    maxsize: int
    key: Callable[..., Hashable] | None
    storage: object = field(repr=False, compare=False)
    clock: Clock = field(repr=False, compare=False)

    def __init__(
        self,
        *,
        ttl: Seconds,
        maxsize: int = 1024,
        key: Callable[..., Hashable] | None = None,
        storage: object = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """Validate and store the settings."""
        if storage is not None and not isinstance(storage, CacheStore) and backend_for(storage) is None:
            raise ConfigError(
                ("ttl_cache", "storage"),
                f"must be a cache store, a storage backend or a Redis client or URL, got {storage!r}",
            )
        self._assign(
            ttl=_settings.seconds(ttl, ("ttl_cache", "ttl")),
            maxsize=_settings.integer(maxsize, ("ttl_cache", "maxsize"), minimum=1),
            key=_settings.optional_function(key, ("ttl_cache", "key")),
            storage=storage,
            clock=_settings.clock(clock, ("ttl_cache", "clock")),
        )

    def __call__(self, func: Callable[P, R]) -> CachedFunction[P, R]:
        """Wrap *func* in this cache."""
        _settings.decorated(func, "ttl_cache")
        name = callable_name(func)
        storage = self.storage
        if storage is None:
            store: CacheStore = MemoryCacheStore(ttl=self.ttl, maxsize=self.maxsize, clock=self.clock)
        elif isinstance(storage, CacheStore):
            store = storage
        else:
            backend = backend_for(storage)
            assert backend is not None  # noqa: S101 - checked in the constructor
            store = backend.cache_store(name, maxsize=self.maxsize, clock=self.clock)
        return _Cached(func, name, store, self.key or cachetools.keys.hashkey, self).wrapper()

    def describe(self) -> str:
        """Return a short description, as shown by ``resilient(...).describe()``."""
        return f"ttl_cache(ttl={self.ttl:g}s, maxsize={self.maxsize})"


ttl_cache = CachePolicy


class _Flight(Generic[R]):
    """The one running call for a key that other callers wait on."""

    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: R | None = None
        self.error: BaseException | None = None


class _Cached(Generic[P, R]):
    def __init__(
        self,
        func: Callable[P, R],
        name: str,
        store: CacheStore,
        key: Callable[..., Hashable],
        policy: CachePolicy,
    ) -> None:
        self.func = func
        self.name = name
        self.store = store
        self.key = key
        self.custom_key = key is not cachetools.keys.hashkey
        self.policy = policy
        self.lock = threading.Lock()
        self.flights: dict[Hashable, _Flight[R]] = {}
        self.hits = 0
        self.misses = 0

    def wrapper(self) -> CachedFunction[P, R]:
        store_get = self.store.get
        make_key = self.key

        @functools.wraps(self.func)
        def call_with_cache(*args: P.args, **kwargs: P.kwargs) -> R:
            key = make_key(*args, **kwargs)
            try:
                value = store_get(key)
            except TypeError as exc:  # an unhashable argument
                hint = (
                    "key= returned an unhashable key"
                    if self.custom_key
                    else "pass key= to derive a hashable key from the arguments"
                )
                raise TypeError(f"ttl_cache({self.name}): {exc}; {hint}") from exc
            except Exception as exc:  # a store that fails is a miss, not a failed call
                self.store_failed(exc, "get")
                value = MISSING
            if value is not MISSING:
                with self.lock:
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
            try:
                value = self.store.get(key)
            except Exception as exc:
                self.store_failed(exc, "get")
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
        if wanted(CacheMiss):
            emit(CacheMiss(self.name, self.name))
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
        budget = _deadline.time_remaining()
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
        if wanted(CacheHit):
            emit(CacheHit(self.name, self.name, coalesced))

    def _store(self, key: Hashable, value: R) -> None:
        # A store that fails (a shared cache that is down) costs the caching, not the call.
        try:
            self.store.set(key, value, self.policy.ttl)
        except Exception as exc:
            self.store_failed(exc, "set")

    def store_failed(self, exc: Exception, operation: str) -> None:
        if wanted(CacheStoreFailed):
            emit(
                CacheStoreFailed(
                    self.name, self.name, operation, error_type(exc), describe_error(exc)
                )
            )

    def cache_clear(self) -> None:
        self.store.clear()
        with self.lock:
            self.hits = self.misses = 0

    def cache_info(self) -> CacheInfo:
        with self.lock:
            hits, misses = self.hits, self.misses
        return CacheInfo(
            hits=hits, misses=misses, maxsize=self.policy.maxsize, currsize=len(self.store)
        )
