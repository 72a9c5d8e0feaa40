"""Deadlines as scopes, shared by synchronous and asynchronous code.

A deadline is the instant by which the running code must be done: a timeout layer sets one
for its call, a retry's ``total`` for its attempts, the executor for each scanner. Scopes
nest and the earliest deadline wins, so an inner limit never outlives an outer budget. The
current deadline lives in a context variable: it follows work into the threads the library
starts (they run in a copy of the caller's context) and into asyncio tasks.

Code reads it with `time_remaining` (seconds left, for I/O timeouts) or `current_deadline`.
A scope only *announces* the deadline; enforcing it is the job of the timeout layer (which
abandons a thread or cancels a task) — as with anyio's ``current_effective_deadline``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from ._clock import SYSTEM_CLOCK, Clock, is_system
from ._config import DEADLINE

_INF = math.inf


@dataclass(frozen=True, slots=True)
class Deadline:
    """An instant on a clock by which work must be done.

    Attributes:
        at: The instant, on ``clock.monotonic()``.
        clock: The clock it is measured on (a policy's fake clock in tests).
    """

    at: float
    clock: Clock = SYSTEM_CLOCK

    @classmethod
    def after(cls, seconds: float, clock: Clock = SYSTEM_CLOCK) -> Deadline:
        """The deadline *seconds* from now on *clock*."""
        return cls(clock.monotonic() + seconds, clock)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        left = self.at - self.clock.monotonic()
        return max(0.0, left)

    @property
    def expired(self) -> bool:
        """Whether the instant has passed."""
        return self.clock.monotonic() >= self.at

    def earliest(self, other: Deadline | None) -> Deadline:
        """This deadline or *other*, whichever leaves less time."""
        if other is None:
            return self
        if other.clock is self.clock:
            return self if self.at <= other.at else other
        return self if self.remaining() <= other.remaining() else other


def current() -> Deadline | None:
    """The running code's deadline object, or None."""
    return DEADLINE.get()


def remaining() -> float:
    """Seconds left before the running code's deadline; infinity without one."""
    deadline = DEADLINE.get()
    return _INF if deadline is None else deadline.remaining()


def time_remaining() -> float | None:
    """Return the seconds left before the running call's limit, or ``None`` without one.

    Set inside a call run under `timeout`, a retry with a ``total`` budget, or a scanner run
    by `ScanExecutor` (its own limit or the run's deadline, whichever is earlier). Use it
    for I/O timeouts, for example ``httpx.get(url, timeout=rs.time_remaining() or 10.0)``,
    so a request never outlives the attempt that made it. Never negative.
    """
    deadline = DEADLINE.get()
    return None if deadline is None else deadline.remaining()


def current_deadline() -> float | None:
    """Return the `time.monotonic` instant by which the running call must finish, or None.

    The innermost, earliest limit wins (see `time_remaining`).
    """
    deadline = DEADLINE.get()
    if deadline is None:
        return None
    if is_system(deadline.clock):
        return deadline.at
    return time.monotonic() + deadline.remaining()


@contextmanager
def scope(deadline: Deadline | None) -> Iterator[Deadline | None]:
    """Run the block under *deadline*, or under the current one if that is earlier.

    Yields the effective deadline. None changes nothing.
    """
    if deadline is None:
        yield DEADLINE.get()
        return
    effective = deadline.earliest(DEADLINE.get())
    token = DEADLINE.set(effective)
    try:
        yield effective
    finally:
        DEADLINE.reset(token)


def enter(deadline: Deadline) -> None:
    """Make *deadline* (or an earlier current one) the deadline of the rest of this context.

    For code that runs in a context of its own (a worker thread's copy, a task), where
    there is nothing to restore afterwards.
    """
    DEADLINE.set(deadline.earliest(DEADLINE.get()))


@contextmanager
def deadline_after(
    seconds: float | timedelta, *, clock: Clock = SYSTEM_CLOCK
) -> Iterator[Deadline | None]:
    """Give the code in the block a deadline *seconds* from now (an earlier one stays).

    Inside, `time_remaining` counts down to it, inner retries stop waiting past it, and
    inner timeouts end no later. Nothing is interrupted when it passes: use a timeout layer
    (``rs.timeout``) for that. Works in synchronous and asynchronous code alike.

    Raises:
        ConfigError: if *seconds* is not a positive duration.
    """
    from ._settings import seconds as to_seconds  # noqa: PLC0415 - keeps imports acyclic

    with scope(Deadline.after(to_seconds(seconds, ("deadline_after", "seconds")), clock)) as d:
        yield d
