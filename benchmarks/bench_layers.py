"""Layer benchmarks: the policy layers next to their strongest peers, side by side in one run.

1. Happy path: ``resilient(retry=True, breaker=True)`` around a trivial function, against
   ``backoff.on_exception`` alone (target <= 0.5) and ``circuitbreaker.circuit`` alone
   (target <= 1.0); tenacity, stamina and pybreaker alone as context.
2. Async happy path: the same composite around a coroutine function, against stamina's
   async retry alone (target <= 0.1); tenacity, backoff and aiobreaker as context.
3. Timeout, one caller: ``rs.timeout(5)`` on a trivial function against
   ``ThreadPoolExecutor.submit(f).result(5)`` (target <= 1.0).
4. Timeout, 16 callers: 16 threads each making 1 ms calls through ``rs.timeout(5)``, against
   the same calls through one shared ``ThreadPoolExecutor(16)`` (target <= 1.0); no wrapper
   as context.
5. Shared breaker: 64 calls of 20 ms on 16 threads through one breaker, against no breaker
   (target <= 1.2); pybreaker, which holds its lock during the call, as context.
6. Rate limiter: one permit that is free at once, ``rs.rate_limit`` alone; pyrate-limiter
   and limits as context when they are installed.

Every row measures its variants in interleaved rounds (A B C, B C A, ...), counting wall time
and the CPU time of the whole process (worker threads included). A row is judged by the
ratio of the best (least disturbed) wall samples; the ratios of the medians and of process
CPU are printed beside it. The cache's benchmarks are in ``bench_cache.py``.

Run directly (``python benchmarks/bench_layers.py [--quick]``) to print the table, or call
`run`.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import itertools
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import aiobreaker
import backoff
import circuitbreaker
import pybreaker
import stamina
import tenacity
from _common import (  # benchmarks/ is on sys.path when a benchmark runs as a script
    Row,
    calibrate,
    configure_structlog,
    log_summary,
    ms,
    print_report,
    rotated,
    run_threads,
    us,
)

import resilient_scan as rs

MICRO_ROUNDS = 15
THREAD_ROUNDS = 15

THREADS = 16
TIMEOUT_CALLS = 40  # per thread, of TIMEOUT_NAP each
TIMEOUT_NAP = 0.001
SHARED_CALLS = 64
SHARED_SLEEP = 0.02


def work(x: int) -> int:
    """The trivial function every per-call benchmark wraps."""
    return x + 1


async def work_async(x: int) -> int:
    """The trivial coroutine function every async per-call benchmark wraps."""
    return x + 1


# -- measuring ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Costs:
    """One variant's samples: wall and process-CPU seconds (per call, or per run)."""

    wall: tuple[float, ...]
    cpu: tuple[float, ...]

    @property
    def median(self) -> float:
        """The median wall sample."""
        return statistics.median(self.wall)

    @property
    def best(self) -> float:
        """The smallest wall sample."""
        return min(self.wall)

    @property
    def cpu_median(self) -> float:
        """The median process-CPU sample."""
        return statistics.median(self.cpu)


Sampler = Callable[[], tuple[float, float]]


def interleaved(variants: Mapping[str, Sampler], rounds: int) -> dict[str, Costs]:
    """Take *rounds* (wall, CPU) samples of each variant (`_common.rotated`)."""
    return {
        name: Costs(tuple(w for w, _ in samples), tuple(c for _, c in samples))
        for name, samples in rotated(variants, rounds).items()
    }


def timed(block: Callable[[], object], per: int) -> tuple[float, float]:
    """Run *block* once with the collector off; return wall and process CPU over *per*."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        block()
        return (time.perf_counter() - wall) / per, (time.process_time() - cpu) / per
    finally:
        if was_enabled:
            gc.enable()


def per_call(funcs: Mapping[str, Callable[[], object]], rounds: int) -> dict[str, Costs]:
    """Per-call costs of no-argument functions, each calibrated to ~20 ms a sample."""

    def sampler(func: Callable[[], object]) -> Sampler:
        # Warm up first: a first call that imports or resolves something would make the
        # calibration pick a handful of calls, and each sample would time the timer.
        for _ in range(100):
            func()
        calls = calibrate(func)

        def loop() -> None:
            for _ in itertools.repeat(None, calls):
                func()

        return lambda: timed(loop, calls)

    return interleaved({name: sampler(func) for name, func in funcs.items()}, rounds)


def per_await(
    funcs: Mapping[str, Callable[[], Awaitable[object]]], rounds: int, calls: int = 20_000
) -> dict[str, Costs]:
    """Per-call costs of no-argument coroutine functions, awaited on one event loop."""
    loop = asyncio.new_event_loop()

    def sampler(func: Callable[[], Awaitable[object]], count: int) -> Sampler:
        async def many() -> None:
            for _ in itertools.repeat(None, count):
                await func()

        return lambda: timed(lambda: loop.run_until_complete(many()), count)

    try:
        for func in funcs.values():  # warm up
            loop.run_until_complete(func())
        samplers = {}
        for name, func in funcs.items():
            wall, _ = sampler(func, 200)()
            samplers[name] = sampler(func, max(50, min(calls, int(0.02 / max(wall, 1e-9)))))
        return interleaved(samplers, rounds)
    finally:
        loop.close()


def _nap() -> None:
    time.sleep(SHARED_SLEEP)


def _spread(func: Callable[[], Any], per_thread: int) -> Sampler:
    """A sampler: *per_thread* calls of *func* on each of THREADS threads (wall, CPU)."""

    def calls() -> None:
        for _ in range(per_thread):
            func()

    def sample() -> tuple[float, float]:
        cpu = time.process_time()
        wall = run_threads(THREADS, calls)
        return wall, time.process_time() - cpu

    return sample


def _ratio(mine: Costs, theirs: Costs) -> float:
    """The figure a row is judged by: best wall sample against best wall sample."""
    return mine.best / theirs.best


def _ratios(mine: Costs, theirs: Costs) -> str:
    return (
        f"ratio of bests {mine.best / theirs.best:.3f}, of medians "
        f"{mine.median / theirs.median:.3f}, of CPU medians "
        f"{mine.cpu_median / theirs.cpu_median:.3f}"
    )


def _figures(label: str, costs: Costs, unit: Callable[[float], str] = us) -> str:
    return (
        f"{label} {unit(costs.median)} wall, {unit(costs.cpu_median)} CPU (best {unit(costs.best)})"
    )


# -- 1. happy path ---------------------------------------------------------------------------


def happy_path(rounds: int) -> list[Row]:
    """resilient(retry, breaker) on a call that succeeds, against each peer alone."""
    ours = rs.resilient(retry=True, breaker=True)(work)
    peers: dict[str, Callable[[int], int]] = {
        "backoff": backoff.on_exception(backoff.expo, Exception, max_tries=3)(work),
        "circuitbreaker": circuitbreaker.circuit(failure_threshold=5)(work),
        "tenacity": tenacity.retry(stop=tenacity.stop_after_attempt(3))(work),
        "stamina": stamina.retry(on=Exception, attempts=3)(work),
        "pybreaker": pybreaker.CircuitBreaker(fail_max=5)(work),
    }
    funcs: dict[str, Callable[[], object]] = {
        "resilient": lambda: ours(1),
        "bare": lambda: work(1),
    }
    funcs.update({name: (lambda peer=peer: peer(1)) for name, peer in peers.items()})
    costs = per_call(funcs, rounds)
    mine = costs["resilient"]
    context = "; ".join(_figures(name, costs[name]) for name in ("bare", *peers))
    setup = f"per call; {rounds} interleaved rounds"
    rows = [
        Row.check(
            f"happy path: resilient(retry, breaker) / {peer}",
            _ratio(mine, costs[peer]),
            target,
            f"{_figures('resilient(retry=True, breaker=True)', mine)}; "
            f"{_figures(peer_label, costs[peer])}; {_ratios(mine, costs[peer])}; {setup}",
        )
        for peer, target, peer_label in (
            ("backoff", 0.5, "backoff.on_exception(expo, Exception, max_tries=3)"),
            ("circuitbreaker", 1.0, "circuitbreaker.circuit(failure_threshold=5)"),
        )
    ]
    rows.extend(
        Row.context(
            f"happy path: resilient(retry, breaker) / {peer}",
            _ratio(mine, costs[peer]),
            context if peer == "pybreaker" else f"{_figures(peer, costs[peer])}; {setup}",
        )
        for peer in ("tenacity", "stamina", "pybreaker")
    )
    return rows


# -- 2. async happy path ---------------------------------------------------------------------


def async_happy_path(rounds: int) -> list[Row]:
    """The composite around a coroutine function, against async retries and breakers."""
    ours = rs.resilient(retry=True, breaker=True)(work_async)
    peers: dict[str, Callable[[int], Awaitable[int]]] = {
        "stamina": stamina.retry(on=Exception, attempts=3)(work_async),
        "tenacity": tenacity.retry(stop=tenacity.stop_after_attempt(3))(work_async),
        "backoff": backoff.on_exception(backoff.expo, Exception, max_tries=3)(work_async),
        "aiobreaker": aiobreaker.CircuitBreaker(fail_max=5)(work_async),
    }
    funcs: dict[str, Callable[[], Awaitable[object]]] = {
        "resilient": lambda: ours(1),
        "bare": lambda: work_async(1),
    }
    funcs.update({name: (lambda peer=peer: peer(1)) for name, peer in peers.items()})
    costs = per_await(funcs, rounds)
    mine = costs["resilient"]
    context = "; ".join(_figures(name, costs[name]) for name in ("bare", *peers))
    rows = [
        Row.check(
            "async happy path: resilient(retry, breaker) / stamina",
            _ratio(mine, costs["stamina"]),
            0.1,
            f"{_figures('resilient(retry=True, breaker=True)', mine)}; "
            f"{_figures('stamina.retry(on=Exception, attempts=3)', costs['stamina'])}; "
            f"{_ratios(mine, costs['stamina'])}; per awaited call on one event loop; "
            f"{rounds} interleaved rounds",
        )
    ]
    rows.extend(
        Row.context(
            f"async happy path: resilient(retry, breaker) / {peer}",
            _ratio(mine, costs[peer]),
            context if peer == "aiobreaker" else _figures(peer, costs[peer]),
        )
        for peer in ("tenacity", "backoff", "aiobreaker")
    )
    return rows


# -- 3. and 4. timeout -----------------------------------------------------------------------


def timeout_one_caller(rounds: int) -> list[Row]:
    """rs.timeout(5) on a trivial function, against a thread pool's submit().result()."""
    ours = rs.timeout(5)(work)
    pool = ThreadPoolExecutor(1)
    try:
        costs = per_call(
            {
                "timeout": lambda: ours(1),
                "pool": lambda: pool.submit(work, 1).result(5),
            },
            rounds,
        )
    finally:
        pool.shutdown()
    mine, theirs = costs["timeout"], costs["pool"]
    return [
        Row.check(
            "timeout(5) per call / ThreadPoolExecutor.submit().result(5)",
            _ratio(mine, theirs),
            1.0,
            f"{_figures('rs.timeout(5)', mine)}; "
            f"{_figures('ThreadPoolExecutor(1).submit(f).result(5)', theirs)}; "
            f"{_ratios(mine, theirs)}; one caller thread, a trivial function; {rounds} "
            "interleaved rounds",
        )
    ]


def timeout_many_callers(rounds: int) -> list[Row]:
    """16 threads making 1 ms calls through rs.timeout, against one shared pool of 16."""

    def nap() -> None:
        time.sleep(TIMEOUT_NAP)

    ours = rs.timeout(5)(nap)
    pool = ThreadPoolExecutor(THREADS)

    def through_pool() -> None:
        pool.submit(nap).result(5)

    try:
        for func in (ours, through_pool):  # start the threads of both before measuring
            run_threads(THREADS, func)
        costs = interleaved(
            {
                "bare": _spread(nap, TIMEOUT_CALLS),
                "timeout": _spread(ours, TIMEOUT_CALLS),
                "pool": _spread(through_pool, TIMEOUT_CALLS),
            },
            rounds,
        )
    finally:
        pool.shutdown()
    bare, mine, theirs = costs["bare"], costs["timeout"], costs["pool"]
    return [
        Row.check(
            "16 threads x 1 ms calls: timeout / shared ThreadPoolExecutor(16)",
            _ratio(mine, theirs),
            1.0,
            f"per run: {_figures('rs.timeout(5)', mine, ms)}; "
            f"{_figures('one ThreadPoolExecutor(16)', theirs, ms)}; "
            f"{_figures('no wrapper', bare, ms)}; {_ratios(mine, theirs)}; {THREADS} threads "
            f"x {TIMEOUT_CALLS} calls of sleep({TIMEOUT_NAP:g}); {rounds} interleaved rounds",
        )
    ]


# -- 5. shared breaker -----------------------------------------------------------------------


def shared_breaker(rounds: int) -> list[Row]:
    """One breaker shared by 16 threads, against no breaker and against pybreaker."""
    ours = rs.circuit_breaker()(_nap)
    stock = pybreaker.CircuitBreaker()(_nap)
    costs = interleaved(
        {
            "none": _spread(_nap, SHARED_CALLS // THREADS),
            "resilient": _spread(ours, SHARED_CALLS // THREADS),
            "pybreaker": _spread(stock, SHARED_CALLS // THREADS),
        },
        rounds,
    )
    bare, mine, theirs = costs["none"], costs["resilient"], costs["pybreaker"]
    setup = (
        f"{SHARED_CALLS} calls of sleep({SHARED_SLEEP:g}) on {THREADS} threads "
        f"(ideal {ms(SHARED_CALLS // THREADS * SHARED_SLEEP)}); {rounds} interleaved rounds"
    )
    return [
        Row.check(
            "shared breaker: rs.circuit_breaker / none",
            _ratio(mine, bare),
            1.2,
            f"{_figures('no breaker', bare, ms)}; {_figures('rs.circuit_breaker', mine, ms)}; "
            f"{setup}",
        ),
        Row.context(
            "shared breaker: pybreaker / none",
            _ratio(theirs, bare),
            f"{_figures('pybreaker.CircuitBreaker', theirs, ms)}; it holds its lock while the "
            f"call runs, so the calls run one at a time ({SHARED_CALLS} x {ms(SHARED_SLEEP)})",
        ),
    ]


# -- 6. rate limiter -------------------------------------------------------------------------


def rate_limiter(rounds: int) -> list[Row]:
    """One permit that is free at once: rs.rate_limit, and its peers when installed."""
    ours = rs.rate_limit(1e9)(work)
    funcs: dict[str, Callable[[], object]] = {"rate_limit": lambda: ours(1)}
    labels = {"rate_limit": "rs.rate_limit(1e9)"}
    if importlib.util.find_spec("pyrate_limiter") is not None:
        import pyrate_limiter  # noqa: PLC0415 - an optional peer

        limiter = pyrate_limiter.Limiter(pyrate_limiter.Rate(10**9, pyrate_limiter.Duration.SECOND))
        funcs["pyrate-limiter"] = lambda: limiter.try_acquire("bench", blocking=False)
        labels["pyrate-limiter"] = "pyrate_limiter.Limiter.try_acquire(blocking=False)"
    if importlib.util.find_spec("limits") is not None:
        import limits  # noqa: PLC0415 - an optional peer

        moving = limits.strategies.MovingWindowRateLimiter(limits.storage.MemoryStorage())
        item = limits.RateLimitItemPerSecond(10**9)
        funcs["limits"] = lambda: moving.hit(item, "bench")
        labels["limits"] = "limits MovingWindowRateLimiter.hit"
    costs = per_call(funcs, rounds)
    mine = costs["rate_limit"]
    detail = "; ".join(_figures(labels[name], costs[name]) for name in funcs)
    rows = [Row.context("rate limit: one free permit, microseconds", mine.best * 1e6, detail)]
    rows.extend(
        Row.context(
            f"rate limit: rs.rate_limit / {name}",
            _ratio(mine, costs[name]),
            f"{_figures(labels[name], costs[name])}; {_ratios(mine, costs[name])}",
        )
        for name in funcs
        if name != "rate_limit"
    )
    return rows


def run(*, quick: bool = False) -> list[Row]:
    """Run every layer benchmark and return its rows; *quick* takes fewer rounds."""
    configure_structlog()
    micro = 5 if quick else MICRO_ROUNDS
    threaded = 3 if quick else THREAD_ROUNDS
    return [
        *happy_path(micro),
        *async_happy_path(micro),
        *timeout_one_caller(micro),
        *timeout_many_callers(threaded),
        *shared_breaker(threaded),
        *rate_limiter(micro),
    ]


def versions() -> str:
    """The versions of Python and of every library measured."""
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    names = [
        "tenacity",
        "stamina",
        "backoff",
        "circuitbreaker",
        "aiobreaker",
        "pybreaker",
        "pyrate-limiter",
        "limits",
        "anyio",
        "structlog",
    ]

    def installed(name: str) -> str:
        try:
            return f"{name} {version(name)}"
        except PackageNotFoundError:
            return f"{name} (not installed)"

    found = [installed(name) for name in names]
    return f"Python {sys.version.split()[0]}, {', '.join(found)}, resilient_scan {rs.__version__}"


def main() -> int:
    """Print the table; exit status 1 when a target is missed."""
    setup = configure_structlog()
    rows = run(quick="--quick" in sys.argv[1:])
    notes = [
        setup,
        log_summary(),
        versions(),
        f"threads alive at the end: {threading.active_count()}",
    ]
    print_report("resilient_scan layer benchmarks", rows, notes)
    return 0 if all(row.passed is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
