"""The ``resilient-scan`` command line: ``demo`` and ``run CONFIG``.

An application built on the library; the library never imports it. Its parts:

- `_args`: the arguments;
- `_file`: the TOML file of ``run`` (its schema, importing what it names);
- `_output`: colours, marks, width, tables; a writer safe for any thread and encoding;
- `_progress`: the live progress of a run, from typed events;
- `_session`: the logging and hooks a command sets up and puts back;
- `_run`: ``resilient-scan run``;
- `demo`: ``resilient-scan demo``, against the API simulator of `resilient_scan.testing`.
"""

from __future__ import annotations

from ._main import main

__all__ = ["main"]
