"""Layer benchmarks: what each resilience layer costs next to the stock library it replaces.

1. Happy path: ``resilient(retry=True, breaker=True)`` vs ``tenacity.retry`` (3 attempts)
   around the same trivial function; target ratio <= 1.0.
2. Cache hit: ``resilient(cache=60, retry=True, breaker=True, timeout=5)`` vs a bare
   ``cachetools.cached(TTLCache)`` on the same function and key; target ratio <= 3.0.
3. Shared breaker: 64 calls of ``time.sleep(0.02)`` on 16 threads through one breaker, wall
   time vs the same calls with no breaker; target ratio <= 1.2. Stock pybreaker as context.
4. Cache stampede: 16 threads miss on one key at once, the body sleeps 50 ms; how many times
   the body runs; target 1. cachetools with ``lock=`` and ``condition=`` as context.

Run directly (``python benchmarks/bench_layers.py``) to print the table, or call `run`.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import cachetools
import pybreaker
import tenacity
from _common import (  # benchmarks/ is on sys.path when a benchmark runs as a script
    Row,
    Samples,
    compare_calls,
    configure_structlog,
    interleaved,
    log_summary,
    ms,
    print_report,
    run_threads,
    us,
)

import resilient_scan as rs

MICRO_ROUNDS = 15
THREAD_ROUNDS = 5
STAMPEDE_ROUNDS = 3

THREADS = 16
SHARED_CALLS = 64
SHARED_SLEEP = 0.02
STAMPEDE_SLEEP = 0.05


def work(x: int) -> int:
    """The trivial function every per-call benchmark wraps."""
    return x + 1


def _pair(samples: Samples) -> str:
    return f"{us(samples.best)} (median {us(samples.median)})"


def happy_path(rounds: int) -> list[Row]:
    """Benchmark 1: retry + breaker on a call that succeeds, vs tenacity's retry."""
    ours = rs.resilient(retry=True, breaker=True)(work)
    theirs = tenacity.retry(stop=tenacity.stop_after_attempt(3))(work)
    samples = compare_calls(
        {"resilient": lambda: ours(1), "tenacity": lambda: theirs(1), "bare": lambda: work(1)},
        rounds,
    )
    mine, stock, bare = samples["resilient"], samples["tenacity"], samples["bare"]
    detail = (
        f"per call: resilient(retry, breaker) {_pair(mine)}; "
        f"tenacity.retry(stop_after_attempt(3)) {_pair(stock)}; bare call {_pair(bare)}; "
        f"ratio of medians {mine.median / stock.median:.3f}; "
        f"best of {rounds} interleaved rounds"
    )
    return [Row.check("happy path: resilient / tenacity", mine.best / stock.best, 1.0, detail)]


def cache_hit(rounds: int) -> list[Row]:
    """Benchmark 2: a cache hit through all four layers, vs a bare cachetools hit."""
    ours = rs.resilient(cache=60, retry=True, breaker=True, timeout=5)(work)
    bare = cachetools.cached(_ttl_cache())(work)
    locked = cachetools.cached(_ttl_cache(), lock=threading.Lock())(work)
    for func in (ours, bare, locked):  # fill each cache: every measured call is a hit
        func(1)
    samples = compare_calls(
        {
            "resilient": lambda: ours(1),
            "cachetools": lambda: bare(1),
            "cachetools+lock": lambda: locked(1),
        },
        rounds,
    )
    mine, stock, with_lock = (
        samples["resilient"],
        samples["cachetools"],
        samples["cachetools+lock"],
    )
    info = ours.cache_info()
    detail = (
        f"per hit: resilient(cache=60, retry, breaker, timeout=5) {_pair(mine)}; "
        f"cachetools.cached(TTLCache) {_pair(stock)}; with lock= {_pair(with_lock)}; "
        f"ratio of medians {mine.median / stock.median:.3f}; "
        f"ratio to the locked cachetools {mine.best / with_lock.best:.3f}; "
        f"resilient misses {info.misses if info else '?'} (only the fill); "
        f"best of {rounds} interleaved rounds"
    )
    return [Row.check("cache hit: resilient / cachetools", mine.best / stock.best, 3.0, detail)]


def _nap() -> None:
    time.sleep(SHARED_SLEEP)


def _spread(func: Callable[[], Any]) -> Callable[[], float]:
    """Return a sampler: SHARED_CALLS calls of *func* over THREADS threads, wall seconds."""
    per_thread = SHARED_CALLS // THREADS

    def calls() -> None:
        for _ in range(per_thread):
            func()

    return lambda: run_threads(THREADS, calls)


def shared_breaker(rounds: int) -> list[Row]:
    """Benchmark 3: one breaker shared by 16 threads, vs no breaker and vs pybreaker."""
    ours = rs.circuit_breaker()(_nap)  # one breaker: every thread calls this one wrapper
    stock = pybreaker.CircuitBreaker()(_nap)
    samples = interleaved(
        {"none": _spread(_nap), "resilient": _spread(ours), "pybreaker": _spread(stock)},
        rounds,
    )
    bare, mine, theirs = samples["none"], samples["resilient"], samples["pybreaker"]
    ideal = SHARED_CALLS // THREADS * SHARED_SLEEP

    def figures(label: str, s: Samples) -> str:
        return f"{label} {ms(s.median)} (best {ms(s.best)})"

    setup = (
        f"{SHARED_CALLS} calls of sleep({SHARED_SLEEP:g}) on {THREADS} threads "
        f"(ideal {ms(ideal)}); median of {rounds} interleaved rounds"
    )
    return [
        Row.check(
            "shared breaker: rs.circuit_breaker / none",
            mine.median / bare.median,
            1.2,
            f"wall: {figures('no breaker', bare)}; {figures('rs.circuit_breaker', mine)}; "
            f"difference {us((mine.median - bare.median) / SHARED_CALLS)} per call; {setup}",
        ),
        Row.context(
            "shared breaker: pybreaker / none",
            theirs.median / bare.median,
            f"wall: {figures('pybreaker.CircuitBreaker', theirs)}; difference "
            f"{us((theirs.median - bare.median) / SHARED_CALLS)} per call; it holds its lock while "
            f"the call runs, so the calls run one at a time ({SHARED_CALLS} x "
            f"{ms(SHARED_SLEEP)} = {ms(SHARED_CALLS * SHARED_SLEEP)})",
        ),
    ]


Decorator = Callable[[Callable[[str], str]], Callable[[str], str]]


def _ttl_cache() -> cachetools.TTLCache[Any, Any]:
    return cachetools.TTLCache(maxsize=1024, ttl=60)


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
    """Benchmark 4: 16 concurrent misses on one key: how many times does the body run?"""
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


def run(*, quick: bool = False) -> list[Row]:
    """Run every layer benchmark and return its rows; *quick* takes fewer rounds."""
    configure_structlog()
    micro = 5 if quick else MICRO_ROUNDS
    threaded = 2 if quick else THREAD_ROUNDS
    stampedes = 1 if quick else STAMPEDE_ROUNDS
    return [
        *happy_path(micro),
        *cache_hit(micro),
        *shared_breaker(threaded),
        *stampede(stampedes),
    ]


def main() -> int:
    """Print the table; exit status 1 when a target is missed."""
    setup = configure_structlog()
    rows = run(quick="--quick" in sys.argv[1:])
    versions = (
        f"Python {sys.version.split()[0]}, tenacity {_version('tenacity')}, "
        f"cachetools {_version('cachetools')}, pybreaker {_version('pybreaker')}, "
        f"structlog {_version('structlog')}, resilient_scan {rs.__version__}"
    )
    print_report("resilient_scan layer benchmarks", rows, [setup, log_summary(), versions])
    return 0 if all(row.passed is not False for row in rows) else 1


def _version(package: str) -> str:
    from importlib.metadata import version  # noqa: PLC0415

    return version(package)


if __name__ == "__main__":
    sys.exit(main())
