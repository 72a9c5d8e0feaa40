"""Trading discovery on the generic executor: candidates, their merge, tool logs, config shape.

`ScanExecutor` runs any scanner that returns a list of findings; this module is what makes
those findings trading candidates. It plugs into the executor through its hooks, and the
executor's defaults are the ones here, so ``rs.ScanExecutor()`` and
``rs.ScanExecutor.from_config(config)`` behave as a discovery pipeline expects:

- `normalize_candidate` (``normalize=``): a candidate is a dict with a ``ticker``, a
  ``source``, a ``context`` and a ``priority`` (`PRIORITIES`), repaired where it can be;
  `validate_candidate` is the seed system's stricter check (nothing repaired);
- `merge_candidates` (``merge=``): one candidate per ticker, with ``all_sources`` and
  ``all_contexts`` as the seed system's scanner node emits them, in scanner order;
- `TOOL_LOGS` (``tool_logs=``): what each scanner appended to ``state["tool_logs"]``, on
  its result and, in scanner order, on the report;
- `read_config`: the ``{"discovery": {"scanner_execution": ..., "scanners": ...,
  "pipelines": ...}}`` shape `ScanExecutor.from_config` reads.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from . import _settings
from ._errors import ConfigError, KeyPart
from ._state import DictView, to_plain

__all__ = [
    "DISCOVERY_KEYS",
    "EXECUTION_KEYS",
    "PRIORITIES",
    "TOOL_LOGS",
    "DiscoveryConfig",
    "Found",
    "ToolLogs",
    "merge_candidates",
    "normalize_candidate",
    "priority_rank",
    "read_config",
    "validate_candidate",
]

PRIORITIES: Final = ("critical", "high", "medium", "low", "unknown")
"""Priorities from best to worst."""
_RANK: Final = {name: rank for rank, name in enumerate(PRIORITIES)}
_UNKNOWN_RANK: Final = _RANK["unknown"]

TICKER_PATTERN: Final = re.compile(r"[A-Z]{1,5}")
"""The seed system's ticker format, checked by `validate_candidate`."""
_REQUIRED: Final = ("ticker", "source", "context", "priority")


class Found(Protocol):
    """What merging needs from a scanner's result: its name and its candidates."""

    @property
    def name(self) -> str:
        """The scanner's name."""
        ...

    @property
    def candidates(self) -> Sequence[Mapping[str, Any]]:
        """The scanner's valid, normalized candidates."""
        ...


def priority_rank(priority: object) -> int:
    """Return 0 for ``critical`` up to 4 for ``unknown`` (and for anything unrecognised)."""
    if type(priority) is str:
        return _RANK.get(priority, _UNKNOWN_RANK)
    return _UNKNOWN_RANK


def normalize_candidate(candidate: object, scanner: str) -> dict[str, Any] | None:
    """Return a normalized copy of *candidate*, or None if it is invalid.

    Invalid: not a dict, or a ``ticker`` that is missing, not a string, or empty once
    stripped. Normalized: the ticker stripped and upper-cased; a missing ``source`` becomes
    *scanner*, a missing ``context`` ``""``, a missing or unknown ``priority`` ``"unknown"``.
    Other fields are kept as they are.
    """
    if type(candidate) is not dict and not isinstance(candidate, Mapping):
        return None
    ticker = candidate.get("ticker")
    if not isinstance(ticker, str):
        return None
    ticker = ticker.strip().upper()
    if not ticker:
        return None
    normalized = dict(candidate)
    normalized["ticker"] = ticker
    if not normalized.get("source"):
        normalized["source"] = scanner
    if normalized.get("context") is None:
        normalized["context"] = ""
    priority = normalized.get("priority")
    if isinstance(priority, str):
        priority = priority.strip().lower()
        normalized["priority"] = priority if priority in _RANK else "unknown"
    else:  # missing, or not a string at all (a list, a number): never fatal
        normalized["priority"] = "unknown"
    return normalized


def validate_candidate(candidate: object, scanner: str) -> dict[str, Any] | None:  # noqa: ARG001 - the normalize hook's signature
    """The seed system's stricter check: return a copy of a valid *candidate*, else None.

    Valid: a dict whose ``ticker`` matches ``^[A-Z]{1,5}$`` and whose ``source``,
    ``context`` and ``priority`` are strings. Nothing is repaired: an invalid candidate is
    dropped (and counted on its scanner's result). Pass it as the executor's
    ``normalize=`` to get the seed's behaviour:

        rs.ScanExecutor.from_config(config, normalize=rs.discovery.validate_candidate)
    """
    if type(candidate) is not dict and not isinstance(candidate, Mapping):
        return None
    for key in _REQUIRED:
        if not isinstance(candidate.get(key), str):
            return None
    if TICKER_PATTERN.fullmatch(candidate["ticker"]) is None:
        return None
    return dict(candidate)


def merge_candidates(results: Iterable[Found]) -> list[dict[str, Any]]:
    """Merge every scanner's candidates into one per ticker.

    *results* must be in scanner order (not finishing order): that makes the merge the same
    whatever order scanners finish in. Each merged candidate is a copy of the one with the
    best priority (ties: the earliest in scanner order), plus ``all_sources`` (every scanner
    that found the ticker, in scanner order) and ``all_contexts`` (every distinct non-empty
    context, in the same order), the names the seed system's scanner node uses. The list is
    ordered by priority, then ticker. Linear in the number of candidates (plus the sort).
    """
    best: dict[str, Mapping[str, Any]] = {}
    ranks: dict[str, int] = {}
    sources: dict[str, dict[str, None]] = {}
    contexts: dict[str, dict[str, None]] = {}
    for result in results:
        name = result.name
        for candidate in result.candidates:
            ticker = candidate["ticker"]
            rank = priority_rank(candidate.get("priority"))
            current = ranks.get(ticker)
            if current is None:
                best[ticker] = candidate
                ranks[ticker] = rank
                sources[ticker] = {name: None}
                contexts[ticker] = {}
            else:
                if rank < current:
                    best[ticker] = candidate
                    ranks[ticker] = rank
                sources[ticker][name] = None
            context = candidate.get("context")
            if type(context) is str and context.strip():
                contexts[ticker][context.strip()] = None
    merged = []
    for ticker, candidate in best.items():
        entry = dict(candidate)
        entry["all_sources"] = list(sources[ticker])
        entry["all_contexts"] = list(contexts[ticker])
        merged.append(entry)
    merged.sort(key=lambda entry: (ranks[entry["ticker"]], entry["ticker"]))
    return merged


@dataclass(frozen=True)
class ToolLogs:
    """The tool-log hook: what each scanner appends to ``state[key]`` (a list).

    When the state holds a list under *key*, each scanner's state view holds a list of its
    own there instead, which starts empty: tool logs are written, not read, and a copy of
    the entries already there would cost every scanner in proportion to them. (A state
    without the key is left alone: a scanner that puts a list there, as the seed's
    ``state.get("tool_logs", [])`` pattern does, has its entries gathered the same way.)

    Its result's ``tool_logs`` are the entries of that list when it returned, and the
    report's ``tool_logs`` are every scanner's, in scanner order, each once. The caller's
    list is never changed. A scanner marked ``"timeout"`` while still running keeps the
    entries it had appended by then, copied at that moment; what it appends afterwards is
    dropped (see `ScanResult.tool_logs`).

    Attributes:
        key: The state key of the list (``"tool_logs"``).
    """

    key: str = "tool_logs"

    def start(self, view: DictView) -> None:
        """Give the scanner a tool log of its own, if the state has one."""
        if isinstance(dict.get(view, self.key), list):
            view[self.key] = []

    def collect(self, view: DictView, started: object, *, running: bool) -> list[Any]:  # noqa: ARG002 - the hook protocol
        """The entries of the scanner's tool log, as plain data.

        *running*: the scanner's thread may still change them, so each entry is copied,
        and one that cannot be read or copied is left out rather than break the run.
        """
        logs = dict.get(view, self.key)
        if not isinstance(logs, list):
            return []
        entries = list.copy(logs)  # one step, however the scanner's thread goes on
        if not running:
            return [to_plain(entry) for entry in entries]
        kept = []
        for entry in entries:
            try:
                kept.append(copy.deepcopy(to_plain(entry)))
            except Exception:  # noqa: S112, PERF203 - changed under our feet: leave it out
                continue
        return kept


TOOL_LOGS: Final = ToolLogs()
"""The default tool-log hook: ``state["tool_logs"]``."""

DISCOVERY_KEYS: Final = ("scanner_execution", "scanners", "pipelines")
"""The keys of a ``discovery`` table this library reads (others belong to the application)."""
#: The keys of a ``scanner_execution`` table.
EXECUTION_KEYS: Final = (
    "concurrent",
    "max_workers",
    "max_tasks",
    "timeout_seconds",
    "deadline_seconds",
    "scan_method",
)


@dataclass(frozen=True)
class DiscoveryConfig:
    """The executor's part of an application config, as `read_config` found it.

    Attributes:
        root: Where the tables sit: ``("discovery",)``, or ``()`` for the short shape.
        execution: The ``scanner_execution`` table (keys of `EXECUTION_KEYS`).
        scanners: The ``scanners`` table: per-scanner settings by name.
        pipelines: The ``pipelines`` table: per-pipeline settings by name.
    """

    root: tuple[KeyPart, ...]
    execution: Mapping[str, Any] = field(default_factory=dict)
    scanners: Mapping[str, Any] = field(default_factory=dict)
    pipelines: Mapping[str, Any] = field(default_factory=dict)


def read_config(config: object) -> DiscoveryConfig:
    """Find the executor's tables in an application config.

    Either the whole application config ``{"discovery": {"scanner_execution": {...},
    "scanners": {NAME: {...}}, "pipelines": {NAME: {...}}}}`` (other keys of the
    ``discovery`` table belong to the application, but one within a small edit distance of
    these, such as ``scanner_executon`` or ``pipeline``, is a `ConfigError` with a "did you
    mean"), or just ``{"scanner_execution": {...}}``. The tables' values are checked by the
    executor that takes them.

    Raises:
        ConfigError: naming the key path of a table that is missing, misspelt or no table.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(("config",), f"must be a mapping, got {_settings.show(config)}")
    if "discovery" in config:
        root: tuple[KeyPart, ...] = ("discovery",)
        table = _settings.mapping(config["discovery"], root)
        _settings.reject_typos(table, DISCOVERY_KEYS, root)
    elif "scanner_execution" in config:
        root, table = (), config
    else:
        _settings.reject_typos(config, ("discovery", "scanner_execution"), ())
        found = ", ".join(map(str, config)) or "nothing"
        raise ConfigError(
            ("discovery",),
            "missing: expected a 'discovery' table (with scanner_execution, scanners,"
            f" pipelines) or a 'scanner_execution' table; found {found}",
        )
    execution = _settings.mapping(table.get("scanner_execution", {}), (*root, "scanner_execution"))
    _settings.reject_unknown(execution, EXECUTION_KEYS, (*root, "scanner_execution"))
    return DiscoveryConfig(
        root=root,
        execution=execution,
        scanners=_settings.mapping(table.get("scanners", {}), (*root, "scanners")),
        pipelines=_settings.mapping(table.get("pipelines", {}), (*root, "pipelines")),
    )
