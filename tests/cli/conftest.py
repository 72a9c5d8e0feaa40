"""Fixtures of the command-line tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.support import SCANNERS, unique_module
from tests.helpers import structlog_kept


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """The command configures structlog and puts it back; make sure of it, whatever fails."""
    with structlog_kept():
        yield


@pytest.fixture(autouse=True)
def _plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """No colour or width settings from the environment the tests run in."""
    for name in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "TERM"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def module(tmp_path: Path) -> Iterator[str]:
    """The scanners module above, importable from tmp_path (where configs are written)."""
    yield from unique_module(tmp_path, SCANNERS)
