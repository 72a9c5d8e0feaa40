"""Scanners: functions, @rs.scanner with @rs.resilient, objects, classes; and the registry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

import resilient_scan as rs
from tests.helpers import Calls

Found = list[dict[str, Any]]


def run_one(item: Any, **executor: Any) -> rs.ScanResult:
    (result,) = rs.ScanExecutor(**executor).run([item], {}).results
    return result


# -- shapes -----------------------------------------------------------------------------------


def test_a_plain_function_is_named_by_its_name():
    def market_movers(state: Mapping[str, Any]) -> Found:
        return [{"ticker": "AAPL"}]

    result = run_one(market_movers)

    assert result.name == "market_movers"
    assert result.pipeline is None
    assert result.candidates[0]["source"] == "market_movers"


def test_the_scanner_decorator_names_and_places_a_function():
    @rs.scanner(name="insider", pipeline="smart_money")
    def insider_buying(state: Mapping[str, Any]) -> Found:
        return [{"ticker": "MSFT"}]

    result = run_one(insider_buying)

    assert result.name == "insider"
    assert result.pipeline == "smart_money"
    assert result.candidates[0]["source"] == "insider"
    assert insider_buying.__name__ == "insider_buying"
    assert insider_buying({}) == [{"ticker": "MSFT"}], "it is still callable as before"


def test_the_bare_scanner_decorator():
    @rs.scanner
    def bare(state: Mapping[str, Any]) -> Found:
        return []

    assert run_one(bare).name == "bare"


def test_scanner_enabled_false_is_skipped():
    calls = Calls()

    @rs.scanner(name="off", enabled=False)
    def off(state: Mapping[str, Any]) -> Found:
        calls.bump()
        return []

    assert run_one(off).status == "skipped"
    assert calls.count == 0


def test_scanner_above_resilient():
    failures = Calls()

    @rs.scanner(name="above", pipeline="news")
    @rs.resilient(retry={"attempts": 3, "backoff": 0.01, "on": ConnectionError}, timeout=5.0)
    def fetch(state: Mapping[str, Any]) -> Found:
        if failures.count == 0:
            failures.bump()
            raise ConnectionError("reset")
        return [{"ticker": "NEWS"}]

    with rs.testing.no_waits():
        result = run_one(fetch)

    assert (result.name, result.pipeline, result.status) == ("above", "news", "ok")
    assert result.retries == 1
    assert result.candidates[0]["ticker"] == "NEWS"


def test_scanner_below_resilient():
    failures = Calls()

    @rs.resilient(retry={"attempts": 3, "backoff": 0.01, "on": ConnectionError}, timeout=5.0)
    @rs.scanner(name="below", pipeline="news")
    def fetch(state: Mapping[str, Any]) -> Found:
        if failures.count == 0:
            failures.bump()
            raise ConnectionError("reset")
        return [{"ticker": "NEWS"}]

    with rs.testing.no_waits():
        result = run_one(fetch)

    assert (result.name, result.pipeline, result.status) == ("below", "news", "ok")
    assert result.retries == 1


def test_scanner_below_resilient_keeps_enabled_false():
    calls = Calls()

    @rs.resilient(timeout=5.0)
    @rs.scanner(name="off_below", enabled=False)
    def fetch(state: Mapping[str, Any]) -> Found:
        calls.bump()
        return []

    assert run_one(fetch).status == "skipped"
    assert calls.count == 0


def test_an_object_with_a_name_and_a_scan_method():
    class NewsScanner:
        def __init__(self, name: str) -> None:
            self.name = name
            self.pipeline = "news"
            self.calls = 0

        def scan(self, state: Mapping[str, Any]) -> Found:
            self.calls += 1
            return [{"ticker": state["ticker"]}]

    reuters, bloomberg = NewsScanner("reuters"), NewsScanner("bloomberg")
    report = rs.ScanExecutor().run([reuters, bloomberg], {"ticker": "aapl"})

    assert [(r.name, r.pipeline, r.status) for r in report.results] == [
        ("reuters", "news", "ok"),
        ("bloomberg", "news", "ok"),
    ]
    assert reuters.calls == bloomberg.calls == 1
    assert report.candidates[0]["all_sources"] == ["reuters", "bloomberg"]
    assert isinstance(reuters, rs.ScannerObject)


def test_an_object_without_a_string_name_is_rejected_before_anything_runs():
    class Nameless:
        name = None

        def scan(self, state: Mapping[str, Any]) -> Found:
            return []

    items: list[Any] = [Nameless()]
    with pytest.raises(rs.ConfigError, match="name"):
        rs.ScanExecutor().run(items, {})


def test_a_scanner_class_is_built_with_its_settings_when_it_runs():
    built: list[Mapping[str, Any]] = []

    class InsiderBuying:
        name = "insider_buying"
        pipeline = "smart_money"

        def __init__(self, settings: Mapping[str, Any]) -> None:
            built.append(settings)
            self.limit = settings["limit"]

        def scan(self, state: Mapping[str, Any]) -> Found:
            return [{"ticker": f"T{i:02d}"} for i in range(self.limit)]

    executor = rs.ScanExecutor.from_config(
        {"discovery": {"scanners": {"insider_buying": {"enabled": True, "limit": 10}}}}
    )
    assert built == [], "not built before it runs"
    result = executor.run([InsiderBuying], {}).result("insider_buying")

    assert result.status == "ok"
    assert result.pipeline == "smart_money"
    assert len(result.candidates) == 10
    assert [s["limit"] for s in built] == [10]


def test_a_scanner_class_without_constructor_arguments():
    class Simple:
        def scan(self, state: Mapping[str, Any]) -> Found:
            return [{"ticker": "S"}]

    result = run_one(Simple)

    assert result.name == "Simple"
    assert result.status == "ok"


def test_a_class_without_a_scan_method_is_rejected():
    class NotAScanner:
        name = "nope"

    with pytest.raises(rs.ConfigError, match="scan"):
        rs.ScanExecutor().run([NotAScanner], {})


@pytest.mark.parametrize("item", [42, "market_movers", None])
def test_things_that_are_not_scanners_are_rejected(item: object):
    with pytest.raises(rs.ConfigError):
        rs.ScanExecutor().run([item], {})  # type: ignore[list-item]


# -- duplicate names in one run ----------------------------------------------------------------


def test_two_scanners_with_one_name_are_rejected_before_anything_runs():
    calls = Calls()

    @rs.scanner(name="movers")
    def first(state: Mapping[str, Any]) -> Found:
        calls.bump()
        return []

    @rs.scanner(name="movers")
    def second(state: Mapping[str, Any]) -> Found:
        calls.bump()
        return []

    def before(state: Mapping[str, Any]) -> Found:
        calls.bump()
        return []

    with pytest.raises(rs.ConfigError, match="movers"):
        rs.ScanExecutor().run([before, first, second], {})
    assert calls.count == 0


def test_a_function_and_an_object_with_one_name_clash():
    calls = Calls()

    def news(state: Mapping[str, Any]) -> Found:
        calls.bump()
        return []

    class News:
        name = "news"

        def scan(self, state: Mapping[str, Any]) -> Found:
            calls.bump()
            return []

    with pytest.raises(rs.ConfigError, match="news"):
        rs.ScanExecutor(concurrent=False).run([news, News()], {})
    assert calls.count == 0


def test_the_same_scanner_twice_in_one_run_is_rejected():
    def twice(state: Mapping[str, Any]) -> Found:
        return []

    with pytest.raises(rs.ConfigError, match="twice"):
        rs.ScanExecutor().run([twice, twice], {})


def test_bad_scanner_decorator_arguments():
    with pytest.raises(rs.ConfigError, match="name"):
        rs.scanner(name="  ")(lambda state: [])
    with pytest.raises(rs.ConfigError, match="pipeline"):
        rs.scanner(pipeline=3)(lambda state: [])  # type: ignore[call-overload]
    with pytest.raises(rs.ConfigError, match="enabled"):
        rs.scanner(enabled="yes")(lambda state: [])  # type: ignore[call-overload]


# -- the registry ----------------------------------------------------------------------------


def test_register_as_decorator_and_as_call():
    registry = rs.ScannerRegistry()

    @registry.register
    def movers(state: Mapping[str, Any]) -> Found:
        return []

    @registry.register(name="insider", pipeline="smart_money")
    def insider_buying(state: Mapping[str, Any]) -> Found:
        return []

    class Social:
        name = "social"
        pipeline = "sentiment"

        def scan(self, state: Mapping[str, Any]) -> Found:
            return []

    social = Social()
    assert registry.register(social) is social

    assert registry.names() == ["movers", "insider", "social"]
    assert len(registry) == 3
    assert "insider" in registry
    assert "insider_buying" not in registry
    assert registry.get("movers") is movers
    assert registry.get("insider") is insider_buying
    assert registry.get("social") is social
    assert list(registry) == [movers, insider_buying, social]
    assert registry.pipelines() == ["smart_money", "sentiment"]


def test_register_returns_the_function_usable_as_before():
    registry = rs.ScannerRegistry()

    @registry.register(name="named")
    def plain(state: Mapping[str, Any]) -> Found:
        return [{"ticker": "X"}]

    assert plain({}) == [{"ticker": "X"}]


def test_by_pipeline():
    registry = rs.ScannerRegistry()

    @registry.register(pipeline="momentum")
    def breakout(state: Mapping[str, Any]) -> Found:
        return []

    @registry.register(pipeline="value")
    def cheap(state: Mapping[str, Any]) -> Found:
        return []

    @registry.register(pipeline="momentum")
    def gap_up(state: Mapping[str, Any]) -> Found:
        return []

    @registry.register
    def loose(state: Mapping[str, Any]) -> Found:
        return []

    assert registry.by_pipeline("momentum") == [breakout, gap_up]
    assert registry.by_pipeline("value") == [cheap]
    assert registry.by_pipeline(None) == [loose]
    assert registry.by_pipeline("unknown") == []

    report = rs.ScanExecutor().run(registry.by_pipeline("momentum"), {})
    assert [r.name for r in report.results] == ["breakout", "gap_up"]


def test_get_of_an_unknown_name_lists_the_known_ones():
    registry = rs.ScannerRegistry()

    @registry.register
    def movers(state: Mapping[str, Any]) -> Found:
        return []

    with pytest.raises(KeyError, match="movers"):
        registry.get("news")


def test_a_duplicate_name_in_the_registry_is_rejected_and_the_first_kept():
    registry = rs.ScannerRegistry()

    @registry.register(name="movers")
    def first(state: Mapping[str, Any]) -> Found:
        return []

    def second(state: Mapping[str, Any]) -> Found:
        return []

    with pytest.raises(rs.ConfigError, match="movers"):
        registry.register(name="movers")(second)

    class Movers:
        name = "movers"

        def scan(self, state: Mapping[str, Any]) -> Found:
            return []

    with pytest.raises(rs.ConfigError, match="movers"):
        registry.register(Movers)
    assert registry.get("movers") is first
    assert len(registry) == 1


def test_registering_something_that_is_not_a_scanner_is_rejected():
    registry = rs.ScannerRegistry()

    with pytest.raises(rs.ConfigError):
        registry.register(42)
    assert len(registry) == 0


def test_a_registered_scanner_class_is_built_only_when_enabled():
    built = Calls()
    registry = rs.ScannerRegistry()

    @registry.register
    class Expensive:
        name = "expensive"

        def __init__(self, settings: Mapping[str, Any]) -> None:
            built.bump()

        def scan(self, state: Mapping[str, Any]) -> Found:
            return []

    off = rs.ScanExecutor(scanners={"expensive": {"enabled": False}}).run(registry, {})
    assert off.result("expensive").status == "skipped"
    assert built.value == 0

    on = rs.ScanExecutor().run(registry, {})
    assert on.result("expensive").status == "ok"
    assert built.value == 1


class NamedScanner:
    name = "named"

    def scan(self, state: Mapping[str, Any]) -> list[dict[str, Any]]:
        return []


def test_scanner_decorates_functions_only():
    with pytest.raises(rs.ConfigError, match="scanner class or object"):
        rs.scanner(name="x")(NamedScanner)
    with pytest.raises(rs.ConfigError, match="scanner class or object"):
        rs.scanner(name="x")(NamedScanner())  # type: ignore[type-var]


def test_registering_a_class_or_object_under_another_name_is_an_error():
    registry = rs.ScannerRegistry()
    with pytest.raises(rs.ConfigError, match="name"):
        registry.register(NamedScanner, name="renamed")  # type: ignore[call-overload]
    with pytest.raises(rs.ConfigError, match="name"):
        registry.register(NamedScanner(), pipeline="momentum")  # type: ignore[call-overload]
    registry.register(NamedScanner)  # its own name is fine
    assert registry.names() == ["named"]


def test_a_bad_pipeline_attribute_on_a_scanner_class_names_the_class():
    class Movers:
        @property
        def pipeline(self) -> str:  # on the class, a property object: not a string
            return "momentum"

        def scan(self, state: Any) -> list[Any]:
            return []

    with pytest.raises(rs.ConfigError) as caught:
        rs.ScanExecutor().run([Movers])

    assert caught.value.path == ("scanners", "Movers", "pipeline")
    assert "must be a string or None" in str(caught.value)
