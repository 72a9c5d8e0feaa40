"""The exceptions resilient_scan raises."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

#: One part of a key path: a table key, or an index into a list.
KeyPart = str | int


def _dotted(path: Sequence[KeyPart]) -> str:
    """``("a", "b", 0, "c")`` -> ``"a.b[0].c"``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


class ResilientScanError(Exception):
    """Base class of every exception resilient_scan raises itself."""


class ScanTimeout(ResilientScanError, TimeoutError):  # noqa: N818 - public contract name
    """A call ran longer than its time limit.

    A synchronous call may still be running in an abandoned daemon thread: Python threads
    cannot be killed (see `resilient_scan.abandoned_threads`). An awaited call was cancelled.

    Attributes:
        limit: The limit in seconds that was exceeded.
        elapsed: Seconds from the start of the call until the timeout fired.
        function: Qualified name of the call that timed out.
        started: False when the call never started: the budget of an enclosing deadline
            (a retry's, the executor's) was spent before it. A circuit breaker does not count
            such a timeout against the service, which was never asked.
    """

    def __init__(
        self, function: str, limit: float, elapsed: float, *, started: bool = True
    ) -> None:
        """Create the error for *function* that passed *limit* after *elapsed* seconds."""
        if started:
            super().__init__(f"{function} timed out after {limit:.3g}s")
        else:
            super().__init__(f"{function} not started: its time budget was already spent")
        self.function = function
        self.limit = limit
        self.elapsed = elapsed
        self.started = started

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle with the constructor's arguments, not the formatted message."""
        return (_scan_timeout, (type(self), self.function, self.limit, self.elapsed, self.started))


def _scan_timeout(
    kind: type[ScanTimeout],
    function: str,
    limit: float,
    elapsed: float,
    started: bool,  # noqa: FBT001 - pickle calls it with positional arguments
) -> ScanTimeout:
    return kind(function, limit, elapsed, started=started)


class CircuitOpenError(ResilientScanError):
    """A circuit breaker rejected the call without running it.

    Attributes:
        breaker: The breaker's name.
        retry_in: Seconds until the breaker admits a trial call again (0.0 when it is half-open
            and its one trial call is already running).
    """

    def __init__(self, breaker: str, retry_in: float) -> None:
        """Create the error for the breaker named *breaker*."""
        super().__init__(f"circuit {breaker!r} is open; next trial in {retry_in:.1f}s")
        self.breaker = breaker
        self.retry_in = retry_in

    def __reduce__(self) -> tuple[type[CircuitOpenError], tuple[str, float]]:
        """Pickle with the constructor's arguments, not the formatted message."""
        return (type(self), (self.breaker, self.retry_in))


class RateLimitExceeded(ResilientScanError):  # noqa: N818 - reads as what happened
    """A rate limiter had no permit for the call within the time the caller had left.

    Attributes:
        limiter: The limiter's name (with its key, when it has one).
        wait: Seconds the call would have had to wait for a permit.
        available: Seconds the caller had left (its deadline or the limiter's ``max_wait``).
    """

    def __init__(self, limiter: str, wait: float, available: float) -> None:
        """Create the error for *limiter*, which needed *wait* seconds of *available*."""
        super().__init__(
            f"rate limit {limiter!r}: the next permit is {wait:.3g}s away,"
            f" {available:.3g}s were left"
        )
        self.limiter = limiter
        self.wait = wait
        self.available = available

    def __reduce__(self) -> tuple[type[RateLimitExceeded], tuple[str, float, float]]:
        """Pickle with the constructor's arguments, not the formatted message."""
        return (type(self), (self.limiter, self.wait, self.available))


class ThreadLimitError(ResilientScanError, RuntimeError):
    """The daemon pool has its most threads, none idle: the call was not started.

    Raised instead of starting thread after thread for calls that never return, until the
    process cannot start any (``RuntimeError: can't start new thread``).

    Attributes:
        limit: The pool's ``max_threads``.
        hung: The functions of the abandoned calls still running, with their counts, most
            frequent first.
    """

    def __init__(self, limit: int, hung: Sequence[tuple[str, int]]) -> None:
        """Create the error for a pool of *limit* threads, with *hung* abandoned calls."""
        listed = ", ".join(f"{name} x{count}" for name, count in hung[:5]) or "none"
        more = f" and {len(hung) - 5} more" if len(hung) > 5 else ""  # noqa: PLR2004
        super().__init__(
            f"all {limit} threads of the resilient_scan pool are busy (max_threads={limit});"
            f" abandoned calls still running: {listed}{more}. Give those calls an I/O"
            " timeout, or raise max_threads"
        )
        self.limit = limit
        self.hung = tuple(hung)

    def __reduce__(self) -> tuple[type[ThreadLimitError], tuple[int, tuple[tuple[str, int], ...]]]:
        """Pickle with the constructor's arguments, not the formatted message."""
        return (type(self), (self.limit, self.hung))


class CacheEncodeError(ResilientScanError, TypeError):
    """A cache's codec cannot encode a result, so the result was not stored.

    Attributes:
        cache: The cache's name.
        problem: What the codec said.
    """

    def __init__(self, cache: str, problem: str) -> None:
        """Create the error for *cache*."""
        super().__init__(f"cache {cache!r} cannot store this result: {problem}")
        self.cache = cache
        self.problem = problem

    def __reduce__(self) -> tuple[type[CacheEncodeError], tuple[str, str]]:
        """Pickle with the constructor's arguments, not the formatted message."""
        return (type(self), (self.cache, self.problem))


class ConfigError(ResilientScanError, ValueError):
    """A policy, executor or config file was given a bad key or value.

    The message names the key (or argument) and the bad value. Raised when the policy is
    built or the config is read, never later when the decorated function is called.

    Attributes:
        path: The key path as data, e.g. ``("discovery", "scanner_execution", "max_workers")``.
        key: The same path dotted: ``"discovery.scanner_execution.max_workers"``.
        problem: What is wrong with the value.
    """

    def __init__(self, key: str | Iterable[KeyPart], problem: str) -> None:
        """Create the error for *key* (a dotted string or a path), explaining *problem*."""
        path = tuple(key.split(".")) if isinstance(key, str) else tuple(key)
        self.path: tuple[KeyPart, ...] = path
        self.key = _dotted(path)
        self.problem = problem
        super().__init__(f"{self.key}: {problem}" if self.key else problem)

    def prefixed(self, *parts: KeyPart) -> ConfigError:
        """Return the same error with *parts* in front of its path (the enclosing table)."""
        error = ConfigError((*parts, *self.path), self.problem)
        error.__cause__ = self.__cause__
        return error

    def __reduce__(self) -> tuple[type[ConfigError], tuple[tuple[KeyPart, ...], str]]:
        """Pickle with the constructor's arguments, not the formatted message."""
        return (type(self), (self.path, self.problem))
