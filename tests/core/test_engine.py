import contextvars
import threading

import pytest

import resilient_scan as rs
from resilient_scan import _config
from resilient_scan._deadline import Deadline
from resilient_scan._engine import AbandonedCalls, Call, Claim, DaemonPool
from tests.helpers import settle, wait_until


def test_a_claim_is_taken_once():
    claim = Claim()
    assert claim.take()
    assert not claim.take()
    assert claim.taken


def test_a_claim_raced_by_many_threads_has_one_winner():
    for _ in range(50):
        claim = Claim()
        wins: list[bool] = []
        barrier = threading.Barrier(8)

        def race(
            claim: Claim = claim, barrier: threading.Barrier = barrier, wins: list[bool] = wins
        ) -> None:
            barrier.wait()
            wins.append(claim.take())

        threads = [threading.Thread(target=race) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert wins.count(True) == 1


def test_a_call_returns_its_result_and_raises_its_error():
    pool = DaemonPool()
    ok = pool.start_call("ok", lambda: 42, (), {}, deadline=None)
    assert ok.wait(5)
    assert ok.outcome() == 42
    failed = pool.start_call("bad", lambda: 1 / 0, (), {}, deadline=None)
    assert failed.wait(5)
    with pytest.raises(ZeroDivisionError):
        failed.outcome()


def test_an_abandoned_call_is_counted_until_it_returns(release: threading.Event):
    pool = DaemonPool()
    before = rs.abandoned_threads()
    call: Call[bool] = pool.start_call("hangs", release.wait, (5,), {}, deadline=None)
    assert not call.wait(0.01)
    assert call.abandon()
    assert rs.abandoned_threads() == before + 1
    assert ("hangs", 1) in _config.abandoned_calls().hung()
    release.set()
    assert settle()
    assert rs.abandoned_threads() == before


def test_a_call_that_finishes_while_being_abandoned_hands_over_its_result():
    pool = DaemonPool()
    call = pool.start_call("quick", lambda: "done", (), {}, deadline=None)
    assert wait_until(lambda: call._claim.taken)  # finished, but nobody has looked yet
    assert not call.abandon()
    assert call.outcome() == "done"


def test_a_call_returning_while_it_is_abandoned_is_not_counted_forever(
    monkeypatch: pytest.MonkeyPatch,
):
    go = threading.Event()
    counted_out = threading.Event()
    real_add, real_remove = AbandonedCalls.add, AbandonedCalls.remove

    def add(self: AbandonedCalls, name: str) -> int:
        go.set()  # the call returns now, while abandon() is in the middle of its work
        counted_out.wait(0.5)
        return real_add(self, name)

    def remove(self: AbandonedCalls, name: str) -> int:
        left = real_remove(self, name)
        counted_out.set()
        return left

    monkeypatch.setattr(AbandonedCalls, "add", add)
    monkeypatch.setattr(AbandonedCalls, "remove", remove)
    before = rs.abandoned_threads()
    call = DaemonPool().start_call("racing", lambda: go.wait(5) and "done", (), {}, deadline=None)

    abandoned = call.abandon()

    assert settle()
    assert rs.abandoned_threads() == before
    if not abandoned:  # the call won: its outcome is the caller's
        assert call.outcome() == "done"


def test_a_call_abandoned_before_it_started_never_runs():
    ran: list[int] = []
    before = rs.abandoned_threads()
    call: Call[None] = Call("queued")

    assert call.abandon()  # its deadline passed while it waited for a thread
    assert rs.abandoned_threads() == before + 1
    started = call.run(contextvars.copy_context(), ran.append, (1,), {}, None)

    assert started is False
    assert ran == []
    assert rs.abandoned_threads() == before


def test_pool_threads_are_daemons_and_are_reused():
    pool = DaemonPool()
    names: list[str] = []
    daemons: list[bool] = []

    def who() -> None:
        names.append(threading.current_thread().name)
        daemons.append(threading.current_thread().daemon)

    for _ in range(5):
        call = pool.start_call("who", who, (), {}, deadline=None)
        assert call.wait(5)
        assert wait_until(lambda: len(pool._idle) == 1)  # the worker is back on the idle list
    assert all(daemons)
    assert names == names[:1] * 5
    assert pool.threads == 1


def test_a_full_pool_fails_fast_naming_its_bound_and_the_hung_calls(release: threading.Event):
    pool = DaemonPool(max_threads=2)
    calls = [
        pool.start_call("stuck_fetch", release.wait, (5,), {}, deadline=None) for _ in range(2)
    ]
    for call in calls:
        assert call.abandon()
    with pytest.raises(rs.ThreadLimitError) as info:
        pool.start_call("next", lambda: None, (), {}, deadline=None)
    assert info.value.limit == 2
    assert ("stuck_fetch", 2) in info.value.hung
    assert "max_threads=2" in str(info.value)
    assert "stuck_fetch x2" in str(info.value)
    release.set()
    assert settle()
    again = pool.start_call("again", lambda: 1, (), {}, deadline=None)
    assert again.wait(5)


def test_a_pool_setting_out_of_range_is_a_config_error():
    with pytest.raises(rs.ConfigError, match=r"DaemonPool\.max_threads"):
        DaemonPool(max_threads=0)


def test_the_call_sees_the_callers_context_and_its_deadline():
    pool = DaemonPool()
    call = pool.start_call("d", rs.time_remaining, (), {}, deadline=Deadline.after(3))
    assert call.wait(5)
    remaining = call.outcome()
    assert remaining is not None
    assert 0 < remaining <= 3
