"""The timeout policy: give up on a call at its limit, whatever the call is doing.

A synchronous call runs on a daemon thread of `_engine.DaemonPool`, and its caller stops
waiting at the limit: Python cannot kill a thread, so the call is abandoned and finishes in
the background. A coroutine is awaited in the caller's task inside an anyio cancel scope,
and cancelled for real at the limit: nothing is left running.

The timeout takes no ``clock=``: it waits on real threads (or the event loop's clock), which
a fake clock cannot move. Its limit still gives way to an enclosing deadline on any clock (a
retry budget on a fake clock in tests), read through that deadline's own clock.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, ParamSpec, TypeVar, cast

from . import _config, _settings
from ._calls import counted, is_async
from ._clock import SYSTEM_CLOCK
from ._config import DEADLINE
from ._deadline import Deadline
from ._engine import DaemonPool
from ._errors import ConfigError, ScanTimeout
from ._events import CallAbandoned, TimeoutFired
from ._instrument import emit, wanted
from ._policy import Policy
from ._settings import Seconds
from ._text import callable_name

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, init=False)
class TimeoutPolicy(Policy):
    """Limit each call of the decorated function to *seconds*.

    A call that runs longer raises `ScanTimeout` to its caller within milliseconds of the
    limit. A synchronous function runs on a daemon worker thread and its caller stops
    waiting at the limit, even when the call is blocked in a socket or in `time.sleep`;
    Python cannot kill a thread, so the abandoned call finishes in the background (see
    `abandoned_threads`) but never holds up the interpreter's exit. Because the call runs
    on another thread, thread-locals of the caller (a per-thread database session) are not
    visible inside it; context variables are. A coroutine function is awaited in the
    caller's task and cancelled at the limit: nothing is left running.

    Inside the call, `time_remaining` tells how long is left. An enclosing deadline that
    ends sooner (a retry's ``total``, the executor's per-scanner timeout) shortens the
    limit. When the pool already has its most threads, all stuck in hung calls, the call
    fails at once with `ThreadLimitError` naming them.

    Attributes:
        seconds: The limit for one call.
        pool: The daemon pool that runs synchronous calls (default: the process's pool).

    Raises:
        ConfigError: if *seconds* is not a positive duration (at most
            ``threading.TIMEOUT_MAX``).
    """

    kind: ClassVar[str] = "timeout"
    shorthand_field: ClassVar[str | None] = "seconds"

    seconds: float
    pool: DaemonPool | None = field(default=None, repr=False, compare=False)

    def __init__(self, seconds: Seconds, *, pool: DaemonPool | None = None) -> None:
        """Validate and store the settings."""
        if pool is not None and not isinstance(pool, DaemonPool):
            raise ConfigError(("timeout", "pool"), f"must be a DaemonPool, got {pool!r}")
        self._assign(seconds=_settings.seconds(seconds, ("timeout", "seconds")), pool=pool)

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Wrap *func* in this timeout."""
        _settings.decorated(func, "timeout")
        return counted(self.layer(func), callable_name(func), SYSTEM_CLOCK)

    def layer(self, func: Callable[P, R]) -> Callable[P, R]:
        """Wrap *func* in this timeout, as one layer of `resilient` (calls not counted)."""
        if is_async(func):
            coroutine_function = cast("Callable[..., Awaitable[Any]]", func)
            return cast("Callable[P, R]", _async_timeout(coroutine_function, self.seconds))
        return _sync_timeout(func, self.seconds, self.pool)

    def describe(self) -> str:
        """Return a short description, as shown by ``resilient(...).describe()``."""
        return f"timeout({self.seconds:g}s)"


timeout = TimeoutPolicy


def _limit(started: float, limit: float) -> tuple[Deadline, float]:
    """The deadline of a call starting at *started*, and the seconds it may run.

    An enclosing deadline that ends sooner (a retry budget, the executor's per-scanner
    timeout) wins: no call outlives its budget.
    """
    own = Deadline(started + limit)
    deadline = own.earliest(DEADLINE.get())
    return deadline, limit if deadline is own else deadline.remaining()


def _fired(name: str, limit: float, started: float, *, abandoned: bool, cancelled: bool) -> float:
    """Report a timeout (and an abandoned thread); return the seconds the call ran."""
    elapsed = time.monotonic() - started
    if abandoned or wanted(TimeoutFired):
        running = _config.abandoned_calls().running
        if abandoned and wanted(CallAbandoned):
            emit(CallAbandoned(name, running))
        if wanted(TimeoutFired):
            emit(TimeoutFired(name, round(limit, 3), round(elapsed, 3), running, cancelled))
    return elapsed


def _sync_timeout(
    func: Callable[P, R], limit: float, own_pool: DaemonPool | None
) -> Callable[P, R]:
    name = callable_name(func)

    @functools.wraps(func)
    def call_with_timeout(*args: P.args, **kwargs: P.kwargs) -> R:
        started = time.monotonic()
        deadline, seconds = _limit(started, limit)
        abandoned = False
        if seconds > 0:
            pool = own_pool or _config.default_pool()
            # ThreadLimitError here: the call did not start, and the error names the hung ones.
            call = pool.start_call(name, func, args, kwargs, deadline=deadline)
            try:
                finished = call.wait(seconds)
            except BaseException:  # Ctrl-C while waiting: the call runs on, and counts
                if call.abandon() and wanted(CallAbandoned):
                    emit(CallAbandoned(name, _config.abandoned_calls().running))
                raise
            if finished or not call.abandon():
                return call.outcome()
            abandoned = True
        # else the enclosing budget is spent: the call is not even started.
        elapsed = _fired(name, seconds, started, abandoned=abandoned, cancelled=False)
        raise ScanTimeout(name, seconds, elapsed, started=seconds > 0)

    return call_with_timeout


def _async_timeout(func: Callable[P, Awaitable[R]], limit: float) -> Callable[P, Awaitable[R]]:
    import anyio  # noqa: PLC0415 - loaded when the first coroutine function is decorated

    name = callable_name(func)

    @functools.wraps(func)
    async def call_with_timeout(*args: P.args, **kwargs: P.kwargs) -> R:
        started = time.monotonic()
        deadline, seconds = _limit(started, limit)
        if seconds > 0:
            token = DEADLINE.set(deadline)
            try:
                # Cancels the awaited call at the limit; a cancellation from outside (the
                # caller's own task cancelled) is not this scope's and propagates.
                with anyio.move_on_after(seconds):
                    return await func(*args, **kwargs)
            finally:
                DEADLINE.reset(token)
        elapsed = _fired(name, seconds, started, abandoned=False, cancelled=seconds > 0)
        raise ScanTimeout(name, seconds, elapsed, started=seconds > 0)

    return call_with_timeout
