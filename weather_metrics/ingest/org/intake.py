"""Accepting organization metrics: /mcp/metrics/collect and POST /api/metrics/{agents,productivity}.

The same writer, durability promise and Idempotency-Key rules as /v1/events (see
ingest/delivery.py and ingest/idempotency.py); what differs is who may send what, and whose
data it becomes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from weather_metrics.core.errors import KeyReused, Pending, Rejected
from weather_metrics.core.strictjson import MalformedJson, parse_json
from weather_metrics.core.times import HOUR, iso
from weather_metrics.ingest.delivery import deliver
from weather_metrics.ingest.idempotency import body_hash, check_idempotency_key, replay
from weather_metrics.ingest.org.validation import accepted_window, agent_problems, productivity_problems
from weather_metrics.query.scope import scope_for
from weather_metrics.store.agents import AGENTS, agent_row
from weather_metrics.store.batches import PendingBatch
from weather_metrics.store.db import execute, is_postgresql
from weather_metrics.store.models import Team, TeamMember, User
from weather_metrics.store.productivity import PRODUCTIVITY, productivity_row
from weather_metrics.store.writer import EventWriter

# The answer to give, and whether its rows are committed (201) or only queued (202, ack = "enqueue").
Answer = tuple[dict[str, Any], bool]


class OrgIntake:
    """The ingestion rules of organization metrics, free of HTTP."""

    def __init__(
        self,
        writer: EventWriter,
        settings: dict[str, Any],
        cpu_gate: Any,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.writer = writer
        self.settings = settings
        self.ack_on_commit = settings["ack"] == "commit"
        self.ack_timeout = settings["ack_timeout_seconds"]
        self.idempotency_ttl = settings["idempotency_ttl_hours"] * HOUR
        self.max_items = settings["metrics_max_items"]
        self.cpu_gate = cpu_gate  # shared with /v1: see EventIntake
        self._clock = clock or (lambda: datetime.now(UTC))

    def collect(self, org_id: str, raw: bytes, idempotency_key: str | None, api_key_id: str) -> Answer:
        """Agent executions from an MCP server holding an organization API key."""
        return self._accept(org_id, raw, idempotency_key, "collect", api_key_id=api_key_id)

    def agents(self, poster: User, raw: bytes, idempotency_key: str | None) -> Answer:
        """Agent executions sent by a signed-in user."""
        return self._accept(poster.organization_id, raw, idempotency_key, "agents", poster=poster)

    def productivity(self, poster: User, raw: bytes, idempotency_key: str | None) -> Answer:
        """Productivity metrics sent by a signed-in user."""
        return self._accept(poster.organization_id, raw, idempotency_key, "productivity", poster=poster)

    def _accept(
        self,
        org_id: str,
        raw: bytes,
        idempotency_key: str | None,
        surface: str,
        poster: User | None = None,
        api_key_id: str | None = None,
    ) -> Answer:
        with self.cpu_gate:
            try:
                body = parse_json(raw, strict=True)
            except MalformedJson as exc:
                raise Rejected(400, str(exc)) from None
            now = self._clock()
            key = digest = None
            if idempotency_key is not None:
                problem = check_idempotency_key(idempotency_key)
                if problem:
                    raise Rejected(400, problem, {"Idempotency-Key": problem})
                # Keys are per organization, surface and sender (a user; for collect, the organization's
                # servers): nobody else can replay or block ours.
                sender = poster.id if poster is not None else ""
                key = f"{org_id}\x1f{surface}\x1f{sender}\x1f{idempotency_key}"
                digest = body_hash(body)
                first = self._replay(key, digest, now)
                if first is not None:
                    return first, True
            items, prefixes = self._items(body)
            batch_id = uuid.uuid4().hex
            received_at = int(now.timestamp())
            window = accepted_window(now, self.settings["retention_days"], self.settings["clock_skew_seconds"])
            if surface == "productivity":
                rows = self._productivity_rows(org_id, batch_id, received_at, items, prefixes, window, poster)
            else:
                rows = self._agent_rows(org_id, batch_id, received_at, items, prefixes, window, poster)
            batch = PendingBatch(
                rows=rows,
                response={"status": "accepted", "batch_id": batch_id, "accepted": len(rows), "received_at": iso(now)},
                idempotency_key=key,
                body_hash=digest,
                kind=PRODUCTIVITY if surface == "productivity" else AGENTS,
                api_key_id=api_key_id,
            )
        try:
            answer = deliver(self.writer, batch, self.ack_on_commit, self.ack_timeout)
        except KeyReused as exc:
            raise Rejected(409, str(exc)) from None
        except Pending:
            # Being written: a 503 ("not stored") would make the sender store it twice.
            return {**batch.response, "status": "pending"}, False
        return answer, batch.done.is_set()

    def _replay(self, key: str, digest: str, now: datetime) -> dict[str, Any] | None:
        try:
            return replay(key, digest, now, self.idempotency_ttl)
        except KeyReused as exc:
            raise Rejected(409, str(exc)) from None

    def _items(self, body: Any) -> tuple[list[Any], list[str]]:
        """The items of a body that is one object or an array of them, with their error prefixes."""
        if isinstance(body, dict):
            return [body], [""]
        if not isinstance(body, list):
            raise Rejected(400, "The body must be a JSON object or an array of objects")
        if not 1 <= len(body) <= self.max_items:
            message = f"Must contain between 1 and {self.max_items} items"
            raise Rejected(400, message, {"_body": message})
        return body, [f"items[{i}]." for i in range(len(body))]

    def _agent_rows(
        self,
        org_id: str,
        batch_id: str,
        received_at: int,
        items: list[Any],
        prefixes: list[str],
        window: tuple[datetime, datetime],
        poster: User | None,
    ) -> list[tuple[Any, ...]]:
        texts = _validated(agent_problems, items, prefixes, window)
        problems: dict[str, str] = {}
        users = _org_users(org_id, items)
        owners = []
        for item, prefix in zip(items, prefixes, strict=True):
            owner = _owner(item, users, prefix, problems, signed_in=poster is not None)
            if owner is None and poster is not None and "user_identifier" not in item:
                owner = poster.id  # a signed-in user's own executions unless they name someone
            owners.append(owner)
        if problems:
            raise Rejected(400, "Request validation failed", problems)
        if poster is not None:
            _check_scope(poster, owners, prefixes)
        return [
            agent_row(org_id, batch_id, received_at, item, owner, texts.get(prefix))
            for item, owner, prefix in zip(items, owners, prefixes, strict=True)
        ]

    def _productivity_rows(
        self,
        org_id: str,
        batch_id: str,
        received_at: int,
        items: list[Any],
        prefixes: list[str],
        window: tuple[datetime, datetime],
        poster: User | None,
    ) -> list[tuple[Any, ...]]:
        assert poster is not None
        texts = _validated(productivity_problems, items, prefixes, window)
        problems: dict[str, str] = {}
        users = _org_users(org_id, items)
        teams = {
            t.id
            for t in Team.select(Team.id).where((Team.organization == org_id) & Team.id.in_(_given(items, "team_id")))
        }
        for item, prefix in zip(items, prefixes, strict=True):
            _owner(item, users, prefix, problems)
            if "team_id" in item and item["team_id"] is not None and item["team_id"] not in teams:
                problems[prefix + "team_id"] = "No such team in this organization"
        if not problems:
            _check_members(items, prefixes, problems)
        if problems:
            raise Rejected(400, "Request validation failed", problems)
        if poster.role != "admin":
            items = [_own_by_default(item, poster) for item in items]
            _check_scope(poster, [item.get("user_id") for item in items], prefixes)
            _check_teams(poster, items, prefixes)
        return [
            productivity_row(org_id, batch_id, received_at, item, texts.get(prefix))
            for item, prefix in zip(items, prefixes, strict=True)
        ]


def _validated(
    check: Callable[..., dict[str, str]], items: list[Any], prefixes: list[str], window: Any
) -> dict[str, str]:
    """Every item checked (400 listing every problem); returns the metadata JSON of each, by prefix."""
    problems: dict[str, str] = {}
    texts: dict[str, str] = {}
    for item, prefix in zip(items, prefixes, strict=True):
        problems.update(check(item, window, prefix, texts))
    if problems:
        raise Rejected(400, "Request validation failed", problems)
    return texts


def _given(items: list[dict[str, Any]], name: str) -> list[str]:
    return sorted({item[name] for item in items if isinstance(item.get(name), str)})


class Directory:
    """Users of the organization named by a request: by id, and by lower-case email."""

    def __init__(self, ids: set[str], by_email: dict[str, str]) -> None:
        self.ids = ids
        self.by_email = by_email

    def identify(self, identifier: str) -> str | None:
        """The user an MCP server's user_identifier names: an id or an email (any case)."""
        return identifier if identifier in self.ids else self.by_email.get(identifier.lower())


def _org_users(org_id: str, items: list[dict[str, Any]]) -> Directory:
    """Users of the organization named by the items (user_id or user_identifier)."""
    ids = _given(items, "user_id") + _given(items, "user_identifier")
    if not ids:
        return Directory(set(), {})
    # One plain statement: building an IN (...) of many values with peewee costs milliseconds.
    listed = "SELECT json_array_elements_text(?::json)" if is_postgresql() else "SELECT value FROM json_each(?)"
    rows = execute(
        f"SELECT id, email FROM users WHERE organization_id = ? AND (id IN ({listed}) OR email IN ({listed}))",
        (org_id, json.dumps(ids), json.dumps(sorted({i.lower() for i in ids}))),
    )
    known: set[str] = set()
    by_email: dict[str, str] = {}
    for user_id, email in rows:
        known.add(user_id)
        by_email[email] = user_id
    return Directory(known, by_email)


def _owner(
    item: dict[str, Any], users: Directory, prefix: str, problems: dict[str, str], signed_in: bool = False
) -> str | None:
    """The user an item belongs to: `user_id` (an id that must exist) or a matching `user_identifier`.

    An identifier that matches nobody is kept as given from an MCP server; a signed-in
    sender must name a user of the organization (or nobody, meaning themselves).
    """
    user_id = item.get("user_id")
    if user_id is not None:
        if user_id not in users.ids:
            problems[prefix + "user_id"] = "No such user in this organization"
            return None
        return user_id
    identifier = item.get("user_identifier")
    if identifier is None:
        return None
    owner = users.identify(identifier)
    if owner is None and signed_in:
        problems[prefix + "user_identifier"] = "No such user in this organization"
    return owner


def _own_by_default(item: dict[str, Any], poster: User) -> dict[str, Any]:
    if item.get("user_id") is None and item.get("team_id") is None:
        return {**item, "user_id": poster.id}
    return item


def _check_scope(poster: User, owners: list[str | None], prefixes: list[str]) -> None:
    """Non-admins send data only for themselves (developers) or their teams' members (managers)."""
    scope = scope_for(poster)
    if scope.user_ids is None:
        return
    outside = {
        p + "user_id": "Outside your scope"
        for o, p in zip(owners, prefixes, strict=True)
        if o and o not in scope.user_ids
    }
    if outside:
        raise Rejected(403, "You may only send metrics for yourself or members of your teams", outside)


def _check_members(items: list[dict[str, Any]], prefixes: list[str], problems: dict[str, str]) -> None:
    """A metric naming a user and a team counts for that team only if the user is in it."""
    pairs = {
        (i["user_id"], i["team_id"]) for i in items if i.get("user_id") is not None and i.get("team_id") is not None
    }
    if not pairs:
        return
    teams = sorted({team for _, team in pairs})
    members = {(m.user_id, m.team_id) for m in TeamMember.select().where(TeamMember.team.in_(teams))}
    for item, prefix in zip(items, prefixes, strict=True):
        pair = (item.get("user_id"), item.get("team_id"))
        if pair in pairs and pair not in members:
            problems[prefix + "team_id"] = "The user is not a member of this team"


def _check_teams(poster: User, items: list[dict[str, Any]], prefixes: list[str]) -> None:
    mine = {m.team_id for m in TeamMember.select(TeamMember.team_id).where(TeamMember.user == poster.id)}
    outside = {
        p + "team_id": "Not one of your teams"
        for item, p in zip(items, prefixes, strict=True)
        if item.get("team_id") is not None and item["team_id"] not in mine
    }
    if outside:
        raise Rejected(403, "You may only tag metrics with teams you belong to", outside)
