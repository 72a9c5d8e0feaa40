"""The command line's arguments: ``resilient-scan [--version] {demo,run} ...``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import NoReturn

from resilient_scan._report import FAILED

__all__ = ["FAIL_ON", "PROG", "Exit", "parse"]

PROG = "resilient-scan"

#: Statuses that fail the command, per --fail-on. "skipped" (disabled by config) never does.
FAIL_ON: Mapping[str, frozenset[str]] = {
    "never": frozenset(),
    "error": frozenset({"error"}),
    "any": frozenset({*(status.value for status in FAILED), "cancelled"}),
}

_CODE_WARNING = (
    "A config file names modules and functions to import, and importing runs their code:"
    " a config file is code. Run only config files you trust, as you would a Python script."
)


class Exit(Exception):  # noqa: N818 - control flow, not an error
    """argparse wants to end the program (help, version, usage error) with *status*."""

    def __init__(self, status: int) -> None:
        """Remember *status*."""
        super().__init__(status)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """An argument parser that raises instead of exiting, so `main` can return a status."""

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            self._print_message(message, sys.stderr)
        raise Exit(status)


def _version() -> str:
    import resilient_scan  # noqa: PLC0415 - the version is read from the package metadata

    return str(resilient_scan.__version__)


def _port(text: str) -> int:
    """A TCP port number for ``--metrics`` (0: any free port)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:  # noqa: PLR2004 - the TCP port range
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, got {text!r}")
    return port


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Resilience layers and a concurrent executor for scanner pipelines.",
        epilog=_CODE_WARNING,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    demo = commands.add_parser(
        "demo",
        help="run the demo pipeline against an embedded API simulator",
        description=(
            "Start an embedded API simulator, run eight scanners against it and show each"
            " resilience layer at work; write the first run's report page."
        ),
    )
    demo.add_argument(
        "--json", action="store_true", help="JSON log lines and a final JSON summary line"
    )
    demo.add_argument(
        "--quick", action="store_true", help="shorter latencies and limits (about 3 s)"
    )
    demo.add_argument(
        "--metrics",
        metavar="PORT",
        type=_port,
        help="serve Prometheus metrics on http://127.0.0.1:PORT/metrics while the demo runs"
        " (needs the prometheus extra)",
    )
    demo.add_argument(
        "--html",
        metavar="FILE",
        help="where to write the report page (default: resilient-scan-demo.html in the"
        " temporary directory)",
    )
    run = commands.add_parser(
        "run",
        help="run your scanners from a TOML config file (the file is code: see below)",
        description=(
            "Run the scanners named in CONFIG's [resilient_scan] table with the executor"
            " settings of its [discovery] tables, and print the report. " + _CODE_WARNING
        ),
    )
    run.add_argument("config", metavar="CONFIG", help="the TOML config file")
    run.add_argument(
        "--json",
        action="store_true",
        help="print the report as JSON on stdout (logs, and what scanners print, go to stderr)",
    )
    run.add_argument("--output", metavar="FILE", help="also write the report as JSON to FILE")
    run.add_argument(
        "--html", metavar="FILE", help="also write the report as a self-contained HTML page"
    )
    run.add_argument(
        "--metrics",
        metavar="PORT",
        type=_port,
        help="serve Prometheus metrics on http://127.0.0.1:PORT/metrics while the scanners run",
    )
    run.add_argument(
        "--traceback",
        action="store_true",
        help="show the full traceback of each scanner that raised",
    )
    run.add_argument(
        "--fail-on",
        choices=tuple(FAIL_ON),
        default="error",
        help=(
            "exit 1 when a scanner ended in: 'error' (raised or returned garbage; the"
            " default), 'any' failure (error, timeout, circuit_open or cancelled), or"
            " 'never'. Disabled (skipped) scanners never fail the run."
        ),
    )
    return parser


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse *argv*; print help and usage errors on stderr.

    Raises:
        Exit: when argparse would end the program (``--help``, ``--version``, bad usage);
            with no command, after printing the help (status 2).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        raise Exit(2)
    return args
