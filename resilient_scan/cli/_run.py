"""``resilient-scan run CONFIG``: your scanners from a TOML file, and the report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from resilient_scan._console import can_encode, console_text
from resilient_scan._errors import ConfigError
from resilient_scan._jsonsafe import dumps
from resilient_scan._report import ScanReport

from ._args import FAIL_ON, PROG
from ._file import (
    CliError,
    build_executor,
    check_tables,
    import_roots,
    load_scanners,
    load_state,
    read_config,
)
from ._metrics import serving_metrics
from ._output import Output, Style, candidate_lines, result_table, traceback_lines
from ._progress import Presenter
from ._session import json_logs, presented, stdout_to

__all__ = ["EXIT_FAILED", "check_writable", "run_command", "write_file"]

EXIT_FAILED = 1  # scanners failed, as --fail-on decides


def check_writable(target: str | None, what: str) -> Path | None:
    """Check, before anything runs, that *target* can be written; return it as a path.

    Raises:
        CliError: naming the file and why it cannot be written.
    """
    if target is None:
        return None
    path = Path(target)
    if path.is_dir():
        raise CliError(f"{target}: cannot write the {what}: it is a directory")
    existed = path.exists()
    try:
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise CliError(f"{target}: cannot write the {what}: {exc.strerror or exc}") from None
    if not existed:
        path.unlink(missing_ok=True)  # written after the run; leave nothing if it fails
    return path


def write_file(path: Path, text: str, what: str) -> None:
    """Write *text* to *path* as UTF-8.

    Raises:
        CliError: naming the file and why it could not be written.
    """
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"{path}: cannot write the {what}: {exc.strerror or exc}") from None


def run_command(args: argparse.Namespace, *, stdout: TextIO, stderr: TextIO) -> int:
    """Run the scanners of ``args.config``; return the exit status (0, or 1 per --fail-on).

    Raises:
        CliError: for a bad file, a reference that cannot be imported, an output that
            cannot be written: before any scanner runs.
    """
    path = Path(args.config)
    config = read_config(path)
    executor = build_executor(config)
    report_file = check_writable(args.output, "report")
    page_file = check_writable(args.html, "report page")
    out = Output(stdout)
    # JSON: the report is stdout's one document; logs and anything printed go to stderr,
    # until the report is out (a scanner left running may still print).
    with stdout_to(stderr if args.json else None):
        with import_roots(config.roots):
            try:
                methods = executor.scan_methods()
                scanners = load_scanners(config, methods)
                state = load_state(config)
                check_tables(config, scanners, methods)
            except CliError as exc:
                raise CliError(f"{path}: {exc}") from None
            showing = json_logs(stderr) if args.json else presented(out, Presenter(out))
            with serving_metrics(args.metrics, stderr), showing:
                try:
                    report = executor.run(scanners, state)
                except ConfigError as exc:  # raised before anything runs: duplicate names
                    raise CliError(f"{path}: {exc}") from None
        # The files first: they are the run's record, whatever happens to the terminal.
        if report_file is not None:
            write_file(report_file, report.to_json() + "\n", "report")
        if page_file is not None:
            write_file(page_file, report.to_html(title=f"{PROG} run {path.name}"), "report page")
        if args.json:
            ascii_only = not can_encode("\u2713\U0001f600", out.style.encoding)
            out.block([dumps(report.to_dict(), indent=2, ascii_only=ascii_only)])
            if args.traceback:
                Output(stderr).block(traceback_lines(report, Style.for_stream(stderr)))
        else:
            _show(out, report, args, report_file, page_file)
    return _status(report, args.fail_on, Output(stderr))


def _show(
    out: Output,
    report: ScanReport,
    args: argparse.Namespace,
    report_file: Path | None,
    page_file: Path | None,
) -> None:
    style = out.style
    out.block(["", *result_table(report, style)])
    count = len(report.candidates)
    if count:
        title = "1 candidate:" if count == 1 else f"{count} candidates, best first:"
        out.block(["", title, *candidate_lines(report, style, limit=10)])
    if args.traceback:
        out.block(traceback_lines(report, style))
    if report_file is not None:
        out.line("", f"Report written to {report_file}")
    if page_file is not None:
        out.line("", f"Report page written to {page_file}")


def _status(report: ScanReport, fail_on: str, err: Output) -> int:
    failing = FAIL_ON[fail_on]
    failed = [
        console_text(result.name, 100)
        for result in report.results
        if result.status.value in failing
    ]
    if not failed:
        return 0
    err.line(
        f"{PROG}: {len(failed)} scanner{'s' if len(failed) != 1 else ''} failed"
        f" (--fail-on {fail_on}): {', '.join(failed)}",
        wrap_lines=False,
    )
    return EXIT_FAILED
