"""`resilient()`: the layers in one fixed order.

Outermost first: cache, retry, breaker, timeout, then the function.

- The cache is outermost: a hit skips every other layer and answers even while the breaker
  is open.
- Retry wraps the breaker: the breaker sees every attempt, and once it opens the retry stops
  at once (`CircuitOpenError` is never retried).
- The timeout is innermost: it limits each attempt, and a timed-out attempt is a failure in
  the breaker's count.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, ParamSpec, Protocol, TypeAlias, TypeVar, cast

from . import _settings
from ._breaker import BreakerPolicy, CircuitBreaker
from ._cache import CacheInfo, CachePolicy
from ._retry import RetryPolicy
from ._timeout import TimeoutPolicy

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

Layer: TypeAlias = "CachePolicy | RetryPolicy | BreakerPolicy | TimeoutPolicy"


class ResilientFunction(Protocol[P, R_co]):
    """A function wrapped by `resilient`: same signature, plus a view of its layers."""

    #: The composed layers' settings, outermost first.
    layers: tuple[Layer, ...]
    #: The function's circuit breaker, or None without a breaker layer.
    breaker: CircuitBreaker | None

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
) -> Callable[[Callable[P, R]], ResilientFunction[P, R]]:
    """Wrap the decorated function in the given layers, in one fixed order.

    Outermost first: cache, retry, breaker, timeout, then the function. So a cache hit
    answers even while the breaker is open, the breaker sees every retry attempt, and a
    timed-out attempt counts as a breaker failure.

    Each argument takes a number (*timeout* seconds, *cache* TTL), a dict of that policy's
    keyword arguments, a policy object, ``True`` for the defaults (*retry*, *breaker*), or
    ``None`` to leave the layer out. *breaker* also takes a `CircuitBreaker` to share one
    breaker between functions.

    Raises:
        ConfigError: at decoration time, naming a bad or unknown setting.
    """
    cache_policy = CachePolicy.coerce(cache, "resilient", "cache")
    retry_policy = RetryPolicy.coerce(retry, "resilient", "retry")
    breaker_policy = BreakerPolicy.coerce(breaker, "resilient", "breaker")
    timeout_policy = TimeoutPolicy.coerce(timeout, "resilient", "timeout")
    layers: tuple[Layer, ...] = tuple(
        layer
        for layer in (cache_policy, retry_policy, breaker_policy, timeout_policy)
        if layer is not None
    )

    def decorate(func: Callable[P, R]) -> ResilientFunction[P, R]:
        _settings.decorated(func, "resilient")
        wrapped: Callable[..., Any] = func
        for layer in reversed(layers):
            wrapped = layer(wrapped)
        if wrapped is func:
            # No layers: still return a wrapper, never decorate the caller's function itself.
            def call(*args: Any, **kwargs: Any) -> Any:
                return func(*args, **kwargs)

            wrapped = functools.wraps(func)(call)
        outer = cast("Any", wrapped)
        outer.layers = layers
        outer.describe = lambda: " -> ".join(
            [layer.describe() for layer in layers] + [getattr(func, "__qualname__", "call")]
        )
        if breaker_policy is None:
            outer.breaker = None
        if cache_policy is None:
            outer.cache_clear = lambda: None
            outer.cache_info = lambda: None
        return cast("ResilientFunction[P, R]", outer)

    return decorate
