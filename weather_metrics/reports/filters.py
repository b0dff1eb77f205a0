"""The filters of a report request: checked and normalized when it is asked for, described in the file.

Each report type takes the filters of its metrics or team-comparison endpoint, and every type
takes `include_rows` (default true): false leaves the data rows out of a PDF or XLSX report.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from weather_metrics.core.errors import OutOfScope, QueryError
from weather_metrics.core.vocabulary import AGGREGATIONS, BAD_METRIC_TYPE, MAX_AGENT_NAME, METRIC_TYPE
from weather_metrics.query import analytics, org_metrics
from weather_metrics.query.scope import Scope, narrow, scope_for
from weather_metrics.query.windows import Window, parse_window
from weather_metrics.store.models import User

REPORT_TYPES = ("productivity", "agents", "teams")
COMMON_FILTERS = {
    "start_date": str,
    "end_date": str,
    "aggregation": str,
    "user_id": str,
    "team_id": str,
    "include_rows": bool,
}
FILTERS: dict[str, dict[str, type]] = {
    "agents": {**COMMON_FILTERS, "agent_name": str, "success_only": bool},
    "productivity": {**COMMON_FILTERS, "metric_type": str},
    "teams": {"start_date": str, "end_date": str, "team_ids": list, "metric_types": list, "include_rows": bool},
}
# A filter at its default is not worth a line in the report; the dates are its period line.
DEFAULTS: dict[str, Any] = {"success_only": False, "aggregation": "day", "include_rows": True}
IN_THE_PERIOD = ("start_date", "end_date")
LABELS = {
    "agent_name": "agent",
    "user_id": "user",
    "team_id": "team",
    "team_ids": "teams",
    "metric_type": "metric type",
    "metric_types": "metric types",
    "success_only": "successful calls only",
    "include_rows": "data rows",
}
TYPE_NAMES = {str: "a string", bool: "a boolean", list: "a list of strings"}
BAD_FILTERS = "Invalid filters"


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


def _checked_values(filters: dict[str, Any], fmt: str) -> None:
    """QueryError for a bad aggregation, metric type or agent name, or a CSV file without its rows."""
    if "aggregation" in filters and filters["aggregation"] not in AGGREGATIONS:
        raise _bad("aggregation", f"Must be one of: {', '.join(AGGREGATIONS)}")
    if "metric_type" in filters and not METRIC_TYPE.fullmatch(filters["metric_type"]):
        raise _bad("metric_type", BAD_METRIC_TYPE)
    if len(filters.get("agent_name", "")) > MAX_AGENT_NAME:
        raise _bad("agent_name", f"At most {MAX_AGENT_NAME} characters")
    if fmt == "csv" and filters.get("include_rows") is False:
        raise _bad("include_rows", "A CSV file is its data rows: ask for a pdf or xlsx report to leave them out")


def _prefixed(error: QueryError) -> QueryError:
    return QueryError(error.args[0], {f"filters.{key}": message for key, message in error.details.items()})


def check_filters(
    report_type: str, filters: dict[str, Any], user: User, now: datetime, max_days: int, *, fmt: str
) -> dict[str, Any]:
    """The normalized filters of a report request; QueryError, UnknownTarget or OutOfScope when they are bad."""
    if report_type not in REPORT_TYPES:
        raise QueryError(BAD_FILTERS, {"report_type": f"Must be one of: {', '.join(REPORT_TYPES)}"})
    if not isinstance(filters, dict):
        raise QueryError(BAD_FILTERS, {"filters": "Must be an object"})
    out = _typed(report_type, filters)
    _checked_values(out, fmt)
    try:
        report_window(out, org_metrics.org_zone(user.organization_id), now, max_days)
        if report_type == "teams":
            analytics.metric_type_list(out.get("metric_types", []))
    except QueryError as error:
        raise _prefixed(error) from None
    report_scope(report_type, out, user)
    if report_type == "agents":
        out.setdefault("success_only", DEFAULTS["success_only"])
    if report_type != "teams":
        out.setdefault("aggregation", DEFAULTS["aggregation"])
    return out


def report_window(filters: dict[str, Any], tz: Any, now: datetime, max_days: int) -> Window:
    return parse_window(
        filters.get("start_date"), filters.get("end_date"), filters.get("aggregation"), tz, now, max_days
    )


def report_scope(report_type: str, filters: dict[str, Any], user: User) -> Scope:
    """The user's scope narrowed by the filters (teams reports: admins and managers only)."""
    scope = scope_for(user)
    if report_type == "teams":
        if user.role not in ("admin", "manager"):
            raise OutOfScope("Teams reports are for admins and managers")
        analytics.teams_to_compare(scope, filters.get("team_ids", []))
        return scope
    return narrow(scope, filters.get("user_id"), filters.get("team_id"))


def filter_lines(filters: dict[str, Any], names: dict[str, str]) -> list[tuple[str, str]]:
    """The filters a reader of the report needs, in words: none at its default, no dates (the period has them).

    `names` turns user and team ids into emails and team names.
    """
    lines = []
    for key, value in sorted(filters.items()):
        if key in IN_THE_PERIOD or (key in DEFAULTS and value == DEFAULTS[key]):
            continue
        if isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, list):
            text = ", ".join(names.get(item) or str(item) for item in value)
        else:
            text = names.get(value) or str(value)
        lines.append((LABELS.get(key, key), text))
    return lines
