"""Helpers of the command-line tests: config files, scanner modules, the command itself."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path

_numbers = itertools.count(1)

SCANNERS = """
import resilient_scan as rs

registry = rs.ScannerRegistry()

@registry.register(pipeline="momentum")
def movers(state):
    state["tool_logs"].append({"scanner": "movers"})
    return [{"ticker": " nvda ", "context": "up 9%", "priority": "high"}]

@registry.register(pipeline="momentum")
def volume(state):
    return [{"ticker": "NVDA", "priority": "medium"}, {"ticker": "AMD", "priority": "low"}]

@rs.scanner(pipeline="experimental")
def experimental(state):
    return [{"ticker": "COIN"}]

def broken(state):
    raise RuntimeError("feed down")

def buggy(state):
    return {}["MSFT"]

def refused(state):
    raise rs.CircuitOpenError("feed", 30.0)

class Watchlist:
    name = "watchlist"

    def scan(self, state):
        return [{"ticker": t, "context": "on the watchlist"} for t in state["watchlist"]]

more = [experimental, Watchlist()]
number = 42

def make_state():
    return {"watchlist": ["TSLA"], "tool_logs": []}

STATE = {"watchlist": ["AAPL"], "tool_logs": []}

def bad_state():
    raise ValueError("no database")
"""


def unique_module(tmp_path: Path, source: str, stem: str = "cli_scanners") -> Iterator[str]:
    """Write *source* as a module under a name no other test uses; forget it afterwards."""
    name = f"{stem}_{next(_numbers)}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    yield name
    sys.modules.pop(name, None)


def write_config(tmp_path: Path, body: str, name: str = "pipeline.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def good_config(tmp_path: Path, module: str, extra: str = "") -> Path:
    return write_config(
        tmp_path,
        f"""
        [resilient_scan]
        scanners = ["{module}:registry", "{module}:more"]
        state = "{module}:make_state"

        [discovery.scanner_execution]
        concurrent = true
        max_workers = 4
        timeout_seconds = 5

        [discovery.scanners.movers]
        enabled = true

        [discovery.pipelines.experimental]
        enabled = false
        """
        + textwrap.dedent(extra),
    )


def clean_env(**changes: str | None) -> dict[str, str]:
    """The environment for a child process: no proxies, no colour settings, *changes*."""
    drop = ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "TERM", "PYTHONIOENCODING")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.lower().endswith("_proxy") and key not in drop
    }
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def cli(
    *args: str | Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``resilient-scan ARGS`` in a child process (bytes: the tests decode them)."""
    return subprocess.run(  # noqa: S603 - our own interpreter and command
        [sys.executable, "-m", "resilient_scan.cli", *map(str, args)],
        cwd=cwd,
        env=dict(env) if env is not None else clean_env(),
        capture_output=True,
        timeout=timeout,
        check=False,
    )
