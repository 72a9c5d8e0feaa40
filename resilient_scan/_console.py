"""Log output for applications: JSON lines for production, familiar lines for terminals.

The library only emits events; `configure_logging` is for applications (and the command
line) to call. The monitor lines are built by `ConsoleLines`, shared by the structlog
renderer here and by the command line, which reads typed events instead of log entries.

Whatever a line shows that came from outside (scanner and function names, error messages,
reasons) has its control characters escaped visibly and is capped at `CONSOLE_LIMIT`
characters, so no message can forge a line or clear the screen.
"""

from __future__ import annotations

import codecs
import os
import re
import sys
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TextIO

from . import _config
from ._errors import ConfigError
from ._text import CONSOLE_LIMIT, STATUS_WORDS, cap, escape_control, safe_str

__all__ = [
    "CONSOLE_LIMIT",
    "ConsoleLines",
    "Glyphs",
    "ScanConsoleRenderer",
    "can_encode",
    "configure_logging",
    "console_text",
    "fit_encoding",
    "short_error",
    "use_colors",
]

#: Each mark and symbol of the monitor lines: (Unicode, ASCII fallback). Every Unicode mark
#: is one terminal cell wide (no emoji, no variation selectors), so the lines align.
_GLYPHS: Final = {
    "ok": ("✓", "+"),
    "error": ("⚠", "!"),
    "timeout": ("⏱", "T"),
    "circuit_open": ("⊘", "X"),
    "skipped": ("○", "-"),
    "cancelled": ("✗", "x"),
    "retry": ("↻", "~"),
    "gave_up": ("✗", "x"),
    "breaker": ("⊘", "X"),
    "returned": ("↳", ">"),
    "running": ("▸", ">"),
    "arrow": ("→", "->"),
    "times": ("\u00d7", "x"),  # the multiplication sign
    "dot": ("·", "-"),
    "ellipsis": ("…", "..."),
    "rule": ("─", "-"),
}


#: Why retrying gave up, in words (``attempts`` needs none: the count says it).
_GAVE_UP_REASONS: Final = {
    "attempts": "",
    "budget": "its time budget would pass",
    "deadline": "the deadline would pass",
    "retry_after": "the server asked for a longer wait than allowed",
    "not_retryable": "not retryable",
}

_ANSI: Final = {
    "ok": "\x1b[32m",  # green
    "error": "\x1b[31m",  # red
    "timeout": "\x1b[33m",  # yellow
    "circuit_open": "\x1b[35m",  # magenta
    "skipped": "\x1b[2m",  # dim
    "cancelled": "\x1b[2m",
    "degraded": "\x1b[33m",
    "bold": "\x1b[1m",
    "dim": "\x1b[2m",
}
_RESET: Final = "\x1b[0m"

#: The speed-up below which a run is not called faster than running back to back.
_FASTER: Final = 1.1


def use_colors(stream: object, environ: Mapping[str, str] | None = None) -> bool:
    """Whether to colour output on *stream*, as terminal programs agree.

    ``NO_COLOR`` (any non-empty value) turns colours off; otherwise ``FORCE_COLOR`` (any
    non-empty value) turns them on; otherwise ``TERM=dumb`` turns them off; otherwise
    colours are used on a terminal only.
    """
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR"):
        return True
    if env.get("TERM") == "dumb":
        return False
    return _isatty(stream)


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except Exception:  # a closed stream, or something without isatty
        return False


def fit_encoding(text: str, encoding: str | None) -> str:
    r"""*text* with what *encoding* cannot encode shown as escapes (``\u2713``)."""
    if encoding is None or can_encode(text, encoding):
        return text
    return codecs.decode(codecs.encode(text, encoding, "backslashreplace"), encoding)


def can_encode(text: str, encoding: str | None) -> bool:
    """Whether *encoding* can encode *text* (None: any text, as for a `StringIO`)."""
    if encoding is None:
        return True
    try:
        codecs.encode(text, encoding)
    except (UnicodeError, LookupError):
        return False
    return True


@dataclass(frozen=True)
class Glyphs:
    """The marks and symbols a stream can show: Unicode where its encoding has them."""

    marks: Mapping[str, str]

    @classmethod
    def for_encoding(cls, encoding: str | None) -> Glyphs:
        """Pick each glyph's Unicode form if *encoding* can encode it, else its ASCII form."""
        return cls(
            {
                name: fancy if can_encode(fancy, encoding) else plain
                for name, (fancy, plain) in _GLYPHS.items()
            }
        )

    @classmethod
    def for_stream(cls, stream: object) -> Glyphs:
        """`for_encoding` for *stream*'s encoding (Unicode when it has none: a `StringIO`)."""
        encoding = getattr(stream, "encoding", None)
        return cls.for_encoding(encoding if isinstance(encoding, str) else None)

    def __getitem__(self, name: str) -> str:
        """The glyph called *name* (``"?"`` for an unknown status)."""
        return self.marks.get(name, "?")


UNICODE: Final = Glyphs.for_encoding(None)


_CAPPED: Final = re.compile(r"… \(\+(\d+) chars\)$")


def console_text(value: object, limit: int = CONSOLE_LIMIT) -> str:
    """*value* as one safe terminal line: control characters escaped, capped at *limit*.

    A text that was capped before (an error text, at the message limit) is capped again
    from its full length, so the count of what was cut stays true.
    """
    text = escape_control(safe_str(value))
    if len(text) <= limit:
        return text
    capped = _CAPPED.search(text)
    full = capped.start() + int(capped[1]) if capped else len(text)
    return f"{text[:limit]}… (+{full - limit} chars)"


def short_error(error: object, error_type: object = None) -> str:
    """An error text for one console line: ``"KeyError: 'MSFT'"``, escaped and capped.

    The exception's type stays (``"HTTPError: HTTP 500"``): it is what one searches for.
    *error_type* is put in front of an *error* that lacks it.
    """
    text = safe_str(error) if error is not None else ""
    kind = safe_str(error_type) if error_type else ""
    if kind and not (text == kind or text.startswith(f"{kind}:")):
        text = f"{kind}: {text}" if text else kind
    return console_text(text or "unknown error")


def _number(value: object, default: float = 0.0) -> float:
    return (
        float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default
    )


def _count(number: object, noun: str) -> str:
    count = int(_number(number))
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _seconds(value: object) -> str:
    return f"{value:g}s" if isinstance(value, (int, float)) else "?"


class ConsoleLines:
    """The monitor lines, one method per kind: shared by the renderer and the command line.

    Every argument that came from outside is escaped and capped here, in one place.
    """

    def __init__(self, glyphs: Glyphs = UNICODE, *, colors: bool = False) -> None:
        """Lines with *glyphs*, coloured with ANSI codes when *colors*."""
        self.glyphs = glyphs
        self.colors = colors

    def paint(self, text: str, style: str) -> str:
        """*text* in the colour of *style* (a status, ``degraded``, ``bold``, ``dim``)."""
        code = _ANSI.get(style)
        return f"{code}{text}{_RESET}" if self.colors and code else text

    def mark(self, status: str) -> str:
        """The status mark, coloured."""
        return self.paint(self.glyphs[status], status)

    # -- the executor -------------------------------------------------------------------------

    def started(self, scanners: object, mode: object, max_workers: object) -> str:
        """``Running 8 scanners concurrently (max 8 workers)...``."""
        if mode == "sequential":
            return f"Running {_count(scanners, 'scanner')} sequentially..."
        return (
            f"Running {_count(scanners, 'scanner')} concurrently"
            f" (max {_count(max_workers, 'worker')})..."
        )

    def finished(
        self,
        *,
        scanner: object,
        status: object,
        candidates: object = 0,
        dropped: object = 0,
        error: object = None,
        error_type: object = None,
        reason: object = None,
        timeout_seconds: object = None,
        degraded: object = False,
        degraded_reason: object = None,
    ) -> str:
        """``✓ market_movers: 10 candidates``, ``⚠ buggy: KeyError: 'MSFT'``, ..."""
        state = str(status)
        head = f"{self.mark(state)} {console_text(scanner)}:"
        if state == "ok":
            line = f"{head} {_count(candidates, 'candidate')}"
            if dropped:
                line += f" ({int(_number(dropped))} invalid dropped)"
            if degraded:
                why = console_text(degraded_reason) if degraded_reason else ""
                note = f"degraded: {why}" if why else "degraded"
                line += f" {self.glyphs['dot']} {self.paint(note, 'degraded')}"
            return line
        if state == "timeout":
            return f"{head} timeout after {_seconds(timeout_seconds)}"
        if state == "error":
            return f"{head} {short_error(error, error_type)}"
        if state == "circuit_open":
            return f"{head} circuit open, not called"
        words = STATUS_WORDS.get(state, console_text(state))
        return f"{head} {words} ({console_text(reason)})" if reason else f"{head} {words}"

    def degraded(self, *, scanner: object, summary: object) -> str:
        """A degraded scanner whose finished line was already shown without the reason."""
        return (
            f"  {self.paint(self.glyphs['error'], 'degraded')} {console_text(scanner)}:"
            f" {self.paint('degraded: ' + console_text(summary), 'degraded')}"
        )

    def summary(
        self,
        *,
        duration: object,
        counts: Mapping[str, object],
        candidates: object,
        speedup: object = 0.0,
        abandoned: object = 0,
        degraded: object = 0,
    ) -> str:
        """``Done in 1.53s: 6 ok, 1 timeout · 21 candidates · 3.9x faster than back to back``.

        A run that was not at least 10% faster than running its scanners back to back
        claims no speed-up at all.
        """
        parts = []
        for status, words in STATUS_WORDS.items():
            count = int(_number(counts.get(status)))
            if count:
                part = f"{count} {words}"
                if status == "ok" and _number(degraded):
                    part += f" ({int(_number(degraded))} degraded)"
                parts.append(self.paint(part, status) if status != "ok" else part)
        dot = self.glyphs["dot"]
        line = (
            f"Done in {_number(duration):.2f}s: {', '.join(parts) or 'no scanners'}"
            f" {dot} {_count(candidates, 'candidate')}"
        )
        ratio = _number(speedup)
        if ratio >= _FASTER:
            line += f" {dot} {ratio:.1f}x faster than back to back"
        if _number(abandoned):
            line += f" {dot} {int(_number(abandoned))} abandoned"
        return line

    # -- the policy layers --------------------------------------------------------------------

    def retry(
        self, *, who: object, attempt: object, wait: object, error: object, retry_after: object
    ) -> str:
        """``↻ news: HTTPError: HTTP 429, retry 1 in 1.00s (Retry-After: 1s)``."""
        line = (
            f"  {self.paint(self.glyphs['retry'], 'timeout')} {console_text(who)}:"
            f" {short_error(error)}, retry {int(_number(attempt))} in {_number(wait):.2f}s"
        )
        if isinstance(retry_after, (int, float)):
            line += f" (Retry-After: {retry_after:g}s)"
        return line

    def gave_up(self, *, who: object, attempts: object, reason: object, error: object) -> str:
        """``✗ news: gave up after 3 attempts: HTTPError: HTTP 503``."""
        why = _GAVE_UP_REASONS.get(str(reason))
        if why is None:  # a reason added later: its code, in words
            why = console_text(str(reason).replace("_", " ")) if reason else ""
        return (
            f"  {self.paint(self.glyphs['gave_up'], 'error')} {console_text(who)}: gave up after"
            f" {_count(attempts, 'attempt')}{f' ({why})' if why else ''}: {short_error(error)}"
        )

    def breaker_changed(self, *, breaker: object, from_state: object, to_state: object) -> str:
        """``⊘ breaker options-flow: closed → open``."""
        style = "circuit_open" if to_state == "open" else "dim"
        return (
            f"  {self.paint(self.glyphs['breaker'], style)} breaker {console_text(breaker)}:"
            f" {console_text(from_state)} {self.glyphs['arrow']} {console_text(to_state)}"
        )

    def breaker_rejected(self, *, who: object, breaker: object, retry_in: object) -> str:
        """``⊘ broken: breaker options-flow is open, call not made (next trial in 59s)``."""
        return (
            f"  {self.paint(self.glyphs['breaker'], 'circuit_open')} {console_text(who)}:"
            f" breaker {console_text(breaker)} is open, call not made"
            f" (next trial in {_number(retry_in):.0f}s)"
        )

    def timeout_fired(self, *, who: object, limit: object) -> str:
        """``⏱ slow: attempt timed out after 0.75s``."""
        return (
            f"  {self.paint(self.glyphs['timeout'], 'timeout')} {console_text(who)}:"
            f" attempt timed out after {_seconds(limit)}"
        )

    def abandoned_returned(
        self, *, who: object, ran_for: object, outcome: object, error: object
    ) -> str:
        """``↳ slow: abandoned call returned after 5.76s (error: HTTPError: HTTP 503)``."""
        what = console_text(outcome)
        if error:
            what = f"{what}: {short_error(error)}"
        return (
            f"  {self.glyphs['returned']} {console_text(who)}: abandoned call returned after"
            f" {_number(ran_for):.2f}s ({what})"
        )


def _who(event: Mapping[str, Any]) -> object:
    return event.get("scanner") or event.get("function") or "?"


class ScanConsoleRenderer:
    """A structlog renderer that prints executor and policy events as short monitor lines.

    ``scan.started``  -> ``Running 8 scanners concurrently (max 8 workers)...``
    ``scanner.finished`` -> ``✓ market_movers: 10 candidates``,
    ``⏱ slow_scanner: timeout after 30s``, ``⚠ broken_scanner: HTTPError: HTTP 500 error``,
    ...; ``scan.finished`` -> a summary line; retries, breakers and timeouts -> one short
    indented line each. Every other event is rendered by *fallback* (structlog's
    `ConsoleRenderer` by default), with its text values escaped and capped.
    """

    def __init__(
        self,
        fallback: Callable[[Any, str, MutableMapping[str, Any]], Any] | None = None,
        *,
        colors: bool = False,
        encoding: str | None = None,
    ) -> None:
        """Create the renderer.

        Args:
            fallback: Renders the events it does not know.
            colors: Colour the status marks (ANSI codes).
            encoding: The output's encoding: marks it cannot encode are shown in ASCII.
        """
        if fallback is None:
            import structlog  # noqa: PLC0415 - structlog is loaded by applications that render

            fallback = structlog.dev.ConsoleRenderer(
                colors=colors, exception_formatter=structlog.dev.plain_traceback
            )
        self._fallback = fallback
        self._encoding = encoding
        console = getattr(sys.modules.get("structlog.dev"), "ConsoleRenderer", None)
        # structlog's console renderer shows some strings with repr: keep it from escaping
        # our escapes again. Any other renderer gets plain (escaped) strings.
        self._as_shown: Callable[[str], object] = (
            _Shown if console is not None and isinstance(fallback, console) else str
        )
        self.lines = ConsoleLines(Glyphs.for_encoding(encoding), colors=colors)
        # Reasons of degraded scanners, from scanner.degraded events, by (run_id, scanner).
        self._degraded: dict[tuple[object, object], object] = {}
        self._shown: set[tuple[object, object]] = set()

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        """Render one event."""
        line = self._line(event_dict)
        if line is None:
            line = self._fallback(logger, method_name, _escaped(event_dict, self._as_shown))
        return fit_encoding(line, self._encoding) if isinstance(line, str) else line

    def _line(self, event: MutableMapping[str, Any]) -> str | None:
        name = event.get("event")
        lines = self.lines
        if name == "scan.started":
            return lines.started(
                event.get("scanners", 0), event.get("mode"), event.get("max_workers")
            )
        if name == "scanner.finished":
            return self._finished(event)
        if name == "scanner.degraded":
            return self._degraded_event(event)
        if name == "scan.finished":
            counts = {status: event.get(f"{status}_count") for status in STATUS_WORDS}
            return lines.summary(
                duration=event.get("duration"),
                counts=counts,
                candidates=event.get("candidates", 0),
                speedup=event.get("speedup", 0.0),
                abandoned=event.get("abandoned", 0),
                degraded=event.get("degraded", 0),
            )
        return self._policy_line(name, event)

    def _policy_line(self, name: object, event: MutableMapping[str, Any]) -> str | None:  # noqa: PLR0911
        lines = self.lines
        if name == "retry.scheduled":
            return lines.retry(
                who=_who(event),
                attempt=event.get("attempt"),
                wait=event.get("wait"),
                error=event.get("error"),
                retry_after=event.get("retry_after"),
            )
        if name == "retry.exhausted":
            return lines.gave_up(
                who=_who(event),
                attempts=event.get("attempts"),
                reason=event.get("reason"),
                error=event.get("error"),
            )
        if name == "breaker.state_changed":
            return lines.breaker_changed(
                breaker=event.get("breaker"),
                from_state=event.get("from_state"),
                to_state=event.get("to_state"),
            )
        if name == "breaker.rejected":
            return lines.breaker_rejected(
                who=_who(event), breaker=event.get("breaker"), retry_in=event.get("retry_in")
            )
        if name == "timeout.fired":
            return lines.timeout_fired(who=_who(event), limit=event.get("limit"))
        if name == "timeout.abandoned_call_finished":
            return lines.abandoned_returned(
                who=_who(event),
                ran_for=event.get("ran_for"),
                outcome=event.get("outcome"),
                error=event.get("error"),
            )
        return None

    def _finished(self, event: MutableMapping[str, Any]) -> str:
        key = (event.get("run_id"), event.get("scanner"))
        reason = event.get("degraded_reason") or self._degraded.pop(key, None)
        if event.get("degraded") and not reason:
            self._shown.add(key)  # its reason may come next, on a line of its own
        return self.lines.finished(
            scanner=event.get("scanner"),
            status=event.get("status"),
            candidates=event.get("candidates", 0),
            dropped=event.get("dropped", 0),
            error=event.get("error"),
            error_type=event.get("error_type"),
            reason=event.get("reason"),
            timeout_seconds=event.get("timeout_seconds"),
            degraded=event.get("degraded", False),
            degraded_reason=reason,
        )

    def _degraded_event(self, event: MutableMapping[str, Any]) -> str:
        key = (event.get("run_id"), event.get("scanner"))
        if key in self._shown:
            self._shown.discard(key)
            return self.lines.degraded(scanner=event.get("scanner"), summary=event.get("summary"))
        # Shown with the scanner's finished line, which follows.
        if len(self._degraded) > 10_000:  # noqa: PLR2004 - never grow without bound
            self._degraded.clear()
        self._degraded[key] = event.get("summary")
        import structlog  # noqa: PLC0415

        raise structlog.DropEvent


#: Fields whose text is structure (tracebacks), not a one-line message.
_MULTILINE: Final = frozenset({"exception", "exc_info", "stack", "traceback"})


class _Shown:
    """A text already escaped for the console: structlog's renderer must not escape it again.

    That renderer prints a string as it is unless it holds a space, a quote or a line break,
    which it shows with `repr` (escaping control characters, and so doubling ours).
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        quoted = any(char in self.text for char in " \t='\"")
        return f"'{self.text}'" if quoted else self.text


def _escaped(
    event: MutableMapping[str, Any], shown: Callable[[str], object]
) -> MutableMapping[str, Any]:
    """The event with its text values escaped and capped, for the fallback renderer."""
    for key, value in event.items():
        if isinstance(value, str) and key not in _MULTILINE:
            text = console_text(value)
            if text != value:
                event[key] = shown(text)
    return event


def _cap_fields(
    _logger: Any, _method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Cap text values of JSON lines at the message limit (tracebacks at 20 times that)."""
    limit = _config.RUNTIME.message_limit
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = cap(value, 20 * limit if key in _MULTILINE else limit)
    return event_dict


class _JsonSerializer:
    """JSON lines that are valid whatever the values; ASCII on a stream that is not UTF."""

    def __init__(self, encoding: str | None) -> None:
        self.ascii = not can_encode("\u2713\U0001f600", encoding)

    def __call__(self, data: Any, **_options: Any) -> str:
        from ._jsonsafe import dumps  # noqa: PLC0415 - only JSON logs need it

        return dumps(data, indent=None, ascii_only=self.ascii)


_LEVELS: Final = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "critical": 50}


def _level_number(level: object) -> int:
    if isinstance(level, str) and level.lower() in _LEVELS:
        return _LEVELS[level.lower()]
    if isinstance(level, int) and not isinstance(level, bool) and level in _LEVELS.values():
        return level
    raise ConfigError(
        "configure_logging.level",
        f"unknown log level {escape_control(safe_str(level))[:100]!r}; use debug, info,"
        " warning, error or critical (or the logging module's numbers for them)",
    )


def configure_logging(
    *,
    format: Literal["auto", "console", "json"] = "auto",  # noqa: A002 - the natural name
    level: int | str = "info",
    stream: TextIO | None = None,
    show_locals: bool = False,
) -> None:
    """Configure structlog for an application: JSON lines, or monitor lines on a terminal.

    For applications and scripts, never for libraries. ``format="auto"`` picks the console
    when *stream* (default: `sys.stderr`) is a terminal and JSON otherwise. Every format
    merges context bound with `structlog.contextvars` (the executor binds each scanner's
    name that way), adds the level and an ISO timestamp, and drops events below *level*.
    Loggers are not cached, so `structlog.testing.capture_logs` keeps working.

    The console colours its marks on a terminal, honouring ``NO_COLOR``, ``FORCE_COLOR`` and
    ``TERM=dumb`` (see `use_colors`), and falls back to ASCII marks when the stream's
    encoding cannot show them; control characters in messages are escaped and messages
    capped at 500 characters. JSON lines are always valid JSON, with text values capped at
    the message limit (2,000 characters by default).

    Tracebacks never show the values of local variables (they may hold credentials, or the
    whole state), unless *show_locals* is true.

    Raises:
        ConfigError: for an unknown *format* or *level*, or a *stream* that cannot be
            written to.
    """
    number = _level_number(level)
    out = stream if stream is not None else sys.stderr
    if not callable(getattr(out, "write", None)):
        raise ConfigError(
            "configure_logging.stream",
            f"must be a text stream with write(), got {type(out).__name__}",
        )
    if format not in ("auto", "console", "json"):
        raise ConfigError(
            "configure_logging.format",
            f"must be 'auto', 'console' or 'json', got {escape_control(safe_str(format))[:100]!r}",
        )
    import structlog  # noqa: PLC0415 - only applications that configure logging need it

    chosen = ("console" if _isatty(out) else "json") if format == "auto" else format
    encoding = getattr(out, "encoding", None)
    if not isinstance(encoding, str):
        encoding = None
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if chosen == "json":
        transformer = structlog.tracebacks.ExceptionDictTransformer(show_locals=show_locals)
        processors = [
            *shared,
            structlog.processors.ExceptionRenderer(transformer),
            _cap_fields,
            structlog.processors.JSONRenderer(serializer=_JsonSerializer(encoding)),
        ]
    else:
        colors = use_colors(out)
        formatter: Any = structlog.dev.plain_traceback
        if show_locals:
            formatter = structlog.dev.RichTracebackFormatter(show_locals=True)
        fallback = structlog.dev.ConsoleRenderer(colors=colors, exception_formatter=formatter)
        renderer = ScanConsoleRenderer(fallback, colors=colors, encoding=encoding)
        processors = [*shared, renderer]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(number),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
