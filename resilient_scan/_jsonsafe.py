"""JSON that is always valid (RFC 8259), whatever scanners put in a report.

Candidates and tool logs are whatever scanner code returned: floats that are NaN, objects
that refer to themselves, objects whose ``__str__`` raises, integers too long to print,
sets, dates, bytes. `json.dumps` fails on some of these and writes invalid JSON (``NaN``)
for others, so a report written after an hour's run could be lost to one odd value.
`dumps` first turns the data into plain JSON values, replacing what JSON cannot hold:

- NaN and infinities become ``null``;
- a container that contains itself becomes ``"<circular reference to dict>"``;
- data nested deeper than `MAX_DEPTH` levels becomes ``"<nested deeper than 100 levels>"``;
- an integer too long for `str` becomes ``"<integer of about 5000 digits>"``;
- mappings, sequences and sets become objects and arrays (keys become strings);
- dates and times become ISO 8601 strings, enums their value, bytes text;
- anything else becomes ``str(value)``, or ``"<unprintable Type>"`` when that raises.

Control characters are always escaped in the output (C1 ones and the Unicode line
separators included), so the text is safe to print on a terminal.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from datetime import date, datetime, time, timedelta
from typing import Any, Final

from ._text import safe_str, utf8_safe

__all__ = ["MAX_DEPTH", "dumps", "plain"]

#: The deepest nesting written; deeper values are replaced by a placeholder.
MAX_DEPTH: Final = 100

# JSON escapes C0 characters itself; these are valid in JSON strings but unsafe on terminals.
_UNSAFE: Final = re.compile("[\x7f-\x9f\u2028\u2029]")
_LOG10_2: Final = math.log10(2)


def dumps(data: object, *, indent: int | None = 2, ascii_only: bool = False) -> str:
    """*data* as JSON text that any RFC 8259 parser reads, whatever it holds.

    With *ascii_only*, every character outside ASCII is escaped too (for streams that
    cannot encode them).
    """
    text = json.dumps(plain(data), indent=indent, ensure_ascii=ascii_only, allow_nan=False)
    return text if ascii_only else _UNSAFE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


def plain(data: object) -> Any:
    """*data* as plain JSON values (dict, list, str, int, float, bool, None); never raises."""
    return _Plain().convert(data, 0)


class _Plain:
    """One conversion: remembers the containers on the current path, to spot cycles."""

    def __init__(self) -> None:
        self.path: set[int] = set()

    def convert(self, value: object, depth: int) -> Any:  # noqa: PLR0911 - one return per kind
        if value is None or value is True or value is False:
            return value
        if isinstance(value, str):
            return utf8_safe(str.__str__(value))
        if isinstance(value, int):
            return _integer(value)
        if isinstance(value, float):
            number = float.__float__(value)
            return number if math.isfinite(number) else None
        if isinstance(value, enum.Enum):
            return self.convert(value.value, depth)
        if isinstance(value, (datetime, date, time)):
            return utf8_safe(value.isoformat())
        if isinstance(value, timedelta):
            return value.total_seconds()
        if isinstance(value, (bytes, bytearray, memoryview)):
            return utf8_safe(bytes(value).decode("utf-8", "backslashreplace"))
        if isinstance(value, (Mapping, list, tuple, AbstractSet)):
            return self.container(value, depth)
        return utf8_safe(safe_str(value))

    def container(self, value: object, depth: int) -> Any:
        kind = type(value).__name__
        if depth >= MAX_DEPTH:
            return f"<nested deeper than {MAX_DEPTH} levels>"
        key = id(value)
        if key in self.path:
            return f"<circular reference to {kind}>"
        self.path.add(key)
        try:
            if isinstance(value, Mapping):
                return self.mapping(value, depth + 1)
            items = list(value)  # type: ignore[call-overload]
            if isinstance(value, AbstractSet):
                items = _sorted(items)
            return [self.convert(item, depth + 1) for item in items]
        except Exception:
            return f"<unserializable {kind}>"
        finally:
            self.path.discard(key)

    def mapping(self, value: Mapping[Any, Any], depth: int) -> dict[str, Any]:
        converted: dict[str, Any] = {}
        for key, item in value.items():
            name = _key(key)
            if name in converted:  # 1 and "1" both become "1": keep both values
                number = 2
                while f"{name}#{number}" in converted:
                    number += 1
                name = f"{name}#{number}"
            converted[name] = self.convert(item, depth)
        return converted


def _key(key: object) -> str:
    if isinstance(key, str):
        return utf8_safe(str.__str__(key))
    if key is None or isinstance(key, (bool, int, float)):
        converted = _Plain().convert(key, 0)
        return json.dumps(converted) if not isinstance(converted, str) else converted
    return utf8_safe(safe_str(key))


def _integer(value: int) -> int | str:
    number = int.__index__(value)
    try:
        str(number)  # Python refuses to print integers above sys.get_int_max_str_digits()
    except ValueError:
        digits = int(number.bit_length() * _LOG10_2) + 1
        return f"<integer of about {digits} digits>"
    return number


def _sorted(items: list[Any]) -> list[Any]:
    try:
        return sorted(items)
    except Exception:  # mixed or unorderable members: their own order
        return items
