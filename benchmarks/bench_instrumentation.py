"""Instrumentation overhead: what the seam and each hook cost on the happy path.

Every variant runs the same call, ``resilient(retry=True, breaker=True)`` around a trivial
function, with a different set of hooks installed; the variants are measured side by side
in interleaved rounds (the hooks are switched before each sample), counting wall time and
process CPU. Samples are short (5 ms, 41 rounds): on a busy machine a short sample is more
often undisturbed, so the best of them is the variant's own cost.

1. Default hooks, standard logging at WARNING (structlog not configured), vs
   ``tenacity.retry`` alone on the same function; target ratio <= 0.1.
2. The Prometheus hook added to the default hooks: extra microseconds per call; target <= 2.
   Each call is counted in ``resilient_scan_calls_total`` (checked after the samples: the
   counter must have grown by exactly the calls made).
3. The OpenTelemetry hook with a no-op tracer provider (and the global meter provider,
   unset) added to the default hooks: extra microseconds per call; target <= 2.

With a metrics hook installed, each call builds and emits one ``call.finished`` event (the
hooks take no attempt events, so attempts are not timed one by one). Context rows: no hooks
at all; the OpenTelemetry hook with the SDK's tracer recording a span per attempt; the
parts of the added cost (building a ``call.finished``, each hook handling one, ``wanted()``
when nobody listens).

Run directly (``python benchmarks/bench_instrumentation.py [--quick]``) or call `run`.
"""

from __future__ import annotations

import itertools
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import tenacity
from _common import (  # benchmarks/ is on sys.path when a benchmark runs as a script
    Row,
    calibrate,
    print_report,
    us,
)
from bench_layers import Costs, interleaved, timed
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

import resilient_scan as rs
from resilient_scan._instrument import wanted
from resilient_scan.instrumentation import (
    CallFinished,
    Hook,
    LogHook,
    get_hooks,
    set_hooks,
)
from resilient_scan.opentelemetry import OpenTelemetryHook
from resilient_scan.prometheus import PrometheusHook

MICRO_ROUNDS = 41
SAMPLE_SECONDS = 0.005


def work(x: int) -> int:
    """The trivial function every variant wraps."""
    return x + 1


@contextmanager
def standard_logging_at_warning() -> Iterator[str]:
    """Standard logging at WARNING with structlog unconfigured; the state before restored."""
    structlog = sys.modules.get("structlog")
    saved_structlog = structlog.get_config() if structlog is not None else None
    if structlog is not None:
        structlog.reset_defaults()  # is_configured() is False: LogHook takes standard logging
    logger = logging.getLogger("resilient_scan")
    saved_level = logger.level
    logger.setLevel(logging.WARNING)
    saved_hooks = get_hooks()
    try:
        yield "default hooks (LogHook), standard logging at WARNING, structlog not configured"
    finally:
        set_hooks(saved_hooks)
        logger.setLevel(saved_level)
        if structlog is not None and saved_structlog is not None:
            structlog.configure(**saved_structlog)


def _hook_sets(registry: CollectorRegistry) -> dict[str, tuple[Hook, ...]]:
    recording = TracerProvider()
    recording.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    return {
        "no hooks": (),
        "default": (LogHook(),),
        "default+prometheus": (LogHook(), PrometheusHook(registry)),
        "default+otel no-op": (
            LogHook(),
            OpenTelemetryHook(tracer_provider=trace.NoOpTracerProvider()),
        ),
        "default+otel sdk": (LogHook(), OpenTelemetryHook(tracer_provider=recording)),
    }


Sampler = Callable[[], tuple[float, float]]


def _sampler(hooks: Sequence[Hook], func: Callable[[], object]) -> Sampler:
    """Per-call (wall, process CPU) of *func* with *hooks* installed, ~20 ms a sample."""
    set_hooks(hooks)
    for _ in range(200):  # warm up: the first call may resolve something
        func()
    calls = calibrate(func, SAMPLE_SECONDS)

    def loop() -> None:
        for _ in itertools.repeat(None, calls):
            func()

    def sample() -> tuple[float, float]:
        set_hooks(hooks)
        return timed(loop, calls)

    return sample


def _counted(registry: CollectorRegistry) -> float:
    value = registry.get_sample_value(
        "resilient_scan_calls_total", {"function": "work", "outcome": "ok", "error_type": ""}
    )
    return 0.0 if value is None else value


def measure(rounds: int) -> tuple[dict[str, Costs], str]:
    """Per-call costs of every variant, in interleaved rounds; and the counting check."""
    ours = rs.resilient(retry=True, breaker=True)(work)
    theirs = tenacity.retry(stop=tenacity.stop_after_attempt(3))(work)
    registry = CollectorRegistry()
    hook_sets = _hook_sets(registry)
    event = CallFinished("work", "ok", 0.001)
    prometheus = hook_sets["default+prometheus"][1]
    otel = hook_sets["default+otel no-op"][1]
    samplers: dict[str, Sampler] = {
        "tenacity": _sampler(hook_sets["default"], lambda: theirs(1)),
        "bare": _sampler(hook_sets["default"], lambda: work(1)),
        "wanted, nobody listens": _sampler((), lambda: wanted(CallFinished)),
        "build call.finished": _sampler((), lambda: CallFinished("work", "ok", 0.001)),
        "prometheus hook alone": _sampler((), lambda: prometheus(event)),
        "otel no-op hook alone": _sampler((), lambda: otel(event)),
    }
    for label, hooks in hook_sets.items():
        samplers[f"resilient, {label}"] = _sampler(hooks, lambda: ours(1))
    costs = interleaved(samplers, rounds)
    # The Prometheus rows count for real: every call made through the hook is in the counter.
    set_hooks(hook_sets["default+prometheus"])
    before = _counted(registry)
    calls = 10_000
    for _ in range(calls):
        ours(1)
    counted = _counted(registry) - before
    set_hooks(None)
    if counted != calls:
        raise RuntimeError(f"the Prometheus hook counted {counted:g} of {calls} calls")
    check = f"resilient_scan_calls_total grew by {counted:g} for {calls} calls made with it"
    return costs, check


def _pair(costs: Costs) -> str:
    return f"{us(costs.best)} (median {us(costs.median)}, CPU {us(costs.cpu_median)})"


def _added(costs: dict[str, Costs], label: str) -> tuple[float, str]:
    base, hooked = costs["resilient, default"], costs[f"resilient, {label}"]
    added = hooked.best - base.best
    # The same difference as a share of tenacity's call, measured alongside: a figure
    # that holds on a faster or slower (or busier) machine, unlike microseconds.
    share = added / costs["tenacity"].best
    detail = (
        f"per call: with {label} {_pair(hooked)}; default hooks {_pair(base)}; difference of "
        f"bests {us(added)}, of medians {us(hooked.median - base.median)}, of CPU medians "
        f"{us(hooked.cpu_median - base.cpu_median)}; {share:.3f}x tenacity.retry's call "
        f"({us(costs['tenacity'].best)})"
    )
    return added * 1e6, detail


def rows_from(costs: dict[str, Costs], rounds: int, setup: str, check: str) -> list[Row]:
    """The table's rows from the samples."""
    default, stock = costs["resilient, default"], costs["tenacity"]
    note = f"best of {rounds} interleaved rounds; {setup}"
    rows = [
        Row.check(
            "instrumented happy path: resilient / tenacity",
            default.best / stock.best,
            0.1,
            f"per call: resilient(retry, breaker) with the default hooks {_pair(default)}; "
            f"tenacity.retry(stop_after_attempt(3)) {_pair(stock)}; bare call "
            f"{_pair(costs['bare'])}; ratio of medians {default.median / stock.median:.3f}; "
            f"{note}",
        ),
    ]
    for label, name in (
        ("default+prometheus", "prometheus hook"),
        ("default+otel no-op", "otel hook, no-op tracer"),
    ):
        added, detail = _added(costs, label)
        if label == "default+prometheus":
            detail += f"; {check}"
        rows.append(Row.check(f"{name}: us added per call", added, 2.0, detail))
    no_hooks = costs["resilient, no hooks"]
    rows.append(
        Row.context(
            "default hooks: us added per call vs no hooks",
            (default.best - no_hooks.best) * 1e6,
            f"per call: no hooks {_pair(no_hooks)}; default hooks {_pair(default)}",
        )
    )
    added, detail = _added(costs, "default+otel sdk")
    rows.append(
        Row.context(
            "otel hook, recording SDK tracer: us added per call",
            added,
            detail + "; a span per attempt, exported to memory",
        )
    )
    for label, name in (
        ("build call.finished", "building a call.finished event"),
        ("prometheus hook alone", "prometheus hook handling call.finished"),
        ("otel no-op hook alone", "otel hook (no-op tracer) handling call.finished"),
        ("wanted, nobody listens", "wanted() with nobody listening"),
    ):
        part = costs[label]
        rows.append(
            Row.context(
                f"{name}: ns",
                part.best * 1e9,
                f"per event {_pair(part)}: a part of the added cost",
            )
        )
    return rows


def run(*, quick: bool = False) -> list[Row]:
    """Run the instrumentation benchmarks and return their rows."""
    rounds = 5 if quick else MICRO_ROUNDS
    with standard_logging_at_warning() as setup:
        costs, check = measure(rounds)
    return rows_from(costs, rounds, setup, check)


def main() -> int:
    """Print the table; exit status 1 when a target is missed."""
    rows = run(quick="--quick" in sys.argv[1:])
    versions = (
        f"Python {sys.version.split()[0]}, tenacity {_version('tenacity')}, "
        f"prometheus-client {_version('prometheus-client')}, "
        f"opentelemetry-sdk {_version('opentelemetry-sdk')}, resilient_scan {rs.__version__}"
    )
    print_report("resilient_scan instrumentation benchmarks", rows, [versions])
    return 0 if all(row.passed is not False for row in rows) else 1


def _version(package: str) -> str:
    from importlib.metadata import version  # noqa: PLC0415

    return version(package)


if __name__ == "__main__":
    sys.exit(main())
