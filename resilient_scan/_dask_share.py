"""One share of a run on a Dask worker, and what travels between the driver and the worker.

The driver (`resilient_scan.dask`) sends each worker one share of the run: its scanners
(`PlanStream`: one pickle stream, so what they share is sent once, with the offset where
each ends, so one that cannot be loaded on the worker fails alone), the state (pickled
once), the run's options, and the time the run has left, in seconds: the monotonic clocks
of two machines have nothing in common, so an instant would mean nothing there. The worker
runs its share as the executor runs a plan in one process: on daemon threads
(`_run.ThreadRun`), or on an event loop of its own (`_arun.AsyncRun`) when the share has
async scanners. Each scanner's limit counts from the moment it starts there.

Each result travels back as plain data, pickled on its own, with its exception apart: a
candidate or a tool-log entry that cannot be pickled is dropped and counted (the result
keeps the rest), and an exception that cannot be pickled, or unpickled on the driver,
becomes a `RemoteScanError` with its type, text and traceback text.

Scanner events that belong to the run (``scanner.finished``, ``scanner.degraded``) are
emitted by the driver for each result it receives; everything that happens inside a
scanner (its start, policy events, late results) is emitted here, in the worker process,
to the worker's hooks.
"""

from __future__ import annotations

import contextlib
import io
import operator
import os
import pickle
import socket
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Final, NamedTuple

import cloudpickle  # type: ignore[import-untyped]  # (no stubs; a dependency of distributed)

from ._clock import SYSTEM_CLOCK
from ._deadline import Deadline
from ._errors import ResilientScanError
from ._job import JobOptions, PlannedScanner, Reporting, safe_description, safe_traceback
from ._report import NO_CALLS, ScanResult, ScanStatus
from ._stats import CallStats, TimelineEntry
from ._text import error_type

_PROTOCOL: Final = pickle.HIGHEST_PROTOCOL
#: What a share's start token holds (see `ShareSettings.token`).
GO: Final = "go"
#: Why a scanner that could not be loaded on its worker did not run.
NOT_LOADED_REASON: Final = "it could not be loaded on its Dask worker"
#: Why a result the driver cannot read has no candidates.
NOT_READ_REASON: Final = "its result could not be read on the driver"


class RemoteScanError(ResilientScanError):
    """What a scanner raised on a Dask worker, when the exception could not travel as itself.

    An exception whose class is not importable on the driver, or that cannot be pickled
    or rebuilt (a lock in an attribute, a constructor that takes other arguments than it
    passes to ``Exception``), arrives as this instead. Its text is the original's.

    Attributes:
        error_type: The original exception's class name (``"KeyError"``).
        description: ``"Type: message"``, as in ``ScanResult.error``.
        remote_traceback: Its traceback on the worker, as text (without local variables).
    """

    def __init__(
        self, error_type: str, description: str, remote_traceback: str | None = None
    ) -> None:
        """Create the stand-in for an exception of *error_type* described as *description*."""
        super().__init__(description)
        self.error_type = error_type
        self.description = description
        self.remote_traceback = remote_traceback

    def __reduce__(self) -> tuple[type[RemoteScanError], tuple[str, str, str | None]]:
        """Pickle with the constructor's arguments."""
        return (type(self), (self.error_type, self.description, self.remote_traceback))


# -- what travels ------------------------------------------------------------------------------


class SentScanner(NamedTuple):
    """Who a planned scanner of a `PlanStream` is, and the offset where its pickle ends.

    Attributes:
        position: The scanner's place in the run.
        name: Its name.
        pipeline: Its pipeline.
        end: The offset in the stream where its pickle ends.
    """

    position: int
    name: str
    pipeline: str | None
    end: int


@dataclass(frozen=True)
class PlanStream:
    """The scanners of a share: one pickle stream of planned scanners, one after another.

    Each scanner's pickle ends at a known offset, so the worker can go on past one that
    cannot be loaded there. Each is pickled as the tuple of its fields: plain tuples pickle
    several times faster than dataclasses with slots.

    Scanners of importable modules go by reference, with plain pickle (about twice as
    fast as cloudpickle), each pickle complete in itself: one that cannot be loaded on the
    worker fails alone. What plain pickle refuses, or would send by a name the worker
    cannot resolve (``__main__``, lambdas, closures, modules registered with
    ``cloudpickle.register_pickle_by_value``), goes by value with cloudpickle, in one
    stream whose pickles share what they have in common: a scanner class of ``__main__``
    is sent once, not once per scanner. There, a scanner that cannot be loaded on the
    worker also fails those after it in its share that share something with it (they get
    its error).
    """

    data: bytes
    scanners: tuple[SentScanner, ...]
    isolated: bool = True  # each pickle complete in itself (else they share one memo)

    @classmethod
    def of(
        cls, plan: Sequence[PlannedScanner], on_error: Callable[[PlannedScanner, Exception], None]
    ) -> PlanStream:
        """Pickle *plan*; *on_error* is called (and should raise) for one that cannot be."""
        rows = [tuple(getattr(planned, name) for name in _PLANNED_FIELDS) for planned in plan]
        if not _by_value(plan):
            with contextlib.suppress(Exception):  # what plain pickle refuses, cloudpickle takes
                stream = cls._stream(plan, rows, pickle.Pickler, isolated=True)
                if b"__main__" not in stream.data:
                    return stream
        try:
            return cls._stream(plan, rows, cloudpickle.Pickler, isolated=False)
        except _Unpicklable as failed:
            on_error(failed.planned, failed.error)
            raise failed.error from None

    @classmethod
    def _stream(
        cls,
        plan: Sequence[PlannedScanner],
        rows: list[tuple[Any, ...]],
        kind: type[Any],
        *,
        isolated: bool,
    ) -> PlanStream:
        buffer = io.BytesIO()
        pickler = kind(buffer, protocol=_PROTOCOL)
        sent = []
        for planned, row in zip(plan, rows, strict=True):
            if isolated:
                pickler.clear_memo()  # each pickle complete in itself
            try:
                pickler.dump(row)
            except Exception as exc:
                raise _Unpicklable(planned, exc) from exc
            sent.append(SentScanner(planned.index, planned.name, planned.pipeline, buffer.tell()))
        return cls(buffer.getvalue(), tuple(sent), isolated)

    def pack(self) -> bytes:
        """The stream as one bytes object: what Dask sends and the scheduler never reads."""
        scanners = [tuple(scanner) for scanner in self.scanners]
        return pickle.dumps((self.data, scanners, self.isolated), _PROTOCOL)

    @classmethod
    def unpack(cls, packed: bytes) -> PlanStream:
        """The stream `pack` made *packed* from."""
        data, scanners, isolated = loads(packed)
        return cls(data, tuple(SentScanner(*scanner) for scanner in scanners), isolated)

    def load(self) -> Iterator[tuple[SentScanner, PlannedScanner | BaseException]]:
        """Each scanner with its planned scanner, or what kept it from loading here.

        Each planned scanner's index is its place in this stream (the runs index their
        results by place in their plan); its place in the run is the `SentScanner`'s.
        """
        stream = io.BytesIO(self.data)
        unpickler = pickle.Unpickler(stream)  # noqa: S301 - our own driver's pickles
        first_failure: BaseException | None = None
        start = 0
        for place, scanner in enumerate(self.scanners):
            if self.isolated:  # a memo of its own, as the pickler's was
                stream.seek(start)
                unpickler = pickle.Unpickler(stream)  # noqa: S301
            start = scanner.end
            try:
                loaded = PlannedScanner(place, *unpickler.load()[1:])
            except BaseException as exc:
                failure = exc
                if isinstance(exc, pickle.UnpicklingError) and first_failure is not None:
                    failure = first_failure  # it needed what an earlier scanner could not load
                first_failure = first_failure or failure
                yield scanner, failure
                if not self.isolated:  # go on where the next one starts, with what was loaded
                    memo = unpickler.memo
                    stream.seek(start)
                    unpickler = pickle.Unpickler(stream)  # noqa: S301
                    unpickler.memo = memo
                continue
            yield scanner, loaded


class _Unpicklable(Exception):  # noqa: N818 - internal: carries which scanner failed
    def __init__(self, planned: PlannedScanner, error: Exception) -> None:
        super().__init__(planned.name)
        self.planned = planned
        self.error = error


def _by_value(plan: Sequence[PlannedScanner]) -> bool:
    """Whether the plan needs cloudpickle: a scanner of ``__main__``, or modules by value."""
    if cloudpickle.list_registry_pickle_by_value():
        return True
    for planned in plan:
        target = planned.target
        module = getattr(target, "__module__", None) or type(target).__module__
        if module == "__main__" or type(target).__module__ == "__main__":
            return True
    return False


@dataclass(frozen=True)
class ShareSettings:
    """How a worker runs its share.

    Attributes:
        concurrent: Whether scanners run at once (False: one by one, in plan order).
        workers: The most synchronous scanners running at once on this worker.
        max_tasks: The most async scanners running at once on this worker's loop.
        remaining: Seconds the run had left when the share was sent, or None.
        elapsed: Seconds since the run started, when the share was sent.
        deadline_limit: The run's limit, for the text of results it times out.
        deadline_why: What set that limit (``"the run's deadline_seconds"``).
        version: The driver's resilient_scan version.
        token: The name of the share's start token (a ``distributed.Queue`` holding one
            `GO`), for a run with a deadline; None without. Whoever takes it first decides:
            the share when it starts (it runs), or the driver when it gives up on the share
            (it never runs, and its scanners are ``"cancelled"``). The scheduler orders the
            two, so a share the driver reports as never started never starts.
        context: What the application bound with ``structlog.contextvars`` on the driver
            (what pickles of it), bound again around the share: events inside its
            scanners carry it, as they would on the driver's threads.
    """

    concurrent: bool
    workers: int
    max_tasks: int
    remaining: float | None
    elapsed: float
    deadline_limit: float
    deadline_why: str
    version: str
    token: str | None
    context: Mapping[str, Any] = field(default_factory=dict)


class SentResult(NamedTuple):
    """One scanner's result on its way back to the driver.

    Attributes:
        position: The scanner's place in the run.
        payload: The pickled result as plain data (`result_data`), without its exception.
        exception: The pickled exception, or None (none raised, or it would not pickle).
        raised: Whether the result had an exception.
    """

    position: int
    payload: bytes
    exception: bytes | None
    raised: bool


@dataclass(frozen=True)
class ShareOutcome:
    """What a worker sends back for its share.

    Attributes:
        results: One per scanner of the share.
        abandoned: Scanners of the share still running on the worker when it returned.
        worker: The worker's process, ``"host:pid"``.
    """

    results: tuple[SentResult, ...]
    abandoned: int
    worker: str

    def pack(self) -> bytes:
        """The outcome as one bytes object (each result in it is a pickle of its own)."""
        return pickle.dumps(
            ([tuple(r) for r in self.results], self.abandoned, self.worker), _PROTOCOL
        )

    @classmethod
    def unpack(cls, packed: bytes) -> ShareOutcome:
        """The outcome `pack` made *packed* from."""
        results, abandoned, worker = loads(packed)
        return cls(tuple(SentResult(*result) for result in results), abandoned, worker)


def dumps(value: object) -> bytes:
    """Pickle *value* for a Dask worker (what ``__main__`` defines travels by value)."""
    return bytes(cloudpickle.dumps(value, protocol=_PROTOCOL))


def loads(payload: bytes) -> Any:
    """Unpickle what `dumps` or `dumps_back` made."""
    return pickle.loads(payload)  # noqa: S301 - our own payloads, from our own cluster


def dumps_back(value: object) -> bytes:
    """Pickle *value* for the driver: plain pickle (much faster), else cloudpickle.

    Cloudpickle takes what plain pickle refuses: an object of a class that came by value
    from the driver's ``__main__``, which the driver knows by that name.
    """
    try:
        return pickle.dumps(value, protocol=_PROTOCOL)
    except Exception:
        return dumps(value)


#: The fields of a `PlannedScanner`, of a `ScanResult` and of a `CallStats`, in order.
_PLANNED_FIELDS: Final = tuple(f.name for f in fields(PlannedScanner))
_FIELDS: Final = tuple(f.name for f in fields(ScanResult))
_RESULT_GETTER: Final = operator.attrgetter(*_FIELDS)
_CALLS_GETTER: Final = operator.attrgetter(*(f.name for f in fields(CallStats)))
_STATUSES: Final = {status.value: status for status in ScanStatus}
_STATUS, _EXCEPTION, _CALLS, _TIMELINE = (
    _FIELDS.index(name) for name in ("status", "exception", "calls", "timeline")
)


def result_data(result: ScanResult) -> tuple[Any, ...]:
    """*result* as plain data, field by field (without its exception).

    Plain tuples pickle several times faster than the result's frozen dataclasses.
    """
    data = list(_RESULT_GETTER(result))
    data[_STATUS] = result.status.value
    data[_EXCEPTION] = None
    calls = result.calls
    data[_CALLS] = None if calls is NO_CALLS else _CALLS_GETTER(calls)
    if result.timeline:
        data[_TIMELINE] = tuple((e.at, e.kind, e.detail, e.duration) for e in result.timeline)
    return tuple(data)


def result_from(data: Sequence[Any]) -> ScanResult:
    """The `ScanResult` that `result_data` gave *data* for."""
    if len(data) != len(_FIELDS):
        raise ValueError(f"a result of {len(_FIELDS)} fields expected, got {len(data)}")
    values = list(data)
    values[_STATUS] = _STATUSES[values[_STATUS]]
    calls = values[_CALLS]
    values[_CALLS] = NO_CALLS if calls is None else CallStats(*calls)
    if values[_TIMELINE]:
        values[_TIMELINE] = tuple(TimelineEntry(*entry) for entry in values[_TIMELINE])
    return ScanResult(*values)


# -- on the worker -----------------------------------------------------------------------------


def run_share(plan: bytes, state: bytes, options: bytes, settings: ShareSettings) -> bytes:
    """Run one share of a run on this worker; return its packed `ShareOutcome` (the Dask task).

    *plan* is a packed `PlanStream`. Never raises for anything a scanner does or holds:
    what cannot be loaded, run or sent back becomes that scanner's ``"error"`` result.
    """
    return _run_share(PlanStream.unpack(plan), state, options, settings).pack()


def _run_share(
    scanners: PlanStream, state: bytes, options: bytes, settings: ShareSettings
) -> ShareOutcome:
    received = SYSTEM_CLOCK.monotonic()
    deadline = None
    if settings.remaining is not None:
        deadline = Deadline(received + settings.remaining, SYSTEM_CLOCK)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    sent: list[SentResult] = []
    if not _take_token(settings.token):  # the driver gave up on this share: it never runs
        sent.extend(_cancelled(scanner) for scanner in scanners.scanners)
        return ShareOutcome(tuple(sent), 0, worker)
    try:
        _check_version(settings.version)
        shared_state: Mapping[str, Any] = loads(state)
        job_options: JobOptions = loads(options)
    except BaseException as exc:
        sent.extend(_not_loaded(scanner, exc) for scanner in scanners.scanners)
        return ShareOutcome(tuple(sent), 0, worker)
    job_options = replace(
        job_options,
        clock=SYSTEM_CLOCK,
        run_started=received - settings.elapsed,
        reporting=_worker_reporting(),
    )
    plan: list[PlannedScanner] = []
    indexes: list[int] = []
    for scanner, loaded in scanners.load():
        if not isinstance(loaded, PlannedScanner):
            sent.append(_not_loaded(scanner, loaded))
            continue
        planned = loaded
        if planned.index != len(plan):  # one before it failed: the share's plan is denser
            planned = replace(planned, index=len(plan))
        plan.append(planned)
        indexes.append(scanner.position)
    if plan:
        with _bound(settings.context):
            results, abandoned = _run(plan, shared_state, job_options, settings, deadline)
        sent.extend(encode(indexes[i], result) for i, result in enumerate(results))
        return ShareOutcome(tuple(sent), abandoned, worker)
    return ShareOutcome(tuple(sent), 0, worker)


def installed_version() -> str:
    """This process's resilient_scan version (read once: reading it costs half a ms)."""
    from . import _config  # noqa: PLC0415 - process-wide state lives there

    extras = _config.RUNTIME.extras
    version = extras.get("dask.version")
    if version is None:
        import resilient_scan  # noqa: PLC0415 - the package this module belongs to

        version = extras["dask.version"] = str(resilient_scan.__version__)
    return str(version)


def bound_context() -> dict[str, Any]:
    """What the application bound with ``structlog.contextvars`` here, that can travel."""
    structlog = sys.modules.get("structlog")
    if structlog is None:  # not imported: nothing can be bound
        return {}
    try:
        bound = dict(structlog.contextvars.get_contextvars())
    except Exception:
        return {}
    bound.pop("scanner", None)  # bound per scanner, there as here
    bound.pop("pipeline", None)
    try:
        dumps_back(bound)
    except Exception:
        return {key: value for key, value in bound.items() if _pickles(value)}
    return bound


def _pickles(value: object) -> bool:
    try:
        dumps_back(value)
    except Exception:
        return False
    return True


@contextlib.contextmanager
def _bound(context: Mapping[str, Any]) -> Iterator[None]:
    """Bind *context* with ``structlog.contextvars`` for the block (Dask reuses threads)."""
    if not context:
        yield
        return
    import structlog  # noqa: PLC0415 - only when the driver's application bound something

    with structlog.contextvars.bound_contextvars(**context):
        yield


def take_token(queue: Any) -> bool:
    """Take the start token from *queue* (a ``distributed.Queue``); False if it is gone."""
    return GO in queue.get(batch=True)


def _take_token(token: str | None) -> bool:
    """Whether this share may start: it took its start token (or has none)."""
    if token is None:
        return True
    import distributed  # noqa: PLC0415 - there on every worker

    make_queue: Any = distributed.Queue  # (distributed is not fully typed)
    try:
        queue = make_queue(token)
    except Exception:  # no client here to ask with (run outside a worker): run it
        return True
    try:
        return take_token(queue)
    except Exception:  # the scheduler cannot say: run it, as a run without a deadline would
        return True
    finally:
        with contextlib.suppress(Exception):
            queue.close()


def _cancelled(scanner: SentScanner) -> SentResult:
    result = ScanResult(
        name=scanner.name,
        status=ScanStatus.CANCELLED,
        pipeline=scanner.pipeline,
        reason="the run's deadline passed before it started",
    )
    return encode(scanner.position, result)


def _check_version(driver: str) -> None:
    here = installed_version()
    if here != driver:
        raise RuntimeError(
            f"resilient_scan {driver} on the driver but {here} on this worker: install the"
            " same version everywhere"
        )


def _worker_reporting() -> Reporting:
    """The scanner events this worker's hooks want; the driver reports the results."""
    here = Reporting.now()
    return Reporting(
        started=here.started,
        finished_ok=False,
        finished_failed=False,
        degraded=False,
        late=here.late,
    )


def _run(
    plan: list[PlannedScanner],
    state: Mapping[str, Any],
    options: JobOptions,
    settings: ShareSettings,
    deadline: Deadline | None,
) -> tuple[list[ScanResult], int]:
    if any(planned.is_async for planned in plan):
        return _run_in_loop(plan, state, options, settings, deadline)
    from . import _config  # noqa: PLC0415 - the runs load where shares run
    from ._run import ThreadRun  # noqa: PLC0415

    run = ThreadRun(
        plan,
        state,
        options,
        workers=settings.workers if settings.concurrent else 1,
        pool=_config.default_pool(),
        deadline=deadline,
        deadline_limit=settings.deadline_limit,
        deadline_why=settings.deadline_why,
    )
    return run.execute(), run.abandoned


def _run_in_loop(
    plan: list[PlannedScanner],
    state: Mapping[str, Any],
    options: JobOptions,
    settings: ShareSettings,
    deadline: Deadline | None,
) -> tuple[list[ScanResult], int]:
    """Async scanners as tasks of a loop of this share's own, cancelled at their limit."""
    import asyncio  # noqa: PLC0415 - async support loads with async scanners

    from ._arun import AsyncRun, _finish_tasks  # noqa: PLC0415
    from ._executor import ScanExecutor  # noqa: PLC0415

    limits = ScanExecutor(
        concurrent=settings.concurrent, max_workers=settings.workers, max_tasks=settings.max_tasks
    )
    run = AsyncRun(
        limits,
        plan,
        state,
        options,
        deadline=deadline,
        deadline_limit=settings.deadline_limit,
        deadline_why=settings.deadline_why,
    )
    loop = asyncio.new_event_loop()
    try:
        results = loop.run_until_complete(run.execute())
    finally:
        try:
            _finish_tasks(loop)
        finally:
            loop.close()
    return results, run.abandoned


def _not_loaded(scanner: SentScanner, error: BaseException) -> SentResult:
    result = ScanResult(
        name=scanner.name,
        status=ScanStatus.ERROR,
        pipeline=scanner.pipeline,
        reason=NOT_LOADED_REASON,
        error=safe_description(error),
        error_type=error_type(error),
        exception=error,
        traceback=safe_traceback(error),
    )
    return encode(scanner.position, result)


def encode(position: int, result: ScanResult) -> SentResult:
    """Pickle *result* for the driver; what cannot travel is dropped, never the result."""
    try:
        payload = dumps_back(result_data(result))
    except Exception:  # a candidate or a tool-log entry that cannot be pickled
        payload = dumps_back(result_data(_without_unsendable(result)))
    exception = result.exception
    error: bytes | None = None
    if exception is not None:
        with contextlib.suppress(Exception):  # else the driver stands a RemoteScanError in
            error = dumps_back(exception)
    return SentResult(position, payload, error, exception is not None)


def _without_unsendable(result: ScanResult) -> ScanResult:
    """*result* without the candidates and tool-log entries that cannot be pickled."""
    candidates = _sendable(result.candidates)
    lost = len(result.candidates) - len(candidates)
    return replace(
        result,
        candidates=candidates,
        tool_logs=_sendable(result.tool_logs),
        dropped=result.dropped + lost,
    )


def _sendable(items: list[Any]) -> list[Any]:
    kept = []
    for item in items:
        try:
            dumps_back(item)
        except Exception:  # noqa: S112 - left out, as an invalid candidate is
            continue
        kept.append(item)
    return kept


# -- back on the driver ------------------------------------------------------------------------


def decode(sent: SentResult, planned: PlannedScanner) -> ScanResult:
    """The `ScanResult` a worker sent for *planned*; an ``"error"`` one if it cannot be read."""
    try:
        result = result_from(loads(sent.payload))
    except Exception as exc:
        return planned.unstarted(ScanStatus.ERROR, NOT_READ_REASON, error=exc)
    if not sent.raised:
        return result
    exception: object = None
    if sent.exception is not None:
        try:
            exception = loads(sent.exception)
        except Exception:
            exception = None
    if not isinstance(exception, BaseException):
        exception = RemoteScanError(
            result.error_type or "Exception", result.error or "", result.traceback
        )
    return replace(result, exception=exception)


__all__ = [
    "GO",
    "NOT_LOADED_REASON",
    "NOT_READ_REASON",
    "PlanStream",
    "RemoteScanError",
    "SentResult",
    "SentScanner",
    "ShareOutcome",
    "ShareSettings",
    "bound_context",
    "decode",
    "dumps",
    "dumps_back",
    "encode",
    "installed_version",
    "loads",
    "result_data",
    "result_from",
    "run_share",
    "take_token",
]
