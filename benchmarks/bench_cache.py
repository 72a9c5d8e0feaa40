"""Cache benchmarks: `rs.ttl_cache` next to cachetools, the cache people compare it with.

1. Hit: ``rs.ttl_cache(ttl=60)`` vs cachetools' unlocked ``cached(TTLCache)`` on the same
   function and key; target ratio <= 1.3. As context: the same hit with no hooks at all
   (what the hit costs apart from asking the log hook about debug events), cachetools with
   ``lock=`` (what thread-safe use needs), and the hit through
   ``resilient(cache, retry, breaker, timeout)``.
2. Miss: a new key on every call (the caches are full, so each miss also evicts) vs a
   cachetools miss; target ratio <= 1.5.
3. Stampede: 16 threads miss on one key at once, the body sleeps 50 ms; how many times the
   body runs; target 1. cachetools with ``lock=`` and ``condition=`` as context.
4. Async stampede: 200 tasks of one event loop miss on one key at once; target 1 body run.

Logging is configured as in production (JSON at INFO into a sink that discards it), so the
debug events of hits and misses are filtered as they would be there.

Run directly (``python benchmarks/bench_cache.py [--quick]``) to print the table, or call
`run`.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import cachetools
from _common import (  # benchmarks/ is on sys.path when a benchmark runs as a script
    Row,
    calibrate,
    configure_structlog,
    log_summary,
    ms,
    print_report,
    run_threads,
    us,
)
from bench_layers import Costs, interleaved, timed

import resilient_scan as rs
from resilient_scan.instrumentation import set_hooks

MICRO_ROUNDS = 15
STAMPEDE_ROUNDS = 3

MAXSIZE = 1024
THREADS = 16
TASKS = 200
STAMPEDE_SLEEP = 0.05


def work(x: int) -> int:
    """The trivial function every per-call benchmark wraps."""
    return x + 1


def _pair(costs: Costs) -> str:
    return f"{us(costs.best)} (median {us(costs.median)}, CPU {us(costs.cpu_median)})"


def _ttl_cache() -> cachetools.TTLCache[Any, Any]:
    return cachetools.TTLCache(maxsize=MAXSIZE, ttl=60)


def _sampler(
    func: Callable[[], object], hooks: list[Any] | None
) -> Callable[[], tuple[float, float]]:
    """A sampler of *func* (per-call wall and process CPU) that runs with *hooks*.

    *hooks* None: the default hooks, with production logging.
    """
    set_hooks(hooks)
    for _ in range(200):  # warm up
        func()
    calls = calibrate(func)
    set_hooks(None)

    def loop() -> None:
        for _ in itertools.repeat(None, calls):
            func()

    def sample() -> tuple[float, float]:
        set_hooks(hooks)
        try:
            return timed(loop, calls)
        finally:
            set_hooks(None)

    return sample


def cache_hit(rounds: int) -> list[Row]:
    """Benchmark 1: a hit of rs.ttl_cache vs an unlocked cachetools hit."""
    ours = rs.ttl_cache(ttl=60, maxsize=MAXSIZE)(work)
    stack = rs.resilient(cache=60, retry=True, breaker=True, timeout=5)(work)
    bare = cachetools.cached(_ttl_cache())(work)
    locked = cachetools.cached(_ttl_cache(), lock=threading.Lock())(work)
    for func in (ours, stack, bare, locked):  # fill each cache: every measured call is a hit
        func(1)
    samples = interleaved(
        {
            "rs.ttl_cache": _sampler(lambda: ours(1), None),
            "rs.ttl_cache, no hooks": _sampler(lambda: ours(1), []),
            "resilient": _sampler(lambda: stack(1), None),
            "cachetools": _sampler(lambda: bare(1), None),
            "cachetools+lock": _sampler(lambda: locked(1), None),
        },
        rounds,
    )
    mine, unobserved, full, stock, with_lock = (
        samples["rs.ttl_cache"],
        samples["rs.ttl_cache, no hooks"],
        samples["resilient"],
        samples["cachetools"],
        samples["cachetools+lock"],
    )
    info = ours.cache_info()
    detail = (
        f"per hit: rs.ttl_cache {_pair(mine)}; cachetools.cached(TTLCache) {_pair(stock)}; "
        f"ratio of medians {mine.median / stock.median:.3f}, of CPU medians "
        f"{mine.cpu_median / stock.cpu_median:.3f}; rs.ttl_cache misses "
        f"{info.misses} (only the fill); best of {rounds} interleaved rounds"
    )
    return [
        Row.check("cache hit: rs.ttl_cache / cachetools", mine.best / stock.best, 1.3, detail),
        Row.context(
            "cache hit, no hooks at all: rs.ttl_cache / cachetools",
            unobserved.best / stock.best,
            f"per hit: rs.ttl_cache with set_hooks([]) {_pair(unobserved)}: the same hit when"
            " no hook is registered, so wanted(CacheHit) and wanted(CallFinished) answer"
            " without asking a log hook whether debug events would be logged",
        ),
        Row.context(
            "cache hit: cachetools lock= / cachetools",
            with_lock.best / stock.best,
            f"per hit: cachetools.cached(TTLCache, lock=Lock()) {_pair(with_lock)}: the lock"
            " that thread-safe use of a TTLCache needs",
        ),
        Row.context(
            "cache hit: resilient(cache, retry, breaker, timeout) / cachetools",
            full.best / stock.best,
            f"per hit: resilient(cache=60, retry, breaker, timeout=5) {_pair(full)}",
        ),
    ]


def cache_miss(rounds: int) -> list[Row]:
    """Benchmark 2: a miss (a new key each call, the cache full) vs a cachetools miss."""
    ours = rs.ttl_cache(ttl=60, maxsize=MAXSIZE)(work)
    bare = cachetools.cached(_ttl_cache())(work)
    ours_keys = itertools.count()
    bare_keys = itertools.count()
    for _ in range(2 * MAXSIZE):  # fill both: every measured miss evicts an entry too
        ours(next(ours_keys))
        bare(next(bare_keys))
    samples = interleaved(
        {
            "rs.ttl_cache": _sampler(lambda: ours(next(ours_keys)), None),
            "rs.ttl_cache, no hooks": _sampler(lambda: ours(next(ours_keys)), []),
            "cachetools": _sampler(lambda: bare(next(bare_keys)), None),
        },
        rounds,
    )
    mine, unobserved, stock = (
        samples["rs.ttl_cache"],
        samples["rs.ttl_cache, no hooks"],
        samples["cachetools"],
    )
    info = ours.cache_info()
    detail = (
        f"per miss: rs.ttl_cache {_pair(mine)}; cachetools.cached(TTLCache) {_pair(stock)}; "
        f"ratio of medians {mine.median / stock.median:.3f}, of CPU medians "
        f"{mine.cpu_median / stock.cpu_median:.3f}; both full at maxsize "
        f"{MAXSIZE} (rs.ttl_cache currsize {info.currsize}, hits {info.hits}); "
        f"best of {rounds} interleaved rounds"
    )
    return [
        Row.check("cache miss: rs.ttl_cache / cachetools", mine.best / stock.best, 1.5, detail),
        Row.context(
            "cache miss, no hooks at all: rs.ttl_cache / cachetools",
            unobserved.best / stock.best,
            f"per miss: rs.ttl_cache with set_hooks([]) {_pair(unobserved)}",
        ),
    ]


Decorator = Callable[[Callable[[str], str]], Callable[[str], str]]


def _stampede(decorate: Decorator) -> tuple[int, float]:
    """THREADS threads miss on one key at once; return (body executions, wall seconds)."""
    runs = 0
    count_lock = threading.Lock()

    def body(ticker: str) -> str:
        nonlocal runs
        with count_lock:
            runs += 1
        time.sleep(STAMPEDE_SLEEP)
        return ticker.lower()

    cached = decorate(body)
    seconds = run_threads(THREADS, lambda: cached("AAPL"))
    return runs, seconds


def stampede(rounds: int) -> list[Row]:
    """Benchmark 3: 16 concurrent misses on one key: how many times does the body run?"""
    variants: dict[str, Callable[[], Decorator]] = {
        "rs.ttl_cache": lambda: rs.ttl_cache(ttl=60),
        "cachetools lock=": lambda: cachetools.cached(_ttl_cache(), lock=threading.Lock()),
        "cachetools condition=": lambda: cachetools.cached(
            _ttl_cache(), condition=threading.Condition()
        ),
    }
    names = list(variants)
    results: dict[str, list[tuple[int, float]]] = {name: [] for name in names}
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(_stampede(variants[name]()))
    rows = []
    for name in names:
        counts = [count for count, _ in results[name]]
        walls = sorted(seconds for _, seconds in results[name])
        detail = (
            f"body runs per round {counts}; wall {ms(walls[len(walls) // 2])} median "
            f"(best {ms(walls[0])}) for {THREADS} threads on one key, body sleeps "
            f"{ms(STAMPEDE_SLEEP)}; worst of {rounds} rounds"
        )
        label = f"stampede: {name} body runs"
        if name == "rs.ttl_cache":
            rows.append(Row.check(label, max(counts), 1, detail))
        else:
            rows.append(Row.context(label, max(counts), detail))
    return rows


def async_stampede(rounds: int) -> list[Row]:
    """Benchmark 4: TASKS tasks of one loop miss on one key at once."""
    counts: list[int] = []
    walls: list[float] = []
    for _ in range(rounds):
        runs = 0

        @rs.ttl_cache(ttl=60)
        async def body(ticker: str) -> str:
            nonlocal runs
            runs += 1
            await asyncio.sleep(STAMPEDE_SLEEP)
            return ticker.lower()

        async def together(cached: Callable[[str], Any] = body) -> None:
            await asyncio.gather(*(cached("AAPL") for _ in range(TASKS)))

        started = time.perf_counter()
        asyncio.run(together())
        walls.append(time.perf_counter() - started)
        counts.append(runs)
    walls.sort()
    detail = (
        f"body runs per round {counts}; wall {ms(walls[len(walls) // 2])} median for "
        f"{TASKS} tasks on one key (asyncio.run included), body sleeps {ms(STAMPEDE_SLEEP)}"
    )
    return [Row.check("async stampede: rs.ttl_cache body runs", max(counts), 1, detail)]


def run(*, quick: bool = False) -> list[Row]:
    """Run every cache benchmark and return its rows; *quick* takes fewer rounds."""
    configure_structlog()
    micro = 5 if quick else MICRO_ROUNDS
    stampedes = 1 if quick else STAMPEDE_ROUNDS
    return [
        *cache_hit(micro),
        *cache_miss(micro),
        *stampede(stampedes),
        *async_stampede(stampedes),
    ]


def main() -> int:
    """Print the table; exit status 1 when a target is missed."""
    setup = configure_structlog()
    rows = run(quick="--quick" in sys.argv[1:])
    versions = (
        f"Python {sys.version.split()[0]}, cachetools {_version('cachetools')}, "
        f"structlog {_version('structlog')}, resilient_scan {rs.__version__}"
    )
    print_report("resilient_scan cache benchmarks", rows, [setup, log_summary(), versions])
    return 0 if all(row.passed is not False for row in rows) else 1


def _version(package: str) -> str:
    from importlib.metadata import version  # noqa: PLC0415

    return version(package)


if __name__ == "__main__":
    sys.exit(main())
