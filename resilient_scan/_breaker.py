"""The circuit breaker: pybreaker's states, storage and listeners, without its lock.

pybreaker runs the wrapped call while holding the breaker's lock, so every call through one
breaker runs one at a time (upstream issue #55): 64 calls of 20 ms on 16 threads took 15
times as long through a shared breaker. Here the lock is held only to admit a call and to
record its outcome; the call itself runs unlocked.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Final, ParamSpec, Protocol, TypeVar, cast

import pybreaker

from . import _validate
from ._clock import SYSTEM_CLOCK, Clock
from ._errors import CircuitOpenError, ConfigError
from ._logging import callable_name, log
from ._storage import BreakerStorage, memory_breaker_storage

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

CLOSED: Final = "closed"
OPEN: Final = "open"
HALF_OPEN: Final = "half-open"


class _Admission:
    """How a call got in: as an ordinary call while closed, or as the half-open trial."""

    __slots__ = ()


_ADMITTED_CLOSED: Final = _Admission()


class _LogStateChanges(pybreaker.CircuitBreakerListener):
    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        emit = log.warning if new_state.name == OPEN else log.info
        emit(
            "breaker.state_changed",
            breaker=cb.name,
            from_state=None if old_state is None else old_state.name,
            to_state=new_state.name,
            failures=cb.fail_counter,
        )


class CircuitBreaker:
    """A circuit breaker. Decorate several functions with one to make them trip together.

    Closed, it counts consecutive failures and opens at *fail_max*. Open, it rejects calls
    with `CircuitOpenError` without running them. After *reset_timeout* it is half-open and
    admits one trial call at a time (the others are rejected at once) until that trial
    returns; its success closes the breaker and its failure opens it again. Give the call a
    timeout (as `resilient` does, inside the breaker) so that a trial always returns.

    Exceptions matching *exclude* (types or predicates) are not failures: the service
    answered. Exceptions that are not `Exception` (KeyboardInterrupt, ...) count as nothing.
    """

    def __init__(
        self,
        *,
        fail_max: int = 5,
        reset_timeout: float | timedelta = 60.0,
        exclude: Iterable[_validate.ExceptionFilter] = (),
        name: str | None = None,
        storage: BreakerStorage | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """Create a breaker; see `circuit_breaker` for the arguments."""
        self.fail_max = _validate.integer(fail_max, "circuit_breaker.fail_max", minimum=1)
        self.reset_timeout = _validate.seconds(reset_timeout, "circuit_breaker.reset_timeout")
        self._excluded = tuple(
            _validate.exception_filter(item, "circuit_breaker.exclude")
            for item in _validate.exclusions(exclude, "circuit_breaker.exclude")
        )
        _check_name_and_storage(name, storage)
        self.name = name or "circuit_breaker"
        self.clock = clock
        self._storage = storage if storage is not None else memory_breaker_storage()
        self._lock = threading.Lock()
        self._trial: _Admission | None = None
        self._cb = pybreaker.CircuitBreaker(
            fail_max=self.fail_max,
            reset_timeout=self.reset_timeout,
            state_storage=cast("pybreaker.CircuitBreakerStorage", self._storage),
            listeners=[_LogStateChanges()],
            name=self.name,
        )

    def __repr__(self) -> str:
        """Show the name, state and settings."""
        return (
            f"CircuitBreaker(name={self.name!r}, state={self.state!r}, "
            f"fail_max={self.fail_max}, reset_timeout={self.reset_timeout:g})"
        )

    def describe(self) -> str:
        """Return a short description, as shown by ``resilient(...).describe()``."""
        return (
            f"circuit_breaker({self.name!r}, fail_max={self.fail_max}, "
            f"reset_timeout={self.reset_timeout:g}s, shared)"
        )

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half-open"`` (open past its reset timeout)."""
        with self._lock:
            return self._refresh()

    @property
    def failures(self) -> int:
        """Consecutive failures counted while closed."""
        return self._storage.counter

    @property
    def retry_in(self) -> float:
        """Seconds until an open breaker admits a trial call (0.0 unless open)."""
        with self._lock:
            return self._retry_in() if self._refresh() == OPEN else 0.0

    def open(self) -> None:
        """Open the breaker now, as if it had just tripped."""
        with self._lock:
            self._trial = None
            self._transition(OPEN)

    def close(self) -> None:
        """Close the breaker now and forget counted failures."""
        with self._lock:
            self._trial = None
            self._transition(CLOSED)

    def __call__(self, func: Callable[P, R]) -> BreakerFunction[P, R]:
        """Decorate *func* with this breaker."""
        _validate.decorated(func, "circuit_breaker")

        @functools.wraps(func)
        def call_with_breaker(*args: P.args, **kwargs: P.kwargs) -> R:
            return self.call(func, *args, **kwargs)

        wrapper = cast("Any", call_with_breaker)
        wrapper.breaker = self
        return cast("BreakerFunction[P, R]", wrapper)

    def call(self, func: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """Call ``func(*args, **kwargs)`` through the breaker."""
        admission = self._admit()
        try:
            result = func(*args, **kwargs)
        except Exception as exc:
            self._record_failure(admission, exc)
            raise
        except BaseException:
            self._release(admission)
            raise
        self._record_success(admission)
        return result

    # -- internals: the lock is held only here, never while the call runs -----------------

    def _admit(self) -> _Admission:
        # Closed is the common case and needs no lock: a call admitted just as another
        # thread trips the breaker is one more call in flight, as if it had started earlier.
        if self._storage.state == CLOSED:
            return _ADMITTED_CLOSED
        with self._lock:
            state = self._refresh()
            if state == CLOSED:
                return _ADMITTED_CLOSED
            if state == OPEN:
                retry_in = self._retry_in()
            elif self._trial is not None:
                retry_in = 0.0  # half-open, and its one trial is running
            else:
                self._trial = _Admission()
                return self._trial
        log.info("breaker.rejected", breaker=self.name, state=state, retry_in=round(retry_in, 3))
        raise CircuitOpenError(self.name, retry_in)

    def _record_success(self, admission: _Admission) -> None:
        if admission is _ADMITTED_CLOSED:
            if self._storage.counter:  # rarely: the common case reads one counter, no lock
                with self._lock:
                    # Only while closed: an open breaker's count is what opened it.
                    if self._storage.state == CLOSED:
                        self._storage.reset_counter()
            return
        with self._lock:
            if admission is self._trial:
                self._trial = None
                self._transition(CLOSED)

    def _record_failure(self, admission: _Admission, exc: Exception) -> None:
        if any(excluded(exc) for excluded in self._excluded):
            self._record_success(admission)
            return
        with self._lock:
            if admission is _ADMITTED_CLOSED:
                # A call admitted before the breaker opened adds nothing once it is open.
                if self._storage.state == CLOSED:
                    self._storage.increment_counter()
                    if self._storage.counter >= self.fail_max:
                        self._transition(OPEN)
            elif admission is self._trial:
                self._trial = None
                self._transition(OPEN)

    def _release(self, admission: _Admission) -> None:
        with self._lock:
            if admission is self._trial:
                self._trial = None

    def _refresh(self) -> str:
        """Return the state, moving an open breaker past its reset timeout to half-open."""
        state = self._storage.state
        if state == OPEN and self._retry_in() <= 0:
            self._transition(HALF_OPEN)
            return HALF_OPEN
        return state

    def _retry_in(self) -> float:
        opened_at = self._storage.opened_at
        if opened_at is None:
            return 0.0
        return max(0.0, opened_at.timestamp() + self.reset_timeout - self.clock.time())

    def _transition(self, state: str) -> None:
        if state == OPEN:
            self._storage.opened_at = datetime.fromtimestamp(self.clock.time(), timezone.utc)
        previous = self._storage.state
        self._storage.state = state
        if previous != state:
            # pybreaker's state setter builds its state object, resets the counters that
            # state starts with, and notifies the listeners.
            self._cb.state = state


def _check_name_and_storage(name: object, storage: object) -> None:
    if name is not None and not isinstance(name, str):
        raise ConfigError("circuit_breaker.name", f"must be a string, got {name!r}")
    if storage is not None and not isinstance(storage, BreakerStorage):
        raise ConfigError("circuit_breaker.storage", f"must be a breaker storage, got {storage!r}")


class BreakerFunction(Protocol[P, R_co]):
    """A function wrapped by `circuit_breaker`: same signature, plus its ``breaker``."""

    breaker: CircuitBreaker

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co:
        """Call through the breaker."""
        ...


@dataclass(frozen=True, kw_only=True)
class BreakerPolicy:
    """Settings of the circuit-breaker layer; each decorated function gets its own breaker.

    Attributes:
        fail_max: Consecutive failures that open the breaker.
        reset_timeout: Seconds the breaker stays open before it admits a trial call.
        exclude: Exception types or predicates that are not failures.
        name: The breaker's name in logs and errors (default: the function's name).
        storage: Where the breaker's state lives (default: in this process).
        clock: Where time comes from (tests pass a fake clock).
    """

    fail_max: int = 5
    reset_timeout: float = 60.0
    exclude: tuple[_validate.ExceptionFilter, ...] = ()
    name: str | None = None
    storage: BreakerStorage | None = field(default=None, repr=False, compare=False)
    clock: Clock = field(default=SYSTEM_CLOCK, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Validate and normalize the settings."""
        _validate.integer(self.fail_max, "circuit_breaker.fail_max", minimum=1)
        reset_timeout = _validate.seconds(self.reset_timeout, "circuit_breaker.reset_timeout")
        exclude = _validate.exclusions(self.exclude, "circuit_breaker.exclude")
        _check_name_and_storage(self.name, self.storage)
        object.__setattr__(self, "reset_timeout", reset_timeout)
        object.__setattr__(self, "exclude", exclude)

    def build(self, default_name: str) -> CircuitBreaker:
        """Return a new breaker with these settings, named *default_name* unless named."""
        return CircuitBreaker(
            fail_max=self.fail_max,
            reset_timeout=self.reset_timeout,
            exclude=self.exclude,
            name=self.name or default_name,
            storage=self.storage,
            clock=self.clock,
        )

    def __call__(self, func: Callable[P, R]) -> BreakerFunction[P, R]:
        """Wrap *func* in a new breaker with these settings."""
        _validate.decorated(func, "circuit_breaker")
        return self.build(callable_name(func))(func)

    def describe(self) -> str:
        """Return a short description, as shown by ``resilient(...).describe()``."""
        return f"circuit_breaker(fail_max={self.fail_max}, reset_timeout={self.reset_timeout:g}s)"


def circuit_breaker(
    *,
    fail_max: int = 5,
    reset_timeout: float | timedelta = 60.0,
    exclude: Iterable[_validate.ExceptionFilter] = (),
    name: str | None = None,
    storage: BreakerStorage | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Callable[[Callable[P, R]], BreakerFunction[P, R]]:
    """Guard the decorated function with a circuit breaker of its own.

    Opens after *fail_max* consecutive failures (a `ScanTimeout` from an inner timeout is a
    failure); while open, calls raise `CircuitOpenError` at once without running. After
    *reset_timeout* seconds it is half-open and admits one trial call at a time, whose outcome
    closes or re-opens it. Exceptions matching *exclude* (types or predicates) do not count.
    Calls run concurrently: no lock is held while the function runs. The wrapper's
    ``.breaker`` shows ``.state``. *storage* selects where state lives (in memory by default;
    pybreaker's ``CircuitRedisStorage`` shares it between processes).

    Raises:
        ConfigError: for a bad setting, naming it.
    """
    return BreakerPolicy(
        fail_max=fail_max,
        reset_timeout=_validate.seconds(reset_timeout, "circuit_breaker.reset_timeout"),
        exclude=_validate.exclusions(exclude, "circuit_breaker.exclude"),
        name=name,
        storage=storage,
        clock=clock,
    )
