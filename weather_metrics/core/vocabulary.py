"""The metric vocabulary: what organization metrics are made of, their limits and aggregations.

Ingestion validates against it; queries, reports, alerts, dashboards and /mcp/config quote it.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_AGENT_NAME = 128
MAX_COMMAND = 2048
MAX_ERROR_DETAILS = 4096
MAX_IDENTIFIER = 256
MAX_SESSION_ID = 128
MAX_METADATA_BYTES = 4096
MAX_EXECUTION_MS = 86_400_000  # one day
MAX_ABS_VALUE = 1e12
METRIC_TYPE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")


# Productivity types dashboards offer before any data arrives; others exist once sent.
STANDARD_PRODUCTIVITY_TYPES = (
    "commits",
    "pull_requests",
    "code_reviews",
    "lines_added",
    "lines_removed",
    "tasks_completed",
    "tests_written",
    "deployments",
    "focus_minutes",
    "incidents_resolved",
)


BAD_METRIC_TYPE = "Must match [a-z][a-z0-9_.-]{0,63}."
AGENT_FIELDS = {
    "session_id",
    "user_identifier",
    "user_id",
    "agent_name",
    "command",
    "execution_time_ms",
    "success",
    "error_details",
    "metadata",
    "timestamp",
}


PRODUCTIVITY_FIELDS = {"timestamp", "type", "value", "metadata", "user_id", "team_id"}


def dump_json(value: Any) -> str:
    """The compact JSON that is stored (and measured for the metadata limit)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


AGGREGATIONS = ("hour", "day", "week", "month")
