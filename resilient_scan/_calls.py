"""What every policy wrapper shares: sync or async, per-call counting and per-call events.

Each policy wraps synchronous and coroutine functions alike, and picks the flavour once, when
it decorates (`is_async`). The outermost wrapper of a call (a policy used alone, or the
composite that `resilient` builds) counts the call for the running scanner and reports a
`CallFinished` event; the layers inside it do neither (`counted`).

Both cost nothing when nobody is listening. `quiet` answers, in one context-variable read
and one identity check, whether no scanner is running and no hook takes any per-call event
(`CallFinished`, `AttemptStarted`, `AttemptFinished`); wrappers then take their fast path.
`traced` answers whether anyone takes attempt events: a metrics hook takes `CallFinished`
only, and then attempts are made without timing or reporting each one.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from inspect import CO_COROUTINE
from types import FunctionType
from typing import Any, Final, TypeVar, cast

from . import _config
from ._clock import Clock
from ._config import CURRENT_SCAN
from ._errors import CircuitOpenError, RateLimitExceeded, ScanTimeout
from ._events import AttemptFinished, AttemptStarted, CallFinished
from ._instrument import QUIET_DISPATCH, dispatch, emit, wanted
from ._text import error_type

F = TypeVar("F", bound=Callable[..., Any])

#: The events emitted for every call or attempt, so only built when a hook takes them.
PER_CALL_EVENTS: Final = (CallFinished, AttemptStarted, AttemptFinished)


def is_async(func: object) -> bool:
    """Whether calling *func* returns a coroutine to await (decided once, at decoration).

    An ``async def`` function or method, or an object whose ``__call__`` is one.
    """
    if type(func) is FunctionType:  # the usual case, read from its code (once per scanner)
        if func.__code__.co_flags & CO_COROUTINE:
            return True
        if getattr(func, "_is_coroutine_marker", None) is None:  # inspect's mark (3.12+)
            return False
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - reading the method, not testing callability
    )


def quiet() -> bool:
    """Whether no scanner is running and no hook takes a per-call event, right now."""
    if CURRENT_SCAN.get() is not None:
        return False
    current = _config.RUNTIME.dispatch
    if current is not None and current is QUIET_DISPATCH[0]:
        return True
    return _check_quiet()


def _check_quiet() -> bool:
    # Some hook may want them (then `wanted` is asked for each event), or the table was not
    # built yet.
    return not dispatch().per_call


def traced() -> bool:
    """Whether attempts must be timed and reported one by one (a hook takes their events).

    When not, a layer that would report attempts makes them without an `Attempt`.
    """
    return (_config.RUNTIME.dispatch or dispatch()).traced


def outcome(exc: BaseException | None) -> str:
    """A call's or attempt's outcome in one word, as events report it."""
    if exc is None:
        return "ok"
    if isinstance(exc, ScanTimeout):
        return "timeout"
    if isinstance(exc, CircuitOpenError):
        return "circuit_open"
    if isinstance(exc, RateLimitExceeded):
        return "rate_limited"
    if not isinstance(exc, Exception):
        return "cancelled"  # KeyboardInterrupt, SystemExit, a cancelled task
    return "error"


def finish_call(name: str, started: float, clock: Clock, exc: BaseException | None) -> None:
    """Count a call for the running scanner and report its `CallFinished`, as wanted."""
    recorder = CURRENT_SCAN.get()
    if recorder is not None:
        recorder.count_call(failed=isinstance(exc, Exception))
    current = _config.RUNTIME.dispatch
    # A metrics hook takes every call.finished: answered from the table, without a call.
    if (current is not None and current.routes.get(CallFinished) is True) or wanted(CallFinished):
        # Not rounded: round(x, 6) costs more than the rest of the event, once per call.
        duration = clock.monotonic() - started
        if exc is None:
            emit(CallFinished(name, "ok", duration))
        else:
            emit(CallFinished(name, outcome(exc), duration, error_type(exc)))


def counted(wrapper: F, name: str, clock: Clock) -> F:
    """*wrapper* as the outermost wrapper of its calls: it counts them and reports them."""
    if is_async(wrapper):
        call_async = cast("Callable[..., Awaitable[Any]]", wrapper)

        async def counted_async_call(*args: Any, **kwargs: Any) -> Any:
            if quiet():
                return await call_async(*args, **kwargs)
            started = clock.monotonic()
            try:
                result = await call_async(*args, **kwargs)
            except BaseException as exc:
                finish_call(name, started, clock, exc)
                raise
            finish_call(name, started, clock, None)
            return result

        return cast("F", functools.wraps(wrapper)(counted_async_call))

    def counted_call(*args: Any, **kwargs: Any) -> Any:
        if quiet():
            return wrapper(*args, **kwargs)
        started = clock.monotonic()
        try:
            result = wrapper(*args, **kwargs)
        except BaseException as exc:
            finish_call(name, started, clock, exc)
            raise
        finish_call(name, started, clock, None)
        return result

    return cast("F", functools.wraps(wrapper)(counted_call))


class Attempt:
    """One traced attempt: `AttemptStarted` before it, `AttemptFinished` after, same token.

    Emitted from the thread (or task) that makes the attempt, so a tracing hook can open
    and close one span per attempt in the caller's context.
    """

    __slots__ = ("clock", "name", "number", "started", "token")

    def __init__(self, name: str, number: int, clock: Clock) -> None:
        """Start attempt *number* of a call to *name* (reported if anyone listens)."""
        self.name = name
        self.number = number
        self.clock = clock
        self.token: object | None = None
        if wanted(AttemptStarted):
            self.token = object()
            emit(AttemptStarted(name, number, self.token))
        self.started = clock.monotonic()

    def finish(self, exc: BaseException | None) -> None:
        """Report how the attempt ended."""
        if self.token is not None or wanted(AttemptFinished):
            duration = self.clock.monotonic() - self.started  # per attempt: not rounded
            kind = None if exc is None else error_type(exc)
            emit(
                AttemptFinished(
                    self.name, self.number, outcome(exc), duration, kind, self.token, exc
                )
            )
