"""Scanners on a Dask cluster: the executor's Dask backend (extra ``dask``).

Pass a ``distributed.Client`` and the executor runs the scanners on the cluster's workers,
with the same report, statuses, merge and logs as a run on this machine's threads::

    from distributed import Client
    import resilient_scan as rs
    from resilient_scan.dask import DaskBackend

    client = Client("tcp://scheduler:8786")
    executor = rs.ScanExecutor(max_workers=64, backend=DaskBackend(client))
    report = executor.run(scanners, state)

How a run goes (see ``docs/dask.md``):

- This process (the driver) plans the run, splits the scanners into one share per worker
  (as many scanners at once on each worker as it has Dask threads, ``max_workers`` at most
  over the whole cluster) and sends each share as one Dask task, with the state and the
  seconds the run has left.
- Each worker runs its share as the executor runs a plan here: every scanner on a daemon
  thread of the worker process, under its own limit counted from the moment it starts
  there; a scanner past its limit is ``"timeout"``, and its thread is abandoned on the
  worker (Python threads cannot be killed) while the share goes on with a fresh one. Async
  scanners run as tasks of an event loop of the share's own and are cancelled at their
  limit. At the run's deadline, scanners still running are ``"timeout"`` and those not
  started ``"cancelled"``.
- Each result travels back with its `CallStats`, timeline and tool logs; the driver emits
  ``scanner.finished`` (and ``scanner.degraded``) for it, merges, and reports. Events from
  inside scanners (``scanner.started``, retries, breaker changes, late results) go to the
  hooks of the worker process where they happened.
"""

from __future__ import annotations

import contextlib
import queue
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import distributed

from . import _settings
from ._backend import PreparedRun
from ._clock import SYSTEM_CLOCK, is_system
from ._dask_share import (
    GO,
    PlanStream,
    RemoteScanError,
    ShareOutcome,
    ShareSettings,
    bound_context,
    decode,
    dumps,
    installed_version,
    run_share,
    take_token,
)
from ._deadline import Deadline
from ._errors import ConfigError, KeyPart
from ._job import JobOptions, PlannedScanner, report_finished
from ._report import ScanResult, ScanStatus
from ._run import CANCELLED_REASON
from ._settings import Seconds
from ._text import describe_error

if TYPE_CHECKING:
    from ._executor import ScanExecutor

# distributed is not fully typed: its client, futures and queues are used through Any.
_Future = Any
_Queue: Any = distributed.Queue

#: States larger than this (pickled) are scattered once rather than sent in every task.
SCATTER_BYTES: Final = 1 << 20
#: Why scanners of a share that failed as a Dask task have no result of their own.
TASK_FAILED_REASON: Final = "its Dask task failed"
#: Why scanners of a share the driver gave up on have the status they have.
NO_REPORT_REASON: Final = "its Dask worker did not report back by the run's deadline"


class DaskBackend:
    """Runs an executor's scanners on a Dask cluster: ``ScanExecutor(backend=DaskBackend(c))``.

    Every worker needs resilient_scan (the same version) and the scanners' modules;
    scanners defined in ``__main__`` travel by value (cloudpickle). The driver, this
    process, waits for the results: `ScanExecutor.run` blocks as it does for a local run.

    Args:
        client: A synchronous ``distributed.Client`` connected to the cluster.
        grace_seconds: How long past the run's deadline the driver still waits for a
            worker's results before it gives up on them (a worker that stopped answering):
            its scanners are then ``"timeout"`` if their task had started, else
            ``"cancelled"``, and the task is cancelled.

    Raises:
        ConfigError: if *client* is not a synchronous ``distributed.Client``, or
            *grace_seconds* is not a duration.
    """

    __slots__ = ("client", "grace_seconds")

    def __init__(self, client: object, *, grace_seconds: Seconds = 1.0) -> None:
        """Check and keep the settings."""
        if not isinstance(client, distributed.Client):
            raise ConfigError(
                ("DaskBackend", "client"),
                f"must be a distributed.Client, got {_settings.show(client)}",
            )
        if client.asynchronous:
            raise ConfigError(
                ("DaskBackend", "client"),
                "is asynchronous; ScanExecutor.run waits for the cluster: pass a synchronous"
                " Client (from async code, call run() on a thread)",
            )
        self.client: Any = client
        self.grace_seconds = _settings.seconds(grace_seconds, ("DaskBackend", "grace_seconds"))

    def __repr__(self) -> str:
        """Show the scheduler and the grace."""
        address = getattr(self.client.scheduler, "address", None)
        return f"DaskBackend(scheduler={address!r}, grace_seconds={self.grace_seconds:g})"

    def prepare(
        self,
        executor: ScanExecutor,
        plan: Sequence[PlannedScanner],
        state: Mapping[str, Any],
    ) -> PreparedRun:
        """Check that the run can go to the cluster, pickle it, and share it out.

        Raises:
            ConfigError: if the executor's clock is not the system's, or the state, a
                scanner or a hook of the executor cannot be pickled.
        """
        if not is_system(executor.clock):
            raise ConfigError(
                ("clock",),
                "a run on Dask is timed by the workers' own clocks: leave the system clock",
            )
        for key in ("normalize", "tool_logs", "construct", "config"):
            _pickled(getattr(executor, key), (key,), f"the executor's {key}")
        state_payload = _pickled(dict(state), ("state",), "the state")
        runnable = [planned for planned in plan if planned.skip_reason is None]
        slots = self._slots(executor.max_workers if executor.concurrent else 1)
        shares = []
        for (address, workers), picked in zip(
            slots, _split(len(runnable), [workers for _, workers in slots]), strict=True
        ):
            if picked:
                share = [runnable[i] for i in picked]
                stream = PlanStream.of(share, _unsendable).pack()
                shares.append(_Share(address, workers, stream, share))
        return _DaskRun(self, executor, plan, shares, state_payload)

    def _slots(self, limit: int) -> list[tuple[str | None, int]]:
        """(worker address, scanners at once there) for at most *limit* at once in all."""
        threads = dict(sorted(self.client.nthreads().items()))
        if not threads:  # no worker yet: the share waits for one, as Dask tasks do
            return [(None, limit)]
        given = dict.fromkeys(threads, 0)
        left = limit
        while left > 0:
            before = left
            for address, count in threads.items():
                if left > 0 and given[address] < count:
                    given[address] += 1
                    left -= 1
            if left == before:  # every worker's threads are given
                break
        return [(address, count) for address, count in given.items() if count > 0]


@dataclass(frozen=True)
class _Share:
    """The scanners one worker runs, at most *workers* at once."""

    address: str | None
    workers: int
    sent: bytes  # a packed PlanStream
    planned: list[PlannedScanner]


@dataclass(frozen=True)
class _Failed:
    """What fetching a share's outcome raised (its task failed, or was cancelled)."""

    error: BaseException


def _split(count: int, weights: Sequence[int]) -> list[list[int]]:
    """Deal *count* items (in order) to shares in proportion to *weights*, interleaved."""
    if len(set(weights)) <= 1:  # the usual cluster: workers alike, dealt in turn
        return [list(range(first, count, len(weights))) for first in range(len(weights))]
    shares: list[list[int]] = [[] for _ in weights]
    for item in range(count):
        best = min(range(len(weights)), key=lambda k: (len(shares[k]) + 1) / weights[k])
        shares[best].append(item)
    return shares


def _unsendable(planned: PlannedScanner, error: Exception) -> None:
    raise ConfigError(
        ("scanners", planned.name),
        f"scanner {planned.name} cannot be sent to Dask workers: {describe_error(error)}",
    ) from error


def _pickled(value: object, key: tuple[KeyPart, ...], what: str) -> bytes:
    try:
        return dumps(value)
    except Exception as exc:
        raise ConfigError(
            key, f"{what} cannot be sent to Dask workers: {describe_error(exc)}"
        ) from exc


class _DaskRun:
    """One run on the cluster, from the driver's side."""

    def __init__(
        self,
        backend: DaskBackend,
        executor: ScanExecutor,
        plan: Sequence[PlannedScanner],
        shares: list[_Share],
        state: bytes,
    ) -> None:
        self.backend = backend
        self.executor = executor
        self.plan = plan
        self.shares = shares
        self.state = state
        self.workers = sum(share.workers for share in shares) or (
            executor.max_workers if executor.concurrent else 1
        )
        self.results: list[ScanResult | None] = [None] * len(plan)
        self.abandoned = 0
        self.options: JobOptions | None = None

    def execute(
        self,
        options: JobOptions,
        *,
        deadline: Deadline | None,
        deadline_limit: float,
        deadline_why: str,
    ) -> tuple[list[ScanResult], int]:
        """Send the shares, take their results as they come, give up at deadline + grace."""
        self.options = options
        for planned in self.plan:
            if planned.skip_reason is not None:
                self._settle(planned.unstarted(ScanStatus.SKIPPED, planned.skip_reason), planned)
        if deadline is not None and deadline.expired:
            for share in self.shares:
                self._cancel_share(share)
            return self._collected(), self.abandoned
        pending: dict[str, tuple[_Future, _Share]] = {}
        tokens: dict[str, Any] = {}
        sent_at = options.clock.monotonic()
        try:
            submit = self._submitter(options, deadline, deadline_limit, deadline_why, tokens)
            for number, share in enumerate(self.shares):
                future = submit(number, share)
                pending[future.key] = (future, share)
            self._collect(pending, deadline)
            if pending:  # past the deadline and the grace
                self._give_up(pending, tokens, deadline_limit, deadline_why, sent_at)
        finally:
            if pending:  # interrupted: nothing will wait for these any more
                with contextlib.suppress(Exception):
                    self.backend.client.cancel([future for future, _ in pending.values()])
            for token in tokens.values():
                with contextlib.suppress(Exception):
                    token.close()
        return self._collected(), self.abandoned

    def _submitter(
        self,
        options: JobOptions,
        deadline: Deadline | None,
        deadline_limit: float,
        deadline_why: str,
        tokens: dict[str, Any],
    ) -> Callable[[int, _Share], _Future]:
        """What sends one share as a Dask task (and gives it a start token, with a deadline)."""
        client = self.backend.client
        state: object = self.state
        if len(self.state) > SCATTER_BYTES:  # sent once, to the workers that need it
            state = client.scatter(self.state, hash=False)
        options_payload = dumps(options)  # checked by prepare: its parts are the executor's
        version = installed_version()
        context = bound_context()

        def submit(number: int, share: _Share) -> _Future:
            key = f"resilient_scan_share-{options.run_id}-{number}-{uuid.uuid4().hex[:8]}"
            token = None
            if deadline is not None:  # the driver may give up on it: see ShareSettings.token
                tokens[key] = _Queue(f"{key}-token", client=client)
                tokens[key].put(GO)
                token = tokens[key].name
            settings = ShareSettings(
                concurrent=self.executor.concurrent,
                workers=share.workers,
                max_tasks=self.executor.max_tasks,
                remaining=None if deadline is None else deadline.remaining(),
                elapsed=options.clock.monotonic() - options.run_started,
                deadline_limit=deadline_limit,
                deadline_why=deadline_why,
                version=version,
                token=token,
                context=context,
            )
            placement: dict[str, Any] = {}
            if share.address is not None:
                # Preferred, not required: if that worker leaves, another takes the share.
                placement = {"workers": [share.address], "allow_other_workers": True}
            return client.submit(
                run_share,
                share.sent,
                state,
                options_payload,
                settings,
                key=key,
                pure=False,
                **placement,
            )

        return submit

    def _collect(
        self, pending: dict[str, tuple[_Future, _Share]], deadline: Deadline | None
    ) -> None:
        """Take the shares' outcomes until all are in, or deadline + grace passes."""
        client = self.backend.client
        arrived: queue.SimpleQueue[tuple[_Future, Any]] = queue.SimpleQueue()

        async def fetch(future: _Future) -> None:
            # On the client's loop: the outcome is fetched as soon as the task ends, and
            # whatever happens (the task failed, was cancelled, the fetch broke) is handed
            # over, so the caller never waits for an outcome that will not come.
            try:
                outcome: Any = await client.gather(future, asynchronous=True)
            except BaseException as exc:
                outcome = _Failed(exc)
            arrived.put((future, outcome))

        for future, _ in pending.values():
            client.loop.add_callback(fetch, future)
        give_up_at = None if deadline is None else deadline.at + self.backend.grace_seconds
        while pending:
            wait = 3600.0 if give_up_at is None else give_up_at - SYSTEM_CLOCK.monotonic()
            if wait <= 0:
                return
            try:
                future, outcome = arrived.get(timeout=min(wait, 3600.0))
            except queue.Empty:
                continue
            entry = pending.pop(future.key, None)
            if entry is not None:
                self._take(future, entry[1], outcome)

    def _take(self, future: _Future, share: _Share, outcome: Any) -> None:
        """Record the results of a share whose task ended, however it ended."""
        by_index = {planned.index: planned for planned in share.planned}
        if not isinstance(outcome, _Failed):
            try:
                unpacked = ShareOutcome.unpack(outcome)
            except Exception as exc:  # its result could not be read here
                self._fail(share, exc, TASK_FAILED_REASON)
                return
            self.abandoned += unpacked.abandoned
            for sent in unpacked.results:
                planned = by_index.pop(sent.position, None)
                if planned is not None:
                    self._settle(decode(sent, planned), planned)
            for planned in by_index.values():  # a bug, not an outcome: say so per scanner
                missing = RuntimeError(f"no result came back from the worker {unpacked.worker}")
                result = planned.unstarted(ScanStatus.ERROR, TASK_FAILED_REASON, error=missing)
                self._settle(result, planned)
            return
        self._fail(share, outcome.error, f"{TASK_FAILED_REASON} ({future.status})")

    def _fail(self, share: _Share, error: BaseException, reason: str) -> None:
        for planned in share.planned:
            self._settle(planned.unstarted(ScanStatus.ERROR, reason, error=error), planned)

    def _give_up(
        self,
        pending: dict[str, tuple[_Future, _Share]],
        tokens: dict[str, Any],
        limit: float,
        why: str,
        sent_at: float,
    ) -> None:
        """Past deadline + grace: a share that never started is cancelled, else timed out."""
        for key, (_, share) in pending.items():
            token = tokens.get(key)
            never_started = False
            if token is not None:
                try:
                    never_started = take_token(token)  # it cannot start now
                except Exception:  # the scheduler cannot say: count it as started
                    never_started = False
            if never_started:
                self._cancel_share(share)
                continue
            for planned in share.planned:
                if self.results[planned.index] is None:
                    self.abandoned += 1
                    result = self._timed_out(planned, limit, why, sent_at)
                    self._settle(result, planned, limit=limit)
        with contextlib.suppress(Exception):
            self.backend.client.cancel([future for future, _ in pending.values()])
        pending.clear()

    def _timed_out(
        self, planned: PlannedScanner, limit: float, why: str, sent_at: float
    ) -> ScanResult:
        options = self.options
        assert options is not None  # noqa: S101 - set by execute
        return ScanResult(
            name=planned.name,
            status=ScanStatus.TIMEOUT,
            error=f"ScanTimeout: {planned.name} timed out after {limit:g}s ({why})",
            duration=options.clock.monotonic() - sent_at,
            pipeline=planned.pipeline,
            abandoned=True,
            reason=NO_REPORT_REASON,
            error_type="ScanTimeout",
            started_at=sent_at - options.run_started,
            timeout_seconds=limit,
        )

    def _cancel_share(self, share: _Share) -> None:
        for planned in share.planned:
            if self.results[planned.index] is None:
                self._settle(planned.unstarted(ScanStatus.CANCELLED, CANCELLED_REASON), planned)

    def _settle(
        self, result: ScanResult, planned: PlannedScanner, *, limit: float | None = None
    ) -> None:
        """Record *result* in its scanner's place and report it, as a local run does."""
        self.results[planned.index] = result
        options = self.options
        assert options is not None  # noqa: S101 - set by execute
        report_finished(result, options, limit)

    def _collected(self) -> list[ScanResult]:
        return [result for result in self.results if result is not None]


__all__ = ["DaskBackend", "RemoteScanError"]
