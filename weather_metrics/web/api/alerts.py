"""/api/alerts: alert rules (list, read, create, update, delete) and the history of their alerts.

Admins see and change every rule of the organization; managers only rules scoped to one
of their teams, and only those teams' alerts.
"""

from __future__ import annotations

import time
from typing import Any

from flask import jsonify, request
from flask.typing import ResponseReturnValue

from weather_metrics.alerts import rules as alerts
from weather_metrics.query.org_metrics import pagination
from weather_metrics.web.api.alert_schemas import (
    AlertQuerySchema,
    AlertSchema,
    AlertsSchema,
    RuleCreateSchema,
    RuleSchema,
    RuleScopeSchema,
    RulesSchema,
    RuleUpdateSchema,
    ScopeViewSchema,
)
from weather_metrics.web.api.blueprint import bp
from weather_metrics.web.auth import authenticated, current_user
from weather_metrics.web.bodies import json_body, load
from weather_metrics.web.openapi import RATE_LIMITED, TOO_LARGE, UNAUTHORIZED, operation, path_id, without

ROLES = ("admin", "manager")


def _now() -> int:
    return int(time.time())


@bp.get("/alerts/rules")
@authenticated(*ROLES)
def list_rules() -> ResponseReturnValue:
    """Alert rules the caller may see."""
    return jsonify({"rules": [alerts.rule_view(r) for r in alerts.list_rules(current_user())]})


@bp.post("/alerts/rules")
@authenticated(*ROLES)
def create_rule() -> ResponseReturnValue:
    """Create a rule, due for evaluation at once (managers: scoped to one of their teams)."""
    rule = alerts.create_rule(current_user(), json_body(RuleCreateSchema()), _now())
    return jsonify(alerts.rule_view(rule)), 201


@bp.get("/alerts/rules/<rule_id>")
@authenticated(*ROLES)
def get_rule(rule_id: str) -> ResponseReturnValue:
    """One rule, with its state and last value."""
    return jsonify(alerts.rule_view(alerts.find_rule(current_user(), rule_id)))


@bp.put("/alerts/rules/<rule_id>")
@authenticated(*ROLES)
def update_rule(rule_id: str) -> ResponseReturnValue:
    """Change some of a rule's fields."""
    changes = json_body(RuleUpdateSchema())
    return jsonify(alerts.rule_view(alerts.update_rule(current_user(), rule_id, changes, _now())))


@bp.delete("/alerts/rules/<rule_id>")
@authenticated(*ROLES)
def delete_rule(rule_id: str) -> ResponseReturnValue:
    """Delete a rule; its alerts stay in the history."""
    alerts.delete_rule(current_user(), rule_id, _now())
    return "", 204


@bp.get("/alerts")
@authenticated(*ROLES)
def list_alerts() -> ResponseReturnValue:
    """Alert history, newest first."""
    query = load(AlertQuerySchema(), request.args.to_dict())
    events, total = alerts.list_events(current_user(), query, query["page"], query["limit"])
    return jsonify(
        {
            "alerts": [alerts.event_view(e) for e in events],
            "pagination": pagination(query["page"], query["limit"], total),
        }
    )


# OpenAPI, merged into /openapi.json by web/docs.py.
TAG = "Alerts"
_ERRORS = {
    "400": "Validation failed: details names fields by path, such as scope.id",
    "403": "Developers; managers for a scope other than one of their teams",
    "404": "Not found, or not visible to you",
    **UNAUTHORIZED,
    **RATE_LIMITED,
}
_NO_BODY = without(_ERRORS, "400")


def _op(summary: str, ok: str, answer: str | None, errors: dict[str, str], **extra: Any) -> dict[str, Any]:
    return operation(summary, TAG, ok, answer, errors, **extra)


PATHS: dict[str, dict[str, Any]] = {
    "/api/alerts/rules": {
        "get": _op(
            "Alert rules (admin: all; manager: those of your teams)",
            "200 The rules, by name",
            "AlertRules",
            without(_ERRORS, "400", "404"),
        ),
        "post": _op(
            "Create an alert rule, due for evaluation at once (manager: scoped to one of your teams)",
            "201 The new rule",
            "AlertRule",
            {**_ERRORS, **TOO_LARGE},
            body="AlertRuleCreate",
        ),
    },
    "/api/alerts/rules/{rule_id}": {
        "get": _op(
            "One alert rule with its state, last value and next evaluation", "200 The rule", "AlertRule", _NO_BODY
        ),
        "put": _op(
            "Change some of a rule's fields; a changed condition or disabling resolves its open alert",
            "200 The changed rule",
            "AlertRule",
            {**_ERRORS, **TOO_LARGE},
            body="AlertRuleUpdate",
        ),
        "delete": _op("Delete an alert rule; its alerts stay in the history", "204 Deleted", None, _NO_BODY),
        "parameters": [path_id("rule_id", "alert rule")],
    },
    "/api/alerts": {
        "get": _op(
            "Alert history, newest first (manager: alerts of your teams' rules)",
            "200 A page of alerts",
            "Alerts",
            without(_ERRORS, "404"),
            parameters=[{"in": "query", "schema": AlertQuerySchema}],
        ),
    },
}


COMPONENTS: dict[str, Any] = {  # nested schemas first, so the others refer to them by name
    "AlertRuleScope": RuleScopeSchema,
    "AlertRuleCreate": RuleCreateSchema,
    "AlertRuleUpdate": RuleUpdateSchema,
    "AlertScope": ScopeViewSchema,
    "AlertRule": RuleSchema,
    "AlertRules": RulesSchema,
    "Alert": AlertSchema,
    "Alerts": AlertsSchema,
}
