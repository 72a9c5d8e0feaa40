"""Candidates: what scanners find. Checked, normalized and merged the same way every run.

A candidate is a dict with ``ticker``, ``source``, ``context`` and ``priority`` plus any extra
fields. Both steps are hooks of the executor (``normalize=`` and ``merge=``); these are the
defaults.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Protocol

#: Priorities from best to worst.
PRIORITIES: Final = ("critical", "high", "medium", "low", "unknown")
_RANK: Final = {name: rank for rank, name in enumerate(PRIORITIES)}
_UNKNOWN_RANK: Final = _RANK["unknown"]


class Found(Protocol):
    """What merging needs from a scanner's result: its name and its candidates."""

    @property
    def name(self) -> str:
        """The scanner's name."""
        ...

    @property
    def candidates(self) -> Sequence[Mapping[str, Any]]:
        """The scanner's valid, normalized candidates."""
        ...


def priority_rank(priority: object) -> int:
    """Return 0 for ``critical`` up to 4 for ``unknown`` (and for anything unrecognised)."""
    return _RANK.get(priority, _UNKNOWN_RANK) if isinstance(priority, str) else _UNKNOWN_RANK


def normalize_candidate(candidate: object, scanner: str) -> dict[str, Any] | None:
    """Return a normalized copy of *candidate*, or None if it is invalid.

    Invalid: not a dict, or a ``ticker`` that is missing, not a string, or empty once
    stripped. Normalized: the ticker stripped and upper-cased; a missing ``source`` becomes
    *scanner*, a missing ``context`` ``""``, a missing or unknown ``priority`` ``"unknown"``.
    """
    if type(candidate) is not dict and not isinstance(candidate, Mapping):
        return None
    ticker = candidate.get("ticker")
    if not isinstance(ticker, str):
        return None
    ticker = ticker.strip().upper()
    if not ticker:
        return None
    normalized = dict(candidate)
    normalized["ticker"] = ticker
    if not normalized.get("source"):
        normalized["source"] = scanner
    if normalized.get("context") is None:
        normalized["context"] = ""
    priority = normalized.get("priority")
    if isinstance(priority, str):
        priority = priority.strip().lower()
    normalized["priority"] = priority if priority in _RANK else "unknown"
    return normalized


def merge_candidates(results: Iterable[Found]) -> list[dict[str, Any]]:
    """Merge every scanner's candidates into one per ticker.

    *results* must be in scanner order (not finishing order): that makes the merge the same
    whatever order scanners finish in. Each merged candidate is a copy of the one with the
    best priority (ties: the earliest in scanner order), plus ``sources`` (every scanner that
    found the ticker, in scanner order) and ``contexts`` (every distinct non-empty context,
    in the same order). The list is ordered by priority, then ticker.
    """
    best: dict[str, Mapping[str, Any]] = {}
    sources: dict[str, list[str]] = {}
    contexts: dict[str, list[str]] = {}
    for result in results:
        for candidate in result.candidates:
            ticker = candidate["ticker"]
            current = best.get(ticker)
            if current is None:
                best[ticker] = candidate
                sources[ticker] = [result.name]
                contexts[ticker] = []
            else:
                if priority_rank(candidate["priority"]) < priority_rank(current["priority"]):
                    best[ticker] = candidate
                if result.name not in sources[ticker]:
                    sources[ticker].append(result.name)
            context = candidate.get("context")
            if context and context not in contexts[ticker]:
                contexts[ticker].append(context)
    merged = []
    for ticker, candidate in best.items():
        entry = dict(candidate)
        entry["sources"] = sources[ticker]
        entry["contexts"] = contexts[ticker]
        merged.append(entry)
    merged.sort(key=lambda entry: (priority_rank(entry["priority"]), entry["ticker"]))
    return merged
