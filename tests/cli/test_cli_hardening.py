"""`resilient-scan run` against what the world does to a command: hostile scanners,
odd values, closed pipes, old encodings, narrow terminals, colour settings.

Tests that depend on the process's real stdout (its encoding, a pipe that closes) run the
command in a child process.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from resilient_scan.cli import main
from tests.cli.support import clean_env, cli, unique_module, write_config

HOSTILE = r"""
import os
import time

import resilient_scan as rs

FORGED = "HTTP 500\n✓ payments: 12 candidates\x1b[2J\r\x9b31m"


class Nasty:
    def __str__(self):
        raise RuntimeError("no text for you")

    __repr__ = __str__


def forger(state):
    raise RuntimeError(FORGED)


def long_error(state):
    raise ValueError("x" * 5000)


def odd(state):
    candidate = {
        "ticker": "ODD",
        "context": FORGED,
        "score": float("nan"),
        "upside": float("inf"),
        "big": 10**5000,
        "nasty": Nasty(),
    }
    candidate["itself"] = candidate
    return [candidate]


def chatty(state):
    print("a scanner talking on stdout")
    return [{"ticker": "CHAT"}]


def quick(state):
    return [{"ticker": "FAST"}]


def slow(state):
    time.sleep(0.2)
    return [{"ticker": "SLOW"}]


def buggy(state):
    return {}["MSFT"]


def undecodable(state):
    name = os.fsdecode(b"/data/quotes-\xff.csv")  # a non-UTF-8 file name, as Linux gives it
    raise FileNotFoundError(f"cannot open {name}")
"""


@pytest.fixture
def hostile(tmp_path):
    yield from unique_module(tmp_path, HOSTILE, "cli_hostile")


def config_of(tmp_path: Path, module: str, *scanners: str) -> Path:
    names = ", ".join(f'"{module}:{scanner}"' for scanner in scanners)
    return write_config(
        tmp_path,
        f"""
        [resilient_scan]
        scanners = [{names}]

        [discovery.scanner_execution]
        timeout_seconds = 10
        """,
    )


def text_of(raw: bytes, encoding: str = "utf-8") -> str:
    return raw.decode(encoding)


# -- 7.8: nothing a scanner says can forge a line or drive the terminal -------------------------


def test_control_characters_are_escaped_in_lines_table_and_candidates(tmp_path, hostile, capsys):
    assert main(["run", str(config_of(tmp_path, hostile, "forger", "odd"))]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out  # no escape sequence reaches the terminal
    assert "\r" not in out
    assert "\x9b" not in out
    forged = [line for line in out.splitlines() if line.startswith("✓ payments")]
    assert forged == []  # no line of its own
    escaped = r"HTTP 500\n✓ payments: 12 candidates\x1b[2J\r\x9b31m"
    assert f"⚠ forger: RuntimeError: {escaped}" in out  # the live line
    (row,) = [line for line in out.splitlines() if line.startswith("  ⚠ forger ")]
    assert row.endswith(f"RuntimeError: {escaped}")  # the table's notes
    assert f"[odd] {escaped}" in out  # the candidate line


def test_long_messages_are_capped_on_the_console(tmp_path, hostile, capsys):
    assert main(["run", str(config_of(tmp_path, hostile, "long_error"))]) == 1
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if line.startswith("⚠ long_error")]
    # "ValueError: " and 5,000 x: capped at 500 characters, saying how many more there were.
    assert line == f"⚠ long_error: ValueError: {'x' * 488}… (+4512 chars)"


# -- 7.16: the report is always written, and always valid JSON ----------------------------------


def strict_json(text: str) -> object:
    def refuse(constant: str) -> object:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_the_report_of_odd_candidates_is_valid_json(tmp_path, hostile, capsys):
    report_file = tmp_path / "report.json"
    argv = ["run", str(config_of(tmp_path, hostile, "odd")), "--json", "--output", str(report_file)]
    assert main(argv) == 0
    printed = strict_json(capsys.readouterr().out)
    written = strict_json(report_file.read_text(encoding="utf-8"))
    assert printed == written
    assert isinstance(written, dict)
    (candidate,) = written["candidates"]
    assert candidate["score"] is None  # NaN
    assert candidate["upside"] is None  # inf
    assert candidate["big"] == "<integer of about 5001 digits>"
    assert candidate["nasty"] == "<unprintable Nasty>"
    inner = candidate["itself"]  # the executor copied the candidate once; then the cycle
    while isinstance(inner, dict):
        inner = inner["itself"]
    assert inner == "<circular reference to dict>"
    assert candidate["context"].startswith("HTTP 500\n✓ payments")  # JSON escapes it itself


def test_a_scanners_print_does_not_corrupt_the_json_on_stdout(tmp_path, hostile, capsys):
    # 14.4: print() inside a scanner landed in the middle of the JSON report.
    assert main(["run", str(config_of(tmp_path, hostile, "chatty", "quick")), "--json"]) == 0
    captured = capsys.readouterr()
    report = strict_json(captured.out)
    assert isinstance(report, dict)
    assert [c["ticker"] for c in report["candidates"]] == ["CHAT", "FAST"]
    assert "a scanner talking on stdout" in captured.err


def test_a_state_factory_that_exits_is_an_error(tmp_path, hostile):
    # 7.16: state = "builtins:exit" ended the command with status 0, no output, nothing run.
    config = write_config(
        tmp_path,
        f'[resilient_scan]\nscanners = ["{hostile}:quick"]\nstate = "builtins:exit"\n',
    )
    done = cli("run", config, cwd=tmp_path)
    err = text_of(done.stderr)
    assert done.returncode == 2, err
    assert "Traceback" not in err
    assert (
        f"{config}: resilient_scan.state: builtins:exit() raised SystemExit(None): it tried to end"
        " the program instead of returning the state"
    ) in err


# -- --traceback ---------------------------------------------------------------------------------


def test_traceback_flag_shows_where_a_scanner_raised(tmp_path, hostile, capsys):
    config = str(config_of(tmp_path, hostile, "buggy", "quick"))
    assert main(["run", config]) == 1
    assert "Traceback" not in capsys.readouterr().out
    assert main(["run", config, "--traceback"]) == 1
    out = capsys.readouterr().out
    assert "── Traceback of buggy " in out
    assert "Traceback (most recent call last):" in out
    assert 'return {}["MSFT"]' in out  # the scanner's own line
    assert out.rstrip().endswith("KeyError: 'MSFT'")
    assert "Traceback of quick" not in out


# -- pipes, encodings, terminals -----------------------------------------------------------------


def read_first_line_and_close(args: list[str], cwd: Path) -> tuple[bytes, int, bytes]:
    """Run the command, read one line of its stdout, close the pipe, as `| head -1` does."""
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and command
        [sys.executable, "-m", "resilient_scan.cli", *args],
        cwd=cwd,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    with process:
        assert process.stdout is not None
        assert process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()
        err = process.stderr.read()
        return first, process.wait(timeout=60), err


def test_run_piped_into_head_exits_quietly(tmp_path, hostile):
    # 7.16: the lines written after the reader left raised BrokenPipeError, with a traceback.
    config = config_of(tmp_path, hostile, "quick", "slow")
    first, status, err = read_first_line_and_close(["run", str(config)], tmp_path)
    assert first == b"Running 2 scanners concurrently (max 8 workers)...\n"
    assert err == b""
    assert status == 141  # as a command killed by SIGPIPE reports it


def test_a_stdout_that_cannot_encode_the_marks_gets_ascii_ones(
    tmp_path, hostile, monkeypatch, capsys
):
    # 14.2: a cp1252 stdout crashed `run` with UnicodeEncodeError from inside executor.run().
    raw = io.BytesIO()
    stdout = io.TextIOWrapper(raw, encoding="cp1252", write_through=True)
    monkeypatch.setattr(sys, "stdout", stdout)

    assert main(["run", str(config_of(tmp_path, hostile, "quick", "buggy"))]) == 1

    out = raw.getvalue().decode("cp1252")
    assert "+ quick: 1 candidate" in out
    assert "! buggy: KeyError: 'MSFT'" in out
    assert "Traceback" not in capsys.readouterr().err


def test_force_color_colours_the_statuses_and_no_color_wins(tmp_path, hostile, monkeypatch, capsys):
    config = str(config_of(tmp_path, hostile, "quick", "buggy"))
    monkeypatch.setenv("FORCE_COLOR", "1")  # into a pipe (capsys is no terminal)
    main(["run", config])
    coloured = capsys.readouterr().out
    assert "\x1b[32m✓\x1b[0m quick: 1 candidate" in coloured
    assert "\x1b[31m⚠\x1b[0m buggy" in coloured
    monkeypatch.setenv("NO_COLOR", "1")
    main(["run", config])
    plain = capsys.readouterr().out
    assert "\x1b[" not in plain
    assert "✓ quick: 1 candidate" in plain


def test_at_40_columns_nothing_is_wider_and_no_word_is_cut(tmp_path, hostile, monkeypatch, capsys):
    # 14.2: at 40 columns the 75-column rules and the table wrapped mid-word.
    monkeypatch.setenv("COLUMNS", "40")
    main(["run", str(config_of(tmp_path, hostile, "quick", "buggy", "long_error"))])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 40
    words = set(out.split())
    for word in ("long_error", "KeyError:", "'MSFT'", "candidate", "quick:", "attempt"):
        assert word in words, word
    assert re.search(r"^✓ quick$", out, re.MULTILINE)  # the narrow table: a block each


def test_an_undecodable_file_name_in_an_error_costs_a_character_not_the_page(tmp_path, hostile):
    config = config_of(tmp_path, hostile, "undecodable", "quick")
    page, output = tmp_path / "page.html", tmp_path / "report.json"

    done = main(["run", str(config), "--html", str(page), "--output", str(output)])

    assert done == 1  # the scanner failed (--fail-on error), and nothing else did
    html_text = page.read_text(encoding="utf-8")
    assert "cannot open /data/quotes-" in html_text
    assert "FAST" in html_text  # the rest of the run is on the page
    report = json.loads(output.read_text(encoding="utf-8"))
    assert report["counts"]["error"] == 1
