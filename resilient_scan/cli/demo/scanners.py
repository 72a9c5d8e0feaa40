"""The demo's scanners: real HTTP calls to the simulator, each wrapped in `resilient`.

One client function per service (market data, SEC filings, news, ...), each with its own
cache, retry, circuit breaker and attempt timeout, like a real application's API clients.
Scanners turn the services' answers into candidates.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any

import resilient_scan as rs

from .settings import DemoSettings

#: A service's GET function: ``get(path, **query) -> JSON object``.
Fetch = rs.ResilientFunction[..., dict[str, Any]]

_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})

# The simulator is on 127.0.0.1: never send its requests through an HTTP proxy that the
# environment (http_proxy, ...) may name.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ApiError(Exception):
    """An HTTP error answer from a service.

    Attributes:
        url: The URL requested.
        status: The HTTP status code.
        reason: The status's reason phrase.
        headers: The answer's headers; ``Retry-After`` among them is honoured by `rs.retry`
            (it reads ``exc.headers``).
    """

    def __init__(self, url: str, status: int, reason: str, headers: Message) -> None:
        """Create the error for the answer *status* to *url*."""
        super().__init__(f"HTTP {status} {reason}".rstrip())
        self.url = url
        self.status = status
        self.reason = reason
        self.headers = headers

    def __reduce__(self) -> tuple[type[ApiError], tuple[str, int, str, Message]]:
        """Pickle with the constructor's arguments."""
        return (type(self), (self.url, self.status, self.reason, self.headers))

    @property
    def retryable(self) -> bool:
        """Whether another attempt may succeed: 429 and the 5xx that mean "not now"."""
        return self.status in _RETRYABLE_STATUS


def is_transient(exc: BaseException) -> bool:
    """Whether *exc* is worth another attempt.

    Yes for 429 and the 5xx that mean "not now", timeouts (the attempt's or the socket's)
    and lost connections; no for other 4xx, where asking again gets the same answer.
    """
    if isinstance(exc, ApiError):
        return exc.retryable
    return isinstance(exc, (TimeoutError, ConnectionError, urllib.error.URLError))


def is_client_error(exc: BaseException) -> bool:
    """A 4xx answer: the service is up and answered, so it is no failure for the breaker."""
    return isinstance(exc, ApiError) and 400 <= exc.status < 500  # noqa: PLR2004


def http_get_json(url: str, *, timeout: float | None) -> dict[str, Any]:
    """GET *url* and return its JSON object; `ApiError` for an HTTP error answer.

    *timeout* bounds each blocking socket operation; None waits forever, as many
    third-party SDKs do by default.
    """
    request = urllib.request.Request(  # noqa: S310 - the URL is the simulator's http URL
        url, headers={"Accept": "application/json", "User-Agent": "resilient-scan-demo"}
    )
    try:
        if timeout is None:
            response = _OPENER.open(request)
        else:
            response = _OPENER.open(request, timeout=timeout)
        with response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        with exc:  # closes the error's response
            raise ApiError(url, exc.code, exc.reason, exc.headers) from None
    if not isinstance(body, dict):
        raise ApiError(url, 502, "expected a JSON object", Message())
    return body


def service_client(
    base_url: str, service: str, settings: DemoSettings, *, io_timeout: bool = True
) -> Fetch:
    """Return ``get(path, **query)`` for *service*, wrapped in its resilience layers.

    Layers, outermost first: a TTL cache (answers repeated calls without a request), a
    retry on transient errors (honouring ``Retry-After``), a circuit breaker of the
    service's own, and a timeout on each attempt. Each request's socket timeout is bounded
    by the time the attempt has left (`rs.time_remaining`), so no request outlives it.

    With *io_timeout* False the client has no I/O timeout and no attempt timeout, like
    many SDKs out of the box: a hanging server then holds it until the executor's
    per-scanner timeout gives up on the scanner. Retrying a hang only multiplies the wait,
    so that client has no retry either.
    """

    def get(path: str, **query: str) -> dict[str, Any]:
        url = base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(sorted(query.items()))
        if not io_timeout:
            return http_get_json(url, timeout=None)
        remaining = rs.time_remaining()
        limit = settings.client_timeout if remaining is None else remaining
        # A zero timeout would put the socket in non-blocking mode: keep a small floor.
        return http_get_json(url, timeout=max(0.05, min(settings.client_timeout, limit)))

    # Log events and errors name the function: make that the service, not "get".
    get.__name__ = get.__qualname__ = f"{service}.get"
    breaker = {
        "fail_max": settings.fail_max,
        "reset_timeout": settings.reset_timeout,
        "exclude": (is_client_error,),
        "name": service,
    }
    if not io_timeout:
        return rs.resilient(cache=settings.cache_ttl, breaker=breaker)(get)
    return rs.resilient(
        cache=settings.cache_ttl,
        retry={
            "attempts": settings.attempts,
            "backoff": settings.backoff,
            "max_backoff": 2.0,
            "on": is_transient,
        },
        breaker=breaker,
        timeout=settings.attempt_timeout,
    )(get)


# -- scanners ------------------------------------------------------------------------------


def _rank(value: float, thresholds: tuple[tuple[float, str], ...]) -> str:
    """Return the priority of the first threshold *value* reaches, else ``"low"``."""
    for threshold, priority in thresholds:
        if value >= threshold:
            return priority
    return "low"


def _log_call(state: Mapping[str, Any], scanner: str, service: str, path: str, rows: int) -> None:
    logs = state.get("tool_logs")
    if isinstance(logs, list):
        logs.append({"scanner": scanner, "service": service, "endpoint": path, "rows": rows})


def _market_movers(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = []
    for row in answer["movers"]:
        change, rvol = row["change_pct"], row["volume"] / row["avg_volume"]
        found.append(
            {
                "ticker": row["symbol"],
                "context": f"{row['name']} {change:+.1f}% on {rvol:.1f}x average volume",
                "priority": _rank(abs(change), ((12, "critical"), (8, "high"), (5, "medium"))),
                "price": row["price"],
                "change_pct": change,
                "relative_volume": round(rvol, 2),
            }
        )
    return found


def _insider_buying(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = []
    for row in answer["filings"]:
        value = row["shares"] * row["price"]
        found.append(
            {
                "ticker": row["symbol"],
                "context": (
                    f"{row['title']} {row['insider']} bought {row['shares']:,} shares"
                    f" (${value / 1e6:.1f}M) on {row['filed']}"
                ),
                "priority": _rank(value, ((5e6, "high"), (1e6, "medium"))),
                "insider_value": round(value),
            }
        )
    return found


def _volume_accumulation(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = []
    for row in answer["accumulation"]:
        rising = row["obv_trend"] == "rising"
        rvol = row["relative_volume"]
        found.append(
            {
                "ticker": row["symbol"],
                "context": (
                    f"{rvol:.1f}x relative volume, OBV {row['obv_trend']} for {row['days']} days"
                ),
                "priority": ("high" if rvol >= 2 else "medium") if rising else "low",  # noqa: PLR2004
                "relative_volume": rvol,
            }
        )
    return found


def _news_sentiment(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "ticker": row["symbol"],
            "context": f"{row['outlet']}: {row['headline']} (sentiment {row['sentiment']:+.2f})",
            "priority": _rank(abs(row["sentiment"]), ((0.75, "high"), (0.5, "medium"))),
            "sentiment": row["sentiment"],
        }
        for row in answer["articles"]
    ]


def _social_trending(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    # Passed on as the feed gives them: the executor drops the entry without a symbol.
    return [
        {
            "ticker": row["symbol"],
            "context": (
                f"{row['mentions']:,} mentions ({row['mention_change_pct']:+.0f}%),"
                f" {row['bullish_ratio']:.0%} bullish"
            ),
            "priority": _rank(row["mention_change_pct"], ((300, "high"), (100, "medium"))),
            "mentions": row["mentions"],
        }
        for row in answer["trending"]
    ]


def _earnings_calendar(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "ticker": row["symbol"],
            "context": (
                f"reports {row['date']} {row['time']}, EPS est. ${row['eps_estimate']:.2f},"
                f" beat {row['beats_last_4']}/4 last quarters"
            ),
            "priority": _rank(row["beats_last_4"], ((4, "high"), (3, "medium"))),
            "earnings_date": row["date"],
        }
        for row in answer["events"]
    ]


def _alt_signals(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(row) for row in answer["signals"]]


def _options_flow(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(row) for row in answer["flow"]]


@dataclass(frozen=True)
class ScannerSpec:
    """One demo scanner: its name, pipeline, service, endpoint and how it reads the answer."""

    name: str
    pipeline: str
    service: str
    path: str
    parse: Callable[[Mapping[str, Any]], list[dict[str, Any]]]


SPECS: tuple[ScannerSpec, ...] = (
    ScannerSpec("market_movers", "momentum", "market-data", "/v1/market/movers", _market_movers),
    ScannerSpec(
        "insider_buying", "smart_money", "sec-filings", "/v1/insider/transactions", _insider_buying
    ),
    ScannerSpec(
        "volume_accumulation",
        "momentum",
        "market-data",
        "/v1/market/volume",
        _volume_accumulation,
    ),
    ScannerSpec("news_sentiment", "catalysts", "news-api", "/v1/news/sentiment", _news_sentiment),
    ScannerSpec(
        "social_trending", "momentum", "social-api", "/v1/social/trending", _social_trending
    ),
    ScannerSpec(
        "earnings_calendar",
        "catalysts",
        "earnings-api",
        "/v1/earnings/calendar",
        _earnings_calendar,
    ),
    ScannerSpec("slow_scanner", "alternative", "alt-data", "/v1/altdata/signals", _alt_signals),
    ScannerSpec("broken_scanner", "smart_money", "options-flow", "/v1/options/flow", _options_flow),
)

#: The scanners whose services answer (after retries): the ones compared for speed.
HEALTHY = (
    "market_movers",
    "insider_buying",
    "volume_accumulation",
    "news_sentiment",
    "social_trending",
    "earnings_calendar",
)

#: The service whose endpoint hangs: its client has no I/O timeout.
HANGING_SERVICE = "alt-data"


@dataclass(frozen=True)
class DemoScanners:
    """A fresh set of demo scanners with their own clients (caches, breakers).

    Attributes:
        scanners: The scanners, in pipeline order.
        clients: Each service's client function, by service name.
        specs: Each scanner's spec, by scanner name.
    """

    scanners: list[Any]
    clients: dict[str, Fetch]
    specs: dict[str, ScannerSpec]

    def client_of(self, scanner: str) -> Fetch:
        """Return the client function the scanner named *scanner* calls."""
        return self.clients[self.specs[scanner].service]

    def only(self, names: tuple[str, ...]) -> list[Any]:
        """Return the scanners named *names*, in pipeline order."""
        return [item for item, spec in zip(self.scanners, SPECS, strict=True) if spec.name in names]


def _make_scanner(spec: ScannerSpec, fetch: Fetch) -> Any:
    def scan(state: Mapping[str, Any]) -> list[dict[str, Any]]:
        answer = fetch(spec.path, as_of=str(state.get("as_of", "latest")))
        candidates = spec.parse(answer)
        _log_call(state, spec.name, spec.service, spec.path, len(candidates))
        return candidates

    scan.__name__ = scan.__qualname__ = spec.name
    return rs.scanner(name=spec.name, pipeline=spec.pipeline)(scan)


def build_scanners(base_url: str, settings: DemoSettings) -> DemoScanners:
    """Build the eight demo scanners against the simulator at *base_url*.

    Every call builds new clients: new caches, new breakers, so the scanners start cold.
    """
    clients = {
        service: service_client(base_url, service, settings, io_timeout=service != HANGING_SERVICE)
        for service in dict.fromkeys(spec.service for spec in SPECS)
    }
    scanners = [_make_scanner(spec, clients[spec.service]) for spec in SPECS]
    return DemoScanners(scanners, clients, {spec.name: spec for spec in SPECS})


__all__ = [
    "HEALTHY",
    "SPECS",
    "ApiError",
    "DemoScanners",
    "ScannerSpec",
    "build_scanners",
    "http_get_json",
    "is_client_error",
    "is_transient",
    "service_client",
]
