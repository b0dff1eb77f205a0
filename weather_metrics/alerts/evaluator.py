"""The alert evaluator: each due rule measured, fired or resolved, one `run_once(now)` step at a time."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from weather_metrics.alerts.measures import Target, affected_users, measure
from weather_metrics.alerts.rules import COMPARISONS, _close_open_alert
from weather_metrics.core.times import iso
from weather_metrics.live import events as live
from weather_metrics.runtime.loops import StepThreads
from weather_metrics.runtime.prometheus import alert_evaluations_total, alerts_fired_total
from weather_metrics.store.db import write_transaction
from weather_metrics.store.models import AlertEvent, AlertRule
from weather_metrics.webhooks.deliveries import Subscribers, enqueue

log = logging.getLogger(__name__)

IDLE_WAIT = 1.0  # seconds the evaluator thread sleeps when no rule is due
CLAIM_CANDIDATES = 8  # due rules read at once; another process may claim some of them first


FIRE, RESOLVE, KEEP = "fire", "resolve", "keep"


def decide(rule: AlertRule, value: float | None, at: int) -> str:
    """What an evaluation that read `value` does to the rule: FIRE, RESOLVE or KEEP."""
    holds = value is not None and COMPARISONS[rule.comparison](value, rule.threshold)
    if rule.state == "firing":
        return KEEP if holds else RESOLVE
    cooling = rule.last_fired_at is not None and at - rule.last_fired_at < rule.cooldown_minutes * 60
    return FIRE if holds and not cooling else KEEP


def _target(rule: AlertRule) -> Target:
    return Target(
        rule.organization_id, rule.metric, rule.metric_type, rule.scope_type, rule.scope_value, rule.window_minutes
    )


class AlertEvaluator:
    """Evaluates due rules: `run_once` evaluates one; `start` runs a thread around it.

    Several processes or hosts may evaluate the same database: a rule is claimed by moving
    its next_evaluation_at forward only if nobody moved it since it was read, so each due
    time is evaluated once (docs/scaling.md).
    """

    def __init__(
        self, settings: dict[str, Any], subscribers: Subscribers, clock: Callable[[], float] = time.time
    ) -> None:
        self._interval = int(settings["alert_evaluation_seconds"])
        self.subscribers = subscribers
        self._clock = clock
        self._threads = StepThreads(
            "alerts", 1, lambda _number: self.run_once(datetime.fromtimestamp(self._clock(), UTC)), IDLE_WAIT
        )

    def _claim(self, at: int) -> AlertRule | None:
        """The enabled rule due longest that we could claim, read afresh once claimed; None when none is due.

        Candidates are read without the write lock (an idle poll never takes it: the event
        writer waits for it). Each claim is one UPDATE that moves next_evaluation_at on only
        if it still holds the value read: of several processes or hosts, one claims a due
        time, the others see no row changed and try the next candidate.
        """
        due = (AlertRule.enabled == True) & (AlertRule.next_evaluation_at <= at)  # noqa: E712 - peewee expression
        oldest = (AlertRule.next_evaluation_at, AlertRule.id)
        for rule in list(AlertRule.select().where(due).order_by(*oldest).limit(CLAIM_CANDIDATES)):
            still_due = (AlertRule.id == rule.id) & (AlertRule.next_evaluation_at == rule.next_evaluation_at) & due
            with write_transaction():
                if AlertRule.update(next_evaluation_at=at + self._interval).where(still_due).execute():
                    # Read again: what another process recorded before our claim (a fired state) counts.
                    return AlertRule.get_or_none(AlertRule.id == rule.id)
        return None

    def run_once(self, now: datetime) -> bool:
        """Evaluate the due rule with the oldest next_evaluation_at; False when none is due."""
        at = int(now.timestamp())
        rule = self._claim(at)
        if rule is None:
            return False
        target = _target(rule)
        value = measure(target, at)
        decision = decide(rule, value, at)
        users = affected_users(target, at, rule.threshold) if decision == FIRE else []
        hook_ids = self.subscribers.of(rule.organization_id, "alert.triggered") if decision == FIRE else []
        if self._record(rule, at, value, decision, users, hook_ids) and decision == FIRE:
            alerts_fired_total.labels(rule.severity).inc()
        alert_evaluations_total.inc()
        return True

    def _record(
        self, rule: AlertRule, at: int, value: float | None, decision: str, users: list[str], hook_ids: list[str]
    ) -> bool:
        """Store the evaluation; False when the rule was changed, deleted or claimed again meanwhile."""
        changes: dict[str, Any] = {"last_value": value}
        if decision == FIRE:
            changes.update(state="firing", last_fired_at=at)
        elif decision == RESOLVE:
            changes["state"] = "ok"
        unchanged = (
            (AlertRule.id == rule.id)
            & (AlertRule.enabled == True)  # noqa: E712 - peewee expression
            & (AlertRule.updated_at == rule.updated_at)
            & (AlertRule.next_evaluation_at == rule.next_evaluation_at)
        )
        with write_transaction():
            if not AlertRule.update(**changes).where(unchanged).execute():
                return False  # a change scheduled its own evaluation; a later claim reads afresh
            if decision == FIRE:
                assert value is not None  # only a value can hold
                alert_id = _fire(rule, at, value, users, hook_ids)
            elif decision == RESOLVE:
                _close_open_alert(rule.id, at, value)
        if decision == FIRE:  # once committed
            _log_fired(rule, alert_id, value)
        return True

    def start(self) -> None:
        self._threads.start()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the thread after the evaluation it is in; idempotent."""
        self._threads.close(timeout)


def _fire(rule: AlertRule, at: int, value: float, users: list[str], hook_ids: list[str]) -> str:
    """The alert event, its live event and webhook deliveries; call inside write_transaction(). The alert's id."""
    team_id = rule.scope_value if rule.scope_type == "team" else None
    event = AlertEvent.create(
        id=str(uuid.uuid4()),
        organization=rule.organization_id,
        rule_id=rule.id,
        rule_name=rule.name,
        severity=rule.severity,
        metric=rule.metric,
        scope_type=rule.scope_type,
        scope_value=rule.scope_value,
        team_id=team_id,
        state="firing",
        metric_value=value,
        threshold=rule.threshold,
        affected_users=json.dumps(users),
        fired_at=at,
    )
    stamp = iso(at)
    message = {
        "alert_id": event.id,
        "rule_id": rule.id,
        "rule_name": rule.name,
        "severity": rule.severity,
        "metric": rule.metric,
        "comparison": rule.comparison,
        "metric_value": value,
        "threshold": rule.threshold,
        "affected_users": users,
        "timestamp": stamp,
    }
    live.record(rule.organization_id, live.ALERT_TRIGGERED, message, team_id=team_id, now=at)
    if hook_ids:
        alert = {
            "id": event.id,
            "name": rule.name,
            "severity": rule.severity,
            "metric_value": value,
            "threshold": rule.threshold,
        }
        payload = {
            "event": "alert.triggered",
            "organization_id": rule.organization_id,
            "alert": alert,
            "timestamp": stamp,
        }
        enqueue(hook_ids, "alert.triggered", payload, at)
    return str(event.id)


def _log_fired(rule: AlertRule, alert_id: str, value: float | None) -> None:
    """A fired alert at WARNING: rule, organization, and the measured value against the threshold."""
    fields = {
        "event": "alert_fired",
        "alert_id": alert_id,
        "rule_id": rule.id,
        "organization_id": rule.organization_id,
        "metric": rule.metric,
        "severity": rule.severity,
        "value": value,
        "comparison": rule.comparison,
        "threshold": rule.threshold,
    }
    log.warning(
        "alert %s fired: rule %s of organization %s: %s %s %s %s",
        *(alert_id, rule.id, rule.organization_id, rule.metric, value, rule.comparison, rule.threshold),
        extra=fields,
    )
