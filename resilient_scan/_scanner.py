"""Scanners: what they are, how they are named, and a registry for those who want one."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, TypeVar, overload, runtime_checkable

from ._errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


@dataclass(frozen=True)
class ScannerInfo:
    """The name, pipeline and default on/off switch of a scanner."""

    name: str
    pipeline: str | None = None
    enabled: bool = True

    def __post_init__(self) -> None:
        """Validate the fields."""
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError("scanner.name", f"must be a non-empty string, got {self.name!r}")
        if self.pipeline is not None and not isinstance(self.pipeline, str):
            raise ConfigError(
                "scanner.pipeline", f"must be a string or None, got {self.pipeline!r}"
            )
        if not isinstance(self.enabled, bool):
            raise ConfigError("scanner.enabled", f"must be true or false, got {self.enabled!r}")


@runtime_checkable
class ScannerObject(Protocol):
    """A scanner object: a ``name`` and a ``scan(state)`` method returning candidates."""

    name: str

    def scan(self, state: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Return the candidates found (a list of dicts)."""
        ...


#: Anything `ScanExecutor.run` accepts as a scanner: a function ``scan(state)``, a scanner
#: object, or a scanner class (instantiated when it runs, never when it is disabled).
ScannerLike: TypeAlias = "Callable[..., Any] | ScannerObject | type[Any]"


@overload
def scanner(func: F, /) -> F: ...
@overload
def scanner(
    *, name: str | None = None, pipeline: str | None = None, enabled: bool = True
) -> Callable[[F], F]: ...
def scanner(
    func: F | None = None,
    /,
    *,
    name: str | None = None,
    pipeline: str | None = None,
    enabled: bool = True,
) -> F | Callable[[F], F]:
    """Mark a function ``scan(state) -> list[dict]`` as a scanner with a name and pipeline.

    The name defaults to the function's ``__name__``. Works above or below
    ``@resilient(...)``. The function itself is left untouched: a thin wrapper carries the
    scanner's ``scanner_info``.
    """

    def mark(target: F) -> F:
        if isinstance(target, type) or not callable(target) or hasattr(target, "scan"):
            raise ConfigError(
                "scanner",
                "decorates scanner functions; a scanner class or object is named by its own"
                f" name (and pipeline) attributes, got {target!r}",
            )
        info = ScannerInfo(
            name=name if name is not None else getattr(target, "__name__", type(target).__name__),
            pipeline=pipeline,
            enabled=enabled,
        )

        @functools.wraps(target)
        def scan(*args: Any, **kwargs: Any) -> Any:
            return target(*args, **kwargs)

        marked: Any = scan
        marked.scanner_info = info
        return marked  # type: ignore[no-any-return]

    return mark(func) if func is not None else mark


def scanner_info(item: object) -> ScannerInfo:
    """Return the name, pipeline and on/off switch of a scanner, or raise `ConfigError`."""
    info = getattr(item, "scanner_info", None)
    if isinstance(info, ScannerInfo):
        return info
    if isinstance(item, type):
        if not callable(getattr(item, "scan", None)):
            raise ConfigError("scanners", f"scanner class {item.__name__} has no scan() method")
        name = getattr(item, "name", None)
        return ScannerInfo(
            name=name if isinstance(name, str) else item.__name__,
            pipeline=getattr(item, "pipeline", None),
            enabled=getattr(item, "enabled", True),
        )
    if callable(getattr(item, "scan", None)):
        name = getattr(item, "name", None)
        if not isinstance(name, str):
            raise ConfigError(
                "scanners", f"scanner object {item!r} needs a string name, got {name!r}"
            )
        return ScannerInfo(
            name=name,
            pipeline=getattr(item, "pipeline", None),
            enabled=getattr(item, "enabled", True),
        )
    if callable(item):
        return ScannerInfo(name=getattr(item, "__name__", type(item).__name__))
    raise ConfigError(
        "scanners", f"a scanner is a function, an object with scan(), or a class; got {item!r}"
    )


def scan_callable(item: object, settings: Mapping[str, Any]) -> Callable[[Any], Any]:
    """Return the callable that runs *item* on a state; instantiates a scanner class.

    A class is instantiated here, when the scanner runs, so a disabled one never is. Its
    constructor gets the scanner's settings mapping if it takes an argument.
    """
    if isinstance(item, type):
        try:
            takes_settings = bool(inspect.signature(item).parameters)
        except (TypeError, ValueError):
            takes_settings = False
        # A copy: a constructor that changes its settings must not change the next run's.
        instance = item(dict(settings)) if takes_settings else item()
        return instance.scan  # type: ignore[no-any-return]
    if getattr(item, "scanner_info", None) is None and callable(getattr(item, "scan", None)):
        return item.scan  # type: ignore[attr-defined,no-any-return]
    return item  # type: ignore[return-value]


class ScannerRegistry:
    """Scanners by name, for applications that collect them in one place.

    ``register`` works as a decorator (with or without arguments) and as a plain call. Two
    scanners with one name are an error, never a silent overwrite.
    """

    def __init__(self) -> None:
        """Create an empty registry."""
        self._scanners: dict[str, Any] = {}
        self._info: dict[str, ScannerInfo] = {}

    @overload
    def register(self, item: T, /) -> T: ...
    @overload
    def register(
        self, /, *, name: str | None = None, pipeline: str | None = None, enabled: bool = True
    ) -> Callable[[T], T]: ...
    def register(
        self,
        item: Any = None,
        /,
        *,
        name: str | None = None,
        pipeline: str | None = None,
        enabled: bool = True,
    ) -> Any:
        """Add a scanner (function, object or class); return it unchanged.

        Keyword arguments name a plain function as `scanner` would.
        """

        def add(target: Any) -> Any:
            marked = target
            if name is not None or pipeline is not None or not enabled:
                # Functions only: scanner() rejects classes and objects, which carry their
                # own name and pipeline attributes.
                marked = scanner(name=name, pipeline=pipeline, enabled=enabled)(target)
            info = scanner_info(marked)
            if info.name in self._scanners:
                raise ConfigError(
                    f"scanners.{info.name}", "a scanner with this name is already registered"
                )
            self._scanners[info.name] = marked
            self._info[info.name] = info
            return marked

        return add(item) if item is not None else add

    def get(self, name: str) -> Any:
        """Return the scanner named *name*; `KeyError` naming it if there is none."""
        try:
            return self._scanners[name]
        except KeyError:
            known = ", ".join(sorted(self._scanners)) or "none"
            raise KeyError(f"no scanner named {name!r}; registered: {known}") from None

    def names(self) -> list[str]:
        """Return the registered names in registration order."""
        return list(self._scanners)

    def pipelines(self) -> list[str]:
        """Return the distinct pipeline names, in registration order."""
        return list(
            dict.fromkeys(i.pipeline for i in self._info.values() if i.pipeline is not None)
        )

    def by_pipeline(self, pipeline: str | None) -> list[Any]:
        """Return the scanners of *pipeline* (None: those without one), in order."""
        return [self._scanners[n] for n, i in self._info.items() if i.pipeline == pipeline]

    def __iter__(self) -> Iterator[Any]:
        """Iterate the scanners in registration order."""
        return iter(list(self._scanners.values()))

    def __len__(self) -> int:
        """Return the number of registered scanners."""
        return len(self._scanners)

    def __contains__(self, name: object) -> bool:
        """Whether a scanner named *name* is registered."""
        return name in self._scanners
