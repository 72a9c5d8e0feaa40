"""The circuit breaker: pybreaker's state model, without running calls under a lock.

pybreaker runs the wrapped call while holding the breaker's lock, so every call through one
breaker runs one at a time (upstream issue #55): 64 calls of 20 ms on 16 threads took 15
times as long through a shared breaker. Here a `BreakerStore` is asked only to admit a call
and to record its outcome; the call itself runs with no lock held. While the breaker is
closed, the in-memory store admits a call without any lock, and a success with no failures
to reset writes nothing: the happy path is one attribute read.

Whatever user code raises on the way (an ``exclude`` predicate, a hook), the store is told
how the call ended: the half-open trial is always handed back, and the counts stay right.
"""

from __future__ import annotations

import functools
import itertools
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar, Final, ParamSpec, Protocol, TypeVar, cast

from . import _config, _settings
from ._calls import counted, is_async
from ._clock import SYSTEM_CLOCK, Clock
from ._errors import (
    CircuitOpenError,
    ConfigError,
    RateLimitExceeded,
    ScanTimeout,
    ThreadLimitError,
)
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
from ._text import add_note, callable_name, describe_error

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

#: What a closed in-memory breaker with no failures answers every call: no object per call.
CLOSED_ADMISSION: Final = Admission("closed", CLOSED)

#: Errors that mean the call was never made (no permit in time, no thread to run it on):
#: they say nothing about the service, so they are neither failures nor successes.
NOT_A_VERDICT: Final = (RateLimitExceeded, ThreadLimitError)

_STATES: Final = {CLOSED: CLOSED, OPEN: OPEN, HALF_OPEN: HALF_OPEN}
_TOKENS = itertools.count(1)
#: Every store whose trial lease lives in this process, so a forked child can drop them.
_LOCAL_STORES: weakref.WeakSet[LocalBreakerStore] = weakref.WeakSet()


class LocalBreakerStore:
    """The breaker's state machine over one record: state, failure count, opening time.

    The lock and the half-open trial's lease live in this process; subclasses say where the
    record lives (`MemoryBreakerStore`: here; `PybreakerStorage`: a pybreaker storage). A
    forked child holds no trial of its parent: its next call may be the trial.
    """

    def __init__(self) -> None:
        """Start with no trial running."""
        self._lock = threading.Lock()
        self._trial: str | None = None
        self._trial_until = 0.0
        _LOCAL_STORES.add(self)

    # -- the record, where subclasses keep it --------------------------------------------

    def _state(self) -> str:
        raise NotImplementedError

    def _failures(self) -> int:
        raise NotImplementedError

    def _opened_at(self) -> float | None:
        raise NotImplementedError

    def _set_state(self, state: str, opened_at: float | None) -> None:
        raise NotImplementedError

    def _add_failure(self) -> int:
        raise NotImplementedError

    def _clear_failures(self) -> None:
        raise NotImplementedError

    # -- BreakerStore ----------------------------------------------------------------------

    def admit(self, *, now: float, reset_timeout: float, trial_lease: float) -> Admission:
        """Decide whether a call may run now: closed, the half-open trial, or rejected."""
        # Closed needs no lock: a call admitted just as another thread trips the breaker is
        # one more call in flight, as if it had started a moment earlier.
        if self._state() == CLOSED:
            failures = self._failures()
            return Admission("closed", CLOSED, failures) if failures else CLOSED_ADMISSION
        with self._lock:
            state, failures = self._state(), self._failures()
            if state == CLOSED:
                return Admission("closed", CLOSED, failures)
            transition = None
            if state == OPEN:
                opened_at = self._opened_at()
                due = now if opened_at is None else opened_at + reset_timeout
                if now < due:
                    return Admission("rejected", OPEN, retry_in=due - now)
                self._set_state(HALF_OPEN, opened_at)
                transition = Transition(OPEN, HALF_OPEN, failures)
            elif self._trial is not None and now < self._trial_until:
                return Admission("rejected", HALF_OPEN)
            # Half-open with no live trial (none yet, its holder let go, or its lease ran
            # out because its holder died): this call is the trial.
            token = str(next(_TOKENS))
            self._trial, self._trial_until = token, now + trial_lease
            return Admission("trial", HALF_OPEN, token=token, transition=transition)

    def record_success(self, admission: Admission, *, now: float) -> Transition | None:
        """A success: a trial's closes the breaker; a closed call's resets the count."""
        with self._lock:
            if admission.verdict == "trial":
                return self._end_trial(admission, CLOSED, now)
            if self._state() == CLOSED and self._failures():
                self._clear_failures()
            return None

    def record_failure(
        self, admission: Admission, *, now: float, fail_max: int
    ) -> Transition | None:
        """A failure: a trial's re-opens the breaker; a closed call's counts, up to *fail_max*."""
        with self._lock:
            if admission.verdict == "trial":
                return self._end_trial(admission, OPEN, now)
            if self._state() != CLOSED:
                return None  # admitted before the breaker opened: it adds nothing now
            if self._add_failure() >= fail_max:
                return self._move(OPEN, now)
            return None

    def release(self, admission: Admission) -> None:
        """A call ended without a verdict: free its trial lease (the next call is the trial)."""
        with self._lock:
            if admission.verdict == "trial" and admission.token == self._trial:
                self._trial = None

    def snapshot(self, *, now: float, reset_timeout: float) -> BreakerSnapshot:
        """The state for display: open past its reset timeout reads half-open."""
        with self._lock:
            state, failures, opened_at = self._state(), self._failures(), self._opened_at()
        retry_in = 0.0
        if state == OPEN:
            due = now if opened_at is None else opened_at + reset_timeout
            if now >= due:
                state = HALF_OPEN
            else:
                retry_in = due - now
        return BreakerSnapshot(state, failures, opened_at, retry_in)

    def force(self, state: str, *, now: float) -> Transition | None:
        """Set the state (operators' ``open()`` / ``close()``), dropping any trial."""
        with self._lock:
            self._trial = None
            return self._move(_STATES[state], now)

    def _end_trial(self, admission: Admission, state: str, now: float) -> Transition | None:
        if admission.token != self._trial:
            return None  # a trial whose lease ran out: another call holds the verdict now
        self._trial = None
        return self._move(state, now)

    def _move(self, state: str, now: float) -> Transition | None:
        previous, failures = self._state(), self._failures()
        self._set_state(state, now if state == OPEN else self._opened_at())
        if state == CLOSED:
            self._clear_failures()
        return None if previous == state else Transition(previous, state, failures)

    def _forget_trial(self) -> None:
        """In a forked child: a fresh lock, and no trial (it belonged to the parent)."""
        self._lock = threading.Lock()
        self._trial = None


class MemoryBreakerStore(LocalBreakerStore):
    """A `BreakerStore` in this process's memory (the default).

    Attributes:
        state: ``"closed"``, ``"open"`` or ``"half-open"``, as last recorded.
        failures: Consecutive failures counted while closed.
        opened_at: When it last opened, in the breaker clock's wall-clock seconds.
    """

    def __init__(self) -> None:
        """Start closed, with no failures."""
        super().__init__()
        self.state: str = CLOSED
        self.failures = 0
        self.opened_at: float | None = None

    def admit(self, *, now: float, reset_timeout: float, trial_lease: float) -> Admission:
        """Decide whether a call may run now; a closed breaker answers without a lock."""
        if self.state is CLOSED:
            failures = self.failures
            return Admission("closed", CLOSED, failures) if failures else CLOSED_ADMISSION
        return super().admit(now=now, reset_timeout=reset_timeout, trial_lease=trial_lease)

    def _state(self) -> str:
        return self.state

    def _failures(self) -> int:
        return self.failures

    def _opened_at(self) -> float | None:
        return self.opened_at

    def _set_state(self, state: str, opened_at: float | None) -> None:
        self.opened_at = opened_at
        self.state = state

    def _add_failure(self) -> int:
        self.failures += 1
        return self.failures

    def _clear_failures(self) -> None:
        self.failures = 0


class PybreakerStorage(LocalBreakerStore):
    """A pybreaker storage (``CircuitMemoryStorage``, ``CircuitRedisStorage``) as a store.

    The state, failure count and opening time live in the storage, so breakers in several
    processes on one ``CircuitRedisStorage`` open and close together. The half-open trial
    is leased in this process: each process may run one trial at a time (a `BreakerStore`
    that leases trials itself, as ``resilient_scan.redis`` does, gives exactly one in all).
    pybreaker's Redis storage also keeps the opening time in whole seconds.
    """

    _adapters_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, storage: Any) -> None:
        """Keep the breaker's record in *storage*."""
        super().__init__()
        self.storage = storage

    @classmethod
    def of(cls, storage: Any) -> PybreakerStorage:
        """The one adapter of *storage* in this process: breakers on it share its trial."""
        with cls._adapters_lock:
            try:
                adapter = _ADAPTERS.get(storage)
            except TypeError:  # neither hashable nor weakly referable: an adapter of its own
                return cls(storage)
            if adapter is None:
                adapter = _ADAPTERS[storage] = cls(storage)
            return adapter

    def _state(self) -> str:
        return _STATES.get(str(self.storage.state), CLOSED)

    def _failures(self) -> int:
        return int(self.storage.counter)

    def _opened_at(self) -> float | None:
        opened: datetime | None = self.storage.opened_at
        if opened is None:
            return None
        if opened.tzinfo is None:  # pybreaker writes UTC
            opened = opened.replace(tzinfo=timezone.utc)
        return opened.timestamp()

    def _set_state(self, state: str, opened_at: float | None) -> None:
        if state == OPEN and opened_at is not None:
            self.storage.opened_at = datetime.fromtimestamp(opened_at, tz=timezone.utc)
        self.storage.state = state

    def _add_failure(self) -> int:
        self.storage.increment_counter()
        return self._failures()

    def _clear_failures(self) -> None:
        self.storage.reset_counter()


_ADAPTERS: weakref.WeakKeyDictionary[Any, PybreakerStorage] = weakref.WeakKeyDictionary()


def is_pybreaker_storage(value: object) -> bool:
    """Whether *value* has pybreaker's storage interface (without importing pybreaker)."""
    kind = type(value)
    names = ("state", "counter", "opened_at", "increment_counter", "reset_counter")
    return all(hasattr(kind, name) for name in names)


def _forget_trials_in_child() -> None:
    PybreakerStorage._adapters_lock = threading.Lock()  # noqa: SLF001 - may be held mid-fork
    for store in list(_LOCAL_STORES):
        store._forget_trial()  # noqa: SLF001 - this module's own stores


_config.on_fork_in_child(_forget_trials_in_child)


@dataclass(frozen=True, init=False)
class BreakerPolicy(Policy):
    """Guard the decorated function with a circuit breaker of its own.

    Opens after *fail_max* consecutive failures (a `ScanTimeout` from an inner timeout is a
    failure); while open, calls raise `CircuitOpenError` at once without running. After
    *reset_timeout* seconds it is half-open and admits one trial call at a time, whose
    outcome closes or re-opens it. Exceptions matching *exclude* (types or predicates) do
    not count; a predicate that raises counts the call as a failure. Calls run
    concurrently: no lock is held while the function runs. The wrapper's ``.breaker``
    shows ``.state``.

    The half-open trial is one per process with the in-memory store and with pybreaker's
    storages; a shared store that leases the trial (``resilient_scan.redis``) makes it one
    across every process sharing the breaker.

    Attributes:
        fail_max: Consecutive failures that open the breaker.
        reset_timeout: Seconds the breaker stays open before it admits a trial call.
        exclude: Exception types or predicates that are not failures.
        name: The breaker's name in events and errors (default: the function's name).
        storage: Where the state lives (default: this process's memory): a `BreakerStore`,
            a `StorageBackend`, a Redis client or URL, or a pybreaker storage.
        clock: Where time comes from (tests pass a fake clock); wall-clock seconds.

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
        known_storage = (
            storage is None
            or isinstance(storage, BreakerStore)
            or is_pybreaker_storage(storage)
            or backend_for(storage) is not None
        )
        if not known_storage:
            raise ConfigError(
                ("circuit_breaker", "storage"),
                "must be a breaker store, a storage backend, a Redis client or URL, or a"
                f" pybreaker storage, got {_settings.show(storage)}",
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
        self._settled()

    def _settled(self) -> None:
        """The constructor's last step: a `CircuitBreaker` makes its state here."""

    def build(self, default_name: str) -> CircuitBreaker:
        """Return a new breaker with these settings, named *default_name* unless named."""
        settings = {name: getattr(self, name) for name in self.settings()}
        settings["name"] = self.name or default_name
        return CircuitBreaker(**settings)

    def __call__(self, func: Callable[P, R]) -> BreakerFunction[P, R]:
        """Wrap *func* in a new breaker with these settings."""
        _settings.decorated(func, "circuit_breaker")
        return self.build(callable_name(func))(func)

    def layer(self, func: Callable[P, R]) -> BreakerFunction[P, R]:
        """Wrap *func* in a new breaker, as one layer of `resilient` (calls not counted)."""
        return self.build(callable_name(func)).layer(func)

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

    def _settled(self) -> None:
        """Make the breaker's state: in memory, or in the store *storage* names."""
        storage = self.storage
        name = self.name or "circuit_breaker"
        store: BreakerStore
        if storage is None:
            store = MemoryBreakerStore()
        elif isinstance(storage, BreakerStore):
            store = storage
        elif is_pybreaker_storage(storage):
            store = PybreakerStorage.of(storage)
        else:
            backend = backend_for(storage)
            assert backend is not None  # noqa: S101 - checked by the policy
            store = backend.breaker_store(name, self.clock)
        # A trial that outlives this lease is presumed dead (its process died).
        self._assign(name=name, _store=store, _lease=max(60.0, self.reset_timeout))

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

    def build(self, default_name: str) -> CircuitBreaker:  # noqa: ARG002 - named already
        """Return this breaker: its state is shared by every function it guards."""
        return self

    @property
    def store(self) -> BreakerStore:
        """Where this breaker's state lives."""
        return self._store

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
        return counted(self.layer(func), callable_name(func), self.clock)

    def layer(self, func: Callable[P, R]) -> BreakerFunction[P, R]:
        """Guard *func* with this breaker, as one layer of `resilient` (calls not counted)."""
        _settings.decorated(func, "circuit_breaker")
        if is_async(func):
            wrapper: Any = _guard_async(self, cast("Callable[..., Awaitable[Any]]", func))
        else:
            wrapper = _guard_sync(self, func)
        wrapper.breaker = self
        return cast("BreakerFunction[P, R]", wrapper)

    def call(self, func: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """Call ``func(*args, **kwargs)`` (a synchronous function) through the breaker."""
        admission = self.admit()
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            self.ended(admission, exc)
            raise
        self.ended(admission, None)
        return result

    def admit(self) -> Admission:
        """Admit a call or raise `CircuitOpenError`; report any change of state it made."""
        admission = self._store.admit(
            now=self.clock.time(), reset_timeout=self.reset_timeout, trial_lease=self._lease
        )
        if admission.transition is not None:
            self._report(admission.transition)
        if admission.verdict != "rejected":
            return admission
        name = cast("str", self.name)
        if wanted(BreakerRejected):
            emit(BreakerRejected(name, admission.state, round(admission.retry_in, 3)))
        raise CircuitOpenError(name, admission.retry_in)

    def ended(self, admission: Admission, exc: BaseException | None) -> None:
        """Tell the store how an admitted call ended (*exc*: what it raised, or None).

        A success with no failures to reset writes nothing. An `Exception` is a failure
        unless *exclude* matches it (then a success); one that cannot tell (a predicate
        that raised) is a failure. Anything else (a cancellation, `KeyboardInterrupt`, or
        an error meaning the call was never made) frees the trial with no verdict. The
        store always hears of the call, whatever judging it raised.
        """
        store = self._store
        if exc is None:
            if admission.verdict == "closed" and not admission.failures:
                return
            self._report(store.record_success(admission, now=self.clock.time()))
            return
        if (
            not isinstance(exc, Exception)
            or isinstance(exc, NOT_A_VERDICT)
            or (isinstance(exc, ScanTimeout) and not exc.started)  # the service was never asked
        ):
            self._settle(exc, lambda: store.release(admission))
            return
        failed = True
        try:
            failed = not self._excluded_error(exc)
        finally:  # even when judging raised: fail safe, the call counts as a failure
            now = self.clock.time()
            if failed:
                self._settle(
                    exc, lambda: store.record_failure(admission, now=now, fail_max=self.fail_max)
                )
            else:
                self._settle(exc, lambda: store.record_success(admission, now=now))

    def _excluded_error(self, exc: Exception) -> bool:
        name = cast("str", self.name)
        return any(m.matches(exc, if_broken=False, function=name) for m in self._excluded)

    def _settle(self, exc: BaseException, record: Callable[[], Transition | None]) -> None:
        """Run *record*; if the store fails, the caller still gets *exc*, with a note."""
        try:
            transition = record()
        except Exception as broken:
            add_note(
                exc,
                f"resilient_scan: circuit breaker {self.name!r} could not record this"
                f" outcome: {describe_error(broken)}",
            )
            return
        self._report(transition)

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


def _guard_sync(breaker: CircuitBreaker, func: Callable[P, R]) -> Callable[P, R]:
    admit, ended, store, clock = breaker.admit, breaker.ended, breaker.store, breaker.clock
    memory = type(store) is MemoryBreakerStore

    @functools.wraps(func)
    def call_with_breaker(*args: P.args, **kwargs: P.kwargs) -> R:
        if memory and store.state is CLOSED:  # type: ignore[attr-defined]
            # Closed in this process's memory: admitted without a lock or a clock reading.
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                ended(CLOSED_ADMISSION, exc)
                raise
            if store.failures:  # type: ignore[attr-defined]
                store.record_success(CLOSED_ADMISSION, now=clock.time())
            return result
        admission = admit()
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            ended(admission, exc)
            raise
        if admission is not CLOSED_ADMISSION:
            ended(admission, None)
        return result

    return call_with_breaker


def _guard_async(
    breaker: CircuitBreaker, func: Callable[P, Awaitable[R]]
) -> Callable[P, Awaitable[R]]:
    admit, ended = breaker.admit, breaker.ended

    @functools.wraps(func)
    async def call_with_breaker(*args: P.args, **kwargs: P.kwargs) -> R:
        admission = admit()
        try:
            result = await func(*args, **kwargs)
        except BaseException as exc:  # a cancellation from outside frees the trial, no verdict
            ended(admission, exc)
            raise
        if admission is not CLOSED_ADMISSION:
            ended(admission, None)
        return result

    return call_with_breaker


class BreakerFunction(Protocol[P, R_co]):
    """A function wrapped by `circuit_breaker`: same signature, plus its ``breaker``."""

    breaker: CircuitBreaker

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co:
        """Call through the breaker."""
        ...
