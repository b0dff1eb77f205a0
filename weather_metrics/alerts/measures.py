"""What an alert rule measures: one figure over a trailing window of raw rows, and who contributed.

The window is (at - window_minutes, at], read from the raw tables (agent_executions,
productivity_metrics) rather than the hourly rollups, so that a five-minute window means
five minutes. Their only index is on `hour`, so every query also bounds `hour`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from weather_metrics.core.times import HOUR
from weather_metrics.store.db import execute

MAX_AFFECTED_USERS = 100
P95 = 0.95


# A team's rows are its members' (productivity: also rows tagged with the team).
_MEMBERS = "user_id IN (SELECT user_id FROM team_members WHERE team_id = ?)"


@dataclass(frozen=True)
class Target:
    """What a rule watches, as stored on its row."""

    organization_id: str
    metric: str
    metric_type: str | None
    scope_type: str
    scope_value: str | None
    window_minutes: int


def _where(target: Target, at: int, table: str) -> tuple[str, list[Any]]:
    """The WHERE clause of the target's rows in (at - window, at], and its parameters."""
    start = at - target.window_minutes * 60
    clauses = ["organization_id = ?", "hour >= ?", "hour <= ?", "occurred_at > ?", "occurred_at <= ?"]
    params: list[Any] = [target.organization_id, start // HOUR * HOUR, at, start, at]
    if table == "productivity_metrics":
        clauses.append("metric_type = ?")
        params.append(target.metric_type)
    if target.scope_type == "team":
        if table == "productivity_metrics":
            clauses.append(f"({_MEMBERS} OR team_id = ?)")
            params += [target.scope_value, target.scope_value]
        else:
            clauses.append(_MEMBERS)
            params.append(target.scope_value)
    elif target.scope_type == "agent":
        clauses.append("agent_name = ?")
        params.append(target.scope_value)
    elif target.scope_type == "tool":
        clauses.append("command = ?")
        params.append(target.scope_value)
    return " AND ".join(clauses), params


def _one(sql: str, params: list[Any]) -> Any:
    return execute(sql, params).fetchone()


def measure(target: Target, at: int) -> float | None:
    """The metric's value at `at`; None when it has no value (error rate or p95 of no executions)."""
    if target.metric == "productivity":
        where, params = _where(target, at, "productivity_metrics")
        return float(_one(f"SELECT COALESCE(SUM(value), 0.0) FROM productivity_metrics WHERE {where}", params)[0])
    where, params = _where(target, at, "agent_executions")
    calls, failures = _one(
        f"SELECT COUNT(*), COALESCE(SUM(1 - success), 0) FROM agent_executions WHERE {where}", params
    )
    if target.metric == "call_volume":
        return float(calls)
    if not calls:
        return None
    if target.metric == "error_rate":
        return failures * 100.0 / calls
    rank = math.ceil(P95 * calls)  # nearest rank: the smallest value with 95% of values at or below it
    sql = f"SELECT duration_ms FROM agent_executions WHERE {where} ORDER BY duration_ms LIMIT 1 OFFSET ?"
    return float(_one(sql, [*params, rank - 1])[0])


def affected_users(target: Target, at: int, threshold: float) -> list[str]:
    """Up to MAX_AFFECTED_USERS user ids behind the value, in id order.

    error_rate: users with a failed execution; p95_latency_ms: users with an execution
    slower than the threshold; call_volume and productivity: every contributing user.
    """
    table = "productivity_metrics" if target.metric == "productivity" else "agent_executions"
    where, params = _where(target, at, table)
    if target.metric == "error_rate":
        where += " AND success = 0"
    elif target.metric == "p95_latency_ms":
        where += " AND duration_ms > ?"
        params.append(threshold)
    sql = f"SELECT DISTINCT user_id FROM {table} WHERE {where} AND user_id IS NOT NULL ORDER BY user_id LIMIT ?"
    return [row[0] for row in execute(sql, [*params, MAX_AFFECTED_USERS])]
