"""The library's one logger and its cheap debug gate.

The library never configures structlog: applications do (see `configure_logging`). Events go
through a lazy `structlog.get_logger` proxy that binds on every use, so an application's
configuration and `structlog.testing.capture_logs` both take effect at any time.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

LOGGER_NAME = "resilient_scan"

log: Any = structlog.get_logger(LOGGER_NAME)

# Filtering bound-logger classes are immutable once built, so whether one passes debug events
# can be learned once per class and kept.
_debug_by_wrapper: dict[type, bool] = {}


def debug_enabled() -> bool:
    """Whether a debug event would be emitted under the current structlog configuration.

    A debug event through the lazy proxy costs several microseconds even when it is filtered
    out; the cache-hit path is about a microsecond, so it asks this first.
    """
    wrapper = structlog.get_config()["wrapper_class"]
    known = _debug_by_wrapper.get(wrapper)
    if known is not None:
        return known
    if isinstance(wrapper, type) and issubclass(wrapper, structlog.stdlib.BoundLogger):
        # Levels of standard-library loggers can change at run time: ask every time.
        return logging.getLogger(LOGGER_NAME).isEnabledFor(logging.DEBUG)
    probe = getattr(wrapper, "is_enabled_for", None)
    enabled = True
    if probe is not None:
        try:
            enabled = bool(wrapper(None, [], {}).is_enabled_for(logging.DEBUG))
        except Exception:  # an exotic wrapper class: log rather than guess
            enabled = True
    _debug_by_wrapper[wrapper] = enabled
    return enabled


def describe_error(exc: BaseException) -> str:
    """Return ``"Type: message"`` (or just the type when the message is empty)."""
    text = str(exc)
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def callable_name(func: object) -> str:
    """Return a readable name for *func* for logs and errors."""
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    if isinstance(name, str):
        return name
    return type(func).__name__
