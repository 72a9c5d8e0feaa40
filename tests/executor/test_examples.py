"""The executor's examples run as scripts and check their own outcome (exit status 0)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and example
        [sys.executable, str(EXAMPLES / name)],
        cwd=EXAMPLES.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_seed_port_runs_seed_style_classes_and_gets_the_seeds_merge():
    done = run_example("seed_port.py")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "NVDA  high     insider_buying, earnings_calendar, social_feed" in done.stdout
    degraded = "degraded: 1 failed call, circuit options-api open"
    assert f"options_flow       ok       0 candidates · {degraded}" in done.stdout
    assert "reddit_dd          skipped" in done.stdout


def test_async_scanners_example():
    done = run_example("async_scanners.py")

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("alt_signals     timeout") == 2
    assert "await executor.arun() from async code" in done.stdout
