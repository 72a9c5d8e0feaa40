"""The retry policy: exponential backoff with full jitter, built on tenacity.

tenacity's `Retrying` keeps per-object statistics and is not safe to share between threads,
and its machinery costs more than the other three layers together. So the first attempt
runs outside tenacity, and only after it fails does each call build its own `Retrying`.
"""

from __future__ import annotations

import email.utils
import functools
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta, timezone
from typing import Any, ParamSpec, TypeVar

import tenacity

from . import _validate
from ._clock import SYSTEM_CLOCK, Clock, backoff_sleep
from ._errors import CircuitOpenError, ConfigError
from ._logging import callable_name, describe_error, log
from ._stats import record
from ._threads import reset_deadline, set_deadline, time_remaining

P = ParamSpec("P")
R = TypeVar("R")

# 2**64 times any sane backoff is far past any cap; beyond it floats would overflow.
_MAX_EXPONENT = 64


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Settings of the retry layer.

    Attributes:
        attempts: Calls in all, the first included (1 means no retry).
        backoff: The first wait; the n-th wait (from 0) is ``backoff * 2**n``.
        max_backoff: The cap on any one computed wait.
        jitter: Wait a uniform random time between 0 and the computed wait ("full jitter"),
            so that many clients retrying at once spread out.
        on: Which exceptions to retry: a type, a tuple of types, or a predicate
            ``exc -> bool``. `CircuitOpenError` is never retried.
        total: A budget in seconds over all attempts and waits. A wait that would end past
            the budget is not started: the last exception is raised at once instead.
        clock: Where time comes from (tests pass a fake clock).
    """

    attempts: int = 3
    backoff: float = 0.5
    max_backoff: float = 30.0
    jitter: bool = True
    on: _validate.ExceptionFilter = Exception
    total: float | None = None
    clock: Clock = field(default=SYSTEM_CLOCK, repr=False, compare=False)
    _retryable: Callable[[BaseException], bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Validate and normalize the settings."""
        _validate.integer(self.attempts, "retry.attempts", minimum=1)
        backoff = _validate.seconds(self.backoff, "retry.backoff", allow_zero=True)
        cap = _validate.seconds(self.max_backoff, "retry.max_backoff", allow_zero=True)
        if cap < backoff:
            raise ConfigError(
                "retry.max_backoff", f"must be >= backoff ({backoff:g}), got {self.max_backoff!r}"
            )
        _validate.boolean(self.jitter, "retry.jitter")
        wanted = _validate.exception_filter(self.on, "retry.on")
        total = None if self.total is None else _validate.seconds(self.total, "retry.total")
        object.__setattr__(self, "backoff", backoff)
        object.__setattr__(self, "max_backoff", cap)
        object.__setattr__(self, "total", total)
        object.__setattr__(
            self, "_retryable", lambda exc: not isinstance(exc, CircuitOpenError) and wanted(exc)
        )

    def computed_wait(self, retry_number: int) -> float:
        """The wait before retry number *retry_number* (0 for the first) before jitter."""
        growth = float(2 ** min(retry_number, _MAX_EXPONENT))
        return min(self.max_backoff, self.backoff * growth)

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Wrap *func* in this retry policy."""
        _validate.decorated(func, "retry")
        name = callable_name(func)
        retryable = self._retryable
        single_attempt = self.attempts == 1
        monotonic = self.clock.monotonic

        def call_with_retry(*args: P.args, **kwargs: P.kwargs) -> R:
            started = monotonic()
            try:
                return func(*args, **kwargs)
            except Exception as exc:
                if single_attempt or not retryable(exc):
                    raise
                first_failure = exc
            return _Retry(self, name, started).run(first_failure, func, args, kwargs)

        total = self.total
        if total is None:
            return functools.wraps(func)(call_with_retry)

        def call_within_budget(*args: P.args, **kwargs: P.kwargs) -> R:
            # The budget is also the deadline of each attempt: an inner timeout ends an
            # attempt when the budget runs out, and time_remaining() inside tells it.
            token = set_deadline(time.monotonic() + total)
            try:
                return call_with_retry(*args, **kwargs)
            finally:
                reset_deadline(token)

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
            retry=tenacity.retry_if_exception(policy._retryable),  # noqa: SLF001
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
        reason = None
        if state.attempt_number >= policy.attempts:
            reason = "attempts"
        elif (
            policy.total is not None
            and policy.clock.monotonic() - self.started + wait > policy.total
        ):
            reason = "budget"
        else:
            remaining = time_remaining()
            if remaining is not None and wait >= remaining:
                reason = "deadline"
        if reason is None:
            return False
        exc = _exception(state)
        log.warning(
            "retry.exhausted",
            function=self.name,
            attempts=state.attempt_number,
            reason=reason,
            cause=None if exc is None else describe_error(exc),
            elapsed=round(policy.clock.monotonic() - self.started, 3),
        )
        return True

    def _scheduled(self, state: tenacity.RetryCallState) -> None:
        record(retries=1)
        exc = _exception(state)
        log.warning(
            "retry.scheduled",
            function=self.name,
            attempt=state.attempt_number,
            wait=round(state.upcoming_sleep, 3),
            cause=None if exc is None else describe_error(exc),
            retry_after=None if exc is None else retry_after(exc, self.policy.clock),
        )


def _exception(state: tenacity.RetryCallState) -> BaseException | None:
    outcome = state.outcome
    return None if outcome is None else outcome.exception()


def retry_after(exc: BaseException, clock: Clock = SYSTEM_CLOCK) -> float | None:
    """Return the seconds a server asked to wait before the next attempt, if it said so.

    Looks at, in order: a numeric ``retry_after`` attribute (seconds) on the exception, then a
    ``Retry-After`` header (delay-seconds or an HTTP date) on ``exc.response.headers``
    (httpx, requests) or ``exc.headers`` (urllib). Neither library is imported.
    """
    value = getattr(exc, "retry_after", None)
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) and value >= 0 else None
    response = getattr(exc, "response", None)
    headers: Any = getattr(response, "headers", None)
    if headers is None:
        headers = getattr(exc, "headers", None)
    get = getattr(headers, "get", None)
    if not callable(get):
        return None
    try:
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
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - clock.time())


def retry(
    *,
    attempts: int = 3,
    backoff: float | timedelta = 0.5,
    max_backoff: float | timedelta = 30.0,
    jitter: bool = True,
    on: _validate.ExceptionFilter = Exception,
    total: float | timedelta | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Retry the decorated function with exponential backoff.

    Waits ``backoff * 2**n`` before retry n (from 0), capped at *max_backoff*, a uniform random
    part of it when *jitter* ("full jitter"). An exception that carries a server's
    ``Retry-After`` (a numeric ``retry_after`` attribute, or the header on an attached HTTP
    response) waits at least that long. Stops after *attempts* calls in all, or when the next
    wait would end past the *total* budget or past the deadline of an enclosing timeout, and
    then re-raises the last exception unchanged. `CircuitOpenError` is never retried.

    Raises:
        ConfigError: for a bad setting, naming it.
    """
    return RetryPolicy(
        attempts=attempts,
        backoff=_validate.seconds(backoff, "retry.backoff", allow_zero=True),
        max_backoff=_validate.seconds(max_backoff, "retry.max_backoff", allow_zero=True),
        jitter=jitter,
        on=on,
        total=None if total is None else _validate.seconds(total, "retry.total"),
        clock=clock,
    )
