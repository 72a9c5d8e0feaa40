"""An embedded HTTP API simulator: the slow, flaky services that scanners call.

It runs a stdlib `ThreadingHTTPServer` on 127.0.0.1 (a free port) in a daemon thread and
behaves like the outside services a discovery pipeline depends on: each endpoint has its
own latency, one answers HTTP 429 with ``Retry-After`` before it serves, one fails with
HTTP 500 a few times, one hangs until the simulator stops, and one is down for good (HTTP
503). It counts the requests each endpoint received, so a demo can prove what was called
and what was not.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

if TYPE_CHECKING:
    from typing_extensions import Self

#: How an endpoint behaves.
#: ``ok``: always 200. ``rate_limited``: 429 with Retry-After for its first requests.
#: ``flaky``: 500 for its first requests. ``hang``: never answers until the simulator stops.
#: ``down``: always 503.
Behaviour = Literal["ok", "rate_limited", "flaky", "hang", "down"]


@dataclass(frozen=True)
class Endpoint:
    """One simulated endpoint.

    Attributes:
        path: The URL path, e.g. ``/v1/market/movers``.
        service: The service it belongs to (its scanners share a client and a breaker).
        latency: Seconds it takes to answer (before the latency scale).
        behaviour: How it behaves (see `Behaviour`).
        body: The JSON body of a successful answer.
    """

    path: str
    service: str
    latency: float
    behaviour: Behaviour
    body: Mapping[str, Any]


AS_OF = "2025-06-13T14:30:00Z"


def _rows(fields: str, *rows: tuple[Any, ...]) -> list[dict[str, Any]]:
    """Build records from a field list and value tuples (keeps the data below readable)."""
    names = fields.split()
    return [dict(zip(names, row, strict=True)) for row in rows]


_MOVERS = _rows(
    "symbol name price change_pct volume avg_volume",
    ("NVDA", "NVIDIA", 131.2, 9.4, 412_000_000, 238_000_000),
    ("SMCI", "Super Micro Computer", 42.7, 12.8, 61_000_000, 29_000_000),
    ("PLTR", "Palantir", 27.9, 6.1, 98_000_000, 64_000_000),
    ("COIN", "Coinbase", 238.4, -7.3, 14_500_000, 9_100_000),
    ("AMD", "Advanced Micro Devices", 161.0, 4.2, 71_000_000, 55_000_000),
    ("RIVN", "Rivian", 13.1, -5.6, 44_000_000, 31_000_000),
)
_FILINGS = _rows(
    "symbol insider title shares price filed",
    ("JPM", "J. Dimon", "CEO", 50_000, 198.1, "2025-06-12"),
    ("PLTR", "A. Karp", "CEO", 250_000, 27.4, "2025-06-11"),
    ("KO", "J. Quincey", "CEO", 12_000, 62.3, "2025-06-12"),
    ("DVN", "R. Muncrief", "Director", 30_000, 33.8, "2025-06-10"),
    ("NKE", "E. Hill", "CEO", 16_000, 61.2, "2025-06-09"),
)
_ACCUMULATION = _rows(
    "symbol relative_volume obv_trend days",
    ("NVDA", 1.7, "rising", 6),
    ("AVGO", 2.3, "rising", 4),
    ("XOM", 1.9, "rising", 8),
    ("LLY", 1.4, "flat", 3),
    ("DVN", 2.8, "rising", 5),
)
_ARTICLES = _rows(
    "symbol headline outlet sentiment",
    ("AAPL", "Apple unveils on-device AI models at WWDC", "Reuters", 0.82),
    ("TSLA", "Tesla recalls 120,000 vehicles over seat belts", "Bloomberg", -0.64),
    ("NVDA", "NVIDIA briefly tops $3 trillion in market value", "CNBC", 0.71),
    ("ORCL", "Oracle cloud revenue beats as AI demand grows", "WSJ", 0.77),
    ("BA", "FAA extends review of Boeing production line", "AP", -0.41),
)
_TRENDING = _rows(
    "symbol mentions mention_change_pct bullish_ratio",
    ("GME", 48_200, 910.0, 0.81),
    ("NVDA", 21_400, 140.0, 0.74),
    ("AMC", 15_900, 380.0, 0.69),
    ("SMCI", 7_300, 95.0, 0.66),
    # Noise that social feeds really produce: a cashtag with no symbol.
    ("", 5_100, 60.0, 0.5),
)
_EARNINGS = _rows(
    "symbol date time eps_estimate beats_last_4",
    ("ORCL", "2025-06-14", "after close", 1.64, 3),
    ("ADBE", "2025-06-16", "after close", 4.39, 4),
    ("AAPL", "2025-06-18", "after close", 1.35, 4),
    ("FDX", "2025-06-19", "after close", 5.37, 2),
)

#: The endpoints, with realistic candidate data. Tickers overlap between services on purpose,
#: so the merged report shows one candidate found by several scanners.
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("/v1/market/movers", "market-data", 0.40, "ok", {"as_of": AS_OF, "movers": _MOVERS}),
    Endpoint(
        "/v1/insider/transactions", "sec-filings", 0.50, "ok", {"as_of": AS_OF, "filings": _FILINGS}
    ),
    Endpoint(
        "/v1/market/volume",
        "market-data",
        0.60,
        "ok",
        {"as_of": AS_OF, "accumulation": _ACCUMULATION},
    ),
    Endpoint(
        "/v1/news/sentiment",
        "news-api",
        0.50,
        "rate_limited",
        {"as_of": AS_OF, "articles": _ARTICLES},
    ),
    Endpoint(
        "/v1/social/trending", "social-api", 0.30, "flaky", {"as_of": AS_OF, "trending": _TRENDING}
    ),
    Endpoint(
        "/v1/earnings/calendar", "earnings-api", 0.30, "ok", {"as_of": AS_OF, "events": _EARNINGS}
    ),
    Endpoint("/v1/altdata/signals", "alt-data", 0.0, "hang", {"as_of": AS_OF, "signals": []}),
    Endpoint("/v1/options/flow", "options-flow", 0.10, "down", {"as_of": AS_OF, "flow": []}),
)


class _Server(ThreadingHTTPServer):
    # Handler threads are daemons: a request still hanging can never hold up the exit.
    daemon_threads = True
    # socketserver's default listen backlog is 5. When more clients connect at once than
    # the accept loop has taken, Linux drops the handshake's last ACK and the client waits
    # about a second for a retransmission: the demo's eight concurrent scanners hit that.
    request_queue_size = 128
    simulator: ApiSimulator


class _Handler(BaseHTTPRequestHandler):
    server_version = "resilient-scan-simulator/1.0"
    error_content_type = "application/json"

    def do_GET(self) -> None:
        simulator = cast("_Server", self.server).simulator
        simulator._handle(self)  # noqa: SLF001 - the handler is the simulator's own part

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Stay quiet: the demo prints what matters itself."""

    def send_json(
        self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        payload = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client gave up on this request (its own timeout); nothing to tell it


class ApiSimulator:
    """The simulated services, on 127.0.0.1 and a free port. Use it as a context manager.

    Args:
        latency_scale: Multiplies every endpoint's latency (tests use a small scale).
        rate_limited_requests: How many first requests the rate-limited endpoint answers with
            HTTP 429.
        retry_after: The ``Retry-After`` seconds it sends with each 429.
        flaky_failures: How many first requests the flaky endpoint answers with HTTP 500.
        endpoints: The endpoints to serve (default: `ENDPOINTS`).
    """

    _STATUS_BODY: ClassVar[dict[int, str]] = {
        429: "rate limit exceeded",
        500: "internal server error",
        503: "service unavailable",
    }

    def __init__(
        self,
        *,
        latency_scale: float = 1.0,
        rate_limited_requests: int = 1,
        retry_after: int = 1,
        flaky_failures: int = 2,
        endpoints: tuple[Endpoint, ...] = ENDPOINTS,
    ) -> None:
        """Create the simulator; `start` (or ``with``) starts serving."""
        self.latency_scale = latency_scale
        self.rate_limited_requests = rate_limited_requests
        self.retry_after = retry_after
        self.flaky_failures = flaky_failures
        self.endpoints = {endpoint.path: endpoint for endpoint in endpoints}
        self._lock = threading.Lock()
        self._times: dict[str, list[float]] = {path: [] for path in self.endpoints}
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind a free port on 127.0.0.1 and serve from a daemon thread."""
        if self._server is not None:
            raise RuntimeError("the simulator is already running")
        server = _Server(("127.0.0.1", 0), _Handler)
        server.simulator = self
        self._server = server
        self._stopping.clear()
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="api-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release hanging requests, stop serving and close the port."""
        server, thread = self._server, self._thread
        if server is None:
            return
        # First let hanging handlers answer, so the threads abandoned on them can end.
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5.0)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        """Start the simulator."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the simulator."""
        self.stop()

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321``."""
        if self._server is None:
            raise RuntimeError("the simulator is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- what happened ----------------------------------------------------------------------

    def requests(self, path: str) -> int:
        """Return how many requests *path* has received."""
        with self._lock:
            return len(self._times.get(path, ()))

    def counts(self) -> dict[str, int]:
        """Return the requests received, per endpoint path."""
        with self._lock:
            return {path: len(times) for path, times in self._times.items()}

    def request_times(self, path: str) -> list[float]:
        """Return the `time.monotonic` instants at which *path* received its requests."""
        with self._lock:
            return list(self._times.get(path, ()))

    # -- serving ----------------------------------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        path = handler.path.split("?", 1)[0]
        endpoint = self.endpoints.get(path)
        if endpoint is None:
            handler.send_json(404, {"error": f"no endpoint {path}"})
            return
        with self._lock:
            times = self._times[path]
            times.append(time.monotonic())
            number = len(times)  # this request's number, 1 for the first
        behaviour = endpoint.behaviour
        if behaviour == "hang":
            # Like a server that accepted the connection and then stalled: nothing comes back
            # until the simulator stops, so a client without an I/O timeout waits that long.
            self._stopping.wait()
            handler.send_json(503, {"error": "simulator stopped"})
            return
        if behaviour == "rate_limited" and number <= self.rate_limited_requests:
            # Rate limiters answer at once: no backend work is done.
            handler.send_json(
                429,
                {"error": self._STATUS_BODY[429], "retry_after": self.retry_after},
                {"Retry-After": str(self.retry_after)},
            )
            return
        if self._stopping.wait(endpoint.latency * self.latency_scale):
            handler.send_json(503, {"error": "simulator stopped"})
            return
        if behaviour == "down":
            handler.send_json(503, {"error": self._STATUS_BODY[503]})
        elif behaviour == "flaky" and number <= self.flaky_failures:
            handler.send_json(500, {"error": self._STATUS_BODY[500]})
        else:
            handler.send_json(HTTPStatus.OK, endpoint.body)


__all__ = ["ENDPOINTS", "ApiSimulator", "Behaviour", "Endpoint"]
