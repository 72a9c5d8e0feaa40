"""The fast paths keep the semantics: frozen events, counted calls, per-call events."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
from typing import Any

import pytest

import resilient_scan as rs
from resilient_scan.instrumentation import (
    EVENT_TYPES,
    AttemptFinished,
    AttemptStarted,
    CallFinished,
    Event,
    add_hook,
    set_hooks,
)
from resilient_scan.testing import no_waits


def _sample(event_type: type[Event]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for index, field in enumerate(dataclasses.fields(event_type)):
        values[field.name] = f"v{index}" if field.name != "counts" else {"ok": 1}
    return values


@pytest.mark.parametrize("name", sorted(EVENT_TYPES))
def test_every_event_is_built_by_keyword_and_stays_frozen(name: str):
    event_type = EVENT_TYPES[name]
    values = _sample(event_type)
    event = event_type(**values)
    assert dataclasses.is_dataclass(event)
    assert {f.name: getattr(event, f.name) for f in dataclasses.fields(event)} == values
    first = dataclasses.fields(event_type)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(event, first, "changed")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.extra = 1  # type: ignore[attr-defined]
    assert event == event_type(**values)
    if "counts" not in values:  # a dict of counts is not hashable, before as now
        assert hash(event) == hash(event_type(**values))


@pytest.mark.parametrize("name", sorted(EVENT_TYPES))
def test_every_event_takes_its_fields_positionally_with_their_defaults(name: str):
    event_type = EVENT_TYPES[name]
    declared = dataclasses.fields(event_type)
    parameters = list(inspect.signature(event_type).parameters.values())
    assert [p.name for p in parameters] == [f.name for f in declared]
    for parameter, field in zip(parameters, declared, strict=True):
        expected = (
            inspect.Parameter.empty if field.default is dataclasses.MISSING else field.default
        )
        assert parameter.default == expected
    required = [f for f in declared if f.default is dataclasses.MISSING]
    event = event_type(*(f"v{i}" for i in range(len(required))))
    for field in declared:
        if field.default is not dataclasses.MISSING:
            assert getattr(event, field.name) == field.default


def test_fields_are_rendered_in_order_without_the_exception():
    error = ValueError("boom")
    event = AttemptFinished("fetch", 2, "error", 0.5, "ValueError", token=None, exception=error)
    assert list(event.fields()) == [
        "function",
        "attempt",
        "outcome",
        "duration",
        "error_type",
        "token",
    ]
    assert event.exception is error
    event.fields()["function"] = "changed"  # a copy: the event is unchanged
    assert event.function == "fetch"


class _CallsOnly:
    """A metrics-like hook: it takes call.finished only (so attempts are not traced)."""

    events = frozenset({CallFinished})

    def __init__(self) -> None:
        self.seen: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.seen.append(event)


class _Everything:
    def __init__(self) -> None:
        self.seen: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.seen.append(event)


def test_a_calls_only_hook_gets_one_call_finished_per_call_with_its_outcome():
    hook = _CallsOnly()
    set_hooks([hook])
    failures = iter([ValueError("once")])

    @rs.resilient(retry={"attempts": 2}, breaker={"fail_max": 2})
    def flaky(x: int) -> int:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return x

    @rs.resilient(retry={"attempts": 2}, breaker={"fail_max": 2})
    def broken() -> None:
        raise KeyError("gone")

    with no_waits():
        assert flaky(1) == 1  # retried once, then ok
        assert flaky(2) == 2
        with pytest.raises(KeyError):
            broken()
    finished = [e for e in hook.seen if isinstance(e, CallFinished)]
    assert len(finished) == len(hook.seen)
    outcomes = [(e.function.rsplit(".", 1)[-1], e.outcome, e.error_type) for e in finished]
    assert outcomes == [
        ("flaky", "ok", None),
        ("flaky", "ok", None),
        ("broken", "error", "KeyError"),
    ]
    assert all(type(e) is CallFinished and e.duration >= 0 for e in hook.seen)
    assert broken.breaker is not None
    assert broken.breaker.state == "open"  # two failed attempts: the breaker saw both


def test_a_hook_that_takes_attempts_still_gets_them_around_each_attempt():
    hook = _Everything()
    add_hook(hook)
    failures = iter([ValueError("once")])

    @rs.resilient(retry={"attempts": 3}, breaker=True)
    def flaky() -> str:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return "ok"

    with no_waits():
        assert flaky() == "ok"
    kinds = [type(e) for e in hook.seen if type(e) in (AttemptStarted, AttemptFinished)]
    assert kinds == [AttemptStarted, AttemptFinished, AttemptStarted, AttemptFinished]
    finished = [e for e in hook.seen if type(e) is CallFinished]
    assert [e.outcome for e in finished] == ["ok"]


def test_calls_through_the_composite_are_counted_inside_a_scanner():
    set_hooks([])  # nobody listens: only the scanner's statistics count

    @rs.resilient(retry={"attempts": 2}, breaker=True)
    def quote(ticker: str) -> float:
        if ticker == "BAD":
            raise ValueError(ticker)
        return 1.0

    @rs.scanner(name="counting")
    def counting(state: dict[str, Any]) -> list[dict[str, Any]]:
        quote("AAPL")
        quote("MSFT")
        with contextlib.suppress(ValueError):
            quote("BAD")
        return []

    with no_waits():
        report = rs.ScanExecutor(max_workers=1).run([counting], {})
    calls = report.result("counting").calls
    assert (calls.calls, calls.failed_calls, calls.retries) == (3, 1, 1)
