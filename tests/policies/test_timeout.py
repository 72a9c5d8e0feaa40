"""rs.timeout: gives up on a call at its limit, whatever the call is blocked in."""

from __future__ import annotations

import contextvars
import inspect
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import structlog

import resilient_scan as rs
from resilient_scan.instrumentation import CallAbandoned, TimeoutFired
from resilient_scan.testing import CapturedEvents, capture_events
from tests.helpers import capture_with_contextvars, events_named, settle, wait_until

LIMIT = 0.05
# Shared 2-core machines are noisy: a 0.2 s timeout only has to fire before this.
FIRES_BEFORE = 1.5


@dataclass
class SilentPeer:
    """A connected client socket whose peer never sends anything until it hangs up."""

    client: socket.socket
    peer: socket.socket

    def hang_up(self) -> None:
        self.peer.close()


@pytest.fixture
def silent_peer() -> Iterator[SilentPeer]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        host, port = server.getsockname()[:2]
        client = socket.create_connection((host, port))
        peer, _ = server.accept()
    pair = SilentPeer(client=client, peer=peer)
    try:
        yield pair
    finally:
        peer.close()
        client.close()


def test_fires_while_the_call_is_blocked_in_time_sleep():
    @rs.timeout(LIMIT)
    def sleepy() -> str:
        time.sleep(4 * LIMIT)
        return "woke up"

    started = time.monotonic()
    with pytest.raises(rs.ScanTimeout):
        sleepy()
    elapsed = time.monotonic() - started
    assert LIMIT - 0.02 <= elapsed < FIRES_BEFORE
    assert settle()  # the sleep ends and reports: nothing is left for later tests


def test_fires_while_the_call_is_blocked_in_a_socket_recv(silent_peer: SilentPeer):
    returned = threading.Event()

    @rs.timeout(LIMIT)
    def read() -> bytes:
        try:
            return silent_peer.client.recv(1024)
        finally:
            returned.set()

    started = time.monotonic()
    with pytest.raises(rs.ScanTimeout):
        read()
    elapsed = time.monotonic() - started
    assert LIMIT - 0.02 <= elapsed < FIRES_BEFORE
    assert not returned.is_set(), "the recv returned: the call was not blocked after all"
    silent_peer.hang_up()  # the abandoned recv now sees EOF and its thread ends
    assert returned.wait(5.0)
    assert settle()


def test_scan_timeout_is_a_timeout_error_that_carries_the_limit(release: threading.Event):

    @rs.timeout(LIMIT)
    def hang() -> None:
        release.wait(5.0)

    try:
        with pytest.raises(TimeoutError) as info:
            hang()
    finally:
        release.set()
    assert isinstance(info.value, rs.ScanTimeout)
    assert isinstance(info.value, rs.ResilientScanError)
    assert info.value.limit == LIMIT


def test_returns_the_call_result_and_passes_arguments():
    @rs.timeout(1.0)
    def add(a: int, b: int = 0) -> int:
        return a + b

    assert add(2, b=40) == 42


def test_reraises_the_call_exception_unchanged():
    error = LookupError("no such ticker")

    @rs.timeout(1.0)
    def fail() -> None:
        raise error

    with pytest.raises(LookupError) as info:
        fail()
    assert info.value is error


def test_abandoned_threads_counts_a_timed_out_call_until_it_returns(release: threading.Event):
    assert rs.abandoned_threads() == 0  # no test leaves one running (the conftest's guard)

    @rs.timeout(LIMIT)
    def hang() -> None:
        release.wait(10.0)

    try:
        with pytest.raises(rs.ScanTimeout):
            hang()
        assert rs.abandoned_threads() == 1
    finally:
        release.set()
    assert wait_until(lambda: rs.abandoned_threads() == 0)
    assert settle()


def test_time_remaining_and_current_deadline_inside_the_call_reflect_the_limit():
    seen: dict[str, float | None] = {}

    @rs.timeout(2.0)
    def probe() -> None:
        seen["remaining"] = rs.time_remaining()
        seen["deadline"] = rs.current_deadline()

    before = time.monotonic()
    probe()
    after = time.monotonic()
    remaining, deadline = seen["remaining"], seen["deadline"]
    assert remaining is not None
    assert deadline is not None
    assert 1.0 < remaining <= 2.0
    assert before + 2.0 <= deadline <= after + 2.0


def test_time_remaining_and_current_deadline_are_none_outside_any_timeout():
    assert rs.time_remaining() is None
    assert rs.current_deadline() is None
    rs.timeout(1.0)(lambda: None)()
    # The call's deadline stays in the call's context and does not leak to the caller.
    assert rs.time_remaining() is None
    assert rs.current_deadline() is None


@pytest.mark.parametrize(("outer_limit", "inner_limit"), [(0.5, 5.0), (5.0, 0.5)])
def test_nested_timeouts_keep_the_earliest_deadline(outer_limit: float, inner_limit: float):
    seen: dict[str, float | None] = {}

    @rs.timeout(inner_limit)
    def inner() -> None:
        seen["inner_deadline"] = rs.current_deadline()
        seen["inner_remaining"] = rs.time_remaining()

    @rs.timeout(outer_limit)
    def outer() -> None:
        seen["outer_deadline"] = rs.current_deadline()
        inner()

    outer()
    inner_deadline, outer_deadline = seen["inner_deadline"], seen["outer_deadline"]
    remaining = seen["inner_remaining"]
    assert inner_deadline is not None
    assert outer_deadline is not None
    assert remaining is not None
    assert remaining <= min(outer_limit, inner_limit)
    if outer_limit < inner_limit:
        assert inner_deadline == outer_deadline
    else:
        assert inner_deadline < outer_deadline


@pytest.mark.usefixtures("structlog_defaults")
def test_caller_structlog_context_reaches_events_emitted_inside_the_call():
    @rs.timeout(1.0)
    def work() -> str:
        structlog.get_logger().info("inside.call")
        return threading.current_thread().name

    with (
        capture_with_contextvars() as events,
        structlog.contextvars.bound_contextvars(request_id="req-7"),
    ):
        worker_name = work()
    assert worker_name != threading.current_thread().name
    inside = events_named(events, "inside.call")
    assert len(inside) == 1
    assert inside[0]["request_id"] == "req-7"


@pytest.mark.usefixtures("structlog_defaults")
def test_caller_structlog_context_reaches_the_late_finish_event_of_an_abandoned_call(
    release: threading.Event,
):

    @rs.timeout(0.1)
    def hang() -> None:
        release.wait(5.0)

    with (
        capture_with_contextvars() as events,
        structlog.contextvars.bound_contextvars(request_id="req-8"),
    ):
        try:
            with pytest.raises(rs.ScanTimeout):
                hang()
        finally:
            release.set()
        assert wait_until(lambda: bool(events_named(events, "timeout.abandoned_call_finished")))
    finished = events_named(events, "timeout.abandoned_call_finished")
    assert finished[0]["request_id"] == "req-8"


HUNG_SCRIPT = """
import time
import resilient_scan as rs

@rs.timeout(0.2)
def hang():
    time.sleep(60)

try:
    hang()
except rs.ScanTimeout:
    print("timed out; abandoned", rs.abandoned_threads(), flush=True)
"""


def test_interpreter_exits_promptly_while_a_timed_out_call_still_sleeps():
    started = time.monotonic()
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", HUNG_SCRIPT],
        capture_output=True,
        text=True,
        timeout=55,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "timed out; abandoned 1" in done.stdout
    # The hung call sleeps 60 s; the process must not wait for it.
    assert elapsed < 20.0


def test_keeps_the_wrapped_function_metadata():
    def fetch_quotes(symbol: str) -> str:
        """Fetch quotes for one symbol."""
        return symbol

    wrapped = rs.timeout(1.0)(fetch_quotes)
    assert wrapped.__name__ == "fetch_quotes"
    assert wrapped.__qualname__ == fetch_quotes.__qualname__
    assert wrapped.__doc__ == "Fetch quotes for one symbol."
    assert wrapped.__module__ == __name__
    assert inspect.unwrap(wrapped) is fetch_quotes


def test_an_enclosing_deadline_that_ends_sooner_shortens_the_limit(release: threading.Event):

    @rs.timeout(30)
    def hang() -> None:
        release.wait(10)

    @rs.timeout(0.1)
    def outer() -> None:
        hang()

    started = time.monotonic()
    try:
        with pytest.raises(rs.ScanTimeout) as info:
            outer()
        elapsed = time.monotonic() - started
    finally:
        release.set()
    # The inner 30 s limit gave way to the outer 0.1 s one: the inner call timed out first.
    assert info.value.limit <= 0.1
    assert elapsed < 3.0


def test_a_spent_enclosing_budget_does_not_start_the_call(release: threading.Event):
    calls: list[int] = []
    outcome: list[BaseException | None] = []

    @rs.timeout(5)
    def inner() -> None:
        calls.append(1)

    @rs.timeout(LIMIT)
    def outer() -> None:
        release.wait(5.0)  # until the outer limit has passed: this thread goes on, abandoned
        try:
            inner()
        except BaseException as exc:
            outcome.append(exc)
            raise
        outcome.append(None)

    with pytest.raises(rs.ScanTimeout):
        outer()
    release.set()
    assert settle()
    assert calls == []
    assert len(outcome) == 1
    assert isinstance(outcome[0], rs.ScanTimeout)


@pytest.mark.parametrize("seconds", [1e10, 2**1024, float("inf")], ids=["1e10", "2**1024", "inf"])
def test_a_limit_no_wait_can_take_is_a_config_error_at_construction(seconds: float):
    with pytest.raises(rs.ConfigError) as info:
        rs.timeout(seconds)
    assert info.value.path == ("timeout", "seconds")
    with pytest.raises(rs.ConfigError) as info:
        rs.resilient(timeout=seconds)
    assert info.value.path == ("resilient", "timeout", "seconds")


def test_a_full_pool_fails_new_calls_at_once_naming_the_bound_and_the_hung_functions(
    release: threading.Event,
):
    pool = rs.DaemonPool(max_threads=2)
    before = rs.abandoned_threads()

    @rs.timeout(0.05, pool=pool)
    def stuck_feed() -> None:
        release.wait(10)

    @rs.timeout(5, pool=pool)
    def quick() -> str:
        return "ok"

    for _ in range(2):
        with pytest.raises(rs.ScanTimeout):
            stuck_feed()
    started = time.monotonic()
    with pytest.raises(rs.ThreadLimitError) as info:
        quick()
    assert time.monotonic() - started < 0.5
    assert info.value.limit == 2
    assert (stuck_feed.__qualname__, 2) in info.value.hung
    assert "max_threads=2" in str(info.value)
    assert f"{stuck_feed.__qualname__} x2" in str(info.value)
    release.set()
    assert settle()
    assert rs.abandoned_threads() == before
    assert quick() == "ok"  # the threads came back to the pool


def test_an_abandoned_call_is_reported_with_the_running_count(release: threading.Event):
    @rs.timeout(0.05)
    def hang() -> None:
        release.wait(10)

    before = rs.abandoned_threads()
    with capture_events(CallAbandoned, TimeoutFired) as events, pytest.raises(rs.ScanTimeout):
        hang()
    abandoned, fired = events.of(CallAbandoned), events.of(TimeoutFired)
    assert [(e.function, e.abandoned) for e in abandoned] == [(hang.__qualname__, before + 1)]
    assert [(e.limit, e.abandoned, e.cancelled) for e in fired] == [(0.05, before + 1, False)]


def test_the_call_runs_on_another_thread_so_thread_locals_are_not_seen_but_context_is():
    local = threading.local()
    local.session = "caller's session"
    request: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="none")
    request.set("req-1")

    @rs.timeout(1)
    def inside() -> tuple[str | None, str]:
        return getattr(local, "session", None), request.get()

    assert inside() == (None, "req-1")


def test_ctrl_c_while_waiting_leaves_the_call_counted_as_abandoned(
    release: threading.Event, events: CapturedEvents
):
    @rs.timeout(30)
    def hang() -> None:
        release.wait(10)

    before = rs.abandoned_threads()
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            hang()
        # The call runs on in its thread: counted, and reported, like any abandoned one.
        assert rs.abandoned_threads() == before + 1
        assert [e.function for e in events.of(CallAbandoned)] == [hang.__qualname__]
    finally:
        timer.cancel()
        release.set()
    assert settle()
    assert rs.abandoned_threads() == before
