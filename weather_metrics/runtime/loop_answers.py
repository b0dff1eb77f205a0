"""POST /v1/events answered by the worker's event loop: no request thread waits for a commit.

Most of the service's requests are batches of events that the shortcut accepts
(web/v1/shortcut.py). Answered by a request thread, each costs a hand-off to the thread, a wait
for the commit, a wake-up, and a hand-off back; with dozens of threads waking in turn, the
writer pays as much again for the GIL. Here the event loop parses such a request with
gunicorn's own parser, builds its environ with gunicorn's own `wsgi.create`, and calls the app
with LOOP in the environ: the shortcut queues the batch and returns a `Later`. Once the writer
has committed the batch (its `on_done`, brought to the loop through gthread's method queue),
the loop writes the answer as gunicorn's Response would (same status line and headers), logs
it to the access log and goes on with the connection as gthread does.

Everything else goes to a request thread, the bytes put back as they came: a request the
shortcut declines, with what it decided carried into the thread's environ (the rate limit is
counted once, no batch is offered twice); a batch whose commit was refused; one not committed
within `ack_timeout_seconds`, taken back from the queue first as a thread would. The thread
answers those through Flask, with the /v1 error body. An answer the socket does not take at
once is finished by a thread too, within the connection's I/O timeout.
"""

from __future__ import annotations

import logging
import re
import ssl
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from gunicorn import http
from gunicorn.http import wsgi

from weather_metrics.ingest.delivery import not_committed, still_pending

if TYPE_CHECKING:
    from collections import deque

    from gunicorn.config import Config
    from gunicorn.glogging import Logger
    from gunicorn.workers.gthread import PollableMethodQueue, TConn

log = logging.getLogger(__name__)

CANDIDATE = b"POST /v1/events "  # the only requests the loop tries: the shortcut's
EXPECT_CONTINUE = re.compile(rb"\r\nexpect:[ \t]*100-continue[ \t]*(?=\r\n)", re.IGNORECASE)
# In the environ of a request the loop offers: a callable to call, from the writer's thread, with the
# `Later` whose batch was committed. The app then answers with a `Later` or a `Declined`, never itself.
LOOP = "weather_metrics.loop"


class Later(ABC):
    """What the app returns for a batch it queued without waiting (web/v1/shortcut.py)."""

    @property
    @abstractmethod
    def ready(self) -> bool:
        """Whether the answer is known: the commit happened, or none is awaited."""

    @abstractmethod
    def answer(self) -> tuple[str, list[tuple[str, str]], bytes]:
        """Status, headers and body of the answer; raises the error of a commit that refused the batch."""

    @abstractmethod
    def withdraw(self) -> bool:
        """Take the batch back from the writer's queue; False once it is being written."""

    @abstractmethod
    def carried(self, failure: Exception) -> dict[str, Any]:
        """What the environ of the request thread that answers instead must hold: `failure` is raised there."""


@dataclass(frozen=True)
class Declined:
    """What the app returns for a request a thread must take, with what it decided for that thread's environ."""

    carried: dict[str, Any]


@dataclass(eq=False)
class Waiting:
    """A request whose batch is queued: what its answer needs, and until when its commit may take."""

    conn: TConn
    req: Any
    resp: Any
    environ: dict[str, Any]
    later: Later
    saved: bytes  # the request's bytes as they came, for a thread should it take the request after all
    started: datetime
    deadline: float
    withdrawn: bool = field(default=False)  # taken back failed once: the writer is committing it


class Worker(Protocol):
    """What the loop's answers need of the worker (runtime/worker.py's PrefetchingWorker)."""

    cfg: Config
    wsgi: Any
    log: Logger
    alive: bool
    nr: int
    max_requests: int
    keepalived_conns: deque[TConn]
    max_keepalived: int
    method_queue: PollableMethodQueue

    def enqueue_req(self, conn: TConn) -> None: ...
    def after_request(self, conn: TConn, keep: bool) -> None: ...
    def in_thread(self, conn: TConn, work: Any, *args: Any) -> None: ...


class LoopAnswers:
    """The event loop's side of the shortcut, for one worker (see the module doc)."""

    def __init__(self, worker: Worker, ack_timeout: float) -> None:
        self.worker = worker
        self.ack_timeout = ack_timeout
        self.waiting: dict[Later, Waiting] = {}
        self.closed = False

    def take(self, conn: TConn) -> bool:
        """Offer a whole request to the shortcut from the loop; False when a thread must take it (bytes put back)."""
        worker = self.worker
        sock = conn.sock
        if self.closed or not sock.pending.startswith(CANDIDATE):
            return False
        head_end = sock.pending.find(b"\r\n\r\n")
        if EXPECT_CONTINUE.search(sock.pending, 0, head_end + 2):
            return False  # a thread answers the expectation (gunicorn's wsgi.create would, each time it ran)
        saved = bytes(sock.pending)
        sock.deadline = time.monotonic()  # whole: a read past what is here fails at once, never blocks the loop
        environ: dict[str, Any] = {}
        try:
            req = next(conn.parser)
            worker.cfg.pre_request(worker, req)
            started = datetime.now()
            resp, environ = wsgi.create(req, sock, conn.client, conn.server, worker.cfg)
            environ["wsgi.multithread"] = True
            environ[LOOP] = self._committed
            later = worker.wsgi(environ, resp.start_response)
        except Exception:  # noqa: BLE001 - a thread parses it again and answers as gunicorn and Flask do
            log.debug("a request the event loop could not offer goes to a thread", exc_info=True)
            later = None
        if not isinstance(later, Later):
            self._put_back(conn, saved, later.carried if isinstance(later, Declined) else {})
            return False
        # Its own bytes only: those of requests pipelined behind it stay with the parser and the socket.
        mine = saved[: len(saved) - len(conn.parser.unreader.buf.getvalue()) - len(sock.pending)]
        waiting = Waiting(conn, req, resp, environ, later, mine, started, time.monotonic() + self.ack_timeout)
        if later.ready:  # ack = enqueue: answered on the loop's next turn, not from inside this read
            self.worker.method_queue.defer(self._answer, waiting)
        else:
            self.waiting[later] = waiting
        return True

    def close(self) -> None:
        """The loop has ended: commits from now on find no one to answer (the method queue is closed)."""
        self.closed = True

    def _committed(self, later: Later) -> None:
        """From the writer's thread, once the batch is committed: the loop answers it."""
        if not self.closed:
            self.worker.method_queue.defer(self._on_commit, later)

    def _on_commit(self, later: Later) -> None:
        waiting = self.waiting.pop(later, None)
        if waiting is not None:  # else it timed out and a thread has it
            self._answer(waiting)

    def expire(self, now: float) -> None:
        """Every loop turn: a batch not committed in time is taken back (503 from a thread), as `deliver` does."""
        for later, waiting in [(k, w) for k, w in self.waiting.items() if w.deadline <= now]:
            if later.ready:  # committed, its callback not yet run: answer it now
                del self.waiting[later]
                self._answer(waiting)
            elif waiting.withdrawn:
                del self.waiting[later]
                self._to_thread(waiting, still_pending())
            elif later.withdraw():
                del self.waiting[later]
                self._to_thread(waiting, not_committed(self.ack_timeout))
            else:  # being committed right now: the outcome is moments away
                waiting.withdrawn = True
                waiting.deadline = now + self.ack_timeout

    def _answer(self, waiting: Waiting) -> None:
        """Write the 200 answer as gunicorn's Response would, log it, and go on with the connection."""
        try:
            status, headers, body = waiting.later.answer()
        except Exception as exc:  # noqa: BLE001 - the commit refused the batch: a thread renders the error
            self._to_thread(waiting, exc)
            return
        worker, resp = self.worker, waiting.resp
        worker.nr += 1
        if worker.nr >= worker.max_requests and worker.alive:
            log.info("Autorestarting worker after current request.")
            worker.alive = False
        if not worker.alive or not worker.cfg.keepalive or len(worker.keepalived_conns) >= worker.max_keepalived:
            resp.force_close()
        resp.start_response(status, headers)
        head = [*resp.default_headers(), *(f"{name}: {value}\r\n" for name, value in resp.headers)]
        data = ("".join(head) + "\r\n").encode("latin-1") + body
        resp.headers_sent = True
        resp.sent = len(body)
        keep = not resp.should_close()
        worker.log.access(resp, waiting.req, waiting.environ, datetime.now() - waiting.started)
        try:
            worker.cfg.post_request(worker, waiting.req, waiting.environ, resp)
        except Exception:  # noqa: BLE001 - as gthread: a hook's failure is logged, the answer still goes
            log.exception("Exception in post_request hook")
        self._send(waiting.conn, data, keep)

    def _send(self, conn: TConn, data: bytes, keep: bool) -> None:
        """What the socket takes now; a thread writes the rest, within the connection's I/O timeout."""
        try:
            sent = conn.sock.raw.send(data)
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            sent = 0
        except (OSError, ssl.SSLError):
            self.worker.after_request(conn, keep=False)
            return
        if sent < len(data):
            self.worker.in_thread(conn, _write_rest, conn, data[sent:], keep)
        else:
            self.worker.after_request(conn, keep)

    def _to_thread(self, waiting: Waiting, failure: Exception) -> None:
        """A thread answers the request through Flask, which raises `failure` instead of offering the batch again."""
        conn = waiting.conn
        behind = (conn.parser.unreader.take_buffered() or b"") + conn.sock.pending  # requests pipelined behind it
        self._put_back(conn, waiting.saved + behind, waiting.later.carried(failure))
        conn.sock.deadline = time.monotonic()
        self.worker.enqueue_req(conn)

    def _put_back(self, conn: TConn, saved: bytes, carried: dict[str, Any]) -> None:
        """The request's bytes as they came and a fresh parser, for a thread; `carried` goes into its environ."""
        conn.sock.pending[:] = saved
        conn.sock.carried = carried or None
        conn.parser = http.get_parser(self.worker.cfg, conn.sock, conn.client)


def _write_rest(conn: TConn, rest: bytes, keep: bool) -> bool:
    """In a thread: the rest of an answer; whether the connection may serve another request."""
    try:
        conn.sock.setblocking(True)
        conn.sock.sendall(rest)
    except (OSError, ssl.SSLError):
        return False
    return keep


class Carrying:
    """The worker's app: puts what the event loop decided into the environ of a request it passed to a thread."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        sock = environ.get("gunicorn.socket")
        if sock is not None and getattr(sock, "carried", None):
            environ.update(sock.carried)
            sock.carried = None
        return self.app(environ, start_response)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)  # the Flask app's `extensions`, for gunicorn_conf's hooks
