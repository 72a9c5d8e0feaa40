"""The docs list every event the library emits, with its fields."""

import dataclasses
import re
from pathlib import Path

from resilient_scan.instrumentation import EVENT_TYPES

ROOT = Path(__file__).resolve().parents[2]


def documented_events() -> set[str]:
    text = (ROOT / "docs" / "logging.md").read_text(encoding="utf-8")
    return set(re.findall(r"\| `([a-z_]+\.[a-z_]+)` \|", text))


def test_the_event_registry_holds_the_events_every_layer_emits():
    # Guards the registry itself: these are emitted for sure.
    assert {"retry.scheduled", "timeout.fired", "scanner.finished"} <= set(EVENT_TYPES)
    for event_type in EVENT_TYPES.values():
        assert dataclasses.is_dataclass(event_type)


def test_every_event_is_documented():
    assert set(EVENT_TYPES) - documented_events() == set()
