"""What each export report holds, read from the database in the requester's scope.

Figures come from query/org_metrics.py and query/analytics.py, so a report shows what
/api/metrics and /api/analytics answer for the same filters; data rows are streamed
from SQL with a cursor and written as they arrive.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from weather_metrics.core.errors import ServiceError
from weather_metrics.query import analytics, org_metrics
from weather_metrics.query.scope import Scope
from weather_metrics.query.windows import Window
from weather_metrics.reports.contents import COUNT, MS, NUMBER, RATE, Cell, Chart, Column, Figure, Report, Row, Table
from weather_metrics.reports.filters import filter_lines, report_scope, report_window
from weather_metrics.reports.formats import write_report
from weather_metrics.store.db import execute
from weather_metrics.store.models import Organization, ReportJob, Team, User

FORMATS = {
    "csv": ("text/csv; charset=utf-8", ".csv"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ".xlsx"),
    "pdf": ("application/pdf", ".pdf"),
}
REBUILD_MAX_DAYS = 3650  # filters were checked against the setting when the job was made
FETCH_ROWS = 2000
CHARTS = 4  # productivity and teams reports: charts of at most this many metric types
AXIS_TITLES = {"hour": "hour", "day": "day", "week": "week starting", "month": "month"}
LABEL_EVERY = {
    "hour": (1, 2, 3, 6, 12, 24, 48, 168, 336, 720, 1440, 2160),
    "day": (1, 2, 7, 14, 28, 56, 91, 182, 364),
    "week": (1, 2, 4, 13, 26, 52, 104),
    "month": (1, 2, 3, 6, 12, 24),
}


class ReportTooLarge(ServiceError, ValueError):
    """The export would hold more data rows than allowed."""


def _capped(rows: Iterator[Row], max_rows: int) -> Iterator[Row]:
    """The rows; ReportTooLarge once there are more than `max_rows`."""
    for count, row in enumerate(rows, start=1):
        if count > max_rows:
            raise ReportTooLarge(f"The report has more than {max_rows} rows; narrow the filters")
        yield row


def build_report(
    job: ReportJob, path: Path, max_rows: int, progress: Callable[[int], None], work_dir: Path | None = None
) -> int:
    """Write the job's report file at `path`; returns its number of data rows.

    The window is computed as of the job's creation, so a re-run writes the same report. On any
    error (ReportTooLarge included) the partial file is removed, and the rows' cursor is closed
    either way: it holds a read transaction, which would keep the WAL from being checkpointed.
    """
    filters = json.loads(job.filters)
    user = User.get_by_id(job.user_id)
    now = datetime.fromtimestamp(job.created_at, UTC)
    tz = org_metrics.org_zone(user.organization_id)
    window = report_window(filters, tz, now, REBUILD_MAX_DAYS)
    scope = report_scope(job.report_type, filters, user)
    organization = Organization.get_by_id(user.organization_id).name
    report = BUILDERS[job.report_type](scope, window, filters, organization)
    source = report.rows
    if filters.get("include_rows", True):
        report.rows = _capped(iter(source or ()), max_rows)
    else:
        report.rows, report.expected_rows = None, None
    try:
        return write_report(path, job.format, report, _percent(progress, report.expected_rows), work_dir)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    finally:
        for rows in (report.rows, source):
            if isinstance(rows, Generator):
                rows.close()


def _percent(progress: Callable[[int], None], expected: int | None) -> Callable[[int], None]:
    """Rows written turned into a percentage of the rows the summary counted (0 when unknown)."""

    def report(done: int) -> None:
        progress(min(99, done * 100 // expected) if expected else 0)

    return report


def period_text(window: Window) -> str:
    """The window in the organization's zone: whole days as dates (the end included), else date-times."""
    start = window.start.astimezone(window.zone)
    end = window.end.astimezone(window.zone)
    if start.time() == end.time() == datetime.min.time():
        text = f"{start.date()} to {(end - timedelta(days=1)).date()}"
    else:
        text = f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}"
    return f"{text} ({window.zone})"


def _described(filters: dict[str, Any]) -> list[tuple[str, str]]:
    """The filters in words, with the emails and team names of the ids they hold."""
    users = [filters["user_id"]] if "user_id" in filters else []
    teams = [filters["team_id"]] if "team_id" in filters else filters.get("team_ids", [])
    names = {user.id: user.email for user in User.select(User.id, User.email).where(User.id.in_(users))}
    names.update({team.id: team.name for team in Team.select(Team.id, Team.name).where(Team.id.in_(teams))})
    return filter_lines(filters, names)


def period_labels(window: Window, periods: list[str]) -> list[str]:
    """Chart labels of periods: "4 Nov", "4 Nov 13:00", "Nov 2026"; with the year when the window spans two."""
    starts = [datetime.fromisoformat(period).astimezone(window.zone) for period in periods]
    years = len({start.year for start in starts}) > 1
    if window.aggregation == "month":
        return [f"{start:%b %Y}" for start in starts]
    day = [f"{start.day} {start:%b}" + (f" {start.year}" if years else "") for start in starts]
    if window.aggregation == "hour":
        return [f"{text} {start:%H:%M}" for text, start in zip(day, starts, strict=True)]
    return day


def _over_time(window: Window, series: list[dict[str, Any]], title: str, measure: str, unit: str) -> Chart:
    """A chart of one metric per period of the window."""
    labels = period_labels(window, [entry["period"] for entry in series])
    values = [entry["value"] for entry in series]
    aggregation = window.aggregation
    return Chart(title, labels, values, unit, measure, AXIS_TITLES[aggregation], label_every=LABEL_EVERY[aggregation])


def _local(timestamp: float, window: Window) -> datetime:
    return datetime.fromtimestamp(timestamp, window.zone)


def _stream(sql: str, params: list[Any], row: Callable[..., Row]) -> Generator[Row, None, None]:
    """The rows of a query, fetched a few thousand at a time and made report rows by `row`.

    One generator owns the cursor, so closing it ends the query's read transaction at once.
    """
    cursor = execute(sql, tuple(params))
    try:
        while batch := cursor.fetchmany(FETCH_ROWS):
            for values in batch:
                yield row(*values)
    finally:
        cursor.close()


def _time_column(window: Window) -> Column:
    return Column(f"occurred_at ({window.zone})", title=f"time ({window.zone})")


AGENT_COLUMNS = (
    Column("user"),
    Column("agent_name", title="agent"),
    Column("command"),
    Column("duration_ms", MS, "duration"),
    Column("success"),
    Column("error_details", title="error"),
)
AGENT_FIGURES = (
    Column("calls", COUNT),
    Column("successes", COUNT),
    Column("failures", COUNT),
    Column("success_rate", RATE),
    Column("avg_duration_ms", MS, "avg duration"),
    Column("p50_duration_ms", MS, "p50 duration"),
    Column("p95_duration_ms", MS, "p95 duration"),
    Column("p99_duration_ms", MS, "p99 duration"),
)
AGENT_BREAKDOWN = (Column("agent_name", title="agent"), *AGENT_FIGURES)


def agent_rows(scope: Scope, window: Window, agent_name: str | None, success_only: bool) -> Iterator[Row]:
    """Each execution in the scope and window, in time order; the user is the matched email or identifier."""
    params: list[Any] = [scope.organization_id, window.first_hour, window.last_hour]
    clauses = ["e.organization_id = ?", "e.hour BETWEEN ? AND ?"]
    if scope.user_ids is not None:
        clauses.append(org_metrics.sql_in("e.user_id", scope.user_ids, params))
    if agent_name is not None:
        clauses.append("e.agent_name = ?")
        params.append(agent_name)
    if success_only:
        clauses.append("e.success = 1")
    sql = (
        "SELECT e.occurred_at, COALESCE(u.email, e.user_identifier), e.agent_name, e.command, e.duration_ms,"
        " e.success, e.error_details FROM agent_executions e LEFT JOIN users u ON u.id = e.user_id"
        f" WHERE {' AND '.join(clauses)} ORDER BY e.hour, e.occurred_at, e.id"
    )
    return _stream(
        sql,
        params,
        lambda occurred, who, agent, command, duration, success, error: (
            _local(occurred, window),
            who,
            agent,
            command,
            duration,
            bool(success),
            error,
        ),
    )


def agents_report(scope: Scope, window: Window, filters: dict[str, Any], organization: str) -> Report:
    """Totals, per-agent figures and calls per period; one data row per execution."""
    agent_name, success_only = filters.get("agent_name"), bool(filters.get("success_only"))
    figures = org_metrics.agent_metrics(
        scope, window, agent_name=agent_name, success_only=success_only, limit=max(len(window.periods()), 1)
    )
    breakdown = [tuple(entry[column.name] for column in AGENT_BREAKDOWN) for entry in figures["agents"]]
    calls = [{"period": entry["period"], "value": entry["calls"]} for entry in figures["series"]]
    return Report(
        title="Agent usage report",
        organization=organization,
        period=period_text(window),
        filters=_described(filters),
        summary=[Figure(c.heading, figures["totals"][c.name], c.unit) for c in AGENT_FIGURES],
        breakdown=Table("By agent", AGENT_BREAKDOWN, breakdown),
        charts=[_over_time(window, calls, f"Calls per {window.aggregation}", "calls", COUNT)],
        columns=(_time_column(window), *AGENT_COLUMNS),
        rows=agent_rows(scope, window, agent_name, success_only),
        expected_rows=figures["totals"]["calls"],
    )


PRODUCTIVITY_BREAKDOWN = (
    Column("metric_type", title="metric type"),
    Column("samples", COUNT),
    *(Column(name, NUMBER) for name in ("sum", "avg", "min", "max")),
)
PRODUCTIVITY_COLUMNS = (
    Column("metric_type", title="metric type"),
    Column("value", NUMBER),
    Column("user"),
    Column("team"),
)


def productivity_rows(scope: Scope, window: Window, metric_type: str | None) -> Iterator[Row]:
    """Each productivity metric in the scope and window, in time order, with its user's email and team's name."""
    params: list[Any] = [scope.organization_id, window.first_hour, window.last_hour]
    clauses = ["p.organization_id = ?", "p.hour BETWEEN ? AND ?"]
    if scope.user_ids is not None:
        users = org_metrics.sql_in("p.user_id", scope.user_ids, params)
        teams = (
            "p.team_id IS NOT NULL"
            if scope.team_ids is None
            else org_metrics.sql_in("p.team_id", scope.team_ids, params)
        )
        clauses.append(f"({users} OR {teams})")
    if metric_type is not None:
        clauses.append("p.metric_type = ?")
        params.append(metric_type)
    sql = (
        "SELECT p.occurred_at, p.metric_type, p.value, COALESCE(u.email, p.user_id), COALESCE(t.name, p.team_id)"
        " FROM productivity_metrics p LEFT JOIN users u ON u.id = p.user_id LEFT JOIN teams t ON t.id = p.team_id"
        f" WHERE {' AND '.join(clauses)} ORDER BY p.hour, p.occurred_at, p.id"
    )
    return _stream(
        sql, params, lambda occurred, kind, value, user, team: (_local(occurred, window), kind, value, user, team)
    )


def _words(metric_type: str) -> str:
    """A metric type in words; "_ms" goes, as the figures say their unit."""
    return metric_type.removesuffix("_ms").replace("_", " ")


def _heading(text: str) -> str:
    return text[:1].upper() + text[1:]


def productivity_report(scope: Scope, window: Window, filters: dict[str, Any], organization: str) -> Report:
    """Totals per metric type and a chart of each of the most sampled types' sums per period; a row per metric."""
    metric_type = filters.get("metric_type")
    figures = org_metrics.productivity_metrics(
        scope, window, metric_type=metric_type, limit=max(len(window.periods()), 1)
    )
    totals = figures["totals"]
    charted = sorted(totals, key=lambda total: (-total["samples"], total["metric_type"]))[:CHARTS]
    charts = []
    for kind in sorted(total["metric_type"] for total in charted):
        sums = [{"period": e["period"], "value": e["metrics"].get(kind, {}).get("sum", 0)} for e in figures["series"]]
        charts.append(
            _over_time(window, sums, f"{_heading(_words(kind))} per {window.aggregation}", _words(kind), NUMBER)
        )
    notes = []
    if len(totals) > CHARTS:
        notes.append(f"Charts show the {CHARTS} metric types with the most samples; the table lists all {len(totals)}.")
    return Report(
        title="Productivity report",
        organization=organization,
        period=period_text(window),
        filters=_described(filters),
        summary=[
            Figure("metric types", len(totals), COUNT),
            Figure("samples", sum(t["samples"] for t in totals), COUNT),
        ],
        breakdown=Table(
            "By metric type", PRODUCTIVITY_BREAKDOWN, [tuple(t[c.name] for c in PRODUCTIVITY_BREAKDOWN) for t in totals]
        ),
        charts=charts,
        columns=(_time_column(window), *PRODUCTIVITY_COLUMNS),
        rows=productivity_rows(scope, window, metric_type),
        notes=notes,
        expected_rows=sum(total["samples"] for total in totals),
    )


TEAM_UNITS = {analytics.AGENT_EXECUTIONS: COUNT, "agent_success_rate": RATE, "agent_avg_duration_ms": MS}


def teams_report(scope: Scope, window: Window, filters: dict[str, Any], organization: str) -> Report:
    """The team comparison of /api/analytics/team-comparison: one row per team with each metric and rank."""
    teams = analytics.teams_to_compare(scope, filters.get("team_ids", []))
    kinds = analytics.metric_type_list(filters.get("metric_types", []))
    comparison = analytics.team_comparison(scope, teams, kinds, window)
    kinds = comparison["metric_types"]
    rows: list[Row] = []
    for team in comparison["teams"]:
        figures: list[Cell] = []
        for kind in kinds:
            figures += [team["metrics"][kind], team["ranks"][kind]]
        rows.append((team["name"], team["team_id"], team["member_count"], *figures))
    columns = [Column("team"), Column("team_id", printed=False), Column("members", COUNT)]
    for kind in kinds:
        columns += [Column(kind, TEAM_UNITS.get(kind, NUMBER), _words(kind)), Column(f"{kind} rank", COUNT, "rank")]
    names = [team["name"] for team in comparison["teams"]]
    charts = [
        Chart(
            f"{_heading(_words(kind))} by team",
            names,
            [team["metrics"][kind] for team in comparison["teams"]],
            TEAM_UNITS.get(kind, NUMBER),
            _words(kind),
            "team",
            categories=True,
        )
        for kind in kinds[:CHARTS]
    ]
    notes = [f"Charts show the first {CHARTS} of the {len(kinds)} metric types."] if len(kinds) > CHARTS else []
    return Report(
        title="Team comparison report",
        organization=organization,
        period=period_text(window),
        filters=_described(filters),
        summary=[Figure("teams", len(rows), COUNT), Figure("metric types", len(kinds), COUNT)],
        breakdown=None,
        charts=charts if teams else [],
        columns=columns,
        rows=rows,
        notes=notes,
        rows_title="Teams",
        rows_first=True,
    )


BUILDERS: dict[str, Callable[[Scope, Window, dict[str, Any], str], Report]] = {
    "agents": agents_report,
    "productivity": productivity_report,
    "teams": teams_report,
}
