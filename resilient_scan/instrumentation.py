"""One instrumentation seam: typed events from every layer, handed to hooks.

Every policy and the executor report what happens as small frozen event objects
(`RetryScheduled`, `BreakerStateChanged`, `ScannerFinished`, ...). Hooks receive them: a
hook is any callable that takes an event. By default one hook, `LogHook`, logs each event
through structlog if the application configured structlog, else through the standard
library's logger ``resilient_scan``. Replace or extend the hooks:

    from resilient_scan import instrumentation
    from resilient_scan.prometheus import PrometheusHook

    instrumentation.set_hooks([instrumentation.LogHook(), PrometheusHook()])

A hook may declare which event classes it wants (an ``events`` attribute) and whether it
would do anything at a given level (``enabled_for(level)``), so events nobody wants are
never built. Changing the hooks is atomic and takes effect for the next event in every
thread. A hook that raises never changes an outcome: the failure is reported once per hook
on stderr and the other hooks still get the event. `HookFactory` defers creating a hook
(and importing what it needs) until the first event.

Every event, its fields and level, and every metric are listed in
``docs/observability.md``; `EVENT_TYPES` maps each event name to its class.
"""

from __future__ import annotations

from ._events import (
    EVENT_TYPES,
    AbandonedCallFinished,
    AttemptFinished,
    AttemptStarted,
    BackendRecovered,
    BackendUnavailable,
    BreakerRejected,
    BreakerStateChanged,
    CacheHit,
    CacheLoaded,
    CacheLoadFailed,
    CacheMiss,
    CacheStoreFailed,
    CallAbandoned,
    CallFinished,
    ConfigUnmatched,
    Event,
    LateResultDropped,
    MergeFailed,
    PredicateFailed,
    RateLimitRejected,
    RateLimitWaited,
    RetryExhausted,
    RetryScheduled,
    ScanFinished,
    ScannerDegraded,
    ScannerFinished,
    ScannerStarted,
    ScanStarted,
    TimeoutFired,
    WorkerTaskFailed,
)
from ._instrument import Hook, HookFactory, add_hook, get_hooks, remove_hook, set_hooks
from ._loghooks import LOGGER_NAME, LoggingHook, LogHook, StructlogHook

__all__ = [
    "EVENT_TYPES",
    "LOGGER_NAME",
    "AbandonedCallFinished",
    "AttemptFinished",
    "AttemptStarted",
    "BackendRecovered",
    "BackendUnavailable",
    "BreakerRejected",
    "BreakerStateChanged",
    "CacheHit",
    "CacheLoadFailed",
    "CacheLoaded",
    "CacheMiss",
    "CacheStoreFailed",
    "CallAbandoned",
    "CallFinished",
    "ConfigUnmatched",
    "Event",
    "Hook",
    "HookFactory",
    "LateResultDropped",
    "LogHook",
    "LoggingHook",
    "MergeFailed",
    "PredicateFailed",
    "RateLimitRejected",
    "RateLimitWaited",
    "RetryExhausted",
    "RetryScheduled",
    "ScanFinished",
    "ScanStarted",
    "ScannerDegraded",
    "ScannerFinished",
    "ScannerStarted",
    "StructlogHook",
    "TimeoutFired",
    "WorkerTaskFailed",
    "add_hook",
    "get_hooks",
    "remove_hook",
    "set_hooks",
]
