"""The timeout policy: give up on a call at its limit, whatever the call is doing."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import ParamSpec, TypeVar

from . import _validate
from ._errors import ScanTimeout
from ._logging import callable_name, log
from ._threads import ABANDONED, POOL, current_deadline

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class TimeoutPolicy:
    """Settings of the timeout layer.

    Attributes:
        seconds: The limit for one call. The call runs on a daemon worker thread; at the
            limit the caller gets `ScanTimeout` and the call is abandoned (it runs on until
            it returns, counted by `abandoned_threads`). Code inside the call can read its
            limit with `time_remaining`. An enclosing deadline that ends sooner (a retry's
            ``total`` budget, the executor's scanner timeout) shortens the limit.
    """

    seconds: float

    def __post_init__(self) -> None:
        """Validate and normalize the settings."""
        object.__setattr__(self, "seconds", _validate.seconds(self.seconds, "timeout.seconds"))

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Wrap *func* in this timeout."""
        _validate.decorated(func, "timeout")
        limit = self.seconds
        name = callable_name(func)

        @functools.wraps(func)
        def call_with_timeout(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.monotonic()
            # An enclosing limit (a retry budget, the executor's per-scanner timeout) that
            # ends sooner shortens this one: no attempt outlives the budget it belongs to.
            outer = current_deadline()
            effective = limit if outer is None else max(0.0, min(limit, outer - started))
            if effective > 0:
                call = POOL.start_call(name, func, args, kwargs, deadline=started + effective)
                if call.wait(effective) or not call.abandon():
                    return call.outcome()
            # else the enclosing budget is spent: the call is not even started.
            elapsed = time.monotonic() - started
            log.warning(
                "timeout.fired",
                function=name,
                limit=effective,
                elapsed=round(elapsed, 3),
                abandoned=ABANDONED.running,
            )
            raise ScanTimeout(name, effective, elapsed)

        return call_with_timeout

    def describe(self) -> str:
        """Return a short description, as shown by ``resilient(...).describe()``."""
        return f"timeout({self.seconds:g}s)"


def timeout(seconds: float | timedelta) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Limit each call of the decorated function to *seconds*.

    A call that runs longer raises `ScanTimeout` to its caller within milliseconds of the
    limit, even when it is blocked in a socket or in `time.sleep`: the call runs on a daemon
    worker thread, and the caller stops waiting for it. Python cannot kill a thread, so the
    abandoned call finishes in the background (see `abandoned_threads`) but never holds up
    the interpreter's exit. Inside the call, `time_remaining` tells how long is left.

    Raises:
        ConfigError: if *seconds* is not a positive number or timedelta.
    """
    return TimeoutPolicy(seconds=_validate.seconds(seconds, "timeout.seconds"))
