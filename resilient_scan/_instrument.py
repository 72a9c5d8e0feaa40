"""Dispatching events to hooks: the one seam every layer reports through.

Emit sites ask `wanted(EventType)` before they build an event, so an event nobody listens
to costs one dictionary lookup and one context-variable read. `emit` hands the event to the
running scanner's recorder (the executor's per-scanner statistics) and to every hook that
wants its type. A hook that raises never changes an outcome: the failure is reported once
per hook on stderr, as `logging.Handler.handleError` does, and the event goes on to the
other hooks.

The active hooks are one immutable `Dispatch` table in `_config.RUNTIME.dispatch`, replaced
whole (under the runtime's lock) whenever the hooks change: readers on hot paths take no
lock, and always see either the old table or the new one.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from types import FunctionType, MethodType
from typing import Final, Protocol, runtime_checkable

from . import _config
from ._config import CURRENT_SCAN
from ._events import EVENT_TYPES, AttemptFinished, AttemptStarted, CallFinished, Event


@runtime_checkable
class Hook(Protocol):
    """Anything that takes an event: ``hook(event) -> None``.

    Optional attributes refine what it receives:

    - ``events``: a collection of event classes it wants (absent or None: all of them);
    - ``enabled_for(level) -> bool``: whether it would do anything with an event of that
      `logging` level right now (asked before events are even built).
    """

    def __call__(self, event: Event) -> None:
        """Handle one event."""
        ...


class HookFactory:
    """A hook created on first use: ``HookFactory(PrometheusHook)``.

    Importing a metrics or tracing library can be slow; a factory defers that cost (and
    the import) until the first event is emitted. A factory that raises, or returns
    something that is not callable, is reported once on stderr and dropped.
    """

    __slots__ = ("factory",)

    def __init__(self, factory: Callable[[], Hook]) -> None:
        """Call *factory* (no arguments) on first use to create the hook."""
        self.factory = factory

    def __repr__(self) -> str:
        """``HookFactory(<factory>)``."""
        return f"HookFactory({self.factory!r})"

    def __eq__(self, other: object) -> bool:
        """Factories are equal when they call the same factory."""
        if not isinstance(other, HookFactory):
            return NotImplemented
        return self.factory == other.factory

    def __hash__(self) -> int:
        """Hash of the factory."""
        return hash(self.factory)


class _Deferred:
    """Stands in for a `HookFactory` in the table until its first event resolves it.

    It takes every event (what the real hook wants is not known yet); the first one
    creates the hook, puts it in the table in its place, and hands it the event if it
    wants it.
    """

    __slots__ = ("_hook", "_lock", "_resolving", "_settled", "spec")

    def __init__(self, spec: HookFactory) -> None:
        self.spec = spec
        self._lock = threading.Lock()
        self._hook: Hook | None = None
        self._settled = False
        # The thread running the factory: an event it emits meanwhile (the factory may call
        # resilient code) skips this hook instead of waiting on the lock it holds.
        self._resolving: int | None = None

    def __repr__(self) -> str:
        return f"<unresolved {self.spec!r}>"

    def resolve(self) -> Hook | None:
        """The hook (created on the first call), or None if its factory failed.

        None too for an event emitted by the factory itself while it runs.
        """
        if self._settled:
            return self._hook
        if self._resolving == threading.get_ident():
            return None
        with self._lock:
            if not self._settled:
                self._resolving = threading.get_ident()
                try:
                    hook: object = self.spec.factory()
                except Exception as exc:
                    report_failure(self.spec, exc, None)
                else:
                    if callable(hook):
                        self._hook = hook
                    else:
                        problem = TypeError(f"the factory returned {hook!r}: not callable")
                        report_failure(self.spec, problem, None)
                finally:
                    self._resolving = None
                self._settled = True
                _replace_deferred(self)
        return self._hook

    def __call__(self, event: Event) -> None:
        hook = self.resolve()
        if hook is not None and _wants(hook, type(event)) and _enabled(hook, event.severity):
            hook(event)


def _wants(hook: object, event_type: type[Event]) -> bool:
    events = getattr(hook, "events", None)
    return events is None or event_type in events


def _enabled(hook: object, level: int) -> bool:
    enabled_for = getattr(hook, "enabled_for", None)
    return not callable(enabled_for) or bool(enabled_for(level))


def _caller(hook: Hook) -> Callable[[Event], None]:
    """What `emit` calls for *hook*: its bound ``__call__`` when its class defines one."""
    if isinstance(type(hook).__call__, FunctionType):  # a class with `def __call__`
        call: Callable[[Event], None] = hook.__call__
        return call
    return hook


def _hook_of(call: Callable[[Event], None]) -> object:
    """The hook behind what `emit` calls (for reporting its failure once per hook)."""
    owner = getattr(call, "__self__", None)
    return call if owner is None or not isinstance(call, MethodType) else owner


def _severity_is_level(event_type: type[Event]) -> bool:
    """Whether every event of *event_type* has its class's level (no louder values)."""
    return event_type.severity is Event.severity


def _recorded_types() -> frozenset[type[Event]]:
    """The event types a scanner's recorder takes (all of them, unless it says otherwise)."""
    from ._stats import ScanRecorder  # noqa: PLC0415 - stats import events, as we do

    events = getattr(ScanRecorder, "events", None)
    if events is None:
        return frozenset(EVENT_TYPES.values())
    recorded = tuple(events)
    return frozenset(kind for kind in EVENT_TYPES.values() if issubclass(kind, recorded))


#: What `Dispatch.routes` holds for an event type some hook always takes.
_ALWAYS: Final = True

#: The last dispatch table built that no hook takes a per-call event from (`CallFinished`,
#: `AttemptStarted`, `AttemptFinished`). Hot paths compare the current table with it by
#: identity: while it is the current one and no scanner runs, nobody counts or reports
#: calls, and wrappers take their fast path.
QUIET_DISPATCH: Final[list[object]] = [object()]


def _any_gate(gates: tuple[Callable[[int], bool], ...]) -> Callable[[int], bool]:
    """One gate for several hooks' ``enabled_for``: open when one of them is."""

    def any_enabled(level: int) -> bool:
        for enabled_for in gates:
            try:
                if enabled_for(level):
                    return True
            except Exception as exc:  # noqa: PERF203 - free in 3.11; a gate is user code
                report_failure(getattr(enabled_for, "__self__", enabled_for), exc, None)
                return True  # a broken gate: let the event through
        return False

    return any_enabled


class Dispatch:
    """The active hooks, indexed by the event types they want (immutable once built).

    Attributes:
        specs: The hooks as given (`HookFactory` objects included), in order.
        hooks: The same, with each factory replaced by its hook (or a stand-in until its
            first event).
        by_type: For each event type, how to call the hooks that take it (absent: none):
            the hook, or its bound ``__call__`` (calling that is cheaper than calling an
            instance, which looks ``__call__`` up on every call).
        routes: For `wanted`: `True` when some hook takes the type at any level, else the
            one gate to ask with the type's level (absent: no hook takes it): a hook's own
            ``enabled_for``, or one that asks each of several.
        gates: For `wanted_at`: the ``enabled_for`` methods to ask, for a level the caller
            names (so also for types whose events may be louder than their class's level).
        in_scan: The event types the running scanner's recorder takes.
        per_call: Whether some hook takes a per-call event (`CallFinished`,
            `AttemptStarted`, `AttemptFinished`), at some level.
        traced: Whether some hook, or a running scanner's recorder, takes attempt events:
            if not, policies need not time or report attempts one by one.
    """

    __slots__ = (
        "by_type",
        "gates",
        "hooks",
        "in_scan",
        "per_call",
        "routes",
        "specs",
        "traced",
    )

    def __init__(self, specs: Iterable[Hook | HookFactory], hooks: Iterable[Hook]) -> None:
        """Index *hooks* (the resolved *specs*, in the same order)."""
        self.specs = tuple(specs)
        self.hooks = tuple(hooks)
        self.by_type: dict[type[Event], tuple[Callable[[Event], None], ...]] = {}
        self.routes: dict[type[Event], bool | Callable[[int], bool]] = {}
        self.gates: dict[type[Event], bool | tuple[Callable[[int], bool], ...]] = {}
        self.in_scan = _recorded_types()
        for event_type in EVENT_TYPES.values():
            takers = tuple(hook for hook in self.hooks if _wants(hook, event_type))
            if not takers:
                continue
            self.by_type[event_type] = tuple(_caller(hook) for hook in takers)
            found = [getattr(hook, "enabled_for", None) for hook in takers]
            gates = tuple(gate for gate in found if callable(gate))
            gated = len(gates) == len(found)
            # For a level the caller names (`wanted_at`), every gate can be asked; for the
            # class's level (`wanted`), only where no event of the type is ever louder.
            self.gates[event_type] = gates if gated else _ALWAYS
            if _severity_is_level(event_type) and gated:
                self.routes[event_type] = gates[0] if len(gates) == 1 else _any_gate(gates)
            else:
                self.routes[event_type] = _ALWAYS
        attempts = (AttemptStarted, AttemptFinished)
        self.per_call = any(kind in self.by_type for kind in (CallFinished, *attempts))
        self.traced = any(kind in self.by_type or kind in self.in_scan for kind in attempts)
        if not self.per_call:
            QUIET_DISPATCH[0] = self  # tables are installed as soon as they are built

    @classmethod
    def of(cls, specs: Iterable[Hook | HookFactory]) -> Dispatch:
        """Build the table for *specs*; factories get a stand-in until their first event."""
        specs = tuple(specs)
        return cls(specs, (_Deferred(s) if isinstance(s, HookFactory) else s for s in specs))

    def replacing(self, old: Hook, new: Hook | None) -> Dispatch:
        """A table where *old* is *new* (None: removed), the specs unchanged otherwise."""
        pairs = [
            (spec, new if hook is old else hook)
            for spec, hook in zip(self.specs, self.hooks, strict=True)
            if not (hook is old and new is None)
        ]
        return Dispatch((spec for spec, _ in pairs), (hook for _, hook in pairs))  # type: ignore[misc]


def _forget_locks_after_fork() -> None:
    # A factory may have been running in a thread of the parent when it forked: that
    # thread does not exist here, and the lock it held would stay held.
    current = _config.RUNTIME.dispatch
    for hook in () if current is None else current.hooks:
        if isinstance(hook, _Deferred):
            hook._lock = threading.Lock()  # noqa: SLF001
            hook._resolving = None  # noqa: SLF001 - thread ids are reused in the child


_config.on_fork_in_child(_forget_locks_after_fork)


def _replace_deferred(deferred: _Deferred) -> None:
    with _config.RUNTIME.lock:
        current = _config.RUNTIME.dispatch
        if current is not None and any(hook is deferred for hook in current.hooks):
            _config.RUNTIME.dispatch = current.replacing(deferred, deferred._hook)  # noqa: SLF001


def _check(hooks: Iterable[Hook | HookFactory]) -> tuple[Hook | HookFactory, ...]:
    checked = tuple(hooks)
    given: tuple[object, ...] = checked  # typed as hooks, but whatever the caller passed
    for index, hook in enumerate(given):
        if not isinstance(hook, HookFactory) and not callable(hook):
            from ._errors import ConfigError  # noqa: PLC0415 - rare path

            raise ConfigError(("hooks", index), f"a hook must be callable, got {hook!r}")
    return checked


def _current_locked() -> Dispatch:
    """The current table, building the default one if needed (runtime lock held)."""
    current = _config.RUNTIME.dispatch
    if current is None:
        from ._loghooks import default_hooks  # noqa: PLC0415 - lazy on purpose

        current = _config.RUNTIME.dispatch = Dispatch.of(default_hooks())
    return current


def dispatch() -> Dispatch:
    """Return the current dispatch table, building the default one on first use."""
    current = _config.RUNTIME.dispatch
    if current is None:
        with _config.RUNTIME.lock:
            current = _current_locked()
    return current


def set_hooks(hooks: Iterable[Hook | HookFactory] | None) -> None:
    """Replace the hooks (None: back to the default), effective for the next event.

    Raises:
        ConfigError: if a hook is neither callable nor a `HookFactory` (nothing changes).
    """
    specs = None if hooks is None else _check(hooks)
    with _config.RUNTIME.lock:
        _config.RUNTIME.dispatch = None if specs is None else Dispatch.of(specs)


def get_hooks() -> tuple[Hook, ...]:
    """Return the active hooks, creating those given as a `HookFactory` now."""
    for hook in dispatch().hooks:
        if isinstance(hook, _Deferred):
            hook.resolve()
    return tuple(hook for hook in dispatch().hooks if not isinstance(hook, _Deferred))


def add_hook(hook: Hook | HookFactory) -> None:
    """Add *hook* (or a `HookFactory`) after the active hooks."""
    (spec,) = _check((hook,))
    with _config.RUNTIME.lock:
        current = _current_locked()
        added = _Deferred(spec) if isinstance(spec, HookFactory) else spec
        _config.RUNTIME.dispatch = Dispatch((*current.specs, spec), (*current.hooks, added))


def remove_hook(hook: Hook | HookFactory) -> None:
    """Remove *hook* from the active hooks (nothing if it is not one of them).

    A `HookFactory` removes the hook it created, and a hook created by a factory can be
    removed by itself.
    """
    with _config.RUNTIME.lock:
        current = _current_locked()
        kept = [
            (spec, resolved)
            for spec, resolved in zip(current.specs, current.hooks, strict=True)
            if spec is not hook and resolved is not hook
        ]
        if len(kept) != len(current.hooks):
            _config.RUNTIME.dispatch = Dispatch(
                (spec for spec, _ in kept),
                (resolved for _, resolved in kept),
            )


# Bound once for the hot paths: `_config.reset` and fork handling update this very object.
_RUNTIME: Final = _config.RUNTIME


def wanted(event_type: type[Event]) -> bool:
    """Whether an event of *event_type* would reach anyone: ask before building one."""
    current = _RUNTIME.dispatch or dispatch()
    route = current.routes.get(event_type)
    if route is _ALWAYS:
        return True
    if route is not None:
        try:
            if route(event_type.level):  # type: ignore[operator]
                return True
        except Exception as exc:  # a gate is user code
            report_failure(getattr(route, "__self__", route), exc, None)
            return True  # a broken gate: let the event through
    return CURRENT_SCAN.get() is not None and event_type in current.in_scan


def wanted_at(event_type: type[Event], level: int) -> bool:
    """Whether a hook would take an event of *event_type* at *level* right now.

    Like `wanted`, without the running scanner's recorder, and for a level the caller
    names (an executor asks once per run for its scanners' events at each level).
    """
    current = _RUNTIME.dispatch or dispatch()
    route = current.gates.get(event_type)
    if route is None:
        return False
    if route is _ALWAYS:
        return True
    for enabled_for in route:  # type: ignore[union-attr]
        try:
            if enabled_for(level):
                return True
        except Exception as exc:  # noqa: PERF203 - free in 3.11; a gate is user code
            report_failure(getattr(enabled_for, "__self__", enabled_for), exc, None)
            return True
    return False


def emit(event: Event) -> None:
    """Hand *event* to the running scanner's recorder and to every hook that wants it.

    Never raises (an `Exception`): a failing hook or recorder is reported once on stderr.
    """
    current = _RUNTIME.dispatch or dispatch()
    kind = type(event)
    recorder = CURRENT_SCAN.get()
    if recorder is not None and kind in current.in_scan:  # only what it counts or notes
        try:
            recorder.observe(event)
        except Exception as exc:
            report_failure(type(recorder), exc, event)
    for call in current.by_type.get(kind, ()):
        try:
            call(event)
        except Exception as exc:  # noqa: PERF203 - free in 3.11; hooks are user code
            report_failure(_hook_of(call), exc, event)


def wanted_quietly(event_type: type[Event]) -> bool:
    """`wanted`, for code that must never fail for logging's sake (a run, a worker).

    A hook that cannot even be set up is no hook: False.
    """
    try:
        return wanted(event_type)
    except Exception:
        return False


def emit_quietly(event: Event) -> None:
    """`emit`, letting nothing escape, not even a hook's `BaseException` (on a worker)."""
    # A try statement: contextlib.suppress costs an object and two calls, once per scanner.
    try:  # noqa: SIM105
        emit(event)
    except BaseException:  # noqa: S110 - emit reported a hook's failure; none is ours
        pass


def emit_if_wanted(event_type: type[Event], build: Callable[[], Event]) -> None:
    """Build and emit an event only when someone wants it (for events built at some cost)."""
    if wanted(event_type):
        emit(build())


def report_failure(hook: object, exc: BaseException, event: Event | None) -> None:
    """Write a hook's failure to stderr, the first time that hook fails.

    Like `logging.Handler.handleError`: the application keeps running with its outcome
    unchanged; the traceback says what broke. The hooks already reported are kept with
    the rest of the process's state (`_config.RUNTIME`), across changes of the hooks.
    """
    with _config.RUNTIME.lock:
        failed: dict[int, object] = _config.RUNTIME.extras.setdefault("failed_hooks", {})
        if id(hook) in failed:
            return
        failed[id(hook)] = hook  # kept alive, so its id is never reused for another hook
    handling = "" if event is None else f" while handling {event.name}"
    try:
        stream = sys.stderr
        if stream is None:  # no console (pythonw)
            return
        stream.write(
            f"--- resilient_scan: instrumentation hook {_describe(hook)} raised{handling} ---\n"
            "The outcome of the call is unchanged and the other hooks got the event; further"
            " failures of this hook are not reported.\n"
        )
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=stream)
        stream.flush()
    except Exception:  # noqa: S110 - stderr itself may be gone (a closed pipe)
        pass


def _describe(hook: object) -> str:
    try:
        return repr(hook)
    except Exception:
        return f"<{type(hook).__name__} object>"
