"""ScanExecutor.from_config: the established config shape, and errors naming the key path."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import pytest

import resilient_scan as rs
from resilient_scan.instrumentation import ConfigUnmatched
from resilient_scan.testing import CapturedEvents, FakeClock
from tests.executor.support import Found, stalling, taking
from tests.helpers import Calls


def seed_config() -> dict[str, Any]:
    """The config shape users already have."""
    return {
        "discovery": {
            "scanner_execution": {"concurrent": True, "max_workers": 8, "timeout_seconds": 30},
            "scanners": {
                "insider_buying": {"enabled": True, "limit": 10},
                "market_movers": {"enabled": True},
            },
            "pipelines": {"momentum": {"enabled": True}},
        }
    }


def test_the_full_discovery_shape():
    executor = rs.ScanExecutor.from_config(seed_config())

    assert executor.concurrent is True
    assert executor.max_workers == 8
    assert executor.timeout_seconds == 30.0
    assert executor.deadline_seconds is None
    assert executor.scanners["insider_buying"]["limit"] == 10
    assert executor.pipelines["momentum"]["enabled"] is True


def test_just_the_scanner_execution_table():
    executor = rs.ScanExecutor.from_config(
        {
            "scanner_execution": {
                "concurrent": False,
                "max_workers": 2,
                "timeout_seconds": 1.5,
                "deadline_seconds": 10,
            }
        }
    )

    assert executor.concurrent is False
    assert executor.max_workers == 2
    assert executor.timeout_seconds == 1.5
    assert executor.deadline_seconds == 10.0


def test_missing_execution_settings_take_the_defaults():
    executor = rs.ScanExecutor.from_config({"discovery": {"scanners": {}}})

    assert executor == rs.ScanExecutor()


def test_from_config_does_not_change_the_config():
    config = seed_config()

    rs.ScanExecutor.from_config(config)

    assert config == seed_config()


def test_keyword_overrides_are_passed_on():
    def keep(item: object, scanner: str) -> dict[str, Any] | None:
        return {"ticker": "X"}

    executor = rs.ScanExecutor.from_config(seed_config(), normalize=keep)

    assert executor.normalize is keep


def test_durations_may_be_timedeltas():
    # The contract accepts a timedelta wherever a duration goes; it is stored as float seconds.
    executor = rs.ScanExecutor(timeout_seconds=timedelta(milliseconds=1500))

    assert executor.timeout_seconds == 1.5


# -- errors name the key path ----------------------------------------------------------------


def test_the_issues_example_message():
    config = seed_config()
    config["discovery"]["scanner_execution"]["max_workers"] = 0

    with pytest.raises(rs.ConfigError) as caught:
        rs.ScanExecutor.from_config(config)

    assert str(caught.value) == (
        "discovery.scanner_execution.max_workers: must be an integer >= 1, got 0"
    )
    assert caught.value.key == "discovery.scanner_execution.max_workers"
    assert isinstance(caught.value, ValueError)


BAD_EXECUTION_VALUES = [
    ("max_workers", 0),
    ("max_workers", -3),
    ("max_workers", "8"),
    ("max_workers", 2.5),
    ("max_workers", True),
    ("max_workers", None),
    ("timeout_seconds", 0),
    ("timeout_seconds", -1),
    ("timeout_seconds", "30"),
    ("timeout_seconds", math.nan),
    ("timeout_seconds", math.inf),
    ("timeout_seconds", True),
    ("concurrent", "yes"),
    ("concurrent", 1),
    ("concurrent", None),
    ("deadline_seconds", 0),
    ("deadline_seconds", "soon"),
]


@pytest.mark.parametrize(("key", "value"), BAD_EXECUTION_VALUES)
def test_bad_execution_values_name_the_full_key_path(key: str, value: object):
    config = seed_config()
    config["discovery"]["scanner_execution"][key] = value

    with pytest.raises(rs.ConfigError) as caught:
        rs.ScanExecutor.from_config(config)

    message = str(caught.value)
    assert message.startswith(f"discovery.scanner_execution.{key}: "), message
    assert repr(value) in message


@pytest.mark.parametrize(("key", "value"), BAD_EXECUTION_VALUES)
def test_bad_execution_values_in_the_short_shape(key: str, value: object):
    with pytest.raises(rs.ConfigError) as caught:
        rs.ScanExecutor.from_config({"scanner_execution": {key: value}})

    assert str(caught.value).startswith(f"scanner_execution.{key}: ")


@pytest.mark.parametrize(("key", "value"), BAD_EXECUTION_VALUES)
def test_bad_values_given_to_the_constructor_name_the_argument(key: str, value: object):
    arguments: dict[str, Any] = {key: value}
    with pytest.raises(rs.ConfigError) as caught:
        rs.ScanExecutor(**arguments)

    assert str(caught.value).startswith(f"{key}: ")


def test_an_unknown_execution_key_is_named():
    config = seed_config()
    config["discovery"]["scanner_execution"]["max_worker"] = 4

    with pytest.raises(rs.ConfigError) as caught:
        rs.ScanExecutor.from_config(config)

    message = str(caught.value)
    assert message.startswith("discovery.scanner_execution.max_worker: unknown key")
    assert "max_workers" in message


@pytest.mark.parametrize(
    ("section", "value", "path"),
    [
        ("scanners", {"insider_buying": {"enabled": "no"}}, "scanners.insider_buying.enabled"),
        ("scanners", {"insider_buying": {"enabled": 0}}, "scanners.insider_buying.enabled"),
        (
            "scanners",
            {"news": {"timeout_seconds": "fast"}},
            "scanners.news.timeout_seconds",
        ),
        ("scanners", {"news": {"timeout_seconds": -2}}, "scanners.news.timeout_seconds"),
        ("scanners", {"news": True}, "scanners.news"),
        ("scanners", ["news"], "scanners"),
        ("pipelines", {"momentum": {"enabled": "off"}}, "pipelines.momentum.enabled"),
        ("pipelines", {"momentum": None}, "pipelines.momentum"),
    ],
)
def test_bad_scanner_and_pipeline_settings_name_the_key(section: str, value: object, path: str):
    config = seed_config()
    config["discovery"][section] = value

    with pytest.raises(rs.ConfigError) as caught:
        rs.ScanExecutor.from_config(config)

    assert str(caught.value).startswith(f"discovery.{path}: "), str(caught.value)
    assert caught.value.key == f"discovery.{path}"


def test_bad_tables_are_named():
    with pytest.raises(rs.ConfigError, match=r"^discovery: "):
        rs.ScanExecutor.from_config({"discovery": 5})
    with pytest.raises(rs.ConfigError, match=r"^discovery\.scanner_execution: "):
        rs.ScanExecutor.from_config({"discovery": {"scanner_execution": [1]}})
    with pytest.raises(rs.ConfigError, match="discovery"):
        rs.ScanExecutor.from_config({"unrelated": {}})
    with pytest.raises(rs.ConfigError, match=r"^config: "):
        rs.ScanExecutor.from_config([("max_workers", 1)])  # type: ignore[arg-type]


# -- what the settings do --------------------------------------------------------------------


def test_a_scanner_disabled_in_config_is_skipped_and_never_called(calls: Calls):

    def insider_buying(state: Mapping[str, Any]) -> Found:
        calls.add()
        return []

    def market_movers(state: Mapping[str, Any]) -> Found:
        return [{"ticker": "AAPL"}]

    config = seed_config()
    config["discovery"]["scanners"]["insider_buying"]["enabled"] = False
    report = rs.ScanExecutor.from_config(config).run([insider_buying, market_movers], {})

    skipped = report.result("insider_buying")
    assert skipped.status == "skipped"
    assert skipped.reason is not None
    assert "scanners.insider_buying.enabled" in skipped.reason
    assert calls.count == 0
    assert report.result("market_movers").status == "ok"


def test_config_can_enable_a_scanner_that_its_decorator_disabled():
    @rs.scanner(enabled=False)
    def experimental(state: Mapping[str, Any]) -> Found:
        return [{"ticker": "NEW"}]

    off = rs.ScanExecutor().run([experimental], {})
    on = rs.ScanExecutor(scanners={"experimental": {"enabled": True}}).run([experimental], {})

    assert off.result("experimental").status == "skipped"
    assert on.result("experimental").status == "ok"


def test_a_disabled_pipeline_skips_its_scanners_only(calls: Calls):

    @rs.scanner(pipeline="momentum")
    def breakout(state: Mapping[str, Any]) -> Found:
        calls.add()
        return []

    @rs.scanner(pipeline="momentum")
    def gap_up(state: Mapping[str, Any]) -> Found:
        calls.add()
        return []

    @rs.scanner(pipeline="value")
    def cheap(state: Mapping[str, Any]) -> Found:
        return [{"ticker": "T"}]

    def unpiped(state: Mapping[str, Any]) -> Found:
        return []

    config = seed_config()
    config["discovery"]["pipelines"]["momentum"]["enabled"] = False
    report = rs.ScanExecutor.from_config(config).run([breakout, gap_up, cheap, unpiped], {})

    assert [r.status for r in report.results] == ["skipped", "skipped", "ok", "ok"]
    assert [r.pipeline for r in report.results] == ["momentum", "momentum", "value", None]
    assert calls.count == 0
    reason = report.result("breakout").reason
    assert reason is not None
    assert "momentum" in reason


def test_a_per_scanner_timeout_from_config_overrides_the_default(
    release: threading.Event, clock: FakeClock
):
    config = seed_config()
    config["discovery"]["scanner_execution"]["timeout_seconds"] = 0.25
    config["discovery"]["scanners"]["slow_but_allowed"] = {"timeout_seconds": 5}
    config["discovery"]["scanners"]["hung"] = {"timeout_seconds": 0.2}
    scanners = [taking("slow_but_allowed", clock, 0.5), stalling("hung", clock, 0.3, release)]

    report = rs.ScanExecutor.from_config(config, clock=clock).run(scanners, {})

    assert report.result("slow_but_allowed").status == "ok"
    hung = report.result("hung")
    assert hung.status == "timeout"
    assert hung.timeout_seconds == 0.2


def test_a_scanner_class_gets_its_settings_from_config():
    received: list[Mapping[str, Any]] = []

    class InsiderBuying:
        name = "insider_buying"

        def __init__(self, settings: Mapping[str, Any]) -> None:
            received.append(settings)
            self.limit = settings.get("limit", 5)

        def scan(self, state: Mapping[str, Any]) -> Found:
            return [{"ticker": f"T{i}"} for i in range(self.limit)]

    report = rs.ScanExecutor.from_config(seed_config()).run([InsiderBuying], {})

    assert report.result("insider_buying").status == "ok"
    assert len(report.result("insider_buying").candidates) == 10
    assert len(received) == 1
    assert received[0]["limit"] == 10
    assert received[0]["enabled"] is True


def test_settings_for_scanners_not_in_the_run_are_reported_and_change_nothing(
    events: CapturedEvents,
):
    def other(state: Mapping[str, Any]) -> Found:
        return []

    def insider_buyng(state: Mapping[str, Any]) -> Found:  # a typo of the configured name
        return []

    report = rs.ScanExecutor.from_config(seed_config()).run([other, insider_buyng], {})

    assert [r.status for r in report.results] == ["ok", "ok"]
    unmatched = {event.key: event for event in events.of(ConfigUnmatched)}
    assert set(unmatched) == {
        "discovery.scanners.insider_buying",
        "discovery.scanners.market_movers",
        "discovery.pipelines.momentum",
    }
    assert unmatched["discovery.scanners.insider_buying"].close_matches == ("insider_buyng",)
    assert unmatched["discovery.pipelines.momentum"].close_matches == ()
    assert all(event.severity == logging.WARNING for event in unmatched.values())


def test_unmatched_tables_can_be_listed_before_a_run():
    executor = rs.ScanExecutor(scanners={"market_mover": {}}, pipelines={"momentum": {}})

    @rs.scanner(pipeline="momentum")
    def market_movers(state: Mapping[str, Any]) -> Found:
        return []

    found = executor.unmatched([market_movers])

    assert [(event.key, event.close_matches) for event in found] == [
        ("scanners.market_mover", ("market_movers",))
    ]


# -- keyword overrides (issue 8.2) ------------------------------------------------------------


def test_keyword_overrides_win_over_the_config():
    executor = rs.ScanExecutor.from_config(seed_config(), timeout_seconds=12, max_workers=2)

    assert executor.timeout_seconds == 12.0
    assert executor.max_workers == 2
    assert executor.concurrent is True  # the rest still comes from the config


def test_a_bad_override_names_the_argument_not_the_config():
    with pytest.raises(rs.ConfigError) as caught:
        rs.ScanExecutor.from_config(seed_config(), timeout_seconds=-1)

    assert caught.value.path == ("timeout_seconds",)


def test_the_config_is_kept_for_scanner_classes():
    config = seed_config()

    assert rs.ScanExecutor.from_config(config).config is config
    assert rs.ScanExecutor.from_config(config, config=None).config is None


# -- typos (issue 7.11) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "path", "hint"),
    [
        (
            lambda d: d.update(scanner_executon={"max_workers": 2}),
            "discovery.scanner_executon",
            "scanner_execution",
        ),
        (
            lambda d: d.update(pipeline={"momentum": {"enabled": False}}),
            "discovery.pipeline",
            "pipelines",
        ),
        (lambda d: d.update(scanner={"x": {}}), "discovery.scanner", "scanners"),
        (
            lambda d: d["pipelines"]["momentum"].update(enable=False),
            "discovery.pipelines.momentum.enable",
            "enabled",
        ),
        (
            lambda d: d["scanners"]["insider_buying"].update(timeout_second=5),
            "discovery.scanners.insider_buying.timeout_second",
            "timeout_seconds",
        ),
    ],
)
def test_a_key_close_to_a_known_one_is_an_error_with_a_hint(
    change: Callable[[dict[str, Any]], None], path: str, hint: str
):
    config = seed_config()
    change(config["discovery"])

    with pytest.raises(rs.ConfigError, match=f"did you mean '{hint}'") as caught:
        rs.ScanExecutor.from_config(config)
    assert caught.value.key == path


def test_keys_of_the_application_are_left_alone():
    config = seed_config()
    config["discovery"].update(max_candidates_to_analyze=100, final_recommendations=3)
    config["discovery"]["scanners"]["insider_buying"].update(lookback_days=7)
    config["llm_provider"] = "openai"

    executor = rs.ScanExecutor.from_config(config)

    assert executor.scanners["insider_buying"]["lookback_days"] == 7
