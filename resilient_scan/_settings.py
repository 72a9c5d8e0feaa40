"""Converters for settings: each turns one accepted input into its stored form, or raises.

Every policy and the executor convert each setting exactly once, in their constructor, with
these functions. A bad value raises `ConfigError` whose ``path`` names the setting (for
example ``("retry", "attempts")``); whoever reads a larger table adds the table's own path
with `ConfigError.prefixed`, never by editing strings.
"""

from __future__ import annotations

import difflib
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeAlias

from ._calls import is_async
from ._clock import Clock
from ._errors import ConfigError, KeyPart

#: A key path, as `ConfigError` takes it: ``("retry", "attempts")``.
Key: TypeAlias = "tuple[KeyPart, ...]"

#: What users may pass as a duration: seconds, or a `datetime.timedelta`.
Seconds: TypeAlias = "float | timedelta"

#: What users may pass to select exceptions: a type, a tuple of types, or a predicate.
ExceptionFilter: TypeAlias = (
    "type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]"
)

#: The longest duration the standard library's waits accept (about 292 years).
MAX_SECONDS = threading.TIMEOUT_MAX


def seconds(value: object, key: Key, *, allow_zero: bool = False) -> float:
    """Return *value* as float seconds, or raise `ConfigError` naming *key*.

    Accepts numbers and `timedelta`; rejects bools, NaN, infinities, negatives (and zero
    unless *allow_zero*), and anything above `threading.TIMEOUT_MAX`, which every wait in
    the standard library would refuse later with an `OverflowError`.
    """
    if isinstance(value, timedelta):
        number = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
    else:
        raise ConfigError(key, f"must be a number of seconds or a timedelta, got {show(value)}")
    if math.isnan(number) or math.isinf(number):
        raise ConfigError(key, f"must be a finite number of seconds, got {show(value)}")
    if number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(key, f"must be {bound} seconds, got {show(value)}")
    if number > MAX_SECONDS:
        raise ConfigError(
            key,
            f"must be at most {MAX_SECONDS:.0f} seconds (threading.TIMEOUT_MAX), got {show(value)}",
        )
    return number


def optional_seconds(value: object, key: Key, *, allow_zero: bool = False) -> float | None:
    """`seconds`, or None for None."""
    return None if value is None else seconds(value, key, allow_zero=allow_zero)


def integer(value: object, key: Key, *, minimum: int, maximum: int | None = None) -> int:
    """Return *value* if it is an int in range (bools are not), or raise `ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(key, f"must be an integer >= {minimum}, got {show(value)}")
    if maximum is not None and value > maximum:
        raise ConfigError(key, f"must be an integer <= {maximum}, got {show(value)}")
    return value


def number(value: object, key: Key, *, minimum: float = 0.0, exclusive: bool = True) -> float:
    """Return *value* as a finite float above (or at) *minimum*, or raise `ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(key, f"must be a number, got {show(value)}")
    try:
        result = float(value)
    except OverflowError:
        result = math.inf
    too_small = result <= minimum if exclusive else result < minimum
    if not math.isfinite(result) or too_small:
        bound = f"> {minimum:g}" if exclusive else f">= {minimum:g}"
        raise ConfigError(key, f"must be a finite number {bound}, got {show(value)}")
    return result


def boolean(value: object, key: Key) -> bool:
    """Return *value* if it is a bool, or raise `ConfigError`."""
    if not isinstance(value, bool):
        raise ConfigError(key, f"must be true or false, got {show(value)}")
    return value


def text(value: object, key: Key) -> str:
    """Return *value* if it is a non-blank string, or raise `ConfigError`."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, f"must be a non-empty string, got {show(value)}")
    return value


def optional_text(value: object, key: Key) -> str | None:
    """`text`, or None for None."""
    return None if value is None else text(value, key)


def function(value: object, key: Key) -> Callable[..., Any]:
    """Return *value* if it is a plain callable, or raise `ConfigError`.

    Not a coroutine function: a hook is called without ``await``, so an ``async def`` one
    would hand back a coroutine (never equal to another, always true) and fail silently.
    """
    if not callable(value):
        raise ConfigError(key, f"must be callable, got {show(value)}")
    if is_async(value):
        raise ConfigError(
            key, f"must be a plain function, not a coroutine function: got {show(value)}"
        )
    return value


def optional_function(value: object, key: Key) -> Callable[..., Any] | None:
    """`function`, or None for None."""
    return None if value is None else function(value, key)


def clock(value: object, key: Key) -> Clock:
    """Return *value* if it has ``monotonic``, ``time`` and ``sleep`` methods."""
    missing = [
        name for name in ("monotonic", "time", "sleep") if not callable(getattr(value, name, None))
    ]
    if missing:
        raise ConfigError(
            key,
            f"must be a clock with monotonic(), time() and sleep(), got {show(value)}"
            f" (no {', '.join(missing)})",
        )
    return value  # type: ignore[return-value]


def mapping(value: object, key: Key) -> Mapping[str, Any]:
    """Return *value* if it is a mapping (a table of settings), or raise `ConfigError`."""
    if not isinstance(value, Mapping):
        raise ConfigError(key, f"must be a table of settings, got {show(value)}")
    return value


def decorated(func: object, policy: str) -> None:
    """Raise `ConfigError` unless *func* can be decorated (is callable)."""
    if not callable(func):
        raise ConfigError((policy,), f"can only decorate a callable, got {show(func)}")


def close_matches(name: object, known: Iterable[str], *, cutoff: float = 0.75) -> list[str]:
    """Return the known names within a small edit distance of *name*, best first."""
    return difflib.get_close_matches(str(name), list(known), n=3, cutoff=cutoff)


def reject_unknown(table: Mapping[Any, object], allowed: Iterable[str], key: Key) -> None:
    """Raise `ConfigError` naming the first key of *table* not in *allowed*."""
    allowed = tuple(allowed)
    for name in table:
        if name not in allowed:
            close = close_matches(name, allowed, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(sorted(allowed))
            raise ConfigError((*key, str(name)), f"unknown key{hint}; known keys: {known}")


def reject_typos(table: Mapping[Any, object], known: Iterable[str], key: Key) -> None:
    """Raise `ConfigError` for a key of *table* that looks like a misspelt known key.

    For tables that other parts of an application share: unknown keys are allowed, but one
    within a small edit distance of a known key (``scanner_executon``) is almost surely a
    typo that would otherwise be ignored without a word.
    """
    known = tuple(known)
    for name in table:
        if name in known or not isinstance(name, str):
            continue
        close = close_matches(name, known, cutoff=0.8)
        if close:
            raise ConfigError(
                (*key, name),
                f"unknown key (did you mean {close[0]!r}?); known keys: {', '.join(sorted(known))}",
            )


@dataclass(frozen=True)
class ExceptionMatcher:
    """Which exceptions a setting selects: built from a type, a tuple of types or a predicate.

    Call `matches` to test an exception. A user predicate may itself raise; `matches` then
    answers *if_broken*, and attaches the predicate's error to the exception being tested
    (see `resilient_scan._text.note_broken_predicate`), so no outcome is lost to it.
    """

    spec: object
    key: str
    types: tuple[type[BaseException], ...] | None = None
    predicate: Callable[[BaseException], object] | None = None

    @classmethod
    def build(cls, value: object, key: Key) -> ExceptionMatcher:
        """Validate *value*; raise `ConfigError` naming *key* if it selects nothing sane."""
        dotted = ConfigError(key, "").key
        if isinstance(value, type) and issubclass(value, BaseException):
            return cls(value, dotted, types=(value,))
        if isinstance(value, tuple):
            for index, item in enumerate(value):
                if not (isinstance(item, type) and issubclass(item, BaseException)):
                    raise ConfigError(
                        (*key, index), f"tuple items must be exception types, got {show(item)}"
                    )
            return cls(value, dotted, types=value)
        if isinstance(value, type):
            raise ConfigError(
                key, f"must be an exception type or a predicate, got the class {show(value)}"
            )
        if callable(value):
            return cls(value, dotted, predicate=function(value, key))
        raise ConfigError(
            key, f"must be an exception type, a tuple of them or a predicate, got {show(value)}"
        )

    def matches(self, exc: BaseException, *, if_broken: bool, function: str = "") -> bool:
        """Whether *exc* is selected; *if_broken* when the user's predicate raises."""
        if self.types is not None:
            return isinstance(exc, self.types)
        assert self.predicate is not None  # noqa: S101 - built with one or the other
        try:
            return bool(self.predicate(exc))
        except Exception as broken:
            from ._text import note_broken_predicate  # noqa: PLC0415 - rare path, no cycle

            note_broken_predicate(exc, broken, where=self.key, function=function)
            return if_broken

    def describe(self) -> str:
        """A short text for `describe()` output."""
        if self.types is not None:
            return "|".join(t.__name__ for t in self.types)
        return getattr(self.predicate, "__name__", "predicate")


def exception_matchers(values: object, key: Key) -> tuple[ExceptionMatcher, ...]:
    """Validate one exception type or predicate, or an iterable of them."""
    if isinstance(values, type) or callable(values):
        values = (values,)
    if not isinstance(values, Iterable) or isinstance(values, (str, bytes, Mapping)):
        raise ConfigError(
            key, f"must be a tuple of exception types or predicates, got {show(values)}"
        )
    return tuple(ExceptionMatcher.build(item, (*key, index)) for index, item in enumerate(values))


def show(value: object) -> str:
    """``repr(value)``, short and safe: a hostile ``__repr__`` cannot break the error."""
    try:
        shown = repr(value)
    except Exception:
        shown = f"<unprintable {type(value).__name__}>"
    limit = 120
    return shown if len(shown) <= limit else f"{shown[:limit]}… (+{len(shown) - limit} chars)"
