"""Copy-on-write views of the caller's state: one per scanner.

Scanners may change the state they are given, and must not see each other's changes nor
change the caller's. A deep copy per scanner does that at a cost that grows with the whole
state (a 50 MB price history copied for every scanner) and fails on what cannot be copied
(API clients, locks, bound methods). A view copies one level of a dict or list, and only
when the scanner first reaches it: `DictView` and `ListView` are a real `dict` and `list`
(``isinstance`` holds, and C code such as `json`, `pickle` and pandas reads them as it reads
the originals), holding a shallow copy of the container they view. A nested dict or list
stays the caller's object until the scanner reads it through the view, which then puts a
view of it in its place. So the cost follows what a scanner touches, never the state's size.

The views of one scanner share a registry (by ``id``) of the containers they wrapped and of
the containers the scanner stored itself: a container reached twice is one view (aliasing
and cycles survive, as in `copy.deepcopy`), and a container the scanner put in is handed
back as it is.

What is not a dict or a list (tuples, strings, numbers, data frames, clients) is shared as
it is, so treat such objects as read-only inside scanners. Dict and list subclasses
(defaultdict, OrderedDict), deques, sets and bytearrays are copied one level the first time
they are read, their nested dicts and lists becoming views in turn.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import ItemsView, Iterable, Iterator, Mapping, ValuesView
from typing import TYPE_CHECKING, Any, Final, SupportsIndex, overload

if TYPE_CHECKING:
    from typing_extensions import Self

_COPY_ON_READ = (set, bytearray, deque)

#: What the views of one scanner share: ``id(container)`` -> what to hand out for it.
Registry = dict[int, Any]


def _view(value: Any, seen: Registry) -> Any:
    """Return what a scanner gets for the container *value*: a view, a private copy, or it.

    Registered under ``id(value)``, so the same container always gives the same view.
    """
    known = seen.get(id(value))
    if known is not None:
        return known
    kind = type(value)
    made: Any
    if kind is dict or kind is DictView:  # a view of a view: a scanner running scanners
        made = DictView(value, seen)
    elif kind is list or kind is ListView:
        made = ListView(value, seen)
    elif isinstance(value, dict):
        # A subclass keeps its type and behaviour (a defaultdict its factory) as a copy of
        # one level, whose nested containers are views.
        made = copy.copy(value)
        for key, item in value.items():
            if isinstance(item, _CONTAINERS):
                made[key] = _view(item, seen)
    elif isinstance(value, (list, deque)):
        made = copy.copy(value)
        for index, item in enumerate(value):
            if isinstance(item, _CONTAINERS):
                made[index] = _view(item, seen)
    else:  # a set or a bytearray
        made = copy.copy(value)
    # setdefault: two threads of one scanner (a fan-out) reaching it at once get one view.
    made = seen.setdefault(id(value), made)
    seen.setdefault(id(made), made)  # handed back as it is when met again
    return made


def _own(value: Any, seen: Registry) -> None:
    """Note that the scanner stored *value* itself: it is handed back unwrapped."""
    if isinstance(value, _CONTAINERS):
        seen.setdefault(id(value), value)


class _Items(ItemsView[Any, Any]):
    """A view's items, as a dict's are: reversible too."""

    __slots__ = ()

    def __reversed__(self) -> Iterator[tuple[Any, Any]]:
        view: dict[Any, Any] = self._mapping  # type: ignore[attr-defined] # the stdlib's slot
        for key in reversed(dict.keys(view)):
            yield key, view[key]


class _Values(ValuesView[Any]):
    """A view's values, as a dict's are: reversible too."""

    __slots__ = ()

    def __reversed__(self) -> Iterator[Any]:
        view: dict[Any, Any] = self._mapping  # type: ignore[attr-defined] # the stdlib's slot
        for key in reversed(dict.keys(view)):
            yield view[key]


class DictView(dict):  # type: ignore[type-arg]
    """A dict as one scanner sees it: a copy of the original's first level, filled lazily.

    Reading a nested dict or list returns a view of it (made once). Writes change this
    view only. Pickling, `copy.deepcopy` and `to_plain` give plain dicts.
    """

    __slots__ = ("_seen",)

    def __init__(
        self, base: Mapping[Any, Any] | Iterable[Any] = (), seen: Registry | None = None
    ) -> None:
        """Make a view of *base*, which is never changed through it."""
        super().__init__(base)
        self._seen: Registry = {} if seen is None else seen

    def _wrap(self, key: Any, value: Any) -> Any:
        if type(value) in _ATOMS or not isinstance(value, _CONTAINERS):
            return value
        known = self._seen.get(id(value))
        if known is value:
            return value  # a view of this scanner, or a container it stored itself
        made = known if known is not None else _view(value, self._seen)
        dict.__setitem__(self, key, made)  # kept, so changes made through it persist
        return made

    def __getitem__(self, key: Any) -> Any:
        """Return the value, a nested dict or list as a view of its own."""
        return self._wrap(key, dict.__getitem__(self, key))

    def __missing__(self, key: Any) -> Any:
        """Raise `KeyError` (a view never adds keys on lookup)."""
        raise KeyError(key)

    def get(self, key: Any, default: Any = None) -> Any:
        """Return the value for *key* (as `__getitem__`), or *default*."""
        if key in self:
            return self[key]
        return default

    def __iter__(self) -> Iterator[Any]:
        """Iterate the keys.

        Defined here so that ``dict(view)``, ``{**view}`` and ``d.update(view)`` read the
        values through `__getitem__` rather than copying the raw first level.
        """
        return dict.__iter__(self)

    def items(self) -> ItemsView[Any, Any]:  # type: ignore[override]
        """The items, nested dicts and lists as views."""
        return _Items(self)

    def values(self) -> ValuesView[Any]:  # type: ignore[override]
        """The values, nested dicts and lists as views."""
        return _Values(self)

    def __setitem__(self, key: Any, value: Any) -> None:
        """Set *key* in this view only."""
        _own(value, self._seen)
        dict.__setitem__(self, key, value)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """Return the value for *key*, setting it to *default* first if it is missing."""
        if key in self:
            return self[key]
        self[key] = default
        return default

    def update(self, *others: Any, **more: Any) -> None:
        """Set the items of *others* and *more* in this view only."""
        for other in (*others, more):
            pairs = other.items() if isinstance(other, Mapping) else other
            for key, value in pairs:
                self[key] = value

    def __ior__(self, other: Any) -> Self:
        """``view |= other``: `update`."""
        self.update(other)
        return self

    def pop(self, key: Any, *default: Any) -> Any:
        """Remove *key* from this view and return its value (a view for a container)."""
        if key in self:
            value = self[key]
            dict.__delitem__(self, key)
            return value
        if default:
            return default[0]
        raise KeyError(key)

    def popitem(self) -> tuple[Any, Any]:
        """Remove and return the last item of this view."""
        if not self:
            raise KeyError("popitem(): dictionary is empty")
        key = next(reversed(dict.keys(self)))
        return key, self.pop(key)

    def copy(self) -> dict[Any, Any]:
        """Return a shallow plain-dict copy, as `dict.copy` does."""
        return dict(self.items())

    __copy__ = copy

    def __or__(self, other: Any) -> dict[Any, Any]:
        """Return a plain dict of these items updated with *other*'s, as ``dict | dict``."""
        if isinstance(other, Mapping):
            return {**self, **other}
        return NotImplemented

    def __ror__(self, other: Any) -> dict[Any, Any]:
        """Return a plain dict of *other*'s items updated with these."""
        if isinstance(other, Mapping):
            return {**other, **self}
        return NotImplemented

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[Any, Any]:
        """A deep copy is a plain dict, as deep-copying the original would give."""
        plain: dict[Any, Any] = {}
        memo[id(self)] = plain
        for key, value in self.items():
            plain[copy.deepcopy(key, memo)] = copy.deepcopy(value, memo)
        return plain

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        """Pickle as a plain dict."""
        return (dict, (), None, None, iter(self.items()))

    def _plain(self, memo: dict[int, Any]) -> dict[Any, Any]:
        plain: dict[Any, Any] = {}
        memo[id(self)] = plain
        for key, value in dict.items(self):
            plain[key] = _plain(value, memo)
        return plain


class ListView(list):  # type: ignore[type-arg]
    """A list as one scanner sees it: a copy of the original's items, nested ones lazily.

    Reading a nested dict or list returns a view of it (made once). Writes change this
    view only. Pickling, `copy.deepcopy` and `to_plain` give plain lists.
    """

    __slots__ = ("_seen",)

    def __init__(self, base: Iterable[Any] = (), seen: Registry | None = None) -> None:
        """Make a view of *base*, which is never changed through it."""
        super().__init__(base)
        self._seen: Registry = {} if seen is None else seen

    def _wrap_at(self, index: int, value: Any) -> Any:
        if type(value) in _ATOMS or not isinstance(value, _CONTAINERS):
            return value
        known = self._seen.get(id(value))
        if known is value:
            return value
        made = known if known is not None else _view(value, self._seen)
        if list.__getitem__(self, index) is value:  # not moved by a change meanwhile
            list.__setitem__(self, index, made)
        return made

    @overload
    def __getitem__(self, index: SupportsIndex) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...
    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        """Return an item (a nested dict or list as a view), or a plain list of a slice."""
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        value = list.__getitem__(self, index)
        if type(value) in _ATOMS:
            return value
        return self._wrap_at(index.__index__(), value)

    def __iter__(self) -> Iterator[Any]:
        """Iterate the items, nested dicts and lists as views."""
        atoms = _ATOMS
        for index, value in enumerate(list.__iter__(self)):
            yield value if type(value) in atoms else self._wrap_at(index, value)

    def __reversed__(self) -> Iterator[Any]:
        """Iterate the items backwards, nested dicts and lists as views."""
        for index in range(len(self) - 1, -1, -1):
            yield self[index]

    @overload
    def __setitem__(self, index: SupportsIndex, value: Any) -> None: ...
    @overload
    def __setitem__(self, index: slice, value: Iterable[Any]) -> None: ...
    def __setitem__(self, index: SupportsIndex | slice, value: Any) -> None:
        """Set an item or slice in this view only."""
        if isinstance(index, slice):
            value = list(value)
            for item in value:
                _own(item, self._seen)
        else:
            _own(value, self._seen)
        list.__setitem__(self, index, value)

    def append(self, value: Any) -> None:
        """Append *value*, in this view only."""
        _own(value, self._seen)
        list.append(self, value)

    def insert(self, index: SupportsIndex, value: Any) -> None:
        """Insert *value* before *index*, in this view only."""
        _own(value, self._seen)
        list.insert(self, index, value)

    def extend(self, values: Iterable[Any]) -> None:
        """Append every item of *values*, in this view only."""
        values = list(values)
        for value in values:
            _own(value, self._seen)
        list.extend(self, values)

    def __iadd__(self, values: Iterable[Any]) -> Self:  # type: ignore[misc]
        """``view += values``: `extend`."""
        self.extend(values)
        return self

    def pop(self, index: SupportsIndex = -1) -> Any:
        """Remove and return an item (a nested dict or list as a view)."""
        value = self[index]
        list.__delitem__(self, index)
        return value

    def sort(self, *, key: Any = None, reverse: bool = False) -> None:
        """Sort in place, in this view only (nested dicts and lists compared as views)."""
        items = list(self)  # the sort key sees views, never the caller's objects
        items.sort(key=key, reverse=reverse)
        list.__setitem__(self, slice(None), items)

    def copy(self) -> list[Any]:
        """Return a shallow plain-list copy, as `list.copy` does."""
        return list(self)

    __copy__ = copy

    def __add__(self, other: Any) -> list[Any]:
        """Return a plain list: these items, then *other*'s (as ``list + list`` does)."""
        if isinstance(other, list):
            return [*self, *other]
        return NotImplemented

    def __radd__(self, other: Any) -> list[Any]:
        """Return a plain list: *other*'s items, then these."""
        if isinstance(other, list):
            return [*other, *self]
        return NotImplemented

    def __mul__(self, times: SupportsIndex) -> list[Any]:
        """Return a plain list of these items repeated *times*."""
        return list(self) * times

    __rmul__ = __mul__

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        """A deep copy is a plain list, as deep-copying the original would give."""
        plain: list[Any] = []
        memo[id(self)] = plain
        plain.extend(copy.deepcopy(value, memo) for value in self)
        return plain

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        """Pickle as a plain list."""
        return (list, (), None, iter(self))

    def _plain(self, memo: dict[int, Any]) -> list[Any]:
        plain: list[Any] = []
        memo[id(self)] = plain
        plain.extend(_plain(value, memo) for value in list.__iter__(self))
        return plain


def state_view(state: Mapping[str, Any]) -> DictView:
    """Return a copy-on-write view of *state* for one scanner."""
    if type(state) is not dict and not isinstance(state, DictView):
        # A defaultdict would add the keys a scanner merely looks up: read a plain copy of
        # its first level instead (nested containers are still views, not copies).
        state = dict(state)
    # What DictView(state) does, in C calls only: once per scanner.
    view: DictView = _NEW_DICT(DictView)
    _UPDATE_DICT(view, state)
    view._seen = {}  # noqa: SLF001 - the view's own registry
    return view


def release_views(view: DictView) -> None:
    """Forget the views a scanner made, once it is done with them.

    They refer to each other through their shared registry (a cycle); clearing it lets
    reference counting free them at once. Views still held keep working: a container read
    through them again becomes a new view.
    """
    view._seen.clear()  # noqa: SLF001 - the views' own registry


def to_plain(value: Any) -> Any:
    """Return *value* with every state view inside turned into a plain dict or list.

    Views are real dicts and lists already; use this where plain ones matter, for example
    before keeping data beyond the scanner (the executor does it for candidates and tool
    logs). Plain dicts, lists and tuples are rebuilt only on the way to a view inside them;
    everything else is returned as it is. Cycles are kept as cycles.
    """
    if type(value) in _ATOMS:
        return value
    return _plain(value, {})


def _plain(value: Any, memo: dict[int, Any]) -> Any:
    """`to_plain` with *memo*: the containers met so far (by id) and what they became."""
    kind = type(value)
    if kind in _ATOMS:
        return value
    seen = memo.get(id(value))
    if seen is not None:
        return seen
    if kind is DictView or kind is ListView:
        return value._plain(memo)  # noqa: SLF001 - the views build their own plain form
    if kind is dict or kind is list or kind is tuple:
        if _ATOMS.issuperset(map(type, value.values() if kind is dict else value)):
            return value  # flat: nothing inside can be a view (checked at C speed)
        memo[id(value)] = value  # a cycle back to it finds it unchanged
        seen = memo[id(value)] = _plain_container(value, memo)
        return seen
    return value


def _plain_container(value: Any, memo: dict[int, Any]) -> Any:
    items = value.items() if type(value) is dict else enumerate(value)
    changed: dict[Any, Any] = {}
    for key, item in items:
        if type(item) in _ATOMS:
            continue
        new = _plain(item, memo)
        if new is not item:
            changed[key] = new
    if not changed:
        return value
    if type(value) is dict:
        return {**value, **changed}
    rebuilt = list(value)
    for index, new in changed.items():
        rebuilt[index] = new
    return rebuilt if type(value) is list else tuple(rebuilt)


# Values that cannot hold a view: to_plain returns them at once.
ATOMS: Final = frozenset({str, int, float, bool, type(None), bytes, complex})
_ATOMS = ATOMS

_CONTAINERS = (dict, list, *_COPY_ON_READ)
_NEW_DICT: Final = dict.__new__
_UPDATE_DICT: Final = dict.update
