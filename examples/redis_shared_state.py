"""One breaker and one cache for several processes, through Redis.

Starts the API simulator, then 3 worker processes that each call its "down" endpoint
(HTTP 503) and its "movers" endpoint through the same policies backed by one Redis:

- the breaker opens for all of them after 3 failures in total, so the down API sees about
  3 requests (plus one in flight per process), not 3 per process;
- the movers result is stored in Redis by the first process that loads it, and served
  from there to the others.

Needs a Redis: ``REDIS_URL=redis://127.0.0.1:6379/0 python examples/redis_shared_state.py``
(default: that URL). Everything it writes is under the namespace ``example-<pid>``, which
it removes at the end.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import urllib.error
import urllib.request

import redis

import resilient_scan as rs
from resilient_scan.redis import RedisBackend
from resilient_scan.testing import ApiSimulator

DOWN = "/v1/options/flow"
MOVERS = "/v1/market/movers"


def fetch(url: str) -> str:
    """GET *url*; an HTTP error status raises."""
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - the local simulator
        body: bytes = answer.read()
        return body.decode()[:40]


def worker(redis_url: str, namespace: str, api: str) -> str:
    """One process: 5 calls to the down endpoint, 3 to movers, through shared policies."""
    rs.instrumentation.set_hooks([])  # keep the output to the summary below
    shared = RedisBackend(redis_url, namespace=namespace)
    down = rs.circuit_breaker(fail_max=3, reset_timeout=30, name="options", storage=shared)(fetch)
    movers = rs.ttl_cache(ttl=60, storage=shared)(fetch)
    seen = []
    for _ in range(5):
        try:
            down(api + DOWN)
        except rs.CircuitOpenError:  # noqa: PERF203 - each outcome is shown
            seen.append("rejected")
        except urllib.error.HTTPError as exc:
            seen.append(f"HTTP {exc.code}")
    seen.extend(["movers"] * len([movers(api + MOVERS) for _ in range(3)]))
    return f"pid {os.getpid()}: " + ", ".join(seen)


def main() -> int:
    """Run the workers and show what reached the API."""
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        # Without Redis each process would fall back to state of its own: nothing to show.
        print(f"needs a Redis at {redis_url} (set REDIS_URL): {exc}", file=sys.stderr)
        return 2
    namespace = f"example-{os.getpid()}"
    with ApiSimulator(latency_scale=0.05) as api:
        context = multiprocessing.get_context("spawn")
        with context.Pool(3) as pool:
            lines = pool.starmap(worker, [(redis_url, namespace, api.url)] * 3)
        for line in lines:
            print(line)
        print(f"requests at {DOWN}: {api.requests(DOWN)} (3 processes, fail_max=3)")
        print(f"requests at {MOVERS}: {api.requests(MOVERS)} (9 calls)")
    keys = list(client.scan_iter(match=f"{namespace}:*"))
    if keys:
        client.unlink(*keys)
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
