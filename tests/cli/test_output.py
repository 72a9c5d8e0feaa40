"""Terminal output of the command line: wrapping, tables, a writer safe for threads,
encodings and closed pipes."""

from __future__ import annotations

import io
import threading

import pytest

from resilient_scan import ScanReport, ScanResult, ScanStatus
from resilient_scan._console import Glyphs
from resilient_scan.cli._output import Output, Style, cells, result_table, wrap


def report_of(*results: ScanResult) -> ScanReport:
    return ScanReport(
        results=list(results),
        candidates=[],
        tool_logs=[],
        duration=1.0,
        mode="concurrent",
        max_workers=4,
    )


# -- wrapping -------------------------------------------------------------------------------------


def test_short_lines_stay_as_they_are():
    assert wrap("✓ movers: 1 candidate", 40) == ["✓ movers: 1 candidate"]
    assert wrap("x" * 500, None) == ["x" * 500]


def test_lines_wrap_between_words_with_a_hanging_indent():
    line = "⚠ broken_scanner: ApiError: HTTP 503 Service Unavailable after three attempts"

    lines = wrap(line, 30)

    assert lines == [
        "⚠ broken_scanner: ApiError:",
        "  HTTP 503 Service Unavailable",
        "  after three attempts",
    ]
    assert " ".join(piece.strip() for piece in lines) == line


def test_indented_lines_keep_their_indent_and_add_to_it():
    lines = wrap("  ↻ news: ApiError: HTTP 429 Too Many Requests, retry 1 in 1.00s", 30)

    assert lines[0].startswith("  ↻ news:")
    assert all(line.startswith("    ") for line in lines[1:])
    assert max(cells(line) for line in lines) <= 30


def test_only_a_word_longer_than_a_line_is_cut():
    lines = wrap("error: " + "y" * 50, 20)

    assert lines[0] == "error:"
    assert all(cells(line) <= 20 for line in lines)
    assert "".join(line.strip() for line in lines[1:]) == "y" * 50


def test_colour_codes_take_no_room_and_wide_characters_two():
    assert cells("\x1b[32m✓\x1b[0m ok") == 4
    assert cells("株価") == 4
    assert wrap("\x1b[32m✓\x1b[0m " + "word " * 5, 40) == ["\x1b[32m✓\x1b[0m " + "word " * 5]


# -- the table ------------------------------------------------------------------------------------


RESULTS = (
    ScanResult("market_movers", ScanStatus.OK, [{"ticker": "NVDA"}], duration=0.41),
    ScanResult(
        "broken_scanner",
        ScanStatus.ERROR,
        error="ApiError: HTTP 503 Service Unavailable",
        error_type="ApiError",
        duration=0.19,
    ),
    ScanResult("crypto", ScanStatus.SKIPPED, reason="pipeline experimental disabled"),
)


def test_the_table_on_a_wide_terminal():
    lines = result_table(report_of(*RESULTS), Style(width=None))

    assert lines[0].split() == ["scanner", "status", "candidates", "attempts", "duration", "notes"]
    assert lines[2].split() == ["✓", "market_movers", "ok", "1", "1", "0.41s"]
    assert lines[3].split(maxsplit=6) == [
        "⚠",
        "broken_scanner",
        "error",
        "0",
        "1",
        "0.19s",
        "ApiError: HTTP 503 Service Unavailable",
    ]
    assert lines[4].split()[:3] == ["○", "crypto", "skipped"]


def test_notes_wrap_inside_their_column():
    lines = result_table(report_of(*RESULTS), Style(width=80))

    assert max(cells(line) for line in lines) <= 80
    notes_at = lines[0].index("notes")
    (broken,) = [n for n, line in enumerate(lines) if "broken_scanner" in line]
    assert lines[broken][notes_at:].startswith("ApiError: HTTP 503")
    assert lines[broken + 1][:notes_at].strip() == ""  # the rest, under the notes column


def test_a_narrow_terminal_gets_a_block_per_scanner():
    lines = result_table(report_of(*RESULTS), Style(width=40))

    assert max(cells(line) for line in lines) <= 40
    assert lines[:3] == [
        "✓ market_movers",
        "    ok · 1 candidate · 1 attempt · 0.41s",
        "⚠ broken_scanner",
    ]


def test_ascii_marks_in_the_table():
    style = Style(glyphs=Glyphs.for_encoding("cp1252"))

    lines = result_table(report_of(*RESULTS), style)

    assert lines[2].startswith("  + market_movers")
    assert lines[3].startswith("  ! broken_scanner")
    assert lines[1].strip().startswith("---")


# -- Style ----------------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_style_reads_width_and_colours_from_the_environment():
    assert Style.for_stream(io.StringIO(), {}).width is None  # a pipe or a file: no wrapping
    assert Style.for_stream(io.StringIO(), {"COLUMNS": "40"}).width == 40
    assert Style.for_stream(Terminal(), {"COLUMNS": "100"}).width == 100
    assert Style.for_stream(Terminal(), {}).colors is True
    assert Style.for_stream(Terminal(), {"NO_COLOR": "1"}).colors is False
    assert Style.for_stream(Terminal(), {"TERM": "dumb"}).colors is False


def test_rules_fit_the_width():
    assert cells(Style(width=40).rule("Run 1: concurrent, cold cache")) == 40
    assert cells(Style(width=200).rule("Run 1")) == 76


# -- Output ---------------------------------------------------------------------------------------


def test_lines_from_many_threads_stay_whole():
    stream = io.StringIO()
    output = Output(stream, Style())

    def chatter(number: int) -> None:
        for line in range(50):
            output.line(f"thread {number} line {line} " + "z" * 40)

    threads = [threading.Thread(target=chatter, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    lines = stream.getvalue().splitlines()
    assert len(lines) == 400
    assert all(line.endswith("z" * 40) and line.startswith("thread ") for line in lines)


def test_a_stream_that_cannot_encode_gets_escapes_not_an_error():
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="cp1252")
    output = Output(stream)

    output.line("株価 ✓ café")

    stream.flush()
    assert raw.getvalue().decode("cp1252") == "\\u682a\\u4fa1 \\u2713 café\n"


class ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_pipe_stops_the_main_thread_and_silences_the_others():
    output = Output(ClosedPipe(), Style())
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            output.line("from a worker")
            output.line("and again")
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()

    assert failures == []  # a worker (a hook) never sees the broken pipe
    assert output.closed
    with pytest.raises(BrokenPipeError):
        output.line("from the main thread")


def test_partial_writes_go_out_by_whole_lines():
    stream = io.StringIO()
    output = Output(stream, Style())

    output.write("first ")
    assert stream.getvalue() == ""
    output.write("line\nsecond")
    assert stream.getvalue() == "first line\n"
    output.flush()
    assert stream.getvalue() == "first line\nsecond"
