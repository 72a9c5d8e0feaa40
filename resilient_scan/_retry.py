"""The retry policy: exponential backoff with full jitter, built on tenacity.

tenacity's `Retrying` keeps per-object statistics and is not safe to share between threads,
and its machinery costs more than the other layers together. So the first attempt runs
outside tenacity, and only after it fails does each call build its own `Retrying`.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar, ParamSpec, TypeVar

from . import _deadline, _settings
from ._clock import SYSTEM_CLOCK, Clock, backoff_sleep
from ._deadline import Deadline
from ._errors import CircuitOpenError, ConfigError
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
    response) waits at least that long. Stops after *attempts* calls in all, or when the next
    wait would end past the *total* budget or past the deadline of an enclosing timeout, and
    then re-raises the last exception unchanged. `CircuitOpenError` is never retried.

    Attributes:
        attempts: Calls in all, the first included (1 means no retry).
        backoff: The first wait; the n-th wait (from 0) is ``backoff * 2**n``.
        max_backoff: The cap on any one computed wait.
        jitter: Wait a uniform random time between 0 and the computed wait.
        on: Which exceptions to retry: a type, a tuple of types, or a predicate.
        total: A budget in seconds over all attempts and waits.
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
                ("retry", "max_backoff"), f"must be >= backoff ({first_wait:g}), got {max_backoff!r}"
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
        name = callable_name(func)
        single_attempt = self.attempts == 1
        monotonic = self.clock.monotonic
        policy = self

        def call_with_retry(*args: P.args, **kwargs: P.kwargs) -> R:
            started = monotonic()
            try:
                return func(*args, **kwargs)
            except Exception as exc:
                if single_attempt or not policy.retryable(exc, name):
                    raise
                first_failure = exc
            return _Retry(policy, name, started).run(first_failure, func, args, kwargs)

        total = self.total
        if total is None:
            return functools.wraps(func)(call_with_retry)
        clock = self.clock

        def call_within_budget(*args: P.args, **kwargs: P.kwargs) -> R:
            # The budget is also the deadline of each attempt: an inner timeout ends an
            # attempt when the budget runs out, and time_remaining() inside tells it.
            with _deadline.scope(Deadline.after(total, clock)):
                return call_with_retry(*args, **kwargs)

        return functools.wraps(func)(call_within_budget)

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


class _Retry:
    """The retries of one call, after its first attempt failed: one per call, never shared."""

    def __init__(self, policy: RetryPolicy, name: str, started: float) -> None:
        self.policy = policy
        self.name = name
        self.started = started

    def run(
        self,
        first_failure: Exception,
        func: Callable[..., R],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> R:
        import tenacity  # noqa: PLC0415 - loaded on the first retry, not at import

        replay = [first_failure]

        def attempt() -> R:
            # tenacity counts from its own first attempt; handing it the failure that
            # already happened keeps its attempt numbers and ours the same.
            if replay:
                raise replay.pop()
            return func(*args, **kwargs)

        policy = self.policy
        retrying = tenacity.Retrying(
            sleep=functools.partial(backoff_sleep, policy.clock),
            stop=self._stop,
            wait=self._wait,
            retry=tenacity.retry_if_exception(lambda exc: policy.retryable(exc, self.name)),
            before_sleep=self._scheduled,
            reraise=True,
        )
        return retrying(attempt)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        policy = self.policy
        wait = policy.computed_wait(state.attempt_number - 1)
        if policy.jitter:
            wait = random.uniform(0.0, wait)
        exc = _exception(state)
        server_wait = retry_after(exc, policy.clock) if exc is not None else None
        if server_wait is not None:
            wait = max(wait, server_wait)
        return wait

    def _stop(self, state: tenacity.RetryCallState) -> bool:
        policy = self.policy
        wait = state.upcoming_sleep
        exc = _exception(state)
        reason = None
        if state.attempt_number >= policy.attempts:
            reason = "attempts"
        elif exc is not None and (server := retry_after(exc, policy.clock)) is not None and (
            server > policy.max_backoff
        ):
            reason = "retry_after"
        elif (
            policy.total is not None
            and policy.clock.monotonic() - self.started + wait > policy.total
        ):
            reason = "budget"
        else:
            remaining = _deadline.remaining()
            if wait >= remaining:
                reason = "deadline"
        if reason is None:
            return False
        if wanted(RetryExhausted):
            emit(
                RetryExhausted(
                    self.name,
                    state.attempt_number,
                    reason,
                    None if exc is None else error_type(exc),
                    None if exc is None else describe_error(exc),
                    round(policy.clock.monotonic() - self.started, 3),
                    exc,
                )
            )
        return True

    def _scheduled(self, state: tenacity.RetryCallState) -> None:
        exc = _exception(state)
        if wanted(RetryScheduled):
            emit(
                RetryScheduled(
                    self.name,
                    state.attempt_number,
                    round(state.upcoming_sleep, 3),
                    None if exc is None else error_type(exc),
                    None if exc is None else describe_error(exc),
                    None if exc is None else retry_after(exc, self.policy.clock),
                    exc,
                )
            )


def _exception(state: tenacity.RetryCallState) -> BaseException | None:
    outcome = state.outcome
    return None if outcome is None else outcome.exception()


def retry_after(exc: BaseException, clock: Clock = SYSTEM_CLOCK) -> float | None:
    """Return the seconds a server asked to wait before the next attempt, if it said so.

    Looks at, in order: a numeric ``retry_after`` attribute (seconds) on the exception, then a
    ``Retry-After`` header (delay-seconds or an HTTP date) on ``exc.response.headers``
    (httpx, requests) or ``exc.headers`` (urllib). Neither library is imported. A value that
    is not a finite, non-negative number of seconds is ignored.
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
