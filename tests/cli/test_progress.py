"""Live progress: typed events in, monitor lines and running scanners out."""

from __future__ import annotations

import contextvars
import io
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import resilient_scan as rs
from resilient_scan import _config
from resilient_scan._stats import ScanRecorder
from resilient_scan.cli._output import Output, Style
from resilient_scan.cli._progress import Presenter
from resilient_scan.cli._session import presented
from resilient_scan.instrumentation import (
    AbandonedCallFinished,
    LateResultDropped,
    RetryScheduled,
    ScanFinished,
    ScannerFinished,
    ScannerStarted,
    ScanStarted,
    TimeoutFired,
)
from resilient_scan.testing import FakeClock
from tests.cli.support import clean_env, unique_module, write_config


def presenter_on(stream: io.StringIO, **options: Any) -> Presenter:
    return Presenter(Output(stream, Style()), live=False, heartbeat=None, **options)


def finished(scanner: str, status: str = "ok", **fields: Any) -> ScannerFinished:
    values: dict[str, Any] = {
        "scanner": scanner,
        "pipeline": None,
        "status": status,
        "candidates": 1,
        "dropped": 0,
        "duration": 0.1,
        "attempts": 1,
        "error_type": None,
        "error": None,
    }
    return ScannerFinished(**(values | fields))


def in_scanner(name: str, started: float, action: Any) -> None:
    """Call *action* as code running inside the scanner *name* does."""

    def inside() -> None:
        _config.CURRENT_SCAN.set(ScanRecorder(name, started=started))
        action()

    contextvars.copy_context().run(inside)


def test_running_scanners_with_elapsed_time_and_attempts():
    clock = FakeClock(100.0)
    stream = io.StringIO()
    presenter = presenter_on(stream, clock=clock.monotonic)

    presenter(ScanStarted(3, "concurrent", 8, 30.0, None))
    presenter(ScannerStarted("market_movers", "momentum"))
    clock.advance(0.5)
    presenter(ScannerStarted("news_sentiment", "catalysts"))
    clock.advance(1.0)
    retry = RetryScheduled("news-api.get", 1, 1.0, "ApiError", "ApiError: HTTP 429", 1.0)
    in_scanner("news_sentiment", 100.5, lambda: presenter(retry))

    assert presenter.snapshot() == [
        "  ▸ market_movers     1.5s",
        "  ▸ news_sentiment    1.0s  attempt 2",
    ]
    presenter(finished("market_movers"))
    assert presenter.snapshot() == ["  ▸ news_sentiment    1.0s  attempt 2"]
    assert stream.getvalue().splitlines() == [
        "Running 3 scanners concurrently (max 8 workers)...",
        "  ↻ news_sentiment: ApiError: HTTP 429, retry 1 in 1.00s (Retry-After: 1s)",
        "✓ market_movers: 1 candidate",
    ]


def test_a_scanner_seen_first_by_its_retry_runs_since_its_start():
    clock = FakeClock(50.0)
    presenter = presenter_on(io.StringIO(), clock=clock.monotonic)
    presenter(ScanStarted(1, "concurrent", 8, 30.0, None))
    clock.advance(2.0)

    retry = RetryScheduled("feed.get", 2, 0.5, "ConnectionError", "ConnectionError: reset", None)
    in_scanner("feed", 49.0, lambda: presenter(retry))

    assert presenter.snapshot() == ["  ▸ feed    3.0s  attempt 3"]


def test_policy_lines_name_the_scanner_they_ran_in():
    stream = io.StringIO()
    presenter = presenter_on(stream)

    in_scanner("slow_scanner", 0.0, lambda: presenter(TimeoutFired("alt.get", 0.75, 0.76, 1)))
    in_scanner(
        "slow_scanner",
        0.0,
        lambda: presenter(AbandonedCallFinished.of("alt.get", 5.25, ConnectionError("gone"), 0)),
    )
    presenter(TimeoutFired("outside.get", 1.0, 1.0, 0))

    assert stream.getvalue().splitlines() == [
        "  ⏱ slow_scanner: attempt timed out after 0.75s",
        "  ↳ slow_scanner: abandoned call returned after 5.25s (error: ConnectionError: gone)",
        "  ⏱ outside.get: attempt timed out after 1s",
    ]


def test_other_warnings_are_shown_escaped_and_info_events_are_not():
    stream = io.StringIO()
    presenter = presenter_on(stream)

    assert LateResultDropped not in presenter.events  # info: not even asked for
    presenter(LateResultDropped("slow\x1b[2J", None, 6.4, 3, "ok"))
    assert stream.getvalue() == ""
    warning = rs.instrumentation.ConfigUnmatched("scanners.movrs", ("movers",))
    presenter(warning)

    assert stream.getvalue() == "  config.unmatched key=scanners.movrs close_matches=('movers',)\n"


def test_the_summary_words():
    stream = io.StringIO()
    presenter = presenter_on(stream)

    presenter(ScanFinished(0.8, 0.6, 1, 0, 0, 0, {"ok": 1, "error": 0}))

    assert stream.getvalue() == "Done in 0.80s: 1 ok · 1 candidate\n"


def test_plain_output_says_who_is_still_running(release: threading.Event):
    # Not a terminal: no redrawing, but a line every *heartbeat* seconds.
    stream = io.StringIO()
    output = Output(stream, Style())
    presenter = Presenter(output, live=False, heartbeat=0.05)
    failures: list[int] = []

    @rs.scanner(name="patient")
    @rs.retry(attempts=2, backoff=0.0, on=ConnectionError)
    def patient(state: Mapping[str, Any]) -> list[dict[str, Any]]:
        if not failures:
            failures.append(1)
            raise ConnectionError("reset")
        release.wait(0.4)
        return []

    with presented(output, presenter):
        rs.ScanExecutor(timeout_seconds=5).run([patient], {})

    lines = stream.getvalue().splitlines()
    still = [line for line in lines if "still running" in line]
    assert still, lines
    assert re.fullmatch(r"  … still running: patient +\d+\.\ds attempt 2", still[0])
    assert lines[-1].startswith("Done in ")
    count = len(stream.getvalue().splitlines())
    time.sleep(0.15)
    assert len(stream.getvalue().splitlines()) == count  # the ticker stopped with the run


# -- a real terminal -------------------------------------------------------------------------------

SLOW = """
import time

import resilient_scan as rs

calls = []


@rs.retry(attempts=3, backoff=0.15, jitter=False, on=ConnectionError)
def fetch():
    calls.append(1)
    if len(calls) < 3:
        raise ConnectionError("reset by peer")
    return [{"ticker": "NVDA"}]


def flaky(state):
    return fetch()


def steady(state):
    time.sleep(0.6)
    return [{"ticker": "AMD"}]
"""


def read_all(fd: int, deadline: float) -> bytes:
    chunks = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_on_a_terminal_the_running_lines_are_redrawn_in_place(tmp_path: Path):
    pytest.importorskip("rich", reason="live progress needs the cli extra (rich)")
    import pty  # noqa: PLC0415 - POSIX only

    names = unique_module(tmp_path, SLOW, "cli_live")
    name = next(names)
    config = write_config(
        tmp_path, f'[resilient_scan]\nscanners = ["{name}:flaky", "{name}:steady"]\n'
    )
    controller, terminal = pty.openpty()
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and command
        [sys.executable, "-m", "resilient_scan.cli", "run", str(config)],
        cwd=tmp_path,
        env=clean_env(TERM="xterm-256color", COLUMNS="100", NO_COLOR="1"),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    try:
        raw = read_all(controller, time.monotonic() + 30)
        assert process.wait(timeout=30) == 0
    finally:
        os.close(controller)
        next(names, None)
    text = raw.decode("utf-8", "replace")
    # rich moves the cursor up and erases the lines it redraws.
    assert "\x1b[2K" in text
    assert "\x1b[1A" in text or "\x1b[A" in text
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r", "")
    assert re.search(r"▸ flaky +\d+\.\ds  attempt [23]", plain), plain
    assert "✓ flaky: 1 candidate" in plain
    assert "✓ steady: 1 candidate" in plain
    # Transient: once the run ended, no running line is left on the screen (the last
    # frame was erased), and the table follows.
    tail = plain[plain.index("Done in") :]
    assert "▸" not in tail
    assert "scanner" in tail


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_without_rich_a_terminal_gets_plain_lines(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "rich.live", None)  # importing it raises ImportError

    presenter = Presenter(Output(Terminal(), Style()))

    assert presenter.live is False


def test_a_dumb_terminal_gets_plain_lines(monkeypatch: pytest.MonkeyPatch):
    pytest.importorskip("rich")
    monkeypatch.setenv("TERM", "xterm")
    assert Presenter(Output(Terminal(), Style())).live is True
    monkeypatch.setenv("TERM", "dumb")
    assert Presenter(Output(Terminal(), Style())).live is False
    assert Presenter(Output(io.StringIO(), Style())).live is False  # no terminal at all
