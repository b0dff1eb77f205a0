"""Prometheus metrics: the contract's three, plus the writer's queue and commits.

The Procfile runs one server process (see weather_metrics/runtime/gunicorn_conf.py), so the
process-wide registry counts the whole service.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter as Tally
from typing import TYPE_CHECKING

from flask import Flask, Response, g, request
from prometheus_client import Counter, Gauge, Histogram
from prometheus_flask_exporter import PrometheusMetrics

from weather_metrics.runtime.logs import current_request_id

if TYPE_CHECKING:
    from weather_metrics.store.batches import PendingBatch


# Any other method becomes "other": clients must not be able to mint label values.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


# A caller's own request id is kept when it is safe to log and echo back.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")


exporter = PrometheusMetrics.for_app_factory(export_defaults=False, path="/metrics")


http_requests_total = Counter(
    "http_requests_total", "Total number of HTTP requests", ["method", "route", "status_code"]
)


http_request_duration_seconds = Histogram(
    "http_request_duration_seconds", "Duration of HTTP requests in seconds", ["method", "route", "status_code"]
)


events_received_total = Counter(
    "events_received_total", "Total number of analytics events received", ["analytics_level", "tool"]
)


queue_depth = Gauge("event_queue_depth", "Events accepted and not yet committed")


websocket_connections = Gauge("websocket_connections", "Open WebSocket connections of this process")


writer_batch_events = Histogram(
    "writer_batch_events",
    "Events committed per writer transaction",
    buckets=(1, 10, 100, 250, 500, 1000, 2500, 5000, 10000, 25000),
)


writer_commit_seconds = Histogram(
    "writer_commit_seconds",
    "Time the writer takes to write and commit one transaction",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


class ToolLabels:
    """Caps the distinct `tool` label values so clients cannot grow /metrics without bound."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, tool: str) -> str:
        if tool in self._seen:
            return tool
        if len(self._seen) < self._limit:
            self._seen.add(tool)
            return tool
        return "other"


def commit_recorder(tool_labels: ToolLabels):  # type: ignore[no-untyped-def]
    """A writer on_commit hook that records what was stored."""

    def record(batches: list[PendingBatch], stored: int, seconds: float) -> None:
        writer_commit_seconds.observe(seconds)
        writer_batch_events.observe(stored)
        tally: Tally[tuple[str, str]] = Tally()
        for batch in batches:
            if batch.stored and batch.kind is None:  # /v1 events; organization rows have no tool label
                tally.update((row[5], row[3]) for row in batch.rows)
        for (level, tool), count in tally.items():
            events_received_total.labels(level, tool_labels(tool)).inc(count)

    return record


def init_app(app: Flask) -> None:
    """Count and time every request, give each an id (X-Request-ID, and on its log lines), and serve /metrics."""
    exporter.init_app(app)

    @app.before_request
    def start_timer() -> None:
        g.request_started = time.perf_counter()
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        current_request_id.set(g.request_id)  # on every line logged while handling the request

    @app.teardown_request
    def forget_request_id(_exc: BaseException | None) -> None:
        current_request_id.set(None)  # the thread's next lines belong to no request, or to another

    @app.after_request
    def record_request(response: Response) -> Response:
        started = g.pop("request_started", None)
        if started is not None and request.path != "/metrics":
            route = request.url_rule.rule if request.url_rule else "unmatched"
            method = request.method if request.method in KNOWN_METHODS else "other"
            labels = (method, route, str(response.status_code))
            http_requests_total.labels(*labels).inc()
            http_request_duration_seconds.labels(*labels).observe(time.perf_counter() - started)
        response.headers["X-Request-ID"] = g.get("request_id") or uuid.uuid4().hex
        return response
