"""Bad settings raise rs.ConfigError when the policy is built, naming the argument and value."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import resilient_scan as rs

BAD_SETTINGS: list[tuple[str, Callable[[], object], str, object]] = [
    # (id, build the policy, argument named in the message, bad value)
    ("timeout zero", lambda: rs.timeout(0), "seconds", 0),
    ("timeout negative", lambda: rs.timeout(-1.5), "seconds", -1.5),
    ("timeout zero timedelta", lambda: rs.timeout(timedelta(0)), "seconds", timedelta(0)),
    ("timeout bool", lambda: rs.timeout(True), "seconds", True),
    ("retry attempts zero", lambda: rs.retry(attempts=0), "attempts", 0),
    ("retry attempts bool", lambda: rs.retry(attempts=True), "attempts", True),
    ("retry backoff negative", lambda: rs.retry(backoff=-0.5), "backoff", -0.5),
    ("retry backoff bool", lambda: rs.retry(backoff=True), "backoff", True),
    ("retry max_backoff negative", lambda: rs.retry(max_backoff=-1), "max_backoff", -1),
    (
        "retry max_backoff below backoff",
        lambda: rs.retry(backoff=2, max_backoff=1),
        "max_backoff",
        1,
    ),
    ("retry total zero", lambda: rs.retry(total=0), "total", 0),
    ("retry total negative", lambda: rs.retry(total=-3), "total", -3),
    ("retry on not a filter", lambda: rs.retry(on=42), "on", 42),  # type: ignore[arg-type]
    ("retry on a non-exception class", lambda: rs.retry(on=int), "on", int),  # type: ignore[arg-type]
    ("cache ttl zero", lambda: rs.ttl_cache(ttl=0), "ttl", 0),
    ("cache ttl negative", lambda: rs.ttl_cache(ttl=-60), "ttl", -60),
    ("cache ttl bool", lambda: rs.ttl_cache(ttl=True), "ttl", True),
    ("cache maxsize zero", lambda: rs.ttl_cache(ttl=1, maxsize=0), "maxsize", 0),
    ("cache maxsize bool", lambda: rs.ttl_cache(ttl=1, maxsize=True), "maxsize", True),
    ("breaker fail_max zero", lambda: rs.circuit_breaker(fail_max=0), "fail_max", 0),
    ("breaker fail_max bool", lambda: rs.circuit_breaker(fail_max=True), "fail_max", True),
    ("breaker reset zero", lambda: rs.circuit_breaker(reset_timeout=0), "reset_timeout", 0),
    ("breaker reset negative", lambda: rs.circuit_breaker(reset_timeout=-5), "reset_timeout", -5),
    ("breaker reset bool", lambda: rs.circuit_breaker(reset_timeout=True), "reset_timeout", True),
    ("breaker exclude not a filter", lambda: rs.circuit_breaker(exclude=(42,)), "exclude", 42),  # type: ignore[arg-type]
    (
        "breaker exclude a non-exception class",
        lambda: rs.circuit_breaker(exclude=(str,)),  # type: ignore[arg-type]
        "exclude",
        str,
    ),
    ("CircuitBreaker fail_max zero", lambda: rs.CircuitBreaker(fail_max=0), "fail_max", 0),
    ("timeout past TIMEOUT_MAX", lambda: rs.timeout(1e10), "seconds", 1e10),
    ("retry clock a number", lambda: rs.retry(clock=5), "clock", 5),  # type: ignore[arg-type]
    ("retry clock None", lambda: rs.retry(clock=None), "clock", None),  # type: ignore[arg-type]
    ("breaker clock None", lambda: rs.circuit_breaker(clock=None), "clock", None),  # type: ignore[arg-type]
    ("CircuitBreaker clock", lambda: rs.CircuitBreaker(clock=5), "clock", 5),  # type: ignore[arg-type]
    ("breaker storage a dict", lambda: rs.circuit_breaker(storage={}), "storage", {}),
    ("rate_limit rate zero", lambda: rs.rate_limit(0), "rate", 0),
    ("rate_limit burst zero", lambda: rs.rate_limit(1, burst=0), "burst", 0),
    ("rate_limit clock None", lambda: rs.rate_limit(1, clock=None), "clock", None),  # type: ignore[arg-type]
    ("resilient retry attempts", lambda: rs.resilient(retry={"attempts": 0}), "attempts", 0),
    ("resilient cache negative", lambda: rs.resilient(cache=-1), "cache", -1),
    ("resilient timeout zero", lambda: rs.resilient(timeout=0), "timeout", 0),
]


@pytest.mark.parametrize(
    ("build", "argument", "value"),
    [case[1:] for case in BAD_SETTINGS],
    ids=[case[0] for case in BAD_SETTINGS],
)
def test_a_bad_setting_raises_config_error_naming_the_argument_and_value(
    build: Callable[[], object], argument: str, value: object
):
    with pytest.raises(rs.ConfigError) as info:
        build()
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert argument in message
    assert repr(value) in message


def _not_callable() -> Any:
    return 42


NOT_CALLABLE_DECORATORS: list[tuple[str, Callable[[], Callable[[Any], object]]]] = [
    ("timeout", lambda: rs.timeout(1)),
    ("retry", rs.retry),
    ("ttl_cache", lambda: rs.ttl_cache(ttl=1)),
    ("circuit_breaker", rs.circuit_breaker),
    ("rate_limit", lambda: rs.rate_limit(1)),
    ("CircuitBreaker", rs.CircuitBreaker),
    ("resilient", lambda: rs.resilient(timeout=1)),
]


@pytest.mark.parametrize(
    ("name", "make_decorator"), NOT_CALLABLE_DECORATORS, ids=[c[0] for c in NOT_CALLABLE_DECORATORS]
)
def test_decorating_something_not_callable_raises_config_error_at_decoration_time(
    name: str, make_decorator: Callable[[], Callable[[Any], object]]
):
    decorator = make_decorator()
    with pytest.raises(rs.ConfigError) as info:
        decorator(_not_callable())
    assert isinstance(info.value, ValueError)

    def normalized(text: str) -> str:
        return text.lower().replace("_", "")

    assert normalized(name) in normalized(str(info.value))
    assert "42" in str(info.value)


async def _async_hook(*args: Any, **kwargs: Any) -> bool:
    return True


#: As code without type checking passes it (a type checker refuses it already).
ASYNC_HOOK: Any = _async_hook


@pytest.mark.parametrize(
    ("build", "key"),
    [
        (lambda: rs.ttl_cache(ttl=60, key=ASYNC_HOOK), "ttl_cache.key"),
        (lambda: rs.rate_limit(10, key=ASYNC_HOOK), "rate_limit.key"),
        (lambda: rs.retry(on=ASYNC_HOOK), "retry.on"),
        (lambda: rs.circuit_breaker(exclude=ASYNC_HOOK), "circuit_breaker.exclude"),
        (lambda: rs.ScanExecutor(normalize=ASYNC_HOOK), "normalize"),
        (lambda: rs.ScanExecutor(merge=ASYNC_HOOK), "merge"),
        (lambda: rs.fan_out(ASYNC_HOOK, [1]), "fan_out.func"),
    ],
    ids=["cache key", "rate key", "retry on", "breaker exclude", "normalize", "merge", "fan_out"],
)
def test_a_coroutine_function_where_a_plain_one_is_called_is_a_config_error(
    build: Callable[[], object], key: str
):
    # Called without await, it would hand back a coroutine: never equal, always true.
    with pytest.raises(rs.ConfigError, match="not a coroutine function") as caught:
        build()
    assert caught.value.key.startswith(key)
