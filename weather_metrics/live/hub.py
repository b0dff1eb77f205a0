"""This process's WebSocket clients and the rooms they joined; frames built once and offered to many."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from weather_metrics.query.scope import Scope

# Close codes (4000-4999 are the application's own).
CLOSE_TOO_SLOW = 1013  # "try again later"
MAX_QUEUED_BYTES = 4 * 1024 * 1024  # waiting for one client, whatever ws_send_queue allows
CLOSE_SHUTTING_DOWN = 1001
CLOSE_ACCOUNT = 4401
CLOSE_RIGHTS_CHANGED = 4403


def text_frame(text: str) -> bytes:
    """A whole WebSocket text frame from the server (unmasked, uncompressed): built once, sent to many."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 65536:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload


def message(event_type: str, room: str, data: dict[str, Any]) -> bytes:
    return text_frame(json.dumps({"type": event_type, "room": room, "data": data}, separators=(",", ":")))


@dataclass(eq=False)
class Client:
    """One open socket: who holds it, its rooms, and the messages waiting to be sent."""

    user_id: str | None
    role: str | None
    scope: Scope | None  # what its user may see (query.scope.scope_for); None: no token, the public room only
    queue_limit: int
    session_id: str | None = None  # the login session it was opened in: its end closes the socket
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    rooms: set[str] = field(default_factory=set)
    queue: deque[bytes] = field(default_factory=deque)  # whole frames
    queued_bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # queue and queued_bytes
    wake: threading.Event = field(default_factory=threading.Event)
    dropped: tuple[int, str] | None = None

    @property
    def organization_id(self) -> str | None:
        return None if self.scope is None else self.scope.organization_id

    def offer(self, frame: bytes) -> bool:
        """Queue a message; a full queue (messages or bytes) drops the client instead (False)."""
        if self.dropped is not None:
            return False
        with self._lock:
            full = len(self.queue) >= self.queue_limit or self.queued_bytes + len(frame) > MAX_QUEUED_BYTES
            if not full:
                self.queue.append(frame)
                self.queued_bytes += len(frame)
        if full:
            self.drop(CLOSE_TOO_SLOW, "Too slow: messages were not read in time")
            return False
        self.wake.set()
        return True

    def take(self) -> bytes:
        """Every waiting frame, in order, as one write."""
        with self._lock:
            data = b"".join(self.queue)
            self.queue.clear()
            self.queued_bytes = 0
        return data

    def drop(self, code: int, reason: str) -> None:
        if self.dropped is None:
            self.dropped = (code, reason)
        self.wake.set()


THREADS, ANONYMOUS = "threads", "anonymous"  # what Hub.reserve counts


class Hub:
    """This process's clients by room; rooms are keyed by organization (None: the public room)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: set[Client] = set()
        self._rooms: dict[tuple[str | None, str], set[Client]] = {}
        self._reserved: Counter[str] = Counter()  # sockets counted by kind (see reserve)

    def __len__(self) -> int:
        return len(self._clients)

    def reserve(self, most: int, kind: str = THREADS) -> bool:
        """Count one more socket of `kind`; False when `most` are counted already.

        THREADS: server threads taken by sockets, from admission to the end; ANONYMOUS: of
        which sockets without credentials, so they cannot crowd out signed-in users.
        """
        with self._lock:
            if self._reserved[kind] >= most:
                return False
            self._reserved[kind] += 1
            return True

    def unreserve(self, kind: str = THREADS) -> None:
        with self._lock:
            self._reserved[kind] -= 1

    def add(self, client: Client) -> None:
        with self._lock:
            self._clients.add(client)

    def remove(self, client: Client) -> None:
        with self._lock:
            self._clients.discard(client)
            for room in client.rooms:
                self._leave(client, room)
            client.rooms.clear()

    def join(self, client: Client, room: str) -> None:
        with self._lock:
            if client in self._clients:
                client.rooms.add(room)
                self._rooms.setdefault((self._org(client, room), room), set()).add(client)

    def leave(self, client: Client, room: str) -> None:
        with self._lock:
            client.rooms.discard(room)
            self._leave(client, room)

    def _leave(self, client: Client, room: str) -> None:
        key = (self._org(client, room), room)
        members = self._rooms.get(key)
        if members is not None:
            members.discard(client)
            if not members:
                del self._rooms[key]

    @staticmethod
    def _org(client: Client, room: str) -> str | None:
        return None if room == "public" else client.organization_id

    def members(self, organization_id: str | None, room: str) -> list[Client]:
        with self._lock:
            return list(self._rooms.get((organization_id, room), ()))

    def rooms_of(self, organization_id: str) -> list[str]:
        with self._lock:
            return [room for org, room in self._rooms if org == organization_id]

    def clients(self) -> list[Client]:
        with self._lock:
            return list(self._clients)
