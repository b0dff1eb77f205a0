"""POST /api/metrics/agents and /api/metrics/productivity: ingestion by signed-in users."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask.typing import ResponseReturnValue

from weather_metrics.accounts.tokens import TokenError
from weather_metrics.web.api.blueprint import bp
from weather_metrics.web.api.ingest_schemas import ingest_operation
from weather_metrics.web.auth import authenticated, client_ip, current_user, signed_in
from weather_metrics.web.bodies import read_body
from weather_metrics.web.limits import limiter
from weather_metrics.web.openapi import BEARER
from weather_metrics.web.services import services


def organization_key() -> str:
    """Rate-limit key of ingestion: the caller's organization (the spec's per-organization limit)."""
    # authenticate, not just decode: a logged-out or revoked token must not spend its
    # organization's budget (the view then answers 401, counted against the caller's IP).
    try:
        user, _claims = signed_in()
    except TokenError:
        return "ip:" + client_ip()
    return "org:" + user.organization_id


# Ingestion has its own limit (setting metrics_ingest_rate_limit), instead of the per-user one.
ingest_limit = limiter.shared_limit(
    lambda: services().settings["metrics_ingest_rate_limit"],
    key_func=organization_key,
    scope="metrics-ingest",
)


def _accept(kind: str) -> ResponseReturnValue:
    """201 once the rows are committed; 202 when only queued (setting ack = "enqueue")."""
    state = services()
    raw = read_body(state.settings["metrics_max_body_bytes"])
    method = state.org_intake.agents if kind == "agents" else state.org_intake.productivity
    answer, committed = method(current_user(), raw, request.headers.get("Idempotency-Key"))
    return jsonify(answer), 201 if committed else 202


@bp.post("/metrics/agents")
@ingest_limit
@authenticated()
def ingest_agents() -> ResponseReturnValue:
    """Store agent executions: yours, or (managers, admins) your teams' or organization's members'."""
    return _accept("agents")


@bp.post("/metrics/productivity")
@ingest_limit
@authenticated()
def ingest_productivity() -> ResponseReturnValue:
    """Store productivity metrics for you, a user or team in your scope, or (admins) the organization."""
    return _accept("productivity")


# OpenAPI, merged into /openapi.json by web/docs.py (the GETs of these paths: metrics.py).
PATHS: dict[str, dict[str, Any]] = {
    "/api/metrics/agents": {
        "post": ingest_operation(
            "Store agent executions (yours; managers: your teams'; admins: anyone's in the organization)",
            "Metrics",
            "AgentExecution",
            BEARER,
        )
    },
    "/api/metrics/productivity": {
        "post": ingest_operation(
            "Store productivity metrics for you, a user or team in your scope, or (admins) the organization",
            "Metrics",
            "ProductivityMetric",
            BEARER,
        )
    },
}
