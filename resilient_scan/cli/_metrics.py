"""``--metrics PORT``: serve Prometheus metrics while a command runs."""

from __future__ import annotations

import contextlib
import urllib.request
from collections.abc import Iterator
from typing import TextIO

from ._file import CliError

__all__ = ["serving_metrics"]

# Local scrapes must not go through a proxy named in the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@contextlib.contextmanager
def serving_metrics(port: int | None, say: TextIO) -> Iterator[None]:
    """Serve ``http://127.0.0.1:PORT/metrics`` while the block runs (None: nothing).

    Says where on *say* at the start, and at the end how many resilient_scan series the
    endpoint served, from one last scrape of it.

    Raises:
        CliError: without the ``prometheus`` extra, or when the port cannot be bound.
    """
    if port is None:
        yield
        return
    try:
        from resilient_scan.prometheus import start_metrics_server  # noqa: PLC0415
    except ImportError:
        raise CliError(
            "--metrics needs prometheus-client: pip install 'resilient-scan[prometheus]'"
        ) from None
    try:
        server = start_metrics_server(port)
    except OSError as exc:
        raise CliError(f"--metrics {port}: cannot serve on 127.0.0.1:{port}: {exc}") from None
    say.write(f"Prometheus metrics on {server.url} while this runs (curl it)\n")
    say.flush()
    try:
        yield
    finally:
        series = _series(server.url)
        server.close()
        say.write(f"Metrics: {series} resilient_scan series served on {server.url}\n")
        say.flush()


def _series(url: str) -> int:
    """How many resilient_scan samples the endpoint serves now (0 if it does not answer)."""
    try:
        with _OPENER.open(url, timeout=5) as response:
            text = response.read().decode("utf-8", "replace")
    except OSError:
        return 0
    return sum(1 for line in text.splitlines() if line.startswith("resilient_scan_"))
