"""A run as it happens: typed events in, monitor lines and live progress out.

`Presenter` is an instrumentation hook. It turns the executor's and the policy layers'
events into the familiar lines (``✓ market_movers: 10 candidates``) and keeps a line per
running scanner with its elapsed time and attempts:

- on a terminal, with rich installed (the ``cli`` extra), those lines are redrawn in place
  below the finished ones while scanners run;
- elsewhere (a file, a pipe, a CI log, or without rich) lines are only ever appended, and
  a ``still running`` line every few seconds says who is still running.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from resilient_scan import _config
from resilient_scan._console import console_text
from resilient_scan._events import (
    EVENT_TYPES,
    WARNING,
    AbandonedCallFinished,
    BreakerRejected,
    BreakerStateChanged,
    Event,
    RetryExhausted,
    RetryScheduled,
    ScanFinished,
    ScannerDegraded,
    ScannerFinished,
    ScannerStarted,
    ScanStarted,
    TimeoutFired,
)

from ._output import Output

__all__ = ["Presenter", "Running"]

#: Seconds between ``still running`` lines when lines can only be appended.
HEARTBEAT: Final = 5.0

_SHOWN: Final = (
    ScanStarted,
    ScannerStarted,
    ScannerFinished,
    ScannerDegraded,
    ScanFinished,
    RetryScheduled,
    RetryExhausted,
    BreakerStateChanged,
    BreakerRejected,
    TimeoutFired,
    AbandonedCallFinished,
)


@dataclass
class Running:
    """A scanner still running: since when (`time.monotonic`), and its attempts so far."""

    started: float
    attempts: int = 1


def _scanner_here() -> tuple[str | None, float | None]:
    """The scanner the calling code runs in, and when it started (None outside scanners)."""
    recorder = _config.CURRENT_SCAN.get()
    if recorder is None:
        return None, None
    return recorder.scanner, recorder.started


class Presenter:
    """An instrumentation hook that shows a run on an `Output`.

    Lines for the events it knows; ``name key=value`` lines for other warnings and errors
    (escaped, capped); nothing for the rest.
    """

    def __init__(
        self,
        output: Output,
        *,
        live: bool | None = None,
        heartbeat: float | None = HEARTBEAT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Show events on *output*.

        Args:
            output: Where the lines go.
            live: Redraw the running scanners in place (None: when *output* is a terminal,
                not ``TERM=dumb``, and rich is installed).
            heartbeat: Seconds between ``still running`` lines when not live (None: none).
            clock: Monotonic time, for the elapsed times.
        """
        self.output = output
        self.lines = output.style.lines
        self.clock = clock
        self.heartbeat = heartbeat
        self.live = _can_redraw(output) if live is None else live
        self.running: dict[str, Running] = {}
        self._lock = threading.Lock()
        self._degraded: dict[str, str] = {}
        self._reasonless: set[str] = set()
        self._display: Any = None
        self._stop_ticker: threading.Event | None = None
        self.events = frozenset(
            {*_SHOWN, *(kind for kind in EVENT_TYPES.values() if kind.level >= WARNING)}
        )

    def __repr__(self) -> str:
        """``Presenter()``."""
        return "Presenter()"

    # -- the hook ---------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:  # noqa: C901 - one branch per event type
        """Show *event*."""
        lines = self.lines
        if isinstance(event, ScanStarted):
            self._begin()
            self.say(lines.started(event.scanners, event.mode, event.max_workers))
        elif isinstance(event, ScannerStarted):
            with self._lock:
                self.running[event.scanner] = Running(self.clock())
        elif isinstance(event, ScannerFinished):
            self._finished(event)
        elif isinstance(event, ScannerDegraded):
            self._degraded_event(event)
        elif isinstance(event, ScanFinished):
            self._end()
            self.say(
                lines.summary(
                    duration=event.duration,
                    counts=event.counts,
                    candidates=event.candidates,
                    speedup=event.speedup,
                    abandoned=event.abandoned,
                    degraded=event.degraded,
                )
            )
        elif isinstance(event, RetryScheduled):
            who = self._note_attempt(event.attempt + 1) or event.function
            self.say(
                lines.retry(
                    who=who,
                    attempt=event.attempt,
                    wait=event.wait,
                    error=event.error,
                    retry_after=event.retry_after,
                )
            )
        elif isinstance(event, RetryExhausted):
            who = _scanner_here()[0] or event.function
            self.say(
                lines.gave_up(
                    who=who, attempts=event.attempts, reason=event.reason, error=event.error
                )
            )
        elif isinstance(event, BreakerStateChanged):
            self.say(
                lines.breaker_changed(
                    breaker=event.breaker, from_state=event.from_state, to_state=event.to_state
                )
            )
        elif isinstance(event, BreakerRejected):
            who = _scanner_here()[0] or "a call"
            self.say(
                lines.breaker_rejected(who=who, breaker=event.breaker, retry_in=event.retry_in)
            )
        elif isinstance(event, TimeoutFired):
            who = _scanner_here()[0] or event.function
            self.say(lines.timeout_fired(who=who, limit=event.limit))
        elif isinstance(event, AbandonedCallFinished):
            who = _scanner_here()[0] or event.function
            self.say(
                lines.abandoned_returned(
                    who=who, ran_for=event.ran_for, outcome=event.outcome, error=event.error
                )
            )
        elif event.severity >= WARNING:
            self.say(self._generic(event))

    def say(self, line: str) -> None:
        """Show one finished line (above the live lines, while they show).

        A hook must not raise: once the reader has gone (a closed pipe), lines are dropped
        here, and the command learns of it from `Output.closed` when it writes next.
        """
        with contextlib.suppress(BrokenPipeError):
            self.output.line(line)

    # -- events -----------------------------------------------------------------------------

    def _note_attempt(self, attempt: int) -> str | None:
        """Count an attempt of the scanner the calling code runs in; return its name."""
        name, started = _scanner_here()
        if name is None:
            return None
        with self._lock:
            running = self.running.get(name)
            if running is None:  # no scanner.started seen: it runs all the same
                begun = started if started is not None else self.clock()
                running = self.running[name] = Running(begun)
            running.attempts = max(running.attempts, attempt)
        return name

    def _finished(self, event: ScannerFinished) -> None:
        with self._lock:
            self.running.pop(event.scanner, None)
            reason = getattr(event, "degraded_reason", None) or self._degraded.pop(
                event.scanner, None
            )
            if event.degraded and not reason:
                self._reasonless.add(event.scanner)
        self.say(
            self.lines.finished(
                scanner=event.scanner,
                status=event.status,
                candidates=event.candidates,
                dropped=event.dropped,
                error=event.error,
                error_type=event.error_type,
                reason=event.reason,
                timeout_seconds=event.timeout_seconds,
                degraded=event.degraded,
                degraded_reason=reason,
            )
        )

    def _degraded_event(self, event: ScannerDegraded) -> None:
        with self._lock:
            if event.scanner not in self._reasonless:
                # Its finished line follows and says why.
                self._degraded[event.scanner] = event.summary
                return
            self._reasonless.discard(event.scanner)
        self.say(self.lines.degraded(scanner=event.scanner, summary=event.summary))

    @staticmethod
    def _generic(event: Event) -> str:
        fields = " ".join(
            f"{key}={console_text(value, 200)}"
            for key, value in event.fields().items()
            if value is not None and key != "traceback"
        )
        return f"  {event.name} {fields}".rstrip()

    # -- progress ---------------------------------------------------------------------------

    def snapshot(self) -> list[str]:
        """One line per running scanner: ``▸ news_sentiment  1.2s  attempt 2``."""
        now = self.clock()
        with self._lock:
            running = sorted(self.running.items(), key=lambda item: item[1].started)
        width = max((len(console_text(name, 60)) for name, _ in running), default=0)
        mark = self.output.style.glyphs["running"]
        found = []
        for name, state in running:
            attempt = f"  attempt {state.attempts}" if state.attempts > 1 else ""
            label = console_text(name, 60).ljust(width)
            found.append(f"  {mark} {label}  {now - state.started:5.1f}s{attempt}")
        return found

    def _begin(self) -> None:
        with self._lock:
            self.running.clear()
        self._end()
        if self.live:
            self._start_live()
        elif self.heartbeat:
            self._start_ticker(self.heartbeat)

    def _end(self) -> None:
        """Stop the live display or the ticker (idempotent)."""
        stop, self._stop_ticker = self._stop_ticker, None
        if stop is not None:
            stop.set()
        display, self._display = self._display, None
        if display is not None:
            self.output.sink = None
            with contextlib.suppress(Exception):  # one that cannot stop has nothing to show
                display.stop()

    close = _end

    def _start_ticker(self, every: float) -> None:
        stop = self._stop_ticker = threading.Event()

        def tick() -> None:
            while not stop.wait(every):
                now = self.snapshot()
                if now:
                    parts = ", ".join(line.strip()[2:].replace("  ", " ") for line in now)
                    self.say(f"  {self.output.style.glyphs['ellipsis']} still running: {parts}")

        threading.Thread(target=tick, name="resilient-scan-progress", daemon=True).start()

    def _start_live(self) -> None:
        from rich.console import Console  # noqa: PLC0415 - the cli extra, loaded when live
        from rich.live import Live  # noqa: PLC0415
        from rich.text import Text  # noqa: PLC0415

        style = self.output.style
        console = Console(
            file=self.output.stream,
            force_terminal=True,
            no_color=not style.colors,
            width=style.width,
            highlight=False,
            markup=False,
            emoji=False,
            soft_wrap=True,
        )

        def render() -> Any:
            return Text("\n".join(self.snapshot()))

        display = Live(
            get_renderable=render,
            console=console,
            refresh_per_second=8,
            transient=True,
            # A scanner's print() shows above the live lines instead of through them.
            redirect_stdout=self.output.stream is sys.stdout,
            redirect_stderr=False,
        )

        def print_above(text: str) -> None:
            console.print(Text.from_ansi(text.rstrip("\n")), soft_wrap=True)

        display.start()
        self._display = display
        self.output.sink = print_above


def _can_redraw(output: Output) -> bool:
    """Whether lines can be redrawn in place: a terminal that is not dumb, and rich."""
    return output.isatty() and os.environ.get("TERM") != "dumb" and _rich_available()


def _rich_available() -> bool:
    try:
        import rich.live  # noqa: F401, PLC0415 - only whether it can be imported
    except ImportError:
        return False
    return True
