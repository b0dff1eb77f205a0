"""Gunicorn settings for the Procfile: one process, many threads.

SQLite takes one writer at a time, so one process with one EventWriter commits the
whole service's events in shared transactions (group commit); the rate limiter and
the Prometheus counters live in that process and so count the whole service.
"""

from weather_metrics.settings import load_settings, require_secret

_settings = load_settings()
require_secret(_settings)  # fail before forking, with the message naming the setting

bind = f"{_settings['host']}:{_settings['port']}"
workers = 1
worker_class = "gthread"
threads = _settings["threads"]
# Long enough for the writer to drain the queue after SIGTERM.
graceful_timeout = 30
timeout = 60
keepalive = 5
# Runtime worker changes would break the one-process design above.
control_socket_disable = True
accesslog = "-"
loglevel = _settings["log_level"]
# The 100 KB body limit is enforced by the app; gunicorn's own limits stay at defaults.


def worker_exit(server, worker):  # type: ignore[no-untyped-def]
    """Write every accepted event before the process exits."""
    state = getattr(worker.wsgi, "extensions", {}).get("weather_metrics")
    if state is not None:
        state.close()
