"""The TOML file of ``resilient-scan run``: its schema, and importing what it names.

A config file names modules and functions to import, and imports run their code: a config
file is code. Run only files you trust, as you would a Python script.

The file is the established application config (``[discovery]`` tables, or just
``[scanner_execution]``) plus a ``[resilient_scan]`` table saying where the scanners live::

    [resilient_scan]
    scanners = ["my_scanners:registry", "more.scanners:volume_spike"]
    state = "my_scanners:initial_state"   # optional: a mapping or a function returning one
    path = ["src"]                        # optional: import roots, relative to this file

The command owns its whole file, so a ``scanners.NAME`` or ``pipelines.NAME`` table that
matches no scanner of the run is an error (a typo would otherwise be ignored silently).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resilient_scan._console import console_text
from resilient_scan._errors import ConfigError
from resilient_scan._executor import ScanExecutor
from resilient_scan._scanner import ScannerRegistry, scanner_info
from resilient_scan._settings import close_matches, reject_unknown
from resilient_scan._text import describe_error
from resilient_scan.discovery import DISCOVERY_KEYS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 has no tomllib; tomli is the same parser
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "SETTINGS_TABLE",
    "CliError",
    "RunConfig",
    "build_executor",
    "check_tables",
    "import_roots",
    "load_scanners",
    "load_state",
    "read_config",
    "resolve",
]

SETTINGS_TABLE = "resilient_scan"
_SETTINGS_KEYS = ("scanners", "state", "path")
_MISSING: Any = object()


class CliError(Exception):
    """A problem the user can fix (config, references, files): printed without traceback."""


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
    except RecursionError:
        raise CliError(f"{path}: invalid TOML: arrays or tables nested too deeply") from None
    try:
        return _checked(path, document)
    except ConfigError as exc:
        raise CliError(f"{path}: {exc}") from None


def _checked(path: Path, document: dict[str, Any]) -> RunConfig:
    table = document.get(SETTINGS_TABLE)
    if table is None:
        raise ConfigError(
            SETTINGS_TABLE,
            'missing: add a [resilient_scan] table with scanners = ["module:attribute", ...]',
        )
    if not isinstance(table, Mapping):
        raise ConfigError(SETTINGS_TABLE, f"must be a table, got {table!r}")
    reject_unknown(table, _SETTINGS_KEYS, (SETTINGS_TABLE,))
    scanners = _strings(table.get("scanners"), f"{SETTINGS_TABLE}.scanners", required=True)
    for number, reference in enumerate(scanners):
        _reference(reference, f"{SETTINGS_TABLE}.scanners[{number}]")
    state = table.get("state")
    if state is not None:
        if not isinstance(state, str):
            raise ConfigError(
                f"{SETTINGS_TABLE}.state", f"must be a 'module:attribute' string, got {state!r}"
            )
        _reference(state, f"{SETTINGS_TABLE}.state")
    raw_roots = table.get("path")
    if isinstance(raw_roots, str):
        raw_roots = [raw_roots]
    here = path.resolve().parent
    roots = (
        (here,)
        if raw_roots is None
        else tuple(
            here / root for root in _strings(raw_roots, f"{SETTINGS_TABLE}.path", required=False)
        )
    )
    return RunConfig(path, document, scanners, state, roots)


def _strings(value: object, key: str, *, required: bool) -> tuple[str, ...]:
    if value is None and required:
        raise ConfigError(key, 'missing: list the scanners, e.g. ["my_scanners:registry"]')
    if not isinstance(value, list) or (required and not value):
        wanted = "a non-empty list of strings" if required else "a list of strings"
        raise ConfigError(key, f"must be {wanted}, got {value!r}")
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(key, f"must be a list of non-empty strings, got {item!r}")
    return tuple(item.strip() for item in value)


def _reference(reference: str, key: str) -> tuple[str, str]:
    module, sep, attribute = reference.partition(":")
    if not sep or not module.strip() or not attribute.strip():
        raise ConfigError(key, f"must be 'module:attribute', got {reference!r}")
    return module.strip(), attribute.strip()


def _settings(config: RunConfig) -> dict[str, Any]:
    """The executor's part of the document: everything but ``[resilient_scan]``.

    Raises:
        ConfigError: for a table of the short shape (``[scanner_execution]``, ...) beside
            ``[discovery]``, where it would be silently ignored.
    """
    settings = {key: value for key, value in config.document.items() if key != SETTINGS_TABLE}
    if "discovery" in settings:
        for key in DISCOVERY_KEYS:
            if key in settings:
                raise ConfigError(
                    (key,),
                    f"ignored beside the [discovery] table, which holds this file's settings:"
                    f" move it to [discovery.{key}]",
                )
    return settings or {"scanner_execution": {}}  # only [resilient_scan]: the defaults


def build_executor(config: RunConfig) -> ScanExecutor:
    """The executor the file's settings describe.

    Raises:
        CliError: naming the file and the bad key.
    """
    try:
        return ScanExecutor.from_config(_settings(config))
    except ConfigError as exc:
        raise CliError(f"{config.path}: {exc}") from None


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
        CliError: naming the reference and why it cannot be imported (a module that
            raises while importing, `SystemExit` included).
    """
    module_name, attribute = _reference(reference, key)
    try:
        target: Any = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # whatever the user's module raises importing
        raise CliError(f"{key}: cannot import {reference!r}: {describe_error(exc)}") from None
    for part in attribute.split("."):
        target = getattr(target, part, _MISSING)
        if target is _MISSING:
            raise CliError(
                f"{key}: cannot import {reference!r}: {module_name!r} has no attribute"
                f" {attribute!r}"
            )
    return target


def load_scanners(config: RunConfig, methods: Sequence[str] = ("scan",)) -> list[Any]:
    """Import every scanner reference; flatten lists and registries into one list.

    *methods*: the method names a scanner object or class may have (the file's
    ``scan_method`` settings).

    Raises:
        CliError: naming the key and reference that cannot be imported or is not a scanner.
    """
    found: list[Any] = []
    for number, reference in enumerate(config.scanners):
        key = f"{SETTINGS_TABLE}.scanners[{number}]"
        target = resolve(reference, key)
        items = list(target) if isinstance(target, (ScannerRegistry, list, tuple)) else [target]
        problem = next(filter(None, (_not_a_scanner(item, methods) for item in items)), None)
        if problem is not None:
            raise CliError(f"{key}: {reference!r} is not a scanner: {problem}")
        found.extend(items)
    return found


def _not_a_scanner(item: object, methods: Sequence[str]) -> str | None:
    """Return why *item* is not a scanner, or None if it is one."""
    try:
        scanner_info(item, methods)
    except ConfigError as exc:
        return exc.problem
    return None


def load_state(config: RunConfig) -> Mapping[str, Any]:
    """Return the state named by the config (a mapping, or a function returning one), or {}.

    Raises:
        CliError: naming the reference if it cannot be imported, fails (`SystemExit`
            included: a factory that ends the program is a failure too) or is no mapping.
    """
    if config.state is None:
        return {}
    key = f"{SETTINGS_TABLE}.state"
    target = resolve(config.state, key)
    if callable(target) and not isinstance(target, Mapping):
        try:
            target = target()
        except SystemExit as exc:
            raise CliError(
                f"{key}: {config.state}() raised SystemExit({exc.code!r}): it tried to end the"
                " program instead of returning the state"
            ) from None
        except Exception as exc:  # the user's state factory
            raise CliError(f"{key}: {config.state}() raised {describe_error(exc)}") from None
    if not isinstance(target, Mapping):
        raise CliError(
            f"{key}: {config.state!r} must be a mapping or a function"
            f" returning one, got {type(target).__name__}"
        )
    return target


def check_tables(
    config: RunConfig, scanners: Sequence[Any], methods: Sequence[str] = ("scan",)
) -> None:
    """Refuse ``scanners.NAME`` and ``pipelines.NAME`` tables that match no scanner.

    Raises:
        CliError: naming the table, with the close matches among the run's scanners (or
            pipelines) and the full list.
    """
    settings = _settings(config)
    root = settings.get("discovery", settings)
    prefix = "discovery." if "discovery" in settings else ""
    if not isinstance(root, Mapping):
        return  # from_config has said what is wrong with it already
    infos = [scanner_info(item, methods) for item in scanners]
    known = {
        "scanners": [info.name for info in infos],
        "pipelines": list(dict.fromkeys(info.pipeline for info in infos if info.pipeline)),
    }
    for section, names in known.items():
        tables = root.get(section)
        if not isinstance(tables, Mapping):
            continue
        for name in tables:
            if name in names:
                continue
            close = close_matches(name, names, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            noun = "scanner" if section == "scanners" else "pipeline of the scanners"
            listed = ", ".join(names) if names else "none"
            raise CliError(
                f"{prefix}{section}.{console_text(name, 100)}: matches no {noun}"
                f" in this run{hint}; the {section} are: {listed}"
            )
