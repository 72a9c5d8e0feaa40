"""Scanners: what they are, how they are named, how a scanner class is built, and a registry.

A scanner is a function ``scan(state) -> list``, an object with a ``name`` and a ``scan``
method, or a class with those (built when it runs, never when it is disabled). Async
functions and ``async def scan`` methods are scanners too.

The construction rule for scanner classes (`Construction`), decided from the
constructor's signature before anything runs:

- a parameter named ``settings`` gets the scanner's own table (``scanners.NAME``);
- keyword-only parameters are filled from that table by name (a missing one keeps its
  default; a missing one without a default is a `ConfigError`); ``**kwargs`` takes the
  table's other keys;
- one other positional parameter gets the whole application config, as given to
  `ScanExecutor.from_config` (``config["discovery"]["scanners"][NAME]`` is then the
  class's own business, as in the seed system's ``BaseScanner.__init__(self, config)``);
- anything else (two such positional parameters, a required one with no config to give)
  is a `ConfigError` naming the class, raised before any scanner runs: never a class built
  with silent defaults. For any other way of building, pass ``construct=`` to the executor.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, TypeVar, overload, runtime_checkable

from ._calls import is_async
from ._errors import ConfigError
from ._settings import close_matches
from ._settings import show as _show_value
from ._state import state_view

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

#: Keys of a scanner's table that the executor itself reads (never constructor arguments).
EXECUTOR_KEYS = ("enabled", "timeout_seconds", "scan_method")


@dataclass(frozen=True)
class ScannerInfo:
    """The name, pipeline and default on/off switch of a scanner."""

    name: str
    pipeline: str | None = None
    enabled: bool = True

    def __post_init__(self) -> None:
        """Validate the fields."""
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(
                ("scanner", "name"), f"must be a non-empty string, got {_show_value(self.name)}"
            )
        if self.pipeline is not None and not isinstance(self.pipeline, str):
            raise ConfigError(
                ("scanner", "pipeline"),
                f"must be a string or None, got {_show_value(self.pipeline)}",
            )
        if not isinstance(self.enabled, bool):
            raise ConfigError(
                ("scanner", "enabled"), f"must be true or false, got {_show_value(self.enabled)}"
            )


@runtime_checkable
class ScannerObject(Protocol):
    """A scanner object: a ``name`` and a ``scan(state)`` method returning candidates."""

    name: str

    def scan(
        self, state: Mapping[str, Any]
    ) -> list[dict[str, Any]] | Awaitable[list[dict[str, Any]]]:
        """Return the candidates found (a list of dicts); ``async def scan`` works too."""
        ...


#: Anything `ScanExecutor.run` accepts as a scanner: a function ``scan(state)``, a scanner
#: object, or a scanner class (instantiated when it runs, never when it is disabled).
ScannerLike: TypeAlias = "Callable[..., Any] | ScannerObject | type[Any]"

#: Builds a scanner class: ``construct(cls, settings, config) -> instance``.
Constructor: TypeAlias = "Callable[[type[Any], Mapping[str, Any], Mapping[str, Any] | None], Any]"


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
    ``@resilient(...)``, and on ``async def`` functions. The function itself is left
    untouched: a thin wrapper carries the scanner's ``scanner_info``.
    """

    def mark(target: F) -> F:
        if isinstance(target, type) or not callable(target) or hasattr(target, "scan"):
            raise ConfigError(
                ("scanner",),
                "decorates scanner functions; a scanner class or object is named by its own"
                f" name (and pipeline) attributes, got {_show_value(target)}",
            )
        info = ScannerInfo(
            name=name if name is not None else getattr(target, "__name__", type(target).__name__),
            pipeline=pipeline,
            enabled=enabled,
        )
        marked: Any
        if is_async(target):

            @functools.wraps(target)
            async def scan_async(*args: Any, **kwargs: Any) -> Any:
                return await target(*args, **kwargs)

            marked = scan_async
        else:

            @functools.wraps(target)
            def scan(*args: Any, **kwargs: Any) -> Any:
                return target(*args, **kwargs)

            marked = scan
        marked.scanner_info = info
        return marked  # type: ignore[no-any-return]

    return mark(func) if func is not None else mark


def _info_of(label: str, *, name: str, pipeline: object, enabled: object) -> ScannerInfo:
    """A class's or object's `ScannerInfo`; a bad attribute's error names the scanner."""
    try:
        return ScannerInfo(name=name, pipeline=pipeline, enabled=_enabled(enabled))  # type: ignore[arg-type]
    except ConfigError as exc:  # ("scanner", "pipeline") -> ("scanners", label, "pipeline")
        raise ConfigError(("scanners", label, *exc.path[1:]), exc.problem) from None


def scanner_info(item: object, methods: Sequence[str] = ("scan",)) -> ScannerInfo:
    """Return the name, pipeline and on/off switch of a scanner, or raise `ConfigError`."""
    info = getattr(item, "scanner_info", None)
    if isinstance(info, ScannerInfo):
        return info
    if isinstance(item, type):
        if find_method(item, methods) is None:
            raise ConfigError(
                ("scanners",), f"scanner class {item.__name__} has no {_methods(methods)} method"
            )
        name = getattr(item, "name", None)
        return _info_of(
            item.__name__,
            name=name if isinstance(name, str) else item.__name__,
            pipeline=getattr(item, "pipeline", None),
            enabled=getattr(item, "enabled", True),
        )
    if find_method(item, methods) is not None:
        name = getattr(item, "name", None)
        if not isinstance(name, str):
            raise ConfigError(
                ("scanners",),
                f"scanner object {_show_value(item)} needs a string name, got {_show_value(name)}",
            )
        return _info_of(
            name,
            name=name,
            pipeline=getattr(item, "pipeline", None),
            enabled=getattr(item, "enabled", True),
        )
    if callable(item):
        return ScannerInfo(name=getattr(item, "__name__", type(item).__name__))
    raise ConfigError(
        ("scanners",),
        f"a scanner is a function, an object with scan(), or a class; got {_show_value(item)}",
    )


def _enabled(value: object) -> bool:
    # A seed-style class sets `enabled` per instance in __init__; on the class it may be
    # anything (a method, a property): only a real bool switches it off.
    return value if isinstance(value, bool) else True


def find_method(item: object, methods: Sequence[str]) -> str | None:
    """The first of *methods* that *item* (an object or a class) has, or None."""
    for method in methods:
        if callable(getattr(item, method, None)):
            return method
    return None


def _methods(methods: Sequence[str]) -> str:
    return " or ".join(f"{name}()" for name in methods)


@dataclass(frozen=True)
class Construction:
    """How a scanner class is built, decided once from its constructor's signature.

    Attributes:
        config: Pass the whole application config to the one positional parameter.
        settings: The parameter that gets the scanner's own table (``settings``), or None.
        keywords: Keyword-only parameters filled from that table.
        required: Those of them without a default.
        rest: Whether ``**kwargs`` takes the table's other keys.
    """

    config: bool = False
    settings: str | None = None
    keywords: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    rest: bool = False

    @classmethod
    def of(
        cls, target: type[Any], name: str, settings: Mapping[str, Any], *, has_config: bool
    ) -> Construction:
        """Read *target*'s constructor; `ConfigError` naming the class if it cannot be built."""
        where = ("scanners", name)
        label = f"scanner class {target.__qualname__}"
        try:
            parameters = list(inspect.signature(target).parameters.values())
        except (TypeError, ValueError):
            return cls()  # no signature to read (a builtin): built with no arguments
        kinds = inspect.Parameter
        settings_name = next(
            (
                p.name
                for p in parameters
                if p.name == "settings" and p.kind is not kinds.VAR_KEYWORD
            ),
            None,
        )
        others = [p for p in parameters if p.name != settings_name]
        keywords = tuple(p.name for p in others if p.kind is kinds.KEYWORD_ONLY)
        required = tuple(
            p.name for p in others if p.kind is kinds.KEYWORD_ONLY and p.default is kinds.empty
        )
        rest = any(p.kind is kinds.VAR_KEYWORD for p in others)
        positional = [
            p for p in others if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)
        ]
        if len(positional) > 1:
            names = ", ".join(p.name for p in positional)
            raise ConfigError(
                where,
                f"{label} takes {len(positional)} positional parameters ({names}); the executor"
                " passes the application config to one positional parameter, the scanner's"
                " table to one named 'settings' and its keys to keyword-only parameters."
                " Change the constructor, or pass construct= to the executor",
            )
        if positional and not has_config:
            raise ConfigError(
                where,
                f"{label} takes the whole application config (its parameter"
                f" {positional[0].name!r}), but this executor has none: build it with"
                " ScanExecutor.from_config(config), pass config=..., or name the parameter"
                " 'settings' to get the scanner's own table",
            )
        recipe = cls(bool(positional), settings_name, keywords, required, rest)
        recipe.check(target, name, settings)
        return recipe

    def check(self, target: type[Any], name: str, settings: Mapping[str, Any]) -> None:
        """Raise `ConfigError` if *settings* lack a required keyword or misspell one."""
        label = f"scanner class {target.__qualname__}"
        for keyword in self.required:
            if keyword not in settings:
                raise ConfigError(
                    ("scanners", name, keyword),
                    f"missing: {label} needs it (a keyword-only parameter without a default)",
                )
        if self.keywords and not self.rest and self.settings is None:
            for key in settings:
                if key in self.keywords or key in EXECUTOR_KEYS or not isinstance(key, str):
                    continue
                close = close_matches(key, self.keywords, cutoff=0.8)
                if close:
                    raise ConfigError(
                        ("scanners", name, key),
                        f"{label} has no parameter {key!r} (did you mean {close[0]!r}?)",
                    )

    def build(
        self, target: type[Any], settings: Mapping[str, Any], config: Mapping[str, Any] | None
    ) -> Any:
        """Build an instance of *target* (when the scanner runs)."""
        args: list[Any] = [config] if self.config else []
        kwargs: dict[str, Any] = {}
        # A copy-on-write view, as a scanner's state is: a constructor that changes its
        # settings (or a list in them) changes neither the next run's nor the caller's.
        view = state_view(settings)
        if self.settings is not None:
            kwargs[self.settings] = view
        for keyword in self.keywords:
            if keyword in view:
                kwargs[keyword] = view[keyword]
        if self.rest:
            taken = {*self.keywords, *EXECUTOR_KEYS}
            if self.settings is not None:
                taken.add(self.settings)
            kwargs.update((k, view[k]) for k in view if k not in taken)
        return target(*args, **kwargs)


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
                    ("scanners", info.name), "a scanner with this name is already registered"
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
