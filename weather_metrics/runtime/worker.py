"""The server's worker: gunicorn's gthread, except that a thread takes a request only once it has all arrived.

gthread hands a connection to a request thread as soon as its first byte arrives, and the
thread then reads the rest with no deadline: a few hundred clients dripping headers or
bodies hold every thread, and nothing else is answered. Here the worker's event loop
reads each request, TLS handshake included, without blocking, and hands it to a thread
only when its head and body are whole (a WebSocket upgrade: when its head is). A request
that is not whole within `request_header_timeout_seconds` (head) or
`request_body_timeout_seconds` (body) gets 408 and is closed. Waiting costs a socket and
its bytes, never a thread, so slow clients wait among themselves while threads serve the
rest. The writer and the request threads stay OS threads, as before.
"""

from __future__ import annotations

import errno
import json
import re
import selectors
import socket
import ssl
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from gunicorn import http
from gunicorn import sock as gunicorn_sock
from gunicorn.workers.gthread import TConn, ThreadWorker

from weather_metrics.settings import load_settings

HEAD_END = b"\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
EXPECT_CONTINUE = re.compile(rb"\r\nexpect:[ \t]*100-continue[ \t]*(?:\r\n|$)", re.IGNORECASE)
MAX_HEAD_BYTES = 64 * 1024  # past this a head is refused by gunicorn's limits anyway
READ_SIZE = 256 * 1024


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
    """Whether the bytes received so far hold a whole request, and whether it upgrades the connection."""

    whole: bool
    upgrade: bool = False


WAIT = Verdict(False)


def request_verdict(data: bytes | bytearray, max_body: int) -> Verdict:
    """Whether `data` starts with a whole HTTP/1.1 request, judged as a thread would need it.

    A request the server will refuse anyway (a head past MAX_HEAD_BYTES, a body declared or
    sent past `max_body`, a malformed length) counts as whole: the thread answers it from
    what is here, without waiting for more.
    """
    end = data.find(HEAD_END)
    if end < 0:
        return Verdict(len(data) > MAX_HEAD_BYTES)
    head = bytes(data[:end]).decode("latin-1").lower()
    fields = dict(_field(line) for line in head.split("\r\n")[1:] if ":" in line)
    if "upgrade" in fields.get("connection", "") and fields.get("upgrade"):
        return Verdict(True, upgrade=True)
    body = len(data) - end - len(HEAD_END)
    if "chunked" in fields.get("transfer-encoding", ""):
        return Verdict(body > max_body or _chunked_end(data, end + len(HEAD_END)))
    length = fields.get("content-length", "0").strip()
    if not length.isdigit():
        return Verdict(True)
    return Verdict(int(length) > max_body or body >= int(length))


def _field(line: str) -> tuple[str, str]:
    name, _, value = line.partition(":")
    return name.strip(), value.strip()


def _chunked_end(data: bytes | bytearray, at: int) -> bool:
    """Whether a chunked body starting at `at` has ended (its last chunk and trailers are here)."""
    while True:
        line_end = data.find(b"\r\n", at)
        if line_end < 0:
            return False
        size_text = bytes(data[at:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return True  # malformed: gunicorn refuses it from what is here
        if size == 0:
            return data.find(HEAD_END, line_end) >= 0  # the blank line after any trailers
        at = line_end + 2 + size + 2
        if at > len(data):
            return False


class PrefetchedSocket:
    """A connection's socket as a request thread sees it: first what the event loop read, then the socket.

    Reads past what was prefetched (a body the verdict let through early) give up at
    `deadline`; a WebSocket's reads (no deadline) go straight to the socket.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.raw = sock
        self.pending = bytearray()
        self.deadline: float | None = None

    def recv(self, size: int, *flags: int) -> bytes:
        if self.pending:
            data = bytes(self.pending[:size])
            del self.pending[:size]
            return data
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the request did not arrive in time")
            self.raw.settimeout(left)
        return self.raw.recv(size, *flags)

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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = load_settings()
        self.head_timeout = float(settings["request_header_timeout_seconds"])
        self.body_timeout = float(settings["request_body_timeout_seconds"])
        # The largest body any endpoint accepts (/mcp/metrics/collect), with room for a head.
        self.max_body = int(settings["metrics_max_body_bytes"]) + MAX_HEAD_BYTES
        self.arriving: dict[TConn, Arrival] = {}
        self.buffered = 0  # bytes of requests still arriving, across connections
        self.max_buffered = int(settings["request_buffer_mib"]) * 1024 * 1024
        self._tls: ssl.SSLContext | None = None

    def accept(self, listener: socket.socket) -> None:
        try:
            client, address = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        client.setblocking(False)
        handshaken = True
        if self.cfg.is_ssl:
            if self._tls is None:
                self._tls = gunicorn_sock.ssl_context(self.cfg)
            client = self._tls.wrap_socket(
                client,
                server_side=True,
                do_handshake_on_connect=False,
                suppress_ragged_eofs=self.cfg.suppress_ragged_eofs,
            )
            handshaken = False
        conn = TConn(self.cfg, PrefetchedSocket(client), address, listener.getsockname())
        conn.initialized = True  # gthread's init would wrap TLS and wait for data in a thread
        conn.parser = http.get_parser(self.cfg, conn.sock, address)
        self._await_request(conn, handshaken)

    def _await_request(self, conn: TConn, handshaken: bool = True) -> Arrival | None:
        """Read the connection's next request in the event loop; a thread takes it once whole.

        None when it is whole already (pipelined behind the last one).
        """
        arrival = Arrival(conn, time.monotonic() + self.head_timeout, handshaken=handshaken)
        self.arriving[conn] = arrival
        if conn.sock.pending and self._judge(arrival):
            return None
        conn.sock.setblocking(False)
        self.poller.register(conn.sock.raw, selectors.EVENT_READ, partial(self._on_readable, arrival))
        return arrival

    def _on_readable(self, arrival: Arrival, _sock: Any) -> None:
        raw = arrival.conn.sock.raw
        try:
            if not arrival.handshaken:
                raw.do_handshake()
                arrival.handshaken = True
            while len(arrival.conn.sock.pending) <= self.max_body:
                data = raw.recv(READ_SIZE)
                if not data:
                    self._drop(arrival)  # gone before the request was whole
                    return
                arrival.conn.sock.pending += data
                self.buffered += len(data)
            if self.buffered > self.max_buffered:
                self._drop(arrival, BUSY_ANSWER)  # what waits for threads is capped, whoever sends it
                return
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        except (OSError, ssl.SSLError):
            self._drop(arrival)
            return
        if self._judge(arrival):
            self.poller.unregister(raw)

    def _judge(self, arrival: Arrival) -> bool:
        """Hand the request to a thread when it is whole; True when it was handed."""
        conn = arrival.conn
        verdict = request_verdict(conn.sock.pending, self.max_body)
        if not verdict.whole:
            end = conn.sock.pending.find(HEAD_END)
            if not arrival.head_done and end >= 0:
                arrival.head_done = True
                arrival.deadline = time.monotonic() + self.body_timeout
                if EXPECT_CONTINUE.search(bytes(conn.sock.pending[:end])):
                    self._send(arrival, CONTINUE)  # the client waits for it before sending the body
            return False
        del self.arriving[conn]
        self.buffered -= len(conn.sock.pending)
        conn.sock.deadline = None if verdict.upgrade else arrival.deadline
        if verdict.upgrade:
            conn.sock.raw.settimeout(None)
        self.enqueue_req(conn)
        return True

    def _drop(self, arrival: Arrival, answer: bytes = b"") -> None:
        conn = arrival.conn
        if self.arriving.pop(conn, None) is not None:
            self.buffered -= len(conn.sock.pending)
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
        """Every loop turn: 408 for requests past their deadline; on shutdown, drop requests still arriving."""
        super().murder_pending()
        now = time.monotonic()
        for arrival in [a for a in self.arriving.values() if a.deadline <= now or not self.alive]:
            self._drop(arrival, TIMEOUT_ANSWER if self.alive else b"")

    def on_client_socket_readable(self, conn: TConn, client: Any) -> None:
        """A kept-alive connection's next request begins: read it like a new one."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        arrival = self._await_request(conn)
        if arrival is not None:
            self._on_readable(arrival, client)  # readable now: no need to wait for the next turn

    def finish_request(self, conn: TConn, fs: Any) -> None:
        """After a response: the next request is read in the event loop, not by the thread."""
        try:
            keep = (fs.result() if not fs.cancelled() else False) and self.alive
        except Exception:  # noqa: BLE001 - the thread's own failure is logged where it happened
            keep = False
        if not keep:
            self.nr_conns -= 1
            conn.close()
            return
        # Bytes the parser read ahead belong to the next request.
        conn.sock.pending[:0] = conn.parser.unreader.take_buffered() or b""
        if conn.sock.pending:
            self._await_request(conn)
            return
        conn.sock.setblocking(False)
        conn.set_timeout()
        self.keepalived_conns.append(conn)
        self.poller.register(conn.sock.raw, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn))
