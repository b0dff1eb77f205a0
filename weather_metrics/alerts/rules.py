"""Alert rules and their history; alerts/evaluator.py fires and resolves them.

Free of HTTP: the /api views pass in the caller and already-validated bodies (the views
admit admins and managers only). A rule compares one metric over a trailing window with a
threshold (see alerts/measures.py). Each evaluation:

- condition true, state ok: fire (a firing alert event, a live event and webhook
  deliveries, in one transaction), unless the rule fired less than `cooldown_minutes` ago;
- condition true, state firing: nothing new;
- condition false (or no value: an error rate or p95 of no executions), state firing: the
  open alert event is resolved and the rule is ok again.

A change to what a rule measures or compares, disabling it or deleting it resolves its
open alert with no resolved_value; history outlives the rule.
"""

from __future__ import annotations

import json
import operator
import uuid
from collections.abc import Callable
from typing import Any

from peewee import Expression

from weather_metrics.accounts.organizations import find_team
from weather_metrics.core.errors import NotFound, OutOfScope, QueryError
from weather_metrics.core.times import iso
from weather_metrics.store.db import write_transaction
from weather_metrics.store.models import AlertEvent, AlertRule, TeamMember, User

METRICS = ("error_rate", "p95_latency_ms", "call_volume", "productivity")
SCOPE_TYPES = ("organization", "team", "agent", "tool")
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


SEVERITIES = ("low", "medium", "high", "critical")
EVENT_STATES = ("firing", "resolved")
MAX_WINDOW_MINUTES = 1440
MAX_COOLDOWN_MINUTES = 10_080
MAX_RULES = 200  # per organization; each is evaluated every alert_evaluation_seconds
MAX_THRESHOLD = 1e12
THRESHOLDS = {
    "error_rate": (0.0, 100.0),
    "p95_latency_ms": (0.0, MAX_THRESHOLD),
    "call_volume": (0.0, MAX_THRESHOLD),
    "productivity": (-MAX_THRESHOLD, MAX_THRESHOLD),
}


# Changing one of these makes the rule watch something else: its open alert is resolved.
CONDITION_FIELDS = ("metric", "metric_type", "scope_type", "scope_value", "comparison", "threshold", "window_minutes")
PLAIN_FIELDS = ("name", "metric", "metric_type", "comparison", "window_minutes", "severity", "cooldown_minutes")


class InvalidRule(QueryError):
    """A well-formed body whose fields do not fit together: per-field details."""


class Forbidden(OutOfScope):
    """A manager asking for a rule outside their teams."""


def _member_teams(user: User) -> Any:
    return TeamMember.select(TeamMember.team_id).where(TeamMember.user == user.id)


def _visible_rules(user: User) -> Expression:
    """Admins: the organization's rules; managers: those scoped to one of their teams."""
    mine = AlertRule.organization == user.organization_id
    if user.role == "admin":
        return mine
    return mine & (AlertRule.scope_type == "team") & AlertRule.scope_value.in_(_member_teams(user))


def list_rules(user: User) -> list[AlertRule]:
    return list(AlertRule.select().where(_visible_rules(user)).order_by(AlertRule.name, AlertRule.id))


def find_rule(user: User, rule_id: str) -> AlertRule:
    """A rule `user` may see; NotFound otherwise (also for another organization's)."""
    rule = AlertRule.get_or_none((AlertRule.id == rule_id) & _visible_rules(user))
    if rule is None:
        raise NotFound(f"Alert rule {rule_id} not found")
    return rule


def _fields_of(body: dict[str, Any]) -> dict[str, Any]:
    """Row fields of a (partial) validated body: the scope object becomes scope_type and scope_value."""
    fields = {name: body[name] for name in PLAIN_FIELDS if name in body}
    if "threshold" in body:
        fields["threshold"] = float(body["threshold"])
    if "scope" in body:
        scope = body["scope"]
        fields["scope_type"], fields["scope_value"] = scope["type"], scope.get("id", scope.get("name"))
    return fields


def _check(user: User, fields: dict[str, Any], new_scope: bool = True) -> None:
    """InvalidRule when the fields do not fit together; NotFound for an unknown team (of a new
    scope: a rule whose team was deleted can still be disabled); Forbidden when `user` may
    not keep a rule of this scope."""
    metric, scope_type = fields["metric"], fields["scope_type"]
    problems: dict[str, str] = {}
    if metric == "productivity":
        if not fields.get("metric_type"):
            problems["metric_type"] = "Required when metric is productivity"
        if scope_type in ("agent", "tool"):
            problems["scope.type"] = "A productivity rule watches the organization or a team"
    elif fields.get("metric_type") is not None:
        problems["metric_type"] = "Only allowed when metric is productivity"
    low, high = THRESHOLDS[metric]
    if not low <= fields["threshold"] <= high:
        problems["threshold"] = f"Must be between {low:g} and {high:g} for {metric}"
    if problems:
        raise InvalidRule("Request validation failed", problems)
    if scope_type == "team" and new_scope:
        find_team(user.organization_id, fields["scope_value"])
    if user.role != "admin":
        member = scope_type == "team" and _member_teams(user).where(TeamMember.team == fields["scope_value"]).exists()
        if not member:
            raise Forbidden("Managers may only keep alert rules scoped to one of their teams")


def create_rule(user: User, body: dict[str, Any], now: int) -> AlertRule:
    """A new rule of the user's organization, due for evaluation at once."""
    fields = _fields_of(body)
    fields.setdefault("metric_type", None)
    with write_transaction():
        _check(user, fields)
        if AlertRule.select().where(AlertRule.organization == user.organization_id).count() >= MAX_RULES:
            raise InvalidRule(f"An organization has at most {MAX_RULES} alert rules", {})
        return AlertRule.create(
            id=str(uuid.uuid4()),
            organization=user.organization_id,
            enabled=body.get("enabled", True),
            state="ok",
            next_evaluation_at=now,
            created_by=user.id,
            created_at=now,
            updated_at=now,
            **fields,
        )


def _condition(rule: AlertRule) -> tuple[Any, ...]:
    return tuple(getattr(rule, name) for name in CONDITION_FIELDS)


def update_rule(user: User, rule_id: str, changes: dict[str, Any], now: int) -> AlertRule:
    """Apply a partial update, checked as if creating the result.

    A rule that now watches something else, or is disabled, has its open alert resolved
    and starts over as ok; one that changed or was enabled is due for evaluation at once.
    The cooldown still counts from the last firing.
    """
    with write_transaction():
        rule = find_rule(user, rule_id)
        fields = {name: getattr(rule, name) for name in CONDITION_FIELDS}
        fields.update(_fields_of(changes))
        if fields["metric"] != "productivity" and "metric_type" not in changes:
            fields["metric_type"] = None  # a rule leaving productivity drops its type
        _check(user, fields, new_scope="scope" in changes)
        before, was_enabled = _condition(rule), rule.enabled
        for name, value in fields.items():
            setattr(rule, name, value)
        rule.enabled = changes.get("enabled", rule.enabled)
        changed = _condition(rule) != before
        if changed or not rule.enabled:
            _close_open_alert(rule.id, now, None)
            rule.state = "ok"
        if changed:
            rule.last_value = None
        if rule.enabled and (changed or not was_enabled):
            rule.next_evaluation_at = now
        rule.updated_at = now  # also tells an evaluation in flight that its reading is stale
        rule.save()
        return rule


def delete_rule(user: User, rule_id: str, now: int) -> None:
    """Delete a rule; its history stays, an open alert resolved."""
    with write_transaction():
        rule = find_rule(user, rule_id)
        _close_open_alert(rule.id, now, None)
        rule.delete_instance()


def _close_open_alert(rule_id: str, at: int, value: float | None) -> None:
    """Resolve the rule's firing alert event, if any; call inside write_transaction()."""
    AlertEvent.update(state="resolved", resolved_at=at, resolved_value=value).where(
        (AlertEvent.rule_id == rule_id) & (AlertEvent.state == "firing")
    ).execute()


def scope_view(scope_type: str, scope_value: str | None) -> dict[str, Any]:
    if scope_type == "organization":
        return {"type": scope_type}
    return {"type": scope_type, ("id" if scope_type == "team" else "name"): scope_value}


def rule_view(rule: AlertRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "metric": rule.metric,
        "metric_type": rule.metric_type,
        "scope": scope_view(rule.scope_type, rule.scope_value),
        "comparison": rule.comparison,
        "threshold": rule.threshold,
        "window_minutes": rule.window_minutes,
        "severity": rule.severity,
        "cooldown_minutes": rule.cooldown_minutes,
        "enabled": bool(rule.enabled),
        "state": rule.state,
        "last_value": rule.last_value,
        "last_fired_at": None if rule.last_fired_at is None else iso(rule.last_fired_at),
        "next_evaluation_at": iso(rule.next_evaluation_at) if rule.enabled else None,
        "created_by": rule.created_by_id,  # type: ignore[attr-defined]  # peewee's key accessor
        "created_at": iso(rule.created_at),
        "updated_at": iso(rule.updated_at),
    }


def list_events(user: User, filters: dict[str, Any], page: int, limit: int) -> tuple[list[AlertEvent], int]:
    """Alert events `user` may see, newest first, filtered by state, rule_id and severity."""
    where = AlertEvent.organization == user.organization_id
    if user.role != "admin":  # also events of deleted rules: the event keeps its team
        where &= AlertEvent.team_id.in_(_member_teams(user))
    for name in ("state", "rule_id", "severity"):
        if name in filters:
            where &= getattr(AlertEvent, name) == filters[name]
    query = AlertEvent.select().where(where)
    page_rows = query.order_by(AlertEvent.fired_at.desc(), AlertEvent.id.desc()).paginate(page, limit)
    return list(page_rows), query.count()


def event_view(event: AlertEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "rule_id": event.rule_id,
        "rule_name": event.rule_name,
        "severity": event.severity,
        "metric": event.metric,
        "scope": scope_view(event.scope_type, event.scope_value),
        "state": event.state,
        "metric_value": event.metric_value,
        "threshold": event.threshold,
        "affected_users": json.loads(event.affected_users),
        "fired_at": iso(event.fired_at),
        "resolved_at": None if event.resolved_at is None else iso(event.resolved_at),
        "resolved_value": event.resolved_value,
    }
