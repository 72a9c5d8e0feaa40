"""Terminal output shared by the demo and ``resilient-scan run``: tables, event lines, capture."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, Literal, TextIO

import structlog

import resilient_scan as rs


def short_error(error: object) -> str:
    """``"ApiError: HTTP 503 Service Unavailable"`` -> ``"HTTP 503 Service Unavailable"``."""
    text = str(error)
    head, sep, tail = text.partition(": ")
    return tail if sep and head.isidentifier() else text


def result_table(report: rs.ScanReport) -> list[str]:
    """Return the report as table lines: scanner, status, candidates, attempts, duration."""
    header = ("scanner", "status", "candidates", "attempts", "duration", "notes")
    rows = [header]
    for result in report.results:
        if result.status == "ok":
            notes = f"{result.cache_hits} from cache" if result.cache_hits else ""
            if result.dropped:
                notes = ", ".join(filter(None, [notes, f"{result.dropped} invalid dropped"]))
        elif result.status == "timeout":
            # The limit that fired may be the scanner's or an inner layer's: show the time.
            notes = f"timed out after {result.duration:.2f}s"
            if result.abandoned:
                notes += ", thread abandoned"
        elif result.error:
            notes = short_error(result.error)
        else:
            notes = result.reason or ""
        rows.append(
            (
                result.name,
                result.status.value,
                str(len(result.candidates)),
                str(result.attempts),
                f"{result.duration:.2f}s",
                notes,
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header) - 1)]
    lines = []
    for number, row in enumerate(rows):
        cells = [
            cell.rjust(width) if column in (2, 3, 4) and number else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=False))
        ]
        lines.append("  " + "  ".join([*cells, row[-1]]).rstrip())
        if number == 0:
            lines.append("  " + "  ".join("-" * width for width in widths) + "  -----")
    return lines


def candidate_lines(report: rs.ScanReport, limit: int = 5) -> list[str]:
    """Return the best *limit* merged candidates as lines: ticker, priority, sources, why."""
    lines = []
    for candidate in report.candidates[:limit]:
        sources = ", ".join(candidate.get("sources", [])) or candidate.get("source", "")
        lines.append(
            f"  {candidate['ticker']:<5} {candidate['priority']:<8} [{sources}]"
            f" {candidate.get('context', '')}"
        )
    more = len(report.candidates) - limit
    if more > 0:
        lines.append(f"  ... and {more} more")
    return lines


class EventRecorder:
    """A structlog processor that keeps a copy of every event passing through it.

    The demo reads what the layers actually did from these events.
    """

    def __init__(self) -> None:
        """Start with no events."""
        self._lock = threading.Lock()
        self.events: list[dict[str, Any]] = []

    def __call__(
        self, _logger: Any, _method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Record the event (with its `time.monotonic` instant) and pass it on unchanged."""
        entry = dict(event_dict)
        entry["_monotonic"] = time.monotonic()
        with self._lock:
            self.events.append(entry)
        return event_dict

    def mark(self) -> int:
        """Return a position to pass to `since`."""
        with self._lock:
            return len(self.events)

    def since(self, mark: int, event: str | None = None) -> list[dict[str, Any]]:
        """Return the events recorded after *mark*, only those named *event* if given."""
        with self._lock:
            found = self.events[mark:]
        return [entry for entry in found if event is None or entry.get("event") == event]


def _who(event: MutableMapping[str, Any]) -> str:
    return str(event.get("scanner") or event.get("function") or "?")


def _policy_line(event: MutableMapping[str, Any]) -> str | None:  # noqa: PLR0911 - one per event
    """Return a short monitor line for an event of the policy layers, None for others."""
    name = event.get("event")
    if name == "retry.scheduled":
        line = (
            f"  ↻ {_who(event)}: {short_error(event.get('error'))},"
            f" retry {event.get('attempt')} in {event.get('wait', 0):.2f}s"
        )
        if event.get("retry_after") is not None:
            line += f" (Retry-After: {event['retry_after']:g}s)"
        return line
    if name == "retry.exhausted":
        return (
            f"  ✗ {_who(event)}: gave up after {event.get('attempts')} attempts"
            f" ({event.get('reason')}): {short_error(event.get('error'))}"
        )
    if name == "breaker.state_changed":
        return (
            f"  ⛔ breaker {event.get('breaker')!s}: {event.get('from_state')}"
            f" → {event.get('to_state')}"
        )
    if name == "breaker.rejected":
        return (
            f"  ⛔ {_who(event)}: breaker {event.get('breaker')!s} is open, call not made"
            f" (next trial in {event.get('retry_in', 0):.0f}s)"
        )
    if name == "timeout.fired":
        return f"  ⏱ {_who(event)}: attempt timed out after {event.get('limit', 0):g}s"
    if name == "timeout.abandoned_call_finished":
        outcome = event.get("outcome")
        if event.get("error"):
            outcome = f"{outcome}: {short_error(event['error'])}"
        return (
            f"  ↳ {_who(event)}: abandoned call returned after {event.get('ran_for', 0):.2f}s"
            f" ({outcome})"
        )
    return None


def compact_policy_events(
    _logger: Any, _method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: the policy layers' events as one short line each.

    Placed before `rs.ScanConsoleRenderer`, whose fallback then prints the line as it is.
    """
    line = _policy_line(event_dict)
    return event_dict if line is None else {"event": line}


@contextmanager
def logging_for(
    format: Literal["console", "json"],  # noqa: A002 - as configure_logging names it
    stream: TextIO,
    recorder: EventRecorder | None = None,
) -> Iterator[None]:
    """Configure structlog with `rs.configure_logging` for a command; restore it afterwards.

    Console output gets the short policy lines; a *recorder* sees every event. The previous
    configuration is restored on exit, so the command can also run inside another program
    (or a test) without changing its logging.
    """
    saved = structlog.get_config()
    rs.configure_logging(format=format, stream=stream)
    processors = list(structlog.get_config()["processors"])
    extra: list[Any] = [] if recorder is None else [recorder]
    if format == "console":
        extra.append(compact_policy_events)
    # Just before the renderer: the events have their context, level and timestamp by then.
    processors[-1:-1] = extra
    structlog.configure(processors=processors)
    try:
        yield
    finally:
        structlog.configure(**saved)


__all__ = [
    "EventRecorder",
    "candidate_lines",
    "compact_policy_events",
    "logging_for",
    "result_table",
    "short_error",
]
