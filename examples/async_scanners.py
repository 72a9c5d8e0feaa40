"""Async scanners, and async and sync scanners in one run, against a local API.

``async def`` scanners run as tasks of one event loop; at its limit a task is cancelled for
real, so a hung request leaves nothing running. A synchronous scanner in the same run goes
to a daemon thread, as always. The report, statuses and merge are those of any run.

The services are `resilient_scan.testing.ApiSimulator` on 127.0.0.1 (real sockets); the
async scanners talk HTTP through asyncio streams (in an application: ``httpx.AsyncClient``).
The example checks its outcome and exits with status 1 if it is not what it expects.

Run it:  python examples/async_scanners.py
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import resilient_scan as rs
from resilient_scan.testing import ApiSimulator


class ApiError(Exception):
    """The service answered with an HTTP error."""

    def __init__(self, path: str, status: int) -> None:
        """Describe the failed request."""
        super().__init__(f"HTTP {status} from {path}")
        self.status = status


async def get_json(base: str, path: str) -> dict[str, Any]:
    """GET *path* and decode its JSON (a minimal HTTP/1.0 client on asyncio streams)."""
    url = urlsplit(base)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        raw = await reader.read()  # an HTTP/1.0 server closes the connection when done
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    if status != 200:  # noqa: PLR2004 - HTTP OK
        raise ApiError(path, status)
    answer: dict[str, Any] = json.loads(body)
    return answer


def scanners_for(base: str) -> list[Any]:
    """The scanners of this example, calling the API at *base*."""

    @rs.scanner(pipeline="momentum")
    async def market_movers(state: dict[str, Any]) -> list[dict[str, Any]]:
        data = await get_json(base, "/v1/market/movers")
        return [
            {"ticker": row["symbol"], "context": f"{row['change_pct']:+.1f}%", "priority": "high"}
            for row in data["movers"]
            if abs(row["change_pct"]) >= 6  # noqa: PLR2004 - the example's threshold
        ]

    @rs.scanner(pipeline="events")
    async def earnings(state: dict[str, Any]) -> list[dict[str, Any]]:
        data = await get_json(base, "/v1/earnings/calendar")
        return [{"ticker": event["symbol"], "priority": "medium"} for event in data["events"]]

    @rs.scanner(pipeline="alt")
    async def alt_signals(state: dict[str, Any]) -> list[dict[str, Any]]:
        await get_json(base, "/v1/altdata/signals")  # this service never answers
        return []

    @rs.scanner(pipeline="edge")
    async def options_flow(state: dict[str, Any]) -> list[dict[str, Any]]:
        await get_json(base, "/v1/options/flow")  # this service is down: HTTP 503
        return []

    @rs.scanner(pipeline="edge")
    def insider_buying(state: dict[str, Any]) -> list[dict[str, Any]]:
        """A synchronous scanner in the same run: it runs on a daemon thread."""
        with urllib.request.urlopen(f"{base}/v1/insider/transactions", timeout=5) as answer:  # noqa: S310 - our local simulator
            data = json.load(answer)
        return [{"ticker": row["symbol"], "context": row["title"]} for row in data["filings"]]

    return [market_movers, earnings, alt_signals, options_flow, insider_buying]


EXPECTED = {
    "market_movers": "ok",
    "earnings": "ok",
    "alt_signals": "timeout",
    "options_flow": "error",
    "insider_buying": "ok",
}


def show(title: str, report: rs.ScanReport) -> list[str]:
    """Print *report*; return what is wrong with it."""
    print(f"{title}: {report.duration:.2f} s")
    for result in report.results:
        print(f"  {result.name:15} {result.status.value:8} {result.error or ''}")
    tickers = [candidate["ticker"] for candidate in report.candidates]
    print(f"  candidates: {', '.join(tickers)}")
    problems = []
    statuses = {result.name: result.status.value for result in report.results}
    if statuses != EXPECTED:
        problems.append(f"{title}: statuses {statuses} != {EXPECTED}")
    if "PLTR" not in tickers or "NVDA" not in tickers:
        problems.append(f"{title}: expected PLTR and NVDA among {tickers}")
    return problems


async def from_async_code(executor: rs.ScanExecutor, base: str) -> rs.ScanReport:
    """An application already inside an event loop awaits the run."""
    return await executor.arun(scanners_for(base), {"trade_date": "2025-06-13"})


def main() -> int:
    """Run the scanners from sync code and from async code; return 1 if anything is off."""
    logging.basicConfig(level=logging.ERROR)  # the failing scanners' warnings stay quiet here
    problems = []
    with ApiSimulator(latency_scale=0.1) as api:
        executor = rs.ScanExecutor(timeout_seconds=0.25)
        started = time.monotonic()
        report = executor.run(scanners_for(api.url), {"trade_date": "2025-06-13"})
        problems += show("executor.run() from sync code", report)
        if time.monotonic() - started > 0.25 + 0.5:
            problems.append("the run did not end at the hung scanner's limit")
        report = asyncio.run(from_async_code(executor, api.url))
        problems += show("await executor.arun() from async code", report)
    if rs.abandoned_threads():
        problems.append(f"{rs.abandoned_threads()} abandoned threads: async scanners leave none")
    for problem in problems:
        print(f"WRONG: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
