"""Breaker, cache and rate-limit state shared by every process through one Redis.

Pass a Redis URL or a ``redis.Redis`` client as ``storage=`` to `circuit_breaker`,
`ttl_cache` or `rate_limit` (it is wrapped in a `RedisBackend`), or build one backend with
your options and pass it to every policy:

    shared = RedisBackend("redis://127.0.0.1:6379/0", namespace="scanners")

    @rs.resilient(breaker={"fail_max": 5, "storage": shared}, cache={"ttl": 60, "storage": shared})
    def fetch(ticker: str) -> dict: ...

What each store keeps in Redis (all keys under ``<namespace>:``):

- a breaker: one short string per breaker name (``breaker:<name>``) with its state,
  consecutive failures, when it opened and the half-open trial's lease, times in
  microseconds; no key at all while it is closed and has never failed. A call through a
  closed breaker costs one round trip (``GET``); a success with no failures to reset
  writes nothing; every change is one Lua script, so counts and the single half-open
  trial hold across processes. The trial is a lease: if its holder dies, the
  next call after the lease ends takes it.
- a cache: one string per entry (``cache:<name>:v:<digest>``) with a ``PX`` expiry, and a
  load lease per key (``cache:<name>:l:<digest>``) for single flight between processes.
  Keys are hashed from a canonical encoding and values written by a codec (JSON by
  default, never pickle); see `resilient_scan._redis_codec` for both formats.
- a rate limiter: one GCRA "theoretical arrival time" per key (``rate:<name>:<key>``),
  reserved by one Lua script on Redis's own clock, so process clocks do not matter.

When Redis fails (refused, timed out, or answering with an error), each layer falls back
at once and says so with one `BackendUnavailable` event; it tries Redis again at most once
per ``probe_interval`` (that call is the probe), and says `BackendRecovered` when Redis
answers. Meanwhile:

- the breaker keeps its state in this process (fresh, closed, at the start of each
  outage): it still opens after ``fail_max`` failures here;
- the cache calls through: every call is a miss, nothing is stored, no call waits for
  another process's load;
- the rate limiter fails open (``rate_limit_fallback="open"``, the default: every call
  gets a permit at once), closed (``"closed"``: no permits until Redis answers), or falls
  back to a limit of its own in this process (``"local"``).

No result is ever lost to Redis: a store that cannot reach it never raises into the call.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Final, Literal, cast, get_args

import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry

from . import _redis_scripts as _lua
from . import _settings
from ._breaker import CLOSED_ADMISSION, MemoryBreakerStore
from ._clock import SYSTEM_CLOCK, Clock
from ._errors import CacheEncodeError, ConfigError
from ._events import BackendRecovered, BackendUnavailable
from ._instrument import emit, wanted
from ._redis_codec import DIGEST_LENGTH, Codec, JsonCodec, key_bytes, key_digest
from ._storage import (
    CLOSED,
    HALF_OPEN,
    MISSING,
    OPEN,
    Admission,
    BreakerSnapshot,
    Reservation,
    Transition,
)
from ._text import describe_error, error_type

__all__ = [
    "Codec",
    "JsonCodec",
    "RateLimitFallback",
    "RedisBackend",
    "RedisBreakerStore",
    "RedisCacheStore",
    "RedisRateStore",
    "key_bytes",
    "key_digest",
]

#: What a rate limiter does while Redis is unavailable.
RateLimitFallback = Literal["open", "closed", "local"]

#: What counts as "Redis is unavailable": anything the client raises (refused, timed out,
#: loading, read-only replica, out of memory...) and socket errors it did not wrap.
_UNAVAILABLE: Final = (redis.RedisError, OSError)
#: For the breaker, also a value it cannot read (written by something else under its key).
_BREAKER_UNAVAILABLE: Final = (*_UNAVAILABLE, ValueError)

#: The breaker's own object for "closed, no failures": its wrapper then skips reporting a
#: success, which would write nothing anyway.
_CLOSED_NO_FAILURES: Final = CLOSED_ADMISSION
_NEVER_FAILED: Final = ("closed", "0", "", "", "")
_REDIS_ISSUED: Final = "r:"  # trial and lease tokens issued by Redis (others are local)
_LOCAL_ISSUED: Final = "local:"
_MAX_WAIT: Final = 1e9  # about 31 years, in seconds: bounds waits given as "forever" (inf)
_SCAN_BATCH: Final = 1000
_LOCAL_KEYS_KEPT: Final = 1024


def _micros(seconds: float) -> int:
    return round(seconds * 1_000_000)


def _command(client: redis.Redis) -> Callable[..., Any]:
    # ``execute_command`` is untyped in redis-py; it is also the shortest path to one
    # command (the typed wrappers only build its arguments).
    command: Callable[..., Any] = client.execute_command
    return command


def _text(value: bytes | str | None) -> str | None:
    # Our own clients answer bytes; a client passed in may decode responses to str.
    return value.decode() if isinstance(value, bytes) else value


# -- health: when to fall back, when to try again --------------------------------------------

_DOWN, _UP, _PROBE = 0, 1, 2


class _Health:
    """Whether one layer of one backend uses Redis now, and when it tries again.

    Shared by every store of that layer, so one outage is one event per layer. While
    down, `mode` lets one caller per probe interval try Redis (the probe); only a probe's
    success ends the outage, so a slow answer to a call made before the outage does not.
    """

    __slots__ = (
        "backend",
        "clock",
        "down_since",
        "fallback",
        "interval",
        "layer",
        "lock",
        "next_probe",
        "outages",
        "pid",
    )

    def __init__(
        self, backend: str, layer: str, fallback: str, interval: float, clock: Clock
    ) -> None:
        self.backend = backend
        self.layer = layer
        self.fallback = fallback
        self.interval = interval
        self.clock = clock
        self.lock = threading.Lock()
        self.pid = os.getpid()
        self.down_since: float | None = None
        self.next_probe = 0.0
        self.outages = 0

    def _locked(self) -> threading.Lock:
        # Only the slow paths take the lock; in a forked child it may be held by a thread
        # of the parent that does not exist there, so a child starts with a fresh one.
        if self.pid != os.getpid():
            self.lock, self.pid = threading.Lock(), os.getpid()
        return self.lock

    def mode(self) -> int:
        """`_UP` (use Redis), `_PROBE` (try Redis: this caller probes) or `_DOWN`."""
        if self.down_since is None:
            return _UP
        now = self.clock.monotonic()
        with self._locked():
            since: float | None = self.down_since  # another thread may have ended it
            if since is None:
                return _UP
            if now < self.next_probe:
                return _DOWN
            self.next_probe = now + self.interval
            return _PROBE

    def seconds_to_probe(self) -> float:
        """Seconds until the next probe may run (0.0 when Redis is in use)."""
        if self.down_since is None:
            return 0.0
        return max(0.0, self.next_probe - self.clock.monotonic())

    def failed(self, exc: BaseException, operation: str) -> None:
        """Redis failed *operation*: fall back (reporting it once per outage)."""
        now = self.clock.monotonic()
        with self._locked():
            self.next_probe = now + self.interval
            if self.down_since is not None:
                return
            self.down_since = now
            self.outages += 1
        if wanted(BackendUnavailable):
            emit(
                BackendUnavailable(
                    self.backend,
                    self.layer,
                    operation,
                    self.fallback,
                    error_type(exc),
                    describe_error(exc),
                )
            )

    def answered(self, mode: int) -> None:
        """Redis answered a call made in *mode*: a probe's answer ends the outage."""
        if mode != _PROBE:
            return
        now = self.clock.monotonic()
        with self._locked():
            since = self.down_since
            if since is None:
                return
            self.down_since = None
        if wanted(BackendRecovered):
            emit(BackendRecovered(self.backend, self.layer, round(now - since, 3)))


# -- the backend -----------------------------------------------------------------------------


class RedisBackend:
    """Makes Redis stores for every policy: one backend, one connection pool, one namespace.

    Args:
        client: A Redis URL (``redis://``, ``rediss://``, ``unix://``) or a ``redis.Redis``
            client. For a URL the backend makes its own client, with *timeout* on connects
            and reads and one immediate retry on a broken connection; a client you pass is
            used as it is, so its own ``socket_timeout`` and ``retry`` decide how long a
            call waits for a Redis that is down or slow (redis-py's defaults: 5 s, and
            retries with backoff).
        namespace: The prefix of every key (``<namespace>:breaker:...``), so that
            applications sharing one Redis do not share state by accident.
        codec: How cached values become bytes (default: `JsonCodec`).
        timeout: Seconds to wait for Redis (connect, and each answer) before falling back,
            for a client made from a URL.
        probe_interval: While Redis is unavailable, try it again at most this often.
        rate_limit_fallback: What rate limiters do while Redis is unavailable: ``"open"``
            (permit every call), ``"closed"`` (permit none) or ``"local"`` (each process
            applies the limit alone).
        clock: Times the probe interval (tests pass a fake clock).

    Raises:
        ConfigError: for a bad argument, naming it (``redis.<argument>``).
    """

    def __init__(
        self,
        client: redis.Redis | str,
        *,
        namespace: str = "resilient_scan",
        codec: Codec | None = None,
        timeout: _settings.Seconds = 0.5,
        probe_interval: _settings.Seconds = 1.0,
        rate_limit_fallback: RateLimitFallback = "open",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """Connect lazily to *client* (a URL or a client); see the class for the options."""
        self.namespace = _settings.text(namespace, ("redis", "namespace"))
        self.codec: Codec = JsonCodec() if codec is None else _codec(codec)
        self.timeout = _settings.seconds(timeout, ("redis", "timeout"))
        self.probe_interval = _settings.seconds(probe_interval, ("redis", "probe_interval"))
        if rate_limit_fallback not in get_args(RateLimitFallback):
            raise ConfigError(
                ("redis", "rate_limit_fallback"),
                f"must be 'open', 'closed' or 'local', got {rate_limit_fallback!r}",
            )
        self.rate_limit_fallback: RateLimitFallback = rate_limit_fallback
        self.clock = _settings.clock(clock, ("redis", "clock"))
        self._owns_client = isinstance(client, str)
        self.client: redis.Redis = self._client(client)
        self.name: str = _describe(self.client)
        interval = self.probe_interval
        rate_fallback = (
            "local_state" if rate_limit_fallback == "local" else f"fail_{rate_limit_fallback}"
        )
        self._health = {
            "breaker": _Health(self.name, "breaker", "local_state", interval, self.clock),
            "cache": _Health(self.name, "cache", "call_through", interval, self.clock),
            "rate_limit": _Health(self.name, "rate_limit", rate_fallback, interval, self.clock),
        }
        register = self.client.register_script
        self._scripts: dict[str, Script] = {
            name: register(getattr(_lua, name))
            for name in (
                "ADMIT_TRIAL",
                "RECORD_FAILURE",
                "RECORD_SUCCESS",
                "RELEASE_TRIAL",
                "FORCE",
                "TAKE_LEASE",
                "RELEASE_LEASE",
                "RESERVE",
            )
        }

    def _client(self, value: object) -> redis.Redis:
        if isinstance(value, str):
            if not value.startswith(("redis://", "rediss://", "unix://")):
                raise ConfigError(
                    ("redis", "client"),
                    f"must be a redis://, rediss:// or unix:// URL, got {value!r}",
                )
            return redis.Redis.from_url(
                value,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                # One immediate retry on a broken connection (Redis restarted); none on a
                # timeout, which would only double the wait for a Redis that is slow.
                retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
            )
        if isinstance(value, redis.Redis):
            return value
        kind = type(value)
        raise ConfigError(
            ("redis", "client"),
            "must be a Redis URL or a redis.Redis client (synchronous, one server), got"
            f" {kind.__module__}.{kind.__qualname__}",
        )

    def __repr__(self) -> str:
        """Show where the state lives."""
        return f"RedisBackend({self.name!r}, namespace={self.namespace!r})"

    def key(self, *parts: str) -> str:
        """The Redis key for *parts* in this backend's namespace."""
        return ":".join((self.namespace, *parts))

    def script(self, name: str) -> Script:
        """One of the stores' Lua scripts, run by ``EVALSHA`` (loaded again on NOSCRIPT)."""
        return self._scripts[name]

    def health(self, layer: str) -> _Health:
        """The health of *layer* (``breaker``, ``cache`` or ``rate_limit``) on this backend."""
        return self._health[layer]

    def breaker_store(self, breaker: str, clock: Clock) -> RedisBreakerStore:  # noqa: ARG002
        """The store for the breaker named *breaker* (times come from the breaker)."""
        return RedisBreakerStore(self, breaker)

    def cache_store(self, cache: str, *, maxsize: int, clock: Clock) -> RedisCacheStore:  # noqa: ARG002
        """The store for the cache named *cache* (Redis bounds it by memory, not *maxsize*)."""
        return RedisCacheStore(self, cache, clock=clock)

    def rate_store(self, limiter: str, clock: Clock) -> RedisRateStore:  # noqa: ARG002
        """The store for the rate limiter named *limiter* (on Redis's clock)."""
        return RedisRateStore(self, limiter)

    def close(self) -> None:
        """Close the connections of a client this backend made (not of one passed in)."""
        if self._owns_client:
            self.client.close()


def _codec(value: object) -> Codec:
    if isinstance(value, Codec):
        return value
    raise ConfigError(
        ("redis", "codec"),
        f"must have a name and encode() and decode() methods, got {type(value).__name__}",
    )


def _describe(client: redis.Redis) -> str:
    """``redis://host:port/db`` (never the credentials)."""
    kwargs: dict[str, Any] = getattr(client.connection_pool, "connection_kwargs", {})
    db = kwargs.get("db", 0)
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={db}"
    return f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{db}"


# -- the breaker -----------------------------------------------------------------------------


class RedisBreakerStore:
    """A `BreakerStore` in one Redis string, shared by every process that names the breaker.

    Costs: a call through a closed breaker with no failures counted, one ``GET`` and
    nothing on success; a failure, one script; a rejection while open, one ``GET``;
    taking the half-open trial, one ``GET`` and one script. Falls back to a
    `MemoryBreakerStore` of this process while Redis is unavailable.
    """

    def __init__(self, backend: RedisBackend, breaker: str) -> None:
        """The store of *breaker* on *backend* (use `RedisBackend.breaker_store`)."""
        self.name = breaker
        self.key = backend.key("breaker", breaker)
        self._command = _command(backend.client)
        self._health = backend.health("breaker")
        self._admit_trial = backend.script("ADMIT_TRIAL")
        self._record_failure = backend.script("RECORD_FAILURE")
        self._record_success = backend.script("RECORD_SUCCESS")
        self._release_trial = backend.script("RELEASE_TRIAL")
        self._force = backend.script("FORCE")
        self._lock = threading.Lock()
        self._local = MemoryBreakerStore()
        self._local_outage = 0

    def __repr__(self) -> str:
        """Show the key."""
        return f"RedisBreakerStore({self.key!r})"

    def _fallback(self) -> MemoryBreakerStore:
        # Each outage starts from a fresh, closed breaker in this process.
        outage = self._health.outages
        if self._local_outage != outage:
            with self._lock:
                if self._local_outage != outage:
                    self._local = MemoryBreakerStore()
                    self._local_outage = outage
        return self._local

    def _fields(self) -> tuple[str, ...]:
        """State, failures, opened at, trial holder, trial until: one ``GET``."""
        raw = self._command("GET", self.key)
        if raw is None:
            return _NEVER_FAILED
        text = raw.decode() if isinstance(raw, bytes) else raw
        return tuple(text.split("|"))

    def admit(self, *, now: float, reset_timeout: float, trial_lease: float) -> Admission:
        """Decide whether a call may run now (one round trip unless it takes the trial)."""
        mode = self._health.mode()
        if mode:
            try:
                admission = self._admit(now, reset_timeout, trial_lease)
            except _BREAKER_UNAVAILABLE as exc:
                self._health.failed(exc, "admit")
            else:
                self._health.answered(mode)
                return admission
        return self._fallback().admit(now=now, reset_timeout=reset_timeout, trial_lease=trial_lease)

    def _admit(self, now: float, reset_timeout: float, trial_lease: float) -> Admission:
        raw = self._command("GET", self.key)
        if raw is None:  # the happy path: closed, and never a failure to reset
            return _CLOSED_NO_FAILURES
        text = raw.decode() if isinstance(raw, bytes) else raw
        state, failures, opened, holder, held_until = text.split("|")
        if state == CLOSED:
            return _closed(failures)
        now_us, reset_us = _micros(now), _micros(reset_timeout)
        if state == OPEN:
            reopens = int(opened) + reset_us
            if now_us < reopens:
                return Admission("rejected", OPEN, retry_in=(reopens - now_us) / 1e6)
        if holder and now_us < int(held_until):
            return Admission("rejected", HALF_OPEN, retry_in=0.0)
        return self._take_trial(now_us, reset_us, now_us + _micros(trial_lease))

    def _take_trial(self, now_us: int, reset_us: int, lease_end: int) -> Admission:
        # The snapshot said the trial is free: take it atomically, or see who was faster.
        token = _REDIS_ISSUED + os.urandom(12).hex()
        answer = self._admit_trial(keys=[self.key], args=[now_us, reset_us, lease_end, token])
        verdict = _text(answer[0])
        if verdict == "trial":
            previous = _text(answer[1])
            if previous == HALF_OPEN:
                return Admission("trial", HALF_OPEN, token=token)
            moved = Transition(OPEN, HALF_OPEN, int(answer[2]))
            return Admission("trial", HALF_OPEN, token=token, transition=moved)
        if verdict == "busy":
            return Admission("rejected", HALF_OPEN, retry_in=0.0)
        if verdict == "open":
            return Admission("rejected", OPEN, retry_in=(int(answer[1]) + reset_us - now_us) / 1e6)
        return _closed(answer[1])

    def record_success(self, admission: Admission, *, now: float) -> Transition | None:
        """A success: a trial's closes the breaker; an ordinary one resets the failures.

        An ordinary call admitted with no failures counted writes nothing.
        """
        if admission.verdict == "closed" and not admission.failures:
            return None
        token = admission.token
        if token is not None and not token.startswith(_REDIS_ISSUED):
            return self._fallback().record_success(admission, now=now)
        mode = self._health.mode()
        if mode:
            try:
                answer = self._record_success(keys=[self.key], args=[token or ""])
            except _BREAKER_UNAVAILABLE as exc:
                self._health.failed(exc, "record_success")
            else:
                self._health.answered(mode)
                return _transition(answer)
        if token is not None:
            return None  # a trial admitted by Redis: its lease there runs out by itself
        return self._fallback().record_success(admission, now=now)

    def record_failure(
        self, admission: Admission, *, now: float, fail_max: int
    ) -> Transition | None:
        """A failure: count it while closed (opening at *fail_max*), or re-open after a trial."""
        token = admission.token
        if token is not None and not token.startswith(_REDIS_ISSUED):
            return self._fallback().record_failure(admission, now=now, fail_max=fail_max)
        mode = self._health.mode()
        if mode:
            try:
                answer = self._record_failure(
                    keys=[self.key], args=[_micros(now), fail_max, token or ""]
                )
            except _BREAKER_UNAVAILABLE as exc:
                self._health.failed(exc, "record_failure")
            else:
                self._health.answered(mode)
                return _transition(answer)
        if token is not None:
            return None
        return self._fallback().record_failure(admission, now=now, fail_max=fail_max)

    def release(self, admission: Admission) -> None:
        """Free a trial's lease without a verdict."""
        token = admission.token
        if token is None:
            return
        if not token.startswith(_REDIS_ISSUED):
            self._fallback().release(admission)
            return
        mode = self._health.mode()
        if mode:
            try:
                self._release_trial(keys=[self.key], args=[token])
            except _BREAKER_UNAVAILABLE as exc:
                self._health.failed(exc, "release")
            else:
                self._health.answered(mode)

    def snapshot(self, *, now: float, reset_timeout: float) -> BreakerSnapshot:
        """The state for display (this process's own while Redis is unavailable)."""
        mode = self._health.mode()
        if mode:
            try:
                state, failures, opened, _, _ = self._fields()
            except _BREAKER_UNAVAILABLE as exc:
                self._health.failed(exc, "snapshot")
            else:
                self._health.answered(mode)
                return _snapshot(state, failures, opened, now, reset_timeout)
        return self._fallback().snapshot(now=now, reset_timeout=reset_timeout)

    def force(self, state: str, *, now: float) -> Transition | None:
        """Set the state for every process (only this one's while Redis is unavailable)."""
        mode = self._health.mode()
        if mode:
            try:
                answer = self._force(keys=[self.key], args=[state, _micros(now)])
            except _BREAKER_UNAVAILABLE as exc:
                self._health.failed(exc, "force")
            else:
                self._health.answered(mode)
                return _transition(answer)
        return self._fallback().force(state, now=now)


def _closed(failures: bytes | str) -> Admission:
    count = int(failures)
    return Admission("closed", CLOSED, count) if count else _CLOSED_NO_FAILURES


def _transition(answer: Sequence[bytes | str] | None) -> Transition | None:
    if not answer:
        return None
    from_state, to_state, failures = answer
    return Transition(cast("str", _text(from_state)), cast("str", _text(to_state)), int(failures))


def _snapshot(
    state: str, failures: str, opened: str, now: float, reset_timeout: float
) -> BreakerSnapshot:
    opened_at = int(opened) / 1e6 if opened else None
    retry_in = 0.0
    if state == OPEN and opened_at is not None:
        if now >= opened_at + reset_timeout:
            state = HALF_OPEN
        else:
            retry_in = opened_at + reset_timeout - now
    return BreakerSnapshot(state, int(failures), opened_at, retry_in)


# -- the cache -------------------------------------------------------------------------------

#: How often a process waiting for another's load looks for its value: first after 2 ms,
#: then each wait 1.5 times longer, up to 50 ms.
_POLL_FIRST, _POLL_FACTOR, _POLL_MOST = 0.002, 1.5, 0.05


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


class RedisCacheStore:
    """A `SharedCacheStore` in Redis: one string per entry, expired by Redis (``PX``).

    Keys: ``<namespace>:cache:<cache>:v:<digest>``, where the digest is `key_digest` of
    the cache key. Values: written by the backend's codec; a value it cannot encode raises
    `CacheEncodeError` from `set` and nothing is stored. While Redis is unavailable every
    `get` is a miss and `set` stores nothing (the call goes through uncached).

    Single flight between processes: the loader takes a lease (``SET NX PX``, in a script
    that first checks no value is stored) and the others poll for the value (`wait_for`),
    returning as soon as it lands or the lease is gone (the load failed, or its process
    died), and never later than their timeout.
    Polling needs no connection per waiter and no listener thread, and cannot miss a value
    stored between a check and a subscription, as pub/sub can; its cost is one ``MGET``
    per waiting process every 2 to 50 ms.
    """

    def __init__(self, backend: RedisBackend, cache: str, *, clock: Clock = SYSTEM_CLOCK) -> None:
        """The store of *cache* on *backend* (use `RedisBackend.cache_store`)."""
        self.name = cache
        self.codec = backend.codec
        self.clock = clock
        self.prefix = backend.key("cache", cache, "")
        self._client = backend.client
        self._command = _command(backend.client)
        self._health = backend.health("cache")
        self._take_lease = backend.script("TAKE_LEASE")
        self._release_lease = backend.script("RELEASE_LEASE")
        # Exactly a value key of this cache: the digest is a fixed number of characters,
        # so the pattern cannot match another cache whose name extends this one's.
        self._pattern = _glob_escape(self.prefix + "v:") + "?" * DIGEST_LENGTH

    def __repr__(self) -> str:
        """Show the key prefix."""
        return f"RedisCacheStore({self.prefix!r})"

    def value_key(self, key: Hashable) -> str:
        """The Redis key of *key*'s entry."""
        return f"{self.prefix}v:{key_digest(key)}"

    def lease_key(self, key: Hashable) -> str:
        """The Redis key of *key*'s load lease."""
        return f"{self.prefix}l:{key_digest(key)}"

    def _decode(self, data: bytes | str, where: str) -> Any:
        raw = data.encode() if isinstance(data, str) else data
        try:
            return self.codec.decode(raw)
        except Exception as exc:
            # Not a TypeError: the cache reports it and calls through; set() replaces it.
            raise ValueError(
                f"cache {self.name!r}: the entry {where} is not valid {self.codec.name}:"
                f" {describe_error(exc)}"
            ) from exc

    def get(self, key: Hashable) -> Any:
        """Return the live value under *key*, or `MISSING` (always, while Redis is down)."""
        where = self.value_key(key)
        mode = self._health.mode()
        if not mode:
            return MISSING
        try:
            data = self._command("GET", where)
        except _UNAVAILABLE as exc:
            self._health.failed(exc, "get")
            return MISSING
        self._health.answered(mode)
        return MISSING if data is None else self._decode(data, where)

    def set(self, key: Hashable, value: Any, ttl: float) -> None:
        """Store *value* for *ttl* seconds (nothing while Redis is down).

        Raises:
            CacheEncodeError: if the codec cannot encode *value* (nothing is stored).
        """
        where = self.value_key(key)
        try:
            data = self.codec.encode(value)
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise CacheEncodeError(self.name, str(exc)) from exc
        mode = self._health.mode()
        if not mode:
            return
        try:
            self._command("SET", where, data, "PX", max(1, math.ceil(ttl * 1000)))
        except _UNAVAILABLE as exc:
            self._health.failed(exc, "set")
        else:
            self._health.answered(mode)

    def lease(self, key: Hashable, seconds: float) -> str | None:
        """Take *key*'s load lease for *seconds*: its token, or None if it is not needed.

        None when another process holds the lease, or when a value is already stored (one
        that landed since the caller's miss): either way, `wait_for` answers. Checking both
        in one script closes the gap in which a caller that missed just before a load
        finished would take the lease and load the key a second time. While Redis is
        unavailable every caller gets a (local) token: each loads for itself.
        """
        digest = key_digest(key)
        mode = self._health.mode()
        if mode:
            token = _REDIS_ISSUED + os.urandom(12).hex()
            keys = [f"{self.prefix}v:{digest}", f"{self.prefix}l:{digest}"]
            try:
                taken = self._take_lease(keys=keys, args=[token, max(1, math.ceil(seconds * 1000))])
            except _UNAVAILABLE as exc:
                self._health.failed(exc, "lease")
            else:
                self._health.answered(mode)
                return token if taken else None
        return _LOCAL_ISSUED + os.urandom(12).hex()

    def release(self, key: Hashable, token: str) -> None:
        """Give *key*'s lease back, if *token* still holds it."""
        if not token.startswith(_REDIS_ISSUED):
            return
        where = self.lease_key(key)
        mode = self._health.mode()
        if not mode:
            return  # the lease runs out by itself
        try:
            self._release_lease(keys=[where], args=[token])
        except _UNAVAILABLE as exc:
            self._health.failed(exc, "release")
        else:
            self._health.answered(mode)

    def wait_for(self, key: Hashable, timeout: float) -> Any:
        """Wait up to *timeout* seconds for another process to store *key*'s value.

        Returns it, or `MISSING` when the timeout passes, when nobody holds the lease any
        more without having stored a value, or at once while Redis is unavailable.
        """
        where, lease = self.value_key(key), self.lease_key(key)
        clock = self.clock
        deadline = clock.monotonic() + timeout
        pause = _POLL_FIRST
        while True:
            mode = self._health.mode()
            if not mode:
                return MISSING
            try:
                data, holder = self._command("MGET", where, lease)
            except _UNAVAILABLE as exc:
                self._health.failed(exc, "wait_for")
                return MISSING
            self._health.answered(mode)
            if data is not None:
                return self._decode(data, where)
            left = deadline - clock.monotonic()
            if holder is None or left <= 0:
                return MISSING
            clock.sleep(min(pause, left))
            pause = min(pause * _POLL_FACTOR, _POLL_MOST)

    def clear(self) -> None:
        """Remove every entry of this cache, found by ``SCAN`` (never ``KEYS``).

        Raises:
            ConnectionError: if Redis is unavailable (nothing, or not everything, was removed).
        """
        try:
            batch: list[bytes] = []
            for found in self._client.scan_iter(match=self._pattern, count=_SCAN_BATCH):
                batch.append(found)
                if len(batch) >= _SCAN_BATCH:
                    self._client.unlink(*batch)
                    batch.clear()
            if batch:
                self._client.unlink(*batch)
        except _UNAVAILABLE as exc:
            self._health.failed(exc, "clear")
            raise ConnectionError(
                f"cache {self.name!r}: Redis is unavailable, its entries were not cleared"
                f" ({describe_error(exc)})"
            ) from exc
        self._health.answered(_PROBE)

    def __len__(self) -> int:
        """Count this cache's live entries with ``SCAN`` (0 while Redis is unavailable)."""
        mode = self._health.mode()
        if not mode:
            return 0
        try:
            count = sum(1 for _ in self._client.scan_iter(match=self._pattern, count=_SCAN_BATCH))
        except _UNAVAILABLE as exc:
            self._health.failed(exc, "len")
            return 0
        self._health.answered(mode)
        return count


# -- the rate limiter ------------------------------------------------------------------------


class _LocalGcra:
    """The same GCRA in this process, for the ``"local"`` fallback."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tat: dict[str, float] = {}

    def reserve(
        self, key: str, *, now: float, interval: float, burst: int, max_wait: float
    ) -> Reservation:
        with self._lock:
            tat = max(self._tat.get(key, now), now)
            wait = max(0.0, tat - (burst - 1) * interval - now)
            if wait > max_wait:
                return Reservation(granted=False, wait=wait)
            self._tat[key] = tat + interval
            if len(self._tat) > _LOCAL_KEYS_KEPT:  # forget keys whose permit is due already
                self._tat = {k: t for k, t in self._tat.items() if t > now}
            return Reservation(granted=True, wait=wait)


class RedisRateStore:
    """A `RateStore` in Redis: one GCRA per key, reserved by one script on Redis's clock.

    ``now`` is ignored while Redis answers (process clocks may disagree; Redis's ``TIME``
    is one clock for all of them). While Redis is unavailable the backend's
    ``rate_limit_fallback`` decides: ``"open"`` grants every call at once, ``"closed"``
    grants none (the wait given is the time until the next probe), ``"local"`` applies the
    limit in this process alone, on ``now``.
    """

    def __init__(self, backend: RedisBackend, limiter: str) -> None:
        """The store of *limiter* on *backend* (use `RedisBackend.rate_store`)."""
        self.name = limiter
        self.prefix = backend.key("rate", limiter, "")
        self.fallback = backend.rate_limit_fallback
        self._health = backend.health("rate_limit")
        self._reserve = backend.script("RESERVE")
        self._local = _LocalGcra()

    def __repr__(self) -> str:
        """Show the key prefix."""
        return f"RedisRateStore({self.prefix!r})"

    def reserve(
        self, key: str, *, now: float, interval: float, burst: int, max_wait: float
    ) -> Reservation:
        """Reserve *key*'s next permit if it is due within *max_wait* seconds."""
        mode = self._health.mode()
        if mode:
            args = [interval * 1e6, _micros(min(max_wait, _MAX_WAIT)), burst]
            try:
                granted, wait = self._reserve(keys=[self.prefix + key], args=args)
            except _UNAVAILABLE as exc:
                self._health.failed(exc, "reserve")
            else:
                self._health.answered(mode)
                return Reservation(granted=bool(granted), wait=float(wait) / 1e6)
        if self.fallback == "open":
            return Reservation(granted=True, wait=0.0)
        if self.fallback == "closed":
            return Reservation(granted=False, wait=max(0.001, self._health.seconds_to_probe()))
        return self._local.reserve(key, now=now, interval=interval, burst=burst, max_wait=max_wait)
