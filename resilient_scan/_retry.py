"""The retry policy: exponential backoff with full jitter, budgets, and servers' Retry-After.

tenacity runs the loop of attempts and sleeps; every decision in it (retry or give up, how
long to wait, why) is made in one place, `Tries.wait_after`, on one clock (the policy's)
and against one deadline (the earliest of the retry's budget and any enclosing one), so the
same decisions serve the synchronous loop (``tenacity.Retrying``) and the asynchronous one
(``tenacity.AsyncRetrying``). tenacity's objects keep per-call statistics and are not safe
to share between threads, and building one costs more than a whole happy-path call: so the
first attempt runs outside tenacity, and only a call whose first attempt failed builds its
own ``Retrying``. tenacity itself is imported on the first retry, not with the package.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar, ParamSpec, TypeVar, cast

from . import _config, _settings
from ._calls import Attempt, counted, is_async, traced
from ._clock import SYSTEM_CLOCK, Clock, backoff_sleep, backoff_sleep_async
from ._config import DEADLINE
from ._deadline import Deadline, scope
from ._errors import CircuitOpenError, ConfigError, RateLimitExceeded
from ._events import RetryExhausted, RetryScheduled
from ._instrument import emit, wanted
from ._policy import Policy
from ._settings import ExceptionFilter, ExceptionMatcher, Seconds
from ._text import callable_name, describe_error, error_type

if TYPE_CHECKING:
    import tenacity

P = ParamSpec("P")
R = TypeVar("R")

# 2**64 times any sane backoff is far past any cap; beyond it floats would overflow.
_MAX_EXPONENT = 64


@dataclass(frozen=True, init=False)
class RetryPolicy(Policy):
    """Retry the decorated function with exponential backoff.

    Waits ``backoff * 2**n`` before retry n (from 0), capped at *max_backoff*, a uniform
    random part of it when *jitter* ("full jitter"). An exception that carries a server's
    ``Retry-After`` (a numeric ``retry_after`` attribute, or the header on an attached HTTP
    response) waits at least that long; a server that asks for more than *max_backoff*, or
    for more than the time left, is not waited for: the call gives up at once. Stops after
    *attempts* calls in all, or when the next wait would end past the *total* budget or past
    an enclosing deadline, and then re-raises the last exception unchanged.

    Only `Exception` subclasses are retried, never `CircuitOpenError`, and never
    `KeyboardInterrupt`, `SystemExit`, `GeneratorExit` or a cancellation, whatever *on*
    says. A predicate *on* that raises answers "do not retry": the caller gets the original
    exception, with the predicate's error attached as a note.

    Attributes:
        attempts: Calls in all, the first included (1 means no retry).
        backoff: The first wait; the n-th wait (from 0) is ``backoff * 2**n``.
        max_backoff: The cap on any one wait, a server's ``Retry-After`` included.
        jitter: Wait a uniform random time between 0 and the computed wait.
        on: Which exceptions to retry: a type, a tuple of types, or a predicate.
        total: A budget in seconds over all attempts and waits; inside the call it is the
            deadline that `time_remaining` reports and inner timeouts keep.
        clock: Where time comes from (tests pass a fake clock).

    Raises:
        ConfigError: for a bad setting, naming it.
    """

    kind: ClassVar[str] = "retry"
    true_means_defaults: ClassVar[bool] = True

    attempts: int
    backoff: float
    max_backoff: float
    jitter: bool
    on: ExceptionFilter
    total: float | None
    clock: Clock = field(repr=False, compare=False)
    _retryable: ExceptionMatcher = field(repr=False, compare=False)

    def __init__(
        self,
        *,
        attempts: int = 3,
        backoff: Seconds = 0.5,
        max_backoff: Seconds = 30.0,
        jitter: bool = True,
        on: ExceptionFilter = Exception,
        total: Seconds | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """Validate and store the settings."""
        first_wait = _settings.seconds(backoff, ("retry", "backoff"), allow_zero=True)
        cap = _settings.seconds(max_backoff, ("retry", "max_backoff"), allow_zero=True)
        if cap < first_wait:
            raise ConfigError(
                ("retry", "max_backoff"),
                f"must be >= backoff ({first_wait:g}), got {max_backoff!r}",
            )
        self._assign(
            attempts=_settings.integer(attempts, ("retry", "attempts"), minimum=1),
            backoff=first_wait,
            max_backoff=cap,
            jitter=_settings.boolean(jitter, ("retry", "jitter")),
            on=on,
            total=_settings.optional_seconds(total, ("retry", "total")),
            clock=_settings.clock(clock, ("retry", "clock")),
            _retryable=ExceptionMatcher.build(on, ("retry", "on")),
        )

    def retryable(self, exc: BaseException, function: str = "") -> bool:
        """Whether *exc* may be retried (a broken ``on=`` predicate answers no)."""
        if not isinstance(exc, Exception) or isinstance(exc, CircuitOpenError):
            return False
        return self._retryable.matches(exc, if_broken=False, function=function)

    def computed_wait(self, retry_number: int) -> float:
        """The wait before retry number *retry_number* (0 for the first) before jitter."""
        growth = float(2 ** min(retry_number, _MAX_EXPONENT))
        return min(self.max_backoff, self.backoff * growth)

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Wrap *func* in this retry policy."""
        _settings.decorated(func, "retry")
        return counted(self.layer(func), callable_name(func), self.clock)

    def layer(self, func: Callable[P, R]) -> Callable[P, R]:
        """Wrap *func* in this retry policy, as one layer of `resilient` (calls not counted)."""
        name = callable_name(func)
        if is_async(func):
            coroutine_function = cast("Callable[..., Awaitable[Any]]", func)
            return cast("Callable[P, R]", _async_retry(self, name, coroutine_function))
        return _sync_retry(self, name, func)

    def budget(self) -> Deadline | None:
        """A new call's budget as a deadline on the policy's clock (None without ``total``)."""
        return None if self.total is None else Deadline.after(self.total, self.clock)

    def describe(self) -> str:
        """Return a short description, as shown by ``resilient(...).describe()``."""
        parts = [
            f"attempts={self.attempts}",
            f"backoff={self.backoff:g}s",
            f"max_backoff={self.max_backoff:g}s",
        ]
        if self.jitter:
            parts.append("jitter")
        if self.total is not None:
            parts.append(f"total={self.total:g}s")
        return f"retry({', '.join(parts)})"


retry = RetryPolicy


class Tries:
    """The attempts of one call after its first failure: one per call, never shared.

    `wait_after` makes every decision: whether to retry, how long to wait, and why not.
    """

    __slots__ = ("attempt", "budget", "name", "policy", "started", "traced")

    def __init__(
        self, policy: RetryPolicy, name: str, started: float, budget: Deadline | None
    ) -> None:
        self.policy = policy
        self.name = name
        self.started = started
        self.budget = budget
        self.attempt = 1  # the attempt that just failed
        self.traced = traced()

    def wait_after(self, exc: BaseException) -> float | None:
        """The seconds to wait before the next attempt, or None to give up now."""
        policy = self.policy
        if not policy.retryable(exc, self.name):
            if self.attempt > 1 and isinstance(exc, Exception):
                self._give_up(exc, "not_retryable")
            return None
        if self.attempt >= policy.attempts:
            self._give_up(exc, "attempts")
            return None
        wait = policy.computed_wait(self.attempt - 1)
        if policy.jitter:
            wait = random.uniform(0.0, wait)
        server = _server_wait(exc, policy.clock)
        if server is not None:
            if server > policy.max_backoff:
                self._give_up(exc, "retry_after")
                return None
            wait = max(wait, server)
        deadline = DEADLINE.get()  # the earliest of this call's budget and any enclosing one
        if deadline is not None and wait >= deadline.remaining():
            if server is not None and wait == server:
                reason = "retry_after"
            else:
                reason = "budget" if deadline is self.budget else "deadline"
            self._give_up(exc, reason)
            return None
        if wanted(RetryScheduled):
            emit(
                RetryScheduled(
                    self.name,
                    self.attempt,
                    round(wait, 3),
                    error_type(exc),
                    describe_error(exc),
                    server,
                    exc,
                )
            )
        self.attempt += 1
        return wait

    def _give_up(self, exc: BaseException, reason: str) -> None:
        if wanted(RetryExhausted):
            elapsed = round(self.policy.clock.monotonic() - self.started, 3)
            emit(
                RetryExhausted(
                    self.name,
                    self.attempt,
                    reason,
                    error_type(exc),
                    describe_error(exc),
                    elapsed,
                    exc,
                )
            )


def _server_wait(exc: BaseException, clock: Clock) -> float | None:
    """The wait the failure asks for: a server's Retry-After, or a rate limiter's wait."""
    if isinstance(exc, RateLimitExceeded):
        return exc.wait
    return retry_after(exc, clock)


class _Decision:
    """Adapts `Tries.wait_after` to tenacity: one decision per failed attempt."""

    __slots__ = ("tries", "wait")

    def __init__(self, tries: Tries) -> None:
        self.tries = tries
        self.wait = 0.0

    def retry(self, state: tenacity.RetryCallState) -> bool:
        outcome = state.outcome
        if outcome is None or not outcome.failed:
            return False
        exc = outcome.exception()
        wait = None if exc is None else self.tries.wait_after(exc)
        if wait is None:
            return False  # tenacity then raises the attempt's own exception, unchanged
        self.wait = wait
        return True

    def wait_for(self, state: tenacity.RetryCallState) -> float:  # noqa: ARG002 - tenacity's API
        return self.wait


def _replaying(first: BaseException, tries: Tries, func: Callable[..., R]) -> Callable[..., R]:
    """*func* as tenacity's attempt, whose first run re-raises the failure already seen.

    tenacity counts from its own first attempt; handing it the failure that happened
    outside it keeps its loop and our attempt numbers the same.
    """
    pending = [first]
    clock = tries.policy.clock

    def attempt(*args: Any, **kwargs: Any) -> R:
        if pending:
            raise pending.pop()
        trace = Attempt(tries.name, tries.attempt, clock) if tries.traced else None
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            if trace is not None:
                trace.finish(exc)
            raise
        if trace is not None:
            trace.finish(None)
        return result

    return attempt


def retry_sync(
    tries: Tries,
    first: BaseException,
    func: Callable[..., R],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> R:
    """Go on after the first attempt of a call failed with *first*: retry or re-raise."""
    import tenacity  # noqa: PLC0415 - loaded by the first retry, not by the package

    decision = _Decision(tries)
    retrying = tenacity.Retrying(
        retry=decision.retry,
        wait=decision.wait_for,
        stop=tenacity.stop_never,
        sleep=functools.partial(backoff_sleep, tries.policy.clock),
        reraise=True,
    )
    return retrying(_replaying(first, tries, func), *args, **kwargs)


async def retry_async(
    tries: Tries,
    first: BaseException,
    func: Callable[..., Awaitable[R]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> R:
    """`retry_sync` for a coroutine function: waits without blocking the event loop."""
    import tenacity  # noqa: PLC0415 - loaded by the first retry, not by the package

    clock = tries.policy.clock
    pending = [first]

    async def attempt(*call_args: Any, **call_kwargs: Any) -> R:
        if pending:
            raise pending.pop()
        trace = Attempt(tries.name, tries.attempt, clock) if tries.traced else None
        try:
            result = await func(*call_args, **call_kwargs)
        except BaseException as exc:
            if trace is not None:
                trace.finish(exc)
            raise
        if trace is not None:
            trace.finish(None)
        return result

    decision = _Decision(tries)
    retrying = tenacity.AsyncRetrying(
        retry=decision.retry,
        wait=decision.wait_for,
        stop=tenacity.stop_never,
        sleep=functools.partial(backoff_sleep_async, clock),
        reraise=True,
    )
    return cast("R", await retrying(attempt, *args, **kwargs))


def _sync_retry(policy: RetryPolicy, name: str, func: Callable[P, R]) -> Callable[P, R]:
    monotonic = policy.clock.monotonic
    runtime = _config.RUNTIME

    def attempts(budget: Deadline | None, args: Any, kwargs: Any) -> R:
        started = monotonic()
        current = runtime.dispatch
        if (current is not None and not current.traced) or not traced():
            try:
                return func(*args, **kwargs)
            except Exception as exc:
                first: BaseException = exc
        else:
            attempt = Attempt(name, 1, policy.clock)
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                attempt.finish(exc)
                if not isinstance(exc, Exception):
                    raise
                first = exc
            else:
                attempt.finish(None)
                return result
        return retry_sync(Tries(policy, name, started, budget), first, func, args, kwargs)

    if policy.total is None:

        @functools.wraps(func)
        def call_with_retry(*args: P.args, **kwargs: P.kwargs) -> R:
            return attempts(None, args, kwargs)

        return call_with_retry

    @functools.wraps(func)
    def call_within_budget(*args: P.args, **kwargs: P.kwargs) -> R:
        # The budget is also the deadline of each attempt: an inner timeout ends an
        # attempt when the budget runs out, and time_remaining() inside tells it.
        budget = policy.budget()
        with scope(budget):
            return attempts(budget, args, kwargs)

    return call_within_budget


def _async_retry(
    policy: RetryPolicy, name: str, func: Callable[P, Awaitable[R]]
) -> Callable[P, Awaitable[R]]:
    monotonic = policy.clock.monotonic
    runtime = _config.RUNTIME

    async def attempts(budget: Deadline | None, args: Any, kwargs: Any) -> R:
        started = monotonic()
        current = runtime.dispatch
        if (current is not None and not current.traced) or not traced():
            try:
                return await func(*args, **kwargs)
            except Exception as exc:
                first: BaseException = exc
        else:
            attempt = Attempt(name, 1, policy.clock)
            try:
                result = await func(*args, **kwargs)
            except BaseException as exc:
                attempt.finish(exc)
                if not isinstance(exc, Exception):
                    raise
                first = exc
            else:
                attempt.finish(None)
                return result
        tries = Tries(policy, name, started, budget)
        return await retry_async(tries, first, func, args, kwargs)

    if policy.total is None:

        @functools.wraps(func)
        async def call_with_retry(*args: P.args, **kwargs: P.kwargs) -> R:
            return await attempts(None, args, kwargs)

        return call_with_retry

    @functools.wraps(func)
    async def call_within_budget(*args: P.args, **kwargs: P.kwargs) -> R:
        budget = policy.budget()
        with scope(budget):
            return await attempts(budget, args, kwargs)

    return call_within_budget


def retry_after(exc: BaseException, clock: Clock = SYSTEM_CLOCK) -> float | None:
    """Return the seconds a server asked to wait before the next attempt, if it said so.

    Looks at, in order: a numeric ``retry_after`` attribute (seconds) on the exception, then a
    ``Retry-After`` header (delay-seconds or an HTTP date) on ``exc.response.headers``
    (httpx, requests) or ``exc.headers`` (urllib). Neither library is imported. A value that
    is not a non-negative number of seconds is ignored; one too large for a float reads as
    infinity (and a retry gives up at once rather than wait for it).
    """
    value = getattr(exc, "retry_after", None)
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:
            return math.inf
        return None if math.isnan(seconds) or seconds < 0 else seconds
    try:
        response = getattr(exc, "response", None)
        headers: Any = getattr(response, "headers", None)
        if headers is None:
            headers = getattr(exc, "headers", None)
        get = getattr(headers, "get", None)
        if not callable(get):
            return None
        raw = get("Retry-After")
        if raw is None:
            raw = get("retry-after")
    except Exception:  # a headers object that is not a mapping after all
        return None
    return _parse_retry_after(raw, clock)


def _parse_retry_after(raw: object, clock: Clock) -> float | None:
    if isinstance(raw, bytes):
        raw = raw.decode("latin-1")
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    if text.isascii() and text.isdigit():
        return float(text) if len(text) < 300 else math.inf  # noqa: PLR2004 - float limit
    import email.utils  # noqa: PLC0415 - only HTTP-date headers need it

    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - clock.time())
