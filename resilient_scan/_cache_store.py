"""`MemoryCacheStore`: a TTL cache's entries in this process, read without a lock.

A cache hit is the path callers take most, so reading an entry takes no lock at all: the
entries live in a plain ``dict`` (whose single operations are atomic in CPython), each entry
an immutable snapshot ``[value, expires, used]`` that a writer replaces, never edits (only
the ``used`` mark is set in place, by readers). Writers (`set`, `clear`) take a lock.

Eviction is CLOCK ("second chance"), the usual lock-free stand-in for least-recently-used:
keys wait in a ring in the order they were stored; when the store is full, the hand takes
the oldest key, and if that entry was read since the hand last passed it, it is marked
unread and goes to the back of the ring; the first entry not read since is evicted (an
expired one at once). So an entry read recently survives, as with LRU, but a hit only sets
a mark instead of relinking a list under a lock, as cachetools' `TTLCache` must (and
`TTLCache` is not thread-safe, so every hit needed a lock besides).

Expired entries are never returned; they are dropped when the hand reaches them, so the
store never holds more than ``maxsize`` entries, live or expired.
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from collections.abc import Hashable
from typing import Any

from . import _config
from ._clock import SYSTEM_CLOCK, Clock
from ._storage import MISSING

# An entry is a list [value, expires, used]: the cheapest record to build and to read.
_VALUE, _EXPIRES, _USED = 0, 1, 2


class MemoryCacheStore:
    """A `CacheStore` in this process's memory, safe for many threads, with lock-free reads.

    Eviction past *maxsize* is CLOCK (second chance), an approximation of least recently
    used: an entry read since the last sweep is kept for one more round. Entries expire
    *ttl* seconds after they were stored (the ``ttl`` given to `set`, capped by the store's
    own *ttl*), on *clock*.
    """

    __slots__ = ("__weakref__", "_entries", "_lock", "_now", "_ring", "maxsize", "ttl")

    def __init__(
        self, *, ttl: float | None = None, maxsize: int, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        """Create a store of up to *maxsize* entries that live at most *ttl* seconds."""
        self.ttl = ttl
        self.maxsize = maxsize
        self._now = clock.monotonic
        self._lock = threading.Lock()
        self._entries: dict[Hashable, list[Any]] = {}
        # Every key of _entries exactly once, in the order the eviction hand visits them.
        self._ring: deque[Hashable] = deque()
        _STORES.add(self)

    def get(self, key: Hashable) -> Any:
        """Return the live value stored under *key*, or `MISSING` (no lock taken)."""
        entry = self._entries.get(key)
        if entry is not None and self._now() < entry[1]:  # _EXPIRES, as a literal: hot path
            entry[2] = True  # _USED
            return entry[0]  # _VALUE
        return MISSING

    def set(self, key: Hashable, value: Any, ttl: float) -> None:
        """Store *value* under *key* for *ttl* seconds (at most the store's own TTL)."""
        if self.ttl is not None and ttl > self.ttl:
            ttl = self.ttl
        now = self._now()
        with self._lock:
            entries = self._entries
            if key not in entries:
                if len(entries) >= self.maxsize:
                    self._evict_one(now)
                self._ring.append(key)
            # A new list, never an edit: a reader holding the old entry sees it whole.
            entries[key] = [value, now + ttl, False]

    def _evict_one(self, now: float) -> None:
        entries, ring = self._entries, self._ring
        while ring:
            key = ring.popleft()
            entry = entries.get(key)
            if entry is None:  # only after a fork in the middle of a parent thread's set
                continue
            if entry[_USED] and now < entry[_EXPIRES]:
                entry[_USED] = False  # read since the hand last came by: a second chance
                ring.append(key)
                continue
            del entries[key]
            return

    def clear(self) -> None:
        """Remove every entry."""
        with self._lock:
            self._entries = {}
            self._ring = deque()

    def __len__(self) -> int:
        """Return the number of live entries."""
        now = self._now()
        with self._lock:
            entries = list(self._entries.values())
        return sum(1 for entry in entries if now < entry[_EXPIRES])

    def __repr__(self) -> str:
        """Show the bounds."""
        return f"MemoryCacheStore(ttl={self.ttl!r}, maxsize={self.maxsize!r})"

    def _forget_lock(self) -> None:
        # After a fork the lock may be held by a thread the child does not have.
        self._lock = threading.Lock()


_STORES: weakref.WeakSet[MemoryCacheStore] = weakref.WeakSet()


def _new_locks_in_child() -> None:
    for store in list(_STORES):
        store._forget_lock()  # noqa: SLF001 - this module's own stores


_config.on_fork_in_child(_new_locks_in_child)
