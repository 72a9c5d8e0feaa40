"""Every piece of process-wide state resilient_scan keeps, in one place.

The rest of the library reads and writes these objects; nothing else is global. Tests reset
all of it with `reset` (one fixture), and a forked child process drops what belongs to its
parent's threads (`_after_fork_in_child`).

- `WAITS`: the switch behind `resilient_scan.testing.no_waits`.
- `DEADLINE`: the running code's deadline (`resilient_scan.current_deadline`).
- `CURRENT_SCAN`: the scanner the running code belongs to, with its call statistics.
- `RUNTIME`: the default daemon pool, the abandoned-call registry, the instrumentation
  hooks, and the text limits (redaction, message caps).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._deadline import Deadline
    from ._engine import AbandonedCalls, DaemonPool
    from ._instrument import Dispatch
    from ._stats import ScanRecorder


class WaitSwitch:
    """Process-wide switch behind `resilient_scan.testing.no_waits`.

    Process-wide on purpose: the executor and the timeout layer run calls on other threads,
    and a test that disables waits means all of them.
    """

    __slots__ = ("_depth", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0

    @property
    def disabled(self) -> bool:
        """Whether backoff and rate-limit waits are skipped."""
        return self._depth > 0

    def push(self) -> None:
        """Disable waits (nestable)."""
        with self._lock:
            self._depth += 1

    def pop(self) -> None:
        """Undo one `push`."""
        with self._lock:
            self._depth = max(0, self._depth - 1)

    def reset(self, *, keep_depth: bool = False) -> None:
        """A new lock (after a fork it may be held by a thread that is gone); depth 0."""
        self._lock = threading.Lock()
        if not keep_depth:
            self._depth = 0


WAITS = WaitSwitch()

#: The deadline of the running code: set by timeouts, retry budgets and the executor.
DEADLINE: ContextVar[Deadline | None] = ContextVar("resilient_scan_deadline", default=None)

#: The scanner the running code belongs to (set by the executor in each scanner's context).
CURRENT_SCAN: ContextVar[ScanRecorder | None] = ContextVar("resilient_scan_scan", default=None)

#: Longest error text kept in a log event, a result or a report (characters).
DEFAULT_MESSAGE_LIMIT = 2000


@dataclass
class Runtime:
    """The mutable process-wide state, created lazily where it costs anything."""

    pool: DaemonPool | None = None
    abandoned: AbandonedCalls | None = None
    dispatch: Dispatch | None = None
    redact: bool = True
    message_limit: int = DEFAULT_MESSAGE_LIMIT
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: Anything else a module keeps for the process (created on first use, reset with it).
    extras: dict[str, Any] = field(default_factory=dict, repr=False)


RUNTIME = Runtime()


def default_pool() -> DaemonPool:
    """Return the process's daemon pool, creating it on first use."""
    pool = RUNTIME.pool
    if pool is None:
        from ._engine import DaemonPool  # noqa: PLC0415 - the pool module imports this one

        with RUNTIME.lock:
            if RUNTIME.pool is None:
                RUNTIME.pool = DaemonPool()
            pool = RUNTIME.pool
    return pool


def abandoned_calls() -> AbandonedCalls:
    """Return the registry of abandoned calls still running, creating it on first use."""
    abandoned = RUNTIME.abandoned
    if abandoned is None:
        from ._engine import AbandonedCalls  # noqa: PLC0415 - as in default_pool

        with RUNTIME.lock:
            if RUNTIME.abandoned is None:
                RUNTIME.abandoned = AbandonedCalls()
            abandoned = RUNTIME.abandoned
    return abandoned


def reset() -> None:
    """Return every piece of process-wide state to its initial value (for tests).

    Mutates the objects in place, so modules that imported them keep seeing the live ones.
    Threads already running keep running; the next call gets a fresh pool and registry.
    """
    WAITS.reset()
    _replace_runtime(Runtime())
    for hook in _RESET_HOOKS:
        hook()


def _replace_runtime(new: Runtime) -> None:
    for name in Runtime.__dataclass_fields__:
        setattr(RUNTIME, name, getattr(new, name))


def _after_fork_in_child() -> None:
    # The child has only the thread that forked: the parent's workers, abandoned calls and
    # in-flight loads do not exist there, and a lock held mid-fork would stay held. Hooks
    # and text settings are kept (they are the application's choice); the rest starts over.
    WAITS.reset(keep_depth=True)
    _replace_runtime(
        Runtime(
            dispatch=RUNTIME.dispatch, redact=RUNTIME.redact, message_limit=RUNTIME.message_limit
        )
    )
    for hook in _FORK_HOOKS:
        hook()


#: Functions that modules with per-process state (in-flight cache loads, breaker trials)
#: register to forget that state in a forked child, and to start over in `reset`.
_FORK_HOOKS: list[Callable[[], None]] = []
_RESET_HOOKS: list[Callable[[], None]] = []


def on_fork_in_child(hook: Callable[[], None]) -> None:
    """Call *hook* (no arguments) in a child process right after a fork."""
    _FORK_HOOKS.append(hook)


def on_reset(hook: Callable[[], None]) -> None:
    """Call *hook* (no arguments) from `reset`."""
    _RESET_HOOKS.append(hook)


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)
