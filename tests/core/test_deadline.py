import asyncio
import threading

import pytest

import resilient_scan as rs
from resilient_scan import _deadline
from resilient_scan._deadline import Deadline
from resilient_scan.testing import FakeClock


def test_no_deadline_outside_any_scope():
    assert rs.time_remaining() is None
    assert rs.current_deadline() is None
    assert _deadline.remaining() == float("inf")


def test_a_scope_announces_its_deadline_and_restores_the_outer_one(clock: FakeClock):
    with _deadline.scope(Deadline.after(10, clock)):
        assert rs.time_remaining() == 10
        clock.advance(4)
        assert rs.time_remaining() == 6
    assert rs.time_remaining() is None


def test_nested_scopes_keep_the_earliest(clock: FakeClock):
    with _deadline.scope(Deadline.after(5, clock)):
        with _deadline.scope(Deadline.after(60, clock)) as inner:
            assert rs.time_remaining() == 5
            assert inner is not None
            assert inner.remaining() == 5
        with _deadline.scope(Deadline.after(2, clock)):
            assert rs.time_remaining() == 2
        assert rs.time_remaining() == 5


def test_time_remaining_is_never_negative(clock: FakeClock):
    with _deadline.scope(Deadline.after(1, clock)) as scope:
        clock.advance(3)
        assert rs.time_remaining() == 0.0
        assert scope is not None
        assert scope.expired


def test_deadlines_on_different_clocks_compare_by_time_left():
    fake = FakeClock()
    far = Deadline.after(100, fake)
    near = Deadline.after(1)
    assert far.earliest(near) is near
    assert near.earliest(far) is near


def test_deadline_after_is_public_and_validated():
    with rs.deadline_after(30):
        remaining = rs.time_remaining()
        assert remaining is not None
        assert 29 < remaining <= 30
        current = rs.current_deadline()
        assert current is not None
    with pytest.raises(rs.ConfigError, match=r"deadline_after\.seconds"), rs.deadline_after(-1):
        pass


def test_the_deadline_follows_work_into_a_timeout_thread():
    seen: list[float | None] = []

    @rs.timeout(5)
    def inside() -> None:
        seen.append(rs.time_remaining())

    with rs.deadline_after(1):
        inside()
    assert seen[0] is not None
    assert seen[0] <= 1


def test_the_deadline_follows_work_into_asyncio_tasks():
    async def child() -> float | None:
        return rs.time_remaining()

    async def main() -> float | None:
        with rs.deadline_after(2):
            return await asyncio.create_task(child())

    remaining = asyncio.run(main())
    assert remaining is not None
    assert remaining <= 2


def test_a_thread_started_by_hand_does_not_see_the_deadline():
    # Plain threads start with an empty context: only the library's own threads copy it.
    seen: list[float | None] = []
    with rs.deadline_after(1):
        thread = threading.Thread(target=lambda: seen.append(rs.time_remaining()))
        thread.start()
        thread.join()
    assert seen == [None]
