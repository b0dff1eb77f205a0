"""Alerts: the evaluator's state machine and metrics on a real SQLite file, and /api/alerts.

Evaluations run at an injected time AT in the future, with rows placed around it, and the
app's own background loops are stopped: what a test steps is all that happens.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask

from tests.support import Member, assert_api_error, rule_body, scraped
from weather_metrics.accounts import organizations as accounts
from weather_metrics.alerts import rules as alerts
from weather_metrics.alerts.evaluator import FIRE, AlertEvaluator
from weather_metrics.store.agents import AGENTS, agent_row
from weather_metrics.store.batches import PendingBatch, write_batches
from weather_metrics.store.db import database
from weather_metrics.store.models import AlertEvent, AlertRule
from weather_metrics.store.productivity import PRODUCTIVITY, productivity_row
from weather_metrics.web.api.alert_schemas import RuleCreateSchema
from weather_metrics.webhooks import deliveries as webhooks

AT = int(datetime(2031, 3, 4, 10, 30, tzinfo=UTC).timestamp())
INTERVAL = 60
LIVE_FIELDS = {
    "alert_id",
    "rule_id",
    "rule_name",
    "severity",
    "metric",
    "comparison",
    "metric_value",
    "threshold",
    "affected_users",
    "timestamp",
}


# -- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture
def quiet(app: Flask) -> Flask:
    """The app with its background evaluators and webhook deliverers stopped."""
    state = app.extensions["weather_metrics"]
    for part in vars(state).values():
        if isinstance(part, (AlertEvaluator, webhooks.WebhookDeliverer)):
            part.close()
    return app


@pytest.fixture
def app(service: Any) -> Flask:
    """Each test on its own copy of the run's seeded database: Acme (`acme`) and Globex (`other`)."""
    return service()  # type: ignore[no-any-return]


@pytest.fixture
def other(globex: dict[str, Member]) -> dict[str, Member]:
    """The other organization's members."""
    return globex


@pytest.fixture
def teams(quiet: Flask, acme: dict[str, Member]) -> dict[str, str]:
    """Core has the manager and the developer; Ops has nobody."""
    org_id = acme["admin"].user.organization_id
    with quiet.app_context():
        core = accounts.create_team(org_id, "Core", "")
        ops = accounts.create_team(org_id, "Ops", "")
        accounts.add_member(core, acme["manager"].user, "lead")
        accounts.add_member(core, acme["developer"].user, "member")
    return {"core": core.id, "ops": ops.id}


def evaluator() -> AlertEvaluator:
    return AlertEvaluator({"alert_evaluation_seconds": INTERVAL}, webhooks.Subscribers())


def step(app: Flask, ev: AlertEvaluator, at: int) -> bool:
    with app.app_context():
        return ev.run_once(datetime.fromtimestamp(at, UTC))


def step_all(app: Flask, ev: AlertEvaluator, at: int) -> int:
    count = 0
    while step(app, ev, at):
        count += 1
    return count


def make_rule(app: Flask, member: Member, now: int = AT, **changes: Any) -> str:
    """A rule created through the domain at `now` (so it is due at AT, not at the wall clock's now)."""
    with app.app_context():
        return str(alerts.create_rule(member.user, RuleCreateSchema().load(rule_body(**changes)), now).id)


def stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def executions(app: Flask, org_id: str, rows: list[tuple[float, str | None, str, str, float, bool]]) -> None:
    """Store (at, user_id, agent_name, command, duration_ms, success) executions."""
    items = [
        agent_row(
            org_id,
            "batch-" + uuid.uuid4().hex,
            AT,
            {"agent_name": agent, "command": command, "execution_time_ms": ms, "success": ok, "timestamp": stamp(at)},
            user,
        )
        for at, user, agent, command, ms, ok in rows
    ]
    with app.app_context():
        write_batches([PendingBatch(rows=items, response={}, kind=AGENTS)])


def productivity(app: Flask, org_id: str, rows: list[tuple[float, str, float, str | None, str | None]]) -> None:
    """Store (at, metric_type, value, user_id, team_id) productivity metrics."""
    items = [
        productivity_row(
            org_id,
            "batch-" + uuid.uuid4().hex,
            AT,
            {"timestamp": stamp(at), "type": kind, "value": value, "user_id": user, "team_id": team},
        )
        for at, kind, value, user, team in rows
    ]
    with app.app_context():
        write_batches([PendingBatch(rows=items, response={}, kind=PRODUCTIVITY)])


def rule_row(app: Flask, rule_id: str) -> AlertRule:
    with app.app_context():
        return AlertRule.get_by_id(rule_id)


def events_of(app: Flask, rule_id: str) -> list[AlertEvent]:
    with app.app_context():
        return list(AlertEvent.select().where(AlertEvent.rule_id == rule_id).order_by(AlertEvent.fired_at))


def live_rows(app: Flask) -> list[tuple[str, str | None, str | None, dict[str, Any]]]:
    """(organization_id, type, team_id, payload) of every live event, oldest first."""
    with app.app_context():
        rows = database.execute_sql("SELECT organization_id, type, team_id, payload FROM live_events ORDER BY id")
        return [(org, kind, team, json.loads(payload)) for org, kind, team, payload in rows]


def delivery_rows(app: Flask) -> list[tuple[str, str, dict[str, Any]]]:
    """(webhook_id, event, payload) of every webhook delivery."""
    with app.app_context():
        rows = database.execute_sql("SELECT webhook_id, event, payload FROM webhook_deliveries ORDER BY created_at, id")
        return [(hook, event, json.loads(payload)) for hook, event, payload in rows]


def hook(app: Flask, org_id: str, events: list[str]) -> str:
    state = app.extensions["weather_metrics"]
    body = {"hook_url": "https://hooks.example.com/in", "events": events, "secret": "s" * 20}
    with app.app_context():
        return str(webhooks.register(org_id, body, state.webhooks.box, datetime.now(UTC)).id)


def org_of(people: dict[str, Member]) -> str:
    return str(people["admin"].user.organization_id)


def ids(*members: Member) -> list[str]:
    return sorted(m.user.id for m in members)


# -- the state machine -------------------------------------------------------------------------


def test_fires_once_stays_firing_without_duplicates_and_resolves(quiet, acme):
    org, dev, mgr = org_of(acme), acme["developer"].user.id, acme["manager"].user.id
    subscribed, elsewhere = hook(quiet, org, ["alert.triggered"]), hook(quiet, org, ["metrics.collected"])
    rule_id = make_rule(quiet, acme["admin"], name="Too many errors", severity="critical")
    executions(
        quiet,
        org,
        [(AT - 60, dev, "a", "c", 10, False), (AT - 50, mgr, "a", "c", 10, False), (AT - 40, dev, "a", "c", 10, False)]
        + [(AT - 30, dev, "a", "c", 10, True)],
    )
    ev = evaluator()

    assert step(quiet, ev, AT) and not step(quiet, ev, AT)  # one rule, evaluated once per interval
    rule = rule_row(quiet, rule_id)
    assert (rule.state, rule.last_value, rule.last_fired_at) == ("firing", 75.0, AT)
    assert rule.next_evaluation_at == AT + INTERVAL
    (event,) = events_of(quiet, rule_id)
    assert (event.state, event.metric_value, event.threshold, event.fired_at) == ("firing", 75.0, 50.0, AT)
    assert (event.rule_name, event.severity, event.team_id) == ("Too many errors", "critical", None)
    assert json.loads(event.affected_users) == ids(acme["developer"], acme["manager"])

    (live,) = live_rows(quiet)
    assert live[:3] == (org, "alert_triggered", None)
    assert set(live[3]) == LIVE_FIELDS
    assert live[3]["alert_id"] == event.id and live[3]["rule_id"] == rule_id
    assert live[3]["metric_value"] == 75.0 and live[3]["threshold"] == 50.0 and live[3]["metric"] == "error_rate"
    assert live[3]["affected_users"] == ids(acme["developer"], acme["manager"])
    assert live[3]["timestamp"].endswith("Z") and datetime.fromisoformat(live[3]["timestamp"]).timestamp() == AT
    (delivery,) = delivery_rows(quiet)
    assert delivery[0] == subscribed != elsewhere and delivery[1] == "alert.triggered"
    assert delivery[2] == {
        "event": "alert.triggered",
        "organization_id": org,
        "alert": {
            "id": event.id,
            "name": "Too many errors",
            "severity": "critical",
            "metric_value": 75.0,
            "threshold": 50.0,
        },
        "timestamp": live[3]["timestamp"],
    }

    assert not step(quiet, ev, AT + INTERVAL - 1)  # not due before its interval
    executions(quiet, org, [(AT + 10, dev, "a", "c", 10, False)])
    assert step(quiet, ev, AT + INTERVAL)  # still true: no second event, message or delivery
    assert rule_row(quiet, rule_id).last_value == 80.0
    assert len(events_of(quiet, rule_id)) == 1 and len(live_rows(quiet)) == 1 and len(delivery_rows(quiet)) == 1

    executions(quiet, org, [(AT + 100, dev, "a", "c", 10, True)] * 15)  # 4 failures of 20
    assert step(quiet, ev, AT + 2 * INTERVAL)
    rule = rule_row(quiet, rule_id)
    assert (rule.state, rule.last_value) == ("ok", 20.0)
    (event,) = events_of(quiet, rule_id)
    assert (event.state, event.resolved_at, event.resolved_value) == ("resolved", AT + 2 * INTERVAL, 20.0)
    assert len(live_rows(quiet)) == 1 and len(delivery_rows(quiet)) == 1  # a resolution is not announced


def test_a_fired_alert_is_logged_once_with_its_rule_organization_value_and_threshold(quiet, acme, caplog):
    org = org_of(acme)
    rule_id = make_rule(quiet, acme["admin"])
    executions(quiet, org, [(AT - 60, None, "a", "c", 10, False)] * 3 + [(AT - 30, None, "a", "c", 10, True)])
    ev = evaluator()
    with caplog.at_level(logging.INFO, logger="weather_metrics.alerts.evaluator"):
        assert step(quiet, ev, AT)
        assert step(quiet, ev, AT + INTERVAL)  # still firing: not fired again
    (record,) = [r for r in caplog.records if r.name == "weather_metrics.alerts.evaluator"]
    (event,) = events_of(quiet, rule_id)
    assert record.levelno == logging.WARNING and record.event == "alert_fired"
    assert (record.alert_id, record.rule_id, record.organization_id) == (event.id, rule_id, org)
    assert (record.metric, record.value, record.comparison, record.threshold) == ("error_rate", 75.0, "gt", 50.0)
    assert (
        record.getMessage() == f"alert {event.id} fired: rule {rule_id} of organization {org}: error_rate 75.0 gt 50.0"
    )


def test_a_window_without_executions_has_no_value_and_resolves_a_firing_alert(quiet, acme):
    org = org_of(acme)
    reliable = make_rule(quiet, acme["admin"], comparison="lt", threshold=10, window_minutes=1)
    slow = make_rule(quiet, acme["admin"], metric="p95_latency_ms", threshold=100, window_minutes=1)
    executions(quiet, org, [(AT - 30, None, "a", "c", 500, True)])
    ev = evaluator()
    assert step_all(quiet, ev, AT) == 2
    assert (rule_row(quiet, reliable).state, rule_row(quiet, reliable).last_value) == ("firing", 0.0)
    assert (rule_row(quiet, slow).state, rule_row(quiet, slow).last_value) == ("firing", 500.0)
    assert step_all(quiet, ev, AT + 120) == 2  # the one-minute window is empty now: no value
    for rule_id in (reliable, slow):
        rule = rule_row(quiet, rule_id)
        assert (rule.state, rule.last_value) == ("ok", None), rule_id
        (event,) = events_of(quiet, rule_id)
        assert (event.state, event.resolved_at, event.resolved_value) == ("resolved", AT + 120, None)


def test_an_error_rate_of_no_executions_never_fires(quiet, acme):
    rule_id = make_rule(quiet, acme["admin"], comparison="lte", threshold=100)
    assert step(quiet, evaluator(), AT)
    rule = rule_row(quiet, rule_id)
    assert (rule.state, rule.last_value) == ("ok", None) and events_of(quiet, rule_id) == []


def test_cooldown_holds_back_a_second_firing_until_it_has_passed(quiet, acme):
    org = org_of(acme)
    rule_id = make_rule(quiet, acme["admin"], metric="call_volume", threshold=0, window_minutes=1, cooldown_minutes=10)
    ev = evaluator()
    executions(quiet, org, [(AT - 10, None, "a", "c", 1, True)])
    assert step(quiet, ev, AT) and rule_row(quiet, rule_id).state == "firing"
    assert step(quiet, ev, AT + 60) and rule_row(quiet, rule_id).state == "ok"  # empty window: resolved

    executions(quiet, org, [(AT + 100, None, "a", "c", 1, True), (AT + 590, None, "a", "c", 1, True)])
    assert step(quiet, ev, AT + 120)  # true again, 2 minutes after firing
    assert (rule_row(quiet, rule_id).state, rule_row(quiet, rule_id).last_value) == ("ok", 1.0)
    assert step(quiet, ev, AT + 599)  # still a second short of the cooldown
    assert rule_row(quiet, rule_id).state == "ok" and len(events_of(quiet, rule_id)) == 1
    assert len(live_rows(quiet)) == 1

    with quiet.app_context():  # due again a second later, when the ten minutes have passed
        AlertRule.update(next_evaluation_at=AT + 600).where(AlertRule.id == rule_id).execute()
    assert step(quiet, ev, AT + 600)
    rule = rule_row(quiet, rule_id)
    assert (rule.state, rule.last_fired_at) == ("firing", AT + 600)
    assert [e.state for e in events_of(quiet, rule_id)] == ["resolved", "firing"]
    assert len(live_rows(quiet)) == 2


def test_metrics_count_every_evaluation_and_the_alerts_fired_by_severity(quiet, acme):
    client = quiet.test_client()

    def counted() -> dict[str, float]:
        fired = {s: scraped(client, "weather_metrics_alerts_fired_total", {"severity": s}) for s in alerts.SEVERITIES}
        return {"evaluations": scraped(client, "weather_metrics_alert_evaluations_total"), **fired}

    make_rule(quiet, acme["admin"], metric="call_volume", threshold=0, window_minutes=1, severity="low")
    make_rule(quiet, acme["admin"], metric="call_volume", threshold=5, window_minutes=1, severity="critical")
    executions(quiet, org_of(acme), [(AT - 10, None, "a", "c", 1, True)])
    ev, before = evaluator(), counted()
    assert step_all(quiet, ev, AT) == 2  # the low one fires, the critical one holds
    assert step_all(quiet, ev, AT + INTERVAL) == 2  # an empty window: resolved, nothing fires
    after = counted()
    assert {name: after[name] - before[name] for name in before} == {
        "evaluations": 4,
        "low": 1,
        "medium": 0,
        "high": 0,
        "critical": 0,
    }


def test_comparisons_are_strict_or_inclusive(quiet, acme):
    org = org_of(acme)
    executions(quiet, org, [(AT - 10, None, "a", "c", 1, True)] * 4)
    fired = {}
    for comparison in alerts.COMPARISONS:
        fired[comparison] = make_rule(quiet, acme["admin"], metric="call_volume", comparison=comparison, threshold=4)
    step_all(quiet, evaluator(), AT)
    states = {comparison: rule_row(quiet, rule_id).state for comparison, rule_id in fired.items()}
    assert states == {"gt": "ok", "gte": "firing", "lt": "ok", "lte": "firing"}


# -- what each metric and scope measures -------------------------------------------------------


@pytest.fixture
def measured(quiet, acme, other, teams):
    """Executions and productivity rows in and around a ten-minute window ending at AT."""
    org = org_of(acme)
    adm, mgr, dev = (acme[r].user.id for r in ("admin", "manager", "developer"))
    executions(
        quiet,
        org,
        [
            (AT - 500, dev, "reviewer", "review", 100, True),
            (AT - 400, dev, "reviewer", "review", 300, False),
            (AT - 300, dev, "planner", "review", 250, True),
            (AT - 200, mgr, "planner", "lint", 200, False),
            (AT - 100, adm, "planner", "review", 400, True),
            (AT, None, "reviewer", "plan", 50, True),  # the window's end is inside it
            (AT - 600, dev, "reviewer", "review", 9000, False),  # its start is not
            (AT + 1, mgr, "reviewer", "review", 9000, False),  # after the evaluation
            (AT - 4000, adm, "reviewer", "review", 9000, False),  # an hour earlier
        ],
    )
    executions(quiet, org_of(other), [(AT - 10, None, "reviewer", "review", 9000, False)] * 3)
    productivity(
        quiet,
        org,
        [
            (AT - 100, "commits", 3, dev, None),
            (AT - 100, "commits", 4, mgr, None),
            (AT - 100, "commits", 5, adm, teams["core"]),  # tagged with Core, though not a member
            (AT - 100, "commits", 7, adm, None),
            (AT - 100, "reviews", 100, dev, None),
            (AT - 900, "commits", 50, dev, None),
        ],
    )
    productivity(quiet, org_of(other), [(AT - 10, "commits", 1000, None, None)])
    return teams


CASES = [
    # metric, scope, expected value
    ("error_rate", {"type": "organization"}, 100 * 2 / 6),
    ("p95_latency_ms", {"type": "organization"}, 400.0),  # nearest rank: ceil(0.95 * 6) = 6th of 6
    ("call_volume", {"type": "organization"}, 6.0),
    ("productivity", {"type": "organization"}, 19.0),
    ("error_rate", {"type": "team", "id": "core"}, 50.0),
    ("p95_latency_ms", {"type": "team", "id": "core"}, 300.0),
    ("call_volume", {"type": "team", "id": "core"}, 4.0),
    ("productivity", {"type": "team", "id": "core"}, 12.0),  # members' rows and rows tagged Core
    ("call_volume", {"type": "team", "id": "ops"}, 0.0),
    ("productivity", {"type": "team", "id": "ops"}, 0.0),
    ("error_rate", {"type": "team", "id": "ops"}, None),
    ("call_volume", {"type": "agent", "name": "reviewer"}, 3.0),
    ("p95_latency_ms", {"type": "agent", "name": "reviewer"}, 300.0),
    ("error_rate", {"type": "agent", "name": "planner"}, 100 / 3),
    ("call_volume", {"type": "tool", "name": "review"}, 4.0),
    ("error_rate", {"type": "tool", "name": "review"}, 25.0),
    ("p95_latency_ms", {"type": "tool", "name": "lint"}, 200.0),
    ("call_volume", {"type": "agent", "name": "nobody"}, 0.0),
]


def test_each_metric_and_scope_reads_the_right_rows(quiet, acme, measured):
    made = {}
    for metric, scope, expected in CASES:
        if scope["type"] == "team":
            scope = {"type": "team", "id": measured[scope["id"]]}
        extra = {"metric_type": "commits"} if metric == "productivity" else {}
        rule_id = make_rule(quiet, acme["admin"], metric=metric, scope=scope, comparison="lt", threshold=0, **extra)
        made[rule_id] = (metric, scope, expected)
    assert step_all(quiet, evaluator(), AT) == len(CASES)
    for rule_id, (metric, scope, expected) in made.items():
        value = rule_row(quiet, rule_id).last_value
        assert value == (None if expected is None else pytest.approx(expected)), (metric, scope, value)


@pytest.mark.parametrize(
    ("metric", "threshold", "who"),
    [
        ("error_rate", 0, ("developer", "manager")),  # users with a failure
        ("p95_latency_ms", 240, ("developer", "admin")),  # users with an execution slower than 240 ms
        ("call_volume", 0, ("admin", "developer", "manager")),  # every contributing user
        ("productivity", 0, ("admin", "developer", "manager")),
    ],
)
def test_affected_users_are_those_behind_the_value(quiet, acme, measured, metric, threshold, who):
    extra = {"metric_type": "commits"} if metric == "productivity" else {}
    rule_id = make_rule(quiet, acme["admin"], metric=metric, threshold=threshold, **extra)
    assert step(quiet, evaluator(), AT)
    (event,) = events_of(quiet, rule_id)
    assert json.loads(event.affected_users) == ids(*(acme[role] for role in who))


def test_a_team_alert_is_addressed_to_the_team(quiet, acme, teams):
    org = org_of(acme)
    rule_id = make_rule(
        quiet, acme["manager"], metric="call_volume", scope={"type": "team", "id": teams["core"]}, threshold=0
    )
    executions(quiet, org, [(AT - 5, acme["developer"].user.id, "a", "c", 1, True)])
    assert step(quiet, evaluator(), AT)
    (event,) = events_of(quiet, rule_id)
    assert event.team_id == teams["core"]
    (live,) = live_rows(quiet)
    assert live[:3] == (org, "alert_triggered", teams["core"])


# -- several evaluators ------------------------------------------------------------------------


def test_two_evaluators_evaluate_a_due_rule_once(quiet, acme):
    rule_id = make_rule(quiet, acme["admin"], metric="call_volume", comparison="gte", threshold=0)
    first, second = evaluator(), evaluator()
    assert step(quiet, first, AT)
    assert not step(quiet, second, AT)
    assert len(events_of(quiet, rule_id)) == 1 and len(live_rows(quiet)) == 1


def test_evaluators_on_threads_share_due_rules_without_evaluating_one_twice(quiet, acme):
    rule_ids = [
        make_rule(quiet, acme["admin"], name=f"r{i}", metric="call_volume", comparison="gte", threshold=0)
        for i in range(30)
    ]
    barrier = threading.Barrier(3)
    counts: list[int] = []

    def work() -> None:
        ev = evaluator()
        barrier.wait()
        counts.append(step_all(quiet, ev, AT))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(counts) == len(rule_ids), counts
    assert all(len(events_of(quiet, rule_id)) == 1 for rule_id in rule_ids)
    assert len(live_rows(quiet)) == len(rule_ids)


@pytest.mark.parametrize("changes", [{"threshold": 5.0}, {"enabled": False}, {"name": "Renamed"}])
def test_an_evaluation_that_overlaps_an_edit_is_dropped(quiet, acme, changes):
    rule_id = make_rule(quiet, acme["admin"], metric="call_volume", comparison="gte", threshold=0)
    ev = evaluator()
    with quiet.app_context():
        claimed = ev._claim(AT)  # read with the old fields...
        edited = alerts.update_rule(acme["admin"].user, rule_id, changes, AT + 1)
        ev._record(claimed, AT, 0.0, FIRE, [], [])  # ...so its result is not stored
    rule = rule_row(quiet, rule_id)
    assert (rule.state, rule.last_value, rule.enabled, rule.name) == ("ok", None, edited.enabled, edited.name)
    assert events_of(quiet, rule_id) == [] and live_rows(quiet) == []


def test_the_thread_evaluates_due_rules_until_closed(quiet, acme):
    rule_id = make_rule(quiet, acme["admin"], metric="call_volume", comparison="gte", threshold=0)
    ev = AlertEvaluator({"alert_evaluation_seconds": INTERVAL}, webhooks.Subscribers(), clock=lambda: AT)
    ev.start()
    try:
        deadline = time.monotonic() + 10
        while rule_row(quiet, rule_id).state != "firing":
            assert time.monotonic() < deadline, "the evaluator thread did not fire the rule"
            time.sleep(0.05)
    finally:
        ev.close()
        ev.close()  # idempotent
    assert len(events_of(quiet, rule_id)) == 1


# -- rule changes and the open alert -----------------------------------------------------------


def _firing(app: Flask, acme: dict[str, Member], **changes: Any) -> str:
    rule_id = make_rule(app, acme["admin"], metric="call_volume", threshold=0, **changes)
    executions(app, org_of(acme), [(AT - 5, None, "a", "c", 1, True)])
    assert step(app, evaluator(), AT) and rule_row(app, rule_id).state == "firing"
    return rule_id


@pytest.mark.parametrize(
    "changes",
    [{"threshold": 3.0}, {"window_minutes": 5}, {"comparison": "gte"}, {"scope": {"type": "agent", "name": "a"}}],
)
def test_changing_the_condition_resolves_the_open_alert_and_evaluates_again(quiet, acme, changes):
    rule_id = _firing(quiet, acme)
    with quiet.app_context():
        alerts.update_rule(acme["admin"].user, rule_id, changes, AT + 10)
    rule = rule_row(quiet, rule_id)
    assert (rule.state, rule.last_value, rule.next_evaluation_at) == ("ok", None, AT + 10)
    assert rule.last_fired_at == AT  # the cooldown still counts from the last firing
    (event,) = events_of(quiet, rule_id)
    assert (event.state, event.resolved_at, event.resolved_value) == ("resolved", AT + 10, None)


def test_renaming_a_firing_rule_keeps_its_alert_open(quiet, acme):
    rule_id = _firing(quiet, acme)
    with quiet.app_context():
        alerts.update_rule(acme["admin"].user, rule_id, {"name": "Renamed", "severity": "low"}, AT + 10)
    assert rule_row(quiet, rule_id).state == "firing"
    assert [e.state for e in events_of(quiet, rule_id)] == ["firing"]


def test_disabling_resolves_and_stops_evaluation_enabling_resumes_it(quiet, acme):
    rule_id = _firing(quiet, acme)
    ev = evaluator()
    with quiet.app_context():
        alerts.update_rule(acme["admin"].user, rule_id, {"enabled": False}, AT + 10)
    assert rule_row(quiet, rule_id).state == "ok"
    assert [e.state for e in events_of(quiet, rule_id)] == ["resolved"]
    assert not step(quiet, ev, AT + 10_000)
    with quiet.app_context():
        alerts.update_rule(acme["admin"].user, rule_id, {"enabled": True}, AT + 20)
    assert rule_row(quiet, rule_id).next_evaluation_at == AT + 20
    assert step(quiet, ev, AT + 20) and rule_row(quiet, rule_id).state == "firing"


def test_deleting_a_rule_resolves_its_alert_and_keeps_the_history(quiet, acme):
    rule_id = _firing(quiet, acme)
    with quiet.app_context():
        alerts.delete_rule(acme["admin"].user, rule_id, AT + 10)
        assert AlertRule.get_or_none(AlertRule.id == rule_id) is None
    (event,) = events_of(quiet, rule_id)
    assert (event.state, event.resolved_at) == ("resolved", AT + 10)
    history = quiet.test_client().get("/api/alerts", headers=acme["admin"].headers).get_json()
    assert [a["rule_id"] for a in history["alerts"]] == [rule_id]


# -- /api/alerts/rules -------------------------------------------------------------------------


def test_rule_crud_round_trip(quiet, acme, teams):
    client, admin = quiet.test_client(), acme["admin"]
    body = rule_body(name="Slow core", metric="p95_latency_ms", scope={"type": "team", "id": teams["core"]})
    response = client.post("/api/alerts/rules", json={**body, "threshold": 1500}, headers=admin.headers)
    assert response.status_code == 201, response.get_json()
    rule = response.get_json()
    assert rule["scope"] == {"type": "team", "id": teams["core"]} and rule["threshold"] == 1500
    assert (rule["state"], rule["last_value"], rule["last_fired_at"], rule["enabled"]) == ("ok", None, None, True)
    assert rule["metric_type"] is None and rule["created_by"] == admin.user.id
    due = datetime.fromisoformat(rule["next_evaluation_at"]).timestamp()
    assert abs(due - datetime.now(UTC).timestamp()) < 60  # due at once

    url = f"/api/alerts/rules/{rule['id']}"
    assert client.get(url, headers=admin.headers).get_json() == rule
    assert client.get("/api/alerts/rules", headers=admin.headers).get_json()["rules"] == [rule]

    changed = client.put(url, json={"severity": "critical", "enabled": False}, headers=admin.headers)
    assert changed.status_code == 200, changed.get_json()
    updated = changed.get_json()
    assert updated["severity"] == "critical" and updated["enabled"] is False and updated["next_evaluation_at"] is None
    assert updated["threshold"] == 1500 and updated["scope"] == rule["scope"]  # the rest stays

    assert client.delete(url, headers=admin.headers).status_code == 204
    assert_api_error(client.get(url, headers=admin.headers), 404)
    assert_api_error(client.put(url, json={"name": "x"}, headers=admin.headers), 404)
    assert_api_error(client.delete(url, headers=admin.headers), 404)


def test_each_scope_and_productivity_round_trip(quiet, acme):
    client, headers = quiet.test_client(), acme["admin"].headers
    for scope in ({"type": "organization"}, {"type": "agent", "name": "reviewer"}, {"type": "tool", "name": "git"}):
        response = client.post("/api/alerts/rules", json=rule_body(scope=scope), headers=headers)
        assert response.status_code == 201 and response.get_json()["scope"] == scope
    body = rule_body(metric="productivity", metric_type="commits", comparison="lt", threshold=-5)
    made = client.post("/api/alerts/rules", json=body, headers=headers).get_json()
    assert (made["metric"], made["metric_type"], made["threshold"]) == ("productivity", "commits", -5)
    # Leaving productivity drops the type; coming back needs one.
    url = f"/api/alerts/rules/{made['id']}"
    moved = client.put(url, json={"metric": "call_volume", "threshold": 3}, headers=headers).get_json()
    assert (moved["metric"], moved["metric_type"]) == ("call_volume", None)
    error = assert_api_error(client.put(url, json={"metric": "productivity"}, headers=headers), 400)
    assert "metric_type" in error["details"]


BAD_BODIES = [
    ({"name": None}, "name"),
    ({"metric": None}, "metric"),
    ({"scope": None}, "scope"),
    ({"comparison": None}, "comparison"),
    ({"threshold": None}, "threshold"),
    ({"window_minutes": None}, "window_minutes"),
    ({"severity": None}, "severity"),
    ({"cooldown_minutes": None}, "cooldown_minutes"),
    ({"colour": "red"}, "colour"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"name": 5}, "name"),
    ({"metric": "latency"}, "metric"),
    ({"comparison": "eq"}, "comparison"),
    ({"severity": "urgent"}, "severity"),
    ({"threshold": "5"}, "threshold"),
    ({"threshold": True}, "threshold"),
    ({"threshold": 1e13}, "threshold"),
    ({"threshold": 10**400}, "threshold"),
    ({"threshold": 101}, "threshold"),  # an error rate is a percentage
    ({"metric": "p95_latency_ms", "threshold": -1}, "threshold"),
    ({"window_minutes": 0}, "window_minutes"),
    ({"window_minutes": 1441}, "window_minutes"),
    ({"window_minutes": 1.5}, "window_minutes"),
    ({"window_minutes": "10"}, "window_minutes"),
    ({"cooldown_minutes": -1}, "cooldown_minutes"),
    ({"cooldown_minutes": 10081}, "cooldown_minutes"),
    ({"enabled": "yes"}, "enabled"),
    ({"scope": "organization"}, "scope"),
    ({"scope": {}}, "scope.type"),
    ({"scope": {"type": "galaxy"}}, "scope.type"),
    ({"scope": {"type": "team"}}, "scope.id"),
    ({"scope": {"type": "organization", "id": "x"}}, "scope.id"),
    ({"scope": {"type": "agent"}}, "scope.name"),
    ({"scope": {"type": "agent", "name": "x" * 129}}, "scope.name"),
    ({"scope": {"type": "tool", "id": "x"}}, "scope.id"),
    ({"scope": {"type": "tool", "name": "git", "colour": 1}}, "scope.colour"),
    ({"metric": "productivity"}, "metric_type"),
    ({"metric_type": "commits"}, "metric_type"),
    ({"metric": "productivity", "metric_type": "Not A Type"}, "metric_type"),
    ({"metric": "productivity", "metric_type": "commits", "scope": {"type": "agent", "name": "a"}}, "scope.type"),
]


@pytest.mark.parametrize(("change", "field"), BAD_BODIES)
def test_a_bad_rule_is_400_naming_the_field(quiet, acme, change, field):
    body = {k: v for k, v in rule_body(**change).items() if v is not None}
    response = quiet.test_client().post("/api/alerts/rules", json=body, headers=acme["admin"].headers)
    error = assert_api_error(response, 400)
    assert field in error["details"], error


@pytest.mark.parametrize("raw", [b"not json", b"[]", b"{", b'{"threshold": NaN}', b'{"threshold": 1e999}'])
def test_a_body_that_is_not_a_json_object_is_400(quiet, acme, raw):
    headers = {**acme["admin"].headers, "Content-Type": "application/json"}
    assert_api_error(quiet.test_client().post("/api/alerts/rules", data=raw, headers=headers), 400)


@pytest.mark.parametrize(("change", "field"), [({"threshold": "x"}, "threshold"), ({"id": "new"}, "id")])
def test_a_bad_update_is_400_and_changes_nothing(quiet, acme, change, field):
    rule_id = make_rule(quiet, acme["admin"])
    client = quiet.test_client()
    error = assert_api_error(
        client.put(f"/api/alerts/rules/{rule_id}", json=change, headers=acme["admin"].headers), 400
    )
    assert field in error["details"]
    assert client.get(f"/api/alerts/rules/{rule_id}", headers=acme["admin"].headers).get_json()["threshold"] == 50


def seed_team(app: Flask, people: dict[str, Member]) -> str:
    with app.app_context():
        return str(accounts.create_team(org_of(people), "Elsewhere", "").id)


def test_an_unknown_or_foreign_team_is_404(quiet, acme, other):
    foreign = seed_team(quiet, other)
    client = quiet.test_client()
    for team_id in ("no-such-team", foreign):
        body = rule_body(scope={"type": "team", "id": team_id})
        assert_api_error(client.post("/api/alerts/rules", json=body, headers=acme["admin"].headers), 404)


def test_a_rule_whose_team_was_deleted_can_still_be_changed_but_not_moved_there(quiet, acme):
    team_id = seed_team(quiet, acme)
    rule_id = make_rule(quiet, acme["admin"], scope=team(team_id))
    with quiet.app_context():
        accounts.delete_team(accounts.find_team(org_of(acme), team_id))
    client, url, headers = quiet.test_client(), f"/api/alerts/rules/{rule_id}", acme["admin"].headers
    assert client.put(url, json={"enabled": False}, headers=headers).get_json()["enabled"] is False
    assert_api_error(client.put(url, json={"scope": team(team_id)}, headers=headers), 404)
    assert step(quiet, evaluator(), AT) is False  # disabled


def test_rules_need_a_token_and_developers_are_refused(quiet, acme):
    rule_id = make_rule(quiet, acme["admin"])
    client, dev = quiet.test_client(), acme["developer"].headers
    assert_api_error(client.get("/api/alerts/rules"), 401)
    for method, url in [
        ("GET", "/api/alerts/rules"),
        ("POST", "/api/alerts/rules"),
        ("GET", f"/api/alerts/rules/{rule_id}"),
        ("PUT", f"/api/alerts/rules/{rule_id}"),
        ("DELETE", f"/api/alerts/rules/{rule_id}"),
        ("GET", "/api/alerts"),
    ]:
        assert_api_error(client.open(url, method=method, json=rule_body(), headers=dev), 403)


def test_managers_keep_rules_of_their_own_teams_only(quiet, acme, teams):
    client, mgr, admin = quiet.test_client(), acme["manager"].headers, acme["admin"].headers
    core = {"type": "team", "id": teams["core"]}
    response = client.post("/api/alerts/rules", json=rule_body(scope=core), headers=mgr)
    assert response.status_code == 201, response.get_json()
    own = response.get_json()["id"]
    for scope in ({"type": "team", "id": teams["ops"]}, {"type": "organization"}, {"type": "agent", "name": "a"}):
        assert_api_error(client.post("/api/alerts/rules", json=rule_body(scope=scope), headers=mgr), 403)
    admins = [
        make_rule(quiet, acme["admin"]),
        make_rule(quiet, acme["admin"], scope={"type": "team", "id": teams["ops"]}),
    ]

    assert [r["id"] for r in client.get("/api/alerts/rules", headers=mgr).get_json()["rules"]] == [own]
    assert len(client.get("/api/alerts/rules", headers=admin).get_json()["rules"]) == 3
    for rule_id in admins:  # invisible, so not found
        url = f"/api/alerts/rules/{rule_id}"
        assert_api_error(client.get(url, headers=mgr), 404)
        assert_api_error(client.put(url, json={"name": "mine now"}, headers=mgr), 404)
        assert_api_error(client.delete(url, headers=mgr), 404)
    url = f"/api/alerts/rules/{own}"
    assert_api_error(client.put(url, json={"scope": {"type": "team", "id": teams["ops"]}}, headers=mgr), 403)
    assert_api_error(client.put(url, json={"scope": {"type": "organization"}}, headers=mgr), 403)
    assert client.put(url, json={"threshold": 20}, headers=mgr).status_code == 200
    assert client.delete(url, headers=mgr).status_code == 204


def test_another_organizations_rules_are_404(quiet, acme, other):
    rule_id = make_rule(quiet, acme["admin"])
    client, outsider = quiet.test_client(), other["admin"].headers
    url = f"/api/alerts/rules/{rule_id}"
    assert_api_error(client.get(url, headers=outsider), 404)
    assert_api_error(client.put(url, json={"name": "x"}, headers=outsider), 404)
    assert_api_error(client.delete(url, headers=outsider), 404)
    assert client.get("/api/alerts/rules", headers=outsider).get_json()["rules"] == []
    assert client.get(url, headers=acme["admin"].headers).status_code == 200


def test_an_organization_has_at_most_max_rules(quiet, acme, monkeypatch):
    monkeypatch.setattr(alerts, "MAX_RULES", 2)
    client = quiet.test_client()
    for _ in range(2):
        assert client.post("/api/alerts/rules", json=rule_body(), headers=acme["admin"].headers).status_code == 201
    error = assert_api_error(client.post("/api/alerts/rules", json=rule_body(), headers=acme["admin"].headers), 400)
    assert "at most 2" in error["message"]


# -- /api/alerts -------------------------------------------------------------------------------


@pytest.fixture
def history(quiet, acme, other, teams) -> dict[str, str]:
    """Three alerts of Acme (org high, Core low, then Ops critical resolved) and one of Globex."""
    made = {
        "org": make_rule(quiet, acme["admin"], metric="call_volume", threshold=0, severity="high"),
        "core": make_rule(
            quiet, acme["manager"], metric="call_volume", threshold=0, severity="low", scope=team(teams["core"])
        ),
        "ops": make_rule(  # Ops has no members: 0 >= 0
            quiet,
            acme["admin"],
            metric="call_volume",
            comparison="gte",
            threshold=0,
            severity="critical",
            scope=team(teams["ops"]),
        ),
        "other": make_rule(quiet, other["admin"], metric="call_volume", threshold=0),
    }
    dev = acme["developer"].user.id
    executions(quiet, org_of(acme), [(AT - 5, dev, "a", "c", 1, True)])
    executions(quiet, org_of(other), [(AT - 5, None, "a", "c", 1, True)])
    ev, order = evaluator(), {"org": AT, "core": AT + 1, "ops": AT + 2, "other": AT + 3}
    with quiet.app_context():  # each fires a second after the one before
        for name, at in order.items():
            AlertRule.update(next_evaluation_at=at).where(AlertRule.id == made[name]).execute()
    for at in order.values():
        assert step(quiet, ev, at)
    with quiet.app_context():
        alerts.update_rule(acme["admin"].user, made["ops"], {"window_minutes": 5}, AT + 10)
    return made


def team(team_id: str) -> dict[str, str]:
    return {"type": "team", "id": team_id}


def listed(client: Any, member: Member, query: str = "") -> dict[str, Any]:
    response = client.get(f"/api/alerts{query}", headers=member.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def test_history_is_newest_first_with_filters_and_pages(quiet, acme, history):
    client, admin = quiet.test_client(), acme["admin"]
    page = listed(client, admin)
    assert [a["rule_id"] for a in page["alerts"]] == [history["ops"], history["core"], history["org"]]
    assert page["pagination"] == {"page": 1, "limit": 20, "total": 3, "pages": 1}
    newest = page["alerts"][0]
    assert newest["state"] == "resolved" and newest["resolved_value"] is None and newest["severity"] == "critical"
    assert newest["scope"]["type"] == "team" and newest["metric"] == "call_volume"
    assert newest["fired_at"].endswith("Z") and newest["resolved_at"].endswith("Z")
    oldest = page["alerts"][2]
    assert oldest["state"] == "firing" and oldest["resolved_at"] is None and oldest["metric_value"] == 1.0
    assert oldest["affected_users"] == [acme["developer"].user.id] and oldest["threshold"] == 0

    assert [a["rule_id"] for a in listed(client, admin, "?state=firing")["alerts"]] == [history["core"], history["org"]]
    assert [a["rule_id"] for a in listed(client, admin, "?severity=low")["alerts"]] == [history["core"]]
    assert [a["rule_id"] for a in listed(client, admin, f"?rule_id={history['org']}")["alerts"]] == [history["org"]]
    assert listed(client, admin, f"?rule_id={history['other']}")["alerts"] == []  # another organization's
    second = listed(client, admin, "?page=2&limit=2")
    assert [a["rule_id"] for a in second["alerts"]] == [history["org"]]
    assert second["pagination"] == {"page": 2, "limit": 2, "total": 3, "pages": 2}


def test_history_of_managers_is_their_teams_and_outsiders_see_their_own(quiet, acme, other, history):
    client = quiet.test_client()
    assert [a["rule_id"] for a in listed(client, acme["manager"])["alerts"]] == [history["core"]]
    with quiet.app_context():  # still theirs once the rule is gone
        alerts.delete_rule(acme["admin"].user, history["core"], AT + 20)
    assert [a["rule_id"] for a in listed(client, acme["manager"])["alerts"]] == [history["core"]]
    assert [a["rule_id"] for a in listed(client, other["admin"])["alerts"]] == [history["other"]]


@pytest.mark.parametrize("query", ["?state=open", "?severity=urgent", "?page=0", "?limit=101", "?limit=x", "?when=now"])
def test_a_bad_history_query_is_400(quiet, acme, query):
    assert_api_error(quiet.test_client().get(f"/api/alerts{query}", headers=acme["admin"].headers), 400)
