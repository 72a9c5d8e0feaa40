"""resilient_scan: resilience policies and a concurrent executor for scanner pipelines.

Decorate functions that call slow, flaky services with `timeout`, `retry`, `ttl_cache` and
`circuit_breaker`, or all of them in one fixed order with `resilient`; run many scanners at
once with `ScanExecutor`.
"""

from __future__ import annotations

from . import testing
from ._breaker import BreakerFunction, BreakerPolicy, CircuitBreaker, circuit_breaker
from ._cache import CachedFunction, CacheInfo, CachePolicy, ttl_cache
from ._clock import Clock, SystemClock
from ._compose import ResilientFunction, resilient
from ._errors import CircuitOpenError, ConfigError, ResilientScanError, ScanTimeout
from ._retry import RetryPolicy, retry, retry_after
from ._storage import BreakerStorage, CacheStore, MemoryCacheStore
from ._threads import abandoned_threads, current_deadline, time_remaining
from ._timeout import TimeoutPolicy, timeout

__all__ = [
    "BreakerFunction",
    "BreakerPolicy",
    "BreakerStorage",
    "CacheInfo",
    "CachePolicy",
    "CacheStore",
    "CachedFunction",
    "CircuitBreaker",
    "CircuitOpenError",
    "Clock",
    "ConfigError",
    "MemoryCacheStore",
    "ResilientFunction",
    "ResilientScanError",
    "RetryPolicy",
    "ScanTimeout",
    "SystemClock",
    "TimeoutPolicy",
    "abandoned_threads",
    "circuit_breaker",
    "current_deadline",
    "resilient",
    "retry",
    "retry_after",
    "testing",
    "time_remaining",
    "timeout",
    "ttl_cache",
]

__version__ = "0.1.0"
