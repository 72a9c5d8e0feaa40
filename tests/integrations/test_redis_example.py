"""examples/redis_shared_state.py shares one breaker and one cache between processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "redis_shared_state.py"


def test_three_processes_share_one_breaker_and_one_cache_through_redis(redis_url: str):
    env = {**os.environ, "REDIS_URL": redis_url}
    done = subprocess.run(  # noqa: S603 - our own interpreter and example
        [sys.executable, str(EXAMPLE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    down = re.search(r"requests at /v1/options/flow: (\d+)", done.stdout)
    movers = re.search(r"requests at /v1/market/movers: (\d+)", done.stdout)
    assert down, done.stdout
    assert movers, done.stdout
    assert int(down[1]) <= 3 + 3  # fail_max in all, plus one in flight per process (not 9)
    assert int(movers[1]) == 1  # loaded once, served to the others from Redis


def test_without_a_redis_it_says_so_and_exits():
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0"}
    done = subprocess.run(  # noqa: S603 - our own interpreter and example
        [sys.executable, str(EXAMPLE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "needs a Redis at redis://127.0.0.1:1/0" in done.stderr
    assert "Traceback" not in done.stderr
