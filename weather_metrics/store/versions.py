"""Data versions: a counter per kind of data, raised by every transaction that changes it.

A reader that keeps answers in memory keys them on the version it reads, so a commit in any
process (or on any host sharing the database) makes the next read compute afresh. The
counter lives in the database and is raised inside the writing transaction, so it commits
or rolls back with the rows it stands for.
"""

from __future__ import annotations

from collections.abc import Iterable

from peewee import IntegerField, TextField

from weather_metrics.core.times import DAY
from weather_metrics.store.db import BaseModel, execute

EVENTS = "events"  # /v1 events, their rollups and sessions
AGENT_EXECUTIONS = "agent_executions"
PRODUCTIVITY_METRICS = "productivity_metrics"
# Agent executions of settled days (before yesterday, see `SETTLED_MARGIN`), which change
# only by late rows and pruning: raised far less often than AGENT_EXECUTIONS.
AGENT_HISTORY = "agent_history"
WEBHOOKS = "webhooks"  # which webhooks exist and are enabled
NAMES = (EVENTS, AGENT_EXECUTIONS, PRODUCTIVITY_METRICS, AGENT_HISTORY, WEBHOOKS)
SETTLED_MARGIN = 3600  # seconds a host's clock may run ahead of the writing host's


class DataVersion(BaseModel):
    name = TextField(primary_key=True)
    version = IntegerField()

    class Meta:
        table_name = "data_versions"
        without_rowid = True


def bump(names: Iterable[str]) -> None:
    """Raise the versions of `names`; call it inside the transaction that changes their data."""
    for name in sorted(set(names)):  # a name added after the database was made gets its row here
        execute(
            "INSERT INTO data_versions (name, version) VALUES (?, 1)"
            " ON CONFLICT (name) DO UPDATE SET version = data_versions.version + 1",
            (name,),
        )


def current(name: str) -> int:
    """The version of `name` as this connection sees it now."""
    row = execute("SELECT version FROM data_versions WHERE name = ?", (name,)).fetchone()
    return 0 if row is None else int(row[0])


def settled_before(now: int) -> int:
    """Rows for hours before this are in days some reader may already count as settled."""
    return (now + SETTLED_MARGIN) // DAY * DAY - DAY
