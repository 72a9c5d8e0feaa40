"""The circuit breaker: pybreaker's state model, without running calls under a lock.

pybreaker runs the wrapped call while holding the breaker's lock, so every call through one
breaker runs one at a time (upstream issue #55): 64 calls of 20 ms on 16 threads took 15
times as long through a shared breaker. Here the store is asked only to admit a call and to
record its outcome; the call itself runs with no lock held.
"""

from __future__ import annotations

import functools
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, ParamSpec, Protocol, TypeVar, cast

from . import _settings
from ._clock import SYSTEM_CLOCK, Clock
from ._errors import CircuitOpenError, ConfigError
from ._events import BreakerRejected, BreakerStateChanged
from ._instrument import emit, wanted
from ._policy import Policy
from ._settings import ExceptionFilter, ExceptionMatcher, Seconds
from ._storage import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    Admission,
    BreakerSnapshot,
    BreakerStore,
    Transition,
    backend_for,
)
from ._text import callable_name

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

_CLOSED_ADMISSION = Admission("closed", CLOSED)


class MemoryBreakerStore:
    """A `BreakerStore` in this process's memory (the default)."""

    def __init__(self) -> None:
        """Start closed, with no failures."""
        self._lock = threading.Lock()
        self.state: str = CLOSED
        self.failures = 0
        self.opened_at: float | None = None
        self._trial: str | None = None
        self._trial_until = 0.0

    def admit(self, *, now: float, reset_timeout: float, trial_lease: float) -> Admission:
        """Decide whether a call may run now."""
        if self.state == CLOSED:
            return Admission("closed", CLOSED, self.failures) if self.failures else _CLOSED_ADMISSION
        with self._lock:
            state = self._current(now, reset_timeout)
            if state == CLOSED:
                return Admission("closed", CLOSED, self.failures)
            if state == OPEN:
                assert self.opened_at is not None  # noqa: S101 - open implies a time
                return Admission("rejected", OPEN, retry_in=self.opened_at + reset_timeout - now)
            if self._trial is not None and now < self._trial_until:
                return Admission("rejected", HALF_OPEN, retry_in=0.0)
            self._trial = uuid.uuid4().hex
            self._trial_until = now + trial_lease
            return Admission("trial", HALF_OPEN, token=self._trial)

    def _current(self, now: float, reset_timeout: float) -> str:
        if self.state == OPEN and self.opened_at is not None and now >= self.opened_at + reset_timeout:
            return HALF_OPEN
        return self.state

    def record_success(self, admission: Admission, *, now: float) -> Transition | None:  # noqa: ARG002
        """A success: reset the count while closed; a trial's success closes."""
        with self._lock:
            if admission.verdict == "trial":
                if admission.token != self._trial:
                    return None
                return self._move(CLOSED, None)
            if self.state == CLOSED:
                self.failures = 0
            return None

    def record_failure(self, admission: Admission, *, now: float, fail_max: int) -> Transition | None:
        """A failure: count it while closed (opening at *fail_max*); a trial's re-opens."""
        with self._lock:
            if admission.verdict == "trial":
                if admission.token != self._trial:
                    return None
                return self._move(OPEN, now)
            if self.state != CLOSED:
                return None  # admitted before it opened: adds nothing now
            self.failures += 1
            if self.failures >= fail_max:
                return self._move(OPEN, now)
            return None

    def release(self, admission: Admission) -> None:
        """Free a trial's lease without a verdict."""
        with self._lock:
            if admission.verdict == "trial" and admission.token == self._trial:
                self._trial = None

    def snapshot(self, *, now: float, reset_timeout: float) -> BreakerSnapshot:
        """The state for display."""
        with self._lock:
            state = self._current(now, reset_timeout)
            retry_in = 0.0
            if state == OPEN and self.opened_at is not None:
                retry_in = max(0.0, self.opened_at + reset_timeout - now)
            return BreakerSnapshot(state, self.failures, self.opened_at, retry_in)

    def force(self, state: str, *, now: float) -> Transition | None:
        """Set the state, clearing counts and trials."""
        with self._lock:
            return self._move(state, now)

    def _move(self, state: str, now: float | None) -> Transition | None:
        previous, failures = self.state, self.failures
        if previous == OPEN and self._trial is not None:
            previous = HALF_OPEN
        self._trial = None
        self.state = state
        if state == OPEN:
            self.opened_at = now
        else:
            self.failures = 0
        if previous == state:
            return None
        return Transition(previous, state, failures)


@dataclass(frozen=True, init=False)
class BreakerPolicy(Policy):
    """Guard the decorated function with a circuit breaker of its own.

    Opens after *fail_max* consecutive failures (a `ScanTimeout` from an inner timeout is a
    failure); while open, calls raise `CircuitOpenError` at once without running. After
    *reset_timeout* seconds it is half-open and admits one trial call at a time, whose
    outcome closes or re-opens it. Exceptions matching *exclude* (types or predicates) do
    not count. Calls run concurrently: no lock is held while the function runs. The
    wrapper's ``.breaker`` shows ``.state``.

    Attributes:
        fail_max: Consecutive failures that open the breaker.
        reset_timeout: Seconds the breaker stays open before it admits a trial call.
        exclude: Exception types or predicates that are not failures.
        name: The breaker's name in events and errors (default: the function's name).
        storage: Where the state lives (default: this process's memory).
        clock: Where time comes from (tests pass a fake clock).

    Raises:
        ConfigError: for a bad setting, naming it.
    """

    kind: ClassVar[str] = "circuit_breaker"
    true_means_defaults: ClassVar[bool] = True

    fail_max: int
    reset_timeout: float
    exclude: tuple[ExceptionFilter, ...]
    name: str | None
    storage: object = field(repr=False, compare=False)
    clock: Clock = field(repr=False, compare=False)
    _excluded: tuple[ExceptionMatcher, ...] = field(repr=False, compare=False)

    def __init__(
        self,
        *,
        fail_max: int = 5,
        reset_timeout: Seconds = 60.0,
        exclude: Iterable[ExceptionFilter] | ExceptionFilter = (),
        name: str | None = None,
        storage: object = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """Validate and store the settings."""
        matchers = _settings.exception_matchers(exclude, ("circuit_breaker", "exclude"))
        if storage is not None and not isinstance(storage, BreakerStore) and backend_for(storage) is None:
            raise ConfigError(
                ("circuit_breaker", "storage"),
                f"must be a breaker store, a storage backend or a Redis client or URL, got {storage!r}",
            )
        self._assign(
            fail_max=_settings.integer(fail_max, ("circuit_breaker", "fail_max"), minimum=1),
            reset_timeout=_settings.seconds(reset_timeout, ("circuit_breaker", "reset_timeout")),
            exclude=tuple(m.spec for m in matchers),
            name=_settings.optional_text(name, ("circuit_breaker", "name")),
            storage=storage,
            clock=_settings.clock(clock, ("circuit_breaker", "clock")),
            _excluded=matchers,
        )

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
        _settings.decorated(func, "circuit_breaker")
        return self.build(callable_name(func))(func)

    def describe(self) -> str:
        """Return a short description, as shown by ``resilient(...).describe()``."""
        return f"circuit_breaker(fail_max={self.fail_max}, reset_timeout={self.reset_timeout:g}s)"


circuit_breaker = BreakerPolicy


@dataclass(frozen=True, init=False, eq=False)
class CircuitBreaker(BreakerPolicy):
    """A circuit breaker with its own state: every function it decorates shares it.

    Takes the same settings as `circuit_breaker`. Decorate several functions with one
    breaker (or pass it as ``resilient(breaker=...)``) to make them trip together.
    """

    _store: BreakerStore = field(repr=False, compare=False)
    _lease: float = field(repr=False, compare=False)

    # A breaker is a thing with state, not a value: equal only to itself.
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __init__(
        self,
        *,
        fail_max: int = 5,
        reset_timeout: Seconds = 60.0,
        exclude: Iterable[ExceptionFilter] | ExceptionFilter = (),
        name: str | None = None,
        storage: object = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """Create a breaker; see `circuit_breaker` for the arguments."""
        BreakerPolicy.__init__(
            self,
            fail_max=fail_max,
            reset_timeout=reset_timeout,
            exclude=exclude,
            name=name or "circuit_breaker",
            storage=storage,
            clock=clock,
        )
        store: BreakerStore
        if storage is None:
            store = MemoryBreakerStore()
        elif isinstance(storage, BreakerStore):
            store = storage
        else:
            backend = backend_for(storage)
            assert backend is not None  # noqa: S101 - checked by the policy
            store = backend.breaker_store(cast("str", self.name), self.clock)
        # A trial that outlives this lease is presumed dead (its process died).
        self._assign(_store=store, _lease=max(60.0, self.reset_timeout))

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

    def _snapshot(self) -> BreakerSnapshot:
        return self._store.snapshot(now=self.clock.time(), reset_timeout=self.reset_timeout)

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half-open"`` (open past its reset timeout)."""
        return self._snapshot().state

    @property
    def failures(self) -> int:
        """Consecutive failures counted while closed."""
        return self._snapshot().failures

    @property
    def retry_in(self) -> float:
        """Seconds until an open breaker admits a trial call (0.0 unless open)."""
        return self._snapshot().retry_in

    def open(self) -> None:
        """Open the breaker now, as if it had just tripped."""
        self._report(self._store.force(OPEN, now=self.clock.time()))

    def close(self) -> None:
        """Close the breaker now and forget counted failures."""
        self._report(self._store.force(CLOSED, now=self.clock.time()))

    def __call__(self, func: Callable[P, R]) -> BreakerFunction[P, R]:
        """Decorate *func* with this breaker."""
        _settings.decorated(func, "circuit_breaker")

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
            self._failed(admission, exc)
            raise
        except BaseException:
            self._store.release(admission)
            raise
        if admission is not _CLOSED_ADMISSION:
            self._report(self._store.record_success(admission, now=self.clock.time()))
        return result

    def _admit(self) -> Admission:
        store = self._store
        admission = store.admit(
            now=self.clock.time(), reset_timeout=self.reset_timeout, trial_lease=self._lease
        )
        if admission.verdict != "rejected":
            return admission
        name = cast("str", self.name)
        if wanted(BreakerRejected):
            emit(BreakerRejected(name, admission.state, round(admission.retry_in, 3)))
        raise CircuitOpenError(name, admission.retry_in)

    def _failed(self, admission: Admission, exc: Exception) -> None:
        # A predicate that raises counts the call as a failure: fail safe.
        name = cast("str", self.name)
        if any(m.matches(exc, if_broken=False, function=name) for m in self._excluded):
            self._report(self._store.record_success(admission, now=self.clock.time()))
            return
        self._report(
            self._store.record_failure(admission, now=self.clock.time(), fail_max=self.fail_max)
        )

    def _report(self, transition: Transition | None) -> None:
        if transition is not None and wanted(BreakerStateChanged):
            emit(
                BreakerStateChanged(
                    cast("str", self.name),
                    transition.from_state,
                    transition.to_state,
                    transition.failures,
                )
            )


class BreakerFunction(Protocol[P, R_co]):
    """A function wrapped by `circuit_breaker`: same signature, plus its ``breaker``."""

    breaker: CircuitBreaker

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co:
        """Call through the breaker."""
        ...
