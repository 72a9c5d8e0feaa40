"""The instrumentation seam: registering hooks, gating events, and hooks that fail."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import resilient_scan as rs
from resilient_scan import _config, instrumentation
from resilient_scan._instrument import emit, wanted
from resilient_scan._stats import ScanRecorder
from resilient_scan.instrumentation import (
    BreakerRejected,
    CacheHit,
    Event,
    HookFactory,
    LogHook,
    RetryScheduled,
    ScannerFinished,
    add_hook,
    get_hooks,
    remove_hook,
    set_hooks,
)
from resilient_scan.testing import FakeClock, capture_events
from tests.helpers import Flaky

HEADER = "resilient_scan: instrumentation hook"


class Recorder:
    """A hook that keeps what it gets (optionally only some event types)."""

    def __init__(self, events: tuple[type[Event], ...] | None = None) -> None:
        self.events = events
        self.got: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.got.append(event)


class Broken:
    """A hook that raises on every event (as a sink whose pipe is closed would)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, event: Event) -> None:
        self.calls += 1
        raise BrokenPipeError(32, "Broken pipe")

    def __repr__(self) -> str:
        return "Broken()"


def scheduled(attempt: int = 1) -> RetryScheduled:
    return RetryScheduled("fetch", attempt, 0.5, "ValueError", "ValueError: boom", None)


@pytest.fixture
def quiet_logger() -> Iterator[None]:
    """The default hook logs to standard logging at WARNING and nobody sees debug or info."""
    logger = logging.getLogger("resilient_scan")
    before = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(before)


# -- registering hooks -------------------------------------------------------------------------


def test_the_default_hook_is_one_log_hook():
    (hook,) = get_hooks()
    assert isinstance(hook, LogHook)


def test_set_hooks_replaces_them_and_none_brings_back_the_default():
    recorder = Recorder()
    set_hooks([recorder])
    assert get_hooks() == (recorder,)
    emit(scheduled())
    assert recorder.got == [scheduled()]
    set_hooks(None)
    assert [type(hook) for hook in get_hooks()] == [LogHook]


def test_add_and_remove_hook_keep_the_others():
    first, second = Recorder(), Recorder()
    set_hooks([first])
    add_hook(second)
    assert get_hooks() == (first, second)
    remove_hook(first)
    assert get_hooks() == (second,)
    remove_hook(first)  # not one of them: nothing happens
    assert get_hooks() == (second,)


def test_a_hook_that_is_not_callable_is_a_config_error_naming_its_place_and_changes_nothing():
    recorder = Recorder()
    set_hooks([recorder])
    with pytest.raises(rs.ConfigError) as caught:
        set_hooks([recorder, 42])  # type: ignore[list-item]
    assert caught.value.path == ("hooks", 1)
    assert "42" in str(caught.value)
    assert get_hooks() == (recorder,)
    with pytest.raises(rs.ConfigError):
        add_hook("not a hook")  # type: ignore[arg-type]
    assert get_hooks() == (recorder,)


def test_a_hook_gets_only_the_event_types_it_asks_for():
    only_hits = Recorder(events=(CacheHit,))
    set_hooks([only_hits])
    emit(scheduled())
    emit(CacheHit("quotes", "fetch"))
    assert only_hits.got == [CacheHit("quotes", "fetch")]


def test_concurrent_add_and_remove_lose_no_change():
    # Each thread adds its own hook and removes it again, many times, all at once. A
    # read-modify-write without a lock loses changes: a hook comes back after its
    # removal, or another thread's hook goes missing while it should be there.
    set_hooks([])
    threads, rounds = 8, 300
    missing: list[str] = []
    start = threading.Barrier(threads)

    def churn(number: int) -> None:
        start.wait()
        for _ in range(rounds):
            hook = Recorder()
            add_hook(hook)
            if not any(h is hook for h in get_hooks()):
                missing.append(f"thread {number}: hook gone before its removal")
            remove_hook(hook)

    workers = [threading.Thread(target=churn, args=(n,)) for n in range(threads)]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show up
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        sys.setswitchinterval(switch)
    assert missing == []
    assert get_hooks() == ()


# -- factories -----------------------------------------------------------------------------------


def test_a_hook_factory_is_called_on_the_first_event_not_before():
    made: list[Recorder] = []

    def make() -> Recorder:
        made.append(Recorder(events=(RetryScheduled,)))
        return made[-1]

    set_hooks([HookFactory(make)])
    assert made == []
    assert wanted(CacheHit)  # asking does not create it (what it wants is not known yet)
    assert made == []
    emit(scheduled(1))
    emit(scheduled(2))
    assert len(made) == 1
    assert [event.attempt for event in made[0].got] == [1, 2]  # type: ignore[attr-defined]
    # Resolved, it is indexed like any hook: it does not want cache hits.
    assert not wanted(CacheHit)
    assert get_hooks() == (made[0],)


def test_get_hooks_creates_the_hooks_of_factories():
    recorder = Recorder()
    set_hooks([HookFactory(lambda: recorder)])
    assert get_hooks() == (recorder,)


def test_a_factory_resolved_once_even_when_many_threads_emit_the_first_event():
    made: list[Recorder] = []
    lock = threading.Lock()

    def make() -> Recorder:
        with lock:
            made.append(Recorder())
        return made[-1]

    set_hooks([HookFactory(make)])
    threads = 8
    start = threading.Barrier(threads)

    def first() -> None:
        start.wait()
        emit(scheduled())

    workers = [threading.Thread(target=first) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(made) == 1
    assert len(made[0].got) == threads


def test_adding_a_hook_keeps_the_hook_a_factory_already_made():
    made: list[Recorder] = []

    def make() -> Recorder:
        made.append(Recorder())
        return made[-1]

    set_hooks([HookFactory(make)])
    emit(scheduled())
    add_hook(Recorder())
    emit(scheduled(2))
    assert len(made) == 1
    assert len(made[0].got) == 2


def test_a_factory_that_raises_is_reported_once_dropped_and_changes_no_outcome(
    capsys: pytest.CaptureFixture[str], clock: FakeClock
):
    def broken_factory() -> Recorder:
        raise ModuleNotFoundError("No module named 'prometheus_client'")

    survivor = Recorder(events=(RetryScheduled,))
    set_hooks([HookFactory(broken_factory), survivor])
    flaky = Flaky(failures=1)
    call = rs.retry(attempts=3, backoff=0.1, clock=clock)(flaky)
    assert call() == 2  # the factory failed on the first event: the call went on
    assert len(survivor.got) == 1
    err = capsys.readouterr().err
    assert err.count(HEADER) == 1
    assert "No module named 'prometheus_client'" in err
    assert get_hooks() == (survivor,)


# -- gating: events nobody wants are never built ---------------------------------------------


def test_an_event_type_no_hook_takes_is_not_wanted():
    set_hooks([Recorder(events=(CacheHit,))])
    assert wanted(CacheHit)
    assert not wanted(RetryScheduled)


def test_an_event_type_is_wanted_only_at_levels_some_hook_would_handle(quiet_logger: None):
    # Logging at WARNING: info and debug events are not even built.
    set_hooks([instrumentation.LoggingHook()])
    assert wanted(RetryScheduled)  # warning
    assert not wanted(BreakerRejected)  # info
    assert not wanted(CacheHit)  # debug
    logging.getLogger("resilient_scan").setLevel(logging.INFO)
    assert wanted(BreakerRejected)
    assert not wanted(CacheHit)


def test_events_whose_level_varies_are_wanted_whatever_the_level(quiet_logger: None):
    # A scanner's result is info when ok, warning when it failed: it cannot be gated by
    # its class, or failed scanners would go unlogged at WARNING.
    set_hooks([instrumentation.LoggingHook()])
    assert wanted(ScannerFinished)


def test_a_hook_without_a_level_gate_takes_every_level(quiet_logger: None):
    set_hooks([instrumentation.LoggingHook(), Recorder()])
    assert wanted(CacheHit)


def test_inside_a_scanner_every_recorded_event_is_wanted(quiet_logger: None):
    set_hooks([])
    assert not wanted(CacheHit)
    executor = rs.ScanExecutor(max_workers=1)
    seen: list[bool] = []

    def probe(state: object) -> list[dict[str, str]]:
        seen.append(wanted(CacheHit))
        return []

    executor.run([probe])
    assert seen == [True]


def test_a_level_gate_that_raises_lets_the_event_through_and_is_reported(
    capsys: pytest.CaptureFixture[str],
):
    class BadGate(Recorder):
        def enabled_for(self, level: int) -> bool:
            raise RuntimeError("gate broke")

    hook = BadGate(events=(CacheHit,))
    set_hooks([hook])
    assert wanted(CacheHit)
    emit(CacheHit("quotes", "fetch"))
    assert len(hook.got) == 1
    assert wanted(CacheHit)
    err = capsys.readouterr().err
    assert err.count(HEADER) == 1
    assert "gate broke" in err


# -- hooks that fail never change an outcome (issue 7.6) -------------------------------------


def test_a_failing_hook_is_reported_once_on_stderr_and_the_others_still_get_the_event(
    capsys: pytest.CaptureFixture[str],
):
    broken, recorder = Broken(), Recorder()
    set_hooks([broken, recorder])
    for attempt in range(1, 6):
        emit(scheduled(attempt))
    assert broken.calls == 5
    assert [event.attempt for event in recorder.got] == [1, 2, 3, 4, 5]  # type: ignore[attr-defined]
    err = capsys.readouterr().err
    assert err.count(HEADER) == 1
    assert "Broken() raised" in err
    assert "BrokenPipeError" in err


def test_a_failing_hook_is_reported_once_even_as_the_hooks_change(
    capsys: pytest.CaptureFixture[str],
):
    broken = Broken()
    set_hooks([broken])
    emit(scheduled())
    with capture_events():  # adding and removing a hook rebuilds the table
        emit(scheduled(2))
    add_hook(Recorder())
    emit(scheduled(3))
    assert broken.calls == 3
    assert capsys.readouterr().err.count(HEADER) == 1


def test_two_failing_hooks_are_each_reported(capsys: pytest.CaptureFixture[str]):
    set_hooks([Broken(), Broken()])
    emit(scheduled())
    emit(scheduled())
    assert capsys.readouterr().err.count(HEADER) == 2


def test_a_failing_hook_changes_no_retry_attempt(clock: FakeClock):
    set_hooks([Broken()])
    flaky = Flaky(failures=2)
    call = rs.retry(attempts=3, backoff=0.1, clock=clock)(flaky)
    assert call() == 3
    assert flaky.calls == 3


def test_a_failing_hook_changes_no_breaker_state(clock: FakeClock):
    set_hooks([Broken()])
    call = rs.circuit_breaker(fail_max=2, reset_timeout=10.0, name="quotes", clock=clock)(
        Flaky(failures=100)
    )
    for _ in range(2):
        with pytest.raises(ValueError):
            call()
    assert call.breaker.state == "open"
    with pytest.raises(rs.CircuitOpenError):
        call()


def test_a_failing_hook_changes_no_scan_report():
    set_hooks([Broken()])

    def good(state: object) -> list[dict[str, str]]:
        return [{"ticker": "MSFT"}]

    def bad(state: object) -> list[dict[str, str]]:
        raise KeyError("MSFT")

    report = rs.ScanExecutor(max_workers=2).run([good, bad])
    assert [(result.name, result.status) for result in report.results] == [
        ("good", "ok"),
        ("bad", "error"),
    ]
    assert [candidate["ticker"] for candidate in report.candidates] == ["MSFT"]


def test_a_failing_scan_recorder_is_reported_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], clock: FakeClock
):
    def broken_observe(self: ScanRecorder, event: Event) -> None:
        raise RuntimeError("recorder broke")

    monkeypatch.setattr(ScanRecorder, "observe", broken_observe)
    set_hooks([])
    flaky = Flaky(failures=1)
    call = rs.retry(attempts=2, backoff=0.1, clock=clock)(flaky)

    def scanner(state: object) -> list[dict[str, str]]:
        call()
        call()
        return [{"ticker": "MSFT"}]

    report = rs.ScanExecutor(max_workers=1).run([scanner])
    assert report.results[0].status == "ok"
    err = capsys.readouterr().err
    assert err.count(HEADER) == 1
    assert "recorder broke" in err


def test_failures_already_reported_are_forgotten_by_a_runtime_reset(
    capsys: pytest.CaptureFixture[str],
):
    broken = Broken()
    set_hooks([broken])
    emit(scheduled())
    _config.reset()
    set_hooks([broken])
    emit(scheduled())
    assert capsys.readouterr().err.count(HEADER) == 2


FORK_SCRIPT = """
import os, sys, threading
from resilient_scan import instrumentation
from resilient_scan._instrument import emit
from resilient_scan.instrumentation import HookFactory, RetryScheduled

entered, release = threading.Event(), threading.Event()
made = []

def factory():
    if threading.current_thread().name == "first-event":
        entered.set()
        release.wait(10)  # the parent forks while this factory runs
    made.append(os.getpid())
    return lambda event: None

instrumentation.set_hooks([HookFactory(factory)])
event = RetryScheduled("f", 1, 0.1, None, None, None)
first = threading.Thread(target=emit, args=(event,), name="first-event")
first.start()
entered.wait(10)
pid = os.fork()
if pid == 0:
    emitter = threading.Thread(target=emit, args=(event,), daemon=True)
    emitter.start()
    emitter.join(5)
    os._exit(0 if not emitter.is_alive() and made[-1] == os.getpid() else 1)
release.set()
first.join()
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
def test_a_child_forked_while_a_factory_runs_creates_its_own_hook():
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0", done.stderr


def test_a_hook_factory_that_calls_resilient_code_does_not_wait_on_itself():
    attempts: list[int] = []

    @rs.retry(attempts=2, backoff=0)
    def load_settings() -> dict[str, int]:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("settings service restarting")  # a retry: an event
        return {}

    received: list[str] = []

    def factory() -> Any:
        load_settings()
        return lambda event: received.append(event.name)

    set_hooks([HookFactory(factory)])
    done = threading.Event()

    def run() -> None:
        rs.ScanExecutor().run([lambda state: []], {})
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert done.wait(10), "the factory waited on its own lock"
    assert len(attempts) == 2
    assert "scan.finished" in received  # the hook works once made
