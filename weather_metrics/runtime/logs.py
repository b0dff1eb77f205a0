"""How the server logs: text or JSON lines, the request id on each, credentials redacted, sampled lines.

gunicorn's own lines and the access log are set up by the logger class in gunicorn_conf.py;
the application's loggers by `configure_logging`. Both use the formatters here.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import re
import sys
import threading
from collections import OrderedDict
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlencode

SECRET_PARAMETERS = frozenset({"token", "access_token", "ticket"})
APP_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The id of the request this thread is handling; the web layer sets it for each request.
current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)

# What every LogRecord has; anything else on a record came from `extra=` and is a field of its JSON line.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


def redact_query(query: str) -> str:
    """The query string with the values of credential parameters replaced (names are compared decoded)."""
    if not query:
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(name in SECRET_PARAMETERS for name, _ in pairs):
        return query
    return urlencode([(k, "[redacted]" if k in SECRET_PARAMETERS else v) for k, v in pairs], safe="[]/:,")


_SECRET_IN_TEXT = re.compile(r"([?&;](?:" + "|".join(sorted(SECRET_PARAMETERS)) + r")=)[^&;\s'\"]*", re.IGNORECASE)


class RedactingFilter(logging.Filter):
    """Redacts credential query parameters in any line's text.

    gunicorn quotes a malformed request line, or the URI of a request that failed, in its own
    error lines ("Invalid HTTP request line: 'GET /ws?token=...'"); the access log is redacted
    field by field, these by their text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SECRET_IN_TEXT.sub(r"\1[redacted]", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class Sampler:
    """At most `per_minute` lines a minute for each key (a client address); the rest are counted, not logged.

    Bounded: it forgets the least recently seen keys beyond `max_keys`.
    """

    def __init__(self, per_minute: int = 3, max_keys: int = 10_000) -> None:
        self.per_minute = per_minute
        self.max_keys = max_keys
        self._seen: OrderedDict[str, tuple[int, int, int]] = OrderedDict()  # key -> (minute, logged, skipped)
        self._lock = threading.Lock()

    def allow(self, key: str, now: float) -> int | None:
        """None when this line is skipped; else how many of the key's lines were skipped before it."""
        minute = int(now // 60)
        with self._lock:
            seen_minute, logged, skipped = self._seen.pop(key, (minute, 0, 0))
            if seen_minute != minute:
                logged = 0
            if logged >= self.per_minute:
                self._seen[key] = (minute, logged, skipped + 1)
                return None
            self._seen[key] = (minute, logged + 1, 0)
            while len(self._seen) > self.max_keys:
                self._seen.popitem(last=False)
            return skipped


class BackgroundLines(logging.Handler):
    """Writes a stream handler's lines from a thread of its own, all those waiting at once.

    A request thread only runs the handler's filters (the request id is its own) and queues
    the record, its message merged: it never waits for the stream or for another thread's
    line. The writer thread starts in the process that logs (gunicorn forks its workers after
    setting up logging); `close()`, also at exit, writes what is queued.
    """

    def __init__(self, target: logging.StreamHandler[TextIO]) -> None:
        super().__init__(target.level)
        self.target = target
        self._queue: queue.SimpleQueue[logging.LogRecord | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._starting = threading.Lock()

    def handle(self, record: logging.LogRecord) -> bool:
        if not (self.filter(record) and self.target.filter(record)):
            return False
        if self._pid != os.getpid():
            self._start()
        record.msg, record.args = record.getMessage(), None  # its arguments may change once we return
        self._queue.put(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)

    def _start(self) -> None:
        with self._starting:
            if self._pid == os.getpid():
                return
            self._queue = queue.SimpleQueue()  # what another process queued is not ours to write
            self._thread = threading.Thread(target=self._write_lines, name="log-lines", daemon=True)
            self._pid = os.getpid()
            self._thread.start()
            atexit.register(self.close)

    def _write_lines(self) -> None:
        while True:
            records = [self._queue.get()]
            while not self._queue.empty():
                records.append(self._queue.get())
            lines: list[str] = []
            for record in records:
                if record is None:
                    self._write(lines)
                    return
                try:
                    lines.append(self.target.format(record) + self.target.terminator)
                except Exception:  # noqa: BLE001 - as logging does: report it, keep going
                    self.target.handleError(record)
            self._write(lines)

    def _write(self, lines: list[str]) -> None:
        if lines:
            try:
                self.target.stream.write("".join(lines))
                self.target.stream.flush()
            except Exception:  # noqa: BLE001 - a closed or full stream must not end the thread
                pass

    def close(self) -> None:
        """Write what is queued and stop the thread; idempotent."""
        thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            self._queue.put(None)
            thread.join(10)
        super().close()


class RequestIdFilter(logging.Filter):
    """Gives each record the id of the request being handled when it was logged (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id.get()
        return True


class TextFormatter(logging.Formatter):
    """A text line as `fmt` makes it, with ` rid=<request id>` after the message when logged in a request."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        request_id = getattr(record, "request_id", None)
        return f"{line} rid={request_id}" if request_id else line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, pid, request_id, the record's extra fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
            "request_id": getattr(record, "request_id", None),
        }
        line.update((k, v) for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES and k not in line)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


def formatter(log_format: str, text_format: str, datefmt: str | None = None) -> logging.Formatter:
    """The formatter of `log_format` ('text' or 'json'); text lines are laid out by `text_format`."""
    if log_format == "json":
        return JsonFormatter()
    return TextFormatter(text_format, datefmt)


def log_handler(log_format: str, stream: TextIO | None = None, text_format: str = APP_TEXT_FORMAT) -> logging.Handler:
    """A handler writing `log_format` lines to `stream` (stderr), each with its request id."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(log_format, text_format))
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactingFilter())
    return handler


def configure_logging(log_format: str, level: str, text_format: str = APP_TEXT_FORMAT) -> None:
    """Send the application's log lines to stderr in `log_format`, at `level` and above.

    Like logging.basicConfig, it leaves alone a process whose logging someone else set up
    (a test runner); called again, it replaces its own handler.
    """
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "weather_metrics", False)]
    if len(ours) < len(root.handlers):
        return
    for handler in ours:
        root.removeHandler(handler)
    handler = log_handler(log_format, text_format=text_format)
    handler.weather_metrics = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # warnings become log lines, in the same format
