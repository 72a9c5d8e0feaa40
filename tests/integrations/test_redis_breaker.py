"""The Redis breaker store: the in-memory store's semantics, shared, in one round trip."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import resilient_scan as rs
from resilient_scan import _breaker
from resilient_scan._storage import Admission, BreakerSnapshot, BreakerStore, Transition
from resilient_scan.instrumentation import BackendUnavailable, BreakerStateChanged
from resilient_scan.redis import RedisBackend, RedisBreakerStore
from resilient_scan.testing import FakeClock, capture_events
from tests.integrations.conftest import CountingFactory

NOW = 1_000_000.0
RESET = 1.0
LEASE = 2.0


def store_on(backend: RedisBackend, name: str | None = None) -> RedisBreakerStore:
    return backend.breaker_store(name or f"b-{uuid.uuid4().hex[:8]}", FakeClock())


def admit(store: BreakerStore, now: float, lease: float = LEASE) -> Admission:
    return store.admit(now=now, reset_timeout=RESET, trial_lease=lease)


def open_it(store: BreakerStore, now: float, fail_max: int = 1) -> None:
    for _ in range(fail_max):
        store.record_failure(admit(store, now), now=now, fail_max=fail_max)


# -- the same behaviour as MemoryBreakerStore -------------------------------------------------


@dataclass(frozen=True)
class Op:
    kind: str  # admit, success, failure, release, advance, snapshot, force
    index: int = 0  # which pending admission (success, failure, release)
    seconds: float = 0.0  # advance
    state: str = "closed"  # force


OPS = st.one_of(
    st.just(Op("admit")),
    st.builds(Op, st.just("success"), st.integers(0, 7)),
    st.builds(Op, st.just("failure"), st.integers(0, 7)),
    st.builds(Op, st.just("release"), st.integers(0, 7)),
    # Multiples of 1/8 s: sums stay exact in binary, so both stores see the same edges.
    st.builds(Op, st.just("advance"), st.just(0), st.integers(1, 24).map(lambda n: n / 8)),
    st.just(Op("snapshot")),
    st.builds(Op, st.just("force"), st.just(0), st.just(0.0), st.sampled_from(["open", "closed"])),
)


def seen(value: object) -> object:
    """What is compared between the stores: everything but the tokens' text."""
    if isinstance(value, Admission):
        retry_in = round(value.retry_in, 6)
        return (value.verdict, value.state, value.failures, retry_in, value.token is not None)
    if isinstance(value, BreakerSnapshot):
        opened = None if value.opened_at is None else round(value.opened_at, 6)
        return (value.state, value.failures, opened, round(value.retry_in, 6))
    return value


def run(store: BreakerStore, ops: list[Op]) -> list[object]:
    now = NOW
    pending: list[Admission] = []
    out: list[object] = []
    for op in ops:
        if op.kind == "admit":
            admission = admit(store, now)
            if admission.verdict != "rejected":
                pending.append(admission)
            out.append(seen(admission))
        elif op.kind == "advance":
            now += op.seconds
        elif op.kind == "snapshot":
            out.append(seen(store.snapshot(now=now, reset_timeout=RESET)))
        elif op.kind == "force":
            out.append(store.force(op.state, now=now))
        elif pending:
            out.append(report(store, op.kind, pending.pop(op.index % len(pending)), now))
    return out


def report(store: BreakerStore, kind: str, admission: Admission, now: float) -> object:
    """Record an admitted call's outcome, as the breaker does."""
    if kind == "release":
        store.release(admission)
        return "released"
    if kind == "failure":
        return store.record_failure(admission, now=now, fail_max=3)
    if admission.verdict == "closed" and not admission.failures:
        return "nothing to reset"  # the breaker does not call the store for this one
    return store.record_success(admission, now=now)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=st.lists(OPS, max_size=40))
def test_every_sequence_of_calls_gets_the_answers_of_the_memory_store(
    backend: RedisBackend, ops: list[Op]
):
    assert run(store_on(backend), ops) == run(_breaker.MemoryBreakerStore(), ops)


# -- shared, atomic, precise -------------------------------------------------------------------


def test_two_processes_naming_one_breaker_share_its_state(redis_url: str, namespace: str):
    # Two backends with their own connection pools stand for two processes here; the
    # tests in test_redis_processes.py use real ones.
    first, second = (RedisBackend(redis_url, namespace=namespace) for _ in range(2))
    a, b = store_on(first, "api"), store_on(second, "api")
    a.record_failure(admit(a, NOW), now=NOW, fail_max=2)
    assert admit(b, NOW).failures == 1
    transition = b.record_failure(admit(b, NOW), now=NOW, fail_max=2)
    assert transition == Transition("closed", "open", 2)
    assert admit(a, NOW + 0.5).verdict == "rejected"
    other = store_on(first, "another-api")
    assert admit(other, NOW + 0.5).verdict == "closed"


def test_failures_from_many_threads_are_all_counted(backend: RedisBackend):
    store = store_on(backend)
    barrier = threading.Barrier(8)

    def fail_many() -> None:
        barrier.wait()
        for _ in range(50):
            store.record_failure(admit(store, NOW), now=NOW, fail_max=10_000)

    threads = [threading.Thread(target=fail_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.snapshot(now=NOW, reset_timeout=RESET).failures == 400


def test_exactly_one_of_many_threads_gets_the_half_open_trial(redis_url: str, namespace: str):
    backends = [RedisBackend(redis_url, namespace=namespace) for _ in range(4)]
    stores = [store_on(b, "api") for b in backends]
    open_it(stores[0], NOW)
    barrier = threading.Barrier(16)
    verdicts: list[str] = []
    lock = threading.Lock()

    def try_it(store: RedisBreakerStore) -> None:
        barrier.wait()
        verdict = admit(store, NOW + RESET + 0.5).verdict
        with lock:
            verdicts.append(verdict)

    threads = [threading.Thread(target=try_it, args=(stores[n % 4],)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(verdicts) == ["rejected"] * 15 + ["trial"]


def test_a_trial_whose_holder_never_reports_is_given_again_after_its_lease(
    backend: RedisBackend,
):
    store = store_on(backend)
    open_it(store, NOW)
    half_open = NOW + RESET
    lost = admit(store, half_open, lease=5.0)
    assert lost.verdict == "trial"
    assert admit(store, half_open + 4.9).verdict == "rejected"
    taken_over = admit(store, half_open + 5.0)
    assert taken_over.verdict == "trial"
    # The first holder reporting late changes nothing: the lease is no longer its own.
    assert store.record_success(lost, now=half_open + 5.1) is None
    assert store.snapshot(now=half_open + 5.1, reset_timeout=RESET).state == "half-open"
    assert store.record_success(taken_over, now=half_open + 5.2) is not None
    assert store.snapshot(now=half_open + 5.2, reset_timeout=RESET).state == "closed"


def test_times_are_kept_to_the_microsecond(backend: RedisBackend, raw: redis.Redis):
    store = store_on(backend)
    opened = 1_700_000_000.123457
    store.force("open", now=opened)
    snapshot = store.snapshot(now=opened + 0.000250, reset_timeout=RESET)
    assert snapshot.opened_at == pytest.approx(opened, abs=1e-6)
    assert snapshot.retry_in == pytest.approx(RESET - 0.000250, abs=2e-6)
    assert raw.get(store.key) == b"open|0|1700000000123457||"
    # Half-open one millisecond after the reset timeout, not a second later.
    assert admit(store, opened + RESET - 0.001).verdict == "rejected"
    assert admit(store, opened + RESET + 0.001).verdict == "trial"


# -- cost --------------------------------------------------------------------------------------


def test_a_call_through_a_closed_breaker_costs_one_round_trip(
    redis_url: str, namespace: str, counting_client: CountingFactory
):
    client, log = counting_client(redis_url)
    backend = RedisBackend(client, namespace=namespace)
    call = rs.circuit_breaker(fail_max=3, storage=backend, name="api")(lambda: "ok")
    assert call() == "ok"  # connects: the handshake is not a call's cost
    log.take()
    for _ in range(20):
        assert call() == "ok"
    assert log.take() == ["GET"] * 20


def test_a_failure_costs_one_script_and_a_success_after_failures_one_more(
    redis_url: str, namespace: str, counting_client: CountingFactory
):
    client, log = counting_client(redis_url)
    store = store_on(RedisBackend(client, namespace=namespace))
    client.ping()
    log.take()
    admission = admit(store, NOW)
    store.record_failure(admission, now=NOW, fail_max=3)
    admission = admit(store, NOW)
    assert admission.failures == 1
    store.record_success(admission, now=NOW)
    assert log.take() == ["GET", "EVALSHA", "GET", "EVALSHA"]
    assert admit(store, NOW).failures == 0


def test_scripts_flushed_from_redis_are_loaded_again(backend: RedisBackend, raw: redis.Redis):
    store = store_on(backend)
    store.record_failure(admit(store, NOW), now=NOW, fail_max=3)
    raw.script_flush()
    store.record_failure(admit(store, NOW), now=NOW, fail_max=3)
    assert store.snapshot(now=NOW, reset_timeout=RESET).failures == 2


def test_a_value_it_cannot_read_makes_the_breaker_fall_back_not_fail(
    backend: RedisBackend, raw: redis.Redis
):
    store = store_on(backend)
    raw.set(store.key, b"written by something else")
    with capture_events(BackendUnavailable) as events:
        admission = admit(store, NOW)
    assert admission.verdict == "closed"
    [event] = events.of(BackendUnavailable)
    assert (event.layer, event.operation, event.error_type) == ("breaker", "admit", "ValueError")


# -- the policy on Redis ----------------------------------------------------------------------


def test_breakers_of_one_name_on_one_backend_trip_and_recover_together(backend: RedisBackend):
    clock = FakeClock()

    def down() -> str:
        raise ConnectionError("HTTP 503")

    def make() -> rs.CircuitBreaker:
        return rs.CircuitBreaker(
            fail_max=2, reset_timeout=30, name="api", storage=backend, clock=clock
        )

    here, there = make(), make()
    with pytest.raises(ConnectionError):
        here(down)()
    with pytest.raises(ConnectionError):
        there(down)()
    assert here.state == "open"
    with pytest.raises(rs.CircuitOpenError) as info:
        there(lambda: "never called")()
    assert info.value.retry_in == pytest.approx(30.0, abs=1e-3)
    clock.advance(30.0)
    assert here.state == "half-open"
    assert there(lambda: "trial")() == "trial"
    assert here.state == "closed"


def test_a_redis_url_as_storage_makes_a_redis_breaker(redis_url: str, raw: redis.Redis):
    name = f"url-{uuid.uuid4().hex[:8]}"
    try:
        breaker = rs.CircuitBreaker(fail_max=1, name=name, storage=redis_url)
        with pytest.raises(ConnectionError):
            breaker(_fail)()
        stored = raw.get(f"resilient_scan:breaker:{name}")
        assert isinstance(stored, bytes)
        assert stored.startswith(b"open|1|")
    finally:
        raw.delete(f"resilient_scan:breaker:{name}")


def _fail() -> None:
    raise ConnectionError("HTTP 503")


def test_open_and_close_by_an_operator_reach_every_process(backend: RedisBackend):
    clock = FakeClock()
    one = rs.CircuitBreaker(name="ops", storage=backend, clock=clock)
    two = rs.CircuitBreaker(name="ops", storage=backend, clock=clock)
    one.open()
    assert two.state == "open"
    two.close()
    assert one.state == "closed"


def test_a_breaker_on_redis_reports_every_state_change_as_one_in_memory_does(
    backend: RedisBackend,
):
    def changes(storage: object) -> list[tuple[str | None, str, int]]:
        clock = FakeClock()
        failing = [True]

        def call() -> str:
            if failing[0]:
                raise ConnectionError("down")
            return "up"

        guarded = rs.circuit_breaker(
            fail_max=2,
            reset_timeout=5,
            name=f"svc-{uuid.uuid4().hex}",
            storage=storage,
            clock=clock,
        )(call)
        with capture_events(BreakerStateChanged) as events:
            for _ in range(2):
                with pytest.raises(ConnectionError):
                    guarded()
            clock.advance(5)
            with pytest.raises(ConnectionError):
                guarded()  # the trial fails: open again
            clock.advance(5)
            failing[0] = False
            assert guarded() == "up"  # the next trial closes it
        return [(e.from_state, e.to_state, e.failures) for e in events.of(BreakerStateChanged)]

    expected = [
        ("closed", "open", 2),
        ("open", "half-open", 2),
        ("half-open", "open", 2),
        ("open", "half-open", 2),
        ("half-open", "closed", 2),
    ]
    assert changes(None) == expected
    assert changes(backend) == expected
