"""After a /ws upgrade: one connection's thread, its guarded socket, and closing it.

`serve` runs the protocol of docs/websockets (live/protocol.py); events arrive from the relay.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from typing import Any

from flask import g
from simple_websocket import ConnectionClosed, Server
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from weather_metrics.live.hub import Client
from weather_metrics.live.protocol import handle
from weather_metrics.live.relay import Relay
from weather_metrics.store.db import database
from weather_metrics.web.errors import ApiProblem, error_response
from weather_metrics.web.services import EXTENSION, services
from weather_metrics.web.ws.blueprint import bp, sock

log = logging.getLogger(__name__)


MAX_MESSAGE_BYTES = 64 * 1024


# Messages a client may send: a burst, then this many a second (a flood is closed, not queued).
MESSAGE_BURST = 30
MESSAGES_PER_SECOND = 10


# Bytes a client may send, frames of every kind: a burst, then this many a second.
INPUT_BURST_BYTES = 256 * 1024
INPUT_BYTES_PER_SECOND = 8 * 1024
CLOSE_POLICY = 1008
CLOSE_INTERNAL = 1011


class _GuardedSocket:
    """The connection's socket: frames written whole, and what a client may send bounded.

    simple-websocket writes with `socket.send`, which may write only part of a frame when
    the send buffer is nearly full; the rest would be lost and the stream corrupted. Its
    reader thread reads and buffers everything the client sends, pings and fragments
    included, even while this connection's thread is busy: a byte budget on reading (a
    burst, then a steady rate) bounds that memory and CPU whatever the client sends.
    """

    def __init__(self, sock: socket.socket, client: Client) -> None:
        self._sock = sock
        self._client = client
        # The reader thread sends pings, pongs and closes on the same socket: frames must not interleave.
        self._lock = threading.Lock()
        self._allowance = float(INPUT_BURST_BYTES)
        self._refilled = time.monotonic()

    def send(self, data: bytes) -> int:
        with self._lock:
            self._sock.sendall(data)
        return len(data)

    def recv(self, size: int) -> bytes:
        data = self._sock.recv(size)
        now = time.monotonic()
        self._allowance = min(INPUT_BURST_BYTES, self._allowance + (now - self._refilled) * INPUT_BYTES_PER_SECOND)
        self._refilled = now
        self._allowance -= len(data)
        if self._allowance < 0:
            self._client.drop(CLOSE_POLICY, f"Too much input: at most {INPUT_BYTES_PER_SECOND} bytes a second")
            raise OSError("input budget exceeded")  # the reader thread stops reading and closes
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def serve(ws: Server, relay: Relay, client: Client, settings: dict[str, Any]) -> None:
    """Run one connection: one event wakes this thread for the client's messages and for ours."""
    try:
        ws.event = client.wake  # the reader thread sets it on input; the relay on output
        client.wake.set()  # a message that arrived before the swap is read at once
        ws.sock = _GuardedSocket(ws.sock, client)
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, settings["ws_send_buffer_bytes"])
        ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small messages go out at once
        ws.sock.settimeout(settings["ws_send_timeout_seconds"])  # a client that stops reading is dropped
    except OSError:
        return  # the client went away during the handshake
    if not database.is_closed():
        database.close()  # a socket lives long: it borrows a connection per message, not for its life
    relay.admit(client)
    try:
        ws.send(
            json.dumps(
                {
                    "type": "welcome",
                    "data": {
                        "connection_id": client.id,
                        "user_id": client.user_id,
                        "organization_id": client.organization_id,
                        "role": client.role,
                        "ping_interval_seconds": settings["ws_ping_interval_seconds"],
                    },
                }
            )
        )
        allowance, refilled = float(MESSAGE_BURST), time.monotonic()
        while True:
            client.wake.wait(timeout=5.0)
            client.wake.clear()
            while client.dropped is None and (raw := ws.receive(timeout=0)) is not None:
                now = time.monotonic()
                allowance = min(MESSAGE_BURST, allowance + (now - refilled) * MESSAGES_PER_SECOND)
                refilled = now
                if allowance < 1:
                    client.drop(CLOSE_POLICY, f"Too many messages: at most {MESSAGES_PER_SECOND} a second")
                    break
                allowance -= 1
                with database.connection_context():
                    handle(relay, client, raw, ws.send)
            # Checked after reading: receive() shares the wake-up event and may have consumed a drop's.
            if client.dropped is not None:
                log.info("WebSocket %s of %s closed: %s", client.id, client.user_id or "anonymous", client.dropped[1])
                _close(ws, *client.dropped)
                return
            if client.queue:  # what waits goes out in one write; the frames were built once per room
                ws.sock.send(client.take())
    except TimeoutError:
        log.info("WebSocket %s of %s dropped: too slow, a send timed out", client.id, client.user_id or "anonymous")
        _abort(ws)
    except (ConnectionClosed, OSError):
        if client.dropped is not None:
            log.info("WebSocket %s of %s closed: %s", client.id, client.user_id or "anonymous", client.dropped[1])
    except Exception:  # noqa: BLE001 - the socket is ours: end it here, never as an HTTP 500 inside it
        log.exception("WebSocket %s failed", client.id)
        _close(ws, CLOSE_INTERNAL, "Internal error")
    finally:
        relay.hub.remove(client)


def _close(ws: Server, code: int, reason: str) -> None:
    try:
        ws.close(code, reason)
    except Exception:  # noqa: BLE001 - closed already, a dead socket, or a close the protocol refuses
        _abort(ws)


def _abort(ws: Server) -> None:
    """Cut a connection we cannot even send a close frame to."""
    ws.connected = False
    try:
        ws.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


@bp.errorhandler(OSError)
@bp.errorhandler(RemoteProtocolError)
@bp.errorhandler(LocalProtocolError)
def upgrade_failed(exc: Exception) -> Any:
    """The upgrade itself failed: the client went away mid-handshake, or sent one the protocol refuses."""
    log.info("WebSocket upgrade failed: %s: %s", type(exc).__name__, exc)
    return error_response(ApiProblem(400, "The WebSocket handshake failed"))


@sock.route("/ws", bp=bp)
def websocket(ws: Server) -> None:
    state = services()
    serve(ws, state.relay, g.ws_client, state.settings)


class _ReaderThread(threading.Thread):
    """simple-websocket's reader thread, as a daemon: one waiting for the next ping must not hold up an exit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.daemon = True


def init_app(app: Any) -> None:
    """The WebSocket server options of this service's settings."""
    settings = app.extensions[EXTENSION].settings
    app.config["SOCK_SERVER_OPTIONS"] = {
        "ping_interval": settings["ws_ping_interval_seconds"],
        "max_message_size": MAX_MESSAGE_BYTES,
        "thread_class": _ReaderThread,
    }
