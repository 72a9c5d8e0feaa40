"""JSON logs in production: one JSON object per line, ready for any log pipeline.

An application calls ``rs.configure_logging(format="json")`` once at start-up (a library
never configures logging). Every event then carries its level and an ISO timestamp, plus
the context bound with ``structlog.contextvars``: your own (a run id here) and the
executor's (``scanner`` and ``pipeline`` on every event a scanner's layers log, even on
their worker threads).

Run it:  python examples/json_logs.py | jq .
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import structlog

import resilient_scan as rs


@rs.scanner(pipeline="momentum")
def premarket_gappers(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A scanner that finds something."""
    return [{"ticker": "nvda", "context": "gapping up 4.2% premarket", "priority": "high"}]


@rs.scanner(pipeline="sentiment")
@rs.resilient(retry={"attempts": 2, "backoff": 0.05})
def social_feed(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A scanner whose service is unreachable: one retry, then status "error"."""
    raise ConnectionRefusedError("social feed unreachable")


def main() -> None:
    """Run two scanners with JSON logs on stdout."""
    rs.configure_logging(format="json", stream=sys.stdout)
    structlog.contextvars.bind_contextvars(run_id="premarket-2025-06-13")
    log = structlog.get_logger("app")

    report = rs.ScanExecutor(timeout_seconds=5).run([premarket_gappers, social_feed])
    log.info(
        "app.report",
        candidates=[candidate["ticker"] for candidate in report.candidates],
        failed=[result.name for result in report.failed],
    )


if __name__ == "__main__":
    main()
