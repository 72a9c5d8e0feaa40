"""The built-in log hooks: structlog, standard `logging`, and the default that picks one.

The default (`LogHook`) sends each event to structlog when the application has configured
structlog, and to the standard library's logger ``resilient_scan`` otherwise, so events show
up where the application already looks, filtered by its levels, and nothing is ever written
to stdout by the library. Event names and fields are the same either way.

What the hooks write is safe to ship: error texts and tracebacks are redacted (unless
`resilient_scan.set_redaction` turned that off) and capped, tracebacks carry no local
variables, and values are escaped so that no field can forge a log line.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Callable, Collection, Iterator
from typing import Any, Final

from ._config import CURRENT_SCAN
from ._events import (
    DEBUG,
    ERROR,
    INFO,
    WARNING,
    AttemptFinished,
    AttemptStarted,
    CallFinished,
    Event,
    ScannerFinished,
    WorkerTaskFailed,
)
from ._text import cap, format_traceback, redact, redaction_enabled

LOGGER_NAME: Final = "resilient_scan"

#: Events for tracing and metrics only: too frequent and too thin to be log lines.
NOT_LOGGED: Final = frozenset({AttemptStarted, AttemptFinished, CallFinished})

# The longest note `cap` appends ("… (+N chars)").
_CAP_NOTE: Final = 32

#: Fields holding free text (from exceptions), redacted and capped again before output.
TEXT_FIELDS: Final = frozenset({"error", "traceback", "summary"})

# Attribute names of `logging.LogRecord`: fields of the same name cannot go into `extra`.
_RECORD_ATTRIBUTES: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class _LoggedEvents(Collection[type[Event]]):
    """Every event type except the tracing-only ones."""

    def __contains__(self, item: object) -> bool:
        return item not in NOT_LOGGED

    def __iter__(self) -> Iterator[type[Event]]:
        from ._events import EVENT_TYPES  # noqa: PLC0415 - the registry is filled at import

        return (t for t in EVENT_TYPES.values() if t not in NOT_LOGGED)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return "LOGGED_EVENTS"


LOGGED_EVENTS: Final = _LoggedEvents()


def safe_fields(event: Event) -> dict[str, Any]:
    """The event's fields, with free text redacted and capped, and a traceback where due.

    Emitters already redact what they put in events; doing it again here (only texts of
    failures, which are rare) keeps the promise even for an event built elsewhere.
    """
    texts, carries_exception, own_fields = _SHAPES.get(type(event)) or _shape(type(event))
    if own_fields:
        fields = event.fields()
    else:  # `Event.fields`, inline: the instance's dict holds exactly its fields
        fields = event.__dict__.copy()
        fields.pop("exception", None)
    for name in TEXT_FIELDS.intersection(fields) if texts is None else texts:
        value = fields.get(name)
        if isinstance(value, str):
            limit = _message_limit() * (20 if name == "traceback" else 1)
            # Slack for the "… (+N chars)" an emitter's cap already added: capping twice
            # would cut that note itself.
            if len(value) > limit + _CAP_NOTE:
                value = cap(value, limit)
            fields[name] = redact(value)
    if carries_exception and getattr(event, "exception", None) is not None:
        exception = exception_to_show(event)
        if exception is not None and not fields.get("traceback"):
            fields["traceback"] = format_traceback(exception)
    if "traceback" in fields and fields["traceback"] is None:
        del fields["traceback"]
    return fields


#: Per event class: its text fields (None: look at each event's fields), and whether it
#: may carry an exception. Found once per class: logging an event asks on every event.
_SHAPES: dict[type[Event], tuple[tuple[str, ...] | None, bool, bool]] = {}


def _shape(event_type: type[Event]) -> tuple[tuple[str, ...] | None, bool, bool]:
    """(its text fields or None, whether it may carry an exception, renders its own fields)."""
    shape = _SHAPES.get(event_type)
    if shape is None:
        # The library's own events keep exactly their fields in the instance's dict.
        plain = event_type.__module__ == Event.__module__ and event_type.fields is Event.fields
        if plain:
            names = [each.name for each in dataclasses.fields(event_type)]
            texts: tuple[str, ...] | None = tuple(n for n in names if n in TEXT_FIELDS)
            shape = (texts, "exception" in names, False)
        else:  # another kind of event: ask it, and look at what it renders
            shape = (None, True, True)
        _SHAPES[event_type] = shape
    return shape


def _message_limit() -> int:
    from ._config import RUNTIME  # noqa: PLC0415 - read at the time of use

    return RUNTIME.message_limit


def _render_value(value: object) -> str:
    if isinstance(value, str):
        # Quoted (repr escapes control characters) whenever the bare text could be misread
        # or forge a line: empty, spaces, "=", quotes, newlines, escapes.
        plain = value and value.isprintable() and not any(c in value for c in " =\"'")
        return value if plain else repr(value)
    return repr(value)


def render_message(event: Event, fields: dict[str, Any]) -> str:
    """``event.name`` followed by ``key=value`` for each field that is not None."""
    parts = [event.name]
    parts.extend(
        f"{key}={_render_value(value)}"
        for key, value in fields.items()
        if value is not None and key != "traceback"
    )
    return " ".join(parts)


def exception_to_show(event: Event) -> BaseException | None:
    """The exception whose traceback a log line should carry, if any."""
    exception: BaseException | None = getattr(event, "exception", None)
    if exception is None:
        return None
    if isinstance(event, ScannerFinished):
        return exception if event.status == "error" else None
    if isinstance(event, WorkerTaskFailed) or event.severity >= ERROR:
        return exception
    return None


class LoggingHook:
    """Events to a standard-library logger (``resilient_scan`` by default).

    Each event is one record at the event's level, so the application's handlers, levels
    and filters apply. The message is the event name followed by ``key=value`` fields; the
    fields are also on the record (``record.scanner``, ..., and all of them as
    ``record.fields``) for structured handlers. Events inside a scanner carry ``scanner``
    (and ``pipeline``) even when the event itself does not name it. Records of failures
    carry the traceback
    (no local variables): as ``exc_text``, redacted, while redaction is on (the default),
    else as ``exc_info``.
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
        fields = safe_fields(event)
        recorder = CURRENT_SCAN.get()
        if recorder is not None and "scanner" not in fields:
            # Inside a scanner: say which, as structlog's bound context does for structlog.
            fields["scanner"] = recorder.scanner
            if recorder.pipeline is not None:
                fields["pipeline"] = recorder.pipeline
        traceback_text = fields.get("traceback")
        extra = {key: value for key, value in fields.items() if key not in _RECORD_ATTRIBUTES}
        extra["event"] = event.name
        extra["fields"] = fields
        # Built here rather than through `logger.log`: a formatter renders `exc_info` with
        # the exception's own, unredacted message, so the text goes in `exc_text` instead.
        record = logger.makeRecord(
            logger.name,
            level,
            "(unknown file)",
            0,
            "%s",
            (render_message(event, fields),),
            None,
            "(unknown function)",
            extra,
        )
        exception = exception_to_show(event)
        if exception is not None:
            if redaction_enabled():
                record.exc_text = (traceback_text or format_traceback(exception)).rstrip("\n")
            else:
                record.exc_info = (type(exception), exception, exception.__traceback__)
        logger.handle(record)


#: What the fast paths read on structlog's configuration object.
_CONFIG_ATTRIBUTES: Final = ("is_configured", "default_wrapper_class", "cache_logger_on_first_use")


class _Structlog:
    """Where structlog keeps its configuration, found once structlog is loaded.

    The public `structlog.is_configured()` and `structlog.get_config()` cost a call (and
    a dict) each; the hooks ask before every event, so they read the configuration object
    itself when it is where structlog 22 to 25 keep it, and use the public calls if not.
    """

    __slots__ = ("config", "module")

    def __init__(self) -> None:
        self.module: Any = None
        self.config: Any = None

    def loaded(self) -> bool:
        """Whether structlog is imported (by the application: this never imports it)."""
        if self.module is None:
            module = sys.modules.get("structlog")
            if module is None:
                return False
            self.config = getattr(getattr(module, "_config", None), "_CONFIG", None)
            # Every attribute the fast paths read, or none of them: a structlog that keeps
            # its configuration elsewhere is asked through its public calls instead.
            if not all(hasattr(self.config, name) for name in _CONFIG_ATTRIBUTES):
                self.config = None
            self.module = module
        return True

    def configured(self) -> bool:
        """Whether the application configured structlog."""
        config = self.config
        if config is not None:  # the usual case, first: asked before every event
            return config.is_configured is True
        if not self.loaded():
            return False
        if self.config is not None:
            return self.config.is_configured is True
        try:
            return bool(self.module.is_configured())
        except Exception:
            return False

    def wrapper_class(self) -> Any:
        """The configured bound-logger class."""
        wrapper = getattr(self.config, "default_wrapper_class", None)
        return wrapper if wrapper is not None else self.module.get_config()["wrapper_class"]


# What `StructlogHook` remembers of a bound-logger class that wraps a standard-library
# logger: its level can change at any time, so the logger is asked every time.
_ASK_LOGGING: Final = "ask logging"


class StructlogHook:
    """Events to structlog, through ``structlog.get_logger("resilient_scan")``.

    Event names and fields as documented; context bound with `structlog.contextvars` (the
    executor binds ``scanner`` and ``pipeline``) is merged by the application's processors.
    Failures carry a ``traceback`` field: formatted text without local variables, redacted,
    whatever traceback processors the application uses (no ``exc_info`` is passed).
    """

    events: Collection[type[Event]] = LOGGED_EVENTS

    def __init__(self) -> None:
        """Create the hook; structlog is imported on first use."""
        self._structlog = _Structlog()
        # Per bound-logger class: the levels it passes (or `_ASK_LOGGING`).
        self._levels: dict[object, dict[int, bool] | str] = {}
        # One lazy logger, as a module-level ``structlog.get_logger()`` is: it binds anew
        # on each event, so it follows the configuration (and `capture_logs`).
        self._logger: Any = None

    def __repr__(self) -> str:
        """``StructlogHook()``."""
        return "StructlogHook()"

    def enabled_for(self, level: int) -> bool:
        """Whether the configured bound-logger class passes events of *level*."""
        state = self._structlog
        config = state.config
        wrapper = None if config is None else config.default_wrapper_class
        if wrapper is None:
            if not state.loaded():
                import structlog  # noqa: F401, PLC0415 - this hook was chosen: structlog it is

                state.loaded()
            wrapper = state.wrapper_class()
        levels = self._levels.get(wrapper)
        if levels is _ASK_LOGGING:
            return logging.getLogger(LOGGER_NAME).isEnabledFor(level)
        if levels is not None:
            known = levels.get(level)  # type: ignore[union-attr]
            if known is not None:
                return known
        return self._learn(wrapper, level)

    def _learn(self, wrapper: Any, level: int) -> bool:
        structlog = self._structlog.module
        if isinstance(wrapper, type) and issubclass(wrapper, structlog.stdlib.BoundLogger):
            self._levels[wrapper] = _ASK_LOGGING
            return logging.getLogger(LOGGER_NAME).isEnabledFor(level)
        enabled = True
        if callable(getattr(wrapper, "is_enabled_for", None)):
            try:
                enabled = bool(wrapper(None, [], {}).is_enabled_for(level))
            except Exception:  # an exotic wrapper class: log rather than guess
                enabled = True
        levels = self._levels.setdefault(wrapper, {})
        if isinstance(levels, dict):
            levels[level] = enabled
        return enabled

    def _get_logger(self) -> Any:
        module = self._structlog.module
        config = self._structlog.config
        if config is None or config.cache_logger_on_first_use is not False:
            # A lazy logger that caches its first binding would keep that configuration
            # for good: ask structlog for a new one every time, as before.
            return module.get_logger(LOGGER_NAME)
        logger = self._logger
        if logger is None:
            logger = self._logger = module.get_logger(LOGGER_NAME)
        return logger

    def __call__(self, event: Event) -> None:
        """Log *event*."""
        level = event.severity
        if self.enabled_for(level):
            self.log(event, level)

    def log(self, event: Event, level: int) -> None:
        """Log *event* at *level*, which the configured bound-logger class passes."""
        method = _METHODS.get(level) or ("critical" if level > ERROR else "info")
        logger = self._logger
        config = self._structlog.config
        if logger is None or config is None or config.cache_logger_on_first_use is not False:
            logger = self._get_logger()
        log = getattr(logger, method)
        kind = type(event)
        texts, carries_exception, own_fields = _SHAPES.get(kind) or _shape(kind)
        if not own_fields:
            values = event.__dict__
            # No text to redact or cap, no traceback to add (a scanner that returned, say):
            # the fields go to structlog as keywords straight from the event.
            plain = not carries_exception or values["exception"] is None
            if plain:
                for name in texts:  # type: ignore[union-attr]
                    if values[name] is not None:
                        plain = False
                        break
            if plain:
                call = _KEYWORD_CALLS.get(kind) or _keyword_call(kind)
                call(log, event.name, values)
                return
        log(event.name, **safe_fields(event))


_METHODS: Final = {DEBUG: "debug", INFO: "info", WARNING: "warning", ERROR: "error"}

#: Per event class: ``call(log, name, values)``, which calls ``log(name, field=value, ...)``
#: with every field but ``exception`` (and a traceback, which is None there). One keyword
#: dict, as a direct structlog call makes, instead of a copy of the event's and another.
_KEYWORD_CALLS: dict[type[Event], Callable[[Callable[..., Any], str, dict[str, Any]], None]] = {}


def _keyword_call(
    event_type: type[Event],
) -> Callable[[Callable[..., Any], str, dict[str, Any]], None]:
    names = [
        each.name
        for each in dataclasses.fields(event_type)
        if each.name not in ("exception", "traceback")
    ]
    arguments = ", ".join(f"{name}=values[{name!r}]" for name in names)
    source = f"def call(log, name, values):\n    log(name, {arguments})\n"
    namespace: dict[str, Any] = {}
    exec(source, {}, namespace)  # noqa: S102 - the event class's own field names
    call: Callable[[Callable[..., Any], str, dict[str, Any]], None] = namespace["call"]
    _KEYWORD_CALLS[event_type] = call
    return call


def structlog_configured() -> bool:
    """Whether the application configured structlog (without importing it if it did not)."""
    return _Structlog().configured()


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
        self._structlog = self.structlog._structlog  # noqa: SLF001 - one finder for both
        self._levels = self.structlog._levels  # noqa: SLF001 - what the structlog route learnt
        self._config: Any = None  # structlog's configuration object, once found

    def __repr__(self) -> str:
        """``LogHook()``."""
        return "LogHook()"

    def enabled_for(self, level: int) -> bool:
        """Whether the route taken now would emit an event of *level*."""
        # Asked before every debug event of a hot path (a cache hit): the usual answers
        # are read here from structlog's configuration object and what the structlog route
        # learnt of its bound-logger class, without a call.
        config = self._config
        if config is None:
            configured = self._structlog.configured()
            config = self._config = self._structlog.config  # None until structlog is loaded
            if config is None:
                if configured:
                    return self.structlog.enabled_for(level)
                return self.logging.logger.isEnabledFor(level)
        if config.is_configured is not True:
            return self.logging.logger.isEnabledFor(level)
        levels = self._levels.get(config.default_wrapper_class)
        if levels.__class__ is dict:
            known = levels.get(level)
            if known is not None:
                return known
        return self.structlog.enabled_for(level)

    def __call__(self, event: Event) -> None:
        """Log *event* through the route taken now."""
        config = self._config
        if config is None:
            configured = self._structlog.configured()
            self._config = self._structlog.config
            if configured:
                self.structlog(event)
            else:
                self.logging(event)
            return
        if config.is_configured is not True:
            self.logging(event)
            return
        # structlog, as configured: its level answer read as in `enabled_for`, once per event.
        level = event.severity
        levels = self._levels.get(config.default_wrapper_class)
        known = levels.get(level) if levels.__class__ is dict else None
        if known is None:
            self.structlog(event)  # asks (and learns) the level first
        elif known:
            self.structlog.log(event, level)


def default_hooks() -> tuple[LogHook]:
    """The hooks used until the application sets its own."""
    return (LogHook(),)
