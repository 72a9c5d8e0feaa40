"""Shared helpers for the benchmarks: rows, timing, a production-like structlog, a table.

Every benchmark compares variants side by side in one process and reports ratios, never
absolute thresholds: absolute times depend on the machine, ratios much less. To stay stable
on a small, noisy machine, variants are measured in interleaved rounds (A B C, B C A, ...),
so a burst of noise hits every variant alike, and each variant keeps its best and median
sample.
"""

from __future__ import annotations

import datetime as dt
import gc
import itertools
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO, TypeVar, cast

import resilient_scan as rs

# -- rows ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of a benchmark table.

    Attributes:
        name: What is compared, e.g. ``"happy path: resilient / tenacity"``.
        ratio: The measured figure: a ratio of times, or a count where the name says so.
        target: The largest passing value, or None for a row shown only as context.
        passed: ``ratio <= target``, or None for a context row.
        detail: The raw figures behind the ratio (per-call microseconds, wall times, counts).
    """

    name: str
    ratio: float
    target: float | None
    passed: bool | None
    detail: str

    @classmethod
    def check(cls, name: str, ratio: float, target: float, detail: str) -> Row:
        """Return a row that passes when *ratio* is at most *target*."""
        return cls(name, ratio, target, ratio <= target, detail)

    @classmethod
    def context(cls, name: str, ratio: float, detail: str) -> Row:
        """Return a row with no target, shown for comparison only."""
        return cls(name, ratio, None, None, detail)

    @property
    def verdict(self) -> str:
        """``"PASS"``, ``"FAIL"`` or ``"info"`` (a context row)."""
        if self.passed is None:
            return "info"
        return "PASS" if self.passed else "FAIL"


# -- structlog, configured as an application would ------------------------------------------


class CountingSink:
    """A file-like log sink that keeps nothing but counts what was written."""

    def __init__(self) -> None:
        """Start with nothing written."""
        self._lock = threading.Lock()
        self.lines = 0
        self.chars = 0

    def write(self, text: str) -> int:
        """Count *text* and drop it."""
        with self._lock:
            self.lines += text.count("\n")
            self.chars += len(text)
        return len(text)

    def flush(self) -> None:
        """Nothing to flush."""


LOG_SINK = CountingSink()


def configure_structlog() -> str:
    """Configure structlog as production does (the library's JSON setup), and describe it.

    Debug events are filtered at the bound logger; INFO and above are rendered as JSON
    lines (the real rendering cost) into a sink that counts and discards them.
    """
    return configure_production_logging(LOG_SINK)


def log_summary() -> str:
    """Return how much log output the benchmarks produced so far."""
    return f"log output during the benchmarks: {LOG_SINK.lines} lines, {LOG_SINK.chars} chars"


# -- timing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Samples:
    """The samples of one variant, in seconds (per call, or per run for wall times)."""

    values: tuple[float, ...]

    @property
    def best(self) -> float:
        """The smallest sample: the least disturbed by noise."""
        return min(self.values)

    @property
    def median(self) -> float:
        """The median sample."""
        return statistics.median(self.values)


def per_call(func: Callable[[], object], calls: int) -> float:
    """Return the seconds per call of *calls* calls of *func*, with the collector off."""
    repeat = itertools.repeat(None, calls)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in repeat:
            func()
        elapsed = time.perf_counter() - start
    finally:
        if was_enabled:
            gc.enable()
    return elapsed / calls


def calibrate(func: Callable[[], object], sample_seconds: float = 0.02) -> int:
    """Return a number of calls of *func* that takes about *sample_seconds*."""
    calls = 1
    while True:
        seconds = per_call(func, calls) * calls
        if seconds >= sample_seconds / 4 or calls >= 1 << 24:
            return max(1, int(calls * sample_seconds / max(seconds, 1e-9)))
        calls *= 4


T = TypeVar("T")


def rotated(variants: Mapping[str, Callable[[], T]], rounds: int) -> dict[str, list[T]]:
    """Take *rounds* samples of every variant, rotating their order each round.

    So a burst of noise hits every variant alike. Each variant takes one sample.
    """
    names = list(variants)
    taken: dict[str, list[T]] = {name: [] for name in names}
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            taken[name].append(variants[name]())
    return taken


def interleaved(variants: Mapping[str, Callable[[], float]], rounds: int) -> dict[str, Samples]:
    """Measure every variant *rounds* times (`rotated`); each sample in seconds."""
    return {name: Samples(tuple(values)) for name, values in rotated(variants, rounds).items()}


def compare_calls(
    funcs: Mapping[str, Callable[[], object]], rounds: int, sample_seconds: float = 0.02
) -> dict[str, Samples]:
    """Per-call seconds of each no-argument function, in interleaved rounds.

    Each function is warmed up and calibrated on its own, so every sample of every
    variant lasts about *sample_seconds*.
    """
    counts = {name: calibrate(func, sample_seconds) for name, func in funcs.items()}

    def sampler(name: str) -> Callable[[], float]:
        func, calls = funcs[name], counts[name]
        return lambda: per_call(func, calls)

    return interleaved({name: sampler(name) for name in funcs}, rounds)


def run_threads(threads: int, target: Callable[[], Any]) -> float:
    """Run *target* once on each of *threads* fresh threads; return the wall seconds.

    The clock starts when every thread is ready (a barrier releases them together), so
    thread start-up is not measured, and stops when the last one is done.
    """
    barrier = threading.Barrier(threads + 1)

    def body() -> None:
        barrier.wait()
        target()

    workers = [threading.Thread(target=body, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    start = time.perf_counter()
    for worker in workers:
        worker.join()
    return time.perf_counter() - start


def us(seconds: float) -> str:
    """Format seconds as microseconds."""
    return f"{seconds * 1e6:.2f} us"


def ms(seconds: float) -> str:
    """Format seconds as milliseconds."""
    return f"{seconds * 1e3:.1f} ms"


# -- output --------------------------------------------------------------------------------


def format_table(rows: Iterable[Row]) -> str:
    """Return the rows as a fixed-width text table, details on their own indented line."""
    rows = list(rows)
    width = max([len("benchmark"), *(len(row.name) for row in rows)])
    lines = [f"{'benchmark':<{width}}  {'measured':>9}  {'target':>7}  result"]
    lines.append("-" * len(lines[0]))
    for row in rows:
        target = "-" if row.target is None else f"<= {row.target:g}"
        lines.append(f"{row.name:<{width}}  {row.ratio:>9.3f}  {target:>7}  {row.verdict}")
        lines.append(f"    {row.detail}")
    return "\n".join(lines)


def print_report(title: str, rows: Iterable[Row], notes: Iterable[str] = ()) -> None:
    """Print a titled table of *rows*, followed by *notes*."""
    print(title)
    print("=" * len(title))
    print(format_table(rows))
    for note in notes:
        print(f"* {note}")


# -- helpers for the executor benchmarks and the runner -------------------------------------


PRODUCTION_LOGGING = (
    'structlog: rs.configure_logging(format="json", level="info") as an application would '
    "(merge_contextvars, add_log_level, TimeStamper(iso, utc), dict_tracebacks, JSONRenderer), "
    "every event rendered to a sink that counts and discards it"
)


def configure_production_logging(sink: CountingSink) -> str:
    """Configure structlog with the library's own production setup, rendering into *sink*.

    Every INFO event is really rendered as a JSON line (the cost a production run pays),
    then counted and dropped.
    """
    rs.configure_logging(format="json", stream=cast("TextIO", sink), level="info")
    return PRODUCTION_LOGGING


def wall(func: Callable[[], object]) -> float:
    """Return the wall seconds of one call of *func*."""
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def machine_lines() -> list[str]:
    """Describe when and where the benchmarks ran: date, Python, CPUs, platform."""
    now = dt.datetime.now(dt.timezone.utc)
    return [
        f"date: {now:%Y-%m-%d %H:%M} UTC",
        f"Python {sys.version.split()[0]} ({platform.python_implementation()})",
        f"CPUs: {os.cpu_count()}",
        f"platform: {platform.platform()} ({platform.machine()})",
    ]
