"""Per-team agent rollups: each row is the sum of the per-user rows of the team's current members.

A manager's or a team's figures would otherwise read every member's rows (16 users' histograms
over 90 days are 225,000 rows); the team's are a sixteenth of that. They stay exact as long as
two things hold, both inside the write transaction (store/db.py `write_transaction`, which
serialises writers on both backends):
- each commit of executions folds them into every team their user belongs to at that moment
  (`rollups`, joined with team_members, so no process keeps a copy of the memberships);
- each membership change adds or subtracts that user's per-user rows (`add_member_rows`,
  `remove_member_rows`), and deleting a team deletes its rows (`drop_team_rows`).
Hourly rows stay per user: a range reads hours only at its edges.
"""

from __future__ import annotations

from peewee import CompositeKey, FloatField, IntegerField, TextField

from weather_metrics.core.times import DAY
from weather_metrics.store import versions
from weather_metrics.store.db import BaseModel, FlagField, execute
from weather_metrics.store.rowkind import RawRollup


class AgentTeamDaily(BaseModel):
    team_id = TextField()
    day = IntegerField()
    agent_name = TextField()
    success = FlagField()
    calls = IntegerField()
    duration_sum = FloatField()

    class Meta:
        primary_key = CompositeKey("team_id", "day", "agent_name", "success")
        without_rowid = True


class AgentTeamLatencyDaily(BaseModel):
    team_id = TextField()
    day = IntegerField()
    agent_name = TextField()
    success = FlagField()
    bucket = IntegerField()
    calls = IntegerField()

    class Meta:
        primary_key = CompositeKey("team_id", "day", "agent_name", "success", "bucket")
        without_rowid = True


class AgentTeamLatencySpans(BaseModel):
    team_id = TextField()
    span = IntegerField()
    start = IntegerField()
    agent_name = TextField()
    success = FlagField()
    bucket = IntegerField()
    calls = IntegerField()

    class Meta:
        primary_key = CompositeKey("team_id", "span", "start", "agent_name", "success", "bucket")
        without_rowid = True


TEAM_MODELS = (AgentTeamDaily, AgentTeamLatencyDaily, AgentTeamLatencySpans)


# Each team table with the per-user table it mirrors, its key after the owner, and its summed columns.
_MIRRORS = (
    ("agent_team_daily", "agent_user_daily", ("day", "agent_name", "success"), ("calls", "duration_sum")),
    ("agent_team_latency_daily", "agent_user_latency_daily", ("day", "agent_name", "success", "bucket"), ("calls",)),
    (
        "agent_team_latency_spans",
        "agent_user_latency_spans",
        ("span", "start", "agent_name", "success", "bucket"),
        ("calls",),
    ),
)


def _upsert(table: str, key: tuple[str, ...], sums: tuple[str, ...]) -> str:
    """INSERT INTO `table` (team_id, key, sums) ... ON CONFLICT adding the sums: the SELECT follows."""
    columns = ", ".join(("team_id", *key, *sums))
    added = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in sums)
    return f"INSERT INTO {table} ({columns}) {{select}} ON CONFLICT (team_id, {', '.join(key)}) DO UPDATE SET {added}"


def _ordered(count: int) -> str:
    # Rows are upserted in key order, so two transactions can never wait on each other's rows.
    return ", ".join(str(n) for n in range(1, count + 1))


def rollups(spans: tuple[int, ...]) -> list[RawRollup]:
    """The writer's statements folding a commit's executions into the rollups of their users' teams."""
    joined = "FROM agent_executions AS a JOIN team_members AS m ON m.user_id = a.user_id WHERE a.id > ? AND a.id <= ?"
    day = f"a.hour / {DAY} * {DAY}"
    lengths = " UNION ALL ".join(f"SELECT {n * DAY} AS length" for n in spans)
    selects = (
        f"SELECT m.team_id, {day}, a.agent_name, a.success, COUNT(a.id), SUM(a.duration_ms) {joined}"
        f" GROUP BY 1, 2, 3, 4 ORDER BY {_ordered(4)}",
        f"SELECT m.team_id, {day}, a.agent_name, a.success, a.latency_bucket, COUNT(a.id) {joined}"
        f" GROUP BY 1, 2, 3, 4, 5 ORDER BY {_ordered(5)}",
        f"SELECT m.team_id, s.length / {DAY}, a.hour / s.length * s.length, a.agent_name, a.success,"
        f" a.latency_bucket, COUNT(a.id) FROM agent_executions AS a JOIN team_members AS m ON m.user_id = a.user_id"
        f" CROSS JOIN ({lengths}) AS s WHERE a.id > ? AND a.id <= ? GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY {_ordered(6)}",
    )
    return [
        RawRollup(model, _upsert(table, key, sums).format(select=select))
        for model, (table, _user_table, key, sums), select in zip(TEAM_MODELS, _MIRRORS, selects, strict=True)
    ]


def _fold_member(team_id: str, user_id: str, sign: int) -> None:
    """Add (sign 1) or subtract (-1) the user's per-user rows to or from the team's."""
    for table, user_table, key, sums in _MIRRORS:
        weighted = ", ".join(f"? * {name}" for name in sums)
        select = f"SELECT ?, {', '.join(key)}, {weighted} FROM {user_table} WHERE user_id = ? ORDER BY {', '.join(key)}"
        execute(_upsert(table, key, sums).format(select=select), (team_id, *([sign] * len(sums)), user_id))
        if sign < 0:  # a row all of whose calls left with the user is no row: the per-user path has none
            execute(f"DELETE FROM {table} WHERE team_id = ? AND calls = 0", (team_id,))
    _changed()


def add_member_rows(team_id: str, user_id: str) -> None:
    """Fold a new member's rows into the team's; call it in the write transaction that adds the member."""
    _fold_member(team_id, user_id, 1)


def remove_member_rows(team_id: str, user_id: str) -> None:
    """Take a former member's rows out of the team's; call it in the write transaction that removes the member."""
    _fold_member(team_id, user_id, -1)


def drop_team_rows(team_id: str) -> None:
    """Delete a team's rows; call it in the write transaction that deletes the team."""
    for table, *_ in _MIRRORS:
        execute(f"DELETE FROM {table} WHERE team_id = ?", (team_id,))
    _changed()


def _changed() -> None:
    # Answers over past days are kept under AGENT_HISTORY (query/org_metrics.py SETTLED) and
    # keyed by team id: the team's rows changed for every day, so none may be served again.
    versions.bump([versions.AGENT_EXECUTIONS, versions.AGENT_HISTORY])
