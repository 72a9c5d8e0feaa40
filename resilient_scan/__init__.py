"""resilient_scan: resilience policies and a concurrent executor for scanner pipelines.

Decorate functions that call slow, flaky services with `timeout`, `retry`, `ttl_cache` and
`circuit_breaker`, or all of them in one fixed order with `resilient`; run many scanners at
once with `ScanExecutor`.
"""

from __future__ import annotations

from . import testing
from ._breaker import BreakerFunction, BreakerPolicy, CircuitBreaker, circuit_breaker
from ._cache import CachedFunction, CacheInfo, CachePolicy, ttl_cache
from ._candidates import PRIORITIES, merge_candidates, normalize_candidate
from ._clock import Clock, SystemClock
from ._compose import ResilientFunction, resilient
from ._console import ScanConsoleRenderer, configure_logging
from ._errors import CircuitOpenError, ConfigError, ResilientScanError, ScanTimeout
from ._executor import ScanExecutor
from ._report import ScanReport, ScanResult, ScanStatus
from ._retry import RetryPolicy, retry, retry_after
from ._scanner import ScannerInfo, ScannerObject, ScannerRegistry, scanner
from ._state import to_plain
from ._storage import BreakerStorage, CacheStore, MemoryCacheStore
from ._threads import abandoned_threads, current_deadline, time_remaining
from ._timeout import TimeoutPolicy, timeout

__all__ = [
    "PRIORITIES",
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
    "ScanConsoleRenderer",
    "ScanExecutor",
    "ScanReport",
    "ScanResult",
    "ScanStatus",
    "ScanTimeout",
    "ScannerInfo",
    "ScannerObject",
    "ScannerRegistry",
    "SystemClock",
    "TimeoutPolicy",
    "abandoned_threads",
    "circuit_breaker",
    "configure_logging",
    "current_deadline",
    "merge_candidates",
    "normalize_candidate",
    "resilient",
    "retry",
    "retry_after",
    "scanner",
    "testing",
    "time_remaining",
    "timeout",
    "to_plain",
    "ttl_cache",
]

__version__ = "0.1.0"
