"""Run every benchmark and print one table of ratios: ``python benchmarks/run.py [--quick]``.

Runs, in this order: the layers (`bench_layers`: happy path against backoff, circuitbreaker,
tenacity, stamina and pybreaker; async happy path; timeout; shared breaker; rate limit), the
cache (`bench_cache`: hit, miss, stampedes), the instrumentation seam
(`bench_instrumentation`: default hooks, Prometheus and OpenTelemetry hooks), the executor
(`bench_executor`: slowest scanner, hung scanner, the executor's own cost, scaling, sleeps,
async scanners, merge, memory), the import (`bench_import`), and the Redis and Dask
benchmarks (`bench_redis` needs a redis-server on the machine; `bench_dask` starts a local
cluster). Then it prints one table with the date, Python version, CPU count, platform and
the versions of every library measured. Exits with status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version

from _common import Row, format_table, log_summary, machine_lines  # benchmarks/ is on sys.path

import resilient_scan as rs

#: The benchmark modules, in the order they run (the last two need a redis-server on the
#: machine and start a local Dask cluster).
MODULES = (
    "bench_layers",
    "bench_cache",
    "bench_instrumentation",
    "bench_executor",
    "bench_import",
    "bench_redis",
    "bench_dask",
)

LIBRARIES = (
    "structlog",
    "tenacity",
    "stamina",
    "backoff",
    "cachetools",
    "pybreaker",
    "circuitbreaker",
    "aiobreaker",
    "anyio",
    "prometheus-client",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "redis",
    "dask",
)


def _installed(name: str) -> str:
    try:
        return f"{name} {version(name)}"
    except PackageNotFoundError:
        return f"{name} (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks, print the table; return 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds: a quick look")
    parser.add_argument(
        "--only",
        action="append",
        metavar="MODULE",
        help="run only this benchmark module (repeatable), e.g. --only bench_cache",
    )
    args = parser.parse_args(argv)

    names = args.only or list(MODULES)
    started = time.perf_counter()
    rows: list[Row] = []
    timings: list[str] = []
    notes: list[str] = []
    for name in names:
        began = time.perf_counter()
        try:
            module = importlib.import_module(name)
            run: Callable[..., list[Row]] = module.run
            rows.extend(run(quick=args.quick))
        except Exception as exc:  # one broken module must not hide the others' figures
            text = f"{type(exc).__name__}: {exc}"
            rows.append(
                Row(f"{name}: ran to the end", 0.0, 1.0, passed=False, detail=f"raised {text}")
            )
            traceback.print_exc()
            continue
        finally:
            timings.append(f"{name} {time.perf_counter() - began:.0f} s")
        sink = getattr(module, "SINK", None)
        if sink is not None:
            notes.append(f"{name}: JSON log output: {sink.lines} lines, {sink.chars} chars")
    elapsed = time.perf_counter() - started

    title = "resilient_scan benchmarks" + (" (--quick)" if args.quick else "")
    print(title)
    print("=" * len(title))
    for line in machine_lines():
        print(line)
    print(f"resilient_scan {rs.__version__}; {', '.join(_installed(n) for n in LIBRARIES)}")
    print()
    print(format_table(rows))
    print()
    print(f"* layers and cache: {log_summary()}")
    for note in notes:
        print(f"* {note}")
    print("* ratios compare variants measured side by side in interleaved rounds, in one run")
    print(f"* time per module: {'; '.join(timings)}")
    checked = [row for row in rows if row.passed is not None]
    missed = [row.name for row in checked if not row.passed]
    summary = f"* {len(checked) - len(missed)} of {len(checked)} targets met in {elapsed:.0f} s"
    print(summary + (f"; MISSED: {'; '.join(missed)}" if missed else ""))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
