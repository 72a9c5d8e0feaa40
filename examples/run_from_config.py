"""Run scanners from a config file, in code: what ``resilient-scan run`` does for you.

Reads ``pipeline.toml`` (the established ``[discovery]`` config shape), builds the executor
with ``rs.ScanExecutor.from_config``, runs the scanners of ``scanners.py`` and prints the
report. The same file works from the command line:
``resilient-scan run examples/pipeline.toml``.

Run it:  python examples/run_from_config.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import scanners  # the sibling module, importable since Python puts this directory first

import resilient_scan as rs

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]


def main() -> None:
    """Run the example pipeline and print its report."""
    rs.configure_logging(format="console")  # live monitor lines on stderr
    config = tomllib.loads(Path(__file__).with_name("pipeline.toml").read_text("utf-8"))
    executor = rs.ScanExecutor.from_config(config)  # reads config["discovery"]
    report = executor.run(scanners.registry, scanners.initial_state())

    print(f"{len(report.results)} scanners in {report.duration:.2f}s ({report.mode}):")
    for result in report.results:
        detail = result.error or result.reason or f"{len(result.candidates)} candidates"
        print(f"  {result.name:<20} {result.status:<8} attempts={result.attempts}  {detail}")
    print("Candidates, best first (one per ticker, found by every scanner in 'all_sources'):")
    for candidate in report.candidates:
        print(
            f"  {candidate['ticker']:<5} {candidate['priority']:<7}"
            f" {', '.join(candidate['all_sources'])}: {candidate['context']}"
        )
    print(f"tool logs: {report.tool_logs}")


if __name__ == "__main__":
    main()
