"""The built-in log hooks: structlog, standard `logging`, and the default that picks one.

The default (`LogHook`) sends each event to structlog when the application has configured
structlog, and to the standard library's logger ``resilient_scan`` otherwise, so events show
up where the application already looks, filtered by its levels, and nothing is ever written
to stdout by the library. Event names and fields are the same either way.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Collection
from typing import Any, Final

from ._events import (
    DEBUG,
    ERROR,
    AttemptFinished,
    AttemptStarted,
    CallFinished,
    Event,
    ScannerFinished,
    WorkerTaskFailed,
)

LOGGER_NAME: Final = "resilient_scan"

#: Events for tracing and metrics only: too frequent and too thin to be log lines.
NOT_LOGGED: Final = frozenset({AttemptStarted, AttemptFinished, CallFinished})

# Attribute names of `logging.LogRecord`: fields of the same name cannot go into `extra`.
_RECORD_ATTRIBUTES: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class _LoggedEvents(Collection[type[Event]]):
    """Every event type except the tracing-only ones."""

    def __contains__(self, item: object) -> bool:
        return item not in NOT_LOGGED

    def __iter__(self) -> Any:
        from ._events import EVENT_TYPES  # noqa: PLC0415 - the registry is filled at import

        return (t for t in EVENT_TYPES.values() if t not in NOT_LOGGED)

    def __len__(self) -> int:
        return sum(1 for _ in self)


LOGGED_EVENTS: Final = _LoggedEvents()


def _render_value(value: object) -> str:
    if isinstance(value, str):
        return repr(value) if (not value or " " in value or "=" in value) else value
    return repr(value)


def _message(event: Event, fields: dict[str, Any]) -> str:
    parts = [event.name]
    parts.extend(
        f"{key}={_render_value(value)}"
        for key, value in fields.items()
        if value is not None and key != "traceback"
    )
    return " ".join(parts)


def _exception_to_show(event: Event) -> BaseException | None:
    """The exception whose traceback a log line should carry, if any."""
    if isinstance(event, ScannerFinished) and event.status == "error":
        return event.exception
    if isinstance(event, WorkerTaskFailed) or event.severity >= ERROR:
        return getattr(event, "exception", None)
    return None


class LoggingHook:
    """Events to a standard-library logger (``resilient_scan`` by default).

    Each event is one record at the event's level. The message is the event name followed
    by ``key=value`` fields; the fields are also on the record (``record.scanner``, ...,
    and all of them as ``record.fields``) for structured handlers. Error results of
    scanners carry their exception, so handlers print its traceback (no local variables).
    """

    events: Collection[type[Event]] = LOGGED_EVENTS

    def __init__(self, logger: str | logging.Logger = LOGGER_NAME) -> None:
        """Log to *logger* (a name or a `logging.Logger`)."""
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger

    def __repr__(self) -> str:
        """Name the logger."""
        return f"LoggingHook({self.logger.name!r})"

    def enabled_for(self, level: int) -> bool:
        """Whether the logger would emit a record of *level*."""
        return self.logger.isEnabledFor(level)

    def __call__(self, event: Event) -> None:
        """Log *event*."""
        level = event.severity
        logger = self.logger
        if not logger.isEnabledFor(level):
            return
        fields = event.fields()
        extra = {key: value for key, value in fields.items() if key not in _RECORD_ATTRIBUTES}
        extra["event"] = event.name
        extra["fields"] = fields
        exception = _exception_to_show(event)
        exc_info = (type(exception), exception, exception.__traceback__) if exception else None
        logger.log(level, "%s", _message(event, fields), extra=extra, exc_info=exc_info)


class StructlogHook:
    """Events to structlog, through ``structlog.get_logger("resilient_scan")``.

    Event names and fields as documented; context bound with `structlog.contextvars` (the
    executor binds ``scanner`` and ``pipeline``) is merged by the application's processors.
    Error results of scanners carry a ``traceback`` field: formatted text without local
    variables, whatever traceback processors the application uses.
    """

    events: Collection[type[Event]] = LOGGED_EVENTS

    def __init__(self) -> None:
        """Create the hook; structlog is imported on first use."""
        self._debug_by_wrapper: dict[object, bool] = {}

    def __repr__(self) -> str:
        """``StructlogHook()``."""
        return "StructlogHook()"

    def enabled_for(self, level: int) -> bool:
        """Whether the configured bound-logger class passes events of *level*."""
        return level > DEBUG or self._debug_enabled()

    def _debug_enabled(self) -> bool:
        import structlog  # noqa: PLC0415 - loaded by the application already

        # Reading the configured class directly: `structlog.get_config()` builds a dict.
        config = getattr(getattr(structlog, "_config", None), "_CONFIG", None)
        wrapper = getattr(config, "default_wrapper_class", None)
        if wrapper is None:
            wrapper = structlog.get_config()["wrapper_class"]
        known = self._debug_by_wrapper.get(wrapper)
        if known is not None:
            return known
        if isinstance(wrapper, type) and issubclass(wrapper, structlog.stdlib.BoundLogger):
            # Standard-library loggers can change level at any time: ask every time.
            return logging.getLogger(LOGGER_NAME).isEnabledFor(DEBUG)
        enabled = True
        if callable(getattr(wrapper, "is_enabled_for", None)):
            try:
                enabled = bool(wrapper(None, [], {}).is_enabled_for(DEBUG))
            except Exception:  # an exotic wrapper class: log rather than guess
                enabled = True
        self._debug_by_wrapper[wrapper] = enabled
        return enabled

    def __call__(self, event: Event) -> None:
        """Log *event*."""
        import structlog  # noqa: PLC0415

        level = event.severity
        if level <= DEBUG and not self._debug_enabled():
            return
        fields = event.fields()
        if fields.get("traceback") is None:
            fields.pop("traceback", None)
        logger = structlog.get_logger(LOGGER_NAME)
        method = _METHODS.get(level, "critical" if level > ERROR else "info")
        getattr(logger, method)(event.name, **fields)


_METHODS: Final = {DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning", ERROR: "error"}


def structlog_configured() -> bool:
    """Whether the application configured structlog (without importing it if it did not)."""
    module = sys.modules.get("structlog")
    if module is None:
        return False
    try:
        return bool(module.is_configured())
    except Exception:
        return False


class LogHook:
    """The default hook: structlog if the application configured it, standard logging else.

    Decided for each event, so an application may configure structlog after importing
    resilient_scan (or `structlog.testing.capture_logs` may take over for a test).
    """

    events: Collection[type[Event]] = LOGGED_EVENTS

    def __init__(self) -> None:
        """Create both routes; neither imports anything yet."""
        self.structlog = StructlogHook()
        self.logging = LoggingHook()

    def __repr__(self) -> str:
        """``LogHook()``."""
        return "LogHook()"

    def enabled_for(self, level: int) -> bool:
        """Whether the route taken now would emit an event of *level*."""
        if structlog_configured():
            return self.structlog.enabled_for(level)
        return self.logging.enabled_for(level)

    def __call__(self, event: Event) -> None:
        """Log *event* through the route taken now."""
        if structlog_configured():
            self.structlog(event)
        else:
            self.logging(event)


def default_hooks() -> tuple[LogHook]:
    """The hooks used until the application sets its own."""
    return (LogHook(),)
