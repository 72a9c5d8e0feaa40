"""What you need to write a store of your own: the protocols and the values they exchange.

A circuit breaker, a TTL cache and a rate limiter keep their state in a store
(``storage=``). The in-memory stores are the defaults and `resilient_scan.redis` has stores
shared across processes; to keep state anywhere else, implement the protocol of the layer:

- `BreakerStore`: admit a call (`Admission`), record its outcome (a `Transition` when the
  state changes), show the state (`BreakerSnapshot`), force it;
- `CacheStore` (or `SharedCacheStore`, for single flight across processes): `get` returns
  the value or `MISSING`;
- `RateStore`: reserve the next permit (`Reservation`);
- `StorageBackend`: makes the three for one backend, so one object can be passed as
  ``storage=`` to every policy.
"""

from __future__ import annotations

from ._storage import (
    MISSING,
    Admission,
    BreakerSnapshot,
    BreakerStore,
    CacheStore,
    RateStore,
    Reservation,
    SharedCacheStore,
    StorageBackend,
    Transition,
)

__all__ = [
    "MISSING",
    "Admission",
    "BreakerSnapshot",
    "BreakerStore",
    "CacheStore",
    "RateStore",
    "Reservation",
    "SharedCacheStore",
    "StorageBackend",
    "Transition",
]
