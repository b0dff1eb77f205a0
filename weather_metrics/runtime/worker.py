"""The server's worker: gunicorn's gthread, except that a thread takes a request only once it has all arrived.

gthread hands a connection to a request thread as soon as its first byte arrives, and the
thread then reads the rest with no deadline: a few hundred clients dripping headers or
bodies hold every thread, and nothing else is answered. Here the worker's event loop
reads each request, TLS handshake included, without blocking, and hands it to a thread
only when its head and body are whole (a WebSocket upgrade: when its head is). A request
that is not whole within `request_header_timeout_seconds` (head) or
`request_body_timeout_seconds` (body) gets 408 and is closed; a response write that makes
no progress for `request_body_timeout_seconds` ends the connection. Waiting costs a socket
and its bytes (at most `request_buffer_mib` per process, 503 past it), never a thread. The
writer and the request threads stay OS threads, as before.
"""

from __future__ import annotations

import errno
import json
import logging
import re
import resource
import selectors
import socket
import ssl
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from gunicorn import http
from gunicorn import sock as gunicorn_sock
from gunicorn.http.body import LengthReader
from gunicorn.workers.gthread import TConn, ThreadWorker

from weather_metrics.runtime.loop_answers import EXPECT_CONTINUE, Carrying, LoopAnswers
from weather_metrics.settings import load_settings

log = logging.getLogger(__name__)

HEAD_END = b"\r\n\r\n"
MAX_HEAD_BYTES = 64 * 1024  # past this a head is refused by gunicorn's limits anyway
READ_SIZE = 256 * 1024
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
DECIMAL = re.compile(r"[0-9]{1,18}")
HEXADECIMAL = re.compile(rb"[0-9A-Fa-f]{1,15}")
# Accept errors that pass: the process is out of descriptors or memory for a moment.
TRANSIENT_ACCEPT = {errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED, errno.EMFILE, errno.ENFILE, errno.ENOBUFS}


def _answer(status: str, error: str, details: str, *headers: str) -> bytes:
    """A whole HTTP answer in the /v1 error format, sent by the event loop itself before closing."""
    body = json.dumps({"error": error, "details": details}).encode()
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/json", f"Content-Length: {len(body)}", *headers]
    return "\r\n".join([*lines, "Connection: close", "", ""]).encode() + body


TIMEOUT_ANSWER = _answer("408 Request Timeout", "request_timeout", "The request did not arrive in time.")
BUSY_ANSWER = _answer(
    "503 Service Unavailable",
    "service_unavailable",
    "Too many requests are arriving at once; retry later.",
    "Retry-After: 5",
)


@dataclass(frozen=True)
class Verdict:
    """Whether the bytes received hold a whole request, and how a thread may read past them.

    `short`: whole only because the server refuses it from what is here (reads past it fail
    at once); `upgrade`: a WebSocket handshake, whose socket then belongs to the application.
    """

    whole: bool
    short: bool = False
    upgrade: bool = False


WAIT = Verdict(False)
REFUSED = Verdict(True, short=True)


def request_verdict(data: bytes | bytearray, max_body: int) -> Verdict:
    """Whether `data` starts with a whole HTTP/1.1 request, judged as a thread would need it.

    A request the server will refuse anyway (a head past MAX_HEAD_BYTES, more than
    `max_body` bytes, a body declared past it, a malformed length or chunk) counts as whole
    and short: the thread answers it from what is here, without waiting for more.
    """
    end = data.find(HEAD_END)
    if len(data) > max_body or end > MAX_HEAD_BYTES or (end < 0 and len(data) > MAX_HEAD_BYTES):
        return REFUSED
    if end < 0:
        return WAIT
    lines = bytes(data[:end]).decode("latin-1").split("\r\n")
    fields = dict(_field(line) for line in lines[1:] if ":" in line)
    framed = "content-length" in fields or "transfer-encoding" in fields
    if lines[0].startswith("GET ") and fields.get("upgrade", "").lower() == "websocket" and not framed:
        return Verdict(True, upgrade=True)
    body = len(data) - end - len(HEAD_END)
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return _chunked_verdict(data, end + len(HEAD_END))
    length = fields.get("content-length", "0")
    if not DECIMAL.fullmatch(length):
        return REFUSED  # gunicorn answers 400
    if int(length) > max_body:
        return REFUSED  # the application answers 413 from the length alone
    return Verdict(body >= int(length))


def _field(line: str) -> tuple[str, str]:
    name, _, value = line.partition(":")
    return name.strip().lower(), value.strip()


def _chunked_verdict(data: bytes | bytearray, at: int) -> Verdict:
    """Whether a chunked body starting at `at` has ended (its last chunk and trailers are here)."""
    while True:
        line_end = data.find(b"\r\n", at)
        if line_end < 0:
            return WAIT
        size_text = bytes(data[at:line_end]).split(b";", 1)[0].strip()
        if not HEXADECIMAL.fullmatch(size_text):
            return REFUSED  # malformed: gunicorn answers 400 from what is here
        size = int(size_text, 16)
        if size == 0:
            return Verdict(data.find(HEAD_END, line_end) >= 0)  # the blank line after any trailers
        at = line_end + 2 + size + 2  # always forward: size is not negative
        if at > len(data):
            return WAIT


def _body_read(request: Any) -> bool:
    """Whether a request's body of a declared length was read to its end: gthread's drain would find nothing."""
    body: Any = getattr(request, "body", None)
    reader: Any = getattr(body, "reader", None)
    return (
        type(reader) is LengthReader
        and reader.length == 0
        and body.buf.tell() == 0
        and getattr(body, "failed", False) is not True
    )


class PrefetchedSocket:
    """A connection's socket as a request thread sees it: first what the event loop read, then the socket.

    Reads past what was prefetched give up at `deadline`. Every blocking read and write
    has `io_timeout`: a client that stops reading its answer loses the connection, not a
    thread. A WebSocket (no deadline, no timeout here) sets its own in the application.
    """

    def __init__(self, sock: socket.socket, io_timeout: float) -> None:
        self.raw = sock
        self.pending = bytearray()
        self.counted = 0  # bytes of this connection in the worker's request budget
        self.deadline: float | None = None
        self.io_timeout: float | None = io_timeout
        self.carried: dict[str, Any] | None = None  # for the environ of the thread that takes the request

    def recv(self, size: int, *flags: int) -> bytes:
        if self.pending:
            data = bytes(self.pending[:size])
            del self.pending[:size]
            return data
        if self.deadline is None:
            return self.raw.recv(size, *flags)
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise ConnectionResetError(errno.ECONNRESET, "the rest of the request did not arrive in time")
        self.raw.settimeout(left)
        try:
            return self.raw.recv(size, *flags)
        finally:
            self.raw.settimeout(self.io_timeout)

    def setblocking(self, flag: bool) -> None:
        """Blocking, for a thread, means blocking within `io_timeout`."""
        self.raw.settimeout(self.io_timeout if flag else 0.0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


@dataclass(eq=False)
class Arrival:
    """A connection whose next request is on its way: until when it may take, and whether TLS is done."""

    conn: TConn
    deadline: float
    head_done: bool = False
    handshaken: bool = True


class PrefetchingWorker(ThreadWorker):
    """gthread with requests read whole by the event loop before a thread takes them (see the module doc)."""

    wsgi: Any  # the app, wrapped in loop_answers.Carrying

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = load_settings()
        self.head_timeout = float(settings["request_header_timeout_seconds"])
        self.body_timeout = float(settings["request_body_timeout_seconds"])
        # The largest body any endpoint accepts (/mcp/metrics/collect), with room for a head.
        self.max_body = int(settings["metrics_max_body_bytes"]) + MAX_HEAD_BYTES
        self.arriving: dict[TConn, Arrival] = {}
        self.buffered = 0  # bytes of requests arriving or waiting for a thread, across connections
        self.max_buffered = int(settings["request_buffer_mib"]) * 1024 * 1024
        self._tls: ssl.SSLContext | None = None
        self.answers = LoopAnswers(self, float(settings["ack_timeout_seconds"]))
        # Never promise more connections than the process may open descriptors for.
        connections: int = self.cfg.worker_connections
        descriptors = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if descriptors != resource.RLIM_INFINITY:
            connections = max(self.cfg.threads + 1, min(connections, descriptors - 256))
        self.worker_connections = connections

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.wsgi = Carrying(self.wsgi)

    def accept(self, listener: socket.socket) -> None:
        try:
            client, address = listener.accept()
        except OSError as exc:
            if exc.errno not in TRANSIENT_ACCEPT:
                raise
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                log.warning("accepting a connection failed, for now: %s", exc)
            return
        self.nr_conns += 1
        try:
            client.setblocking(False)
            handshaken = not self.cfg.is_ssl
            if self.cfg.is_ssl:
                if self._tls is None:
                    self._tls = gunicorn_sock.ssl_context(self.cfg)
                client = self._tls.wrap_socket(
                    client,
                    server_side=True,
                    do_handshake_on_connect=False,
                    suppress_ragged_eofs=self.cfg.suppress_ragged_eofs,
                )
        except (OSError, ssl.SSLError):  # gone already (a reset right after connecting)
            self.nr_conns -= 1
            client.close()
            return
        conn = TConn(self.cfg, PrefetchedSocket(client, self.body_timeout), address, listener.getsockname())
        conn.initialized = True  # gthread's init would wrap TLS and wait for data in a thread
        conn.parser = http.get_parser(self.cfg, conn.sock, address)
        self._await_request(conn, handshaken)

    def _await_request(self, conn: TConn, handshaken: bool = True, readable: bool = False) -> None:
        """Read the connection's next request in the event loop; a thread takes it once whole.

        `readable`: the socket is known to hold bytes, so reading starts now, not on the next event.
        """
        arrival = Arrival(conn, time.monotonic() + self.head_timeout, handshaken=handshaken)
        self.arriving[conn] = arrival
        conn.sock.setblocking(False)
        self.poller.register(conn.sock.raw, selectors.EVENT_READ, partial(self._on_readable, arrival))
        raw = conn.sock.raw
        # Bytes here already (pipelined, or held inside TLS) raise no event of their own.
        if readable or conn.sock.pending or (isinstance(raw, ssl.SSLSocket) and handshaken and raw.pending()):
            self._on_readable(arrival, raw)

    def _on_readable(self, arrival: Arrival, _sock: Any) -> None:
        sock = arrival.conn.sock
        ended = False
        try:
            if not arrival.handshaken:
                sock.raw.do_handshake()
                arrival.handshaken = True
            while len(sock.pending) <= self.max_body:
                data = sock.raw.recv(READ_SIZE)
                if not data:
                    ended = True  # the client sent all it will: what is here must do
                    break
                sock.pending += data
                sock.counted += len(data)
                self.buffered += len(data)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        except (OSError, ssl.SSLError):
            self._drop(arrival)
            return
        if self.buffered > self.max_buffered:
            self._drop(arrival, BUSY_ANSWER)  # what waits for threads is capped, whoever sends it
        elif not self._judge(arrival) and ended:
            self._drop(arrival)  # gone before the request was whole

    def _judge(self, arrival: Arrival) -> bool:
        """Hand the request to a thread when it is whole; True when it was handed."""
        conn = arrival.conn
        verdict = request_verdict(conn.sock.pending, self.max_body)
        if not verdict.whole:
            end = conn.sock.pending.find(HEAD_END)
            if not arrival.head_done and end >= 0:
                arrival.head_done = True
                arrival.deadline = time.monotonic() + self.body_timeout
                self._answer_expectation(arrival, end)
            return False
        del self.arriving[conn]
        self.poller.unregister(conn.sock.raw)
        if verdict.upgrade:
            conn.sock.deadline = conn.sock.io_timeout = None  # the application owns the socket now
        elif not verdict.short and self.answers.take(conn):
            return True  # a batch of events, answered by this loop once committed (loop_answers.py)
        else:
            conn.sock.deadline = time.monotonic() if verdict.short else arrival.deadline
        self.enqueue_req(conn)
        return True

    def _answer_expectation(self, arrival: Arrival, end: int) -> None:
        """Send 100 Continue to a client that waits for it before its body, and take the header out.

        Taken out, the expectation is not answered a second time by gunicorn.
        """
        pending = arrival.conn.sock.pending
        head = bytes(pending[:end])
        found = EXPECT_CONTINUE.search(head)
        if found and head.split(b"\r\n", 1)[0].endswith(b"HTTP/1.1"):
            del pending[found.start() : found.end()]
            self._send(arrival, CONTINUE)

    def _release(self, conn: TConn) -> None:
        self.buffered -= conn.sock.counted
        conn.sock.counted = 0

    def _drop(self, arrival: Arrival, answer: bytes = b"") -> None:
        conn = arrival.conn
        self.arriving.pop(conn, None)
        self._release(conn)
        try:
            self.poller.unregister(conn.sock.raw)
        except (KeyError, ValueError, OSError):
            pass
        if answer:
            self._send(arrival, answer)
        self.nr_conns -= 1
        conn.close()

    @staticmethod
    def _send(arrival: Arrival, data: bytes) -> None:
        """Best effort, from the event loop: a few bytes to a non-blocking socket."""
        if arrival.handshaken:
            try:
                arrival.conn.sock.raw.send(data)
            except (OSError, ssl.SSLError):
                pass

    def murder_pending(self) -> None:
        """Every loop turn, shutting down too: 408 for requests past their deadline."""
        super().murder_pending()
        now = time.monotonic()
        for arrival in [a for a in self.arriving.values() if a.deadline <= now]:
            self._drop(arrival, TIMEOUT_ANSWER)
        self.answers.expire(now)

    def murder_keepalived(self, force: bool = False) -> None:
        """gthread's; with `force`, only in its clean-up once the loop has ended: no commit is answered after it."""
        if force:
            self.answers.close()
        super().murder_keepalived(force)

    def _keepalive_after(self, conn: TConn, keepalive: bool) -> bool:
        """As gthread's, without its drain (two socket timeouts set and a read) when the body was read to its end."""
        if keepalive and _body_read(conn.parser.mesg):
            return True
        return bool(super()._keepalive_after(conn, keepalive))

    def on_client_socket_readable(self, conn: TConn, client: Any) -> None:
        """A kept-alive connection's next request begins: read it like a new one."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._await_request(conn, readable=True)

    def finish_request(self, conn: TConn, fs: Any) -> None:
        """After a thread's response: the next request is read in the event loop, not by the thread."""
        try:
            keep = bool(fs.result()) if not fs.cancelled() else False
        except Exception:  # noqa: BLE001 - the thread's own failure is logged where it happened
            keep = False
        self.after_request(conn, keep)

    def in_thread(self, conn: TConn, work: Any, *args: Any) -> None:
        """Run `work(*args)` in a request thread; what it returns says whether the connection stays open."""
        done = self.tpool.submit(work, *args)
        done.add_done_callback(lambda fs: self.method_queue.defer(self.finish_request, conn, fs))

    def after_request(self, conn: TConn, keep: bool) -> None:
        """After a response, in the event loop: close the connection, or wait for its next request."""
        self._release(conn)
        if not keep:
            self.nr_conns -= 1
            conn.close()
            return
        # Bytes the parser read ahead belong to the next request; they count again.
        conn.sock.pending[:0] = conn.parser.unreader.take_buffered() or b""
        conn.sock.counted = len(conn.sock.pending)
        self.buffered += conn.sock.counted
        raw = conn.sock.raw
        if conn.sock.pending or (isinstance(raw, ssl.SSLSocket) and raw.pending()):
            self._await_request(conn)
            return
        conn.sock.setblocking(False)
        conn.set_timeout()
        if not self.alive:
            conn.timeout = min(conn.timeout, time.monotonic() + 2.0)  # as gthread: a short linger on shutdown
        self.keepalived_conns.append(conn)
        self.poller.register(raw, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn))
