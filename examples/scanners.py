"""Scanners for ``examples/pipeline.toml``: ``resilient-scan run examples/pipeline.toml``.

They read a small market snapshot from the state, as scanners that share data fetched once
per run do. ``insider_buys`` calls a flaky "filings API" through ``rs.resilient`` (it fails
once, the retry gets past it); ``slow_fundamentals`` stalls like a hung API, and the
executor gives up on it at the ``timeout_seconds`` the config gives it;
``crypto_correlation`` belongs to a pipeline the config disables.

The config names ``scanners:registry`` and ``scanners:initial_state``; the CLI imports them
from the config file's directory.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from typing import Any

import resilient_scan as rs

registry = rs.ScannerRegistry()

_filings_calls = itertools.count(1)


def initial_state() -> dict[str, Any]:
    """Return the state every scanner gets (each sees its own copy-on-write view)."""
    return {
        "as_of": "2025-06-13",
        "quotes": {
            "NVDA": {"price": 131.2, "prev_close": 124.1, "volume": 412e6, "avg_volume": 238e6},
            "PLTR": {"price": 27.9, "prev_close": 26.3, "volume": 98e6, "avg_volume": 64e6},
            "KO": {"price": 62.3, "prev_close": 62.1, "volume": 11e6, "avg_volume": 12e6},
            "DVN": {"price": 33.8, "prev_close": 33.5, "volume": 21e6, "avg_volume": 8e6},
        },
        "tool_logs": [],
    }


@registry.register(pipeline="momentum")
def gap_ups(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Stocks that opened well above yesterday's close."""
    time.sleep(0.1)  # stands in for a quote request
    found = []
    for ticker, quote in state["quotes"].items():
        gap = quote["price"] / quote["prev_close"] - 1
        if gap >= 0.03:  # noqa: PLR2004
            found.append(
                {
                    "ticker": ticker,
                    "context": f"up {gap:.1%} from yesterday's close",
                    "priority": "high" if gap >= 0.05 else "medium",  # noqa: PLR2004
                    "gap_pct": round(gap * 100, 1),
                }
            )
    state["tool_logs"].append({"scanner": "gap_ups", "quotes_checked": len(state["quotes"])})
    return found


@registry.register(pipeline="momentum")
def volume_spikes(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Stocks trading at twice their average volume or more."""
    time.sleep(0.15)
    return [
        {
            "ticker": ticker,
            "context": f"{quote['volume'] / quote['avg_volume']:.1f}x average volume",
            "priority": "medium",
        }
        for ticker, quote in state["quotes"].items()
        if quote["volume"] >= 2 * quote["avg_volume"]
    ]


@rs.resilient(cache=300, retry={"attempts": 3, "backoff": 0.05}, timeout=1.0)
def fetch_insider_filings(as_of: str) -> list[dict[str, Any]]:
    """The "filings API": resets the connection on its first call, like real APIs do."""
    time.sleep(0.1)
    if next(_filings_calls) == 1:
        raise ConnectionResetError("filings API reset the connection")
    return [
        {"symbol": "PLTR", "insider": "CEO", "value": 6_850_000, "filed": as_of},
        {"symbol": "KO", "insider": "CEO", "value": 747_600, "filed": as_of},
    ]


@registry.register(pipeline="smart_money")
def insider_buys(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Insider purchases over $500k, from the filings API."""
    return [
        {
            "ticker": filing["symbol"],
            "context": f"{filing['insider']} bought ${filing['value'] / 1e6:.1f}M",
            "priority": "high" if filing["value"] >= 5e6 else "medium",  # noqa: PLR2004
        }
        for filing in fetch_insider_filings(state["as_of"])
        if filing["value"] >= 500_000  # noqa: PLR2004
    ]


@registry.register(pipeline="fundamentals")
def slow_fundamentals(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Calls an API that stalls: the executor times it out and moves on."""
    time.sleep(5)  # a hung request; its daemon thread never holds up the exit
    return []


@registry.register(pipeline="experimental")
def crypto_correlation(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Not run: the config disables the experimental pipeline."""
    return [{"ticker": "COIN", "context": "tracks BTC", "priority": "low"}]
