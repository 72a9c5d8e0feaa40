"""What a command changes in the process while it runs, and puts back afterwards.

The command line is an application, so unlike the library it configures logging: on the
console, the library's events reach the `Presenter` (typed events, no log parsing) and
structlog prints what scanners log themselves; with JSON output, every event is one JSON
line. The previous structlog configuration and hooks are restored when the command ends,
so `main` can also run inside another program (or a test) without changing its logging.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TextIO

from resilient_scan._console import configure_logging
from resilient_scan._instrument import Hook, get_hooks, set_hooks
from resilient_scan._loghooks import LoggingHook, LogHook, StructlogHook

from ._output import Output
from ._progress import Presenter

__all__ = ["json_logs", "presented", "stdout_to"]

_LOG_HOOKS = (LogHook, StructlogHook, LoggingHook)


@contextlib.contextmanager
def _restored() -> Iterator[tuple[Hook, ...]]:
    import structlog  # noqa: PLC0415 - loaded by commands that configure logging

    saved_config = structlog.get_config()
    saved_hooks = get_hooks()
    try:
        yield saved_hooks
    finally:
        set_hooks(saved_hooks)
        structlog.configure(**saved_config)


@contextlib.contextmanager
def presented(output: Output, presenter: Presenter) -> Iterator[None]:
    """Show events on *output* through *presenter*; scanners' own structlog logs too."""
    with _restored() as saved:
        configure_logging(format="console", stream=output)  # type: ignore[arg-type]
        others = [hook for hook in saved if not isinstance(hook, _LOG_HOOKS)]
        set_hooks([*others, presenter])
        try:
            yield
        finally:
            presenter.close()


@contextlib.contextmanager
def json_logs(stream: TextIO) -> Iterator[None]:
    """Every event, and what scanners log with structlog, as JSON lines on *stream*."""
    with _restored():
        configure_logging(format="json", stream=stream)
        yield


@contextlib.contextmanager
def stdout_to(stream: TextIO | None) -> Iterator[None]:
    """Send what scanners print to *stream* while the block runs (None: leave stdout be).

    With ``--json``, stdout carries one JSON document: a scanner's ``print()`` (or a
    module's, while it is imported) must not land in the middle of it.
    """
    if stream is None:
        yield
        return
    saved = sys.stdout
    sys.stdout = stream
    try:
        yield
    finally:
        sys.stdout = saved
