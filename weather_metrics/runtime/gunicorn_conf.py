"""Gunicorn settings for the Procfile: `workers` processes (one by default), many threads each.

SQLite takes one writer at a time, so one process with one EventWriter commits the
whole service's events in shared transactions (group commit). More processes share the
database file: each has its own writer (they take turns at SQLite's write lock), and
WebSocket events reach every process through the `live_events` table. What stays per
process with more than one: the rate limits unless `redis_url` names a Redis
(docs/configuration.md, "Several worker processes"; docs/scaling.md).

The Procfile loads this file by its path, so its first lines run before anything imports
prometheus_client: they turn on its multiprocess mode, with whatever number of workers, and
/metrics adds up every worker's counters (docs/operating.md, "Metrics").
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

# prometheus_client chooses its mode when first imported, and the weather_metrics package imports
# it, settings included: so the mode cannot wait for the `workers` setting. A directory of this
# start's own (mode 0700, empty), removed when the master exits. Imported as a module (`python:...`), the
# package came first: the metrics stay per process, and the master says so once started.
# A reload (SIGHUP) runs this file again in the same master: the directory of its first run stays
# in use, by the workers it forks too, and so does the mode.
MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR" in os.environ or "prometheus_client" not in sys.modules
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ and MULTIPROCESS:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="weather-metrics-prometheus-")
    _MASTER = os.getpid()
    # Not on a worker's exit (a forked worker runs these too), and also when a bad setting stops the start.

    @atexit.register
    def _remove_metrics_dir() -> None:
        if os.getpid() == _MASTER:
            shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


import logging  # noqa: E402
import signal  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from gunicorn.glogging import Logger  # noqa: E402

from weather_metrics.runtime.logs import (  # noqa: E402
    BackgroundLines,
    RedactingFilter,
    RequestIdFilter,
    configure_logging,
    formatter,
    redact_query,
)
from weather_metrics.settings import SettingsError, load_settings, require_secret  # noqa: E402

_settings = load_settings()

# The master's own application lines (the schema update in on_starting) in the same format.
configure_logging(_settings["log_format"], _settings["log_level"])


require_secret(_settings)  # fail before forking, with the message naming the setting

bind = f"{_settings['host']}:{_settings['port']}"

workers = _settings["workers"]

# gthread, with each request read whole by the event loop before a thread takes it (runtime/worker.py).
worker_class = "weather_metrics.runtime.worker.PrefetchingWorker"

threads = _settings["threads"]
# Connections a process holds open, most of them waiting: slow clients wait here, not in threads.
worker_connections = 4096
if _settings["tls_certfile"] or _settings["tls_keyfile"]:
    for _key in ("tls_certfile", "tls_keyfile"):
        if not _settings[_key] or not Path(_settings[_key]).is_file():
            raise SettingsError(f"setting '{_key}': HTTPS needs both tls_certfile and tls_keyfile, as readable files")
    certfile, keyfile = _settings["tls_certfile"], _settings["tls_keyfile"]

# Only trusted_proxies decides whether X-Forwarded-Proto is believed (the app's ProxyFix). gunicorn
# would otherwise believe it, X-Forwarded-Ssl and X-Forwarded-Protocol from any client on this host,
# whatever that setting says: a Secure cookie and the Origin forms must come from would follow a header.
forwarded_allow_ips = ""

# Long enough for the writer to drain the queue after SIGTERM.
graceful_timeout = 30

timeout = 60

keepalive = 5

# gunicorn's most, and what nginx's default buffers pass (8k). Its default, 4094 bytes, refuses (414, as
# HTML) some queries /openapi.json allows: a 128-character agent_name in non-ASCII letters alone is 1.5 KB.
limit_request_line = 8190

# Runtime worker changes would break the one-writer-per-process design above.
control_socket_disable = True

accesslog = "-"

# gunicorn's default, the worker's pid (with several workers, which process answered), and the
# request id the answer carries in X-Request-ID (set by the application on every answer it makes).
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(p)s rid=%({x-request-id}o)s'

loglevel = _settings["log_level"]


class RedactingLogger(Logger):
    """gunicorn's lines in the `log_format` setting; the access log without credentials.

    /ws?token=... and Authorization headers are redacted. In JSON an access line carries its
    parts as fields (access_fields) rather than access_log_format's layout.
    """

    def setup(self, cfg):  # type: ignore[no-untyped-def]
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(formatter(_settings["log_format"], self.error_fmt, self.datefmt))
            handler.addFilter(RequestIdFilter())
            handler.addFilter(RedactingFilter())
        if _settings["log_format"] == "json":
            for handler in self.access_log.handlers:
                handler.setFormatter(formatter("json", self.access_fmt))
        # A line per request: written from a thread of its own, a request thread never waits for it.
        # Not a file's: gunicorn reopens those on USR1, and would no longer find it.
        for handler in list(self.access_log.handlers):
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                background = BackgroundLines(handler)
                background._gunicorn = True  # type: ignore[attr-defined]  # noqa: SLF001 - gunicorn's mark: its next setup removes it
                self.access_log.removeHandler(handler)
                self.access_log.addHandler(background)

    def atoms(self, resp, req, environ, request_time):  # type: ignore[no-untyped-def]
        atoms = super().atoms(resp, req, environ, request_time)
        path, sep, query = environ.get("RAW_URI", "").partition("?")
        if sep:
            atoms["r"] = f"{environ['REQUEST_METHOD']} {path}?{redact_query(query)} {environ['SERVER_PROTOCOL']}"
            atoms["q"] = redact_query(atoms.get("q") or "")
        if "{authorization}i" in atoms:
            atoms["{authorization}i"] = "[redacted]"
        return atoms

    def access(self, resp, req, environ, request_time):  # type: ignore[no-untyped-def]
        if _settings["log_format"] != "json" or not self.access_log_enabled:
            super().access(resp, req, environ, request_time)
            return
        fields = access_fields(self.atoms(resp, req, environ, request_time), request_time.total_seconds())
        self.access_log.info("%s %s %s", fields["method"], fields["path"], fields["status"], extra=fields)


def access_fields(atoms: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The fields of a JSON access line, from gunicorn's (redacted) atoms."""
    method, _, rest = atoms["r"].partition(" ")
    status = str(atoms["s"])
    return {
        "method": method,
        "path": rest.rpartition(" ")[0] or rest,
        "protocol": atoms.get("H"),
        "status": int(status) if status.isdigit() else status,
        "bytes": atoms.get("B"),
        "duration_ms": round(seconds * 1000, 1),
        "remote_addr": atoms.get("h"),
        "user_agent": atoms.get("{user-agent}i"),
        "request_id": atoms.get("{x-request-id}o"),
    }


logger_class = RedactingLogger


def on_starting(server):  # type: ignore[no-untyped-def]
    """Before any worker starts: bring the schema up to date once, not in each worker at the same time.

    Interrupted exports are settled by each worker's report runner, by their leases.
    """
    from weather_metrics.factory import open_store
    from weather_metrics.store.db import database

    try:
        open_store(_settings)
    except SettingsError as exc:  # one line naming the setting, not a traceback through gunicorn
        server.log.error("%s", exc)
        raise SystemExit(1) from None
    database.close_all()
    if not MULTIPROCESS and workers > 1:
        server.log.warning(
            "/metrics shows only the worker that answers: run gunicorn with "
            "--config weather_metrics/runtime/gunicorn_conf.py (as the Procfile does) to add up all %d",
            workers,
        )


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    """Start the app's background threads in this worker (app.py builds it without them, as `flask` commands use it).

    On SIGTERM, close the worker's WebSockets first: open ones would hold it for graceful_timeout.
    """
    state = getattr(worker.wsgi, "extensions", {}).get("weather_metrics")
    if state is not None:
        state.start()
    if MULTIPROCESS:
        from weather_metrics.runtime.prometheus import PROCESS_GAUGES

        PROCESS_GAUGES.start_sampling()
    stop = worker.handle_exit

    def handle_exit(sig, frame):  # type: ignore[no-untyped-def]
        if state is not None:
            state.relay.drop_all()
        stop(sig, frame)

    signal.signal(signal.SIGTERM, handle_exit)


def worker_exit(server, worker):  # type: ignore[no-untyped-def]
    """Write every accepted event before the process exits."""
    state = getattr(worker.wsgi, "extensions", {}).get("weather_metrics")
    if state is not None:
        state.close()


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    """In the master, once a worker is gone (stopped or killed): drop its live gauges, keep its counters."""
    if MULTIPROCESS:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
