"""The rate limiter: a request rate with a burst, one quota per name for the whole process.

The algorithm is GCRA (the "generic cell rate algorithm"): a quota keeps one number per key,
the theoretical arrival time of the next permit, and a reservation is one comparison and
one write under a lock. So a caller learns at once how long it would wait for a permit, and
a caller who cannot wait that long (its deadline, `time_remaining`, or ``max_wait``) fails
at once with `RateLimitExceeded` instead of sleeping first. The same reservation, as one
atomic script, shares a quota between processes (``resilient_scan.redis``).

A caller that waits holds a permit reserved for a moment in the future, and is only on time
if it wakes then. One that wakes late (a busy machine, a paused process) would send its
request close to the next caller's, which woke on time: with 4 processes sharing 50
requests/s, reserving ahead and always using the permit put 53 and 54 requests in a 1 s
window at the API (``benchmarks/bench_redis.py``). So a caller that wakes more than half an
interval (at least 2 ms) after its permit was due gives that permit up and reserves the next
free one, at the back of the queue; it uses that one however late it wakes for it, so a
caller on a machine too busy to keep time is slowed, never stopped. A permit given up is
lost to the quota: lateness costs throughput, not precision.

Two other ways were measured and not taken: taking a permit only when one is due at the
moment of asking (no reservation ahead, ask again when told) keeps every window within the
rate too, but has no queue: in the same benchmark one process got 24 requests and another
100, throughput fell to about 95% of the quota, every waiting caller asks the store again at
every permit, and a caller cannot know at once that its deadline is too short. Reserving
ahead and always using the permit is fair and spends the whole quota, but sends late
requests next to punctual ones.

Why not a library: pyrate-limiter holds its limiter's lock while a caller sleeps for a
permit (so waiting threads queue behind one another), waits until the deadline before
failing and never says how long the wait would have been, adds 50 ms to every wait, and
starts a background thread per bucket; limits only counts (no waiting at all). A free
permit costs several times less here than with either (``benchmarks/bench_layers.py``).
"""

from __future__ import annotations

import functools
import math
import threading
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, ParamSpec, Protocol, TypeVar, cast

from . import _config, _settings
from ._calls import counted, is_async
from ._clock import SYSTEM_CLOCK, Clock, backoff_sleep, backoff_sleep_async
from ._config import DEADLINE
from ._errors import ConfigError, RateLimitExceeded
from ._events import RateLimitRejected, RateLimitWaited
from ._instrument import emit, wanted
from ._policy import Policy
from ._settings import Seconds
from ._storage import RateStore, Reservation, backend_for
from ._text import add_note, callable_name

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

_AT_ONCE: Final = Reservation(granted=True, wait=0.0)
#: A waiting caller that wakes more than this share of an interval after its permit was
#: due gives the permit up (see the module's docstring) ...
_LATE_SHARE: Final = 0.5
#: ... or more than this many seconds, for short intervals: a sleep's usual overshoot and
#: a round trip to a store across a network are each a fraction of a millisecond.
_LATE_FLOOR: Final = 0.002
#: Where the stores of named limiters live, in `_config.RUNTIME.extras`.
_REGISTRY_KEY: Final = "rate_limit.stores"
#: Every memory store, so a forked child gets fresh locks.
_MEMORY_STORES: weakref.WeakSet[MemoryRateStore] = weakref.WeakSet()


class MemoryRateStore:
    """A `RateStore` in this process's memory: GCRA, one arrival time per key, one lock.

    Times are the limiter clock's wall-clock seconds, as for every `RateStore` (a store may
    be shared by processes whose monotonic clocks differ).
    """

    def __init__(self) -> None:
        """Start with every quota full."""
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}  # key -> theoretical arrival time of the next permit
        self._prune_above = 1024
        _MEMORY_STORES.add(self)

    def reserve(
        self, key: str, *, now: float, interval: float, burst: int, max_wait: float
    ) -> Reservation:
        """Reserve the next permit for *key* if it is due within *max_wait* seconds."""
        with self._lock:
            arrival = self._next.get(key, now)
            arrival = max(arrival, now)
            # Up to `burst` permits may be taken ahead of the steady schedule.
            wait = arrival - (burst - 1) * interval - now
            if wait > max_wait:
                return Reservation(granted=False, wait=wait)
            self._next[key] = arrival + interval
            if len(self._next) > self._prune_above:
                self._prune(now)
        return _AT_ONCE if wait <= 0.0 else Reservation(granted=True, wait=wait)

    def _prune(self, now: float) -> None:
        # A key whose arrival time has passed has a full quota: the same as no entry.
        self._next = {key: at for key, at in self._next.items() if at > now}
        self._prune_above = max(1024, 2 * len(self._next))

    def _after_fork(self) -> None:
        self._lock = threading.Lock()


def _fresh_locks_in_child() -> None:
    for store in list(_MEMORY_STORES):
        store._after_fork()  # noqa: SLF001 - this module's own stores


_config.on_fork_in_child(_fresh_locks_in_child)


def _named_store(name: str) -> MemoryRateStore:
    """The process's memory store for the limiter named *name* (one quota per name)."""
    runtime = _config.RUNTIME
    with runtime.lock:
        stores = runtime.extras.setdefault(_REGISTRY_KEY, {})
        store = stores.get(name)
        if store is None:
            store = stores[name] = MemoryRateStore()
        return cast("MemoryRateStore", store)


@dataclass(frozen=True, init=False)
class RateLimitPolicy(Policy):
    """Let at most *rate* calls per *per* seconds through, waiting for a permit as needed.

    Permits come evenly spaced (one every ``per / rate`` seconds); after a quiet spell up
    to *burst* calls may go at once. A call waits for its permit, but never past its
    deadline (`time_remaining`: a timeout around it, a retry budget, the executor's limit)
    nor past *max_wait*: when the next permit is further away than that, it fails at once
    with `RateLimitExceeded`, which says how long the wait would have been.

    Waiting callers are served in the order they asked. One that wakes more than half an
    interval (at least 2 ms) after its permit was due gives it up rather than start late,
    next to the caller after it, and reserves the next free permit (which it uses however
    late it wakes). So a shared quota holds in every window of *per* seconds at the
    service, not only on average, even on a busy machine: at most *rate* + *burst* calls
    start in any such window (for intervals of 4 ms or more) unless a caller wakes late
    twice in a row.

    A limiter with a *name* shares its quota with every other limiter of that name in the
    process (one quota per API, whichever functions call it, from every thread); without a
    name each decorated function has a quota of its own. *key* splits the quota by the
    call's arguments: ``key=lambda host, path: host`` gives each host its own. A shared
    *storage* (``resilient_scan.redis``) extends one quota across processes.

    Attributes:
        rate: Permits per *per* seconds.
        per: The period of *rate*, in seconds.
        burst: Calls that may go at once after a quiet spell (1: evenly spaced, never more
            than *rate* in any *per* window, plus one at its edge and one that woke
            late within its margin).
        name: The quota's name, shared by every limiter of that name (default: the
            decorated function's own quota, named after it).
        key: ``key(*args, **kwargs)`` -> a sub-quota per value (default: one quota).
        max_wait: The longest a call waits for a permit (default: as long as its deadline
            allows, or for ever without one).
        storage: Where the quota lives (default: this process's memory).
        clock: Where time comes from (tests pass a fake clock); wall-clock seconds.

    Raises:
        ConfigError: for a bad setting, naming it.
    """

    kind: ClassVar[str] = "rate_limit"
    shorthand_field: ClassVar[str | None] = "rate"

    rate: float
    per: float
    burst: int
    name: str | None
    key: Callable[..., object] | None = field(repr=False, compare=False)
    max_wait: float | None
    storage: object = field(repr=False, compare=False)
    clock: Clock = field(repr=False, compare=False)

    def __init__(
        self,
        rate: float,
        *,
        per: Seconds = 1.0,
        burst: int = 1,
        name: str | None = None,
        key: Callable[..., object] | None = None,
        max_wait: Seconds | None = None,
        storage: object = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """Validate and store the settings."""
        permits = _settings.number(rate, ("rate_limit", "rate"))
        period = _settings.seconds(per, ("rate_limit", "per"))
        if not 0.0 < period / permits <= _settings.MAX_SECONDS:
            raise ConfigError(
                ("rate_limit", "rate"),
                f"gives {period / permits:g}s between permits, outside (0, threading.TIMEOUT_MAX]",
            )
        if (
            storage is not None
            and not isinstance(storage, RateStore)
            and backend_for(storage) is None
        ):
            raise ConfigError(
                ("rate_limit", "storage"),
                "must be a rate store, a storage backend or a Redis client or URL, got"
                f" {_settings.show(storage)}",
            )
        self._assign(
            rate=permits,
            per=period,
            burst=_settings.integer(burst, ("rate_limit", "burst"), minimum=1),
            name=_settings.optional_text(name, ("rate_limit", "name")),
            key=_settings.optional_function(key, ("rate_limit", "key")),
            max_wait=_settings.optional_seconds(
                max_wait, ("rate_limit", "max_wait"), allow_zero=True
            ),
            storage=storage,
            clock=_settings.clock(clock, ("rate_limit", "clock")),
        )
        self._settled()

    def _settled(self) -> None:
        """The constructor's last step: a `RateLimiter` finds its quota here."""

    @property
    def interval(self) -> float:
        """Seconds between permits on the steady schedule: ``per / rate``."""
        return self.per / self.rate

    def build(self, default_name: str) -> RateLimiter:
        """Return a limiter with these settings (its own quota unless named)."""
        settings = {name: getattr(self, name) for name in self.settings()}
        if self.storage is None and self.name is None:
            settings["storage"] = MemoryRateStore()  # the decorated function's own quota
        settings["name"] = self.name or default_name
        return RateLimiter(**settings)

    def __call__(self, func: Callable[P, R]) -> LimitedFunction[P, R]:
        """Wrap *func* in a limiter with these settings."""
        _settings.decorated(func, "rate_limit")
        return self.build(callable_name(func))(func)

    def layer(self, func: Callable[P, R]) -> LimitedFunction[P, R]:
        """Wrap *func* in a limiter, as one layer of `resilient` (calls not counted)."""
        return self.build(callable_name(func)).layer(func)

    def describe(self) -> str:
        """Return a short description, as shown by ``resilient(...).describe()``."""
        parts = [f"{self.rate:g}/{self.per:g}s", f"burst={self.burst}"]
        if self.max_wait is not None:
            parts.append(f"max_wait={self.max_wait:g}s")
        return f"rate_limit({', '.join(parts)})"


rate_limit = RateLimitPolicy


@dataclass(frozen=True, init=False, eq=False)
class RateLimiter(RateLimitPolicy):
    """A rate limiter with its quota: every function it decorates draws on it.

    Takes the same settings as `rate_limit`. Decorate several functions with one limiter
    (or pass it as ``resilient(rate_limit=...)``), or call `acquire` before a request.
    """

    _store: RateStore = field(repr=False, compare=False)
    _interval: float = field(repr=False, compare=False)
    _longest_wait: float = field(repr=False, compare=False)
    _late_after: float = field(repr=False, compare=False)

    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def _settled(self) -> None:
        """Find the quota: in memory (shared by name), or in the store *storage* names."""
        storage, name = self.storage, self.name
        store: RateStore
        if storage is None:
            store = MemoryRateStore() if name is None else _named_store(name)
        elif isinstance(storage, RateStore):
            store = storage
        else:
            backend = backend_for(storage)
            assert backend is not None  # noqa: S101 - checked by the policy
            store = backend.rate_store(name or "rate_limit", self.clock)
        self._assign(
            name=name or "rate_limit",
            _store=store,
            _interval=self.per / self.rate,
            _longest_wait=math.inf if self.max_wait is None else self.max_wait,
            _late_after=max(_LATE_SHARE * self.per / self.rate, _LATE_FLOOR),
        )

    def __repr__(self) -> str:
        """Show the name and settings."""
        return (
            f"RateLimiter(name={self.name!r}, rate={self.rate:g}, per={self.per:g},"
            f" burst={self.burst})"
        )

    def build(self, default_name: str) -> RateLimiter:  # noqa: ARG002 - named already
        """Return this limiter: its quota is shared by every function it decorates."""
        return self

    def __call__(self, func: Callable[P, R]) -> LimitedFunction[P, R]:
        """Decorate *func* with this limiter."""
        _settings.decorated(func, "rate_limit")
        return counted(self.layer(func), callable_name(func), self.clock)

    def layer(self, func: Callable[P, R]) -> LimitedFunction[P, R]:
        """Limit *func* with this limiter, as one layer of `resilient` (calls not counted)."""
        _settings.decorated(func, "rate_limit")
        if is_async(func):
            wrapper: Any = _limit_async(self, cast("Callable[..., Awaitable[Any]]", func))
        else:
            wrapper = _limit_sync(self, func)
        wrapper.limiter = self
        return cast("LimitedFunction[P, R]", wrapper)

    def acquire(self, key: object = None, *, function: str = "") -> float:
        """Wait for a permit (of *key*'s quota, if given); return the seconds waited.

        Raises:
            RateLimitExceeded: if the permit is further away than the caller can wait.
        """
        asked = self.clock.monotonic()
        wait = self.reserve(key, function)
        return self._wait_for_permit(asked, wait, key, function) if wait > 0.0 else 0.0

    async def acquire_async(self, key: object = None, *, function: str = "") -> float:
        """`acquire` for async code: waits without blocking the event loop."""
        asked = self.clock.monotonic()
        wait = self.reserve(key, function)
        if wait > 0.0:
            return await self._wait_for_permit_async(asked, wait, key, function)
        return 0.0

    def reserve(self, key: object = None, function: str = "", *, spent: float = 0.0) -> float:
        """Reserve a permit now; return how long until it is due (no waiting here).

        *spent*: seconds the caller already waited for this call (a caller that woke too
        late for its permit): ``max_wait`` counts them.

        Raises:
            RateLimitExceeded: if it is further away than the caller can wait (nothing is
                reserved then).
        """
        available = max(0.0, self._longest_wait - spent)
        deadline = DEADLINE.get()
        if deadline is not None:
            left = deadline.remaining()
            available = min(available, left)
        reservation = self._store.reserve(
            "" if key is None else str(key),
            now=self.clock.time(),
            interval=self._interval,
            burst=self.burst,
            max_wait=available,
        )
        if reservation.granted:
            return reservation.wait
        label = self._label(key)
        if wanted(RateLimitRejected):
            emit(
                RateLimitRejected(label, function, round(reservation.wait, 3), round(available, 3))
            )
        raise RateLimitExceeded(label, reservation.wait, available)

    def _wait_for_permit(self, asked: float, wait: float, key: object, function: str) -> float:
        """Sleep until the permit asked for at *asked* is due, *wait* later; return *wait*.

        A caller that wakes too late for its permit gives it up and reserves the next free
        one, which it uses however late it wakes for that one (see `RateLimitPolicy`).
        The sleep counts from now, after the store answered, so no call starts before its
        permit is due; lateness counts from *asked* (the clock's monotonic time before the
        store was asked), so a caller held up on its way back from the store is late too.

        Raises:
            RateLimitExceeded: if, after waking late, the next free permit is further away
                than the caller can still wait.
        """
        clock = self.clock
        backoff_sleep(clock, wait)
        if clock.monotonic() - asked - wait > self._late_after:
            again = self.reserve(key, function, spent=clock.monotonic() - asked)
            if again > 0.0:
                backoff_sleep(clock, again)
            wait += again
        self._waited(wait, key, function)
        return wait

    async def _wait_for_permit_async(
        self, asked: float, wait: float, key: object, function: str
    ) -> float:
        """`_wait_for_permit` for async code: sleeps without blocking the event loop."""
        clock = self.clock
        await backoff_sleep_async(clock, wait)
        if clock.monotonic() - asked - wait > self._late_after:
            again = self.reserve(key, function, spent=clock.monotonic() - asked)
            if again > 0.0:
                await backoff_sleep_async(clock, again)
            wait += again
        self._waited(wait, key, function)
        return wait

    def bucket(self, function: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
        """The quota a call draws on: what ``key`` says of its arguments (None: the one)."""
        key = self.key
        if key is None:
            return None
        try:
            return key(*args, **kwargs)
        except Exception as exc:
            add_note(
                exc, f"resilient_scan: raised by key= of rate limit {self.name!r} for {function}"
            )
            raise

    def _waited(self, wait: float, key: object, function: str) -> None:
        if wanted(RateLimitWaited):
            emit(RateLimitWaited(self._label(key), function, round(wait, 3)))

    def _label(self, key: object) -> str:
        name = cast("str", self.name)
        return name if key is None else f"{name}[{key}]"


def _limit_sync(limiter: RateLimiter, func: Callable[P, R]) -> Callable[P, R]:
    name = callable_name(func)
    keyed, bucket, reserve, wait_for, monotonic = (
        limiter.key is not None,
        limiter.bucket,
        limiter.reserve,
        limiter._wait_for_permit,  # noqa: SLF001 - the limiter's own wrapper
        limiter.clock.monotonic,
    )

    @functools.wraps(func)
    def call_with_rate_limit(*args: P.args, **kwargs: P.kwargs) -> R:
        key = bucket(name, args, kwargs) if keyed else None
        asked = monotonic()
        wait = reserve(key, name)
        if wait > 0.0:
            wait_for(asked, wait, key, name)
        return func(*args, **kwargs)

    return call_with_rate_limit


def _limit_async(
    limiter: RateLimiter, func: Callable[P, Awaitable[R]]
) -> Callable[P, Awaitable[R]]:
    name = callable_name(func)
    bucket, acquire = limiter.bucket, limiter.acquire_async

    @functools.wraps(func)
    async def call_with_rate_limit(*args: P.args, **kwargs: P.kwargs) -> R:
        await acquire(bucket(name, args, kwargs), function=name)
        return await func(*args, **kwargs)

    return call_with_rate_limit


class LimitedFunction(Protocol[P, R_co]):
    """A function wrapped by `rate_limit`: same signature, plus its ``limiter``."""

    limiter: RateLimiter

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co:
        """Call once a permit is due."""
        ...
