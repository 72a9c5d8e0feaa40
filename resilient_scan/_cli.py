"""The ``resilient-scan`` command: ``demo`` and ``run CONFIG``.

``resilient-scan demo`` shows every layer at work against an embedded API simulator.
``resilient-scan run CONFIG`` runs your own scanners from a TOML file in the established
config shape plus a ``[resilient_scan]`` table saying where the scanners live::

    [resilient_scan]
    scanners = ["my_scanners:registry", "more.scanners:volume_spike"]
    state = "my_scanners:initial_state"   # optional: a mapping or a function returning one
    path = ["src"]                        # optional: import roots, relative to this file

    [discovery.scanner_execution]
    concurrent = true
    max_workers = 8
    timeout_seconds = 30

    [discovery.scanners.insider_buying]
    enabled = true

    [discovery.pipelines.momentum]
    enabled = true

The CLI is an application, so unlike the library it configures structlog (through
`configure_logging`), and restores the previous configuration when it returns.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, NoReturn, TextIO

import resilient_scan as rs

from ._demo import DemoSettings, run_demo
from ._demo.output import candidate_lines, logging_for, result_table
from ._text import describe_error
from ._report import FAILED
from ._scanner import scanner_info
from ._settings import reject_unknown

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 has no tomllib; tomli is the same parser
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

PROG = "resilient-scan"
EXIT_FAILED = 1  # scanners failed, as --fail-on decides
EXIT_USAGE = 2  # bad arguments, bad config file, scanners that cannot be imported

#: Statuses that fail the command, per --fail-on. "skipped" (disabled by config) never does.
FAIL_ON: Mapping[str, frozenset[str]] = {
    "never": frozenset(),
    "error": frozenset({"error"}),
    "any": frozenset({*(status.value for status in FAILED), "cancelled"}),
}

_SETTINGS_TABLE = "resilient_scan"
_MISSING: Any = object()
_SETTINGS_KEYS = ("scanners", "state", "path")


class CliError(Exception):
    """A problem the user can fix (config, references, files): printed without traceback."""


def _write(*lines: str, stream: TextIO | None = None) -> None:
    """Write *lines* to *stream* (default: the current `sys.stdout`)."""
    out = stream if stream is not None else sys.stdout
    out.write("".join(f"{line}\n" for line in lines))
    out.flush()


# -- arguments -----------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An argument parser that raises instead of exiting, so `main` can return a status."""

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            self._print_message(message, sys.stderr)
        raise _Exit(status)


class _Exit(Exception):  # noqa: N818 - internal control flow, not an error
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Resilience layers and a concurrent executor for scanner pipelines.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    demo = commands.add_parser(
        "demo",
        help="run the demo pipeline against an embedded API simulator",
        description=(
            "Start an embedded API simulator, run eight scanners against it and show each"
            " resilience layer at work. Exits 0 only when every layer's effect was observed."
        ),
    )
    demo.add_argument(
        "--json", action="store_true", help="JSON log lines and a final JSON summary line"
    )
    demo.add_argument(
        "--quick", action="store_true", help="shorter latencies and limits (about 3 s)"
    )
    run = commands.add_parser(
        "run",
        help="run your scanners from a TOML config file",
        description=(
            "Run the scanners named in CONFIG's [resilient_scan] table with the executor"
            " settings of its [discovery] tables, and print the report."
        ),
    )
    run.add_argument("config", metavar="CONFIG", help="the TOML config file")
    run.add_argument(
        "--json",
        action="store_true",
        help="print the report as JSON on stdout (logs go to stderr as JSON lines)",
    )
    run.add_argument("--output", metavar="FILE", help="also write the report as JSON to FILE")
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


def main(argv: list[str] | None = None) -> int:
    """Run the ``resilient-scan`` command with *argv* (default: the process's arguments).

    Returns the exit status: 0 on success, 1 when scanners failed as ``--fail-on`` decides
    (or the demo did not observe every layer's effect), 2 for bad arguments, a bad config
    file or a scanner that cannot be imported (with a message on stderr, no traceback).
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except _Exit as done:
        return done.status
    try:
        if args.command == "demo":
            return _demo(quick=args.quick, json_output=args.json)
        if args.command == "run":
            return _run(
                Path(args.config), json_output=args.json, output=args.output, fail_on=args.fail_on
            )
        parser.print_help(sys.stderr)
    except CliError as exc:
        _write(f"{PROG}: error: {exc}", stream=sys.stderr)
    except KeyboardInterrupt:
        _write(f"{PROG}: interrupted", stream=sys.stderr)
        return 130
    return EXIT_USAGE


# -- demo ----------------------------------------------------------------------------------


def _demo(*, quick: bool, json_output: bool) -> int:
    settings = DemoSettings.quick() if quick else DemoSettings()
    return run_demo(settings, json_output=json_output)


# -- run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunConfig:
    """A config file, read and checked: what ``resilient-scan run`` needs to run it.

    Attributes:
        path: The config file.
        document: The whole TOML document.
        scanners: The ``module:attribute`` references of the scanners.
        state: The reference of the state, if any.
        roots: Import roots (absolute).
    """

    path: Path
    document: Mapping[str, Any]
    scanners: tuple[str, ...]
    state: str | None
    roots: tuple[Path, ...]


def read_config(path: Path) -> RunConfig:
    """Read and check the config file at *path*.

    Raises:
        CliError: naming the file, and the key and problem (or the TOML syntax error).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise CliError(f"{path}: not UTF-8 text: {exc}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CliError(f"{path}: invalid TOML: {exc}") from None
    try:
        return _checked(path, document)
    except rs.ConfigError as exc:
        raise CliError(f"{path}: {exc}") from None


def _checked(path: Path, document: dict[str, Any]) -> RunConfig:
    table = document.get(_SETTINGS_TABLE)
    if table is None:
        raise rs.ConfigError(
            _SETTINGS_TABLE,
            'missing: add a [resilient_scan] table with scanners = ["module:attribute", ...]',
        )
    if not isinstance(table, Mapping):
        raise rs.ConfigError(_SETTINGS_TABLE, f"must be a table, got {table!r}")
    reject_unknown(table, _SETTINGS_KEYS, (_SETTINGS_TABLE,))
    scanners = _strings(table.get("scanners"), f"{_SETTINGS_TABLE}.scanners", required=True)
    for number, reference in enumerate(scanners):
        _reference(reference, f"{_SETTINGS_TABLE}.scanners[{number}]")
    state = table.get("state")
    if state is not None:
        if not isinstance(state, str):
            raise rs.ConfigError(
                f"{_SETTINGS_TABLE}.state", f"must be a 'module:attribute' string, got {state!r}"
            )
        _reference(state, f"{_SETTINGS_TABLE}.state")
    raw_roots = table.get("path")
    if isinstance(raw_roots, str):
        raw_roots = [raw_roots]
    here = path.resolve().parent
    roots = (
        (here,)
        if raw_roots is None
        else tuple(
            here / root for root in _strings(raw_roots, f"{_SETTINGS_TABLE}.path", required=False)
        )
    )
    return RunConfig(path, document, scanners, state, roots)


def _strings(value: object, key: str, *, required: bool) -> tuple[str, ...]:
    if value is None and required:
        raise rs.ConfigError(key, 'missing: list the scanners, e.g. ["my_scanners:registry"]')
    if not isinstance(value, list) or (required and not value):
        wanted = "a non-empty list of strings" if required else "a list of strings"
        raise rs.ConfigError(key, f"must be {wanted}, got {value!r}")
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise rs.ConfigError(key, f"must be a list of non-empty strings, got {item!r}")
    return tuple(item.strip() for item in value)


def _reference(reference: str, key: str) -> tuple[str, str]:
    module, sep, attribute = reference.partition(":")
    if not sep or not module.strip() or not attribute.strip():
        raise rs.ConfigError(key, f"must be 'module:attribute', got {reference!r}")
    return module.strip(), attribute.strip()


@contextlib.contextmanager
def import_roots(roots: Sequence[Path]) -> Iterator[None]:
    """Put *roots* first on `sys.path` while the block runs; restore it afterwards."""
    saved = list(sys.path)
    sys.path[:0] = [str(root) for root in roots]
    try:
        yield
    finally:
        sys.path[:] = saved


def resolve(reference: str, key: str) -> Any:
    """Import ``module:attribute`` (the attribute may be dotted) and return it.

    Raises:
        CliError: naming the reference and why it cannot be imported.
    """
    module_name, attribute = _reference(reference, key)
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # whatever the user's module raises while importing
        raise CliError(f"{key}: cannot import {reference!r}: {describe_error(exc)}") from None
    for part in attribute.split("."):
        target = getattr(target, part, _MISSING)
        if target is _MISSING:
            raise CliError(
                f"{key}: cannot import {reference!r}: {module_name!r} has no attribute"
                f" {attribute!r}"
            )
    return target


def load_scanners(config: RunConfig) -> list[Any]:
    """Import every scanner reference; flatten lists and registries into one list.

    Raises:
        CliError: naming the key and reference that cannot be imported or is not a scanner.
    """
    found: list[Any] = []
    for number, reference in enumerate(config.scanners):
        key = f"{_SETTINGS_TABLE}.scanners[{number}]"
        target = resolve(reference, key)
        items = list(target) if isinstance(target, (rs.ScannerRegistry, list, tuple)) else [target]
        problem = next(filter(None, map(_not_a_scanner, items)), None)
        if problem is not None:
            raise CliError(f"{key}: {reference!r} is not a scanner: {problem}")
        found.extend(items)
    return found


def _not_a_scanner(item: object) -> str | None:
    """Return why *item* is not a scanner, or None if it is one."""
    try:
        scanner_info(item)
    except rs.ConfigError as exc:
        return exc.problem
    return None


def load_state(config: RunConfig) -> Mapping[str, Any]:
    """Return the state named by the config (a mapping, or a function returning one), or {}.

    Raises:
        CliError: naming the reference if it cannot be imported, fails or is no mapping.
    """
    if config.state is None:
        return {}
    key = f"{_SETTINGS_TABLE}.state"
    target = resolve(config.state, key)
    if callable(target) and not isinstance(target, Mapping):
        try:
            target = target()
        except Exception as exc:  # the user's state factory
            raise CliError(f"{key}: {config.state}() raised {describe_error(exc)}") from None
    if not isinstance(target, Mapping):
        raise CliError(
            f"{key}: {config.state!r} must be a mapping or a function"
            f" returning one, got {type(target).__name__}"
        )
    return target


def _executor(config: RunConfig) -> rs.ScanExecutor:
    settings = {key: value for key, value in config.document.items() if key != _SETTINGS_TABLE}
    if not settings:  # only [resilient_scan]: run with the executor's defaults
        settings = {"scanner_execution": {}}
    try:
        return rs.ScanExecutor.from_config(settings)
    except rs.ConfigError as exc:
        raise CliError(f"{config.path}: {exc}") from None


def _run(path: Path, *, json_output: bool, output: str | None, fail_on: str) -> int:
    config = read_config(path)
    executor = _executor(config)
    with import_roots(config.roots):
        try:
            scanners = load_scanners(config)
            state = load_state(config)
        except CliError as exc:
            raise CliError(f"{path}: {exc}") from None
        # JSON: the report is stdout's one document, so the log lines go to stderr.
        log_stream: TextIO = sys.stderr if json_output else sys.stdout
        with logging_for("json" if json_output else "console", log_stream):
            try:
                report = executor.run(scanners, state)
            except rs.ConfigError as exc:  # raised before anything runs: duplicate names
                raise CliError(f"{path}: {exc}") from None
    data = report.to_dict()
    if output is not None:
        try:
            Path(output).write_text(_dumps(data) + "\n", encoding="utf-8")
        except OSError as exc:
            raise CliError(f"{output}: cannot write the report: {exc.strerror or exc}") from None
    if json_output:
        _write(_dumps(data))
    else:
        _write("", *result_table(report))
        if report.candidates:
            _write("", f"{len(report.candidates)} candidates, best first:")
            _write(*candidate_lines(report, limit=10))
        if output is not None:
            _write("", f"Report written to {output}")
    failing = FAIL_ON[fail_on]
    failed = [result.name for result in report.results if result.status.value in failing]
    if failed:
        _write(
            f"{PROG}: {len(failed)} scanner{'s' if len(failed) != 1 else ''} failed"
            f" (--fail-on {fail_on}): {', '.join(failed)}",
            stream=sys.stderr,
        )
        return EXIT_FAILED
    return 0


def _json_default(value: Any) -> Any:
    """Make what scanners put in candidates JSON-ready: views, sets, dates, the rest as str."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset, tuple)) or (
        isinstance(value, Sequence) and not isinstance(value, (str, bytes))
    ):
        return list(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return str(value)


def _dumps(data: Any) -> str:
    return json.dumps(data, indent=2, default=_json_default, ensure_ascii=False)


if __name__ == "__main__":
    sys.exit(main())
