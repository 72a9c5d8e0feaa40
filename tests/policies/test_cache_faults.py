"""rs.ttl_cache under faults: user code that raises or re-enters, interrupts, clears, forks."""

from __future__ import annotations

import os
import select
import signal
import threading
import time
import warnings
from collections.abc import Callable, Hashable
from typing import Any

import pytest

import resilient_scan as rs
from resilient_scan._storage import MISSING
from resilient_scan.instrumentation import CacheLoaded
from resilient_scan.testing import FakeClock, capture_events
from tests.helpers import Calls, wait_until

WAITERS = 6


def _run_in_threads(count: int, target: Callable[[], Any]) -> list[Any]:
    """Run *target* on *count* threads; return what each returned or raised (any BaseException)."""
    outcomes: list[Any] = [None] * count

    def body(index: int) -> None:
        try:
            outcomes[index] = target()
        except BaseException as exc:  # the test looks at what each got
            outcomes[index] = exc

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads), "a caller never returned"
    return outcomes


# -- a key function that raises -------------------------------------------------------------


def test_a_key_function_that_raises_keeps_its_type_and_says_which_cache_and_function():
    def by_symbol(request: dict[str, str]) -> Hashable:
        return request["symbol"]

    @rs.ttl_cache(ttl=60, key=by_symbol)
    def quote(request: dict[str, str]) -> str:
        return "never called"

    with pytest.raises(KeyError) as caught:  # the original type: `except KeyError` still works
        quote({"ticker": "AAPL"})
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "ttl_cache" in notes
    assert "by_symbol" in notes
    assert "quote" in notes


# -- a same-key call from inside the loader -------------------------------------------------


def test_a_same_key_call_from_inside_the_loader_raises_instead_of_waiting_for_itself():
    calls = Calls()

    @rs.ttl_cache(ttl=60)
    def quote(symbol: str) -> str:
        calls.add(symbol)
        return quote(symbol)  # the same key as the load this call is part of

    (outcome,) = _run_in_threads(1, lambda: quote("AAPL"))  # no deadline anywhere
    assert isinstance(outcome, rs.ResilientScanError)
    assert "same key" in str(outcome)
    assert "quote" in str(outcome)
    assert calls.items == ["AAPL"]  # the inner call never ran the body


def test_after_a_re_entrant_call_failed_the_key_loads_normally():
    reenter = [True]

    @rs.ttl_cache(ttl=60)
    def quote(symbol: str) -> str:
        if reenter[0]:
            return quote(symbol)
        return f"{symbol}-quote"

    with pytest.raises(rs.ResilientScanError):
        _raise_outcome(_run_in_threads(1, lambda: quote("AAPL"))[0])
    reenter[0] = False
    assert quote("AAPL") == "AAPL-quote"
    assert quote.cache_info().currsize == 1


def _raise_outcome(outcome: Any) -> Any:
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


# -- a leader's BaseException ---------------------------------------------------------------


def test_waiters_never_get_the_leaders_keyboard_interrupt_and_one_of_them_loads():
    calls = Calls()
    arrived = Calls()
    all_arrived = threading.Event()

    def key(symbol: str) -> Hashable:
        arrived.add(symbol)
        if arrived.count == WAITERS + 1:
            all_arrived.set()
        return symbol

    @rs.ttl_cache(ttl=60, key=key)
    def quote(symbol: str) -> str:
        calls.add(symbol)
        if calls.count == 1:
            all_arrived.wait(5.0)
            time.sleep(0.1)  # ample time for every caller to wait on this load
            raise KeyboardInterrupt
        return f"{symbol}-quote"

    interrupted: list[BaseException] = []

    def lead() -> None:
        try:
            quote("AAPL")
        except KeyboardInterrupt as exc:
            interrupted.append(exc)

    leader = threading.Thread(target=lead, daemon=True)
    leader.start()
    assert wait_until(lambda: calls.count == 1)
    waiters = _run_in_threads(WAITERS, lambda: quote("AAPL"))
    leader.join(timeout=5)

    assert waiters == ["AAPL-quote"] * WAITERS
    assert [type(exc) for exc in interrupted] == [KeyboardInterrupt]  # the leader's own
    assert calls.count == 2  # the interrupted load, and the one a waiter made instead


# -- cache_clear() during a load ------------------------------------------------------------


def test_cache_clear_during_a_load_keeps_the_stale_value_out_of_the_cache(clock: FakeClock):
    started = threading.Event()
    release = threading.Event()
    calls = Calls()

    @rs.ttl_cache(ttl=60, clock=clock)
    def quote(symbol: str) -> str:
        calls.add(symbol)
        if calls.count == 1:
            started.set()
            release.wait(5.0)
            return "stale"
        return "fresh"

    with capture_events(CacheLoaded) as events:
        loading = threading.Thread(target=lambda: quote("AAPL"), daemon=True)
        loading.start()
        assert started.wait(5.0)
        quote.cache_clear()
        release.set()
        loading.join(timeout=5)

    assert quote("AAPL") == "fresh"
    assert calls.count == 2
    assert [event.stored for event in events.of(CacheLoaded)] == [False]


def test_a_call_after_cache_clear_does_not_join_a_load_that_began_before_it():
    started = threading.Event()
    release = threading.Event()
    calls = Calls()

    @rs.ttl_cache(ttl=60)
    def quote(symbol: str) -> str:
        calls.add(symbol)
        if calls.count == 1:
            started.set()
            release.wait(5.0)
            return "stale"
        return "fresh"

    loading = threading.Thread(target=lambda: quote("AAPL"), daemon=True)
    loading.start()
    assert started.wait(5.0)
    quote.cache_clear()
    try:
        assert _run_in_threads(1, lambda: quote("AAPL")) == ["fresh"]
    finally:
        release.set()
        loading.join(timeout=5)
    assert quote("AAPL") == "fresh"


# -- the waiter's deadline, on the policy's clock --------------------------------------------


def test_a_waiter_gives_up_at_its_deadline_on_the_policy_clock(clock: FakeClock):
    release = threading.Event()
    started = threading.Event()

    @rs.ttl_cache(ttl=60, clock=clock)
    def quote(symbol: str) -> str:
        started.set()
        release.wait(5.0)
        return f"{symbol}-quote"

    def wait_with_deadline() -> object:
        with rs.deadline_after(5.0, clock=clock):
            return quote("AAPL")

    leader = threading.Thread(target=lambda: quote("AAPL"), daemon=True)
    leader.start()
    try:
        assert started.wait(5.0)
        outcome: list[Any] = []
        waiter = threading.Thread(
            target=lambda: outcome.extend(_run_in_threads(1, wait_with_deadline)), daemon=True
        )
        waiter.start()
        time.sleep(0.05)  # the waiter is waiting now; its deadline is 5 s of fake time away
        assert outcome == []
        clock.advance(6.0)
        waiter.join(timeout=2.0)  # well before 5 real seconds
        assert not waiter.is_alive()
    finally:
        release.set()
        leader.join(timeout=5)
    (error,) = outcome
    assert isinstance(error, rs.ScanTimeout)
    assert error.limit == 5.0
    assert error.elapsed == 6.0  # measured on the policy's clock, not time.monotonic


def test_a_waiter_with_a_real_deadline_stops_waiting_at_it(release: threading.Event):
    started = threading.Event()

    @rs.ttl_cache(ttl=60)
    def quote(symbol: str) -> str:
        started.set()
        release.wait(5.0)
        return f"{symbol}-quote"

    def wait_briefly() -> object:
        with rs.deadline_after(0.05):
            return quote("AAPL")

    leader = threading.Thread(target=lambda: quote("AAPL"), daemon=True)
    leader.start()
    assert started.wait(5.0)
    began = time.monotonic()
    (outcome,) = _run_in_threads(1, wait_briefly)
    assert isinstance(outcome, rs.ScanTimeout)
    assert time.monotonic() - began < 2.0
    release.set()
    leader.join(timeout=5)


# -- fork -----------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_child_forked_during_a_load_loads_the_key_itself():
    parent = os.getpid()
    started = threading.Event()
    release = threading.Event()

    @rs.ttl_cache(ttl=60)
    def quote(symbol: str) -> str:
        if os.getpid() == parent:
            started.set()
            release.wait(10.0)
            return "from the parent"
        return "from the child"

    loading = threading.Thread(target=lambda: quote("AAPL"), daemon=True)
    loading.start()
    assert started.wait(5.0)
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads running
        pid = os.fork()
    if pid == 0:  # the child: report what the call returned, then leave at once
        try:
            os.close(read_end)
            answer = quote("AAPL")
            os.write(write_end, answer.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 5.0)
        answer = os.read(read_end, 100).decode() if ready else "<the child blocked>"
    finally:
        release.set()
        loading.join(timeout=5)
        os.close(read_end)
        _reap(pid)
    assert answer == "from the child"
    assert quote("AAPL") == "from the parent"


def _reap(pid: int) -> None:
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def test_a_slow_store_write_holds_up_no_other_key():
    release = threading.Event()

    class SlowForOneKey:
        def __init__(self) -> None:
            self.values: dict[Hashable, object] = {}

        def get(self, key: Hashable) -> object:
            return self.values.get(key, MISSING)

        def set(self, key: Hashable, value: object, ttl: float) -> None:
            if key == ("slow",):
                release.wait(10)  # a shared store taking its time
            self.values[key] = value

        def clear(self) -> None:
            self.values.clear()

        def __len__(self) -> int:
            return len(self.values)

    @rs.ttl_cache(ttl=60, storage=SlowForOneKey())
    def quote(symbol: str) -> str:
        return symbol

    slow = threading.Thread(target=quote, args=("slow",), daemon=True)
    slow.start()
    time.sleep(0.02)  # its write is under way
    done = threading.Event()

    def fast() -> None:
        quote("fast")
        done.set()

    threading.Thread(target=fast, daemon=True).start()
    try:
        assert done.wait(2), "a store write for one key held up another key's load"
    finally:
        release.set()
        slow.join(5)
