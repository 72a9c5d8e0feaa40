"""Checks shared by every policy and the executor: each names the bad key and value."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any, TypeAlias

from ._errors import ConfigError

#: What users may pass to select exceptions: a type, a tuple of types, or a predicate.
ExceptionFilter: TypeAlias = (
    "type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]"
)


def seconds(value: object, key: str, *, allow_zero: bool = False) -> float:
    """Return *value* as float seconds, or raise `ConfigError` naming *key*."""
    if isinstance(value, timedelta):
        number = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        raise ConfigError(key, f"must be a number of seconds or a timedelta, got {value!r}")
    if math.isnan(number) or math.isinf(number):
        raise ConfigError(key, f"must be a finite number of seconds, got {value!r}")
    if number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(key, f"must be {bound} seconds, got {value!r}")
    return number


def integer(value: object, key: str, *, minimum: int) -> int:
    """Return *value* as an int no smaller than *minimum*, or raise `ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(key, f"must be an integer >= {minimum}, got {value!r}")
    return value


def boolean(value: object, key: str) -> bool:
    """Return *value* if it is a bool, or raise `ConfigError`."""
    if not isinstance(value, bool):
        raise ConfigError(key, f"must be true or false, got {value!r}")
    return value


def exception_filter(value: object, key: str) -> Callable[[BaseException], bool]:
    """Turn a type, a tuple of types or a predicate into a predicate over exceptions."""
    if isinstance(value, type) and issubclass(value, BaseException):
        exc_type = value
        return lambda exc: isinstance(exc, exc_type)
    if isinstance(value, tuple):
        for item in value:
            if not (isinstance(item, type) and issubclass(item, BaseException)):
                raise ConfigError(key, f"tuple items must be exception types, got {item!r}")
        types = value
        return lambda exc: isinstance(exc, types)
    if isinstance(value, type):
        raise ConfigError(key, f"must be an exception type or a predicate, got the class {value!r}")
    if callable(value):
        predicate: Callable[[BaseException], Any] = value
        return lambda exc: bool(predicate(exc))
    raise ConfigError(
        key, f"must be an exception type, a tuple of them or a predicate, got {value!r}"
    )


def exclusions(values: object, key: str) -> tuple[ExceptionFilter, ...]:
    """Validate one exception type or predicate, or an iterable of them; return a tuple."""
    if isinstance(values, type) or callable(values):
        values = (values,)
    if not isinstance(values, Iterable) or isinstance(values, (str, bytes)):
        raise ConfigError(key, f"must be a tuple of exception types or predicates, got {values!r}")
    items = tuple(values)
    for index, item in enumerate(items):
        exception_filter(item, f"{key}[{index}]")
    return items


def callable_or_none(value: object, key: str) -> None:
    """Raise `ConfigError` unless *value* is None or callable."""
    if value is not None and not callable(value):
        raise ConfigError(key, f"must be callable, got {value!r}")


def decorated(func: object, policy: str) -> None:
    """Raise `ConfigError` unless *func* can be decorated (is callable)."""
    if not callable(func):
        raise ConfigError(policy, f"can only decorate a callable, got {func!r}")


def reject_unknown(mapping: Mapping[str, object], allowed: Iterable[str], where: str) -> None:
    """Raise `ConfigError` naming the first key of *mapping* not in *allowed*."""
    allowed = tuple(allowed)
    for name in mapping:
        if name not in allowed:
            close = difflib.get_close_matches(str(name), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(sorted(allowed))
            key = f"{where}.{name}" if where else str(name)
            raise ConfigError(key, f"unknown key{hint}; known keys: {known}")
