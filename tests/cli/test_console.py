"""The console renderer and configure_logging: familiar lines for terminals, JSON for machines."""

from __future__ import annotations

import io
import json
import threading
import unicodedata
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

import pytest
import structlog

import resilient_scan as rs
from resilient_scan import _config
from resilient_scan._console import UNICODE, Glyphs, use_colors
from tests.helpers import structlog_kept

Found = list[dict[str, Any]]


@pytest.fixture(autouse=True)
def restore_structlog() -> Iterator[None]:
    """configure_logging changes structlog's global configuration: put it back."""
    with structlog_kept():
        yield


def render(**event: Any) -> Any:
    return rs.ScanConsoleRenderer()(None, "info", event)


# -- the renderer -----------------------------------------------------------------------------


def test_the_started_line():
    line = render(event="scan.started", scanners=8, mode="concurrent", max_workers=8)

    assert line == "Running 8 scanners concurrently (max 8 workers)..."


def test_the_started_line_in_sequential_mode():
    line = render(event="scan.started", scanners=1, mode="sequential", max_workers=1)

    assert line == "Running 1 scanner sequentially..."


def test_the_ok_line():
    line = render(
        event="scanner.finished", scanner="market_movers", status="ok", candidates=10, dropped=0
    )

    assert line == "✓ market_movers: 10 candidates"


def test_one_candidate_is_singular():
    line = render(event="scanner.finished", scanner="movers", status="ok", candidates=1)

    assert line == "✓ movers: 1 candidate"


def test_the_timeout_line():
    line = render(
        event="scanner.finished",
        scanner="slow_scanner",
        status="timeout",
        timeout_seconds=30.0,
        error="ScanTimeout: slow_scanner timed out after 30s (its timeout)",
    )

    assert line == "⏱ slow_scanner: timeout after 30s"


def test_the_error_line_keeps_the_exception_type():
    # 8.9: "⚠️ buggy: 'MSFT'" hid that it was a KeyError.
    line = render(
        event="scanner.finished",
        scanner="buggy",
        status="error",
        error_type="KeyError",
        error="KeyError: 'MSFT'",
    )

    assert line == "⚠ buggy: KeyError: 'MSFT'"


def test_the_degraded_line_says_what_failed_inside():
    renderer = rs.ScanConsoleRenderer()
    summary = "9 failed calls, circuit options-api open"

    with pytest.raises(structlog.DropEvent):  # shown with the finished line that follows
        renderer(
            None,
            "warning",
            {"event": "scanner.degraded", "scanner": "options_flow", "summary": summary},
        )
    line = renderer(
        None,
        "info",
        {
            "event": "scanner.finished",
            "scanner": "options_flow",
            "status": "ok",
            "candidates": 0,
            "degraded": True,
        },
    )

    assert line == f"✓ options_flow: 0 candidates · degraded: {summary}"


def test_a_degraded_reason_that_comes_after_the_line_gets_its_own_line():
    renderer = rs.ScanConsoleRenderer()
    finished = {"event": "scanner.finished", "scanner": "flow", "status": "ok", "degraded": True}

    assert renderer(None, "info", finished) == "✓ flow: 0 candidates · degraded"
    line = renderer(
        None,
        "warning",
        {"event": "scanner.degraded", "scanner": "flow", "summary": "2 failed calls"},
    )

    assert line == "  ⚠ flow: degraded: 2 failed calls"


@pytest.mark.parametrize("status", ["circuit_open", "skipped", "cancelled"])
def test_other_statuses_name_the_scanner_and_the_status(status: str):
    line = render(event="scanner.finished", scanner="news", status=status, reason="why")

    assert line.split(":")[0].endswith("news")
    assert status.replace("_", " ") in line


def test_every_mark_is_one_terminal_cell():
    # 14.2: ⚠️ and ⏱️ carry an emoji selector (one or two cells by terminal), ⛔ is two.
    for name, mark in UNICODE.marks.items():
        for char in mark:
            assert char != "\ufe0f", name
            assert unicodedata.east_asian_width(char) not in ("W", "F"), name


def test_the_summary_line():
    line = render(
        event="scan.finished",
        duration=42.0,
        speedup=3.2,
        candidates=57,
        ok_count=6,
        error_count=1,
        timeout_count=1,
        circuit_open_count=0,
        skipped_count=0,
        cancelled_count=0,
        abandoned=1,
    )

    assert line == (
        "Done in 42.00s: 6 ok, 1 error, 1 timeout · 57 candidates"
        " · 3.2x faster than back to back · 1 abandoned"
    )


def test_the_summary_of_one_candidate_is_singular():
    # 14.3: "· 1 candidates".
    line = render(event="scan.finished", duration=0.5, speedup=2.0, candidates=1, ok_count=1)

    assert "· 1 candidate ·" in line


@pytest.mark.parametrize("speedup", [0.2, 0.9, 1.0, 1.05])
def test_a_run_no_faster_than_back_to_back_claims_no_speedup(speedup: float):
    # 14.3: "0.2x faster than back to back" for a run that was slower.
    line = render(event="scan.finished", duration=1.0, speedup=speedup, candidates=0, ok_count=2)

    assert "faster" not in line
    assert line == "Done in 1.00s: 2 ok · 0 candidates"


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("attempts", "gave up after 3 attempts: ConnectionError: down"),
        ("budget", "gave up after 3 attempts (its time budget would pass): ConnectionError"),
        ("deadline", "gave up after 3 attempts (the deadline would pass): ConnectionError"),
        ("some_new_reason", "gave up after 3 attempts (some new reason): ConnectionError"),
    ],
)
def test_giving_up_says_why_in_words(reason: str, words: str):
    # 14.3: "gave up after 3 attempts (attempts)" printed the raw reason code.
    line = render(
        event="retry.exhausted",
        scanner="news",
        attempts=3,
        reason=reason,
        error="ConnectionError: down",
    )

    assert words in line
    assert f"({reason})" not in line


def test_ascii_marks_for_an_encoding_without_them():
    renderer = rs.ScanConsoleRenderer(encoding="cp1252")

    line = renderer(
        None, "info", {"event": "scanner.finished", "scanner": "m", "status": "ok", "candidates": 2}
    )

    assert line == "+ m: 2 candidates"
    assert Glyphs.for_encoding("ascii")["timeout"] == "T"


# -- 7.8: what scanners say cannot forge lines or drive the terminal ---------------------------

FORGED = "HTTP 500\n✓ payments: 12 candidates\x1b[2J\r\x9b31m"
SHOWN = r"HTTP 500\n✓ payments: 12 candidates\x1b[2J\r\x9b31m"


def test_control_characters_in_a_line_are_escaped_visibly():
    line = render(
        event="scanner.finished",
        scanner="feed\x1b[31m",
        status="error",
        error=f"RuntimeError: {FORGED}",
    )

    assert line == rf"⚠ feed\x1b[31m: RuntimeError: {SHOWN}"


def test_control_characters_in_other_events_are_escaped_too():
    stream = io.StringIO()
    rs.configure_logging(format="console", stream=stream)

    structlog.get_logger("app").warning("app.note", detail=FORGED)

    text = stream.getvalue()
    assert text.count("\n") == 1
    assert "\x1b[2J" not in text
    assert "\r" not in text
    assert SHOWN in text


def test_console_messages_are_capped():
    line = render(event="scanner.finished", scanner="loud", status="error", error="x" * 800)

    assert line == f"⚠ loud: {'x' * 500}… (+300 chars)"


def test_json_lines_cap_long_text_at_the_message_limit():
    stream = io.StringIO()
    rs.configure_logging(format="json", stream=stream)

    structlog.get_logger("app").warning("app.note", detail="y" * 5000)

    event = json.loads(stream.getvalue())
    limit = _config.DEFAULT_MESSAGE_LIMIT
    assert event["detail"] == f"{'y' * limit}… (+{5000 - limit} chars)"


def test_json_lines_escape_control_characters_and_stay_valid():
    stream = io.StringIO()
    rs.configure_logging(format="json", stream=stream)

    structlog.get_logger("app").warning("app.note", detail=FORGED, ratio=float("nan"))

    (line,) = stream.getvalue().splitlines()
    assert "\x1b" not in line
    assert "\x9b" not in line
    event = json.loads(line, parse_constant=pytest.fail)
    assert event["detail"] == FORGED
    assert event["ratio"] is None


# -- 7.7: no frame locals in tracebacks -----------------------------------------------------------


def login(password: str) -> None:
    raise ConnectionError(f"login failed for a {len(password)}-character password")


SECRET = "hunter2-secret"  # noqa: S105 - the secret that must not reach the log


def log_a_failure_with_a_secret_local() -> None:
    password = SECRET  # a local variable: its value shows only if locals are rendered
    try:
        login(password)
    except ConnectionError:
        structlog.get_logger("app").exception("app.login_failed")


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_tracebacks_show_no_local_variables(log_format: str):
    # 7.7: dict_tracebacks (json) and rich's formatter (console) printed every frame's locals.
    stream = io.StringIO()
    rs.configure_logging(format=log_format, stream=stream)  # type: ignore[arg-type]

    log_a_failure_with_a_secret_local()

    text = stream.getvalue()
    assert "ConnectionError" in text
    assert "login failed" in text
    assert "log_a_failure_with_a_secret_local" in text  # the frame is there...
    assert "hunter2" not in text  # ...its locals are not


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_show_locals_turns_them_on(log_format: str):
    stream = io.StringIO()
    rs.configure_logging(format=log_format, stream=stream, show_locals=True)  # type: ignore[arg-type]

    log_a_failure_with_a_secret_local()

    assert "hunter2" in stream.getvalue()


# -- colours --------------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("environ", "terminal", "expected"),
    [
        ({}, True, True),
        ({}, False, False),
        ({"NO_COLOR": "1"}, True, False),
        ({"NO_COLOR": ""}, True, True),  # only a non-empty value counts
        ({"FORCE_COLOR": "1"}, False, True),
        ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, False, False),  # NO_COLOR wins
        ({"TERM": "dumb"}, True, False),
        ({"TERM": "dumb", "FORCE_COLOR": "1"}, True, True),
    ],
)
def test_use_colors_honours_the_environment(environ, terminal, expected):
    stream = Terminal() if terminal else io.StringIO()

    assert use_colors(stream, environ) is expected


def test_configure_logging_colours_when_forced(monkeypatch: pytest.MonkeyPatch):
    # 14.2: colors=stream.isatty() overrode FORCE_COLOR and NO_COLOR.
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    stream = io.StringIO()
    rs.configure_logging(format="console", stream=stream)

    rs.ScanExecutor().run([lambda state: []], {})

    assert "\x1b[32m✓\x1b[0m <lambda>: 0 candidates" in stream.getvalue()


def test_configure_logging_does_not_colour_a_terminal_under_no_color(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("NO_COLOR", "1")
    stream = Terminal()
    rs.configure_logging(format="console", stream=stream)

    structlog.get_logger("app").warning("app.note", answer=42)
    rs.ScanExecutor().run([lambda state: []], {})

    assert "\x1b[" not in stream.getvalue()


# -- a real run through configure_logging -----------------------------------------------------


def scanners_for_the_console(release: threading.Event) -> list[Any]:
    def market_movers(state: Mapping[str, Any]) -> Found:
        return [{"ticker": f"T{i}"} for i in range(10)]

    def slow_scanner(state: Mapping[str, Any]) -> Found:
        release.wait()
        return []

    def broken_scanner(state: Mapping[str, Any]) -> Found:
        raise RuntimeError("HTTP 500 error")

    return [market_movers, slow_scanner, broken_scanner]


def test_console_format_prints_the_familiar_lines(release: threading.Event):
    stream = io.StringIO()
    rs.configure_logging(format="console", stream=stream)

    rs.ScanExecutor(max_workers=8, timeout_seconds=0.3).run(scanners_for_the_console(release), {})

    lines = stream.getvalue().splitlines()
    assert "Running 3 scanners concurrently (max 8 workers)..." in lines
    assert "✓ market_movers: 10 candidates" in lines
    assert "⏱ slow_scanner: timeout after 0.3s" in lines
    assert "⚠ broken_scanner: RuntimeError: HTTP 500 error" in lines
    (summary,) = [line for line in lines if line.startswith("Done in")]
    assert "1 ok, 1 error, 1 timeout" in summary


def test_json_format_prints_one_object_per_line(release: threading.Event):
    stream = io.StringIO()
    rs.configure_logging(format="json", stream=stream)

    rs.ScanExecutor(timeout_seconds=0.3).run(scanners_for_the_console(release), {})

    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    (started,) = [e for e in events if e["event"] == "scan.started"]
    assert started["scanners"] == 3
    assert started["mode"] == "concurrent"
    assert started["max_workers"] == 8
    assert "timestamp" in started
    assert started["level"] == "info"
    finished = {e["scanner"]: e for e in events if e["event"] == "scanner.finished"}
    assert finished["market_movers"]["status"] == "ok"
    assert finished["market_movers"]["candidates"] == 10
    assert finished["slow_scanner"]["status"] == "timeout"
    assert finished["slow_scanner"]["level"] == "warning"
    assert finished["broken_scanner"]["status"] == "error"
    assert "HTTP 500 error" in finished["broken_scanner"]["error"]
    (done,) = [e for e in events if e["event"] == "scan.finished"]
    assert (done["ok_count"], done["timeout_count"], done["error_count"]) == (1, 1, 1)


def test_json_lines_carry_the_scanner_name_of_policy_events():
    stream = io.StringIO()
    rs.configure_logging(format="json", stream=stream)
    failures: list[int] = []

    @rs.scanner(name="json_retrying")
    @rs.retry(attempts=2, backoff=0.01, on=ConnectionError)
    def retrying(state: Mapping[str, Any]) -> Found:
        if not failures:
            failures.append(1)
            raise ConnectionError("reset")
        return []

    with rs.testing.no_waits():
        rs.ScanExecutor().run([retrying], {})

    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    (scheduled,) = [e for e in events if e["event"] == "retry.scheduled"]
    assert scheduled["scanner"] == "json_retrying"


def test_a_level_filters_events():
    stream = io.StringIO()
    rs.configure_logging(format="json", level="warning", stream=stream)

    def quiet(state: Mapping[str, Any]) -> Found:
        return []

    def loud(state: Mapping[str, Any]) -> Found:
        raise ValueError("bad")

    rs.ScanExecutor().run([quiet, loud], {})

    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e.get("scanner") for e in events if e["event"] == "scanner.finished"] == ["loud"]
    assert not [e for e in events if e["event"] in ("scan.started", "scan.finished")]


def test_a_level_may_be_the_logging_modules_number():
    stream = io.StringIO()
    rs.configure_logging(format="json", level=30, stream=stream)

    structlog.get_logger("app").info("app.quiet")
    structlog.get_logger("app").warning("app.loud")

    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["app.loud"]


def test_loggers_are_not_cached_so_capture_logs_still_works():
    rs.configure_logging(format="json", stream=io.StringIO())

    def after_configure(state: Mapping[str, Any]) -> Found:
        return []

    with structlog.testing.capture_logs() as events:
        rs.ScanExecutor().run([after_configure], {})

    assert [e["scanner"] for e in events if e["event"] == "scanner.finished"] == ["after_configure"]


@pytest.mark.parametrize(
    ("bad", "key"),
    [
        ({"format": "xml"}, "format"),
        ({"format": ""}, "format"),
        ({"level": "verbose"}, "level"),
        ({"level": 15}, "level"),  # 7.10: a KeyError deep inside structlog before
        ({"stream": 42}, "stream"),  # 7.10: a weakref TypeError before
    ],
)
def test_bad_format_level_or_stream_is_a_config_error(bad: dict[str, Any], key: str):
    before = structlog.get_config()["processors"]

    with pytest.raises(rs.ConfigError) as caught:
        rs.configure_logging(**({"stream": io.StringIO()} | bad))

    assert caught.value.key == f"configure_logging.{key}"
    assert structlog.get_config()["processors"] is before, "configuration changed anyway"


def test_auto_picks_json_for_a_stream_that_is_not_a_terminal():
    stream = io.StringIO()
    rs.configure_logging(stream=stream)

    structlog.get_logger().info("hello", answer=42)

    event = json.loads(stream.getvalue())
    assert event.pop("timestamp").endswith("Z")
    assert event == {"event": "hello", "answer": 42, "level": "info"}


def test_the_timeout_line_shows_the_limit_that_fired(release: threading.Event):
    # The scanner's own rs.timeout(0.1) fired, or the run's 0.2 s deadline did: neither took
    # the executor's 30 s, and a line saying "timeout after 30s" sends people the wrong way.
    @rs.timeout(0.1)
    def inner_limit(state: Mapping[str, Any]) -> Found:
        release.wait()
        return []

    def run_deadline(state: Mapping[str, Any]) -> Found:
        release.wait()
        return []

    stream = io.StringIO()
    rs.configure_logging(format="console", stream=stream)

    rs.ScanExecutor(timeout_seconds=30.0).run([inner_limit], {})
    rs.ScanExecutor(timeout_seconds=30.0, deadline_seconds=0.2).run([run_deadline], {})

    lines = stream.getvalue().splitlines()
    assert "⏱ inner_limit: timeout after 0.1s" in lines
    assert "⏱ run_deadline: timeout after 0.2s" in lines


def test_another_fallback_gets_plain_escaped_text():
    seen: list[dict[str, Any]] = []

    def fallback(logger: Any, method: str, event: MutableMapping[str, Any]) -> str:
        seen.append(dict(event))
        return "rendered"

    renderer = rs.ScanConsoleRenderer(fallback)

    assert renderer(None, "info", {"event": "app.note", "detail": FORGED}) == "rendered"
    assert seen == [{"event": "app.note", "detail": SHOWN}]
    assert type(seen[0]["detail"]) is str
