"""The scanner executor: many scanners at once, none able to hold up or break the others."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from . import _settings as _validate
from ._candidates import merge_candidates, normalize_candidate
from ._errors import ConfigError
from ._events import ScanFinished, ScanStarted
from ._instrument import emit, wanted
from ._report import Merger, Normalizer, ScanReport
from ._run import Planned, Run
from ._scanner import ScannerLike, ScannerRegistry, scan_callable, scanner_info

_EXECUTION_KEYS = ("concurrent", "max_workers", "timeout_seconds", "deadline_seconds")


def _settings_of(
    value: object, where: str, checks: Mapping[str, Callable[[object, str], object]]
) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(where, f"must be a table of settings, got {value!r}")
    settings = dict(value)
    for key, check in checks.items():
        if key in settings:
            settings[key] = check(settings[key], f"{where}.{key}")
    return settings


_SCANNER_CHECKS: Mapping[str, Callable[[object, str], object]] = {
    "enabled": _validate.boolean,
    "timeout_seconds": _validate.seconds,
}
_PIPELINE_CHECKS: Mapping[str, Callable[[object, str], object]] = {"enabled": _validate.boolean}


@dataclass(frozen=True, kw_only=True)
class ScanExecutor:
    """Runs scanners on daemon worker threads and collects one report.

    Attributes:
        concurrent: Run up to *max_workers* scanners at once; False runs them one by one,
            each still watched by its timeout.
        max_workers: The most scanners running at once.
        timeout_seconds: Each scanner's limit, counted from the moment it starts (time queued
            for a worker does not count). At the limit it is marked ``"timeout"`` and the run
            goes on without it.
        deadline_seconds: A limit for the whole run: scanners still running then are marked
            ``"timeout"``, those not started are ``"cancelled"`` and never run.
        scanners: Per-scanner settings by name: ``enabled``, ``timeout_seconds``, and
            anything else, handed to a scanner class's constructor.
        pipelines: Per-pipeline settings by name: ``enabled``.
        normalize: Checks and normalizes one candidate (default `normalize_candidate`).
        merge: Merges the results' candidates (default `merge_candidates`).
    """

    concurrent: bool = True
    max_workers: int = 8
    timeout_seconds: float = 30.0
    deadline_seconds: float | None = None
    scanners: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    pipelines: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    normalize: Normalizer = field(default=normalize_candidate, repr=False)
    merge: Merger = field(default=merge_candidates, repr=False)

    if TYPE_CHECKING:  # durations also accept a timedelta; they are stored as float seconds

        def __init__(
            self,
            *,
            concurrent: bool = True,
            max_workers: int = 8,
            timeout_seconds: float | timedelta = 30.0,
            deadline_seconds: float | timedelta | None = None,
            scanners: Mapping[str, Mapping[str, Any]] = ...,
            pipelines: Mapping[str, Mapping[str, Any]] = ...,
            normalize: Normalizer = ...,
            merge: Merger = ...,
        ) -> None: ...

    def __post_init__(self) -> None:
        """Validate every setting, naming the bad key."""
        _validate.boolean(self.concurrent, "concurrent")
        _validate.integer(self.max_workers, "max_workers", minimum=1)
        set_ = object.__setattr__
        set_(self, "timeout_seconds", _validate.seconds(self.timeout_seconds, "timeout_seconds"))
        if self.deadline_seconds is not None:
            set_(
                self,
                "deadline_seconds",
                _validate.seconds(self.deadline_seconds, "deadline_seconds"),
            )
        for section, checks in (("scanners", _SCANNER_CHECKS), ("pipelines", _PIPELINE_CHECKS)):
            tables = _settings_of(getattr(self, section), section, {})
            checked = {
                name: _settings_of(value, f"{section}.{name}", checks)
                for name, value in tables.items()
            }
            set_(self, section, MappingProxyType(checked))
        _validate.function(self.normalize, ("normalize",))
        _validate.function(self.merge, ("merge",))

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **overrides: Any) -> ScanExecutor:
        """Build an executor from a config in the established shape.

        Either the whole application config ``{"discovery": {"scanner_execution": {...},
        "scanners": {NAME: {...}}, "pipelines": {NAME: {...}}}}`` or just
        ``{"scanner_execution": {...}}``. Keyword *overrides* (``normalize=``, ...) are
        passed on.

        Raises:
            ConfigError: naming the full key path of a bad or unknown value, e.g.
                ``discovery.scanner_execution.max_workers: must be an integer >= 1, got 0``.
        """
        if not isinstance(config, Mapping):
            raise ConfigError("config", f"must be a mapping, got {config!r}")
        if "discovery" in config:
            root, prefix = config["discovery"], "discovery."
            if not isinstance(root, Mapping):
                raise ConfigError("discovery", f"must be a table of settings, got {root!r}")
        elif "scanner_execution" in config:
            root, prefix = config, ""
        else:
            found = ", ".join(map(str, config)) or "nothing"
            raise ConfigError(
                "discovery",
                "missing: expected a 'discovery' table (with scanner_execution, scanners,"
                f" pipelines) or a 'scanner_execution' table; found {found}",
            )
        execution = root.get("scanner_execution", {})
        where = f"{prefix}scanner_execution"
        if not isinstance(execution, Mapping):
            raise ConfigError(where, f"must be a table of settings, got {execution!r}")
        _validate.reject_unknown(execution, _EXECUTION_KEYS, tuple(where.split(".")))
        scanners = root.get("scanners", {})
        pipelines = root.get("pipelines", {})
        try:
            return cls(**execution, scanners=scanners, pipelines=pipelines, **overrides)
        except ConfigError as exc:
            if exc.key in overrides:
                raise  # not from the config: keep the argument's own name
            section = where if exc.key in _EXECUTION_KEYS else prefix.rstrip(".")
            key = f"{section}.{exc.key}" if section else exc.key
            raise ConfigError(key, exc.problem) from None

    # -- running ----------------------------------------------------------------------------

    def run(
        self,
        scanners: Iterable[ScannerLike] | ScannerRegistry,
        state: Mapping[str, Any] | None = None,
    ) -> ScanReport:
        """Run *scanners* on *state* and return the report.

        Each scanner gets its own copy-on-write view of *state*: it sees the state as the
        caller passed it, never another scanner's changes, and the caller's state is never
        changed. A scanner that hangs is marked ``"timeout"`` at its limit and abandoned on
        its daemon thread; the run goes on with a fresh thread.

        Raises:
            ConfigError: before anything runs, if a scanner is not a scanner or two scanners
                share a name.
        """
        state = {} if state is None else state
        plan = self._plan(scanners)
        mode = "concurrent" if self.concurrent else "sequential"
        workers = self.max_workers if self.concurrent else 1
        started = time.monotonic()
        run = Run(
            plan,
            state,
            workers=workers,
            deadline_seconds=self.deadline_seconds,
            normalize=self.normalize,
        )
        if wanted(ScanStarted):
            emit(ScanStarted(len(plan), mode, workers, self.timeout_seconds, self.deadline_seconds))
        results = run.execute()
        abandoned = sum(result.abandoned for result in results)
        report = ScanReport(
            results=results,
            candidates=self.merge(results),
            tool_logs=[entry for log_entries in run.tool_logs for entry in log_entries],
            duration=time.monotonic() - started,
            mode=mode,
            max_workers=workers,
            abandoned=abandoned,
        )
        if wanted(ScanFinished):
            emit(
                ScanFinished(
                    round(report.duration, 3),
                    round(report.speedup, 2),
                    len(report.candidates),
                    report.dropped,
                    abandoned,
                    len(report.degraded),
                    report.counts,
                )
            )
        return report

    def _plan(self, scanners: Iterable[ScannerLike] | ScannerRegistry) -> list[Planned]:
        plan: list[Planned] = []
        seen: set[str] = set()
        for index, item in enumerate(scanners):
            info = scanner_info(item)
            if info.name in seen:
                raise ConfigError(f"scanners.{info.name}", "two scanners in this run share it")
            seen.add(info.name)
            settings = self.scanners.get(info.name, {})
            pipeline = self.pipelines.get(info.pipeline, {}) if info.pipeline else {}
            skip = None
            if settings.get("enabled") is False:
                skip = f"disabled by scanners.{info.name}.enabled"
            elif pipeline.get("enabled") is False:
                skip = f"pipeline {info.pipeline} disabled by pipelines.{info.pipeline}.enabled"
            elif not info.enabled and settings.get("enabled") is not True:
                skip = "disabled by its scanner(enabled=False)"
            timeout = settings.get("timeout_seconds", self.timeout_seconds)
            call = None if isinstance(item, type) else scan_callable(item, settings)
            plan.append(Planned(index, item, info, settings, timeout, skip, call))
        return plan
