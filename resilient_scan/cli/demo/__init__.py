"""``resilient-scan demo``: eight scanners against the API simulator, every layer at work.

The simulator is `resilient_scan.testing.ApiSimulator`; the scanners call it over HTTP
through one `resilient` client per service (`scanners`).
"""

from __future__ import annotations

from .run import DEFAULT_PAGE, DemoRun, demo_command, run_demo, story
from .scanners import HEALTHY, ApiError, DemoScanners, build_scanners, service_client
from .settings import DemoSettings

__all__ = [
    "DEFAULT_PAGE",
    "HEALTHY",
    "ApiError",
    "DemoRun",
    "DemoScanners",
    "DemoSettings",
    "build_scanners",
    "demo_command",
    "run_demo",
    "service_client",
    "story",
]
