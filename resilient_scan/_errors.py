"""The exceptions resilient_scan raises."""

from __future__ import annotations


class ResilientScanError(Exception):
    """Base class of every exception resilient_scan raises itself."""


class ScanTimeout(ResilientScanError, TimeoutError):  # noqa: N818 - public contract name
    """A call ran longer than its time limit.

    The call itself may still be running in an abandoned daemon thread: Python threads cannot
    be killed. See `resilient_scan.abandoned_threads`.

    Attributes:
        limit: The limit in seconds that was exceeded.
        elapsed: Seconds from the start of the call until the timeout fired.
        function: Qualified name of the call that timed out.
    """

    def __init__(self, function: str, limit: float, elapsed: float) -> None:
        """Create the error for *function* that passed *limit* after *elapsed* seconds."""
        super().__init__(f"{function} timed out after {limit:.3g}s")
        self.function = function
        self.limit = limit
        self.elapsed = elapsed

    def __reduce__(self) -> tuple[type[ScanTimeout], tuple[str, float, float]]:
        """Pickle with the constructor's arguments, not the formatted message."""
        return (type(self), (self.function, self.limit, self.elapsed))


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


class ConfigError(ResilientScanError, ValueError):
    """A policy, executor or config file was given a bad key or value.

    The message names the key (or argument) and the bad value. Raised when the policy is
    built or the config is read, never later when the decorated function is called.

    Attributes:
        key: The dotted key or argument name that is wrong.
    """

    def __init__(self, key: str, problem: str) -> None:
        """Create the error for *key*, explaining *problem*."""
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, str]]:
        """Pickle with the constructor's arguments, not the formatted message."""
        return (type(self), (self.key, self.problem))
