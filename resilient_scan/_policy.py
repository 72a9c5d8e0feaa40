"""What every policy's settings object shares: built once, converted once, coerced by `resilient`.

A policy is a frozen dataclass with an explicit ``__init__``: its signature is the one place
that declares the accepted inputs (``float | timedelta``), and it converts each argument once
with the converters of `resilient_scan._settings` before storing it through `Policy._assign`.
The decorator factories (``rs.retry``, ``rs.timeout``, ...) are the classes themselves.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, cast

from . import _settings
from ._errors import ConfigError, KeyPart

if TYPE_CHECKING:
    from typing_extensions import Self


class Policy:
    """Base of the policies' settings objects (frozen dataclasses with their own ``__init__``).

    Class attributes tell `resilient` how to read a shorthand for the policy:

    - ``kind``: the policy's name in keys and ``describe()`` (``"retry"``);
    - ``shorthand_field``: the setting a bare number sets (``"seconds"`` for a timeout), or None;
    - ``true_means_defaults``: whether ``True`` means "this layer, with default settings".
    """

    kind: ClassVar[str] = "policy"
    shorthand_field: ClassVar[str | None] = None
    true_means_defaults: ClassVar[bool] = False

    __slots__ = ()

    def _assign(self, **values: Any) -> None:
        """Store converted settings on this frozen object (its constructor's last step)."""
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @classmethod
    def settings(cls) -> tuple[str, ...]:
        """The names of the settings the constructor takes, in order."""
        parameters = inspect.signature(cls.__init__).parameters
        return tuple(name for name in parameters if name != "self")

    @classmethod
    def required_settings(cls) -> tuple[str, ...]:
        """The settings without a default."""
        parameters = inspect.signature(cls.__init__).parameters
        return tuple(
            name
            for name, parameter in parameters.items()
            if name != "self" and parameter.default is inspect.Parameter.empty
        )

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], *path: KeyPart) -> Self:
        """Build the policy from a table of its settings; errors name ``path.key``.

        *path* is where the table sits (default: the policy's own name).

        Unknown keys are errors with a "did you mean" hint.
        """
        key: tuple[KeyPart, ...] = path or (cls.kind,)
        table = _settings.mapping(table, key)
        _settings.reject_unknown(table, cls.settings(), key)
        for name in cls.required_settings():
            if name not in table:
                raise ConfigError((*key, name), "missing: this setting has no default")
        try:
            return cls(**table)
        except ConfigError as exc:
            raise cls._rekeyed(exc, path) from None

    @classmethod
    def _rekeyed(cls, exc: ConfigError, path: tuple[KeyPart, ...]) -> ConfigError:
        """*exc* with the policy's own name in its key replaced by *path* (if given).

        ``retry.attempts`` read from ``resilient(retry={...})`` is ``resilient.retry.attempts``.
        """
        if not path:
            return exc
        rest = exc.path[1:] if exc.path[:1] == (cls.kind,) else exc.path
        error = ConfigError((*path, *rest), exc.problem)
        error.__cause__ = exc.__cause__
        return error

    @classmethod
    def coerce(cls, value: object, *path: KeyPart) -> Self | None:
        """Read what `resilient` accepts for this layer: a policy, a table, a number, True, None."""
        if value is None or (value is False and cls.true_means_defaults):
            return None
        if isinstance(value, cls):
            return value
        if value is True and cls.true_means_defaults:
            return cls()
        if isinstance(value, Mapping):
            return cls.from_mapping(value, *path)
        is_number = isinstance(value, (int, float, timedelta)) and not isinstance(value, bool)
        if cls.shorthand_field is not None and is_number:
            try:
                return cls(**{cls.shorthand_field: value})
            except ConfigError as exc:
                raise cls._rekeyed(exc, path) from None
        raise ConfigError(
            path or (cls.kind,), f"must be {cls.accepts()}, got {_settings.show(value)}"
        )

    @classmethod
    def accepts(cls) -> str:
        """What `coerce` accepts, in words, for error messages."""
        parts = []
        if cls.shorthand_field is not None:
            parts.append(f"a number ({cls.shorthand_field})")
        if cls.true_means_defaults:
            parts.append("True (defaults)")
        parts += [f"a dict of {cls.kind} settings", f"a {cls.__name__}", "None"]
        return ", ".join(parts[:-1]) + " or " + parts[-1]

    def layer(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap *func* in this policy as one layer of `resilient`.

        The same as decorating, except that a layer does not count calls for the running
        scanner nor report `CallFinished`: the composite's outermost wrapper does, once per
        call. Policies whose own wrapper counts calls override this.
        """
        return cast("Callable[[Callable[..., Any]], Callable[..., Any]]", self)(func)

    def describe(self) -> str:  # pragma: no cover - every policy overrides it
        """A short text, as shown by ``resilient(...).describe()``."""
        return self.kind
