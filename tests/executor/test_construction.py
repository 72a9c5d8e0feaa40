"""How scanner classes are built (issue 8.1): the construction rule, the hook, scan_method."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

import resilient_scan as rs
from tests.executor.support import Found

# The seed system's shape: one config dict for the whole application.
APP_CONFIG: dict[str, Any] = {
    "llm_provider": "openai",
    "discovery": {
        "scanner_execution": {"max_workers": 4, "timeout_seconds": 5},
        "scanners": {
            "earnings": {"enabled": True, "max_days_until_earnings": 7, "limit": 4},
            "insider": {"limit": 2, "min_value": 50_000},
        },
    },
}


class SeedBase:
    """As the seed's BaseScanner: the whole config in, its own table read by the class."""

    name = ""
    pipeline = "events"

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        own = config.get("discovery", {}).get("scanners", {}).get(self.name, {})
        self.limit = own.get("limit", 10)
        self.window = own.get("max_days_until_earnings", 3)


class Earnings(SeedBase):
    name = "earnings"

    def scan(self, state: Mapping[str, Any]) -> Found:
        days = {"NVDA": 2, "CRM": 5, "ORCL": 6, "MSFT": 12, "IBM": 1, "KO": 4}
        inside = [t for t, d in days.items() if d <= self.window]
        return [{"ticker": t, "context": f"window {self.window}"} for t in inside][: self.limit]


def test_a_seed_class_gets_the_whole_application_config_and_its_own_settings():
    report = rs.ScanExecutor.from_config(APP_CONFIG).run([Earnings])

    result = report.result("earnings")
    assert result.status == "ok"
    # Its settings, not the class defaults (a window of 3 and a limit of 10).
    assert [c["ticker"] for c in result.candidates] == ["NVDA", "CRM", "ORCL", "IBM"]
    assert {c["context"] for c in result.candidates} == {"window 7"}


def test_the_config_given_is_the_config_the_class_sees():
    seen: list[Any] = []

    class Looks(SeedBase):
        name = "looks"

        def __init__(self, config: dict[str, Any]) -> None:
            super().__init__(config)
            seen.append(config)

        def scan(self, state: Mapping[str, Any]) -> Found:
            return []

    rs.ScanExecutor.from_config(APP_CONFIG).run([Looks])

    assert seen == [APP_CONFIG]
    assert seen[0] is APP_CONFIG


def test_a_class_wanting_the_application_config_without_one_is_a_config_error(calls: Any):
    class Counted(SeedBase):
        name = "counted"

        def scan(self, state: Mapping[str, Any]) -> Found:
            calls.add()
            return []

    with pytest.raises(rs.ConfigError, match="Counted") as caught:
        rs.ScanExecutor().run([Counted, Earnings])
    assert "application config" in str(caught.value)
    assert caught.value.path == ("scanners", "counted")
    assert calls.count == 0  # raised before anything ran


def test_config_given_directly_reaches_the_class():
    report = rs.ScanExecutor(config=APP_CONFIG).run([Earnings])

    assert len(report.result("earnings").candidates) == 4


def test_a_settings_parameter_gets_the_scanners_own_table():
    received: list[Mapping[str, Any]] = []

    class Own:
        name = "insider"

        def __init__(self, settings: Mapping[str, Any]) -> None:
            received.append(settings)

        def scan(self, state: Mapping[str, Any]) -> Found:
            return []

    rs.ScanExecutor.from_config(APP_CONFIG).run([Own])

    assert received == [{"limit": 2, "min_value": 50_000}]


def test_keyword_only_parameters_are_filled_from_the_table():
    class Keywords:
        name = "insider"

        def __init__(
            self, *, limit: int, min_value: float = 25_000.0, verbose: bool = False
        ) -> None:
            self.settings = (limit, min_value, verbose)

        def scan(self, state: Mapping[str, Any]) -> Found:
            return [{"ticker": "K", "context": repr(self.settings)}]

    result = rs.ScanExecutor.from_config(APP_CONFIG).run([Keywords]).result("insider")

    assert result.candidates[0]["context"] == "(2, 50000, False)"


def test_a_required_keyword_missing_from_the_table_is_a_config_error():
    class Needs:
        name = "insider"

        def __init__(self, *, api_key: str) -> None:
            self.api_key = api_key

        def scan(self, state: Mapping[str, Any]) -> Found:
            return []

    with pytest.raises(rs.ConfigError, match="Needs") as caught:
        rs.ScanExecutor.from_config(APP_CONFIG).run([Needs])
    assert caught.value.path == ("scanners", "insider", "api_key")


def test_a_misspelt_keyword_is_a_config_error_with_a_hint():
    class Limited:
        name = "limited"

        def __init__(self, *, limit: int = 10) -> None:
            self.limit = limit

        def scan(self, state: Mapping[str, Any]) -> Found:
            return []

    executor = rs.ScanExecutor(scanners={"limited": {"limt": 4}})
    with pytest.raises(rs.ConfigError, match="did you mean 'limit'"):
        executor.run([Limited])


def test_kwargs_take_the_tables_other_keys():
    class Rest:
        name = "insider"

        def __init__(self, **options: Any) -> None:
            self.options = options

        def scan(self, state: Mapping[str, Any]) -> Found:
            return [{"ticker": "R", "context": repr(sorted(self.options))}]

    result = rs.ScanExecutor.from_config(APP_CONFIG).run([Rest]).result("insider")

    assert result.candidates[0]["context"] == "['limit', 'min_value']"


def test_two_positional_parameters_are_a_config_error_naming_the_class():
    class Ambiguous:
        name = "ambiguous"

        def __init__(self, config: Any, client: Any) -> None:
            pass

        def scan(self, state: Mapping[str, Any]) -> Found:
            return []

    with pytest.raises(rs.ConfigError, match="Ambiguous takes 2 positional parameters"):
        rs.ScanExecutor(config=APP_CONFIG).run([Ambiguous])


def test_a_disabled_class_is_neither_checked_nor_built():
    class Broken:
        name = "broken"

        def __init__(self, a: Any, b: Any) -> None:
            raise AssertionError("never built")

        def scan(self, state: Mapping[str, Any]) -> Found:
            return []

    report = rs.ScanExecutor(scanners={"broken": {"enabled": False}}).run([Broken])

    assert report.result("broken").status == "skipped"


def test_a_construct_hook_builds_every_class():
    built: list[tuple[str, Any, Any]] = []

    class Client:
        pass

    client = Client()

    class NeedsClient:
        name = "insider"

        def __init__(self, client: Client, limit: int) -> None:
            self.client, self.limit = client, limit

        def scan(self, state: Mapping[str, Any]) -> Found:
            return [{"ticker": f"T{i}"} for i in range(self.limit)]

    def construct(cls: type[Any], settings: Mapping[str, Any], config: Any) -> Any:
        built.append((cls.__name__, dict(settings), config is APP_CONFIG))
        return cls(client, settings["limit"])

    report = rs.ScanExecutor.from_config(APP_CONFIG, construct=construct).run([NeedsClient])

    assert len(report.result("insider").candidates) == 2
    assert built == [("NeedsClient", {"limit": 2, "min_value": 50_000}, True)]


class AddsItsBenchmark:
    """Changes what it was given: the next run and the caller must not see it."""

    name = "watch"

    def __init__(self, settings: dict[str, Any], *, tickers: list[str]) -> None:
        settings["tickers"].append("SPY")
        tickers.append("QQQ")
        self.tickers = list(tickers)

    def scan(self, state: Mapping[str, Any]) -> Found:
        return [{"ticker": t} for t in self.tickers]


def test_a_constructor_that_changes_its_settings_changes_neither_the_next_run_nor_the_caller():
    config = {"discovery": {"scanners": {"watch": {"tickers": ["AAPL"]}}}}
    executor = rs.ScanExecutor.from_config(config)

    for _ in range(3):
        report = executor.run([AddsItsBenchmark])
        # One view of its table per build: the two names reach one list, as in a plain dict.
        assert [c["ticker"] for c in report.result("watch").candidates] == ["AAPL", "SPY", "QQQ"]
    assert config == {"discovery": {"scanners": {"watch": {"tickers": ["AAPL"]}}}}


# -- scan_method ----------------------------------------------------------------------------


class Validating(SeedBase):
    """As the seed: scan() may return junk, scan_with_validation() filters (and swallows)."""

    name = "validating"

    def scan(self, state: Mapping[str, Any]) -> Found:
        return [{"ticker": "GOOD", "source": "v", "context": "c", "priority": "low"}, {"bad": 1}]

    def scan_with_validation(self, state: Mapping[str, Any]) -> Found:
        return [c for c in self.scan(state) if "ticker" in c]


def test_scan_with_validation_is_called_where_a_class_has_it():
    def plain(state: Mapping[str, Any]) -> Found:
        return [{"ticker": "P"}]

    executor = rs.ScanExecutor(config=APP_CONFIG, scan_method=["scan_with_validation", "scan"])
    report = executor.run([Validating, Earnings, plain])

    assert report.result("validating").dropped == 0  # the class filtered it itself
    assert [c["ticker"] for c in report.result("validating").candidates] == ["GOOD"]
    assert report.result("earnings").status == "ok"  # no such method: scan()
    assert report.result("plain").status == "ok"  # functions are called as they are


def test_by_default_scan_is_called():
    report = rs.ScanExecutor(config=APP_CONFIG).run([Validating])

    assert report.result("validating").dropped == 1


def test_scan_method_from_the_config_file():
    config = {"discovery": {"scanner_execution": {"scan_method": "scan_with_validation"}}}

    report = rs.ScanExecutor.from_config(config).run([Validating])

    assert report.result("validating").dropped == 0


class OnlyValidating(SeedBase):
    """A class with no scan() at all, called through its own table's scan_method."""

    name = "only_validating"

    def scan_with_validation(self, state: Mapping[str, Any]) -> Found:
        return [{"ticker": "VAL"}]


def test_a_class_with_only_its_own_tables_scan_method_is_a_scanner():
    executor = rs.ScanExecutor(
        config=APP_CONFIG, scanners={"only_validating": {"scan_method": "scan_with_validation"}}
    )

    assert executor.scan_methods() == ("scan", "scan_with_validation")
    report = executor.run([OnlyValidating, Earnings])
    assert [c["ticker"] for c in report.result("only_validating").candidates] == ["VAL"]
    assert report.result("earnings").status == "ok"  # still called through scan()


def test_a_per_scanner_scan_method_that_does_not_exist_is_a_config_error():
    executor = rs.ScanExecutor(config=APP_CONFIG, scanners={"earnings": {"scan_method": "run"}})

    with pytest.raises(rs.ConfigError, match=r"has no run\(\) method") as caught:
        executor.run([Earnings])
    assert caught.value.path == ("scanners", "earnings", "scan_method")


def test_scan_method_must_name_methods():
    with pytest.raises(rs.ConfigError) as caught:
        rs.ScanExecutor(scan_method="not a name")
    assert caught.value.path == ("scan_method",)
