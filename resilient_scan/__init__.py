"""resilient_scan: resilience policies and a concurrent executor for scanner pipelines.

Decorate functions that call slow, flaky services with `timeout`, `retry`, `ttl_cache`,
`circuit_breaker` and `rate_limit`, or all of them in one fixed order with `resilient`; run
many scanners at once with `ScanExecutor`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import discovery
from ._breaker import (
    BreakerFunction,
    BreakerPolicy,
    CircuitBreaker,
    MemoryBreakerStore,
    circuit_breaker,
)
from ._cache import CachedFunction, CacheInfo, CachePolicy, MemoryCacheStore, ttl_cache
from ._clock import Clock, SystemClock
from ._compose import ResilientFunction, resilient
from ._deadline import current_deadline, deadline_after, time_remaining
from ._engine import DaemonPool, abandoned_threads
from ._errors import (
    CacheEncodeError,
    CircuitOpenError,
    ConfigError,
    RateLimitExceeded,
    ResilientScanError,
    ScanTimeout,
    ThreadLimitError,
)
from ._executor import ScanExecutor
from ._fanout import fan_out
from ._ratelimit import (
    LimitedFunction,
    MemoryRateStore,
    RateLimiter,
    RateLimitPolicy,
    rate_limit,
)
from ._report import ScanReport, ScanResult, ScanStatus
from ._retry import RetryPolicy, retry, retry_after
from ._scanner import ScannerInfo, ScannerObject, ScannerRegistry, scanner
from ._state import to_plain
from ._stats import CallStats, TimelineEntry
from ._storage import BreakerStore, CacheStore, RateStore, StorageBackend
from ._text import redaction_enabled, set_redaction
from ._timeout import TimeoutPolicy, timeout
from .discovery import PRIORITIES, merge_candidates, normalize_candidate

if TYPE_CHECKING:
    from . import instrumentation, testing
    from ._console import ScanConsoleRenderer, configure_logging

__all__ = [
    "PRIORITIES",
    "BreakerFunction",
    "BreakerPolicy",
    "BreakerStore",
    "CacheEncodeError",
    "CacheInfo",
    "CachePolicy",
    "CacheStore",
    "CachedFunction",
    "CallStats",
    "CircuitBreaker",
    "CircuitOpenError",
    "Clock",
    "ConfigError",
    "DaemonPool",
    "LimitedFunction",
    "MemoryBreakerStore",
    "MemoryCacheStore",
    "MemoryRateStore",
    "RateLimitExceeded",
    "RateLimitPolicy",
    "RateLimiter",
    "RateStore",
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
    "StorageBackend",
    "SystemClock",
    "ThreadLimitError",
    "TimelineEntry",
    "TimeoutPolicy",
    "abandoned_threads",
    "circuit_breaker",
    "configure_logging",
    "current_deadline",
    "deadline_after",
    "discovery",
    "fan_out",
    "instrumentation",
    "merge_candidates",
    "normalize_candidate",
    "rate_limit",
    "redaction_enabled",
    "resilient",
    "retry",
    "retry_after",
    "scanner",
    "set_redaction",
    "testing",
    "time_remaining",
    "timeout",
    "to_plain",
    "ttl_cache",
]


def __getattr__(name: str) -> Any:
    # Submodules loaded on first use, so `import resilient_scan` stays cheap.
    if name in ("testing", "instrumentation"):
        import importlib  # noqa: PLC0415

        return importlib.import_module(f"{__name__}.{name}")
    if name in ("configure_logging", "ScanConsoleRenderer"):  # for applications only
        from . import _console  # noqa: PLC0415

        return getattr(_console, name)
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        try:
            return version("resilient-scan")
        except PackageNotFoundError:  # running from a source tree that is not installed
            return "0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
