"""Decorate a function that calls a flaky service with ``rs.resilient``.

The service here is `resilient_scan.testing.ApiSimulator`, started on a free local port:
its ``/v1/social/trending`` endpoint fails with HTTP 500 twice, then answers. The retry
layer gets past the failures (you see each retry on stderr), and the cache answers the
second call without a request. Every layer is optional; the order is fixed: cache, retry, breaker,
timeout, then your function.

Run it:  python examples/decorate_a_function.py
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import resilient_scan as rs
from resilient_scan.testing import ApiSimulator

# Local requests must not go through a proxy named in the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
PATH = "/v1/social/trending"


def main() -> None:
    """Call the flaky endpoint twice through the layers and print what happened."""
    rs.configure_logging(format="console")  # an application configures logging; stderr

    with ApiSimulator(latency_scale=0.2, flaky_failures=2) as api:

        @rs.resilient(
            cache=60,  # answer repeated calls from memory for 60 s
            retry={"attempts": 4, "backoff": 0.1},  # 0.1 s, 0.2 s, 0.4 s, with jitter
            breaker={"fail_max": 5, "reset_timeout": 30},  # stop calling a dead service
            timeout=2.0,  # the limit of each attempt
        )
        def get_json(path: str) -> dict[str, Any]:
            # urllib's HTTPError carries the response headers, so a Retry-After is honoured.
            # rs.time_remaining(): what this attempt has left, so no request outlives it.
            with OPENER.open(api.url + path, timeout=rs.time_remaining() or 2.0) as response:
                body: dict[str, Any] = json.load(response)
                return body

        print(get_json.describe())
        first = get_json(PATH)
        tickers = [row["symbol"] for row in first["trending"] if row["symbol"]]
        print(f"first call: {', '.join(tickers)} after {api.requests(PATH)} requests")
        get_json(PATH)
        info = get_json.cache_info()  # None only for a function without a cache layer
        hits = info.hits if info is not None else 0
        print(
            f"second call: answered from the cache ({hits} hit),"
            f" still {api.requests(PATH)} requests in all"
        )


if __name__ == "__main__":
    main()
