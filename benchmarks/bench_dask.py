"""Dask benchmark: the executor's Dask backend on a local cluster of worker processes.

1,000 scanners of 10 ms each (a sleep: a slow API) on 2 worker processes x 32 threads
(``distributed.LocalCluster(processes=True)``, started once, before anything is timed).
Target: the wall time of ``ScanExecutor(max_workers=64, backend=DaskBackend(client)).run``
<= 1.5 x the ideal, 1,000 x 10 ms / 64 = 156 ms. Measured side by side, in interleaved
rounds, with three context variants:

- the strongest hand-rolled peer: one Dask task per worker, each running its half of the
  scanners on a ``ThreadPoolExecutor(32)`` kept by the worker process, and returning their
  candidates (no timeouts, no statuses, no merge, no events);
- the naive Dask way: one task per scanner (``client.map`` + ``gather``);
- the executor on this process's threads (64), no cluster.

The application logs with the standard library at WARNING (info off), as in production:
the bare variants log nothing either. Run directly (``python benchmarks/bench_dask.py
[--quick]``) to print the table, or call `run`.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import distributed
import structlog
from _common import (  # benchmarks/ is on sys.path when a benchmark runs as a script
    Row,
    Samples,
    interleaved,
    ms,
    print_report,
    wall,
)

import resilient_scan as rs
from resilient_scan.dask import DaskBackend

SCANNERS = 1000
SLEEP = 0.010
WORKERS = 2
THREADS = 32
IDEAL = SCANNERS * SLEEP / (WORKERS * THREADS)
TARGET = 1.5


class SleepScanner:
    """A scanner that waits 10 ms (a slow API) and finds one ticker."""

    def __init__(self, name: str, ticker: str) -> None:
        self.name = name
        self.ticker = ticker

    def scan(self, state: Any) -> list[dict[str, Any]]:
        time.sleep(SLEEP)
        return [{"ticker": self.ticker, "context": f"{self.name} signal", "priority": "medium"}]


def scanners() -> list[SleepScanner]:
    return [SleepScanner(f"sleep_{i:04d}", f"T{i % 50:02d}") for i in range(SCANNERS)]


# -- the variants --------------------------------------------------------------------------


_POOLS: dict[int, cf.ThreadPoolExecutor] = {}


def _scan_one(scanner: SleepScanner) -> list[dict[str, Any]]:
    return scanner.scan({})


def _scan_half(half: list[SleepScanner], threads: int) -> list[dict[str, Any]]:
    """On a worker: the half's scanners on the worker's thread pool, their candidates."""
    pool = _POOLS.get(threads)
    if pool is None:  # one pool per worker process, kept: no thread start-up per run
        pool = _POOLS[threads] = cf.ThreadPoolExecutor(threads)
    return [found for batch in pool.map(_scan_one, half) for found in batch]


def hand_rolled(client: distributed.Client, jobs: list[SleepScanner]) -> int:
    """The strongest plain pattern: one task per worker, a thread pool inside it."""
    addresses = sorted(client.nthreads())
    futures = [
        client.submit(_scan_half, jobs[i :: len(addresses)], THREADS, workers=[address], pure=False)
        for i, address in enumerate(addresses)
    ]
    return sum(len(found) for found in client.gather(futures))


def task_per_scanner(client: distributed.Client, jobs: list[SleepScanner]) -> int:
    """The naive way: one Dask task per scanner."""
    return sum(len(found) for found in client.gather(client.map(_scan_one, jobs, pure=False)))


def executor_run(executor: rs.ScanExecutor, jobs: list[SleepScanner]) -> Callable[[], object]:
    def run() -> object:
        report = executor.run(jobs)
        assert report.counts["ok"] == SCANNERS, report.counts
        return report

    return run


# -- the cluster and the logging -----------------------------------------------------------


@contextmanager
def local_cluster() -> Iterator[distributed.Client]:
    """2 worker processes x 32 threads; the client waits until both are up."""
    with (
        distributed.LocalCluster(
            n_workers=WORKERS,
            threads_per_worker=THREADS,
            processes=True,
            dashboard_address=":0",  # any free port: a busy 8787 must not fail the run
            silence_logs=logging.CRITICAL,  # the workers' complaints while the cluster closes
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.wait_for_workers(WORKERS)
        yield client


def quiet_logging() -> str:
    """Standard logging at WARNING, structlog unconfigured: info events are off."""
    structlog.reset_defaults()
    logger = logging.getLogger("resilient_scan")
    logger.setLevel(logging.WARNING)
    return "standard logging at WARNING (info off), structlog not configured"


# -- the benchmark -------------------------------------------------------------------------


def many_scanners(client: distributed.Client, rounds: int) -> list[Row]:
    jobs = scanners()
    on_dask = rs.ScanExecutor(max_workers=WORKERS * THREADS, backend=DaskBackend(client))
    local = rs.ScanExecutor(max_workers=WORKERS * THREADS)
    variants: dict[str, Callable[[], float]] = {
        "dask backend": lambda: wall(executor_run(on_dask, jobs)),
        "hand-rolled": lambda: wall(lambda: hand_rolled(client, jobs)),
        "local threads": lambda: wall(executor_run(local, jobs)),
    }
    naive = lambda: wall(lambda: task_per_scanner(client, jobs))  # noqa: E731
    for variant in variants.values():  # warm up: imports, worker thread pools, code paths
        variant()
    samples = interleaved(variants, rounds)
    # Apart, after the others: a thousand tasks keep the scheduler busy for a while after.
    samples.update(interleaved({"task per scanner": naive}, max(1, rounds // 3)))
    ours = samples["dask backend"]
    peer = samples["hand-rolled"]
    return [
        Row.check(
            f"dask: {SCANNERS:,} x 10 ms on {WORKERS} workers x {THREADS} threads / ideal",
            ours.median / IDEAL,
            TARGET,
            f"wall {_figures(ours)}; ideal {ms(IDEAL)} ({SCANNERS:,} x 10 ms / "
            f"{WORKERS * THREADS}); best / ideal {ours.best / IDEAL:.2f}; median of {rounds}",
        ),
        Row.context(
            "dask: backend / hand-rolled task per worker with a thread pool",
            ours.median / peer.median,
            f"backend {_figures(ours)}; hand-rolled {_figures(peer)} (no timeouts, statuses,"
            " merge or events)",
        ),
        Row.context(
            "dask: one task per scanner (client.map) / ideal",
            samples["task per scanner"].median / IDEAL,
            f"wall {_figures(samples['task per scanner'])}",
        ),
        Row.context(
            "local: the executor on 64 threads here / ideal",
            samples["local threads"].median / IDEAL,
            f"wall {_figures(samples['local threads'])}",
        ),
    ]


def _figures(samples: Samples) -> str:
    return f"median {ms(samples.median)}, best {ms(samples.best)}"


def run(*, quick: bool = False) -> list[Row]:
    """Run the Dask benchmark and return its rows; *quick* takes fewer rounds."""
    quiet_logging()
    with local_cluster() as client:
        return many_scanners(client, 3 if quick else 9)


def main() -> int:
    """Print the table; exit status 1 when the target is missed."""
    started = time.perf_counter()
    rows = run(quick="--quick" in sys.argv[1:])
    print_report(
        "resilient_scan Dask benchmark",
        rows,
        [
            (
                f"distributed {distributed.__version__}; LocalCluster(n_workers={WORKERS},"
                f" threads_per_worker={THREADS}, processes=True), started before timing"
            ),
            f"logging: {quiet_logging()}",
            "ratios compare variants measured side by side in interleaved rounds, in one run",
            f"{time.perf_counter() - started:.0f} s in all, cluster start included",
        ],
    )
    return 0 if all(row.passed is not False for row in rows) else 1


if __name__ == "__main__":
    # Run as the module bench_dask, so the scanners' class reaches the workers by name, as
    # the scanners of an application's modules do (from __main__ it would go by value).
    import bench_dask

    sys.exit(bench_dask.main())
