"""The executor's Dask backend on a real LocalCluster: 2 worker processes, started once.

The scanners are defined here, at module level, so the workers import them by name, as
they would an application's scanner modules. Scanners that hang wait for a file the test
creates at teardown (`released`), which then waits until no worker has an abandoned
thread left, so nothing of one test runs on into the next.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import distributed
import pytest
import structlog

import resilient_scan as rs
from resilient_scan.dask import DaskBackend, RemoteScanError
from resilient_scan.instrumentation import ScannerDegraded, ScannerFinished, ScanStarted
from resilient_scan.redis import RedisBackend
from resilient_scan.testing import CapturedEvents, FakeClock, capture_events
from tests.helpers import wait_until

WORKERS = 2
THREADS = 4
#: How long a hung scanner waits for its release at most (a safety net, never reached).
HUNG_AT_MOST = 20.0


@pytest.fixture(scope="session")
def dask_client() -> Iterator[distributed.Client]:
    """A client of a LocalCluster of 2 worker processes x 4 threads, for the whole session."""
    local_cluster: Any = distributed.LocalCluster  # (distributed is not fully typed)
    client_of: Any = distributed.Client
    with (
        local_cluster(
            n_workers=WORKERS,
            threads_per_worker=THREADS,
            processes=True,
            dashboard_address=":0",  # any free port: a busy 8787 must not fail the run
            silence_logs=logging.ERROR,
        ) as cluster,
        client_of(cluster) as client,
    ):
        client.wait_for_workers(WORKERS)
        yield client


def abandoned_on_workers(client: distributed.Client) -> int:
    """Threads still running a scanner the executor gave up on, over all workers."""
    return sum(client.run(rs.abandoned_threads).values())


@pytest.fixture
def released(tmp_path: Path, dask_client: distributed.Client) -> Iterator[Path]:
    """The file hung scanners wait for: created at teardown, which waits for their threads."""
    flag = tmp_path / "release"
    yield flag
    flag.touch()
    assert wait_until(lambda: abandoned_on_workers(dask_client) == 0, timeout=10.0)


def on_dask(client: distributed.Client, **settings: Any) -> rs.ScanExecutor:
    return rs.ScanExecutor(backend=DaskBackend(client), **settings)


# -- scanners (imported by the workers) ---------------------------------------------------------


@rs.scanner(pipeline="momentum")
def momentum(state: Any) -> list[Any]:
    job = structlog.contextvars.get_contextvars().get("job")
    blob = len(state.get("blob", ""))
    state["tool_logs"].append({"scanner": "momentum", "pid": os.getpid(), "job": job, "blob": blob})
    return [
        {"ticker": " aapl ", "priority": "high", "context": "breakout"},
        {"ticker": "msft"},
        {"ticker": ""},  # invalid: dropped and counted
    ]


def options_flow(state: Any) -> list[Any]:
    state["tool_logs"].append({"scanner": "options_flow", "pid": os.getpid()})
    attempts: list[int] = []

    @rs.retry(attempts=3, backoff=0, jitter=False)
    def fetch() -> list[str]:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("flaky feed")
        return ["AAPL", "NVDA"]

    return [{"ticker": ticker, "priority": "critical"} for ticker in fetch()]


def news(state: Any) -> list[Any]:
    state["tool_logs"].append({"scanner": "news", "pid": os.getpid()})

    @rs.timeout(5)
    def headlines() -> list[str]:
        raise ConnectionError("news feed down")

    try:
        headlines()
    except ConnectionError:
        return [{"ticker": "TSLA", "priority": "low"}]  # degraded: a call inside failed
    return []


def broken(state: Any) -> list[Any]:
    state["tool_logs"].append({"scanner": "broken", "pid": os.getpid()})
    raise KeyError("missing column")


def wrong_type(state: Any) -> Any:
    state["tool_logs"].append({"scanner": "wrong_type", "pid": os.getpid()})
    return {"ticker": "X"}


def switched_off(state: Any) -> list[Any]:
    return [{"ticker": "ZZZ"}]


def tagger(ticker: str) -> Any:
    """A scanner made by a function: a closure, which travels by value (cloudpickle)."""

    def tagged(state: Any) -> list[Any]:
        return [{"ticker": ticker, "priority": "medium"}]

    return rs.scanner(name=f"tag_{ticker.lower()}")(tagged)


class Napper:
    """Sleeps, then reports how much time its limit left it when it started."""

    def __init__(self, name: str, seconds: float) -> None:
        self.name = name
        self.seconds = seconds

    def scan(self, state: Any) -> list[Any]:
        left = rs.time_remaining()
        time.sleep(self.seconds)
        return [{"ticker": self.name.upper(), "left": left}]


class Hung:
    """Never returns by itself: waits for the test's release file."""

    def __init__(self, name: str) -> None:
        self.name = name

    def scan(self, state: Any) -> list[Any]:
        flag = Path(state["release"])
        deadline = time.monotonic() + HUNG_AT_MOST
        while not flag.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        return [{"ticker": "LATE"}]


class Marker:
    """Leaves a file behind if it ever runs."""

    def __init__(self, name: str) -> None:
        self.name = name

    def scan(self, state: Any) -> list[Any]:
        Path(state["marker"]).touch()
        return []


class TwoArgError(Exception):
    """Pickles, but cannot be rebuilt: its constructor takes two arguments."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


class LockedError(Exception):
    """Cannot be pickled at all: it holds a lock."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


def raises_two_arg(state: Any) -> list[Any]:
    raise TwoArgError(503, "upstream unavailable")


def raises_locked(state: Any) -> list[Any]:
    raise LockedError("held by the feed")


def lock_in_candidate(state: Any) -> list[Any]:
    return [{"ticker": "AAPL", "handle": threading.Lock()}, {"ticker": "MSFT"}]


async def async_quote(state: Any) -> list[Any]:
    await asyncio.sleep(0.01)
    return [{"ticker": "NVDA", "pid": os.getpid()}]


async def async_hung(state: Any) -> list[Any]:
    await asyncio.sleep(HUNG_AT_MOST)
    return []


_DOWN_APIS: dict[tuple[str, str], Any] = {}


def down_api(url: str, namespace: str) -> Any:
    """An API that is down, behind a breaker on Redis (one per process and namespace)."""
    call = _DOWN_APIS.get((url, namespace))
    if call is None:
        breaker = rs.CircuitBreaker(
            fail_max=3,
            reset_timeout=60,
            name="down-api",
            storage=RedisBackend(url, namespace=namespace),
        )

        @breaker
        def call() -> None:
            raise ConnectionError("api down")

        _DOWN_APIS[(url, namespace)] = call
    return call


class ApiCaller:
    """Calls the down API once."""

    def __init__(self, name: str) -> None:
        self.name = name

    def scan(self, state: Any) -> list[Any]:
        state["tool_logs"].append(os.getpid())
        down_api(state["redis_url"], state["namespace"])()
        return []


# -- the same report as on threads -----------------------------------------------------------


def comparable(report: rs.ScanReport) -> list[tuple[Any, ...]]:
    """What must be the same wherever the scanners ran (not durations, not pids)."""
    return [
        (
            result.name,
            result.status,
            result.pipeline,
            result.error,
            result.error_type,
            result.reason,
            result.dropped,
            result.calls,
            [entry.kind for entry in result.timeline],
            result.timeout_seconds,
            [scanner_of(entry) for entry in result.tool_logs],
            [(c["ticker"], c["priority"], c["source"], c["context"]) for c in result.candidates],
        )
        for result in report.results
    ]


def scanner_of(entry: Any) -> Any:
    return entry["scanner"] if isinstance(entry, dict) else entry


def test_same_report_statuses_merge_and_logs_as_on_threads(dask_client, events: CapturedEvents):
    scanners = [momentum, options_flow, news, broken, wrong_type, switched_off, tagger("GOOG")]
    settings: dict[str, Any] = {
        "max_workers": 4,
        "timeout_seconds": 5.0,
        "scanners": {"switched_off": {"enabled": False}},
    }
    # A state past 1 MiB: scattered to the cluster once rather than sent with each share.
    state = {"tool_logs": [{"scanner": "before"}], "market": "US", "blob": "x" * (2 << 20)}

    with structlog.contextvars.bound_contextvars(job="nightly"):
        here = rs.ScanExecutor(**settings).run(scanners, state)
        events.clear()
        there = on_dask(dask_client, **settings).run(scanners, state)

    assert comparable(there) == comparable(here)
    assert there.candidates == here.candidates
    assert [scanner_of(e) for e in there.tool_logs] == [scanner_of(e) for e in here.tool_logs]
    assert state["tool_logs"] == [{"scanner": "before"}]  # the caller's state is untouched
    statuses = {result.name: result.status for result in there.results}
    assert statuses == {
        "momentum": "ok",
        "options_flow": "ok",
        "news": "ok",
        "broken": "error",
        "wrong_type": "error",
        "switched_off": "skipped",
        "tag_goog": "ok",
    }
    # They ran in the worker processes: both of them, never here.
    pids = {entry["pid"] for entry in there.tool_logs}
    assert len(pids) == WORKERS
    assert os.getpid() not in pids
    # What the application bound on the driver is bound around its scanners there too.
    assert there.result("momentum").tool_logs[0]["job"] == "nightly"
    assert there.result("momentum").tool_logs[0]["blob"] == 2 << 20
    # The statistics came back with the results.
    flow = there.result("options_flow")
    assert (flow.calls.calls, flow.calls.retries, flow.attempts) == (1, 2, 3)
    assert there.result("news").degraded
    # The exception travelled as itself, with its traceback text.
    failed = there.result("broken")
    assert isinstance(failed.exception, KeyError)
    assert failed.traceback is not None
    assert "def broken" in failed.traceback or "in broken" in failed.traceback
    # The driver reported each result once, and the run's start and end.
    finished = events.of(ScannerFinished)
    assert sorted((e.scanner, e.status) for e in finished) == sorted(statuses.items())
    assert [e.scanner for e in events.of(ScannerDegraded)] == ["news"]
    assert [e.max_workers for e in events.of(ScanStarted)] == [4]
    assert there.max_workers == 4


def test_what_cannot_travel_costs_only_its_own_scanner(dask_client, monkeypatch):
    # A scanner class that exists on the driver only: the workers cannot import it.
    module = types.ModuleType("rs_driver_only_scanners")
    exec(  # noqa: S102 - a module of the test's own
        "class Local:\n"
        "    def __init__(self, name):\n"
        "        self.name = name\n"
        "    def scan(self, state):\n"
        "        return [{'ticker': 'LOCAL'}]\n",
        module.__dict__,
    )
    monkeypatch.setitem(sys.modules, module.__name__, module)
    scanners = [
        module.Local("local_1"),
        raises_two_arg,
        raises_locked,
        lock_in_candidate,
        module.Local("local_2"),
        momentum,
    ]

    report = on_dask(dask_client, concurrent=False).run(scanners, {"tool_logs": []})

    statuses = [(r.name, r.status, r.error_type) for r in report.results]
    assert statuses == [
        ("local_1", "error", "ModuleNotFoundError"),
        ("raises_two_arg", "error", "TwoArgError"),
        ("raises_locked", "error", "LockedError"),
        ("lock_in_candidate", "ok", None),
        ("local_2", "error", "ModuleNotFoundError"),
        ("momentum", "ok", None),
    ]
    assert report.result("local_1").reason == "it could not be loaded on its Dask worker"
    for name, kind, text in (
        ("raises_two_arg", "TwoArgError", "TwoArgError: 503: upstream unavailable"),
        ("raises_locked", "LockedError", "LockedError: held by the feed"),
    ):
        result = report.result(name)
        assert result.error == text
        assert isinstance(result.exception, RemoteScanError)
        assert str(result.exception) == text
        assert result.exception.error_type == kind
        assert result.traceback is not None
        assert f"in {name}" in result.traceback
        assert result.exception.remote_traceback == result.traceback
    kept = report.result("lock_in_candidate")
    assert [c["ticker"] for c in kept.candidates] == ["MSFT"]
    assert kept.dropped == 1


# -- timeouts and deadlines --------------------------------------------------------------------


def test_a_scanners_limit_counts_from_its_start_on_the_worker(dask_client, released):
    # One at a time on one worker: nap_2 starts 0.25 s after the share was sent, and still
    # has its whole limit; the hung scanner is abandoned at its limit, on its worker.
    executor = on_dask(dask_client, concurrent=False, timeout_seconds=0.4)
    scanners: list[Any] = [Napper("nap_1", 0.25), Napper("nap_2", 0.25), Hung("hung")]

    started = time.monotonic()
    report = executor.run(scanners, {"release": str(released)})
    took = time.monotonic() - started

    assert [r.status for r in report.results] == ["ok", "ok", "timeout"]
    second_left = report.result("nap_2").candidates[0]["left"]
    assert 0.2 < second_left <= 0.4  # counted from the share's start, it would be <= 0.15
    hung = report.result("hung")
    assert hung.abandoned
    assert hung.error == "ScanTimeout: hung timed out after 0.4s (its timeout_seconds)"
    assert 0.4 <= hung.duration < 0.8
    assert report.abandoned == 1
    assert took < 0.25 + 0.25 + 0.4 + 0.5
    # Its thread runs on in its worker process, not in a Dask thread: the share is done.
    assert abandoned_on_workers(dask_client) == 1
    assert not any(dask_client.processing().values())


def test_the_run_deadline_times_out_the_running_and_cancels_the_rest(
    dask_client, released, tmp_path
):
    marker = tmp_path / "never-ran"
    executor = on_dask(dask_client, concurrent=False, timeout_seconds=5, deadline_seconds=0.5)
    scanners: list[Any] = [Napper("quick", 0.05), Hung("stuck"), Marker("never")]

    started = time.monotonic()
    report = executor.run(scanners, {"release": str(released), "marker": str(marker)})
    took = time.monotonic() - started

    assert [r.status for r in report.results] == ["ok", "timeout", "cancelled"]
    assert report.result("quick").candidates[0]["left"] <= 0.5  # the run's deadline, there
    stuck = report.result("stuck")
    assert stuck.error == "ScanTimeout: stuck timed out after 0.5s (the run's deadline_seconds)"
    assert stuck.abandoned
    assert report.result("never").reason == "the run's deadline passed before it started"
    assert took < 0.5 + 0.5
    time.sleep(0.1)
    assert not marker.exists()


def test_the_driver_gives_up_on_a_share_that_never_started(dask_client, tmp_path):
    # Every worker thread is busy: the share waits in its worker's queue past the deadline.
    flag, started = tmp_path / "unblock", tmp_path / "blockers"
    started.mkdir()
    blockers = [
        dask_client.submit(block, str(started), str(flag), workers=[address], pure=False)
        for address, threads in dask_client.nthreads().items()
        for _ in range(threads)
    ]
    try:
        assert wait_until(lambda: len(list(started.iterdir())) == WORKERS * THREADS)
        marker = tmp_path / "never-ran"
        executor = rs.ScanExecutor(
            backend=DaskBackend(dask_client, grace_seconds=0.2), deadline_seconds=0.3
        )

        began = time.monotonic()
        report = executor.run([Marker("never"), momentum], {"marker": str(marker)})
        took = time.monotonic() - began
    finally:
        flag.touch()
        dask_client.gather(blockers)

    assert [r.status for r in report.results] == ["cancelled", "cancelled"]
    assert 0.5 <= took < 1.5
    assert report.abandoned == 0
    time.sleep(0.2)  # the workers are free again: a share not cancelled would run now
    assert not marker.exists()


def block(started: str, flag: str) -> None:
    Path(started, f"{os.getpid()}-{threading.get_ident()}").touch()
    deadline = time.monotonic() + HUNG_AT_MOST
    while not Path(flag).exists() and time.monotonic() < deadline:
        time.sleep(0.005)


def test_async_scanners_run_on_the_workers_and_are_cancelled_at_their_limit(dask_client):
    executor = on_dask(dask_client, timeout_seconds=0.3)

    report = executor.run([async_quote, async_hung, momentum], {"tool_logs": []})

    assert [r.status for r in report.results] == ["ok", "timeout", "ok"]
    assert report.result("async_quote").candidates[0]["pid"] != os.getpid()
    hung = report.result("async_hung")
    assert not hung.abandoned  # cancelled, not left running
    assert report.abandoned == 0
    assert abandoned_on_workers(dask_client) == 0


# -- state shared through Redis ------------------------------------------------------------------


def test_a_breaker_on_redis_opened_by_the_workers_is_open_for_the_driver(
    dask_client, redis_url, namespace
):
    # One scanner at a time on each worker: with a breaker per process, each worker would
    # need 3 failures of its own (6 in all); shared, the third failure opens it for all.
    callers = [ApiCaller(f"caller_{i}") for i in range(10)]
    state = {"redis_url": redis_url, "namespace": namespace, "tool_logs": []}

    report = on_dask(dask_client, max_workers=WORKERS).run(callers, state)

    statuses = [str(result.status) for result in report.results]
    assert 3 <= statuses.count("error") <= 3 + 1  # one call may be under way on the other
    assert statuses.count("circuit_open") == len(callers) - statuses.count("error")
    assert len(set(report.tool_logs)) == WORKERS
    here = rs.CircuitBreaker(
        fail_max=3,
        reset_timeout=60,
        name="down-api",
        storage=RedisBackend(redis_url, namespace=namespace),
    )
    assert here.state == "open"


# -- bad input ---------------------------------------------------------------------------------


class Locky:
    name = "locky"

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def scan(self, state: Any) -> list[Any]:
        return []


def test_what_cannot_run_on_dask_is_a_config_error_before_anything_runs(dask_client):
    with pytest.raises(rs.ConfigError) as bad_client:
        DaskBackend("tcp://127.0.0.1:8786")
    assert bad_client.value.path == ("DaskBackend", "client")
    with pytest.raises(rs.ConfigError) as bad_backend:
        rs.ScanExecutor(backend=object())
    assert bad_backend.value.path == ("backend",)
    assert isinstance(rs.ScanExecutor(backend=dask_client).backend, DaskBackend)

    executor = on_dask(dask_client)
    cases: list[tuple[Callable[[], object], tuple[str, ...]]] = [
        (lambda: executor.run([momentum], {"lock": threading.Lock()}), ("state",)),
        (lambda: executor.run([Locky()]), ("scanners", "locky")),
        (lambda: on_dask(dask_client, clock=FakeClock()).run([momentum]), ("clock",)),
        (lambda: asyncio.run(executor.arun([momentum])), ("backend",)),
    ]
    with capture_events() as seen:
        for call, path in cases:
            with pytest.raises(rs.ConfigError) as error:
                call()
            assert error.value.path == path
    assert seen == []  # nothing started, nothing reported
