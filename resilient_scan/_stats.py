"""Per-scanner counters that the policy layers fill in while a scanner runs.

The executor puts a fresh `CallStats` into the context of each scanner it runs; the context
is copied into timeout worker threads, so layers deep inside a scanner update the same
object. Outside the executor there is none, and recording costs one context-variable read.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class CallStats:
    """What the policy layers did during one scanner run."""

    retries: int = 0
    cache_hits: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, *, retries: int = 0, cache_hits: int = 0) -> None:
        """Add to the counters (a scanner may call its layers from several threads)."""
        with self._lock:
            self.retries += retries
            self.cache_hits += cache_hits


current_stats: ContextVar[CallStats | None] = ContextVar("resilient_scan_stats", default=None)


def record(*, retries: int = 0, cache_hits: int = 0) -> None:
    """Add to the running scanner's counters, if a scanner is running."""
    stats = current_stats.get()
    if stats is not None:
        stats.add(retries=retries, cache_hits=cache_hits)
