"""The service's Prometheus series, defined once: web/ serves them, and each part counts its own work.

The public contract's three series keep their names; every other series of the project is
named weather_metrics_*. docs/operating.md ("Metrics") lists them all. Label values come
from short fixed lists (formats, outcomes, kinds), never from ids or what a client sent.

Under gunicorn every worker writes its values to files that /metrics adds up (prometheus_client's
multiprocess mode, set up in runtime/gunicorn_conf.py): each gauge says how its processes' values
combine, and a value only this process can read is set from it (ProcessGauges), not read by a function.
"""

from __future__ import annotations

import platform
import sqlite3
import threading
import tomllib
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# A `_created` series beside every counter and histogram doubles what each scrape stores and
# answers nothing an operator asks. Process-wide, so it holds in the gunicorn worker and in tests.
disable_created_metrics()


def service_version() -> str:
    """The version in pyproject.toml of the checkout the service runs from, else of the installed package."""
    try:
        with (Path(__file__).resolve().parents[2] / "pyproject.toml").open("rb") as file:
            return str(tomllib.load(file)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        pass
    try:
        return metadata.version("weather-metrics")
    except metadata.PackageNotFoundError:
        return "unknown"


# The public analytics API's GET /metrics: names, help and labels as its contract gives them.
http_requests_total = Counter(
    "http_requests_total", "Total number of HTTP requests", ["method", "route", "status_code"]
)

http_request_duration_seconds = Histogram(
    "http_request_duration_seconds", "Duration of HTTP requests in seconds", ["method", "route", "status_code"]
)

events_received_total = Counter(
    "events_received_total", "Total number of analytics events received", ["analytics_level", "tool"]
)


# Set by each app, not here: a value set at import in gunicorn's master would stay in its file, and a
# PostgreSQL service would also show database="sqlite". "livemax": every live worker says the same,
# and a worker gone with a reload (SIGHUP after an upgrade) takes its old labels with it.
build_info = Gauge(
    "weather_metrics_build_info",
    "Always 1: the version of the service, its Python and its database",
    ["version", "python_version", "database", "sqlite_version"],
    multiprocess_mode="livemax",
)


def describe_database(backend: str) -> None:
    """Name the backend the service opened (`sqlite` or `postgresql`) in build_info."""
    build_info.clear()
    build_info.labels(service_version(), platform.python_version(), backend, sqlite3.sqlite_version).set(1)


# The write path (store/writer.py); ProcessGauges sets the gauges from this process's writer and hub.
# "livesum": the processes' rows and sockets add up, and a worker that died takes its own with it.
writer_queue_rows = Gauge(
    "weather_metrics_writer_queue_rows",
    "Rows accepted (events and organization metrics) and not yet committed",
    multiprocess_mode="livesum",
)

writer_batch_rows = Histogram(
    "weather_metrics_writer_batch_rows",
    "Rows committed per writer transaction",
    buckets=(1, 10, 100, 250, 500, 1000, 2500, 5000, 10000, 25000),
)

writer_commit_seconds = Histogram(
    "weather_metrics_writer_commit_seconds",
    "Time the writer takes to write and commit one transaction",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

websocket_connections = Gauge(
    "weather_metrics_websocket_connections", "Open WebSocket connections", multiprocess_mode="livesum"
)


class ProcessGauges:
    """The gauges whose values only this process can read: its write queue and its sockets.

    A function-backed gauge (set_function) is read from this process's registry, which /metrics
    does not serve in multiprocess mode (it adds up the files), so the values are set instead:
    in the process answering a scrape, and every `interval` seconds in each gunicorn worker
    (`start_sampling`), so a scrape sees the other workers' values at most that old.
    """

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._queue_rows: Callable[[], int] = lambda: 0
        self._sockets: Callable[[], int] = lambda: 0
        self._stop = threading.Event()

    def watch(self, queue_rows: Callable[[], int], sockets: Callable[[], int]) -> None:
        """Read the gauges from these (the app built last, as there is one per process)."""
        self._queue_rows, self._sockets = queue_rows, sockets

    def sample(self) -> None:
        writer_queue_rows.set(self._queue_rows())
        websocket_connections.set(self._sockets())

    def start_sampling(self) -> threading.Thread:
        """Set the gauges every `interval` seconds, in a daemon thread, until `stop`."""
        self._stop.clear()
        thread = threading.Thread(target=self._run, name="metrics-sampler", daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._stop.set()


PROCESS_GAUGES = ProcessGauges()


# Organization metrics (ingest/org/intake.py), counted when committed: replays are not counted again.
organization_rows_received_total = Counter(
    "weather_metrics_organization_rows_received_total",
    "Organization metric rows committed, by table and by surface (mcp: API keys, api: signed-in users)",
    ["kind", "surface"],
)


# Export jobs (reports/runner.py), counted when the job's outcome is recorded.
exports_total = Counter(
    "weather_metrics_exports_total",
    "Export jobs finished, by file format and outcome (done, failed)",
    ["format", "outcome"],
)


# Webhooks (webhooks/deliveries.py).
webhook_deliveries_total = Counter(
    "weather_metrics_webhook_deliveries_total",
    "Webhook deliveries by outcome: delivered, retried (an attempt failed, another follows) or failed (given up)",
    ["outcome"],
)

webhooks_disabled_total = Counter(
    "weather_metrics_webhooks_disabled_total", "Webhooks disabled after too many consecutive failed deliveries"
)


# Alert rules (alerts/evaluator.py).
alert_evaluations_total = Counter("weather_metrics_alert_evaluations_total", "Alert rule evaluations")

alerts_fired_total = Counter("weather_metrics_alerts_fired_total", "Alerts fired, by rule severity", ["severity"])

# Rate limits with redis_url set (core/shared_ratelimit.py, web/limits.py).
rate_limit_fallbacks_total = Counter(
    "weather_metrics_rate_limit_fallbacks_total",
    "Requests whose rate limit this process decided alone because Redis failed, by limiter: v1, or api (/api, /mcp)",
    ["limiter"],
)


def start_at_zero(formats: Iterable[str], severities: Iterable[str]) -> None:
    """Every series of the labelled counters, at 0 from the start: rate() and increase() then see the first count."""
    for export_format in formats:
        for outcome in ("done", "failed"):
            exports_total.labels(export_format, outcome)
    for outcome in ("delivered", "retried", "failed"):
        webhook_deliveries_total.labels(outcome)
    for severity in severities:
        alerts_fired_total.labels(severity)
    for limiter in ("v1", "api"):
        rate_limit_fallbacks_total.labels(limiter)
