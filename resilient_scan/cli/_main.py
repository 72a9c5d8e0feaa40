"""``main``: run a command, and turn what can go wrong into a message and an exit status."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TextIO

from resilient_scan._text import escape_control

from ._args import PROG, Exit, parse
from ._file import CliError

__all__ = ["EXIT_INTERRUPTED", "EXIT_PIPE", "EXIT_USAGE", "main"]

EXIT_USAGE = 2  # bad arguments, bad config file, scanners that cannot be imported
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT
EXIT_PIPE = 141  # the reader went away, as shells report SIGPIPE (`... | head -1`)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``resilient-scan`` command with *argv* (default: the process's arguments).

    Returns the exit status: 0 on success; 1 when scanners failed as ``--fail-on`` decides;
    2 for bad arguments, a bad config file, a scanner or state that cannot be imported or
    built, or an output file that cannot be written (with a message on stderr, no
    traceback); 130 when interrupted; 141 when the reader of the output went away.
    """
    stdout, stderr = sys.stdout, sys.stderr
    try:
        args = parse(argv)
    except Exit as done:
        return done.status
    try:
        if args.command == "demo":
            from .demo import demo_command  # noqa: PLC0415 - the demo loads only when asked

            return demo_command(args, stdout=stdout)
        from ._run import run_command  # noqa: PLC0415 - as the demo

        return run_command(args, stdout=stdout, stderr=stderr)
    except CliError as exc:
        _say(stderr, f"{PROG}: error: {escape_control(str(exc))}")
        return EXIT_USAGE
    except BrokenPipeError:
        _silence(stdout)
        return EXIT_PIPE
    except KeyboardInterrupt:
        _say(stderr, f"{PROG}: interrupted")
        return EXIT_INTERRUPTED


def _say(stream: TextIO, line: str) -> None:
    try:
        stream.write(line + "\n")
        stream.flush()
    except (OSError, ValueError):  # stderr is gone too: nothing left to tell
        pass


def _silence(stream: TextIO) -> None:
    """Point the process's stdout at /dev/null, so exiting flushes nothing into the pipe.

    Python flushes stdout at exit; with the reader gone that would print another
    `BrokenPipeError`. This is what the Python docs advise for ``SIGPIPE``.
    """
    try:
        if stream is sys.__stdout__ and stream is not None:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
