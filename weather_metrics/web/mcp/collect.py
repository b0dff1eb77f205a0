"""POST /mcp/metrics/collect: agent executions from MCP servers."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask.typing import ResponseReturnValue

from weather_metrics.web.api.ingest_schemas import ingest_operation
from weather_metrics.web.bodies import read_body
from weather_metrics.web.mcp.blueprint import api_key, bp, key_required
from weather_metrics.web.openapi import API_KEY
from weather_metrics.web.services import services


@bp.post("/metrics/collect")
@key_required
def collect() -> ResponseReturnValue:
    """Store one execution or an array of them; 201 with the batch id once committed."""
    state = services()
    key = api_key()
    assert key is not None
    answer, committed = state.org_intake.collect(
        key.organization_id,
        read_body(state.settings["metrics_max_body_bytes"]),
        request.headers.get("Idempotency-Key"),
        key.id,
    )
    return jsonify(answer), 201 if committed else 202


# OpenAPI, merged into /openapi.json by web/docs.py.
PATHS: dict[str, dict[str, Any]] = {
    "/mcp/metrics/collect": {
        "post": ingest_operation(
            "Store agent executions from an MCP server (limit: mcp_rate_limit per organization)",
            "MCP",
            "AgentExecution",
            API_KEY,
        )
    },
}
