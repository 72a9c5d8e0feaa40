"""Seed-style scanner classes, run unchanged through ``ScanExecutor.from_config``.

The discovery pipeline this library grew from writes scanners as classes: a ``BaseScanner``
whose ``__init__(self, config)`` takes the *whole* application config and reads its own
table, ``config["discovery"]["scanners"][self.name]``; a ``scan_with_validation`` that
wraps ``scan`` (dropping malformed candidates, swallowing errors); a registry of classes;
and one config dict. This example keeps all of that as such code is written, and only
replaces the ``ThreadPoolExecutor`` loop with::

    executor = rs.ScanExecutor.from_config(CONFIG, scan_method="scan_with_validation")
    report = executor.run(REGISTRY.all(), state)

Then it checks the merged candidates (the seed's ``all_sources`` / ``all_contexts``) and the
statuses, and exits with status 1 if anything differs from what it expects.

Run it:  python examples/seed_port.py
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import resilient_scan as rs

log = logging.getLogger("seed_port")

# -- the application's code, as written for the seed system ------------------------------------


class ScannerRegistry:
    """The application's own registry of scanner classes."""

    def __init__(self) -> None:
        """Start empty."""
        self.classes: dict[str, type[BaseScanner]] = {}

    def register(self, cls: type[BaseScanner]) -> type[BaseScanner]:
        """Add *cls* under its name (a class decorator)."""
        self.classes[cls.name] = cls
        return cls

    def all(self) -> list[type[BaseScanner]]:
        """Every registered class."""
        return list(self.classes.values())


REGISTRY = ScannerRegistry()


class BaseScanner:
    """What every scanner of the application shares: it reads its own settings itself."""

    name: str = ""
    pipeline: str = ""

    def __init__(self, config: dict[str, Any]) -> None:
        """Take the whole application config; keep this scanner's own table."""
        self.config = config
        self.scanner_config = config.get("discovery", {}).get("scanners", {}).get(self.name, {})
        self.limit = self.scanner_config.get("limit", 10)

    def scan(self, state: dict[str, Any]) -> list[dict[str, Any]]:
        """Return candidates: dicts with ticker, source, context and priority."""
        raise NotImplementedError

    def scan_with_validation(self, state: dict[str, Any]) -> list[dict[str, Any]]:
        """Scan, keeping only well-formed candidates; a failure logs and returns nothing."""
        try:
            candidates = self.scan(state)
        except Exception:
            log.exception("%s failed", self.name)
            return []
        required = ("ticker", "source", "context", "priority")
        return [c for c in candidates if isinstance(c, dict) and all(k in c for k in required)]


# A stand-in for the market-data services the scanners call (in memory, so this runs anywhere).
INSIDER_TRADES: list[dict[str, Any]] = [
    {"ticker": "NVDA", "insider": "CFO", "value": 250_000},
    {"ticker": "PLTR", "insider": "Director", "value": 60_000},
    {"ticker": "AMD", "insider": "CEO", "value": 900_000},
    {"ticker": "SOFI", "insider": "Director", "value": 30_000},
    {"ticker": "IBM", "insider": "VP", "value": 20_000},
]
EARNINGS_IN_DAYS = {"NVDA": 2, "CRM": 5, "ORCL": 6, "MSFT": 12}
CRITICAL_VALUE = 500_000


@REGISTRY.register
class InsiderBuyingScanner(BaseScanner):
    """Insider purchases above a minimum value."""

    name = "insider_buying"
    pipeline = "edge"

    def scan(self, state: dict[str, Any]) -> list[dict[str, Any]]:
        """Find the purchases; log each lookup in the state's tool log."""
        minimum = self.scanner_config.get("min_transaction_value", 25_000)
        found = []
        for trade in INSIDER_TRADES:
            if trade["value"] < minimum:
                continue
            priority = "critical" if trade["value"] >= CRITICAL_VALUE else "high"
            found.append(
                {
                    "ticker": trade["ticker"],
                    "source": self.name,
                    "context": f"{trade['insider']} bought ${trade['value']:,}",
                    "priority": priority,
                }
            )
            state["tool_logs"].append({"tool": "insider_trades", "ticker": trade["ticker"]})
        return found[: self.limit]


@REGISTRY.register
class EarningsCalendarScanner(BaseScanner):
    """Earnings reports within a window of days."""

    name = "earnings_calendar"
    pipeline = "events"

    def scan(self, state: dict[str, Any]) -> list[dict[str, Any]]:
        """Find the reports inside the configured window."""
        window = self.scanner_config.get("max_days_until_earnings", 3)
        return [
            {
                "ticker": ticker,
                "source": self.name,
                "context": f"earnings in {days} days",
                "priority": "medium",
            }
            for ticker, days in EARNINGS_IN_DAYS.items()
            if days <= window
        ][: self.limit]


@REGISTRY.register
class MalformedFeedScanner(BaseScanner):
    """Returns one well-formed candidate and one without a context: validation drops it."""

    name = "social_feed"
    pipeline = "sentiment"

    def scan(self, state: dict[str, Any]) -> list[dict[str, Any]]:
        """Return what the feed gave, malformed entry included."""
        return [
            {"ticker": "NVDA", "source": self.name, "context": "trending", "priority": "low"},
            {"ticker": "GME", "source": self.name, "priority": "low"},
        ]


@REGISTRY.register
class OptionsFlowScanner(BaseScanner):
    """Its service is down; like every seed scanner, it swallows the error."""

    name = "options_flow"
    pipeline = "edge"

    def scan(self, state: dict[str, Any]) -> list[dict[str, Any]]:
        """Ask the options service, which is down."""
        return fetch_unusual_options(self.scanner_config.get("min_premium", 1e6))


@rs.resilient(
    retry={"attempts": 3, "backoff": 0.001}, breaker={"fail_max": 2, "name": "options-api"}
)
def fetch_unusual_options(min_premium: float) -> list[dict[str, Any]]:
    """The options service's client: it fails, retried and guarded by a breaker."""
    raise ConnectionError("options API unreachable")


@REGISTRY.register
class DisabledScanner(BaseScanner):
    """Switched off in the config."""

    name = "reddit_dd"
    pipeline = "sentiment"

    def scan(self, state: dict[str, Any]) -> list[dict[str, Any]]:
        """Never called."""
        raise AssertionError("disabled in the config: never built, never run")


# The application's config dict, in the seed's shape.
CONFIG: dict[str, Any] = {
    "llm_provider": "openai",
    "discovery": {
        "max_candidates_to_analyze": 100,
        "scanner_execution": {"concurrent": True, "max_workers": 8, "timeout_seconds": 30},
        "scanners": {
            "insider_buying": {"enabled": True, "limit": 4, "min_transaction_value": 50_000},
            "earnings_calendar": {"enabled": True, "max_days_until_earnings": 7},
            "social_feed": {"enabled": True},
            "options_flow": {"enabled": True, "min_premium": 500_000},
            "reddit_dd": {"enabled": False},
        },
        "pipelines": {"edge": {"enabled": True}, "events": {"enabled": True}},
    },
}

# -- the port: the executor instead of the ThreadPoolExecutor loop ------------------------------

EXPECTED_CANDIDATES = [
    ("AMD", "critical", ["insider_buying"]),
    ("NVDA", "high", ["insider_buying", "earnings_calendar", "social_feed"]),
    ("PLTR", "high", ["insider_buying"]),
    ("CRM", "medium", ["earnings_calendar"]),
    ("ORCL", "medium", ["earnings_calendar"]),
]
EXPECTED_STATUSES = {
    "insider_buying": "ok",
    "earnings_calendar": "ok",
    "social_feed": "ok",
    "options_flow": "ok",
    "reddit_dd": "skipped",
}


def main() -> int:
    """Run the registry's scanners with the seed's config; return 1 if the outcome is wrong."""
    logging.basicConfig(level=logging.CRITICAL)  # the scanners' own error logs stay quiet here
    executor = rs.ScanExecutor.from_config(CONFIG, scan_method="scan_with_validation")
    state: dict[str, Any] = {"trade_date": "2025-06-13", "tool_logs": []}
    report = executor.run(REGISTRY.all(), state)

    for result in report.results:
        found = len(result.candidates)
        noun = "candidate" if found == 1 else "candidates"
        line = f"{result.name:18} {result.status.value:8} {found} {noun}"
        if result.degraded:
            line += f" · degraded: {result.degraded_reason}"
        print(line)
    print("Merged candidates, best first:")
    for candidate in report.candidates:
        sources = ", ".join(candidate["all_sources"])
        print(f"  {candidate['ticker']:5} {candidate['priority']:8} {sources}")

    problems = []
    got = [(c["ticker"], c["priority"], c["all_sources"]) for c in report.candidates]
    if got != EXPECTED_CANDIDATES:
        problems.append(f"merged candidates {got} != {EXPECTED_CANDIDATES}")
    statuses = {result.name: result.status.value for result in report.results}
    if statuses != EXPECTED_STATUSES:
        problems.append(f"statuses {statuses} != {EXPECTED_STATUSES}")
    if not report.result("options_flow").degraded:
        problems.append("options_flow swallowed its failures but is not marked degraded")
    logged = [entry["ticker"] for entry in report.result("insider_buying").tool_logs]
    if logged != ["NVDA", "PLTR", "AMD"] or state["tool_logs"]:
        problems.append(f"tool logs {logged}, caller's state {state['tool_logs']}")
    for problem in problems:
        print(f"WRONG: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
