"""docs/observability.md lists every event (fields, level) and every metric (names, labels)."""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

import pytest

from resilient_scan import _metrics
from resilient_scan.instrumentation import EVENT_TYPES, Event

ROOT = Path(__file__).resolve().parents[2]
OBSERVABILITY = ROOT / "docs" / "observability.md"

# | `retry.scheduled` | warning | `function`, `attempt`, ... | meaning |
EVENT_ROW = re.compile(r"^\| `([a-z_]+\.[a-z_]+)` \| ([^|]+) \| ([^|]+) \|", re.MULTILINE)
# | `resilient_scan_calls_total` | `resilient_scan.calls` | counter | `function`, ... | ... |
METRIC_ROW = re.compile(
    r"^\| `(resilient_scan_[a-z_]+)` \| `(resilient_scan\.[a-z_.]+)` \| (\w+) \| ([^|]+) \|",
    re.MULTILINE,
)


def text() -> str:
    return OBSERVABILITY.read_text(encoding="utf-8")


def names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def documented_events() -> dict[str, tuple[str, list[str]]]:
    rows = EVENT_ROW.findall(text())
    found = {name: (level.strip(), names(fields)) for name, level, fields in rows}
    assert len(found) == len(rows), "an event is listed twice"
    return found


def expected_fields(event_type: type[Event]) -> list[str]:
    declared = [f.name for f in dataclasses.fields(event_type) if f.name != "exception"]
    # A run's status counts render as one field per status.
    return ["<status>_count" if name == "counts" else name for name in declared]


def test_the_event_registry_holds_the_events_every_layer_emits():
    # Guards the registry itself: these are emitted for sure.
    assert {"retry.scheduled", "timeout.fired", "scanner.finished"} <= set(EVENT_TYPES)
    for event_type in EVENT_TYPES.values():
        assert dataclasses.is_dataclass(event_type)


def test_every_event_is_documented_and_nothing_else():
    assert set(documented_events()) == set(EVENT_TYPES)


@pytest.mark.parametrize("name", sorted(EVENT_TYPES))
def test_each_event_is_documented_with_its_fields_in_order_and_its_level(name: str):
    event_type = EVENT_TYPES[name]
    level, fields = documented_events()[name]
    assert fields == expected_fields(event_type)
    assert level.split(";")[0] == logging.getLevelName(event_type.level).lower()


def documented_metrics() -> dict[str, tuple[str, str, list[str]]]:
    rows = METRIC_ROW.findall(text())
    found = {prom: (otel, kind, names(labels)) for prom, otel, kind, labels in rows}
    assert len(found) == len(rows), "a metric is listed twice"
    return found


def test_every_metric_is_documented_with_both_names_its_type_and_its_labels():
    expected = {
        metric.prometheus_name(): (metric.full_otel_name(), metric.kind, list(metric.labels))
        for metric in _metrics.METRICS
    }
    assert documented_metrics() == expected


def test_every_metric_event_is_documented_as_feeding_its_metric():
    rows = {
        line.split("|")[1].strip(" `"): line
        for line in text().splitlines()
        if line.startswith("| `resilient_scan_")
    }
    for metric in _metrics.METRICS:
        row = rows[metric.prometheus_name()]
        sources = metric.source if isinstance(metric.source, tuple) else ()
        for event_type in sources:
            assert f"`{event_type.name}`" in row.split("|")[5], (metric.name, event_type.name)
