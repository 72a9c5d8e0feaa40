import math
import threading
from datetime import timedelta

import pytest

import resilient_scan as rs
from resilient_scan import _settings
from resilient_scan._settings import ExceptionMatcher
from resilient_scan.testing import FakeClock, capture_events


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 1.0),
        (0.25, 0.25),
        (timedelta(milliseconds=1500), 1.5),
        (threading.TIMEOUT_MAX, threading.TIMEOUT_MAX),
    ],
)
def test_seconds_accepts_numbers_and_timedeltas(value, expected):
    assert _settings.seconds(value, ("t",)) == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (True, "number of seconds"),
        ("5", "number of seconds"),
        (None, "number of seconds"),
        (math.nan, "finite"),
        (math.inf, "finite"),
        (2**1024, "finite"),
        (-1, "> 0"),
        (0, "> 0"),
        (1e10, "TIMEOUT_MAX"),
        (timedelta(days=200_000), "TIMEOUT_MAX"),
    ],
)
def test_seconds_rejects_what_a_wait_would_refuse_later(value, problem):
    with pytest.raises(rs.ConfigError, match=problem) as info:
        _settings.seconds(value, ("executor", "timeout_seconds"))
    assert info.value.path == ("executor", "timeout_seconds")
    assert info.value.key == "executor.timeout_seconds"


def test_zero_seconds_only_where_allowed():
    assert _settings.seconds(0, ("backoff",), allow_zero=True) == 0.0


@pytest.mark.parametrize("value", [True, 0.5, "3", 0, None])
def test_integer_names_the_key_and_the_value(value):
    with pytest.raises(rs.ConfigError) as info:
        _settings.integer(value, ("retry", "attempts"), minimum=1)
    assert info.value.key == "retry.attempts"
    assert repr(value) in str(info.value)


@pytest.mark.parametrize("value", [5, None, object(), "clock"])
def test_a_clock_must_have_the_three_readings(value):
    with pytest.raises(rs.ConfigError, match="clock") as info:
        _settings.clock(value, ("retry", "clock"))
    assert info.value.path == ("retry", "clock")


def test_a_fake_clock_is_a_clock():
    clock = FakeClock()
    assert _settings.clock(clock, ("clock",)) is clock


def test_an_unprintable_value_still_gets_a_message():
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    with pytest.raises(rs.ConfigError, match="<unprintable Hostile>"):
        _settings.integer(Hostile(), ("n",), minimum=1)


def test_reject_unknown_suggests_the_close_key():
    with pytest.raises(rs.ConfigError, match=r"did you mean 'max_workers'") as info:
        _settings.reject_unknown(
            {"max_worker": 3}, ["max_workers", "concurrent"], ("scanner_execution",)
        )
    assert info.value.path == ("scanner_execution", "max_worker")


def test_reject_typos_allows_foreign_keys_but_not_near_misses():
    _settings.reject_typos(
        {"llm_provider": "x", "scanners": {}}, ["scanners", "pipelines"], ("discovery",)
    )
    with pytest.raises(rs.ConfigError, match="did you mean 'pipelines'"):
        _settings.reject_typos({"pipeline": {}}, ["scanners", "pipelines"], ("discovery",))


def test_exception_matcher_from_types_and_tuples():
    matcher = ExceptionMatcher.build((KeyError, ValueError), ("retry", "on"))
    assert matcher.matches(KeyError("x"), if_broken=False)
    assert not matcher.matches(TypeError("x"), if_broken=False)


@pytest.mark.parametrize("value", ["ValueError", 5, (ValueError, "x"), int])
def test_exception_matcher_rejects_what_selects_nothing(value):
    with pytest.raises(rs.ConfigError):
        ExceptionMatcher.build(value, ("retry", "on"))


def test_a_predicate_that_raises_answers_the_fallback_and_notes_the_original():
    matcher = ExceptionMatcher.build(
        lambda exc: 400 <= exc.status < 500, ("circuit_breaker", "exclude", 0)
    )
    original = ConnectionError("refused")
    with capture_events() as events:
        assert matcher.matches(original, if_broken=True, function="quotes") is True
    notes = getattr(original, "__notes__", [])
    assert any("circuit_breaker.exclude[0] raised AttributeError" in note for note in notes)
    [failed] = events.named("policy.predicate_failed")
    assert failed.fields()["where"] == "circuit_breaker.exclude[0]"
    assert failed.fields()["original_error_type"] == "ConnectionError"
    assert failed.fields()["error_type"] == "AttributeError"


def test_a_policy_table_missing_a_required_setting_names_it():
    with pytest.raises(rs.ConfigError) as info:
        rs.resilient(cache={})
    assert info.value.path == ("resilient", "cache", "ttl")
    assert "missing" in info.value.problem


def test_config_error_paths_are_data_and_prefixable():
    error = rs.ConfigError(("scanners", "momentum", 0, "enabled"), "must be true or false")
    assert error.key == "scanners.momentum[0].enabled"
    outer = error.prefixed("discovery")
    assert outer.path == ("discovery", "scanners", "momentum", 0, "enabled")
    assert str(outer) == "discovery.scanners.momentum[0].enabled: must be true or false"
