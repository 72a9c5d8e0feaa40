"""The timeout policy: give up on a call at its limit, whatever the call is doing."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, ParamSpec, TypeVar

from . import _config, _settings
from ._config import DEADLINE
from ._deadline import Deadline
from ._engine import DaemonPool
from ._errors import ConfigError, ScanTimeout
from ._events import TimeoutFired
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
    limit, even when it is blocked in a socket or in `time.sleep`: the call runs on a daemon
    worker thread, and the caller stops waiting for it. Python cannot kill a thread, so the
    abandoned call finishes in the background (see `abandoned_threads`) but never holds up
    the interpreter's exit. Inside the call, `time_remaining` tells how long is left. An
    enclosing deadline that ends sooner (a retry's ``total``, the executor's per-scanner
    timeout) shortens the limit.

    Attributes:
        seconds: The limit for one call.
        pool: The daemon pool that runs the calls (default: the process's pool).

    Raises:
        ConfigError: if *seconds* is not a positive duration.
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
        limit = self.seconds
        name = callable_name(func)
        own_pool = self.pool

        @functools.wraps(func)
        def call_with_timeout(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.monotonic()
            # An enclosing deadline that ends sooner (a retry budget, the executor's
            # per-scanner timeout) shortens this limit: no attempt outlives its budget.
            own = Deadline(started + limit)
            deadline = own.earliest(DEADLINE.get())
            effective = limit if deadline is own else deadline.remaining()
            if effective > 0:
                pool = own_pool or _config.default_pool()
                call = pool.start_call(name, func, args, kwargs, deadline=deadline)
                if call.wait(effective) or not call.abandon():
                    return call.outcome()
            # else the enclosing budget is spent: the call is not even started.
            elapsed = time.monotonic() - started
            if wanted(TimeoutFired):
                abandoned = _config.abandoned_calls().running
                emit(TimeoutFired(name, effective, round(elapsed, 3), abandoned))
            raise ScanTimeout(name, effective, elapsed)

        return call_with_timeout

    def describe(self) -> str:
        """Return a short description, as shown by ``resilient(...).describe()``."""
        return f"timeout({self.seconds:g}s)"


timeout = TimeoutPolicy
