"""The demo's settings: one object, so tests can run the whole demo faster."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class DemoSettings:
    """Latencies, limits and layer settings of one demo run.

    Attributes:
        latency_scale: Multiplies every simulated endpoint's latency.
        retry_after: Seconds the rate-limited endpoint asks for in ``Retry-After``.
        rate_limited_requests: First requests that the rate-limited endpoint answers with 429.
        flaky_failures: First requests that the flaky endpoint answers with 500.
        timeout_seconds: The executor's limit for each scanner.
        slow_timeout_seconds: slow_scanner's own limit, set per scanner in the config (it
            calls the endpoint that hangs).
        attempt_timeout: The timeout layer's limit for one HTTP attempt.
        client_timeout: The most any one HTTP request may wait (also bounded by the time
            the attempt has left).
        attempts: Calls the retry layer makes in all.
        backoff: The retry layer's first backoff, in seconds.
        cache_ttl: Seconds a successful API answer stays cached.
        fail_max: Consecutive failures that open a service's breaker.
        reset_timeout: Seconds an open breaker stays open.
        max_workers: The most scanners running at once.
    """

    latency_scale: float = 1.0
    retry_after: int = 1
    rate_limited_requests: int = 1
    flaky_failures: int = 2
    timeout_seconds: float = 3.0
    slow_timeout_seconds: float = 1.0
    attempt_timeout: float = 1.5
    client_timeout: float = 2.0
    attempts: int = 3
    backoff: float = 0.1
    cache_ttl: float = 300.0
    fail_max: int = 3
    reset_timeout: float = 60.0
    max_workers: int = 8

    @classmethod
    def quick(cls) -> DemoSettings:
        """Settings for tests and ``--quick``: a quarter of the latencies, shorter limits.

        ``Retry-After`` stays 1 s: HTTP only has whole seconds, and the demo proves the
        retry waited for it.
        """
        return replace(
            cls(),
            latency_scale=0.25,
            timeout_seconds=2.0,
            slow_timeout_seconds=0.5,
            attempt_timeout=0.75,
            backoff=0.05,
        )

    def config(self) -> dict[str, Any]:
        """Return the executor's config in the established application shape."""
        return {
            "discovery": {
                "scanner_execution": {
                    "concurrent": True,
                    "max_workers": self.max_workers,
                    "timeout_seconds": self.timeout_seconds,
                },
                "scanners": {
                    "slow_scanner": {"enabled": True, "timeout_seconds": self.slow_timeout_seconds},
                },
                "pipelines": {
                    "momentum": {"enabled": True},
                    "smart_money": {"enabled": True},
                    "catalysts": {"enabled": True},
                    "alternative": {"enabled": True},
                },
            }
        }
