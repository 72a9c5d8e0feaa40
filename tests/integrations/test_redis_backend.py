"""RedisBackend: what it accepts, how it is named, and what it costs to import and build."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
import redis
import redis.asyncio

import resilient_scan as rs
from resilient_scan._storage import backend_for
from resilient_scan.instrumentation import BackendUnavailable
from resilient_scan.redis import JsonCodec, RedisBackend
from resilient_scan.testing import capture_events


def test_the_backend_and_its_stores_keep_the_storage_protocols(redis_url: str):
    backend = RedisBackend(redis_url, namespace="protocols")
    clock = rs.SystemClock()
    assert isinstance(backend, rs.StorageBackend)
    assert isinstance(backend.breaker_store("b", clock), rs.BreakerStore)
    assert isinstance(backend.cache_store("c", maxsize=1, clock=clock), rs.CacheStore)
    assert isinstance(backend.rate_store("r", clock), rs.RateStore)


def test_a_url_or_a_client_given_as_storage_becomes_a_redis_backend(redis_url: str):
    client = redis.Redis.from_url(redis_url)
    for value in (redis_url, client):
        backend = backend_for(value)
        assert isinstance(backend, RedisBackend)
    assert backend_for(client).client is client  # type: ignore[union-attr]
    client.close()


def test_the_name_says_where_without_credentials():
    backend = RedisBackend("redis://scanner:s3cret@127.0.0.1:6390/3")
    assert backend.name == "redis://127.0.0.1:6390/3"
    assert "s3cret" not in repr(backend)
    assert RedisBackend("unix:///run/redis.sock?db=2").name == "unix:///run/redis.sock?db=2"


def test_nothing_connects_until_a_store_is_used():
    # Nothing listens on port 1: building backends, policies and stores must not notice.
    backend = RedisBackend("redis://127.0.0.1:1/0")
    with capture_events(BackendUnavailable) as events:
        rs.circuit_breaker(storage=backend, name="api")(lambda: 1)
        rs.ttl_cache(ttl=1, storage="redis://127.0.0.1:1/0")(lambda: 1)
        backend.breaker_store("api", rs.SystemClock())
    pool = backend.client.connection_pool
    assert pool._created_connections == 0
    assert events == []
    # ...and the first use does try (and falls back, reporting it once).
    store = backend.breaker_store("api", rs.SystemClock())
    with capture_events(BackendUnavailable) as events:
        store.admit(now=0.0, reset_timeout=1.0, trial_lease=1.0)
    assert len(events) == 1


@pytest.mark.parametrize(
    ("options", "path", "message"),
    [
        ({"namespace": ""}, ("redis", "namespace"), "non-empty string"),
        ({"timeout": 0}, ("redis", "timeout"), "> 0 seconds"),
        ({"timeout": "fast"}, ("redis", "timeout"), "number of seconds"),
        ({"probe_interval": -1}, ("redis", "probe_interval"), "> 0 seconds"),
        ({"rate_limit_fallback": "maybe"}, ("redis", "rate_limit_fallback"), "'open', 'closed'"),
        ({"codec": "json"}, ("redis", "codec"), "encode() and decode()"),
        ({"clock": object()}, ("redis", "clock"), "monotonic()"),
    ],
)
def test_a_bad_option_is_a_config_error_naming_it(
    options: dict[str, Any], path: tuple[str, ...], message: str
):
    with pytest.raises(rs.ConfigError, match=re.escape(message)) as info:
        RedisBackend("redis://127.0.0.1:1/0", **options)
    assert info.value.path == path


@pytest.mark.parametrize(
    ("client", "message"),
    [
        ("http://127.0.0.1:6379", "must be a redis://, rediss:// or unix:// URL"),
        (redis.asyncio.Redis(), "redis.asyncio.client.Redis"),
        (42, "builtins.int"),
    ],
    ids=["scheme", "asyncio client", "number"],
)
def test_a_client_that_is_not_a_url_or_a_sync_client_is_a_config_error(client: Any, message: str):
    with pytest.raises(rs.ConfigError, match=re.escape(message)) as info:
        RedisBackend(client)
    assert info.value.path == ("redis", "client")


def test_a_custom_codec_is_used_for_values(redis_url: str, namespace: str):
    class Upper:
        name = "upper"

        def encode(self, value: Any) -> bytes:
            return str(value).upper().encode()

        def decode(self, data: bytes) -> Any:
            return data.decode()

    cache = RedisBackend(redis_url, namespace=namespace, codec=Upper()).cache_store(
        "f", maxsize=1, clock=rs.SystemClock()
    )
    cache.set("k", "quiet", 60)
    assert cache.get("k") == "QUIET"
    assert repr(JsonCodec()) == "JsonCodec()"


def test_importing_resilient_scan_does_not_import_redis():
    code = "import sys, resilient_scan; print('redis' in sys.modules)"
    out = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_close_leaves_a_client_passed_in_open(redis_url: str):
    client = redis.Redis.from_url(redis_url)
    RedisBackend(client).close()
    assert client.ping()
    client.close()
