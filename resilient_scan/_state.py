"""Copy-on-write views of the caller's state: one per scanner.

Scanners may change the state they are given, and must not see each other's changes nor
change the caller's. A deep copy per scanner does that at a cost that grows with the whole
state (a 50 MB price history copied for every scanner) and fails on what cannot be copied
(API clients, locks, bound methods). A view copies nothing up front: reading returns the
caller's values, and only a dict or list that a scanner writes to is copied, one level at
a time, the first time it is written.

What is not a dict or a list (tuples, strings, numbers, data frames, clients) is shared as
it is, so treat such objects as read-only inside scanners. Dict and list subclasses
(defaultdict, OrderedDict), deques, sets and bytearrays are copied one level the first time
they are read, their nested dicts and lists becoming views in turn.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Iterator, Mapping, MutableMapping, MutableSequence
from typing import Any, overload

_COPY_ON_READ = (set, bytearray, deque)


def _view(value: Any) -> Any:
    """Return what a scanner gets for *value*: a view, a private copy, or the value."""
    kind = type(value)
    if kind is dict or kind is DictView:  # a view of a view: a scanner running scanners
        return DictView(value)
    if kind is list or kind is ListView:
        return ListView(value)
    if isinstance(value, dict):
        # A subclass keeps its type and behaviour (a defaultdict its factory) as a copy of
        # one level, whose nested containers are views.
        own = copy.copy(value)
        for key, item in value.items():
            if _needs_view(item):
                own[key] = _view(item)
        return own
    if isinstance(value, (list, deque)):
        own_items = copy.copy(value)
        for index, item in enumerate(value):
            if _needs_view(item):
                own_items[index] = _view(item)
        return own_items
    if isinstance(value, _COPY_ON_READ):
        return copy.copy(value)
    return value


def _needs_view(value: Any) -> bool:
    return isinstance(value, _CONTAINERS)


class DictView(MutableMapping[Any, Any]):
    """A dict as one scanner sees it: the original's items plus this scanner's changes."""

    __slots__ = ("_base", "_deleted", "_own")

    def __init__(self, base: Mapping[Any, Any]) -> None:
        """Make a view of *base*, which is never changed through it."""
        self._base = base
        self._own: dict[Any, Any] = {}
        self._deleted: set[Any] = set()

    def __getitem__(self, key: Any) -> Any:
        """Return the value, wrapping a nested dict or list in a view of its own."""
        own = self._own
        if key in own:
            return own[key]
        if key in self._deleted:
            raise KeyError(key)
        value = self._base[key]
        if _needs_view(value):
            # Kept, so that changes made through the nested view persist in this view.
            value = own[key] = _view(value)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        """Set *key* in this view only."""
        self._own[key] = value
        self._deleted.discard(key)

    def __delitem__(self, key: Any) -> None:
        """Delete *key* from this view only."""
        if key not in self:
            raise KeyError(key)
        self._own.pop(key, None)
        if key in self._base:
            self._deleted.add(key)

    def __contains__(self, key: object) -> bool:
        """Whether *key* is in this view."""
        return key in self._own or (key in self._base and key not in self._deleted)

    def __iter__(self) -> Iterator[Any]:
        """Iterate keys: the original's, in order, then keys this view added."""
        own = self._own
        deleted = self._deleted
        for key in self._base:
            if key not in deleted:
                yield key
        for key in own:
            if key not in self._base:
                yield key

    def __len__(self) -> int:
        """Return the number of keys in this view."""
        added = sum(1 for key in self._own if key not in self._base)
        return len(self._base) - len(self._deleted) + added

    def __repr__(self) -> str:
        """Show the view's contents like a dict."""
        return repr(to_plain(self))

    def copy(self) -> dict[Any, Any]:
        """Return a shallow plain-dict copy, as `dict.copy` does."""
        return dict(self.items())

    def _plain(self, memo: dict[int, Any]) -> dict[Any, Any]:
        # Views are made afresh at each level, so a cycle is found by what they view; the
        # entry lasts only while this one is being built (another view of the same base
        # may differ).
        key = id(self._base)
        building = memo.get(key)
        if building is not None:
            return building  # type: ignore[no-any-return]
        plain: dict[Any, Any] = {}
        memo[key] = plain
        plain.update((key, _plain(item, memo)) for key, item in self.items())
        del memo[key]
        return plain

    def __copy__(self) -> DictView:
        """Return a view with its own overlay: changes to either stay apart, as dict copies."""
        twin = DictView(self._base)
        twin._own = dict(self._own)
        twin._deleted = set(self._deleted)
        return twin

    def __or__(self, other: object) -> dict[Any, Any]:
        """Return a plain dict of these items updated with *other*'s, as ``dict | dict``."""
        if isinstance(other, Mapping):
            return {**self, **other}
        return NotImplemented

    def __ror__(self, other: object) -> dict[Any, Any]:
        """Return a plain dict of *other*'s items updated with these."""
        if isinstance(other, Mapping):
            return {**other, **self}
        return NotImplemented


class ListView(MutableSequence[Any]):
    """A list as one scanner sees it: the original until written, then a private copy."""

    __slots__ = ("_base", "_children", "_own")

    def __init__(self, base: list[Any]) -> None:
        """Make a view of *base*, which is never changed through it."""
        self._base = base
        self._own: list[Any] | None = None
        self._children: dict[int, Any] = {}

    def _items(self) -> list[Any]:
        """The private copy, made on the first write."""
        own = self._own
        if own is None:
            children = self._children
            own = self._own = [
                children[i] if i in children else _view(item) if _needs_view(item) else item
                for i, item in enumerate(self._base)
            ]
            self._children = {}
        return own

    def _read(self, index: int) -> Any:
        if self._own is not None:
            return self._own[index]
        value = self._base[index]
        if not _needs_view(value):
            return value
        index = range(len(self._base))[index]  # negative -> positive, IndexError as list
        child = self._children.get(index)
        if child is None:
            child = self._children[index] = _view(value)
        return child

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> ListView: ...
    def __getitem__(self, index: int | slice) -> Any:
        """Return an item (nested dicts and lists as views), or a view of a slice."""
        if isinstance(index, slice):
            return ListView([self._read(i) for i in range(len(self))[index]])
        return self._read(index)

    @overload
    def __setitem__(self, index: int, value: Any) -> None: ...
    @overload
    def __setitem__(self, index: slice, value: Any) -> None: ...
    def __setitem__(self, index: int | slice, value: Any) -> None:
        """Set an item or slice in this view only."""
        self._items()[index] = value

    def __delitem__(self, index: int | slice) -> None:
        """Delete an item or slice in this view only."""
        del self._items()[index]

    def __len__(self) -> int:
        """Return the number of items in this view."""
        return len(self._base if self._own is None else self._own)

    def __iter__(self) -> Iterator[Any]:
        """Iterate items; nested dicts and lists come as views."""
        if self._own is not None:
            yield from self._own
            return
        for index, item in enumerate(self._base):
            yield self._read(index) if _needs_view(item) else item

    def __contains__(self, value: object) -> bool:
        """Whether *value* is an item of this view."""
        return value in (self._base if self._own is None else self._own)

    def sort(self, *, key: Any = None, reverse: bool = False) -> None:
        """Sort in place, in this view only."""
        self._items().sort(key=key, reverse=reverse)

    def __add__(self, other: object) -> list[Any]:
        """Return a plain list: these items, then *other*'s (as ``list + list`` does)."""
        if isinstance(other, (list, ListView)):
            return [*self, *other]
        return NotImplemented

    def __radd__(self, other: object) -> list[Any]:
        """Return a plain list: *other*'s items, then these."""
        if isinstance(other, list):
            return [*other, *self]
        return NotImplemented

    def __mul__(self, times: int) -> list[Any]:
        """Return a plain list of these items repeated *times*."""
        return list(self) * times

    __rmul__ = __mul__

    def insert(self, index: int, value: Any) -> None:
        """Insert *value* before *index*, in this view only."""
        self._items().insert(index, value)

    def append(self, value: Any) -> None:
        """Append *value*, in this view only."""
        self._items().append(value)

    def extend(self, values: Any) -> None:
        """Append every item of *values*, in this view only."""
        self._items().extend(values)

    def __eq__(self, other: object) -> bool:
        """Compare items with another list or view."""
        if isinstance(other, (list, ListView)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like list

    def __repr__(self) -> str:
        """Show the view's contents like a list."""
        return repr(to_plain(self))

    def copy(self) -> list[Any]:
        """Return a shallow plain-list copy, as `list.copy` does."""
        return list(self)

    def _plain(self, memo: dict[int, Any]) -> list[Any]:
        key = id(self._base)  # as DictView._plain
        building = memo.get(key)
        if building is not None:
            return building  # type: ignore[no-any-return]
        plain: list[Any] = []
        memo[key] = plain
        plain.extend(_plain(item, memo) for item in self)
        del memo[key]
        return plain

    def __copy__(self) -> ListView:
        """Return a view with its own items: changes to either stay apart, as list copies."""
        twin = ListView(self._base)
        twin._own = None if self._own is None else list(self._own)
        twin._children = dict(self._children)
        return twin

    def __lt__(self, other: object) -> bool:
        """Compare items in order, as lists compare."""
        if isinstance(other, (list, ListView)):
            return list(self) < list(other)
        return NotImplemented

    def __le__(self, other: object) -> bool:
        """Compare items in order, as lists compare."""
        if isinstance(other, (list, ListView)):
            return list(self) <= list(other)
        return NotImplemented

    def __gt__(self, other: object) -> bool:
        """Compare items in order, as lists compare."""
        if isinstance(other, (list, ListView)):
            return list(self) > list(other)
        return NotImplemented

    def __ge__(self, other: object) -> bool:
        """Compare items in order, as lists compare."""
        if isinstance(other, (list, ListView)):
            return list(self) >= list(other)
        return NotImplemented


def state_view(state: Mapping[str, Any]) -> DictView:
    """Return a copy-on-write view of *state* for one scanner."""
    if type(state) is not dict and not isinstance(state, DictView):
        # A defaultdict would add the keys a scanner merely looks up: read a plain copy of
        # its first level instead (nested containers are still views, not copies).
        state = dict(state)
    return DictView(state)


def to_plain(value: Any) -> Any:
    """Return *value* with every state view inside turned into a plain dict or list.

    Use it where a real dict is needed, e.g. ``json.dumps(rs.to_plain(state["config"]))``.
    Plain dicts, lists and tuples are rebuilt only on the way to a view inside them;
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
    if kind is DictView or kind is ListView:
        return value._plain(memo)  # noqa: SLF001 - the views build their own plain form
    if kind is dict or kind is list or kind is tuple:
        seen = memo.get(id(value))
        if seen is None:
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
_ATOMS = frozenset({str, int, float, bool, type(None), bytes, complex})


def private_tool_logs(view: DictView, state: Mapping[str, Any]) -> list[Any] | None:
    """Give *view* its own plain copy of ``state["tool_logs"]``; return what it starts with.

    A plain list (not a view), so scanners can append to it and check ``isinstance(...,
    list)`` as they would with the real state.
    """
    original = state.get("tool_logs")
    if isinstance(original, (list, ListView)):
        # Entries already there are views too: a scanner that edits one edits its own.
        own = [_view(entry) if _needs_view(entry) else entry for entry in original]
        view[_TOOL_LOGS] = own
        return list(own)
    return None


def appended_tool_logs(view: DictView, original: list[Any] | None) -> list[Any]:
    """Return the entries a scanner added to ``tool_logs`` in *view*, in order."""
    logs = view._own.get(_TOOL_LOGS)  # noqa: SLF001 - same module family, by design
    if logs is None:
        return []
    items = list(logs) if isinstance(logs, (list, ListView)) else []
    if original:
        if len(items) >= len(original) and all(
            a is b for a, b in zip(items, original, strict=False)
        ):
            items = items[len(original) :]
        else:  # the scanner rebuilt the list: keep what was not there before
            before = {id(entry) for entry in original}
            items = [entry for entry in items if id(entry) not in before]
    # Plain data in the report: an entry may hold views of the state.
    return [to_plain(entry) for entry in items]


_TOOL_LOGS = "tool_logs"

_CONTAINERS = (dict, list, *_COPY_ON_READ, DictView, ListView)
