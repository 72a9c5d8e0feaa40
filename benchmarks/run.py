"""Run every benchmark and print one table of ratios: ``python benchmarks/run.py [--quick]``.

Runs the layer benchmarks (`bench_layers`: overhead vs tenacity and cachetools, shared breaker,
cache stampede) and the executor benchmarks (`bench_executor`: slowest scanner, hung scanner
and process exit, 1,000 scanners, state size), then prints one table with the date, Python
version, CPU count and platform. Exits with status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from importlib.metadata import version

import bench_executor  # benchmarks/ is on sys.path when this runs as a script
import bench_layers
from _common import (
    PRODUCTION_LOGGING,
    format_table,
    log_summary,
    machine_lines,
)

import resilient_scan as rs

LIBRARIES = ("structlog", "tenacity", "cachetools", "pybreaker")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks, print the table; return 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds: a quick look")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    rows = [
        *bench_layers.run(quick=args.quick),
        *bench_executor.run(quick=args.quick),
    ]
    elapsed = time.perf_counter() - started

    title = "resilient_scan benchmarks" + (" (--quick)" if args.quick else "")
    print(title)
    print("=" * len(title))
    versions = ", ".join(f"{name} {version(name)}" for name in LIBRARIES)
    for line in [*machine_lines(), f"resilient_scan {rs.__version__}; {versions}"]:
        print(line)
    print()
    print(format_table(rows))
    print()
    sink = bench_executor.SINK
    print(f"* logging: {PRODUCTION_LOGGING}")
    print(f"* layers: {log_summary()}")
    print(f"* executor: JSON log output: {sink.lines} lines, {sink.chars} chars")
    print("* ratios compare variants measured side by side in interleaved rounds, in one run")
    checked = [row for row in rows if row.passed is not None]
    missed = [row.name for row in checked if not row.passed]
    summary = f"* {len(checked) - len(missed)} of {len(checked)} targets met in {elapsed:.0f} s"
    print(summary + (f"; MISSED: {'; '.join(missed)}" if missed else ""))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
