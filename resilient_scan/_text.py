"""Text from untrusted places (exceptions, scanner names, candidates), made safe to show.

- Exceptions whose ``__str__`` or ``__repr__`` raise still get a description.
- Credentials in error texts are redacted by default: HTTP clients put whole URLs in their
  errors (``...&apikey=SECRET``, ``user:pass@host``). `set_redaction` turns it off.
- Control characters are escaped visibly for terminals, so a message cannot forge a line
  or clear the screen; long texts are capped with a count of what was cut.
"""

from __future__ import annotations

import re
import sys
import traceback
from typing import Final

from . import _config

# Query and form parameters, and "name: value" / "name=value" pairs, whose values are secrets.
_CREDENTIAL_NAMES: Final = (
    r"api[_-]?key|apikey|access[_-]?key|secret(?:[_-]?key)?|client[_-]?secret|token"
    r"|access[_-]?token|refresh[_-]?token|id[_-]?token|auth(?:orization)?|password|passwd"
    r"|pwd|session(?:[_-]?id)?|sig(?:nature)?|private[_-]?key|key"
)
_PATTERNS: Final = (
    # scheme://user:password@host -> scheme://user:***@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^/\s:@]*:)[^/\s@]+@"), r"\1***@"),
    # Authorization: Bearer <token>, Basic <token>
    (re.compile(r"(?i)\b(bearer|basic)\s+[a-z0-9._~+/=\-]{8,}"), r"\1 ***"),
    # ?apikey=...&token=... (also in form bodies and "key=value" texts); a value ends at a
    # separator, or at ": " (an error message going on after the URL)
    (
        re.compile(
            rf"(?i)(^|[?&;,\s\"'])((?:{_CREDENTIAL_NAMES})=)[^&\s\"',;]+?(?=:\s|[&\s\"',;]|$)"
        ),
        r"\1\2***",
    ),
    # "password": "..." / password: ... (JSON and header-like texts)
    (
        re.compile(
            rf"(?i)([\"']?\b(?:{_CREDENTIAL_NAMES})[\"']?\s*:\s*[\"']?)(?!(?:bearer|basic)\s|\*\*\*)[^\s\"',;}}]+"
        ),
        r"\1***",
    ),
)

_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED_ESCAPES: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\x1b"}

#: The longest message a console line shows.
CONSOLE_LIMIT: Final = 500


def set_redaction(enabled: bool) -> None:  # noqa: FBT001 - a switch reads best as one flag
    """Turn the redaction of credentials in error texts on (the default) or off.

    With it on, texts that resilient_scan logs or reports (``ScanResult.error``, event
    fields) have secrets in URLs and ``name=value`` pairs replaced by ``***``. The exception
    objects themselves are never changed.
    """
    _config.RUNTIME.redact = bool(enabled)


def redaction_enabled() -> bool:
    """Whether credentials in error texts are redacted (see `set_redaction`)."""
    return _config.RUNTIME.redact


def redact(text: str) -> str:
    """Replace credentials in *text* by ``***`` (unless redaction is off)."""
    if not _config.RUNTIME.redact:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def cap(text: str, limit: int | None = None) -> str:
    """Cut *text* to *limit* characters (default: the message limit), saying how much went."""
    limit = _config.RUNTIME.message_limit if limit is None else limit
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… (+{len(text) - limit} chars)"


#: How far past a cap redaction still reads, so a secret cut by the cap is still found.
_REDACTION_MARGIN: Final = 512


def redacted_cap(text: str, limit: int | None = None) -> str:
    """`redact` then `cap`, without running the patterns over text the cap would drop.

    A megabyte-long message costs what its first *limit* characters cost.
    """
    limit = _config.RUNTIME.message_limit if limit is None else limit
    window = limit + _REDACTION_MARGIN
    if len(text) <= window:
        return cap(redact(text), limit)
    shown = redact(text[:window])
    if len(shown) <= limit:  # redaction shortened it below the cap: say what was cut
        return f"{shown}… (+{len(text) - window} chars)"
    return f"{shown[:limit]}… (+{len(shown) - limit + len(text) - window} chars)"


def escape_control(text: str) -> str:
    r"""Show control characters (C0, C1, ESC, CR, LF, ...) as visible escapes like ``\n``."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda m: _NAMED_ESCAPES.get(m[0], f"\\x{ord(m[0]):02x}"), text)


def for_console(value: object, limit: int = CONSOLE_LIMIT) -> str:
    """*value* as one safe terminal line: escaped, then capped at *limit* characters."""
    return cap(escape_control(safe_str(value)), limit)


def safe_str(value: object) -> str:
    """``str(value)``, or a placeholder when its ``__str__`` raises."""
    if type(value) is str:
        return value
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def error_type(exc: BaseException) -> str:
    """The exception's class name, e.g. ``"KeyError"``."""
    return type(exc).__qualname__


def qualified_error_type(exc: BaseException) -> str:
    """The exception's fully qualified class name (``builtins`` omitted)."""
    kind = type(exc)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def error_message(exc: BaseException) -> str:
    """The exception's message: ``str(exc)``, ``repr`` of the argument for a `KeyError`.

    Never raises: an exception whose ``__str__`` raises reads ``<unprintable Type>``.
    """
    try:
        return str(exc)
    except Exception:  # a raising __str__, or one returning something that is not a str
        return f"<unprintable {type(exc).__name__}>"


def describe_error(exc: BaseException) -> str:
    """``"Type: message"`` (just the type when the message is empty), redacted and capped."""
    text = error_message(exc)
    name = error_type(exc)
    return redacted_cap(f"{name}: {text}" if text else name)


def format_traceback(exc: BaseException) -> str:
    """The traceback of *exc* as text, without local variables, redacted and capped."""
    try:
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    except Exception:
        return describe_error(exc)
    return redacted_cap("".join(lines), 20 * _config.RUNTIME.message_limit)


def callable_name(func: object) -> str:
    """A readable name for *func* for logs and errors."""
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    if isinstance(name, str):
        return name
    return type(func).__name__


def add_note(exc: BaseException, note: str) -> None:
    """Attach *note* to *exc* (shown under its traceback), on every Python version."""
    try:
        if sys.version_info >= (3, 11):
            exc.add_note(note)
        else:  # pragma: no cover - Python 3.10
            notes = getattr(exc, "__notes__", None)
            if not isinstance(notes, list):
                notes = []
                exc.__notes__ = notes  # type: ignore[attr-defined]
            notes.append(note)
    except Exception:  # noqa: S110 - an exception that refuses attributes keeps its text
        pass


def note_broken_predicate(
    original: BaseException, broken: BaseException, *, where: str, function: str = ""
) -> None:
    """Record that a user function (a predicate, a key function) raised on *original*.

    The caller keeps *original*; this attaches *broken* to it as a note and reports a
    ``policy.predicate_failed`` event naming where it happened.
    """
    add_note(
        original,
        f"resilient_scan: {where} raised {describe_error(broken)} while judging this exception",
    )
    from ._events import PredicateFailed  # noqa: PLC0415 - events import this module
    from ._instrument import emit  # noqa: PLC0415

    emit(PredicateFailed.of(where=where, function=function, original=original, broken=broken))


def utf8_safe(text: str) -> str:
    """*text* as any UTF-8 file can hold it.

    A lone surrogate (an undecodable file name handed over by the OS) becomes ``?``;
    everything else is unchanged.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


#: Each scanner status in words, in the order reports list them.
STATUS_WORDS: Final = {
    "ok": "ok",
    "error": "error",
    "timeout": "timeout",
    "circuit_open": "circuit open",
    "skipped": "skipped",
    "cancelled": "cancelled",
}
