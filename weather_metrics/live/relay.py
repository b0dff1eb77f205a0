"""Fan-out of live events to this process's WebSocket clients.

`Hub` keeps the clients of this process and the rooms they joined. `Relay` reads the
`live_events` table after commit (every worker process reads it, so a socket hears of
data whichever process accepted it), turns each event into one message per room and
offers it to the room's clients. A client whose queue overflows is marked dropped; its
own thread closes it, so a slow reader never holds anyone else up. Dashboards of
subscribed rooms are recomputed on their own thread, at most once per interval.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from weather_metrics.core.errors import NotFound
from weather_metrics.core.times import iso
from weather_metrics.live import events as live
from weather_metrics.live.hub import (
    CLOSE_ACCOUNT,
    CLOSE_RIGHTS_CHANGED,
    CLOSE_SHUTTING_DOWN,
    Client,
    Hub,
    message,
    text_frame,
)
from weather_metrics.live.wakeup import Wakeup
from weather_metrics.query.scope import team_member_ids
from weather_metrics.store.db import database, execute, reconnect, write_transaction
from weather_metrics.store.models import AuthSession, User

log = logging.getLogger(__name__)


POLL_SECONDS = 0.05
LISTENING_POLL_SECONDS = 1.0  # on PostgreSQL a commit's NOTIFY wakes the relay; polling only catches lost ones
IDLE_POLL_SECONDS = 0.5  # without sockets the relay only keeps its place
HEARTBEAT_SECONDS = 20
# On PostgreSQL a transaction may take its event's id before another's and commit after it
# (two writers: two processes or hosts). Ids passed over are looked for again this long;
# one never seen was rolled back.
GAP_SECONDS = 30.0
EVENT_COLUMNS = "id, organization_id, type, team_id, payload"
MAX_GAP = 500  # at most this many ids looked for again; a wider jump is not a race of writers
STALE_SECONDS = 90  # a connection row not seen for this long belongs to a dead process
ACCOUNT_CHECK_SECONDS = 30
TEAM_CACHE_SECONDS = 10


class TeamMembers:
    """Members of each team, cached briefly: team rooms show their members' rows."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    def of(self, team_id: str) -> frozenset[str]:
        cached = self._cache.get(team_id)
        if cached is None or cached[0] < time.monotonic():
            cached = (time.monotonic() + TEAM_CACHE_SECONDS, team_member_ids({team_id}))
            self._cache[team_id] = cached
        return cached[1]


def ingested_data(payload: dict[str, Any], parts: list[list[Any]], team_id: str | None) -> dict[str, Any]:
    """The spec's metric_ingested payload for the rows of one batch a room shows."""
    users = sorted({part[0] for part in parts if part[0] is not None})
    kinds = sorted({part[2] for part in parts})
    teams = sorted({part[1] for part in parts if part[1] is not None})
    return {
        "metric_type": kinds[0] if len(kinds) == 1 else "mixed",
        "user_id": users[0] if len(users) == 1 else None,
        "team_id": team_id if team_id is not None else (teams[0] if len(teams) == 1 else None),
        "count": sum(part[3] for part in parts),
        "timestamp": payload["timestamp"],
        "batch_id": payload["batch_id"],
        "metric_types": kinds,
        "user_ids": users,
    }


class Relay:
    """Reads live events after commit and offers them to the clients of their rooms.

    `step()` does one poll (tests call it directly); `start()` runs it on a thread, with
    the dashboard updater on another.
    """

    def __init__(
        self,
        hub: Hub,
        settings: dict[str, Any],
        dashboard_data: Callable[[User, str, datetime], dict[str, Any]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.hub = hub
        self.process = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"  # names this process's rows in ws_connections
        self._dashboard_data = dashboard_data
        self._clock = clock
        self._public_interval = float(settings["ws_public_interval_seconds"])
        self._dashboard_interval = float(settings["ws_dashboard_interval_seconds"])
        self._teams = TeamMembers()
        self._last_id: int | None = None
        self._gaps: dict[int, float] = {}  # ids passed over (see `_skipped`) -> until when to look for them
        self._public = {"count": 0, "errors": 0}
        self._public_due = 0.0
        self._dashboards: dict[tuple[str, str], float] = {}  # (org, dashboard id) -> when to send
        self._dashboards_sent: dict[tuple[str, str], float] = {}
        self._dashboard_lock = threading.Condition()
        self._next_heartbeat = 0.0
        self._next_account_check = time.monotonic() + ACCOUNT_CHECK_SECONDS
        self._stop = threading.Event()
        self.closing = False  # set by drop_all: the process is shutting down
        self._threads: list[threading.Thread] = []
        self._wakeup: Wakeup | None = None  # made by `start`, in the process that serves

    # -- reading events ------------------------------------------------------------------------

    def step(self) -> bool:
        """Fan out what committed since the last step; True when there was something."""
        if not len(self.hub):
            # Nobody listens: keep the place current, so a first subscriber is not sent a backlog.
            self._last_id = execute("SELECT COALESCE(MAX(id), 0) FROM live_events").fetchone()[0]
            self._public = {"count": 0, "errors": 0}
            self._gaps.clear()
            return False
        if self._last_id is None:
            self._last_id = execute("SELECT COALESCE(MAX(id), 0) FROM live_events").fetchone()[0]
        rows = (
            self._late_rows()
            + execute(
                f"SELECT {EVENT_COLUMNS} FROM live_events WHERE id > ? ORDER BY id LIMIT 1000", (self._last_id,)
            ).fetchall()
        )
        for row_id, organization_id, event_type, team_id, payload in rows:
            self._skipped(row_id)
            try:
                self._dispatch(organization_id, event_type, team_id, json.loads(payload))
            except Exception:  # noqa: BLE001 - one bad event must not stop the others
                log.exception("live event %s could not be sent", row_id)
        self._flush_public()
        return bool(rows)

    def _skipped(self, row_id: int) -> None:
        """Move the place to `row_id`, remembering the ids passed over: their transactions may commit later."""
        assert self._last_id is not None
        if row_id <= self._last_id:
            return  # a late one
        if row_id - self._last_id <= MAX_GAP:
            until = time.monotonic() + GAP_SECONDS
            self._gaps.update(dict.fromkeys(range(self._last_id + 1, row_id), until))
        self._last_id = row_id

    def _late_rows(self) -> list[tuple[Any, ...]]:
        """Events with ids passed over that have committed since; ids not seen within GAP_SECONDS are given up."""
        now = time.monotonic()
        self._gaps = {row_id: until for row_id, until in self._gaps.items() if until > now}
        if not self._gaps:
            return []
        waiting = sorted(self._gaps)[:MAX_GAP]
        rows: list[tuple[Any, ...]] = execute(
            f"SELECT {EVENT_COLUMNS} FROM live_events WHERE id IN ({', '.join('?' * len(waiting))}) ORDER BY id",
            waiting,
        ).fetchall()
        for row in rows:
            del self._gaps[row[0]]
        return rows

    def _dispatch(self, organization_id: str | None, event_type: str, team_id: str | None, payload: Any) -> None:
        if event_type == live.PUBLIC_INGESTED:
            self._public["count"] += payload["count"]
            self._public["errors"] += payload["errors"]
        elif event_type == live.METRIC_INGESTED and organization_id is not None:
            self._ingested(organization_id, payload)
        elif event_type == live.ALERT_TRIGGERED and organization_id is not None:
            frame = message(live.ALERT_TRIGGERED, "alerts", payload)
            for client in self.hub.members(organization_id, "alerts"):
                teams = client.scope.team_ids if client.scope is not None else frozenset()
                if teams is None or (team_id is not None and team_id in teams):
                    client.offer(frame)

    def _ingested(self, organization_id: str, payload: dict[str, Any]) -> None:
        parts: list[list[Any]] = payload["parts"]
        for room in self.hub.rooms_of(organization_id):
            kind, _, target = room.partition(":")
            if kind == "dashboard":
                self.dashboard_changed(organization_id, target)
                continue
            if kind == "org":
                shown, team = parts, None
            elif kind == "team":
                members = self._teams.of(target)
                shown, team = [p for p in parts if p[0] in members or p[1] == target], target
            elif kind == "user":
                shown, team = [p for p in parts if p[0] == target], None
            else:
                continue
            if shown:
                frame = message(live.METRIC_INGESTED, room, ingested_data(payload, shown, team))
                for client in self.hub.members(organization_id, room):
                    client.offer(frame)

    def _flush_public(self) -> None:
        now = time.monotonic()
        if self._public["count"] and now >= self._public_due:
            data = {"source": "v1", **self._public, "timestamp": iso(datetime.fromtimestamp(self._clock(), UTC))}
            frame = message(live.METRIC_INGESTED, "public", data)
            for client in self.hub.members(None, "public"):
                client.offer(frame)
            self._public = {"count": 0, "errors": 0}
            self._public_due = now + self._public_interval

    # -- dashboards ----------------------------------------------------------------------------

    def dashboard_changed(self, organization_id: str, dashboard_id: str) -> None:
        """Schedule a dashboard_update: now, or when the dashboard's interval has passed."""
        key = (organization_id, dashboard_id)
        with self._dashboard_lock:
            if key not in self._dashboards:
                earliest = self._dashboards_sent.get(key, 0.0) + self._dashboard_interval
                self._dashboards[key] = max(time.monotonic(), earliest)
                self._dashboard_lock.notify()

    def dashboards_step(self, wait: float = 0.0) -> bool:
        """Send the dashboards that are due; True when one was sent."""
        with self._dashboard_lock:
            now = time.monotonic()
            due = [key for key, when in self._dashboards.items() if when <= now]
            if not due and wait > 0:
                soonest = min(self._dashboards.values(), default=now + wait)
                self._dashboard_lock.wait(max(0.0, min(wait, soonest - now)))
                return False
            # A dashboard sent longer than an interval ago is as good as never sent: forget it.
            self._dashboards_sent = {
                key: sent for key, sent in self._dashboards_sent.items() if sent + self._dashboard_interval > now
            }
            for key in due:
                del self._dashboards[key]
                self._dashboards_sent[key] = now
        for organization_id, dashboard_id in due:
            self._send_dashboard(organization_id, dashboard_id)
        return bool(due)

    def _send_dashboard(self, organization_id: str, dashboard_id: str) -> None:
        room = f"dashboard:{dashboard_id}"
        clients = self.hub.members(organization_id, room)
        moment = datetime.fromtimestamp(self._clock(), UTC)
        by_user: dict[str, list[Client]] = {}
        for client in clients:
            if client.user_id is not None:
                by_user.setdefault(client.user_id, []).append(client)
        for user_id, group in by_user.items():
            user = User.get_or_none(User.id == user_id)
            try:
                if user is None:
                    raise NotFound(f"Dashboard {dashboard_id} not found")
                result = self._dashboard_data(user, dashboard_id, moment)
            except NotFound as exc:
                error = {"code": "NOT_FOUND", "room": room, "message": str(exc)}
                refusal = text_frame(json.dumps({"type": "error", "error": error}))
                for client in group:
                    self.hub.leave(client, room)
                    client.offer(refusal)
                continue
            frames = [
                message(
                    live.DASHBOARD_UPDATE,
                    room,
                    {"dashboard_id": dashboard_id, "widget_id": widget["id"], "data": widget, "timestamp": iso(moment)},
                )
                for widget in result["widgets"]
            ]
            for client in group:
                for frame in frames:
                    client.offer(frame)

    # -- bookkeeping ---------------------------------------------------------------------------

    def housekeeping(self, now: float) -> None:
        """Mark this process's connections alive; forget old events, tickets and dead processes' rows."""
        moment = int(now)
        with write_transaction():
            execute("UPDATE ws_connections SET seen_at = ? WHERE process = ?", (moment, self.process))
            execute("DELETE FROM ws_connections WHERE seen_at < ?", (moment - STALE_SECONDS,))
            execute("DELETE FROM ws_tickets WHERE expires_at < ?", (moment,))
            execute("DELETE FROM live_events WHERE created_at < ?", (moment - live.KEEP_SECONDS,))

    def check_accounts(self, clients: Iterable[Client], now: float | None = None) -> None:
        """Close the sockets of ended login sessions, of disabled or deleted users, and of changed roles."""
        signed_in = [c for c in clients if c.user_id is not None]
        if not signed_in:
            return
        moment = int(now if now is not None else self._clock())
        ids = sorted({c.user_id for c in signed_in if c.user_id})
        current = {u.id: u for u in User.select(User.id, User.role, User.active).where(User.id.in_(ids))}
        sessions = sorted({c.session_id for c in signed_in if c.session_id})
        live_sessions = {
            s.id
            for s in AuthSession.select(AuthSession.id).where(
                AuthSession.id.in_(sessions) & AuthSession.revoked_at.is_null() & (AuthSession.expires_at > moment)
            )
        }
        for client in signed_in:
            user = current.get(client.user_id or "")
            if user is None or not user.active:
                client.drop(CLOSE_ACCOUNT, "The account was disabled or deleted")
            elif client.session_id is not None and client.session_id not in live_sessions:
                client.drop(CLOSE_ACCOUNT, "The login session ended (logged out, revoked or expired)")
            elif user.role != client.role:
                client.drop(CLOSE_RIGHTS_CHANGED, "The account's role changed; connect again")

    def forget_process(self) -> None:
        with write_transaction():
            execute("DELETE FROM ws_connections WHERE process = ?", (self.process,))

    # -- threads -------------------------------------------------------------------------------

    def start(self) -> None:
        self._wakeup = Wakeup()
        for name, target in (("ws-relay", self._relay_loop), ("ws-dashboards", self._dashboard_loop)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            self._threads.append(thread)
            thread.start()

    def _relay_loop(self) -> None:
        database.connect(reuse_if_open=True)
        try:
            while not self._stop.is_set():
                busy = False
                try:
                    busy = self.step()
                    if time.monotonic() >= self._next_heartbeat:
                        self._next_heartbeat = time.monotonic() + HEARTBEAT_SECONDS
                        self.housekeeping(self._clock())
                    if time.monotonic() >= self._next_account_check:
                        self._next_account_check = time.monotonic() + ACCOUNT_CHECK_SECONDS
                        self.check_accounts(self.hub.clients())
                    if not busy:
                        self._wait()
                except Exception:  # noqa: BLE001 - a failing database must not end the thread
                    log.exception("relaying live events failed")
                    reconnect()
                    self._stop.wait(1.0)  # a lasting failure is logged once a second, not in a spin
        finally:
            if self._wakeup is not None:
                self._wakeup.close_connection()
            database.close()

    def _wait(self) -> None:
        """Until the next read: a commit's notice (PostgreSQL), the poll interval, or the stop."""
        assert self._wakeup is not None
        if not len(self.hub):
            self._wakeup.wait(IDLE_POLL_SECONDS, notices=False)
        else:
            self._wakeup.wait(LISTENING_POLL_SECONDS if self._wakeup.listening else POLL_SECONDS)

    def _dashboard_loop(self) -> None:
        database.connect(reuse_if_open=True)
        try:
            while not self._stop.is_set():
                try:
                    self.dashboards_step(wait=1.0)
                except Exception:  # noqa: BLE001 - retried when the dashboard changes again
                    log.exception("dashboard update failed")
                    reconnect()
        finally:
            database.close()

    def drop_all(self) -> None:
        """Close every socket as 'going away' (each socket's own thread sends the close), and any opened later."""
        self.closing = True  # before the sweep: a socket joining after it sees the flag (see `admit`)
        for client in self.hub.clients():
            client.drop(CLOSE_SHUTTING_DOWN, "The server is restarting")

    def admit(self, client: Client) -> None:
        """Add a socket that finished its handshake; one finishing during shutdown is closed at once."""
        self.hub.add(client)
        if self.closing:
            client.drop(CLOSE_SHUTTING_DOWN, "The server is restarting")

    def close(self, timeout: float = 5.0) -> None:
        """Stop the threads, close every socket, and release their rows; idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._wakeup is not None:
            self._wakeup.set()
        with self._dashboard_lock:
            self._dashboard_lock.notify_all()
        self.drop_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
        if self._wakeup is not None:
            self._wakeup.close()
        try:
            with database.connection_context():
                self.forget_process()
        except Exception:  # noqa: BLE001 - stale rows expire after STALE_SECONDS anyway
            log.exception("releasing WebSocket connection rows failed")
