"""The Redis cache store: TTL kept by Redis, a strict JSON codec, stable hashed keys, leases."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import math
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Hashable
from typing import Any

import cachetools.keys
import pytest
import redis

import resilient_scan as rs
from resilient_scan._storage import MISSING, SharedCacheStore
from resilient_scan.redis import JsonCodec, RedisBackend, RedisCacheStore, key_bytes, key_digest
from tests.integrations.conftest import CountingFactory


def cache_on(backend: RedisBackend, name: str | None = None) -> RedisCacheStore:
    return backend.cache_store(
        name or f"c-{uuid.uuid4().hex[:8]}", maxsize=100, clock=rs.SystemClock()
    )


class Color(enum.Enum):
    RED = 1


# -- values ------------------------------------------------------------------------------------


def test_a_stored_value_comes_back_equal_and_of_the_same_types(backend: RedisBackend):
    cache = cache_on(backend)
    value = [
        {"ticker": "AAPL", "price": 187.25, "volume": 10**15, "tags": ["a", "é"], "note": None},
        {"ticker": "MSFT", "ok": True, "nested": {"deep": [1, [2, [3.5]]]}},
    ]
    cache.set(("movers",), value, 60)
    got = cache.get(("movers",))
    assert got == value
    assert type(got[0]["price"]) is float
    assert type(got[0]["volume"]) is int
    assert got[1]["ok"] is True


def test_the_ttl_is_kept_by_redis(backend: RedisBackend, raw: redis.Redis):
    cache = cache_on(backend)
    cache.set("k", 1, 2.5)
    assert 2400 < raw.pttl(cache.value_key("k")) <= 2500
    cache.set("short", 1, 0.05)
    time.sleep(0.1)
    assert cache.get("short") is MISSING
    assert cache.get("k") == 1


@pytest.mark.parametrize(
    ("value", "where"),
    [
        (object(), "value is of type object"),
        ([1, (2, 3)], "value[1] is of type tuple"),
        ({"a": {1: "x"}}, "value['a'] has the key 1 of type int"),
        (
            {"when": dt.datetime(2025, 6, 13, tzinfo=dt.timezone.utc)},
            "value['when'] is of type datetime",
        ),
        ({"s": {1, 2}}, "value['s'] is of type set"),
        (b"bytes", "value is of type bytes"),
        (decimal.Decimal("1.5"), "value is of type Decimal"),
    ],
    ids=["object", "tuple", "int key", "datetime", "set", "bytes", "decimal"],
)
def test_a_value_json_cannot_keep_is_an_error_at_set_time_and_nothing_is_stored(
    backend: RedisBackend, raw: redis.Redis, value: Any, where: str
):
    cache = cache_on(backend)
    with pytest.raises(rs.CacheEncodeError, match=f"^cache '{cache.name}' cannot store") as info:
        cache.set("k", value, 60)
    assert where in info.value.problem
    assert raw.exists(cache.value_key("k")) == 0
    assert cache.get("k") is MISSING


def test_a_value_that_contains_itself_is_an_encode_error():
    looped: list[Any] = [1]
    looped.append(looped)
    with pytest.raises(ValueError, match=r"value\[1\] contains itself"):
        JsonCodec().encode(looped)


def test_an_entry_the_codec_cannot_read_is_a_store_failure_not_a_result(
    backend: RedisBackend, raw: redis.Redis
):
    cache = cache_on(backend)
    raw.set(cache.value_key("k"), b"\x80not json")
    with pytest.raises(ValueError, match="is not valid json"):
        cache.get("k")


def test_the_cache_policy_on_redis_calls_through_for_a_corrupt_entry_and_replaces_it(
    backend: RedisBackend, raw: redis.Redis, calls
):
    @rs.ttl_cache(ttl=60, storage=backend)
    def quote(ticker: str) -> dict[str, Any]:
        calls.add(ticker)
        return {"ticker": ticker}

    assert quote("AAPL") == {"ticker": "AAPL"}
    [key] = raw.scan_iter(match=f"{backend.namespace}:cache:*")
    raw.set(key, b"{broken")
    assert quote("AAPL") == {"ticker": "AAPL"}
    assert calls.count == 2
    assert quote("AAPL") == {"ticker": "AAPL"}
    assert calls.count == 2


# -- keys --------------------------------------------------------------------------------------


def test_keys_are_namespaced_and_hashed(backend: RedisBackend, raw: redis.Redis):
    cache = cache_on(backend, "fetch")
    cache.set(("AAPL", "1d"), 1, 60)
    [key] = raw.scan_iter(match=f"{backend.namespace}:*")
    prefix = f"{backend.namespace}:cache:fetch:v:"
    assert key.decode().startswith(prefix)
    digest = key.decode().removeprefix(prefix)
    assert len(digest) == 32
    assert int(digest, 16) >= 0
    assert "AAPL" not in key.decode()


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (1, 1.0),
        (1, True),
        ("1", 1),
        (("a", "b"), ("ab",)),
        (("a", ("b",)), (("a",), "b")),
        (b"x", "x"),
        (None, "None"),
        (frozenset({1}), (1,)),
        (Color.RED, 1),
    ],
)
def test_different_keys_get_different_digests(one: Hashable, other: Hashable):
    assert key_bytes(one) != key_bytes(other)
    assert key_digest(one) != key_digest(other)


def test_a_frozenset_key_has_one_digest_whatever_its_iteration_order():
    forward = frozenset(f"t{n}" for n in range(50))
    backward = frozenset(reversed([f"t{n}" for n in range(50)]))
    assert key_digest(forward) == key_digest(backward)


KEYS_FOR_SUBPROCESS = """
import datetime, decimal, enum, uuid
import cachetools.keys
from resilient_scan.redis import key_digest
print(key_digest(cachetools.keys.hashkey(
    "AAPL", 1.5, None, True, b"raw", frozenset({"x", "y", "z", "w"}),
    datetime.date(2025, 6, 13), decimal.Decimal("2.50"),
    uuid.UUID("12345678123456781234567812345678"), (1, (2, 3)), window="1d", depth=3,
)))
"""


def test_digests_are_the_same_in_processes_with_different_hash_seeds():
    here = key_digest(
        cachetools.keys.hashkey(
            "AAPL",
            1.5,
            None,
            True,
            b"raw",
            frozenset({"x", "y", "z", "w"}),
            dt.date(2025, 6, 13),
            decimal.Decimal("2.50"),
            uuid.UUID("12345678123456781234567812345678"),
            (1, (2, 3)),
            window="1d",
            depth=3,
        )
    )
    digests = {
        subprocess.run(  # noqa: S603 - our own interpreter and code
            [sys.executable, "-c", KEYS_FOR_SUBPROCESS],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2", "3")
    }
    assert digests == {here}


def test_a_key_with_no_stable_encoding_is_a_type_error_naming_its_type(backend: RedisBackend):
    cache = cache_on(backend)

    class Ticker:
        pass

    with pytest.raises(TypeError, match=r"of type .*Ticker has no stable encoding"):
        cache.get(("AAPL", Ticker()))


def test_the_cache_policy_tells_to_pass_key_for_such_arguments(backend: RedisBackend):
    class Ticker:
        pass

    @rs.ttl_cache(ttl=60, storage=backend)
    def quote(ticker: Ticker) -> int:
        return 1

    with pytest.raises(TypeError, match="pass key="):
        quote(Ticker())


def test_special_floats_are_keys_too():
    assert key_digest(math.nan) == key_digest(float("nan"))
    assert key_digest(math.inf) != key_digest(-math.inf)
    assert key_digest(0.0) != key_digest(-0.0)


# -- clear and len -----------------------------------------------------------------------------


def test_clear_removes_this_caches_entries_by_scan_and_nothing_else(
    redis_url: str, namespace: str, counting_client: CountingFactory, raw: redis.Redis
):
    client, log = counting_client(redis_url)
    backend = RedisBackend(client, namespace=namespace)
    mine, longer_name, other = (cache_on(backend, n) for n in ("f", "f:v:x", "g"))
    for n in range(2500):
        mine.set(n, n, 60)
    longer_name.set(1, 1, 60)
    other.set(1, 1, 60)
    lease = mine.lease("loading", 60)
    log.take()
    assert len(mine) == 2500
    mine.clear()
    assert len(mine) == 0
    sent = log.take()
    assert "KEYS" not in sent
    assert "SCAN" in sent
    assert "UNLINK" in sent
    assert len(longer_name) == 1
    assert other.get(1) == 1
    assert lease is not None
    assert raw.get(mine.lease_key("loading")) == lease.encode()


def test_len_counts_only_live_entries(backend: RedisBackend):
    cache = cache_on(backend)
    cache.set("stays", 1, 60)
    cache.set("goes", 1, 0.02)
    time.sleep(0.05)
    assert len(cache) == 1


def test_cache_info_of_the_policy_counts_the_entries_in_redis(backend: RedisBackend):
    @rs.ttl_cache(ttl=60, storage=backend)
    def double(n: int) -> int:
        return 2 * n

    for n in range(5):
        double(n)
    assert double.cache_info().currsize == 5
    double.cache_clear()
    assert double.cache_info().currsize == 0


# -- single flight between processes -----------------------------------------------------------


def test_the_store_is_a_shared_cache_store(backend: RedisBackend):
    assert isinstance(cache_on(backend), SharedCacheStore)


def test_one_lease_per_key_until_released_by_its_holder(redis_url: str, namespace: str):
    first, second = (cache_on(RedisBackend(redis_url, namespace=namespace), "f") for _ in range(2))
    token = first.lease("k", 10)
    assert token is not None
    assert second.lease("k", 10) is None
    assert first.lease("other", 10) is not None
    second.release("k", "r:not-the-holder")
    assert second.lease("k", 10) is None
    first.release("k", token)
    assert second.lease("k", 10) is not None


def test_no_lease_once_a_value_is_stored_so_a_late_miss_does_not_load_again(
    backend: RedisBackend,
):
    cache = cache_on(backend)
    # A caller missed; before it asks for the lease, another process loads and stores.
    assert cache.get("k") is MISSING
    loader = cache.lease("k", 10)
    assert loader is not None
    cache.set("k", "loaded", 60)
    cache.release("k", loader)
    assert cache.lease("k", 10) is None
    assert cache.wait_for("k", 5.0) == "loaded"


def test_a_lease_expires_if_its_holder_never_gives_it_back(backend: RedisBackend):
    cache = cache_on(backend)
    assert cache.lease("k", 0.05) is not None
    assert cache.lease("k", 0.05) is None
    time.sleep(0.1)
    assert cache.lease("k", 0.05) is not None


def test_wait_for_returns_the_value_another_process_stores(redis_url: str, namespace: str):
    loader, waiter = (cache_on(RedisBackend(redis_url, namespace=namespace), "f") for _ in range(2))
    token = loader.lease("k", 10)
    assert token is not None

    def load() -> None:
        time.sleep(0.1)
        loader.set("k", {"v": 1}, 60)
        loader.release("k", token)

    thread = threading.Thread(target=load)
    started = time.monotonic()
    thread.start()
    assert waiter.wait_for("k", 5.0) == {"v": 1}
    waited = time.monotonic() - started
    thread.join()
    assert 0.1 <= waited < 0.1 + 0.4  # polls at most 50 ms apart (and a busy machine)


def test_wait_for_gives_up_at_once_when_the_loader_gives_the_lease_back_empty(
    backend: RedisBackend,
):
    cache = cache_on(backend)
    token = cache.lease("k", 10)
    assert token is not None
    threading.Timer(0.05, cache.release, args=("k", token)).start()
    started = time.monotonic()
    assert cache.wait_for("k", 5.0) is MISSING
    assert time.monotonic() - started < 1.0  # of 5 s


def test_wait_for_is_bounded_by_its_timeout(backend: RedisBackend):
    cache = cache_on(backend)
    assert cache.lease("k", 10) is not None
    started = time.monotonic()
    assert cache.wait_for("k", 0.15) is MISSING
    assert 0.15 <= time.monotonic() - started < 0.6


def test_wait_for_without_a_lease_or_value_returns_missing_in_one_round_trip(
    redis_url: str, namespace: str, counting_client: CountingFactory
):
    client, log = counting_client(redis_url)
    cache = cache_on(RedisBackend(client, namespace=namespace))
    client.ping()
    log.take()
    assert cache.wait_for("k", 5.0) is MISSING
    assert log.take() == ["MGET"]


# -- clients as given --------------------------------------------------------------------------


def test_a_client_that_decodes_responses_works_too(redis_url: str, namespace: str):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    backend = RedisBackend(client, namespace=namespace)
    cache = cache_on(backend)
    cache.set("k", {"a": [1, "é"]}, 60)
    assert cache.get("k") == {"a": [1, "é"]}
    assert cache.lease("k", 10) is None  # stored already
    token = cache.lease("other", 10)
    assert token is not None
    cache.release("other", token)
    assert cache.lease("other", 10) is not None
    store = backend.breaker_store("api", rs.SystemClock())
    for _ in range(2):
        store.record_failure(
            store.admit(now=1e6, reset_timeout=1, trial_lease=5), now=1e6, fail_max=2
        )
    assert store.admit(now=1e6 + 2, reset_timeout=1, trial_lease=5).verdict == "trial"
    client.close()
