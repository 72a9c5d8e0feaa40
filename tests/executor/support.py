"""Scanners the executor tests share: hung, sleeping, fake-time and counting ones."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import resilient_scan as rs
from resilient_scan.testing import FakeClock
from tests.helpers import Calls

Found = list[dict[str, Any]]

#: A run only has to return within its limit plus this (shared 2-core machines are noisy).
MARGIN = 1.0


def hanging(name: str, release: threading.Event, started: Calls | None = None) -> Any:
    """A scanner that waits "forever" (until the test's teardown sets *release*)."""

    @rs.scanner(name=name)
    def scan(state: Mapping[str, Any]) -> Found:
        if started is not None:
            started.add(name)
        release.wait()
        return [{"ticker": "LATE"}]

    return scan


def sleeping(name: str, seconds: float, ran: Calls | None = None) -> Any:
    """A scanner that sleeps *seconds* for real, then finds its own name as a ticker."""

    @rs.scanner(name=name)
    def scan(state: Mapping[str, Any]) -> Found:
        if ran is not None:
            ran.add(name)
        time.sleep(seconds)
        return [{"ticker": name}]

    return scan


def taking(
    name: str,
    clock: FakeClock,
    seconds: float,
    ran: Calls | None = None,
    done: threading.Event | None = None,
) -> Any:
    """A scanner that takes *seconds* of fake time (it moves *clock*), then returns.

    *done* is set when it returns: a concurrent `stalling` scanner waits for it, so that
    the time it moves is not also counted against this one.
    """

    @rs.scanner(name=name)
    def scan(state: Mapping[str, Any]) -> Found:
        if ran is not None:
            ran.add(name)
        clock.advance(seconds)
        if done is not None:
            done.set()
        return [{"ticker": name}]

    return scan


def stalling(
    name: str,
    clock: FakeClock,
    seconds: float,
    release: threading.Event,
    after: threading.Event | None = None,
) -> Any:
    """A scanner that moves *clock* by *seconds* (once *after* is set) and then hangs."""

    @rs.scanner(name=name)
    def scan(state: Mapping[str, Any]) -> Found:
        if after is not None:
            after.wait(5.0)
        clock.advance(seconds)
        release.wait()
        return [{"ticker": "LATE"}]

    return scan


def returning(name: str, *candidates: Any, pipeline: str | None = None) -> Any:
    """A scanner that returns *candidates* at once."""

    @rs.scanner(name=name, pipeline=pipeline)
    def scan(state: Mapping[str, Any]) -> list[Any]:
        return list(candidates)

    return scan


def raising(name: str, error: BaseException) -> Any:
    """A scanner that raises *error*."""

    @rs.scanner(name=name)
    def scan(state: Mapping[str, Any]) -> Found:
        raise error

    return scan


class Gauge:
    """Counts bodies running at once and remembers the most."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def enter(self) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        with self._lock:
            self.now -= 1
