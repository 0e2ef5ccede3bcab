"""Prometheus metrics (SPEC section 10), through prometheus-client.

The API's state gauges are read from Postgres at scrape time (store/stats.py), so any
number of API processes report the same numbers; its HTTP metrics are the process's own,
labelled by route template (never a raw path: ids would make the label set unbounded).
The worker's counters and histograms are its own, served on WORKER_METRICS_PORT.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from docora.store.stats import Overview

__all__ = ["CONTENT_TYPE_LATEST", "HttpMetrics", "exposition"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class HttpMetrics:
    """One API process's request counters (a registry per app, so tests can make many)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "docora_http_requests",
            "HTTP requests answered, by method, route template and status",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.duration = Histogram(
            "docora_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.duration.labels(method, route).observe(seconds)


class Rescans(msgspec.Struct, frozen=True):
    """The scheduler's state as read from Postgres (store/checks.py)."""

    lag_seconds: float
    totals: dict[str, int]

    def collect(self):
        yield GaugeMetricFamily(
            "docora_rescan_lag_seconds",
            "How long the oldest due rescan has waited (0 when none is due)",
            value=self.lag_seconds,
        )
        family = CounterMetricFamily(
            "docora_rescans",
            "Rescans by outcome: unchanged, changed (a sync was queued), failed (all workers)",
            labels=["outcome"],
        )
        for outcome, count in self.totals.items():
            family.add_metric([outcome], count)
        yield family


class _State:
    """The gauges of one scrape, as read from Postgres."""

    def __init__(
        self,
        overview: Overview,
        totals: dict[tuple[str, str], int],
        oldest_todo_s: float,
        rescans: Rescans,
    ) -> None:
        self.overview, self.totals, self.oldest_todo_s = overview, totals, oldest_todo_s
        self.rescans = rescans

    def collect(self):
        o = self.overview
        yield GaugeMetricFamily("docora_apps", "Onboarded client apps", value=o.apps)
        yield GaugeMetricFamily(
            "docora_repositories", "Registered repositories", value=o.repositories
        )
        yield _by_status("docora_watches", "Watches by status", o.watches)
        yield GaugeMetricFamily(
            "docora_circuit_breakers_open",
            "Repositories whose circuit breaker is open",
            value=o.circuit_breakers_open,
        )
        yield _by_status("docora_queue_jobs", "Jobs by status", o.queue)
        yield GaugeMetricFamily(
            "docora_queue_oldest_todo_seconds",
            "Age of the oldest job that is due and waiting (0 when none)",
            value=self.oldest_todo_s,
        )
        yield GaugeMetricFamily(
            "docora_workers_alive",
            "Workers with a session or a recent heartbeat",
            value=o.workers_alive,
        )
        deliveries = CounterMetricFamily(
            "docora_deliveries",
            "Webhook requests by event and outcome (all processes)",
            labels=["event", "outcome"],
        )
        for (event, outcome), count in sorted(self.totals.items()):
            deliveries.add_metric([event, outcome], count)
        yield deliveries
        yield from self.rescans.collect()


def _by_status(name: str, documentation: str, counts: dict[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["status"])
    for status, count in counts.items():
        family.add_metric([status], count)
    return family


def exposition(
    http: HttpMetrics,
    overview: Overview,
    totals: dict[tuple[str, str], int],
    oldest_todo_s: float,
    rescans: Rescans,
) -> bytes:
    """One scrape: the state read from Postgres, then this process's HTTP metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_State(overview, totals, oldest_todo_s, rescans))
    return generate_latest(registry) + generate_latest(http.registry)


# --- the worker's own ----------------------------------------------------------------

WORKER = CollectorRegistry(auto_describe=True)
SYNCS = Counter(
    "docora_syncs",
    "Sync jobs by outcome (synced, unchanged, failed, skipped)",
    ("outcome",),
    registry=WORKER,
)
SYNC_DURATION = Histogram(
    "docora_sync_duration_seconds",
    "Sync jobs from start to hand-out",
    buckets=LATENCY_BUCKETS,
    registry=WORKER,
)
FETCH_DURATION = Histogram(
    "docora_git_fetch_duration_seconds",
    "git fetch into a mirror",
    buckets=LATENCY_BUCKETS,
    registry=WORKER,
)
EVENTS_SENT = Counter(
    "docora_events_sent",
    "Webhook requests sent, by event and outcome (delivered, failed)",
    ("event", "outcome"),
    registry=WORKER,
)
WEBHOOK_DURATION = Histogram(
    "docora_webhook_duration_seconds",
    "Time for a receiver to answer a webhook",
    buckets=LATENCY_BUCKETS,
    registry=WORKER,
)
BLOBS_HASHED = Counter("docora_blobs_hashed", "Blobs read and hashed", registry=WORKER)
BYTES_HASHED = Counter("docora_bytes_hashed", "Bytes read and hashed", registry=WORKER)
LFS_OBJECTS_DOWNLOADED = Counter(
    "docora_lfs_objects_downloaded", "Git LFS objects downloaded and verified", registry=WORKER
)
LFS_BYTES_DOWNLOADED = Counter(
    "docora_lfs_bytes_downloaded", "Bytes of Git LFS objects downloaded", registry=WORKER
)
MIRROR_BYTES = Gauge(
    "docora_mirror_bytes",
    "Bytes this host's mirrors take on disk, as of the last fetch (REPOS_BASE_PATH)",
    registry=WORKER,
)
MIRROR_EVICTIONS = Counter(
    "docora_mirror_evictions",
    "Mirrors removed to keep this host within REPOS_MAX_BYTES",
    registry=WORKER,
)


class _FromPostgres:
    """The worker's view of the shared state, read at scrape time through `read`
    (() -> (lag seconds, totals by outcome)); nothing when Postgres cannot be read."""

    def __init__(self, read: Callable[[], tuple[float, dict[str, int]]]) -> None:
        self._read = read

    def collect(self):
        try:
            lag, totals = self._read()
        except Exception:
            return
        yield from Rescans(lag_seconds=lag, totals=totals).collect()


def serve_worker_metrics(
    port: int, host: str, state: Callable[[], tuple[float, dict[str, int]]] | None = None
):
    """The worker's /metrics, from a thread of its own (prometheus-client's server): its
    own counters, plus the rescan state read from Postgres when `state` is given."""
    from prometheus_client import start_http_server

    registry = WORKER
    if state is not None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Both(WORKER, _FromPostgres(state)))
    return start_http_server(port, addr=host, registry=registry)


class _Both:
    def __init__(self, *collectors) -> None:
        self._collectors = collectors

    def collect(self):
        for collector in self._collectors:
            yield from collector.collect()
