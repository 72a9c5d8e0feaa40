"""Dispatching events to hooks: the one seam every layer reports through.

Emit sites ask `wanted(EventType)` before they build an event, so an event nobody listens
to costs one dictionary lookup and one context-variable read. `emit` hands the event to the
running scanner's recorder (the executor's per-scanner statistics) and to every hook that
wants its type. A hook that raises never changes an outcome: the failure is reported once
per hook on stderr, as `logging.Handler.handleError` does, and the event goes on to the
other hooks.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from . import _config
from ._config import CURRENT_SCAN
from ._events import DEBUG, EVENT_TYPES, Event


@runtime_checkable
class Hook(Protocol):
    """Anything that takes an event: ``hook(event) -> None``.

    Optional attributes refine what it receives:

    - ``events``: a collection of event classes it wants (absent or None: all of them);
    - ``enabled_for(level) -> bool``: whether it would do anything with an event of that
      `logging` level right now (asked before debug events are even built).
    """

    def __call__(self, event: Event) -> None:
        """Handle one event."""
        ...


@dataclass(frozen=True)
class HookFactory:
    """A hook created on first use: ``HookFactory(lambda: PrometheusHook())``.

    Importing a metrics or tracing library can be slow; a factory defers that cost until the
    first event is emitted.
    """

    factory: Callable[[], Hook]


@dataclass
class Dispatch:
    """The resolved hooks, and which of them want which event types."""

    hooks: tuple[Hook, ...]
    by_type: dict[type[Event], tuple[Hook, ...]] = field(default_factory=dict)
    gated: dict[type[Event], tuple[Hook, ...]] = field(default_factory=dict)
    failed: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def of(cls, hooks: Iterable[Hook]) -> Dispatch:
        """Index *hooks* by the event types they want."""
        resolved = tuple(hooks)
        dispatch = cls(resolved)
        for event_type in EVENT_TYPES.values():
            takers = tuple(hook for hook in resolved if _wants(hook, event_type))
            if takers:
                dispatch.by_type[event_type] = takers
                dispatch.gated[event_type] = tuple(
                    hook for hook in takers if callable(getattr(hook, "enabled_for", None))
                )
        return dispatch

    def report_failure(self, hook: Hook, exc: Exception) -> None:
        """Write a hook's failure to stderr, once per hook."""
        with self.lock:
            if id(hook) in self.failed:
                return
            self.failed.add(id(hook))
        try:
            sys.stderr.write(
                f"resilient_scan: instrumentation hook {hook!r} raised; it is skipped for"
                " this event and further failures of it are not reported:\n"
            )
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        except Exception:  # noqa: S110 - stderr itself may be gone (a closed pipe)
            pass


def _wants(hook: Hook, event_type: type[Event]) -> bool:
    events = getattr(hook, "events", None)
    return events is None or event_type in events


def _resolve(hooks: Iterable[Hook | HookFactory]) -> list[Hook]:
    resolved: list[Hook] = []
    for hook in hooks:
        if isinstance(hook, HookFactory):
            resolved.append(hook.factory())
        elif callable(hook):
            resolved.append(hook)
        else:
            from ._errors import ConfigError  # noqa: PLC0415 - rare path

            raise ConfigError(("hooks",), f"a hook must be callable, got {hook!r}")
    return resolved


#: The hook specs set by the application (None: the default), resolved on first emit.
_SPECS: list[tuple[Hook | HookFactory, ...] | None] = [None]


def dispatch() -> Dispatch:
    """Return the current dispatch table, resolving the hooks on first use."""
    current = _config.RUNTIME.dispatch
    if current is None:
        with _config.RUNTIME.lock:
            current = _config.RUNTIME.dispatch
            if current is None:
                specs = _SPECS[0]
                if specs is None:
                    from ._loghooks import default_hooks  # noqa: PLC0415 - lazy on purpose

                    specs = default_hooks()
                current = _config.RUNTIME.dispatch = Dispatch.of(_resolve(specs))
    return current


def set_hooks(hooks: Iterable[Hook | HookFactory] | None) -> None:
    """Replace the hooks (None: back to the default), effective for the next event."""
    specs = None if hooks is None else tuple(hooks)
    if specs is not None:
        _resolve(hook for hook in specs if not isinstance(hook, HookFactory))  # check early
    _SPECS[0] = specs
    _config.RUNTIME.dispatch = None


def get_hooks() -> tuple[Hook, ...]:
    """Return the active hooks (factories resolved)."""
    return dispatch().hooks


def add_hook(hook: Hook) -> None:
    """Add *hook* to the active hooks."""
    set_hooks((*get_hooks(), hook))


def remove_hook(hook: Hook) -> None:
    """Remove *hook* from the active hooks (nothing if it is not one)."""
    set_hooks(tuple(h for h in get_hooks() if h is not hook))


def wanted(event_type: type[Event]) -> bool:
    """Whether an event of *event_type* would reach anyone: ask before building one."""
    if CURRENT_SCAN.get() is not None:
        return True
    current = _config.RUNTIME.dispatch or dispatch()
    takers = current.by_type.get(event_type)
    if not takers:
        return False
    if event_type.level > DEBUG:
        return True
    gated = current.gated[event_type]
    if len(gated) < len(takers):
        return True  # a hook without a level gate takes everything
    return any(hook.enabled_for(DEBUG) for hook in gated)  # type: ignore[attr-defined]


def emit(event: Event) -> None:
    """Hand *event* to the running scanner's recorder and to every hook that wants it."""
    recorder = CURRENT_SCAN.get()
    if recorder is not None:
        recorder.observe(event)
    current = _config.RUNTIME.dispatch or dispatch()
    for hook in current.by_type.get(type(event), ()):
        try:
            hook(event)
        except Exception as exc:
            current.report_failure(hook, exc)


def emit_if_wanted(event_type: type[Event], build: Callable[[], Event]) -> None:
    """Build and emit an event only when someone wants it (for events built at some cost)."""
    if wanted(event_type):
        emit(build())

