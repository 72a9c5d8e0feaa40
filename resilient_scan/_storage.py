"""Where policy state lives: the seams between the policies and their storage.

Each stateful policy keeps its state behind one small protocol, so state can move out of
the process (Redis, see `resilient_scan.redis`) without the policy code changing:

- `BreakerStore`: a circuit breaker's state, with atomic operations (admit a call, record
  an outcome) so that many processes can share one breaker and exactly one of them runs
  the half-open trial;
- `CacheStore`: a TTL cache's entries, plus optional cross-process single flight;
- `RateStore`: a rate limiter's permits (GCRA), reserved atomically.

A policy's ``storage=`` takes a store, or a `StorageBackend` that makes stores on demand
(one backend can serve every policy of an application), or a Redis client or URL. `None`
means this process's memory.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, runtime_checkable

from ._clock import Clock


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final[Any] = _Missing()
"""What `CacheStore.get` returns for a key that has no live entry."""

BreakerState = Literal["closed", "open", "half-open"]
CLOSED: Final = "closed"
OPEN: Final = "open"
HALF_OPEN: Final = "half-open"


@dataclass(frozen=True, slots=True)
class Admission:
    """What a `BreakerStore` decided about one call.

    Attributes:
        verdict: ``"closed"`` (run it as an ordinary call), ``"trial"`` (run it as the
            one half-open trial), or ``"rejected"`` (do not run it).
        state: The breaker's state as the store saw it.
        failures: For a closed admission, the consecutive failures counted so far (so a
            success with none to reset needs no write); 0 otherwise.
        retry_in: For a rejection: seconds until a trial may be admitted (0.0 while a
            trial is already running).
        token: For a trial: the lease's token, to be handed back with its outcome.
        transition: The change of state that admitting made, if any (an open breaker
            past its reset timeout turned half-open to admit this trial), so the breaker
            reports it once, from the process that made it.
    """

    verdict: Literal["closed", "trial", "rejected"]
    state: str
    failures: int = 0
    retry_in: float = 0.0
    token: str | None = None
    transition: Transition | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of a breaker's state that a store made: reported as an event."""

    from_state: str
    to_state: str
    failures: int


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """A breaker's state for display.

    Attributes:
        state: As of now (open past its reset timeout reads ``half-open``).
        failures: Consecutive failures counted while closed.
        opened_at: When it last opened (wall-clock seconds), or None.
        retry_in: Seconds until a trial may be admitted (0.0 unless open).
    """

    state: str
    failures: int
    opened_at: float | None
    retry_in: float


@runtime_checkable
class BreakerStore(Protocol):
    """A circuit breaker's state, under one name, with atomic operations.

    Times are wall-clock seconds from the breaker's clock (a store for several processes
    keeps them at millisecond precision or better). ``reset_timeout`` is how long the
    breaker stays open; ``trial_lease`` how long a half-open trial may run before the store
    assumes its holder died and admits another. Every method returns the `Transition` it
    made, if any, so the breaker reports it once, from the process that made it.
    """

    def admit(self, *, now: float, reset_timeout: float, trial_lease: float) -> Admission:
        """Decide whether a call may run now (a closed call, the trial, or rejected)."""
        ...

    def record_success(self, admission: Admission, *, now: float) -> Transition | None:
        """A call admitted as *admission* succeeded (a trial's success closes the breaker)."""
        ...

    def record_failure(
        self, admission: Admission, *, now: float, fail_max: int
    ) -> Transition | None:
        """A call failed: count it while closed (opening at *fail_max*), or re-open."""
        ...

    def release(self, admission: Admission) -> None:
        """A call ended with no verdict (e.g. cancelled): free its trial lease, if any."""
        ...

    def snapshot(self, *, now: float, reset_timeout: float) -> BreakerSnapshot:
        """The state for display, without changing it."""
        ...

    def force(self, state: str, *, now: float) -> Transition | None:
        """Set the state (operators' ``open()`` / ``close()``), clearing counts and trials."""
        ...


@runtime_checkable
class CacheStore(Protocol):
    """A TTL cache's entries. Implementations must be safe to call from many threads."""

    def get(self, key: Hashable) -> Any:
        """Return the live value stored under *key*, or `MISSING`."""
        ...

    def set(self, key: Hashable, value: Any, ttl: float) -> None:
        """Store *value* under *key* for *ttl* seconds.

        Raises:
            CacheEncodeError: if the store cannot encode *value* (nothing is stored).
        """
        ...

    def clear(self) -> None:
        """Remove every entry."""
        ...

    def __len__(self) -> int:
        """Return the number of live entries."""
        ...


@runtime_checkable
class SharedCacheStore(CacheStore, Protocol):
    """A `CacheStore` shared by several processes, with a lease for single flight.

    One process loading a key takes the lease; the others wait for its value (bounded by
    their deadlines) instead of loading the same key again.
    """

    def lease(self, key: Hashable, seconds: float) -> str | None:
        """Take the load lease of *key* for *seconds*; its token, or None if held."""
        ...

    def release(self, key: Hashable, token: str) -> None:
        """Give the lease back (only if *token* still holds it)."""
        ...

    def wait_for(self, key: Hashable, timeout: float) -> Any:
        """Wait up to *timeout* seconds for a value under *key*; it, or `MISSING`."""
        ...


@dataclass(frozen=True, slots=True)
class Reservation:
    """What a `RateStore` decided: ``granted`` with a ``wait`` (0.0: at once), or not.

    When not granted, nothing was reserved, and ``wait`` is how long the call would have
    had to wait.
    """

    granted: bool
    wait: float


@runtime_checkable
class RateStore(Protocol):
    """A rate limiter's permits (GCRA: one "theoretical arrival time" per key)."""

    def reserve(
        self, key: str, *, now: float, interval: float, burst: int, max_wait: float
    ) -> Reservation:
        """Reserve the next permit for *key* if it is due within *max_wait* seconds.

        *interval* is the seconds between permits (1 / rate); *burst* how many may be
        taken at once after a quiet spell.
        """
        ...


@runtime_checkable
class StorageBackend(Protocol):
    """Makes stores for policies: pass one backend as ``storage=`` to every policy.

    ``resilient_scan.redis.RedisBackend`` is one; a Redis client or URL given as
    ``storage=`` is wrapped in one.
    """

    name: str

    def breaker_store(self, breaker: str, clock: Clock) -> BreakerStore:
        """The store for the breaker named *breaker*."""
        ...

    def cache_store(self, cache: str, *, maxsize: int, clock: Clock) -> CacheStore:
        """The store for the cache named *cache*."""
        ...

    def rate_store(self, limiter: str, clock: Clock) -> RateStore:
        """The store for the rate limiter named *limiter*."""
        ...


def looks_like_redis(value: object) -> bool:
    """Whether *value* is a Redis URL or a redis-py client (without importing redis)."""
    if isinstance(value, str):
        return value.startswith(("redis://", "rediss://", "unix://"))
    module = type(value).__module__
    return module.startswith("redis.") and callable(getattr(value, "evalsha", None))


def backend_for(value: object) -> StorageBackend | None:
    """The backend *value* names: itself if it is one, a Redis backend for a client or URL."""
    if isinstance(value, StorageBackend):
        return value
    if looks_like_redis(value):
        from .redis import RedisBackend  # noqa: PLC0415 - an optional extra

        return RedisBackend(value)  # type: ignore[arg-type]  # a client or URL, checked above
    return None
