"""Import cost: ``import resilient_scan`` next to ``import stamina``, in fresh interpreters.

1. Each sample is a fresh interpreter that times the import statement alone
   (``time.perf_counter`` around it: the interpreter's own start-up is not counted). The
   two imports alternate (A B, B A, ...) so that noise hits both alike; each keeps its best
   sample. Both run from cached bytecode, as installed packages do: one import of each
   first writes it (``PYTHONDONTWRITEBYTECODE`` is dropped for these interpreters, else a
   source tree would be compiled anew on every sample). Target: resilient_scan <= 1.2x
   stamina.
2. Where the time goes: ``python -X importtime -c "import resilient_scan"`` a few times;
   each module's own (self) time, best of the runs. Listed: the costliest modules, and the
   modules resilient_scan loads that stamina does not (what the ratio is made of).

Run directly (``python benchmarks/bench_import.py [--quick]``) to print the table and the
lists, or call `run` for the rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from _common import Row, Samples, interleaved, ms, print_report  # benchmarks/ is on sys.path

ROUNDS = 21
PROFILE_RUNS = 7
TOP = 12

TIMER = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


# The environment of the measured interpreters: bytecode may be written and read.
ENVIRONMENT = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _fresh_import(module: str) -> float:
    """Seconds one fresh interpreter takes to import *module* (start-up excluded)."""
    done = subprocess.run(  # noqa: S603 - this interpreter, our own one-liner
        [sys.executable, "-c", TIMER.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        env=ENVIRONMENT,
    )
    return float(done.stdout.strip())


@dataclass(frozen=True)
class ModuleCost:
    """One module's own import time (best of the runs), in seconds."""

    name: str
    self_seconds: float
    cumulative_seconds: float


def profile(module: str, runs: int) -> dict[str, ModuleCost]:
    """Each module's best self and cumulative time over *runs* ``-X importtime`` runs."""
    best: dict[str, ModuleCost] = {}
    for _ in range(runs):
        done = subprocess.run(  # noqa: S603 - this interpreter, our own one-liner
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            capture_output=True,
            text=True,
            check=True,
            env=ENVIRONMENT,
        )
        for line in done.stderr.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            own, cumulative, name = line.removeprefix("import time:").split("|")
            cost = ModuleCost(name.strip(), int(own) / 1e6, int(cumulative) / 1e6)
            known = best.get(cost.name)
            if known is None or cost.self_seconds < known.self_seconds:
                best[cost.name] = cost
    return best


def _top(costs: Iterable[ModuleCost], count: int) -> list[ModuleCost]:
    return sorted(costs, key=lambda cost: cost.self_seconds, reverse=True)[:count]


def _lines(costs: Iterable[ModuleCost]) -> list[str]:
    return [f"  {ms(cost.self_seconds):>8}  {cost.name}" for cost in costs]


def import_ratio(rounds: int) -> tuple[list[Row], dict[str, Samples]]:
    """Benchmark 1: the import ratio, fresh interpreters, interleaved."""
    for module in ("resilient_scan", "stamina"):
        _fresh_import(module)  # writes the bytecode the samples then read
    samples = interleaved(
        {
            "resilient_scan": lambda: _fresh_import("resilient_scan"),
            "stamina": lambda: _fresh_import("stamina"),
        },
        rounds,
    )
    ours, theirs = samples["resilient_scan"], samples["stamina"]
    detail = (
        f"import resilient_scan best {ms(ours.best)} (median {ms(ours.median)}); "
        f"import stamina best {ms(theirs.best)} (median {ms(theirs.median)}); "
        f"ratio of medians {ours.median / theirs.median:.3f}; "
        f"best of {rounds} fresh interpreters each, interleaved"
    )
    row = Row.check("import: resilient_scan / stamina", ours.best / theirs.best, 1.2, detail)
    return [row], samples


def where_the_time_goes(runs: int) -> list[str]:
    """Benchmark 2: the costliest modules, and those stamina does without."""
    ours = profile("resilient_scan", runs)
    theirs = profile("stamina", runs)
    own = [cost for name, cost in ours.items() if name.split(".")[0] == "resilient_scan"]
    extra = [cost for name, cost in ours.items() if name not in theirs]
    lines = [f"costliest modules of import resilient_scan (self time, best of {runs} runs):"]
    lines += _lines(_top(ours.values(), TOP))
    lines.append(
        f"resilient_scan's own modules: {ms(sum(c.self_seconds for c in own))} in "
        f"{len(own)} modules; the costliest:"
    )
    lines += _lines(_top(own, TOP))
    lines.append(
        f"modules resilient_scan loads and stamina does not: {len(extra)}, "
        f"{ms(sum(c.self_seconds for c in extra))} self time in all; the costliest:"
    )
    lines += _lines(_top(extra, TOP))
    return lines


def run(*, quick: bool = False) -> list[Row]:
    """Run the import benchmark and return its rows; *quick* takes fewer rounds."""
    rows, _ = import_ratio(7 if quick else ROUNDS)
    return rows


def main() -> int:
    """Print the table and where the time goes; exit status 1 when the target is missed."""
    quick = "--quick" in sys.argv[1:]
    rows, _ = import_ratio(7 if quick else ROUNDS)
    notes = where_the_time_goes(3 if quick else PROFILE_RUNS)
    print_report("resilient_scan import benchmark", rows)
    print()
    print("\n".join(notes))
    return 0 if all(row.passed is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
