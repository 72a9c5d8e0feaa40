"""Every example runs as a script, with the venv's python, and does what it says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_script(*args: str | Path, cwd: Path = EXAMPLES.parent) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.lower().endswith("_proxy")}
    return subprocess.run(  # noqa: S603 - our own interpreter and scripts
        [*map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def cli() -> list[str]:
    """The installed ``resilient-scan`` command, or the module if it is not on disk."""
    script = Path(sys.executable).with_name("resilient-scan")
    return [str(script)] if script.exists() else [sys.executable, "-m", "resilient_scan.cli"]


def test_decorate_a_function():
    done = run_script(sys.executable, EXAMPLES / "decorate_a_function.py")
    assert done.returncode == 0, done.stderr
    assert "first call: GME, NVDA, AMC, SMCI after 3 requests" in done.stdout
    assert "second call: answered from the cache (1 hit), still 3 requests in all" in done.stdout
    retries = [line for line in done.stderr.splitlines() if "↻" in line]
    assert len(retries) == 2  # the two HTTP 500s
    assert all("HTTP Error 500" in line for line in retries)


def test_run_from_config():
    done = run_script(sys.executable, EXAMPLES / "run_from_config.py")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "5 scanners in" in out
    assert "insider_buys         ok       attempts=2" in out
    assert "slow_fundamentals    timeout" in out
    assert "crypto_correlation   skipped" in out
    assert "PLTR  high    gap_ups, insider_buys" in out
    assert "Running 5 scanners concurrently (max 4 workers)..." in done.stderr


def test_pipeline_toml_runs_with_the_cli_from_any_directory(tmp_path):
    done = run_script(*cli(), "run", EXAMPLES / "pipeline.toml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "⏱ slow_fundamentals: timeout after 0.5s" in done.stdout
    assert "○ crypto_correlation: skipped" in done.stdout
    assert "4 candidates, best first:" in done.stdout

    done = run_script(*cli(), "run", EXAMPLES / "pipeline.toml", "--json", "--fail-on", "any")
    assert done.returncode == 1  # slow_fundamentals timed out
    report = json.loads(done.stdout)
    assert report["counts"] == {
        "ok": 3,
        "error": 0,
        "timeout": 1,
        "circuit_open": 0,
        "skipped": 1,
        "cancelled": 0,
    }


def test_json_logs():
    done = run_script(sys.executable, EXAMPLES / "json_logs.py")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert all(event["run_id"] == "premarket-2025-06-13" for event in events)
    assert all({"level", "timestamp"} <= event.keys() for event in events)
    finished = {e["scanner"]: e for e in events if e["event"] == "scanner.finished"}
    assert finished["premarket_gappers"]["status"] == "ok"
    assert finished["social_feed"]["status"] == "error"
    assert finished["social_feed"]["error"] == "ConnectionRefusedError: social feed unreachable"
    retry = next(e for e in events if e["event"] == "retry.scheduled")
    assert (retry["scanner"], retry["pipeline"]) == ("social_feed", "sentiment")
    assert events[-1]["event"] == "app.report"
    assert events[-1]["candidates"] == ["NVDA"]
