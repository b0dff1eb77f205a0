"""Serving /metrics, counting and timing requests, and request ids (the series: runtime/prometheus.py).

Under gunicorn PROMETHEUS_MULTIPROC_DIR is set (runtime/gunicorn_conf.py) and the exporter
answers a scrape from a MultiProcessCollector over every worker's files, so whichever worker
answers, the page counts the whole host. Elsewhere (tests, `flask` commands) the process's
own registry is served.
"""

from __future__ import annotations

import glob
import os
import re
import time
import uuid
from collections import Counter as Tally
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.exposition import choose_encoder
from prometheus_flask_exporter import PrometheusMetrics

from weather_metrics.runtime.logs import current_request_id
from weather_metrics.runtime.prometheus import (
    PROCESS_GAUGES,
    events_received_total,
    http_request_duration_seconds,
    http_requests_total,
    organization_rows_received_total,
    writer_batch_rows,
    writer_commit_seconds,
)
from weather_metrics.store.agents import AGENTS
from weather_metrics.store.productivity import PRODUCTIVITY

if TYPE_CHECKING:
    from weather_metrics.store.batches import PendingBatch


# Any other method becomes "other": clients must not be able to mint label values.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


# A caller's own request id is kept when it is safe to log and echo back.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")
# The id a request was given before Flask saw it (web/v1/shortcut.py), in its WSGI environ.
REQUEST_ID_KEY = "weather_metrics.request_id"


class WorkerFiles(multiprocess.MultiProcessCollector):
    """Every worker's files, but one a worker has just created and not yet sized.

    prometheus_client creates a file, then sizes it: a scrape in between read its missing header
    and answered 500, and a worker killed in between left an empty file that failed every later
    scrape (prometheus/client_python#1199). An empty file holds no values yet: it is skipped.
    """

    def collect(self) -> Iterable[Any]:
        files = []
        for path in glob.glob(os.path.join(self._path, "*.db")):
            try:
                if os.path.getsize(path) >= MMAP_HEADER_BYTES:
                    files.append(path)
            except FileNotFoundError:  # a dead worker's live gauge, removed by the master meanwhile
                pass
        return self.merge(files, accumulate=True)


MMAP_HEADER_BYTES = 8  # a metrics file's used length and padding, before any value


class Exporter(PrometheusMetrics):
    """prometheus-flask-exporter, reading the workers' files through WorkerFiles."""

    def generate_metrics(self, accept_header: str | None = None, names: list[str] | None = None) -> tuple[str, str]:
        if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            return super().generate_metrics(accept_header, names)  # type: ignore[no-any-return]
        registry = CollectorRegistry()
        WorkerFiles(registry)
        chosen = registry.restricted_registry(names) if names else registry
        encode, content_type = choose_encoder(accept_header or "")
        return encode(chosen).decode("utf-8"), content_type


exporter = Exporter.for_app_factory(export_defaults=False, path="/metrics")


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
    for kind, surface in ((AGENTS, "mcp"), (AGENTS, "api"), (PRODUCTIVITY, "api")):
        organization_rows_received_total.labels(kind.table, surface)  # at 0 until counted

    def record(batches: list[PendingBatch], stored: int, seconds: float) -> None:
        writer_commit_seconds.observe(seconds)
        writer_batch_rows.observe(stored)
        tally: Tally[tuple[str, str]] = Tally()
        for batch in batches:
            if not batch.stored:
                continue  # a replay or a refused batch
            if batch.kind is None:  # /v1 events; organization rows have no tool label
                tally.update((row[5], row[3]) for row in batch.rows)
            else:  # only /mcp/metrics/collect sends with an API key
                surface = "mcp" if batch.api_key_id else "api"
                organization_rows_received_total.labels(batch.kind.table, surface).inc(batch.stored)
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
        chosen = request.environ.get(REQUEST_ID_KEY)  # the shortcut's, when it passed the request on
        g.request_id = chosen or (given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex)
        current_request_id.set(g.request_id)  # on every line logged while handling the request
        if request.path == "/metrics":
            PROCESS_GAUGES.sample()  # this process's gauges as of now; the other workers' as of their last sample

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
