"""Instrumentation overhead: what the seam and each hook cost on the happy path.

Every variant runs the same call, ``resilient(retry=True, breaker=True)`` around a trivial
function, with a different set of hooks installed; the variants are measured side by side
in interleaved rounds (the hooks are switched before each sample).

1. Default hooks, standard logging at WARNING (structlog not configured), vs
   ``tenacity.retry`` alone on the same function; target ratio <= 0.1.
2. The Prometheus hook added to the default hooks: extra microseconds per call; target <= 2.
3. The OpenTelemetry hook with a no-op tracer provider (and the global meter provider,
   unset) added to the default hooks: extra microseconds per call; target <= 2.

Rows 2 and 3 come twice: through ``resilient`` as it is, and through ``resilient`` inside a
stand-in that emits what a happy call reports once the policies emit per-call events
(``attempt.started``, ``attempt.finished``, ``call.finished``, each asked for with
``wanted`` first): so the figure holds whichever events the policies emit.

Context rows: no hooks at all; ``wanted()`` when nobody listens; the OpenTelemetry hook
with the SDK's tracer recording every span.

Run directly (``python benchmarks/bench_instrumentation.py [--quick]``) or call `run`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import tenacity
from _common import (  # benchmarks/ is on sys.path when a benchmark runs as a script
    Row,
    Samples,
    calibrate,
    interleaved,
    per_call,
    print_report,
    us,
)
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

import resilient_scan as rs
from resilient_scan._instrument import emit, wanted
from resilient_scan.instrumentation import (
    AttemptFinished,
    AttemptStarted,
    CallFinished,
    Hook,
    LogHook,
    get_hooks,
    set_hooks,
)
from resilient_scan.opentelemetry import OpenTelemetryHook
from resilient_scan.prometheus import PrometheusHook

MICRO_ROUNDS = 15
SAMPLE_SECONDS = 0.02


def work(x: int) -> int:
    """The trivial function every variant wraps."""
    return x + 1


def with_happy_events(func: Callable[[int], int]) -> Callable[[int], int]:
    """*func*, reporting what a happy call reports once the policies emit per-call events."""
    name = "work"

    def call(x: int) -> int:
        if wanted(AttemptStarted):
            emit(AttemptStarted(name, 1))
        started = time.perf_counter()
        result = func(x)
        duration = time.perf_counter() - started
        if wanted(AttemptFinished):
            emit(AttemptFinished(name, 1, "ok", duration))
        if wanted(CallFinished):
            emit(CallFinished(name, "ok", duration))
        return result

    return call


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


def _hook_sets() -> dict[str, tuple[Hook, ...]]:
    recording = TracerProvider()
    recording.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    return {
        "no hooks": (),
        "default": (LogHook(),),
        "default+prometheus": (LogHook(), PrometheusHook(CollectorRegistry())),
        "default+otel no-op": (
            LogHook(),
            OpenTelemetryHook(tracer_provider=trace.NoOpTracerProvider()),
        ),
        "default+otel sdk": (LogHook(), OpenTelemetryHook(tracer_provider=recording)),
    }


def _sampler(hooks: Sequence[Hook], func: Callable[[], object]) -> Callable[[], float]:
    set_hooks(hooks)
    calls = calibrate(func, SAMPLE_SECONDS)

    def sample() -> float:
        set_hooks(hooks)
        return per_call(func, calls)

    return sample


def measure(rounds: int) -> dict[str, Samples]:
    """Per-call seconds of every variant, in interleaved rounds."""
    ours = rs.resilient(retry=True, breaker=True)(work)
    stand_in = with_happy_events(rs.resilient(retry=True, breaker=True)(work))
    theirs = tenacity.retry(stop=tenacity.stop_after_attempt(3))(work)
    hook_sets = _hook_sets()
    event = CallFinished("work", "ok", 0.001)
    prometheus = hook_sets["default+prometheus"][1]
    otel = hook_sets["default+otel no-op"][1]
    samplers: dict[str, Callable[[], float]] = {
        "tenacity": _sampler(hook_sets["default"], lambda: theirs(1)),
        "bare": _sampler(hook_sets["default"], lambda: work(1)),
        "wanted, nobody listens": _sampler((), lambda: wanted(CallFinished)),
        "build call.finished": _sampler((), lambda: CallFinished("work", "ok", 0.001)),
        "prometheus hook alone": _sampler((), lambda: prometheus(event)),
        "otel no-op hook alone": _sampler((), lambda: otel(event)),
    }
    for label, hooks in hook_sets.items():
        samplers[f"resilient, {label}"] = _sampler(hooks, lambda: ours(1))
        samplers[f"events, {label}"] = _sampler(hooks, lambda: stand_in(1))
    return interleaved(samplers, rounds)


def _pair(samples: Samples) -> str:
    return f"{us(samples.best)} (median {us(samples.median)})"


def _added(samples: dict[str, Samples], kind: str, label: str) -> tuple[float, str]:
    base, hooked = samples[f"{kind}, default"], samples[f"{kind}, {label}"]
    added = hooked.best - base.best
    # The same difference as a share of tenacity's call, measured alongside: a figure
    # that holds on a faster or slower (or busier) machine, unlike microseconds.
    share = added / samples["tenacity"].best
    detail = (
        f"per call: with {label} {_pair(hooked)}; default hooks {_pair(base)}; "
        f"difference of medians {us(hooked.median - base.median)}; the difference is "
        f"{share:.3f}x tenacity.retry's call ({us(samples['tenacity'].best)})"
    )
    return added * 1e6, detail


def rows_from(samples: dict[str, Samples], rounds: int, setup: str) -> list[Row]:
    """The table's rows from the samples."""
    default, stock = samples["resilient, default"], samples["tenacity"]
    note = f"best of {rounds} interleaved rounds; {setup}"
    rows = [
        Row.check(
            "instrumented happy path: resilient / tenacity",
            default.best / stock.best,
            0.1,
            f"per call: resilient(retry, breaker) with the default hooks {_pair(default)}; "
            f"tenacity.retry(stop_after_attempt(3)) {_pair(stock)}; bare call "
            f"{_pair(samples['bare'])}; ratio of medians {default.median / stock.median:.3f}; "
            f"{note}",
        ),
    ]
    events = samples["events, default"]
    rows.append(
        Row.context(
            "with per-call events: resilient / tenacity",
            events.best / stock.best,
            f"per call: the stand-in emitting attempt and call events around "
            f"resilient(retry, breaker), default hooks {_pair(events)}; what row 1 becomes "
            f"once the policies emit them (each asked for with wanted() first)",
        )
    )
    for kind, what in (
        ("resilient", "resilient as it is"),
        ("events", "with per-call events"),
    ):
        for label, name in (
            ("default+prometheus", "prometheus hook"),
            ("default+otel no-op", "otel hook, no-op tracer"),
        ):
            added, detail = _added(samples, kind, label)
            rows.append(Row.check(f"{name}: us added per call ({what})", added, 2.0, detail))
    no_hooks, hooked = samples["resilient, no hooks"], samples["resilient, default"]
    rows.append(
        Row.context(
            "default hooks: us added per call vs no hooks",
            (hooked.best - no_hooks.best) * 1e6,
            f"per call: no hooks {_pair(no_hooks)}; default hooks {_pair(hooked)}",
        )
    )
    for kind, what in (("resilient", "as it is"), ("events", "with per-call events")):
        added, detail = _added(samples, kind, "default+otel sdk")
        rows.append(
            Row.context(f"otel hook, recording SDK tracer: us added ({what})", added, detail)
        )
    for label, name in (
        ("build call.finished", "building a call.finished event"),
        ("prometheus hook alone", "prometheus hook handling call.finished"),
        ("otel no-op hook alone", "otel hook (no-op tracer) handling call.finished"),
    ):
        part = samples[label]
        rows.append(
            Row.context(
                f"{name}: ns",
                part.best * 1e9,
                f"per event {_pair(part)}: a part of the rows with per-call events",
            )
        )
    probe = samples["wanted, nobody listens"]
    rows.append(
        Row.context(
            "wanted() with nobody listening: ns per call",
            probe.best * 1e9,
            f"per call {_pair(probe)}: one dict lookup and one context-variable read",
        )
    )
    return rows


def run(*, quick: bool = False) -> list[Row]:
    """Run the instrumentation benchmarks and return their rows."""
    rounds = 5 if quick else MICRO_ROUNDS
    with standard_logging_at_warning() as setup:
        samples = measure(rounds)
    return rows_from(samples, rounds, setup)


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
