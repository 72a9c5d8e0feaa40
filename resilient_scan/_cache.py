"""The TTL cache policy: successes only, and one load per key however many callers miss.

cachetools' ``cached(condition=...)`` coalesces concurrent misses too, but when the one call
fails, each waiting caller then runs the body again in turn: sixteen waiters on a failing
service make sixteen calls, one after another. Here waiters share the outcome of the one
load, failure included, and nothing but a success is stored.

The pieces of one cached function (`Cache`):

- a store (`CacheStore`): `MemoryCacheStore` by default, read without a lock;
- the loads in flight (`Flight`), one per key, that other callers wait on. A waiter's wait
  primitive is made only when the first waiter comes, so a miss nobody waits for costs no
  `threading.Event`;
- counters: hits are bumped without a lock (`_Tally`), misses under the cache's lock;
- a generation, bumped by ``cache_clear()``: a load that started before a clear does not
  store its value after it.

Coroutine functions get the same cache with asyncio waits (`resilient_scan._cache_async`).
"""

from __future__ import annotations

import functools
import itertools
import threading
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Generic, ParamSpec, Protocol, TypeVar, cast

import cachetools.keys

from . import _config, _deadline, _settings
from ._cache_store import MemoryCacheStore
from ._calls import finish_call, is_async
from ._clock import SYSTEM_CLOCK, Clock, is_system
from ._config import CURRENT_SCAN
from ._deadline import Deadline
from ._errors import (
    CacheEncodeError,
    ConfigError,
    ResilientScanError,
    ScanTimeout,
)
from ._events import (
    CacheHit,
    CacheLoaded,
    CacheLoadFailed,
    CacheMiss,
    CacheStoreFailed,
    CallFinished,
)
from ._instrument import QUIET_DISPATCH, emit, wanted
from ._policy import Policy
from ._settings import Seconds
from ._storage import MISSING, CacheStore, SharedCacheStore, backend_for
from ._text import add_note, callable_name, describe_error, error_type

__all__ = [
    "CacheInfo",
    "CachePolicy",
    "CachedFunction",
    "MemoryCacheStore",
    "ttl_cache",
]

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

#: How often a waiter whose deadline is on a clock other than the system's (a test's fake
#: clock) looks at that clock again (seconds of real time).
POLL_SECONDS: Final = 0.002

#: How many times a miss looks at the store again before it loads anyway (see `Cache.miss`).
MAX_LOOKS: Final = 3


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


@dataclass(frozen=True, init=False)
class CachePolicy(Policy):
    """Cache the decorated function's successful results for *ttl* seconds.

    Exceptions are never cached. Concurrent calls that miss on the same key run the function
    once; the others wait and share its outcome (its exception too), each no longer than
    its deadline (`time_remaining`). The wrapper has ``cache_clear()`` and ``cache_info()``.
    Coroutine functions are cached the same way, across the tasks of an event loop.

    Attributes:
        ttl: Seconds a successful result stays cached.
        maxsize: The most results kept.
        key: Builds the cache key from the call's arguments (default: all of them).
        lease: With a store shared by several processes: the longest one process's load may
            take before the others stop waiting for it and load themselves.
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
    lease: float
    storage: object = field(repr=False, compare=False)
    clock: Clock = field(repr=False, compare=False)

    def __init__(
        self,
        *,
        ttl: Seconds,
        maxsize: int = 1024,
        key: Callable[..., Hashable] | None = None,
        lease: Seconds = 30.0,
        storage: object = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """Validate and store the settings."""
        if (
            storage is not None
            and not isinstance(storage, CacheStore)
            and backend_for(storage) is None
        ):
            raise ConfigError(
                ("ttl_cache", "storage"),
                "must be a cache store, a storage backend or a Redis client or URL,"
                f" got {_settings.show(storage)}",
            )
        self._assign(
            ttl=_settings.seconds(ttl, ("ttl_cache", "ttl")),
            maxsize=_settings.integer(maxsize, ("ttl_cache", "maxsize"), minimum=1),
            key=_settings.optional_function(key, ("ttl_cache", "key")),
            lease=_settings.seconds(lease, ("ttl_cache", "lease")),
            storage=storage,
            clock=_settings.clock(clock, ("ttl_cache", "clock")),
        )

    def __call__(self, func: Callable[P, R]) -> CachedFunction[P, R]:
        """Wrap *func* in this cache, as the outermost layer of its calls."""
        return self.wrap(func, boundary=True)

    def layer(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap *func* as the cache layer of `resilient`, which counts the calls itself."""
        return self.wrap(func, boundary=False)

    def wrap(self, func: Callable[P, R], *, boundary: bool) -> CachedFunction[P, R]:
        """Wrap *func* in this cache.

        With *boundary*, the cache is the outermost layer of the calls: it counts each call
        for the running scanner and reports `CallFinished`. `resilient` passes False, as it
        counts the calls of its whole stack itself.
        """
        _settings.decorated(func, "ttl_cache")
        name = callable_name(func)
        cache: Cache[R] = Cache(func, name, self._store_for(name), self)
        if is_async(func):
            from ._cache_async import async_wrapper  # noqa: PLC0415 - asyncio only when needed

            wrapper = async_wrapper(cache, boundary=boundary)
        else:
            wrapper = cache.sync_wrapper(boundary=boundary)
        functools.update_wrapper(wrapper, func)
        controls = cast("Any", wrapper)
        controls.cache_clear = cache.cache_clear
        controls.cache_info = cache.cache_info
        return cast("CachedFunction[P, R]", wrapper)

    def _store_for(self, name: str) -> CacheStore:
        storage = self.storage
        if storage is None:
            return MemoryCacheStore(ttl=self.ttl, maxsize=self.maxsize, clock=self.clock)
        if isinstance(storage, CacheStore):
            return storage
        backend = backend_for(storage)
        assert backend is not None  # noqa: S101 - checked in the constructor
        return backend.cache_store(name, maxsize=self.maxsize, clock=self.clock)

    def describe(self) -> str:
        """Return a short description, as shown by ``resilient(...).describe()``."""
        return f"ttl_cache(ttl={self.ttl:g}s, maxsize={self.maxsize})"


ttl_cache = CachePolicy


class _Again:
    """What a waiter gets when the load it waited on was interrupted: look again."""

    __slots__ = ()


#: A waiter's answer when the load it waited for was interrupted (not an `Exception`).
AGAIN: Final = _Again()


class Held:
    """What `Cache.take_lease` returns when another process holds the lease."""

    __slots__ = ()


HELD: Final = Held()


class Flight:
    """The one load of a key that other callers wait on.

    Its outcome is a value (``ok``), an exception (``error``), or neither: the load was
    interrupted by a `BaseException` that is not an `Exception` (``KeyboardInterrupt``, a
    task's cancellation), which belongs to the leader alone, so a waiter loads instead.
    """

    __slots__ = ("error", "finished", "generation", "ok", "owner", "value", "waiter")

    def __init__(self, owner: object, generation: int) -> None:
        self.owner = owner  # the leader's thread id, or its task (async)
        self.generation = generation
        self.ok = False
        self.value: Any = None
        self.error: Exception | None = None
        self.finished = False
        # Made by the first waiter (threading.Event, or asyncio.Event for coroutines).
        self.waiter: Any = None

    def outcome(self) -> Any:
        """The shared value; raises the shared error; `AGAIN` after an interruption."""
        if self.ok:
            return self.value
        if self.error is not None:
            raise self.error
        return AGAIN


class _Tally:
    """A count that many threads bump without a lock.

    One step of an `itertools.count` is a single C call, atomic under the GIL, so a hit
    costs no lock. Reading takes a step too (a count cannot be read otherwise); the steps
    that reads and resets took are kept in ``_offset`` and subtracted.
    """

    __slots__ = ("_lock", "_offset", "_steps", "bump")

    def __init__(self) -> None:
        self._steps = itertools.count()
        self.bump = self._steps.__next__
        self._lock = threading.Lock()
        self._offset = 0

    def value(self) -> int:
        with self._lock:
            step = next(self._steps)
            self._offset += 1
            return step - self._offset + 1

    def reset(self) -> None:
        with self._lock:
            self._offset = next(self._steps) + 1

    def forget_lock(self) -> None:
        self._lock = threading.Lock()


class Cache(Generic[R]):
    """The state of one cached function, shared by its sync or async wrapper."""

    def __init__(
        self, func: Callable[..., R], name: str, store: CacheStore, policy: CachePolicy
    ) -> None:
        self.func = func
        self.name = name
        self.store = store
        self.policy = policy
        self.ttl = policy.ttl
        self.clock = policy.clock
        self.make_key: Callable[..., Hashable] = (
            cachetools.keys.hashkey if policy.key is None else self._noting(policy.key)
        )
        self.shared = isinstance(store, SharedCacheStore)
        # Guards flights, misses and completed; held for dictionary work only.
        self.lock = threading.Lock()
        # Guards generation and the stores in progress, so no load stores across a clear;
        # the store calls themselves (a Redis round trip) run outside it.
        self.write_lock = threading.Condition(threading.Lock())
        self.writing = 0
        self.flights: dict[Hashable, Flight] = {}
        self.hits = _Tally()
        self.misses = 0
        # Loads ended so far (any key): a miss that began before one ended looks again.
        self.completed = 0
        self.generation = 0
        _CACHES.add(self)

    # -- the synchronous wrapper -----------------------------------------------------------

    def sync_wrapper(self, *, boundary: bool) -> Callable[..., R]:
        """The function that calls through this cache (see `CachePolicy.wrap`)."""
        build = _memory_call if type(self.store) is MemoryCacheStore else _store_call
        cached_call = build(self, None)
        return build(self, cached_call) if boundary else cached_call

    def counted(self, call: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        """Call through the cache as the outermost layer: counted and reported like any policy."""
        started = self.clock.monotonic()
        try:
            result = call(*args, **kwargs)
        except BaseException as exc:
            finish_call(self.name, started, self.clock, exc)
            raise
        finish_call(self.name, started, self.clock, None)
        return result

    def miss(self, key: Hashable, seen: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        looks = 1
        while True:
            with self.lock:
                flight = self.flights.get(key)
                leads = flight is None and (self.completed == seen or looks > MAX_LOOKS)
                if leads:
                    flight = self.flights[key] = Flight(threading.get_ident(), self.generation)
                    if not self.shared:
                        self.misses += 1
                seen = self.completed
            if leads:
                assert flight is not None  # noqa: S101 - made just above
                return self.lead(key, flight, args, kwargs)
            if flight is None:
                # A load ended after this call looked: its value may be stored by now.
                looks += 1
                value = self.lookup(key)
                if value is not MISSING:
                    self.hit(coalesced=False)
                    return cast("R", value)
                continue
            outcome = self.follow(flight)
            if outcome is not AGAIN:
                return cast("R", outcome)
            # The load was interrupted (its leader's KeyboardInterrupt, say): one of its
            # waiters loads instead.

    def lead(
        self, key: Hashable, flight: Flight, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        lease: str | None = None
        try:
            if self.shared:
                lease, value = self.lease_or_wait(key)
                if value is not MISSING:
                    flight.value, flight.ok = value, True
                    self.hit(coalesced=True)
                    return cast("R", value)
            started = self.loading(counted=not self.shared)
            try:
                value = self.func(*args, **kwargs)
            except BaseException as exc:
                self.load_failed(flight, exc, started)
                raise
            self.settle(key, flight, value, started)
            return value
        finally:
            if lease is not None:
                self.release(key, lease)
            self.land(key, flight)

    def follow(self, flight: Flight) -> Any:
        if flight.owner == threading.get_ident():
            raise self.reentry_error()
        with self.lock:
            waiter = None
            if not flight.finished:
                waiter = flight.waiter
                if waiter is None:
                    waiter = flight.waiter = threading.Event()
        if waiter is not None:
            self.wait(waiter)
        outcome = flight.outcome()
        if outcome is not AGAIN:
            self.hit(coalesced=True)
        return outcome

    def wait(self, waiter: threading.Event) -> None:
        """Wait for *waiter*, no longer than the caller's deadline; `ScanTimeout` past it."""
        deadline = _deadline.current()
        if deadline is None:
            waiter.wait()
            return
        budget = deadline.remaining()
        started = self.clock.monotonic()
        if is_system(deadline.clock):
            done = waiter.wait(budget)
        else:
            # A deadline on another clock (a test's fake clock) passes when that clock
            # says so, not after real seconds: look at it again every few milliseconds.
            done = waiter.wait(min(budget, POLL_SECONDS))
            while not done and not deadline.expired:
                done = waiter.wait(min(deadline.remaining(), POLL_SECONDS))
        if not done:
            raise ScanTimeout(self.name, budget, self.clock.monotonic() - started)

    def lease_or_wait(self, key: Hashable) -> tuple[str | None, Any]:
        """Take the shared store's lease on *key*, or wait for the process that holds it.

        Returns the lease's token (None: load without one) and the value another process
        stored meanwhile (or `MISSING`: load here).
        """
        store = cast("SharedCacheStore", self.store)
        token = self.take_lease(key)
        if not isinstance(token, Held):
            return token, MISSING
        deadline = _deadline.current()
        wait = (
            self.policy.lease if deadline is None else min(deadline.remaining(), self.policy.lease)
        )
        started = self.clock.monotonic()
        try:
            value = store.wait_for(key, wait)
        except Exception as exc:
            self.store_failed(exc, "wait_for")
            value = MISSING
        if value is not MISSING:
            return None, value
        self.check_deadline(deadline, wait, started)
        # It never came (that load failed, or its process died): load here, under the
        # lease if it is free now, so that the others wait for this load.
        token = self.take_lease(key)
        return (None if isinstance(token, Held) else token), MISSING

    def take_lease(self, key: Hashable) -> str | Held | None:
        """Take the shared store's lease on *key*.

        Returns its token; `HELD` if another process holds it; None if the store failed
        (then this process loads without one).
        """
        store = cast("SharedCacheStore", self.store)
        try:
            token = store.lease(key, self.policy.lease)
        except Exception as exc:
            self.store_failed(exc, "lease")
            return None
        return HELD if token is None else token

    def check_deadline(self, deadline: Deadline | None, budget: float, started: float) -> None:
        if deadline is not None and deadline.expired:
            raise ScanTimeout(self.name, budget, self.clock.monotonic() - started)

    def release(self, key: Hashable, token: str) -> None:
        try:
            cast("SharedCacheStore", self.store).release(key, token)
        except Exception as exc:
            self.store_failed(exc, "release")

    # -- shared by the sync and async wrappers ---------------------------------------------

    def _noting(self, key_function: Callable[..., Hashable]) -> Callable[..., Hashable]:
        """*key_function*, whose exceptions say which cache and function they came from.

        The exception keeps its type, so the caller's ``except`` clauses still work; a note
        (shown under the traceback) names the key function, the cache and the function.
        """
        note = (
            f"resilient_scan: raised by the key= function {callable_name(key_function)} of"
            f" the ttl_cache on {self.name}, while building the cache key of a call of"
            f" {self.name}"
        )

        def make_key(*args: Any, **kwargs: Any) -> Hashable:
            try:
                return key_function(*args, **kwargs)
            except Exception as exc:
                add_note(exc, note)
                raise

        return make_key

    def lookup(self, key: Hashable) -> Any:
        """The stored value of *key*, or `MISSING` (a store that fails is a miss)."""
        try:
            return self.store.get(key)
        except Exception as exc:
            return self.lookup_failed(exc)

    def lookup_failed(self, exc: Exception) -> Any:
        # A key the store cannot use (unhashable, or with no stable encoding for a shared
        # store) is a mistake in the code, not an outage: say how to fix it.
        if isinstance(exc, TypeError):
            if self.policy.key is not None:
                hint = "key= returned a key this cache cannot use"
            else:
                hint = "pass key= to derive a hashable key from the arguments"
            raise TypeError(f"ttl_cache on {self.name}: {exc}; {hint}") from exc
        # A store that fails (a shared cache that is down) costs the caching, not the call.
        self.store_failed(exc, "get")
        return MISSING

    def hit(self, *, coalesced: bool) -> None:
        self.hits.bump()
        if wanted(CacheHit):
            emit(CacheHit(self.name, self.name, coalesced))

    def loading(self, *, counted: bool) -> float:
        """Report the miss this call loads for (count it unless *counted*); return the start.

        A cache on a store of this process counts the miss when the load takes its place
        in flight (under the same lock); on a shared store it counts it here, once it is
        sure to load: a value another process loaded meanwhile is a hit.
        """
        if not counted:
            with self.lock:
                self.misses += 1
        if wanted(CacheMiss):
            emit(CacheMiss(self.name, self.name))
        return self.clock.monotonic()

    def load_failed(self, flight: Flight, exc: BaseException, started: float) -> None:
        if not isinstance(exc, Exception):
            return  # interrupted: not an outcome to share (the flight says AGAIN)
        flight.error = exc
        if wanted(CacheLoadFailed):
            emit(
                CacheLoadFailed(
                    self.name,
                    self.name,
                    round(self.clock.monotonic() - started, 6),
                    error_type(exc),
                    describe_error(exc),
                )
            )

    def settle(self, key: Hashable, flight: Flight, value: Any, started: float) -> None:
        """Store a loaded *value* (unless a clear made it stale) and hand it to the waiters.

        Raises:
            CacheEncodeError: the store cannot encode *value* (the waiters get it too).
        """
        try:
            stored = self.keep(key, value, flight.generation)
        except CacheEncodeError as exc:
            flight.error = exc
            raise
        flight.value, flight.ok = value, True
        if wanted(CacheLoaded):
            duration = round(self.clock.monotonic() - started, 6)
            emit(CacheLoaded(self.name, self.name, duration, stored))

    def keep(self, key: Hashable, value: Any, generation: int) -> bool:
        """Store *value* unless the cache was cleared since its load began.

        Stores of different keys run side by side; a clear waits for the stores it let
        through, then empties the store, so none of them lands after it.
        """
        with self.write_lock:
            if generation != self.generation:
                return False
            self.writing += 1
        try:
            self.store.set(key, value, self.ttl)
        except CacheEncodeError:
            raise
        except Exception as exc:
            self.store_failed(exc, "set")
            return False
        finally:
            with self.write_lock:
                self.writing -= 1
                if not self.writing:
                    self.write_lock.notify_all()
        return True

    def land(self, key: Hashable, flight: Flight) -> None:
        """End *flight*: no new caller joins it, and its waiters wake."""
        with self.lock:
            if self.flights.get(key) is flight:
                del self.flights[key]
            flight.finished = True
            self.completed += 1
            waiter = flight.waiter
        if waiter is not None:
            waiter.set()

    def reentry_error(self) -> ResilientScanError:
        return ResilientScanError(
            f"ttl_cache on {self.name}: the call that is loading this key called {self.name}"
            " again with the same key, and would wait for its own result forever. Give the"
            " inner call a different key (key=), or call the undecorated function"
            f" ({self.name}.__wrapped__)"
        )

    def store_failed(self, exc: Exception, operation: str) -> None:
        if wanted(CacheStoreFailed):
            emit(
                CacheStoreFailed(
                    self.name, self.name, operation, error_type(exc), describe_error(exc)
                )
            )

    def cache_clear(self) -> None:
        with self.write_lock:
            self.generation += 1  # loads that finish from now on store nothing
            while self.writing:  # the stores let through before: they land first
                self.write_lock.wait()
        self.store.clear()
        with self.lock:
            # Loads still running belong to the time before the clear: later callers do
            # not join them, and they store nothing (their generation is old).
            self.flights = {}
            self.misses = 0
        self.hits.reset()

    def cache_info(self) -> CacheInfo:
        with self.lock:
            misses = self.misses
        return CacheInfo(
            hits=self.hits.value(),
            misses=misses,
            maxsize=self.policy.maxsize,
            currsize=len(self.store),
        )

    def forget_loads(self) -> None:
        """Forget the loads in flight and their locks (in a child process, after a fork).

        The loads belong to the parent's threads, which the child does not have, and a
        lock one of them held would stay held.
        """
        self.lock = threading.Lock()
        self.write_lock = threading.Condition(threading.Lock())
        self.writing = 0
        self.hits.forget_lock()
        self.flights = {}


# -- the hot paths --------------------------------------------------------------------------
#
# A hit is the path callers take most, so it is written out in full, once per kind of store:
# for the memory store, its entry is read right here (one Python call less, a tenth of a
# hit). Given *counted_call* (the same function without it), the function built is the
# outermost layer: it counts the call for the running scanner and reports `CallFinished`,
# through *counted_call*, and takes the plain path when nobody counts or times the call.


def _memory_call(cache: Cache[R], counted_call: Callable[..., R] | None) -> Callable[..., R]:
    store = cast("MemoryCacheStore", cache.store)
    now = store._now  # noqa: SLF001 - the store's own clock, read as its get() reads it
    name = cache.name
    make_key = cache.make_key
    bump_hit = cache.hits.bump
    scan, runtime, quiet = CURRENT_SCAN.get, _config.RUNTIME, QUIET_DISPATCH

    def cached_call(*args: Any, **kwargs: Any) -> R:
        # Nobody counts or reports calls while the quiet table is the current one.
        if counted_call is not None and (
            scan() is not None or (runtime.dispatch is not quiet[0] and wanted(CallFinished))
        ):
            return cache.counted(counted_call, args, kwargs)
        key = make_key(*args, **kwargs)
        seen = cache.completed
        try:
            entry = store._entries.get(key)  # noqa: SLF001 - MemoryCacheStore.get, inline
        except Exception as exc:
            cache.lookup_failed(exc)  # raises for an unhashable key
            entry = None
        if entry is not None and now() < entry[1]:
            entry[2] = True
            bump_hit()
            if wanted(CacheHit):
                emit(CacheHit(name, name))
            return entry[0]  # type: ignore[no-any-return]
        return cache.miss(key, seen, args, kwargs)

    return cached_call


def _store_call(cache: Cache[R], counted_call: Callable[..., R] | None) -> Callable[..., R]:
    store_get = cache.store.get
    name = cache.name
    make_key = cache.make_key
    bump_hit = cache.hits.bump
    scan, runtime, quiet = CURRENT_SCAN.get, _config.RUNTIME, QUIET_DISPATCH

    def cached_call(*args: Any, **kwargs: Any) -> R:
        # Nobody counts or reports calls while the quiet table is the current one.
        if counted_call is not None and (
            scan() is not None or (runtime.dispatch is not quiet[0] and wanted(CallFinished))
        ):
            return cache.counted(counted_call, args, kwargs)
        key = make_key(*args, **kwargs)
        seen = cache.completed
        value: R  # the store's Any, unchecked: typing.cast would cost a call per hit
        try:
            value = store_get(key)
        except Exception as exc:
            value = cache.lookup_failed(exc)
        if value is not MISSING:
            bump_hit()
            if wanted(CacheHit):
                emit(CacheHit(name, name))
            return value
        return cache.miss(key, seen, args, kwargs)

    return cached_call


_CACHES: weakref.WeakSet[Cache[Any]] = weakref.WeakSet()


def _forget_loads_in_child() -> None:
    for cache in list(_CACHES):
        cache.forget_loads()


_config.on_fork_in_child(_forget_loads_in_child)
