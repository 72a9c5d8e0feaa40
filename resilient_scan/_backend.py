"""Where a run's scanners run, when not on this process's threads: the executor's backend seam.

A backend gets the planned run in two steps. `Backend.prepare` checks everything that can
be checked before anything runs (a `ConfigError` there means nothing ran and nothing was
reported) and returns a `PreparedRun`; the executor then reports the run's start and calls
`PreparedRun.execute`, which returns one result per planned scanner, in plan order, each
already reported (``scanner.finished``) as it arrived. The executor merges them and reports
the end, as for a run on threads. `resilient_scan.dask.DaskBackend` is the one backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ._deadline import Deadline
from ._job import JobOptions, PlannedScanner
from ._report import ScanResult

if TYPE_CHECKING:
    from ._executor import ScanExecutor


class PreparedRun(Protocol):
    """A run a backend has checked and is ready to start.

    Attributes:
        workers: The most scanners it runs at once (the report's ``max_workers``).
    """

    workers: int

    def execute(
        self,
        options: JobOptions,
        *,
        deadline: Deadline | None,
        deadline_limit: float,
        deadline_why: str,
    ) -> tuple[list[ScanResult], int]:
        """Run it: one result per planned scanner in plan order, and how many were abandoned.

        Args:
            options: What every scanner of the run shares.
            deadline: The run's deadline on this process's clock, or None.
            deadline_limit: Its length in seconds, for the text of timed-out results.
            deadline_why: What set it.
        """
        ...


@runtime_checkable
class Backend(Protocol):
    """Runs a planned run's scanners somewhere else (see the module's text)."""

    def prepare(
        self,
        executor: ScanExecutor,
        plan: Sequence[PlannedScanner],
        state: Mapping[str, Any],
    ) -> PreparedRun:
        """Check what can be checked before anything runs; `ConfigError` if it cannot run."""
        ...
