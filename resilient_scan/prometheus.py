"""Prometheus metrics for resilient_scan: a hook, and an endpoint to scrape (extra ``prometheus``).

    from resilient_scan import instrumentation
    from resilient_scan.prometheus import PrometheusHook, start_metrics_server

    instrumentation.add_hook(PrometheusHook())  # into prometheus_client's default registry
    server = start_metrics_server(9464)  # http://127.0.0.1:9464/metrics
    ...
    server.close()

The metrics, their labels and the events that feed them are listed in
``docs/observability.md`` (and in `resilient_scan._metrics.METRICS`). Label values are
names of functions, breakers, caches, limiters and scanners, statuses and exception class
names: never tickers, candidates, arguments or error messages, so the number of series
stays bounded.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Collection
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any, Final, final
from weakref import WeakKeyDictionary
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import prometheus_client

from ._engine import abandoned_threads
from ._errors import ConfigError
from ._events import CallFinished, Event
from ._instrument import add_hook, get_hooks, remove_hook
from ._metrics import (
    ABANDONED_THREADS,
    CALLS,
    DURATION_BUCKETS,
    METRIC_EVENTS,
    METRICS,
    NAMESPACE,
    Metric,
    observer,
)

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

__all__ = ["MetricsServer", "PrometheusHook", "start_metrics_server"]

#: The metrics each (registry, namespace) already holds: a second hook on the same
#: registry shares them (a registry refuses two collectors of one name).
_REGISTERED: WeakKeyDictionary[CollectorRegistry, dict[str, dict[Metric, Any]]] = (
    WeakKeyDictionary()
)
_REGISTERED_LOCK: Final = threading.Lock()

# How often the server checks whether it was closed: `close` waits up to this long.
_POLL_SECONDS: Final = 0.05


def _create(metric: Metric, namespace: str, registry: CollectorRegistry) -> Any:
    name = f"{namespace}_{metric.name}" if namespace else metric.name
    if metric.kind == "counter":
        return prometheus_client.Counter(name, metric.description, metric.labels, registry=registry)
    if metric.kind == "histogram":
        return prometheus_client.Histogram(
            name, metric.description, metric.labels, registry=registry, buckets=DURATION_BUCKETS
        )
    gauge = prometheus_client.Gauge(name, metric.description, metric.labels, registry=registry)
    if metric is ABANDONED_THREADS:  # read when scraped: the registry of calls knows best
        gauge.set_function(abandoned_threads)
    return gauge


def _collectors(registry: CollectorRegistry, namespace: str) -> dict[Metric, Any]:
    with _REGISTERED_LOCK:
        by_namespace = _REGISTERED.setdefault(registry, {})
        collectors = by_namespace.get(namespace)
        if collectors is None:
            collectors = {metric: _create(metric, namespace, registry) for metric in METRICS}
            by_namespace[namespace] = collectors
        return collectors


def _updater(metric: Metric, collector: Any) -> Callable[[float], None]:
    if metric.kind == "counter":
        # A counter's `inc` checks, on every call, that it is not a labelled parent and that
        # the amount is not negative, then adds under the value's lock. Both checks hold
        # for what the hook counts (a child, or a metric without labels; amounts >= 0), so
        # the hook adds through the value itself where prometheus_client keeps one.
        add = getattr(getattr(collector, "_value", None), "inc", None)
        observable = getattr(collector, "_is_observable", None)
        if callable(add) and callable(observable) and observable():
            return add  # type: ignore[no-any-return]
        return collector.inc  # type: ignore[no-any-return]
    if metric.kind == "histogram":
        return collector.observe  # type: ignore[no-any-return]
    return collector.set  # type: ignore[no-any-return]


class PrometheusHook:
    """Counts what happens in Prometheus metrics (in *registry*, named ``<namespace>_...``).

    Counters of calls by outcome, retries, timeouts, breaker rejections, cache hits and
    misses, rate-limit waits and rejections; gauges of each breaker's state and of
    abandoned threads; histograms of scanner durations by status and of run durations.
    Creating the hook registers the metrics; two hooks on one registry and namespace
    share them (install only one, or each event is counted twice).
    """

    events: Collection[type[Event]] = METRIC_EVENTS

    def __init__(self, registry: Any = None, namespace: str = NAMESPACE) -> None:
        """Register the metrics in *registry* (default: prometheus_client's ``REGISTRY``)."""
        if not isinstance(namespace, str):
            raise ConfigError(("namespace",), f"must be a string, got {namespace!r}")
        self.registry: CollectorRegistry = (
            prometheus_client.REGISTRY if registry is None else registry
        )
        self.namespace = namespace
        self._collectors = _collectors(self.registry, namespace)
        # The labelled child of each metric, by label values: `labels()` validates and
        # locks on every call, a dict lookup does not.
        self._updaters: dict[Metric, dict[tuple[str, ...], Callable[[float], None]]] = {
            metric: {} for metric in METRICS
        }
        self._observers = {event_type: observer(event_type) for event_type in METRIC_EVENTS}
        self._calls = self._updaters[CALLS]

    def __repr__(self) -> str:
        """Name the namespace."""
        return f"PrometheusHook(namespace={self.namespace!r})"

    def metric(self, metric: Metric) -> Any:
        """The prometheus_client collector behind *metric* (e.g. ``_metrics.CALLS``)."""
        return self._collectors[metric]

    def __call__(self, event: Event) -> None:
        """Update the metrics *event* feeds."""
        if type(event) is CallFinished:  # once per call through a policy: kept short
            key = (event.function, event.outcome, event.error_type or "")
            update = self._calls.get(key)
            if update is None:
                update = self._child(CALLS, key)
            update(1.0)
            return
        observe = self._observers.get(type(event))
        if observe is None:
            return
        updaters = self._updaters
        for metric, labels, value in observe(event):
            update = updaters[metric].get(labels)
            if update is None:
                update = self._child(metric, labels)
            update(value)

    def _child(self, metric: Metric, labels: tuple[str, ...]) -> Callable[[float], None]:
        collector = self._collectors[metric]
        child = collector.labels(*labels) if labels else collector
        update = _updater(metric, child)
        self._updaters[metric][labels] = update
        return update


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        """Write nothing: the library never writes to stdout or stderr on its own."""


@final
class MetricsServer:
    """A running Prometheus endpoint (see `start_metrics_server`).

    Attributes:
        url: Where to scrape, e.g. ``http://127.0.0.1:9464/metrics``.
        port: The port it listens on (the one picked, when 0 was asked for).
        hook: The `PrometheusHook` whose metrics it serves.
    """

    def __init__(
        self, server: WSGIServer, thread: threading.Thread, hook: PrometheusHook, *, owns_hook: bool
    ) -> None:
        """Wrap a started *server* (use `start_metrics_server`)."""
        self._server = server
        self._thread = thread
        self.hook = hook
        self._owns_hook = owns_hook
        address = server.server_address
        host = address[0].decode() if isinstance(address[0], bytes) else str(address[0])
        self.port: int = int(address[1])
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}/metrics"

    def __repr__(self) -> str:
        """Show the URL."""
        return f"MetricsServer({self.url!r})"

    def close(self) -> None:
        """Stop serving; remove the hook if `start_metrics_server` installed it."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)
        if self._owns_hook:
            remove_hook(self.hook)
            self._owns_hook = False

    def __enter__(self) -> MetricsServer:
        """Use as a context manager: closed on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the server."""
        self.close()


def start_metrics_server(
    port: int, addr: str = "127.0.0.1", *, registry: Any = None
) -> MetricsServer:
    """Serve *registry*'s metrics on ``http://addr:port/metrics`` from a daemon thread.

    Installs a `PrometheusHook` on *registry* (default: prometheus_client's ``REGISTRY``)
    unless one is installed already. Port 0 picks a free port (see ``.url``). Only this
    machine can scrape by default; pass ``addr="0.0.0.0"`` to listen on every interface.

    Raises:
        ConfigError: for a port that is not an integer from 0 to 65535.
        OSError: if the address cannot be bound (a port in use).
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:  # noqa: PLR2004
        raise ConfigError(("port",), f"must be an integer from 0 to 65535, got {port!r}")
    target = prometheus_client.REGISTRY if registry is None else registry
    hook = next(
        (h for h in get_hooks() if isinstance(h, PrometheusHook) and h.registry is target),
        None,
    )
    owns_hook = hook is None
    if hook is None:
        hook = PrometheusHook(target)
    server_class: type[WSGIServer] = _ThreadingServer
    if ":" in addr:
        server_class = type("_ThreadingServer6", (_ThreadingServer,), {})
        server_class.address_family = socket.AF_INET6
    app = prometheus_client.make_wsgi_app(target)
    server = make_server(addr, port, app, server_class, handler_class=_QuietHandler)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": _POLL_SECONDS},
        name="resilient_scan-metrics",
        daemon=True,
    )
    thread.start()
    if owns_hook:
        add_hook(hook)
    return MetricsServer(server, thread, hook, owns_hook=owns_hook)
