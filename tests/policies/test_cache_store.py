"""rs.MemoryCacheStore: lock-free reads, TTL on the store's clock, CLOCK eviction."""

from __future__ import annotations

import threading

import resilient_scan as rs
from resilient_scan._storage import MISSING
from resilient_scan.testing import FakeClock


def test_a_stored_value_is_read_back_until_its_ttl_passes(clock: FakeClock):
    store = rs.MemoryCacheStore(ttl=60, maxsize=4, clock=clock)
    store.set("AAPL", 196.5, 10)
    assert store.get("AAPL") == 196.5
    clock.advance(9.9)
    assert store.get("AAPL") == 196.5
    clock.advance(0.1)
    assert store.get("AAPL") is MISSING
    assert len(store) == 0


def test_the_store_ttl_caps_the_ttl_of_each_entry(clock: FakeClock):
    store = rs.MemoryCacheStore(ttl=5, maxsize=4, clock=clock)
    store.set("AAPL", 1, 60)
    clock.advance(5)
    assert store.get("AAPL") is MISSING


def test_a_none_value_is_stored_and_told_apart_from_a_missing_one(clock: FakeClock):
    store = rs.MemoryCacheStore(ttl=60, maxsize=4, clock=clock)
    store.set("nothing", None, 60)
    assert store.get("nothing") is None
    assert store.get("other") is MISSING


def test_an_entry_read_since_the_last_sweep_survives_eviction(clock: FakeClock):
    store = rs.MemoryCacheStore(ttl=60, maxsize=3, clock=clock)
    for key in "abc":
        store.set(key, key.upper(), 60)
    store.get("a")
    store.set("d", "D", 60)  # full: a was read (second chance), b was not: b goes
    assert [store.get(key) for key in "abcd"] == ["A", MISSING, "C", "D"]
    store.set("e", "E", 60)  # c, d, a were all read just now: one round, then the oldest
    assert [store.get(key) for key in "acde"] == ["A", MISSING, "D", "E"]


def test_an_expired_entry_is_evicted_before_any_live_one(clock: FakeClock):
    store = rs.MemoryCacheStore(ttl=60, maxsize=2, clock=clock)
    store.set("short", 1, 1)
    store.set("long", 2, 60)
    store.get("short")
    clock.advance(2)
    store.set("new", 3, 60)
    assert store.get("long") == 2
    assert store.get("new") == 3


def test_storing_an_existing_key_replaces_it_without_evicting(clock: FakeClock):
    store = rs.MemoryCacheStore(ttl=60, maxsize=2, clock=clock)
    store.set("a", 1, 60)
    store.set("b", 2, 60)
    store.set("a", 10, 60)
    assert (store.get("a"), store.get("b"), len(store)) == (10, 2, 2)


def test_clear_removes_everything(clock: FakeClock):
    store = rs.MemoryCacheStore(ttl=60, maxsize=4, clock=clock)
    store.set("a", 1, 60)
    store.clear()
    assert store.get("a") is MISSING
    assert len(store) == 0
    store.set("a", 2, 60)
    assert store.get("a") == 2


def test_many_threads_reading_and_writing_never_exceed_maxsize_or_see_a_wrong_value():
    store = rs.MemoryCacheStore(ttl=60, maxsize=50)
    errors: list[str] = []
    start_together = threading.Barrier(8)

    def work(worker: int) -> None:
        start_together.wait(timeout=5)
        for round_number in range(2000):
            key = (worker * 7 + round_number) % 120
            store.set(key, key * 2, 60)
            value = store.get((key + 3) % 120)
            if value is not MISSING and value != ((key + 3) % 120) * 2:
                errors.append(f"{key}: {value}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(store) <= 50
    assert len(store._entries) == len(store._ring) <= 50
