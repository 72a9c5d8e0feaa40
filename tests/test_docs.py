"""The docs list every log event the library emits."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# An event name is a dotted lower-case string passed first to a log call.
EVENT = re.compile(r'(?:log\.\w+|emit|\.(?:info|warning|debug|error))\(\s*"([a-z_]+\.[a-z_]+)"')


def emitted_events() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "resilient_scan").glob("*.py"):
        names.update(EVENT.findall(path.read_text(encoding="utf-8")))
    return names


def test_the_library_emits_the_events_the_docs_are_about():
    # Guards the pattern itself: these are emitted for sure.
    assert {"retry.scheduled", "timeout.fired", "scanner.finished"} <= emitted_events()


def test_every_emitted_event_is_documented():
    documented = set(
        re.findall(r"\| `([a-z_]+\.[a-z_]+)` \|", (ROOT / "docs" / "logging.md").read_text())
    )
    assert emitted_events() - documented == set()
