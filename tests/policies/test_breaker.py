"""rs.circuit_breaker: trips, rejects, half-open trials, and no lock around the call."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pybreaker
import pytest

import resilient_scan as rs
from resilient_scan.instrumentation import BreakerStateChanged, PredicateFailed, add_hook
from resilient_scan.testing import FakeClock, capture_events

RESET = 10.0


class Interrupted(BaseException):
    """Like KeyboardInterrupt: not an Exception, so not the service's failure."""


class Service:
    """A function under test whose next outcome the test sets."""

    def __init__(self) -> None:
        self.calls = 0
        self.error: BaseException | None = None
        self.hold: threading.Event | None = None
        self.entered = threading.Event()
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            self.calls += 1
        self.entered.set()
        if self.hold is not None:
            assert self.hold.wait(10.0)
        if self.error is not None:
            raise self.error
        return "ok"


def guarded(service: Service, clock: FakeClock, fail_max: int = 3) -> rs.BreakerFunction[[], str]:
    return rs.circuit_breaker(fail_max=fail_max, reset_timeout=RESET, clock=clock)(service)


def trip(call: Callable[[], str], service: Service, times: int) -> None:
    service.error = ConnectionError("down")
    for _ in range(times):
        with pytest.raises(ConnectionError):
            call()
    service.error = None


def test_opens_after_fail_max_consecutive_failures(clock: FakeClock):
    service = Service()
    call = guarded(service, clock, fail_max=3)
    trip(call, service, 2)
    assert call.breaker.state == "closed"
    trip(call, service, 1)
    assert call.breaker.state == "open"


def test_a_success_resets_the_failure_count(clock: FakeClock):
    service = Service()
    call = guarded(service, clock, fail_max=3)
    trip(call, service, 2)
    assert call() == "ok"
    trip(call, service, 2)
    assert call.breaker.state == "closed"
    trip(call, service, 1)
    assert call.breaker.state == "open"


def test_open_rejects_with_circuit_open_error_without_calling(clock: FakeClock):
    service = Service()
    call = guarded(service, clock, fail_max=1)
    trip(call, service, 1)
    calls_before = service.calls
    with pytest.raises(rs.CircuitOpenError) as info:
        call()
    assert service.calls == calls_before
    assert info.value.retry_in == pytest.approx(RESET)


def test_after_reset_timeout_the_breaker_is_half_open(clock: FakeClock):
    service = Service()
    call = guarded(service, clock, fail_max=1)
    trip(call, service, 1)
    clock.advance(RESET - 0.5)
    assert call.breaker.state == "open"
    clock.advance(1.0)
    assert call.breaker.state == "half-open"


def test_half_open_admits_exactly_one_trial_and_rejects_the_others_at_once(clock: FakeClock):
    service = Service()
    call = guarded(service, clock, fail_max=1)
    trip(call, service, 1)
    clock.advance(RESET + 1)
    assert call.breaker.state == "half-open"
    calls_before = service.calls
    service.hold = threading.Event()
    service.entered.clear()
    with ThreadPoolExecutor(max_workers=5) as pool:
        try:
            trial = pool.submit(call)
            assert service.entered.wait(5.0)
            others = [pool.submit(call) for _ in range(4)]
            # They must not wait for the trial: it is still held.
            for other in others:
                with pytest.raises(rs.CircuitOpenError):
                    other.result(timeout=5.0)
            assert not trial.done()
        finally:
            service.hold.set()
        assert trial.result(timeout=5.0) == "ok"
    assert service.calls == calls_before + 1


def test_a_successful_trial_closes_the_breaker(clock: FakeClock):
    service = Service()
    call = guarded(service, clock, fail_max=1)
    trip(call, service, 1)
    clock.advance(RESET + 1)
    assert call() == "ok"
    assert call.breaker.state == "closed"
    assert call() == "ok"


def test_a_failed_trial_opens_the_breaker_again(clock: FakeClock):
    service = Service()
    call = guarded(service, clock, fail_max=1)
    trip(call, service, 1)
    clock.advance(RESET + 1)
    trip(call, service, 1)
    assert call.breaker.state == "open"
    calls_before = service.calls
    with pytest.raises(rs.CircuitOpenError):
        call()
    assert service.calls == calls_before


@pytest.mark.parametrize(
    ("exclude", "error"),
    [
        ((KeyError,), KeyError("no such ticker")),
        ((KeyError, LookupError), IndexError("out of range")),
        ((lambda exc: "404" in str(exc),), ConnectionError("HTTP 404")),
    ],
    ids=["type", "base type", "predicate"],
)
def test_excluded_exceptions_do_not_count(
    clock: FakeClock,
    exclude: tuple[type[BaseException] | Callable[[BaseException], bool], ...],
    error: Exception,
):
    service = Service()
    call = rs.circuit_breaker(fail_max=1, exclude=exclude, clock=clock)(service)
    service.error = error
    for _ in range(3):
        with pytest.raises(type(error)):
            call()
    assert call.breaker.state == "closed"
    service.error = ConnectionError("HTTP 500")
    with pytest.raises(ConnectionError):
        call()
    assert call.breaker.state == "open"


def test_a_scan_timeout_from_an_inner_timeout_counts_as_a_failure(
    clock: FakeClock, release: threading.Event
):

    def hang() -> str:
        release.wait(5.0)
        return "late"

    call = rs.circuit_breaker(fail_max=1, clock=clock)(rs.timeout(0.1)(hang))
    try:
        with pytest.raises(rs.ScanTimeout):
            call()
    finally:
        release.set()
    assert call.breaker.state == "open"


def test_calls_through_one_breaker_run_concurrently():
    lock = threading.Lock()
    running = 0
    most_at_once = 0

    @rs.circuit_breaker(fail_max=5)
    def work() -> None:
        nonlocal running, most_at_once
        with lock:
            running += 1
            most_at_once = max(most_at_once, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    threads = 16
    start_together = threading.Barrier(threads)

    def run(_: int) -> None:
        start_together.wait(timeout=10)
        for _ in range(4):
            work()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(run, range(threads)))
    assert most_at_once > 1


def test_breaker_state_takes_the_three_documented_values(clock: FakeClock):
    service = Service()
    call = guarded(service, clock, fail_max=1)
    seen = [call.breaker.state]
    trip(call, service, 1)
    seen.append(call.breaker.state)
    clock.advance(RESET + 1)
    seen.append(call.breaker.state)
    call()
    seen.append(call.breaker.state)
    assert seen == ["closed", "open", "half-open", "closed"]


def test_one_circuit_breaker_object_shared_by_two_functions_trips_for_both(clock: FakeClock):
    shared = rs.CircuitBreaker(fail_max=2, reset_timeout=RESET, name="market-data", clock=clock)
    quotes_service, news_service = Service(), Service()
    quotes = shared(quotes_service)
    news = shared(news_service)
    assert quotes.breaker is shared
    assert news.breaker is shared
    trip(quotes, quotes_service, 2)
    with pytest.raises(rs.CircuitOpenError) as info:
        news()
    assert news_service.calls == 0
    assert info.value.breaker == "market-data"


def test_a_base_exception_does_not_count_as_a_failure(clock: FakeClock):
    service = Service()
    call = guarded(service, clock, fail_max=1)
    service.error = Interrupted()
    with pytest.raises(Interrupted):
        call()
    assert call.breaker.state == "closed"
    assert call.breaker.failures == 0


def test_a_base_exception_in_the_trial_releases_the_trial(clock: FakeClock):
    service = Service()
    call = guarded(service, clock, fail_max=1)
    trip(call, service, 1)
    clock.advance(RESET + 1)
    service.error = Interrupted()
    with pytest.raises(Interrupted):
        call()
    assert call.breaker.state == "half-open"
    service.error = None
    assert call() == "ok"  # admitted as the next trial, not rejected
    assert call.breaker.state == "closed"


def test_pybreaker_memory_storage_passed_as_storage_holds_the_state(clock: FakeClock):
    storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
    service = Service()
    call = rs.circuit_breaker(fail_max=2, reset_timeout=RESET, storage=storage, clock=clock)(
        service
    )
    trip(call, service, 2)
    assert storage.state == "open"
    assert call.breaker.state == "open"
    with pytest.raises(rs.CircuitOpenError):
        call()
    # A second breaker on the same storage sees the same open circuit.
    other_service = Service()
    other = rs.circuit_breaker(fail_max=2, reset_timeout=RESET, storage=storage, clock=clock)(
        other_service
    )
    with pytest.raises(rs.CircuitOpenError):
        other()
    assert other_service.calls == 0
    clock.advance(RESET + 1)
    assert call() == "ok"
    assert storage.state == "closed"


def test_half_open_admits_one_trial_until_it_returns_however_long_it_takes():
    clock = FakeClock()
    entered = threading.Event()
    release = threading.Event()
    trials: list[int] = []

    @rs.circuit_breaker(fail_max=1, reset_timeout=1, clock=clock)
    def call(fail: bool) -> str:
        if fail:
            raise ConnectionError("down")
        trials.append(1)
        entered.set()
        release.wait(10)
        return "ok"

    with pytest.raises(ConnectionError):
        call(True)
    clock.advance(1)
    with ThreadPoolExecutor(1) as pool:
        trial = pool.submit(call, False)
        assert entered.wait(5)
        # Long past its reset timeout, the breaker still waits for its one trial.
        for _ in range(5):
            clock.advance(10)
            with pytest.raises(rs.CircuitOpenError):
                call(False)
        release.set()
        assert trial.result(timeout=5) == "ok"
    assert trials == [1]
    assert call.breaker.state == "closed"


@pytest.mark.parametrize("exclude", [5, "ValueError", (ValueError, 3)])
def test_an_exclude_that_is_not_types_or_predicates_is_a_config_error(exclude: object):
    with pytest.raises(rs.ConfigError, match="exclude"):
        rs.circuit_breaker(exclude=exclude)  # type: ignore[arg-type]
    with pytest.raises(rs.ConfigError, match=r"resilient\.breaker\.exclude"):
        rs.resilient(breaker={"exclude": exclude})


# -- hardening (issue 7) -------------------------------------------------------------------


def only_client_errors(exc: BaseException) -> bool:
    """An exclude predicate written for HTTP errors: raises on errors without a status."""
    status: int = exc.status  # type: ignore[attr-defined]
    return 400 <= status < 500


def interrupting(exc: BaseException) -> bool:
    raise KeyboardInterrupt


def test_a_raising_exclude_predicate_counts_the_call_as_a_failure_and_keeps_the_error(
    clock: FakeClock,
):
    service = Service()
    call = rs.circuit_breaker(fail_max=2, exclude=(only_client_errors,), clock=clock)(service)
    with capture_events(PredicateFailed) as events:
        for attempt in range(2):
            error = ConnectionError(f"reset {attempt}")
            service.error = error
            with pytest.raises(ConnectionError) as info:
                call()
            assert info.value is error
            notes = getattr(error, "__notes__", [])
            assert any("circuit_breaker.exclude[0]" in n and "AttributeError" in n for n in notes)
    assert call.breaker.state == "open"
    assert [(e.where, e.original_error_type) for e in events.of(PredicateFailed)] == [
        ("circuit_breaker.exclude[0]", "ConnectionError")
    ] * 2


@pytest.mark.parametrize(
    "predicate", [only_client_errors, interrupting], ids=["raises", "interrupts"]
)
def test_a_raising_exclude_predicate_in_the_half_open_trial_never_leaves_the_trial_held(
    clock: FakeClock, predicate: Callable[[BaseException], bool]
):
    service = Service()
    call = rs.circuit_breaker(fail_max=1, reset_timeout=RESET, exclude=predicate, clock=clock)(
        service
    )
    service.error = ConnectionError("down")
    with pytest.raises((ConnectionError, KeyboardInterrupt)):
        call()
    assert call.breaker.state == "open"  # the predicate could not tell: a failure
    clock.advance(RESET + 1)
    with pytest.raises((ConnectionError, KeyboardInterrupt)):
        call()  # the trial: it failed, so the breaker opens again (not stuck half-open)
    assert call.breaker.state == "open"
    clock.advance(RESET + 1)
    service.error = None
    assert call() == "ok"  # a new trial is admitted and closes it
    assert call.breaker.state == "closed"


def test_a_hook_that_raises_changes_neither_the_state_nor_the_error(
    clock: FakeClock, capsys: pytest.CaptureFixture[str]
):
    def broken_hook(event: object) -> None:
        raise BrokenPipeError("log sink gone")

    add_hook(broken_hook)
    service = Service()
    call = guarded(service, clock, fail_max=1)
    service.error = ConnectionError("down")
    with pytest.raises(ConnectionError):
        call()
    assert call.breaker.state == "open"
    with pytest.raises(rs.CircuitOpenError):
        call()
    clock.advance(RESET + 1)
    service.error = None
    assert call() == "ok"
    assert call.breaker.state == "closed"
    assert capsys.readouterr().err.count("BrokenPipeError: log sink gone") == 1


def test_every_state_change_is_reported_once_including_half_open_and_a_failed_trial(
    clock: FakeClock,
):
    service = Service()
    call = rs.circuit_breaker(fail_max=1, reset_timeout=RESET, name="quotes", clock=clock)(service)
    with capture_events(BreakerStateChanged) as events:
        trip(call, service, 1)
        clock.advance(RESET + 1)
        trip(call, service, 1)  # the trial fails
        clock.advance(RESET + 1)
        call()  # the next trial succeeds
    assert [(e.from_state, e.to_state) for e in events.of(BreakerStateChanged)] == [
        ("closed", "open"),
        ("open", "half-open"),
        ("half-open", "open"),
        ("open", "half-open"),
        ("half-open", "closed"),
    ]


class CountingStore:
    """A `BreakerStore` that counts its round trips, keeping its state in memory."""

    def __init__(self) -> None:
        self.inner = rs.MemoryBreakerStore()
        self.trips: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.trips.append(name)
            return method(*args, **kwargs)

        return counted

    # The protocol's methods, spelled out so isinstance(store, rs.BreakerStore) holds.
    def admit(self, **kwargs: Any) -> Any:
        return self.__getattr__("admit")(**kwargs)

    def record_success(self, admission: Any, **kwargs: Any) -> Any:
        return self.__getattr__("record_success")(admission, **kwargs)

    def record_failure(self, admission: Any, **kwargs: Any) -> Any:
        return self.__getattr__("record_failure")(admission, **kwargs)

    def release(self, admission: Any) -> None:
        self.__getattr__("release")(admission)

    def snapshot(self, **kwargs: Any) -> Any:
        return self.__getattr__("snapshot")(**kwargs)

    def force(self, state: str, **kwargs: Any) -> Any:
        return self.__getattr__("force")(state, **kwargs)


def test_the_happy_path_costs_one_store_round_trip_and_no_write(clock: FakeClock):
    store = CountingStore()
    assert isinstance(store, rs.BreakerStore)
    service = Service()
    call = rs.circuit_breaker(fail_max=3, storage=store, clock=clock)(service)
    for _ in range(3):
        call()
    assert store.trips == ["admit"] * 3
    store.trips.clear()
    trip(call, service, 1)
    call()  # one failure to reset: this success writes once
    call()
    assert store.trips == ["admit", "record_failure", "admit", "record_success", "admit"]


def test_the_opening_time_keeps_full_float_precision(clock: FakeClock):
    clock.advance(0.123456789)
    service = Service()
    call = guarded(service, clock, fail_max=1)
    trip(call, service, 1)
    store = call.breaker.store
    assert isinstance(store, rs.MemoryBreakerStore)
    assert store.opened_at == clock.time()
    assert call.breaker.retry_in == RESET


def test_breakers_on_one_pybreaker_storage_run_one_half_open_trial_in_this_process(
    clock: FakeClock,
):
    storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
    first_service, second_service = Service(), Service()
    first = rs.circuit_breaker(fail_max=1, reset_timeout=RESET, storage=storage, clock=clock)(
        first_service
    )
    second = rs.circuit_breaker(fail_max=1, reset_timeout=RESET, storage=storage, clock=clock)(
        second_service
    )
    trip(first, first_service, 1)
    clock.advance(RESET + 1)
    first_service.hold = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        trial = pool.submit(first)
        assert first_service.entered.wait(5)
        with pytest.raises(rs.CircuitOpenError):
            second()
        first_service.hold.set()
        assert trial.result(5) == "ok"
    assert second_service.calls == 0
    assert second.breaker.state == "closed"


def test_a_child_forked_during_a_half_open_trial_owns_no_trial_of_its_parent():
    script = Path(__file__).parent / "scripts" / "fork_half_open.py"
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "parent=rejected child=ok closed"


# -- a timeout that never started the call ----------------------------------------------------


@pytest.mark.parametrize("composed", [False, True], ids=["stacked", "resilient"])
def test_a_timeout_whose_budget_was_spent_before_the_call_is_no_failure(composed: bool):
    clock = FakeClock()
    service = Service()
    call: Callable[[], str]
    if composed:
        layered = rs.resilient(timeout=5.0, breaker={"fail_max": 1, "reset_timeout": RESET})(
            service
        )
        assert layered.breaker is not None
        call, breaker = layered, layered.breaker
    else:
        stacked = rs.circuit_breaker(fail_max=1, reset_timeout=RESET)(rs.timeout(5.0)(service))
        call, breaker = stacked, stacked.breaker

    with rs.deadline_after(1.0, clock=clock):
        clock.advance(2.0)  # an enclosing budget (a retry's, the executor's) is spent
        with pytest.raises(rs.ScanTimeout) as info:
            call()

    assert info.value.started is False
    assert "not started" in str(info.value)
    assert service.calls == 0
    assert breaker.state == "closed"  # fail_max=1: one counted failure would have opened it
    assert call() == "ok"


def test_a_timeout_that_ran_the_call_still_counts_as_a_failure(release: threading.Event):
    def hangs() -> None:
        release.wait(5.0)

    call = rs.circuit_breaker(fail_max=1, reset_timeout=RESET)(rs.timeout(0.05)(hangs))

    with pytest.raises(rs.ScanTimeout) as info:
        call()

    assert info.value.started is True
    assert call.breaker.state == "open"
