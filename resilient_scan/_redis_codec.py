"""How a shared cache turns keys and values into bytes, the same way in every process.

Keys: a cache key is any hashable Python value built from the call's arguments (by default
cachetools' ``hashkey``: a tuple of the positional arguments, then a marker and the sorted
keyword arguments). `key_bytes` writes it in a canonical, type-tagged, length-prefixed form
that does not depend on the process (no ``hash()``, no ``id()``, no set iteration order):

========================  =====================================================
value                     encoding
========================  =====================================================
``None``                  ``N``
``True`` / ``False``      ``T`` / ``F``
``int``                   ``i`` decimal digits ``;``
``float``                 ``f`` `float.hex` ``;`` (exact, NaN and infinities too)
``str``                   ``s`` length ``:`` UTF-8 bytes
``bytes``                 ``b`` length ``:`` bytes
tuple (any subclass)      ``(`` items ``)``
``frozenset``             ``{`` item encodings, sorted bytewise ``}``
a class                   ``c`` + the ``str`` encoding of ``module.qualname``
an `enum.Enum` member     ``e`` + its class's encoding + the ``str`` encoding of its name
date, time, datetime      ``d`` + the ``str`` encoding of ``type:isoformat()``
timedelta                 ``D`` + the ``int`` encodings of days, seconds, microseconds
`decimal.Decimal`         ``m`` + the ``str`` encoding of ``str(value)``
`uuid.UUID`               ``u`` 32 hex digits
========================  =====================================================

Anything else raises `TypeError` (a key that cannot be written the same way in another
process would silently never be shared). Values equal in Python but of different types
(``1``, ``1.0``, ``True``) are different keys here: a shared cache never answers a call
with a result computed for an argument of another type. `key_digest` hashes the encoding
(BLAKE2b, 128 bits, personalised with the format's version) into 32 hex digits.

Values: a `Codec` turns results into bytes and back. `JsonCodec` (the default) writes
compact UTF-8 JSON and refuses, before writing anything, every value that would not come
back as it went in: tuples and sets (JSON has lists only), mappings with keys that are not
strings (JSON keys are strings), and every type JSON does not know. It never uses pickle:
a shared cache must not run code chosen by whoever can write to it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import hashlib
import json
import uuid
from collections.abc import Hashable
from typing import Any, Final, Protocol, runtime_checkable

#: Bumped whenever `key_bytes` changes, so old and new processes never share a key.
KEY_FORMAT: Final = b"rs-key-1"
DIGEST_LENGTH: Final = 32  # hex digits


@runtime_checkable
class Codec(Protocol):
    """Turns cached results into bytes and back.

    ``encode`` raises `TypeError` or `ValueError` for a value it cannot encode faithfully;
    the store turns that into `resilient_scan.CacheEncodeError` and stores nothing.
    """

    name: str

    def encode(self, value: Any) -> bytes:
        """Return *value* as bytes, or raise `TypeError` / `ValueError`."""
        ...

    def decode(self, data: bytes) -> Any:
        """Return the value that *data* encodes."""
        ...


class JsonCodec:
    """Results as compact UTF-8 JSON: ``None``, bools, ints, floats, str, lists, dicts.

    Only values that come back equal and of the same container types are accepted: a
    tuple, a set, a dict key that is not a string, or any other type raises `TypeError`
    naming where in the value it is (``value[0]['when'] is of type datetime``). Floats NaN and
    infinity are written as Python's ``json`` writes them (``NaN``, ``Infinity``).
    """

    name = "json"

    def encode(self, value: Any) -> bytes:
        """Return *value* as JSON bytes, or raise `TypeError` for what JSON cannot keep."""
        _check_json(value, "value", set())
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()

    def decode(self, data: bytes) -> Any:
        """Return the value that the JSON *data* encodes."""
        return json.loads(data)

    def __repr__(self) -> str:
        """Return ``JsonCodec()``."""
        return "JsonCodec()"


_JSON_SCALARS: Final = (str, int, float)


def _check_json(value: Any, where: str, path: set[int]) -> None:
    if value is None or isinstance(value, _JSON_SCALARS):  # bool is an int
        return
    if isinstance(value, list):
        _enter(value, where, path)
        for index, item in enumerate(value):
            _check_json(item, f"{where}[{index}]", path)
        path.discard(id(value))
        return
    if isinstance(value, dict):
        _enter(value, where, path)
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{where} has the key {key!r} of type {type(key).__name__}: JSON keys"
                    " are strings, so it would come back as one"
                )
            _check_json(item, f"{where}[{key!r}]", path)
        path.discard(id(value))
        return
    kind = type(value).__name__
    if isinstance(value, (tuple, set, frozenset)):
        raise TypeError(
            f"{where} is of type {kind}: JSON has only lists, so it would come back as one"
        )
    raise TypeError(f"{where} is of type {kind}, which JSON cannot encode")


def _enter(container: object, where: str, path: set[int]) -> None:
    marker = id(container)
    if marker in path:
        raise ValueError(f"{where} contains itself")
    path.add(marker)


def key_bytes(key: Hashable) -> bytes:
    """Return the canonical encoding of a cache key (see the module's table).

    Raises:
        TypeError: for a key (or part of one) with no stable encoding.
    """
    out = bytearray()
    _write_key(key, out)
    return bytes(out)


def key_digest(key: Hashable) -> str:
    """Return the key's digest: 32 hex digits of BLAKE2b over `key_bytes`."""
    digest = hashlib.blake2b(key_bytes(key), digest_size=DIGEST_LENGTH // 2, person=KEY_FORMAT)
    return digest.hexdigest()


def _text(value: str, out: bytearray) -> None:
    data = value.encode("utf-8", "surrogatepass")
    out += b"s%d:" % len(data)
    out += data


def _write_key(key: object, out: bytearray) -> None:  # noqa: C901, PLR0912 - one branch a type
    kind = type(key)
    if key is None:
        out += b"N"
    elif kind is bool:
        out += b"T" if key else b"F"
    elif isinstance(key, enum.Enum):  # before int and str: IntEnum, StrEnum
        out += b"e"
        _write_key(kind, out)
        _text(key.name, out)
    elif isinstance(key, int):
        out += b"i%d;" % key
    elif isinstance(key, float):
        out += b"f" + key.hex().encode() + b";"
    elif isinstance(key, str):
        _text(key, out)
    elif isinstance(key, bytes):
        out += b"b%d:" % len(key)
        out += key
    elif isinstance(key, tuple):
        out += b"("
        for item in key:
            _write_key(item, out)
        out += b")"
    elif isinstance(key, frozenset):
        items = sorted(key_bytes(item) for item in key)
        out += b"{" + b"".join(items) + b"}"
    elif isinstance(key, type):
        out += b"c"
        _text(f"{key.__module__}.{key.__qualname__}", out)
    elif isinstance(key, (dt.date, dt.time)):  # datetime is a date
        out += b"d"
        _text(f"{kind.__name__}:{key.isoformat()}", out)
    elif isinstance(key, dt.timedelta):
        out += b"D%d;%d;%d;" % (key.days, key.seconds, key.microseconds)
    elif isinstance(key, decimal.Decimal):
        out += b"m"
        _text(str(key), out)
    elif isinstance(key, uuid.UUID):
        out += b"u" + key.hex.encode()
    else:
        raise TypeError(
            f"a cache key part of type {kind.__module__}.{kind.__qualname__} has no stable"
            " encoding for a cache shared between processes (keys may hold None, bool, int,"
            " float, str, bytes, tuples, frozensets, classes, enum members, dates and times,"
            " Decimal and UUID)"
        )
