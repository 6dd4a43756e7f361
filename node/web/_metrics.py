"""``GET /metrics``: Prometheus text format, one registry per app (so tests and two
nodes in one process never share counters).

Exported: ``watan_http_requests_total{method,route,status}``,
``watan_http_request_duration_seconds{method,route}`` (a histogram), and, read at
scrape time, ``watan_feed_entries``, ``watan_feeds``, ``watan_db_up``,
``watan_uptime_seconds`` and, on SQLite, ``watan_db_free_bytes`` (alert on it before
writes fail with STORAGE_FULL). Labels are route templates (``/api/v1/accounts/{id}``),
never raw paths or query strings: those could carry identifiers and grow without bound.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "Metrics", "NodeGauges"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Latency buckets (seconds): page loads on a small box range from a few ms (cached
#: reads) to seconds (an argon2 login is ~0.1-0.5 s on a slow CPU).
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class NodeGauges:
    """The values read at scrape time (filled in before each scrape)."""

    def __init__(self) -> None:
        self.entries = 0
        self.feeds = 0
        self.db_up = False
        self.uptime_s = 0.0
        #: Free space beside the SQLite database; None on PostgreSQL (not exported).
        self.free_bytes: int | None = None


class _GaugeCollector(Collector):
    def __init__(self, gauges: NodeGauges) -> None:
        self._gauges = gauges

    def collect(self) -> Iterator[Metric]:
        g = self._gauges
        yield GaugeMetricFamily("watan_feed_entries", "Feed entries stored", value=g.entries)
        yield GaugeMetricFamily("watan_feeds", "Feeds held (own and peers')", value=g.feeds)
        yield GaugeMetricFamily(
            "watan_db_up", "1 if the database answered the last check", value=int(g.db_up)
        )
        yield GaugeMetricFamily("watan_uptime_seconds", "Seconds since start", value=g.uptime_s)
        if g.free_bytes is not None:
            yield GaugeMetricFamily(
                "watan_db_free_bytes",
                "Bytes free where the SQLite database lives",
                value=g.free_bytes,
            )


class Metrics:
    """The node's metrics registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "watan_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "watan_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.gauges = NodeGauges()
        self.registry.register(_GaugeCollector(self.gauges))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self, refresh: Callable[[NodeGauges], None] | None = None) -> bytes:
        if refresh is not None:
            refresh(self.gauges)
        return generate_latest(self.registry)
