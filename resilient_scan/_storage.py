"""Where policy state lives: the seam between the policies and their storage.

Policies hold no state of their own beyond a storage object, so state can move out of the
process (Redis) without the policy code changing. In-memory storages are the defaults.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import cachetools
import pybreaker

from ._clock import SYSTEM_CLOCK, Clock


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@runtime_checkable
class CacheStore(Protocol):
    """Storage for `ttl_cache`: a mapping whose entries expire after the cache's TTL.

    Implementations must be safe to call from many threads.
    """

    def get(self, key: Hashable, default: Any) -> Any:
        """Return the live value stored under *key*, or *default*."""
        ...

    def set(self, key: Hashable, value: Any) -> None:
        """Store *value* under *key* until the TTL passes."""
        ...

    def clear(self) -> None:
        """Remove every entry."""
        ...

    def __len__(self) -> int:
        """Return the number of live entries."""
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

    def get(self, key: Hashable, default: Any) -> Any:
        """Return the live value stored under *key*, or *default*."""
        with self._lock:
            try:
                return self._cache[key]
            except KeyError:
                return default

    def set(self, key: Hashable, value: Any) -> None:
        """Store *value* under *key* until the TTL passes."""
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


@runtime_checkable
class BreakerStorage(Protocol):
    """Storage for a circuit breaker's state; the same shape as pybreaker's storages.

    So pybreaker's ``CircuitMemoryStorage`` and ``CircuitRedisStorage`` (state shared between
    processes through Redis) plug in as they are. ``opened_at`` is a timezone-aware UTC
    datetime: wall-clock time, because monotonic clocks mean nothing across machines.
    """

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half-open"``."""
        ...

    @state.setter
    def state(self, state: str) -> None: ...

    @property
    def counter(self) -> int:
        """Consecutive failures counted so far."""
        ...

    @property
    def success_counter(self) -> int:
        """Consecutive successes in the half-open state."""
        ...

    @property
    def opened_at(self) -> datetime | None:
        """When the circuit last opened."""
        ...

    @opened_at.setter
    def opened_at(self, value: datetime) -> None: ...

    def increment_counter(self) -> None:
        """Count one more failure."""
        ...

    def reset_counter(self) -> None:
        """Set the failure count to zero."""
        ...

    def increment_success_counter(self) -> None:
        """Count one more success."""
        ...

    def reset_success_counter(self) -> None:
        """Set the success count to zero."""
        ...


def memory_breaker_storage() -> BreakerStorage:
    """Return a fresh in-process breaker storage (pybreaker's own), starting closed."""
    storage: BreakerStorage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
    return storage
