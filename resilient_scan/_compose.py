"""`resilient()`: the layers in one fixed order.

Outermost first: cache, retry, breaker, rate limit, timeout, then the function.

- The cache is outermost: a hit skips every other layer and answers even while the breaker
  is open.
- Retry wraps the breaker: the breaker sees every attempt, and once it opens the retry stops
  at once (`CircuitOpenError` is never retried).
- The rate limiter is inside the breaker: a call the breaker rejects spends no permit, and
  each attempt spends one. Its `RateLimitExceeded` is no verdict on the service: the
  breaker does not count it.
- The timeout is innermost: it limits each attempt, and a timed-out attempt is a failure in
  the breaker's count.

The composite is one wrapper with a fast path: while the in-memory breaker is closed and no
hook takes attempt events, one frame admits the call, makes it, and settles the success
(counting it and reporting its `CallFinished` where someone listens); every other case goes
through the layers one by one.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, ParamSpec, Protocol, TypeAlias, TypeVar, cast

from . import _config, _settings
from ._breaker import CLOSED_ADMISSION, BreakerPolicy, CircuitBreaker, MemoryBreakerStore
from ._cache import CacheInfo, CachePolicy
from ._calls import counted, finish_call, is_async
from ._clock import SYSTEM_CLOCK, Clock
from ._config import CURRENT_SCAN
from ._events import CallFinished
from ._instrument import QUIET_DISPATCH, emit, wanted
from ._ratelimit import RateLimiter, RateLimitPolicy
from ._retry import RetryPolicy, Tries, retry_async, retry_sync
from ._storage import CLOSED
from ._text import callable_name
from ._timeout import TimeoutPolicy

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

Layer: TypeAlias = "CachePolicy | RetryPolicy | BreakerPolicy | RateLimitPolicy | TimeoutPolicy"


class ResilientFunction(Protocol[P, R_co]):
    """A function wrapped by `resilient`: same signature, plus a view of its layers."""

    #: The composed layers' settings, outermost first.
    layers: tuple[Layer, ...]
    #: The function's circuit breaker, or None without a breaker layer.
    breaker: CircuitBreaker | None
    #: The function's rate limiter, or None without a rate-limit layer.
    limiter: RateLimiter | None

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co:
        """Call through every layer."""
        ...

    def describe(self) -> str:
        """Return the layers in order, e.g. ``ttl_cache(...) -> retry(...) -> f``."""
        ...

    def cache_clear(self) -> None:
        """Drop every cached result (nothing without a cache layer)."""
        ...

    def cache_info(self) -> CacheInfo | None:
        """Return the cache counters, or None without a cache layer."""
        ...


def resilient(
    *,
    timeout: float | timedelta | Mapping[str, Any] | TimeoutPolicy | None = None,
    retry: bool | Mapping[str, Any] | RetryPolicy | None = None,
    cache: float | timedelta | Mapping[str, Any] | CachePolicy | None = None,
    breaker: bool | Mapping[str, Any] | BreakerPolicy | None = None,
    rate_limit: float | Mapping[str, Any] | RateLimitPolicy | None = None,
) -> Callable[[Callable[P, R]], ResilientFunction[P, R]]:
    """Wrap the decorated function in the given layers, in one fixed order.

    Outermost first: cache, retry, breaker, rate limit, timeout, then the function. So a
    cache hit answers even while the breaker is open, the breaker sees every retry attempt,
    a call the breaker rejects spends no rate-limit permit, and a timed-out attempt counts
    as a breaker failure (one whose budget was spent before it started does not).
    Synchronous and coroutine functions alike.

    Each argument takes a number (*timeout* seconds, *cache* TTL, *rate_limit* calls per
    second), a dict of that policy's keyword arguments, a policy object, ``True`` for the
    defaults (*retry*, *breaker*), or ``None`` to leave the layer out. *breaker* also takes
    a `CircuitBreaker`, and *rate_limit* a `RateLimiter`, to share one between functions.

    Raises:
        ConfigError: at decoration time, naming a bad or unknown setting.
    """
    cache_policy = CachePolicy.coerce(cache, "resilient", "cache")
    retry_policy = RetryPolicy.coerce(retry, "resilient", "retry")
    breaker_policy = BreakerPolicy.coerce(breaker, "resilient", "breaker")
    limit_policy = RateLimitPolicy.coerce(rate_limit, "resilient", "rate_limit")
    timeout_policy = TimeoutPolicy.coerce(timeout, "resilient", "timeout")
    layers: tuple[Layer, ...] = tuple(
        layer
        for layer in (cache_policy, retry_policy, breaker_policy, limit_policy, timeout_policy)
        if layer is not None
    )

    def decorate(func: Callable[P, R]) -> ResilientFunction[P, R]:
        _settings.decorated(func, "resilient")
        name = callable_name(func)
        breaker = None if breaker_policy is None else breaker_policy.build(name)
        limiter = None if limit_policy is None else limit_policy.build(name)
        inner: Callable[..., Any] = func
        if timeout_policy is not None:
            inner = timeout_policy.layer(inner)
        if limiter is not None:
            inner = limiter.layer(inner)
        guarded = inner if breaker is None else breaker.layer(inner)
        core = guarded if retry_policy is None else retry_policy.layer(guarded)
        clock = _clock_of(retry_policy, breaker, limiter)
        fast = _fast_path(retry_policy, breaker)
        if cache_policy is not None:
            core = fast(core, inner, name, counts=False) if fast else core
            outer: Any = counted(cache_policy.layer(core), name, clock)
        elif fast is not None:
            outer = fast(counted(core, name, clock), inner, name, counts=True)
        else:
            outer = counted(core, name, clock)
        outer.layers = layers
        outer.describe = lambda: " -> ".join([layer.describe() for layer in layers] + [name])
        outer.breaker = breaker
        outer.limiter = limiter
        if cache_policy is None:
            outer.cache_clear = lambda: None
            outer.cache_info = lambda: None
        return cast("ResilientFunction[P, R]", outer)

    return decorate


def _clock_of(*policies: RetryPolicy | CircuitBreaker | RateLimiter | None) -> Clock:
    """The clock calls are timed on: the outermost layer's that has one."""
    for policy in policies:
        if policy is not None:
            return policy.clock
    return SYSTEM_CLOCK


class Fuse(Protocol):
    """Fuses retry and breaker around *inner* into one frame, with *slow* for other cases."""

    def __call__(
        self, slow: Callable[..., Any], inner: Callable[..., Any], name: str, *, counts: bool
    ) -> Callable[..., Any]:
        """The fused wrapper; with *counts*, it is the outermost and counts the calls."""
        ...


def _fast_path(retry: RetryPolicy | None, breaker: CircuitBreaker | None) -> Fuse | None:
    """How to fuse retry and breaker into one frame, or None where that does not apply.

    The fused frame takes a fast path while the breaker (in this process's memory) is
    closed and no hook takes attempt events: it then does what the layers would, without
    their frames. While nobody listens for per-call events and no scanner runs, it builds
    nothing at all; otherwise (a metrics hook that counts calls, a scanner's statistics)
    it also counts the call and reports its `CallFinished`, as `counted` does, when it is
    the outermost wrapper (*counts*). Anything else goes to *slow*, the layers one by one.
    A retry with a ``total`` budget enters a deadline scope per call: no fast path. (Each
    layer alone already has a fast path of its own.)
    """
    if retry is None or retry.total is not None or breaker is None:
        return None
    if type(breaker.store) is not MemoryBreakerStore:
        return None

    def fuse(
        slow: Callable[..., Any], inner: Callable[..., Any], name: str, *, counts: bool
    ) -> Callable[..., Any]:
        if is_async(inner):
            return _fused_async(slow, inner, name, retry, breaker, counts=counts)
        return _fused_sync(slow, inner, name, retry, breaker, counts=counts)

    return fuse


def _fused_sync(  # noqa: C901 - the hot frame is written out, one branch per case
    slow: Callable[..., R],
    inner: Callable[..., R],
    name: str,
    retry: RetryPolicy,
    breaker: CircuitBreaker,
    *,
    counts: bool,
) -> Callable[..., R]:
    scan, runtime, quiet = CURRENT_SCAN.get, _config.RUNTIME, QUIET_DISPATCH
    store: Any = breaker.store
    ended, clock, timer = breaker.ended, breaker.clock, retry.clock
    monotonic = timer.monotonic
    guarded = breaker.layer(inner)  # later attempts go through the breaker layer
    if not counts:
        return _fused_inner_sync(slow, inner, name, retry, breaker, guarded=guarded)

    def resilient_call(*args: Any, **kwargs: Any) -> R:  # noqa: C901, PLR0912 - one branch per case
        if store.state is CLOSED:
            current = runtime.dispatch
            if current is quiet[0] and scan() is None:  # nothing to count or report
                started = monotonic()
                try:
                    result = inner(*args, **kwargs)
                except Exception as exc:
                    ended(CLOSED_ADMISSION, exc)
                    first: Exception = exc
                else:
                    if store.failures:
                        store.record_success(CLOSED_ADMISSION, now=clock.time())
                    return result
                # Retried outside the handler: the first failure is no later one's context.
                return retry_sync(Tries(retry, name, started, None), first, guarded, args, kwargs)
            if current is not None and not current.traced:  # counted, attempts untraced
                started = monotonic()
                try:
                    failed: Exception | None = None
                    try:
                        result = inner(*args, **kwargs)
                    except Exception as exc:
                        ended(CLOSED_ADMISSION, exc)
                        failed = exc
                    else:
                        if store.failures:
                            store.record_success(CLOSED_ADMISSION, now=clock.time())
                    if failed is not None:  # retried outside the handler, as above
                        tries = Tries(retry, name, started, None)
                        result = retry_sync(tries, failed, guarded, args, kwargs)
                except BaseException as exc:
                    finish_call(name, started, timer, exc)
                    raise
                # finish_call's success, inline: once per call while a metrics hook listens.
                recorder = scan()
                if recorder is not None:
                    recorder.count_call(failed=False)
                if current.routes.get(CallFinished) is True or wanted(CallFinished):
                    emit(CallFinished(name, "ok", monotonic() - started))
                return result
        return slow(*args, **kwargs)

    return functools.wraps(slow)(resilient_call)


def _fused_inner_sync(
    slow: Callable[..., R],
    inner: Callable[..., R],
    name: str,
    retry: RetryPolicy,
    breaker: CircuitBreaker,
    *,
    guarded: Callable[..., R],
) -> Callable[..., R]:
    """The fused frame inside a cache layer, which counts the calls: untraced is enough."""
    runtime = _config.RUNTIME
    store: Any = breaker.store
    ended, clock, monotonic = breaker.ended, breaker.clock, retry.clock.monotonic

    def resilient_call(*args: Any, **kwargs: Any) -> R:
        current = runtime.dispatch
        if store.state is CLOSED and current is not None and not current.traced:
            started = monotonic()
            try:
                result = inner(*args, **kwargs)
            except Exception as exc:
                ended(CLOSED_ADMISSION, exc)
                first: Exception = exc
            else:
                if store.failures:
                    store.record_success(CLOSED_ADMISSION, now=clock.time())
                return result
            # Retried outside the handler: the first failure is no later one's context.
            return retry_sync(Tries(retry, name, started, None), first, guarded, args, kwargs)
        return slow(*args, **kwargs)

    return functools.wraps(slow)(resilient_call)


def _fused_async(
    slow: Callable[..., Awaitable[R]],
    inner: Callable[..., Awaitable[R]],
    name: str,
    retry: RetryPolicy,
    breaker: CircuitBreaker,
    *,
    counts: bool,
) -> Callable[..., Awaitable[R]]:
    scan, runtime, quiet = CURRENT_SCAN.get, _config.RUNTIME, QUIET_DISPATCH
    store: Any = breaker.store
    ended, clock, monotonic = breaker.ended, breaker.clock, retry.clock.monotonic
    guarded = breaker.layer(inner)

    counted_call = _counted_async(inner, name, retry, breaker, guarded)

    async def resilient_call(*args: Any, **kwargs: Any) -> R:
        if store.state is CLOSED:
            current = runtime.dispatch
            if (
                (current is quiet[0] and scan() is None)
                if counts
                else (current is not None and not current.traced)
            ):
                started = monotonic()
                try:
                    result = await inner(*args, **kwargs)
                except Exception as exc:
                    ended(CLOSED_ADMISSION, exc)
                    first: Exception = exc
                else:
                    if store.failures:
                        store.record_success(CLOSED_ADMISSION, now=clock.time())
                    return result
                # Retried outside the handler: the first failure is no later one's context.
                tries = Tries(retry, name, started, None)
                return await retry_async(tries, first, guarded, args, kwargs)
            if counts and current is not None and not current.traced:
                return await counted_call(args, kwargs)
        return await slow(*args, **kwargs)

    return functools.wraps(slow)(resilient_call)


def _counted_async(
    inner: Callable[..., Awaitable[R]],
    name: str,
    retry: RetryPolicy,
    breaker: CircuitBreaker,
    guarded: Callable[..., Awaitable[R]],
) -> Callable[[tuple[Any, ...], dict[str, Any]], Awaitable[R]]:
    """`_counted_sync` for coroutine functions."""
    store: Any = breaker.store
    ended, clock, timer = breaker.ended, breaker.clock, retry.clock
    monotonic = timer.monotonic

    async def counted_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        started = monotonic()
        try:
            failed: Exception | None = None
            try:
                result = await inner(*args, **kwargs)
            except Exception as exc:
                ended(CLOSED_ADMISSION, exc)
                failed = exc
            else:
                if store.failures:
                    store.record_success(CLOSED_ADMISSION, now=clock.time())
            if failed is not None:  # retried outside the handler: no chained context
                tries = Tries(retry, name, started, None)
                result = await retry_async(tries, failed, guarded, args, kwargs)
        except BaseException as exc:
            finish_call(name, started, timer, exc)
            raise
        finish_call(name, started, timer, None)
        return result

    return counted_call
