"""Run a scan with hung scanners, print how long run() took, and exit.

Used by tests/test_executor_timeouts.py: the interpreter must exit promptly after run()
returns, although two scanners are still sleeping (one directly, one inside rs.timeout).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from typing import Any

import structlog

import resilient_scan as rs

HANG_SECONDS = 60.0


def hung(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    time.sleep(HANG_SECONDS)
    return []


@rs.timeout(0.1)
def hung_inside_timeout(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    time.sleep(HANG_SECONDS)
    return []


def quick(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"ticker": "ok"}]


def main() -> None:
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    started = time.monotonic()
    report = rs.ScanExecutor(timeout_seconds=0.2).run([hung, hung_inside_timeout, quick], {})
    returned_after = time.monotonic() - started
    sys.stdout.write(
        json.dumps(
            {
                "returned_after": returned_after,
                "statuses": [str(result.status) for result in report.results],
                "abandoned": report.abandoned,
            }
        )
        + "\n"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
