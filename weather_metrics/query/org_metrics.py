"""Organization metrics read from the rollups: agent usage and productivity over a window.

Agent sums come from the daily rollups for whole UTC days and the hourly ones for the rest
(query/spans.py); percentiles from the histograms of the UTC days the window touches, read
as spans of days. Results over days before yesterday are kept in `SETTLED`.
"""

from __future__ import annotations

import logging
import threading
import time
from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from weather_metrics.core.errors import QueryError
from weather_metrics.core.histogram import percentile_from_histogram
from weather_metrics.core.times import DAY, HOUR, iso, zone
from weather_metrics.query import spans
from weather_metrics.query.scope import Scope
from weather_metrics.query.windows import Window
from weather_metrics.store import versions
from weather_metrics.store.agents import SPANS
from weather_metrics.store.db import binding, execute

log = logging.getLogger(__name__)


PERCENTILES = (("p50_duration_ms", 0.50), ("p95_duration_ms", 0.95), ("p99_duration_ms", 0.99))
AGENT_METRICS = ("calls", "successes", "failures", "success_rate", "avg_duration_ms", *(n for n, _ in PERCENTILES))
Rows = list[tuple[Any, ...]]


def _query(sql: str, params: tuple[Any, ...], low: int, high: int) -> Rows:
    return execute(sql, (*params, low, high)).fetchall()  # type: ignore[no-any-return]


class SettledRows:
    """Results of rollup queries over UTC days before yesterday, reused until those days change.

    Each result is kept with the data version `data` read before its query; every
    transaction that changes those days (a late row for one, pruning) raises the version in
    the database (store/versions.py), so a commit in any process or on any host makes the
    next query here read afresh. Yesterday and today, which late executions still reach, are
    always read afresh. A result may hold a key twice when its query spans both parts:
    callers add rows up by key.
    """

    def __init__(self, data: str, max_rows: int = 100_000) -> None:
        self.data = data
        self._max_rows = max_rows
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[Any, ...], tuple[int, Rows]] = OrderedDict()
        self._rows = 0

    def rows(self, sql: str, params: tuple[Any, ...], low: int, high: int, step: int) -> Rows:
        """The rows of `sql` for the range [low, high] (in steps of `step` seconds)."""
        recent = int(time.time()) // DAY * DAY - DAY
        out: Rows = []
        if low <= min(high, recent - step):
            out += self._settled(sql, params, low, min(high, recent - step))
        if max(low, recent) <= high:
            out += _query(sql, params, max(low, recent), high)
        return out

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._rows = 0

    def _settled(self, sql: str, params: tuple[Any, ...], low: int, high: int) -> Rows:
        # The version is read before the rows: rows newer than it are kept under it at worst,
        # which costs one more query once the version moves, never a stale answer.
        version = versions.current(self.data)
        key = (binding(), sql, params, low, high)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] == version:
                self._entries.move_to_end(key)
                return entry[1]
        rows = _query(sql, params, low, high)
        with self._lock:
            old = self._entries.get(key)
            if old is None or old[0] <= version:
                self._drop(key)
                self._entries[key] = (version, rows)
                self._rows += len(rows)
                while self._rows > self._max_rows:
                    self._drop(next(iter(self._entries)))
        return rows

    def _drop(self, key: tuple[Any, ...]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._rows -= len(entry[1])


SETTLED = SettledRows(versions.AGENT_HISTORY)


@dataclass(frozen=True)
class _Filter:
    """A rollup table and the WHERE clause (without its time range) of one query."""

    table: str
    where: str
    params: tuple[Any, ...]
    settled: SettledRows | None = None  # where results of past days are kept
    days: _Filter | None = None  # an hourly table's: the daily one's filter, when its owners differ

    def rows(self, select: str, column: str, low: int, high: int, group: str) -> Rows:
        sql = f"SELECT {select} FROM {self.table} WHERE {self.where} AND {column} BETWEEN ? AND ? GROUP BY {group}"
        if self.settled is None:
            return _query(sql, self.params, low, high)
        return self.settled.rows(sql, self.params, low, high, HOUR if column == "hour" else DAY)


@dataclass(frozen=True)
class _Page:
    """The periods of one page of a series, and the UTC hours they cover."""

    periods: list[datetime]
    starts: list[int]  # the first UTC hour of each period
    first_hour: int
    last_hour: int
    pagination: dict[str, int]

    def index(self, hour: int) -> int:
        return bisect_right(self.starts, hour) - 1


def sql_in(column: str, values: frozenset[str], params: list[Any]) -> str:
    """`column IN (?, ...)` for the values, appended to params; a false condition for none."""
    if not values:
        return "1 = 0"  # nobody: the query returns nothing
    params.extend(sorted(values))
    return f"{column} IN ({', '.join('?' * len(values))})"


def _agent_filter(scope: Scope, table: str, agent_name: str | None, success_only: bool) -> _Filter:
    """Whole organization: the organization rollup; teams covering the scope: their rollups (hours per
    user); otherwise the per-user one, for the scope's users."""
    params: list[Any] = []
    days = None
    if scope.user_ids is None:
        clauses = ["organization_id = ?"]
        params.append(scope.organization_id)
    elif scope.rollup_teams is not None and not table.endswith("_hourly"):
        table = table.replace("agent_", "agent_team_", 1)
        clauses = [sql_in("team_id", scope.rollup_teams, params)]
    else:  # per-user tables: the scope's user ids are all of its organization
        if scope.rollup_teams is not None:
            days = _agent_filter(scope, table.replace("_hourly", "_daily"), agent_name, success_only)
        table = table.replace("agent_", "agent_user_", 1)
        clauses = [sql_in("user_id", scope.user_ids, params)]
    if agent_name is not None:
        clauses.append("agent_name = ?")
        params.append(agent_name)
    if success_only:
        clauses.append("success = 1")
    return _Filter(table, " AND ".join(clauses), tuple(params), SETTLED, days)


def _series_filter(hourly: _Filter, scope: Scope, agent_name: str | None) -> _Filter:
    """The whole organization's series of every agent: from the hourly totals (one row per hour and
    outcome, not one per agent), its whole days from the daily rows as ever."""
    if scope.user_ids is not None or agent_name is not None:
        return hourly
    return replace(hourly, table="agent_total_hourly", days=replace(hourly, table="agent_daily"))


def _productivity_filter(scope: Scope, metric_type: str | None) -> _Filter:
    """Rows of the scope's users, or tagged with one of its teams ('' is no user or team)."""
    params: list[Any] = [scope.organization_id]
    clauses = ["organization_id = ?"]
    if scope.user_ids is not None:
        users = sql_in("user_id", scope.user_ids, params)
        teams = "team_id <> ''" if scope.team_ids is None else sql_in("team_id", scope.team_ids, params)
        clauses.append(f"({users} OR {teams})")
    if metric_type is not None:
        clauses.append("metric_type = ?")
        params.append(metric_type)
    return _Filter("productivity_hourly", " AND ".join(clauses), tuple(params))


def _hour_of(moment: datetime) -> int:
    """The UTC hour a period starts in (its start, for zones on whole hours)."""
    return int(moment.timestamp()) // HOUR * HOUR


def pagination(page: int, limit: int, total: int) -> dict[str, int]:
    """The pagination block of a paged answer."""
    return {"page": page, "limit": limit, "total": total, "pages": (total + limit - 1) // limit}


def _page(window: Window, page: int, limit: int) -> _Page:
    """The page's periods; QueryError for a page or limit below 1."""
    problems = {name: "Must be at least 1" for name, value in (("page", page), ("limit", limit)) if value < 1}
    if problems:
        raise QueryError("Invalid query parameters", problems)
    periods = window.periods()
    offset = (page - 1) * limit
    chosen = periods[offset : offset + limit]
    starts = [_hour_of(p) for p in chosen]
    after = offset + limit
    last = _hour_of(periods[after]) - HOUR if after < len(periods) else window.last_hour
    first = max(window.first_hour, starts[0]) if starts else 0
    return _Page(chosen, starts, first, last if starts else -1, pagination(page, limit, len(periods)))


def window_view(window: Window) -> dict[str, str]:
    """The window as answered: UTC bounds, zone and aggregation."""
    return {
        "start": iso(window.start),
        "end": iso(window.end),
        "time_zone": str(window.zone),
        "aggregation": window.aggregation,
    }


def _agent_figures(calls: int, successes: int, duration_sum: float) -> dict[str, Any]:
    return {
        "calls": calls,
        "successes": successes,
        "failures": calls - successes,
        "success_rate": round(successes / calls, 4) if calls else None,
        "avg_duration_ms": round(duration_sum / calls, 2) if calls else None,
    }


def _percentiles(histogram: dict[int, int]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, fraction in PERCENTILES:
        value = percentile_from_histogram(histogram.items(), fraction)
        out[name] = None if value is None else round(value, 2)
    return out


def _agent_rows(hourly: _Filter, key: str | None, low: int, high: int, cuts: list[int] | None = None) -> Rows:
    """(`key` or the hour or day, calls, successes, duration sum) over the hours [low, high].

    Whole UTC days come from the daily sums, and only the hours left from the hourly ones;
    with `cuts` (period starts), a day a period starts inside is read by the hour.
    """
    days, hours = spans.whole_days(low, high, cuts or [])
    daily = hourly.days or replace(hourly, table=hourly.table.replace("_hourly", "_daily"))
    out: Rows = []
    for part, column, ranges in ((hourly, "hour", hours), (daily, "day", days)):
        group = key or column
        select = f"{group}, SUM(calls), SUM(calls * success), SUM(duration_sum)"
        for first, last in ranges:
            out += part.rows(select, column, first, last, group)
    return out


def _agent_sums(hourly: _Filter, window: Window) -> dict[str, tuple[int, int, float]]:
    """Calls, successes and duration sum of each agent over the window."""
    rows = _agent_rows(hourly, "agent_name", window.first_hour, window.last_hour)
    out: dict[str, tuple[int, int, float]] = {}
    for name, calls, successes, duration in rows:
        before = out.get(name, (0, 0, 0.0))
        out[name] = (before[0] + calls, before[1] + successes, before[2] + duration)
    return out


def _agent_histograms(daily: _Filter, window: Window) -> dict[str, dict[int, int]]:
    """Each agent's duration histogram over the UTC days the window touches."""
    out: dict[str, dict[int, int]] = {}
    chosen, singles = spans.day_spans(window.first_day(), window.last_day(), SPANS)
    rows: Rows = []
    for first, last in singles:
        rows += daily.rows("agent_name, bucket, SUM(calls)", "day", first, last, "agent_name, bucket")
    if chosen:
        table = daily.table.replace("_daily", "_spans")
        pairs = ", ".join(["(?, ?)"] * len(chosen))
        rows += execute(
            f"SELECT agent_name, bucket, SUM(calls) FROM {table} WHERE {daily.where}"
            f" AND (span, start) IN (VALUES {pairs}) GROUP BY agent_name, bucket",
            (*daily.params, *(value for span in chosen for value in span)),
        ).fetchall()
    for name, bucket, calls in rows:
        histogram = out.setdefault(name, {})
        histogram[bucket] = histogram.get(bucket, 0) + calls
    return out


def _merged(histograms: dict[str, dict[int, int]]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for histogram in histograms.values():
        for bucket, calls in histogram.items():
            merged[bucket] = merged.get(bucket, 0) + calls
    return merged


def _agent_series(hourly: _Filter, page: _Page) -> list[dict[str, Any]]:
    sums = [[0, 0, 0.0] for _ in page.periods]
    for hour, calls, successes, duration in _agent_rows(hourly, None, page.first_hour, page.last_hour, page.starts):
        entry = sums[page.index(hour)]
        entry[0] += calls
        entry[1] += successes
        entry[2] += duration
    return [
        {"period": period.isoformat(), **_agent_figures(int(c), int(s), d)}
        for period, (c, s, d) in zip(page.periods, sums, strict=True)
    ]


def agent_metrics(
    scope: Scope,
    window: Window,
    *,
    agent_name: str | None = None,
    success_only: bool = False,
    page: int = 1,
    limit: int = 100,
    percentiles: bool = True,
) -> dict[str, Any]:
    """Agent usage in a scope and window: totals, each agent (most calls first), and a page of periods.

    `percentiles=False` skips the duration histograms, the costly part (the p* figures are
    then None): for callers that only need counts and averages.
    """
    pages = _page(window, page, limit)
    hourly = _agent_filter(scope, "agent_hourly", agent_name, success_only)
    sums = _agent_sums(hourly, window)
    histograms: dict[str, dict[int, int]] = {}
    if percentiles:
        histograms = _agent_histograms(_agent_filter(scope, "agent_latency_daily", agent_name, success_only), window)
    agents = [
        {"agent_name": name, **_agent_figures(*sums[name]), **_percentiles(histograms.get(name, {}))}
        for name in sorted(sums, key=lambda name: (-sums[name][0], name))
    ]
    total = [sum(figures[i] for figures in sums.values()) for i in range(3)]
    return {
        "window": window_view(window),
        "totals": {**_agent_figures(int(total[0]), int(total[1]), total[2]), **_percentiles(_merged(histograms))},
        "agents": agents,
        "series": _agent_series(_series_filter(hourly, scope, agent_name), pages),
        "pagination": pages.pagination,
    }


def _value_figures(samples: int, total: float, low: float, high: float) -> dict[str, Any]:
    return {
        "samples": samples,
        "sum": round(total, 4),
        "avg": round(total / samples, 4) if samples else None,
        "min": low,
        "max": high,
    }


def _productivity_series(rows_of: _Filter, page: _Page) -> list[dict[str, Any]]:
    sums: list[dict[str, list[Any]]] = [{} for _ in page.periods]
    rows = rows_of.rows(
        "hour, metric_type, SUM(samples), SUM(value_sum), MIN(value_min), MAX(value_max)",
        "hour",
        page.first_hour,
        page.last_hour,
        "hour, metric_type",
    )
    for hour, kind, samples, total, low, high in rows:
        metrics = sums[page.index(hour)]
        entry = metrics.get(kind)
        if entry is None:
            metrics[kind] = [samples, total, low, high]
        else:
            entry[0] += samples
            entry[1] += total
            entry[2] = min(entry[2], low)
            entry[3] = max(entry[3], high)
    return [
        {"period": period.isoformat(), "metrics": {kind: _value_figures(*metrics[kind]) for kind in sorted(metrics)}}
        for period, metrics in zip(page.periods, sums, strict=True)
    ]


def productivity_metrics(
    scope: Scope, window: Window, *, metric_type: str | None = None, page: int = 1, limit: int = 100
) -> dict[str, Any]:
    """Productivity metrics in a scope and window: totals per type and a page of periods."""
    pages = _page(window, page, limit)
    rows_of = _productivity_filter(scope, metric_type)
    totals = rows_of.rows(
        "metric_type, SUM(samples), SUM(value_sum), MIN(value_min), MAX(value_max)",
        "hour",
        window.first_hour,
        window.last_hour,
        "metric_type",
    )
    return {
        "window": window_view(window),
        "totals": [{"metric_type": kind, **_value_figures(*figures)} for kind, *figures in sorted(totals)],
        "series": _productivity_series(rows_of, pages),
        "pagination": pages.pagination,
    }


def metric_types(org_id: str) -> list[str]:
    """The productivity metric types that have data in the organization, sorted."""
    rows = execute(
        "SELECT DISTINCT metric_type FROM productivity_hourly WHERE organization_id = ? ORDER BY metric_type",
        (org_id,),
    ).fetchall()
    return [kind for (kind,) in rows]


def org_zone(org_id: str) -> ZoneInfo:
    """The organization's time zone; UTC when it has none the system knows."""
    row = execute("SELECT time_zone FROM organizations WHERE id = ?", (org_id,)).fetchone()
    try:
        return zone(row[0] if row else "UTC")
    except ValueError:
        log.warning("organization %s has an unknown time zone %r; using UTC", org_id, row[0])
        return zone("UTC")
