"""`resilient()`: the four layers in one fixed order.

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
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any, ParamSpec, Protocol, TypeAlias, TypeVar, cast

from . import _validate
from ._breaker import BreakerPolicy, CircuitBreaker
from ._cache import CacheInfo, CachePolicy
from ._errors import ConfigError
from ._retry import RetryPolicy
from ._timeout import TimeoutPolicy

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

Layer: TypeAlias = "CachePolicy | RetryPolicy | BreakerPolicy | CircuitBreaker | TimeoutPolicy"


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


def _settings(policy: type[Any], given: Mapping[str, Any], where: str) -> Any:
    names = [f.name for f in fields(policy) if f.init]
    _validate.reject_unknown(given, names, where)
    try:
        return policy(**given)
    except ConfigError as exc:
        # "retry.attempts" -> "resilient.retry.attempts", as unknown keys are named.
        raise ConfigError(f"{where}.{exc.key.partition('.')[2] or exc.key}", exc.problem) from None


@dataclass(frozen=True)
class _Kind:
    """What one argument of `resilient` accepts."""

    name: str
    policy: type[Any]
    number: str | None  # the policy field a bare number sets, if a number is accepted
    true_means_defaults: bool
    accepts: str
    objects: tuple[type[Any], ...] = ()  # accepted as they are, besides the policy itself


_TIMEOUT = _Kind(
    name="timeout",
    policy=TimeoutPolicy,
    number="seconds",
    true_means_defaults=False,
    accepts="seconds, a dict of timeout settings, a TimeoutPolicy or None",
)
_RETRY = _Kind(
    name="retry",
    policy=RetryPolicy,
    number=None,
    true_means_defaults=True,
    accepts="True, a dict of retry settings, a RetryPolicy or None",
)
_CACHE = _Kind(
    name="cache",
    policy=CachePolicy,
    number="ttl",
    true_means_defaults=False,
    accepts="a TTL in seconds, a dict of cache settings, a CachePolicy or None",
)
_BREAKER = _Kind(
    name="breaker",
    policy=BreakerPolicy,
    number=None,
    true_means_defaults=True,
    accepts="True, a dict of breaker settings, a BreakerPolicy, a CircuitBreaker or None",
    objects=(CircuitBreaker,),
)


def _layer(kind: _Kind, value: object) -> Any:
    """Return the layer *value* asks for (a policy or a shared breaker), or None."""
    where = f"resilient.{kind.name}"
    if value is None or (value is False and kind.true_means_defaults):
        return None
    if value is True and kind.true_means_defaults:
        return kind.policy()
    if isinstance(value, (kind.policy, *kind.objects)):
        return value
    if isinstance(value, Mapping):
        return _settings(kind.policy, value, where)
    number = isinstance(value, (int, float, timedelta)) and not isinstance(value, bool)
    if kind.number is not None and number:
        return kind.policy(**{kind.number: _validate.seconds(value, where)})
    raise ConfigError(where, f"must be {kind.accepts}, got {value!r}")


def resilient(
    *,
    timeout: float | timedelta | Mapping[str, Any] | TimeoutPolicy | None = None,
    retry: bool | Mapping[str, Any] | RetryPolicy | None = None,
    cache: float | timedelta | Mapping[str, Any] | CachePolicy | None = None,
    breaker: bool | Mapping[str, Any] | BreakerPolicy | CircuitBreaker | None = None,
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
    cache_policy: CachePolicy | None = _layer(_CACHE, cache)
    retry_policy: RetryPolicy | None = _layer(_RETRY, retry)
    breaker_policy: BreakerPolicy | CircuitBreaker | None = _layer(_BREAKER, breaker)
    timeout_policy: TimeoutPolicy | None = _layer(_TIMEOUT, timeout)
    layers: tuple[Layer, ...] = tuple(
        layer
        for layer in (cache_policy, retry_policy, breaker_policy, timeout_policy)
        if layer is not None
    )

    def decorate(func: Callable[P, R]) -> ResilientFunction[P, R]:
        _validate.decorated(func, "resilient")
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
