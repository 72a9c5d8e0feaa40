"""The scanner executor: many scanners at once, none able to hold up or break the others.

`ScanExecutor` holds the settings (converted once, in its constructor), plans a run (which
scanners run, with which settings, how each is called or built), and hands the plan to a
run on threads (`_run`) or on an event loop (`_arun`); then it merges the results in plan
order and reports. What findings look like, how they merge and which logs are gathered are
hooks, whose defaults (`resilient_scan.discovery`) make it a trading discovery pipeline.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FunctionType, MappingProxyType
from typing import Any

from . import _config, _settings
from ._backend import Backend
from ._calls import is_async
from ._clock import SYSTEM_CLOCK, Clock
from ._config import DEADLINE
from ._deadline import Deadline
from ._engine import DaemonPool
from ._errors import ConfigError, KeyPart
from ._events import ConfigUnmatched, MergeFailed, ScanFinished, ScanStarted
from ._instrument import emit_quietly, wanted_quietly
from ._job import JobOptions, LogCollector, PlannedScanner, Reporting
from ._report import Merger, Normalizer, ScanReport, ScanResult
from ._scanner import (
    EXECUTOR_KEYS,
    Construction,
    Constructor,
    ScannerInfo,
    ScannerLike,
    ScannerRegistry,
    find_method,
    scanner_info,
)
from ._settings import Seconds
from ._settings import show as _show_value
from ._text import describe_error, error_type
from .discovery import TOOL_LOGS, merge_candidates, normalize_candidate, read_config

#: Keys of a ``pipelines.NAME`` table.
PIPELINE_KEYS = ("enabled",)
_NO_SETTINGS: Mapping[str, Any] = MappingProxyType({})
#: The settings of a planned function without a table (plain, as a plan pickles; read-only).
_NO_TABLE: dict[str, Any] = {}


@dataclass(frozen=True, init=False)
class ScanExecutor:
    """Runs scanners on daemon worker threads (or an event loop) and collects one report.

    Attributes:
        concurrent: Run up to *max_workers* scanners at once; False runs them one by one,
            each still watched by its timeout.
        max_workers: The most synchronous scanners running at once (threads).
        max_tasks: The most async scanners running at once (tasks on one event loop).
        timeout_seconds: Each scanner's limit, counted from the moment it starts (time queued
            for a worker does not count). At the limit it is marked ``"timeout"``: an async
            scanner is cancelled, a synchronous one abandoned on its daemon thread.
        deadline_seconds: A limit for the whole run: scanners still running then are marked
            ``"timeout"``, those not started are ``"cancelled"`` and never run.
        scanners: Per-scanner settings by name: ``enabled``, ``timeout_seconds``,
            ``scan_method``, and anything else, for a scanner class's constructor.
        pipelines: Per-pipeline settings by name: ``enabled``.
        scan_method: The method called on scanner objects and classes: the first of these
            names that a scanner has (``"scan"``; the seed system calls
            ``"scan_with_validation"`` where a class has it).
        normalize: Checks and normalizes one finding; None drops it (default:
            `resilient_scan.discovery.normalize_candidate`).
        merge: Merges the results' findings (default:
            `resilient_scan.discovery.merge_candidates`).
        tool_logs: Gathers each scanner's log entries from its state (default: what it
            appended to ``state["tool_logs"]``); None gathers none.
        construct: Builds scanner classes, ``construct(cls, settings, config)``, instead of
            the construction rule (see `resilient_scan.ScannerRegistry` and the docs).
        config: The application config, for scanner classes whose constructor takes it
            (`from_config` sets it to the config it was given).
        pool: The daemon pool that runs synchronous scanners (default: the process's).
        clock: The clock that times scanners and deadlines (a fake one in tests).
        backend: Where the scanners run instead of this process: a
            `resilient_scan.dask.DaskBackend` (a ``distributed.Client`` is wrapped in one
            with its defaults); None runs them here.
    """

    concurrent: bool
    max_workers: int
    max_tasks: int
    timeout_seconds: float
    deadline_seconds: float | None
    scanners: Mapping[str, Mapping[str, Any]]
    pipelines: Mapping[str, Mapping[str, Any]]
    scan_method: tuple[str, ...]
    normalize: Normalizer = field(repr=False)
    merge: Merger = field(repr=False)
    tool_logs: LogCollector | None = field(repr=False)
    construct: Constructor | None = field(repr=False)
    config: Mapping[str, Any] | None = field(repr=False, compare=False)
    pool: DaemonPool | None = field(repr=False, compare=False)
    clock: Clock = field(repr=False, compare=False)
    backend: Backend | None = field(repr=False, compare=False)

    def __init__(
        self,
        *,
        concurrent: bool = True,
        max_workers: int = 8,
        max_tasks: int = 100,
        timeout_seconds: Seconds = 30.0,
        deadline_seconds: Seconds | None = None,
        scanners: Mapping[str, Mapping[str, Any]] | None = None,
        pipelines: Mapping[str, Mapping[str, Any]] | None = None,
        scan_method: str | Sequence[str] = "scan",
        normalize: Normalizer = normalize_candidate,
        merge: Merger = merge_candidates,
        tool_logs: LogCollector | None = TOOL_LOGS,
        construct: Constructor | None = None,
        config: Mapping[str, Any] | None = None,
        pool: DaemonPool | None = None,
        clock: Clock = SYSTEM_CLOCK,
        backend: object = None,
    ) -> None:
        """Check and convert every setting; a bad one raises `ConfigError` naming it."""
        if pool is not None and not isinstance(pool, DaemonPool):
            raise ConfigError(("pool",), f"must be a DaemonPool, got {_show_value(pool)}")
        if config is not None:
            _settings.mapping(config, ("config",))
        values = {
            "concurrent": _settings.boolean(concurrent, ("concurrent",)),
            "max_workers": _settings.integer(max_workers, ("max_workers",), minimum=1),
            "max_tasks": _settings.integer(max_tasks, ("max_tasks",), minimum=1),
            "timeout_seconds": _settings.seconds(timeout_seconds, ("timeout_seconds",)),
            "deadline_seconds": _settings.optional_seconds(deadline_seconds, ("deadline_seconds",)),
            "scanners": _tables(scanners, "scanners", _scanner_table),
            "pipelines": _tables(pipelines, "pipelines", _pipeline_table),
            "scan_method": _method_names(scan_method, ("scan_method",)),
            "normalize": _settings.function(normalize, ("normalize",)),
            "merge": _settings.function(merge, ("merge",)),
            "tool_logs": _collector(tool_logs),
            "construct": _settings.optional_function(construct, ("construct",)),
            "config": config,
            "pool": pool,
            "clock": _settings.clock(clock, ("clock",)),
            "backend": _backend(backend),
        }
        for name, value in values.items():  # the one place a frozen executor is written
            object.__setattr__(self, name, value)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], /, **overrides: Any) -> ScanExecutor:
        """Build an executor from an application config in the established shape.

        Either the whole application config ``{"discovery": {"scanner_execution": {...},
        "scanners": {NAME: {...}}, "pipelines": {NAME: {...}}}}`` or just
        ``{"scanner_execution": {...}}`` (see `resilient_scan.discovery.read_config`).
        The config itself is kept as ``config``, for scanner classes whose constructor takes
        the whole application config. Keyword *overrides* (``timeout_seconds=12``,
        ``normalize=...``) win over the config.

        Raises:
            ConfigError: naming the full key path of a bad, unknown or misspelt value, e.g.
                ``discovery.scanner_execution.max_workers: must be an integer >= 1, got 0``.
        """
        found = read_config(config)
        settings: dict[str, Any] = {
            **found.execution,
            "scanners": found.scanners,
            "pipelines": found.pipelines,
            "config": config,
        }
        settings.update(overrides)
        try:
            return cls(**settings)
        except ConfigError as exc:
            head = exc.path[0] if exc.path else None
            if head in overrides:
                raise  # the caller's own argument: its own name
            if head in ("scanners", "pipelines"):
                raise exc.prefixed(*found.root) from None
            raise exc.prefixed(*found.root, "scanner_execution") from None

    # -- planning -----------------------------------------------------------------------------

    def _plan(self, scanners: Iterable[ScannerLike] | ScannerRegistry) -> list[PlannedScanner]:
        """Decide, before anything runs, what each scanner is, how it is called, its limit.

        Raises:
            ConfigError: if *scanners* is not an iterable of scanners, a scanner is not a
                scanner, two share a name, or a scanner class cannot be built as it is.
        """
        if (
            callable(scanners)
            or isinstance(scanners, (str, bytes, Mapping))
            or not isinstance(scanners, Iterable)
        ):
            raise ConfigError(
                ("scanners",),
                "must be an iterable of scanners (a list, or a ScannerRegistry), got"
                f" {_show_value(scanners)}; to run one scanner, pass [scanner]",
            )
        plan: list[PlannedScanner] = []
        seen: set[str] = set()
        methods = self.scan_methods()
        for index, item in enumerate(scanners):
            plan.append(self._planned(index, item, seen, methods))
        return plan

    @property
    def _mode(self) -> str:
        return "concurrent" if self.concurrent else "sequential"

    @property
    def _workers(self) -> int:
        """The most scanners of a run on this process's threads that run at once."""
        return self.max_workers if self.concurrent else 1

    def scan_methods(self) -> tuple[str, ...]:
        """Every method a scanner object or class may be called through.

        ``scan_method``, then each ``scanners.NAME.scan_method``: a class is recognised as a
        scanner by any of them (its own table then says which one it is called through).
        """
        names = list(self.scan_method)
        for table in self.scanners.values():
            own = table.get("scan_method")
            names.extend(name for name in own or () if name not in names)
        return tuple(names)

    def _planned(
        self, index: int, item: Any, seen: set[str], methods: tuple[str, ...]
    ) -> PlannedScanner:
        name, pipeline, enabled, function = self._identify(item, methods)
        if name in seen:
            raise ConfigError(("scanners", name), "two scanners in this run share it")
        seen.add(name)
        table = self.scanners.get(name)
        settings: dict[str, Any]
        if table or not enabled or pipeline is not None:
            settings = dict(table) if table else {}  # plain: a plan pickles
            skip = self._skip_reason(name, pipeline, enabled=enabled, settings=settings)
            timeout = settings.get("timeout_seconds", self.timeout_seconds)
        else:  # no table, no pipeline, enabled: what most scanners of a big run are
            # A function's settings are never handed to anyone: one shared empty table.
            settings = _NO_TABLE if function else {}
            skip, timeout = None, self.timeout_seconds
        if function:
            return PlannedScanner(
                index, name, pipeline, item, None, None, settings, timeout, skip, is_async(item)
            )
        own = settings.get("scan_method")
        method = find_method(item, own or self.scan_method)
        if method is None:
            where = ("scanners", name, "scan_method") if own else ("scan_method",)
            wanted = " or ".join(own or self.scan_method)
            raise ConfigError(where, f"scanner {name} has no {wanted}() method")
        construction = None
        if isinstance(item, type):
            construction = Construction()  # a construct hook builds it instead
            if skip is None and self.construct is None:
                construction = Construction.of(
                    item, name, settings, has_config=self.config is not None
                )
        asynchronous = is_async(getattr(item, method))
        return PlannedScanner(
            index, name, pipeline, item, method, construction, settings, timeout, skip, asynchronous
        )

    def _identify(
        self, item: object, methods: tuple[str, ...]
    ) -> tuple[str, str | None, bool, bool]:
        """(name, pipeline, enabled, called as a function) of a scanner; `ConfigError` if none."""
        marked = getattr(item, "scanner_info", None)
        if type(marked) is ScannerInfo:
            return marked.name, marked.pipeline, marked.enabled, True
        if marked is None and type(item) is FunctionType and methods == ("scan",):
            # A plain function without a scan() attribute (checked here at C speed).
            name = item.__name__
            if not hasattr(item, "scan") and name.strip():
                return name, None, True, True
        if isinstance(marked, ScannerInfo):
            return marked.name, marked.pipeline, marked.enabled, True
        if isinstance(item, type) or find_method(item, methods) is not None:
            info = scanner_info(item, methods)
            return info.name, info.pipeline, info.enabled, False
        called = getattr(item, "__name__", None)
        if callable(item) and isinstance(called, str) and called.strip():
            return called, None, True, True  # a named callable: called as a function
        info = scanner_info(item)  # names an unnamed callable, or says what a scanner is
        return info.name, info.pipeline, info.enabled, True

    def _skip_reason(
        self, name: str, pipeline: str | None, *, enabled: bool, settings: Mapping[str, Any]
    ) -> str | None:
        if settings.get("enabled") is False:
            return f"disabled by scanners.{name}.enabled"
        if (
            pipeline is not None
            and self.pipelines.get(pipeline, _NO_SETTINGS).get("enabled") is False
        ):
            return f"pipeline {pipeline} disabled by pipelines.{pipeline}.enabled"
        if not enabled and settings.get("enabled") is not True:
            return "disabled by its scanner(enabled=False)"
        return None

    def unmatched(self, scanners: Iterable[ScannerLike] | ScannerRegistry) -> list[ConfigUnmatched]:
        """The ``scanners.NAME`` and ``pipelines.NAME`` tables that match none of *scanners*.

        Each with the closest names of the run: usually a typo. `run` reports them as
        ``config.unmatched`` warnings; an application that owns its whole config may make
        them errors. Nothing runs.

        Raises:
            ConfigError: as `run`, if *scanners* are not scanners.
        """
        return self._unmatched(self._plan(scanners))

    def _unmatched(self, scanners: Sequence[PlannedScanner]) -> list[ConfigUnmatched]:
        names = [planned.name for planned in scanners]
        pipelines = [planned.pipeline for planned in scanners if planned.pipeline is not None]
        root: tuple[KeyPart, ...] = (
            ("discovery",)
            if isinstance(self.config, Mapping) and "discovery" in self.config
            else ()
        )
        found = []
        for section, known in (("scanners", names), ("pipelines", pipelines)):
            for key in getattr(self, section):
                if key not in known:
                    close = tuple(_settings.close_matches(key, known, cutoff=0.6))
                    path = ConfigError((*root, section, key), "").key
                    found.append(ConfigUnmatched(path, close))
        return found

    # -- running ------------------------------------------------------------------------------

    def run(
        self,
        scanners: Iterable[ScannerLike] | ScannerRegistry,
        state: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
    ) -> ScanReport:
        """Run *scanners* on *state* and return the report.

        Each scanner gets its own copy-on-write view of *state*: it sees the state as the
        caller passed it, never another scanner's changes, and the caller's state is never
        changed. A scanner that hangs is marked ``"timeout"`` at its limit and abandoned on
        its daemon thread; the run goes on with a fresh thread. Async scanners run on an
        event loop of this run (see `arun`), cancelled at their limit. With a `backend`,
        the scanners run where it sends them, the same way (`resilient_scan.dask`).

        Raises:
            ConfigError: before anything runs, if *scanners* is not an iterable of scanners,
                a scanner is not a scanner, two share a name, a class cannot be built as it
                is, or *state* is not a mapping; or if the backend cannot take the run (see
                its ``prepare``).
        """
        state = _state(state)
        plan = self._plan(scanners)
        if self.backend is not None:
            return self._execute_on(self.backend, plan, state, run_id)
        if any(planned.is_async and planned.skip_reason is None for planned in plan):
            from ._arun import run_in_loop  # noqa: PLC0415 - asyncio loads with async scanners

            return run_in_loop(self, plan, state, run_id)
        return self._execute(plan, state, run_id)

    async def arun(
        self,
        scanners: Iterable[ScannerLike] | ScannerRegistry,
        state: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
    ) -> ScanReport:
        """Run *scanners* on *state* from a running event loop, and return the report.

        Async scanners run as tasks of this loop (at most *max_tasks* at once), cancelled at
        their limit; synchronous ones on daemon threads (at most *max_workers* at once).
        The report, statuses, merge, events and isolation are those of `run`. Cancelling
        the awaiting task cancels the scanners still running and propagates.

        Raises:
            ConfigError: as `run`; and with a `backend`, whose runs are not awaitable
                (call `run` on a thread: ``await asyncio.to_thread(executor.run, ...)``).
        """
        if self.backend is not None:
            raise ConfigError(
                ("backend",),
                "arun() runs scanners on this event loop; with a backend, call run() from a"
                " thread instead: await asyncio.to_thread(executor.run, scanners, state)",
            )
        state = _state(state)
        plan = self._plan(scanners)
        from ._arun import AsyncRun  # noqa: PLC0415 - asyncio loads with async scanners

        return await self._aexecute(plan, state, run_id, AsyncRun)

    def _begin(
        self, plan: Sequence[PlannedScanner], run_id: str | None, workers: int | None = None
    ) -> tuple[JobOptions, Deadline | None, float, str, float]:
        """Report the start (in the caller's context) and fix what the whole run shares.

        *workers*: the most scanners running at once, when a backend decides it.
        """
        for unmatched in self._unmatched(plan):
            if wanted_quietly(ConfigUnmatched):
                emit_quietly(unmatched)
        run_id = _run_id() if run_id is None else run_id
        mode = self._mode
        if workers is None:
            workers = self._workers
        if wanted_quietly(ScanStarted):
            # Before the scanners' contexts are copied from this one: a tracing hook's run
            # span, set here, becomes their parent.
            emit_quietly(
                ScanStarted(
                    len(plan), mode, workers, self.timeout_seconds, self.deadline_seconds, run_id
                )
            )
        clock = self.clock
        started = clock.monotonic()
        deadline, limit, why = None, 0.0, "the run's deadline_seconds"
        if self.deadline_seconds is not None:
            deadline, limit = (
                Deadline(started + self.deadline_seconds, clock),
                self.deadline_seconds,
            )
        enclosing = DEADLINE.get()
        if enclosing is not None and (
            deadline is None or enclosing.remaining() < deadline.remaining()
        ):
            deadline, limit, why = enclosing, enclosing.remaining(), "an enclosing deadline"
        options = JobOptions(
            normalize=self.normalize,
            tool_logs=self.tool_logs,
            config=self.config,
            construct=self.construct,
            run_id=run_id,
            clock=clock,
            run_started=started,
            reporting=Reporting.now(),
            deadline_limit=limit,
            deadline_why=why,
        )
        return options, deadline, limit, why, time.time()

    def _execute(
        self, plan: Sequence[PlannedScanner], state: Mapping[str, Any], run_id: str | None
    ) -> ScanReport:
        from ._run import ThreadRun  # noqa: PLC0415 - kept apart from the async run's import

        options, deadline, limit, why, wall = self._begin(plan, run_id)
        run = ThreadRun(
            plan,
            state,
            options,
            workers=self._workers,
            pool=self.pool or _config.default_pool(),
            deadline=deadline,
            deadline_limit=limit,
            deadline_why=why,
        )
        try:
            results = run.execute()
        except BaseException as exc:  # KeyboardInterrupt, a bug: the run still ends
            self._interrupted(run.results, options, run.abandoned, exc)
            raise
        return self._report(results, options, wall, run.abandoned)

    def _execute_on(
        self,
        backend: Backend,
        plan: Sequence[PlannedScanner],
        state: Mapping[str, Any],
        run_id: str | None,
    ) -> ScanReport:
        prepared = backend.prepare(self, plan, state)  # ConfigError: nothing ran, nothing said
        options, deadline, limit, why, wall = self._begin(plan, run_id, prepared.workers)
        try:
            results, abandoned = prepared.execute(
                options, deadline=deadline, deadline_limit=limit, deadline_why=why
            )
        except BaseException as exc:  # the backend failed, or the caller was interrupted
            self._interrupted([], options, 0, exc)
            raise
        return self._report(results, options, wall, abandoned, prepared.workers)

    async def _aexecute(
        self,
        plan: Sequence[PlannedScanner],
        state: Mapping[str, Any],
        run_id: str | None,
        runner: Any,
    ) -> ScanReport:
        options, deadline, limit, why, wall = self._begin(plan, run_id)
        run = runner(
            self, plan, state, options, deadline=deadline, deadline_limit=limit, deadline_why=why
        )
        try:
            results = await run.execute()
        except BaseException as exc:  # cancelled, interrupted: the run still ends
            self._interrupted(run.results, options, run.abandoned, exc)
            raise
        return self._report(results, options, wall, run.abandoned)

    def _report(
        self,
        results: list[ScanResult],
        options: JobOptions,
        wall: float,
        abandoned: int,
        workers: int | None = None,
    ) -> ScanReport:
        if workers is None:
            workers = self._workers
        merge_error = None
        try:
            candidates = self.merge(results)
        except Exception as exc:  # the hook's bug costs the merge, never a finding
            candidates = [found for result in results for found in result.candidates]
            merge_error = describe_error(exc)
            if wanted_quietly(MergeFailed):
                emit_quietly(MergeFailed(merge_error, error_type(exc), options.run_id))
        except BaseException as exc:  # interrupted while merging: the run still ends
            self._interrupted(results, options, abandoned, exc)
            raise
        report = ScanReport(
            results=results,
            candidates=candidates,
            tool_logs=[entry for result in results for entry in result.tool_logs],
            duration=self.clock.monotonic() - options.run_started,
            mode=self._mode,
            max_workers=workers,
            abandoned=abandoned,
            started_at=wall,
            run_id=options.run_id,
            merge_error=merge_error,
        )
        _announce_end(report)
        return report

    def _interrupted(
        self,
        results: Sequence[ScanResult | None],
        options: JobOptions,
        abandoned: int,
        exc: BaseException,
    ) -> None:
        """Report the end of a run that raised *exc* instead of returning its report.

        So whatever a run's start set up (a tracing hook's run span) ends with it; the
        figures are those of the scanners settled by then.
        """
        if not wanted_quietly(ScanFinished):
            return
        settled = [result for result in results if result is not None]
        try:
            why = describe_error(exc)
        except BaseException:  # describing must not replace what the caller gets
            why = type(exc).__name__
        partial = ScanReport(
            results=settled,
            candidates=[found for result in settled for found in result.candidates],
            tool_logs=[],
            duration=self.clock.monotonic() - options.run_started,
            mode=self._mode,
            max_workers=self._workers,
            abandoned=abandoned,
            run_id=options.run_id,
        )
        _announce_end(partial, interrupted=why)


def _announce_end(report: ScanReport, *, interrupted: str = "") -> None:
    """Emit ``scan.finished`` with *report*'s figures, if anyone wants it."""
    if wanted_quietly(ScanFinished):
        emit_quietly(
            ScanFinished(
                round(report.duration, 3),
                round(report.speedup, 2),
                len(report.candidates),
                report.dropped,
                report.abandoned,
                len(report.degraded),
                report.counts,
                report.run_id,
                interrupted=interrupted,
            )
        )


def _state(state: object) -> Mapping[str, Any]:
    if state is None:
        return {}
    if not isinstance(state, Mapping):
        raise ConfigError(("state",), f"must be a mapping, got {_show_value(state)}")
    return state


def _run_id() -> str:
    """The run's id: the application's (bound as ``run_id`` in structlog), else a new one."""
    structlog = sys.modules.get("structlog")
    if structlog is not None:
        try:
            bound = structlog.contextvars.get_contextvars().get("run_id")
        except Exception:
            bound = None
        if isinstance(bound, str) and bound:
            return bound
    return os.urandom(6).hex()


def _tables(value: object, section: str, check: Any) -> Mapping[str, Mapping[str, Any]]:
    tables = _settings.mapping({} if value is None else value, (section,))
    return MappingProxyType({name: check(table, (section, name)) for name, table in tables.items()})


def _scanner_table(value: object, key: tuple[KeyPart, ...]) -> Mapping[str, Any]:
    table = dict(_settings.mapping(value, key))
    _settings.reject_typos(table, EXECUTOR_KEYS, key)
    if "enabled" in table:
        table["enabled"] = _settings.boolean(table["enabled"], (*key, "enabled"))
    if "timeout_seconds" in table:
        table["timeout_seconds"] = _settings.seconds(
            table["timeout_seconds"], (*key, "timeout_seconds")
        )
    if "scan_method" in table:
        table["scan_method"] = _method_names(table["scan_method"], (*key, "scan_method"))
    return MappingProxyType(table)


def _pipeline_table(value: object, key: tuple[KeyPart, ...]) -> Mapping[str, Any]:
    table = dict(_settings.mapping(value, key))
    _settings.reject_typos(table, PIPELINE_KEYS, key)
    if "enabled" in table:
        table["enabled"] = _settings.boolean(table["enabled"], (*key, "enabled"))
    return MappingProxyType(table)


def _method_names(value: object, key: tuple[KeyPart, ...]) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not names:
        raise ConfigError(key, f"must be a method name or a list of them, got {_show_value(value)}")
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(
                (*key, index) if len(names) > 1 else key,
                f"must be a method name, got {_show_value(name)}",
            )
    return tuple(names)


def _backend(value: object) -> Backend | None:
    if value is None or isinstance(value, Backend):
        return value
    distributed = sys.modules.get("distributed")  # a Client means it is imported already
    if distributed is not None and isinstance(value, distributed.Client):
        from .dask import DaskBackend  # noqa: PLC0415 - the dask extra, loaded with a client

        return DaskBackend(value)
    raise ConfigError(
        ("backend",),
        "must be a backend (resilient_scan.dask.DaskBackend(client)), a distributed.Client,"
        f" or None, got {_show_value(value)}",
    )


def _collector(value: object) -> LogCollector | None:
    if value is None:
        return None
    if not (callable(getattr(value, "start", None)) and callable(getattr(value, "collect", None))):
        raise ConfigError(
            ("tool_logs",),
            "must be a log collector (with start() and collect(), e.g."
            f" resilient_scan.discovery.ToolLogs()) or None, got {_show_value(value)}",
        )
    return value  # type: ignore[return-value]
