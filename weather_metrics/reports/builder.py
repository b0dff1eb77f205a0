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

from weather_metrics.core.errors import OutOfScope, QueryError, ServiceError
from weather_metrics.core.times import iso
from weather_metrics.core.vocabulary import AGGREGATIONS, BAD_METRIC_TYPE, MAX_AGENT_NAME, METRIC_TYPE
from weather_metrics.query import analytics, org_metrics
from weather_metrics.query.scope import Scope, narrow, scope_for
from weather_metrics.query.windows import Window, parse_window
from weather_metrics.reports.formats import Cell, Chart, Report, Row, Table, write_report
from weather_metrics.store.db import database
from weather_metrics.store.models import Organization, ReportJob, User

REPORT_TYPES = ("productivity", "agents", "teams")
FORMATS = {
    "csv": ("text/csv; charset=utf-8", ".csv"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ".xlsx"),
    "pdf": ("application/pdf", ".pdf"),
}


COMMON_FILTERS = {"start_date": str, "end_date": str, "aggregation": str, "user_id": str, "team_id": str}
FILTERS: dict[str, dict[str, type]] = {
    "agents": {**COMMON_FILTERS, "agent_name": str, "success_only": bool},
    "productivity": {**COMMON_FILTERS, "metric_type": str},
    "teams": {"start_date": str, "end_date": str, "team_ids": list, "metric_types": list},
}


TYPE_NAMES = {str: "a string", bool: "a boolean", list: "a list of strings"}
REBUILD_MAX_DAYS = 3650  # filters were checked against the setting when the job was made
FETCH_ROWS = 2000
BAD_FILTERS = "Invalid filters"


class ReportTooLarge(ServiceError, ValueError):
    """The export would hold more data rows than allowed."""


def _bad(key: str, message: str) -> QueryError:
    return QueryError(BAD_FILTERS, {f"filters.{key}": message})


def _typed(report_type: str, filters: dict[str, Any]) -> dict[str, Any]:
    """The filters with blanks dropped and strings stripped; QueryError for unknown keys or wrong types."""
    allowed = FILTERS[report_type]
    unknown = sorted(set(filters) - set(allowed))
    if unknown:
        raise QueryError(
            BAD_FILTERS, {f"filters.{key}": f"Unknown filter for {report_type} reports" for key in unknown}
        )
    out: dict[str, Any] = {}
    for key, value in filters.items():
        kind = allowed[key]
        if value is None or value == "" or value == []:
            continue
        if kind is list:
            if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
                raise _bad(key, "Must be a list of non-empty strings")
            value = list(dict.fromkeys(item.strip() for item in value))
        elif not isinstance(value, kind) or (isinstance(value, str) and len(value) > 256):
            raise _bad(key, f"Must be {TYPE_NAMES[kind]}" + (" of at most 256 characters" if kind is str else ""))
        out[key] = value.strip() if isinstance(value, str) else value
    return out


def _checked_values(filters: dict[str, Any]) -> None:
    """QueryError for a bad aggregation, metric type or agent name."""
    if "aggregation" in filters and filters["aggregation"] not in AGGREGATIONS:
        raise _bad("aggregation", f"Must be one of: {', '.join(AGGREGATIONS)}")
    if "metric_type" in filters and not METRIC_TYPE.fullmatch(filters["metric_type"]):
        raise _bad("metric_type", BAD_METRIC_TYPE)
    if len(filters.get("agent_name", "")) > MAX_AGENT_NAME:
        raise _bad("agent_name", f"At most {MAX_AGENT_NAME} characters")


def _prefixed(error: QueryError) -> QueryError:
    return QueryError(error.args[0], {f"filters.{key}": message for key, message in error.details.items()})


def check_filters(
    report_type: str, filters: dict[str, Any], user: User, now: datetime, max_days: int
) -> dict[str, Any]:
    """The normalized filters of a report request; QueryError, UnknownTarget or OutOfScope when they are bad."""
    if report_type not in REPORT_TYPES:
        raise QueryError(BAD_FILTERS, {"report_type": f"Must be one of: {', '.join(REPORT_TYPES)}"})
    if not isinstance(filters, dict):
        raise QueryError(BAD_FILTERS, {"filters": "Must be an object"})
    out = _typed(report_type, filters)
    _checked_values(out)
    try:
        _window(out, org_metrics.org_zone(user.organization_id), now, max_days)
        if report_type == "teams":
            analytics.metric_type_list(out.get("metric_types", []))
    except QueryError as error:
        raise _prefixed(error) from None
    _scope(report_type, out, user)
    if report_type == "agents":
        out.setdefault("success_only", False)
    if report_type != "teams":
        out.setdefault("aggregation", "day")
    return out


def _window(filters: dict[str, Any], tz: Any, now: datetime, max_days: int) -> Window:
    return parse_window(
        filters.get("start_date"), filters.get("end_date"), filters.get("aggregation"), tz, now, max_days
    )


def _scope(report_type: str, filters: dict[str, Any], user: User) -> Scope:
    """The user's scope narrowed by the filters (teams reports: admins and managers only)."""
    scope = scope_for(user)
    if report_type == "teams":
        if user.role not in ("admin", "manager"):
            raise OutOfScope("Teams reports are for admins and managers")
        analytics.teams_to_compare(scope, filters.get("team_ids", []))
        return scope
    return narrow(scope, filters.get("user_id"), filters.get("team_id"))


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
    window = _window(filters, tz, now, REBUILD_MAX_DAYS)
    scope = _scope(job.report_type, filters, user)
    organization = Organization.get_by_id(user.organization_id).name
    report = BUILDERS[job.report_type](scope, window, filters, organization)
    source = report.rows
    report.rows = _capped(iter(source), max_rows)
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
    return f"{text} ({window.zone}; UTC {iso(window.start)} to {iso(window.end)})"


def _filter_lines(filters: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (key, ", ".join(value) if isinstance(value, list) else str(value).lower() if isinstance(value, bool) else value)
        for key, value in sorted(filters.items())
    ]


def _label(key: str) -> str:
    return key.replace("_", " ")


def _local(timestamp: float, window: Window) -> datetime:
    return datetime.fromtimestamp(timestamp, window.zone)


def _stream(sql: str, params: list[Any], row: Callable[..., Row]) -> Generator[Row, None, None]:
    """The rows of a query, fetched a few thousand at a time and made report rows by `row`.

    One generator owns the cursor, so closing it ends the query's read transaction at once.
    """
    cursor = database.execute_sql(sql, tuple(params))
    try:
        while batch := cursor.fetchmany(FETCH_ROWS):
            for values in batch:
                yield row(*values)
    finally:
        cursor.close()


AGENT_COLUMNS = ("user", "agent_name", "command", "duration_ms", "success", "error_details")
AGENT_BREAKDOWN = ("agent_name", *org_metrics.AGENT_METRICS)


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
    breakdown = [tuple(entry[key] for key in AGENT_BREAKDOWN) for entry in figures["agents"]]
    series = figures["series"]
    return Report(
        title="Agent usage report",
        organization=organization,
        period=period_text(window),
        filters=_filter_lines(filters),
        summary=[(_label(key), figures["totals"][key]) for key in org_metrics.AGENT_METRICS],
        breakdown=Table(AGENT_BREAKDOWN, breakdown),
        chart=Chart(
            f"Calls per {window.aggregation}",
            [entry["period"][:16] for entry in series],
            [entry["calls"] for entry in series],
            "calls",
        ),
        header=(f"occurred_at ({window.zone})", *AGENT_COLUMNS),
        rows=agent_rows(scope, window, agent_name, success_only),
        expected_rows=figures["totals"]["calls"],
    )


PRODUCTIVITY_BREAKDOWN = ("metric_type", "samples", "sum", "avg", "min", "max")


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


def productivity_report(scope: Scope, window: Window, filters: dict[str, Any], organization: str) -> Report:
    """Totals per metric type and the sum of values per period; one data row per metric."""
    metric_type = filters.get("metric_type")
    figures = org_metrics.productivity_metrics(
        scope, window, metric_type=metric_type, limit=max(len(window.periods()), 1)
    )
    totals = figures["totals"]
    series = figures["series"]
    return Report(
        title="Productivity report",
        organization=organization,
        period=period_text(window),
        filters=_filter_lines(filters),
        summary=[("metric types", len(totals)), ("samples", sum(total["samples"] for total in totals))],
        breakdown=Table(PRODUCTIVITY_BREAKDOWN, [tuple(t[key] for key in PRODUCTIVITY_BREAKDOWN) for t in totals]),
        chart=Chart(
            f"Sum of values per {window.aggregation}",
            [entry["period"][:16] for entry in series],
            [round(sum(m["sum"] for m in entry["metrics"].values()), 4) for entry in series],
            "sum of values",
        ),
        header=(f"occurred_at ({window.zone})", "metric_type", "value", "user", "team"),
        rows=productivity_rows(scope, window, metric_type),
        expected_rows=sum(total["samples"] for total in totals),
    )


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
    header = ("team", "team_id", "members", *(f"{kind}{suffix}" for kind in kinds for suffix in ("", " rank")))
    first = kinds[0] if kinds else None
    chart = None
    if first is not None:
        values = [float(team["metrics"][first] or 0) for team in comparison["teams"]]
        chart = Chart(f"{first} per team", [team["name"] for team in comparison["teams"]], values, first)
    return Report(
        title="Team comparison report",
        organization=organization,
        period=period_text(window),
        filters=_filter_lines(filters),
        summary=[("teams", len(rows)), ("metric types", ", ".join(kinds))],
        breakdown=None,
        chart=chart,
        header=header,
        rows=rows,
    )


BUILDERS: dict[str, Callable[[Scope, Window, dict[str, Any], str], Report]] = {
    "agents": agents_report,
    "productivity": productivity_report,
    "teams": teams_report,
}
