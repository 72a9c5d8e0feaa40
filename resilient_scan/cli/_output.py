"""Terminal output of the command line: style, a safe writer, tables and candidate lines.

- `Style` decides, per stream, about colours (``NO_COLOR``, ``FORCE_COLOR``, ``TERM=dumb``),
  marks (ASCII when the stream's encoding lacks the Unicode ones) and width (the terminal's;
  lines wrap between words).
- `Output` writes whole lines from any thread, never fails on an encoding, and stops
  quietly when the reader went away (``resilient-scan run c.toml | head -1``).
- `result_table`, `candidate_lines` and `traceback_lines` render a report.

Everything shown that came from scanners is escaped and capped (`for_console`).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import threading
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TextIO

from resilient_scan._console import (
    ConsoleLines,
    Glyphs,
    console_text,
    fit_encoding,
    short_error,
    use_colors,
)
from resilient_scan._report import ScanReport, ScanResult
from resilient_scan._text import escape_control, format_traceback, safe_str

__all__ = [
    "Output",
    "Style",
    "candidate_lines",
    "cells",
    "result_table",
    "traceback_lines",
    "wrap",
]

_ANSI: Final = re.compile(r"\x1b\[[0-9;]*m")
#: Below this many columns for notes, the table becomes one block per scanner.
_MIN_NOTES: Final = 16
#: The widest a rule or a section line gets, even on a wide terminal.
_MAX_RULE: Final = 76


def cells(text: str) -> int:
    """The terminal cells *text* takes: ANSI colour codes take none, wide characters two."""
    text = _ANSI.sub("", text)
    if text.isascii():
        return len(text)
    total = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        total += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return total


def _cut(word: str, size: int) -> list[str]:
    """*word* (colour codes dropped) in pieces of at most *size* cells."""
    plain = _ANSI.sub("", word)
    pieces, current = [], ""
    for char in plain:
        if current and cells(current + char) > size:
            pieces.append(current)
            current = ""
        current += char
    return [*pieces, current] if current else pieces


def wrap(text: str, width: int | None, indent: int = 2) -> list[str]:
    """*text* as lines of at most *width* cells, broken between words.

    Continuation lines are indented *indent* cells more than the first. Only a word
    longer than a whole line is cut (there is no other way to fit it).
    """
    if width is None or cells(text) <= width:
        return [text]
    stripped = text.lstrip(" ")
    lead = len(text) - len(stripped)
    more = " " * (lead + indent if lead + indent < width // 2 else 0)
    lines: list[str] = []
    current = " " * lead
    fresh = True  # nothing but indentation in current
    for word in stripped.split(" "):
        if not word:
            continue
        gap = "" if fresh else " "
        if cells(current) + len(gap) + cells(word) <= width:
            current += gap + word
            fresh = False
            continue
        if not fresh:
            lines.append(current)
            current, fresh = more, True
        room = width - cells(current)
        if cells(word) <= room:
            current += word
            fresh = False
            continue
        pieces = _cut(word, max(1, room))
        for piece in pieces[:-1]:
            lines.append(current + piece)
            current = more
        current += pieces[-1]
        fresh = False
    if not fresh or not lines:
        lines.append(current)
    return lines


def _terminal_width(stream: object, environ: Mapping[str, str]) -> int | None:
    """The width to fit: ``COLUMNS`` if set, the terminal's for a terminal, else none."""
    columns = environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        if not stream.isatty():  # type: ignore[attr-defined]
            return None
    except Exception:
        return None
    return shutil.get_terminal_size().columns


@dataclass(frozen=True)
class Style:
    """How one stream shows things: colours, marks and width.

    Attributes:
        colors: Colour the marks and statuses (ANSI codes).
        glyphs: The marks this stream's encoding can show.
        width: Columns to fit lines into (None: no limit, for files and pipes).
        encoding: The stream's encoding, if it has one.
    """

    colors: bool = False
    glyphs: Glyphs = field(default_factory=lambda: Glyphs.for_encoding(None))
    width: int | None = None
    encoding: str | None = None

    @classmethod
    def for_stream(cls, stream: object, environ: Mapping[str, str] | None = None) -> Style:
        """Decide for *stream*, reading ``NO_COLOR``, ``FORCE_COLOR``, ``TERM``, ``COLUMNS``."""
        import os  # noqa: PLC0415 - only here

        env = os.environ if environ is None else environ
        encoding = getattr(stream, "encoding", None)
        encoding = encoding if isinstance(encoding, str) else None
        return cls(
            colors=use_colors(stream, env),
            glyphs=Glyphs.for_encoding(encoding),
            width=_terminal_width(stream, env),
            encoding=encoding,
        )

    @property
    def lines(self) -> ConsoleLines:
        """The monitor lines in this style."""
        return ConsoleLines(self.glyphs, colors=self.colors)

    def paint(self, text: str, style: str) -> str:
        """*text* coloured as *style* (a status, ``bold``, ``dim``), when colours are on."""
        return self.lines.paint(text, style)

    def rule(self, title: str) -> str:
        """``── Run 1: concurrent, cold cache ─────``, as wide as the terminal allows."""
        line = self.glyphs["rule"]
        full = _MAX_RULE if self.width is None else min(self.width, _MAX_RULE)
        head = f"{line * 2} {title} "
        return head + line * max(2, full - cells(head))


class Output:
    """Whole lines to one stream, from any thread.

    Never raises `UnicodeEncodeError` (what the stream cannot encode is written as an
    escape) and stops writing once the reader has gone (a closed pipe): `closed` is then
    true, and writes from the main thread raise `BrokenPipeError` so the command can stop.
    It is also a text stream (``write``/``flush``), for loggers that print to it.
    """

    def __init__(self, stream: TextIO, style: Style | None = None) -> None:
        """Write to *stream*, in *style* (default: decided for the stream)."""
        self.stream = stream
        self.style = style if style is not None else Style.for_stream(stream)
        self.encoding = self.style.encoding or "utf-8"
        self.closed = False
        self._lock = threading.RLock()
        self._partial = ""
        #: Where finished lines go instead of the stream (a live display while it runs).
        self.sink: Callable[[str], None] | None = None

    def isatty(self) -> bool:
        """Whether the stream is a terminal."""
        try:
            return bool(self.stream.isatty())
        except Exception:
            return False

    def line(self, *lines: str, wrap_lines: bool = True) -> None:
        """Write *lines*, each wrapped to the width, as one block no other thread splits."""
        width = self.style.width if wrap_lines else None
        fitted = [piece for line in lines for piece in wrap(line, width)]
        self._emit("".join(f"{piece}\n" for piece in fitted))

    def block(self, lines: Iterable[str]) -> None:
        """Write *lines* as they are (already fitted), as one block."""
        self._emit("".join(f"{line}\n" for line in lines))

    def write(self, text: str) -> int:
        """Write *text* (whole lines go out at once; a partial line waits for the rest).

        For loggers, which may write from inside an instrumentation hook: this never raises,
        not even on a closed pipe (`closed` says so).
        """
        with self._lock, contextlib.suppress(BrokenPipeError):
            head, newline, self._partial = (self._partial + text).rpartition("\n")
            if newline:
                self._emit(head + "\n")
        return len(text)

    def flush(self) -> None:
        """Write out a partial line, if any (never raises, as `write`)."""
        with self._lock, contextlib.suppress(BrokenPipeError):
            if self._partial:
                partial, self._partial = self._partial, ""
                self._emit(partial)

    def check(self) -> None:
        """Raise `BrokenPipeError` if the reader has gone: the command may stop early."""
        if self.closed:
            raise BrokenPipeError(32, "the reader closed the output")

    def _emit(self, text: str) -> None:
        if not text:
            return
        with self._lock:
            if self.closed:
                self._refuse()
                return
            try:
                if self.sink is not None:
                    self.sink(text)
                else:
                    self.stream.write(fit_encoding(text, self.style.encoding))
                    self.stream.flush()
            except BrokenPipeError:
                self.closed = True
                self._refuse()
            except ValueError:  # the stream was closed under us: the same for a reader
                self.closed = True
                self._refuse()

    @staticmethod
    def _refuse() -> None:
        # Worker threads just stop writing; the main thread learns of it and stops the command.
        if threading.current_thread() is threading.main_thread():
            raise BrokenPipeError(32, "the reader closed the output")


# -- a report as lines --------------------------------------------------------------------------


def _notes(result: ScanResult) -> str:
    status = result.status.value
    if status == "ok":
        notes = []
        if result.cache_hits:
            notes.append(f"{result.cache_hits} from cache")
        if result.dropped:
            notes.append(f"{result.dropped} invalid dropped")
        if result.degraded:
            notes.append(f"degraded: {console_text(result.degraded_reason)}")
        return ", ".join(notes)
    if status == "timeout":
        note = f"timed out after {result.duration:.2f}s"
        if result.timeout_seconds:
            note += f" (limit {result.timeout_seconds:g}s)"
        if result.abandoned:
            note += ", thread abandoned"
        return note
    if result.error:
        return short_error(result.error, result.error_type)
    return console_text(result.reason or "")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


_HEADER: Final = ("scanner", "status", "candidates", "attempts", "duration", "notes")
_NUMERIC: Final = (2, 3, 4)


def result_table(report: ScanReport, style: Style) -> list[str]:
    """The report as table lines (scanner, status, candidates, attempts, duration, notes).

    On a terminal too narrow for the table, one short block per scanner instead.
    """
    glyphs = style.glyphs
    rows = [
        (
            console_text(result.name, 100),
            result.status.value,
            str(len(result.candidates)),
            str(result.attempts),
            f"{result.duration:.2f}s",
            _notes(result),
        )
        for result in report.results
    ]
    widths = [max(cells(row[c]) for row in [_HEADER, *rows]) for c in range(len(_HEADER) - 1)]
    indent = 2
    fixed = indent + 2 + sum(widths) + 2 * len(widths)  # the mark, the columns and their gaps
    notes_width = None if style.width is None else style.width - fixed
    if notes_width is not None and notes_width < _MIN_NOTES:
        return _blocks(report, rows, style)
    lines = []
    rule = glyphs["rule"]
    header = [
        _pad(cell, width, right=c in _NUMERIC)
        for c, (cell, width) in enumerate(zip(_HEADER[:-1], widths, strict=True))
    ]
    lines.append(" " * (indent + 2) + "  ".join([*header, _HEADER[-1]]))
    lines.append(" " * (indent + 2) + "  ".join([*(rule * w for w in widths), rule * 5]))
    for result, row in zip(report.results, rows, strict=True):
        status = result.status.value
        cells_ = [
            _pad(cell, width, right=c in _NUMERIC)
            for c, (cell, width) in enumerate(zip(row[:-1], widths, strict=True))
        ]
        cells_[1] = style.paint(cells_[1], status)
        start = " " * indent + style.lines.mark(status) + " " + "  ".join(cells_)
        notes = wrap(row[-1], notes_width, indent=0) if row[-1] else [""]
        lines.append(f"{start}  {notes[0]}".rstrip())
        lines.extend(" " * fixed + piece for piece in notes[1:])
    return lines


def _pad(text: str, width: int, *, right: bool) -> str:
    room = " " * max(0, width - cells(text))
    return room + text if right else text + room


def _blocks(report: ScanReport, rows: Sequence[tuple[str, ...]], style: Style) -> list[str]:
    lines = []
    dot = style.glyphs["dot"]
    for result, row in zip(report.results, rows, strict=True):
        status = result.status.value
        lines.extend(wrap(f"{style.lines.mark(status)} {row[0]}", style.width))
        found = _plural(len(result.candidates), "candidate")
        facts = (
            f"    {style.paint(status, status)} {dot} {found}"
            f" {dot} {_plural(result.attempts, 'attempt')} {dot} {row[4]}"
        )
        lines.extend(wrap(facts, style.width))
        if row[-1]:
            lines.extend(wrap(f"    {row[-1]}", style.width, indent=0))
    return lines


def _sources(candidate: Mapping[str, Any]) -> str:
    for key in ("all_sources", "sources"):
        value = candidate.get(key)
        if isinstance(value, (list, tuple)) and value:
            return ", ".join(safe_str(item) for item in value)
    return safe_str(candidate.get("source", ""))


def candidate_lines(report: ScanReport, style: Style, limit: int = 5) -> list[str]:
    """The best *limit* merged candidates: ticker, priority, [sources], why."""
    lines = []
    for candidate in report.candidates[:limit]:
        ticker = console_text(candidate.get("ticker", "?"), 20)
        priority = console_text(candidate.get("priority", ""), 20)
        sources = console_text(_sources(candidate), 200)
        line = (
            f"  {_pad(ticker, 5, right=False)} {_pad(priority, 8, right=False)}"
            f" [{sources}] {console_text(candidate.get('context', ''))}"
        )
        lines.extend(wrap(line.rstrip(), style.width, indent=4))
    more = len(report.candidates) - limit
    if more > 0:
        lines.append(f"  {style.glyphs['ellipsis']} and {more} more")
    return lines


def traceback_lines(report: ScanReport, style: Style) -> list[str]:
    """The full traceback of each scanner that raised, for ``--traceback``."""
    lines: list[str] = []
    for result in report.results:
        text = result.traceback
        if text is None and result.exception is not None:
            text = format_traceback(result.exception)
        if not text:
            continue
        title = f"Traceback of {console_text(result.name, 100)}"
        lines.extend(["", style.rule(title)])
        lines.extend(escape_control(line) for line in text.rstrip("\n").split("\n"))
    return lines
