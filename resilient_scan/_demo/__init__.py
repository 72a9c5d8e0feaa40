"""The ``resilient-scan demo``: an embedded API simulator and scanners that call it.

`ApiSimulator` is usable on its own (the examples use it as a stand-in for a real service).
"""

from __future__ import annotations

from .run import Check, run_demo
from .scanners import ApiError, DemoScanners, build_scanners, service_client
from .settings import DemoSettings
from .._simulator import ENDPOINTS, ApiSimulator, Endpoint

__all__ = [
    "ENDPOINTS",
    "ApiError",
    "ApiSimulator",
    "Check",
    "DemoScanners",
    "DemoSettings",
    "Endpoint",
    "build_scanners",
    "run_demo",
    "service_client",
]
