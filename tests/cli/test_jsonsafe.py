"""JSON that is always valid (RFC 8259), whatever scanners put in a report."""

from __future__ import annotations

import enum
import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from resilient_scan import ScanReport, ScanResult, ScanStatus
from resilient_scan._jsonsafe import MAX_DEPTH, dumps, plain


def strict(text: str) -> object:
    def refuse(constant: str) -> object:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")

    __repr__ = __str__


class Colour(enum.Enum):
    RED = "red"


def test_values_json_cannot_hold_become_null_or_placeholders():
    data: dict[object, object] = {
        "nan": float("nan"),
        "inf": float("-inf"),
        "big": 10**5000,
        "odd": Unprintable(),
        "ok": [1, 2.5, True, None, "text"],
    }
    data["self"] = data

    result = strict(dumps(data))

    assert result == {
        "nan": None,
        "inf": None,
        "big": "<integer of about 5001 digits>",
        "odd": "<unprintable Unprintable>",
        "ok": [1, 2.5, True, None, "text"],
        "self": "<circular reference to dict>",
    }


def test_a_shared_value_is_no_cycle():
    shared = [1, 2]

    assert plain({"a": shared, "b": shared}) == {"a": [1, 2], "b": [1, 2]}


def test_deep_nesting_is_cut_not_a_crash():
    deep: list[object] = []
    inner = deep
    for _ in range(5000):
        inner.append([])
        inner = inner[0]  # type: ignore[assignment]

    result = strict(dumps(deep, indent=None))

    depth = 0
    while isinstance(result, list):
        result = result[0]
        depth += 1
    assert depth == MAX_DEPTH
    assert result == f"<nested deeper than {MAX_DEPTH} levels>"


def test_common_python_values_get_their_natural_json():
    when = datetime(2025, 6, 13, 14, 30, tzinfo=timezone.utc)
    data = {
        "when": when,
        "day": date(2025, 6, 13),
        "took": timedelta(seconds=1.5),
        "tickers": {"NVDA", "AMD"},
        "pair": ("a", 1),
        "colour": Colour.RED,
        "raw": b"caf\xc3\xa9 \xff",
        "price": Decimal("131.20"),
        1: "one",
        "1": "uno",
        None: "none",
    }

    assert strict(dumps(data)) == {
        "when": "2025-06-13T14:30:00+00:00",
        "day": "2025-06-13",
        "took": 1.5,
        "tickers": ["AMD", "NVDA"],
        "pair": ["a", 1],
        "colour": "red",
        "raw": "café \\xff",
        "price": "131.20",
        "1": "one",
        "1#2": "uno",
        "null": "none",
    }


def test_control_characters_are_escaped_in_the_text():
    text = dumps({"context": "a\x1b[2J\x9bb\u2028c\n"}, indent=None)

    for raw in ("\x1b", "\x9b", "\u2028", "\n"):
        assert raw not in text
    assert strict(text) == {"context": "a\x1b[2J\x9bb\u2028c\n"}


def test_lone_surrogates_cannot_break_a_utf8_file():
    text = dumps({"name": "bad \ud800 text"})

    text.encode("utf-8")  # would raise for a lone surrogate
    assert strict(text) == {"name": "bad ? text"}


def test_ascii_only_for_streams_without_unicode():
    text = dumps({"mark": "✓ 😀"}, indent=None, ascii_only=True)

    assert text.isascii()
    assert strict(text) == {"mark": "✓ 😀"}


def test_a_report_with_odd_candidates_is_written_in_full():
    odd: dict[str, object] = {"ticker": "ODD", "score": float("nan"), "nasty": Unprintable()}
    odd["me"] = odd
    report = ScanReport(
        results=[ScanResult("odd", ScanStatus.OK, [odd])],
        candidates=[odd],
        tool_logs=[{"took": float("inf")}],
        duration=0.1,
        mode="concurrent",
        max_workers=8,
    )

    data = strict(report.to_json())

    assert isinstance(data, dict)
    assert data["candidates"][0]["score"] is None
    assert data["candidates"][0]["me"] == "<circular reference to dict>"
    assert data["results"][0]["candidates"][0]["nasty"] == "<unprintable Unprintable>"
    assert data["tool_logs"] == [{"took": None}]
