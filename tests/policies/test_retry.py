"""rs.retry: exponential backoff with full jitter, server-requested waits, budgets."""

from __future__ import annotations

import contextlib
import email.utils
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

import pytest
import structlog
import tenacity
from hypothesis import given, settings
from hypothesis import strategies as st

import resilient_scan as rs
from resilient_scan.instrumentation import (
    AttemptFinished,
    AttemptStarted,
    PredicateFailed,
    RetryExhausted,
    RetryScheduled,
    add_hook,
    remove_hook,
)
from resilient_scan.testing import FakeClock, capture_events
from tests.helpers import Flaky


class RateLimitedError(Exception):
    """An error that says how long the server wants us to wait."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"429, retry after {retry_after}")
        self.retry_after = retry_after


class FakeResponse:
    def __init__(self, headers: Mapping[str, object]) -> None:
        self.headers = headers


class HTTPStatusError(Exception):
    """Shaped like httpx/requests errors: the response hangs off ``.response``."""

    def __init__(self, headers: Mapping[str, object]) -> None:
        super().__init__("503 Service Unavailable")
        self.response = FakeResponse(headers)


class URLLibHTTPError(Exception):
    """Shaped like urllib's HTTPError: the headers hang off the exception itself."""

    def __init__(self, headers: Mapping[str, object]) -> None:
        super().__init__("HTTP Error 429: Too Many Requests")
        self.headers = headers


def test_returns_once_an_attempt_succeeds_and_makes_no_more_attempts(clock: FakeClock):
    flaky = Flaky(failures=2)
    assert rs.retry(attempts=5, clock=clock)(flaky)() == 3
    assert flaky.calls == 3


def test_makes_exactly_attempts_calls_in_all(clock: FakeClock):
    flaky = Flaky(failures=100)
    with pytest.raises(ValueError):
        rs.retry(attempts=4, clock=clock)(flaky)()
    assert flaky.calls == 4


def test_one_attempt_means_no_retry(clock: FakeClock):
    flaky = Flaky(failures=100)
    with pytest.raises(ValueError):
        rs.retry(attempts=1, clock=clock)(flaky)()
    assert flaky.calls == 1
    assert clock.sleeps == []


def test_backoff_without_jitter_doubles_up_to_the_cap(clock: FakeClock):
    flaky = Flaky(failures=100)
    call = rs.retry(attempts=7, backoff=0.5, max_backoff=4.0, jitter=False, clock=clock)(flaky)
    with pytest.raises(ValueError):
        call()
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


@settings(max_examples=60, deadline=None, database=None)
@given(
    attempts=st.integers(min_value=2, max_value=9),
    backoff=st.floats(min_value=0.001, max_value=10.0),
    cap_factor=st.floats(min_value=1.0, max_value=300.0),
)
def test_jittered_waits_stay_within_zero_and_the_capped_backoff(
    attempts: int, backoff: float, cap_factor: float
):
    clock = FakeClock()
    max_backoff = backoff * cap_factor
    flaky = Flaky(failures=100)
    call = rs.retry(
        attempts=attempts, backoff=backoff, max_backoff=max_backoff, jitter=True, clock=clock
    )(flaky)
    with structlog.testing.capture_logs(), pytest.raises(ValueError):
        call()
    assert len(clock.sleeps) == attempts - 1
    for n, wait in enumerate(clock.sleeps):
        assert 0.0 <= wait <= min(max_backoff, backoff * 2**n)


def test_on_an_exception_type_retries_that_type(clock: FakeClock):
    flaky = Flaky(failures=2, make_error=lambda n: ConnectionError(f"reset {n}"))
    assert rs.retry(attempts=3, on=ConnectionError, clock=clock)(flaky)() == 3


def test_on_a_tuple_retries_each_type_in_it(clock: FakeClock):
    errors: list[Exception] = [KeyError("a"), ConnectionError("b")]
    flaky = Flaky(failures=2, make_error=lambda n: errors[n - 1])
    assert rs.retry(attempts=3, on=(KeyError, ConnectionError), clock=clock)(flaky)() == 3


def test_on_a_predicate_retries_what_it_accepts(clock: FakeClock):
    flaky = Flaky(failures=2, make_error=lambda n: RuntimeError(f"transient {n}"))

    def transient(exc: BaseException) -> bool:
        return "transient" in str(exc)

    assert rs.retry(attempts=3, on=transient, clock=clock)(flaky)() == 3


@pytest.mark.parametrize(
    "on",
    [
        KeyError,
        (KeyError, ConnectionError),
        lambda exc: isinstance(exc, KeyError),
    ],
    ids=["type", "tuple", "predicate"],
)
def test_an_exception_that_on_does_not_match_is_raised_at_once(
    clock: FakeClock, on: Callable[[BaseException], bool] | type[Exception]
):
    flaky = Flaky(failures=100)  # raises ValueError
    with pytest.raises(ValueError) as info:
        rs.retry(attempts=5, on=on, clock=clock)(flaky)()
    assert info.value is flaky.raised[0]
    assert flaky.calls == 1
    assert clock.sleeps == []


def test_when_exhausted_the_last_exception_is_reraised_unwrapped(clock: FakeClock):
    flaky = Flaky(failures=100)
    with pytest.raises(Exception) as info:
        rs.retry(attempts=3, clock=clock)(flaky)()
    assert not isinstance(info.value, tenacity.RetryError)
    assert type(info.value) is ValueError
    assert info.value is flaky.raised[-1]
    assert str(info.value) == "boom 3"


@pytest.mark.parametrize("on", [Exception, rs.CircuitOpenError], ids=["Exception", "explicit"])
def test_circuit_open_error_is_never_retried(clock: FakeClock, on: type[Exception]):
    flaky = Flaky(failures=100, make_error=lambda n: rs.CircuitOpenError("quotes", 30.0))
    with pytest.raises(rs.CircuitOpenError):
        rs.retry(attempts=5, on=on, clock=clock)(flaky)()
    assert flaky.calls == 1
    assert clock.sleeps == []


def test_total_budget_stops_before_a_wait_that_would_pass_it(clock: FakeClock):
    calls = 0

    @rs.retry(attempts=10, backoff=1.0, jitter=False, total=9.5, clock=clock)
    def slow_and_failing() -> None:
        nonlocal calls
        calls += 1
        clock.advance(1.0)  # each attempt takes a second of the budget too
        raise ConnectionError(f"attempt {calls}")

    with pytest.raises(ConnectionError, match="attempt 3"):
        slow_and_failing()
    # attempt (t=1), wait 1 (t=2), attempt (t=3), wait 2 (t=5), attempt (t=6):
    # the next wait of 4 would end at t=10, past the 9.5 s budget.
    assert clock.sleeps == [1.0, 2.0]
    assert calls == 3


def test_a_retry_after_attribute_sets_the_least_wait(clock: FakeClock):
    flaky = Flaky(failures=2, make_error=lambda n: RateLimitedError(retry_after=7.0))
    assert rs.retry(attempts=3, backoff=0.5, jitter=True, clock=clock)(flaky)() == 3
    assert len(clock.sleeps) == 2
    assert all(wait >= 7.0 for wait in clock.sleeps)


@pytest.mark.parametrize(
    "make_error",
    [
        lambda: HTTPStatusError({"Retry-After": "12"}),
        lambda: URLLibHTTPError({"Retry-After": "12"}),
        lambda: URLLibHTTPError({"retry-after": "12"}),
    ],
    ids=["response.headers", "exc.headers", "lower-case header"],
)
def test_a_retry_after_header_in_seconds_sets_the_least_wait(
    clock: FakeClock, make_error: Callable[[], Exception]
):
    flaky = Flaky(failures=1, make_error=lambda n: make_error())
    assert rs.retry(attempts=2, backoff=0.5, jitter=False, clock=clock)(flaky)() == 2
    assert clock.sleeps == [12.0]


@pytest.mark.parametrize(
    "error_class", [HTTPStatusError, URLLibHTTPError], ids=["response.headers", "exc.headers"]
)
def test_a_retry_after_http_date_waits_until_that_date_on_the_policy_clock(
    clock: FakeClock, error_class: type[HTTPStatusError | URLLibHTTPError]
):
    # The fake clock's "now" is in 1970: a policy that read the real time would not wait.
    http_date = email.utils.formatdate(clock.time() + 30, usegmt=True)
    flaky = Flaky(failures=1, make_error=lambda n: error_class({"Retry-After": http_date}))
    assert rs.retry(attempts=2, backoff=0.5, jitter=False, clock=clock)(flaky)() == 2
    assert clock.sleeps == [pytest.approx(30.0, abs=1.0)]


@pytest.mark.parametrize(
    "header",
    ["soon", "-5", "1.5", "\u00b2", b"\xb2"],
    ids=["word", "negative", "fraction", "superscript-2", "latin-1-byte"],
)
def test_a_malformed_retry_after_header_is_ignored(clock: FakeClock, header: str | bytes):
    flaky = Flaky(failures=100, make_error=lambda n: URLLibHTTPError({"Retry-After": header}))
    with pytest.raises(URLLibHTTPError):
        rs.retry(attempts=3, backoff=0.5, jitter=False, clock=clock)(flaky)()
    assert flaky.calls == 3
    assert clock.sleeps == [0.5, 1.0]


def test_no_waits_makes_real_clock_retries_skip_their_sleeps():
    flaky = Flaky(failures=2)
    call = rs.retry(attempts=3, backoff=5.0, jitter=False)(flaky)  # would sleep 5 + 10 s
    started = time.monotonic()
    with rs.testing.no_waits():
        assert call() == 3
    assert time.monotonic() - started < 2.0
    assert flaky.calls == 3


def test_no_waits_ends_with_its_block():
    with rs.testing.no_waits():
        pass
    flaky = Flaky(failures=1)
    started = time.monotonic()
    assert rs.retry(attempts=2, backoff=0.2, jitter=False)(flaky)() == 2
    assert time.monotonic() - started >= 0.18


def test_concurrent_callers_of_one_function_each_get_their_own_attempt_count(
    clock: FakeClock,
):
    callers = 24
    attempts = 4
    lock = threading.Lock()
    calls_by_caller = dict.fromkeys(range(callers), 0)
    start_together = threading.Barrier(callers)

    @rs.retry(attempts=attempts, backoff=0.01, jitter=False, clock=clock)
    def work(caller: int, failures: int) -> int:
        with lock:
            calls_by_caller[caller] += 1
            number = calls_by_caller[caller]
        time.sleep(0.001)  # let the callers interleave
        if number <= failures:
            raise ValueError(f"caller {caller} attempt {number}")
        return number

    def run(caller: int) -> int | Exception:
        start_together.wait(timeout=10)
        try:
            return work(caller, caller % 6)
        except ValueError as exc:
            return exc

    with structlog.testing.capture_logs(), ThreadPoolExecutor(max_workers=callers) as pool:
        outcomes = list(pool.map(run, range(callers)))

    for caller, outcome in enumerate(outcomes):
        failures = caller % 6
        if failures < attempts:
            assert outcome == failures + 1, caller
            assert calls_by_caller[caller] == failures + 1, caller
        else:
            assert isinstance(outcome, ValueError), caller
            assert str(outcome) == f"caller {caller} attempt {attempts}"
            assert calls_by_caller[caller] == attempts, caller


def test_the_total_budget_is_the_deadline_inside_each_attempt():
    seen: list[float | None] = []

    @rs.retry(attempts=2, total=5)
    def attempt() -> None:
        seen.append(rs.time_remaining())

    attempt()
    assert seen[0] is not None
    assert 0 < seen[0] <= 5
    assert rs.time_remaining() is None  # the budget ends with the call


def test_the_total_budget_ends_an_attempt_under_an_inner_timeout(release: threading.Event):

    @rs.resilient(retry={"attempts": 5, "backoff": 0.01, "total": 0.1}, timeout=30)
    def hang() -> None:
        release.wait(10)

    started = time.monotonic()
    try:
        with pytest.raises(rs.ScanTimeout):
            hang()
        elapsed = time.monotonic() - started
    finally:
        release.set()
    assert elapsed < 3.0


# -- hardening (issue 7) -------------------------------------------------------------------


class UnprintableError(Exception):
    """An exception whose message and repr cannot be produced."""

    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


@pytest.mark.parametrize(
    "make_error",
    [
        lambda: URLLibHTTPError({"Retry-After": "111111111111"}),
        lambda: URLLibHTTPError({"Retry-After": "9" * 400}),
        lambda: RateLimitedError(retry_after=10**400),
        lambda: RateLimitedError(retry_after=30.5),
    ],
    ids=["header-12-digits", "header-400-digits", "attribute-10**400", "just-past-the-cap"],
)
def test_a_retry_after_beyond_max_backoff_gives_up_at_once_with_the_original_error(
    clock: FakeClock, make_error: Callable[[], Exception]
):
    flaky = Flaky(failures=100, make_error=lambda n: make_error())
    with capture_events(RetryExhausted, RetryScheduled) as events, pytest.raises(Exception) as info:
        rs.retry(attempts=5, max_backoff=30, clock=clock)(flaky)()
    assert info.value is flaky.raised[0]
    assert flaky.calls == 1
    assert clock.sleeps == []
    assert [(e.name, e.reason, e.attempts) for e in events.of(RetryExhausted)] == [
        ("retry.exhausted", "retry_after", 1)
    ]


def test_a_retry_after_longer_than_the_budget_left_gives_up_at_once(clock: FakeClock):
    flaky = Flaky(failures=100, make_error=lambda n: RateLimitedError(retry_after=20.0))
    call = rs.retry(attempts=5, max_backoff=60, total=10, clock=clock)(flaky)
    with capture_events(RetryExhausted) as events, pytest.raises(RateLimitedError):
        call()
    assert flaky.calls == 1
    assert clock.sleeps == []
    assert [e.reason for e in events.of(RetryExhausted)] == ["retry_after"]


def test_an_on_predicate_that_raises_gives_the_original_error_with_the_predicate_error_attached(
    clock: FakeClock,
):
    def only_server_errors(exc: BaseException) -> bool:
        status: int = exc.status  # type: ignore[attr-defined] # ConnectionError has none
        return 500 <= status < 600

    flaky = Flaky(failures=100, make_error=lambda n: ConnectionError("reset"))
    call = rs.retry(attempts=3, on=only_server_errors, clock=clock)(flaky)
    with capture_events(PredicateFailed) as events, pytest.raises(ConnectionError) as info:
        call()
    assert info.value is flaky.raised[0]
    assert flaky.calls == 1  # a predicate that cannot tell means "do not retry"
    notes = getattr(info.value, "__notes__", [])
    assert any("retry.on" in note and "AttributeError" in note for note in notes), notes
    assert [(e.where, e.original_error_type, e.error_type) for e in events.of(PredicateFailed)] == [
        ("retry.on", "ConnectionError", "AttributeError")
    ]


def test_an_exception_whose_str_and_repr_raise_is_still_retried_and_reported(clock: FakeClock):
    flaky = Flaky(failures=2, make_error=lambda n: UnprintableError())
    with capture_events(RetryScheduled) as events:
        assert rs.retry(attempts=3, backoff=0.5, jitter=False, clock=clock)(flaky)() == 3
    assert flaky.calls == 3
    assert [e.error for e in events.of(RetryScheduled)] == [
        "UnprintableError: <unprintable UnprintableError>"
    ] * 2


@pytest.mark.usefixtures("structlog_defaults")
def test_an_unprintable_exception_is_retried_with_the_default_log_hooks(clock: FakeClock):
    flaky = Flaky(failures=2, make_error=lambda n: UnprintableError())
    with structlog.testing.capture_logs() as logs:
        assert rs.retry(attempts=3, jitter=False, clock=clock)(flaky)() == 3
    assert [log["event"] for log in logs] == ["retry.scheduled", "retry.scheduled"]


@pytest.mark.parametrize("error_class", [KeyboardInterrupt, SystemExit, GeneratorExit])
@pytest.mark.parametrize("failing_attempt", [1, 2, 3])
def test_interrupts_and_exits_are_never_retried_even_with_on_base_exception(
    clock: FakeClock, error_class: type[BaseException], failing_attempt: int
):
    calls = 0

    @rs.retry(attempts=5, on=BaseException, backoff=0.1, jitter=False, clock=clock)
    def work() -> str:
        nonlocal calls
        calls += 1
        if calls < failing_attempt:
            raise ConnectionError("retry me")
        raise error_class

    with pytest.raises(error_class):
        work()
    assert calls == failing_attempt


@pytest.mark.parametrize(
    ("limit", "budget", "reason"),
    [(None, 3.0, "budget"), (3.0, None, "deadline"), (3.0, 100.0, "deadline")],
    ids=["own budget", "enclosing deadline", "enclosing deadline earlier than the budget"],
)
def test_retry_exhausted_says_whether_the_budget_or_an_enclosing_deadline_stopped_it(
    clock: FakeClock, limit: float | None, budget: float | None, reason: str
):
    flaky = Flaky(failures=100)
    call = rs.retry(attempts=10, backoff=1.0, jitter=False, total=budget, clock=clock)(flaky)
    enclosing = contextlib.nullcontext() if limit is None else rs.deadline_after(limit, clock=clock)
    with capture_events(RetryExhausted) as events, enclosing, pytest.raises(ValueError):
        call()
    # waits 1 (t=1); the next wait, 2, would end at the 3 s limit: no time for an attempt
    assert clock.sleeps == [1.0]
    assert [e.reason for e in events.of(RetryExhausted)] == [reason]


def test_an_error_that_is_not_retryable_after_a_retry_is_reported_as_not_retryable(
    clock: FakeClock,
):
    errors: list[Exception] = [ConnectionError("reset"), KeyError("gone")]
    flaky = Flaky(failures=2, make_error=lambda n: errors[n - 1])
    call = rs.retry(attempts=5, on=ConnectionError, jitter=False, clock=clock)(flaky)
    with capture_events(RetryExhausted) as events, pytest.raises(KeyError):
        call()
    assert flaky.calls == 2
    assert [(e.reason, e.attempts, e.error_type) for e in events.of(RetryExhausted)] == [
        ("not_retryable", 2, "KeyError")
    ]


def test_a_rate_limit_exceeded_waits_what_the_limiter_said(clock: FakeClock):
    flaky = Flaky(failures=1, make_error=lambda n: rs.RateLimitExceeded("quotes", 4.0, 0.0))
    assert rs.retry(attempts=2, backoff=0.5, jitter=False, clock=clock)(flaky)() == 2
    assert clock.sleeps == [4.0]


def test_attempts_are_traced_in_the_caller_thread_with_one_token_per_attempt(clock: FakeClock):
    flaky = Flaky(failures=2)
    threads: dict[str, set[int]] = {"started": set(), "finished": set()}

    class Tracer:
        events = (AttemptStarted, AttemptFinished)

        def __call__(self, event: object) -> None:
            kind = "started" if isinstance(event, AttemptStarted) else "finished"
            threads[kind].add(threading.get_ident())

    tracer = Tracer()
    add_hook(tracer)
    try:
        with capture_events(AttemptStarted, AttemptFinished) as events:
            assert rs.retry(attempts=3, jitter=False, clock=clock)(flaky)() == 3
    finally:
        remove_hook(tracer)
    started = events.of(AttemptStarted)
    finished = events.of(AttemptFinished)
    assert [e.attempt for e in started] == [1, 2, 3]
    assert [(e.attempt, e.outcome, e.error_type) for e in finished] == [
        (1, "error", "ValueError"),
        (2, "error", "ValueError"),
        (3, "ok", None),
    ]
    assert [s.token for s in started] == [f.token for f in finished]
    assert len({id(s.token) for s in started}) == 3
    assert threads == {"started": {threading.get_ident()}, "finished": {threading.get_ident()}}


def test_attempts_and_waits_use_the_policy_clock_only(clock: FakeClock):
    # The real clock barely moves during this test; the fake one moves by the waits.
    flaky = Flaky(failures=2)
    call = rs.retry(attempts=3, backoff=10, jitter=False, total=100, clock=clock)(flaky)
    with capture_events(AttemptFinished, RetryScheduled) as events:
        call()
    assert [e.wait for e in events.of(RetryScheduled)] == [10.0, 20.0]
    assert all(e.duration == 0.0 for e in events.of(AttemptFinished))
