"""Candidates: normalized, invalid ones dropped, merged the same way whatever the timing."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import resilient_scan as rs

Found = list[dict[str, Any]]


# -- normalization ----------------------------------------------------------------------------


def test_a_candidate_is_normalized():
    normalized = rs.normalize_candidate({"ticker": "  aapl \n", "volume": 3}, "market_movers")

    assert normalized == {
        "ticker": "AAPL",
        "source": "market_movers",
        "context": "",
        "priority": "unknown",
        "volume": 3,
    }


def test_given_fields_are_kept():
    raw = {"ticker": "msft", "source": "sec_form4", "context": "CEO bought", "priority": "high"}

    normalized = rs.normalize_candidate(raw, "insider_buying")

    assert normalized == {**raw, "ticker": "MSFT"}
    assert raw["ticker"] == "msft", "the scanner's dict is not changed"


@pytest.mark.parametrize("priority", [None, "urgent", "", 3, "unknown"])
def test_a_missing_or_unknown_priority_becomes_unknown(priority: object):
    raw: dict[str, Any] = {"ticker": "X"}
    if priority is not None:
        raw["priority"] = priority

    normalized = rs.normalize_candidate(raw, "s")

    assert normalized is not None
    assert normalized["priority"] == "unknown"


@pytest.mark.parametrize("priority", rs.PRIORITIES)
def test_known_priorities_are_kept(priority: str):
    normalized = rs.normalize_candidate({"ticker": "X", "priority": priority}, "s")

    assert normalized is not None
    assert normalized["priority"] == priority


def test_priorities_rank_from_critical_to_unknown():
    assert rs.PRIORITIES == ("critical", "high", "medium", "low", "unknown")


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "AAPL",
        42,
        ["AAPL"],
        ("ticker", "AAPL"),
        {},
        {"ticker": None},
        {"ticker": ""},
        {"ticker": "   "},
        {"ticker": 123},
        {"ticker": b"AAPL"},
        {"ticker": ["AAPL"]},
        {"context": "no ticker at all"},
    ],
    ids=repr,
)
def test_invalid_candidates_are_none(raw: object):
    assert rs.normalize_candidate(raw, "s") is None


def test_invalid_candidates_are_dropped_and_counted_per_scanner():
    def sloppy(state: Mapping[str, Any]) -> list[Any]:
        return [
            {"ticker": " aapl "},
            None,
            "MSFT",
            {"ticker": ""},
            {"ticker": 7},
            {"priority": "high"},
            {"ticker": "nvda", "priority": "critical"},
        ]

    def clean(state: Mapping[str, Any]) -> Found:
        return [{"ticker": "IBM"}]

    report = rs.ScanExecutor().run([sloppy, clean], {})

    assert report.result("sloppy").status == "ok"
    assert report.result("sloppy").dropped == 5
    assert [c["ticker"] for c in report.result("sloppy").candidates] == ["AAPL", "NVDA"]
    assert report.result("clean").dropped == 0
    assert report.dropped == 5
    assert [c["ticker"] for c in report.candidates] == ["NVDA", "AAPL", "IBM"]


def test_a_scanner_whose_candidates_are_all_invalid_is_still_ok():
    def junk(state: Mapping[str, Any]) -> list[Any]:
        return [None, 1, "x"]

    result = rs.ScanExecutor().run([junk], {}).result("junk")

    assert result.status == "ok"
    assert result.candidates == []
    assert result.dropped == 3


# -- merging ----------------------------------------------------------------------------------


def found(name: str, *candidates: dict[str, Any]) -> rs.ScanResult:
    normalized = [rs.normalize_candidate(c, name) for c in candidates]
    return rs.ScanResult(
        name=name, status=rs.ScanStatus.OK, candidates=[c for c in normalized if c is not None]
    )


def test_one_candidate_per_ticker_with_every_source_in_scanner_order():
    merged = rs.merge_candidates(
        [
            found("news", {"ticker": "AAPL", "context": "headline"}),
            found("movers", {"ticker": "aapl", "context": "gap up"}, {"ticker": "MSFT"}),
            found("insider", {"ticker": "AAPL ", "context": "headline"}),
        ]
    )

    by_ticker = {c["ticker"]: c for c in merged}
    assert len(merged) == 2
    assert by_ticker["AAPL"]["all_sources"] == ["news", "movers", "insider"]
    assert by_ticker["AAPL"]["all_contexts"] == ["headline", "gap up"]
    assert by_ticker["MSFT"]["all_sources"] == ["movers"]


def test_the_best_priority_wins_with_its_source_context_and_extras():
    merged = rs.merge_candidates(
        [
            found("movers", {"ticker": "AAPL", "priority": "low", "context": "up 1%", "pct": 1}),
            found(
                "insider",
                {
                    "ticker": "AAPL",
                    "priority": "critical",
                    "context": "CEO bought $5M",
                    "source": "sec_form4",
                    "amount": 5_000_000,
                },
            ),
            found("news", {"ticker": "AAPL", "priority": "high", "context": "upgrade"}),
        ]
    )

    (aapl,) = merged
    assert aapl["priority"] == "critical"
    assert aapl["source"] == "sec_form4"
    assert aapl["context"] == "CEO bought $5M"
    assert aapl["amount"] == 5_000_000
    assert "pct" not in aapl
    assert aapl["all_sources"] == ["movers", "insider", "news"]


def test_a_tie_goes_to_the_earliest_scanner():
    merged = rs.merge_candidates(
        [
            found("first", {"ticker": "AAPL", "priority": "high", "context": "from first"}),
            found("second", {"ticker": "AAPL", "priority": "high", "context": "from second"}),
        ]
    )

    assert merged[0]["source"] == "first"
    assert merged[0]["context"] == "from first"


def test_a_scanner_listing_one_ticker_twice_is_one_source():
    merged = rs.merge_candidates(
        [
            found(
                "dup", {"ticker": "AAPL", "priority": "low"}, {"ticker": "aapl", "priority": "high"}
            )
        ]
    )

    (aapl,) = merged
    assert aapl["all_sources"] == ["dup"]
    assert aapl["priority"] == "high"


def test_merged_candidates_are_ordered_by_priority_then_ticker():
    merged = rs.merge_candidates(
        [
            found(
                "s",
                {"ticker": "ZZZ", "priority": "critical"},
                {"ticker": "BBB"},
                {"ticker": "AAA", "priority": "low"},
                {"ticker": "CCC", "priority": "critical"},
                {"ticker": "MMM", "priority": "medium"},
                {"ticker": "HHH", "priority": "high"},
                {"ticker": "AAB"},
            )
        ]
    )

    assert [(c["priority"], c["ticker"]) for c in merged] == [
        ("critical", "CCC"),
        ("critical", "ZZZ"),
        ("high", "HHH"),
        ("medium", "MMM"),
        ("low", "AAA"),
        ("unknown", "AAB"),
        ("unknown", "BBB"),
    ]


candidate_lists = st.lists(
    st.lists(
        st.fixed_dictionaries(
            {
                "ticker": st.sampled_from(["aapl", "MSFT", " nvda", "ibm ", "Tsla"]),
                "priority": st.sampled_from([*rs.PRIORITIES, "bogus"]),
                "context": st.sampled_from(["", "a", "b"]),
            }
        ),
        max_size=6,
    ),
    max_size=5,
)


@settings(max_examples=100, deadline=None)
@given(candidate_lists)
def test_merge_invariants(per_scanner: list[list[dict[str, Any]]]):
    results = [found(f"s{i}", *cands) for i, cands in enumerate(per_scanner)]
    rank = {p: r for r, p in enumerate(rs.PRIORITIES)}

    merged = rs.merge_candidates(results)

    tickers = [c["ticker"] for c in merged]
    assert len(tickers) == len(set(tickers))
    assert merged == sorted(merged, key=lambda c: (rank[c["priority"]], c["ticker"]))
    for candidate in merged:
        finders = [
            r.name for r in results if any(c["ticker"] == candidate["ticker"] for c in r.candidates)
        ]
        assert candidate["all_sources"] == finders
        every = [c for r in results for c in r.candidates if c["ticker"] == candidate["ticker"]]
        best = min(rank[c["priority"]] for c in every)
        winner = next(c for c in every if rank[c["priority"]] == best)
        assert candidate["priority"] == winner["priority"]
        assert candidate["source"] == winner["source"]
        assert candidate["context"] == winner["context"]


# -- the same answer every time --------------------------------------------------------------


FINDINGS: dict[str, list[Any]] = {
    "market_movers": [
        {"ticker": "aapl", "priority": "medium", "context": "up 4%"},
        {"ticker": "TSLA", "priority": "low", "context": "volume"},
    ],
    "insider_buying": [
        {"ticker": "AAPL", "priority": "high", "context": "CEO bought", "amount": 1},
        {"ticker": "nvda", "priority": "high", "context": "director bought"},
    ],
    "news": [
        {"ticker": "nvda", "priority": "high", "context": "upgrade", "outlet": "wire"},
        {"ticker": "tsla", "priority": "critical", "context": "recall"},
        {"ticker": "IBM"},
    ],
    "social": [
        {"ticker": "AAPL", "priority": "high", "context": "trending"},
        {"ticker": "GME", "priority": "medium"},
        {"ticker": "tsla", "priority": "critical", "context": "viral"},
    ],
    "options_flow": [
        {"ticker": "GME", "priority": "medium", "context": "calls"},
        {"ticker": "IBM", "priority": "bogus"},
        "not a candidate",
    ],
    "earnings": [{"ticker": "MSFT", "priority": "low"}, {"ticker": "aapl", "context": "beat"}],
}


def delayed(name: str, delay: float) -> Any:
    @rs.scanner(name=name)
    def scan(state: Mapping[str, Any]) -> list[Any]:
        time.sleep(delay)
        return [dict(c) if isinstance(c, dict) else c for c in FINDINGS[name]]

    return scan


def test_merged_candidates_are_identical_over_concurrent_runs_and_sequential():
    names = list(FINDINGS)
    sequential = rs.ScanExecutor(concurrent=False).run([delayed(n, 0.0) for n in names], {})
    expected = sequential.candidates

    rng = random.Random(20240611)
    orders: set[tuple[str, ...]] = set()
    for _ in range(8):
        delays = {name: rng.uniform(0.0, 0.01) for name in names}
        report = rs.ScanExecutor(max_workers=len(names)).run(
            [delayed(n, delays[n]) for n in names], {}
        )
        assert report.candidates == expected
        assert [r.name for r in report.results] == names
        orders.add(tuple(sorted(names, key=delays.__getitem__)))

    assert len(orders) > 1, "the random latencies never changed the finishing order"

    by_ticker = {c["ticker"]: c for c in expected}
    assert by_ticker["AAPL"]["all_sources"] == [
        "market_movers",
        "insider_buying",
        "social",
        "earnings",
    ]
    assert by_ticker["AAPL"]["source"] == "insider_buying"
    assert by_ticker["AAPL"]["amount"] == 1
    assert by_ticker["TSLA"]["source"] == "news"
    assert by_ticker["TSLA"]["context"] == "recall"
    assert by_ticker["NVDA"]["source"] == "insider_buying"
    assert by_ticker["IBM"]["priority"] == "unknown"
    assert [c["ticker"] for c in expected] == ["TSLA", "AAPL", "NVDA", "GME", "MSFT", "IBM"]


def test_the_first_scanner_finishing_last_changes_nothing():
    names = list(FINDINGS)
    # Earliest in scanner order is slowest: finishing order is the reverse of scanner order.
    slow_first = [delayed(n, 0.01 * (len(names) - i)) for i, n in enumerate(names)]
    fast_first = [delayed(n, 0.0) for n in names]

    reversed_finish = rs.ScanExecutor(max_workers=len(names)).run(slow_first, {})
    in_order = rs.ScanExecutor(concurrent=False).run(fast_first, {})

    assert reversed_finish.candidates == in_order.candidates


# -- hooks ------------------------------------------------------------------------------------


def test_a_normalize_hook_replaces_the_default():
    calls: list[tuple[object, str]] = []

    def by_symbol(item: object, scanner: str) -> dict[str, Any] | None:
        calls.append((item, scanner))
        if isinstance(item, dict) and isinstance(item.get("symbol"), str):
            return {"ticker": item["symbol"], "source": scanner, "priority": "high"}
        return None

    def other_shape(state: Mapping[str, Any]) -> list[Any]:
        return [{"symbol": "aapl"}, {"ticker": "MSFT"}]

    report = rs.ScanExecutor(normalize=by_symbol).run([other_shape], {})

    result = report.result("other_shape")
    assert result.status == "ok"
    assert result.candidates == [{"ticker": "aapl", "source": "other_shape", "priority": "high"}]
    assert result.dropped == 1
    assert calls == [({"symbol": "aapl"}, "other_shape"), ({"ticker": "MSFT"}, "other_shape")]


def test_a_merge_hook_replaces_the_default():
    seen: list[list[str]] = []

    def keep_all(results: Sequence[rs.ScanResult]) -> list[dict[str, Any]]:
        seen.append([r.name for r in results])
        return [c for r in results for c in r.candidates]

    def first(state: Mapping[str, Any]) -> Found:
        time.sleep(0.02)
        return [{"ticker": "AAPL"}]

    def second(state: Mapping[str, Any]) -> Found:
        return [{"ticker": "AAPL"}]

    report = rs.ScanExecutor(merge=keep_all).run([first, second], {})

    assert seen == [["first", "second"]]
    assert [(c["ticker"], c["source"]) for c in report.candidates] == [
        ("AAPL", "first"),
        ("AAPL", "second"),
    ]


def test_a_normalize_hook_that_raises_drops_that_candidate_only():
    def picky(item: object, scanner: str) -> dict[str, Any] | None:
        assert isinstance(item, dict)
        if item["ticker"] == "BAD":
            raise ValueError("unexpected shape")
        return dict(item)

    def some(state: Mapping[str, Any]) -> Found:
        return [{"ticker": "A"}, {"ticker": "BAD"}, {"ticker": "C"}]

    result = rs.ScanExecutor(normalize=picky).run([some], {}).result("some")

    assert result.status == "ok"
    assert [c["ticker"] for c in result.candidates] == ["A", "C"]
    assert result.dropped == 1


def test_hooks_must_be_callable():
    with pytest.raises(rs.ConfigError, match="normalize"):
        rs.ScanExecutor(normalize="nope")  # type: ignore[arg-type]
    with pytest.raises(rs.ConfigError, match="merge"):
        rs.ScanExecutor(merge=42)  # type: ignore[arg-type]
