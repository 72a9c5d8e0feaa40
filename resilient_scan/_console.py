"""Log output for applications: JSON lines for production, familiar lines for terminals.

The library only emits events; `configure_logging` is for applications (and the CLI) to call.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, MutableMapping
from typing import Any, Literal, TextIO

from ._errors import ConfigError

_STATUS_MARKS = {
    "ok": "✓",
    "timeout": "⏱️",
    "error": "⚠️",
    "circuit_open": "⛔",
    "skipped": "○",
    "cancelled": "✗",
}


def _short_error(error: object) -> str:
    """``"HTTPError: HTTP 500 error"`` -> ``"HTTP 500 error"``: the line people know."""
    text = str(error)
    head, sep, tail = text.partition(": ")
    if sep and head.isidentifier():
        return tail
    return text


def _seconds(value: object) -> str:
    return f"{value:g}s" if isinstance(value, (int, float)) else "?"


class ScanConsoleRenderer:
    """A structlog renderer that prints executor events as short monitor lines.

    ``scan.started``  -> ``Running 8 scanners concurrently (max 8 workers)...``
    ``scanner.finished`` -> ``✓ market_movers: 10 candidates``,
    ``⏱️ slow_scanner: timeout after 30s``, ``⚠️ broken_scanner: HTTP 500 error``, ...
    ``scan.finished`` -> a summary line. Every other event is rendered by *fallback*
    (structlog's `ConsoleRenderer` by default).
    """

    def __init__(
        self, fallback: Callable[[Any, str, MutableMapping[str, Any]], Any] | None = None
    ) -> None:
        """Create the renderer; *fallback* renders events it does not know."""
        if fallback is None:
            import structlog  # noqa: PLC0415 - structlog is loaded by applications that render

            fallback = structlog.dev.ConsoleRenderer(colors=False)
        self._fallback = fallback

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        """Render one event."""
        event = event_dict.get("event")
        if event == "scan.started":
            return self._started(event_dict)
        if event == "scanner.finished":
            return self._finished(event_dict)
        if event == "scan.finished":
            return self._summary(event_dict)
        return self._fallback(logger, method_name, event_dict)

    @staticmethod
    def _started(event: MutableMapping[str, Any]) -> str:
        count = event.get("scanners", 0)
        noun = "scanner" if count == 1 else "scanners"
        if event.get("mode") == "sequential":
            return f"Running {count} {noun} sequentially..."
        workers = event.get("max_workers")
        return (
            f"Running {count} {noun} concurrently "
            f"(max {workers} worker{'' if workers == 1 else 's'})..."
        )

    @staticmethod
    def _finished(event: MutableMapping[str, Any]) -> str:
        status = event.get("status")
        name = event.get("scanner")
        mark = _STATUS_MARKS.get(str(status), "?")
        if status == "ok":
            count = event.get("candidates", 0)
            line = f"{mark} {name}: {count} candidate{'s' if count != 1 else ''}"
            if event.get("dropped"):
                line += f" ({event['dropped']} invalid dropped)"
            return line
        if status == "timeout":
            return f"{mark} {name}: timeout after {_seconds(event.get('timeout_seconds'))}"
        if status == "error":
            return f"{mark} {name}: {_short_error(event.get('error'))}"
        if status == "circuit_open":
            return f"{mark} {name}: circuit open, not called"
        return f"{mark} {name}: {status} ({event.get('reason')})"

    @staticmethod
    def _summary(event: MutableMapping[str, Any]) -> str:
        parts = [
            f"{count} {status}"
            for status in _STATUS_MARKS
            if isinstance(count := event.get(f"{status}_count"), int) and count
        ]
        line = (
            f"Done in {_seconds(event.get('duration'))}: {', '.join(parts) or 'no scanners'}"
            f" · {event.get('candidates', 0)} candidates"
            f" · {event.get('speedup', 0):.1f}x faster than back to back"
        )
        if event.get("abandoned"):
            line += f" · {event['abandoned']} abandoned"
        return line


def configure_logging(
    *,
    format: Literal["auto", "console", "json"] = "auto",  # noqa: A002 - the natural name
    level: int | str = "info",
    stream: TextIO | None = None,
) -> None:
    """Configure structlog for an application: JSON lines, or monitor lines on a terminal.

    For applications and scripts, never for libraries. ``format="auto"`` picks the console
    when *stream* is a terminal and JSON otherwise. Every format merges context bound with
    `structlog.contextvars` (the executor binds each scanner's name that way), adds the
    level and an ISO timestamp, and drops events below *level*. Loggers are not cached, so
    `structlog.testing.capture_logs` keeps working.
    """
    import structlog  # noqa: PLC0415 - only applications that configure logging need it

    out = stream if stream is not None else sys.stderr
    if isinstance(level, str):
        number = logging.getLevelName(level.upper())  # the name's number, for known names
        if not isinstance(number, int):
            raise ConfigError("configure_logging.level", f"unknown log level {level!r}")
        level = number
    chosen = ("console" if out.isatty() else "json") if format == "auto" else format
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if chosen == "json":
        processors = [
            *shared,
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(),
        ]
    elif chosen == "console":
        colors = out.isatty()
        processors = [*shared, ScanConsoleRenderer(structlog.dev.ConsoleRenderer(colors=colors))]
    else:
        raise ConfigError(
            "configure_logging.format", f"must be 'auto', 'console' or 'json', got {format!r}"
        )
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
